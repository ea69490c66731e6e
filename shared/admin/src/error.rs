//! What can go wrong in the console, and how each failure looks over HTTP.
//!
//! No variant carries a password, a hash, a session token or a store key
//! (session keys are token hashes): messages go to logs and to responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bridge::error::StoreError;
use thiserror::Error;

/// The one answer to a failed login, whatever the reason (unknown address,
/// wrong password, locked account), so that it tells an attacker nothing.
pub const BAD_LOGIN: &str = "Wrong email or password, or the account is locked for a while.";

/// A console failure. `is_retryable` says whether the same request may
/// succeed later unchanged.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{BAD_LOGIN}")]
    BadLogin,
    #[error("not signed in, or the session has expired")]
    Unauthenticated,
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("request origin not allowed")]
    ForeignOrigin,
    #[error("the password must be changed first")]
    MustChangePassword,
    #[error("only an operator may do this")]
    OperatorOnly,
    #[error("not found")]
    NotFound,
    /// Input the caller can fix; the message says how.
    #[error("{0}")]
    Invalid(String),
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("a user with this email address already exists")]
    UserExists,
    #[error("storage failed during {op}: {detail}")]
    Store {
        op: &'static str,
        detail: &'static str,
        retryable: bool,
    },
    #[error("mail could not be sent: {0}")]
    Mail(#[from] MailError),
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Someone else changed the same thing meanwhile; reload and retry.
    #[error("changed by someone else meanwhile; reload the page and try again")]
    Conflict,
    /// A port this deployment was built without (setup checks, secrets
    /// store, the running bridge).
    #[error("{0} is not available in this deployment")]
    NotAvailable(&'static str),
    /// Live checks that did not pass, each with what to fix.
    #[error("{}", describe_failures(.0))]
    ChecksFailed(Vec<CheckView>),
    /// The running bridge or a secrets store refused or failed a request;
    /// the message is in words and holds no credential.
    #[error("{message}")]
    Upstream { message: String, retryable: bool },
}

/// One check's outcome as pages and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckView {
    pub check: String,
    pub fix: String,
    pub retryable: bool,
}

impl From<bridge::setup::CheckFailure> for CheckView {
    fn from(f: bridge::setup::CheckFailure) -> Self {
        Self {
            check: f.check,
            fix: f.fix,
            retryable: f.retryable,
        }
    }
}

fn describe_failures(failures: &[CheckView]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.check, f.fix))
        .collect();
    format!("not every check passed: {}", parts.join("; "))
}

impl AdminError {
    pub fn is_retryable(&self) -> bool {
        match self {
            AdminError::Store { retryable, .. } => *retryable,
            AdminError::Mail(e) => e.retryable,
            AdminError::Upstream { retryable, .. } => *retryable,
            AdminError::ChecksFailed(failures) => failures.iter().all(|f| f.retryable),
            _ => false,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadLogin | AdminError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AdminError::Csrf
            | AdminError::ForeignOrigin
            | AdminError::MustChangePassword
            | AdminError::OperatorOnly => StatusCode::FORBIDDEN,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::Invalid(_) | AdminError::WrongCurrentPassword => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AdminError::UserExists | AdminError::Conflict => StatusCode::CONFLICT,
            AdminError::ChecksFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::NotAvailable(_) => StatusCode::NOT_IMPLEMENTED,
            AdminError::Upstream {
                retryable: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            AdminError::Store { .. } | AdminError::Mail(_) if self.is_retryable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdminError::Store { .. } | AdminError::Mail(_) | AdminError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A short machine-readable name for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::BadLogin => "bad_login",
            AdminError::Unauthenticated => "unauthenticated",
            AdminError::Csrf => "csrf",
            AdminError::ForeignOrigin => "foreign_origin",
            AdminError::MustChangePassword => "must_change_password",
            AdminError::OperatorOnly => "operator_only",
            AdminError::NotFound => "not_found",
            AdminError::Invalid(_) => "invalid",
            AdminError::WrongCurrentPassword => "wrong_current_password",
            AdminError::UserExists => "user_exists",
            AdminError::Store { .. } => "storage",
            AdminError::Mail(_) => "mail",
            AdminError::Internal(_) => "internal",
            AdminError::Conflict => "conflict",
            AdminError::NotAvailable(_) => "not_available",
            AdminError::ChecksFailed(_) => "checks_failed",
            AdminError::Upstream { .. } => "upstream",
        }
    }

    /// Maps a store failure without its message: `StoreError`s name the
    /// item key, and a session's key is the hash of its token.
    pub(crate) fn store(op: &'static str) -> impl Fn(StoreError) -> AdminError {
        move |e| {
            let detail = match &e {
                StoreError::Conflict { .. } => "concurrent update",
                StoreError::TooLarge { .. } => "item too large",
                StoreError::Unavailable(_) => "store unavailable",
                StoreError::Corrupt { .. } => "stored item unreadable",
            };
            if let StoreError::Unavailable(message) = &e {
                // Adapters' availability messages name the failure, not the key.
                tracing::warn!(op, error = %message, "admin store call failed");
            } else {
                tracing::warn!(op, detail, "admin store call failed");
            }
            AdminError::Store {
                op,
                detail,
                retryable: e.is_retryable(),
            }
        }
    }
}

/// The JSON API's error body; pages render their own.
impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        let mut body = serde_json::json!({
            "error": self.to_string(),
            "code": self.code(),
            "retryable": self.is_retryable(),
        });
        if let AdminError::ChecksFailed(failures) = &self {
            body["failures"] = serde_json::to_value(failures).unwrap_or_default();
        }
        (status, axum::Json(body)).into_response()
    }
}

/// Another tenant's resource, answered exactly like a missing one so that
/// tenant admins cannot learn which tenants exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("not found")]
pub struct NotFound;

impl From<NotFound> for AdminError {
    fn from(_: NotFound) -> Self {
        AdminError::NotFound
    }
}

impl IntoResponse for NotFound {
    fn into_response(self) -> Response {
        AdminError::NotFound.into_response()
    }
}

/// A mail that was not sent. The message never holds the mail's body.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct MailError {
    pub message: String,
    pub retryable: bool,
}
