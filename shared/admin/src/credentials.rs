//! Credentials on their way to the secrets store. The console reads the
//! tenant's current credentials, changes only the fields being set, and
//! writes the whole set back through `SecretsWriter` (which replaces it as
//! a whole). Values never leave this module except towards the secrets
//! store and the live checks; pages show `mask` at most.

use std::collections::BTreeMap;

use bridge::config::{Secret, TenantConfig, TenantSecrets};
use bridge::error::SecretsError;
use bridge::model::TenantId;
use bridge::setup::{AutotaskAccess, ConnectWiseAccess, ZendeskAccess, ZendeskAuth};

use crate::error::AdminError;
use crate::web::AdminState;

/// `TenantSecrets`' field names, as the secrets store keeps them.
pub const ZENDESK_EMAIL: &str = "zendesk_email";
pub const ZENDESK_API_TOKEN: &str = "zendesk_api_token";
pub const ZENDESK_OAUTH_TOKEN: &str = "zendesk_oauth_token";
pub const ZENDESK_WEBHOOK_SECRET: &str = "zendesk_webhook_secret";
pub const AUTOTASK_USERNAME: &str = "autotask_username";
pub const AUTOTASK_SECRET: &str = "autotask_secret";
pub const AUTOTASK_INTEGRATION_CODE: &str = "autotask_integration_code";
pub const AUTOTASK_CALLOUT_USERNAME: &str = "autotask_callout_username";
pub const AUTOTASK_CALLOUT_PASSWORD: &str = "autotask_callout_password";
pub const AUTOTASK_WEBHOOK_SECRET: &str = "autotask_webhook_secret";
pub const CONNECTWISE_PUBLIC_KEY: &str = "connectwise_public_key";
pub const CONNECTWISE_PRIVATE_KEY: &str = "connectwise_private_key";
pub const CONNECTWISE_CLIENT_ID: &str = "connectwise_client_id";

/// Fields `TenantSecrets` requires (no serde default).
const REQUIRED: [&str; 6] = [
    ZENDESK_EMAIL,
    ZENDESK_API_TOKEN,
    ZENDESK_WEBHOOK_SECRET,
    AUTOTASK_USERNAME,
    AUTOTASK_SECRET,
    AUTOTASK_INTEGRATION_CODE,
];

/// A tenant's credentials by field name; absent or empty means "not set".
#[derive(Default)]
pub struct Credentials(BTreeMap<&'static str, Secret>);

impl Credentials {
    fn from_existing(s: &TenantSecrets) -> Self {
        let mut c = Self::default();
        c.set(ZENDESK_EMAIL, Secret::new(s.zendesk_email.clone()));
        c.set(ZENDESK_API_TOKEN, s.zendesk_api_token.clone());
        c.set(ZENDESK_WEBHOOK_SECRET, s.zendesk_webhook_secret.clone());
        c.set(AUTOTASK_USERNAME, Secret::new(s.autotask_username.clone()));
        c.set(AUTOTASK_SECRET, s.autotask_secret.clone());
        c.set(
            AUTOTASK_INTEGRATION_CODE,
            s.autotask_integration_code.clone(),
        );
        c.set(
            AUTOTASK_CALLOUT_USERNAME,
            Secret::new(s.autotask_callout_username.clone()),
        );
        c.set(
            AUTOTASK_CALLOUT_PASSWORD,
            s.autotask_callout_password.clone(),
        );
        c.set(AUTOTASK_WEBHOOK_SECRET, s.autotask_webhook_secret.clone());
        c.set(ZENDESK_OAUTH_TOKEN, s.zendesk_oauth_token.clone());
        c.set(
            CONNECTWISE_PUBLIC_KEY,
            Secret::new(s.connectwise_public_key.clone()),
        );
        c.set(CONNECTWISE_PRIVATE_KEY, s.connectwise_private_key.clone());
        c.set(
            CONNECTWISE_CLIENT_ID,
            Secret::new(s.connectwise_client_id.clone()),
        );
        c
    }

    pub fn get(&self, field: &str) -> Option<&Secret> {
        self.0.get(field).filter(|s| !s.is_empty())
    }

    pub fn set(&mut self, field: &'static str, value: Secret) {
        self.0.insert(field, value);
    }

    /// The set as `TenantSecrets`, built through its own deserializer so
    /// that fields added later with a default keep working.
    pub fn to_tenant_secrets(&self) -> Result<TenantSecrets, AdminError> {
        let mut object = serde_json::Map::new();
        for field in REQUIRED {
            object.insert(field.into(), "".into());
        }
        for (field, value) in &self.0 {
            if !value.is_empty() || REQUIRED.contains(field) {
                object.insert((*field).into(), value.expose().into());
            }
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
            // The error names the field only (serde quotes names, not values).
            tracing::warn!(error = %e, "credentials do not fit this build's TenantSecrets");
            AdminError::NotAvailable("keeping this kind of credential")
        })
    }

    /// Zendesk sign-in from these credentials, if they hold one.
    pub fn zendesk_access(&self, config: &TenantConfig) -> Option<ZendeskAccess> {
        let auth = if let Some(token) = self.get(ZENDESK_OAUTH_TOKEN) {
            ZendeskAuth::OAuth {
                access_token: token.clone(),
            }
        } else {
            ZendeskAuth::ApiToken {
                email: self.get(ZENDESK_EMAIL)?.expose().to_owned(),
                token: self.get(ZENDESK_API_TOKEN)?.clone(),
            }
        };
        Some(ZendeskAccess {
            base_url: config.zendesk.base_url.clone(),
            auth,
        })
    }

    pub fn autotask_access(&self, config: &TenantConfig) -> Option<AutotaskAccess> {
        Some(AutotaskAccess {
            zone_lookup_url: config.autotask.zone_lookup_url.clone(),
            username: self.get(AUTOTASK_USERNAME)?.expose().to_owned(),
            secret: self.get(AUTOTASK_SECRET)?.clone(),
            integration_code: self.get(AUTOTASK_INTEGRATION_CODE)?.clone(),
        })
    }

    /// ConnectWise sign-in from these credentials and the tenant's
    /// ConnectWise settings, if both are there.
    pub fn connectwise_access(&self, config: &TenantConfig) -> Option<ConnectWiseAccess> {
        let cw = config.connectwise.as_ref()?;
        if cw.site.trim().is_empty() || cw.company_id.trim().is_empty() {
            return None;
        }
        Some(ConnectWiseAccess {
            site: cw.site.clone(),
            company_id: cw.company_id.clone(),
            public_key: self.get(CONNECTWISE_PUBLIC_KEY)?.expose().to_owned(),
            private_key: self.get(CONNECTWISE_PRIVATE_KEY)?.clone(),
            client_id: self.get(CONNECTWISE_CLIENT_ID)?.expose().to_owned(),
        })
    }

    /// What a page may show of a field.
    pub fn mask(&self, field: &str) -> String {
        mask(self.get(field))
    }
}

/// "not set", "set", or "set, ends in 1234" for secrets long enough that
/// four characters give little away.
pub fn mask(secret: Option<&Secret>) -> String {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return "not set".into();
    };
    let chars: Vec<char> = secret.expose().chars().collect();
    if chars.len() < 12 {
        return "set".into();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("set, ends in {tail}")
}

/// The tenant's current credentials (none yet: an empty set).
pub async fn load(state: &AdminState, tenant: &TenantId) -> Result<Credentials, AdminError> {
    let (reader, _) = state.ports().secrets()?;
    match reader.tenant_secrets(tenant).await {
        Ok(s) => Ok(Credentials::from_existing(&s)),
        Err(SecretsError::Missing(_)) => Ok(Credentials::default()),
        Err(e) => Err(secrets_err(e)),
    }
}

/// Merges `changes` into the current credentials and stores the result.
pub async fn update(
    state: &AdminState,
    tenant: &TenantId,
    changes: Vec<(&'static str, Secret)>,
) -> Result<Credentials, AdminError> {
    let (_, writer) = state.ports().secrets()?;
    let mut creds = load(state, tenant).await?;
    for (field, value) in changes {
        creds.set(field, value);
    }
    let secrets = creds.to_tenant_secrets()?;
    writer
        .put_tenant_secrets(tenant, &secrets)
        .await
        .map_err(secrets_err)?;
    tracing::info!(tenant = %tenant, "tenant credentials updated");
    Ok(creds)
}

fn secrets_err(e: SecretsError) -> AdminError {
    let retryable = e.is_retryable();
    let message = match e {
        SecretsError::Missing(_) => "no credentials are stored yet",
        SecretsError::Unavailable(_) => "the secrets store did not answer; try again",
        SecretsError::Malformed { .. } => "the stored credentials are unreadable",
    };
    tracing::warn!(message, "secrets store call failed");
    AdminError::Upstream {
        message: message.into(),
        retryable,
    }
}

/// A fresh random secret for a webhook or a callout: 32 random bytes,
/// URL-safe base64 (43 characters, under Autotask's 64).
pub fn random_secret() -> Secret {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_at_most_the_last_four_of_a_long_secret() {
        assert_eq!(mask(None), "not set");
        assert_eq!(mask(Some(&Secret::new(""))), "not set");
        assert_eq!(mask(Some(&Secret::new("short1234"))), "set");
        assert_eq!(
            mask(Some(&Secret::new("a-long-secret-9876"))),
            "set, ends in 9876"
        );
    }

    #[test]
    fn a_partial_set_becomes_tenant_secrets_with_the_rest_empty() {
        let mut c = Credentials::default();
        c.set(AUTOTASK_USERNAME, Secret::new("api@acme"));
        c.set(AUTOTASK_WEBHOOK_SECRET, Secret::new("whsec"));
        let s = c.to_tenant_secrets().unwrap();
        assert_eq!(s.autotask_username, "api@acme");
        assert_eq!(s.autotask_webhook_secret.expose(), "whsec");
        assert!(s.zendesk_api_token.is_empty());
        let back = Credentials::from_existing(&s);
        assert_eq!(back.get(AUTOTASK_USERNAME).unwrap().expose(), "api@acme");
        assert!(back.get(ZENDESK_EMAIL).is_none());
    }

    /// Every field survives a round trip, so that saving one kind of
    /// credential never drops another (the OAuth token included).
    #[test]
    fn every_field_survives_a_merge() {
        let mut c = Credentials::default();
        for field in [
            ZENDESK_EMAIL,
            ZENDESK_API_TOKEN,
            ZENDESK_OAUTH_TOKEN,
            ZENDESK_WEBHOOK_SECRET,
            AUTOTASK_USERNAME,
            AUTOTASK_SECRET,
            AUTOTASK_INTEGRATION_CODE,
            AUTOTASK_CALLOUT_USERNAME,
            AUTOTASK_CALLOUT_PASSWORD,
            AUTOTASK_WEBHOOK_SECRET,
            CONNECTWISE_PUBLIC_KEY,
            CONNECTWISE_PRIVATE_KEY,
            CONNECTWISE_CLIENT_ID,
        ] {
            c.set(field, Secret::new(format!("v-{field}")));
        }
        let back = Credentials::from_existing(&c.to_tenant_secrets().unwrap());
        for (field, value) in &c.0 {
            assert_eq!(
                back.get(field).map(|s| s.expose()),
                Some(value.expose()),
                "{field}"
            );
        }
    }

    #[test]
    fn random_secrets_differ_and_fit_autotask() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().len() >= 40 && a.expose().len() <= 64);
    }
}
