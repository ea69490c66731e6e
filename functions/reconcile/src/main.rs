//! Lambda `reconcile`: run by EventBridge every 5 minutes. Asks each active
//! tenant's Zendesk and Autotask what changed since the last sweep and queues a
//! job per changed ticket, so a lost webhook costs one interval, never a change.
//!
//! Invoked with `{"assets": true}` (as `AssetSyncFunction`, every 5
//! minutes), it runs asset sync instead for every tenant that never ran, whose
//! schedule day it is (once a day) or whose last run stopped early.

use bridge_aws::lambda::{
    handle_scheduled_assets, handle_scheduled_sweep, invocation_write_deadline, is_asset_schedule,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge_aws::init_lambda_tracing();
    // Clients, config and the connectors' HTTP pool once per cold start.
    let wiring = bridge_aws::wiring_from_env().await?;
    let sweeper = wiring.sweeper();
    let (wiring, sweeper) = (&wiring, &sweeper);
    lambda_runtime::run(service_fn(
        move |scheduled: LambdaEvent<Value>| async move {
            if is_asset_schedule(&scheduled.payload) {
                let deadline = invocation_write_deadline(scheduled.context.deadline);
                let summary = handle_scheduled_assets(wiring, deadline).await?;
                return Ok::<Value, Error>(serde_json::to_value(summary)?);
            }
            let summary = handle_scheduled_sweep(sweeper).await?;
            Ok::<Value, Error>(serde_json::to_value(summary)?)
        },
    ))
    .await
}
