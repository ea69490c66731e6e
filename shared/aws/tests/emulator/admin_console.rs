//! The admin Lambda's console against the emulator: the router
//! `bridge_aws::console::admin_app` builds (the one `functions/admin` serves)
//! on a DynamoDB table, with mail through SES.

use admin::{Mail, Mailer, CSRF_HEADER, SESSION_COOKIE};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use bridge::ports::Store;
use bridge_aws::console::{admin_accounts, admin_app, AdminSettings};
use bridge_aws::SesMailer;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{new_store, sdk, unique};

const HOST: &str = "console.example.test";
const OPERATOR_PASSWORD: &str = "operator's long first password";

/// A sender address SES (the emulator) accepts: a verified identity.
async fn verified_sender() -> String {
    let from = format!("{}@example.test", unique("console"));
    aws_sdk_sesv2::Client::new(&sdk().await)
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("create the SES identity");
    from
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    json: Option<serde_json::Value>,
) -> (StatusCode, Response<()>, serde_json::Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
    }
    if let Some(csrf) = csrf {
        request = request.header(CSRF_HEADER, csrf);
    }
    let body = match json {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, Response::from_parts(parts, ()), json)
}

fn session_cookie(response: &Response<()>) -> String {
    let set_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

#[tokio::test]
async fn ses_mailer_sends_from_a_verified_identity_and_refuses_others_without_the_body() {
    let sdk = sdk().await;
    let client = aws_sdk_sesv2::Client::new(&sdk);
    let mail = || Mail {
        to: "admin@acme.example".into(),
        subject: "Your psa-bridge admin account".into(),
        body: "temporary password: s3cret-TEMP-pw".into(),
    };

    let verified = SesMailer::new(client.clone(), verified_sender().await);
    verified
        .send(mail())
        .await
        .expect("sent from a verified identity");

    let unverified = SesMailer::new(client, format!("{}@example.test", unique("nobody")));
    let err = unverified.send(mail()).await.unwrap_err();
    assert!(
        !err.retryable,
        "an unverified sender is no passing failure: {err}"
    );
    assert!(err.message.contains("MessageRejected"), "{err}");
    assert!(!err.message.contains("s3cret"), "the body leaked: {err}");
}

#[tokio::test]
async fn the_admin_lambda_router_works_on_dynamodb_and_ses() {
    let sdk = sdk().await;
    let store = new_store().await;
    let settings = AdminSettings {
        table_name: store.table().to_owned(),
        mail_from: Some(verified_sender().await),
        // As the template deploys by default: the URL comes from the Host.
        console_url: None,
        secrets_prefix: Some(unique("psa-bridge-console")),
        ..AdminSettings::table_only(store.table())
    };
    // What `create-operator` does, then what the Lambda serves.
    admin_accounts(&sdk, &settings, "https://unused/admin")
        .create_operator("ops@example.test", OPERATOR_PASSWORD)
        .await
        .expect("create the first operator");
    let app = admin_app(&sdk, &settings);

    let (status, _, _) = call(&app, Method::GET, "/admin/api/me", None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/login",
        None,
        None,
        Some(serde_json::json!({"email": "ops@example.test", "password": "wrong password here"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let login = serde_json::json!({"email": "ops@example.test", "password": OPERATOR_PASSWORD});
    let (status, response, body) = call(
        &app,
        Method::POST,
        "/admin/api/login",
        None,
        None,
        Some(login),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = session_cookie(&response);
    let csrf = body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();

    let (status, _, me) = call(
        &app,
        Method::GET,
        "/admin/api/me",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "ops@example.test");
    assert_eq!(me["role"], "operator");
    assert_eq!(me["csrf_token"], csrf.as_str());

    let invitation = || serde_json::json!({"email": "admin@acme.example", "tenant": "acme"});
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/invitations",
        Some(&cookie),
        Some("not-the-token"),
        Some(invitation()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "csrf");
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/invitations",
        Some(&cookie),
        None,
        Some(invitation()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token: {body}");
    let profile = |email: &'static str| {
        let store = store.clone();
        async move {
            store
                .get(&format!("USER#{email}"), "PROFILE")
                .await
                .unwrap()
        }
    };
    assert!(
        profile("admin@acme.example").await.is_none(),
        "refused invitations write nothing"
    );

    // The mail goes out through SES on the emulator.
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/invitations",
        Some(&cookie),
        Some(&csrf),
        Some(invitation()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tenant"], "acme");
    let item = profile("admin@acme.example")
        .await
        .expect("the admin's profile item");
    assert!(!item.body.contains("temporary password"), "{}", item.body);

    // Tenants live in the same table: created inactive by the operator,
    // read back through the tenant routes.
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/tenants",
        Some(&cookie),
        Some(&csrf),
        Some(serde_json::json!({"id": "acme", "name": "Acme", "psa": "autotask"})),
    )
    .await;
    assert!(status.is_success(), "{status}: {body}");
    let (status, _, body) = call(
        &app,
        Method::GET,
        "/admin/api/tenants/acme",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"]["active"], false, "{body}");

    // A mail SES refuses withdraws the invitation and says so, not retryable.
    let refusing = AdminSettings {
        mail_from: Some(format!("{}@example.test", unique("unverified"))),
        ..settings.clone()
    };
    let refusing_app = admin_app(&sdk, &refusing);
    let invitation = serde_json::json!({"email": "second@acme.example", "tenant": "acme"});
    let (status, _, body) = call(
        &refusing_app,
        Method::POST,
        "/admin/api/invitations",
        Some(&cookie),
        Some(&csrf),
        Some(invitation),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "mail");
    assert_eq!(body["retryable"], false);
    assert!(profile("second@acme.example").await.is_none(), "withdrawn");

    let (status, _, _) = call(
        &app,
        Method::POST,
        "/admin/api/logout",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/admin/api/me",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the session ended at logout"
    );

    // Routes outside the console are not served by its Lambda.
    let (status, _, _) = call(&app, Method::GET, "/t/acme/zendesk", None, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A page's status and text, for a signed-in user.
async fn page(app: &Router, path: &str, cookie: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Signs the operator in: its session cookie and CSRF token.
async fn sign_in(app: &Router) -> (String, String) {
    let login = serde_json::json!({"email": "ops@example.test", "password": OPERATOR_PASSWORD});
    let (status, response, body) = call(
        app,
        Method::POST,
        "/admin/api/login",
        None,
        None,
        Some(login),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let csrf = body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();
    (session_cookie(&response), csrf)
}

/// The console the admin Lambda serves, with the job queue and its DLQ:
/// "Sync now", the dead letters (page and API), "Replay" and the asset
/// buttons reach the bridge instead of answering "not available in this
/// deployment"; without `DEAD_LETTER_QUEUE_URL` the dead letters still say so.
#[tokio::test]
async fn the_admin_lambda_console_operates_the_bridge_through_sqs() {
    use bridge::model::{DeskTicketId, JobSubject, SyncJob, TenantId};
    use bridge::ports::{Condition, Queue};
    use bridge::repo::Repo;
    use bridge_aws::console::console_ports;

    let sdk = sdk().await;
    let store = new_store().await;
    let q = super::new_queue(Some(1)).await;
    let settings = AdminSettings {
        secrets_prefix: Some(unique("psa-bridge-console")),
        queue_url: Some(q.queue.url().to_owned()),
        dead_letter_queue_url: q.dlq_url.clone(),
        ..AdminSettings::table_only(store.table())
    };
    let ports = console_ports(&sdk, &settings);
    assert!(
        ports.has_operations() && ports.has_asset_operations(),
        "{ports:?}"
    );
    admin_accounts(&sdk, &settings, "https://unused/admin")
        .create_operator("ops@example.test", OPERATOR_PASSWORD)
        .await
        .expect("create the first operator");
    let app = admin_app(&sdk, &settings);
    let (cookie, csrf) = sign_in(&app).await;
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/tenants",
        Some(&cookie),
        Some(&csrf),
        Some(serde_json::json!({"id": "acme", "name": "Acme", "psa": "autotask"})),
    )
    .await;
    assert!(status.is_success(), "{status}: {body}");

    // A job of the tenant's that failed for good.
    let lost = SyncJob {
        tenant: TenantId::parse("acme").unwrap(),
        subject: JobSubject::Desk(DeskTicketId(4242)),
        desk_ticket_id: None,
        event_id: "evt-lost".into(),
        received_at_ms: 1_700_000_000_000,
        change: bridge::model::ChangeHint::Unknown,
    };
    q.sqs
        .send_message()
        .queue_url(q.dlq_url.as_deref().unwrap())
        .message_body(serde_json::to_string(&lost).unwrap())
        .message_group_id(bridge_aws::sqs::group_id(&lost))
        .message_deduplication_id(bridge_aws::sqs::dedup_id(&lost))
        .send()
        .await
        .unwrap();

    let dead_letters = "/admin/api/tenants/acme/dead-letters";
    let (status, _, listed) =
        call(&app, Method::GET, dead_letters, Some(&cookie), None, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["ticket"], "zendesk:4242");
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let (status, html) = page(&app, "/admin/tenants/acme/dead-letters", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("zendesk:4242") && html.contains("Replay"),
        "{html}"
    );
    assert!(!html.contains("not available"), "{html}");

    let (status, _, body) = call(
        &app,
        Method::POST,
        &format!("{dead_letters}/{id}/replay"),
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let back = q
        .queue
        .receive(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].job, lost, "back on the job queue");
    let (_, _, listed) = call(&app, Method::GET, dead_letters, Some(&cookie), None, None).await;
    assert_eq!(listed, serde_json::json!([]));

    // "Sync now" is wired: this tenant is refused for being inactive, not
    // for want of the bridge.
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/tenants/acme/sync",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_ne!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(body.to_string().contains("not active"), "{body}");

    // The asset buttons reach the tenant's PSA (whose credentials are not
    // entered yet).
    let repo = Repo::new(&store);
    let mut config = repo.tenant(&lost.tenant).await.unwrap().unwrap().value;
    config.assets = Some(bridge::config::AssetSettings {
        mode: bridge::config::AssetMode::Simple,
        product_id: 1,
        ci_type: None,
        category_id: None,
        reference_number: bridge::config::ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: "Inventory Device ID".into(),
    });
    repo.put_tenant(&config, Condition::Always).await.unwrap();
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/api/tenants/acme/assets/check",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_ne!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_ne!(body["code"], "not_available", "{body}");
    let (status, html) = page(&app, "/admin/tenants/acme/assets", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("assets-sync"), "{html}");
    assert!(!html.contains("not available"), "{html}");

    // A stack without the DLQ's URL: the dead letters are not available,
    // asset sync still is.
    let older = AdminSettings {
        dead_letter_queue_url: None,
        ..settings.clone()
    };
    let older_app = admin_app(&sdk, &older);
    let (status, _, body) = call(
        &older_app,
        Method::GET,
        dead_letters,
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(body["code"], "not_available");
    let (status, _, body) = call(
        &older_app,
        Method::POST,
        "/admin/api/tenants/acme/assets/check",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_ne!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    // Without the job queue, neither.
    let bare = console_ports(
        &sdk,
        &AdminSettings {
            queue_url: None,
            ..older
        },
    );
    assert!(!bare.has_operations() && !bare.has_asset_operations());
}
