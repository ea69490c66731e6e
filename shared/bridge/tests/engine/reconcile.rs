//! Sweep unit tests over the in-memory fakes, the embedded store and queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::TimeZone;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::config::{AutotaskSettings, Mappings, Secret, ZendeskSettings};
use bridge::config::{TenantConfig, TenantSecrets};
use bridge::error::{QueueError, SyncError};
use bridge::model::NewPsaTicket;
use bridge::model::{DeskTicketId, JobSubject, PsaTicketId, Side, SyncJob, TenantId};
use bridge::ports::Delivery;
use bridge::ports::{Condition, Connectors, DeskCursor, Psa, Queue, ServiceDesk};
use bridge::reconcile::*;
use bridge::repo::PsaLink;
use bridge::repo::{LogLevel, Repo};
use bridge::step::Step;
use chrono::{DateTime, TimeDelta, Utc};
use testkit::fakes::{FakeDesk, FakePsa, FixedClock};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn config(id: &str) -> TenantConfig {
    TenantConfig {
        id: TenantId::parse(id).unwrap(),
        active: true,
        zendesk: ZendeskSettings {
            base_url: "http://desk".into(),
            cluster_id_field: None,
        },
        autotask: AutotaskSettings {
            zone_lookup_url: "http://psa".into(),
            queue_id: None,
            default_company_id: Some(1),
            ..AutotaskSettings::new("")
        },
        connectwise: None,
        mappings: Mappings::default(),
        fields: Default::default(),
        assets: None,
    }
}

fn secrets() -> TenantSecrets {
    TenantSecrets {
        zendesk_email: "bridge@example.com".into(),
        zendesk_api_token: Secret::new("t"),
        zendesk_oauth_token: Secret::default(),
        zendesk_webhook_secret: Secret::new("w"),
        autotask_username: "api@example.com".into(),
        autotask_secret: Secret::new("s"),
        autotask_integration_code: Secret::new("c"),
        autotask_callout_username: String::new(),
        autotask_callout_password: Secret::default(),
        autotask_webhook_secret: Secret::default(),
        connectwise_public_key: String::new(),
        connectwise_private_key: Secret::default(),
        connectwise_client_id: String::new(),
        inventory_signing_secret: Secret::default(),
    }
}

/// Each tenant's fakes; a tenant's Zendesk may never answer.
#[derive(Default)]
struct FakeConnectors {
    systems: HashMap<TenantId, (Arc<FakeDesk>, Arc<FakePsa>)>,
    slow: HashSet<TenantId>,
}

#[async_trait]
impl Connectors for FakeConnectors {
    async fn desk(
        &self,
        config: &TenantConfig,
        _: &TenantSecrets,
    ) -> Result<Arc<dyn ServiceDesk>, SyncError> {
        if self.slow.contains(&config.id) {
            std::future::pending::<()>().await;
        }
        Ok(self.systems[&config.id].0.clone())
    }
    async fn psa(
        &self,
        config: &TenantConfig,
        _: &TenantSecrets,
    ) -> Result<Arc<dyn Psa>, SyncError> {
        Ok(self.systems[&config.id].1.clone())
    }
}

/// The embedded queue (real de-duplication), recording what was accepted and
/// able to refuse every send.
struct TestQueue {
    inner: EmbeddedQueue,
    sent: Mutex<Vec<SyncJob>>,
    fail: AtomicBool,
}

#[async_trait]
impl Queue for TestQueue {
    async fn send(&self, job: &SyncJob) -> Result<(), QueueError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("injected".into()));
        }
        self.inner.send(job).await?;
        self.sent.lock().unwrap().push(job.clone());
        Ok(())
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn complete(&self, receipt: &str) -> Result<(), QueueError> {
        self.inner.complete(receipt).await
    }
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_later(receipt, delay).await
    }
}

struct Fixture {
    config: TenantConfig,
    store: Arc<SqliteStore>,
    desk: Arc<FakeDesk>,
    psa: Arc<FakePsa>,
    queue: Arc<TestQueue>,
    clock: Arc<FixedClock>,
    sweeper: Sweeper,
}

impl Fixture {
    fn new() -> Self {
        Self::with_tenants(&["acme"], &[], &[])
    }

    /// `missing_secrets`: tenants whose credentials are absent; `slow`:
    /// tenants whose Zendesk never answers.
    fn with_tenants(ids: &[&str], missing_secrets: &[&str], slow: &[&str]) -> Self {
        let mut connectors = FakeConnectors::default();
        let mut secret_map = HashMap::new();
        for id in ids {
            let tenant = TenantId::parse(id).unwrap();
            connectors.systems.insert(
                tenant.clone(),
                (Arc::new(FakeDesk::default()), Arc::new(FakePsa::default())),
            );
            if !missing_secrets.contains(id) {
                secret_map.insert(tenant.clone(), secrets());
            }
            if slow.contains(id) {
                connectors.slow.insert(tenant);
            }
        }
        let config = config(ids[0]);
        let (desk, psa) = connectors.systems[&config.id].clone();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let queue = Arc::new(TestQueue {
            inner: EmbeddedQueue::in_memory().unwrap(),
            sent: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
        });
        let clock = Arc::new(FixedClock::at(t0()));
        let sweeper = Sweeper::new(
            store.clone(),
            Arc::new(FileSecrets::from_map(secret_map)),
            Arc::new(connectors),
            queue.clone(),
            clock.clone(),
        );
        Self {
            config,
            store,
            desk,
            psa,
            queue,
            clock,
            sweeper,
        }
    }

    fn repo(&self) -> Repo<'_> {
        Repo::new(self.store.as_ref())
    }

    async fn sweep(&self) -> SweepReport {
        self.sweeper.sweep_tenant(&self.config).await
    }

    /// Jobs accepted by the queue since the last call.
    fn take_sent(&self) -> Vec<SyncJob> {
        std::mem::take(&mut *self.queue.sent.lock().unwrap())
    }

    /// An Autotask ticket, paired with Zendesk ticket `desk_id` when given.
    async fn psa_ticket(&self, desk_id: Option<u64>, activity: DateTime<Utc>) -> i64 {
        let id = self
            .psa
            .create_ticket(&NewPsaTicket {
                title: "t".into(),
                description: "d".into(),
                status: 1,
                priority: 2,
                company_id: 1,
                queue_id: None,
                external_id: desk_id.map(|d| format!("zendesk:{d}")).unwrap_or_default(),
                configuration_item_id: None,
            })
            .await
            .unwrap();
        self.psa.set_activity(id, activity);
        if let Some(desk_ticket_id) = desk_id {
            self.repo()
                .put_psa_link(&self.config.id, id, PsaLink { desk_ticket_id })
                .await
                .unwrap();
        }
        id
    }

    async fn psa_cursor(&self) -> Option<PsaCursor> {
        self.repo()
            .cursor::<PsaCursor>(&self.config.id, AUTOTASK_CURSOR)
            .await
            .unwrap()
            .map(|v| v.value)
    }

    async fn desk_cursor(&self) -> Option<DeskCursor> {
        self.repo()
            .cursor::<DeskCursor>(&self.config.id, ZENDESK_CURSOR)
            .await
            .unwrap()
            .map(|v| v.value)
    }
}

fn tickets(jobs: &[SyncJob], origin: Side) -> Vec<String> {
    let mut ids: Vec<String> = jobs
        .iter()
        .filter(|j| j.subject.side() == origin)
        .map(|j| j.subject.id())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn zendesk_changes_are_queued_in_their_lanes_and_the_cursor_follows_the_feed() {
    let f = Fixture::new();
    let z1 = f.desk.new_ticket("Printer", "on fire", None, None);
    let z2 = f.desk.new_ticket("Mail", "down", None, None);
    f.desk.comment(z1, "Agent", "Looking", true);

    let report = f.sweep().await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.desk_jobs, 2,
        "one job per changed ticket, not per change"
    );
    // Never from the beginning of time: one interval plus the overlap back.
    assert_eq!(
        f.desk.export_requests(),
        vec![DeskCursor::StartTime(t0() - minutes(7))]
    );
    let jobs = f.take_sent();
    assert_eq!(
        tickets(&jobs, Side::Desk),
        vec![z1.to_string(), z2.to_string()]
    );
    for job in &jobs {
        let id: u64 = job.subject.id().parse().unwrap();
        assert_eq!(
            job.desk_ticket_id,
            Some(DeskTicketId(id)),
            "the lane is the Zendesk ticket"
        );
        assert_eq!(
            job.event_id,
            format!("sweep:{}:{id}", t0().timestamp_millis())
        );
        assert_eq!(job.tenant, f.config.id);
    }
    let saved = f.desk_cursor().await.expect("cursor saved");

    // Nothing changed: asked from the saved cursor, nothing queued.
    f.clock.advance(minutes(5));
    let report = f.sweep().await;
    assert_eq!((report.desk_jobs, report.psa_jobs), (0, 0));
    assert_eq!(f.desk.export_requests().last(), Some(&saved));
    assert!(f.take_sent().is_empty());

    f.desk.comment(z2, "Customer", "Still down", true);
    f.clock.advance(minutes(5));
    let report = f.sweep().await;
    assert_eq!(report.desk_jobs, 1);
    assert_eq!(tickets(&f.take_sent(), Side::Desk), vec![z2.to_string()]);
}

#[tokio::test]
async fn autotask_changes_go_to_their_pairs_lane_and_unlinked_tickets_are_skipped() {
    let f = Fixture::new();
    let linked = f.psa_ticket(Some(41), t0() - minutes(1)).await;
    let unlinked = f.psa_ticket(None, t0() - TimeDelta::seconds(30)).await;
    let _too_old = f.psa_ticket(Some(42), t0() - minutes(10)).await;

    let report = f.sweep().await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(f.psa.change_queries(), vec![t0() - minutes(7)]);
    assert_eq!((report.psa_jobs, report.psa_unlinked), (1, 1));
    let jobs = f.take_sent();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].subject, JobSubject::Psa(PsaTicketId(linked)));
    assert_eq!(
        jobs[0].desk_ticket_id,
        Some(DeskTicketId(41)),
        "lane of the Zendesk pair"
    );
    // The newest activity seen, unlinked tickets included.
    let cursor = f.psa_cursor().await.unwrap();
    assert_eq!(cursor.last_activity, t0() - TimeDelta::seconds(30));
    assert!(!cursor.recent.iter().any(|(id, _)| *id == unlinked));
}

#[tokio::test]
async fn the_overlap_window_catches_late_stamped_changes_without_requeueing_old_ones() {
    let f = Fixture::new();
    let a = f.psa_ticket(Some(1), t0() - minutes(1)).await;
    f.psa_ticket(Some(2), t0() - TimeDelta::seconds(20)).await;
    f.sweep().await;
    assert_eq!(tickets(&f.take_sent(), Side::Psa).len(), 2);

    // A change committed late with a time just before the newest one seen:
    // a plain `gt newest` query would never return it.
    let late = f.psa_ticket(Some(3), t0() - TimeDelta::seconds(40)).await;
    f.clock.advance(minutes(5));
    let report = f.sweep().await;
    assert_eq!(
        f.psa.change_queries().last(),
        Some(&(t0() - TimeDelta::seconds(20) - minutes(2))),
        "asked from the newest activity seen minus the overlap"
    );
    assert_eq!(tickets(&f.take_sent(), Side::Psa), vec![late.to_string()]);
    assert_eq!(
        report.psa_already_queued, 2,
        "a and b were queued last time"
    );

    // A technician note moves a's activity: queued again.
    f.psa.set_activity(a, t0() + minutes(4));
    f.clock.advance(minutes(5));
    let report = f.sweep().await;
    assert_eq!(tickets(&f.take_sent(), Side::Psa), vec![a.to_string()]);
    assert_eq!(report.psa_jobs, 1);
    let cursor = f.psa_cursor().await.unwrap();
    assert_eq!(cursor.last_activity, t0() + minutes(4));
    // b and late are older than the window now and are forgotten.
    assert_eq!(cursor.recent, vec![(a, t0() + minutes(4))]);
}

#[tokio::test]
async fn a_pair_changed_on_both_sides_gets_one_job() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("Printer", "on fire", None, None);
    f.psa_ticket(Some(z), t0() - minutes(1)).await;
    let report = f.sweep().await;
    assert_eq!(
        (report.desk_jobs, report.psa_jobs, report.psa_covered),
        (1, 0, 1)
    );
    assert_eq!(f.take_sent().len(), 1);
}

#[tokio::test]
async fn cursors_stay_put_when_a_job_cannot_be_queued() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("Printer", "on fire", None, None);
    let p = f.psa_ticket(Some(900), t0() - minutes(1)).await;
    f.queue.fail.store(true, Ordering::SeqCst);

    let report = f.sweep().await;
    let steps: Vec<&str> = report.failures.iter().map(|f| f.step.name()).collect();
    assert_eq!(steps, vec!["enqueue_zendesk_jobs", "enqueue_psa_jobs"]);
    assert!(report.failures.iter().all(|f| f.retryable));
    assert_eq!(f.desk_cursor().await, None, "Zendesk cursor not advanced");
    assert_eq!(f.psa_cursor().await, None, "Autotask cursor not advanced");
    let log = f.repo().log_entries(&f.config.id, 10).await.unwrap();
    assert_eq!(log.len(), 2, "each failure is in the tenant's sync log");
    assert!(log.iter().all(|e| e.message.contains("could not queue")));

    // The queue heals: the next sweep finds the same changes.
    f.queue.fail.store(false, Ordering::SeqCst);
    f.clock.advance(minutes(5));
    let report = f.sweep().await;
    assert!(report.is_ok(), "{report}");
    let jobs = f.take_sent();
    assert_eq!(tickets(&jobs, Side::Desk), vec![z.to_string()]);
    assert_eq!(tickets(&jobs, Side::Psa), vec![p.to_string()]);
    assert!(f.desk_cursor().await.is_some() && f.psa_cursor().await.is_some());
}

#[tokio::test]
async fn a_failing_side_does_not_hold_back_the_other() {
    let f = Fixture::new();
    f.desk.new_ticket("Printer", "on fire", None, None);
    let p = f.psa_ticket(Some(900), t0() - minutes(1)).await;
    f.desk.fail_exports(true);
    let report = f.sweep().await;
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].step, Step::ReadDeskChanges);
    assert!(report.failures[0].message.contains("could not ask Zendesk"));
    assert_eq!(tickets(&f.take_sent(), Side::Psa), vec![p.to_string()]);
    assert_eq!(f.desk_cursor().await, None);
    assert!(f.psa_cursor().await.is_some());
}

#[tokio::test]
async fn sweep_jobs_are_never_dropped_as_duplicates_of_webhook_or_earlier_sweep_jobs() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("Printer", "on fire", None, None);
    // The webhook of that change was queued (then its worker lost the race, say).
    f.queue
        .send(&SyncJob {
            tenant: f.config.id.clone(),
            subject: JobSubject::Desk(DeskTicketId(z)),
            desk_ticket_id: Some(DeskTicketId(z)),
            event_id: "d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52".into(),
            received_at_ms: t0().timestamp_millis(),
            change: bridge::model::ChangeHint::Unknown,
        })
        .await
        .unwrap();
    f.sweep().await;
    f.desk.comment(z, "Agent", "again", true);
    f.clock.advance(TimeDelta::seconds(1));
    f.sweep().await;
    let depth = f.queue.inner.depth().unwrap();
    assert_eq!(
        depth.visible, 3,
        "webhook job and both sweep jobs are queued"
    );
}

#[tokio::test]
async fn sweep_all_isolates_failing_and_slow_tenants_and_skips_paused_ones() {
    let f = Fixture::with_tenants(
        &["acme", "globex", "initech", "hooli"],
        &["globex"],
        &["initech"],
    );
    // On the wall clock (the store and queue commit on a thread of their
    // own, which paused time cannot see), and long enough that the other
    // tenants' sweeps over in-memory fakes end within it on a busy machine.
    let sweeper = f.sweeper.clone().with_options(SweepOptions {
        tenant_timeout: Duration::from_secs(2),
        ..SweepOptions::default()
    });
    for id in ["acme", "globex", "initech", "hooli"] {
        let mut c = config(id);
        c.active = id != "hooli";
        f.repo().put_tenant(&c, Condition::Always).await.unwrap();
    }
    f.desk.new_ticket("Printer", "on fire", None, None);

    // initech's Zendesk never answers: the sweep ends only if its tenant
    // timeout cuts it off. The outer bound only turns a hang into a failure.
    let reports = tokio::time::timeout(Duration::from_secs(120), sweeper.sweep_all())
        .await
        .expect("the sweep of the tenant whose Zendesk never answers was cut off")
        .unwrap();
    let names: Vec<&str> = reports.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(
        names,
        vec!["acme", "globex", "initech"],
        "paused hooli is not swept"
    );
    assert!(reports[0].is_ok());
    assert_eq!(reports[0].desk_jobs, 1);
    assert_eq!(reports[1].failures[0].step, Step::ReadCredentials);
    assert_eq!(reports[2].failures[0].step, Step::Sweep);
    assert!(reports[2].failures[0].message.contains("did not finish"));
    for (tenant, step) in [("globex", "read_credentials"), ("initech", "sweep")] {
        let log = f
            .repo()
            .log_entries(&TenantId::parse(tenant).unwrap(), 10)
            .await
            .unwrap();
        assert_eq!(log.len(), 1, "{tenant}: failure logged");
        assert_eq!(log[0].step, step);
        assert_eq!(log[0].level, LogLevel::Error);
    }
}
