//! psa-bridge on AWS: the ports implemented on DynamoDB (`Store`), SQS FIFO
//! (`Queue`), Secrets Manager (`Secrets`) and SES (the admin console's
//! `Mailer`), plus the worker's Lambda SQS batch handling. A function's
//! `main` builds the [`wiring`] (the admin console: [`console`]) once per
//! cold start and hands what it needs to the shared handlers.

pub mod console;
pub mod dynamo;
pub mod lambda;
pub mod operations;
pub mod secrets;
pub mod ses;
pub mod sqs;
#[cfg(test)]
mod template_timing;

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use bridge::connectors::budget::{AutotaskBudget, BudgetLimit};
use bridge::connectors::connectwise_default_budget;
use bridge::ingest::IngestState;
use bridge::ports::SystemClock;
use bridge::wiring::Wiring;
use thiserror::Error;

pub use dynamo::DynamoStore;
pub use secrets::SecretsManagerSecrets;
pub use ses::SesMailer;
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

/// A function's environment lacks a setting or holds one it cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "environment variable {name} is not set: {purpose} (template.yaml sets it on every function)"
    )]
    Missing {
        name: &'static str,
        purpose: &'static str,
    },
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl ConfigError {
    /// The variable at fault.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigError::Missing { name, .. } | ConfigError::Invalid { name, .. } => name,
        }
    }
}

/// Where a function finds its AWS resources, and how hard it may use Autotask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// SQS FIFO queue URL (`QUEUE_URL`).
    pub queue_url: String,
    /// Secrets Manager name prefix; a tenant's secret is `{prefix}/{tenant}` (`SECRETS_PREFIX`).
    pub secrets_prefix: String,
    /// Each tenant's Autotask budget, shared by every function instance
    /// through the table: `AUTOTASK_REQUESTS_PER_HOUR` and
    /// `AUTOTASK_MAX_CONCURRENT` (optional; defaults 9,000 and 3).
    pub autotask_budget: AutotaskBudget,
    /// Each ConnectWise tenant's budget: `CONNECTWISE_REQUESTS_PER_HOUR` and
    /// `CONNECTWISE_MAX_CONCURRENT` (optional; defaults 30,000 and 5).
    pub connectwise_budget: AutotaskBudget,
}

/// Reads `TABLE_NAME`, `QUEUE_URL`, `SECRETS_PREFIX` and the optional
/// Autotask budget variables.
pub fn config_from_env() -> Result<AwsSettings, ConfigError> {
    config_from(|name| std::env::var(name).ok())
}

fn config_from(var: impl Fn(&str) -> Option<String>) -> Result<AwsSettings, ConfigError> {
    let value = |name: &str| {
        var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &'static str, purpose: &'static str| {
        value(name).ok_or(ConfigError::Missing { name, purpose })
    };
    let (autotask_budget, connectwise_budget) = budgets_from(&var)?;
    Ok(AwsSettings {
        table_name: required("TABLE_NAME", "the DynamoDB table name")?,
        queue_url: required("QUEUE_URL", "the URL of the SQS FIFO job queue")?,
        secrets_prefix: required(
            "SECRETS_PREFIX",
            "the Secrets Manager name prefix of tenant secrets",
        )?,
        autotask_budget,
        connectwise_budget,
    })
}

/// Each PSA's per-tenant budget from `AUTOTASK_REQUESTS_PER_HOUR`,
/// `AUTOTASK_MAX_CONCURRENT`, `CONNECTWISE_REQUESTS_PER_HOUR` and
/// `CONNECTWISE_MAX_CONCURRENT` (optional; their defaults when unset).
pub(crate) fn budgets_from(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<(AutotaskBudget, AutotaskBudget), ConfigError> {
    let value = |name: &str| {
        var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    // Optional, but a value that is there must be a whole number: a typo
    // must not silently become the default.
    let number = |name: &'static str, default: u64| match value(name) {
        None => Ok(default),
        Some(raw) => raw.parse::<u64>().map_err(|_| ConfigError::Invalid {
            name,
            value: raw,
            expected: "a whole number above 0",
        }),
    };
    let budget = |rate_name: &'static str,
                  concurrency_name: &'static str,
                  defaults: AutotaskBudget|
     -> Result<AutotaskBudget, ConfigError> {
        let requests_per_hour = number(rate_name, u64::from(defaults.requests_per_hour))?;
        let max_concurrent = number(concurrency_name, defaults.max_concurrent as u64)?;
        AutotaskBudget::with_limits(requests_per_hour, max_concurrent).map_err(|limit| {
            let (name, value) = match limit {
                BudgetLimit::RequestsPerHour => (rate_name, requests_per_hour),
                BudgetLimit::MaxConcurrent => (concurrency_name, max_concurrent),
            };
            ConfigError::Invalid {
                name,
                value: value.to_string(),
                expected: "a whole number above 0",
            }
        })
    };
    let autotask_budget = budget(
        "AUTOTASK_REQUESTS_PER_HOUR",
        "AUTOTASK_MAX_CONCURRENT",
        AutotaskBudget::default(),
    )?;
    let connectwise_budget = budget(
        "CONNECTWISE_REQUESTS_PER_HOUR",
        "CONNECTWISE_MAX_CONCURRENT",
        connectwise_default_budget(),
    )?;
    Ok((autotask_budget, connectwise_budget))
}

/// The store, queue and secrets adapters on DynamoDB, SQS and Secrets Manager.
fn adapters(
    sdk: &SdkConfig,
    settings: &AwsSettings,
) -> (Arc<DynamoStore>, Arc<SqsQueue>, Arc<SecretsManagerSecrets>) {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &settings.table_name,
    ));
    let queue = Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(sdk),
        &settings.queue_url,
    ));
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        &settings.secrets_prefix,
    ));
    (store, queue, secrets)
}

/// The AWS adapters wired to the bridge, built once per cold start and
/// shared by every invocation.
pub fn wiring(sdk: &SdkConfig, settings: &AwsSettings) -> Wiring {
    let (store, queue, secrets) = adapters(sdk, settings);
    Wiring::with_budgets(
        store,
        queue,
        secrets,
        settings.autotask_budget.clone(),
        settings.connectwise_budget.clone(),
    )
}

/// [`wiring`] from the environment, SDK config as [`aws_config`] builds it.
pub async fn wiring_from_env() -> Result<Wiring, ConfigError> {
    let settings = config_from_env()?;
    Ok(wiring(&aws_config(None).await, &settings))
}

/// What the ingest functions need, from the environment. Not through
/// [`wiring`]: ingest never calls Zendesk or Autotask, so its cold start
/// builds no HTTP client and its binary links no connectors.
pub async fn ingest_state_from_env() -> Result<IngestState, ConfigError> {
    let settings = config_from_env()?;
    let (store, queue, secrets) = adapters(&aws_config(None).await, &settings);
    Ok(IngestState {
        store,
        secrets,
        queue,
        clock: Arc::new(SystemClock),
    })
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
        assert_eq!(err.name(), "QUEUE_URL");
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
        assert_eq!(settings.autotask_budget, AutotaskBudget::default());
    }

    #[test]
    fn autotask_budget_comes_from_the_environment_and_typos_are_refused() {
        let base = [
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", "q"),
            ("SECRETS_PREFIX", "p"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let env: HashMap<_, _> = base.iter().chain(extra).copied().collect();
            config_from(|n| env.get(n).map(|v| v.to_string()))
        };

        let settings = with(&[
            ("AUTOTASK_REQUESTS_PER_HOUR", "4000"),
            ("AUTOTASK_MAX_CONCURRENT", " 2 "),
        ])
        .unwrap();
        assert_eq!(settings.autotask_budget.requests_per_hour, 4_000);
        assert_eq!(settings.autotask_budget.max_concurrent, 2);
        assert_eq!(
            settings.autotask_budget.burst,
            4_000 / 60,
            "a minute's worth"
        );

        for (name, bad) in [
            ("AUTOTASK_REQUESTS_PER_HOUR", "9k"),
            ("AUTOTASK_REQUESTS_PER_HOUR", "0"),
            ("AUTOTASK_MAX_CONCURRENT", "-1"),
            ("AUTOTASK_MAX_CONCURRENT", "99999999999"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err();
            assert_eq!(err.name(), name);
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "the message shows the refused value: {err}"
            );
        }
    }
}
