//! The server-rendered pages (askama templates under `templates/`, checked
//! at compile time).

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::{end_previous_session, with_cleared_session, with_session, AdminState, MaybeUser};
use crate::accounts::CurrentUser;
use crate::error::AdminError;
use crate::password::MIN_PASSWORD_CHARS;
use crate::users::Role;

/// What the forgot-password page says, whoever asked.
pub(super) const FORGOT_MESSAGE: &str = "If an account exists for this address, a temporary \
     password is on its way. It works for 30 minutes, beside your current password.";

const STYLESHEET: &str = include_str!("../../static/admin.css");

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/password", get(password_form).post(change_password))
        .route("/forgot", get(forgot_form).post(forgot))
        .route("/invite", get(invite_form).post(invite))
        .route(
            "/tenants",
            get(super::tenant_pages::tenants_page).post(super::tenant_pages::create_tenant),
        )
        .route("/static/admin.css", get(stylesheet))
}

/// The parts of `base.html` every page fills.
pub(super) struct Layout {
    pub(super) title: &'static str,
    pub(super) base: String,
    /// The console's home page: the mount point itself (a router nested at
    /// `/admin` serves `/admin`, not `/admin/`).
    pub(super) home: String,
    pub(super) who: Option<String>,
    pub(super) csrf: String,
}

impl Layout {
    pub(super) fn new(title: &'static str, base: &str, user: Option<&CurrentUser>) -> Self {
        Self {
            title,
            base: base.to_owned(),
            home: if base.is_empty() {
                "/".into()
            } else {
                base.to_owned()
            },
            who: user.map(|u| match &u.role {
                Role::Operator => format!("{} (operator)", u.email),
                Role::TenantAdmin { tenant } => format!("{} (admin of {tenant})", u.email),
            }),
            csrf: user.map(|u| u.csrf_token().to_owned()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    layout: Layout,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    layout: Layout,
    forced: bool,
    min_chars: usize,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    layout: Layout,
    sent: bool,
    message: &'static str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    layout: Layout,
    email: &'a str,
    tenant: Option<&'a str>,
    operator: bool,
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    layout: Layout,
    email: &'a str,
    tenant: &'a str,
    message: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    message: &'a str,
}

pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error as a page, with the status the API would give it.
pub(super) fn error_page(base: &str, e: &AdminError) -> Response {
    let message = e.to_string();
    let page = ErrorPage {
        layout: Layout::new("Something went wrong", base, None),
        message: &message,
    };
    render(e.status(), &page)
}

/// Redirects within the console; `""` is its home page.
pub(super) fn see_other(state: &AdminState, path: &str) -> Response {
    let target = match (state.base(), path) {
        ("", "") => "/".to_owned(),
        (base, path) => format!("{base}{path}"),
    };
    Redirect::to(&target).into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn home(State(state): State<AdminState>, user: CurrentUser) -> Response {
    let page = HomePage {
        layout: Layout::new("Home", state.base(), Some(&user)),
        email: user.email.as_str(),
        tenant: user.role.tenant().map(|t| t.as_str()),
        operator: user.role.is_operator(),
    };
    render(StatusCode::OK, &page)
}

async fn login_form(State(state): State<AdminState>, MaybeUser(user): MaybeUser) -> Response {
    if user.is_some() {
        return see_other(&state, "");
    }
    let page = LoginPage {
        layout: Layout::new("Sign in", state.base(), None),
        email: "",
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    match state.accounts.login(&form.email, &form.password).await {
        Ok(session) => {
            end_previous_session(&state, &headers).await;
            let next = if session.user.must_change_password {
                "/password"
            } else {
                ""
            };
            with_session(&state, &session, see_other(&state, next))
        }
        Err(AdminError::BadLogin) => {
            let message = AdminError::BadLogin.to_string();
            let page = LoginPage {
                layout: Layout::new("Sign in", state.base(), None),
                email: &form.email,
                error: Some(&message),
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
        Err(e) => error_page(state.base(), &e),
    }
}

async fn logout(State(state): State<AdminState>, user: CurrentUser) -> Response {
    match state.accounts.logout(&user).await {
        Ok(()) => with_cleared_session(&state, see_other(&state, "/login")),
        Err(e) => error_page(state.base(), &e),
    }
}

fn password_page(state: &AdminState, user: &CurrentUser, error: Option<&str>) -> Response {
    let page = PasswordPage {
        layout: Layout::new("Change password", state.base(), Some(user)),
        forced: user.must_change_password,
        min_chars: MIN_PASSWORD_CHARS,
        error,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(status, &page)
}

async fn password_form(State(state): State<AdminState>, user: CurrentUser) -> Response {
    password_page(&state, &user, None)
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_password(
    State(state): State<AdminState>,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Response {
    if form.new_password != form.confirm_password {
        return password_page(&state, &user, Some("the two new passwords differ"));
    }
    let changed = state
        .accounts
        .change_password(&user, &form.current_password, &form.new_password)
        .await;
    match changed {
        Ok(session) => with_session(&state, &session, see_other(&state, "")),
        Err(e @ (AdminError::Invalid(_) | AdminError::WrongCurrentPassword)) => {
            password_page(&state, &user, Some(&e.to_string()))
        }
        Err(e) => error_page(state.base(), &e),
    }
}

fn forgot_page(state: &AdminState, sent: bool) -> Response {
    let page = ForgotPage {
        layout: Layout::new("Forgot password", state.base(), None),
        sent,
        message: FORGOT_MESSAGE,
    };
    render(StatusCode::OK, &page)
}

async fn forgot_form(State(state): State<AdminState>) -> Response {
    forgot_page(&state, false)
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn forgot(State(state): State<AdminState>, Form(form): Form<ForgotForm>) -> Response {
    match state.accounts.forgot_password(&form.email).await {
        Ok(()) => forgot_page(&state, true),
        Err(e) => error_page(state.base(), &e),
    }
}

fn invite_page(
    state: &AdminState,
    user: &CurrentUser,
    form: &InviteForm,
    outcome: Option<Result<String, AdminError>>,
) -> Response {
    let (status, message, error) = match outcome {
        None => (StatusCode::OK, None, None),
        Some(Ok(message)) => (StatusCode::OK, Some(message), None),
        Some(Err(e)) => (e.status(), None, Some(e.to_string())),
    };
    let page = InvitePage {
        layout: Layout::new("Invite a tenant admin", state.base(), Some(user)),
        email: &form.email,
        tenant: &form.tenant,
        message,
        error,
    };
    render(status, &page)
}

async fn invite_form(State(state): State<AdminState>, user: CurrentUser) -> Response {
    if !user.role.is_operator() {
        return error_page(state.base(), &AdminError::OperatorOnly);
    }
    let blank = InviteForm::default();
    invite_page(&state, &user, &blank, None)
}

#[derive(Default, Deserialize)]
struct InviteForm {
    email: String,
    tenant: String,
}

async fn invite(
    State(state): State<AdminState>,
    user: CurrentUser,
    Form(form): Form<InviteForm>,
) -> Response {
    if !user.role.is_operator() {
        return error_page(state.base(), &AdminError::OperatorOnly);
    }
    let invited = state
        .accounts
        .invite_admin(&user, &form.email, &form.tenant)
        .await
        .map(|inv| {
            format!(
                "Invitation mailed to {} for the tenant {}.",
                inv.email, inv.tenant
            )
        });
    match invited {
        Ok(message) => {
            let blank = InviteForm::default();
            invite_page(&state, &user, &blank, Some(Ok(message)))
        }
        Err(e @ (AdminError::Invalid(_) | AdminError::UserExists)) => {
            invite_page(&state, &user, &form, Some(Err(e)))
        }
        Err(e) => error_page(state.base(), &e),
    }
}
