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
use bridge::setup::SecretsWriter;

/// Long enough to spare Secrets Manager a call per job, short enough that a
/// rotated credential is picked up within minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Tenant credentials from Secrets Manager, cached in memory per process.
#[derive(Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
    cache: Cache,
}

/// Fetched credentials per tenant, served for `ttl` after their fetch.
#[derive(Debug)]
struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<TenantId, (Instant, TenantSecrets)>>,
}

impl Cache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, TenantSecrets)>> {
        // The map holds no invariant a panicking holder could break.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant's credentials if they were fetched less than `ttl` before `now`.
    fn fresh(&self, tenant: &TenantId, now: Instant) -> Option<TenantSecrets> {
        let entries = self.lock();
        let (fetched, secrets) = entries.get(tenant)?;
        (now.saturating_duration_since(*fetched) < self.ttl).then(|| secrets.clone())
    }

    fn keep(&self, tenant: &TenantId, fetched: Instant, secrets: &TenantSecrets) {
        self.lock()
            .insert(tenant.clone(), (fetched, secrets.clone()));
    }
}

impl SecretsManagerSecrets {
    /// `prefix` without a trailing slash, e.g. `psa-bridge/prod`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into().trim_end_matches('/').to_owned(),
            cache: Cache::new(DEFAULT_CACHE_TTL),
        }
    }

    /// The secret's name (never its value) for a tenant.
    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}/{}", self.prefix, tenant)
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
        if let Some(secrets) = self.cache.fresh(tenant, Instant::now()) {
            return Ok(secrets);
        }
        let secrets = self.fetch(tenant).await?;
        self.cache.keep(tenant, Instant::now(), &secrets);
        tracing::debug!("tenant secrets fetched");
        Ok(secrets)
    }
}

#[async_trait]
impl SecretsWriter for SecretsManagerSecrets {
    /// `PutSecretValue` on the tenant's secret, creating it on the first
    /// write (`CreateSecret`); the document is the one [`Secrets`] reads.
    /// This process's cache takes the new value at once.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
    async fn put_tenant_secrets(
        &self,
        tenant: &TenantId,
        secrets: &TenantSecrets,
    ) -> Result<(), SecretsError> {
        let name = self.secret_name(tenant);
        let document = serde_json::to_string(&secrets.to_document())
            .map_err(|_| SecretsError::Unavailable("cannot render the secret document".into()))?;
        let unavailable = |call: &str, detail: String| {
            SecretsError::Unavailable(format!("Secrets Manager {call} for {name}: {detail}"))
        };
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&document)
            .send()
            .await;
        match put {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                let created = self
                    .client
                    .create_secret()
                    .name(&name)
                    .description("psa-bridge tenant credentials")
                    .secret_string(&document)
                    .send()
                    .await;
                match created {
                    Ok(_) => tracing::info!("tenant secret created"),
                    // Another writer created it between the two calls: ours
                    // is the newer value, so it goes on top.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_exists_exception()) =>
                    {
                        self.client
                            .put_secret_value()
                            .secret_id(&name)
                            .secret_string(&document)
                            .send()
                            .await
                            .map_err(|e| {
                                unavailable("PutSecretValue", DisplayErrorContext(&e).to_string())
                            })?;
                    }
                    Err(e) => {
                        return Err(unavailable(
                            "CreateSecret",
                            DisplayErrorContext(&e).to_string(),
                        ))
                    }
                }
            }
            Err(e) => {
                return Err(unavailable(
                    "PutSecretValue",
                    DisplayErrorContext(&e).to_string(),
                ))
            }
        }
        self.cache.keep(tenant, Instant::now(), secrets);
        tracing::info!("tenant secrets written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_secrets_are_served_until_their_ttl_runs_out() {
        let secrets: TenantSecrets = serde_json::from_value(serde_json::json!({
            "zendesk_email": "bridge@acme.example",
            "zendesk_api_token": "token",
            "zendesk_webhook_secret": "hook",
            "autotask_username": "api@acme.example",
            "autotask_secret": "secret",
            "autotask_integration_code": "CODE",
            "autotask_callout_username": "callout",
            "autotask_callout_password": "callout-pw",
            "autotask_webhook_secret": "at-hook"
        }))
        .unwrap();
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let ttl = Duration::from_secs(300);
        let cache = Cache::new(ttl);
        let fetched = Instant::now();
        assert!(cache.fresh(&acme, fetched).is_none(), "nothing fetched yet");
        cache.keep(&acme, fetched, &secrets);
        let served = cache.fresh(&acme, fetched + ttl - Duration::from_millis(1));
        assert_eq!(
            served.map(|s| s.zendesk_email),
            Some("bridge@acme.example".to_owned()),
            "served from memory within the TTL"
        );
        assert!(
            cache.fresh(&acme, fetched + ttl).is_none(),
            "fetched again once the TTL ran out"
        );
        assert!(cache.fresh(&globex, fetched).is_none(), "per tenant");
    }

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
