//! The worker: takes one job, runs the sync engine, and says what the queue
//! should do with the message. The same code runs in Lambda (SQS event), in
//! the local process (embedded queue) and in tests.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tracing::{error, info, info_span, warn, Instrument};

use chrono::{DateTime, Utc};

use crate::error::SyncError;
use crate::model::{DeskTicketId, JobSubject, PsaSystem, SyncJob};
use crate::ports::{Clock, Connectors, Delivery, Queue, Secrets, Store};
use crate::repo::{LogLevel, Repo, SyncLogEntry};
use crate::step::Step;
use crate::sync::{sync_job, LeaseTiming, StepFailure, SyncContext, SyncReport};
use crate::timing::JOB_WRITE_BUDGET;

/// What to do with a message after processing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Delete the message.
    Done,
    /// Transient failure: make the message visible again after this delay.
    RetryAfter(Duration),
    /// Permanent failure, already written to the tenant's sync log. The
    /// message is retried slowly until the receive limit moves it to the DLQ,
    /// from where an admin replays it once the cause is fixed.
    Failed {
        reason: String,
        retry_after: Duration,
    },
    /// Send this job, then delete the message. Two cases: a PSA-side event
    /// that reached the worker outside its ticket pair's lane (its link did not
    /// exist yet at ingest) goes back into that lane; and a run whose time
    /// budget ran out with writes left continues in a fresh message, so a long
    /// first sync makes progress across runs without using up receives.
    Requeue {
        next: SyncJob,
        /// When `next` cannot be sent, the original comes back after this.
        if_send_fails: Duration,
    },
}

/// What the queue does with a message once its job ran. The local worker loop
/// and the Lambda batch handler both settle through [`queue_action`], so the
/// two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// Delete the message (Lambda: leave it out of the batch failures and
    /// let Lambda delete it).
    Delete,
    /// Send this job, then delete the message; if the send fails, return the
    /// message after the delay instead.
    SendThenDelete {
        next: SyncJob,
        if_send_fails: Duration,
    },
    /// Make the message visible again after the delay (Lambda: report it
    /// failed). Each return counts a receive; at the queue's receive limit
    /// the message moves to the dead-letter queue.
    ReturnAfter(Duration),
}

/// The one decision from a job's outcome to what the queue does.
pub fn queue_action(outcome: JobOutcome) -> QueueAction {
    match outcome {
        JobOutcome::Done => QueueAction::Delete,
        JobOutcome::Requeue {
            next,
            if_send_fails,
        } => QueueAction::SendThenDelete {
            next,
            if_send_fails,
        },
        JobOutcome::RetryAfter(delay) => QueueAction::ReturnAfter(delay),
        JobOutcome::Failed { retry_after, .. } => QueueAction::ReturnAfter(retry_after),
    }
}

/// A [`QueueAction`] with its send done: what is left for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Delete,
    ReturnAfter(Duration),
}

impl QueueAction {
    /// Sends the job to be sent, if any, and says what is left to do.
    pub async fn send_first(self, queue: &dyn Queue) -> Settle {
        match self {
            QueueAction::Delete => Settle::Delete,
            QueueAction::ReturnAfter(delay) => Settle::ReturnAfter(delay),
            QueueAction::SendThenDelete {
                next,
                if_send_fails,
            } => match queue.send(&next).await {
                Ok(()) => Settle::Delete,
                Err(err) => {
                    error!(%err, "could not send the follow-up job; the original comes back");
                    Settle::ReturnAfter(if_send_fails)
                }
            },
        }
    }
}

/// First retry delay; doubles per receive up to the ceiling.
pub const BASE_BACKOFF: Duration = Duration::from_secs(2);
/// The ceiling as a multiple of the first delay: 15 minutes from 2 s. A
/// shorter first delay keeps the same schedule, only faster.
const MAX_BACKOFF_STEPS: u32 = 450;
/// A permanent failure is retried this slowly: time for an admin to fix a
/// mapping before the message reaches the DLQ.
pub const PERMANENT_RETRY: Duration = Duration::from_secs(5 * 60);

/// Exponential backoff with jitter (half fixed, half random) so a burst of
/// failures does not come back as a burst.
pub fn backoff(receive_count: u32) -> Duration {
    backoff_from(BASE_BACKOFF, receive_count)
}

/// [`backoff`] from another first delay (tests under heavy fault injection
/// shorten it so that dozens of retries fit in seconds). The ceiling scales
/// with it: a job unlucky a dozen times under compressed time must not wait
/// minutes, as it would if only the first delay were compressed.
pub fn backoff_from(base: Duration, receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    let ceiling = base.saturating_mul(MAX_BACKOFF_STEPS);
    let full = base.saturating_mul(1u32 << exponent).min(ceiling);
    let half = full / 2;
    half + rand::thread_rng().gen_range(Duration::ZERO..=half)
}

/// Everything the worker needs, built once per process (Lambda cold start).
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    connectors: Arc<dyn Connectors>,
    clock: Arc<dyn Clock>,
    permanent_retry: Duration,
    backoff_base: Duration,
    write_budget: Duration,
    lease: LeaseTiming,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        connectors: Arc<dyn Connectors>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            secrets,
            connectors,
            clock,
            permanent_retry: PERMANENT_RETRY,
            backoff_base: BASE_BACKOFF,
            write_budget: JOB_WRITE_BUDGET,
            lease: LeaseTiming::default(),
        }
    }

    /// How long a run may start writes (default [`JOB_WRITE_BUDGET`]).
    pub fn with_write_budget(mut self, budget: Duration) -> Self {
        self.write_budget = budget;
        self
    }

    /// The pair lease's length and the part of it a write needs.
    pub fn with_lease(mut self, lease: LeaseTiming) -> Self {
        self.lease = lease;
        self
    }

    /// How long a permanently failing message waits before its next try
    /// (tests shorten it to reach the DLQ quickly).
    pub fn with_permanent_retry(mut self, delay: Duration) -> Self {
        self.permanent_retry = delay;
        self
    }

    /// First delay of the exponential backoff after a transient failure
    /// (default [`BASE_BACKOFF`]).
    pub fn with_backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// The delay before retry number `receive_count` after a transient failure.
    pub fn backoff(&self, receive_count: u32) -> Duration {
        backoff_from(self.backoff_base, receive_count)
    }

    /// Gives back what the connectors keep between calls (shared budget
    /// slots): the end of a Lambda batch, the end of the local process.
    pub async fn give_back_held(&self) {
        self.connectors.give_back_held().await;
    }

    /// When a run starting now must stop starting writes.
    pub fn write_deadline(&self) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::from_std(self.write_budget).unwrap_or_default()
    }

    /// Processes one job; `receive_count` is how often the queue delivered it.
    pub async fn process(&self, job: &SyncJob, receive_count: u32) -> JobOutcome {
        self.process_until(job, receive_count, self.write_deadline())
            .await
    }

    /// [`Worker::process`] with a write deadline of the caller's (a Lambda
    /// invocation's, when earlier than the run's own budget).
    pub async fn process_until(
        &self,
        job: &SyncJob,
        receive_count: u32,
        write_deadline: DateTime<Utc>,
    ) -> JobOutcome {
        let span = info_span!(
            "job",
            tenant = %job.tenant,
            ticket = %job.subject,
            event = %job.event_id,
            receive_count
        );
        async move {
            let result = self.run_until(job, write_deadline).await;
            self.outcome(job, receive_count, result).await
        }
        .instrument(span)
        .await
    }

    /// Runs the engine and returns its report (for tests and the demo).
    pub async fn run(&self, job: &SyncJob) -> Result<SyncReport, StepFailure> {
        self.run_until(job, self.write_deadline()).await
    }

    async fn run_until(
        &self,
        job: &SyncJob,
        write_deadline: DateTime<Utc>,
    ) -> Result<SyncReport, StepFailure> {
        let step = |step: Step| move |error: SyncError| StepFailure { step, error };
        let repo = Repo::new(self.store.as_ref());
        let config = repo
            .tenant(&job.tenant)
            .await
            .map_err(|e| step(Step::ReadTenant)(e.into()))?
            .ok_or_else(|| {
                step(Step::ReadTenant)(SyncError::UnknownTenant(job.tenant.to_string()))
            })?
            .value;
        if !config.active {
            return Ok(SyncReport {
                skipped: Some("tenant is paused".into()),
                ..SyncReport::default()
            });
        }
        let secrets = self
            .secrets
            .tenant_secrets(&job.tenant)
            .await
            .map_err(|e| step(Step::ReadCredentials)(e.into()))?;
        let desk = self
            .connectors
            .desk(&config, &secrets)
            .await
            .map_err(step(Step::ConnectDesk))?;
        let psa = self
            .connectors
            .psa(&config, &secrets)
            .await
            .map_err(step(Step::ConnectPsa))?;
        let cx = SyncContext {
            write_deadline,
            lease: self.lease,
            ..SyncContext::new(
                &config,
                self.store.as_ref(),
                desk.as_ref(),
                psa.as_ref(),
                self.clock.as_ref(),
            )
        };
        sync_job(&cx, job).await
    }

    async fn outcome(
        &self,
        job: &SyncJob,
        receive_count: u32,
        result: Result<SyncReport, StepFailure>,
    ) -> JobOutcome {
        match result {
            Ok(SyncReport {
                reroute_to_desk_ticket: Some(desk_ticket_id),
                ..
            }) => {
                info!(desk_ticket_id, "rerouting into the ticket pair's lane");
                JobOutcome::Requeue {
                    next: SyncJob {
                        desk_ticket_id: Some(DeskTicketId(desk_ticket_id)),
                        // A new de-duplication id, or the queue would drop it
                        // as a repeat of the message it replaces.
                        event_id: format!("{}:rerouted", job.event_id),
                        ..job.clone()
                    },
                    if_send_fails: self.backoff(receive_count),
                }
            }
            Ok(SyncReport {
                unfinished: true,
                desk_ticket_id: Some(desk_ticket_id),
                writes,
                ..
            }) => {
                info!(
                    desk_ticket_id,
                    writes, "time budget spent with writes left; continuing in a new message"
                );
                // A new de-duplication id per continuation, or the queue
                // would drop it as a repeat.
                let base = job.event_id.split(":continued:").next().unwrap_or_default();
                JobOutcome::Requeue {
                    next: SyncJob {
                        subject: JobSubject::Desk(DeskTicketId(desk_ticket_id)),
                        desk_ticket_id: Some(DeskTicketId(desk_ticket_id)),
                        event_id: format!("{base}:continued:{}", uuid::Uuid::new_v4().simple()),
                        ..job.clone()
                    },
                    if_send_fails: self.backoff(receive_count),
                }
            }
            Ok(report) => {
                let latency_ms = self.clock.now().timestamp_millis() - job.received_at_ms;
                info!(
                    psa_ticket = ?report.psa_ticket_id,
                    created = report.created_psa_ticket,
                    fields = ?report.fields_updated,
                    notes_to_psa = report.notes_to_psa,
                    comments_to_desk = report.comments_to_desk,
                    own_copies = report.own_copies_recognised,
                    skipped = ?report.skipped,
                    latency_ms,
                    "job done"
                );
                if report.created_psa_ticket {
                    self.log(
                        job,
                        LogLevel::Info,
                        Step::CreatePsaTicket,
                        &format!(
                            "created PSA ticket {} for Zendesk ticket {}",
                            report.psa_ticket_id.unwrap_or_default(),
                            report.desk_ticket_id.unwrap_or_default()
                        ),
                        false,
                    )
                    .await;
                }
                JobOutcome::Done
            }
            Err(StepFailure { step, error }) if error.is_retryable() => {
                // `Retry-After` is a floor, not the delay: a rate limit that
                // keeps answering "in 1 s" must not burn through the receive
                // limit in seconds and dead-letter a healthy job.
                let backoff = self.backoff(receive_count);
                let delay = match &error {
                    // Another run holds the pair: come back when it is likely
                    // done, and no later than when its lease runs out.
                    SyncError::PairBusy { free_in } => backoff.min(*free_in),
                    _ => error
                        .retry_after()
                        .map_or(backoff, |after| after.max(backoff)),
                };
                warn!(%step, %error, delay_ms = delay.as_millis() as u64, "transient failure; will retry");
                // Repeated transient failures are worth an admin's eye too.
                if receive_count >= 3 {
                    let message = format!("{}: {error}", step.what_failed());
                    self.log(job, LogLevel::Error, step, &message, true).await;
                }
                JobOutcome::RetryAfter(delay)
            }
            Err(StepFailure { step, error }) => {
                error!(%step, %error, "permanent failure");
                let reason = format!("{}: {error}", step.what_failed());
                self.log(job, LogLevel::Error, step, &reason, false).await;
                JobOutcome::Failed {
                    reason,
                    retry_after: self.permanent_retry,
                }
            }
        }
    }

    async fn log(
        &self,
        job: &SyncJob,
        level: LogLevel,
        step: Step,
        message: &str,
        retryable: bool,
    ) {
        let repo = Repo::new(self.store.as_ref());
        // A PSA ticket is named after the tenant's PSA (`connectwise:5001`).
        let ticket = match job.subject {
            JobSubject::Psa(id) => {
                let system = match repo.tenant(&job.tenant).await {
                    Ok(Some(config)) => config.value.psa_system(),
                    _ => PsaSystem::Autotask,
                };
                format!("{system}:{id}")
            }
            desk => desk.to_string(),
        };
        let entry = SyncLogEntry {
            at: self.clock.now(),
            level,
            ticket: Some(ticket),
            step: step.name().to_owned(),
            message: message.to_owned(),
            retryable,
        };
        if let Err(err) = repo.log(&job.tenant, &entry).await {
            // The message is still retried; only the log line is lost.
            error!(%err, "could not write the sync log");
        }
    }

    /// Pulls jobs from `queue` until `shutdown` resolves, processing up to
    /// `concurrency` messages at a time (the local process and tests; Lambda
    /// gets its batches from the SQS event source instead). Jobs run inside
    /// this future: dropping it (a crash, an aborted task) stops them all
    /// where they are, and their messages come back after the visibility
    /// timeout. A clean shutdown lets running jobs finish first.
    pub async fn run_queue(
        &self,
        queue: Arc<dyn Queue>,
        concurrency: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        let mut shutdown = shutdown;
        loop {
            // Reap finished jobs so the set does not grow without bound.
            while running.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            let available = permits.available_permits().max(1);
            let deliveries = tokio::select! {
                r = queue.receive(available, Duration::from_secs(1)) => r,
                _ = shutdown.changed() => break,
            };
            let deliveries = match deliveries {
                Ok(d) => d,
                Err(err) => {
                    error!(%err, "queue receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            for delivery in deliveries {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore open");
                let worker = self.clone();
                let queue = queue.clone();
                running.spawn(async move {
                    worker.settle(queue.as_ref(), &delivery).await;
                    drop(permit);
                });
            }
        }
        while running.join_next().await.is_some() {}
        self.give_back_held().await;
    }

    /// Processes one delivery and tells the queue what became of it.
    async fn settle(&self, queue: &dyn Queue, delivery: &Delivery) {
        let outcome = self.process(&delivery.job, delivery.receive_count).await;
        let result = match queue_action(outcome).send_first(queue).await {
            Settle::Delete => queue.complete(&delivery.receipt).await,
            Settle::ReturnAfter(delay) => queue.retry_later(&delivery.receipt, delay).await,
        };
        if let Err(err) = result {
            error!(%err, "could not settle the message; it will be redelivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

    fn job(event: &str) -> SyncJob {
        SyncJob {
            tenant: crate::model::TenantId::parse("acme").unwrap(),
            subject: JobSubject::Desk(DeskTicketId(7)),
            desk_ticket_id: Some(DeskTicketId(7)),
            event_id: event.into(),
            received_at_ms: 0,
            change: crate::model::ChangeHint::Unknown,
        }
    }

    #[test]
    fn every_outcome_has_one_queue_action() {
        let minute = Duration::from_secs(60);
        let table = [
            (JobOutcome::Done, QueueAction::Delete),
            (
                JobOutcome::RetryAfter(minute),
                QueueAction::ReturnAfter(minute),
            ),
            (
                JobOutcome::Failed {
                    reason: "no mapping".into(),
                    retry_after: PERMANENT_RETRY,
                },
                QueueAction::ReturnAfter(PERMANENT_RETRY),
            ),
            (
                JobOutcome::Requeue {
                    next: job("e:rerouted"),
                    if_send_fails: minute,
                },
                QueueAction::SendThenDelete {
                    next: job("e:rerouted"),
                    if_send_fails: minute,
                },
            ),
        ];
        for (outcome, action) in table {
            assert_eq!(queue_action(outcome.clone()), action, "{outcome:?}");
        }
    }

    /// A queue whose sends fail or succeed as told, and that records them.
    #[derive(Default)]
    struct Sends {
        fail: bool,
        sent: std::sync::Mutex<Vec<SyncJob>>,
    }

    #[async_trait::async_trait]
    impl Queue for Sends {
        async fn send(&self, job: &SyncJob) -> Result<(), crate::error::QueueError> {
            if self.fail {
                return Err(crate::error::QueueError::Unavailable("down".into()));
            }
            self.sent.lock().unwrap().push(job.clone());
            Ok(())
        }
        async fn receive(
            &self,
            _: usize,
            _: Duration,
        ) -> Result<Vec<Delivery>, crate::error::QueueError> {
            unreachable!()
        }
        async fn complete(&self, _: &str) -> Result<(), crate::error::QueueError> {
            unreachable!()
        }
        async fn retry_later(&self, _: &str, _: Duration) -> Result<(), crate::error::QueueError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_follow_up_is_sent_before_the_message_goes_and_a_failed_send_keeps_it() {
        let action = || QueueAction::SendThenDelete {
            next: job("e:continued:1"),
            if_send_fails: Duration::from_secs(4),
        };
        let up = Sends::default();
        assert_eq!(action().send_first(&up).await, Settle::Delete);
        assert_eq!(up.sent.lock().unwrap().as_slice(), [job("e:continued:1")]);

        let down = Sends {
            fail: true,
            ..Sends::default()
        };
        assert_eq!(
            action().send_first(&down).await,
            Settle::ReturnAfter(Duration::from_secs(4))
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let fourth = backoff(4);
            assert!(fourth >= Duration::from_secs(8) && fourth <= Duration::from_secs(16));
            assert!(backoff(40) <= MAX_BACKOFF);
            assert!(backoff(40) >= MAX_BACKOFF / 2);
        }
    }

    #[test]
    fn a_shorter_first_delay_shortens_the_ceiling_alike() {
        assert_eq!(BASE_BACKOFF * MAX_BACKOFF_STEPS, MAX_BACKOFF);
        let base = Duration::from_millis(25);
        for _ in 0..50 {
            let late = backoff_from(base, 40);
            // 25 ms × 450 = 11.25 s, half of it fixed.
            assert!(late <= Duration::from_millis(11_250), "{late:?}");
            assert!(late >= Duration::from_millis(5_625), "{late:?}");
        }
    }
}
