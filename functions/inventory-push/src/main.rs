//! Lambda `inventory-push`: `POST /t/{tenant}/inventory` behind API Gateway.
//! Verifies a signed device inventory push, validates each device and stores
//! the ones that changed (`DEVICE#<id>`); asset sync runs write them to the
//! PSA later, on the tenant's schedule or on demand.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    // Clients and config once per cold start; every invocation reuses them.
    let ingest = bridge_aws::ingest_state_from_env().await?;
    lambda_http::run(bridge::assets::inventory_router(ingest)).await
}
