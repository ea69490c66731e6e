//! The console's own per-tenant item, `TENANT#t / ONBOARDING`: checklist
//! acknowledgements, how Zendesk and the PSA were connected, the ConnectWise
//! callback and webhook registrations (ids and times, never secrets), a pending
//! OAuth `state` (hashed), the last checks' results and the company
//! associations. Kept apart from `CONFIG` so that the engine's config stays
//! the engine's, and so that the console never rewrites the engine's item
//! for its own bookkeeping. It holds no credential.

use std::collections::BTreeMap;

use bridge::config::TenantConfig;
use bridge::error::StoreError;
use bridge::model::TenantId;
use bridge::ports::{Condition, Store};
use bridge::repo::{tenant_pk, Repo, Versioned};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AdminError, CheckView};
use crate::psa::Psa;

pub const ONBOARDING_SK: &str = "ONBOARDING";

/// An item of the checklist the admin confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZendeskMethod {
    ApiToken,
    OAuth,
}

/// The last working Zendesk sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZendeskConnection {
    pub method: ZendeskMethod,
    pub agent_email: String,
    pub is_admin: bool,
    pub verified_at: DateTime<Utc>,
}

/// The last working Autotask sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutotaskConnection {
    pub api_base_url: String,
    pub verified_at: DateTime<Utc>,
}

/// The last working ConnectWise sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectWiseConnection {
    pub api_base_url: String,
    pub codebase: String,
    #[serde(default)]
    pub version: String,
    pub verified_at: DateTime<Utc>,
}

/// The last registration of the bridge's ConnectWise callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRegistration {
    pub url: String,
    /// What ConnectWise was asked to change, in words.
    pub summary: String,
    pub at: DateTime<Utc>,
}

/// The last registration of a webhook the console made on the tenant's
/// behalf (its secret went to the secrets store, never here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRegistration {
    /// The outside system's id of the webhook.
    pub id: String,
    /// Where it posts.
    pub url: String,
    /// What was done, in words.
    pub summary: String,
    pub at: DateTime<Utc>,
}

/// An OAuth authorization under way: the SHA-256 of its `state`, so that a
/// leaked item cannot complete someone's authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOAuth {
    pub state_hash: String,
    pub expires_at: DateTime<Utc>,
    pub base_url: String,
}

/// The outcome of the last full run of checks (activation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    pub at: DateTime<Utc>,
    pub failures: Vec<CheckView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onboarding {
    pub name: String,
    pub psa: Psa,
    #[serde(default)]
    pub checklist: BTreeMap<String, Ack>,
    #[serde(default)]
    pub zendesk: Option<ZendeskConnection>,
    #[serde(default)]
    pub autotask: Option<AutotaskConnection>,
    #[serde(default)]
    pub connectwise: Option<ConnectWiseConnection>,
    #[serde(default)]
    pub callback: Option<CallbackRegistration>,
    /// The Zendesk webhook the console registered.
    #[serde(default)]
    pub zendesk_webhook: Option<WebhookRegistration>,
    /// The Autotask Ticket and TicketNote webhooks the console registered.
    #[serde(default)]
    pub autotask_webhooks: Option<WebhookRegistration>,
    #[serde(default)]
    pub oauth: Option<PendingOAuth>,
    #[serde(default)]
    pub last_checks: Option<CheckRun>,
    /// Zendesk organization id → PSA company id, as the admin confirmed
    /// them; copied into the tenant's config (`autotask.` or
    /// `connectwise.companies_by_organization`), which the sync reads.
    #[serde(default)]
    pub companies: BTreeMap<String, i64>,
    #[serde(default)]
    pub mappings_saved_at: Option<DateTime<Utc>>,
}

impl Onboarding {
    pub fn new(name: String, psa: Psa) -> Self {
        Self {
            name,
            psa,
            checklist: BTreeMap::new(),
            zendesk: None,
            autotask: None,
            connectwise: None,
            callback: None,
            zendesk_webhook: None,
            autotask_webhooks: None,
            oauth: None,
            last_checks: None,
            companies: BTreeMap::new(),
            mappings_saved_at: None,
        }
    }

    /// Whether the PSA's credentials were verified.
    pub fn psa_connected(&self) -> bool {
        match self.psa {
            Psa::Autotask => self.autotask.is_some(),
            Psa::ConnectWise => self.connectwise.is_some(),
        }
    }

    /// Whether every item of the PSA's checklist is confirmed.
    pub fn checklist_done(&self) -> bool {
        self.psa
            .checklist()
            .iter()
            .all(|item| self.checklist.contains_key(item.id))
    }
}

pub(crate) fn map_store_err(op: &'static str) -> impl Fn(StoreError) -> AdminError {
    move |e| match e {
        StoreError::Conflict { .. } => AdminError::Conflict,
        e => AdminError::store(op)(e),
    }
}

pub async fn read(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Option<Versioned<Onboarding>>, AdminError> {
    let Some(item) = store
        .get(&tenant_pk(tenant), ONBOARDING_SK)
        .await
        .map_err(map_store_err("read onboarding"))?
    else {
        return Ok(None);
    };
    let value = serde_json::from_str(&item.body).map_err(|_| AdminError::Store {
        op: "read onboarding",
        detail: "stored item unreadable",
        retryable: false,
    })?;
    Ok(Some(Versioned {
        value,
        version: item.version,
    }))
}

pub async fn write(
    store: &dyn Store,
    tenant: &TenantId,
    value: &Onboarding,
    condition: Condition,
) -> Result<u64, AdminError> {
    let body = serde_json::to_string(value).map_err(|_| AdminError::Internal("onboarding"))?;
    store
        .put(&tenant_pk(tenant), ONBOARDING_SK, &body, condition, None)
        .await
        .map_err(map_store_err("write onboarding"))
}

/// A tenant as the console sees it: the engine's config and the console's
/// item, each with the version its next write must name.
pub struct Tenant {
    pub id: TenantId,
    pub config: Versioned<TenantConfig>,
    pub onboarding: Versioned<Onboarding>,
}

impl Tenant {
    /// Both items, or `NotFound` (also for a tenant created outside the
    /// console, which gets a fresh onboarding item on first change).
    pub async fn load(store: &dyn Store, id: &TenantId) -> Result<Self, AdminError> {
        let config = Repo::new(store)
            .tenant(id)
            .await
            .map_err(map_store_err("read tenant"))?
            .ok_or(AdminError::NotFound)?;
        let onboarding = match read(store, id).await? {
            Some(o) => o,
            None => Versioned {
                value: Onboarding::new(id.to_string(), Psa::of_config(&config.value)),
                version: 0,
            },
        };
        Ok(Self {
            id: id.clone(),
            config,
            onboarding,
        })
    }

    /// Writes the console's item back under its version.
    pub async fn save_onboarding(&mut self, store: &dyn Store) -> Result<(), AdminError> {
        let condition = match self.onboarding.version {
            0 => Condition::MustNotExist,
            v => Condition::VersionIs(v),
        };
        self.onboarding.version = write(store, &self.id, &self.onboarding.value, condition).await?;
        Ok(())
    }

    /// Writes the engine's config back under its version.
    pub async fn save_config(&mut self, store: &dyn Store) -> Result<(), AdminError> {
        self.config.version = Repo::new(store)
            .put_tenant(&self.config.value, self.config.condition())
            .await
            .map_err(map_store_err("write tenant"))?;
        Ok(())
    }
}
