//! The JSON API under `/api`, with the pages' rules (the guard in `web`
//! checks sessions, CSRF and the forced password change for both).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pages::FORGOT_MESSAGE;
use super::{end_previous_session, with_cleared_session, with_session, AdminState};
use crate::accounts::{CurrentUser, NewSession};
use crate::error::AdminError;
use crate::users::Role;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/password", post(change_password))
        .route("/api/forgot", post(forgot))
        .route("/api/me", get(me))
        .route("/api/invitations", post(invite))
}

/// Who is signed in, and the CSRF token their requests must carry (readable
/// only by the console's own origin: the API sends no CORS headers).
#[derive(Debug, Serialize)]
pub struct Me {
    pub email: String,
    /// `operator` or `tenant_admin`.
    pub role: &'static str,
    pub tenant: Option<String>,
    pub must_change_password: bool,
    pub csrf_token: String,
    pub session_expires_at: DateTime<Utc>,
}

impl From<&CurrentUser> for Me {
    fn from(user: &CurrentUser) -> Self {
        Self {
            email: user.email.to_string(),
            role: match user.role {
                Role::Operator => "operator",
                Role::TenantAdmin { .. } => "tenant_admin",
            },
            tenant: user.role.tenant().map(|t| t.to_string()),
            must_change_password: user.must_change_password,
            csrf_token: user.csrf_token().to_owned(),
            session_expires_at: user.session_expires_at(),
        }
    }
}

fn session_response(state: &AdminState, session: &NewSession) -> Response {
    let body = Json(Me::from(&session.user)).into_response();
    with_session(state, session, body)
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Response, AdminError> {
    let session = state.accounts.login(&req.email, &req.password).await?;
    end_previous_session(&state, &headers).await;
    Ok(session_response(&state, &session))
}

async fn logout(
    State(state): State<AdminState>,
    user: CurrentUser,
) -> Result<Response, AdminError> {
    state.accounts.logout(&user).await?;
    Ok(with_cleared_session(
        &state,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

#[derive(Deserialize)]
struct PasswordRequest {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(req): Json<PasswordRequest>,
) -> Result<Response, AdminError> {
    let session = state
        .accounts
        .change_password(&user, &req.current_password, &req.new_password)
        .await?;
    Ok(session_response(&state, &session))
}

#[derive(Deserialize)]
struct ForgotRequest {
    email: String,
}

async fn forgot(
    State(state): State<AdminState>,
    Json(req): Json<ForgotRequest>,
) -> Result<Response, AdminError> {
    state.accounts.forgot_password(&req.email).await?;
    let body = serde_json::json!({ "message": FORGOT_MESSAGE });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn me(user: CurrentUser) -> Json<Me> {
    Json(Me::from(&user))
}

#[derive(Deserialize)]
struct InvitationRequest {
    email: String,
    tenant: String,
}

#[derive(Serialize)]
struct InvitationResponse {
    email: String,
    tenant: String,
    temporary_password_expires_at: DateTime<Utc>,
}

async fn invite(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(req): Json<InvitationRequest>,
) -> Result<Response, AdminError> {
    let invitation = state
        .accounts
        .invite_admin(&user, &req.email, &req.tenant)
        .await?;
    let body = InvitationResponse {
        email: invitation.email.to_string(),
        tenant: invitation.tenant.to_string(),
        temporary_password_expires_at: invitation.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
