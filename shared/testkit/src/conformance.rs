//! The contracts of the `Store` and `Queue` ports as executable checks, shaped
//! after DynamoDB and SQS FIFO. Every adapter's tests run them (the embedded
//! ones and, against an emulator, the AWS ones), so adapters cannot drift
//! apart. Failures panic with the rule that was broken; run under tokio.
//!
//! Timing: queue checks need a visibility timeout of [`QUEUE_VISIBILITY`] and
//! wait generously (seconds) for anything that must happen, so they do not
//! flake on a loaded machine; a run takes about ten seconds.
//!
//! Emulators: the AWS adapters are checked against a local emulator (moto),
//! which departs from AWS in a few documented ways. The store contract's size
//! margin fits both; the queue contract relaxes exactly those departures when
//! told so by [`QueueContractOptions`], and nothing else.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use bridge::error::StoreError;
use bridge::model::{DeskTicketId, JobSubject, PsaTicketId, SyncJob, TenantId};
use bridge::ports::{Condition, Delivery, Queue, Store, MAX_ITEM_BYTES};

/// The visibility timeout the queues under test must have.
pub const QUEUE_VISIBILITY: Duration = Duration::from_secs(1);
/// The receive limit must be at least this, or checks that redeliver a
/// message would see it dead-lettered.
pub const QUEUE_MIN_RECEIVE_LIMIT: u32 = 4;

/// Long enough for anything that must happen, even on a busy machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// How far under [`MAX_ITEM_BYTES`] (key and body bytes) the store contract's
/// "large item" stays. DynamoDB also counts attribute names, the version and
/// the expiry towards its 400 KB, and the moto emulator counts more still (it
/// refuses items over about 405,000 bytes), so "close to the limit" must
/// leave room for both.
pub const STORE_LARGE_ITEM_MARGIN: usize = 8 * 1024;

/// What a queue under test is held to where emulators are known to depart
/// from SQS. The embedded queue and real SQS meet [`Self::STRICT`]; a check
/// that is relaxed is skipped, never inverted, so a fixed emulator still
/// passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueContractOptions {
    /// A deduplication id keeps dropping resends after its message was
    /// deleted (SQS: for five minutes after the first send). moto forgets it
    /// once the message is deleted.
    pub dedup_survives_delete: bool,
    /// The receipt of an earlier delivery cannot delete a redelivered
    /// message (SQS requires the latest receipt). moto honours stale ones.
    pub stale_receipts_rejected: bool,
}

impl QueueContractOptions {
    /// Every rule, as SQS behaves.
    pub const STRICT: Self = Self {
        dedup_survives_delete: true,
        stale_receipts_rejected: true,
    };
    /// The moto emulator (moto 5): both departures above relaxed.
    pub const MOTO: Self = Self {
        dedup_survives_delete: false,
        stale_receipts_rejected: false,
    };
}

impl Default for QueueContractOptions {
    fn default() -> Self {
        Self::STRICT
    }
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("time fits i64")
}

fn assert_conflict(result: Result<u64, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{what}: expected a conflict, got {result:?}"
    );
}

async fn body_of(store: &dyn Store, pk: &str, sk: &str) -> Option<(String, u64)> {
    store
        .get(pk, sk)
        .await
        .expect("get")
        .map(|item| (item.body, item.version))
}

/// Checks a `Store` on the wall clock. Keys are unique per run, so a table
/// shared with other data or other runs is fine.
pub async fn store_contract(store: &dyn Store) {
    let base = format!("TENANT#conformance-{}", run_id());
    versions_and_conditions(store, &format!("{base}-v")).await;
    item_size_limit(store, &format!("{base}-s")).await;
    prefix_queries(store, &format!("{base}-qa"), &format!("{base}-qb")).await;
    deletes(store, &format!("{base}-d")).await;
    scan_by_sort_key(store, &base).await;
    expiry(store, &format!("{base}-e")).await;
}

async fn versions_and_conditions(store: &dyn Store, pk: &str) {
    use Condition::{Always, MustNotExist, VersionIs};
    assert_eq!(store.get(pk, "CONFIG").await.expect("get"), None);
    assert_eq!(
        store
            .put(pk, "CONFIG", "v1", MustNotExist, None)
            .await
            .expect("create"),
        1
    );
    let item = store
        .get(pk, "CONFIG")
        .await
        .expect("get")
        .expect("created item");
    assert_eq!((item.pk.as_str(), item.sk.as_str()), (pk, "CONFIG"));
    assert_eq!(
        (item.body.as_str(), item.version, item.expires_at),
        ("v1", 1, None)
    );

    assert_conflict(
        store.put(pk, "CONFIG", "dup", MustNotExist, None).await,
        "create over an existing item",
    );
    assert_eq!(
        store
            .put(pk, "CONFIG", "v2", VersionIs(1), None)
            .await
            .expect("locked update"),
        2
    );
    assert_conflict(
        store.put(pk, "CONFIG", "stale", VersionIs(1), None).await,
        "update from a stale version",
    );
    assert_eq!(
        body_of(store, pk, "CONFIG").await,
        Some(("v2".to_owned(), 2)),
        "a lost write changes nothing"
    );
    assert_eq!(
        store
            .put(pk, "CONFIG", "v3", Always, None)
            .await
            .expect("plain update"),
        3
    );

    assert_conflict(
        store.put(pk, "MISSING", "x", VersionIs(1), None).await,
        "versioned write to a missing item",
    );
    assert_eq!(
        store.get(pk, "MISSING").await.expect("get"),
        None,
        "a lost write creates nothing"
    );
    assert_eq!(
        store
            .put(pk, "OTHER", "x", Always, None)
            .await
            .expect("plain create"),
        1
    );

    // Racing optimistic writers: exactly one wins.
    let racers = (0..8).map(|i| {
        let body = format!("racer {i}");
        async move {
            (
                store.put(pk, "CONFIG", &body, VersionIs(3), None).await,
                body,
            )
        }
    });
    let results = futures::future::join_all(racers).await;
    let winners: Vec<&String> = results
        .iter()
        .filter_map(|(r, body)| r.as_ref().ok().map(|v| (v, body)))
        .map(|(v, body)| {
            assert_eq!(*v, 4, "the winner writes version 4");
            body
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racer wins: {results:?}");
    for (result, _) in &results {
        if result.is_err() {
            assert!(
                matches!(result, Err(StoreError::Conflict { .. })),
                "losers conflict: {result:?}"
            );
        }
    }
    assert_eq!(
        body_of(store, pk, "CONFIG").await,
        Some((winners[0].clone(), 4))
    );
}

async fn item_size_limit(store: &dyn Store, pk: &str) {
    let sk = "LINK#Z#big";
    let fits = MAX_ITEM_BYTES - pk.len() - sk.len() - STORE_LARGE_ITEM_MARGIN;
    let body = "x".repeat(fits);
    assert_eq!(
        store
            .put(pk, sk, &body, Condition::Always, None)
            .await
            .expect("large item"),
        1
    );
    let stored = store
        .get(pk, sk)
        .await
        .expect("get")
        .expect("large item stored");
    assert_eq!(stored.body.len(), fits, "a large body round-trips intact");

    match store
        .put(
            pk,
            sk,
            &"x".repeat(MAX_ITEM_BYTES + 1),
            Condition::Always,
            None,
        )
        .await
    {
        Err(StoreError::TooLarge { size, limit, .. }) => {
            assert_eq!(limit, MAX_ITEM_BYTES);
            assert!(size > limit, "reported size {size} is over the limit");
        }
        other => panic!("an item over {MAX_ITEM_BYTES} bytes must be TooLarge, got {other:?}"),
    }
    assert_eq!(
        store.get(pk, sk).await.expect("get").map(|i| i.version),
        Some(1),
        "an oversized write changes nothing"
    );
}

async fn prefix_queries(store: &dyn Store, a: &str, b: &str) {
    // Written out of order; sort keys compare bytewise, so "10" sorts before "2".
    let keys = [
        "LOG#2024-01-02T00:00:00Z#2",
        "LINK#Z#2",
        "NOTE#ê1",
        "LINK#P#5",
        "LINK#Z#10",
        "NOTE#é2",
        "CONFIG",
        "LINK#Z#1",
        "LOG#2024-01-01T00:00:00Z#1",
        "NOTE#é1",
    ];
    for sk in keys {
        store
            .put(a, sk, &format!("body of {sk}"), Condition::Always, None)
            .await
            .expect("put");
    }
    store
        .put(b, "LINK#Z#3", "other partition", Condition::Always, None)
        .await
        .expect("put");

    let sks = |items: Vec<bridge::ports::Item>| -> Vec<String> {
        for item in &items {
            assert_eq!(
                item.body,
                format!("body of {}", item.sk),
                "query returns whole items"
            );
            assert_eq!(item.version, 1);
        }
        items.into_iter().map(|item| item.sk).collect()
    };
    let q = |prefix: &'static str, newest_first: bool, limit: usize| async move {
        sks(store
            .query(a, prefix, newest_first, limit)
            .await
            .expect("query"))
    };
    assert_eq!(
        q("LINK#Z#", false, 10).await,
        ["LINK#Z#1", "LINK#Z#10", "LINK#Z#2"]
    );
    assert_eq!(
        q("LINK#Z#", true, 10).await,
        ["LINK#Z#2", "LINK#Z#10", "LINK#Z#1"]
    );
    assert_eq!(q("LINK#Z#", false, 2).await, ["LINK#Z#1", "LINK#Z#10"]);
    assert_eq!(q("LINK#Z#", true, 2).await, ["LINK#Z#2", "LINK#Z#10"]);
    assert_eq!(
        q("LOG#", true, 1).await,
        ["LOG#2024-01-02T00:00:00Z#2"],
        "newest log entry"
    );
    assert_eq!(
        q("NOTE#é", false, 10).await,
        ["NOTE#é1", "NOTE#é2"],
        "non-ASCII prefix"
    );
    assert_eq!(q("LINK#X#", false, 10).await, Vec::<String>::new());
    let mut all: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    all.sort();
    assert_eq!(
        q("", false, 100).await,
        all,
        "an empty prefix lists the partition in byte order"
    );
    assert_eq!(
        store
            .query(b, "LINK#", false, 10)
            .await
            .expect("query")
            .into_iter()
            .map(|i| i.sk)
            .collect::<Vec<_>>(),
        ["LINK#Z#3"],
        "queries stay inside their partition"
    );
}

async fn deletes(store: &dyn Store, pk: &str) {
    store
        .put(pk, "LINK#Z#1", "x", Condition::Always, None)
        .await
        .expect("put");
    store
        .put(pk, "LINK#Z#1", "y", Condition::Always, None)
        .await
        .expect("put");
    store.delete(pk, "LINK#Z#1").await.expect("delete");
    assert_eq!(store.get(pk, "LINK#Z#1").await.expect("get"), None);
    assert!(store
        .query(pk, "LINK#", false, 10)
        .await
        .expect("query")
        .is_empty());
    store
        .delete(pk, "LINK#Z#1")
        .await
        .expect("deleting a missing item is fine");
    assert_eq!(
        store
            .put(pk, "LINK#Z#1", "again", Condition::MustNotExist, None)
            .await
            .expect("recreate"),
        1,
        "a recreated item starts again at version 1"
    );
}

async fn scan_by_sort_key(store: &dyn Store, base: &str) {
    let (a, b) = (format!("{base}-scan-a"), format!("{base}-scan-b"));
    for (pk, sk) in [
        (&a, "CONFIG"),
        (&b, "CONFIG"),
        (&a, "CONFIGX"),
        (&b, "LINK#CONFIG"),
    ] {
        store
            .put(pk, sk, sk, Condition::Always, None)
            .await
            .expect("put");
    }
    let mut found: Vec<String> = store
        .scan_sort_key("CONFIG")
        .await
        .expect("scan")
        .into_iter()
        .filter(|item| item.pk.starts_with(&format!("{base}-scan-")))
        .map(|item| {
            assert_eq!((item.sk.as_str(), item.body.as_str()), ("CONFIG", "CONFIG"));
            item.pk
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [a, b],
        "scan finds the exact sort key in every partition"
    );
}

async fn expiry(store: &dyn Store, pk: &str) {
    let now = unix_now();
    store
        .put(pk, "LOG#1", "expired", Condition::Always, Some(now - 3600))
        .await
        .expect("put");
    store
        .put(pk, "LOG#2", "live", Condition::Always, Some(now + 3600))
        .await
        .expect("put");
    assert_eq!(
        store.get(pk, "LOG#1").await.expect("get"),
        None,
        "expired items are invisible"
    );
    let live = store
        .get(pk, "LOG#2")
        .await
        .expect("get")
        .expect("live item");
    assert_eq!(live.expires_at, Some(now + 3600), "expires_at round-trips");
    let listed: Vec<String> = store
        .query(pk, "LOG#", false, 10)
        .await
        .expect("query")
        .into_iter()
        .map(|i| i.sk)
        .collect();
    assert_eq!(listed, ["LOG#2"], "queries skip expired items");
    assert!(
        store
            .scan_sort_key("LOG#1")
            .await
            .expect("scan")
            .iter()
            .all(|i| i.pk != pk),
        "scans skip expired items"
    );
    store
        .put(pk, "LOG#1", "reborn", Condition::MustNotExist, None)
        .await
        .expect("an expired item counts as absent for conditions");
}

/// Checks a `Queue`, relaxing only what `options` says. `make` must return a
/// new, empty queue with a visibility timeout of [`QUEUE_VISIBILITY`] and a
/// receive limit of at least [`QUEUE_MIN_RECEIVE_LIMIT`]; each check gets its
/// own, and they run concurrently.
pub async fn queue_contract<F, Fut>(options: QueueContractOptions, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Queue>>,
{
    let run = run_id();
    let (q1, q2, q3, q4, q5, q6, q7) =
        futures::join!(make(), make(), make(), make(), make(), make(), make());
    futures::join!(
        fifo_within_group(q1.as_ref(), &run),
        parallel_across_groups(q2.as_ref(), &run),
        one_in_flight_per_group(q3.as_ref(), &run),
        deduplication(q4.as_ref(), &run, options),
        retry_later(q5.as_ref(), &run),
        visibility_expiry_and_receipts(q6.as_ref(), &run, options),
        long_poll_wakes_on_send(q7.as_ref(), &run),
    );
}

fn job(run: &str, ticket: &str, event: &str) -> SyncJob {
    SyncJob {
        tenant: TenantId::parse("conformance").expect("valid tenant id"),
        subject: JobSubject::Desk(DeskTicketId(ticket.parse().expect("numeric ticket ids"))),
        desk_ticket_id: None,
        event_id: format!("{run}-{event}"),
        received_at_ms: 1_700_000_000_000,
        change: bridge::model::ChangeHint::Unknown,
    }
}

fn event(delivery: &Delivery) -> &str {
    delivery.job.event_id.rsplit('-').next().unwrap_or_default()
}

/// Receives and completes until the queue stays empty for `settle`.
async fn drain(queue: &dyn Queue, settle: Duration) -> Vec<Delivery> {
    let mut seen = Vec::new();
    loop {
        let batch = queue.receive(10, settle).await.expect("receive");
        if batch.is_empty() {
            return seen;
        }
        for delivery in batch {
            queue.complete(&delivery.receipt).await.expect("complete");
            seen.push(delivery);
        }
    }
}

/// Receives (without completing) until `done` says so or patience runs out.
async fn gather(queue: &dyn Queue, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !done(&seen) && Instant::now() < deadline {
        seen.extend(
            queue
                .receive(10, Duration::from_secs(1))
                .await
                .expect("receive"),
        );
    }
    seen
}

async fn fifo_within_group(queue: &dyn Queue, run: &str) {
    let sent: Vec<SyncJob> = (1..=5).map(|i| job(run, "101", &format!("e{i}"))).collect();
    for job in &sent {
        queue.send(job).await.expect("send");
    }
    let got = drain(queue, Duration::from_secs(2)).await;
    let jobs: Vec<&SyncJob> = got.iter().map(|d| &d.job).collect();
    assert_eq!(
        jobs,
        sent.iter().collect::<Vec<_>>(),
        "one group is delivered in send order, intact"
    );
    assert!(
        got.iter().all(|d| d.receive_count == 1),
        "first deliveries count 1"
    );
}

async fn parallel_across_groups(queue: &dyn Queue, run: &str) {
    for ticket in ["11", "12", "13"] {
        queue.send(&job(run, ticket, ticket)).await.expect("send");
    }
    // Nothing is completed: every group must still get a turn.
    let got = gather(queue, |seen| {
        seen.iter()
            .map(|d| d.job.subject.id())
            .collect::<BTreeSet<_>>()
            .len()
            == 3
    })
    .await;
    let tickets: BTreeSet<String> = got.iter().map(|d| d.job.subject.id()).collect();
    assert_eq!(
        tickets,
        BTreeSet::from(["11".to_owned(), "12".to_owned(), "13".to_owned()]),
        "different groups are delivered in parallel"
    );
    let receipts: BTreeSet<&str> = got.iter().map(|d| d.receipt.as_str()).collect();
    assert_eq!(
        receipts.len(),
        got.len(),
        "every delivery has its own receipt"
    );
}

async fn one_in_flight_per_group(queue: &dyn Queue, run: &str) {
    // h2 comes from the PSA side of the same linked ticket pair: same lane.
    queue.send(&job(run, "77", "h1")).await.expect("send");
    let mut h2 = job(run, "9001", "h2");
    (h2.subject, h2.desk_ticket_id) = (JobSubject::Psa(PsaTicketId(9001)), Some(DeskTicketId(77)));
    queue.send(&h2).await.expect("send");
    let first = queue.receive(1, PATIENCE).await.expect("receive");
    assert_eq!(
        first.iter().map(event).collect::<Vec<_>>(),
        ["h1"],
        "the group's oldest message comes first"
    );
    let mut latest_h1 = first[0].receipt.clone();

    // While h1 is in flight (or redelivered after its timeout), h2 waits,
    // but another group is served.
    queue.send(&job(run, "102", "o1")).await.expect("send");
    let got = gather(queue, |seen| seen.iter().any(|d| event(d) == "o1")).await;
    let more = queue
        .receive(10, Duration::from_millis(1500))
        .await
        .expect("receive");
    for delivery in got.iter().chain(&more) {
        assert_ne!(
            event(delivery),
            "h2",
            "a group's next message waits while one is in flight"
        );
        if event(delivery) == "h1" {
            latest_h1 = delivery.receipt.clone();
        }
    }
    assert!(
        got.iter().any(|d| event(d) == "o1"),
        "another group is served meanwhile"
    );

    queue.complete(&latest_h1).await.expect("complete h1");
    let after = gather(queue, |seen| seen.iter().any(|d| event(d) == "h2")).await;
    let h2 = after
        .iter()
        .find(|d| event(d) == "h2")
        .expect("h2 is delivered once h1 is done");
    assert_eq!(h2.receive_count, 1);
}

async fn deduplication(queue: &dyn Queue, run: &str, options: QueueContractOptions) {
    let first = job(run, "103", "e1");
    queue.send(&first).await.expect("send");
    queue
        .send(&first)
        .await
        .expect("send of a duplicate is accepted");
    let mut resent = first.clone();
    resent.received_at_ms += 1; // the same event, ingested again later
    queue.send(&resent).await.expect("send");
    queue.send(&job(run, "103", "e2")).await.expect("send");
    let got = drain(queue, Duration::from_secs(2)).await;
    assert_eq!(
        got.iter().map(event).collect::<Vec<_>>(),
        ["e1", "e2"],
        "one delivery per source event"
    );
    assert_eq!(got[0].job, first, "the first copy is the one kept");

    if !options.dedup_survives_delete {
        return;
    }
    queue.send(&first).await.expect("send");
    let late = queue
        .receive(10, Duration::from_secs(2))
        .await
        .expect("receive");
    assert!(
        late.is_empty(),
        "the dedup window outlives the message: {late:?}"
    );
}

async fn retry_later(queue: &dyn Queue, run: &str) {
    queue.send(&job(run, "104", "r1")).await.expect("send");
    let first = queue.receive(10, PATIENCE).await.expect("receive");
    assert_eq!(first.len(), 1);
    queue
        .retry_later(&first[0].receipt, Duration::from_secs(3))
        .await
        .expect("retry later");
    let early = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(
        early.is_empty(),
        "a postponed message stays hidden for its delay: {early:?}"
    );

    let second = gather(queue, |seen| !seen.is_empty()).await;
    assert_eq!(second.len(), 1, "the postponed message comes back");
    assert_eq!((event(&second[0]), second[0].receive_count), ("r1", 2));

    queue
        .retry_later(&second[0].receipt, Duration::ZERO)
        .await
        .expect("retry now");
    let third = queue
        .receive(10, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(
        third.iter().map(|d| d.receive_count).collect::<Vec<_>>(),
        [3],
        "a zero delay redelivers at once"
    );
    queue.complete(&third[0].receipt).await.expect("complete");
    assert!(
        drain(queue, Duration::from_secs(2)).await.is_empty(),
        "completed means gone"
    );
}

async fn visibility_expiry_and_receipts(
    queue: &dyn Queue,
    run: &str,
    options: QueueContractOptions,
) {
    queue.send(&job(run, "105", "v1")).await.expect("send");
    let first = queue.receive(10, PATIENCE).await.expect("receive");
    assert_eq!(first.len(), 1);
    let hidden = queue.receive(10, Duration::ZERO).await.expect("receive");
    assert!(
        hidden.is_empty(),
        "a received message is invisible to other receivers"
    );

    // Not completed: it comes back after the visibility timeout, newly receipted.
    let second = gather(queue, |seen| !seen.is_empty()).await;
    assert_eq!(second.len(), 1, "an unacknowledged message is redelivered");
    assert_eq!(second[0].job, first[0].job);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(
        second[0].receipt, first[0].receipt,
        "receipts are per delivery"
    );

    // A receipt from the earlier delivery must not delete the message (SQS
    // may accept or reject the call; either way the message stays).
    if options.stale_receipts_rejected {
        let _ = queue.complete(&first[0].receipt).await;
    }
    let third = gather(queue, |seen| !seen.is_empty()).await;
    assert_eq!(third.len(), 1, "a stale receipt deleted the message");
    assert_eq!(third[0].receive_count, 3);

    queue.complete(&third[0].receipt).await.expect("complete");
    let gone = queue
        .receive(10, QUEUE_VISIBILITY * 2)
        .await
        .expect("receive");
    assert!(
        gone.is_empty(),
        "a completed message never comes back: {gone:?}"
    );
}

/// A receive that is waiting when a message arrives returns it then, not
/// when its wait runs out: the receive is raced against a timer as long as
/// its own wait, and must win (a tie goes to the timer).
async fn long_poll_wakes_on_send(queue: &dyn Queue, run: &str) {
    let wait = PATIENCE;
    let (got, ()) = futures::join!(
        async {
            tokio::select! {
                biased;
                () = tokio::time::sleep(wait) => None,
                got = queue.receive(10, wait) => Some(got),
            }
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            queue.send(&job(run, "106", "p1")).await.expect("send");
        }
    );
    let got = got
        .expect("a waiting receive returns a message sent during its wait before the wait runs out")
        .expect("receive");
    assert_eq!(got.iter().map(event).collect::<Vec<_>>(), ["p1"]);
}
