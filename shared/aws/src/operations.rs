//! What the admin console asks of the running bridge, in AWS: "Sync now"
//! (one tenant's reconciliation sweep, run inside the `admin` Lambda by the
//! same `Sweeper` the `reconcile` Lambda runs, queueing on the real job
//! queue), the tenant's jobs in the SQS dead-letter queue and replaying one
//! of them ([`AwsOperations`]); and asset sync on request, the setup check
//! and a run now through the Lambda's connectors, the tenant's shared PSA
//! budget and Secrets Manager ([`AwsAssetOperations`]).
//!
//! Everything here answers within the HTTP API's 30 s: a sweep is abandoned
//! after [`SYNC_NOW_TIMEOUT`], an asset run starts no PSA write after
//! [`ASSET_RUN_TIME`] (the schedule's next pass resumes it), and the budget's
//! concurrency slots are given back before the answer, since the instance
//! may be frozen as soon as it has answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use admin::ops::{asset_run_error, dead_letter_log, dead_letter_reason};
use admin::{AssetOperations, DeadLetter, Operations, OpsError};
use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use bridge::assets::{
    check_tenant_assets, run_tenant_assets, AssetDeps, AssetRunOptions, AssetRunSummary,
};
use bridge::model::{SyncJob, TenantId};
use bridge::ports::{Clock, Connectors, Secrets, Store};
use bridge::reconcile::Sweeper;
use bridge::repo::Repo;
use bridge::wiring::Wiring;
use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::Instrument;

use crate::sqs;

/// "Sync now" gives up on a sweep after this, well inside the HTTP API's
/// 30 s; the scheduled sweep goes on from the last position it saved.
pub const SYNC_NOW_TIMEOUT: Duration = Duration::from_secs(20);
/// "Sync assets now" starts no PSA write after this; an unfinished run
/// answers `finished: false` and the schedule's next pass resumes it.
pub const ASSET_RUN_TIME: Duration = admin::ops::ASSET_RUN_ON_REQUEST;
/// Messages of the dead-letter queue one listing or replay looks at.
pub const MAX_DEAD_LETTERS: usize = 100;
/// How long a scan hides the messages it received from other receives.
/// Backstop only: a scan makes them visible again as soon as it is done.
const SCAN_HOLD_SECS: i32 = 30;
/// SQS returns and changes at most 10 messages per call.
const SQS_BATCH: usize = 10;

/// A dead-letter queue call that failed. Never carries a message body.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeadLetterQueueError {
    #[error("SQS {op} failed: {detail}")]
    Sqs {
        op: &'static str,
        detail: String,
        retryable: bool,
    },
    /// The job is back on the job queue, but its dead letter is still there.
    #[error(
        "the job is back on the queue, but removing it from the dead-letter queue failed \
         ({detail}); it is still listed, and replaying it again only runs it once more"
    )]
    NotRemoved { detail: String },
}

impl DeadLetterQueueError {
    pub fn is_retryable(&self) -> bool {
        match self {
            DeadLetterQueueError::Sqs { retryable, .. } => *retryable,
            DeadLetterQueueError::NotRemoved { .. } => true,
        }
    }
}

impl From<DeadLetterQueueError> for OpsError {
    fn from(error: DeadLetterQueueError) -> Self {
        OpsError::Failed {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}

/// Throttling and SQS's own failures pass; a refused call (access denied,
/// no such queue, a bad request) does not heal by retrying.
fn sqs_error<E, R>(op: &'static str, error: &SdkError<E, R>) -> DeadLetterQueueError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let retryable = match error {
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ThrottlingException"
                    | "RequestThrottled"
                    | "AWS.SimpleQueueService.RequestThrottled"
                    | "KmsThrottled"
                    | "ServiceUnavailable"
                    | "InternalError"
                    | "InternalFailure"
            )
        ),
        _ => true,
    };
    DeadLetterQueueError::Sqs {
        op,
        detail: DisplayErrorContext(error).to_string(),
        retryable,
    }
}

fn store_failed(error: bridge::error::StoreError) -> OpsError {
    OpsError::Failed {
        retryable: error.is_retryable(),
        message: error.to_string(),
    }
}

/// A message of the dead-letter queue, received (and hidden) by a scan.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    receipt: String,
    body: String,
    sent_at: DateTime<Utc>,
}

impl Held {
    /// The job it carries, when it is one (the worker leaves undecodable
    /// messages to the DLQ too; they belong to no tenant).
    fn job(&self) -> Option<SyncJob> {
        serde_json::from_str(&self.body).ok()
    }

    fn job_of(&self, tenant: &TenantId) -> Option<SyncJob> {
        self.job().filter(|job| &job.tenant == tenant)
    }
}

/// "Sync now", dead letters and replay on the AWS adapters.
pub struct AwsOperations {
    store: Arc<dyn Store>,
    connectors: Arc<dyn Connectors>,
    sweeper: Sweeper,
    sqs: Client,
    queue_url: String,
    dead_letter_queue_url: String,
    sync_now_timeout: Duration,
}

impl AwsOperations {
    /// Over `wiring` (whose queue is the SQS job queue at `queue_url`), its
    /// sweeper and connectors; dead letters read from
    /// `dead_letter_queue_url`, the job queue's redrive target.
    pub fn new(
        wiring: &Wiring,
        sqs: Client,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            store: wiring.store.clone(),
            connectors: wiring.connectors.clone(),
            sweeper: wiring.sweeper(),
            sqs,
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
            sync_now_timeout: SYNC_NOW_TIMEOUT,
        }
    }

    /// Gives up on a "Sync now" sweep after `timeout` (default
    /// [`SYNC_NOW_TIMEOUT`]).
    pub fn with_sync_now_timeout(mut self, timeout: Duration) -> Self {
        self.sync_now_timeout = timeout;
        self
    }

    /// Receives up to [`MAX_DEAD_LETTERS`] messages of the DLQ. Each receive
    /// hides what it returned for the scan's length, so that the next one
    /// returns further messages: a FIFO queue answers receives that hide
    /// nothing with the same oldest messages again. The caller makes them
    /// visible again ([`Self::release`]) or deletes them; nothing is
    /// consumed otherwise, and a scan that dies leaves them hidden for
    /// [`SCAN_HOLD_SECS`] at most.
    async fn hold_dead_letters(&self) -> Result<Vec<Held>, DeadLetterQueueError> {
        let mut held: Vec<Held> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        // Bounded: every pass but the last adds at least one message.
        for _ in 0..MAX_DEAD_LETTERS.div_ceil(SQS_BATCH) + 1 {
            let room = MAX_DEAD_LETTERS - held.len();
            if room == 0 {
                tracing::warn!(
                    shown = MAX_DEAD_LETTERS,
                    "the dead-letter queue holds more messages than one listing shows"
                );
                break;
            }
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.dead_letter_queue_url)
                .max_number_of_messages(room.min(SQS_BATCH) as i32)
                .visibility_timeout(SCAN_HOLD_SECS)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    self.release(&held).await;
                    return Err(sqs_error("ReceiveMessage", &e));
                }
            };
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle())
                else {
                    continue;
                };
                // Received twice (its hold ran out mid-scan): only the
                // newest receipt handle is valid.
                if let Some(&i) = index_of.get(id) {
                    held[i].receipt = receipt.to_owned();
                    continue;
                }
                let sent_at = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or_default();
                index_of.insert(id.to_owned(), held.len());
                held.push(Held {
                    id: id.to_owned(),
                    receipt: receipt.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    sent_at,
                });
            }
        }
        Ok(held)
    }

    /// Makes held messages visible again at once. Best effort: one that
    /// stays hidden comes back when its hold runs out.
    async fn release(&self, held: &[Held]) {
        for chunk in held.chunks(SQS_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&h.receipt)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if !out.failed().is_empty() => tracing::warn!(
                    failed = out.failed().len(),
                    "some dead letters stay hidden until their hold runs out"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %sqs_error("ChangeMessageVisibilityBatch", &e),
                    "dead letters stay hidden until their hold runs out"
                ),
            }
        }
    }

    /// Sends a dead letter's body back to the job queue as the ingest sent
    /// it (its ticket's message group), under a fresh deduplication id.
    async fn resend(&self, held: &Held, job: &SyncJob) -> Result<(), DeadLetterQueueError> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&held.body)
            .message_group_id(sqs::group_id(job))
            .message_deduplication_id(sqs::replay_dedup_id(&held.id, &held.receipt))
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", &e))?;
        Ok(())
    }
}

#[async_trait]
impl Operations for AwsOperations {
    async fn sync_now(&self, tenant: &TenantId) -> Result<String, OpsError> {
        let span = tracing::info_span!("console_sync_now", tenant = %tenant);
        async {
            let config = Repo::new(self.store.as_ref())
                .tenant(tenant)
                .await
                .map_err(store_failed)?
                .ok_or(OpsError::NotFound)?;
            let swept = tokio::time::timeout(
                self.sync_now_timeout,
                self.sweeper.sweep_tenant(&config.value),
            )
            .await;
            // The instance may be frozen once the console has answered.
            self.connectors.give_back_held().await;
            match swept {
                Ok(report) => Ok(report.to_string()),
                Err(_) => {
                    tracing::warn!("sync now: the sweep did not finish in time");
                    Err(OpsError::Failed {
                        message: format!(
                            "the sweep did not finish within {} s (a slow Zendesk or PSA); \
                             the scheduled sweep goes on from the last saved position",
                            self.sync_now_timeout.as_secs()
                        ),
                        retryable: true,
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn dead_letters(&self, tenant: &TenantId) -> Result<Vec<DeadLetter>, OpsError> {
        let span = tracing::info_span!("console_dead_letters", tenant = %tenant);
        async {
            let held = self.hold_dead_letters().await?;
            self.release(&held).await;
            let mine: Vec<(Held, SyncJob)> = held
                .into_iter()
                .filter_map(|h| h.job_of(tenant).map(|job| (h, job)))
                .collect();
            if mine.is_empty() {
                return Ok(Vec::new());
            }
            let log = dead_letter_log(self.store.as_ref(), tenant).await;
            let mut listed: Vec<DeadLetter> = mine
                .into_iter()
                .map(|(held, job)| {
                    // The worker logs a job's failures under its subject's name.
                    let ticket = job.subject.to_string();
                    DeadLetter {
                        reason: dead_letter_reason(&log, &ticket),
                        id: held.id,
                        ticket,
                        at: held.sent_at,
                    }
                })
                .collect();
            listed.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
            Ok(listed)
        }
        .instrument(span)
        .await
    }

    async fn replay(&self, tenant: &TenantId, id: &str) -> Result<(), OpsError> {
        let span = tracing::info_span!("console_replay", tenant = %tenant, message_id = id);
        async {
            let mut held = self.hold_dead_letters().await?;
            // Only this tenant's own dead letters: another's is "not found".
            let found = held
                .iter()
                .position(|h| h.id == id)
                .and_then(|i| held[i].job_of(tenant).map(|job| (i, job)));
            let Some((index, job)) = found else {
                self.release(&held).await;
                return Err(OpsError::NotFound);
            };
            let target = held.swap_remove(index);
            self.release(&held).await;
            // Deleted only once it is safely back on the job queue.
            if let Err(e) = self.resend(&target, &job).await {
                self.release(std::slice::from_ref(&target)).await;
                return Err(e.into());
            }
            if let Err(e) = self
                .sqs
                .delete_message()
                .queue_url(&self.dead_letter_queue_url)
                .receipt_handle(&target.receipt)
                .send()
                .await
            {
                let detail = sqs_error("DeleteMessage", &e).to_string();
                tracing::warn!(%detail, "replayed, but the dead letter was not removed");
                return Err(DeadLetterQueueError::NotRemoved { detail }.into());
            }
            tracing::info!(ticket = %job.subject, "dead letter sent back to the job queue");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// Asset sync on request through the Lambda's connectors, budget, secrets
/// and clock, as the schedule's pass in `reconcile` runs it.
pub struct AwsAssetOperations {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    connectors: Arc<dyn Connectors>,
    clock: Arc<dyn Clock>,
    run_time: Duration,
}

impl AwsAssetOperations {
    pub fn new(wiring: &Wiring) -> Self {
        Self {
            store: wiring.store.clone(),
            secrets: wiring.secrets.clone(),
            connectors: wiring.connectors.clone(),
            clock: wiring.clock.clone(),
            run_time: ASSET_RUN_TIME,
        }
    }

    /// A run starts no PSA write later than `run_time` after it began
    /// (default [`ASSET_RUN_TIME`]).
    pub fn with_run_time(mut self, run_time: Duration) -> Self {
        self.run_time = run_time;
        self
    }

    fn deps(&self) -> AssetDeps<'_> {
        AssetDeps {
            store: self.store.as_ref(),
            secrets: self.secrets.as_ref(),
            connectors: self.connectors.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

#[async_trait]
impl AssetOperations for AwsAssetOperations {
    async fn check_assets(&self, tenant: &TenantId) -> Result<Vec<String>, OpsError> {
        let span = tracing::info_span!("console_check_assets", tenant = %tenant);
        let checked = check_tenant_assets(self.deps(), tenant)
            .instrument(span)
            .await;
        self.connectors.give_back_held().await;
        checked.map_err(asset_run_error)
    }

    async fn sync_assets(&self, tenant: &TenantId) -> Result<AssetRunSummary, OpsError> {
        let span = tracing::info_span!("console_sync_assets", tenant = %tenant);
        let run_time =
            chrono::Duration::from_std(self.run_time).unwrap_or(chrono::Duration::zero());
        let options = AssetRunOptions {
            deadline: Some(self.clock.now() + run_time),
            ..AssetRunOptions::default()
        };
        let run = run_tenant_assets(self.deps(), tenant, &options)
            .instrument(span)
            .await;
        self.connectors.give_back_held().await;
        run.map_err(asset_run_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_queue_errors_say_whether_to_retry() {
        let refused = DeadLetterQueueError::Sqs {
            op: "ReceiveMessage",
            detail: "AccessDenied".into(),
            retryable: false,
        };
        assert_eq!(
            OpsError::from(refused),
            OpsError::Failed {
                message: "SQS ReceiveMessage failed: AccessDenied".into(),
                retryable: false
            }
        );
        let kept = DeadLetterQueueError::NotRemoved {
            detail: "timeout".into(),
        };
        assert!(kept.is_retryable());
        assert!(kept.to_string().contains("back on the queue"), "{kept}");
    }
}
