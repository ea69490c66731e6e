//! An asset sync run: every device whose pushed values differ from what was
//! last written to its configuration item is created, patched (only the
//! changed fields) or (de)activated; nothing is ever deleted.
//!
//! Why it is shaped like this:
//! - **Calls scale with changes.** What must be written is decided from the
//!   store alone (pushed values vs. values last written), so a run over an
//!   unchanged fleet makes no PSA call at all, not even the setup check.
//! - **No duplicates.** A create is claimed in the device record (`creating`)
//!   before `create_ci`; a device without a stored link (new, or claimed by a
//!   run that died) is first looked up by the inventory-id UDF, then (simple
//!   mode, reference number = inventory id) by its reference number, then by
//!   its serial number, and only then created.
//! - **Budget.** The PSA connector fails a call at once with a retryable
//!   `RateLimited` when the tenant's budget is spent (or the PSA answered
//!   429). A run is not a queued job that can come back later, so it pauses
//!   for the `retry_after` the refusal names and tries the same device again,
//!   as long as the pause is short ([`AssetRunOptions::budget_pause`]) and
//!   ends before the run's deadline: a first load of thousands of devices
//!   then proceeds at the budget's rate in one run instead of stopping at
//!   each refusal, and a small burst no longer stalls a run behind its setup
//!   calls. Otherwise the run stops, keeps what it did (every device record
//!   is saved as it goes) and the next run resumes (every 5 minutes on the
//!   schedule). A deadline (a Lambda's remaining time) stops it the same way.
//! - **One run per tenant.** The `ASSETRUN` item is a lease; a second run
//!   waits for it (`Busy`, retryable) instead of doubling the calls.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tracing::{info, warn, Instrument};

use super::device::Device;
use super::ports::{AssetPsa, CiFields, CiPatch, NewCi, PsaCi};
use super::store::{self, AssetRunState, CiLink, DeviceRecord, RunTotals};
use crate::config::{AssetMode, AssetSettings, ReferenceNumberSource, TenantConfig};
use crate::error::{ApiError, StoreError, SyncError};
use crate::model::TenantId;
use crate::ports::{Clock, Condition, Psa, Store};
use crate::repo::{LogLevel, Repo, SyncLogEntry, Versioned};

/// Sync-log step of asset runs.
pub const STEP: &str = "asset_sync";
/// How long a run holds the tenant's asset lease before renewing it.
pub const DEFAULT_LEASE: Duration = Duration::minutes(15);
/// Failed devices written to the sync log one by one per run; the rest are
/// counted in the summary line (a broken setting must not flood the log).
const MAX_LOGGED_FAILURES: usize = 50;

/// How a run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRunOptions {
    /// Start no PSA write after this (a Lambda's remaining time); the run
    /// stops unfinished and the next one resumes.
    pub deadline: Option<DateTime<Utc>>,
    /// Length of the tenant's asset run lease.
    pub lease: Duration,
    /// A scheduled run: records today as the tenant's last scheduled day.
    pub scheduled: bool,
    /// The longest pause the run takes when the budget (or the PSA's 429)
    /// refuses a call, before trying the same device again; a refusal that
    /// asks for longer, or a pause that would end past `deadline`, stops
    /// the run instead. Zero: stop at the first refusal.
    pub budget_pause: std::time::Duration,
}

/// [`AssetRunOptions::budget_pause`] by default: a spent token bucket names
/// the time to its next token (well under a second at Autotask's rates),
/// a 429 its `Retry-After`; a PSA that wants minutes is better left to the
/// next scheduled run.
pub const DEFAULT_BUDGET_PAUSE: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for AssetRunOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            lease: DEFAULT_LEASE,
            scheduled: false,
            budget_pause: DEFAULT_BUDGET_PAUSE,
        }
    }
}

/// What one run did. `finished` is false when it stopped early (rate limit,
/// deadline); the next run resumes with the devices still to write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AssetRunSummary {
    pub created: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub unchanged: usize,
    /// `(inventory id, reason)` of each device that could not be written.
    pub failed: Vec<(String, String)>,
    pub finished: bool,
    /// Why the run stopped early, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Devices still to write when it stopped early.
    pub remaining: usize,
    /// Whether it continued a run that had stopped early.
    pub resumed: bool,
    /// Times it paused for the PSA budget and went on.
    pub paused: usize,
}

impl fmt::Display for AssetRunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} deactivated, {} unchanged, {} failed",
            self.created,
            self.updated,
            self.deactivated,
            self.unchanged,
            self.failed.len()
        )?;
        for (id, reason) in self.failed.iter().take(10) {
            write!(f, "; {id}: {reason}")?;
        }
        if self.failed.len() > 10 {
            write!(f, "; and {} more failures", self.failed.len() - 10)?;
        }
        if self.resumed {
            write!(f, " (resumed an interrupted run)")?;
        }
        if self.paused > 0 {
            write!(f, " (paused {} time(s) for the PSA budget)", self.paused)?;
        }
        match &self.stopped {
            Some(why) => write!(
                f,
                "; stopped early ({why}) with {} device(s) left, the next run resumes",
                self.remaining
            ),
            None => Ok(()),
        }
    }
}

/// Why a run could not run (per-device failures are in the summary instead).
#[derive(Debug, thiserror::Error)]
pub enum AssetRunError {
    #[error("asset sync is not configured for tenant {0} (no [assets] settings)")]
    NotConfigured(String),
    /// The PSA lacks what the settings name; nothing was written.
    #[error("asset sync setup is incomplete, nothing was written: {}", .problems.join("; "))]
    SetupIncomplete { problems: Vec<String> },
    #[error("another asset sync run of this tenant holds it until {until}")]
    Busy { until: DateTime<Utc> },
    #[error("another asset sync run took over this tenant; this run stopped")]
    Overtaken,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl AssetRunError {
    /// Whether running again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            AssetRunError::NotConfigured(_) | AssetRunError::SetupIncomplete { .. } => false,
            AssetRunError::Busy { .. } | AssetRunError::Overtaken => true,
            AssetRunError::Api(e) => e.is_retryable(),
            AssetRunError::Store(e) => e.is_retryable(),
            AssetRunError::Sync(e) => e.is_retryable(),
        }
    }
}

/// The CI values a device should have under the tenant's settings.
pub fn desired_fields(device: &Device, settings: &AssetSettings) -> CiFields {
    let udfs = match settings.mode {
        AssetMode::Simple => Default::default(),
        AssetMode::Advanced => {
            let mut udfs: std::collections::BTreeMap<String, String> = device
                .udf_values()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            udfs.insert(
                settings.inventory_id_udf.clone(),
                device.inventory_id.clone(),
            );
            udfs
        }
    };
    CiFields {
        reference_title: device.name.clone(),
        reference_number: match settings.reference_number {
            ReferenceNumberSource::InventoryId => Some(device.inventory_id.clone()),
            ReferenceNumberSource::ClusterId => device.cluster_id.clone(),
        },
        serial_number: device.serial_number.clone(),
        warranty_expiration: device.warranty_expiration(),
        is_active: device.state.is_active(),
        udfs,
    }
}

/// Only what differs from the values last written. A value that became
/// unknown (`None`) is left as it is in the PSA: the port clears nothing.
pub fn patch_from_written(written: &CiFields, desired: &CiFields) -> CiPatch {
    fn changed<T: Clone + PartialEq>(old: &Option<T>, new: &Option<T>) -> Option<T> {
        new.as_ref().filter(|n| old.as_ref() != Some(*n)).cloned()
    }
    CiPatch {
        reference_title: changed(&written.reference_title, &desired.reference_title),
        reference_number: changed(&written.reference_number, &desired.reference_number),
        serial_number: changed(&written.serial_number, &desired.serial_number),
        warranty_expiration: changed(&written.warranty_expiration, &desired.warranty_expiration),
        is_active: (written.is_active != desired.is_active).then_some(desired.is_active),
        udfs: desired
            .udfs
            .iter()
            .filter(|(k, v)| written.udfs.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// What differs between a CI found in the PSA and the desired values (the
/// warranty date is not read back, so it is always sent when known).
fn patch_from_found(ci: &PsaCi, desired: &CiFields) -> CiPatch {
    let found = CiFields {
        reference_title: ci.reference_title.clone(),
        reference_number: ci.reference_number.clone(),
        serial_number: ci.serial_number.clone(),
        warranty_expiration: None,
        is_active: ci.is_active,
        udfs: ci.udfs.clone(),
    };
    patch_from_written(&found, desired)
}

/// What happened to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Deactivated,
    Unchanged,
}

fn outcome_of_patch(patch: &CiPatch) -> Outcome {
    if patch.is_empty() {
        Outcome::Unchanged
    } else if patch.is_active == Some(false) {
        Outcome::Deactivated
    } else {
        Outcome::Updated
    }
}

enum DeviceError {
    /// The budget is spent: stop the run, the next one resumes.
    Stop(ApiError),
    /// This device could not be written; the others go on.
    Failed {
        reason: String,
        retryable: bool,
    },
    Store(StoreError),
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        DeviceError::Store(e)
    }
}

fn classify(error: ApiError) -> DeviceError {
    match error {
        ApiError::RateLimited { .. } => DeviceError::Stop(error),
        other => DeviceError::Failed {
            retryable: other.is_retryable(),
            reason: other.to_string(),
        },
    }
}

/// One run's context.
struct Ctx<'a> {
    store: &'a dyn Store,
    assets: &'a dyn AssetPsa,
    psa: &'a dyn Psa,
    config: &'a TenantConfig,
    settings: &'a AssetSettings,
    clock: &'a dyn Clock,
    ci_type: Option<i64>,
    /// Companies of cluster ids looked up in this run.
    companies: HashMap<String, Option<i64>>,
    /// Simple mode may lack the inventory-id UDF; after the PSA refused a
    /// lookup by it once, this run matches by serial number only.
    udf_lookups: bool,
    pausing: &'a Pausing<'a>,
}

/// Runs asset sync for one tenant: see the module doc. `psa` resolves
/// companies from cluster ids (`company_for_reference`); `assets` reads and
/// writes the configuration items. Exposed for the console ("Sync now",
/// first activation), the CLI and the schedules.
pub async fn run_assets(
    store: &dyn Store,
    assets: &dyn AssetPsa,
    psa: &dyn Psa,
    config: &TenantConfig,
    clock: &dyn Clock,
    options: &AssetRunOptions,
) -> Result<AssetRunSummary, AssetRunError> {
    let span = tracing::info_span!("asset_run", tenant = %config.id);
    run_inner(store, assets, psa, config, clock, options)
        .instrument(span)
        .await
}

async fn run_inner(
    store: &dyn Store,
    assets: &dyn AssetPsa,
    psa: &dyn Psa,
    config: &TenantConfig,
    clock: &dyn Clock,
    options: &AssetRunOptions,
) -> Result<AssetRunSummary, AssetRunError> {
    let tenant = &config.id;
    let settings = config
        .assets
        .as_ref()
        .ok_or_else(|| AssetRunError::NotConfigured(tenant.to_string()))?;
    let mut lease = Lease::take(store, tenant, clock, options).await?;
    // Every PSA call of the run pauses for the budget when it may.
    let paused = Pausing::new(assets, options, clock);
    let assets: &dyn AssetPsa = &paused;
    let mut summary = AssetRunSummary {
        resumed: lease.resumed,
        ..AssetRunSummary::default()
    };

    // What must be written, from the store alone.
    let mut work = Vec::new();
    for (id, stored) in store::devices(store, tenant).await? {
        let record = match stored.value {
            Ok(record) => record,
            Err(error) => {
                summary.failed.push((
                    id,
                    format!("the stored device does not read ({error}); push it again"),
                ));
                continue;
            }
        };
        let desired = desired_fields(&record.device, settings);
        let linked = record.ci.ci_id().is_some();
        if linked && record.written.as_ref() == Some(&desired) && record.last_error.is_none() {
            summary.unchanged += 1;
        } else {
            work.push((
                Versioned {
                    value: record,
                    version: stored.version,
                },
                desired,
            ));
        }
    }

    // Before any write: a run with missing setup writes nothing rather than
    // partial records; the CI type a label names is resolved once, here.
    let mut ci_type = None;
    if !work.is_empty() {
        let checked = match assets.asset_setup_problems(settings).await {
            Ok(problems) if problems.is_empty() => resolve_ci_type(assets, settings).await,
            Ok(problems) => Ok((None, problems)),
            Err(error) => Err(error),
        };
        let problems = match checked {
            Ok((resolved, problems)) => {
                ci_type = resolved;
                problems
            }
            // The budget stopped the run before its first device: like a
            // stop midway, the next run resumes (nothing to undo).
            Err(error @ ApiError::RateLimited { .. }) => {
                info!(%error, "asset run stopped by the PSA budget before its first device; the next run resumes");
                summary.stopped = Some(error.to_string());
                summary.remaining = work.len();
                work.clear();
                Vec::new()
            }
            Err(error) => {
                lease.release(store, tenant, clock, &summary, false).await?;
                return Err(error.into());
            }
        };
        if !problems.is_empty() {
            log(
                store,
                tenant,
                clock.now(),
                LogLevel::Error,
                None,
                format!(
                    "Asset sync did not run, nothing was written. Missing in the PSA: {}",
                    problems.join("; ")
                ),
                false,
            )
            .await;
            lease.release(store, tenant, clock, &summary, true).await?;
            return Err(AssetRunError::SetupIncomplete { problems });
        }
    }

    let mut ctx = Ctx {
        store,
        assets,
        psa,
        config,
        settings,
        clock,
        ci_type,
        companies: HashMap::new(),
        udf_lookups: true,
        pausing: &paused,
    };
    let total = work.len();
    let mut logged_failures = 0usize;
    for (done, (record, desired)) in work.into_iter().enumerate() {
        let now = clock.now();
        if options.deadline.is_some_and(|d| now >= d) {
            summary.stopped = Some("the run's time was up".to_owned());
            summary.remaining = total - done;
            break;
        }
        lease.renew_if_due(store, tenant, clock, options).await?;
        let id = record.value.device.inventory_id.clone();
        match sync_device(&mut ctx, record.clone(), &desired).await {
            Ok(Outcome::Created) => summary.created += 1,
            Ok(Outcome::Updated) => summary.updated += 1,
            Ok(Outcome::Deactivated) => summary.deactivated += 1,
            Ok(Outcome::Unchanged) => summary.unchanged += 1,
            Err(DeviceError::Stop(error)) => {
                info!(%error, "asset run stopped by the PSA budget; the next run resumes");
                summary.stopped = Some(error.to_string());
                summary.remaining = total - done;
                break;
            }
            Err(DeviceError::Store(error)) => {
                lease
                    .release(store, tenant, clock, &summary, false)
                    .await
                    .ok();
                return Err(error.into());
            }
            Err(DeviceError::Failed { reason, retryable }) => {
                warn!(device = %id, %reason, "device not synced");
                let keep = store::clip(&reason, store::MAX_REASON_CHARS);
                let current = store::device(store, tenant, &id).await?.unwrap_or(record);
                store::update_device(store, tenant, current, |r| {
                    r.last_error = Some(keep.clone())
                })
                .await?;
                if logged_failures < MAX_LOGGED_FAILURES {
                    logged_failures += 1;
                    log(
                        store,
                        tenant,
                        clock.now(),
                        LogLevel::Error,
                        Some(format!("device:{id}")),
                        format!("Device {id} was not synced: {}", store::clip(&reason, 1000)),
                        retryable,
                    )
                    .await;
                }
                summary.failed.push((id, reason));
            }
        }
    }
    summary.finished = summary.stopped.is_none();
    summary.paused = paused.pauses();
    let totals = lease
        .release(store, tenant, clock, &summary, summary.finished)
        .await?;

    let mut message = format!("Asset sync: {summary}");
    if summary.resumed && summary.finished {
        message.push_str(&format!(
            ". Since the interrupted run began: {} created, {} updated, {} deactivated, {} failed",
            totals.created, totals.updated, totals.deactivated, totals.failed
        ));
    }
    let level = if summary.failed.is_empty() {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    log(
        store,
        tenant,
        clock.now(),
        level,
        None,
        message,
        !summary.finished,
    )
    .await;
    info!(
        created = summary.created,
        updated = summary.updated,
        deactivated = summary.deactivated,
        unchanged = summary.unchanged,
        failed = summary.failed.len(),
        finished = summary.finished,
        "asset run done"
    );
    Ok(summary)
}

/// The run's PSA calls, each tried again after a pause when the budget (or
/// the PSA's 429) refuses it and the options allow the pause
/// ([`AssetRunOptions::budget_pause`], the deadline). A refused call was
/// never carried out (the budget refuses before sending; a 429 is the PSA
/// refusing it), so trying it again, creates included, duplicates nothing.
/// Pausing per call rather than per device keeps the lookups a device
/// already made.
struct Pausing<'a> {
    inner: &'a dyn AssetPsa,
    options: &'a AssetRunOptions,
    clock: &'a dyn Clock,
    pauses: std::sync::atomic::AtomicUsize,
}

impl<'a> Pausing<'a> {
    fn new(inner: &'a dyn AssetPsa, options: &'a AssetRunOptions, clock: &'a dyn Clock) -> Self {
        Self {
            inner,
            options,
            clock,
            pauses: Default::default(),
        }
    }

    fn pauses(&self) -> usize {
        self.pauses.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        loop {
            match call().await {
                Err(error) => match self.pause_for(&error) {
                    Some(pause) => {
                        self.pauses
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                    }
                    None => return Err(error),
                },
                done => return done,
            }
        }
    }

    /// How long to pause before trying a refused call again: the refusal
    /// names a short enough `retry_after` and the pause ends before the
    /// deadline. `None`: give the error back (the run stops on it).
    fn pause_for(&self, error: &ApiError) -> Option<std::time::Duration> {
        let ApiError::RateLimited { retry_after, .. } = error else {
            return None;
        };
        // Never spin: a refusal naming no wait still gets a short one.
        let pause = (*retry_after).max(MIN_BUDGET_PAUSE);
        if pause > self.options.budget_pause {
            return None;
        }
        let ends = self.clock.now() + Duration::from_std(pause).ok()?;
        match self.options.deadline {
            Some(deadline) if ends >= deadline => None,
            _ => Some(pause),
        }
    }
}

#[async_trait::async_trait]
impl AssetPsa for Pausing<'_> {
    async fn asset_setup_problems(
        &self,
        settings: &AssetSettings,
    ) -> Result<Vec<String>, ApiError> {
        self.call(|| self.inner.asset_setup_problems(settings))
            .await
    }

    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError> {
        self.call(|| self.inner.get_ci(id)).await
    }

    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError> {
        self.call(|| self.inner.find_ci_by_udf(udf, value)).await
    }

    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError> {
        self.call(|| self.inner.find_ci_by_serial(serial)).await
    }

    async fn find_ci_by_reference(
        &self,
        reference_number: &str,
    ) -> Result<Option<PsaCi>, ApiError> {
        self.call(|| self.inner.find_ci_by_reference(reference_number))
            .await
    }

    async fn ci_type_value(
        &self,
        value: &crate::config::FieldValue,
    ) -> Result<Option<i64>, ApiError> {
        self.call(|| self.inner.ci_type_value(value)).await
    }

    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError> {
        self.call(|| self.inner.create_ci(ci)).await
    }

    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError> {
        self.call(|| self.inner.update_ci(id, patch)).await
    }
}

/// The shortest pause after a refusal.
const MIN_BUDGET_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The picklist value of the setting `ci_type` (a label through the PSA's
/// picklist), or the setup problem that it names no type.
async fn resolve_ci_type(
    assets: &dyn AssetPsa,
    settings: &AssetSettings,
) -> Result<(Option<i64>, Vec<String>), ApiError> {
    let Some(wanted) = &settings.ci_type else {
        return Ok((None, Vec::new()));
    };
    Ok(match assets.ci_type_value(wanted).await? {
        Some(value) => (Some(value), Vec::new()),
        None => (
            None,
            vec![format!(
                "the PSA has no configuration item type {wanted} (asset setting ci_type): create it among the PSA's configuration item types or set ci_type to an existing type's name or number"
            )],
        ),
    })
}

/// Creates, patches or links one device's CI and saves the result.
async fn sync_device(
    ctx: &mut Ctx<'_>,
    record: Versioned<DeviceRecord>,
    desired: &CiFields,
) -> Result<Outcome, DeviceError> {
    if let CiLink::Linked { ci_id } = record.value.ci {
        let patch = match &record.value.written {
            Some(written) => patch_from_written(written, desired),
            // Linked without known values (should not happen): send all.
            None => patch_from_written(
                &CiFields {
                    is_active: !desired.is_active,
                    ..CiFields::default()
                },
                desired,
            ),
        };
        if patch.is_empty() {
            save_linked(ctx, record, ci_id, desired, None).await?;
            return Ok(Outcome::Unchanged);
        }
        match ctx.assets.update_ci(ci_id, &patch).await {
            Ok(()) => {
                save_linked(ctx, record, ci_id, desired, None).await?;
                return Ok(outcome_of_patch(&patch));
            }
            // The CI is gone (removed in the PSA's UI): find or create anew.
            Err(ApiError::NotFound { .. }) => {
                warn!(
                    ci_id,
                    "linked configuration item no longer exists; matching again"
                );
            }
            Err(error) => return Err(classify(error)),
        }
    }
    let was_claimed = matches!(record.value.ci, CiLink::Creating { .. });
    let device = record.value.device.clone();
    if let Some(ci) = find(ctx, &device).await? {
        let patch = patch_from_found(&ci, desired);
        if !patch.is_empty() {
            ctx.assets
                .update_ci(ci.id, &patch)
                .await
                .map_err(classify)?;
        }
        save_linked(ctx, record, ci.id, desired, Some(ci.company_id)).await?;
        return Ok(if was_claimed {
            // The create of an interrupted run landed; this run finished it.
            Outcome::Created
        } else {
            outcome_of_patch(&patch)
        });
    }

    let company_id = company(ctx, &device).await?;
    // Claim before create: a run that dies after `create_ci` leaves
    // `creating`, and the next run looks for the CI before creating again.
    let now = ctx.clock.now();
    let claimed = store::update_device(ctx.store, &ctx.config.id, record, |r| {
        r.ci = CiLink::Creating { claimed_at: now }
    })
    .await?;
    let new = NewCi {
        company_id,
        product_id: ctx.settings.product_id,
        ci_type: ctx.ci_type,
        category_id: ctx.settings.category_id,
        fields: desired.clone(),
    };
    let ci_id = ctx.assets.create_ci(&new).await.map_err(classify)?;
    save_linked(ctx, claimed, ci_id, desired, Some(company_id)).await?;
    Ok(Outcome::Created)
}

async fn save_linked(
    ctx: &Ctx<'_>,
    record: Versioned<DeviceRecord>,
    ci_id: i64,
    desired: &CiFields,
    company_id: Option<i64>,
) -> Result<(), StoreError> {
    store::update_device(ctx.store, &ctx.config.id, record, |r| {
        r.ci = CiLink::Linked { ci_id };
        r.written = Some(desired.clone());
        if company_id.is_some() {
            r.company_id = company_id;
        }
        r.last_error = None;
    })
    .await
    .map(drop)
}

/// The device's existing CI without a stored link: by the inventory-id UDF,
/// else (simple mode, reference number = inventory id) by reference number,
/// else by serial number. A CI found by reference number or serial whose UDF
/// names another device is not the device's (two devices may report the
/// same placeholder serial).
///
/// Why the reference number: simple mode writes no UDF, so without it a
/// device with no serial number whose create landed while its link was lost
/// (the process died in between) would be created again. Advanced mode
/// writes the UDF on create, so the UDF lookup already finds such a CI and
/// the extra query is spared.
async fn find(ctx: &mut Ctx<'_>, device: &Device) -> Result<Option<PsaCi>, DeviceError> {
    let udf = ctx.settings.inventory_id_udf.as_str();
    if ctx.udf_lookups {
        match ctx.assets.find_ci_by_udf(udf, &device.inventory_id).await {
            Ok(Some(ci)) => return Ok(Some(ci)),
            Ok(None) => {}
            Err(error) if ctx.settings.mode == AssetMode::Simple && !error.is_retryable() => {
                info!(%error, udf, "simple mode: the PSA refused a lookup by the inventory-id UDF; matching by reference number and serial number only");
                ctx.udf_lookups = false;
            }
            Err(error) => return Err(classify(error)),
        }
    }
    let not_another_device = |ci: &PsaCi| {
        ci.udfs
            .get(udf)
            .is_none_or(|other| other.is_empty() || *other == device.inventory_id)
    };
    if ctx.settings.mode == AssetMode::Simple
        && ctx.settings.reference_number == ReferenceNumberSource::InventoryId
    {
        let found = ctx
            .assets
            .find_ci_by_reference(&device.inventory_id)
            .await
            .map_err(classify)?;
        if let Some(ci) = found.filter(not_another_device) {
            return Ok(Some(ci));
        }
    }
    let Some(serial) = device.serial_number.as_deref() else {
        return Ok(None);
    };
    let found = ctx
        .assets
        .find_ci_by_serial(serial)
        .await
        .map_err(classify)?;
    Ok(found.filter(not_another_device))
}

/// The company a new CI is created in: a numeric company hint, else the
/// company of the CI whose reference number is the device's cluster id (as
/// tickets resolve theirs), else the tenant's default company.
async fn company(ctx: &mut Ctx<'_>, device: &Device) -> Result<i64, DeviceError> {
    if let Some(id) = device.company_hint_id() {
        return Ok(id);
    }
    if let Some(cluster) = device.cluster_id.as_deref() {
        let known = match ctx.companies.get(cluster) {
            Some(known) => *known,
            None => {
                let found = ctx
                    .pausing
                    .call(|| ctx.psa.company_for_reference(cluster))
                    .await
                    .map_err(classify)?;
                ctx.companies.insert(cluster.to_owned(), found);
                found
            }
        };
        if let Some(id) = known {
            return Ok(id);
        }
    }
    ctx.config
        .default_company_id()
        .ok_or_else(|| DeviceError::Failed {
            reason: match &device.cluster_id {
                Some(cluster) => format!(
                    "no company: no configuration item has reference number {cluster:?}, the device has no company_hint and the tenant has no default company"
                ),
                None => "no company: the device has neither a company_hint nor a cluster_id and the tenant has no default company".to_owned(),
            },
            retryable: false,
        })
}

/// The tenant's asset run lease (`ASSETRUN`).
struct Lease {
    state: AssetRunState,
    version: u64,
    resumed: bool,
}

impl Lease {
    async fn take(
        store: &dyn Store,
        tenant: &TenantId,
        clock: &dyn Clock,
        options: &AssetRunOptions,
    ) -> Result<Self, AssetRunError> {
        let now = clock.now();
        let previous = store::run_state(store, tenant).await?;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let (state, condition, resumed) = match previous {
            Some(prev) if !prev.value.finished && prev.value.lease_until > now => {
                return Err(AssetRunError::Busy {
                    until: prev.value.lease_until,
                })
            }
            // Stopped early (or died): continue its totals.
            Some(prev) if !prev.value.finished => (
                AssetRunState {
                    run_id,
                    lease_until: now + options.lease,
                    ..prev.value.clone()
                },
                prev.condition(),
                true,
            ),
            Some(prev) => (
                AssetRunState {
                    run_id,
                    started_at: now,
                    lease_until: now + options.lease,
                    finished: false,
                    finished_at: None,
                    totals: RunTotals::default(),
                    scheduled_on: prev.value.scheduled_on,
                },
                prev.condition(),
                false,
            ),
            None => (
                AssetRunState {
                    run_id,
                    started_at: now,
                    lease_until: now + options.lease,
                    finished: false,
                    finished_at: None,
                    totals: RunTotals::default(),
                    scheduled_on: None,
                },
                Condition::MustNotExist,
                false,
            ),
        };
        let mut state = state;
        if options.scheduled {
            state.scheduled_on = Some(now.date_naive());
        }
        match store::put_run_state(store, tenant, &state, condition).await {
            Ok(version) => Ok(Self {
                state,
                version,
                resumed,
            }),
            Err(StoreError::Conflict { .. }) => Err(AssetRunError::Busy {
                until: now + options.lease,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Extends the lease once half of it is spent.
    async fn renew_if_due(
        &mut self,
        store: &dyn Store,
        tenant: &TenantId,
        clock: &dyn Clock,
        options: &AssetRunOptions,
    ) -> Result<(), AssetRunError> {
        let now = clock.now();
        if self.state.lease_until - now > options.lease / 2 {
            return Ok(());
        }
        let mut next = self.state.clone();
        next.lease_until = now + options.lease;
        match store::put_run_state(store, tenant, &next, Condition::VersionIs(self.version)).await {
            Ok(version) => {
                self.state = next;
                self.version = version;
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => Err(AssetRunError::Overtaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds this run's counts, frees the lease and, when finished, keeps the
    /// run in the history. Returns the totals since the (resumed) run began.
    async fn release(
        &mut self,
        store: &dyn Store,
        tenant: &TenantId,
        clock: &dyn Clock,
        summary: &AssetRunSummary,
        finished: bool,
    ) -> Result<RunTotals, AssetRunError> {
        let mut next = self.state.clone();
        let now = clock.now();
        next.lease_until = now;
        next.finished = finished;
        next.finished_at = finished.then_some(now);
        let totals = &mut next.totals;
        totals.created += summary.created;
        totals.updated += summary.updated;
        totals.deactivated += summary.deactivated;
        totals.unchanged = summary.unchanged;
        totals.failed += summary.failed.len();
        totals.failures.extend(summary.failed.iter().cloned());
        match store::put_run_state(store, tenant, &next, Condition::VersionIs(self.version)).await {
            Ok(version) => {
                self.version = version;
                self.state = next.clone();
            }
            Err(StoreError::Conflict { .. }) => return Err(AssetRunError::Overtaken),
            Err(e) => return Err(e.into()),
        }
        if finished {
            if let Err(error) = store::put_run_history(store, tenant, &next).await {
                warn!(%error, "could not keep the asset run in the history");
            }
        }
        Ok(next.totals)
    }
}

/// Writes a sync log line; a log that cannot be written never fails a run.
async fn log(
    store: &dyn Store,
    tenant: &TenantId,
    at: DateTime<Utc>,
    level: LogLevel,
    subject: Option<String>,
    message: String,
    retryable: bool,
) {
    let entry = SyncLogEntry {
        at,
        level,
        ticket: subject,
        step: STEP.to_owned(),
        message,
        retryable,
    };
    if let Err(error) = Repo::new(store).log(tenant, &entry).await {
        warn!(%tenant, %error, "could not write the asset sync log");
    }
}

/// Whether a scheduled run of this tenant is due at `now`: it never ran (its
/// first run after activation), or today (UTC) is one of its schedule days
/// and no scheduled run started today, or a run stopped early and its lease
/// ran out (resume it).
pub async fn due(
    store: &dyn Store,
    config: &TenantConfig,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(settings) = &config.assets else {
        return Ok(false);
    };
    if !config.active {
        return Ok(false);
    }
    let state = store::run_state(store, &config.id).await?;
    let today = now.date_naive();
    use chrono::Datelike;
    let scheduled_today = settings.schedule_days.contains(&today.day());
    Ok(match state {
        // Never ran: the first run is due at once (the tenant's first
        // activation), whatever the day.
        None => true,
        Some(state) => {
            let state = state.value;
            if !state.finished && state.lease_until > now {
                // A run holds the tenant; it finishes the work.
                return Ok(false);
            }
            let unfinished = !state.finished;
            unfinished || (scheduled_today && state.scheduled_on != Some(today))
        }
    })
}
