//! Stateful loopback simulators of the Zendesk and Autotask APIs, following
//! their public contracts, with real auth checks and fault injection.

pub mod autotask;
pub mod connectwise;
pub mod faults;
pub mod recording;
pub mod zendesk;

pub use recording::{RecordedRequest, RequestLog};

/// Serves `router` on an ephemeral loopback port and returns its base URL
/// (`http://127.0.0.1:PORT`) and the server task.
pub async fn serve(router: axum::Router) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(%err, "sandbox server stopped");
        }
    });
    Ok((format!("http://{address}"), task))
}
