//! Lambda `admin`: the admin console (pages and JSON API) under `/admin`
//! behind the HTTP API, on the DynamoDB table, SES and the system clock.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    // Clients and config once per cold start; every invocation reuses them.
    let app = bridge_aws::console::admin_app_from_env().await?;
    lambda_http::run(app).await
}
