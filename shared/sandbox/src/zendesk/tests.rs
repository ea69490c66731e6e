use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::*;

fn config() -> ZendeskSandboxConfig {
    ZendeskSandboxConfig {
        agent_email: "bridge@msp.example".to_owned(),
        api_token: "tok".to_owned(),
        webhook_secret: "whsec".to_owned(),
        webhook_url: None,
        cluster_id_field: 360_001,
    }
}

fn api(sandbox: &ZendeskSandbox, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.base_url()))
        .basic_auth("bridge@msp.example/token", Some("tok"))
}

#[tokio::test]
async fn rejects_bad_credentials_in_zendesk_shape() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/tickets/{id}.json", sandbox.base_url()))
        .basic_auth("bridge@msp.example/token", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "Couldn't authenticate you"}));
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn validates_updates_and_creates_in_zendesk_shape() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    let response = api(
        &sandbox,
        reqwest::Method::PUT,
        &format!("/api/v2/tickets/{id}.json"),
    )
    .json(&json!({"ticket": {"priority": "whenever", "subject": "changed"}}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "RecordInvalid");
    assert_eq!(body["details"]["priority"][0]["error"], "InvalidValue");
    // Rejected updates change nothing.
    assert_eq!(sandbox.ticket(id).unwrap().subject, "s");

    let response = api(&sandbox, reqwest::Method::POST, "/api/v2/tickets.json")
        .json(&json!({"ticket": {"subject": "no body"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);

    let response = api(&sandbox, reqwest::Method::POST, "/api/v2/tickets.json")
        .json(
            &json!({"ticket": {"subject": "Hi", "comment": {"body": "First"},
            "priority": "high", "custom_fields": [{"id": 360_001, "value": "CL-1"}]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let new_id = body["ticket"]["id"].as_u64().unwrap();
    let ticket = sandbox.ticket(new_id).unwrap();
    assert_eq!(ticket.description, "First");
    assert_eq!(ticket.cluster_id.as_deref(), Some("CL-1"));
    assert_eq!(ticket.priority.as_deref(), Some("high"));
    assert_eq!(body["audit"]["events"][0]["type"], "Comment");

    let response = api(&sandbox, reqwest::Method::GET, "/api/v2/tickets/999.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "RecordNotFound", "description": "Not found"})
    );
    assert_eq!(sandbox.api_calls(), 4);
}

#[tokio::test]
async fn export_reports_deleted_tickets_unless_excluded() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    sandbox.set_export_lag(Duration::ZERO);
    let new = |s: &str| NewTicket {
        subject: s.into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    };
    let kept = sandbox.create_ticket(new("kept"));
    let gone = sandbox.create_ticket(new("gone"));
    sandbox.delete_ticket(gone);
    let export = |extra: &'static str| {
        let start = (Utc::now() - chrono::TimeDelta::minutes(5)).timestamp();
        api(
            &sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/incremental/tickets/cursor.json?start_time={start}{extra}"),
        )
        .send()
    };
    let all: Value = export("").await.unwrap().json().await.unwrap();
    let statuses: Vec<(u64, &str)> = all["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_u64().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, vec![(kept, "new"), (gone, "deleted")]);
    assert_eq!(all["end_of_stream"], true);
    assert!(all["after_url"].as_str().unwrap().contains("cursor="));
    let live: Value = export("&exclude_deleted=true")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["tickets"].as_array().unwrap().len(), 1);
    // The deleted ticket is gone from the rest of the API.
    let response = api(
        &sandbox,
        reqwest::Method::GET,
        &format!("/api/v2/tickets/{gone}.json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let response = api(
        &sandbox,
        reqwest::Method::GET,
        "/api/v2/incremental/tickets/cursor.json",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400, "start_time or cursor is required");
}

#[tokio::test]
async fn caps_page_size_and_pages_by_cursor() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    for n in 0..150 {
        sandbox.add_comment(id, "Bob", &format!("c{n}"), n % 2 == 0);
    }
    let path = format!("/api/v2/tickets/{id}/comments.json");
    let first: Value = api(&sandbox, reqwest::Method::GET, &path)
        .query(&[("page[size]", "500")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["comments"].as_array().unwrap().len(), 100);
    assert_eq!(first["meta"]["has_more"], true);
    let next = first["links"]["next"].as_str().unwrap();
    let second: Value = reqwest::Client::new()
        .get(next)
        .basic_auth("bridge@msp.example/token", Some("tok"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let comments = second["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 51);
    assert_eq!(comments.last().unwrap()["body"], "c149");
    assert_eq!(second["meta"]["has_more"], false);
    assert!(second["links"]["next"].is_null());
}

#[tokio::test]
async fn requests_are_recorded_with_credentials_redacted() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    // UI actions are not requests.
    sandbox.add_comment(id, "Bob", "From the UI", true);
    assert!(sandbox.requests().is_empty());

    let path = format!("/api/v2/tickets/{id}.json");
    let response = api(&sandbox, reqwest::Method::PUT, &path)
        .json(&json!({"ticket": {"comment": {"body": "Internal", "public": false}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = api(
        &sandbox,
        reqwest::Method::GET,
        &format!("/api/v2/tickets/{id}/comments.json?page[size]=2&include=users"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sandbox.base_url()))
        .basic_auth("bridge@msp.example/token", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let all = sandbox.requests();
    let lines: Vec<(&str, &str, Option<u16>)> = all
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    let comments = format!("/api/v2/tickets/{id}/comments.json");
    assert_eq!(
        lines,
        vec![
            ("PUT", path.as_str(), Some(200)),
            ("GET", comments.as_str(), Some(200)),
            ("GET", path.as_str(), Some(401)),
        ]
    );
    let put = &sandbox.requests_matching("put", "/api/v2/tickets/")[0];
    assert_eq!(
        put.json(),
        &json!({"ticket": {"comment": {"body": "Internal", "public": false}}})
    );
    assert_eq!(put.header("Authorization"), Some("Basic [redacted]"));
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(all[1].query_param("page[size]").as_deref(), Some("2"));
    assert_eq!(all[1].query_param("include").as_deref(), Some("users"));
    assert!(all[1].body.is_none());
    let dump = format!("{all:?}");
    assert!(!dump.contains("tok") && !dump.contains("wrong"), "{dump}");
    // Only authenticated calls count as API calls; every request is recorded.
    assert_eq!(sandbox.api_calls(), 2);

    sandbox.clear_requests();
    sandbox.faults().update(|f| {
        f.rate_limit_burst = 1;
        f.retry_after_secs = 3;
    });
    let limited = api(&sandbox, reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let after = sandbox.requests();
    assert_eq!((after.len(), after[0].status), (1, Some(429)));
}

fn comment_body(n: usize) -> Value {
    json!({"ticket": {"comment": {"body": format!("note {n}"), "public": false}}})
}

#[tokio::test]
async fn the_export_is_for_admins_and_users_me_tells_the_role() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    sandbox.set_export_lag(Duration::ZERO);
    let export = "/api/v2/incremental/tickets/cursor.json?start_time=0";

    let me: Value = api(&sandbox, reqwest::Method::GET, "/api/v2/users/me.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "bridge@msp.example");
    assert_eq!(
        me["user"]["role"], "admin",
        "the API user is an admin by default"
    );
    let response = api(&sandbox, reqwest::Method::GET, export)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    sandbox.set_api_user_role(Role::Agent);
    let me: Value = api(&sandbox, reqwest::Method::GET, "/api/v2/users/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "agent");
    let response = api(&sandbox, reqwest::Method::GET, export)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Forbidden");
    assert!(body["description"].as_str().unwrap().contains("access"));
    // Agents still read and update tickets.
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    let response = api(
        &sandbox,
        reqwest::Method::GET,
        &format!("/api/v2/tickets/{id}.json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn ticket_updates_over_the_per_ticket_limit_get_429_with_retry_after() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let window = Duration::from_millis(1500);
    sandbox.set_update_limits(UpdateLimits {
        per_account: None,
        per_ticket_per_user: Some(RateWindow::new(3, window)),
    });
    let open = |subject: &str| {
        sandbox.create_ticket(NewTicket {
            subject: subject.into(),
            description: "d".into(),
            requester_name: "Ann".into(),
            ..NewTicket::default()
        })
    };
    let (busy, other) = (open("busy"), open("other"));
    let put = |id: u64, n: usize| {
        api(
            &sandbox,
            reqwest::Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
        )
        .json(&comment_body(n))
        .send()
    };
    for n in 0..3 {
        assert_eq!(put(busy, n).await.unwrap().status(), 200);
    }
    // People in the UI are never refused, and the API user's window is its own.
    sandbox.add_comment(busy, "Alice Agent", "from the UI", true);
    let refused = put(busy, 3).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "APIRateLimitExceeded");
    // A refused update changes nothing and does not count.
    assert_eq!(sandbox.comments(busy).len(), 5);
    // Another ticket has its own window.
    assert_eq!(put(other, 0).await.unwrap().status(), 200);

    tokio::time::sleep(window).await;
    assert_eq!(put(busy, 4).await.unwrap().status(), 200);
    assert_eq!(sandbox.comments(busy).len(), 6);
}

#[tokio::test]
async fn ticket_updates_over_the_account_limit_get_429_and_ui_updates_count() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    sandbox.set_update_limits(UpdateLimits {
        per_account: Some(RateWindow::new(4, Duration::from_secs(60))),
        per_ticket_per_user: None,
    });
    let ids: Vec<u64> = (0..3)
        .map(|n| {
            sandbox.create_ticket(NewTicket {
                subject: format!("t{n}"),
                description: "d".into(),
                requester_name: "Ann".into(),
                ..NewTicket::default()
            })
        })
        .collect();
    sandbox.add_comment(ids[0], "Alice Agent", "from the UI", true);
    let put = |id: u64| {
        api(
            &sandbox,
            reqwest::Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
        )
        .json(&comment_body(0))
        .send()
    };
    for id in &ids {
        assert_eq!(put(*id).await.unwrap().status(), 200);
    }
    let refused = put(ids[2]).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55..=60).contains(&retry_after), "{retry_after}");

    sandbox.set_update_limits(UpdateLimits::OFF);
    assert_eq!(put(ids[2]).await.unwrap().status(), 200);
    assert_eq!(UpdateLimits::default(), UpdateLimits::SANDBOX_DEFAULT);
    assert_eq!(
        UpdateLimits::ZENDESK.per_ticket_per_user,
        Some(RateWindow::new(30, Duration::from_secs(600)))
    );
}

#[tokio::test]
async fn a_conflicting_update_answers_409_and_changes_nothing() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    sandbox.conflict_next_updates(1);
    let path = format!("/api/v2/tickets/{id}.json");
    let response = api(&sandbox, reqwest::Method::PUT, &path)
        .json(&comment_body(0))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "UpdateConflict");
    assert_eq!(sandbox.comments(id).len(), 1);
    let response = api(&sandbox, reqwest::Method::PUT, &path)
        .json(&comment_body(0))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sandbox.comments(id).len(), 2);
}

fn event_webhook(endpoint: &str) -> Value {
    json!({"webhook": {
        "name": "psa-bridge",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["zen:event-type:ticket.comment_added"],
    }})
}

#[tokio::test]
async fn webhooks_api_is_for_admins_and_validates_like_zendesk() {
    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    let post = |body: Value| {
        api(&sandbox, reqwest::Method::POST, "/api/v2/webhooks")
            .json(&body)
            .send()
    };

    // Each missing required field is named, in the Webhooks API's shape.
    let response = post(json!({"webhook": {"name": "x"}})).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let details: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    for field in ["endpoint", "http_method", "request_format", "status"] {
        assert!(
            details.contains(&format!("{field} is required").as_str()),
            "{details:?}"
        );
    }
    // Event subscriptions need POST and JSON; unknown events and a trigger
    // webhook mixed with events are refused.
    for (change, expected) in [
        (json!({"http_method": "PUT"}), "http_method must be POST"),
        (
            json!({"request_format": "xml"}),
            "request_format must be json",
        ),
        (
            json!({"subscriptions": ["zen:event-type:ticket.exploded"]}),
            "is not a valid event type",
        ),
        (
            json!({"subscriptions": ["conditional_ticket_events", "zen:event-type:ticket.created"]}),
            "cannot be combined",
        ),
        (
            json!({"endpoint": "not a url"}),
            "endpoint must be a valid URL",
        ),
    ] {
        let mut body = event_webhook("https://bridge.example/t/a/zendesk");
        for (k, v) in change.as_object().unwrap() {
            body["webhook"][k] = v.clone();
        }
        let response = post(body).await.unwrap();
        assert_eq!(response.status(), 400, "{change}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{change}: {text}");
    }
    assert!(sandbox.webhooks().is_empty());
    // The Webhooks API takes no `.json` suffix.
    let response = api(&sandbox, reqwest::Method::GET, "/api/v2/webhooks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // A valid one: 201, a ULID, a secret read separately.
    let response = post(event_webhook("https://bridge.example/t/a/zendesk"))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    assert!(created["webhook"].get("signing_secret").is_none());
    let secret: Value = api(
        &sandbox,
        reqwest::Method::GET,
        &format!("/api/v2/webhooks/{id}/signing_secret"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(secret["signing_secret"]["algorithm"], "SHA256");
    assert_eq!(
        secret["signing_secret"]["secret"],
        sandbox.webhooks()[0].signing_secret.as_str()
    );

    // An agent may not list, read secrets, create or delete.
    sandbox.set_api_user_role(Role::Agent);
    for (method, path) in [
        (reqwest::Method::GET, "/api/v2/webhooks".to_owned()),
        (reqwest::Method::POST, "/api/v2/webhooks".to_owned()),
        (
            reqwest::Method::GET,
            format!("/api/v2/webhooks/{id}/signing_secret"),
        ),
        (reqwest::Method::DELETE, format!("/api/v2/webhooks/{id}")),
    ] {
        let response = api(&sandbox, method.clone(), &path)
            .json(&event_webhook("https://bridge.example/t/a/zendesk"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    sandbox.set_api_user_role(Role::Admin);
    let response = api(
        &sandbox,
        reqwest::Method::DELETE,
        &format!("/api/v2/webhooks/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    assert!(sandbox.webhooks().is_empty());
}

#[tokio::test]
async fn events_go_to_the_webhooks_subscribed_to_them_signed_with_their_secret() {
    use axum::routing::post;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook/{name}",
        post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((name, headers, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sandbox = ZendeskSandbox::start(config()).await.unwrap();
    // Comments only; and a trigger webhook, which no event reaches.
    let mut trigger = event_webhook(&format!("{base}/hook/trigger"));
    trigger["webhook"]["subscriptions"] = json!(["conditional_ticket_events"]);
    for body in [event_webhook(&format!("{base}/hook/comments")), trigger] {
        let response = api(&sandbox, reqwest::Method::POST, "/api/v2/webhooks")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let hook = sandbox.webhooks()[0].clone();

    let id = sandbox.create_ticket(NewTicket {
        subject: "s".into(),
        description: "d".into(),
        requester_name: "Ann".into(),
        ..NewTicket::default()
    });
    sandbox.add_comment(id, "Agent Smith", "hello", true);
    let (name, headers, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery")
        .unwrap();
    assert_eq!(name, "comments");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["type"], "zen:event-type:ticket.comment_added");
    let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("x-zendesk-webhook-id"), hook.id);
    assert_eq!(
        header("x-zendesk-webhook-signature"),
        sign(
            &hook.signing_secret,
            &header("x-zendesk-webhook-signature-timestamp"),
            &body
        )
    );
    // Nothing else: not the creation (not subscribed), not the trigger hook.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err());
}
