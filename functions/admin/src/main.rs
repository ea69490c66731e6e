//! Lambda `admin`: the admin console (pages and JSON API) under `/admin`
//! behind the HTTP API, on the DynamoDB table, SES and the system clock;
//! with the job queue and its dead-letter queue (`QUEUE_URL`,
//! `DEAD_LETTER_QUEUE_URL`) it also runs "Sync now", lists and replays dead
//! letters, and runs asset sync on request (`bridge_aws::operations`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    // Clients, config, connectors and sweeper once per cold start; every
    // invocation reuses them.
    let app = bridge_aws::console::admin_app_from_env().await?;
    lambda_http::run(app).await
}
