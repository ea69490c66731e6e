//! Typed access to the single-table store, with the keys of DESIGN.md. The
//! adapters only move items; what an item means lives here, once.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::TenantConfig;
use crate::error::StoreError;
use crate::model::{Side, TenantId};
use crate::ports::{Condition, Item, Store};

/// How long sync log entries are kept (DynamoDB TTL).
pub const LOG_RETENTION_DAYS: i64 = 30;

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}
pub const CONFIG_SK: &str = "CONFIG";
pub fn desk_link_sk(desk_ticket_id: u64) -> String {
    format!("LINK#Z#{desk_ticket_id}")
}
pub fn psa_link_sk(psa_ticket_id: i64) -> String {
    format!("LINK#P#{psa_ticket_id}")
}
pub const LOG_PREFIX: &str = "LOG#";
/// `CURSOR#<system>`: where the reconciliation sweep of one system stands.
pub fn cursor_sk(system: &str) -> String {
    format!("CURSOR#{system}")
}
/// `BUDGET#AUTOTASK#RATE`: the tenant's Autotask token bucket, shared by every
/// process using the store.
pub const AUTOTASK_RATE_SK: &str = "BUDGET#AUTOTASK#RATE";
/// Every item of a tenant's Autotask budget (rate bucket and slots).
pub const AUTOTASK_BUDGET_SK_PREFIX: &str = "BUDGET#AUTOTASK#";
/// Prefix of `BUDGET#AUTOTASK#SLOT#<n>`, one of the tenant's Autotask
/// concurrency slots (n below the cap).
pub const AUTOTASK_SLOT_SK_PREFIX: &str = "BUDGET#AUTOTASK#SLOT#";
pub fn autotask_slot_sk(slot: usize) -> String {
    format!("{AUTOTASK_SLOT_SK_PREFIX}{slot}")
}

/// A value read from the store with the version its next write must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

impl<T> Versioned<T> {
    /// The condition under which this value may be overwritten.
    pub fn condition(&self) -> Condition {
        Condition::VersionIs(self.version)
    }
}

/// An item whose version is known even when its body does not decode
/// (`Err`), so that a broken item can still be overwritten under optimistic
/// locking instead of stopping whoever reads it.
pub type Lenient<T> = Versioned<Result<T, StoreError>>;

/// Where a link stands. `Creating` is the claim written before the PSA ticket
/// is created, so two workers never both create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    Creating { claimed_at: DateTime<Utc> },
    Linked { psa_ticket_id: i64 },
}

/// The Zendesk values the bridge last acted on. A field is pushed to the PSA
/// only when its Zendesk value moves away from these, so a technician's change
/// in the PSA is never reverted by an unrelated Zendesk update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenDeskValues {
    pub subject: String,
    pub priority: Option<String>,
    pub status: String,
    pub cluster_id: Option<String>,
}

/// The PSA values the bridge last wrote or took to the desk. A field is taken
/// from the PSA only when its PSA value moves away from these, so the
/// bridge's own writes are never echoed back. `None`: not known yet (a link
/// from before the reverse direction existed); the next run records the
/// current value without acting on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenPsaValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
}

impl SeenPsaValues {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One mirrored comment/note pair. Short field names: a ticket with thousands
/// of comments must still fit in one 400 KB item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentLink {
    #[serde(rename = "d")]
    pub desk_comment_id: u64,
    #[serde(rename = "p")]
    pub psa_note_id: i64,
    /// Where the text was written first; the other one is the bridge's copy.
    #[serde(rename = "o")]
    pub origin: Side,
}

/// The run working a ticket pair, and until when. Only the holder writes to
/// either system for this pair; a holder that dies simply lets it run out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairLease {
    /// Random id of the run (not of the process: two runs in one process are
    /// two holders).
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// A write to Zendesk or the PSA that a run announced before making it. While
/// it stands here its outcome is unknown: the run may have died before, during
/// or after the call. The next run resolves it by looking for the marked copy
/// on the other side (comments and notes) or by writing again what is still
/// different (fields, the cross reference), never by trusting either guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "w", rename_all = "snake_case")]
pub enum ClaimedWrite {
    /// The PSA ticket itself (with `LinkState::Creating`).
    Ticket,
    /// A PSA note mirroring this desk comment.
    Note { desk_comment_id: u64 },
    /// A desk comment mirroring this PSA note.
    Comment { psa_note_id: i64 },
    /// A patch of the PSA ticket's mapped fields.
    Fields,
    /// A patch of the desk ticket's fields taken from the PSA.
    DeskFields,
    /// The PSA reference on the desk ticket.
    ExternalRef,
}

/// `TENANT#t / LINK#Z#<zendesk id>`: everything the bridge knows about one
/// ticket pair. Its version is also the pair's fencing token: every claim and
/// every save names the version the run last wrote, so a run that was
/// overtaken (its lease ran out and another run took the pair) fails its next
/// claim before it can write anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLink {
    pub desk_ticket_id: u64,
    #[serde(flatten)]
    pub state: LinkState,
    #[serde(default)]
    pub psa_ticket_number: Option<String>,
    #[serde(default)]
    pub seen: SeenDeskValues,
    #[serde(default, skip_serializing_if = "SeenPsaValues::is_empty")]
    pub seen_psa: SeenPsaValues,
    #[serde(default)]
    pub comments: Vec<CommentLink>,
    #[serde(default)]
    pub synced_at: Option<DateTime<Utc>>,
    /// The run that holds the pair, while one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<PairLease>,
    /// Writes claimed and not yet recorded (see [`ClaimedWrite`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimedWrite>,
}

impl TicketLink {
    /// A pair the bridge has not linked or claimed yet.
    pub fn unclaimed(desk_ticket_id: u64, now: DateTime<Utc>) -> Self {
        Self {
            desk_ticket_id,
            state: LinkState::Creating { claimed_at: now },
            psa_ticket_number: None,
            seen: SeenDeskValues::default(),
            seen_psa: SeenPsaValues::default(),
            comments: Vec::new(),
            synced_at: None,
            lease: None,
            claims: Vec::new(),
        }
    }

    /// The lease of another run that is still running at `now`, if any. A
    /// claim made before leases existed (a `Creating` link without one) counts
    /// as leased for one lease length from its claim.
    pub fn live_lease_of_other(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_length: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        let until = match (&self.lease, &self.state) {
            (Some(lease), _) if lease.holder == holder => return None,
            (Some(lease), _) => lease.until,
            // Written before leases existed: its create may still be running.
            (None, LinkState::Creating { claimed_at }) if self.claims.is_empty() => {
                *claimed_at + lease_length
            }
            (None, _) => return None,
        };
        (until > now).then_some(until)
    }

    pub fn psa_ticket_id(&self) -> Option<i64> {
        match self.state {
            LinkState::Linked { psa_ticket_id } => Some(psa_ticket_id),
            LinkState::Creating { .. } => None,
        }
    }
}

/// `TENANT#t / LINK#P#<psa id>`: reverse lookup for PSA-side events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaLink {
    pub desk_ticket_id: u64,
}

/// `TENANT#t / BUDGET#AUTOTASK#RATE`: the tenant's shared Autotask token
/// bucket (see `connectors::budget::ledger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutotaskRate {
    /// Unspent credit, in microseconds of the sustained rate.
    pub credit_us: u64,
    /// When `credit_us` was last brought up to date (Unix microseconds).
    pub updated_at_us: i64,
}

/// `TENANT#t / BUDGET#AUTOTASK#SLOT#<n>`: one Autotask concurrency slot of
/// the tenant. Slot items never expire, so their versions only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutotaskSlot {
    /// Until when the slot is held (Unix microseconds); in the past: free.
    pub held_until_us: i64,
    /// Random id of the taking attempt (0: free), so that an attempt
    /// cancelled during its write can tell whether the write landed.
    #[serde(default)]
    pub holder: u64,
}

impl AutotaskSlot {
    /// A slot nobody holds.
    pub const FREE: AutotaskSlot = AutotaskSlot {
        held_until_us: 0,
        holder: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Info,
    Error,
}

/// `TENANT#t / LOG#<time>#<id>`: one line of the tenant's sync log, written
/// in words an MSP admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncLogEntry {
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    /// `zendesk:123` or `autotask:456`.
    pub ticket: Option<String>,
    /// Which step: `create_psa_ticket`, `resolve_company`, `mirror_comment`...
    pub step: String,
    pub message: String,
    /// Whether the failure heals by itself (it will be retried).
    #[serde(default)]
    pub retryable: bool,
}

/// Typed repository over any `Store` adapter.
#[derive(Clone, Copy)]
pub struct Repo<'a> {
    store: &'a dyn Store,
}

impl<'a> Repo<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.store.get(pk, sk).await? {
            Some(item) => Ok(Some(Versioned {
                value: decode(&item)?,
                version: item.version,
            })),
            None => Ok(None),
        }
    }

    /// Like `get_json`, but a body that does not decode is handed back as an
    /// error next to its version instead of failing the read.
    async fn get_lenient<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Lenient<T>>, StoreError> {
        Ok(self.store.get(pk, sk).await?.map(|item| Versioned {
            value: decode(&item),
            version: item.version,
        }))
    }

    async fn put_json<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        value: &T,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            message: e.to_string(),
        })?;
        self.store.put(pk, sk, &body, condition, expires_at).await
    }

    pub async fn tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<TenantConfig>>, StoreError> {
        self.get_json(&tenant_pk(tenant), CONFIG_SK).await
    }

    pub async fn put_tenant(
        &self,
        config: &TenantConfig,
        condition: Condition,
    ) -> Result<u64, StoreError> {
        self.put_json(&tenant_pk(&config.id), CONFIG_SK, config, condition, None)
            .await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantConfig>, StoreError> {
        let items = self.store.scan_sort_key(CONFIG_SK).await?;
        items.iter().map(decode).collect()
    }

    pub async fn desk_link(
        &self,
        tenant: &TenantId,
        desk_ticket_id: u64,
    ) -> Result<Option<Versioned<TicketLink>>, StoreError> {
        self.get_json(&tenant_pk(tenant), &desk_link_sk(desk_ticket_id))
            .await
    }

    pub async fn put_desk_link(
        &self,
        tenant: &TenantId,
        link: &TicketLink,
        condition: Condition,
    ) -> Result<u64, StoreError> {
        self.put_json(
            &tenant_pk(tenant),
            &desk_link_sk(link.desk_ticket_id),
            link,
            condition,
            None,
        )
        .await
    }

    pub async fn psa_link(
        &self,
        tenant: &TenantId,
        psa_ticket_id: i64,
    ) -> Result<Option<PsaLink>, StoreError> {
        Ok(self
            .get_json(&tenant_pk(tenant), &psa_link_sk(psa_ticket_id))
            .await?
            .map(|v: Versioned<PsaLink>| v.value))
    }

    pub async fn put_psa_link(
        &self,
        tenant: &TenantId,
        psa_ticket_id: i64,
        link: PsaLink,
    ) -> Result<(), StoreError> {
        self.put_json(
            &tenant_pk(tenant),
            &psa_link_sk(psa_ticket_id),
            &link,
            Condition::Always,
            None,
        )
        .await
        .map(drop)
    }

    pub async fn log(&self, tenant: &TenantId, entry: &SyncLogEntry) -> Result<(), StoreError> {
        let sk = format!(
            "{LOG_PREFIX}{}#{}",
            entry.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        let expires = entry.at.timestamp() + LOG_RETENTION_DAYS * 24 * 3600;
        self.put_json(
            &tenant_pk(tenant),
            &sk,
            entry,
            Condition::MustNotExist,
            Some(expires),
        )
        .await
        .map(drop)
    }

    /// The sweep position of `system` (`zendesk`, `autotask`), with its version.
    pub async fn cursor<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        system: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        self.get_json(&tenant_pk(tenant), &cursor_sk(system)).await
    }

    /// Saves a sweep position. With the version it was read at (or
    /// `MustNotExist`), a concurrent sweep that moved further is never undone.
    pub async fn put_cursor<T: Serialize>(
        &self,
        tenant: &TenantId,
        system: &str,
        value: &T,
        condition: Condition,
    ) -> Result<u64, StoreError> {
        self.put_json(
            &tenant_pk(tenant),
            &cursor_sk(system),
            value,
            condition,
            None,
        )
        .await
    }

    /// The tenant's shared Autotask token bucket, if it was ever written.
    pub async fn autotask_rate(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Lenient<AutotaskRate>>, StoreError> {
        self.get_lenient(&tenant_pk(tenant), AUTOTASK_RATE_SK).await
    }

    pub async fn put_autotask_rate(
        &self,
        tenant: &TenantId,
        rate: &AutotaskRate,
        condition: Condition,
    ) -> Result<u64, StoreError> {
        self.put_json(&tenant_pk(tenant), AUTOTASK_RATE_SK, rate, condition, None)
            .await
    }

    /// Autotask concurrency slot `slot` of the tenant, if it was ever written.
    pub async fn autotask_slot(
        &self,
        tenant: &TenantId,
        slot: usize,
    ) -> Result<Option<Lenient<AutotaskSlot>>, StoreError> {
        self.get_lenient(&tenant_pk(tenant), &autotask_slot_sk(slot))
            .await
    }

    pub async fn put_autotask_slot(
        &self,
        tenant: &TenantId,
        slot: usize,
        value: &AutotaskSlot,
        condition: Condition,
    ) -> Result<u64, StoreError> {
        self.put_json(
            &tenant_pk(tenant),
            &autotask_slot_sk(slot),
            value,
            condition,
            None,
        )
        .await
    }

    /// Newest entries first.
    pub async fn log_entries(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<SyncLogEntry>, StoreError> {
        let items = self
            .store
            .query(&tenant_pk(tenant), LOG_PREFIX, true, limit)
            .await?;
        items.iter().map(decode).collect()
    }
}

fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&item.body).map_err(|e| StoreError::Corrupt {
        pk: item.pk.clone(),
        sk: item.sk.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::embedded::SqliteStore;

    #[test]
    fn autotask_budget_items_keep_their_keys_and_shapes() {
        assert_eq!(AUTOTASK_RATE_SK, "BUDGET#AUTOTASK#RATE");
        assert_eq!(autotask_slot_sk(3), "BUDGET#AUTOTASK#SLOT#3");
        let rate = AutotaskRate {
            credit_us: 5,
            updated_at_us: -1,
        };
        assert_eq!(
            serde_json::to_string(&rate).unwrap(),
            r#"{"credit_us":5,"updated_at_us":-1}"#
        );
        assert_eq!(
            serde_json::to_string(&AutotaskSlot::FREE).unwrap(),
            r#"{"held_until_us":0,"holder":0}"#
        );
        let old: AutotaskSlot = serde_json::from_str(r#"{"held_until_us":7}"#).unwrap();
        assert_eq!(old.holder, 0);
    }

    #[tokio::test]
    async fn broken_budget_items_read_with_their_version() {
        let store = SqliteStore::in_memory().unwrap();
        let repo = Repo::new(&store);
        let tenant = TenantId::parse("acme").unwrap();
        assert!(repo.autotask_rate(&tenant).await.unwrap().is_none());
        let version = store
            .put(
                &tenant_pk(&tenant),
                &autotask_slot_sk(1),
                "not json",
                Condition::MustNotExist,
                None,
            )
            .await
            .unwrap();
        let read = repo.autotask_slot(&tenant, 1).await.unwrap().unwrap();
        assert_eq!(read.version, version);
        assert!(matches!(read.value, Err(StoreError::Corrupt { .. })));
        // It can be overwritten under its version, and then reads back.
        let held = AutotaskSlot {
            held_until_us: 9,
            holder: 3,
        };
        repo.put_autotask_slot(&tenant, 1, &held, read.condition())
            .await
            .unwrap();
        let read = repo.autotask_slot(&tenant, 1).await.unwrap().unwrap();
        assert_eq!(read.value.unwrap(), held);
    }
}
