//! What a shared Autotask budget must guarantee, as executable checks over
//! any [`Store`]: the embedded store's tests and the DynamoDB adapter's
//! emulator tests both run them. Each "process" is its own
//! [`AutotaskBudgets`] (its own memory, its own leased tokens and semaphore)
//! over the one store, on one test clock. Failures panic with the rule
//! that was broken; run under tokio.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;

use bridge::connectors::budget::{Admission, AutotaskBudget, AutotaskBudgets};
use bridge::error::ApiError;
use bridge::model::TenantId;
use bridge::ports::Store;

use crate::fakes::FixedClock;

/// Runs every check, each on a tenant of its own (so a persistent store
/// shared with other tests is fine).
pub async fn shared_budget_contract(store: Arc<dyn Store>) {
    processes_together_stay_within_the_rate(store.clone()).await;
    processes_together_stay_within_the_concurrency_cap(store.clone()).await;
    a_dead_holders_slot_frees_itself_and_a_late_give_back_frees_nothing(store.clone()).await;
    a_process_keeps_an_idle_slot_for_its_next_call_and_gives_it_back(store.clone()).await;
    a_kept_slot_is_renewed_before_its_lease_runs_low(store.clone()).await;
    a_kept_slot_goes_back_by_itself_after_the_idle_hold(store).await;
}

fn fresh_tenant(what: &str) -> TenantId {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    TenantId::parse(&format!("budget-{what}-{}", &suffix[..12])).expect("valid id")
}

fn test_clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(
        chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ))
}

fn process(
    store: &Arc<dyn Store>,
    clock: &Arc<FixedClock>,
    budget: &AutotaskBudget,
) -> AutotaskBudgets {
    AutotaskBudgets::new(budget.clone(), clock.clone()).shared_through(store.clone())
}

/// `Some(retry_after)` when turned away as rate limited; panics on any
/// other error.
async fn try_admit(budgets: &AutotaskBudgets, tenant: &TenantId) -> Result<Admission, Duration> {
    match budgets.for_tenant(tenant).admit().await {
        Ok(admission) => Ok(admission),
        Err(ApiError::RateLimited {
            system: "autotask",
            retry_after,
        }) => Err(retry_after),
        Err(other) => panic!("admission failed with something other than a rate limit: {other}"),
    }
}

/// Admits and gives back at once, like a finished call; counts admissions
/// until the first refusal (at most `up_to`).
async fn calls_admitted(budgets: &AutotaskBudgets, tenant: &TenantId, up_to: usize) -> usize {
    for n in 0..up_to {
        match try_admit(budgets, tenant).await {
            Ok(admission) => admission.release().await,
            Err(_) => return n,
        }
    }
    up_to
}

/// A budget whose rate never gets in the way, so only the concurrency cap
/// (and the slot lease and busy delay the checks count on) matters.
fn only_the_cap(max_concurrent: usize) -> AutotaskBudget {
    AutotaskBudget {
        requests_per_hour: 1_000_000,
        burst: 10_000,
        max_concurrent,
        acquire_wait: Duration::from_millis(20),
        busy_retry_after: Duration::from_secs(5),
        slot_lease: Duration::from_secs(120),
        // Every slot back as soon as its call is over, so the checks above
        // see exactly the calls in flight; the hold has checks of its own.
        slot_idle_hold: Duration::ZERO,
        ..AutotaskBudget::default()
    }
}

/// The version of the tenant's first slot item: each store write bumps it.
async fn slot_writes(store: &Arc<dyn Store>, tenant: &TenantId) -> u64 {
    store
        .get(
            &format!("TENANT#{tenant}"),
            &bridge::repo::autotask_slot_sk(0),
        )
        .await
        .expect("store readable")
        .map_or(0, |item| item.version)
}

async fn processes_together_stay_within_the_rate(store: Arc<dyn Store>) {
    let tenant = fresh_tenant("rate");
    let clock = test_clock();
    // One request a second, six back to back, leased four at a time.
    let budget = AutotaskBudget {
        requests_per_hour: 3_600,
        burst: 6,
        max_concurrent: 3,
        lease_block: 4,
        acquire_wait: Duration::from_millis(20),
        ..AutotaskBudget::default()
    };
    let a = process(&store, &clock, &budget);
    let b = process(&store, &clock, &budget);

    let admitted = calls_admitted(&a, &tenant, 10).await + calls_admitted(&b, &tenant, 10).await;
    assert_eq!(
        admitted, 6,
        "two processes together get the burst once, not once each"
    );
    assert_eq!(
        try_admit(&a, &tenant).await.err(),
        Some(Duration::from_secs(1)),
        "a spent shared bucket says when the next token accrues"
    );

    clock.advance(chrono::Duration::seconds(1));
    let admitted = calls_admitted(&b, &tenant, 10).await + calls_admitted(&a, &tenant, 10).await;
    assert_eq!(admitted, 1, "one second of refill buys one call in total");

    // A long idle spell refills the shared bucket to the burst, no more.
    clock.advance(chrono::Duration::hours(2));
    let admitted = calls_admitted(&a, &tenant, 10).await + calls_admitted(&b, &tenant, 10).await;
    assert_eq!(
        admitted, 6,
        "an idle bucket holds the burst, not two hours of tokens"
    );
}

async fn processes_together_stay_within_the_concurrency_cap(store: Arc<dyn Store>) {
    let tenant = fresh_tenant("threads");
    let clock = test_clock();
    let budget = only_the_cap(2);
    let a = process(&store, &clock, &budget);
    let b = process(&store, &clock, &budget);

    let first = try_admit(&a, &tenant).await.expect("a free slot");
    let second = try_admit(&b, &tenant).await.expect("the other free slot");
    for (name, process) in [("a", &a), ("b", &b)] {
        assert_eq!(
            try_admit(process, &tenant).await.err(),
            Some(Duration::from_secs(5)),
            "process {name}: two calls in flight across processes fill a cap of two"
        );
    }

    first.release().await;
    let third = try_admit(&b, &tenant)
        .await
        .expect("a slot given back by one process admits a call of another");
    assert!(try_admit(&a, &tenant).await.is_err(), "still two in flight");

    second.release().await;
    third.release().await;
    assert_eq!(
        calls_admitted(&a, &tenant, 5).await,
        5,
        "every slot given back"
    );

    // Cancelled calls (admissions dropped mid-call, e.g. an aborted job) give
    // their slots back in the background, without waiting out the lease.
    let cancelled = [
        try_admit(&a, &tenant).await.expect("free slot"),
        try_admit(&a, &tenant).await.expect("free slot"),
    ];
    assert!(try_admit(&b, &tenant).await.is_err(), "both slots held");
    drop(cancelled);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Both slots at once, so one freed slot alone does not pass.
        let held = [try_admit(&b, &tenant).await, try_admit(&b, &tenant).await];
        let both = held.iter().all(Result::is_ok);
        for admission in held.into_iter().flatten() {
            admission.release().await;
        }
        if both {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dropped admissions never gave their shared slots back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_dead_holders_slot_frees_itself_and_a_late_give_back_frees_nothing(
    store: Arc<dyn Store>,
) {
    let tenant = fresh_tenant("lease");
    let clock = test_clock();
    let budget = only_the_cap(1);
    let dead = process(&store, &clock, &budget);
    let alive = process(&store, &clock, &budget);
    let late = process(&store, &clock, &budget);

    // The holder dies mid-call: its admission is never given back.
    let stale = try_admit(&dead, &tenant).await.expect("the only slot");
    assert!(try_admit(&alive, &tenant).await.is_err(), "slot held");
    clock.advance(chrono::Duration::seconds(119));
    assert!(
        try_admit(&alive, &tenant).await.is_err(),
        "slot held until its lease runs out"
    );
    clock.advance(chrono::Duration::seconds(2));
    let current = try_admit(&alive, &tenant)
        .await
        .expect("a dead holder's slot is free once its lease ran out");

    // The presumed-dead holder was only slow; its give-back must not free
    // the slot that `alive` holds now.
    stale.release().await;
    assert!(
        try_admit(&late, &tenant).await.is_err(),
        "a stale give-back freed a slot somebody else holds"
    );

    current.release().await;
    let next = try_admit(&late, &tenant)
        .await
        .expect("given back, free again");
    next.release().await;
}

async fn a_process_keeps_an_idle_slot_for_its_next_call_and_gives_it_back(store: Arc<dyn Store>) {
    let tenant = fresh_tenant("hold");
    let clock = test_clock();
    // A hold far longer than the check: only an explicit give-back ends it.
    let budget = AutotaskBudget {
        slot_idle_hold: Duration::from_secs(3_600),
        ..only_the_cap(1)
    };
    let a = process(&store, &clock, &budget);
    let b = process(&store, &clock, &budget);

    assert_eq!(calls_admitted(&a, &tenant, 1).await, 1);
    let after_first = slot_writes(&store, &tenant).await;
    assert_eq!(after_first, 1, "the first call takes the slot: one write");
    assert_eq!(
        calls_admitted(&a, &tenant, 5).await,
        5,
        "a's next calls reuse the slot it kept"
    );
    assert_eq!(
        slot_writes(&store, &tenant).await,
        after_first,
        "calls on a kept slot write nothing to the store"
    );
    assert!(
        try_admit(&b, &tenant).await.is_err(),
        "a slot kept by a counts against the cap for b"
    );

    a.give_back_idle_slots().await;
    assert_eq!(
        slot_writes(&store, &tenant).await,
        after_first + 1,
        "given back with one write"
    );
    assert_eq!(
        calls_admitted(&b, &tenant, 1).await,
        1,
        "a slot given back admits another process's call"
    );
    b.give_back_idle_slots().await;
}

async fn a_kept_slot_is_renewed_before_its_lease_runs_low(store: Arc<dyn Store>) {
    let tenant = fresh_tenant("renew");
    let clock = test_clock();
    let budget = AutotaskBudget {
        slot_idle_hold: Duration::from_secs(3_600),
        ..only_the_cap(1)
    };
    let a = process(&store, &clock, &budget);
    let b = process(&store, &clock, &budget);

    assert_eq!(calls_admitted(&a, &tenant, 1).await, 1);
    // Over half of the 2-minute lease gone: the next call renews it.
    clock.advance(chrono::Duration::seconds(70));
    let before = slot_writes(&store, &tenant).await;
    assert_eq!(calls_admitted(&a, &tenant, 1).await, 1);
    assert_eq!(
        slot_writes(&store, &tenant).await,
        before + 1,
        "a kept slot with less than half its lease left is renewed"
    );
    // Past the first lease's end but within the renewed one.
    clock.advance(chrono::Duration::seconds(70));
    assert!(
        try_admit(&b, &tenant).await.is_err(),
        "the renewed lease still holds the slot"
    );
    // Past the renewed lease: a kept slot of a process that stopped calling
    // (and never gave it back) frees itself like a dead holder's.
    clock.advance(chrono::Duration::seconds(60));
    assert_eq!(calls_admitted(&b, &tenant, 1).await, 1);
    b.give_back_idle_slots().await;
    // a's kept slot is lost to b meanwhile; a takes a fresh one, not b's.
    assert_eq!(calls_admitted(&a, &tenant, 1).await, 1);
    a.give_back_idle_slots().await;
}

async fn a_kept_slot_goes_back_by_itself_after_the_idle_hold(store: Arc<dyn Store>) {
    let tenant = fresh_tenant("idle");
    let clock = test_clock();
    let budget = AutotaskBudget {
        slot_idle_hold: Duration::from_millis(50),
        ..only_the_cap(1)
    };
    let a = process(&store, &clock, &budget);
    let b = process(&store, &clock, &budget);

    assert_eq!(calls_admitted(&a, &tenant, 1).await, 1);
    // A bounded poll: the hold ends on tokio's timer, in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match try_admit(&b, &tenant).await {
            Ok(admission) => {
                admission.release().await;
                break;
            }
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "a slot idle past its hold was never given back"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
