//! Every bad input the ingest functions can get is answered with the right
//! status and a plain reason, and nothing is enqueued. The worker is off, so
//! the queue depth counts exactly what ingest accepted.

use crate::support::{autotask_signature, post, webhook_and_callout_tenants, zendesk_event};
use testkit::world::{World, WorldOptions};

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

    // Correctly signed but malformed bodies are 400 with a reason.
    for bad in [
        &b"{not json"[..],
        br#"{"type":"zen:event-type:ticket.created","detail":{}}"#,
        br#"{"ticket_id":"abc"}"#,
    ] {
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let signed = vec![
            (
                "x-zendesk-webhook-signature".to_owned(),
                sandbox::zendesk::sign(acme_secret, &timestamp, bad),
            ),
            (
                "x-zendesk-webhook-signature-timestamp".to_owned(),
                timestamp,
            ),
        ];
        let (status, text) = post(&url, &signed, bad.to_vec()).await;
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(bad));
        assert!(text.contains("malformed body"), "{text}");
    }

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
    // Authenticated but malformed.
    let (status, text) = post(
        &globex_url,
        &form_headers(basic(user, password)),
        b"foo=bar".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{text}");

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
    // Signed but malformed.
    let bad = br#"{"EntityType":"TicketNote","Fields":{}}"#.to_vec();
    let (status, text) = post(&acme_url, &hook(autotask_signature(acme_key, &bad)), bad).await;
    assert_eq!(status, 400, "{text}");
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

    // Controls: a good callout and a good webhook are each enqueued.
    let (status, text) = post(&globex_url, &form_headers(basic(user, password)), form).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = post(
        &acme_url,
        &hook(autotask_signature(acme_key, &payload)),
        payload,
    )
    .await;
    assert_eq!(status, 202, "{text}");
    // Ingest answers 202 only once the job is queued: no wait needed.
    assert_eq!(enqueued(&world).await, 2);
}
