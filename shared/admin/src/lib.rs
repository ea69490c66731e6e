//! psa-bridge's admin console (DESIGN.md "The admin console"): people and
//! sessions in the single table, a `Mailer` port, and an axum router with
//! server-rendered pages and a JSON API, meant to be nested at `/admin`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn wire(store: Arc<dyn bridge::ports::Store>) -> Result<(), admin::AdminError> {
//! let mailer = Arc::new(admin::OutboxMailer::new("var/outbox"));
//! let accounts = admin::Accounts::new(store, mailer, Arc::new(bridge::ports::SystemClock));
//! accounts.create_operator("ops@example.com", "a long first password").await?;
//! let app = axum::Router::new().nest("/admin", admin::router(admin::AdminState::new(accounts)));
//! # let _ = app; Ok(()) }
//! ```

pub mod accounts;
pub mod assets;
pub mod credentials;
pub mod error;
pub mod mail;
pub mod mappings;
pub mod onboarding;
pub mod ops;
pub mod password;
pub mod psa;
pub mod sessions;
pub mod setup_flow;
pub mod suggest;
pub mod tenants;
pub mod users;
pub mod web;
pub mod wiring;

pub use accounts::{
    failure_delay, require_tenant, Accounts, CurrentUser, Invitation, NewSession, Pause, Settings,
    SleepPause,
};
pub use error::{AdminError, CheckView, MailError, NotFound};
pub use mail::{Mail, Mailer, OutboxMailer};
pub use ops::{AssetOperations, DeadLetter, Operations, OpsError};
pub use password::HashCost;
pub use psa::Psa;
pub use users::{Email, Role};
pub use web::{
    router, router_with, AdminState, WebSettings, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE,
};
pub use wiring::{OnboardingSettings, ZendeskOAuthClient};
