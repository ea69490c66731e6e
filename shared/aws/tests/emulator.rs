//! The AWS adapters against a local AWS emulator (moto's server). Run with
//! `bash infra/test.sh -p bridge-aws`, which starts the emulator and exports
//! `AWS_ENDPOINT_URL` plus dummy credentials. Every test creates its own
//! uniquely named table or queues, so tests run in parallel.
//!
//! One file for all adapters on purpose: one test binary links faster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use bridge::config::{Secret, TenantSecrets};
use bridge::error::{SecretsError, StoreError};
use bridge::model::{DeskTicketId, JobSubject, SyncJob, TenantId};
use bridge::ports::{Condition, Queue, Secrets, Store, MAX_ITEM_BYTES};
use bridge::setup::SecretsWriter;
use bridge_aws::{DynamoStore, SecretsManagerSecrets, SqsQueue};
use testkit::conformance::{self, QueueContractOptions};

// The admin Lambda's console; in a folder so that Cargo makes no second
// test binary of it.
#[path = "emulator/admin_console.rs"]
mod admin_console;
// What the console does to the running bridge: sync now, dead letters,
// replay, asset sync on request.
#[path = "emulator/console_operations.rs"]
mod console_operations;

fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: these tests need the local AWS emulator. \
             Run them with `bash infra/test.sh -p bridge-aws` (or `bash infra/test.sh` for the \
             whole workspace), which starts it and sets the variable."
        ),
    }
}

async fn sdk() -> SdkConfig {
    bridge_aws::aws_config(Some(&endpoint())).await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn new_store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let table = unique("psa-test");
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    DynamoStore::new(client, table)
}

struct Queues {
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    dlq_url: Option<String>,
}

/// A FIFO queue with a 30 s visibility timeout; with `receive_limit`, also a
/// DLQ it redrives to after that many receives.
async fn new_queue(receive_limit: Option<u32>) -> Queues {
    new_queue_with(receive_limit, 30).await
}

async fn new_queue_with(receive_limit: Option<u32>, visibility_secs: u32) -> Queues {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let name = unique("psa-test");
    let create = |name: String| {
        sqs.create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
    };
    let mut dlq_url = None;
    let mut request = create(format!("{name}.fifo"));
    if let Some(limit) = receive_limit {
        let url = create(format!("{name}-dlq.fifo"))
            .send()
            .await
            .expect("create DLQ")
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("DLQ arn")
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": limit});
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        dlq_url = Some(url);
    }
    let url = request
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    Queues {
        queue: SqsQueue::new(sqs.clone(), url),
        sqs,
        dlq_url,
    }
}

fn job(ticket: &str, event: &str) -> SyncJob {
    SyncJob {
        tenant: TenantId::parse("acme").unwrap(),
        subject: JobSubject::Desk(DeskTicketId(ticket.parse().unwrap())),
        desk_ticket_id: None,
        event_id: event.into(),
        received_at_ms: 1_700_000_000_000,
        change: bridge::model::ChangeHint::Unknown,
    }
}

// ------------------------------------------------------- port contracts
//
// The same contracts as the embedded adapters. moto departs from AWS in two
// queue behaviours, relaxed explicitly by `QueueContractOptions::MOTO` (see
// there); every other check holds. Its lower item size limit (about 405,000
// bytes against DynamoDB's 409,600) is within the store contract's margin.

#[tokio::test]
async fn dynamo_store_passes_the_store_contract() {
    conformance::store_contract(&new_store().await).await;
}

#[tokio::test]
async fn shared_autotask_budget_holds_across_instances_on_dynamodb() {
    let store: Arc<dyn bridge::ports::Store> = Arc::new(new_store().await);
    testkit::budget_contract::shared_budget_contract(store).await;
}

#[tokio::test]
async fn sqs_queue_passes_the_queue_contract() {
    let visibility = conformance::QUEUE_VISIBILITY.as_secs() as u32;
    conformance::queue_contract(QueueContractOptions::MOTO, || async move {
        let queue = new_queue_with(None, visibility).await.queue;
        Box::new(queue) as Box<dyn Queue>
    })
    .await;
}

// ------------------------------------------------------------------ store

#[tokio::test]
async fn conditional_writes_detect_conflicts() {
    let store = new_store().await;
    let (pk, sk) = ("TENANT#acme", "LINK#Z#1");

    assert_eq!(
        store
            .put(pk, sk, "a", Condition::MustNotExist, None)
            .await
            .unwrap(),
        1
    );
    let again = store.put(pk, sk, "b", Condition::MustNotExist, None).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(
        store.get(pk, sk).await.unwrap().unwrap().body,
        "a",
        "loser wrote nothing"
    );

    assert_eq!(
        store
            .put(pk, sk, "c", Condition::VersionIs(1), None)
            .await
            .unwrap(),
        2
    );
    let stale = store.put(pk, sk, "d", Condition::VersionIs(1), None).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        store
            .put(pk, sk, "e", Condition::Always, None)
            .await
            .unwrap(),
        3
    );

    let item = store.get(pk, sk).await.unwrap().unwrap();
    assert_eq!(
        (item.body.as_str(), item.version, item.expires_at),
        ("e", 3, None)
    );

    let missing = store
        .put(pk, "LINK#Z#2", "x", Condition::VersionIs(1), None)
        .await;
    assert!(
        matches!(missing, Err(StoreError::Conflict { .. })),
        "{missing:?}"
    );
    assert_eq!(
        store
            .put(pk, "LINK#Z#3", "x", Condition::Always, None)
            .await
            .unwrap(),
        1
    );

    store.delete(pk, sk).await.unwrap();
    assert_eq!(store.get(pk, sk).await.unwrap(), None);
    assert_eq!(
        store
            .put(pk, sk, "f", Condition::MustNotExist, None)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn optimistic_lock_lets_exactly_one_concurrent_writer_win() {
    let store = Arc::new(new_store().await);
    let (pk, sk) = ("TENANT#acme", "CONFIG");
    store
        .put(pk, sk, "v1", Condition::MustNotExist, None)
        .await
        .unwrap();

    let writers = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(
                    pk,
                    sk,
                    &format!("writer {i}"),
                    Condition::VersionIs(1),
                    None,
                )
                .await
        })
    });
    let results = futures::future::join_all(writers).await;
    let won: Vec<_> = results.iter().filter(|r| matches!(r, Ok(Ok(2)))).collect();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::Conflict { .. }))))
        .count();
    assert_eq!((won.len(), lost), (1, 7), "{results:?}");
    assert_eq!(store.get(pk, sk).await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn oversized_items_are_refused_before_the_call() {
    let store = new_store().await;
    let body = "x".repeat(MAX_ITEM_BYTES);
    let err = store
        .put("TENANT#acme", "LINK#Z#1", &body, Condition::Always, None)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "retrying cannot shrink the item");
    match err {
        StoreError::TooLarge { size, limit, .. } => {
            assert!(size > MAX_ITEM_BYTES);
            assert_eq!(limit, MAX_ITEM_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(store.get("TENANT#acme", "LINK#Z#1").await.unwrap(), None);

    // Close to the limit still fits. (moto refuses items over 405,000 bytes,
    // a little below DynamoDB's 409,600, so the margin here is wider.)
    let fits = "x".repeat(404_000);
    store
        .put("TENANT#acme", "LINK#Z#2", &fits, Condition::Always, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .get("TENANT#acme", "LINK#Z#2")
            .await
            .unwrap()
            .unwrap()
            .body
            .len(),
        fits.len()
    );
}

#[tokio::test]
async fn a_link_with_two_thousand_comments_fits_and_round_trips() {
    let store = new_store().await;
    // Shaped like a link record: ticket ids, last mirrored values and one
    // pair of ids per mirrored comment, with realistic id magnitudes.
    let comments: Vec<_> = (0..2_000u64)
        .map(|i| {
            serde_json::json!({
                "zendesk_comment_id": 38_000_000_000_000u64 + i * 7_919,
                "psa_note_id": 29_600_000_000i64 + i as i64 * 13,
                "origin": if i % 3 == 0 { "autotask" } else { "zendesk" },
            })
        })
        .collect();
    let body = serde_json::json!({
        "zendesk_id": 123_456,
        "psa_id": 29_684_311,
        "psa_number": "T20260101.0042",
        "mirrored": {"subject": "Printer on fire", "status": "open", "priority": "high"},
        "comments": comments,
    })
    .to_string();
    assert!(
        body.len() < MAX_ITEM_BYTES,
        "link body is {} bytes",
        body.len()
    );
    assert!(
        body.len() > 100 * 1024,
        "realistic size, not a toy: {}",
        body.len()
    );

    store
        .put(
            "TENANT#acme",
            "LINK#Z#123456",
            &body,
            Condition::MustNotExist,
            None,
        )
        .await
        .unwrap();
    let item = store
        .get("TENANT#acme", "LINK#Z#123456")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.body, body);
    let parsed: serde_json::Value = serde_json::from_str(&item.body).unwrap();
    assert_eq!(parsed["comments"].as_array().unwrap().len(), 2_000);
}

#[tokio::test]
async fn query_orders_limits_pages_and_hides_expired_items() {
    let store = new_store().await;
    let pk = "TENANT#acme";
    let past = now_secs() - 60;
    let future = now_secs() + 3_600;
    store
        .put(pk, "CONFIG", "{}", Condition::Always, None)
        .await
        .unwrap();
    store
        .put("TENANT#other", "LOG#5", "x", Condition::Always, None)
        .await
        .unwrap();
    for i in 1..=6 {
        // The two newest entries have expired but are still physically there,
        // as DynamoDB TTL deletes lazily.
        let expires = if i >= 5 { past } else { future };
        store
            .put(
                pk,
                &format!("LOG#{i}"),
                &format!("entry {i}"),
                Condition::Always,
                Some(expires),
            )
            .await
            .unwrap();
    }

    let newest = store.query(pk, "LOG#", true, 3).await.unwrap();
    let sks: Vec<_> = newest.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(sks, ["LOG#4", "LOG#3", "LOG#2"]);
    assert_eq!(newest[0].expires_at, Some(future));

    let oldest = store.query(pk, "LOG#", false, 100).await.unwrap();
    let sks: Vec<_> = oldest.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(sks, ["LOG#1", "LOG#2", "LOG#3", "LOG#4"]);

    assert_eq!(
        store.query(pk, "", false, 100).await.unwrap().len(),
        5,
        "CONFIG + 4 live logs"
    );
    assert!(store.query(pk, "LOG#", true, 0).await.unwrap().is_empty());
    assert_eq!(
        store.get(pk, "LOG#6").await.unwrap(),
        None,
        "expired reads as absent"
    );

    // An expired item counts as absent for creation too, starting over at 1.
    assert_eq!(
        store
            .put(pk, "LOG#6", "new", Condition::MustNotExist, None)
            .await
            .unwrap(),
        1
    );
    let stale = store
        .put(pk, "LOG#5", "new", Condition::VersionIs(1), None)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
}

#[tokio::test]
async fn query_follows_pages_past_the_one_megabyte_response_limit() {
    let store = new_store().await;
    let body = "y".repeat(300 * 1024);
    for i in 0..6 {
        store
            .put(
                "TENANT#big",
                &format!("DEVICE#{i}"),
                &body,
                Condition::Always,
                None,
            )
            .await
            .unwrap();
    }
    let all = store
        .query("TENANT#big", "DEVICE#", false, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 6, "1.8 MB of items spans several pages");
    assert!(all.iter().all(|i| i.body.len() == body.len()));
}

#[tokio::test]
async fn scan_sort_key_lists_every_tenant_config() {
    let store = new_store().await;
    for tenant in ["a", "b", "c"] {
        let pk = format!("TENANT#{tenant}");
        store
            .put(&pk, "CONFIG", tenant, Condition::Always, None)
            .await
            .unwrap();
        store
            .put(&pk, "LINK#Z#1", "x", Condition::Always, None)
            .await
            .unwrap();
    }
    store
        .put(
            "TENANT#gone",
            "CONFIG",
            "old",
            Condition::Always,
            Some(now_secs() - 1),
        )
        .await
        .unwrap();

    let mut bodies: Vec<_> = store
        .scan_sort_key("CONFIG")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_missing_table_is_a_retryable_unavailable_error() {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let store = DynamoStore::new(client, unique("no-such-table"));
    let err = store.get("p", "s").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// ------------------------------------------------------------------ queue

async fn receive_all(queue: &SqsQueue) -> Vec<bridge::ports::Delivery> {
    queue.receive(10, Duration::ZERO).await.unwrap()
}

/// Receives and completes until the queue is empty.
async fn drain(queue: &SqsQueue) -> Vec<SyncJob> {
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let batch = receive_all(queue).await;
        if batch.is_empty() {
            break;
        }
        for d in batch {
            queue.complete(&d.receipt).await.unwrap();
            jobs.push(d.job);
        }
    }
    jobs
}

#[tokio::test]
async fn fifo_keeps_order_per_ticket_and_serves_tickets_in_parallel() {
    let q = new_queue(None).await;
    // Event ids are unique per source event, whatever the ticket.
    let sent = [
        ("1", "a"),
        ("2", "a"),
        ("1", "b"),
        ("3", "a"),
        ("2", "b"),
        ("1", "c"),
    ];
    for (ticket, event) in sent {
        q.queue
            .send(&job(ticket, &format!("{ticket}{event}")))
            .await
            .unwrap();
    }

    // While ticket 1's first job is in flight, nothing more of ticket 1 is
    // delivered, but the other tickets are.
    let first = q.queue.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].job, job("1", "1a"), "the oldest job, intact");
    assert_eq!(first[0].receive_count, 1);
    let others = receive_all(&q.queue).await;
    let tickets: Vec<_> = others.iter().map(|d| d.job.subject.id()).collect();
    assert!(
        !tickets.contains(&"1".to_owned()),
        "ticket 1 is locked while in flight: {tickets:?}"
    );
    assert!(
        tickets.contains(&"2".to_owned()) && tickets.contains(&"3".to_owned()),
        "{tickets:?}"
    );

    // Draining everything, each ticket's events arrive in the order sent.
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pending = first;
    pending.extend(others);
    for _ in 0..10 {
        if pending.is_empty() {
            break;
        }
        for d in pending.drain(..) {
            order
                .entry(d.job.subject.id())
                .or_default()
                .push(d.job.event_id.clone());
            q.queue.complete(&d.receipt).await.unwrap();
        }
        pending = receive_all(&q.queue).await;
    }
    let expected = BTreeMap::from([
        (
            "1".to_owned(),
            vec!["1a".to_owned(), "1b".into(), "1c".into()],
        ),
        ("2".to_owned(), vec!["2a".to_owned(), "2b".into()]),
        ("3".to_owned(), vec!["3a".to_owned()]),
    ]);
    assert_eq!(order, expected);
    assert!(
        receive_all(&q.queue).await.is_empty(),
        "completed messages are gone"
    );
}

#[tokio::test]
async fn the_same_source_event_is_queued_once() {
    let q = new_queue(None).await;
    q.queue.send(&job("7", "evt-1")).await.unwrap();
    q.queue.send(&job("7", "evt-1")).await.unwrap();
    q.queue.send(&job("7", "evt-2")).await.unwrap();
    // A very long event id with characters SQS refuses in dedup ids.
    let odd = "é/".repeat(200);
    q.queue.send(&job("7", &odd)).await.unwrap();
    q.queue.send(&job("7", &odd)).await.unwrap();
    q.queue.send(&job("8", "evt-8")).await.unwrap();
    q.queue.send(&job("8", "evt-8")).await.unwrap();
    q.queue.send(&job("7", "evt-1")).await.unwrap();

    let mut events: Vec<_> = drain(&q.queue)
        .await
        .into_iter()
        .map(|j| (j.subject.id(), j.event_id))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("7".to_owned(), "evt-1".to_owned()),
            ("7".into(), "evt-2".into()),
            ("7".into(), odd),
            ("8".into(), "evt-8".into()),
        ]
    );
}

#[tokio::test]
async fn retry_later_hides_the_message_for_the_delay_then_redelivers_it() {
    let q = new_queue(None).await;
    q.queue.send(&job("9", "e1")).await.unwrap();
    let first = receive_all(&q.queue).await;
    assert_eq!(first.len(), 1);

    q.queue
        .retry_later(&first[0].receipt, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        receive_all(&q.queue).await.is_empty(),
        "hidden during the delay"
    );
    // Polled, not slept: the emulator's clock decides. Bounded well under
    // the queue's 30 s visibility timeout, so it is the delay that ran out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let again = loop {
        let got = receive_all(&q.queue).await;
        if !got.is_empty() {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not visible again 20 s after a 2 s delay (only the 30 s queue timeout would bring it back)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.len(), 1, "visible again after the delay");
    assert_eq!(again[0].job, job("9", "e1"));
    assert_eq!(again[0].receive_count, 2);

    // Long delays (a permanent failure waiting for an admin) are accepted.
    q.queue
        .retry_later(&again[0].receipt, Duration::from_secs(11 * 3600))
        .await
        .unwrap();
    assert!(receive_all(&q.queue).await.is_empty());
}

#[tokio::test]
async fn a_job_moves_to_the_dlq_after_the_receive_limit() {
    let q = new_queue(Some(2)).await;
    q.queue.send(&job("5", "poison")).await.unwrap();
    q.queue.send(&job("6", "fine")).await.unwrap();

    for attempt in 1..=2 {
        let got = receive_all(&q.queue).await;
        let poison: Vec<_> = got.iter().filter(|d| d.job.subject.id() == "5").collect();
        assert_eq!(poison.len(), 1, "attempt {attempt}: {got:?}");
        assert_eq!(poison[0].receive_count, attempt);
        q.queue
            .retry_later(&poison[0].receipt, Duration::ZERO)
            .await
            .unwrap();
        for d in got.iter().filter(|d| d.job.subject.id() != "5") {
            q.queue.complete(&d.receipt).await.unwrap();
        }
    }
    assert!(
        receive_all(&q.queue).await.is_empty(),
        "third receive redrives it instead"
    );

    let dlq = SqsQueue::new(q.sqs.clone(), q.dlq_url.clone().unwrap());
    let dead = receive_all(&dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].job,
        job("5", "poison"),
        "the DLQ keeps the job intact for replay"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_job_is_skipped_not_deleted() {
    let q = new_queue(None).await;
    q.sqs
        .send_message()
        .queue_url(q.queue.url())
        .message_body("not json")
        .message_group_id("junk")
        .message_deduplication_id("junk-1")
        .send()
        .await
        .unwrap();
    q.queue.send(&job("1", "ok")).await.unwrap();
    let got = receive_all(&q.queue).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job, job("1", "ok"));
    let attrs = q
        .sqs
        .get_queue_attributes()
        .queue_url(q.queue.url())
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let in_flight =
        &attrs.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible];
    assert_eq!(
        in_flight, "2",
        "the junk message stays in the queue, headed for the DLQ"
    );
}

// ---------------------------------------------------------------- secrets

fn tenant_secrets(token: &str) -> TenantSecrets {
    TenantSecrets {
        zendesk_email: "agent@acme.example".into(),
        zendesk_api_token: Secret::new(token),
        zendesk_oauth_token: Secret::default(),
        zendesk_webhook_secret: Secret::new("whsec"),
        autotask_username: "api@acme.example".into(),
        autotask_secret: Secret::new("at-secret"),
        autotask_integration_code: Secret::new("CODE"),
        autotask_callout_username: "callout".into(),
        autotask_callout_password: Secret::new("callout-pw"),
        autotask_webhook_secret: Secret::new("hook"),
        connectwise_public_key: String::new(),
        connectwise_private_key: Secret::default(),
        connectwise_client_id: String::new(),
        inventory_signing_secret: Secret::default(),
    }
}

/// The document an admin stores in Secrets Manager.
fn secret_json(secrets: &TenantSecrets) -> String {
    testkit::fakes::secret_document(secrets)
}

#[tokio::test]
async fn tenant_secrets_round_trip_and_are_cached() {
    let config = sdk().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let prefix = unique("psa-test");
    let tenant = TenantId::parse("acme").unwrap();
    client
        .create_secret()
        .name(format!("{prefix}/acme"))
        .secret_string(secret_json(&tenant_secrets("token-1")))
        .send()
        .await
        .unwrap();

    let cached = SecretsManagerSecrets::new(client.clone(), format!("{prefix}/"));
    assert_eq!(cached.secret_name(&tenant), format!("{prefix}/acme"));
    assert_eq!(
        cached.tenant_secrets(&tenant).await.unwrap(),
        tenant_secrets("token-1")
    );

    client
        .put_secret_value()
        .secret_id(format!("{prefix}/acme"))
        .secret_string(secret_json(&tenant_secrets("token-2")))
        .send()
        .await
        .unwrap();

    let served = cached.tenant_secrets(&tenant).await.unwrap();
    assert_eq!(
        served.zendesk_api_token.expose(),
        "token-1",
        "served from the cache"
    );
    // Another process (a new Lambda instance) reads the rotated value; when
    // the cache's entries expire is checked in `secrets.rs`.
    let fresh = SecretsManagerSecrets::new(client.clone(), &prefix)
        .tenant_secrets(&tenant)
        .await
        .unwrap();
    assert_eq!(
        fresh.zendesk_api_token.expose(),
        "token-2",
        "a fresh process reads the rotated secret"
    );
}

#[tokio::test]
async fn written_tenant_secrets_are_created_then_replaced_and_read_back() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let prefix = unique("psa-test");
    let tenant = TenantId::parse("acme").unwrap();
    let writer = SecretsManagerSecrets::new(client.clone(), &prefix);

    let mut first = tenant_secrets("token-1");
    first.zendesk_oauth_token = Secret::new("oauth-access-1");
    writer.put_tenant_secrets(&tenant, &first).await.unwrap();
    assert_eq!(writer.tenant_secrets(&tenant).await.unwrap(), first);

    let second = tenant_secrets("token-2");
    writer.put_tenant_secrets(&tenant, &second).await.unwrap();
    assert_eq!(
        writer.tenant_secrets(&tenant).await.unwrap(),
        second,
        "the writer's own cache takes the new value"
    );
    let fresh = SecretsManagerSecrets::new(client.clone(), &prefix)
        .tenant_secrets(&tenant)
        .await
        .unwrap();
    assert_eq!(fresh, second, "another process reads what was written");

    let stored = client
        .get_secret_value()
        .secret_id(format!("{prefix}/acme"))
        .send()
        .await
        .unwrap();
    let document: serde_json::Value =
        serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(document["zendesk_api_token"], "token-2");
    assert_eq!(document["zendesk_oauth_token"], "", "replaced as a whole");
    let versions = client
        .list_secret_version_ids()
        .secret_id(format!("{prefix}/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len(),
        2,
        "one secret, a new version per write"
    );
}

#[tokio::test]
async fn missing_and_malformed_secrets_are_told_apart_without_leaking() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let prefix = unique("psa-test");
    let secrets = SecretsManagerSecrets::new(client.clone(), &prefix);

    let missing = secrets
        .tenant_secrets(&TenantId::parse("nobody").unwrap())
        .await;
    assert!(
        matches!(&missing, Err(SecretsError::Missing(t)) if t == "nobody"),
        "{missing:?}"
    );
    assert!(!missing.unwrap_err().is_retryable());

    let mut doc: HashMap<String, serde_json::Value> =
        serde_json::from_str(&secret_json(&tenant_secrets("x"))).unwrap();
    doc.insert("zendesk_api_token".into(), serde_json::json!(987_654_321));
    client
        .create_secret()
        .name(format!("{prefix}/broken"))
        .secret_string(serde_json::to_string(&doc).unwrap())
        .send()
        .await
        .unwrap();
    let err = secrets
        .tenant_secrets(&TenantId::parse("broken").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, SecretsError::Malformed { .. }), "{err:?}");
    assert!(!err.to_string().contains("987654321"), "{err}");
    assert!(!format!("{err:?}").contains("987654321"), "{err:?}");
}
