//! Two workers on one ticket pair at once, interleaved deterministically by
//! gates on their API clients, over the real store and queue adapters
//! (`pipeline.rs`: SQLite; `pipeline_aws.rs`: DynamoDB on the emulator) and
//! the sandboxes over HTTP. The workers share a hand-set clock, so a lease
//! runs out when the test says so.
//!
//! Each case asserts one Autotask note per Zendesk comment and one Zendesk
//! comment per technician note, and nothing else on either side.

use std::sync::Arc;

use crate::support::{assert_mirrored_exactly_once, psa_tickets_for};
use bridge::error::SyncError;
use bridge::model::{DeskTicketId, JobSubject, SyncJob};
use bridge::timing::PAIR_LEASE;
use bridge::worker::Worker;
use sandbox::zendesk::NewTicket;
use testkit::fakes::FixedClock;
use testkit::gates::{GatePoint, GatedConnectors, Gates, Pause};
use testkit::world::{TenantSpec, TenantWorld, World, WorldOptions};

/// One tenant, no background worker: only the test's workers run jobs.
pub fn spec() -> Vec<TenantSpec> {
    vec![TenantSpec::new("acme")]
}

pub fn options() -> WorldOptions {
    WorldOptions {
        worker_concurrency: 0,
        ..WorldOptions::default()
    }
}

fn worker(world: &World, clock: &Arc<FixedClock>, gates: Option<&Arc<Gates>>) -> Worker {
    let mut wiring = world.bridge.wiring.clone();
    if let Some(gates) = gates {
        wiring.connectors = Arc::new(GatedConnectors {
            inner: wiring.connectors.clone(),
            gates: gates.clone(),
        });
    }
    wiring.clock = clock.clone();
    wiring.worker()
}

fn job(t: &TenantWorld, desk_id: u64) -> SyncJob {
    SyncJob {
        tenant: t.id.clone(),
        subject: JobSubject::Desk(DeskTicketId(desk_id)),
        desk_ticket_id: Some(DeskTicketId(desk_id)),
        event_id: format!("concurrency-{desk_id}"),
        received_at_ms: 0,
        change: bridge::model::ChangeHint::Unknown,
    }
}

/// A linked pair with two new Zendesk comments and a technician note: three
/// writes for the next run.
async fn pair_with_three_writes_pending(world: &World, clock: &Arc<FixedClock>) -> (u64, SyncJob) {
    let t = world.tenant("acme");
    let z = t.zendesk.create_ticket(NewTicket {
        subject: "Two workers".into(),
        description: "one ticket".into(),
        priority: Some("normal".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    });
    let job = job(t, z);
    worker(world, clock, None)
        .run(&job)
        .await
        .expect("first sync");
    let p = psa_tickets_for(t, z)[0].id;
    t.zendesk.add_comment(z, "Agent Alex", "first update", true);
    t.zendesk
        .add_comment(z, "Agent Alex", "internal remark", false);
    t.autotask.add_note(
        p,
        t.technician,
        "Remote session",
        "rebooted the host",
        false,
    );
    (z, job)
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(chrono::Utc::now()))
}

fn past_the_lease() -> chrono::Duration {
    chrono::Duration::from_std(PAIR_LEASE).unwrap() + chrono::Duration::seconds(1)
}

/// A pair with three writes pending, worker A armed to pause once its first
/// note has landed, and worker B without gates.
struct OneWriteIn {
    clock: Arc<FixedClock>,
    z: u64,
    job: SyncJob,
    gates_a: Arc<Gates>,
    a: Worker,
    b: Worker,
    a_wrote: Pause,
}

async fn one_write_in(world: &World) -> OneWriteIn {
    let clock = clock();
    let (z, job) = pair_with_three_writes_pending(world, &clock).await;
    let gates_a = Arc::new(Gates::default());
    let a = worker(world, &clock, Some(&gates_a));
    let b = worker(world, &clock, None);
    let a_wrote = gates_a.pause_at(GatePoint::AddedNote, 1);
    OneWriteIn {
        clock,
        z,
        job,
        gates_a,
        a,
        b,
        a_wrote,
    }
}

/// list/list/write/write: both list both sides before either writes.
pub async fn two_workers_that_both_listed_before_writing_write_each_note_once(world: World) {
    let clock = clock();
    let (z, job) = pair_with_three_writes_pending(&world, &clock).await;
    let (gates_a, gates_b) = (Arc::new(Gates::default()), Arc::new(Gates::default()));
    let (a, b) = (
        worker(&world, &clock, Some(&gates_a)),
        worker(&world, &clock, Some(&gates_b)),
    );
    let mut a_listed = gates_a.pause_at(GatePoint::ListedNotes, 1);
    let mut b_listed = gates_b.pause_at(GatePoint::ListedNotes, 1);

    let run_a = a.run(&job);
    let run_b = b.run(&job);
    tokio::pin!(run_a, run_b);
    a_listed.run_until_reached(run_a.as_mut(), "worker A").await;
    b_listed.run_until_reached(run_b.as_mut(), "worker B").await;
    a_listed.release();
    let a = run_a.await.expect("worker A");
    assert_eq!((a.notes_to_psa, a.comments_to_desk), (2, 1));
    b_listed.release();
    let b = run_b
        .await
        .expect_err("worker B must not write what A wrote");
    assert!(matches!(b.error, SyncError::Overtaken), "{b:?}");
    assert_eq!(gates_b.passes(GatePoint::AddingNote), 0);
    assert_eq!(gates_b.passes(GatePoint::AddingComment), 0);

    assert_mirrored_exactly_once(world.tenant("acme"), &[z]);
    // The queue's retry of B finds nothing left to do.
    let replay = worker(&world, &clock, None).run(&job).await.unwrap();
    assert_eq!(replay.writes, 0, "{replay:?}");
    assert_mirrored_exactly_once(world.tenant("acme"), &[z]);
}

/// write/crash/replay: A's first note lands and A dies before recording it.
/// While A's lease lasts, B leaves the pair alone; then B finds A's note by
/// its marker and writes only the rest.
pub async fn a_worker_that_died_after_a_write_is_replayed_without_duplicates(world: World) {
    let OneWriteIn {
        clock,
        z,
        job,
        a,
        b,
        mut a_wrote,
        ..
    } = one_write_in(&world).await;

    {
        let run_a = a.run(&job);
        tokio::pin!(run_a);
        a_wrote.run_until_reached(run_a, "worker A").await;
        let busy = b.run(&job).await.expect_err("A holds the pair");
        assert!(matches!(busy.error, SyncError::PairBusy { .. }), "{busy:?}");
        // A dies here: its future is dropped at the pause.
    }
    let t = world.tenant("acme");
    let p = psa_tickets_for(t, z)[0].id;
    assert_eq!(
        t.autotask.notes(p).len(),
        2,
        "the technician note and A's one note"
    );
    let busy = b.run(&job).await.expect_err("A's lease still runs");
    assert!(matches!(busy.error, SyncError::PairBusy { .. }), "{busy:?}");

    clock.advance(past_the_lease());
    let replay = b.run(&job).await.expect("B after A's lease ran out");
    assert_eq!(replay.claims_resolved, 3, "{replay:?}");
    assert_eq!(replay.own_copies_recognised, 1, "A's note, by its marker");
    assert_eq!((replay.notes_to_psa, replay.comments_to_desk), (1, 1));
    assert_mirrored_exactly_once(t, &[z]);
}

/// Lease expiry mid-run: A stalls after one write for longer than its lease,
/// B takes the pair over and finishes, and A stops before its next write.
pub async fn a_worker_stalled_past_its_lease_stops_before_its_next_write(world: World) {
    let mut w = one_write_in(&world).await;

    let run_a = w.a.run(&w.job);
    tokio::pin!(run_a);
    w.a_wrote
        .run_until_reached(run_a.as_mut(), "worker A")
        .await;
    w.clock.advance(past_the_lease());
    let took_over =
        w.b.run(&w.job)
            .await
            .expect("B takes over the expired lease");
    assert_eq!((took_over.notes_to_psa, took_over.comments_to_desk), (1, 1));

    w.a_wrote.release();
    let stopped = run_a.await.expect_err("A was overtaken");
    assert!(matches!(stopped.error, SyncError::Overtaken), "{stopped:?}");
    assert_eq!(
        w.gates_a.passes(GatePoint::AddingNote),
        1,
        "A wrote nothing more"
    );
    assert_eq!(w.gates_a.passes(GatePoint::AddingComment), 0);
    assert_mirrored_exactly_once(world.tenant("acme"), &[w.z]);
}
