//! Tenant onboarding and operating through the router, with fake ports.

use std::sync::Arc;

use admin::{OnboardingSettings, ZendeskOAuthClient};
use axum::http::{Method, StatusCode};
use bridge::config::Secret;
use serde_json::{json, Value};

use crate::support::fakes::*;
use crate::support::{logs, Harness, Resp, OPERATOR, OPERATOR_PASSWORD};

mod assets;
mod connectwise;
mod security;
mod webhooks;

struct World {
    h: Harness,
    setup: Arc<FakeSetup>,
    secrets: Arc<FakeSecrets>,
    ops: Arc<FakeOps>,
    assets: Arc<FakeAssetOps>,
}

async fn world() -> World {
    let setup = Arc::new(FakeSetup::default());
    let secrets = Arc::new(FakeSecrets::default());
    let ops = Arc::new(FakeOps::default());
    let assets = Arc::new(FakeAssetOps::default());
    let (s, w, o, a) = (setup.clone(), secrets.clone(), ops.clone(), assets.clone());
    let h = Harness::new_with(move |state| {
        state
            .with_tenant_setup(s)
            .with_secrets(w.clone(), w)
            .with_operations(o)
            .with_asset_operations(a)
            .with_onboarding(OnboardingSettings {
                console_url: "https://console.example/admin".into(),
                zendesk_oauth: Some(ZendeskOAuthClient {
                    client_id: "psa_bridge".into(),
                    client_secret: Secret::new(OAUTH_CLIENT_SECRET),
                }),
                ..OnboardingSettings::default()
            })
    })
    .await;
    *assets.store.lock().unwrap() = Some(h.store.clone());
    World {
        h,
        setup,
        secrets,
        ops,
        assets,
    }
}

/// A JSON call with a session.
async fn call(
    h: &Harness,
    s: &(String, String),
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    h.api(method, path, Some(&s.0), Some(&s.1), body).await
}

/// Operator creates `tenant` and invites its admin; the admin sets a password.
async fn tenant_with_admin(h: &Harness, tenant: &str) -> (String, String) {
    tenant_with_admin_on(h, tenant, "autotask").await
}

/// The same for a tenant on `psa` (`autotask`, `connectwise`).
async fn tenant_with_admin_on(h: &Harness, tenant: &str, psa: &str) -> (String, String) {
    let op = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let resp = call(
        h,
        &op,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": tenant, "name": format!("{tenant} Ltd"), "psa": psa})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let email = format!("admin@{tenant}.example");
    let temp = h.invite(&email, tenant).await;
    let first = h.api_login(&email, &temp).await;
    let resp = call(
        h,
        &first,
        Method::POST,
        "/admin/api/password",
        Some(json!({"current_password": temp, "new_password": "a-good-new-password"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    h.api_login(&email, "a-good-new-password").await
}

async fn onboard(w: &World, tenant: &str) -> (String, String) {
    let h = &w.h;
    let admin = tenant_with_admin(h, tenant).await;
    let base = format!("/admin/api/tenants/{tenant}");

    // Settings wait for the checklist.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/autotask"),
        Some(json!({"username": "api@acme", "secret": AT_SECRET, "integration_code": AT_CODE})),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    assert!(resp.body.contains("checklist"), "{}", resp.body);
    let list = call(h, &admin, Method::GET, &format!("{base}/checklist"), None)
        .await
        .json();
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["api_user", "callout", "queue", "statuses"]);
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/checklist"),
        Some(json!({"confirmed": ids})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);

    // Zendesk by API token.
    let resp = call(h, &admin, Method::POST, &format!("{base}/zendesk"),
        Some(json!({"base_url": "https://acme.zendesk.com", "email": "agent@acme.example", "token": ZD_TOKEN}))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["token"], "set, ends in 4821");

    // Autotask: wrong secret first, the failure names its check and fix.
    let resp = call(h, &admin, Method::POST, &format!("{base}/autotask"),
        Some(json!({"username": "api@acme", "secret": "wrong-secret-000", "integration_code": AT_CODE}))).await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    let failures = &resp.json()["failures"];
    assert_eq!(failures[0]["check"], "Autotask API user secret");
    assert!(failures[0]["fix"]
        .as_str()
        .unwrap()
        .contains("Admin > Resources"));
    assert!(w.secrets.values().iter().all(|v| v != "wrong-secret-000"));
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/autotask"),
        Some(json!({"username": "api@acme", "secret": AT_SECRET, "integration_code": AT_CODE})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["secret"], "set, ends in 7391");
    // The Zendesk token stayed (merged, not replaced).
    let stored = w.secrets.stored.lock().unwrap()[tenant].clone();
    assert_eq!(stored.zendesk_api_token.expose(), ZD_TOKEN);
    assert_eq!(stored.autotask_secret.expose(), AT_SECRET);

    // Activation fails before mappings, listing what fails.
    let resp = call(h, &admin, Method::POST, &format!("{base}/activate"), None).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let checks: Vec<String> = resp.json()["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect();
    assert!(checks.contains(&"Queue".to_owned()), "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.starts_with("Zendesk status \"open\"")),
        "{checks:?}"
    );
    assert!(
        checks.contains(&"Zendesk webhook signing secret".to_owned()),
        "{checks:?}"
    );
    let dash = call(h, &admin, Method::GET, &base, None).await.json();
    assert_eq!(dash["tenant"]["active"], false);

    // Mappings: accept every suggestion.
    let view = call(h, &admin, Method::GET, &format!("{base}/mappings"), None)
        .await
        .json();
    let forward = |rows: &Value| -> Value {
        rows.as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                Some((
                    r["zendesk"].as_str()?.to_owned(),
                    json!(r["suggestion"].as_i64()?),
                ))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let reverse = |rows: &Value| -> Value {
        rows.as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                Some((
                    r["psa_value"].as_i64()?.to_string(),
                    json!(r["suggestion"].as_str()?),
                ))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let status = forward(&view["status"]);
    assert_eq!(status["open"], 8, "open ↔ In Progress");
    assert_eq!(status["pending"], 7);
    assert_eq!(status["solved"], 5);
    assert!(
        status.get("closed").is_none(),
        "no guess for closed: {status}"
    );
    let mut status = status.as_object().unwrap().clone();
    status.insert("closed".into(), json!(5));
    let companies: serde_json::Map<String, Value> = view["associations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            Some((
                a["org_id"].as_i64()?.to_string(),
                json!(a["suggestion"].as_i64()?),
            ))
        })
        .collect();
    assert_eq!(companies["501"], 900, "Acme Corp ↔ ACME corp.");
    assert!(
        view["notes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["public"] == false),
        "none public by default"
    );
    let update = json!({
        "queue_id": 7, "status": status, "priority": forward(&view["priority"]),
        "status_to_desk": reverse(&view["status_to_desk"]), "priority_to_desk": reverse(&view["priority_to_desk"]),
        "public_note_publish": [1], "default_company_id": 901, "companies": companies,
    });
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/mappings"),
        Some(update),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let config = bridge::repo::Repo::new(h.store.as_ref())
        .tenant(&bridge::model::TenantId::parse(tenant).unwrap())
        .await
        .unwrap()
        .expect("the tenant's config")
        .value;
    assert_eq!(
        config.autotask.companies_by_organization.get(&501),
        Some(&900),
        "the confirmed association is what the sync reads"
    );
    // A value Autotask does not have is refused.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/mappings"),
        Some(json!({"queue_id": 99})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Still inactive: Autotask refuses to register the webhooks and no
    // inbound secret was entered yet (a test's own refusal stays in place).
    let preset = w
        .setup
        .autotask_webhooks
        .lock()
        .unwrap()
        .refuse
        .replace(webhooks::no_webhook_permission());
    let resp = call(h, &admin, Method::POST, &format!("{base}/activate"), None).await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    assert!(
        resp.json()["failures"]
            .as_array()
            .unwrap()
            .iter()
            // The refusal itself, or (when another check failed first and
            // registration waited) the missing secret.
            .any(
                |f| f["check"] == bridge::connectors::setup::checks::AUTOTASK_WEBHOOKS
                    || f["check"] == "Autotask webhook or callout secret"
            ),
        "{}",
        resp.body
    );
    w.setup.autotask_webhooks.lock().unwrap().refuse = preset;
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/webhooks/rotate"),
        Some(json!({"kind": "zendesk_webhook", "secret": "zendesk-signing-secret-8080"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(
        resp.json()["secret"].is_null(),
        "Zendesk's own secret is not echoed"
    );
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/webhooks/rotate"),
        Some(json!({"kind": "autotask_webhook"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let shown = resp.json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        w.secrets.stored.lock().unwrap()[tenant]
            .autotask_webhook_secret
            .expose(),
        shown
    );
    assert!(resp.json()["steps"]
        .as_str()
        .unwrap()
        .contains("Secret Key"));

    let resp = call(h, &admin, Method::POST, &format!("{base}/activate"), None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let dash = call(h, &admin, Method::GET, &base, None).await.json();
    assert_eq!(dash["tenant"]["active"], true);
    admin
}

#[tokio::test]
async fn an_msp_onboards_from_tenant_creation_to_activation_and_operates() {
    let w = world().await;
    let admin = onboard(&w, "acme").await;
    let h = &w.h;
    let base = "/admin/api/tenants/acme";

    // Operating: sync now, dead letters and replay, the log with filters.
    let resp = call(h, &admin, Method::POST, &format!("{base}/sync"), None).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    assert_eq!(*w.ops.swept.lock().unwrap(), ["acme"]);
    let letters = call(
        h,
        &admin,
        Method::GET,
        &format!("{base}/dead-letters"),
        None,
    )
    .await
    .json();
    assert_eq!(letters[0]["ticket"], "zendesk:42");
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/dead-letters/acme-m1/replay"),
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/dead-letters/nope/replay"),
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);

    let repo = bridge::repo::Repo::new(h.store.as_ref());
    let tenant = bridge::model::TenantId::parse("acme").unwrap();
    for (level, ticket, step, message) in [
        (
            bridge::repo::LogLevel::Info,
            Some("zendesk:7"),
            "create_psa_ticket",
            "created T1",
        ),
        (
            bridge::repo::LogLevel::Error,
            Some("zendesk:8"),
            "map_status",
            "no status mapping",
        ),
        (
            bridge::repo::LogLevel::Info,
            None,
            "sweep",
            "sweep done: 2 changes",
        ),
    ] {
        let entry = bridge::repo::SyncLogEntry {
            at: chrono::Utc::now(),
            level,
            ticket: ticket.map(str::to_owned),
            step: step.into(),
            message: message.into(),
            retryable: false,
        };
        repo.log(&tenant, &entry).await.unwrap();
    }
    let errors = call(
        h,
        &admin,
        Method::GET,
        &format!("{base}/log?level=error"),
        None,
    )
    .await
    .json();
    assert_eq!(errors.as_array().unwrap().len(), 1);
    let one = call(
        h,
        &admin,
        Method::GET,
        &format!("{base}/log?ticket=7"),
        None,
    )
    .await
    .json();
    assert_eq!(one[0]["message"], "created T1");
    let dash = call(h, &admin, Method::GET, base, None).await.json();
    assert_eq!(dash["synced_today"], 1);
    assert_eq!(dash["errors_today"], 1);
    assert_eq!(dash["last_sweep"]["message"], "sweep done: 2 changes");

    // The pages render for the admin, with the same data.
    for page in [
        "",
        "/checklist",
        "/zendesk",
        "/autotask",
        "/mappings",
        "/log?level=error",
        "/dead-letters",
        "/webhooks",
    ] {
        let resp = h
            .get(&format!("/admin/tenants/acme{page}"), Some(&admin.0))
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{page}: {}", resp.body);
    }
    let page = h
        .get("/admin/tenants/acme/log?level=error", Some(&admin.0))
        .await;
    assert!(page.body.contains("no status mapping") && !page.body.contains("created T1"));
    let page = h.get("/admin/tenants/acme/mappings", Some(&admin.0)).await;
    assert!(page.body.contains("In Progress"), "{}", page.body);
    // A page form post (CSRF field) works the same way.
    let csrf = page.csrf_field();
    let resp = h
        .form(
            "/admin/tenants/acme/sync",
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("2 changes queued"));
}

#[tokio::test]
async fn wrong_then_right_credentials_through_the_pages_and_a_rotated_secret_is_shown_once() {
    let w = world().await;
    let h = &w.h;
    let admin = tenant_with_admin(h, "acme").await;
    let page = h.get("/admin/tenants/acme/checklist", Some(&admin.0)).await;
    let csrf = page.csrf_field();
    let fields: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("confirmed", "api_user"),
        ("confirmed", "callout"),
        ("confirmed", "queue"),
        ("confirmed", "statuses"),
    ];
    let resp = h
        .form("/admin/tenants/acme/checklist", Some(&admin.0), &fields)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let resp = h
        .form(
            "/admin/tenants/acme/autotask",
            Some(&admin.0),
            &[
                ("csrf", &csrf),
                ("username", "api@acme"),
                ("secret", AT_SECRET),
                ("integration_code", "bad-code-123"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.body.contains("Autotask integration code"),
        "{}",
        resp.body
    );
    let resp = h
        .form(
            "/admin/tenants/acme/autotask",
            Some(&admin.0),
            &[
                ("csrf", &csrf),
                ("username", "api@acme"),
                ("secret", AT_SECRET),
                ("integration_code", AT_CODE),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("set, ends in 5550"));
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/rotate",
            Some(&admin.0),
            &[("csrf", &csrf), ("kind", "autotask_callout")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let secret = w.secrets.stored.lock().unwrap()["acme"]
        .autotask_callout_password
        .expose()
        .to_owned();
    assert!(resp.body.contains(&secret));
    let again = h.get("/admin/tenants/acme/webhooks", Some(&admin.0)).await;
    assert!(!again.body.contains(&secret), "shown once only");
}

#[tokio::test]
async fn oauth_redirects_with_a_hashed_state_and_refuses_a_mismatched_one() {
    let w = world().await;
    let h = &w.h;
    let a = tenant_with_admin(h, "acme").await;
    let ids = json!({"confirmed": ["api_user", "callout", "queue", "statuses"]});
    call(
        h,
        &a,
        Method::POST,
        "/admin/api/tenants/acme/checklist",
        Some(ids),
    )
    .await;
    let page = h.get("/admin/tenants/acme/zendesk", Some(&a.0)).await;
    let resp = h
        .form(
            "/admin/tenants/acme/zendesk/oauth",
            Some(&a.0),
            &[
                ("csrf", &page.csrf_field()),
                ("base_url", "https://acme.zendesk.com"),
            ],
        )
        .await;
    // A page that moves on to Zendesk by itself (a redirect of a form post
    // to another origin is refused under the console's CSP).
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let url = resp
        .body
        .split("content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a refresh to Zendesk")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert!(url.starts_with("https://acme.zendesk.com/oauth/authorizations/new?response_type=code&client_id=psa_bridge&redirect_uri=https%3A%2F%2Fconsole.example%2Fadmin%2Fzendesk%2Foauth%2Fcallback&scope=read%20write&state=acme."), "{url}");
    let state = url.rsplit("state=").next().unwrap().to_owned();
    assert!(
        h.items().await.iter().all(|i| !i.contains(&state)),
        "the state is stored hashed"
    );

    // Zendesk's redirect lands on the bounce page, which moves on in-console.
    let bounce = h
        .get(
            &format!("/admin/zendesk/oauth/callback?code=good-code&state={state}"),
            None,
        )
        .await;
    assert_eq!(bounce.status, StatusCode::OK);
    assert!(
        bounce
            .body
            .contains("/admin/tenants/acme/zendesk/oauth/finish?code=good-code"),
        "{}",
        bounce.body
    );

    // A forged state is refused and nothing is exchanged.
    let forged = format!("acme.{}", "A".repeat(43));
    let resp = call(
        h,
        &a,
        Method::POST,
        "/admin/api/tenants/acme/zendesk/oauth/finish",
        Some(json!({"code": "good-code", "state": forged})),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    assert!(w.setup.oauth_calls.lock().unwrap().is_empty());
    // The mismatch used nothing up... but the real state is single-use.
    let resp = h
        .get(
            &format!("/admin/tenants/acme/zendesk/oauth/finish?code=good-code&state={state}"),
            Some(&a.0),
        )
        .await;
    let calls = w.setup.oauth_calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [(
            "https://acme.zendesk.com".to_owned(),
            "psa_bridge".to_owned(),
            "https://console.example/admin/zendesk/oauth/callback".to_owned()
        )]
    );
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("connected with OAuth"), "{}", resp.body);
    assert_eq!(
        w.secrets.stored.lock().unwrap()["acme"]
            .zendesk_oauth_token
            .expose(),
        OAUTH_TOKEN
    );
    assert!(!resp.body.contains(OAUTH_TOKEN));
    let again = call(
        h,
        &a,
        Method::POST,
        "/admin/api/tenants/acme/zendesk/oauth/finish",
        Some(json!({"code": "good-code", "state": state})),
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a state works once"
    );
}
