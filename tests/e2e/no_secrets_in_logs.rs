//! No secret ever appears in a log line, a sync-log entry or an HTTP answer.
//! Runs a full sync plus failures with every log level enabled, for a tenant
//! whose Autotask sends REST webhooks and one whose Autotask sends extension
//! callouts, waits until each step really happened, captures the output, and
//! searches it for every credential of both tenants (and the encoded forms in
//! which credentials travel: HTTP Basic, Zendesk's `email/token:` form).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{
    autotask_signature, post, psa_tickets_for, settle, webhook_and_callout_tenants, zendesk_event,
    ARRIVAL,
};
use base64::Engine;
use bridge::repo::Repo;
use sandbox::zendesk::NewTicket;
use testkit::world::{wait_for, AutotaskEvents, TenantWorld, World, WorldOptions};
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether the capture takes logs: once this test is done nothing more is
/// searched.
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// Ends the capture when the test ends, however it ends.
struct StopCapture;

impl Drop for StopCapture {
    fn drop(&mut self) {
        CAPTURING.store(false, Ordering::SeqCst);
    }
}

/// One tenant's normal flow (a ticket, a comment, a technician note) and a
/// comment under rate limits, each waited for until it arrived.
async fn sync_with_failures(world: &World, tenant: &str) {
    let t = world.tenant(tenant);
    let z = t.zendesk.create_ticket(NewTicket {
        subject: format!("Secret audit {tenant}"),
        description: "d".into(),
        priority: Some("high".into()),
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey".into(),
        ..NewTicket::default()
    });
    let p = wait_for(ARRIVAL, || psa_tickets_for(t, z).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("{tenant}: the ticket reached Autotask"))
        .id;
    t.zendesk.add_comment(z, "Casey", "a comment", true);
    let note = t.autotask.add_note(p, t.technician, "t", "a note", false);
    let marker = format!("(Autotask note #{note})");
    wait_for(ARRIVAL, || {
        let comment_arrived = t
            .autotask
            .notes(p)
            .iter()
            .any(|n| n.description == "a comment");
        let note_arrived = t
            .zendesk
            .comments(z)
            .iter()
            .any(|c| c.body.contains(&marker));
        (comment_arrived && note_arrived).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{tenant}: the comment and the technician note arrived"));

    // Failures that log: 429s on both sides, retried.
    for faults in [t.autotask.faults(), t.zendesk.faults()] {
        faults.update(|f| {
            f.rate_limit_burst = 2;
            f.retry_after_secs = 1;
        });
    }
    t.zendesk.add_comment(z, "Casey", "during faults", false);
    wait_for(Duration::from_secs(30), || {
        t.autotask
            .notes(p)
            .iter()
            .any(|n| n.description == "during faults")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{tenant}: the comment arrived despite the faults"));
    let stats = t.autotask.faults().stats();
    assert!(
        stats.rate_limited > 0,
        "{tenant}: the bridge ran into Autotask's rate limit"
    );
    // The Autotask side's events (the technician note, the bridge's own
    // notes) were sent to the bridge and accepted: its credential or
    // signature check ran with this tenant's secret.
    assert!(
        stats.webhooks_sent > 0 && stats.webhooks_failed == 0,
        "{tenant}: Autotask's {:?} reached the bridge: {stats:?}",
        t.events
    );
}

/// Requests the bridge must refuse, one per way a tenant authenticates;
/// returns the bodies of the answers.
async fn rejected_requests(world: &World) -> String {
    let base = &world.bridge.base_url;
    let globex = world.tenant("globex");
    let mut responses = String::new();
    for tenant in ["acme", "globex"] {
        // Zendesk: a signature with the wrong secret, and none.
        let (body, mut headers) = zendesk_event("wrong-secret", "e1", 1, "created");
        let url = format!("{base}/t/{tenant}/zendesk");
        let (status, text) = post(&url, &headers, body.clone()).await;
        assert_eq!(status, 401, "{tenant}: {text}");
        responses += &text;
        headers.retain(|(k, _)| !k.contains("signature"));
        let (status, text) = post(&url, &headers, body).await;
        assert_eq!(status, 401, "{tenant}: {text}");
        responses += &text;
    }
    // acme's Autotask webhook with a signature by the wrong key.
    let payload = serde_json::json!({
        "Action": "Create", "Guid": "6f1c", "EntityType": "TicketNote", "Id": 30001,
        "Fields": {"TicketID": 7001}, "EventTime": "2026-11-23T12:00:00Z", "SequenceNumber": 1, "PersonID": 5
    })
    .to_string()
    .into_bytes();
    let (status, text) = post(
        &format!("{base}/t/acme/autotask"),
        &[
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "x-hook-signature".to_owned(),
                autotask_signature("not-the-key", &payload),
            ),
        ],
        payload,
    )
    .await;
    assert_eq!(status, 401, "acme webhook: {text}");
    responses += &text;
    // globex's Autotask callout with the right user and a wrong password.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:wrong",
        globex.secrets.autotask_callout_username
    ));
    let (status, text) = post(
        &format!("{base}/t/globex/autotask"),
        &[
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("authorization".to_owned(), format!("Basic {wrong}")),
        ],
        b"id=7001&ticket_number=T20261123.0001".to_vec(),
    )
    .await;
    assert_eq!(status, 401, "globex callout: {text}");
    responses += &text;
    responses
}

/// Every secret of a tenant, and the encoded forms in which they travel.
fn secret_forms(t: &TenantWorld) -> Vec<(String, String)> {
    let s = &t.secrets;
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let id = &t.id;
    vec![
        (
            format!("{id} zendesk_api_token"),
            s.zendesk_api_token.expose().to_owned(),
        ),
        (
            format!("{id} zendesk_webhook_secret"),
            s.zendesk_webhook_secret.expose().to_owned(),
        ),
        (
            format!("{id} autotask_secret"),
            s.autotask_secret.expose().to_owned(),
        ),
        (
            format!("{id} autotask_integration_code"),
            s.autotask_integration_code.expose().to_owned(),
        ),
        (
            format!("{id} autotask_callout_password"),
            s.autotask_callout_password.expose().to_owned(),
        ),
        (
            format!("{id} autotask_webhook_secret"),
            s.autotask_webhook_secret.expose().to_owned(),
        ),
        (
            format!("{id} Zendesk API token as sent"),
            b64(format!(
                "{}/token:{}",
                s.zendesk_email,
                s.zendesk_api_token.expose()
            )),
        ),
        (
            format!("{id} callout credentials as sent"),
            b64(format!(
                "{}:{}",
                s.autotask_callout_username,
                s.autotask_callout_password.expose()
            )),
        ),
    ]
}

/// The threads of this test's own runtime: the capture takes their logs
/// only. The subscriber is global to the test binary, and the trace-level
/// logs of other tests running beside this one (the AWS SDK's, for one) are
/// not this test's to search and, formatted under load, slowed this test's
/// own sync past its patience.
const CAPTURED_THREADS: &str = "no-secrets-capture";

/// The thread that runs the test body itself (libtest's, for this test).
static BODY_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

fn on_captured_thread() -> bool {
    let current = std::thread::current();
    current.name() == Some(CAPTURED_THREADS) || BODY_THREAD.get() == Some(&current.id())
}

#[test]
fn secrets_never_reach_logs_the_sync_log_or_responses() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Every level of every crate, on this test's threads, while the capture is on.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(dynamic_filter_fn(|_, _| {
                    CAPTURING.load(Ordering::SeqCst) && on_captured_thread()
                })),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CAPTURED_THREADS)
        .enable_all()
        .build()
        .unwrap();
    BODY_THREAD.set(std::thread::current().id()).unwrap();
    runtime.block_on(search_everything(captured));
}

async fn search_everything(captured: Captured) {
    // No chaos run beside this one: it loads the machine for minutes.
    let _alone = crate::support::alone().await;
    CAPTURING.store(true, Ordering::SeqCst);
    let _stop_capture = StopCapture;

    // acme: Autotask REST webhooks; globex: Autotask extension callouts.
    let world = World::start(webhook_and_callout_tenants(), WorldOptions::default())
        .await
        .unwrap();
    assert_eq!(world.tenant("acme").events, AutotaskEvents::Webhook);
    assert_eq!(world.tenant("globex").events, AutotaskEvents::Callout);

    tokio::join!(
        sync_with_failures(&world, "acme"),
        sync_with_failures(&world, "globex")
    );
    let responses = rejected_requests(&world).await;
    settle(&world, Duration::from_millis(300)).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for tenant in ["acme", "globex"] {
        assert!(
            logs.contains(&format!("tenant={tenant}")),
            "the capture really holds the bridge's logs of {tenant}"
        );
    }
    assert!(
        logs.contains("transient failure") || logs.contains("rate limit"),
        "failures were logged"
    );
    let mut searched = 0;
    for t in &world.tenants {
        let sync_log = format!(
            "{:?}",
            Repo::new(world.store())
                .log_entries(&t.id, 100)
                .await
                .unwrap()
        );
        for (what, needle) in secret_forms(t) {
            assert!(
                !logs.contains(needle.as_str()),
                "{what} appears in the logs"
            );
            assert!(
                !sync_log.contains(needle.as_str()),
                "{what} appears in the sync log"
            );
            assert!(
                !responses.contains(needle.as_str()),
                "{what} appears in a response"
            );
            searched += 1;
        }
    }
    println!(
        "searched {} bytes of logs for {searched} secret forms of {} tenants: none found",
        logs.len(),
        world.tenants.len()
    );
}
