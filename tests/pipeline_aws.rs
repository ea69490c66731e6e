//! The end-to-end cases a second time on the AWS adapters (DynamoDB, SQS FIFO
//! with a DLQ, Secrets Manager) against the local emulator, the worker pulling
//! real SQS receives; plus what only a real queue shows: a transient failure
//! retried through SQS visibility, and a poisoned job redriven to the DLQ
//! after the receive limit. Run with `bash infra/test.sh -p psa-bridge-e2e
//! --test pipeline_aws`.

#[path = "aws_backend.rs"]
mod aws_backend;
#[path = "pipeline_cases.rs"]
mod cases;
#[path = "concurrency_cases.rs"]
mod concurrency;

use std::future::Future;
use std::time::{Duration, Instant};

use aws_backend::{redrive, AwsBackend, RECEIVE_LIMIT};
use bridge::adapters::embedded::QueueDepth;
use bridge::ports::Condition;
use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use psa_bridge_e2e::{psa_tickets_for, settle, ARRIVAL};
use psa_bridge_local::world::{TenantWorld, World, WorldOptions};
use sandbox::zendesk::NewTicket;

async fn world_on(backend: &AwsBackend, options: WorldOptions) -> World {
    World::start_on(backend, cases::tenants(), options)
        .await
        .expect("world on the AWS adapters (is the emulator running? see infra/test.sh)")
}

async fn world() -> World {
    world_on(&AwsBackend::default(), WorldOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_field_follows_each_tenants_own_tables() {
    cases::every_mapped_field_follows_each_tenants_own_tables(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_flow_both_ways_exactly_once_over_three_round_trips() {
    cases::comments_flow_both_ways_exactly_once_over_three_round_trips(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each() {
    cases::repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_id_resolves_to_the_configuration_items_company_or_is_reported() {
    cases::cluster_id_resolves_to_the_configuration_items_company_or_is_reported(world().await)
        .await;
}

async fn concurrency_world() -> World {
    World::start_on(
        &AwsBackend::default(),
        concurrency::spec(),
        concurrency::options(),
    )
    .await
    .expect("world on the AWS adapters (is the emulator running? see infra/test.sh)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_that_both_listed_before_writing_write_each_note_once() {
    concurrency::two_workers_that_both_listed_before_writing_write_each_note_once(
        concurrency_world().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_after_a_write_is_replayed_without_duplicates() {
    concurrency::a_worker_that_died_after_a_write_is_replayed_without_duplicates(
        concurrency_world().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_past_its_lease_stops_before_its_next_write() {
    concurrency::a_worker_stalled_past_its_lease_stops_before_its_next_write(
        concurrency_world().await,
    )
    .await;
}

// ------------------------------------------------------- AWS-only cases

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn open(t: &TenantWorld, subject: &str, cluster: &str) -> u64 {
    t.zendesk.create_ticket(NewTicket {
        subject: subject.into(),
        description: format!("{subject}: details"),
        priority: Some("normal".into()),
        status: None,
        cluster_id: Some(cluster.into()),
        requester_name: "Casey Customer".into(),
    })
}

async fn log_of(world: &World, t: &TenantWorld, desk_id: u64) -> Vec<SyncLogEntry> {
    let reference = format!("zendesk:{desk_id}");
    Repo::new(world.store())
        .log_entries(&t.id, 100)
        .await
        .expect("sync log")
        .into_iter()
        .filter(|e| e.ticket.as_deref() == Some(reference.as_str()))
        .collect()
}

async fn depth(world: &World) -> QueueDepth {
    world.queue_depth().await.expect("queue depth")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_through_the_queue_until_the_ticket_arrives_once() {
    let world = world().await;
    let acme = world.tenant("acme");
    acme.autotask.faults().update(|f| f.server_error_rate = 1.0);
    let z = open(acme, "VPN down", "CL-100");

    // From its third receive on, the worker reports the still-failing job in
    // the sync log: proof that SQS redelivered it after each retry delay.
    let reported = eventually(ARRIVAL, || async {
        log_of(&world, acme, z)
            .await
            .into_iter()
            .find(|e| e.level == LogLevel::Error && e.retryable)
    })
    .await;
    let Some(reported) = reported else {
        panic!(
            "no retryable error logged; log: {:?}",
            log_of(&world, acme, z).await
        );
    };
    assert!(
        reported.message.contains("500") || reported.message.contains("Internal server error"),
        "the log names the cause: {}",
        reported.message
    );
    assert!(
        psa_tickets_for(acme, z).is_empty(),
        "nothing arrived during the outage"
    );
    assert!(
        acme.autotask.faults().stats().server_errors >= 3,
        "one failed Autotask call per receive at least: {:?}",
        acme.autotask.faults().stats()
    );
    let pending = depth(&world).await;
    assert!(
        pending.visible + pending.in_flight >= 1 && pending.dead == 0,
        "the job waits out its retry delay in the queue, not in the DLQ: {pending:?}"
    );

    // Autotask recovers: the next receive (the last one before the DLQ) syncs.
    acme.autotask.faults().update(|f| f.server_error_rate = 0.0);
    let arrived = eventually(ARRIVAL, || async { psa_tickets_for(acme, z).pop() }).await;
    let ticket = arrived.expect("the ticket arrives once Autotask answers again");
    assert_eq!(ticket.title, "VPN down");
    settle(&world, Duration::from_millis(500)).await;
    assert_eq!(
        psa_tickets_for(acme, z).len(),
        1,
        "exactly one Autotask ticket"
    );
    assert_eq!(acme.autotask.tickets().len(), 1);
    let created = log_of(&world, acme, z)
        .await
        .into_iter()
        .filter(|e| e.step == "create_autotask_ticket" && e.level == LogLevel::Info)
        .count();
    assert_eq!(created, 1, "created once");
    assert_eq!(depth(&world).await.dead, 0, "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_moves_to_the_dlq_and_is_replayed_once_fixed() {
    let backend = AwsBackend::default();
    let options = WorldOptions {
        permanent_retry: Duration::from_secs(1),
        ..WorldOptions::default()
    };
    let world = world_on(&backend, options).await;
    let acme = world.tenant("acme");
    assert_eq!(acme.default_company, None, "acme has no fallback company");
    let z = open(acme, "Unknown cluster", "CL-999");

    // Retried every second, it reaches the receive limit within seconds.
    let dead = eventually(Duration::from_secs(30), || async {
        let d = depth(&world).await;
        (d.dead == 1).then_some(d)
    })
    .await;
    let Some(dead) = dead else {
        panic!("never dead-lettered: {:?}", depth(&world).await);
    };
    assert_eq!((dead.visible, dead.in_flight), (0, 0), "{dead:?}");
    let errors: Vec<SyncLogEntry> = log_of(&world, acme, z)
        .await
        .into_iter()
        .filter(|e| e.level == LogLevel::Error)
        .collect();
    assert_eq!(
        errors.len(),
        RECEIVE_LIMIT as usize,
        "one permanent failure logged per receive: {errors:?}"
    );
    for e in &errors {
        assert_eq!(e.step, "resolve_company");
        assert!(!e.retryable);
        assert!(e.message.contains("CL-999"), "{}", e.message);
    }
    assert!(psa_tickets_for(acme, z).is_empty());

    // An admin adds a fallback company and replays the DLQ.
    let company = acme.autotask.add_company("Unassigned (acme)");
    let mut config = acme.config.clone();
    config.autotask.default_company_id = Some(company);
    Repo::new(world.store())
        .put_tenant(&config, Condition::Always)
        .await
        .unwrap();
    assert_eq!(redrive(&backend.resources()).await.unwrap(), 1);

    let arrived = eventually(ARRIVAL, || async { psa_tickets_for(acme, z).pop() }).await;
    let ticket = arrived.expect("the replayed job syncs the ticket");
    assert_eq!(ticket.company_id, company, "the fallback company is used");
    settle(&world, Duration::from_millis(500)).await;
    assert_eq!(psa_tickets_for(acme, z).len(), 1);
    assert_eq!(
        depth(&world).await.dead,
        0,
        "the DLQ is empty after the replay"
    );
}
