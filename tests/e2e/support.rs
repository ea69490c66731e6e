//! Helpers shared by the end-to-end tests.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sandbox::autotask::Ticket as PsaTicket;

use psa_bridge_local::psa_view::PsaView;
use testkit::world::{AutotaskEvents, TenantSpec, TenantWorld, World};

/// Generous: these tests wait for real HTTP round trips on a loaded 2-core box.
pub const ARRIVAL: Duration = Duration::from_secs(20);

/// Two tenants, one per way Autotask reports changes: `acme` with REST
/// webhooks, `globex` with extension callouts.
pub fn webhook_and_callout_tenants() -> Vec<TenantSpec> {
    let globex = TenantSpec {
        events: AutotaskEvents::Callout,
        ..TenantSpec::new("globex")
    };
    vec![TenantSpec::new("acme"), globex]
}

/// Held by the tests that must not overlap one another in this one binary:
/// each chaos run (it loads the machine for minutes) and the log capture of
/// `no_secrets_in_logs` (which would take in a chaos run's logs at trace
/// level). Every other test runs beside them as usual.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other test that calls this runs, then holds them off until
/// the guard is dropped.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    ALONE.lock().await
}

/// Waits until the queue has been empty (nothing visible, nothing in flight)
/// for `quiet`, so late duplicates and would-be echoes have had their chance.
pub async fn settle(world: &World, quiet: Duration) {
    settle_within(world, quiet, Duration::from_secs(60)).await
}

/// [`settle`] with a longer patience, for runs whose retries back off far.
pub async fn settle_within(world: &World, quiet: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut empty_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let depth = world.queue_depth().await.expect("queue depth");
        if depth.visible == 0 && depth.in_flight == 0 {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= quiet {
                return;
            }
        } else {
            empty_since = None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("queue never settled: {:?}", world.queue_depth().await);
}

/// The Autotask tickets that carry Zendesk ticket `desk_id` as their
/// reference (`externalID` = `zendesk:<id>`): one once it arrived, never more.
pub fn psa_tickets_for(t: &TenantWorld, desk_id: u64) -> Vec<PsaTicket> {
    let reference = format!("zendesk:{desk_id}");
    t.autotask
        .tickets()
        .into_iter()
        .filter(|p| p.external_id.as_deref() == Some(reference.as_str()))
        .collect()
}

/// `X-Hook-Signature` as Autotask computes it.
pub fn autotask_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed Zendesk webhook request body and headers for `ticket_id`.
pub fn zendesk_event(
    secret: &str,
    event_id: &str,
    ticket_id: u64,
    kind: &str,
) -> (Vec<u8>, Vec<(String, String)>) {
    let body = serde_json::json!({
        "type": format!("zen:event-type:ticket.{kind}"),
        "id": event_id,
        "account_id": 1,
        "time": chrono::Utc::now().to_rfc3339(),
        "zendesk_event_version": "2022-11-06",
        "subject": format!("zen:ticket:{ticket_id}"),
        "detail": {"id": ticket_id.to_string()},
        "event": {}
    })
    .to_string()
    .into_bytes();
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let signature = sandbox::zendesk::sign(secret, &timestamp, &body);
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-zendesk-webhook-signature".to_owned(), signature),
        (
            "x-zendesk-webhook-signature-timestamp".to_owned(),
            timestamp,
        ),
    ];
    (body, headers)
}

pub async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.post(url).body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("bridge reachable");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Checks that every Zendesk ticket has exactly one PSA ticket, every
/// comment exactly one note and every technician note exactly one comment,
/// with nothing else on either side (no echoes); returns (tickets, notes,
/// comments) for the record. Autotask and ConnectWise tenants alike.
pub fn assert_mirrored_exactly_once(t: &TenantWorld, desk_ids: &[u64]) -> (usize, usize, usize) {
    let psa = PsaView::of(t);
    let psa_tickets = psa.tickets();
    assert_eq!(
        psa_tickets.len(),
        desk_ids.len(),
        "{}: one {} ticket per Zendesk ticket",
        t.id,
        psa.label()
    );
    let (mut notes_total, mut comments_total) = (0, 0);
    for &z in desk_ids {
        let matching = psa.tickets_for(z);
        assert_eq!(
            matching.len(),
            1,
            "{}: Zendesk #{z} reached the PSA once",
            t.id
        );
        let notes = psa.notes(matching[0].id);
        let comments = t.zendesk.comments(z);

        // Zendesk → PSA: every comment but the description, once, with its
        // visibility.
        let originals: Vec<_> = comments.iter().skip(1).filter(|c| !c.via_api).collect();
        for c in &originals {
            let marker = format!("Zendesk comment #{} ", c.id);
            let copies: Vec<_> = notes
                .iter()
                .filter(|n| n.marked.starts_with(&marker))
                .collect();
            assert_eq!(
                copies.len(),
                1,
                "{}: comment {} mirrored once: {notes:?}",
                t.id,
                c.id
            );
            assert_eq!(copies[0].public, c.public, "visibility kept");
        }
        // PSA → Zendesk: every technician note, once.
        let technician_notes: Vec<_> = notes.iter().filter(|n| n.by_technician).collect();
        for n in &technician_notes {
            let marker = format!("({} note #{})", psa.label(), n.id);
            let copies = comments.iter().filter(|c| c.body.contains(&marker)).count();
            assert_eq!(
                copies, 1,
                "{}: note {} mirrored once: {comments:?}",
                t.id, n.id
            );
        }
        // Nothing else: no echo of a copy.
        assert_eq!(
            notes.len(),
            originals.len() + technician_notes.len(),
            "{}: no extra notes: {notes:?}",
            t.id
        );
        assert_eq!(
            comments.len(),
            1 + originals.len() + technician_notes.len(),
            "{}: no extra comments",
            t.id
        );
        notes_total += notes.len();
        comments_total += comments.len();
    }
    (psa_tickets.len(), notes_total, comments_total)
}
