//! No secret ever appears in a log line, a sync-log entry or an HTTP answer.
//! Runs a full sync plus failures with every log level enabled, captures the
//! output, and searches it for each credential (and the encoded forms in which
//! credentials travel: HTTP Basic, Zendesk's `email/token:` form).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{post, psa_tickets_for, settle, zendesk_event, ARRIVAL};
use base64::Engine;
use bridge::repo::Repo;
use sandbox::zendesk::NewTicket;
use testkit::world::{wait_for, TenantSpec, World, WorldOptions};
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

/// Whether the capture takes logs: the subscriber is global to the test
/// binary, and once this test is done the other tests' logs are of no use.
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// Ends the capture when the test ends, however it ends.
struct StopCapture;

impl Drop for StopCapture {
    fn drop(&mut self) {
        CAPTURING.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_the_sync_log_or_responses() {
    // No chaos run beside this one: its trace-level logs would swamp the
    // capture. Other tests beside it only add to what is searched.
    let _alone = crate::support::alone().await;
    let captured = Captured::default();
    let writer = captured.clone();
    // Every level of every crate, while the capture is on.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(dynamic_filter_fn(|_, _| CAPTURING.load(Ordering::SeqCst))),
        )
        .init();
    CAPTURING.store(true, Ordering::SeqCst);
    let _stop_capture = StopCapture;

    let world = World::start(vec![TenantSpec::new("acme")], WorldOptions::default())
        .await
        .unwrap();
    let acme = world.tenant("acme");
    let base = &world.bridge.base_url;
    let mut responses = String::new();

    // A normal flow: ticket, comment, technician note.
    let z = acme.zendesk.create_ticket(NewTicket {
        subject: "Secret audit".into(),
        description: "d".into(),
        priority: Some("high".into()),
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey".into(),
        ..NewTicket::default()
    });
    let p = wait_for(ARRIVAL, || psa_tickets_for(acme, z).into_iter().next())
        .await
        .expect("ticket arrives")
        .id;
    acme.zendesk.add_comment(z, "Casey", "a comment", true);
    acme.autotask
        .add_note(p, acme.technician, "t", "a note", false);
    wait_for(ARRIVAL, || {
        (acme.zendesk.comments(z).len() >= 3).then_some(())
    })
    .await;

    // Failures that log: rejected webhooks, API errors, retries.
    let (body, mut headers) = zendesk_event("wrong-secret", "e1", z, "created");
    responses += &post(&format!("{base}/t/acme/zendesk"), &headers, body.clone())
        .await
        .1;
    headers.retain(|(k, _)| !k.contains("signature"));
    responses += &post(&format!("{base}/t/acme/zendesk"), &headers, body)
        .await
        .1;
    acme.autotask.faults().update(|f| {
        f.rate_limit_burst = 2;
        f.retry_after_secs = 1;
    });
    acme.zendesk.faults().update(|f| {
        f.rate_limit_burst = 2;
        f.retry_after_secs = 1;
    });
    acme.zendesk.add_comment(z, "Casey", "during faults", false);
    wait_for(Duration::from_secs(30), || {
        acme.autotask
            .notes(p)
            .iter()
            .any(|n| n.description == "during faults")
            .then_some(())
    })
    .await
    .expect("the comment arrives despite the faults");
    settle(&world, Duration::from_millis(300)).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("tenant=acme"),
        "the capture really holds the bridge's logs"
    );
    assert!(
        logs.contains("transient failure") || logs.contains("rate limit"),
        "failures were logged"
    );
    let sync_log = format!(
        "{:?}",
        Repo::new(world.store())
            .log_entries(&acme.id, 100)
            .await
            .unwrap()
    );

    let s = &acme.secrets;
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let needles = [
        s.zendesk_api_token.expose().to_owned(),
        s.zendesk_webhook_secret.expose().to_owned(),
        s.autotask_secret.expose().to_owned(),
        s.autotask_integration_code.expose().to_owned(),
        s.autotask_callout_password.expose().to_owned(),
        s.autotask_webhook_secret.expose().to_owned(),
        b64(format!(
            "{}/token:{}",
            s.zendesk_email,
            s.zendesk_api_token.expose()
        )),
        b64(format!(
            "{}:{}",
            s.autotask_callout_username,
            s.autotask_callout_password.expose()
        )),
    ];
    for needle in &needles {
        assert!(
            !logs.contains(needle.as_str()),
            "a secret appears in the logs"
        );
        assert!(
            !sync_log.contains(needle.as_str()),
            "a secret appears in the sync log"
        );
        assert!(
            !responses.contains(needle.as_str()),
            "a secret appears in a response"
        );
    }
    println!(
        "searched {} bytes of logs for {} secret forms: none found",
        logs.len(),
        needles.len()
    );
}
