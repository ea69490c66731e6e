//! psa-bridge on AWS: the ports implemented on DynamoDB (`Store`), SQS FIFO
//! (`Queue`) and Secrets Manager (`Secrets`), plus the worker's Lambda SQS
//! batch handling. A function's `main` builds [`AwsAdapters`] once per cold
//! start and hands them to the shared handlers.

pub mod dynamo;
pub mod lambda;
pub mod secrets;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use bridge::ingest::IngestState;
use bridge::ports::SystemClock;
use thiserror::Error;

pub use dynamo::DynamoStore;
pub use secrets::SecretsManagerSecrets;
pub use sqs::SqsQueue;

/// SDK configuration from the environment (region, credentials, as the AWS
/// SDK finds them). `endpoint_url`, or else `AWS_ENDPOINT_URL`, points every
/// client at a local emulator instead of AWS.
pub async fn aws_config(endpoint_url: Option<&str>) -> SdkConfig {
    let endpoint = endpoint_url
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|url| !url.is_empty());
    // Only the connect timeout is bounded: SQS long polls legitimately keep
    // a request open for up to 20 seconds.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Logs for CloudWatch: one JSON object per line, no colour codes, level from
/// `RUST_LOG` (default `info`). Spans carry tenant and ticket ids into every
/// line. Call once, first thing in a function's `main`.
pub fn init_lambda_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init`: a second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_env_filter(filter)
        // CloudWatch stamps each line itself.
        .without_time()
        .with_current_span(false)
        .try_init();
}

/// A required setting is missing from a function's environment.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "environment variable {name} is not set: {purpose} (template.yaml sets it on every function)"
)]
pub struct ConfigError {
    pub name: &'static str,
    pub purpose: &'static str,
}

/// Where a function finds its AWS resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// SQS FIFO queue URL (`QUEUE_URL`).
    pub queue_url: String,
    /// Secrets Manager name prefix; a tenant's secret is `{prefix}/{tenant}` (`SECRETS_PREFIX`).
    pub secrets_prefix: String,
}

/// Reads `TABLE_NAME`, `QUEUE_URL` and `SECRETS_PREFIX`.
pub fn config_from_env() -> Result<AwsSettings, ConfigError> {
    config_from(|name| std::env::var(name).ok())
}

fn config_from(var: impl Fn(&str) -> Option<String>) -> Result<AwsSettings, ConfigError> {
    let get = |name: &'static str, purpose: &'static str| {
        var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError { name, purpose })
    };
    Ok(AwsSettings {
        table_name: get("TABLE_NAME", "the DynamoDB table name")?,
        queue_url: get("QUEUE_URL", "the URL of the SQS FIFO job queue")?,
        secrets_prefix: get(
            "SECRETS_PREFIX",
            "the Secrets Manager name prefix of tenant secrets",
        )?,
    })
}

/// The three adapters, built once per process and shared by every invocation.
#[derive(Clone)]
pub struct AwsAdapters {
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    pub secrets: Arc<SecretsManagerSecrets>,
}

impl AwsAdapters {
    pub fn new(sdk: &SdkConfig, settings: &AwsSettings) -> Self {
        Self {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &settings.table_name,
            )),
            queue: Arc::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                &settings.queue_url,
            )),
            secrets: Arc::new(SecretsManagerSecrets::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                &settings.secrets_prefix,
            )),
        }
    }

    /// Settings from the environment, SDK config as [`aws_config`] builds it.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = config_from_env()?;
        Ok(Self::new(&aws_config(None).await, &settings))
    }

    /// What the ingest routers need, on the wall clock.
    pub fn ingest_state(&self) -> IngestState {
        IngestState {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            queue: self.queue.clone(),
            clock: Arc::new(SystemClock),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn settings_name_the_missing_variable() {
        let env = HashMap::from([
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", " "),
            ("SECRETS_PREFIX", "p/"),
        ]);
        let err = config_from(|n| env.get(n).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, "QUEUE_URL");
        assert!(err.to_string().contains("QUEUE_URL is not set"), "{err}");

        let env = HashMap::from([
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", "q"),
            ("SECRETS_PREFIX", "p"),
        ]);
        let settings = config_from(|n| env.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(settings.table_name, "t");
        assert_eq!(settings.queue_url, "q");
        assert_eq!(settings.secrets_prefix, "p");
    }
}
