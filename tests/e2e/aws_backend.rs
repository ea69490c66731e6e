//! A `World` backend on the AWS adapters against the local AWS emulator
//! (`AWS_ENDPOINT_URL`, set by `infra/test.sh`): per world a fresh DynamoDB
//! table, an SQS FIFO queue with a dead-letter queue, and one Secrets Manager
//! secret per tenant under a fresh prefix, so worlds never share state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use bridge::adapters::embedded::QueueDepth;
use bridge::config::TenantSecrets;
use bridge::error::QueueError;
use bridge::model::{SyncJob, TenantId};
use bridge::ports::{Delivery, Queue};
use bridge_aws::{DynamoStore, SecretsManagerSecrets, SqsQueue};
use testkit::world::{Backend, BackendParts, QueueProbe};

/// Receives before SQS moves a job to the DLQ: small, so a poisoned job gets
/// there within seconds, yet above 3 because the worker logs a transient
/// failure for an admin from the third receive on, which the retry test waits
/// for before it lets the job succeed.
pub const RECEIVE_LIMIT: u32 = 4;

/// Backstop only: the worker completes or reschedules every message itself,
/// so this applies to a worker that died holding one.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// What one `build` created, for tests that reach past the ports (the DLQ).
#[derive(Debug, Clone)]
pub struct Resources {
    pub queue_url: String,
    pub dlq_url: String,
    pub sqs: aws_sdk_sqs::Client,
}

/// Builds worlds on DynamoDB, SQS and Secrets Manager.
pub struct AwsBackend {
    created: Mutex<Option<Resources>>,
    receive_limit: u32,
    visibility: Duration,
}

impl Default for AwsBackend {
    fn default() -> Self {
        Self::with_queue(RECEIVE_LIMIT, VISIBILITY_TIMEOUT)
    }
}

impl AwsBackend {
    /// A backend whose job queue has this receive limit and visibility timeout.
    pub fn with_queue(receive_limit: u32, visibility: Duration) -> Self {
        Self {
            created: Mutex::new(None),
            receive_limit,
            visibility,
        }
    }

    /// The resources of the last world built.
    pub fn resources(&self) -> Resources {
        self.created
            .lock()
            .unwrap()
            .clone()
            .expect("build ran first")
    }
}

fn endpoint() -> anyhow::Result<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .context(
            "AWS_ENDPOINT_URL is not set: the AWS end-to-end tests need the local emulator; \
             run them with `bash infra/test.sh` (it starts the emulator and sets the variable)",
        )
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .context("create table")?;
    Ok(())
}

/// The job queue and its DLQ, shaped as template.yaml declares them.
async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    receive_limit: u32,
    visibility: Duration,
) -> anyhow::Result<(String, String)> {
    let fifo = |name: String| {
        sqs.create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
    };
    let dlq_url = fifo(format!("{name}-dlq.fifo"))
        .send()
        .await
        .context("create DLQ")?
        .queue_url
        .context("DLQ url")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("DLQ arn")?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("DLQ arn")?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": receive_limit,
    });
    let queue_url = fifo(format!("{name}.fifo"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .context("create queue")?
        .queue_url
        .context("queue url")?;
    Ok((queue_url, dlq_url))
}

#[async_trait::async_trait]
impl Backend for AwsBackend {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts> {
        let sdk = bridge_aws::aws_config(Some(&endpoint()?)).await;
        let (ddb, sqs) = (
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_sqs::Client::new(&sdk),
        );
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let name = unique("psa-e2e");
        let prefix = format!("{name}/secrets");

        create_table(&ddb, &name).await?;
        let (queue_url, dlq_url) =
            create_queues(&sqs, &name, self.receive_limit, self.visibility).await?;
        let secrets_port = SecretsManagerSecrets::new(sm.clone(), &prefix);
        for (tenant, values) in &secrets {
            sm.create_secret()
                .name(secrets_port.secret_name(tenant))
                .secret_string(testkit::fakes::secret_document(values))
                .send()
                .await
                .with_context(|| format!("create the secret of {tenant}"))?;
        }

        *self.created.lock().unwrap() = Some(Resources {
            queue_url: queue_url.clone(),
            dlq_url: dlq_url.clone(),
            sqs: sqs.clone(),
        });
        Ok(BackendParts {
            store: Arc::new(DynamoStore::new(ddb, name)),
            queue: Arc::new(ShortPolls(SqsQueue::new(sqs.clone(), &queue_url))),
            secrets: Arc::new(secrets_port),
            probe: Arc::new(SqsProbe {
                sqs,
                queue_url,
                dlq_url,
            }),
        })
    }
}

/// The SQS queue with each long poll done as short polls. moto's long poll
/// (a) busy-waits while a visible message sits behind an in-flight one of
/// its FIFO group, eating a core, and (b) decides which groups are blocked
/// when the poll starts, so a lane's next job waits out the whole poll even
/// after its predecessor completed. Real SQS does neither; long polling
/// itself is checked by the queue contract (`emulator.rs`).
struct ShortPolls(SqsQueue);

const SHORT_POLL_GAP: Duration = Duration::from_millis(25);

#[async_trait::async_trait]
impl Queue for ShortPolls {
    async fn send(&self, job: &SyncJob) -> Result<(), QueueError> {
        self.0.send(job).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self.0.receive(max, Duration::ZERO).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(SHORT_POLL_GAP).await;
        }
    }

    async fn complete(&self, receipt: &str) -> Result<(), QueueError> {
        self.0.complete(receipt).await
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.0.retry_later(receipt, delay).await
    }
}

/// Queue depth from SQS's approximate counts (exact on the emulator).
pub struct SqsProbe {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsProbe {
    async fn counts(&self, url: &str) -> anyhow::Result<(u64, u64)> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .context("GetQueueAttributes")?
            .attributes
            .unwrap_or_default();
        let count = |name: &QueueAttributeName| -> anyhow::Result<u64> {
            let value = attributes
                .get(name)
                .with_context(|| format!("{name} missing"))?;
            Ok(value.parse()?)
        };
        Ok((
            count(&QueueAttributeName::ApproximateNumberOfMessages)?,
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        ))
    }
}

#[async_trait::async_trait]
impl QueueProbe for SqsProbe {
    async fn depth(&self) -> anyhow::Result<QueueDepth> {
        let (main, dead) = tokio::join!(self.counts(&self.queue_url), self.counts(&self.dlq_url));
        let ((visible, in_flight), (dead_visible, dead_in_flight)) = (main?, dead?);
        Ok(QueueDepth {
            visible,
            in_flight,
            dead: dead_visible + dead_in_flight,
        })
    }
}

/// Moves every message of the DLQ back to the job queue, as an admin does
/// once the cause is fixed; returns how many. Each gets a new event id: the
/// queue would drop a resend under its original deduplication id.
pub async fn redrive(resources: &Resources) -> anyhow::Result<usize> {
    let dlq = SqsQueue::new(resources.sqs.clone(), &resources.dlq_url);
    let queue = SqsQueue::new(resources.sqs.clone(), &resources.queue_url);
    let mut moved = 0;
    loop {
        let batch = dlq.receive(10, Duration::ZERO).await?;
        if batch.is_empty() {
            return Ok(moved);
        }
        for delivery in batch {
            let mut job = delivery.job;
            job.event_id = format!("{}:redriven", job.event_id);
            queue.send(&job).await?;
            dlq.complete(&delivery.receipt).await?;
            moved += 1;
        }
    }
}
