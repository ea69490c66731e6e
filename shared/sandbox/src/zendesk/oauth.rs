//! Zendesk's OAuth authorization code grant, as the public contract describes
//! it (`zendesk-oauth.openapi.yml`, "Create Token for Grant Type"):
//!
//! - `GET /oauth/authorizations/new?response_type=code&redirect_uri&client_id&scope&state`
//!   shows the consent page; an unknown client or a redirect URI other than the
//!   client's registered one gets an error page, never a redirect (an
//!   unverified URI must not receive anything).
//! - Allowing (a form POST to `/oauth/authorizations`) redirects to
//!   `redirect_uri?code=..&state=..` with `state` unchanged; denying redirects
//!   with `error=access_denied`.
//! - `POST /oauth/tokens` takes a JSON body (`grant_type=authorization_code`,
//!   `code`, `client_id`, `client_secret`, `redirect_uri`, `scope`). A code is
//!   valid for 120 seconds and once; the client, its secret and the redirect
//!   URI must match the grant. Refusals are RFC 6749 error bodies:
//!   400 `invalid_grant` / `invalid_request` / `unsupported_grant_type`,
//!   401 `invalid_client`.
//! - The access token is accepted as `Authorization: Bearer` by the API, acting
//!   as the account's API user (the sandbox has no sign-in page: the grant is
//!   made by that user). A token without the `write` scope may only read.
//!
//! The consent page has no sign-in step and no CSRF token of its own; it
//! stands for a user already signed in to Zendesk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use super::Shared;

/// Zendesk: "an authorization code valid for 120 seconds".
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(120);

/// An OAuth client registered in the account (Admin Center > Apps and
/// integrations > APIs > OAuth clients).
#[derive(Debug, Clone)]
pub(super) struct OAuthClient {
    pub(super) secret: String,
    pub(super) redirect_uri: String,
}

/// An authorization code not yet exchanged.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    issued: Instant,
}

/// The OAuth side of the account.
#[derive(Debug)]
pub(super) struct OAuthState {
    pub(super) clients: HashMap<String, OAuthClient>,
    codes: HashMap<String, Grant>,
    /// Access token → its scope.
    pub(super) tokens: HashMap<String, String>,
    pub(super) code_lifetime: Duration,
}

impl Default for OAuthState {
    fn default() -> Self {
        Self {
            clients: HashMap::new(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            code_lifetime: CODE_LIFETIME,
        }
    }
}

impl OAuthState {
    /// The scope of a bearer token the API accepts.
    pub(super) fn token_scope(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }
}

fn random(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><title>Zendesk</title></head><body>\
             <h1>Invalid authorization request</h1><p id=\"error\">{}</p></body></html>",
            escape(message)
        )),
    )
        .into_response()
}

/// The error page for an authorization request that may not go on.
fn check_request(shared: &Shared, params: &HashMap<String, String>) -> Option<Response> {
    let inner = shared.state.lock().expect("sandbox state poisoned");
    let Some(client) = inner.oauth.clients.get(param(params, "client_id")) else {
        return Some(error_page(
            "The client_id does not belong to an OAuth client of this account.",
        ));
    };
    if client.redirect_uri != param(params, "redirect_uri") {
        return Some(error_page(
            "The redirect_uri does not match the OAuth client's redirect URL.",
        ));
    }
    if param(params, "response_type") != "code" {
        return Some(error_page("response_type must be code."));
    }
    if param(params, "scope").split_whitespace().next().is_none() {
        return Some(error_page("A scope is required."));
    }
    None
}

/// `GET /oauth/authorizations/new`: the consent page.
pub(super) async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(page) = check_request(&shared, &params) {
        return page;
    }
    let hidden: String = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
    ]
    .iter()
    .map(|name| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(param(&params, name))
        )
    })
    .collect();
    let (client, email) = {
        let inner = shared.state.lock().expect("sandbox state poisoned");
        let user = &inner.users[&inner.api_user_id];
        (param(&params, "client_id").to_owned(), user.email.clone())
    };
    Html(format!(
        "<!doctype html><html><head><title>Allow access - Zendesk</title></head><body>\
         <h1>Allow {client} to access your Zendesk account?</h1>\
         <p>Signed in as <span id=\"user\">{email}</span>. Scope: <span id=\"scope\">{scope}</span></p>\
         <form method=\"post\" action=\"/oauth/authorizations\">{hidden}\
         <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Deny</button>\
         </form></body></html>",
        client = escape(&client),
        email = escape(&email),
        scope = escape(param(&params, "scope")),
    ))
    .into_response()
}

/// Zendesk sends the browser back with a 302.
fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

/// `redirect_uri` with `pairs` added to its query.
fn back_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{query}")
}

/// `POST /oauth/authorizations`: the user's decision on the consent page.
pub(super) async fn decide(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Some(page) = check_request(&shared, &params) {
        return page;
    }
    let redirect_uri = param(&params, "redirect_uri");
    let state = param(&params, "state");
    if param(&params, "decision") != "allow" {
        return redirect(&back_to(
            redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The end-user or authorization server denied the request.",
                ),
                ("state", state),
            ],
        ));
    }
    let code = random(40);
    shared
        .state
        .lock()
        .expect("sandbox state poisoned")
        .oauth
        .codes
        .insert(
            code.clone(),
            Grant {
                client_id: param(&params, "client_id").to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                scope: param(&params, "scope").to_owned(),
                issued: Instant::now(),
            },
        );
    redirect(&back_to(redirect_uri, &[("code", &code), ("state", state)]))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn invalid_grant() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the \
         redirection URI used in the authorization request, or was issued to another client.",
    )
}

/// `POST /oauth/tokens`: exchanges a code for an access token.
pub(super) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be JSON.",
        );
    };
    let text = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    if text("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let mut inner = shared.state.lock().expect("sandbox state poisoned");
    let client_ok = inner
        .oauth
        .clients
        .get(text("client_id"))
        .is_some_and(|c| !c.secret.is_empty() && c.secret == text("client_secret"));
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication \
             included, or unsupported authentication method.",
        );
    }
    if text("code").is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is missing a required parameter: code.",
        );
    }
    // Presented once, whatever the outcome: a code that leaked is spent.
    let Some(grant) = inner.oauth.codes.remove(text("code")) else {
        return invalid_grant();
    };
    if grant.issued.elapsed() > inner.oauth.code_lifetime
        || grant.client_id != text("client_id")
        || grant.redirect_uri != text("redirect_uri")
    {
        return invalid_grant();
    }
    let access_token = random(64);
    inner
        .oauth
        .tokens
        .insert(access_token.clone(), grant.scope.clone());
    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "scope": grant.scope,
    }))
    .into_response()
}

/// A bearer token without the `write` scope may only read (GET), as in
/// Zendesk ("read" gives access to GET endpoints).
pub(super) async fn enforce_scope(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer {
        let read_only = {
            let inner = shared.state.lock().expect("sandbox state poisoned");
            inner.oauth.token_scope(token).is_some_and(|scope| {
                !scope
                    .split_whitespace()
                    .any(|s| s == "write" || s.ends_with(":write"))
            })
        };
        if read_only && request.method() != Method::GET {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "Forbidden",
                    "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."})),
            )
                .into_response();
        }
    }
    next.run(request).await
}
