//! The reconciliation sweep: every few minutes, ask each system what changed
//! since its cursor and enqueue one job per changed ticket. Webhooks are fast
//! but lossy (Autotask drops an event after five failed tries, Zendesk pauses
//! a failing endpoint); the sweep makes a lost webhook cost one interval of
//! delay, never a lost change.
//!
//! A cursor moves only after every job of its side was enqueued, so a failed
//! send means the same changes are found again next time. Jobs are hints (the
//! worker re-reads both sides), so a change found twice costs a read, never a
//! duplicate write. API calls grow with the number of changes: one export page
//! per 1,000 Zendesk changes, one query page per 500 Autotask changes.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, warn, Instrument};

use crate::config::{TenantConfig, TenantSecrets};
use crate::error::{ApiError, QueueError, StoreError, SyncError};
use crate::model::{ChangeHint, DeskTicketId, JobSubject, PsaTicketId, SyncJob, TenantId};
use crate::ports::{
    Clock, Condition, Connectors, DeskCursor, Psa, Queue, Secrets, ServiceDesk, Store,
};
use crate::repo::{LogLevel, Repo, SyncLogEntry};
use crate::step::Step;

/// `CURSOR#zendesk`: a [`DeskCursor`].
pub const ZENDESK_CURSOR: &str = "zendesk";
/// `CURSOR#autotask`: a [`PsaCursor`].
pub const AUTOTASK_CURSOR: &str = "autotask";

/// Zendesk rejects an export `start_time` less than a minute old.
const DESK_MIN_START_AGE: TimeDelta = TimeDelta::minutes(1);
/// Bound on the Autotask tickets remembered inside the overlap window, so the
/// cursor item stays far below the 400 KB limit even after a burst. Tickets
/// that fall off are only queued once more.
const MAX_RECENT: usize = 2_000;
/// Jobs sent to the queue at once.
const SEND_CONCURRENCY: usize = 16;

/// How sweeps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// Time between sweeps. A tenant's first sweep looks back this far (plus
    /// the overlap), never to the beginning of time.
    pub interval: Duration,
    /// Autotask is asked for changes from this long before the newest
    /// `lastActivityDate` seen, so a change stamped slightly out of order (a
    /// slow transaction, a second on the boundary) is not missed.
    pub overlap: Duration,
    /// A tenant's sweep is abandoned after this, so one slow tenant does not
    /// hold the others; its cursors stay where its last finished step left them.
    pub tenant_timeout: Duration,
    /// Tenants swept at once.
    pub concurrency: usize,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5 * 60),
            overlap: Duration::from_secs(2 * 60),
            tenant_timeout: Duration::from_secs(2 * 60),
            concurrency: 8,
        }
    }
}

/// `CURSOR#autotask`: where the Autotask side of a tenant's sweep stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaCursor {
    /// Newest `lastActivityDate` seen, on Autotask's clock (so our clock's
    /// skew does not matter).
    pub last_activity: DateTime<Utc>,
    /// Linked tickets already queued at their current `lastActivityDate` that
    /// the overlap window reports again; they are not queued a second time.
    #[serde(default)]
    pub recent: Vec<(i64, DateTime<Utc>)>,
}

/// A step of a sweep that failed, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepFailure {
    pub step: Step,
    pub message: String,
    /// Whether it heals by itself (the next sweep tries again either way).
    pub retryable: bool,
}

/// What one tenant's sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub tenant: TenantId,
    /// Jobs queued for changed Zendesk tickets.
    pub desk_jobs: usize,
    /// Jobs queued for changed Autotask tickets.
    pub psa_jobs: usize,
    /// Changed Autotask tickets with no Zendesk pair, skipped.
    pub psa_unlinked: usize,
    /// Changed Autotask tickets whose pair already got a Zendesk job in this
    /// sweep (that job syncs both sides).
    pub psa_covered: usize,
    /// Autotask tickets the overlap window reported again, unchanged since
    /// they were queued.
    pub psa_already_queued: usize,
    /// False when Zendesk had more changes than one sweep reads; the next
    /// sweep goes on from where this one stopped.
    pub desk_complete: bool,
    pub failures: Vec<SweepFailure>,
}

impl SweepReport {
    fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            desk_jobs: 0,
            psa_jobs: 0,
            psa_unlinked: 0,
            psa_covered: 0,
            psa_already_queued: 0,
            desk_complete: true,
            failures: Vec::new(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: queued {} Zendesk and {} PSA ticket(s)",
            self.tenant, self.desk_jobs, self.psa_jobs
        )?;
        if self.psa_unlinked > 0 {
            write!(f, ", skipped {} unlinked PSA ticket(s)", self.psa_unlinked)?;
        }
        if !self.desk_complete {
            f.write_str(", more Zendesk changes left for the next sweep")?;
        }
        for failure in &self.failures {
            write!(f, "\n  failed at {}: {}", failure.step, failure.message)?;
        }
        Ok(())
    }
}

/// What a whole sweep did, for the scheduled function's result and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub tenants: usize,
    pub desk_jobs: usize,
    pub psa_jobs: usize,
    /// Tenants with at least one failed step (each is in its sync log).
    pub tenants_failed: Vec<String>,
}

impl SweepSummary {
    pub fn of(reports: &[SweepReport]) -> Self {
        Self {
            tenants: reports.len(),
            desk_jobs: reports.iter().map(|r| r.desk_jobs).sum(),
            psa_jobs: reports.iter().map(|r| r.psa_jobs).sum(),
            tenants_failed: reports
                .iter()
                .filter(|r| !r.is_ok())
                .map(|r| r.tenant.to_string())
                .collect(),
        }
    }
}

/// Runs sweeps; built once per process (Lambda cold start), like the worker.
#[derive(Clone)]
pub struct Sweeper {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    connectors: Arc<dyn Connectors>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    options: SweepOptions,
}

impl Sweeper {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        connectors: Arc<dyn Connectors>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            secrets,
            connectors,
            queue,
            clock,
            options: SweepOptions::default(),
        }
    }

    pub fn with_options(mut self, options: SweepOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> &SweepOptions {
        &self.options
    }

    /// Sweeps every active tenant, a few at a time, each within
    /// `tenant_timeout`. A failing tenant is written to its sync log and does
    /// not stop the others. Fails only when the tenant list cannot be read.
    pub async fn sweep_all(&self) -> Result<Vec<SweepReport>, StoreError> {
        let reports = self.sweep_every_tenant().await;
        // A sweep in its own Lambda invocation must not leave slots held
        // while the instance is frozen.
        self.connectors.give_back_held().await;
        reports
    }

    async fn sweep_every_tenant(&self) -> Result<Vec<SweepReport>, StoreError> {
        let tenants = Repo::new(self.store.as_ref()).tenants().await?;
        // Futures are built first: a stream of closures over borrowed tenants
        // would not be `Send` for callers that spawn the sweep.
        let sweeps: Vec<_> = tenants
            .into_iter()
            .filter(|config| config.active)
            .map(|config| async move { self.sweep_tenant_within_timeout(&config).await })
            .collect();
        let mut reports: Vec<SweepReport> = futures::stream::iter(sweeps)
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        reports.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(reports)
    }

    async fn sweep_tenant_within_timeout(&self, config: &TenantConfig) -> SweepReport {
        let limit = self.options.tenant_timeout;
        match tokio::time::timeout(limit, self.sweep_tenant(config)).await {
            Ok(report) => report,
            Err(_) => {
                let failure = SweepFailure {
                    step: Step::Sweep,
                    message: format!(
                        "the sweep did not finish within {} s (a slow Zendesk or PSA); \
                         the next sweep goes on from the last saved position",
                        limit.as_secs()
                    ),
                    retryable: true,
                };
                warn!(tenant = %config.id, "sweep timed out");
                self.log_failure(&config.id, &failure).await;
                let mut report = SweepReport::new(config.id.clone());
                report.failures.push(failure);
                report
            }
        }
    }

    /// Sweeps one tenant: Zendesk first, then Autotask. The sides advance
    /// independently; a failure of one is reported (and logged to the
    /// tenant's sync log) without holding back the other.
    pub async fn sweep_tenant(&self, config: &TenantConfig) -> SweepReport {
        let span = info_span!("sweep", tenant = %config.id);
        async move {
            let mut report = SweepReport::new(config.id.clone());
            let now = self.clock.now();
            match self.secrets.tenant_secrets(&config.id).await {
                Err(err) => report.failures.push(failure(Step::ReadCredentials, err)),
                Ok(secrets) => {
                    let mut covered = HashSet::new();
                    if let Err(f) = self
                        .sweep_desk(config, &secrets, now, &mut report, &mut covered)
                        .await
                    {
                        report.failures.push(f);
                    }
                    if let Err(f) = self
                        .sweep_psa(config, &secrets, now, &mut report, &covered)
                        .await
                    {
                        report.failures.push(f);
                    }
                }
            }
            for f in &report.failures {
                self.log_failure(&config.id, f).await;
            }
            info!(
                desk_jobs = report.desk_jobs,
                psa_jobs = report.psa_jobs,
                psa_unlinked = report.psa_unlinked,
                psa_covered = report.psa_covered,
                psa_already_queued = report.psa_already_queued,
                desk_complete = report.desk_complete,
                failures = report.failures.len(),
                "sweep finished"
            );
            report
        }
        .instrument(span)
        .await
    }

    async fn sweep_desk(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
        now: DateTime<Utc>,
        report: &mut SweepReport,
        covered: &mut HashSet<u64>,
    ) -> Result<(), SweepFailure> {
        let repo = Repo::new(self.store.as_ref());
        let tenant = &config.id;
        let desk: Arc<dyn ServiceDesk> = self
            .connectors
            .desk(config, secrets)
            .await
            .map_err(|e| failure(Step::ConnectDesk, e))?;
        let stored = repo
            .cursor::<DeskCursor>(tenant, ZENDESK_CURSOR)
            .await
            .map_err(|e| failure(Step::ReadDeskCursor, e))?;
        let (position, condition) = match &stored {
            Some(saved) => (saved.value.clone(), saved.condition()),
            None => {
                let start = (now - self.lookback()).min(now - DESK_MIN_START_AGE);
                (DeskCursor::StartTime(start), Condition::MustNotExist)
            }
        };
        let changes = desk
            .changed_tickets(&position)
            .await
            .map_err(|e| failure(Step::ReadDeskChanges, e))?;
        let jobs: Vec<SyncJob> = changes
            .ticket_ids
            .iter()
            .map(|id| sweep_job(tenant, JobSubject::Desk(DeskTicketId(*id)), *id, now))
            .collect();
        self.enqueue(&jobs)
            .await
            .map_err(|e| failure(Step::EnqueueDeskJobs, e))?;
        report.desk_jobs = jobs.len();
        report.desk_complete = changes.complete;
        covered.extend(changes.ticket_ids.iter().copied());
        // A first sweep saves even an unchanged start time, so the next one
        // does not start later than this one did.
        if stored.is_none() || changes.next != position {
            self.save_cursor(
                tenant,
                ZENDESK_CURSOR,
                &changes.next,
                condition,
                Step::SaveDeskCursor,
            )
            .await?;
        }
        Ok(())
    }

    async fn sweep_psa(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
        now: DateTime<Utc>,
        report: &mut SweepReport,
        covered: &HashSet<u64>,
    ) -> Result<(), SweepFailure> {
        let repo = Repo::new(self.store.as_ref());
        let tenant = &config.id;
        let psa: Arc<dyn Psa> = self
            .connectors
            .psa(config, secrets)
            .await
            .map_err(|e| failure(Step::ConnectPsa, e))?;
        let stored = repo
            .cursor::<PsaCursor>(tenant, AUTOTASK_CURSOR)
            .await
            .map_err(|e| failure(Step::ReadPsaCursor, e))?;
        let (cursor, condition) = match &stored {
            Some(saved) => (saved.value.clone(), saved.condition()),
            None => (
                PsaCursor {
                    last_activity: now - to_delta(self.options.interval),
                    recent: Vec::new(),
                },
                Condition::MustNotExist,
            ),
        };
        let overlap = to_delta(self.options.overlap);
        let changed = psa
            .tickets_changed_since(cursor.last_activity - overlap)
            .await
            .map_err(|e| failure(Step::ReadPsaChanges, e))?;

        let already: HashSet<(i64, DateTime<Utc>)> = cursor.recent.iter().copied().collect();
        let mut jobs = Vec::new();
        let mut linked = Vec::new();
        let mut seen_ids = HashSet::new();
        for &(psa_id, at) in &changed {
            if !seen_ids.insert(psa_id) {
                continue;
            }
            if already.contains(&(psa_id, at)) {
                report.psa_already_queued += 1;
                linked.push((psa_id, at));
                continue;
            }
            // The lane of a PSA ticket is its Zendesk pair's; a ticket with no
            // pair has nothing to mirror (the bridge only pairs what Zendesk opened).
            match repo
                .psa_link(tenant, psa_id)
                .await
                .map_err(|e| failure(Step::ReadLink, e))?
            {
                None => report.psa_unlinked += 1,
                Some(link) => {
                    linked.push((psa_id, at));
                    if covered.contains(&link.desk_ticket_id) {
                        report.psa_covered += 1;
                    } else {
                        jobs.push(sweep_job(
                            tenant,
                            JobSubject::Psa(PsaTicketId(psa_id)),
                            link.desk_ticket_id,
                            now,
                        ));
                    }
                }
            }
        }
        self.enqueue(&jobs)
            .await
            .map_err(|e| failure(Step::EnqueuePsaJobs, e))?;
        report.psa_jobs = jobs.len();

        let next = advance(&cursor, &linked, &changed, overlap);
        if stored.is_none() || next != cursor {
            self.save_cursor(
                tenant,
                AUTOTASK_CURSOR,
                &next,
                condition,
                Step::SavePsaCursor,
            )
            .await?;
        }
        Ok(())
    }

    /// How far a tenant's first sweep looks back.
    fn lookback(&self) -> TimeDelta {
        to_delta(self.options.interval) + to_delta(self.options.overlap)
    }

    /// Sends every job; fails if any send failed (some may have gone out:
    /// harmless, they are hints and the cursor stays put).
    async fn enqueue(&self, jobs: &[SyncJob]) -> Result<(), QueueError> {
        let sends: Vec<_> = jobs.iter().map(|job| self.queue.send(job)).collect();
        futures::stream::iter(sends)
            .buffer_unordered(SEND_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    async fn save_cursor<T: Serialize>(
        &self,
        tenant: &TenantId,
        system: &str,
        value: &T,
        condition: Condition,
        step: Step,
    ) -> Result<(), SweepFailure> {
        match Repo::new(self.store.as_ref())
            .put_cursor(tenant, system, value, condition)
            .await
        {
            Ok(_) => Ok(()),
            // Another sweep of this tenant saved first; its position is at least
            // as far along, and this sweep's jobs are queued either way.
            Err(StoreError::Conflict { .. }) => {
                warn!(
                    system,
                    "sweep position moved by a concurrent sweep; kept theirs"
                );
                Ok(())
            }
            Err(err) => Err(failure(step, err)),
        }
    }

    async fn log_failure(&self, tenant: &TenantId, failure: &SweepFailure) {
        let entry = SyncLogEntry {
            at: self.clock.now(),
            level: LogLevel::Error,
            ticket: None,
            step: failure.step.name().to_owned(),
            message: failure.message.clone(),
            retryable: failure.retryable,
        };
        if let Err(err) = Repo::new(self.store.as_ref()).log(tenant, &entry).await {
            warn!(%err, "could not write the sweep failure to the sync log");
        }
    }
}

/// A sweep job. Its event id is unique per sweep, so the queue's
/// de-duplication never mistakes it for a webhook's event or an earlier sweep's.
fn sweep_job(
    tenant: &TenantId,
    subject: JobSubject,
    desk_ticket_id: u64,
    now: DateTime<Utc>,
) -> SyncJob {
    SyncJob {
        tenant: tenant.clone(),
        subject,
        event_id: format!("sweep:{}:{}", now.timestamp_millis(), subject.id()),
        desk_ticket_id: Some(DeskTicketId(desk_ticket_id)),
        received_at_ms: now.timestamp_millis(),
        // The sweep knows only that something changed: a full run.
        change: ChangeHint::Unknown,
    }
}

/// The Autotask cursor after a sweep whose jobs were all queued: the newest
/// activity seen, and the linked tickets inside the next overlap window at
/// their current activity (only their newest one per ticket).
fn advance(
    cursor: &PsaCursor,
    linked: &[(i64, DateTime<Utc>)],
    changed: &[(i64, DateTime<Utc>)],
    overlap: TimeDelta,
) -> PsaCursor {
    let newest = changed
        .iter()
        .map(|(_, at)| *at)
        .fold(cursor.last_activity, DateTime::max);
    let window_start = newest - overlap;
    let mut latest: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    for &(id, at) in cursor.recent.iter().chain(linked) {
        let slot = latest.entry(id).or_insert(at);
        *slot = (*slot).max(at);
    }
    let mut recent: Vec<(i64, DateTime<Utc>)> = latest
        .into_iter()
        .filter(|(_, at)| *at > window_start)
        .collect();
    recent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    recent.truncate(MAX_RECENT);
    PsaCursor {
        last_activity: newest,
        recent,
    }
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

fn failure(step: Step, err: impl Into<SyncError>) -> SweepFailure {
    let err = err.into();
    let what = step.what_failed();
    warn!(%step, %err, retryable = err.is_retryable(), "sweep step failed");
    let message = match &err {
        // Refused to this user (the export is for admins): looking again will
        // not help until an admin changes the user or the token.
        SyncError::Api(ApiError::Forbidden { .. }) => format!(
            "reconciliation sweep {what}: {err}. Until then, changes whose webhook was lost are \
             not found; the sweep position was kept, so they are found once it is fixed."
        ),
        _ => format!(
            "reconciliation sweep {what}: {err}. The sweep position was kept, so the next sweep looks again."
        ),
    };
    SweepFailure {
        step,
        message,
        retryable: err.is_retryable(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn minutes(n: i64) -> TimeDelta {
        TimeDelta::minutes(n)
    }

    // The window's bookkeeping is private; the sweep's behaviour is tested
    // over the fakes in `tests/engine/reconcile.rs`.
    #[test]
    fn the_remembered_window_keeps_the_newest_activity_per_ticket_and_is_bounded() {
        let base = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let cursor = PsaCursor {
            last_activity: base,
            recent: vec![(1, base - minutes(1)), (2, base - minutes(3))],
        };
        let changed = vec![(1, base + minutes(1)), (3, base)];
        let next = advance(&cursor, &changed, &changed, minutes(2));
        assert_eq!(next.last_activity, base + minutes(1));
        assert_eq!(next.recent, vec![(1, base + minutes(1)), (3, base)]);

        let many: Vec<(i64, DateTime<Utc>)> = (0..5_000)
            .map(|i| (i, base + TimeDelta::milliseconds(i)))
            .collect();
        let next = advance(&cursor, &many, &many, minutes(2));
        assert_eq!(next.recent.len(), MAX_RECENT);
        assert_eq!(
            next.recent[0],
            (4_999, base + TimeDelta::milliseconds(4_999))
        );
        let body = serde_json::to_string(&next).unwrap();
        assert!(
            body.len() < crate::ports::MAX_ITEM_BYTES / 2,
            "{} bytes",
            body.len()
        );
    }
}
