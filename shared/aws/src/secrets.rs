//! `Secrets` on AWS Secrets Manager: one secret per tenant, `{prefix}/{tenant}`,
//! holding the JSON of `TenantSecrets`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;
use bridge::config::TenantSecrets;
use bridge::error::SecretsError;
use bridge::model::TenantId;
use bridge::ports::Secrets;

/// Long enough to spare Secrets Manager a call per job, short enough that a
/// rotated credential is picked up within minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Tenant credentials from Secrets Manager, cached in memory per process.
#[derive(Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
    ttl: Duration,
    cache: Mutex<HashMap<TenantId, (Instant, TenantSecrets)>>,
}

impl SecretsManagerSecrets {
    /// `prefix` without a trailing slash, e.g. `psa-bridge/prod`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into().trim_end_matches('/').to_owned(),
            ttl: DEFAULT_CACHE_TTL,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How long a fetched secret is served from memory; zero disables the cache.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The secret's name (never its value) for a tenant.
    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}/{}", self.prefix, tenant)
    }

    /// Forgets a tenant's cached credentials, e.g. after the PSA rejected them.
    pub fn invalidate(&self, tenant: &TenantId) {
        self.lock().remove(tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, TenantSecrets)>> {
        // The map holds no invariant a panicking holder could break.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError> {
        let out = match self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(tenant))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(SecretsError::Missing(tenant.to_string()));
            }
            Err(e) => {
                return Err(SecretsError::Unavailable(format!(
                    "Secrets Manager GetSecretValue for {}: {}",
                    self.secret_name(tenant),
                    DisplayErrorContext(&e)
                )))
            }
        };
        let malformed = |message: String| SecretsError::Malformed {
            tenant: tenant.to_string(),
            message,
        };
        let text = out
            .secret_string()
            .ok_or_else(|| malformed("the secret has no string value".into()))?;
        serde_json::from_str(text).map_err(|e| malformed(describe_json_error(&e)))
    }
}

/// serde_json's messages can quote the offending value ("invalid type: string
/// \"hunter2\"..."), which here would be a credential: keep only what is safe.
fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") || text.starts_with("unknown field") {
        return text;
    }
    format!(
        "not a TenantSecrets JSON document ({:?} error at line {} column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    #[tracing::instrument(level = "debug", skip(self), fields(tenant = %tenant))]
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError> {
        if let Some((fetched, secrets)) = self.lock().get(tenant) {
            if fetched.elapsed() < self.ttl {
                return Ok(secrets.clone());
            }
        }
        let secrets = self.fetch(tenant).await?;
        if !self.ttl.is_zero() {
            self.lock()
                .insert(tenant.clone(), (Instant::now(), secrets.clone()));
        }
        tracing::debug!("tenant secrets fetched");
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_value() {
        let err = serde_json::from_str::<TenantSecrets>(r#"{"zendesk_email": "hunter2-secret"}"#)
            .unwrap_err();
        assert_eq!(describe_json_error(&err), err.to_string());
        assert!(err.to_string().starts_with("missing field"));

        let err = serde_json::from_str::<TenantSecrets>(
            r#"{"zendesk_email": "a", "zendesk_api_token": 42424242}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("42424242"),
            "serde_json quotes values"
        );
        let safe = describe_json_error(&err);
        assert!(!safe.contains("42424242"), "{safe}");
    }
}
