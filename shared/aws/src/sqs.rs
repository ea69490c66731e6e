//! `Queue` on an SQS FIFO queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;
use bridge::error::QueueError;
use bridge::model::SyncJob;
use bridge::ports::{Delivery, Queue};
use sha2::{Digest, Sha256};

/// SQS caps a message's visibility timeout at 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS returns at most 10 messages per receive.
const MAX_BATCH: usize = 10;
/// SQS long polling waits at most 20 seconds.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// The job queue on SQS FIFO. Holds only a client and a URL: cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            url: queue_url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn receive_one(
        &self,
        wait: Duration,
    ) -> Result<Option<aws_sdk_sqs::types::Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", &e))?;
        Ok(out.messages.and_then(|m| m.into_iter().next()))
    }
}

fn unavailable<E, R>(op: &str, err: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(format!("SQS {op}: {}", DisplayErrorContext(err)))
}

fn encode(job: &SyncJob) -> Result<String, QueueError> {
    serde_json::to_string(job).map_err(|e| QueueError::Invalid(e.to_string()))
}

/// SQS allows 1 to 128 characters of ASCII letters, digits and punctuation in
/// group and deduplication ids.
fn sqs_id_ok(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The job's message group; readable when SQS accepts it as it is, otherwise
/// a stable hash (still one group per ticket).
pub fn group_id(job: &SyncJob) -> String {
    let group = job.message_group();
    if sqs_id_ok(&group) {
        group
    } else {
        format!("h:{}", sha256_hex(&group))
    }
}

/// Always hashed: event ids come from outside and may be long or use any
/// characters; a hash is fixed-size, valid and still one id per event.
pub fn dedup_id(job: &SyncJob) -> String {
    sha256_hex(&job.dedup_id())
}

/// A fresh deduplication id for sending a dead-lettered job back: the
/// original one may still be in the queue's deduplication window, which
/// would drop the resend. `receipt` is the handle of the receive that took
/// the message from the DLQ, new on every receive.
pub fn replay_dedup_id(message_id: &str, receipt: &str) -> String {
    sha256_hex(&format!("replay:{message_id}:{receipt}"))
}

fn to_delivery(message: &aws_sdk_sqs::types::Message) -> Option<Delivery> {
    let id = message.message_id().unwrap_or_default();
    let Some(receipt) = message.receipt_handle() else {
        tracing::warn!(message_id = id, "SQS message without receipt handle");
        return None;
    };
    let job = match serde_json::from_str::<SyncJob>(message.body().unwrap_or_default()) {
        Ok(job) => job,
        Err(e) => {
            // Not deleted: left invisible, it reaches the DLQ after the
            // receive limit, where an admin can look at it.
            tracing::error!(message_id = id, error = %e, "SQS message is not a SyncJob; left for the DLQ");
            return None;
        }
    };
    let receive_count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Some(Delivery {
        receipt: receipt.to_owned(),
        job,
        receive_count,
    })
}

/// Rounded up, so a sub-second delay still hides the message briefly.
fn visibility_secs(delay: Duration) -> i32 {
    let delay = delay.min(MAX_VISIBILITY);
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    i32::try_from(secs.min(MAX_VISIBILITY.as_secs())).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %job.tenant, ticket = %job.subject))]
    async fn send(&self, job: &SyncJob) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(encode(job)?)
            .message_group_id(group_id(job))
            .message_deduplication_id(dedup_id(job))
            .send()
            .await
            .map_err(|e| unavailable("SendMessage", &e))?;
        Ok(())
    }

    /// One message per ReceiveMessage call: SQS may put several messages of
    /// one group into a batch, but the port promises at most one delivery
    /// per group in flight (consumers run a batch's jobs concurrently), and
    /// SQS itself holds back a group while its message is in flight. Only the
    /// first call long-polls; the rest fill the batch with what is ready.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, MAX_BATCH);
        let mut wait = wait.min(MAX_WAIT);
        let mut deliveries = Vec::new();
        for _ in 0..max {
            let message = match self.receive_one(wait).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                // Those already received are in flight: hand them out rather
                // than let them time out.
                Err(e) if !deliveries.is_empty() => {
                    tracing::warn!(error = %e, "SQS receive failed mid-batch");
                    break;
                }
                Err(e) => return Err(e),
            };
            wait = Duration::ZERO;
            deliveries.extend(to_delivery(&message));
        }
        Ok(deliveries)
    }

    async fn complete(&self, receipt: &str) -> Result<(), QueueError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid()) =>
            {
                Err(QueueError::Invalid(format!(
                    "SQS DeleteMessage: {}",
                    DisplayErrorContext(&e)
                )))
            }
            Err(e) => Err(unavailable("DeleteMessage", &e)),
        }
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(delay))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The message is back in the queue already (or gone): nothing to
            // retry, and retrying this call cannot help either.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()
                }) =>
            {
                Err(QueueError::Invalid(format!(
                    "SQS ChangeMessageVisibility: {}",
                    DisplayErrorContext(&e)
                )))
            }
            Err(e) => Err(unavailable("ChangeMessageVisibility", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bridge::model::{DeskTicketId, JobSubject, TenantId};

    use super::*;

    fn job(ticket: &str, event: &str) -> SyncJob {
        SyncJob {
            tenant: TenantId::parse("acme").unwrap(),
            subject: JobSubject::Desk(DeskTicketId(ticket.parse().unwrap())),
            desk_ticket_id: None,
            event_id: event.into(),
            received_at_ms: 0,
            change: bridge::model::ChangeHint::Unknown,
        }
    }

    #[test]
    fn ids_are_valid_for_sqs_whatever_the_input() {
        let plain = job("123", "evt-1");
        assert_eq!(group_id(&plain), "acme:zendesk:123");
        assert_eq!(dedup_id(&plain).len(), 64);
        assert_eq!(dedup_id(&plain), dedup_id(&job("999", "evt-1")));
        assert_ne!(dedup_id(&plain), dedup_id(&job("123", "evt-2")));

        // Ticket ids are numbers now, but tenants are up to 64 characters and
        // event ids are whatever the caller sent.
        let mut odd = job(&u64::MAX.to_string(), &"ü".repeat(500));
        odd.tenant = TenantId::parse(&"t".repeat(64)).unwrap();
        assert!(sqs_id_ok(&group_id(&odd)), "{}", group_id(&odd));
        assert!(sqs_id_ok(&dedup_id(&odd)));
        let other_event = SyncJob {
            event_id: "other".into(),
            ..odd.clone()
        };
        assert_eq!(group_id(&odd), group_id(&other_event));
    }

    #[test]
    fn visibility_is_rounded_up_and_clamped_to_twelve_hours() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(90)), 90);
        assert_eq!(visibility_secs(Duration::from_secs(13 * 3600)), 43_200);
        assert_eq!(visibility_secs(Duration::MAX), 43_200);
    }
}
