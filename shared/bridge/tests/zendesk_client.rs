//! The Zendesk client against the Zendesk sandbox over real HTTP.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bridge::config::Secret;
use bridge::connectors::zendesk::{
    parse_webhook, verify_signature, PreflightError, ZendeskClient, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use bridge::error::ApiError;
use bridge::model::{DeskTicketPatch, Visibility};
use bridge::ports::{DeskCursor, ServiceDesk};
use chrono::{TimeDelta, Utc};
use sandbox::zendesk::{
    NewTicket, RateWindow, RecordedRequest, Role, UpdateLimits, ZendeskSandbox,
    ZendeskSandboxConfig,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const EMAIL: &str = "bridge@acme-msp.example";
const TOKEN: &str = "zd-api-token-1";
const WEBHOOK_SECRET: &str = "zd-webhook-secret-1";
const CLUSTER_FIELD: u64 = 360_012_345;

async fn sandbox() -> ZendeskSandbox {
    ZendeskSandbox::start(ZendeskSandboxConfig {
        agent_email: EMAIL.to_owned(),
        api_token: TOKEN.to_owned(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        webhook_url: None,
        cluster_id_field: CLUSTER_FIELD,
    })
    .await
    .expect("sandbox starts")
}

fn client(sandbox: &ZendeskSandbox, token: &str) -> ZendeskClient {
    ZendeskClient::new(
        bridge::connectors::http::client(),
        sandbox.base_url(),
        EMAIL,
        &Secret::new(token),
        Some(CLUSTER_FIELD),
    )
}

/// The `PUT /api/v2/tickets/{id}.json` requests the sandbox received, oldest first.
fn puts(sandbox: &ZendeskSandbox, id: u64) -> Vec<RecordedRequest> {
    sandbox.requests_matching("PUT", &format!("/api/v2/tickets/{id}.json"))
}

/// Their JSON bodies.
fn put_bodies(sandbox: &ZendeskSandbox, id: u64) -> Vec<Value> {
    puts(sandbox, id).iter().map(|r| r.json().clone()).collect()
}

fn ticket(sandbox: &ZendeskSandbox, cluster: Option<&str>) -> u64 {
    sandbox.create_ticket(NewTicket {
        subject: "Server room too hot".to_owned(),
        description: "The AC unit stopped".to_owned(),
        priority: Some("high".to_owned()),
        status: Some("open".to_owned()),
        cluster_id: cluster.map(str::to_owned),
        requester_name: "Rita Requester".to_owned(),
    })
}

#[tokio::test]
async fn reads_a_ticket_with_its_cluster_id() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, Some("CL-0042"));
    let desk = client(&sandbox, TOKEN);

    let got = desk.get_ticket(id).await.unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.subject, "Server room too hot");
    assert_eq!(got.description, "The AC unit stopped");
    assert_eq!(got.priority.as_deref(), Some("high"));
    assert_eq!(got.status, "open");
    assert_eq!(got.cluster_id.as_deref(), Some("CL-0042"));
    assert_eq!(got.external_id, None);
    assert!(got.updated_at.is_some());

    let bare = ticket(&sandbox, None);
    assert_eq!(desk.get_ticket(bare).await.unwrap().cluster_id, None);

    // Numeric custom field values come back as text.
    desk.set_custom_field(bare, CLUSTER_FIELD, serde_json::json!(745))
        .await
        .unwrap();
    assert_eq!(
        put_bodies(&sandbox, bare),
        vec![json!({"ticket": {"custom_fields": [{"id": CLUSTER_FIELD, "value": 745}]}})]
    );
    assert_eq!(
        desk.get_ticket(bare).await.unwrap().cluster_id.as_deref(),
        Some("745")
    );
}

#[tokio::test]
async fn lists_250_comments_across_pages_in_order() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    for n in 0..249 {
        let author = if n % 3 == 0 {
            "Alice Agent"
        } else {
            "Rita Requester"
        };
        sandbox.add_comment(id, author, &format!("comment {n}"), n % 5 != 0);
    }
    let desk = client(&sandbox, TOKEN);
    let before = sandbox.api_calls();

    let comments = desk.list_comments(id).await.unwrap();

    assert_eq!(comments.len(), 250);
    // 250 comments at 100 a page is three requests, each naming its page by
    // the previous page's after_cursor and asking for the authors.
    assert_eq!(sandbox.api_calls() - before, 3);
    let pages = sandbox.requests_matching("GET", &format!("/api/v2/tickets/{id}/comments.json"));
    assert_eq!(pages.len(), 3);
    for page in &pages {
        assert_eq!(page.query_param("page[size]").as_deref(), Some("100"));
        assert_eq!(page.query_param("include").as_deref(), Some("users"));
    }
    assert_eq!(pages[0].query_param("page[after]"), None);
    assert!(pages[1].query_param("page[after]").is_some());
    assert_ne!(
        pages[1].query_param("page[after]"),
        pages[2].query_param("page[after]")
    );
    let expected = sandbox.comments(id);
    for (got, want) in comments.iter().zip(&expected) {
        assert_eq!(got.id, want.id);
        assert_eq!(got.body, want.body);
        assert_eq!(got.public, want.public);
        assert_eq!(got.author_id, want.author_id);
        assert_eq!(got.author_name.as_deref(), Some(want.author_name.as_str()));
    }
    assert_eq!(comments[0].body, "The AC unit stopped");
    assert_eq!(comments[249].body, "comment 248");
    assert!(comments.windows(2).all(|w| w[0].id < w[1].id));
    assert!(!comments[1].public, "comment 0 was private");
}

#[tokio::test]
async fn adds_private_and_public_comments() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);

    let private = desk
        .add_comment(id, "Internal: checked the breaker", Visibility::Internal)
        .await
        .unwrap();
    let public = desk
        .add_comment(id, "A technician is on the way", Visibility::Public)
        .await
        .unwrap();

    // One PUT each, carrying the comment alone; `public: false` keeps the
    // internal note away from the requester.
    assert_eq!(
        put_bodies(&sandbox, id),
        vec![
            json!({"ticket": {"comment": {"body": "Internal: checked the breaker", "public": false}}}),
            json!({"ticket": {"comment": {"body": "A technician is on the way", "public": true}}}),
        ]
    );
    let put = &puts(&sandbox, id)[0];
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(put.header("authorization"), Some("Basic [redacted]"));
    assert_eq!(put.status, Some(200));

    let stored = sandbox.comments(id);
    assert_eq!(stored.len(), 3);
    let by_id = |cid: u64| stored.iter().find(|c| c.id == cid).expect("comment stored");
    assert_eq!(by_id(private).body, "Internal: checked the breaker");
    assert!(!by_id(private).public);
    assert!(by_id(private).via_api);
    assert_eq!(by_id(public).body, "A technician is on the way");
    assert!(by_id(public).public);
    assert_ne!(private, public);
    // The description is still the first comment.
    assert_eq!(
        sandbox.ticket(id).unwrap().description,
        "The AC unit stopped"
    );
}

#[tokio::test]
async fn sets_the_external_id() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);

    desk.set_external_id(id, "autotask:T20261123.0001")
        .await
        .unwrap();
    // The reference and nothing else, so no other field is overwritten.
    assert_eq!(
        put_bodies(&sandbox, id),
        vec![json!({"ticket": {"external_id": "autotask:T20261123.0001"}})]
    );

    assert_eq!(
        sandbox.ticket(id).unwrap().external_id.as_deref(),
        Some("autotask:T20261123.0001")
    );
    assert_eq!(
        desk.get_ticket(id).await.unwrap().external_id.as_deref(),
        Some("autotask:T20261123.0001")
    );
}

#[tokio::test]
async fn field_updates_send_only_the_set_fields() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, Some("CL-1"));
    let desk = client(&sandbox, TOKEN);

    desk.update_ticket(
        id,
        &DeskTicketPatch {
            status: Some("pending".to_owned()),
            ..DeskTicketPatch::default()
        },
    )
    .await
    .unwrap();
    desk.update_ticket(
        id,
        &DeskTicketPatch {
            subject: Some("Server room cooled".to_owned()),
            priority: Some("low".to_owned()),
            status: None,
        },
    )
    .await
    .unwrap();

    // Fields left out of the PUT keep their value, so each body names only
    // what the patch set.
    assert_eq!(
        put_bodies(&sandbox, id),
        vec![
            json!({"ticket": {"status": "pending"}}),
            json!({"ticket": {"subject": "Server room cooled", "priority": "low"}}),
        ]
    );
    let stored = sandbox.ticket(id).unwrap();
    assert_eq!(
        (
            stored.subject.as_str(),
            stored.priority.as_deref(),
            stored.status.as_str(),
            stored.cluster_id.as_deref()
        ),
        ("Server room cooled", Some("low"), "pending", Some("CL-1"))
    );
}

#[tokio::test]
async fn wrong_token_is_a_permanent_unauthorized() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);

    let err = client(&sandbox, "not-the-token")
        .get_ticket(id)
        .await
        .unwrap_err();

    assert!(
        matches!(err, ApiError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("not-the-token"));
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn unknown_ticket_is_not_found() {
    let sandbox = sandbox().await;
    let desk = client(&sandbox, TOKEN);

    let err = desk.get_ticket(987_654).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let err = desk
        .add_comment(987_654, "hello", Visibility::Public)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let sent = puts(&sandbox, 987_654);
    assert_eq!(sent.len(), 1, "sent once, not retried");
    assert_eq!(sent[0].status, Some(404));
}

#[tokio::test]
async fn rate_limit_burst_is_retryable_with_the_servers_delay() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);
    sandbox.faults().update(|f| {
        f.rate_limit_burst = 2;
        f.retry_after_secs = 17;
    });

    for _ in 0..2 {
        let err = desk.get_ticket(id).await.unwrap_err();
        assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
    }
    // The burst is over.
    assert_eq!(desk.get_ticket(id).await.unwrap().id, id);
    assert_eq!(sandbox.faults().stats().rate_limited, 2);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);
    sandbox.faults().update(|f| f.server_error_rate = 1.0);

    let err = desk.list_comments(id).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    sandbox.faults().clear();
    assert_eq!(desk.list_comments(id).await.unwrap().len(), 1);
}

fn ten_minutes_ago() -> DeskCursor {
    DeskCursor::StartTime(Utc::now() - TimeDelta::minutes(10))
}

#[tokio::test]
async fn the_change_feed_pages_to_the_end_and_resumes_from_its_cursor() {
    let sandbox = sandbox().await;
    sandbox.set_export_lag(Duration::ZERO);
    sandbox.set_export_page_cap(2);
    let ids: Vec<u64> = (0..5).map(|_| ticket(&sandbox, None)).collect();
    let desk = client(&sandbox, TOKEN);

    let calls = sandbox.api_calls();
    let changes = desk.changed_tickets(&ten_minutes_ago()).await.unwrap();
    assert_eq!(changes.ticket_ids, ids, "oldest change first, each once");
    assert!(changes.complete);
    assert_eq!(changes.pages, 3, "five tickets at two per page");
    assert_eq!(sandbox.api_calls() - calls, 3);
    // The first page starts at the time asked for, the others continue from
    // the cursor; deleted tickets are left out by the server.
    let exports = sandbox.requests_matching("GET", "/api/v2/incremental/tickets/cursor.json");
    assert_eq!(exports.len(), 3);
    assert!(exports[0].query_param("start_time").is_some());
    assert_eq!(exports[0].query_param("cursor"), None);
    for export in &exports {
        assert_eq!(
            export.query_param("exclude_deleted").as_deref(),
            Some("true")
        );
    }
    assert!(exports[1..]
        .iter()
        .all(|e| e.query_param("cursor").is_some() && e.query_param("start_time").is_none()));
    let cursor = changes.next.clone();
    assert!(matches!(cursor, DeskCursor::Cursor(_)), "{cursor:?}");

    // Nothing changed: one call, nothing returned, the same position.
    let idle = desk.changed_tickets(&cursor).await.unwrap();
    assert!(idle.ticket_ids.is_empty() && idle.complete);
    assert_eq!((idle.pages, &idle.next), (1, &cursor));

    // A comment and a new external id each move their ticket after the cursor.
    sandbox.add_comment(ids[3], "Agent Alex", "On it", false);
    desk.set_external_id(ids[1], "autotask:7001").await.unwrap();
    assert_eq!(
        put_bodies(&sandbox, ids[1]),
        vec![json!({"ticket": {"external_id": "autotask:7001"}})]
    );
    let later = desk.changed_tickets(&cursor).await.unwrap();
    assert_eq!(later.ticket_ids, vec![ids[3], ids[1]]);
    assert_ne!(later.next, cursor);
}

#[tokio::test]
async fn changes_inside_the_export_lag_wait_for_the_next_export() {
    let sandbox = sandbox().await;
    let lag = Duration::from_millis(1500);
    sandbox.set_export_lag(lag);
    let first = ticket(&sandbox, None);
    tokio::time::sleep(lag).await;
    let desk = client(&sandbox, TOKEN);
    let changes = desk.changed_tickets(&ten_minutes_ago()).await.unwrap();
    assert_eq!(changes.ticket_ids, vec![first]);

    // Too recent for this export: the cursor stays before it, so it is not lost.
    let second = ticket(&sandbox, None);
    let early = desk.changed_tickets(&changes.next).await.unwrap();
    assert!(early.ticket_ids.is_empty());
    assert_eq!(early.next, changes.next);
    tokio::time::sleep(lag).await;
    let late = desk.changed_tickets(&early.next).await.unwrap();
    assert_eq!(late.ticket_ids, vec![second]);

    // Zendesk refuses a start time inside the lag.
    let err = desk
        .changed_tickets(&DeskCursor::StartTime(Utc::now()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleted_tickets_are_left_out_of_the_change_feed() {
    let sandbox = sandbox().await;
    sandbox.set_export_lag(Duration::ZERO);
    let kept = ticket(&sandbox, None);
    let gone = ticket(&sandbox, None);
    sandbox.delete_ticket(gone);
    let changes = client(&sandbox, TOKEN)
        .changed_tickets(&ten_minutes_ago())
        .await
        .unwrap();
    assert_eq!(changes.ticket_ids, vec![kept]);
}

#[tokio::test]
async fn the_export_rate_limit_keeps_what_earlier_pages_returned() {
    let sandbox = sandbox().await;
    sandbox.set_export_lag(Duration::ZERO);
    sandbox.set_export_page_cap(1);
    sandbox.set_export_rate_limit(2);
    let ids: Vec<u64> = (0..4).map(|_| ticket(&sandbox, None)).collect();
    let desk = client(&sandbox, TOKEN);

    // Two pages fit in the minute; the third answers 429. What the first two
    // returned is kept and the cursor points just past it.
    let partial = desk.changed_tickets(&ten_minutes_ago()).await.unwrap();
    assert_eq!(partial.ticket_ids, ids[..2].to_vec());
    assert!(!partial.complete);
    assert_eq!(partial.pages, 2);

    // Throttled on the first page: nothing to keep, a retryable error.
    let err = desk.changed_tickets(&partial.next).await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );

    sandbox.set_export_rate_limit(10);
    let rest = desk.changed_tickets(&partial.next).await.unwrap();
    assert_eq!(rest.ticket_ids, ids[2..].to_vec());
    assert!(rest.complete);
}

/// What the test receiver saw.
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(tx): State<mpsc::UnboundedSender<Received>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let _ = tx.send(Received { headers, body });
                    StatusCode::OK
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), rx)
}

async fn next_hook(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a webhook arrives within 5 s")
        .expect("receiver open")
}

fn header<'a>(hook: &'a Received, name: &str) -> Option<&'a str> {
    hook.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn webhooks_are_signed_and_parse_to_the_ticket() {
    let sandbox = sandbox().await;
    let (url, mut rx) = receiver().await;
    sandbox.set_webhook_url(Some(url));
    let secret = Secret::new(WEBHOOK_SECRET);

    let id = ticket(&sandbox, Some("CL-7"));
    let created = next_hook(&mut rx).await;
    verify_signature(
        &secret,
        header(&created, TIMESTAMP_HEADER),
        header(&created, SIGNATURE_HEADER),
        &created.body,
        Utc::now(),
    )
    .expect("signature verifies");
    let event = parse_webhook(&created.body, header(&created, TIMESTAMP_HEADER)).unwrap();
    assert_eq!(event.ticket_id, id);
    let payload: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(payload["type"], "zen:event-type:ticket.created");

    // The wrong secret does not verify the same delivery.
    assert!(verify_signature(
        &Secret::new("some other secret"),
        header(&created, TIMESTAMP_HEADER),
        header(&created, SIGNATURE_HEADER),
        &created.body,
        Utc::now(),
    )
    .is_err());

    // A comment written by the bridge through the API fires a webhook too,
    // with its own event id.
    client(&sandbox, TOKEN)
        .add_comment(id, "Escalated", Visibility::Internal)
        .await
        .unwrap();
    assert_eq!(
        put_bodies(&sandbox, id),
        vec![json!({"ticket": {"comment": {"body": "Escalated", "public": false}}})]
    );
    let commented = next_hook(&mut rx).await;
    verify_signature(
        &secret,
        header(&commented, TIMESTAMP_HEADER),
        header(&commented, SIGNATURE_HEADER),
        &commented.body,
        Utc::now(),
    )
    .expect("signature verifies");
    let second = parse_webhook(&commented.body, header(&commented, TIMESTAMP_HEADER)).unwrap();
    assert_eq!(second.ticket_id, id);
    assert_ne!(second.event_id, event.event_id);
    let payload: serde_json::Value = serde_json::from_slice(&commented.body).unwrap();
    assert_eq!(payload["type"], "zen:event-type:ticket.comment_added");
    assert_eq!(payload["event"]["comment"]["is_public"], false);
}

/// What the export's 403 and the preflight say about a non-admin API user.
const NOT_ADMIN: &str =
    "the Zendesk user bridge@acme-msp.example is an agent; the incremental export used by the sweep needs an admin";

#[tokio::test]
async fn an_export_refused_to_a_non_admin_is_permanent_and_says_why() {
    let sandbox = sandbox().await;
    sandbox.set_export_lag(Duration::ZERO);
    sandbox.set_api_user_role(Role::Agent);
    ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);

    let err = desk.changed_tickets(&ten_minutes_ago()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(err.retry_after(), None);
    assert!(err.to_string().contains(NOT_ADMIN), "{err}");
    let exports = sandbox.requests_matching("GET", "/api/v2/incremental/tickets/cursor.json");
    assert_eq!(exports.len(), 1, "asked once, not retried");
    assert_eq!(exports[0].status, Some(403));
}

#[tokio::test]
async fn comments_over_the_per_ticket_update_limit_are_retryable_with_the_servers_delay() {
    let sandbox = sandbox().await;
    sandbox.set_update_limits(UpdateLimits {
        per_account: None,
        per_ticket_per_user: Some(RateWindow::new(30, Duration::from_secs(2))),
    });
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);

    for n in 0..30 {
        desk.add_comment(id, &format!("note {n}"), Visibility::Internal)
            .await
            .unwrap_or_else(|err| panic!("comment {n}: {err}"));
    }
    let err = desk
        .add_comment(id, "note 30", Visibility::Internal)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert!(err.is_retryable());
    let wait = err.retry_after().expect("the server's Retry-After");
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    // The refused comment was not written; after the delay it is.
    assert_eq!(sandbox.comments(id).len(), 31);
    tokio::time::sleep(wait).await;
    desk.add_comment(id, "note 30", Visibility::Internal)
        .await
        .unwrap();
    let bodies: Vec<String> = sandbox
        .comments(id)
        .into_iter()
        .skip(1)
        .map(|c| c.body)
        .collect();
    let expected: Vec<String> = (0..31).map(|n| format!("note {n}")).collect();
    assert_eq!(bodies, expected, "each once, in order");
}

#[tokio::test]
async fn a_conflicting_update_is_retryable() {
    let sandbox = sandbox().await;
    let id = ticket(&sandbox, None);
    let desk = client(&sandbox, TOKEN);
    sandbox.conflict_next_updates(2);

    let err = desk
        .add_comment(id, "On site at 3", Visibility::Public)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "409 must be retried: {err:?}");
    let err = desk.set_external_id(id, "autotask:42").await.unwrap_err();
    assert!(err.is_retryable(), "409 must be retried: {err:?}");
    assert!(err.to_string().contains("409"), "{err}");

    desk.add_comment(id, "On site at 3", Visibility::Public)
        .await
        .unwrap();
    desk.set_external_id(id, "autotask:42").await.unwrap();
    assert_eq!(sandbox.comments(id).len(), 2);
    assert_eq!(
        sandbox.ticket(id).unwrap().external_id.as_deref(),
        Some("autotask:42")
    );
}

#[tokio::test]
async fn the_preflight_names_a_user_who_is_not_an_admin() {
    let sandbox = sandbox().await;
    let desk = client(&sandbox, TOKEN);

    let user = desk.preflight().await.expect("an admin passes");
    assert_eq!((user.email.as_str(), user.role.as_str()), (EMAIL, "admin"));

    sandbox.set_api_user_role(Role::Agent);
    let err = desk.preflight().await.unwrap_err();
    assert!(
        matches!(&err, PreflightError::NotAdmin { email, role } if email == EMAIL && role == "agent"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().starts_with(NOT_ADMIN), "{err}");
    let asked = sandbox.requests_matching("GET", "/api/v2/users/me.json");
    assert_eq!(asked.len(), 2);

    // Wrong credentials are a credentials problem, not a role problem.
    let err = client(&sandbox, "not-the-token")
        .preflight()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PreflightError::Api(ApiError::Unauthorized { status: 401, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn ensure_webhook_registers_one_event_webhook_and_its_secret_signs_the_events() {
    let sandbox = sandbox().await;
    let (url, mut rx) = receiver().await;
    let desk = client(&sandbox, TOKEN);

    let first = desk.ensure_webhook(&url, "psa-bridge acme").await.unwrap();
    assert!(first.changes.created);
    let hooks = sandbox.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].endpoint, url);
    assert_eq!(hooks[0].id, first.hook.id);
    assert_eq!(
        hooks[0].subscriptions,
        bridge::connectors::zendesk::WEBHOOK_SUBSCRIPTIONS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(first.hook.signing_secret.expose(), hooks[0].signing_secret);
    let created = sandbox.requests_matching("POST", "/api/v2/webhooks");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].json()["webhook"]["http_method"], "POST");
    assert_eq!(created[0].json()["webhook"]["request_format"], "json");

    // Again: nothing created, the same webhook and secret.
    let again = desk.ensure_webhook(&url, "psa-bridge acme").await.unwrap();
    assert!(!again.changes.created);
    assert_eq!(again.changes.removed, 0);
    assert_eq!(again.hook.id, first.hook.id);
    assert_eq!(again.hook.signing_secret, first.hook.signing_secret);
    assert_eq!(sandbox.webhooks().len(), 1);

    // A comment reaches the endpoint signed with that secret and parses.
    let id = ticket(&sandbox, None);
    let created = next_hook(&mut rx).await;
    verify_signature(
        &first.hook.signing_secret,
        header(&created, TIMESTAMP_HEADER),
        header(&created, SIGNATURE_HEADER),
        &created.body,
        Utc::now(),
    )
    .expect("signed with the registered webhook's secret");
    sandbox.add_comment(id, "Agent Smith", "On it", true);
    let commented = next_hook(&mut rx).await;
    verify_signature(
        &first.hook.signing_secret,
        header(&commented, TIMESTAMP_HEADER),
        header(&commented, SIGNATURE_HEADER),
        &commented.body,
        Utc::now(),
    )
    .expect("signed with the registered webhook's secret");
    assert_eq!(
        parse_webhook(&commented.body, header(&commented, TIMESTAMP_HEADER))
            .unwrap()
            .ticket_id,
        id
    );
}

#[tokio::test]
async fn ensure_webhook_replaces_duplicates_and_trigger_webhooks_to_the_same_endpoint() {
    let sandbox = sandbox().await;
    let endpoint = "https://bridge.example/t/acme/zendesk";
    let http = reqwest::Client::new();
    // Made by hand earlier: a trigger webhook and an inactive event webhook
    // to the bridge, and an unrelated one.
    for (target, subscriptions, status) in [
        (endpoint, json!(["conditional_ticket_events"]), "active"),
        (
            endpoint,
            json!(["zen:event-type:ticket.created"]),
            "inactive",
        ),
        (
            "https://other.example/hook",
            json!(["zen:event-type:ticket.created"]),
            "active",
        ),
    ] {
        let response = http
            .post(format!("{}/api/v2/webhooks", sandbox.base_url()))
            .basic_auth(format!("{EMAIL}/token"), Some(TOKEN))
            .json(&json!({"webhook": {"name": "by hand", "endpoint": target,
                "http_method": "POST", "request_format": "json", "status": status,
                "subscriptions": subscriptions}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let desk = client(&sandbox, TOKEN);
    let ensured = desk
        .ensure_webhook(endpoint, "psa-bridge acme")
        .await
        .unwrap();
    assert!(ensured.changes.created);
    assert_eq!(ensured.changes.removed, 2);
    let left: Vec<(String, String)> = sandbox
        .webhooks()
        .into_iter()
        .map(|h| (h.endpoint, h.name))
        .collect();
    assert_eq!(
        left,
        vec![
            (
                "https://other.example/hook".to_owned(),
                "by hand".to_owned()
            ),
            (endpoint.to_owned(), "psa-bridge acme".to_owned()),
        ]
    );
}

#[tokio::test]
async fn ensure_webhook_refused_to_a_non_admin_is_permanent_and_says_why() {
    let sandbox = sandbox().await;
    sandbox.set_api_user_role(Role::Agent);
    let err = client(&sandbox, TOKEN)
        .ensure_webhook("https://bridge.example/t/acme/zendesk", "psa-bridge")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Forbidden { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("only a Zendesk admin"), "{err}");
    assert!(sandbox.webhooks().is_empty());
}
