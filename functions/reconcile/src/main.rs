//! Lambda `reconcile`: run by EventBridge every 5 minutes. Asks each active
//! tenant's Zendesk and Autotask what changed since the last sweep and queues a
//! job per changed ticket, so a lost webhook costs one interval, never a change.

use bridge::reconcile::SweepSummary;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge_aws::init_lambda_tracing();
    // Clients, config and the connectors' HTTP pool once per cold start.
    let sweeper = bridge_aws::wiring_from_env().await?.sweeper();
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(
        move |_scheduled: LambdaEvent<serde_json::Value>| async move {
            Ok::<SweepSummary, Error>(bridge_aws::lambda::handle_scheduled_sweep(sweeper).await?)
        },
    ))
    .await
}
