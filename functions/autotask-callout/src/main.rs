//! Lambda `autotask-callout`: `POST` and `GET /t/{tenant}/autotask` behind API
//! Gateway. Verifies Autotask extension callouts (POST form pairs, XML or
//! JSON, or GET with the fields in the query string) and REST webhooks,
//! enqueues a sync job and answers at once.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    // Clients and config once per cold start; every invocation reuses them.
    let ingest = bridge_aws::ingest_state_from_env().await?;
    lambda_http::run(bridge::ingest::autotask_router(ingest)).await
}
