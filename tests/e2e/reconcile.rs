//! The reconciliation sweep end to end: with every webhook of a tenant lost,
//! tickets, comments and technician notes still arrive on the other side,
//! exactly once, after one sweep; and a sweep with nothing new changes nothing
//! and costs one call per system.

use std::time::Duration;

use crate::support::{
    assert_mirrored_exactly_once, psa_tickets_for, settle, webhook_and_callout_tenants,
};
use bridge::reconcile::SweepReport;
use sandbox::zendesk::NewTicket;
use testkit::world::{TenantSpec, TenantWorld, World, WorldOptions};

const QUIET: Duration = Duration::from_millis(500);

async fn world() -> World {
    // acme loses every webhook; globex's arrive, so the sweep runs over
    // changes the webhooks already delivered and must not duplicate them.
    let world = World::start(webhook_and_callout_tenants(), WorldOptions::default())
        .await
        .unwrap();
    let acme = world.tenant("acme");
    for faults in [acme.zendesk.faults(), acme.autotask.faults()] {
        faults.update(|f| f.drop_webhook_rate = 1.0);
    }
    world
}

async fn sweep(world: &World, tenant: &str) -> SweepReport {
    let reports = world.sweep_now().await.expect("tenants listed");
    for report in &reports {
        assert!(report.is_ok(), "{report}");
    }
    reports
        .into_iter()
        .find(|r| r.tenant.as_str() == tenant)
        .expect("tenant swept")
}

fn open(t: &TenantWorld, subject: &str) -> u64 {
    t.zendesk.create_ticket(NewTicket {
        subject: subject.into(),
        description: format!("{subject}: details"),
        priority: Some("high".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sweep_delivers_what_lost_webhooks_never_did_exactly_once() {
    let world = world().await;
    let acme = world.tenant("acme");
    let globex = world.tenant("globex");

    // Zendesk: three tickets with public and internal comments, per tenant.
    let mut desk = Vec::new();
    for t in [acme, globex] {
        let ids: Vec<u64> = ["Printer on fire", "VPN down", "New laptop"]
            .iter()
            .map(|s| open(t, s))
            .collect();
        t.zendesk
            .add_comment(ids[0], "Agent Alex", "Checking the printer", true);
        t.zendesk
            .add_comment(ids[0], "Agent Alex", "Toner smells burnt", false);
        t.zendesk
            .add_comment(ids[2], "Casey Customer", "Any news?", true);
        desk.push(ids);
    }
    settle(&world, QUIET).await;
    assert!(
        acme.autotask.tickets().is_empty(),
        "acme's webhooks were all lost"
    );
    assert!(acme.zendesk.faults().stats().webhooks_dropped >= 6);
    assert_eq!(
        globex.autotask.tickets().len(),
        3,
        "globex's webhooks arrived"
    );

    let report = sweep(&world, "acme").await;
    assert_eq!(report.desk_jobs, 3, "{report}");
    settle(&world, QUIET).await;
    assert_mirrored_exactly_once(acme, &desk[0]);
    assert_mirrored_exactly_once(globex, &desk[1]);

    // Technician notes in Autotask and a new Zendesk comment, webhooks still lost.
    let psa_of = |t: &TenantWorld, z: u64| psa_tickets_for(t, z)[0].id;
    for (t, ids) in [(acme, &desk[0]), (globex, &desk[1])] {
        t.autotask.add_note(
            psa_of(t, ids[1]),
            t.technician,
            "Remote session",
            "Reset the VPN profile",
            false,
        );
        t.autotask.add_note(
            psa_of(t, ids[2]),
            t.technician,
            "Ordered",
            "Laptop ships Monday",
            true,
        );
        t.zendesk
            .add_comment(ids[0], "Agent Alex", "Replaced the toner", true);
    }
    settle(&world, QUIET).await;
    assert_eq!(
        acme.zendesk.comments(desk[0][1]).len(),
        1,
        "acme's note has not arrived"
    );

    sweep(&world, "acme").await;
    settle(&world, QUIET).await;
    let counts = assert_mirrored_exactly_once(acme, &desk[0]);
    assert_eq!(counts, (3, 6, 9), "acme: tickets, notes, comments");
    assert_eq!(assert_mirrored_exactly_once(globex, &desk[1]), counts);
    println!("acme after the sweep: {counts:?} (tickets, Autotask notes, Zendesk comments)");

    // The sweep after that finds only the bridge's own writes of the last
    // round; they change nothing.
    sweep(&world, "acme").await;
    settle(&world, QUIET).await;
    assert_eq!(assert_mirrored_exactly_once(acme, &desk[0]), counts);

    // Nothing changed since: nothing queued, one call per system, nothing written.
    let calls = (acme.zendesk.api_calls(), acme.autotask.api_calls());
    let report = sweep(&world, "acme").await;
    assert_eq!((report.desk_jobs, report.psa_jobs), (0, 0), "{report}");
    assert_eq!(
        (
            acme.zendesk.api_calls() - calls.0,
            acme.autotask.api_calls() - calls.1
        ),
        (1, 1),
        "an idle sweep costs one call per system"
    );
    let quiet = sweep(&world, "globex").await;
    assert_eq!((quiet.desk_jobs, quiet.psa_jobs), (0, 0), "{quiet}");
    settle(&world, QUIET).await;
    assert_eq!(assert_mirrored_exactly_once(acme, &desk[0]), counts);
    assert_eq!(
        world.queue_depth().await.unwrap().dead,
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_sweeps_without_being_asked() {
    let world = World::start(
        vec![TenantSpec::new("acme")],
        WorldOptions {
            sweep_every: Some(Duration::from_millis(500)),
            ..WorldOptions::default()
        },
    )
    .await
    .unwrap();
    let acme = world.tenant("acme");
    acme.zendesk.faults().update(|f| f.drop_webhook_rate = 1.0);
    let z = open(acme, "Printer on fire");
    let arrived = testkit::world::wait_for(crate::support::ARRIVAL, || {
        acme.autotask.tickets().into_iter().next()
    })
    .await
    .expect("the timer's sweep delivered the ticket");
    assert_eq!(arrived.external_id, Some(format!("zendesk:{z}")));
    assert!(acme.zendesk.faults().stats().webhooks_dropped >= 1);
    world.stop().await;
}
