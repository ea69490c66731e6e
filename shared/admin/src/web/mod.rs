//! The console over HTTP: an axum router meant to be nested at `/admin`,
//! with server-rendered pages and a JSON API under `/api` (so
//! `/admin/api/...`), both behind one guard that applies the same rules.
//!
//! CSRF. A request with a session that changes state (any method but GET,
//! HEAD, OPTIONS) must carry the session's CSRF token: the form field
//! `csrf` for pages, the header `x-csrf-token` for the API; otherwise 403.
//! The session-less forms (sign in, forgot password) cannot have a token
//! yet; they are protected by an Origin check instead: a browser names the
//! page that sent a POST (`Origin`, and `Sec-Fetch-Site` in current
//! browsers), and a request sent from another site is refused. A request
//! with neither header comes from a script or a tool, not from a victim's
//! browser, so it is allowed. The session cookie is also SameSite=Strict,
//! so another site cannot ride on a session at all. Chosen over a
//! double-submit cookie because it needs no state and no extra cookie.

mod api;
mod mapping_form;
pub mod openapi;
mod pages;
mod tenant_api;
mod tenant_pages;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

use crate::accounts::{Accounts, CurrentUser, NewSession};
use crate::error::AdminError;
use crate::ops::{AssetOperations, Operations};
use crate::sessions::SessionToken;
use crate::wiring::{OnboardingSettings, TenantPorts};
use bridge::ports::Secrets;
use bridge::setup::{SecretsWriter, TenantSetup};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "psab_session";
/// The API's CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The pages' CSRF form field.
pub const CSRF_FIELD: &str = "csrf";
/// Largest form body the guard reads to find the CSRF field.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// How the console is reached.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Where the router is nested (`/admin`): the prefix of links and
    /// redirects, and the session cookie's `Path`.
    pub base_path: String,
    /// Origins (`https://console.example.com`) allowed besides the request's
    /// own host, for a console behind a proxy that rewrites `Host`.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            base_path: "/admin".into(),
            allowed_origins: Vec::new(),
        }
    }
}

/// The router's state: the account operations, the web settings and the
/// ports of the tenant pages (each optional, see `wiring`).
#[derive(Clone, Debug)]
pub struct AdminState {
    accounts: Arc<Accounts>,
    web: Arc<WebSettings>,
    ports: Arc<TenantPorts>,
}

impl AdminState {
    pub fn new(accounts: Accounts) -> Self {
        Self {
            accounts: Arc::new(accounts),
            web: Arc::new(WebSettings::default()),
            ports: Arc::new(TenantPorts::default()),
        }
    }

    /// Live checks and reads against tenants' Zendesk and PSA.
    pub fn with_tenant_setup(mut self, setup: Arc<dyn TenantSetup>) -> Self {
        Arc::make_mut(&mut self.ports).setup = Some(setup);
        self
    }

    /// The secrets store: read (to keep fields not being changed) and write.
    pub fn with_secrets(
        mut self,
        reader: Arc<dyn Secrets>,
        writer: Arc<dyn SecretsWriter>,
    ) -> Self {
        Arc::make_mut(&mut self.ports).secrets = Some((reader, writer));
        self
    }

    /// The running bridge: sync now, dead letters, replay.
    pub fn with_operations(mut self, operations: Arc<dyn Operations>) -> Self {
        Arc::make_mut(&mut self.ports).operations = Some(operations);
        self
    }

    /// Asset sync on request: the setup check and a run now.
    pub fn with_asset_operations(mut self, assets: Arc<dyn AssetOperations>) -> Self {
        Arc::make_mut(&mut self.ports).assets = Some(assets);
        self
    }

    /// Asset sync on request only: the setup check and a run now, but no
    /// run in the background when a tenant turns active. For a process that
    /// may be frozen as soon as it has answered (a Lambda function), where
    /// such a run would stall holding the tenant's run lease and PSA budget.
    pub fn with_asset_operations_on_request(mut self, assets: Arc<dyn AssetOperations>) -> Self {
        let ports = Arc::make_mut(&mut self.ports);
        ports.assets = Some(assets);
        ports.assets_on_request_only = true;
        self
    }

    pub fn with_onboarding(mut self, settings: OnboardingSettings) -> Self {
        Arc::make_mut(&mut self.ports).settings = settings;
        self
    }

    pub fn ports(&self) -> &TenantPorts {
        &self.ports
    }

    pub fn with_web(mut self, web: WebSettings) -> Self {
        self.web = Arc::new(web);
        self
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn web(&self) -> &WebSettings {
        &self.web
    }

    fn base(&self) -> &str {
        self.web.base_path.trim_end_matches('/')
    }

    fn cookie_path(&self) -> &str {
        match self.base() {
            "" => "/",
            base => base,
        }
    }

    /// The Set-Cookie value that carries a new session.
    fn session_cookie(&self, session: &NewSession) -> HeaderValue {
        let max_age = self.accounts.settings().session_ttl.num_seconds();
        let cookie = format!(
            "{SESSION_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path={}; Max-Age={max_age}",
            session.token.expose(),
            self.cookie_path()
        );
        HeaderValue::from_str(&cookie).expect("token and path are header-safe")
    }

    fn clear_cookie(&self) -> HeaderValue {
        let cookie = format!(
            "{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path={}; Max-Age=0",
            self.cookie_path()
        );
        HeaderValue::from_str(&cookie).expect("path is header-safe")
    }
}

/// The console's router, to be nested at `WebSettings::base_path`:
/// `Router::new().nest("/admin", admin::router(state))`.
pub fn router(state: AdminState) -> Router {
    router_with(state, Router::new())
}

/// The console's router with more routes behind the same guard (session,
/// CSRF, forced password change). Handlers take `CurrentUser` to require a
/// signed-in person and call `require_tenant` for tenant-scoped resources.
pub fn router_with(state: AdminState, extra: Router<AdminState>) -> Router {
    pages::routes()
        .merge(api::routes())
        .merge(tenant_pages::routes())
        .merge(tenant_api::routes())
        .merge(extra)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// What the guard found out about a request, for handlers and extractors.
#[derive(Clone)]
struct RequestAuth {
    user: Option<CurrentUser>,
    api: bool,
    base: Arc<str>,
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Routes a person without a session may post to (protected by the Origin
/// check instead of a token).
fn is_sessionless_post(path: &str) -> bool {
    matches!(path, "/login" | "/forgot" | "/api/login" | "/api/forgot")
}

/// Routes that stay reachable while a password change is pending.
fn allowed_before_password_change(path: &str) -> bool {
    is_sessionless_post(path)
        || path.starts_with("/static/")
        || matches!(
            path,
            "/password" | "/logout" | "/api/password" | "/api/logout" | "/api/me"
        )
}

/// Resolves the session, enforces CSRF / Origin and the forced password
/// change, and sets headers every console response needs.
async fn guard(State(state): State<AdminState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let api = is_api(&path);
    let deny = |e: AdminError| with_security_headers(reject(&state, api, e));

    let user = match session_token(req.headers()) {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(user) => user,
            Err(e) => return deny(e),
        },
        None => None,
    };

    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if is_sessionless_post(&path) {
            if !same_origin(&req, &state.web.allowed_origins) {
                return deny(AdminError::ForeignOrigin);
            }
        } else {
            let Some(user) = &user else {
                return deny(AdminError::Unauthenticated);
            };
            let (checked, ok) = check_csrf(req, user).await;
            if !ok {
                return deny(AdminError::Csrf);
            }
            req = checked;
        }
    }

    if let Some(user) = &user {
        if user.must_change_password && !allowed_before_password_change(&path) {
            let response = if api {
                AdminError::MustChangePassword.into_response()
            } else {
                Redirect::to(&format!("{}/password", state.base())).into_response()
            };
            return with_security_headers(response);
        }
    }

    // Tenant isolation before any handler or body extractor runs, so that
    // another tenant's route answers 404 whatever the request carries.
    // Handlers check again (`tenants::authorize`).
    if let (Some(user), Some(raw)) = (&user, tenant_segment(&path)) {
        let allowed = bridge::model::TenantId::parse(raw)
            .is_some_and(|t| crate::accounts::require_tenant(user, &t).is_ok());
        if !allowed {
            return deny(AdminError::NotFound);
        }
    }

    req.extensions_mut().insert(RequestAuth {
        user,
        api,
        base: Arc::from(state.base()),
    });
    with_security_headers(next.run(req).await)
}

/// The `{tenant}` of a tenant route (`/tenants/{tenant}...`,
/// `/api/tenants/{tenant}...`).
fn tenant_segment(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/tenants/")
        .or_else(|| path.strip_prefix("/tenants/"))?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// The token the request carries, from the API header or the form field.
/// A form body is read and put back for the handler.
async fn check_csrf(req: Request, user: &CurrentUser) -> (Request, bool) {
    if let Some(value) = req.headers().get(CSRF_HEADER) {
        let ok = value.to_str().is_ok_and(|v| user.csrf_matches(v));
        return (req, ok);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return (Request::from_parts(parts, Body::empty()), false);
    };
    let ok = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == CSRF_FIELD))
        .is_some_and(|(_, v)| user.csrf_matches(&v));
    (Request::from_parts(parts, Body::from(bytes)), ok)
}

/// Whether a browser says the request comes from this console's own pages.
fn same_origin(req: &Request, allowed: &[String]) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        // "none": typed into the address bar or a bookmark.
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = header("origin") else {
        return true;
    };
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    // HTTP/2 carries the host in the URI (`:authority`), not in `Host`.
    let host = header("host").or_else(|| req.uri().authority().map(|a| a.as_str()));
    match (authority, host) {
        (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    }
}

fn session_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| SessionToken::from_cookie(value))
}

/// An error as the API (JSON) or the pages (HTML) show it.
fn reject(state: &AdminState, api: bool, e: AdminError) -> Response {
    if api {
        return e.into_response();
    }
    match e {
        AdminError::Unauthenticated => {
            Redirect::to(&format!("{}/login", state.base())).into_response()
        }
        e => pages::error_page(state.base(), &e),
    }
}

/// Console pages hold CSRF tokens and account details: not cached, not
/// framed, no referrer to other sites.
fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Extracting `CurrentUser` requires a signed-in person: otherwise the API
/// answers 401 and a page redirects to the login page.
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(auth) = parts.extensions.get::<RequestAuth>() else {
            // A route outside `router_with` has no guard in front of it.
            return Err(AdminError::Internal("console route without its guard").into_response());
        };
        match &auth.user {
            Some(user) => Ok(user.clone()),
            None if auth.api => Err(AdminError::Unauthenticated.into_response()),
            None => Err(Redirect::to(&format!("{}/login", auth.base)).into_response()),
        }
    }
}

/// The signed-in person if there is one (pages that also serve visitors).
struct MaybeUser(Option<CurrentUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<RequestAuth>()
                .and_then(|auth| auth.user.clone()),
        ))
    }
}

/// A response that sets the cookie of a newly opened session.
fn with_session(state: &AdminState, session: &NewSession, response: Response) -> Response {
    let mut response = response;
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.session_cookie(session));
    response
}

fn with_cleared_session(state: &AdminState, response: Response) -> Response {
    let mut response = response;
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.clear_cookie());
    response
}

/// Ends the session the browser presented before a login, so that logging
/// in always leaves exactly one live session for this browser.
async fn end_previous_session(state: &AdminState, headers: &HeaderMap) {
    if let Some(token) = session_token(headers) {
        if let Err(e) = state.accounts.end_session(&token).await {
            tracing::warn!(error = %e, "previous session not ended at login");
        }
    }
}
