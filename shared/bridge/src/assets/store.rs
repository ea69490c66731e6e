//! What asset sync keeps in the single-table store (DESIGN.md "Storage"):
//!
//! | PK | SK | holds |
//! |---|---|---|
//! | `TENANT#t` | `DEVICE#<inventory id>` | [`DeviceRecord`]: the last pushed values, the CI link (`unlinked`, `creating` = a claimed create, `linked` + CI id) and the CI values last written |
//! | `TENANT#t` | `ASSETRUN` | [`AssetRunState`]: the run in progress or the last one (lease, finished flag, totals so far, day of the last scheduled run) |
//! | `TENANT#t` | `ASSETRUN#<start time>` | [`AssetRunState`] of a finished run (history, TTL [`RUN_HISTORY_DAYS`]) |
//!
//! Every write is conditional on the version read, so a push and a run that
//! touch the same device at once never undo each other: the loser re-reads
//! and applies its own change again ([`update_device`]). A device record is
//! at most two copies of about 20 short fields (see
//! `device::MAX_FIELD_CHARS`), far below the 400 KB item limit; the run state
//! keeps at most [`MAX_STORED_FAILURES`] failure reasons for the same reason.

use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::device::Device;
use super::ports::CiFields;
use crate::error::StoreError;
use crate::model::TenantId;
use crate::ports::{Condition, Item, Store};
use crate::repo::{tenant_pk, Versioned};

pub const DEVICE_PREFIX: &str = "DEVICE#";
pub const ASSET_RUN_SK: &str = "ASSETRUN";
pub const ASSET_RUN_HISTORY_PREFIX: &str = "ASSETRUN#";
/// How long finished runs are kept in the history.
pub const RUN_HISTORY_DAYS: i64 = 400;
/// Failure reasons kept in a run state item (the count is always exact).
pub const MAX_STORED_FAILURES: usize = 100;
/// Longest failure reason kept in an item (PSA error texts can be long).
pub const MAX_REASON_CHARS: usize = 300;
/// Device writes of one push in flight at once: a push of a few thousand
/// devices must answer within the HTTP API's 30 s.
const PUSH_CONCURRENCY: usize = 16;
/// Attempts of a conditional write that keeps losing to concurrent writers.
const CONFLICT_ATTEMPTS: usize = 5;

pub fn device_sk(inventory_id: &str) -> String {
    format!("{DEVICE_PREFIX}{inventory_id}")
}

/// Where a device's configuration item stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CiLink {
    /// No CI yet (and no create attempted).
    #[default]
    Unlinked,
    /// A run recorded its intent to create the CI and may have died before,
    /// during or after the call: the next run looks for it (inventory-id UDF,
    /// reference number in simple mode, then serial number) before creating
    /// again.
    Creating {
        claimed_at: DateTime<Utc>,
    },
    Linked {
        ci_id: i64,
    },
}

impl CiLink {
    pub fn ci_id(&self) -> Option<i64> {
        match self {
            CiLink::Linked { ci_id } => Some(*ci_id),
            _ => None,
        }
    }
}

/// `TENANT#t / DEVICE#<inventory id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The values last pushed or imported.
    pub device: Device,
    pub pushed_at: DateTime<Utc>,
    #[serde(default)]
    pub ci: CiLink,
    /// The CI values the bridge last wrote (or found in place when it linked
    /// an existing CI); a run writes only what differs from these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<CiFields>,
    /// The company the CI was created in (fixed after create in Autotask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<i64>,
    /// Why the last run could not write this device, until one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Counts of one run (or of an interrupted run and its resumptions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTotals {
    pub created: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// `(inventory id, reason)`, at most [`MAX_STORED_FAILURES`].
    #[serde(default)]
    pub failures: Vec<(String, String)>,
}

/// `TENANT#t / ASSETRUN` (and, once finished, a copy at `ASSETRUN#<start>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRunState {
    /// Random id of the process running it; another run waits for the lease.
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// Until when `run_id` holds the tenant's asset run; a run that dies
    /// simply lets it run out and the next one resumes.
    pub lease_until: DateTime<Utc>,
    pub finished: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub totals: RunTotals,
    /// The day (UTC) a scheduled run last started, so a schedule day runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_on: Option<NaiveDate>,
}

fn corrupt(item: &Item, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        pk: item.pk.clone(),
        sk: item.sk.clone(),
        message: message.to_string(),
    }
}

fn encode<T: Serialize>(pk: &str, sk: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        message: e.to_string(),
    })
}

/// One device record with its version; `Err` when the body does not decode
/// (reported as that device's failure, never stopping a run).
pub type StoredDevice = Versioned<Result<DeviceRecord, StoreError>>;

pub async fn device(
    store: &dyn Store,
    tenant: &TenantId,
    inventory_id: &str,
) -> Result<Option<Versioned<DeviceRecord>>, StoreError> {
    let Some(item) = store
        .get(&tenant_pk(tenant), &device_sk(inventory_id))
        .await?
    else {
        return Ok(None);
    };
    let value = serde_json::from_str(&item.body).map_err(|e| corrupt(&item, e))?;
    Ok(Some(Versioned {
        value,
        version: item.version,
    }))
}

/// Every device of the tenant with its inventory id, in inventory id order
/// (one paged query).
pub async fn devices(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Vec<(String, StoredDevice)>, StoreError> {
    let items = store
        .query(&tenant_pk(tenant), DEVICE_PREFIX, false, usize::MAX)
        .await?;
    Ok(items
        .into_iter()
        .map(|item| {
            let id = item
                .sk
                .strip_prefix(DEVICE_PREFIX)
                .unwrap_or(&item.sk)
                .to_owned();
            let value = serde_json::from_str(&item.body).map_err(|e| corrupt(&item, e));
            (
                id,
                Versioned {
                    value,
                    version: item.version,
                },
            )
        })
        .collect())
}

/// Applies `change` to the device record at `version` and writes it under
/// that version; when a concurrent writer moved it on, re-reads and applies
/// `change` to the fresh record. Returns the record written and its version.
/// `version == 0`: the record must not exist yet.
pub async fn update_device(
    store: &dyn Store,
    tenant: &TenantId,
    mut current: Versioned<DeviceRecord>,
    mut change: impl FnMut(&mut DeviceRecord),
) -> Result<Versioned<DeviceRecord>, StoreError> {
    let pk = tenant_pk(tenant);
    let sk = device_sk(&current.value.device.inventory_id);
    for _ in 0..CONFLICT_ATTEMPTS {
        let mut next = current.value.clone();
        change(&mut next);
        let condition = match current.version {
            0 => Condition::MustNotExist,
            v => Condition::VersionIs(v),
        };
        match store
            .put(&pk, &sk, &encode(&pk, &sk, &next)?, condition, None)
            .await
        {
            Ok(version) => {
                return Ok(Versioned {
                    value: next,
                    version,
                })
            }
            Err(StoreError::Conflict { .. }) => {
                current = device(store, tenant, &current.value.device.inventory_id)
                    .await?
                    .ok_or_else(|| StoreError::Conflict {
                        pk: pk.clone(),
                        sk: sk.clone(),
                    })?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict { pk, sk })
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoredCounts {
    /// New devices and devices whose values changed.
    pub stored: usize,
    /// Devices pushed with exactly the values already stored (no write).
    pub unchanged: usize,
}

/// Stores the pushed values of `devices` (already validated, one per id):
/// a device whose values did not change is not written, so an identical
/// push costs reads only. The CI link and written values are kept as they are.
pub async fn store_devices(
    store: &dyn Store,
    tenant: &TenantId,
    devices: Vec<Device>,
    now: DateTime<Utc>,
) -> Result<StoredCounts, StoreError> {
    let results: Vec<Result<bool, StoreError>> = stream::iter(devices)
        .map(|pushed| async move {
            let current = device(store, tenant, &pushed.inventory_id).await;
            let current = match current {
                Ok(Some(current)) if current.value.device == pushed => return Ok(false),
                Ok(Some(current)) => current,
                Ok(None) => Versioned {
                    value: DeviceRecord {
                        device: pushed.clone(),
                        pushed_at: now,
                        ci: CiLink::Unlinked,
                        written: None,
                        company_id: None,
                        last_error: None,
                    },
                    version: 0,
                },
                // A record that does not decode is replaced by the push
                // (losing its CI link; matching by UDF or serial finds the CI again).
                Err(StoreError::Corrupt { .. }) => {
                    let item = store
                        .get(&tenant_pk(tenant), &device_sk(&pushed.inventory_id))
                        .await?;
                    Versioned {
                        value: DeviceRecord {
                            device: pushed.clone(),
                            pushed_at: now,
                            ci: CiLink::Unlinked,
                            written: None,
                            company_id: None,
                            last_error: None,
                        },
                        version: item.map_or(0, |i| i.version),
                    }
                }
                Err(e) => return Err(e),
            };
            update_device(store, tenant, current, |record| {
                record.device = pushed.clone();
                record.pushed_at = now;
            })
            .await
            .map(|_| true)
        })
        .buffer_unordered(PUSH_CONCURRENCY)
        .collect()
        .await;
    let mut counts = StoredCounts::default();
    for result in results {
        if result? {
            counts.stored += 1;
        } else {
            counts.unchanged += 1;
        }
    }
    Ok(counts)
}

pub async fn run_state(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Option<Versioned<AssetRunState>>, StoreError> {
    let Some(item) = store.get(&tenant_pk(tenant), ASSET_RUN_SK).await? else {
        return Ok(None);
    };
    Ok(Some(Versioned {
        value: serde_json::from_str(&item.body).map_err(|e| corrupt(&item, e))?,
        version: item.version,
    }))
}

/// Writes the run state under `condition` and returns its new version.
/// Cuts `text` to `max` characters (with an ellipsis).
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The run state as stored: at most [`MAX_STORED_FAILURES`] failures with
/// reasons of at most [`MAX_REASON_CHARS`], so it stays far below 400 KB.
fn bounded(state: &AssetRunState) -> AssetRunState {
    let mut state = state.clone();
    state.totals.failures.truncate(MAX_STORED_FAILURES);
    for (_, reason) in &mut state.totals.failures {
        *reason = clip(reason, MAX_REASON_CHARS);
    }
    state
}

pub async fn put_run_state(
    store: &dyn Store,
    tenant: &TenantId,
    state: &AssetRunState,
    condition: Condition,
) -> Result<u64, StoreError> {
    let pk = tenant_pk(tenant);
    let state = bounded(state);
    store
        .put(
            &pk,
            ASSET_RUN_SK,
            &encode(&pk, ASSET_RUN_SK, &state)?,
            condition,
            None,
        )
        .await
}

/// Keeps a finished run in the history (`ASSETRUN#<start time>`).
pub async fn put_run_history(
    store: &dyn Store,
    tenant: &TenantId,
    state: &AssetRunState,
) -> Result<(), StoreError> {
    let pk = tenant_pk(tenant);
    let sk = format!(
        "{ASSET_RUN_HISTORY_PREFIX}{}",
        state.started_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    let state = bounded(state);
    let expires = state.started_at.timestamp() + RUN_HISTORY_DAYS * 24 * 3600;
    store
        .put(
            &pk,
            &sk,
            &encode(&pk, &sk, &state)?,
            Condition::Always,
            Some(expires),
        )
        .await
        .map(drop)
}

/// Finished runs, newest first.
pub async fn run_history(
    store: &dyn Store,
    tenant: &TenantId,
    limit: usize,
) -> Result<Vec<AssetRunState>, StoreError> {
    store
        .query(&tenant_pk(tenant), ASSET_RUN_HISTORY_PREFIX, true, limit)
        .await?
        .iter()
        .map(|item| serde_json::from_str(&item.body).map_err(|e| corrupt(item, e)))
        .collect()
}
