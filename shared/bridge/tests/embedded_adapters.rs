//! The embedded adapters: the shared port contracts, plus what only they
//! offer (dead letters and their redrive, files that survive a restart, the
//! secrets file).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, QueueDepth, SqliteStore};
use bridge::error::{QueueError, SecretsError, StoreError};
use bridge::model::{DeskTicketId, JobSubject, SyncJob, TenantId};
use bridge::ports::{Condition, Queue, Secrets, Store, MAX_ITEM_BYTES};
use chrono::Utc;
use testkit::conformance::{self, QueueContractOptions, QUEUE_VISIBILITY};

/// A fresh directory per test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bridge-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn job(ticket: &str, event: &str) -> SyncJob {
    SyncJob {
        tenant: TenantId::parse("acme").unwrap(),
        subject: JobSubject::Desk(DeskTicketId(ticket.parse().expect("numeric ticket ids"))),
        desk_ticket_id: None,
        event_id: event.to_owned(),
        received_at_ms: 1_700_000_000_000,
        change: bridge::model::ChangeHint::Unknown,
    }
}

fn events(deliveries: &[bridge::ports::Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.job.event_id.as_str()).collect()
}

const NOW: Duration = Duration::ZERO;

#[tokio::test]
async fn store_contract_in_memory() {
    conformance::store_contract(&SqliteStore::in_memory().unwrap()).await;
}

#[tokio::test]
async fn shared_autotask_budget_holds_across_processes_on_the_embedded_store() {
    let dir = TempDir::new("budget-contract");
    let store = Arc::new(SqliteStore::open(&dir.file("bridge.db")).unwrap());
    testkit::budget_contract::shared_budget_contract(store).await;
}

#[tokio::test]
async fn store_contract_on_file() {
    let dir = TempDir::new("store-contract");
    conformance::store_contract(&SqliteStore::open(&dir.file("bridge.db")).unwrap()).await;
}

#[tokio::test]
async fn queue_contract_in_memory() {
    conformance::queue_contract(QueueContractOptions::STRICT, || async {
        Box::new(
            EmbeddedQueue::in_memory()
                .unwrap()
                .with_visibility_timeout(QUEUE_VISIBILITY),
        ) as Box<dyn Queue>
    })
    .await;
}

#[tokio::test]
async fn queue_contract_on_file() {
    let dir = TempDir::new("queue-contract");
    let n = AtomicUsize::new(0);
    conformance::queue_contract(QueueContractOptions::STRICT, || {
        let path = dir.file(&format!("queue-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move {
            Box::new(
                EmbeddedQueue::open(&path)
                    .unwrap()
                    .with_visibility_timeout(QUEUE_VISIBILITY),
            ) as Box<dyn Queue>
        }
    })
    .await;
}

#[tokio::test]
async fn a_group_delivers_one_message_at_a_time_even_in_one_batch() {
    let queue = EmbeddedQueue::in_memory().unwrap();
    for (ticket, event) in [
        ("1", "a1"),
        ("1", "a2"),
        ("2", "b1"),
        ("1", "a3"),
        ("2", "b2"),
    ] {
        queue.send(&job(ticket, event)).await.unwrap();
    }
    let batch = queue.receive(10, NOW).await.unwrap();
    assert_eq!(events(&batch), ["a1", "b1"]);
    assert!(queue.receive(10, NOW).await.unwrap().is_empty());
    assert_eq!(
        queue.depth().unwrap(),
        QueueDepth {
            visible: 3,
            in_flight: 2,
            dead: 0
        }
    );
    queue.complete(&batch[1].receipt).await.unwrap();
    assert_eq!(events(&queue.receive(10, NOW).await.unwrap()), ["b2"]);
}

#[tokio::test]
async fn receive_limit_dead_letters_and_redrive_replays() {
    let queue = EmbeddedQueue::in_memory()
        .unwrap()
        .with_max_receive_count(2);
    queue.send(&job("1", "x1")).await.unwrap();
    queue.send(&job("1", "x2")).await.unwrap();

    let first = queue.receive(10, NOW).await.unwrap();
    assert_eq!((events(&first), first[0].receive_count), (vec!["x1"], 1));
    queue.retry_later(&first[0].receipt, NOW).await.unwrap();
    let second = queue.receive(10, NOW).await.unwrap();
    assert_eq!((events(&second), second[0].receive_count), (vec!["x1"], 2));
    queue.retry_later(&second[0].receipt, NOW).await.unwrap();

    // A third delivery of x1 would exceed the limit: it is set aside, and its
    // group moves on to x2 in the same receive.
    let third = queue.receive(10, NOW).await.unwrap();
    assert_eq!((events(&third), third[0].receive_count), (vec!["x2"], 1));
    assert_eq!(
        queue.depth().unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 1,
            dead: 1
        }
    );
    queue.complete(&third[0].receipt).await.unwrap();

    assert_eq!(queue.redrive_dead_letters().unwrap(), 1);
    assert_eq!(queue.depth().unwrap().dead, 0, "no dead letters left");
    assert_eq!(queue.redrive_dead_letters().unwrap(), 0);
    let replayed = queue.receive(10, NOW).await.unwrap();
    assert_eq!(
        (events(&replayed), replayed[0].receive_count),
        (vec!["x1"], 1),
        "a redriven message starts its receive count afresh"
    );
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_jobs_and_replayed_one_at_a_time() {
    let queue = EmbeddedQueue::in_memory()
        .unwrap()
        .with_max_receive_count(1);
    queue.send(&job("1", "a")).await.unwrap();
    queue.send(&job("2", "b")).await.unwrap();
    for delivery in queue.receive(10, NOW).await.unwrap() {
        queue.retry_later(&delivery.receipt, NOW).await.unwrap();
    }
    assert!(queue.receive(10, NOW).await.unwrap().is_empty());

    let dead = queue.dead_letters().unwrap();
    let listed: Vec<&str> = dead
        .iter()
        .map(|d| d.job.as_ref().expect("a readable job").event_id.as_str())
        .collect();
    assert_eq!(listed, vec!["a", "b"]);
    assert!(dead
        .iter()
        .all(|d| d.receive_count == 1 && d.dead_at_ms > 0));

    assert!(queue.redrive_dead_letter(dead[1].id).unwrap());
    assert!(
        !queue.redrive_dead_letter(dead[1].id).unwrap(),
        "a replayed dead letter is gone"
    );
    let remaining: Vec<i64> = queue.dead_letters().unwrap().iter().map(|d| d.id).collect();
    assert_eq!(remaining, vec![dead[0].id], "only the chosen one moved");
    let replayed = queue.receive(10, NOW).await.unwrap();
    assert_eq!(events(&replayed), vec!["b"]);
}

#[tokio::test]
async fn unknown_receipts_are_rejected_and_stale_ones_ignored() {
    let queue = EmbeddedQueue::in_memory().unwrap();
    assert!(matches!(
        queue.complete("garbage").await,
        Err(QueueError::Invalid(_))
    ));
    queue.send(&job("1", "e1")).await.unwrap();
    let delivered = queue.receive(1, NOW).await.unwrap();
    let forged = format!(
        "{}.{}",
        delivered[0].receipt.split('.').next().unwrap(),
        "0".repeat(32)
    );
    queue.complete(&forged).await.unwrap();
    queue.retry_later(&forged, NOW).await.unwrap();
    assert_eq!(
        queue.depth().unwrap().in_flight,
        1,
        "a forged receipt touched the message"
    );
}

/// Several workers on one queue: every group is processed in order, by one
/// worker at a time, each job exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_keep_groups_serial() {
    const GROUPS: usize = 20;
    const PER_GROUP: usize = 10;
    let queue = Arc::new(EmbeddedQueue::in_memory().unwrap());
    for i in 0..PER_GROUP {
        for g in 0..GROUPS {
            queue
                .send(&job(&format!("{g}"), &format!("t{g}-{i}")))
                .await
                .unwrap();
        }
    }
    let busy = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(Mutex::new(BTreeMap::<String, Vec<usize>>::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (queue, busy, done) = (queue.clone(), busy.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let batch = queue.receive(3, Duration::from_millis(300)).await.unwrap();
                    if batch.is_empty() {
                        return;
                    }
                    for d in batch {
                        let group = d.job.subject.id();
                        assert!(
                            busy.lock().unwrap().insert(group.clone()),
                            "{group} handed to two workers at once"
                        );
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let seq = d.job.event_id.rsplit('-').next().unwrap().parse().unwrap();
                        done.lock()
                            .unwrap()
                            .entry(group.clone())
                            .or_default()
                            .push(seq);
                        busy.lock().unwrap().remove(&group);
                        queue.complete(&d.receipt).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let done = done.lock().unwrap();
    assert_eq!(done.len(), GROUPS);
    for (group, seqs) in done.iter() {
        assert_eq!(
            *seqs,
            (0..PER_GROUP).collect::<Vec<_>>(),
            "order of {group}"
        );
    }
}

#[tokio::test]
async fn store_and_queue_survive_a_restart_in_one_file() {
    let dir = TempDir::new("reopen");
    let path = dir.file("state/bridge.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let queue = EmbeddedQueue::open(&path).unwrap();
        store
            .put("TENANT#acme", "CONFIG", "v1", Condition::MustNotExist, None)
            .await
            .unwrap();
        store
            .put("TENANT#acme", "CONFIG", "v2", Condition::VersionIs(1), None)
            .await
            .unwrap();
        for (ticket, event) in [("1", "a1"), ("1", "a2"), ("2", "b1")] {
            queue.send(&job(ticket, event)).await.unwrap();
        }
        assert_eq!(events(&queue.receive(1, NOW).await.unwrap()), ["a1"]);
    }

    let store = SqliteStore::open(&path).unwrap();
    let queue = EmbeddedQueue::open(&path).unwrap();
    let config = store.get("TENANT#acme", "CONFIG").await.unwrap().unwrap();
    assert_eq!((config.body.as_str(), config.version), ("v2", 2));
    assert_eq!(
        store
            .put("TENANT#acme", "CONFIG", "v3", Condition::VersionIs(2), None)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        queue.depth().unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 1,
            dead: 0
        },
        "a1 is still in flight, a2 waits behind it"
    );
    queue.send(&job("2", "b1")).await.unwrap();
    assert_eq!(
        queue.depth().unwrap().visible,
        2,
        "the dedup window survives a restart"
    );
    assert_eq!(events(&queue.receive(10, NOW).await.unwrap()), ["b1"]);
}

/// Expiry on the wall clock: an item whose expiry second has passed is gone
/// for readers at once, and its row is deleted by a later write (at most
/// once a minute per process, and at a process's first write).
#[tokio::test]
async fn expired_items_vanish_and_are_purged() {
    let dir = TempDir::new("ttl");
    let path = dir.file("bridge.db");
    let store = SqliteStore::open(&path).unwrap();
    let now = Utc::now().timestamp();
    let pk = "TENANT#acme";
    // The process's first write purges first (nothing yet), then writes.
    store
        .put(pk, "LOG#1", "entry", Condition::Always, Some(now - 1))
        .await
        .unwrap();
    store
        .put(pk, "LOG#2", "entry", Condition::Always, Some(now + 3600))
        .await
        .unwrap();
    assert_eq!(
        store.get(pk, "LOG#1").await.unwrap(),
        None,
        "gone once its second has passed"
    );
    assert!(
        store.get(pk, "LOG#2").await.unwrap().is_some(),
        "there until it expires"
    );
    let listed: Vec<String> = store
        .query(pk, "LOG#", true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.sk)
        .collect();
    assert_eq!(listed, ["LOG#2"], "queries skip expired items");

    let rows = |sk: &str| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM items WHERE sk = ?1", [sk], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(rows("LOG#1"), 1, "expired rows stay until a writer purges");
    let restarted = SqliteStore::open(&path).unwrap();
    restarted
        .put(pk, "LOG#3", "entry", Condition::Always, None)
        .await
        .unwrap();
    assert_eq!(rows("LOG#1"), 0, "a write purges expired rows");
    assert_eq!(rows("LOG#2"), 1, "and only those");
}

#[tokio::test]
async fn item_size_limit_counts_key_and_body_bytes() {
    let store = SqliteStore::in_memory().unwrap();
    let (pk, sk) = ("TENANT#acme", "LINK#Z#1");
    let exact = "é".repeat((MAX_ITEM_BYTES - pk.len() - sk.len()) / 2);
    let exact = exact + &"x".repeat((MAX_ITEM_BYTES - pk.len() - sk.len()) % 2);
    assert_eq!(pk.len() + sk.len() + exact.len(), MAX_ITEM_BYTES);
    store
        .put(pk, sk, &exact, Condition::Always, None)
        .await
        .unwrap();
    match store
        .put(pk, sk, &format!("{exact}x"), Condition::Always, None)
        .await
    {
        Err(StoreError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_ITEM_BYTES + 1, MAX_ITEM_BYTES));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Runs `op(0..n)` from `tasks` concurrent tasks.
async fn from_tasks<F, Fut>(n: usize, tasks: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (t..n).step_by(tasks) {
                    op(i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

/// Ingest enqueues on its hot path from many concurrent requests, which
/// group commit batches into shared transactions (many more writes than one
/// batch holds): every write of every writer must land, once, and a
/// conditional put must still see the puts committed before it, in its own
/// batch or an earlier one. How fast this goes is measured by the benchmark
/// (`psa-bridge-bench`), not asserted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_many_concurrent_writers_lands_once() {
    const N: usize = 5_000;
    let dir = TempDir::new("concurrent-writers");
    let path = dir.file("bridge.db");
    let queue = Arc::new(EmbeddedQueue::open(&path).unwrap());
    let store = Arc::new(SqliteStore::open(&path).unwrap());

    let q = queue.clone();
    from_tasks(N, 64, move |i| {
        let q = q.clone();
        async move {
            q.send(&job(&(i % 500).to_string(), &format!("evt-{i}")))
                .await
                .unwrap();
        }
    })
    .await;
    let s = store.clone();
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    // Every key twice, from different tasks: exactly one put of each wins.
    from_tasks(2 * N, 64, move |i| {
        let (s, r) = (s.clone(), r.clone());
        async move {
            let key = i % N;
            let body = format!(r#"{{"psa_ticket":{key},"comments":[]}}"#);
            match s
                .put(
                    "TENANT#acme",
                    &format!("LINK#Z#{key}"),
                    &body,
                    Condition::MustNotExist,
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => {
                    r.fetch_add(1, Ordering::SeqCst);
                }
                Err(other) => panic!("put {i}: {other}"),
            }
        }
    })
    .await;

    assert_eq!(
        queue.depth().unwrap().visible,
        N as u64,
        "every send from 64 writers is queued"
    );
    assert_eq!(
        store
            .query("TENANT#acme", "LINK#Z#", false, 2 * N)
            .await
            .unwrap()
            .len(),
        N,
        "one item per key"
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        N,
        "the second put of every key is refused, committed in the same batch or not"
    );
}

const SECRETS_TOML: &str = r#"
[tenants.acme]
zendesk_email = "bridge@acme.example"
zendesk_api_token = "zd-token-acme-7f3a"
zendesk_webhook_secret = "zd-hook-acme-91c2"
autotask_username = "api@acme.example"
autotask_secret = "at-secret-acme-5d8e"
autotask_integration_code = "at-code-acme-0b4f"
autotask_callout_username = "callout"
autotask_callout_password = "at-callout-acme-2a6c"

[tenants.beta-msp]
zendesk_email = "bridge@beta.example"
zendesk_api_token = "zd-token-beta-33aa"
zendesk_webhook_secret = "zd-hook-beta-44bb"
autotask_username = "api@beta.example"
autotask_secret = "at-secret-beta-55cc"
autotask_integration_code = "at-code-beta-66dd"
"#;

const ALL_SECRET_VALUES: [&str; 11] = [
    "zd-token-acme-7f3a",
    "zd-hook-acme-91c2",
    "at-secret-acme-5d8e",
    "at-code-acme-0b4f",
    "at-callout-acme-2a6c",
    "zd-token-beta-33aa",
    "zd-hook-beta-44bb",
    "at-secret-beta-55cc",
    "at-code-beta-66dd",
    "918273645",
    "hunter2",
];

fn assert_no_secret(text: &str) {
    for value in ALL_SECRET_VALUES {
        assert!(!text.contains(value), "{value} leaked into {text:?}");
    }
}

#[tokio::test]
async fn file_secrets_load_and_never_show_values() {
    let dir = TempDir::new("secrets");
    let path = dir.file("secrets.toml");
    std::fs::write(&path, SECRETS_TOML).unwrap();
    let secrets = FileSecrets::load(&path).unwrap();

    let acme = secrets
        .tenant_secrets(&TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(acme.zendesk_email, "bridge@acme.example");
    assert_eq!(acme.zendesk_api_token.expose(), "zd-token-acme-7f3a");
    assert_eq!(
        acme.autotask_callout_password.expose(),
        "at-callout-acme-2a6c"
    );
    let beta = secrets
        .tenant_secrets(&TenantId::parse("beta-msp").unwrap())
        .await
        .unwrap();
    assert_eq!(beta.autotask_integration_code.expose(), "at-code-beta-66dd");
    assert!(
        beta.autotask_webhook_secret.is_empty(),
        "optional fields default to empty"
    );

    let debug = format!("{secrets:?} {acme:?} {beta:?}");
    assert!(
        debug.contains("acme") && debug.contains("beta-msp"),
        "{debug}"
    );
    assert_no_secret(&debug);

    match secrets
        .tenant_secrets(&TenantId::parse("nobody").unwrap())
        .await
    {
        Err(e @ SecretsError::Missing(_)) => {
            assert!(e.to_string().contains("nobody"));
            assert!(!e.is_retryable());
        }
        other => panic!("expected Missing, got {other:?}"),
    }

    let from_map = FileSecrets::from_map(HashMap::from([(
        TenantId::parse("acme").unwrap(),
        acme.clone(),
    )]));
    assert_eq!(
        from_map
            .tenant_secrets(&TenantId::parse("acme").unwrap())
            .await
            .unwrap(),
        acme
    );
}

#[test]
fn malformed_secrets_files_are_explained_without_values() {
    let dir = TempDir::new("bad-secrets");
    let cases = [
        (
            SECRETS_TOML.replace("\"zd-token-acme-7f3a\"", "918273645"),
            "acme",
            "wrong type",
        ),
        (
            SECRETS_TOML.replace("zendesk_webhook_secret = \"zd-hook-beta-44bb\"\n", ""),
            "beta-msp",
            "missing field `zendesk_webhook_secret`",
        ),
        (
            SECRETS_TOML.replace("[tenants.beta-msp]", "[tenants.\"Beta MSP\"]"),
            "Beta MSP",
            "tenant id",
        ),
        (
            SECRETS_TOML.replace("\"at-secret-acme-5d8e\"", "\"hunter2"),
            "*",
            "line 7",
        ),
    ];
    for (i, (text, tenant, reason)) in cases.iter().enumerate() {
        let path = dir.file(&format!("case-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let err = FileSecrets::load(&path).expect_err("malformed file loads");
        let shown = format!("{err} {err:?}");
        assert!(
            matches!(&err, SecretsError::Malformed { tenant: t, .. } if t == tenant),
            "case {i}: {shown}"
        );
        assert!(shown.contains(reason), "case {i}: {shown}");
        assert_no_secret(&shown);
    }
    assert!(matches!(
        FileSecrets::load(&dir.file("absent.toml")),
        Err(SecretsError::Unavailable(_))
    ));
}
