//! The end-to-end cases, run once per backend (`pipeline.rs`: embedded
//! adapters; `pipeline_aws.rs`: DynamoDB, SQS and Secrets Manager on the
//! emulator). Over real HTTP: sandbox Zendesk fires signed webhooks at the
//! bridge, ingest enqueues, the worker writes to sandbox Autotask, and back
//! for technician notes. Two tenants with different mapping tables.

use std::time::Duration;

use crate::support::{autotask_signature, post, psa_tickets_for, settle, zendesk_event, ARRIVAL};
use bridge::config::{Direction, FieldRules};
use bridge::repo::{LogLevel, Repo};
use psa_bridge_local::demo::demo_tenants;
use sandbox::autotask::Ticket as PsaTicket;
use sandbox::zendesk::{NewTicket, TicketChange};
use testkit::world::{wait_for, TenantSpec, TenantWorld, World};

/// Both demo tenants, with the bridge's own writes firing webhooks too
/// (Autotask's exclude-resource off) so echo safety is really exercised.
pub fn tenants() -> Vec<TenantSpec> {
    demo_tenants()
        .into_iter()
        .map(|mut spec| {
            spec.exclude_api_user = false;
            spec
        })
        .collect()
}

/// A NOC tenant: status and priority flow both ways, its tickets go to the
/// "Level II Support" queue, and only that queue's changes reach Zendesk.
/// Webhooks for the bridge's own writes are on, to prove there is no echo.
pub fn noc_tenant() -> Vec<TenantSpec> {
    let fields = FieldRules {
        status: Direction::Both,
        priority: Direction::Both,
        ..FieldRules::default()
    };
    vec![TenantSpec {
        fields,
        queue: "Level II Support".into(),
        to_desk_only_in_own_queue: true,
        ..TenantSpec::new("noc")
    }]
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

async fn psa_ticket_of(t: &TenantWorld, desk_id: u64) -> PsaTicket {
    wait_for(ARRIVAL, || psa_tickets_for(t, desk_id).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("{}: Zendesk #{desk_id} never reached Autotask", t.id))
}

fn pick(t: &TenantWorld, field: &str, label: &str) -> i64 {
    t.autotask.picklist_value(field, label).unwrap()
}

pub async fn every_mapped_field_follows_each_tenants_own_tables(world: World) {
    let acme = world.tenant("acme");
    let globex = world.tenant("globex");

    let a = open(acme, "Mail down", "normal", Some("CL-100"));
    let g = open(globex, "Mail down", "normal", Some("CL-200"));
    let (pa, pg) = (psa_ticket_of(acme, a).await, psa_ticket_of(globex, g).await);

    for (t, p, desk_id, cluster) in [(acme, &pa, a, "CL-100"), (globex, &pg, g, "CL-200")] {
        assert_eq!(p.title, "Mail down");
        assert_eq!(p.description.as_deref(), Some("Mail down: details"));
        assert_eq!(
            p.status,
            pick(t, "status", "New"),
            "first sync creates as New"
        );
        let company = t.clusters.iter().find(|(c, _)| c == cluster).unwrap().1;
        assert_eq!(
            p.company_id, company,
            "company of the CI whose reference is the cluster id"
        );
        assert_eq!(p.queue_id, t.config.autotask.queue_id);
        // The Zendesk cross reference is written right after the link.
        let reference = format!("autotask:{}", p.id);
        let linked = wait_for(ARRIVAL, || {
            (t.zendesk.ticket(desk_id)?.external_id.as_deref() == Some(reference.as_str()))
                .then_some(())
        })
        .await;
        assert!(
            linked.is_some(),
            "cross reference on the Zendesk side: {:?}",
            t.zendesk.ticket(desk_id)
        );
    }
    assert_eq!(
        pa.priority,
        pick(acme, "priority", "Medium"),
        "acme: normal -> Medium"
    );
    assert_eq!(
        pg.priority,
        pick(globex, "priority", "High"),
        "globex: normal -> High"
    );

    // Agents change subject, status and priority in Zendesk.
    for (t, desk_id) in [(acme, a), (globex, g)] {
        t.zendesk.update_ticket(
            desk_id,
            TicketChange {
                subject: Some("Mail down for everyone".into()),
                priority: Some("urgent".into()),
                status: Some("open".into()),
            },
        );
    }
    let expectations = [
        (acme, pa.id, "In Progress", "Critical"),
        (globex, pg.id, "Dispatched", "Critical"),
    ];
    for (t, psa_id, status, priority) in expectations {
        let (want_status, want_priority) =
            (pick(t, "status", status), pick(t, "priority", priority));
        let updated = wait_for(ARRIVAL, || {
            t.autotask.ticket(psa_id).filter(|p| {
                p.title == "Mail down for everyone"
                    && p.status == want_status
                    && p.priority == want_priority
            })
        })
        .await;
        assert!(
            updated.is_some(),
            "{}: update never arrived: {:?}",
            t.id,
            t.autotask.ticket(psa_id)
        );
    }
    settle(&world, Duration::from_millis(300)).await;
    for t in [acme, globex] {
        assert_eq!(
            t.autotask.tickets().len(),
            1,
            "{}: exactly one Autotask ticket",
            t.id
        );
    }
}

pub async fn comments_flow_both_ways_exactly_once_over_three_round_trips(world: World) {
    for t in &world.tenants {
        let z = open(t, "Printer jam", "low", Some("CL-100"));
        let p = psa_ticket_of(t, z).await.id;
        for round in 0..3 {
            let public = round % 2 == 0;
            let text = format!("customer update {round}");
            t.zendesk.add_comment(z, "Casey Customer", &text, public);
            let note = wait_for(ARRIVAL, || {
                t.autotask
                    .notes(p)
                    .into_iter()
                    .find(|n| n.description == text)
            })
            .await;
            let note =
                note.unwrap_or_else(|| panic!("{}: comment {round} never became a note", t.id));
            assert_eq!(note.publish == 2, !public, "visibility kept");
            assert!(
                note.title.ends_with("by Casey Customer"),
                "author kept: {}",
                note.title
            );

            let answer = format!("technician answer {round}");
            t.autotask
                .add_note(p, t.technician, "Update", &answer, !public);
            let comment = wait_for(ARRIVAL, || {
                t.zendesk
                    .comments(z)
                    .into_iter()
                    .find(|c| c.body.contains(&answer))
            })
            .await;
            let comment = comment.unwrap_or_else(|| {
                panic!(
                    "{}: note {round} never became a comment; Autotask's deliveries: {:?}",
                    t.id,
                    t.autotask.webhook_status()
                )
            });
            assert_eq!(
                comment.public, public,
                "an internal note never becomes a public comment"
            );
            assert!(
                comment.body.contains("Tess Technician"),
                "technician named: {}",
                comment.body
            );
        }
        settle(&world, Duration::from_millis(500)).await;
        let comments = t.zendesk.comments(z);
        let notes = t.autotask.notes(p);
        assert_eq!(
            comments.len(),
            1 + 3 + 3,
            "{}: description + 3 comments + 3 mirrored notes",
            t.id
        );
        assert_eq!(
            notes.len(),
            3 + 3,
            "{}: 3 mirrored comments + 3 technician notes",
            t.id
        );
        let mirrored_to_desk = comments.iter().filter(|c| c.via_api).count();
        let mirrored_to_psa = notes
            .iter()
            .filter(|n| n.creator_resource_id != t.technician)
            .count();
        assert_eq!(
            (mirrored_to_desk, mirrored_to_psa),
            (3, 3),
            "{}: no echo",
            t.id
        );
    }
}

pub async fn repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each(world: World) {
    let acme = world.tenant("acme");
    let secret = acme.secrets.zendesk_webhook_secret.expose();
    let url = format!("{}/t/acme/zendesk", world.bridge.base_url);

    // The sandbox stays quiet; the test delivers the events itself: each one
    // three times, newest first, some with the same event id (Zendesk
    // redelivery) and some with new ids (separate triggers).
    acme.zendesk.set_webhook_url(None);
    let z = open(acme, "Disk full", "high", Some("CL-200"));
    let c1 = acme
        .zendesk
        .add_comment(z, "Ann Agent", "first comment", true);
    let c2 = acme
        .zendesk
        .add_comment(z, "Ann Agent", "second comment", false);
    let events = [("comment_added", c2), ("comment_added", c1), ("created", z)];
    for copy in 0..3 {
        for (kind, id) in events {
            let event_id = if copy == 2 {
                format!("{kind}-{id}-again")
            } else {
                format!("{kind}-{id}")
            };
            let (body, headers) = zendesk_event(secret, &event_id, z, kind);
            let (status, text) = post(&url, &headers, body).await;
            assert_eq!(status, 202, "{text}");
        }
    }
    let p = psa_ticket_of(acme, z).await;
    wait_for(ARRIVAL, || {
        (acme.autotask.notes(p.id).len() >= 2).then_some(())
    })
    .await
    .expect("both comments became notes");

    // An Autotask note, its webhook delivered three times as well.
    let note = acme
        .autotask
        .add_note(p.id, acme.technician, "Fix", "cleaned up /tmp", false);
    let payload = serde_json::json!({
        "Action": "Create", "Guid": format!("guid-{note}"), "EntityType": "TicketNote", "Id": note,
        "Fields": {"TicketID": p.id}, "EventTime": chrono::Utc::now().to_rfc3339(), "SequenceNumber": 9, "PersonID": acme.technician
    })
    .to_string()
    .into_bytes();
    let signature = autotask_signature(acme.secrets.autotask_webhook_secret.expose(), &payload);
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-hook-signature".to_owned(), signature),
    ];
    for _ in 0..3 {
        let (status, text) = post(
            &format!("{}/t/acme/autotask", world.bridge.base_url),
            &headers,
            payload.clone(),
        )
        .await;
        assert_eq!(status, 202, "{text}");
    }

    // And the sandbox's own delivery, now duplicating and reordering everything.
    acme.zendesk.set_webhook_url(Some(url.clone()));
    acme.zendesk.faults().update(|f| {
        f.duplicate_webhook_rate = 1.0;
        f.webhook_jitter = Duration::from_millis(200);
    });
    acme.zendesk
        .add_comment(z, "Ann Agent", "third comment", true);

    wait_for(ARRIVAL, || {
        acme.autotask
            .notes(p.id)
            .iter()
            .any(|n| n.description == "third comment")
            .then_some(())
    })
    .await
    .expect("the third comment became a note");
    settle(&world, Duration::from_millis(800)).await;

    assert_eq!(acme.autotask.tickets().len(), 1, "one Autotask ticket");
    let notes: Vec<String> = acme
        .autotask
        .notes(p.id)
        .into_iter()
        .map(|n| n.description)
        .collect();
    assert_eq!(
        notes.iter().filter(|d| *d == "first comment").count(),
        1,
        "{notes:?}"
    );
    assert_eq!(
        notes.iter().filter(|d| *d == "second comment").count(),
        1,
        "{notes:?}"
    );
    assert_eq!(
        notes.iter().filter(|d| *d == "third comment").count(),
        1,
        "{notes:?}"
    );
    assert_eq!(
        notes.len(),
        4,
        "3 comments + the technician's note: {notes:?}"
    );
    let bodies: Vec<String> = acme
        .zendesk
        .comments(z)
        .into_iter()
        .map(|c| c.body)
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("cleaned up /tmp"))
            .count(),
        1,
        "{bodies:?}"
    );
    assert_eq!(
        bodies.len(),
        5,
        "description + 3 comments + 1 note: {bodies:?}"
    );
    assert!(
        acme.zendesk.faults().stats().webhooks_duplicated > 0,
        "duplicates were really sent"
    );
}

pub async fn cluster_id_resolves_to_the_configuration_items_company_or_is_reported(world: World) {
    let acme = world.tenant("acme");
    let globex = world.tenant("globex");

    let known = open(acme, "Known cluster", "normal", Some("CL-200"));
    let unknown = open(acme, "Unknown cluster", "normal", Some("CL-999"));
    let missing = open(acme, "No cluster", "normal", None);
    let fallback = open(globex, "Unknown cluster", "normal", Some("CL-999"));

    let p = psa_ticket_of(acme, known).await;
    assert_eq!(
        p.company_id,
        acme.clusters.iter().find(|(c, _)| c == "CL-200").unwrap().1
    );
    let g = psa_ticket_of(globex, fallback).await;
    assert_eq!(
        Some(g.company_id),
        globex.default_company,
        "globex falls back to its default company"
    );

    // acme has no default company: both tickets are refused with a clear log entry.
    let repo = Repo::new(world.store());
    let mut errors = Vec::new();
    for _ in 0..200 {
        errors = repo
            .log_entries(&acme.id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.level == LogLevel::Error)
            .collect();
        if errors.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let for_ticket = |id: u64| {
        errors
            .iter()
            .find(|e| e.ticket.as_deref() == Some(&format!("zendesk:{id}")))
    };
    let e = for_ticket(unknown).expect("an error entry for the unknown cluster");
    assert_eq!(e.step, "resolve_company");
    assert!(
        e.message.contains("CL-999") && e.message.contains("no PSA configuration item"),
        "{}",
        e.message
    );
    assert!(!e.retryable);
    let e = for_ticket(missing).expect("an error entry for the missing cluster");
    assert!(e.message.contains("no cluster id"), "{}", e.message);
    assert_eq!(
        acme.autotask.tickets().len(),
        1,
        "nothing created for unresolvable companies"
    );
}

/// Bridge writes to one Autotask ticket (`PATCH Tickets` naming it).
fn ticket_patches(t: &TenantWorld, psa_id: i64) -> usize {
    t.autotask
        .api_requests_matching("PATCH", "Tickets")
        .iter()
        .filter(|r| {
            r.body
                .as_ref()
                .and_then(|b| b.get("id"))
                .and_then(serde_json::Value::as_i64)
                == Some(psa_id)
        })
        .count()
}

/// Bridge writes of subject, status or priority to one Zendesk ticket.
fn desk_field_updates(t: &TenantWorld, desk_id: u64) -> usize {
    t.zendesk
        .requests_matching("PUT", &format!("/api/v2/tickets/{desk_id}.json"))
        .iter()
        .filter(|r| {
            let ticket = r.body.as_ref().and_then(|b| b.get("ticket"));
            ["subject", "status", "priority"]
                .iter()
                .any(|field| ticket.and_then(|t| t.get(field)).is_some())
        })
        .count()
}

pub async fn psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue(
    world: World,
) {
    let t = world.tenant("noc");
    let noc_queue = pick(t, "queueID", "Level II Support");
    assert_eq!(t.config.fields.to_desk_only_in_queue, Some(noc_queue));
    let inside = open(t, "Core switch down", "normal", Some("CL-100"));
    let outside = open(t, "Printer jam", "normal", Some("CL-100"));
    let (p_in, p_out) = (
        psa_ticket_of(t, inside).await.id,
        psa_ticket_of(t, outside).await.id,
    );
    assert_eq!(t.autotask.ticket(p_in).unwrap().queue_id, Some(noc_queue));
    // A dispatcher moves one ticket out of the NOC queue.
    let client_portal = pick(t, "queueID", "Client Portal");
    t.autotask.update_as_technician(
        p_out,
        t.technician,
        &[("queueID", serde_json::json!(client_portal))],
    );
    settle(&world, Duration::from_millis(300)).await;
    let (desk_in_before, desk_out_before) = (
        t.zendesk.ticket(inside).unwrap(),
        t.zendesk.ticket(outside).unwrap(),
    );
    let (patches_in, patches_out) = (ticket_patches(t, p_in), ticket_patches(t, p_out));

    // Technicians change status and priority on both tickets in Autotask.
    let (waiting, complete) = (
        pick(t, "status", "Waiting Customer"),
        pick(t, "status", "Complete"),
    );
    let high = pick(t, "priority", "High");
    for (psa_id, status) in [(p_in, waiting), (p_out, complete)] {
        t.autotask.update_as_technician(
            psa_id,
            t.technician,
            &[
                ("status", serde_json::json!(status)),
                ("priority", serde_json::json!(high)),
            ],
        );
    }
    let arrived = wait_for(ARRIVAL, || {
        t.zendesk
            .ticket(inside)
            .filter(|z| z.status == "pending" && z.priority.as_deref() == Some("high"))
    })
    .await;
    assert!(
        arrived.is_some(),
        "Waiting Customer -> pending and High -> high never reached Zendesk: {:?}",
        t.zendesk.ticket(inside)
    );
    settle(&world, Duration::from_millis(500)).await;

    assert_eq!(
        desk_field_updates(t, inside),
        1,
        "one Zendesk update for the NOC ticket"
    );
    let out = t.zendesk.ticket(outside).unwrap();
    assert_eq!(
        (out.status.as_str(), out.priority.as_deref()),
        (
            desk_out_before.status.as_str(),
            desk_out_before.priority.as_deref()
        ),
        "a ticket outside the NOC queue keeps its Zendesk values"
    );
    assert_ne!(desk_in_before.status, "pending");
    let (now_in, now_out) = (
        t.autotask.ticket(p_in).unwrap(),
        t.autotask.ticket(p_out).unwrap(),
    );
    assert_eq!(
        (now_in.status, now_in.priority, now_out.status),
        (waiting, high, complete),
        "the technicians' values stand"
    );
    assert_eq!(
        (ticket_patches(t, p_in), ticket_patches(t, p_out)),
        (patches_in, patches_out),
        "Zendesk's new values are not echoed back to Autotask"
    );

    // The forward direction still works on the same pair, without echo.
    t.zendesk.update_ticket(
        inside,
        TicketChange {
            subject: None,
            priority: None,
            status: Some("solved".into()),
        },
    );
    let solved = wait_for(ARRIVAL, || {
        t.autotask.ticket(p_in).filter(|p| p.status == complete)
    })
    .await;
    assert!(
        solved.is_some(),
        "solved -> Complete never reached Autotask"
    );
    settle(&world, Duration::from_millis(500)).await;
    assert_eq!(ticket_patches(t, p_in), patches_in + 1);
    assert_eq!(
        desk_field_updates(t, inside),
        1,
        "nothing came back to Zendesk"
    );
    assert_eq!(t.zendesk.ticket(inside).unwrap().status, "solved");
}

/// Autotask calls made while `change` and everything it set off (echoes
/// included) ran, on a tenant whose bridge writes fire webhooks.
async fn autotask_calls_for(world: &World, t: &TenantWorld, change: impl AsyncFnOnce()) -> u64 {
    settle(world, Duration::from_millis(300)).await;
    let before = t.autotask.api_calls();
    change().await;
    settle(world, Duration::from_millis(500)).await;
    t.autotask.api_calls() - before
}

pub async fn a_change_costs_at_most_two_autotask_calls_and_an_echo_none(world: World) {
    let acme = world.tenant("acme");
    // The client reads Autotask's field descriptions (ticket picklists and
    // required fields, note publish values) once per process; a first ticket
    // and comment pay for that.
    let warm_up = open(acme, "Warm-up", "normal", Some("CL-100"));
    let warm_psa = psa_ticket_of(acme, warm_up).await.id;
    acme.zendesk
        .add_comment(warm_up, "Casey Customer", "warm-up", true);
    wait_for(ARRIVAL, || {
        (!acme.autotask.notes(warm_psa).is_empty()).then_some(())
    })
    .await
    .expect("the warm-up comment became a note");
    let calls_before = acme.autotask.api_calls();
    let budget_writes_before = autotask_budget_writes(&world, acme).await;
    let mut desk_id = 0;
    let create = autotask_calls_for(&world, acme, async || {
        desk_id = open(acme, "Counted", "normal", Some("CL-100"));
        psa_ticket_of(acme, desk_id).await;
    })
    .await;
    let psa_id = psa_tickets_for(acme, desk_id)[0].id;
    assert!(create <= 3, "a first create cost {create} Autotask calls");

    let comment = autotask_calls_for(&world, acme, async || {
        acme.zendesk
            .add_comment(desk_id, "Casey Customer", "counted comment", true);
        wait_for(ARRIVAL, || {
            acme.autotask
                .notes(psa_id)
                .iter()
                .any(|n| n.description == "counted comment")
                .then_some(())
        })
        .await
        .expect("the comment became a note");
    })
    .await;
    assert!(
        comment <= 2,
        "a Zendesk comment cost {comment} Autotask calls"
    );

    let high = pick(acme, "priority", "High");
    let fields = autotask_calls_for(&world, acme, async || {
        acme.zendesk.update_ticket(
            desk_id,
            TicketChange {
                subject: None,
                priority: Some("high".into()),
                status: Some("open".into()),
            },
        );
        wait_for(ARRIVAL, || {
            acme.autotask.ticket(psa_id).filter(|p| p.priority == high)
        })
        .await
        .expect("the field change reached Autotask");
    })
    .await;
    assert!(
        fields <= 2,
        "a Zendesk field change cost {fields} Autotask calls"
    );

    // A technician's note: one list (to find what is new) and one name
    // lookup; the bridge's comment coming back from Zendesk costs nothing.
    let note = autotask_calls_for(&world, acme, async || {
        acme.autotask
            .add_note(psa_id, acme.technician, "Update", "counted note", false);
        wait_for(ARRIVAL, || {
            acme.zendesk
                .comments(desk_id)
                .iter()
                .any(|c| c.body.contains("counted note"))
                .then_some(())
        })
        .await
        .expect("the note became a comment");
    })
    .await;
    assert!(note <= 2, "an Autotask note cost {note} Autotask calls");

    // The budget's store traffic: the slot the calls ran on is kept between
    // them, so what the budget wrote (slot take and give-back, token blocks)
    // is at most one write per Autotask call.
    world.bridge.wiring.worker().give_back_held().await;
    let calls = acme.autotask.api_calls() - calls_before;
    let budget_writes = autotask_budget_writes(&world, acme).await - budget_writes_before;
    assert!(
        budget_writes <= calls,
        "the Autotask budget wrote {budget_writes} store items for {calls} Autotask calls"
    );
}

/// Every write to the tenant's Autotask budget items so far: each write
/// bumps its item's version by one.
async fn autotask_budget_writes(world: &World, t: &TenantWorld) -> u64 {
    let pk = format!("TENANT#{}", t.id);
    let slots = world
        .store
        .query(&pk, bridge::repo::AUTOTASK_BUDGET_SK_PREFIX, false, 100)
        .await
        .expect("store readable");
    slots.iter().map(|item| item.version).sum()
}
