//! The worker's SQS event handling for Lambda, with partial batch responses:
//! only the messages that failed are reported, so one bad message never
//! re-runs or deletes its neighbours.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bridge::assets::{run_due_assets, AssetDeps, AssetRunOptions, AssetScheduleSummary};
use bridge::error::StoreError;
use bridge::model::SyncJob;
use bridge::ports::Queue;
use bridge::reconcile::{SweepSummary, Sweeper};
use bridge::timing::{MAX_WRITE_DURATION, SETTLE_RESERVE};
use bridge::worker::{queue_action, JobOutcome, Settle, Worker};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use crate::sqs;

/// What the batch logic needs from the worker; `Worker` is the real one, tests
/// use their own.
#[async_trait]
pub trait ProcessJob: Send + Sync {
    /// Runs one job, starting no write after `write_deadline`.
    async fn process(
        &self,
        job: &SyncJob,
        receive_count: u32,
        write_deadline: DateTime<Utc>,
    ) -> JobOutcome;

    /// When a run starting now would stop starting writes on its own.
    fn own_write_deadline(&self) -> DateTime<Utc>;
}

#[async_trait]
impl ProcessJob for Worker {
    async fn process(
        &self,
        job: &SyncJob,
        receive_count: u32,
        write_deadline: DateTime<Utc>,
    ) -> JobOutcome {
        Worker::process_until(self, job, receive_count, write_deadline).await
    }

    fn own_write_deadline(&self) -> DateTime<Utc> {
        Worker::write_deadline(self)
    }
}

/// The Lambda handler body of the worker function.
pub async fn handle_sqs_batch(
    worker: &Worker,
    queue: &dyn Queue,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let deadline = invocation_write_deadline(event.context.deadline);
    run_invocation(worker, queue, event.payload, deadline).await
}

/// One invocation's work: the batch, then giving back what the worker's
/// connectors kept between calls. The instance may be frozen once this
/// returns, and budget slots it kept for its next call would block the
/// tenant's other instances until their lease ran out.
pub async fn run_invocation(
    worker: &Worker,
    queue: &dyn Queue,
    event: SqsEvent,
    invocation_write_deadline: DateTime<Utc>,
) -> SqsBatchResponse {
    let response = process_batch(worker, queue, event, invocation_write_deadline).await;
    worker.give_back_held().await;
    response
}

/// The last moment of an invocation (`deadline`: Lambda's, in milliseconds
/// since the epoch) at which a write may start: the write must end and the
/// batch be answered before Lambda stops the function, or every record of
/// the batch, done or not, would come back.
pub fn invocation_write_deadline(deadline_ms: u64) -> DateTime<Utc> {
    let reserve = MAX_WRITE_DURATION + SETTLE_RESERVE;
    let end = DateTime::<Utc>::from_timestamp_millis(deadline_ms as i64).unwrap_or_else(Utc::now);
    end - chrono::Duration::from_std(reserve).expect("small")
}

/// Runs a batch: message groups concurrently, each group's records in order.
/// A group stops at its first failure and the rest of it is reported failed
/// unprocessed, because FIFO order forbids running a later job of a ticket
/// before an earlier one has succeeded. Failures are made visible again after
/// their delay via `queue.retry_later` and returned in `batchItemFailures`.
///
/// No record starts after `invocation_write_deadline`, and each run starts no
/// write after it (or after its own budget, whichever comes first); records
/// not reached are returned at once for another invocation.
pub async fn process_batch(
    processor: &dyn ProcessJob,
    queue: &dyn Queue,
    event: SqsEvent,
    invocation_write_deadline: DateTime<Utc>,
) -> SqsBatchResponse {
    let records = event.records;
    // Groups in order of first appearance; indices keep the batch order.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        let next = groups.len();
        let slot = *group_of.entry(record_group(record)).or_insert(next);
        if slot == next {
            groups.push(Vec::new());
        }
        groups[slot].push(index);
    }

    let runs = groups.iter().map(|indices| {
        run_group(
            processor,
            queue,
            &records,
            indices,
            invocation_write_deadline,
        )
    });
    let mut failed: Vec<usize> = join_all(runs).await.into_iter().flatten().collect();
    failed.sort_unstable();

    SqsBatchResponse {
        batch_item_failures: failed
            .into_iter()
            .map(|i| BatchItemFailure {
                // An empty identifier makes Lambda fail the whole batch: the
                // safe answer for a record that cannot be named (SQS always
                // names them).
                item_identifier: records[i].message_id.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The FIFO group of a record as SQS assigned it; an undecodable body from a
/// standard queue falls back to a group of its own per body.
fn record_group(record: &SqsMessage) -> String {
    if let Some(group) = record.attributes.get("MessageGroupId") {
        return group.clone();
    }
    match decode(record) {
        Ok(job) => sqs::group_id(&job),
        Err(_) => format!(
            "undecodable:{}",
            record.message_id.as_deref().unwrap_or_default()
        ),
    }
}

fn decode(record: &SqsMessage) -> Result<SyncJob, serde_json::Error> {
    serde_json::from_str(record.body.as_deref().unwrap_or_default())
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Returns the indices of the group's records to report as failed.
async fn run_group(
    processor: &dyn ProcessJob,
    queue: &dyn Queue,
    records: &[SqsMessage],
    indices: &[usize],
    invocation_write_deadline: DateTime<Utc>,
) -> Vec<usize> {
    for (pos, &index) in indices.iter().enumerate() {
        let write_deadline = processor
            .own_write_deadline()
            .min(invocation_write_deadline);
        if Utc::now() >= invocation_write_deadline {
            tracing::info!(
                unprocessed = indices.len() - pos,
                "invocation time spent; returning the rest of the group unprocessed"
            );
            return_now(queue, records, &indices[pos..]).await;
            return indices[pos..].to_vec();
        }
        let record = &records[index];
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let job = match decode(record) {
            Ok(job) => job,
            Err(e) => {
                // Permanent: it cycles until the receive limit moves it to the
                // DLQ, where an admin can inspect it.
                tracing::error!(message_id, error = %e, "SQS record is not a SyncJob");
                return indices[pos..].to_vec();
            }
        };
        let count = receive_count(record);
        let span = tracing::info_span!("sqs_record", message_id, tenant = %job.tenant, ticket = %job.subject, receive_count = count);
        let delay = async {
            let outcome = processor.process(&job, count, write_deadline).await;
            if let JobOutcome::Failed { reason, .. } = &outcome {
                tracing::error!(%reason, "job failed");
            }
            match queue_action(outcome).send_first(queue).await {
                Settle::Delete => None,
                Settle::ReturnAfter(delay) => {
                    tracing::warn!(?delay, "job will be retried");
                    Some(delay)
                }
            }
        }
        .instrument(span.clone())
        .await;
        let Some(delay) = delay else { continue };

        // The rest of the group comes back with the failed record, in order.
        for &later in &indices[pos..] {
            if let Some(receipt) = records[later].receipt_handle.as_deref() {
                if let Err(e) = queue.retry_later(receipt, delay).await {
                    // Not fatal: the message still returns after the queue's
                    // visibility timeout, only later than asked.
                    tracing::warn!(parent: &span, error = %e, "could not change message visibility");
                }
            }
        }
        return indices[pos..].to_vec();
    }
    Vec::new()
}

/// Makes records visible again at once: they were never started.
async fn return_now(queue: &dyn Queue, records: &[SqsMessage], indices: &[usize]) {
    for &index in indices {
        if let Some(receipt) = records[index].receipt_handle.as_deref() {
            if let Err(e) = queue.retry_later(receipt, std::time::Duration::ZERO).await {
                tracing::warn!(error = %e, "could not return a record; it comes back after its visibility timeout");
            }
        }
    }
}

/// The Lambda handler body of the scheduled `reconcile` function (EventBridge
/// `rate(5 minutes)`; the event itself carries nothing it needs). A tenant
/// whose sweep failed is in the result and its sync log, and the next sweep
/// retries it; only a tenant list that cannot be read fails the invocation, so
/// that Lambda's own retry of an asynchronous invocation runs it again.
pub async fn handle_scheduled_sweep(sweeper: &Sweeper) -> Result<SweepSummary, StoreError> {
    let reports = sweeper
        .sweep_all()
        .instrument(tracing::info_span!("scheduled_sweep"))
        .await?;
    let summary = SweepSummary::of(&reports);
    tracing::info!(
        tenants = summary.tenants,
        desk_jobs = summary.desk_jobs,
        psa_jobs = summary.psa_jobs,
        tenants_failed = summary.tenants_failed.len(),
        "scheduled sweep finished"
    );
    Ok(summary)
}

/// Whether a scheduled invocation of `reconcile` asks for the asset
/// schedule (`{"assets": true}`, the input of its EventBridge asset rule)
/// rather than the reconciliation sweep.
pub fn is_asset_schedule(event: &serde_json::Value) -> bool {
    event.get("assets").and_then(serde_json::Value::as_bool) == Some(true)
}

/// The asset schedule in the `reconcile` function: every tenant whose asset
/// run is due today (its `schedule_days`, UTC) or was interrupted runs now,
/// none starting a PSA write after `deadline` (an interrupted run resumes on
/// the next invocation). Concurrency slots of the PSA budget are given back
/// before the function may be frozen.
pub async fn handle_scheduled_assets(
    wiring: &bridge::wiring::Wiring,
    deadline: DateTime<Utc>,
) -> Result<AssetScheduleSummary, StoreError> {
    let deps = AssetDeps {
        store: wiring.store.as_ref(),
        secrets: wiring.secrets.as_ref(),
        connectors: wiring.connectors.as_ref(),
        clock: wiring.clock.as_ref(),
    };
    let options = AssetRunOptions {
        deadline: Some(deadline),
        ..AssetRunOptions::default()
    };
    let summary = run_due_assets(deps, &options)
        .instrument(tracing::info_span!("scheduled_assets"))
        .await;
    wiring.connectors.give_back_held().await;
    let summary = summary?;
    tracing::info!(
        tenants = summary.runs.len(),
        failed = summary.failed(),
        "scheduled asset sync finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use bridge::error::QueueError;
    use bridge::model::{DeskTicketId, JobSubject, TenantId};
    use bridge::ports::Delivery;

    use super::*;

    /// Fails the jobs whose ticket id is listed; records every call.
    struct Scripted {
        fail: HashSet<String>,
        seen: Mutex<Vec<(String, u32)>>,
    }

    impl Scripted {
        fn failing(tickets: &[&str]) -> Self {
            Self {
                fail: tickets.iter().map(|t| (*t).to_owned()).collect(),
                seen: Mutex::new(Vec::new()),
            }
        }
        fn seen(&self) -> Vec<(String, u32)> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl ProcessJob for Scripted {
        fn own_write_deadline(&self) -> DateTime<Utc> {
            Utc::now() + chrono::Duration::seconds(25)
        }

        async fn process(&self, job: &SyncJob, receive_count: u32, _: DateTime<Utc>) -> JobOutcome {
            self.seen.lock().unwrap().push((
                format!("{}/{}", job.subject.id(), job.event_id),
                receive_count,
            ));
            // Yield so concurrent groups really interleave.
            tokio::task::yield_now().await;
            if !self.fail.contains(&job.subject.id()) {
                JobOutcome::Done
            } else if job.event_id.starts_with("perm") {
                JobOutcome::Failed {
                    reason: "missing mapping".into(),
                    retry_after: Duration::from_secs(300),
                }
            } else {
                JobOutcome::RetryAfter(Duration::from_secs(30))
            }
        }
    }

    /// Records visibility changes; the rest of the port is unused here.
    #[derive(Default)]
    struct Visibility(Mutex<Vec<(String, Duration)>>);

    #[async_trait]
    impl Queue for Visibility {
        async fn send(&self, _: &SyncJob) -> Result<(), QueueError> {
            unreachable!("the batch handler never sends")
        }
        async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, QueueError> {
            unreachable!("the batch handler never receives")
        }
        async fn complete(&self, _: &str) -> Result<(), QueueError> {
            unreachable!("Lambda deletes successful records itself")
        }
        async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
            self.0.lock().unwrap().push((receipt.to_owned(), delay));
            Ok(())
        }
    }

    fn record(n: usize, ticket: &str, event: &str) -> SqsMessage {
        let job = SyncJob {
            tenant: TenantId::parse("acme").unwrap(),
            subject: JobSubject::Desk(DeskTicketId(ticket.parse().unwrap())),
            desk_ticket_id: None,
            event_id: event.into(),
            received_at_ms: 0,
            change: bridge::model::ChangeHint::Unknown,
        };
        SqsMessage {
            message_id: Some(format!("m{n}")),
            receipt_handle: Some(format!("r{n}")),
            body: Some(serde_json::to_string(&job).unwrap()),
            attributes: HashMap::from([
                ("MessageGroupId".to_owned(), job.message_group()),
                (
                    "ApproximateReceiveCount".to_owned(),
                    (n % 3 + 1).to_string(),
                ),
            ]),
            ..SqsMessage::default()
        }
    }

    fn far_off() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_of_ten_with_three_failures_reports_exactly_those_three() {
        let records = (0..10)
            .map(|n| record(n, &format!("{n}"), &format!("e{n}")))
            .collect();
        let processor = Scripted::failing(&["2", "5", "9"]);
        let queue = Visibility::default();

        let response = process_batch(&processor, &queue, SqsEvent { records }, far_off()).await;

        assert_eq!(failures(&response), ["m2", "m5", "m9"]);
        assert_eq!(
            processor.seen().len(),
            10,
            "every record was processed once"
        );
        assert!(
            processor.seen().contains(&("4/e4".to_owned(), 2)),
            "receive count passed"
        );
        let mut changed = queue.0.lock().unwrap().clone();
        changed.sort();
        let thirty = Duration::from_secs(30);
        assert_eq!(
            changed,
            [
                ("r2".into(), thirty),
                ("r5".into(), thirty),
                ("r9".into(), thirty)
            ]
        );
    }

    #[tokio::test]
    async fn a_group_stops_at_its_first_failure_and_reports_the_rest() {
        let records = vec![
            record(0, "1", "e1"),
            record(1, "2", "perm-1"),
            record(2, "1", "e2"),
            record(3, "2", "e2"),
            record(4, "3", "e1"),
            record(5, "2", "e3"),
        ];
        let processor = Scripted::failing(&["2"]);
        let queue = Visibility::default();

        let response = process_batch(&processor, &queue, SqsEvent { records }, far_off()).await;

        assert_eq!(failures(&response), ["m1", "m3", "m5"]);
        let seen: Vec<String> = processor.seen().into_iter().map(|(j, _)| j).collect();
        assert!(!seen.contains(&"2/e2".to_owned()) && !seen.contains(&"2/e3".to_owned()));
        let pos = |j: &str| seen.iter().position(|s| s == j).unwrap();
        assert!(
            pos("1/e1") < pos("1/e2"),
            "in order within a group: {seen:?}"
        );
        assert!(pos("2/perm-1") < pos("1/e2"), "groups interleave: {seen:?}");
        let five_min = Duration::from_secs(300);
        let mut changed = queue.0.lock().unwrap().clone();
        changed.sort();
        assert_eq!(
            changed,
            [
                ("r1".into(), five_min),
                ("r3".into(), five_min),
                ("r5".into(), five_min)
            ]
        );
    }

    #[tokio::test]
    async fn an_undecodable_record_is_a_failure_of_its_own() {
        let mut bad = record(1, "24", "e1");
        bad.body = Some("{\"not\": \"a job\"}".into());
        let records = vec![record(0, "1", "e1"), bad, record(2, "24", "e2")];
        let processor = Scripted::failing(&[]);
        let queue = Visibility::default();

        let response = process_batch(&processor, &queue, SqsEvent { records }, far_off()).await;

        assert_eq!(
            failures(&response),
            ["m1", "m2"],
            "x/e2 waits behind the bad record"
        );
        assert_eq!(processor.seen().len(), 1);
        assert!(queue.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn records_not_started_before_the_invocation_deadline_come_back_at_once() {
        let records: Vec<_> = (0..3).map(|n| record(n, &format!("{n}"), "e")).collect();
        let queue = Visibility::default();
        let processor = Scripted::failing(&[]);

        let spent = Utc::now() - chrono::Duration::seconds(1);
        let response = process_batch(&processor, &queue, SqsEvent { records }, spent).await;

        assert!(processor.seen().is_empty(), "nothing started");
        assert_eq!(failures(&response).len(), 3);
        let returned = queue.0.lock().unwrap().clone();
        assert_eq!(returned.len(), 3);
        assert!(
            returned.iter().all(|(_, delay)| *delay == Duration::ZERO),
            "{returned:?}"
        );
    }

    #[test]
    fn the_write_deadline_leaves_room_for_the_last_write_and_the_answer() {
        let end = Utc::now() + chrono::Duration::seconds(60);
        let deadline = invocation_write_deadline(end.timestamp_millis() as u64);
        let reserve = (end - deadline).to_std().unwrap();
        assert!(
            reserve >= MAX_WRITE_DURATION + SETTLE_RESERVE,
            "{reserve:?}"
        );
    }

    #[test]
    fn only_the_asset_rule_input_selects_the_asset_schedule() {
        assert!(is_asset_schedule(&serde_json::json!({"assets": true})));
        for event in [
            serde_json::json!({}),
            serde_json::json!({"assets": false}),
            serde_json::json!({"assets": "true"}),
            // EventBridge's own scheduled-event envelope: the sweep.
            serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
        ] {
            assert!(!is_asset_schedule(&event), "{event}");
        }
    }
}
