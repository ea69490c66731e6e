//! What the admin Lambda's console does to the running bridge, against the
//! emulator: `AwsOperations` ("Sync now" through the sweeper onto the real
//! SQS job queue, the tenant's dead letters in the SQS DLQ and replaying
//! them) and `AwsAssetOperations` (asset setup check and runs against the
//! sandbox Autotask), in worlds whose adapters are DynamoDB, SQS and
//! Secrets Manager on the emulator.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin::{AssetOperations, Operations, OpsError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use bridge::adapters::embedded::QueueDepth;
use bridge::assets::{import_batch, parse_json_batch};
use bridge::config::{
    AssetMode, AssetSettings, FieldValue, ReferenceNumberSource, TenantSecrets, ASSET_UDFS,
};
use bridge::connectors::budget::AutotaskBudget;
use bridge::model::{DeskTicketId, JobSubject, SyncJob, TenantId};
use bridge::ports::{Condition, Queue, Store};
use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use bridge::setup::SecretsWriter;
use bridge::wiring::Wiring;
use bridge_aws::operations::{AwsAssetOperations, AwsOperations};
use bridge_aws::{sqs, SecretsManagerSecrets, SqsQueue};
use chrono::Utc;
use sandbox::zendesk::NewTicket;
use testkit::world::{Backend, BackendParts, QueueProbe, TenantSpec, World, WorldOptions};

use super::{new_queue, new_store, sdk, unique, Queues};

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn job(tenant_id: &str, ticket: u64, event: &str) -> SyncJob {
    SyncJob {
        tenant: tenant(tenant_id),
        subject: JobSubject::Desk(DeskTicketId(ticket)),
        desk_ticket_id: None,
        event_id: event.into(),
        received_at_ms: 1_700_000_000_000,
        change: bridge::model::ChangeHint::Unknown,
    }
}

/// Moves `job` to the DLQ the way SQS does: sent, received up to the
/// queue's receive limit (1, see [`new_queue`]) without being completed.
async fn dead_letter(queue: &SqsQueue, job: &SyncJob) {
    queue.send(job).await.unwrap();
    let got = queue.receive(10, Duration::ZERO).await.unwrap();
    let delivery = got.iter().find(|d| &d.job == job).expect("received once");
    queue
        .retry_later(&delivery.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(
        again.iter().all(|d| &d.job != job),
        "past the receive limit SQS moves it to the DLQ instead"
    );
}

/// Puts `job` straight into the DLQ, as its message group would have it.
async fn into_dlq(q: &Queues, job: &SyncJob) {
    q.sqs
        .send_message()
        .queue_url(q.dlq_url.as_deref().unwrap())
        .message_body(serde_json::to_string(job).unwrap())
        .message_group_id(sqs::group_id(job))
        .message_deduplication_id(sqs::dedup_id(job))
        .send()
        .await
        .unwrap();
}

/// Receives what is on a queue (hiding it for 30 s): `(group, body)`.
async fn receive_raw(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String)> {
    let mut got = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_default();
            got.push((group, m.body().unwrap_or_default().to_owned()));
        }
    }
    got
}

/// The console's operations over `store` and the queues `q`.
async fn operations(store: Arc<dyn Store>, q: &Queues) -> AwsOperations {
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk().await),
        unique("psa-console-unused"),
    ));
    let wiring = Wiring::new(
        store,
        Arc::new(q.queue.clone()),
        secrets,
        AutotaskBudget::default(),
    );
    AwsOperations::new(
        &wiring,
        q.sqs.clone(),
        q.queue.url(),
        q.dlq_url.clone().unwrap(),
    )
}

#[tokio::test]
async fn dead_letters_are_their_tenants_own_and_replay_puts_them_back_on_the_job_queue() {
    let store: Arc<dyn Store> = Arc::new(new_store().await);
    let q = new_queue(Some(1)).await;
    let ops = operations(store.clone(), &q).await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));

    let lost = job("acme", 4242, "evt-lost");
    dead_letter(&q.queue, &lost).await;
    dead_letter(&q.queue, &job("globex", 7, "evt-g")).await;
    // The worker leaves a body that is no job to the DLQ too: nobody's.
    q.sqs
        .send_message()
        .queue_url(q.dlq_url.as_deref().unwrap())
        .message_body("not a job")
        .message_group_id("junk")
        .message_deduplication_id("junk-1")
        .send()
        .await
        .unwrap();
    // What the worker wrote to the sync log when the job failed for good.
    Repo::new(store.as_ref())
        .log(
            &acme,
            &SyncLogEntry {
                at: Utc::now(),
                level: LogLevel::Error,
                ticket: Some("zendesk:4242".into()),
                step: "create_psa_ticket".into(),
                message: "the Zendesk group \"NOC\" is not mapped. To fix: map it".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();

    let listed = ops.dead_letters(&acme).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let letter = listed[0].clone();
    assert_eq!(letter.ticket, "zendesk:4242");
    assert_eq!(
        letter.reason,
        "create_psa_ticket: the Zendesk group \"NOC\" is not mapped. To fix: map it"
    );
    assert!(
        (Utc::now() - letter.at).num_seconds().abs() < 300,
        "when it was queued: {letter:?}"
    );

    let theirs = ops.dead_letters(&globex).await.unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].ticket, "zendesk:7");
    assert_eq!(
        theirs[0].reason,
        "failed until the receive limit; see the sync log"
    );
    assert_ne!(theirs[0].id, letter.id);

    // Another tenant's dead letter, or none at all, is not found, and
    // looking for it neither consumes nor hides anything.
    assert_eq!(
        ops.replay(&globex, &letter.id).await,
        Err(OpsError::NotFound)
    );
    assert_eq!(
        ops.replay(&acme, "no-such-message").await,
        Err(OpsError::NotFound)
    );
    assert_eq!(ops.dead_letters(&acme).await.unwrap(), listed);
    assert_eq!(ops.dead_letters(&globex).await.unwrap(), theirs);
    assert!(
        receive_raw(&q.sqs, q.queue.url()).await.is_empty(),
        "a refused replay sends nothing"
    );

    ops.replay(&acme, &letter.id).await.unwrap();
    let back = receive_raw(&q.sqs, q.queue.url()).await;
    assert_eq!(back.len(), 1, "{back:?}");
    let (group, body) = &back[0];
    let job: SyncJob = serde_json::from_str(body).expect("the job the worker reads");
    assert_eq!(job, lost, "the job, intact");
    assert_eq!(
        group,
        &sqs::group_id(&lost),
        "in its ticket's message group"
    );

    assert!(
        ops.dead_letters(&acme).await.unwrap().is_empty(),
        "gone from the dead-letter queue"
    );
    assert_eq!(
        ops.dead_letters(&globex).await.unwrap(),
        theirs,
        "the other tenant's stays"
    );
    assert_eq!(
        ops.replay(&acme, &letter.id).await,
        Err(OpsError::NotFound),
        "replayed once"
    );
}

#[tokio::test]
async fn a_replay_whose_send_fails_keeps_the_dead_letter() {
    let store: Arc<dyn Store> = Arc::new(new_store().await);
    let q = new_queue(Some(1)).await;
    let lost = job("acme", 12, "evt-12");
    into_dlq(&q, &lost).await;
    let ops = operations(store.clone(), &q).await;
    let letter = ops.dead_letters(&tenant("acme")).await.unwrap().remove(0);

    // The same, but its job queue is gone.
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk().await),
        unique("psa-console-unused"),
    ));
    let wiring = Wiring::new(
        store,
        Arc::new(q.queue.clone()),
        secrets,
        AutotaskBudget::default(),
    );
    let missing_url = q.queue.url().replace(".fifo", "-gone.fifo");
    let broken = AwsOperations::new(
        &wiring,
        q.sqs.clone(),
        missing_url,
        q.dlq_url.clone().unwrap(),
    );

    match broken.replay(&tenant("acme"), &letter.id).await {
        Err(OpsError::Failed { message, .. }) => {
            assert!(message.contains("SendMessage"), "{message}")
        }
        other => panic!("expected the send to fail, got {other:?}"),
    }
    assert_eq!(
        ops.dead_letters(&tenant("acme")).await.unwrap(),
        vec![letter.clone()],
        "still there, and visible at once"
    );
    ops.replay(&tenant("acme"), &letter.id).await.unwrap();
    let back = receive_raw(&q.sqs, q.queue.url()).await;
    assert_eq!(back.len(), 1);
    assert_eq!(serde_json::from_str::<SyncJob>(&back[0].1).unwrap(), lost);
}

#[tokio::test]
async fn a_listing_sees_past_one_receive_and_leaves_every_dead_letter_visible() {
    let store: Arc<dyn Store> = Arc::new(new_store().await);
    let q = new_queue(Some(1)).await;
    // More than one receive returns (10), one ticket each.
    for ticket in 1..=12 {
        into_dlq(&q, &job("acme", ticket, &format!("e{ticket}"))).await;
    }
    into_dlq(&q, &job("globex", 99, "g")).await;
    let ops = operations(store, &q).await;

    let theirs = ops.dead_letters(&tenant("globex")).await.unwrap();
    assert_eq!(
        theirs.iter().map(|d| d.ticket.as_str()).collect::<Vec<_>>(),
        ["zendesk:99"],
        "found behind the other tenant's twelve"
    );
    let listed = ops.dead_letters(&tenant("acme")).await.unwrap();
    let tickets: BTreeSet<String> = listed.iter().map(|d| d.ticket.clone()).collect();
    let expected: BTreeSet<String> = (1..=12).map(|t| format!("zendesk:{t}")).collect();
    assert_eq!(tickets, expected);
    assert!(
        listed.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first: {listed:?}"
    );
    // Nothing stays hidden after a listing.
    let again = ops.dead_letters(&tenant("acme")).await.unwrap();
    assert_eq!(again.len(), 12, "{again:?}");
}

// ------------------------------------------------ worlds on the emulator

/// What a world's backend made on the emulator.
#[derive(Clone)]
struct Made {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
}

/// A world's adapters on the emulator: a fresh table, a job queue with a
/// DLQ, and the tenants' secrets in Secrets Manager under a fresh prefix.
#[derive(Default)]
struct OnEmulator(Mutex<Option<Made>>);

impl OnEmulator {
    fn made(&self) -> Made {
        self.0.lock().unwrap().clone().expect("built")
    }
}

struct NoProbe;

#[async_trait::async_trait]
impl QueueProbe for NoProbe {
    async fn depth(&self) -> anyhow::Result<QueueDepth> {
        anyhow::bail!("these tests read the queues themselves")
    }
}

#[async_trait::async_trait]
impl Backend for OnEmulator {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts> {
        let store = new_store().await;
        let q = new_queue(Some(1)).await;
        let secrets_port = SecretsManagerSecrets::new(
            aws_sdk_secretsmanager::Client::new(&sdk().await),
            unique("psa-console-ops"),
        );
        for (tenant, values) in &secrets {
            secrets_port.put_tenant_secrets(tenant, values).await?;
        }
        *self.0.lock().unwrap() = Some(Made {
            sqs: q.sqs.clone(),
            queue_url: q.queue.url().to_owned(),
            dlq_url: q.dlq_url.clone().unwrap(),
        });
        Ok(BackendParts {
            store: Arc::new(store),
            queue: Arc::new(q.queue),
            secrets: Arc::new(secrets_port),
            probe: Arc::new(NoProbe),
        })
    }
}

/// A world of `specs` on the emulator; nobody works its queue.
async fn world(specs: Vec<TenantSpec>) -> (World, Made) {
    let backend = OnEmulator::default();
    let world = World::start_on(
        &backend,
        specs,
        WorldOptions {
            worker_concurrency: 0,
            ..WorldOptions::default()
        },
    )
    .await
    .expect("a world on the emulator (is it running? see infra/test.sh)");
    (world, backend.made())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_sweeps_the_tenant_onto_the_real_queue() {
    let (world, made) = world(vec![TenantSpec::new("acme")]).await;
    let ops = AwsOperations::new(
        &world.bridge.wiring,
        made.sqs.clone(),
        &made.queue_url,
        &made.dlq_url,
    );
    let t = world.tenant("acme");
    let z = t.zendesk.create_ticket(NewTicket {
        subject: "Printer on fire".into(),
        description: "Printer on fire: details".into(),
        priority: Some("normal".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    });

    let summary = ops.sync_now(&t.id).await.expect("sync now");
    assert!(
        summary.starts_with("acme: queued 1 Zendesk"),
        "the sweep report's line: {summary}"
    );
    // The sweep's own job (beside whatever the sandbox's webhook queued).
    let queued: Vec<SyncJob> = receive_raw(&made.sqs, &made.queue_url)
        .await
        .into_iter()
        .map(|(_, body)| serde_json::from_str(&body).expect("a job the worker reads"))
        .collect();
    assert!(
        queued.iter().any(|j| j.tenant == t.id
            && j.subject == JobSubject::Desk(DeskTicketId(z))
            && j.event_id.starts_with("sweep:")),
        "{queued:?}"
    );

    assert_eq!(
        ops.sync_now(&tenant("nobody")).await,
        Err(OpsError::NotFound)
    );
    world.stop().await;
}

const INVENTORY_UDF: &str = "Inventory Device ID";

fn asset_settings(mode: AssetMode, product_id: i64) -> AssetSettings {
    AssetSettings {
        mode,
        product_id,
        ci_type: Some(FieldValue::Number(1)),
        category_id: None,
        reference_number: ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: INVENTORY_UDF.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_operations_check_the_setup_and_run_within_their_time() {
    let spec = TenantSpec {
        default_company: true,
        // Made ready for simple mode: no UDFs in the sandbox Autotask.
        assets: Some(asset_settings(AssetMode::Simple, 0)),
        ..TenantSpec::new("devices")
    };
    let (world, _) = world(vec![spec]).await;
    let t = world.tenant("devices");
    let assets = AwsAssetOperations::new(&world.bridge.wiring);
    assert_eq!(
        assets.check_assets(&t.id).await.unwrap(),
        Vec::<String>::new(),
        "simple mode finds everything it names"
    );

    // Two devices pushed, to be written by the runs below.
    let devices = serde_json::json!({"devices": [
        {"inventory_id": "dev-1", "name": "dev-1-host", "state": "managed", "serial_number": "SN-1"},
        {"inventory_id": "dev-2", "name": "dev-2-host", "state": "managed", "serial_number": "SN-2"},
    ]});
    let batch = parse_json_batch(devices.to_string().as_bytes()).unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    import_batch(world.store(), &t.id, batch, Utc::now())
        .await
        .unwrap();

    let before = t.autotask.configuration_items().len();

    // Advanced mode names UDFs the sandbox does not have.
    let product = t.autotask.default_product_id();
    let mut config = t.config.clone();
    config.assets = Some(asset_settings(AssetMode::Advanced, product));
    let repo = Repo::new(world.store());
    repo.put_tenant(&config, Condition::Always).await.unwrap();
    let problems = assets.check_assets(&t.id).await.unwrap();
    for udf in ASSET_UDFS.iter().copied().chain([INVENTORY_UDF]) {
        assert!(
            problems.iter().any(|p| p.contains(udf)),
            "{udf} named missing: {problems:?}"
        );
    }
    match assets.sync_assets(&t.id).await {
        Err(OpsError::SetupIncomplete { problems: refused }) => {
            for udf in ASSET_UDFS.iter().copied().chain([INVENTORY_UDF]) {
                assert!(
                    refused.iter().any(|p| p.contains(udf)),
                    "{udf}: {refused:?}"
                );
            }
        }
        other => panic!("expected the setup to be reported incomplete, got {other:?}"),
    }

    // Back to simple mode.
    config.assets = Some(asset_settings(AssetMode::Simple, product));
    repo.put_tenant(&config, Condition::Always).await.unwrap();
    assert_eq!(
        t.autotask.configuration_items().len(),
        before,
        "the refused run wrote nothing"
    );

    // Out of time before its first write: unfinished, and it says so.
    let hurried = AwsAssetOperations::new(&world.bridge.wiring).with_run_time(Duration::ZERO);
    let stopped = hurried.sync_assets(&t.id).await.unwrap();
    assert!(!stopped.finished, "{stopped}");
    assert_eq!(stopped.remaining, 2, "{stopped}");
    assert!(
        stopped.to_string().contains("the next run resumes"),
        "{stopped}"
    );
    assert_eq!(t.autotask.configuration_items().len(), before);

    // The next run (the schedule's, or this button again) finishes it.
    let done = assets.sync_assets(&t.id).await.unwrap();
    assert!(done.finished, "{done}");
    assert_eq!(done.created, 2, "{done}");
    assert_eq!(t.autotask.configuration_items().len(), before + 2);
    world.stop().await;
}
