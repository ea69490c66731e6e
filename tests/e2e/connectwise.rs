//! A ConnectWise tenant end to end over real HTTP: the sandbox Zendesk fires
//! signed webhooks, the worker writes to the sandbox ConnectWise, whose
//! signed callbacks (registered by the bridge) bring technicians' changes
//! back. ConnectWise statuses belong to a board, so one tenant with two
//! boards whose status ids differ shows that a status is always resolved on
//! the ticket's own board.

use std::time::Duration;

use bridge::config::{Direction, FieldRules};
use bridge::repo::Repo;
use sandbox::connectwise::{NoteKind, Ticket as CwTicket};
use sandbox::zendesk::{NewTicket, TicketChange};
use testkit::world::{wait_for, ConnectWiseWorld, TenantSpec, TenantWorld, World, WorldOptions};

use crate::aws_backend::AwsBackend;
use crate::support::{post, settle, ARRIVAL};

/// A ConnectWise tenant whose statuses flow both ways (priorities to
/// ConnectWise only), beside an Autotask tenant, with the bridge's own
/// writes firing callbacks so echo safety is really exercised.
fn specs() -> Vec<TenantSpec> {
    let fields = FieldRules {
        status: Direction::Both,
        ..FieldRules::default()
    };
    vec![
        TenantSpec {
            fields,
            default_company: true,
            ..TenantSpec::connectwise("northwind")
        },
        TenantSpec::new("acme"),
    ]
}

async fn world() -> World {
    World::start(specs(), WorldOptions::default())
        .await
        .unwrap()
}

fn cw(t: &TenantWorld) -> &ConnectWiseWorld {
    t.connectwise.as_ref().expect("a ConnectWise tenant")
}

fn open(t: &TenantWorld, subject: &str, priority: &str, cluster: Option<&str>) -> u64 {
    t.zendesk.create_ticket(NewTicket {
        subject: subject.into(),
        description: format!("{subject}: details"),
        priority: Some(priority.into()),
        status: None,
        cluster_id: cluster.map(Into::into),
        requester_name: "Casey Customer".into(),
    })
}

fn cw_tickets_for(t: &TenantWorld, desk_id: u64) -> Vec<CwTicket> {
    let reference = format!("zendesk:{desk_id}");
    cw(t)
        .sandbox
        .tickets()
        .into_iter()
        .filter(|p| p.external_xref.as_deref() == Some(reference.as_str()))
        .collect()
}

async fn cw_ticket_of(t: &TenantWorld, desk_id: u64) -> CwTicket {
    wait_for(ARRIVAL, || cw_tickets_for(t, desk_id).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("Zendesk #{desk_id} never reached ConnectWise"))
}

fn status(t: &TenantWorld, board: i64, name: &str) -> i64 {
    cw(t).sandbox.board_status(board, name).unwrap()
}

fn priority(t: &TenantWorld, name: &str) -> i64 {
    cw(t).sandbox.priority(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_field_reaches_connectwise_and_statuses_follow_the_tickets_board() {
    let world = world().await;
    let t = world.tenant("northwind");
    let c = cw(t);
    assert_ne!(
        status(t, c.board, "In Progress"),
        status(t, c.other_board, "In Progress"),
        "the boards' statuses have their own ids"
    );

    let z = open(t, "VPN drops every hour", "high", Some("CL-200"));
    let p = cw_ticket_of(t, z).await;
    assert_eq!(p.summary, "VPN drops every hour");
    assert_eq!(p.board_id, c.board, "the tenant's service board");
    assert_eq!(p.status_id, status(t, c.board, "New"), "created as New");
    assert_eq!(p.priority_id, priority(t, "Priority 2 - Quick Response"));
    let fabrikam = t.clusters.iter().find(|(c, _)| c == "CL-200").unwrap().1;
    assert_eq!(
        p.company_id, fabrikam,
        "the company of the configuration named by the cluster id"
    );
    let notes = c.sandbox.notes(p.id);
    assert_eq!(
        notes.len(),
        1,
        "the description is the first note: {notes:?}"
    );
    assert!(notes[0].text.contains("VPN drops every hour: details"));
    assert!(notes[0].detail_description, "a Discussion note");
    let reference = format!("connectwise:{}", p.id);
    let linked = wait_for(ARRIVAL, || {
        (t.zendesk.ticket(z)?.external_id.as_deref() == Some(reference.as_str())).then_some(())
    })
    .await;
    assert!(linked.is_some(), "{:?}", t.zendesk.ticket(z));

    // A ticket without a cluster id goes to the default company.
    let unassigned = open(t, "Who am I", "low", None);
    let u = cw_ticket_of(t, unassigned).await;
    assert_eq!(Some(u.company_id), t.default_company);
    assert_eq!(
        u.priority_id,
        priority(t, "Priority 4 - Scheduled Maintenance")
    );

    // An agent changes subject, status and priority in Zendesk.
    t.zendesk.update_ticket(
        z,
        TicketChange {
            subject: Some("VPN drops for everyone".into()),
            priority: Some("urgent".into()),
            status: Some("open".into()),
        },
    );
    let want = (
        status(t, c.board, "In Progress"),
        priority(t, "Priority 1 - Emergency Response"),
    );
    let updated = wait_for(ARRIVAL, || {
        c.sandbox.ticket(p.id).filter(|p| {
            p.summary == "VPN drops for everyone" && (p.status_id, p.priority_id) == want
        })
    })
    .await;
    assert!(updated.is_some(), "{:?}", c.sandbox.ticket(p.id));

    // A technician moves the ticket to the NOC board; the next Zendesk
    // status is the NOC board's own.
    let noc_new = status(t, c.other_board, "New");
    c.sandbox
        .move_board_as(c.technician, p.id, c.other_board, noc_new);
    settle(&world, Duration::from_millis(300)).await;
    t.zendesk.update_ticket(
        z,
        TicketChange {
            status: Some("pending".into()),
            ..TicketChange::default()
        },
    );
    let noc_waiting = status(t, c.other_board, "Waiting Customer");
    let moved = wait_for(ARRIVAL, || {
        c.sandbox
            .ticket(p.id)
            .filter(|p| p.board_id == c.other_board && p.status_id == noc_waiting)
    })
    .await;
    assert!(
        moved.is_some(),
        "status of the NOC board: {:?}; sync log: {:?}",
        c.sandbox.ticket(p.id),
        Repo::new(world.store()).log_entries(&t.id, 20).await
    );

    // A technician closes it in ConnectWise: Zendesk follows through the
    // reverse table (Complete -> solved).
    let complete = status(t, c.other_board, "Complete");
    c.sandbox.set_status_as(c.technician, p.id, complete);
    let solved = wait_for(ARRIVAL, || {
        (t.zendesk.ticket(z)?.status == "solved").then_some(())
    })
    .await;
    assert!(solved.is_some(), "{:?}", t.zendesk.ticket(z));
    settle(&world, Duration::from_millis(500)).await;
    assert_eq!(cw_tickets_for(t, z).len(), 1, "one ConnectWise ticket");
    assert_eq!(
        c.sandbox.ticket(p.id).unwrap().status_id,
        complete,
        "the Zendesk change that followed is not written back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_and_notes_flow_both_ways_exactly_once_over_three_round_trips() {
    comments_and_notes_round_trips(world().await).await;
}

/// The same on DynamoDB, SQS and Secrets Manager (the local emulator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_comments_and_notes_flow_both_ways_exactly_once_over_three_round_trips() {
    let world = World::start_on(&AwsBackend::default(), specs(), WorldOptions::default())
        .await
        .expect("world on the AWS adapters (is the emulator running? see infra/test.sh)");
    comments_and_notes_round_trips(world).await;
}

async fn comments_and_notes_round_trips(world: World) {
    let t = world.tenant("northwind");
    let c = cw(t);
    let z = open(t, "Printer jam", "low", Some("CL-100"));
    let Some(p) = wait_for(ARRIVAL, || cw_tickets_for(t, z).into_iter().next()).await else {
        panic!(
            "Zendesk #{z} never reached ConnectWise; sync log: {:#?}",
            Repo::new(world.store()).log_entries(&t.id, 20).await
        );
    };
    let p = p.id;
    for round in 0..3 {
        let public = round % 2 == 0;
        let text = format!("customer update {round}");
        t.zendesk.add_comment(z, "Casey Customer", &text, public);
        let note = wait_for(ARRIVAL, || {
            c.sandbox
                .notes(p)
                .into_iter()
                .find(|n| n.text.contains(&text))
        })
        .await
        .unwrap_or_else(|| panic!("comment {round} never became a note"));
        assert_eq!(note.detail_description, public, "visibility kept: {note:?}");
        assert_eq!(note.internal_analysis, !public, "visibility kept: {note:?}");
        assert!(note.text.contains("by Casey Customer"), "author: {note:?}");

        let answer = format!("technician answer {round}");
        let kind = if public {
            NoteKind::Discussion
        } else {
            NoteKind::Internal
        };
        c.sandbox.add_note_as(c.technician, p, &answer, kind);
        let comment = wait_for(ARRIVAL, || {
            t.zendesk
                .comments(z)
                .into_iter()
                .find(|c| c.body.contains(&answer))
        })
        .await
        .unwrap_or_else(|| panic!("note {round} never became a comment"));
        assert_eq!(comment.public, public, "an internal note stays internal");
        assert!(
            comment.body.contains("Tess Technician"),
            "technician named: {}",
            comment.body
        );
    }
    settle(&world, Duration::from_millis(500)).await;
    let comments = t.zendesk.comments(z);
    let notes = c.sandbox.notes(p);
    assert_eq!(
        comments.len(),
        1 + 3 + 3,
        "description + 3 comments + 3 mirrored notes: {comments:#?}"
    );
    assert_eq!(
        notes.len(),
        1 + 3 + 3,
        "description + 3 mirrored comments + 3 technician notes: {notes:#?}"
    );
    assert_eq!(comments.iter().filter(|c| c.via_api).count(), 3, "no echo");
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.member_id != Some(c.technician))
            .count(),
        1 + 3,
        "no echo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_callback_three_times_and_out_of_order_yields_one_comment_per_note() {
    let world = world().await;
    let t = world.tenant("northwind");
    let c = cw(t);
    let z = open(t, "Disk full", "normal", Some("CL-100"));
    let p = cw_ticket_of(t, z).await.id;
    settle(&world, Duration::from_millis(300)).await;

    // ConnectWise stays quiet; the test delivers its callbacks itself: each
    // one three times, the later note's first.
    c.sandbox.set_callbacks_paused(true);
    c.sandbox
        .add_note_as(c.technician, p, "first finding", NoteKind::Discussion);
    c.sandbox
        .add_note_as(c.technician, p, "second finding", NoteKind::Discussion);
    let held = c.sandbox.take_paused_callbacks();
    assert_eq!(held.len(), 2, "one callback per note");
    let url = format!("{}/t/northwind/connectwise", world.bridge.base_url);
    for _ in 0..3 {
        for callback in held.iter().rev() {
            let headers = vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-content-signature".to_owned(), callback.signature.clone()),
            ];
            let (status, text) = post(&url, &headers, callback.body.clone()).await;
            assert_eq!(status, 202, "{text}");
        }
    }
    let both = wait_for(ARRIVAL, || {
        let comments = t.zendesk.comments(z);
        let found = |text: &str| comments.iter().any(|c| c.body.contains(text));
        (found("first finding") && found("second finding")).then_some(())
    })
    .await;
    assert!(both.is_some(), "{:#?}", t.zendesk.comments(z));
    settle(&world, Duration::from_millis(500)).await;
    let comments = t.zendesk.comments(z);
    for text in ["first finding", "second finding"] {
        assert_eq!(
            comments.iter().filter(|c| c.body.contains(text)).count(),
            1,
            "{text} once: {comments:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_are_refused_and_nothing_is_queued() {
    let world = World::start(
        specs(),
        WorldOptions {
            worker_concurrency: 0,
            ..WorldOptions::default()
        },
    )
    .await
    .unwrap();
    let t = world.tenant("northwind");
    let c = cw(t);
    let base = &world.bridge.base_url;
    let url = format!("{base}/t/northwind/connectwise");
    let enqueued = || async {
        let depth = world.queue_depth().await.unwrap();
        depth.visible + depth.in_flight + depth.dead
    };

    c.sandbox.set_callbacks_paused(true);
    let ticket = c
        .sandbox
        .add_ticket_as(c.technician, c.board, t.clusters[0].1, "Fan noise");
    let held = c.sandbox.take_paused_callbacks();
    let genuine = held.last().expect("a callback for the new ticket").clone();
    let json = vec![("content-type".to_owned(), "application/json".to_owned())];
    let signed = |signature: &str| {
        let mut headers = json.clone();
        headers.push(("x-content-signature".to_owned(), signature.to_owned()));
        headers
    };

    // No signature, a wrong one, a tampered body.
    let (status, text) = post(&url, &json, genuine.body.clone()).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = post(&url, &signed("AAAA"), genuine.body.clone()).await;
    assert_eq!(status, 401, "{text}");
    let tampered = String::from_utf8(genuine.body.clone())
        .unwrap()
        .replace(&format!("\"ID\":{ticket}"), "\"ID\":1");
    assert_ne!(tampered.as_bytes(), genuine.body.as_slice());
    let (status, text) = post(&url, &signed(&genuine.signature), tampered.into_bytes()).await;
    assert_eq!(status, 401, "{text}");

    // A signing key URL on another host is never fetched.
    let foreign = String::from_utf8(genuine.body.clone())
        .unwrap()
        .replace(c.sandbox.site_url(), "https://attacker.example");
    let fetched = c.sandbox.key_fetches();
    let (status, text) = post(&url, &signed(&genuine.signature), foreign.into_bytes()).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        c.sandbox.key_fetches(),
        fetched,
        "no fetch off the tenant's host"
    );

    // Unknown tenant; the Autotask tenant has no ConnectWise.
    let (status, text) = post(
        &format!("{base}/t/nobody/connectwise"),
        &signed(&genuine.signature),
        genuine.body.clone(),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = post(
        &format!("{base}/t/acme/connectwise"),
        &signed(&genuine.signature),
        genuine.body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{text}");

    // Malformed and oversize bodies.
    let (status, text) = post(&url, &signed(&genuine.signature), b"{not json".to_vec()).await;
    assert!(status == 400 || status == 401, "{status} {text}");
    let (status, text) = post(
        &url,
        &signed(&genuine.signature),
        vec![b' '; bridge::ingest::MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(enqueued().await, 0, "nothing queued");

    // The genuine one is taken.
    let (status, text) = post(&url, &signed(&genuine.signature), genuine.body.clone()).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(enqueued().await, 1);

    // An authentic callback about something the bridge does not sync is
    // answered 200 and logged, so ConnectWise never counts it as failed.
    let company_callback = c.sandbox.signed_callback_of_type("company", "updated", 7);
    let (status, text) = post(
        &url,
        &signed(&company_callback.signature),
        company_callback.body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(enqueued().await, 1);
    let logged = Repo::new(world.store())
        .log_entries(&t.id, 20)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.step == "connectwise_callback")
        .count();
    assert_eq!(logged, 1);
}
