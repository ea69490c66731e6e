//! The ports the tenant pages use, given to `AdminState` by the process
//! that mounts the console. Each is optional: a page whose port is missing
//! answers "... is not available in this deployment" instead of failing.

use std::fmt;
use std::sync::Arc;

use bridge::config::Secret;
use bridge::ports::Secrets;
use bridge::setup::{SecretsWriter, TenantSetup};

use crate::error::AdminError;
use crate::ops::{AssetOperations, Operations};

/// The console's OAuth client at Zendesk (one for every tenant: each
/// tenant's Zendesk admin authorizes it for their account).
#[derive(Clone)]
pub struct ZendeskOAuthClient {
    pub client_id: String,
    pub client_secret: Secret,
}

impl fmt::Debug for ZendeskOAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskOAuthClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Settings of tenant onboarding.
#[derive(Debug, Clone)]
pub struct OnboardingSettings {
    /// The console's public URL as Zendesk redirects to it
    /// (`https://host/admin`); the OAuth redirect URI is
    /// `{console_url}/zendesk/oauth/callback`.
    pub console_url: String,
    /// Where the bridge's webhook endpoints are reached (`https://host`):
    /// shown to admins as `{ingest_url}/t/{tenant}/zendesk` and `/autotask`.
    pub ingest_url: String,
    /// Autotask's zone lookup for new tenants.
    pub autotask_zone_lookup_url: String,
    /// Without it, "Connect with OAuth" is not offered.
    pub zendesk_oauth: Option<ZendeskOAuthClient>,
    /// Life of an OAuth `state`.
    pub oauth_state_ttl: chrono::Duration,
}

impl Default for OnboardingSettings {
    fn default() -> Self {
        Self {
            console_url: "http://127.0.0.1:8080/admin".into(),
            ingest_url: "http://127.0.0.1:8080".into(),
            autotask_zone_lookup_url: bridge::config::AUTOTASK_ZONE_LOOKUP_URL.into(),
            zendesk_oauth: None,
            oauth_state_ttl: chrono::Duration::minutes(10),
        }
    }
}

impl OnboardingSettings {
    pub fn oauth_redirect_uri(&self) -> String {
        format!(
            "{}/zendesk/oauth/callback",
            self.console_url.trim_end_matches('/')
        )
    }
}

type SecretsPair = (Arc<dyn Secrets>, Arc<dyn SecretsWriter>);

/// The ports of the tenant pages.
#[derive(Clone, Default)]
pub struct TenantPorts {
    pub(crate) setup: Option<Arc<dyn TenantSetup>>,
    pub(crate) secrets: Option<SecretsPair>,
    pub(crate) operations: Option<Arc<dyn Operations>>,
    pub(crate) assets: Option<Arc<dyn AssetOperations>>,
    /// `assets` serves requests only, never a run in the background.
    pub(crate) assets_on_request_only: bool,
    pub(crate) settings: OnboardingSettings,
}

impl fmt::Debug for TenantPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantPorts")
            .field("setup", &self.setup.is_some())
            .field("secrets", &self.secrets.is_some())
            .field("operations", &self.operations.is_some())
            .field("assets", &self.assets.is_some())
            .field("assets_on_request_only", &self.assets_on_request_only)
            .field("settings", &self.settings)
            .finish()
    }
}

impl TenantPorts {
    pub fn setup(&self) -> Result<&dyn TenantSetup, AdminError> {
        self.setup
            .as_deref()
            .ok_or(AdminError::NotAvailable("checking credentials live"))
    }

    pub fn secrets(&self) -> Result<(&dyn Secrets, &dyn SecretsWriter), AdminError> {
        self.secrets
            .as_ref()
            .map(|(r, w)| (r.as_ref(), w.as_ref()))
            .ok_or(AdminError::NotAvailable("the secrets store"))
    }

    pub fn operations(&self) -> Result<&dyn Operations, AdminError> {
        self.operations
            .as_deref()
            .ok_or(AdminError::NotAvailable("operating the running bridge"))
    }

    pub fn asset_operations(&self) -> Result<&dyn AssetOperations, AdminError> {
        self.assets.as_deref().ok_or(AdminError::NotAvailable(
            "running asset sync from the console",
        ))
    }

    /// The asset operations to hand to a background task, when wired and
    /// the process outlives its answers (not a Lambda function).
    pub fn asset_runner(&self) -> Option<Arc<dyn AssetOperations>> {
        if self.assets_on_request_only {
            return None;
        }
        self.assets.clone()
    }

    pub fn settings(&self) -> &OnboardingSettings {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bridge::assets::AssetRunSummary;
    use bridge::model::TenantId;

    use super::*;
    use crate::ops::OpsError;

    struct NoAssets;

    #[async_trait]
    impl AssetOperations for NoAssets {
        async fn check_assets(&self, _: &TenantId) -> Result<Vec<String>, OpsError> {
            Ok(Vec::new())
        }
        async fn sync_assets(&self, _: &TenantId) -> Result<AssetRunSummary, OpsError> {
            Err(OpsError::NotFound)
        }
    }

    #[test]
    fn asset_operations_on_request_only_give_no_background_runner() {
        let assets: Arc<dyn AssetOperations> = Arc::new(NoAssets);
        let mut ports = TenantPorts {
            assets: Some(assets),
            ..TenantPorts::default()
        };
        assert!(ports.asset_runner().is_some());
        ports.assets_on_request_only = true;
        assert!(ports.asset_runner().is_none());
        assert!(ports.asset_operations().is_ok(), "still there on request");
    }
}
