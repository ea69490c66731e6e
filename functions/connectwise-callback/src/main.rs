//! Lambda `connectwise-callback`: `POST /t/{tenant}/connectwise` behind API
//! Gateway. Verifies a ConnectWise PSA callback's signature with the key
//! ConnectWise serves for it (fetched only from the tenant's own ConnectWise
//! host, cached for the life of the instance), enqueues a sync job and
//! answers at once.

use std::sync::Arc;

use bridge::connectors::connectwise::inbound::SigningKeys;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    // Clients, config and the key cache once per cold start.
    let ingest = bridge_aws::ingest_state_from_env().await?;
    let keys = Arc::new(SigningKeys::new(bridge::connectors::http::client()));
    lambda_http::run(bridge::ingest::connectwise_router(ingest, keys)).await
}
