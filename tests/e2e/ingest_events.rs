//! What Autotask and Zendesk really send, through the sandboxes' own
//! delivery, and how ingest answers it (issue 10, items 2 to 4):
//!
//! - Autotask webhooks signed over the raw body and over the body re-escaped
//!   the way Autotask's .NET serializer writes it are both accepted, with
//!   `&`, `+`, `<`, `>`, quotes and accented letters in the payload; a wrong
//!   signature is still refused.
//! - Authentic events the bridge cannot use (other entity types, a note
//!   without its ticket id, deleted tickets, unknown actions, Zendesk events
//!   about users or deleted tickets, a trigger without a ticket id) are
//!   answered 2xx and written to the tenant's sync log with what to fix, so a
//!   stream of them never gets the Autotask webhook deactivated; a bridge
//!   that refuses deliveries does get it deactivated after 25 failed events.
//! - Extension callouts sent by GET (query string), POST form and POST XML
//!   all reach the worker.
//!
//! Each case runs on the embedded adapters and, as `..._on_aws`, on the AWS
//! adapters against the emulator.

use std::time::Duration;

use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use sandbox::autotask::{
    dotnet_escaped_json, CalloutTransport, DeliveryRules, WebhookSigning, WebhookTarget,
};
use sandbox::zendesk::NewTicket;
use serde_json::{json, Value};
use testkit::world::{wait_for, TenantWorld, World, WorldOptions};

use crate::aws_backend::AwsBackend;
use crate::support::{
    autotask_signature, post, psa_tickets_for, settle, webhook_and_callout_tenants, ARRIVAL,
};

/// How long the queue stays empty before a step starts.
const QUIET: Duration = Duration::from_millis(500);

async fn world(aws: bool, worker_concurrency: usize) -> World {
    let options = WorldOptions {
        worker_concurrency,
        ..WorldOptions::default()
    };
    if aws {
        World::start_on(
            &AwsBackend::default(),
            webhook_and_callout_tenants(),
            options,
        )
        .await
        .expect("world on the AWS adapters (is the emulator running? see infra/test.sh)")
    } else {
        World::start(webhook_and_callout_tenants(), options)
            .await
            .unwrap()
    }
}

async fn enqueued(world: &World) -> u64 {
    let depth = world.queue_depth().await.unwrap();
    depth.visible + depth.in_flight + depth.dead
}

/// The tenant's sync-log entries of one ingest step, oldest first.
async fn ingest_log(world: &World, t: &TenantWorld, step: &str) -> Vec<SyncLogEntry> {
    let mut entries: Vec<SyncLogEntry> = Repo::new(world.store())
        .log_entries(&t.id, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.step == step)
        .collect();
    entries.reverse();
    entries
}

/// A Zendesk ticket that reached Autotask: (Zendesk id, Autotask id).
async fn linked_ticket(t: &TenantWorld, subject: &str) -> (u64, i64) {
    let desk_id = t.zendesk.create_ticket(NewTicket {
        subject: subject.into(),
        description: format!("{subject}: details"),
        priority: Some("normal".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    });
    let psa = wait_for(ARRIVAL, || psa_tickets_for(t, desk_id).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("{}: Zendesk #{desk_id} never reached Autotask", t.id));
    (desk_id, psa.id)
}

/// Waits until technician note `note` is a Zendesk comment.
async fn note_reaches_zendesk(t: &TenantWorld, desk_id: u64, note: i64, what: &str) {
    let marker = format!("(Autotask note #{note})");
    let arrived = wait_for(ARRIVAL, || {
        t.zendesk
            .comments(desk_id)
            .into_iter()
            .find(|c| c.body.contains(&marker))
    })
    .await;
    assert!(
        arrived.is_some(),
        "{}: {what}: note {note} never reached Zendesk; webhook {:?}, deliveries {:?}",
        t.id,
        t.autotask.webhook_status(),
        t.autotask.faults().stats()
    );
}

// ---------------------------------------------------------------------------
// Item 2: webhook signatures over the raw or the .NET-escaped body
// ---------------------------------------------------------------------------

async fn webhook_signatures_over_the_raw_or_the_dotnet_escaped_body_are_accepted(world: World) {
    let acme = world.tenant("acme");
    acme.autotask.set_delivery_rules(DeliveryRules::fast());
    let (desk_id, psa_id) = linked_ticket(acme, "Backups & restores").await;

    for signing in [WebhookSigning::NetEscaped, WebhookSigning::RawBody] {
        // Nothing else in flight that would carry the note along.
        settle(&world, QUIET).await;
        acme.autotask.set_webhook_signing(signing);
        let note = acme.autotask.add_note(
            psa_id,
            acme.technician,
            &format!("Backup & restore + \"quoted\" <paths> l'été für Zoë ({signing:?})"),
            "Café & crème + 'x' <y> `z`",
            false,
        );
        note_reaches_zendesk(acme, desk_id, note, &format!("{signing:?}")).await;
    }
    // A ticket event whose changed field carries the same characters.
    acme.autotask
        .set_webhook_signing(WebhookSigning::NetEscaped);
    acme.autotask.update_as_technician(
        psa_id,
        acme.technician,
        &[(
            "title",
            json!("Sauvegarde & reprise + \"tout\" — Zoë <urgent>"),
        )],
    );
    let status = acme.autotask.webhook_settled(ARRIVAL).await;
    assert_eq!(
        (status.active, status.events_failed, status.pending),
        (true, 0, 0),
        "every event accepted: {status:?}"
    );

    // The same sandbox signing with another key is refused, in either form.
    acme.autotask.set_webhook(Some(WebhookTarget {
        url: format!("{}/t/acme/autotask", world.bridge.base_url),
        secret_key: "not-acme's-key".to_owned(),
        excluded_resource_ids: Vec::new(),
    }));
    let before = acme.autotask.webhook_status().events_failed;
    acme.autotask
        .add_note(psa_id, acme.technician, "Forged & signed", "x", false);
    let status = acme.autotask.webhook_settled(ARRIVAL).await;
    assert_eq!(status.events_failed, before + 1, "{status:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autotask_webhook_signatures_over_the_raw_or_the_dotnet_escaped_body_are_accepted() {
    webhook_signatures_over_the_raw_or_the_dotnet_escaped_body_are_accepted(world(false, 4).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autotask_webhook_signatures_over_the_raw_or_the_dotnet_escaped_body_are_accepted_on_aws() {
    webhook_signatures_over_the_raw_or_the_dotnet_escaped_body_are_accepted(world(true, 4).await)
        .await;
}

/// Direct requests: both forms of the signature of bodies full of characters
/// the .NET serializer escapes; anything else refused.
#[tokio::test]
async fn autotask_webhook_signature_forms_are_checked_exactly() {
    let world = world(false, 0).await;
    let base = &world.bridge.base_url;
    let acme = world.tenant("acme");
    let key = acme.secrets.autotask_webhook_secret.expose();
    let url = format!("{base}/t/acme/autotask");
    let hook = |signature: String| {
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-hook-signature".to_owned(), format!("sha1={signature}")),
        ]
    };
    let payloads = [
        json!({"Action": "Update", "Guid": "g", "EntityType": "Ticket", "Id": 7001,
               "Fields": {"Title": "Tom & Jerry + \"friends\""}, "EventTime": "2026-11-23T12:00:00Z",
               "SequenceNumber": 1, "PersonID": 5}),
        json!({"Action": "Create", "Guid": "g", "EntityType": "TicketNote", "Id": 30001,
               "Fields": {"TicketID": "7001", "Title": "Réseau coupé à l'accueil <3>", "Description": "`ps` + ü"},
               "EventTime": "2026-11-23T12:00:01Z", "SequenceNumber": 1, "PersonID": 5}),
        json!({"Action": "Update", "Guid": "g", "EntityType": "Ticket", "Id": 7002,
               "Fields": {"Title": "Émoji 😀 & more"}, "EventTime": "2026-11-23T12:00:02Z",
               "SequenceNumber": 2, "PersonID": 5}),
    ];
    let mut accepted = 0;
    for payload in &payloads {
        let body = serde_json::to_vec(payload).unwrap();
        let escaped = dotnet_escaped_json(payload);
        assert_ne!(body, escaped, "the payload has characters to escape");
        for over in [&body, &escaped] {
            let (status, text) =
                post(&url, &hook(autotask_signature(key, over)), body.clone()).await;
            assert_eq!(status, 202, "{}: {text}", String::from_utf8_lossy(over));
            accepted += 1;
        }
        // The escaped form is not a body the bridge accepts unsigned, and
        // neither form's signature under another key passes.
        for over in [&body, &escaped] {
            let (status, _) = post(
                &url,
                &hook(autotask_signature("another-key", over)),
                body.clone(),
            )
            .await;
            assert_eq!(status, 401);
        }
        // The signature of the escaped form does not cover another body.
        let mut tampered = payload.clone();
        tampered["Id"] = json!(9999);
        let (status, _) = post(
            &url,
            &hook(autotask_signature(key, &escaped)),
            serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }
    // Redeliveries of one event de-duplicate in the queue: one job per payload.
    assert_eq!(accepted, 6);
    let queued = enqueued(&world).await;
    assert!((1..=6).contains(&queued), "{queued}");
    world.stop().await;
}

// ---------------------------------------------------------------------------
// Item 3: never switch a tenant off
// ---------------------------------------------------------------------------

/// 32 authentic events the bridge cannot use, as a misconfigured or wider
/// Autotask webhook sends them.
fn odd_autotask_events(t: &TenantWorld) -> usize {
    let person = t.technician;
    let a = &t.autotask;
    let sent = std::cell::Cell::new(0);
    let emit = |entity: &str, action: &str, id: i64, fields: Value| {
        assert!(a.emit_webhook_event(entity, action, id, fields, person));
        sent.set(sent.get() + 1);
    };
    for i in 0..8 {
        emit(
            "Company",
            "Update",
            100 + i,
            json!({"CompanyName": "Contoso & Co"}),
        );
    }
    for i in 0..5 {
        emit("Contact", "Create", 200 + i, json!({"FirstName": "Zoë"}));
    }
    for i in 0..4 {
        emit(
            "ConfigurationItem",
            "Update",
            300 + i,
            json!({"ReferenceNumber": "CL-100"}),
        );
    }
    for i in 0..5 {
        // A TicketNote webhook without TicketID as a display-always field.
        emit(
            "TicketNote",
            "Create",
            400 + i,
            json!({"Title": "Called the customer"}),
        );
    }
    let guid = a.webhook_guid().to_owned();
    for payload in [
        json!({"Action": "Update", "Guid": guid, "Id": 800, "Fields": {}, "SequenceNumber": 1}),
        json!({"Action": "Update", "Guid": guid, "EntityType": "Ticket", "Id": "T20261123.0001",
               "Fields": {}, "SequenceNumber": 1}),
        json!({"Action": "Deactivated", "Guid": guid, "EntityType": "Ticket", "Id": 0,
               "Fields": {}, "EventTime": "2026-11-23T12:00:00Z", "SequenceNumber": 0, "PersonID": 0}),
    ] {
        assert!(a.emit_webhook_payload(&payload));
        sent.set(sent.get() + 1);
    }
    for i in 0..3 {
        emit("Ticket", "Delete", 500 + i, json!({}));
    }
    for i in 0..2 {
        emit("TicketNote", "Delete", 600 + i, json!({"TicketID": "7001"}));
    }
    for i in 0..2 {
        emit("Ticket", "Merge", 700 + i, json!({}));
    }
    sent.get()
}

async fn odd_autotask_events_never_deactivate_the_webhook(world: World) {
    let acme = world.tenant("acme");
    acme.autotask.set_delivery_rules(DeliveryRules::fast());
    acme.autotask
        .set_webhook_signing(WebhookSigning::NetEscaped);

    let odd = odd_autotask_events(acme);
    assert!(odd >= 30, "{odd}");
    // And one usable event behind them.
    assert!(acme.autotask.emit_webhook_event(
        "Ticket",
        "Update",
        7001,
        json!({"Status": "8"}),
        acme.technician
    ));
    let status = acme.autotask.webhook_settled(Duration::from_secs(60)).await;
    assert!(status.active, "the webhook was deactivated: {status:?}");
    assert_eq!(
        (
            status.events_delivered,
            status.events_failed,
            status.consecutive_failed_events,
            status.attempts,
            status.pending
        ),
        (odd as u64 + 1, 0, 0, odd as u64 + 1, 0),
        "each event answered 2xx at its first attempt: {status:?}"
    );
    assert_eq!(enqueued(&world).await, 1, "only the usable event is queued");

    // Each odd event left a sync-log line saying what happened and what to fix.
    let log = ingest_log(&world, acme, "autotask_webhook").await;
    assert_eq!(log.len(), odd, "{log:#?}");
    let count = |needle: &str| log.iter().filter(|e| e.message.contains(needle)).count();
    assert_eq!(count("Company"), 8, "{log:#?}");
    assert_eq!(count("Contact"), 5, "{log:#?}");
    assert_eq!(count("ConfigurationItem"), 4, "{log:#?}");
    assert_eq!(count("display-always"), 5, "{log:#?}");
    assert_eq!(count("deleted"), 5, "{log:#?}");
    assert_eq!(count("Merge"), 2, "{log:#?}");
    assert_eq!(count("deactivated"), 1, "{log:#?}");
    for entry in &log {
        assert!(!entry.retryable, "{entry:?}");
        match entry.level {
            LogLevel::Error => assert!(entry.message.contains("To fix:"), "{entry:?}"),
            LogLevel::Info => assert!(entry.message.contains("deleted"), "{entry:?}"),
        }
    }
    let deleted: Vec<_> = log.iter().filter(|e| e.level == LogLevel::Info).collect();
    assert_eq!(deleted.len(), 5, "deletions need no fix: {log:#?}");
    assert!(
        log.iter()
            .any(|e| e.ticket.as_deref() == Some("autotask:500")),
        "the deleted ticket is named: {log:#?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_authentic_autotask_events_never_deactivate_the_webhook() {
    odd_autotask_events_never_deactivate_the_webhook(world(false, 0).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_authentic_autotask_events_never_deactivate_the_webhook_on_aws() {
    odd_autotask_events_never_deactivate_the_webhook(world(true, 0).await).await;
}

/// The model is real: a bridge that answers 401 (the webhook signs with a
/// key the tenant does not have) gets the webhook deactivated after exactly
/// 25 failed events, after which Autotask sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_refusing_deliveries_gets_the_webhook_deactivated_after_25_failed_events() {
    let world = world(false, 0).await;
    let acme = world.tenant("acme");
    acme.autotask.set_delivery_rules(DeliveryRules::fast());
    acme.autotask.set_webhook(Some(WebhookTarget {
        url: format!("{}/t/acme/autotask", world.bridge.base_url),
        secret_key: "a-key-acme-never-had".to_owned(),
        excluded_resource_ids: Vec::new(),
    }));
    for id in 0..24 {
        acme.autotask
            .emit_webhook_event("Ticket", "Update", 7001 + id, json!({}), acme.technician);
    }
    let status = acme.autotask.webhook_settled(Duration::from_secs(60)).await;
    assert_eq!(
        (
            status.active,
            status.consecutive_failed_events,
            status.attempts
        ),
        (true, 24, 24 * 5),
        "{status:?}"
    );
    acme.autotask
        .emit_webhook_event("Ticket", "Update", 7100, json!({}), acme.technician);
    let status = acme.autotask.webhook_settled(Duration::from_secs(60)).await;
    assert_eq!(
        (status.active, status.events_failed, status.deactivations),
        (false, 25, 1),
        "{status:?}"
    );
    acme.autotask
        .emit_webhook_event("Ticket", "Update", 7101, json!({}), acme.technician);
    let status = acme.autotask.webhook_settled(Duration::from_secs(60)).await;
    assert_eq!(
        (status.events_not_sent, status.attempts),
        (1, 125),
        "{status:?}"
    );
    assert_eq!(enqueued(&world).await, 0);
    world.stop().await;
}

async fn odd_zendesk_events_are_answered_2xx_and_logged(world: World) {
    let base = &world.bridge.base_url;
    let acme = world.tenant("acme");
    let secret = acme.secrets.zendesk_webhook_secret.expose();
    let url = format!("{base}/t/acme/zendesk");
    let signed = |body: &[u8]| {
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "x-zendesk-webhook-signature".to_owned(),
                sandbox::zendesk::sign(secret, &timestamp, body),
            ),
            (
                "x-zendesk-webhook-signature-timestamp".to_owned(),
                timestamp,
            ),
        ]
    };
    let odd = [
        json!({"type": "zen:event-type:user.created", "id": "u1", "detail": {"id": "5"}}),
        json!({"type": "zen:event-type:organization.created", "id": "o1", "detail": {"id": "6"}}),
        json!({"type": "zen:event-type:ticket.soft_deleted", "id": "d1", "subject": "zen:ticket:77",
               "detail": {"id": "77", "status": "DELETED"}}),
        json!({"type": "zen:event-type:ticket.permanently_deleted", "id": "d2", "subject": "zen:ticket:78",
               "detail": {"id": "78"}}),
        json!({"type": "zen:event-type:ticket.status_changed", "id": "d3", "subject": "zen:ticket:79",
               "detail": {"id": "79", "status": "DELETED"}}),
        json!({"type": "zen:event-type:ticket.created", "id": "x1", "detail": {}}),
        json!({"ticket_id": "{{ticket.id}}"}),
        json!({"ticket_id": "abc"}),
        json!({"status": "open"}),
    ];
    for event in &odd {
        let body = serde_json::to_vec(event).unwrap();
        let (status, text) = post(&url, &signed(&body), body).await;
        assert_eq!(status, 200, "{event}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["queued"], false, "{text}");
        assert!(
            answer["ignored"].as_str().is_some_and(|r| !r.is_empty()),
            "{text}"
        );
    }
    // Unreadable stays 400; a usable event is still queued.
    let (status, _) = post(&url, &signed(b"{not json"), b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(enqueued(&world).await, 0);
    let good = serde_json::to_vec(&json!({"ticket_id": 12})).unwrap();
    let (status, text) = post(&url, &signed(&good), good).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(enqueued(&world).await, 1);

    let log = ingest_log(&world, acme, "zendesk_webhook").await;
    assert_eq!(log.len(), odd.len(), "{log:#?}");
    let deleted: Vec<_> = log.iter().filter(|e| e.level == LogLevel::Info).collect();
    assert_eq!(deleted.len(), 3, "{log:#?}");
    for entry in &log {
        match entry.level {
            LogLevel::Error => assert!(entry.message.contains("To fix:"), "{entry:?}"),
            LogLevel::Info => assert!(entry.message.contains("deleted"), "{entry:?}"),
        }
    }
    assert!(log
        .iter()
        .any(|e| e.ticket.as_deref() == Some("zendesk:77")));
    assert!(log.iter().any(|e| e.message.contains("user.created")));
    assert!(log.iter().any(|e| e.message.contains("{{ticket.id}}")));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_authentic_zendesk_events_are_answered_2xx_and_logged() {
    odd_zendesk_events_are_answered_2xx_and_logged(world(false, 0).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_authentic_zendesk_events_are_answered_2xx_and_logged_on_aws() {
    odd_zendesk_events_are_answered_2xx_and_logged(world(true, 0).await).await;
}

// ---------------------------------------------------------------------------
// Item 4: extension callouts by GET, POST form and POST XML
// ---------------------------------------------------------------------------

async fn callouts_by_every_transport_reach_the_worker(world: World) {
    let globex = world.tenant("globex");
    let (desk_id, psa_id) = linked_ticket(globex, "Scanner & printer").await;
    for transport in [
        CalloutTransport::Get,
        CalloutTransport::PostForm,
        CalloutTransport::PostXml,
    ] {
        // Nothing else in flight that would carry the note along.
        settle(&world, QUIET).await;
        globex.autotask.set_callout_transport(transport);
        let note = globex.autotask.add_note(
            psa_id,
            globex.technician,
            &format!("Checked the scanner & the printer ({transport:?})"),
            "Toner + drum replaced; café spilled <again>",
            false,
        );
        note_reaches_zendesk(globex, desk_id, note, &format!("{transport:?}")).await;
    }
    let stats = globex.autotask.faults().stats();
    assert_eq!(
        stats.webhooks_failed, 0,
        "every callout accepted: {stats:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_callouts_by_get_post_form_and_post_xml_reach_the_worker() {
    callouts_by_every_transport_reach_the_worker(world(false, 4).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_callouts_by_get_post_form_and_post_xml_reach_the_worker_on_aws() {
    callouts_by_every_transport_reach_the_worker(world(true, 4).await).await;
}
