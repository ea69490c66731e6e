//! The chaos scenario (`chaos_cases.rs`) on the embedded adapters, at full
//! scale: three tenants, 201 tickets, over 1,000 comments. Its counts go to
//! `target/tmp/chaos-report.txt`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::config::TenantSecrets;
use bridge::model::TenantId;
use testkit::world::{Backend, BackendParts};

use crate::chaos_cases as cases;

/// Embedded adapters with a short visibility timeout (a killed worker's
/// messages come back in seconds, not a minute) and a receive limit sized for
/// a fifth of all calls failing.
struct ChaosEmbedded;

#[async_trait::async_trait]
impl Backend for ChaosEmbedded {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts> {
        let queue = Arc::new(
            EmbeddedQueue::in_memory()?
                .with_visibility_timeout(Duration::from_secs(4))
                .with_max_receive_count(40),
        );
        Ok(BackendParts {
            store: Arc::new(SqliteStore::in_memory()?),
            queue: queue.clone(),
            secrets: Arc::new(FileSecrets::from_map(secrets)),
            probe: queue,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_exactly_once_after_chaos_and_one_sweep() {
    cases::converges_exactly_once_after_chaos_and_one_sweep(
        &ChaosEmbedded,
        cases::Scale {
            tenants: 3,
            tickets_per_tenant: 67,
            comments_per_ticket: 5,
        },
        "chaos-report.txt",
    )
    .await;
}
