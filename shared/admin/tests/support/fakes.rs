//! Fakes of the tenant ports: a Zendesk/Autotask/ConnectWise that accept
//! one set of credentials, a secrets store in memory, and a running bridge
//! that records what it was asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use admin::{AssetOperations, DeadLetter, Operations, OpsError};
use async_trait::async_trait;
use bridge::config::{Secret, TenantSecrets};
use bridge::connectors::setup::checks;
use bridge::error::SecretsError;
use bridge::model::{PicklistValue, TenantId};
use bridge::ports::Secrets;
use bridge::setup::{
    AutotaskAccess, AutotaskVerified, CheckFailure, ConnectWiseAccess, ConnectWiseVerified,
    HookRegistration, NamedId, PsaChoices, RegisteredHook, SecretsWriter, TenantSetup,
    ZendeskAccess, ZendeskAuth, ZendeskVerified,
};

pub const ZD_TOKEN: &str = "zd-token-good-4821";
pub const AT_SECRET: &str = "at-secret-good-7391";
pub const AT_CODE: &str = "at-code-good-5550";
pub const OAUTH_TOKEN: &str = "oauth-access-token-6612";
pub const OAUTH_CLIENT_SECRET: &str = "oauth-client-secret-3307";
/// The signing secret the fake Zendesk makes for a registered webhook.
pub const ZD_REGISTERED_SECRET: &str = "zd-registered-signing-secret-9931";
/// The fake Zendesk's webhook id.
pub const ZD_WEBHOOK_ID: &str = "01HZX3V7T9Q2M4N6P8R0S2T4V6";
/// The fake Autotask's webhook ids, as the port reports them.
pub const AT_WEBHOOK_IDS: &str = "Ticket 7 / TicketNote 8";
pub const CW_SITE: &str = "https://cw.msp.example";
pub const CW_COMPANY: &str = "acmemsp";
pub const CW_PUBLIC: &str = "cw-public-key-good-2468";
pub const CW_PRIVATE: &str = "cw-private-key-good-8842";
pub const CW_CLIENT_ID: &str = "cw-client-id-0a1b-77c3";
/// A public key whose member's security role lacks Service Desk rights.
pub const CW_PUBLIC_NO_RIGHTS: &str = "cw-public-key-no-rights-1357";
/// A site where ConnectWise does not answer (try later).
pub const CW_SITE_DOWN: &str = "https://down.msp.example";
/// Boards: the service desk (default team), the NOC (no default team, its
/// own statuses), and an inactive one.
pub const CW_BOARD_DESK: i64 = 11;
pub const CW_BOARD_NOC: i64 = 12;
pub const CW_BOARD_OLD: i64 = 13;

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

/// A ConnectWise whose board statuses a test may change.
pub struct FakeConnectWise {
    /// `(board, status id, name, active)`.
    pub statuses: Vec<(i64, i64, String, bool)>,
    /// Registered callbacks: `(url, description)`.
    pub callbacks: Vec<(String, String)>,
}

impl Default for FakeConnectWise {
    fn default() -> Self {
        let mut statuses = Vec::new();
        for (id, name) in [
            (101, "New"),
            (102, "In Progress"),
            (103, "Waiting Customer"),
            (104, "Waiting Vendor"),
            (105, "Complete"),
            (106, "Closed"),
        ] {
            statuses.push((CW_BOARD_DESK, id, name.to_owned(), true));
        }
        statuses.push((CW_BOARD_DESK, 107, "Old Status".to_owned(), false));
        for (id, name) in [
            (201, "New"),
            (202, "Investigating"),
            (203, "Escalated"),
            (204, "Resolved"),
        ] {
            statuses.push((CW_BOARD_NOC, id, name.to_owned(), true));
        }
        Self {
            statuses,
            callbacks: Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct FakeSetup {
    pub oauth_calls: Mutex<Vec<(String, String, String)>>,
    pub connectwise: Mutex<FakeConnectWise>,
    pub zendesk_webhooks: Mutex<FakeZendeskWebhooks>,
    pub autotask_webhooks: Mutex<FakeAutotaskWebhooks>,
}

/// The fake Autotask's webhook entities.
#[derive(Default)]
pub struct FakeAutotaskWebhooks {
    /// Registrations asked for: `(endpoint, name)`.
    pub registered: Vec<(String, String)>,
    /// The secret keys handed out, newest last (each registration makes a
    /// new one, as the real port does).
    pub keys: Vec<String>,
    /// When set, registration fails with this (e.g. no permission).
    pub refuse: Option<CheckFailure>,
}

/// The fake Zendesk's Webhooks API.
#[derive(Default)]
pub struct FakeZendeskWebhooks {
    /// Registrations asked for: `(endpoint, name)`.
    pub registered: Vec<(String, String)>,
    /// When set, registration fails with this (e.g. the user is no admin).
    pub refuse: Option<CheckFailure>,
}

impl FakeSetup {
    /// ConnectWise's checks in the order the HTTP setup makes them.
    fn connectwise_access(&self, access: &ConnectWiseAccess) -> Result<(), CheckFailure> {
        if access.site == CW_SITE_DOWN {
            return Err(CheckFailure {
                retryable: true,
                ..fail(
                    checks::CONNECTWISE_SITE,
                    "ConnectWise did not answer just now; try again in a minute",
                )
            });
        }
        if access.site != CW_SITE || access.company_id != CW_COMPANY {
            return Err(fail(
                checks::CONNECTWISE_COMPANY,
                "ConnectWise knows no such company at this site; enter the company id as on \
                 the sign-in page",
            ));
        }
        if access.client_id.is_empty() {
            return Err(fail(
                checks::CONNECTWISE_CLIENT_ID,
                "enter the integration's clientId",
            ));
        }
        if access.public_key == CW_PUBLIC_NO_RIGHTS {
            return Err(fail(
                checks::CONNECTWISE_PERMISSIONS,
                "the API member's security role lacks Service Desk rights (403)",
            ));
        }
        if access.public_key != CW_PUBLIC
            || access.private_key.expose() != CW_PRIVATE
            || access.client_id != CW_CLIENT_ID
        {
            return Err(fail(
                checks::CONNECTWISE_KEYS,
                "ConnectWise refused the API member's public/private key pair (401)",
            ));
        }
        Ok(())
    }

    fn boards() -> Vec<(i64, &'static str, bool)> {
        vec![
            (CW_BOARD_DESK, "Service Desk", true),
            (CW_BOARD_NOC, "NOC", true),
            (CW_BOARD_OLD, "Old Board", false),
        ]
    }
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
    async fn verify_connectwise(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<ConnectWiseVerified, CheckFailure> {
        self.connectwise_access(access)?;
        Ok(ConnectWiseVerified {
            api_base_url: format!("{CW_SITE}/v2025_1/apis/3.0/"),
            codebase: "v2025_1/".into(),
            version: "v2025.1".into(),
        })
    }

    async fn connectwise_boards(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        self.connectwise_access(access)?;
        Ok(Self::boards()
            .into_iter()
            .filter(|(_, _, active)| *active)
            .map(|(id, name, _)| NamedId {
                id,
                name: name.into(),
            })
            .collect())
    }

    async fn connectwise_board_choices(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
    ) -> Result<PsaChoices, CheckFailure> {
        self.connectwise_access(access)?;
        if !Self::boards().iter().any(|(id, _, _)| *id == board_id) {
            return Err(fail(checks::CONNECTWISE_BOARD, "no such board"));
        }
        let cw = self.connectwise.lock().unwrap();
        Ok(PsaChoices {
            queues: Self::boards()
                .into_iter()
                .map(|(id, name, active)| PicklistValue {
                    value: id,
                    label: name.into(),
                    is_active: active,
                })
                .collect(),
            statuses: cw
                .statuses
                .iter()
                .filter(|(board, ..)| *board == board_id)
                .map(|(_, id, name, active)| PicklistValue {
                    value: *id,
                    label: name.clone(),
                    is_active: *active,
                })
                .collect(),
            priorities: pick(&[
                (1, "Priority 1 - Emergency Response"),
                (2, "Priority 2 - Quick Response"),
                (3, "Priority 3 - Normal Response"),
                (4, "Priority 4 - Scheduled Maintenance"),
            ]),
            note_publish: Vec::new(),
        })
    }

    async fn connectwise_board_checks(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
        status_names: &[String],
    ) -> Vec<CheckFailure> {
        if let Err(f) = self.connectwise_access(access) {
            return vec![f];
        }
        let mut failures = Vec::new();
        if board_id == CW_BOARD_NOC {
            failures.push(fail(
                checks::CONNECTWISE_BOARD_TEAM,
                "the board \"NOC\" has no default team; mark one as default",
            ));
        }
        let cw = self.connectwise.lock().unwrap();
        let missing: Vec<&String> = status_names
            .iter()
            .filter(|name| {
                !cw.statuses
                    .iter()
                    .any(|(b, _, n, active)| *b == board_id && *active && n == *name)
            })
            .collect();
        if !missing.is_empty() {
            failures.push(fail(
                checks::CONNECTWISE_BOARD_STATUSES,
                &format!("the board has no active status named {missing:?}"),
            ));
        }
        failures
    }

    async fn connectwise_companies(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        self.connectwise_access(access)?;
        Ok(vec![
            NamedId {
                id: 700,
                name: "Acme Corp".into(),
            },
            NamedId {
                id: 701,
                name: "Globex".into(),
            },
        ])
    }

    async fn register_zendesk_webhook(
        &self,
        access: &ZendeskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure> {
        self.verify_zendesk(access).await?;
        let mut hooks = self.zendesk_webhooks.lock().unwrap();
        if let Some(refused) = &hooks.refuse {
            return Err(refused.clone());
        }
        let again = hooks.registered.iter().any(|(e, _)| e == endpoint);
        hooks
            .registered
            .push((endpoint.to_owned(), name.to_owned()));
        Ok(HookRegistration {
            hook: RegisteredHook {
                id: ZD_WEBHOOK_ID.into(),
                signing_secret: Secret::new(ZD_REGISTERED_SECRET),
            },
            summary: if again {
                format!("Zendesk: webhook {ZD_WEBHOOK_ID} was already registered.")
            } else {
                format!("Zendesk: created webhook {ZD_WEBHOOK_ID}.")
            },
        })
    }

    async fn register_autotask_webhooks(
        &self,
        access: &AutotaskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure> {
        self.verify_autotask(access).await?;
        let mut hooks = self.autotask_webhooks.lock().unwrap();
        if let Some(refused) = &hooks.refuse {
            return Err(refused.clone());
        }
        let again = hooks.registered.iter().any(|(e, _)| e == endpoint);
        hooks
            .registered
            .push((endpoint.to_owned(), name.to_owned()));
        let key = format!("at-registered-key-{:02}-5521", hooks.keys.len() + 1);
        hooks.keys.push(key.clone());
        Ok(HookRegistration {
            hook: RegisteredHook {
                id: AT_WEBHOOK_IDS.into(),
                signing_secret: Secret::new(key),
            },
            summary: if again {
                format!(
                    "Autotask: webhooks {AT_WEBHOOK_IDS} were already registered (new secret key)."
                )
            } else {
                format!("Autotask: created webhooks {AT_WEBHOOK_IDS}.")
            },
        })
    }

    async fn register_connectwise_callback(
        &self,
        access: &ConnectWiseAccess,
        url: &str,
        description: &str,
    ) -> Result<String, CheckFailure> {
        self.connectwise_access(access)?;
        let mut cw = self.connectwise.lock().unwrap();
        let entry = (url.to_owned(), description.to_owned());
        if cw.callbacks.contains(&entry) {
            Ok("ConnectWise the ticket callback was already registered.".into())
        } else {
            cw.callbacks.push(entry);
            Ok("ConnectWise registered the ticket callback.".into())
        }
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
                    s.connectwise_public_key.as_str(),
                    s.connectwise_private_key.expose(),
                    s.connectwise_client_id.as_str(),
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

/// Asset sync on request: the setup check answers `problems`; a run with
/// problems fails as the bridge's does (nothing written), otherwise it
/// writes what a run of 4 devices with one failure leaves in the store (the
/// `ASSETRUN` item and the summary line) and answers its summary.
#[derive(Default)]
pub struct FakeAssetOps {
    pub problems: Mutex<Vec<String>>,
    pub checked: Mutex<Vec<String>>,
    pub synced: Mutex<Vec<String>>,
    pub store: Mutex<Option<Arc<dyn bridge::ports::Store>>>,
}

impl FakeAssetOps {
    pub fn called(&self) -> bool {
        !self.checked.lock().unwrap().is_empty() || !self.synced.lock().unwrap().is_empty()
    }
}

#[async_trait]
impl AssetOperations for FakeAssetOps {
    async fn check_assets(&self, tenant: &TenantId) -> Result<Vec<String>, OpsError> {
        self.checked.lock().unwrap().push(tenant.to_string());
        Ok(self.problems.lock().unwrap().clone())
    }

    async fn sync_assets(
        &self,
        tenant: &TenantId,
    ) -> Result<bridge::assets::AssetRunSummary, OpsError> {
        use bridge::assets::store::{put_run_state, AssetRunState, RunTotals};
        self.synced.lock().unwrap().push(tenant.to_string());
        let problems = self.problems.lock().unwrap().clone();
        if !problems.is_empty() {
            return Err(OpsError::SetupIncomplete { problems });
        }
        let summary = bridge::assets::AssetRunSummary {
            created: 2,
            updated: 1,
            unchanged: 0,
            deactivated: 0,
            failed: vec![(
                "dev-9".into(),
                "no company: the device has neither a company_hint nor a cluster_id".into(),
            )],
            finished: true,
            ..Default::default()
        };
        let store = self
            .store
            .lock()
            .unwrap()
            .clone()
            .expect("the fake's store");
        let now = chrono::Utc::now();
        let state = AssetRunState {
            run_id: "run-1".into(),
            started_at: now,
            lease_until: now,
            finished: true,
            finished_at: Some(now),
            totals: RunTotals {
                created: 2,
                updated: 1,
                deactivated: 0,
                unchanged: 0,
                failed: 1,
                failures: summary.failed.clone(),
            },
            scheduled_on: None,
        };
        put_run_state(
            store.as_ref(),
            tenant,
            &state,
            bridge::ports::Condition::Always,
        )
        .await
        .map_err(|e| OpsError::Failed {
            message: e.to_string(),
            retryable: true,
        })?;
        let entry = bridge::repo::SyncLogEntry {
            at: now,
            level: bridge::repo::LogLevel::Error,
            ticket: None,
            step: bridge::assets::run::STEP.to_owned(),
            message: format!("Asset sync: {summary}"),
            retryable: false,
        };
        bridge::repo::Repo::new(store.as_ref())
            .log(tenant, &entry)
            .await
            .map_err(|e| OpsError::Failed {
                message: e.to_string(),
                retryable: true,
            })?;
        Ok(summary)
    }
}
