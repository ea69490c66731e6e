//! The end-to-end cases a second time on the AWS adapters (DynamoDB, SQS FIFO
//! with a DLQ, Secrets Manager) against the local emulator, the worker pulling
//! real SQS receives; plus what only a real queue shows: a transient failure
//! retried through SQS visibility, and a poisoned job redriven to the DLQ
//! after the receive limit. Run with `bash infra/test.sh -p psa-bridge-e2e
//! --test e2e pipeline_aws`.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use bridge::adapters::embedded::QueueDepth;
use bridge::model::{DeskTicketId, JobSubject, PsaTicketId, SyncJob};
use bridge::ports::Condition;
use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use bridge_aws::lambda::run_invocation;
use sandbox::zendesk::NewTicket;
use testkit::world::{TenantWorld, World, WorldOptions};

use crate::aws_backend::{redrive, AwsBackend, RECEIVE_LIMIT};
use crate::concurrency_cases as concurrency;
use crate::pipeline_cases as cases;
use crate::support::{psa_tickets_for, settle, ARRIVAL};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue()
{
    let world = World::start_on(
        &AwsBackend::default(),
        cases::noc_tenant(),
        WorldOptions::default(),
    )
    .await
    .expect("world on the AWS adapters (is the emulator running? see infra/test.sh)");
    cases::psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue(world).await;
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
        .filter(|e| e.step == "create_psa_ticket" && e.level == LogLevel::Info)
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

/// Receives up to ten messages from the real queue the way Lambda's SQS
/// event source hands them over: with their group and receive count.
async fn lambda_batch(backend: &AwsBackend) -> Vec<SqsMessage> {
    let resources = backend.resources();
    let received = resources
        .sqs
        .receive_message()
        .queue_url(&resources.queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    received
        .messages()
        .iter()
        .map(|m| SqsMessage {
            message_id: m.message_id().map(str::to_owned),
            receipt_handle: m.receipt_handle().map(str::to_owned),
            body: m.body().map(str::to_owned),
            attributes: m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            ..SqsMessage::default()
        })
        .collect()
}

/// What Lambda does with the records not reported failed: deletes them.
async fn delete_succeeded(backend: &AwsBackend, batch: &[SqsMessage], failed: &[String]) {
    let resources = backend.resources();
    for record in batch {
        if !failed.contains(record.message_id.as_ref().unwrap()) {
            resources
                .sqs
                .delete_message()
                .queue_url(&resources.queue_url)
                .receipt_handle(record.receipt_handle.clone().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
}

fn desk_job(t: &TenantWorld, desk_id: u64, event: &str) -> SyncJob {
    SyncJob {
        tenant: t.id.clone(),
        subject: JobSubject::Desk(DeskTicketId(desk_id)),
        desk_ticket_id: Some(DeskTicketId(desk_id)),
        event_id: event.into(),
        received_at_ms: chrono::Utc::now().timestamp_millis(),
        change: bridge::model::ChangeHint::Unknown,
    }
}

fn body_job(record: &SqsMessage) -> SyncJob {
    serde_json::from_str(record.body.as_deref().unwrap()).unwrap()
}

/// The real `Worker` through the Lambda SQS batch handler, on the real queue:
/// a job that is done is left to Lambda to delete; a 429 with `Retry-After`
/// is reported failed and hidden at least that long, and the later job of the
/// same FIFO group with it, unprocessed; a PSA-side job outside its pair's
/// lane is rerouted into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_batch_handler_settles_real_worker_outcomes_on_the_real_queue() {
    let backend = AwsBackend::default();
    let defaults = WorldOptions::default();
    let world = world_on(
        &backend,
        WorldOptions {
            worker_concurrency: 0,
            // Only the invocation's end gives kept budget slots back.
            autotask_budget: bridge::connectors::budget::AutotaskBudget {
                slot_idle_hold: Duration::from_secs(600),
                ..defaults.autotask_budget.clone()
            },
            ..defaults
        },
    )
    .await;
    let (acme, globex) = (world.tenant("acme"), world.tenant("globex"));
    for t in [acme, globex] {
        // Only the jobs this test sends are in the queue.
        t.zendesk.faults().update(|f| f.drop_webhook_rate = 1.0);
        t.autotask.faults().update(|f| f.drop_webhook_rate = 1.0);
    }
    let a = open(acme, "Done in one", "CL-100");
    let g = open(globex, "Rate limited", "CL-200");
    globex.zendesk.faults().update(|f| {
        f.rate_limit_burst = 1_000;
        f.retry_after_secs = 7;
    });
    for job in [
        desk_job(acme, a, "a-1"),
        desk_job(globex, g, "g-1"),
        desk_job(globex, g, "g-2"),
    ] {
        world.queue.send(&job).await.unwrap();
    }
    let worker = world.bridge.wiring.worker();
    let far_off = chrono::Utc::now() + chrono::Duration::minutes(5);

    let mut batch = Vec::new();
    while batch.len() < 3 {
        let more = lambda_batch(&backend).await;
        assert!(!more.is_empty(), "three messages were sent: {batch:?}");
        batch.extend(more);
    }
    let id_of = |event: &str| {
        batch
            .iter()
            .find(|r| body_job(r).event_id == event)
            .and_then(|r| r.message_id.clone())
            .unwrap()
    };
    // Taken before the handler hides the 429's messages, so that the check
    // below cannot be fooled by however long the steps in between take.
    let hidden_from = Instant::now();
    let response = run_invocation(
        &worker,
        world.queue.as_ref(),
        SqsEvent {
            records: batch.clone(),
        },
        far_off,
    )
    .await;
    let held = held_autotask_slots(&world, acme).await;
    assert!(
        held.is_empty(),
        "the invocation ended with Autotask budget slots still held: {held:?}"
    );
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = vec![id_of("g-1"), id_of("g-2")];
    expected.sort();
    assert_eq!(
        failed, expected,
        "the 429 and the job behind it in its group"
    );
    assert_eq!(psa_tickets_for(acme, a).len(), 1, "the done job synced");
    assert!(psa_tickets_for(globex, g).is_empty());
    delete_succeeded(&backend, &batch, &failed).await;

    // Hidden for the Retry-After: nothing comes back at once.
    assert!(lambda_batch(&backend).await.is_empty());
    globex.zendesk.faults().update(|f| f.rate_limit_burst = 0);
    let back = eventually(Duration::from_secs(20), || async {
        let batch = lambda_batch(&backend).await;
        (!batch.is_empty()).then_some(batch)
    })
    .await
    .expect("the rate-limited jobs come back");
    assert!(
        hidden_from.elapsed() >= Duration::from_secs(6),
        "came back after {:?}, before the Retry-After of 7 s",
        hidden_from.elapsed()
    );
    assert!(
        back.iter().all(|r| {
            body_job(r).event_id.starts_with("g-") && r.attributes["ApproximateReceiveCount"] != "1"
        }),
        "the rate-limited group came back through the queue: {back:?}"
    );

    // A PSA-side job that reached the worker outside its pair's lane.
    let p = psa_tickets_for(acme, a)[0].id;
    let stray = SyncJob {
        tenant: acme.id.clone(),
        subject: JobSubject::Psa(PsaTicketId(p)),
        desk_ticket_id: None,
        event_id: "p-1".into(),
        received_at_ms: chrono::Utc::now().timestamp_millis(),
        change: bridge::model::ChangeHint::Unknown,
    };
    world.queue.send(&stray).await.unwrap();
    let mut stray_batch = lambda_batch(&backend).await;
    stray_batch.retain(|r| body_job(r).event_id == "p-1");
    assert_eq!(stray_batch.len(), 1);
    let response = run_invocation(
        &worker,
        world.queue.as_ref(),
        SqsEvent {
            records: stray_batch.clone(),
        },
        far_off,
    )
    .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "rerouted, not failed"
    );
    delete_succeeded(&backend, &stray_batch, &[]).await;
    let rerouted = eventually(Duration::from_secs(10), || async {
        lambda_batch(&backend)
            .await
            .into_iter()
            .find(|r| body_job(r).event_id == "p-1:rerouted")
    })
    .await
    .expect("the job is sent again in its pair's lane");
    assert_eq!(body_job(&rerouted).desk_ticket_id, Some(DeskTicketId(a)));
    assert_eq!(
        rerouted.attributes["MessageGroupId"],
        format!("acme:zendesk:{a}")
    );
}

/// The tenant's Autotask concurrency slots held in DynamoDB right now.
async fn held_autotask_slots(world: &World, t: &TenantWorld) -> Vec<String> {
    let now_us = chrono::Utc::now().timestamp_micros();
    world
        .store
        .query(
            &format!("TENANT#{}", t.id),
            bridge::repo::AUTOTASK_SLOT_SK_PREFIX,
            false,
            100,
        )
        .await
        .expect("table readable")
        .into_iter()
        .filter(|item| {
            let slot: serde_json::Value = serde_json::from_str(&item.body).unwrap();
            slot["held_until_us"].as_i64().unwrap_or(0) > now_us
        })
        .map(|item| item.sk)
        .collect()
}
