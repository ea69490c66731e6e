//! Fakes of the tenant ports: a Zendesk/Autotask that accept one set of
//! credentials, a secrets store in memory, and a running bridge that
//! records what it was asked.

use std::collections::HashMap;
use std::sync::Mutex;

use admin::{DeadLetter, Operations, OpsError};
use async_trait::async_trait;
use bridge::config::{Secret, TenantSecrets};
use bridge::error::SecretsError;
use bridge::model::{PicklistValue, TenantId};
use bridge::ports::Secrets;
use bridge::setup::{
    AutotaskAccess, AutotaskVerified, CheckFailure, NamedId, PsaChoices, SecretsWriter,
    TenantSetup, ZendeskAccess, ZendeskAuth, ZendeskVerified,
};

pub const ZD_TOKEN: &str = "zd-token-good-4821";
pub const AT_SECRET: &str = "at-secret-good-7391";
pub const AT_CODE: &str = "at-code-good-5550";
pub const OAUTH_TOKEN: &str = "oauth-access-token-6612";
pub const OAUTH_CLIENT_SECRET: &str = "oauth-client-secret-3307";

fn pick(values: &[(i64, &str)]) -> Vec<PicklistValue> {
    values
        .iter()
        .map(|(value, label)| PicklistValue {
            value: *value,
            label: (*label).into(),
            is_active: true,
        })
        .collect()
}

fn fail(check: &str, fix: &str) -> CheckFailure {
    CheckFailure {
        check: check.into(),
        fix: fix.into(),
        retryable: false,
    }
}

#[derive(Default)]
pub struct FakeSetup {
    pub oauth_calls: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl TenantSetup for FakeSetup {
    async fn verify_zendesk(
        &self,
        access: &ZendeskAccess,
    ) -> Result<ZendeskVerified, CheckFailure> {
        let ok = match &access.auth {
            ZendeskAuth::ApiToken { token, .. } => token.expose() == ZD_TOKEN,
            ZendeskAuth::OAuth { access_token } => access_token.expose() == OAUTH_TOKEN,
        };
        if !ok {
            return Err(fail(
                "Zendesk API token",
                "create a new API token in Zendesk Admin Center",
            ));
        }
        Ok(ZendeskVerified {
            agent_email: "agent@acme.example".into(),
            is_admin: true,
        })
    }

    async fn zendesk_oauth_token(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Secret, CheckFailure> {
        assert_eq!(client_secret.expose(), OAUTH_CLIENT_SECRET);
        self.oauth_calls.lock().unwrap().push((
            base_url.into(),
            client_id.into(),
            redirect_uri.into(),
        ));
        match code {
            "good-code" => Ok(Secret::new(OAUTH_TOKEN)),
            _ => Err(fail(
                "Zendesk authorization",
                "start Connect with OAuth again",
            )),
        }
    }

    async fn zendesk_organizations(&self, _: &ZendeskAccess) -> Result<Vec<NamedId>, CheckFailure> {
        Ok(vec![
            NamedId {
                id: 501,
                name: "Acme Corp".into(),
            },
            NamedId {
                id: 502,
                name: "Initech".into(),
            },
        ])
    }

    async fn verify_autotask(
        &self,
        access: &AutotaskAccess,
    ) -> Result<AutotaskVerified, CheckFailure> {
        if access.secret.expose() != AT_SECRET {
            return Err(fail(
                "Autotask API user secret",
                "copy the secret of the API user again (Admin > Resources)",
            ));
        }
        if access.integration_code.expose() != AT_CODE {
            return Err(fail(
                "Autotask integration code",
                "use this integration's tracking identifier",
            ));
        }
        Ok(AutotaskVerified {
            api_base_url: "https://zone.example/atservicesrest/".into(),
        })
    }

    async fn autotask_choices(&self, _: &AutotaskAccess) -> Result<PsaChoices, CheckFailure> {
        Ok(PsaChoices {
            queues: pick(&[(7, "Service Desk"), (8, "NOC")]),
            statuses: pick(&[
                (1, "New"),
                (8, "In Progress"),
                (7, "Waiting Customer"),
                (9, "Waiting Vendor"),
                (5, "Complete"),
            ]),
            priorities: pick(&[(4, "Critical"), (1, "High"), (2, "Medium"), (3, "Low")]),
            note_publish: pick(&[(1, "All Autotask Users"), (2, "Internal Project Team")]),
        })
    }

    async fn autotask_companies(&self, _: &AutotaskAccess) -> Result<Vec<NamedId>, CheckFailure> {
        Ok(vec![
            NamedId {
                id: 900,
                name: "ACME corp.".into(),
            },
            NamedId {
                id: 901,
                name: "Globex".into(),
            },
        ])
    }
}

/// The secrets store: what the console wrote, by tenant, as field values.
#[derive(Default)]
pub struct FakeSecrets {
    pub stored: Mutex<HashMap<String, TenantSecrets>>,
}

impl FakeSecrets {
    /// Every secret value stored (to scan responses and items for).
    pub fn values(&self) -> Vec<String> {
        let stored = self.stored.lock().unwrap();
        stored
            .values()
            .flat_map(|s| {
                [
                    s.zendesk_api_token.expose(),
                    s.zendesk_oauth_token.expose(),
                    s.zendesk_webhook_secret.expose(),
                    s.autotask_secret.expose(),
                    s.autotask_integration_code.expose(),
                    s.autotask_callout_password.expose(),
                    s.autotask_webhook_secret.expose(),
                ]
                .map(str::to_owned)
            })
            .filter(|v| !v.is_empty())
            .collect()
    }
}

#[async_trait]
impl Secrets for FakeSecrets {
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError> {
        self.stored
            .lock()
            .unwrap()
            .get(tenant.as_str())
            .cloned()
            .ok_or_else(|| SecretsError::Missing(tenant.to_string()))
    }
}

#[async_trait]
impl SecretsWriter for FakeSecrets {
    async fn put_tenant_secrets(
        &self,
        tenant: &TenantId,
        secrets: &TenantSecrets,
    ) -> Result<(), SecretsError> {
        self.stored
            .lock()
            .unwrap()
            .insert(tenant.to_string(), secrets.clone());
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeOps {
    pub swept: Mutex<Vec<String>>,
    pub replayed: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Operations for FakeOps {
    async fn sync_now(&self, tenant: &TenantId) -> Result<String, OpsError> {
        self.swept.lock().unwrap().push(tenant.to_string());
        Ok("2 changes queued".into())
    }

    async fn dead_letters(&self, tenant: &TenantId) -> Result<Vec<DeadLetter>, OpsError> {
        Ok(vec![DeadLetter {
            id: format!("{tenant}-m1"),
            ticket: "zendesk:42".into(),
            reason: "no status mapping for \"escalated\"".into(),
            at: chrono::Utc::now(),
        }])
    }

    async fn replay(&self, tenant: &TenantId, id: &str) -> Result<(), OpsError> {
        if id != format!("{tenant}-m1") {
            return Err(OpsError::NotFound);
        }
        self.replayed
            .lock()
            .unwrap()
            .push((tenant.to_string(), id.into()));
        Ok(())
    }
}
