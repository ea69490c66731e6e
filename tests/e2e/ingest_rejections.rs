//! Every bad input the ingest functions can get is answered with the right
//! status and a plain reason, and nothing is enqueued. Only failed
//! authentication (401), unknown tenants (404) and unreadable or oversize
//! bodies (400/413) are refused: an authentic event the bridge cannot use is
//! answered 200 and written to the tenant's sync log (Autotask deactivates a
//! webhook after 25 failed events in a row). The worker is off, so the queue
//! depth counts exactly what ingest accepted.

use crate::support::{autotask_signature, post, webhook_and_callout_tenants, zendesk_event};
use bridge::repo::Repo;
use testkit::world::{TenantWorld, World, WorldOptions};

async fn world() -> World {
    World::start(
        webhook_and_callout_tenants(),
        WorldOptions {
            worker_concurrency: 0,
            ..WorldOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn enqueued(world: &World) -> u64 {
    let depth = world.queue_depth().await.unwrap();
    depth.visible + depth.in_flight + depth.dead
}

/// Sync-log entries of the tenant written by ingest step `step`.
async fn logged(world: &World, t: &TenantWorld, step: &str) -> usize {
    Repo::new(world.store())
        .log_entries(&t.id, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.step == step)
        .count()
}

/// An authentic event the bridge cannot use: 200, "ignored" with a reason.
fn assert_ignored(status: u16, text: &str) {
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["queued"], false, "{text}");
    assert!(
        answer["ignored"].as_str().is_some_and(|r| !r.is_empty()),
        "{text}"
    );
}

async fn get(url: &str, authorization: Option<String>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("bridge reachable");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn zendesk_webhook_rejections() {
    let world = world().await;
    let base = &world.bridge.base_url;
    let acme = world.tenant("acme");
    let globex = world.tenant("globex");
    let acme_secret = acme.secrets.zendesk_webhook_secret.expose();
    let url = format!("{base}/t/acme/zendesk");

    // Unknown, malformed and paused tenants are all 404.
    let (body, headers) = zendesk_event(acme_secret, "e1", 1, "created");
    for tenant in ["nobody", "ACME", "a%2Fb", "acme..x"] {
        let (status, text) = post(
            &format!("{base}/t/{tenant}/zendesk"),
            &headers,
            body.clone(),
        )
        .await;
        assert_eq!(status, 404, "{tenant}: {text}");
    }

    // Another tenant's signing secret never authorizes acme's URL.
    let (body, headers) = zendesk_event(
        globex.secrets.zendesk_webhook_secret.expose(),
        "e2",
        1,
        "created",
    );
    let (status, text) = post(&url, &headers, body).await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"signature does not match"}"#)
    );

    // A tampered body.
    let (mut body, headers) = zendesk_event(acme_secret, "e3", 1, "created");
    let at = body.len() - 3;
    body[at] = b'x';
    assert_eq!(post(&url, &headers, body).await.0, 401);

    // Missing headers.
    let (body, headers) = zendesk_event(acme_secret, "e4", 1, "created");
    for dropped in [
        "x-zendesk-webhook-signature",
        "x-zendesk-webhook-signature-timestamp",
    ] {
        let kept: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k != dropped)
            .cloned()
            .collect();
        let (status, text) = post(&url, &kept, body.clone()).await;
        assert_eq!(status, 401, "{dropped}: {text}");
    }

    // A correctly signed request from 10 minutes ago (replay) is stale.
    let old = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let signature = sandbox::zendesk::sign(acme_secret, &old, &body);
    let stale = vec![
        ("x-zendesk-webhook-signature".to_owned(), signature),
        ("x-zendesk-webhook-signature-timestamp".to_owned(), old),
    ];
    let (status, text) = post(&url, &stale, body).await;
    assert_eq!(status, 401);
    assert!(text.contains("5-minute window"), "{text}");

    let signed = |body: &[u8]| {
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        vec![
            (
                "x-zendesk-webhook-signature".to_owned(),
                sandbox::zendesk::sign(acme_secret, &timestamp, body),
            ),
            (
                "x-zendesk-webhook-signature-timestamp".to_owned(),
                timestamp,
            ),
        ]
    };
    // Correctly signed but unreadable bodies are 400 with a reason.
    for bad in [&b"{not json"[..], b"[1,2]"] {
        let (status, text) = post(&url, &signed(bad), bad.to_vec()).await;
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(bad));
        assert!(text.contains("malformed body"), "{text}");
    }
    // Correctly signed, readable, but unusable: 200, ignored, logged.
    for odd in [
        &br#"{"type":"zen:event-type:ticket.created","detail":{}}"#[..],
        br#"{"ticket_id":"abc"}"#,
    ] {
        let (status, text) = post(&url, &signed(odd), odd.to_vec()).await;
        assert_ignored(status, &text);
    }
    assert_eq!(logged(&world, acme, "zendesk_webhook").await, 2);

    // Oversize bodies are refused before anything else is read.
    let huge = vec![b' '; 300 * 1024];
    let (body, headers) = zendesk_event(acme_secret, "e5", 1, "created");
    let _ = body;
    assert_eq!(post(&url, &headers, huge).await.0, 413);

    assert_eq!(
        enqueued(&world).await,
        0,
        "no rejected request may enqueue anything"
    );

    // Control: the same machinery accepts a good request, exactly once.
    let (body, headers) = zendesk_event(acme_secret, "good", 1, "created");
    let (status, text) = post(&url, &headers, body).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(enqueued(&world).await, 1);
}

#[tokio::test]
async fn autotask_callout_and_webhook_rejections() {
    let world = world().await;
    let base = &world.bridge.base_url;
    let acme = world.tenant("acme");
    let globex = world.tenant("globex");
    let form = b"id=7001&ticket_number=T20261123.0001".to_vec();
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let form_headers = |auth: String| {
        vec![
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("authorization".to_owned(), auth),
        ]
    };
    let globex_url = format!("{base}/t/globex/autotask");
    let user = &globex.secrets.autotask_callout_username;
    let password = globex.secrets.autotask_callout_password.expose();

    // Callouts: wrong password, wrong user, no credentials, another tenant's.
    for auth in [
        basic(user, "wrong"),
        basic("someone", password),
        "Bearer x".to_owned(),
    ] {
        let (status, text) = post(&globex_url, &form_headers(auth), form.clone()).await;
        assert_eq!(status, 401, "{text}");
    }
    let (status, _) = post(
        &globex_url,
        &[(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )],
        form.clone(),
    )
    .await;
    assert_eq!(status, 401);
    // acme has no callout credentials configured for globex's; globex's
    // credentials do not open acme's URL.
    let (status, _) = post(
        &format!("{base}/t/acme/autotask"),
        &form_headers(basic(user, password)),
        form.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &format!("{base}/t/initech/autotask"),
        &form_headers(basic(user, password)),
        form.clone(),
    )
    .await;
    assert_eq!(status, 404);
    // Authenticated but unreadable: 400.
    let (status, text) = post(
        &globex_url,
        &[
            ("content-type".to_owned(), "application/json".to_owned()),
            ("authorization".to_owned(), basic(user, password)),
        ],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    // Authenticated, readable, but without a ticket id: 200, ignored, logged.
    let (status, text) = post(
        &globex_url,
        &form_headers(basic(user, password)),
        b"foo=bar".to_vec(),
    )
    .await;
    assert_ignored(status, &text);
    assert_eq!(logged(&world, globex, "autotask_callout").await, 1);

    // Callouts by GET (fields in the query string) pass the same check.
    let get_url = format!("{globex_url}?id=7001&TicketNumber=T20261123.0001");
    for auth in [
        Some(basic(user, "wrong")),
        Some(basic("someone", password)),
        Some("Bearer x".to_owned()),
        None,
    ] {
        let (status, text) = get(&get_url, auth.clone()).await;
        assert_eq!(status, 401, "{auth:?}: {text}");
    }
    let (status, _) = get(
        &format!("{base}/t/acme/autotask?id=7001"),
        Some(basic(user, password)),
    )
    .await;
    assert_eq!(status, 401, "globex's credentials do not open acme's URL");
    let (status, _) = get(
        &format!("{base}/t/initech/autotask?id=7001"),
        Some(basic(user, password)),
    )
    .await;
    assert_eq!(status, 404);
    let (status, text) = get(
        &format!("{globex_url}?foo=bar"),
        Some(basic(user, password)),
    )
    .await;
    assert_ignored(status, &text);
    assert_eq!(logged(&world, globex, "autotask_callout").await, 2);

    // Webhooks: signature with the wrong key, another tenant's key, tampered body.
    let acme_url = format!("{base}/t/acme/autotask");
    let payload = serde_json::json!({
        "Action": "Create", "Guid": "6f1c", "EntityType": "TicketNote", "Id": 30001,
        "Fields": {"TicketID": 7001}, "EventTime": "2026-11-23T12:00:00Z", "SequenceNumber": 1, "PersonID": 5
    })
    .to_string()
    .into_bytes();
    let hook = |signature: String| {
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-hook-signature".to_owned(), signature),
        ]
    };
    let acme_key = acme.secrets.autotask_webhook_secret.expose();
    for signature in [
        autotask_signature("not-the-key", &payload),
        autotask_signature(globex.secrets.autotask_webhook_secret.expose(), &payload),
        "garbage".to_owned(),
    ] {
        let (status, text) = post(&acme_url, &hook(signature), payload.clone()).await;
        assert_eq!(status, 401, "{text}");
    }
    let mut tampered = payload.clone();
    tampered[20] ^= 1;
    assert_eq!(
        post(
            &acme_url,
            &hook(autotask_signature(acme_key, &payload)),
            tampered
        )
        .await
        .0,
        401
    );
    // Signed but unreadable: 400.
    let bad = b"{\"EntityType\":".to_vec();
    let (status, text) = post(&acme_url, &hook(autotask_signature(acme_key, &bad)), bad).await;
    assert_eq!(status, 400, "{text}");
    // Signed, readable, but unusable (a note without its ticket): 200, logged.
    let odd = br#"{"EntityType":"TicketNote","Fields":{}}"#.to_vec();
    let (status, text) = post(&acme_url, &hook(autotask_signature(acme_key, &odd)), odd).await;
    assert_ignored(status, &text);
    assert_eq!(logged(&world, acme, "autotask_webhook").await, 1);
    // Oversize.
    let huge = vec![b'{'; 300 * 1024];
    assert_eq!(
        post(&acme_url, &hook(autotask_signature(acme_key, &huge)), huge)
            .await
            .0,
        413
    );

    assert_eq!(
        enqueued(&world).await,
        0,
        "no rejected request may enqueue anything"
    );

    // Controls: a good callout (POST and GET) and a good webhook are each enqueued.
    let (status, text) = post(&globex_url, &form_headers(basic(user, password)), form).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = get(
        &format!("{globex_url}?id=7002&LastActivityDate=2026-11-23T10%3A00%3A00Z"),
        Some(basic(user, password)),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = post(
        &acme_url,
        &hook(autotask_signature(acme_key, &payload)),
        payload,
    )
    .await;
    assert_eq!(status, 202, "{text}");
    // Ingest answers 202 only once the job is queued: no wait needed.
    assert_eq!(enqueued(&world).await, 3);
}
