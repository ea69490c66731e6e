//! The console registers the Zendesk webhook itself (button, JSON route,
//! activation), keeps its secret in the secrets store only, and falls back
//! to the manual steps when Zendesk refuses.

use axum::http::{Method, StatusCode};
use bridge::connectors::setup::checks;
use bridge::setup::CheckFailure;
use serde_json::{json, Value};

use super::{call, onboard, tenant_with_admin, world, World};
use crate::support::fakes::*;
use crate::support::logs;

/// The URL the fake is asked to register, as the console builds it from the
/// default ingest URL.
const ACME_ZENDESK_URL: &str = "http://127.0.0.1:8080/t/acme/zendesk";

fn not_admin() -> CheckFailure {
    CheckFailure {
        check: checks::ZENDESK_WEBHOOK.into(),
        fix: "Zendesk lets only admins create webhooks and read their signing secrets".into(),
        retryable: false,
    }
}

fn assert_secret_nowhere(text: &str, what: &str) {
    assert!(
        !text.contains(ZD_REGISTERED_SECRET),
        "the registered signing secret leaked into {what}"
    );
}

#[tokio::test]
async fn activation_registers_the_zendesk_webhook_and_keeps_its_secret_in_the_secrets_store_only() {
    let w = world().await;
    let admin = onboard(&w, "acme").await;
    let h = &w.h;

    // Activation asked Zendesk for the webhook, once per activation, for
    // the tenant's URL.
    let asked = w.setup.zendesk_webhooks.lock().unwrap().registered.clone();
    assert!(!asked.is_empty(), "activation registers the webhook");
    assert!(asked
        .iter()
        .all(|(url, name)| url == ACME_ZENDESK_URL && name == "psa-bridge (acme)"));
    // Its secret replaced the pasted one, in the secrets store.
    let stored = w.secrets.stored.lock().unwrap()["acme"].clone();
    assert_eq!(stored.zendesk_webhook_secret.expose(), ZD_REGISTERED_SECRET);

    // What was registered (id, when) is recorded and shown; the secret is not.
    let rows = call(
        h,
        &admin,
        Method::GET,
        "/admin/api/tenants/acme/webhooks",
        None,
    )
    .await;
    assert_secret_nowhere(&rows.body, "the webhooks API answer");
    let zendesk = rows
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "zendesk_webhook")
        .cloned()
        .unwrap();
    assert_eq!(zendesk["registered"]["id"], ZD_WEBHOOK_ID);
    assert_eq!(zendesk["registered"]["url"], ACME_ZENDESK_URL);
    assert!(zendesk["registered"]["at"].is_string());
    let page = h.get("/admin/tenants/acme/webhooks", Some(&admin.0)).await;
    assert!(page.body.contains(ZD_WEBHOOK_ID), "{}", page.body);
    assert_secret_nowhere(&page.body, "the webhooks page");
    for item in h.items().await {
        assert_secret_nowhere(&item, "a store item");
    }
    assert_secret_nowhere(
        &String::from_utf8_lossy(&logs().lock().unwrap()),
        "the logs",
    );
}

/// Checklist and Zendesk connected: what the Webhooks page needs.
async fn connected(w: &World) -> (String, String) {
    let h = &w.h;
    let admin = tenant_with_admin(h, "acme").await;
    let base = "/admin/api/tenants/acme";
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{base}/checklist"),
        Some(json!({"confirmed": ["api_user", "callout", "queue", "statuses"]})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let resp = call(h, &admin, Method::POST, &format!("{base}/zendesk"),
        Some(json!({"base_url": "https://acme.zendesk.com", "email": "agent@acme.example", "token": ZD_TOKEN}))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    admin
}

#[tokio::test]
async fn the_register_button_says_why_zendesk_refused_and_the_manual_path_still_works() {
    let w = world().await;
    let h = &w.h;
    let admin = connected(&w).await;
    w.setup.zendesk_webhooks.lock().unwrap().refuse = Some(not_admin());

    // The button: the reason and the manual steps, nothing stored.
    let page = h.get("/admin/tenants/acme/webhooks", Some(&admin.0)).await;
    assert!(
        page.body.contains("id=\"register-webhooks\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("not registered yet"), "{}", page.body);
    let csrf = page.csrf_field();
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/register",
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    assert!(resp.body.contains("only admins"), "{}", resp.body);
    assert!(resp.body.contains("Manual steps"), "{}", resp.body);
    assert!(
        resp.body
            .contains("Webhooks, create a webhook with this URL"),
        "{}",
        resp.body
    );
    assert!(
        resp.body.contains("name=\"secret\""),
        "the paste field stays"
    );
    // The JSON route says the same.
    let api = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/register",
        None,
    )
    .await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    assert_eq!(api.json()["failures"][0]["check"], checks::ZENDESK_WEBHOOK);
    assert!(w
        .secrets
        .stored
        .lock()
        .unwrap()
        .get("acme")
        .is_none_or(|s| s.zendesk_webhook_secret.is_empty()));

    // Pasting by hand still works.
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/rotate",
            Some(&admin.0),
            &[
                ("csrf", &csrf),
                ("kind", "zendesk_webhook"),
                ("secret", "pasted-signing-secret-4242"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(
        w.secrets.stored.lock().unwrap()["acme"]
            .zendesk_webhook_secret
            .expose(),
        "pasted-signing-secret-4242"
    );

    // Once Zendesk allows it, the button registers and keeps the secret.
    w.setup.zendesk_webhooks.lock().unwrap().refuse = None;
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/register",
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(
        resp.body
            .contains(&format!("created webhook {ZD_WEBHOOK_ID}")),
        "{}",
        resp.body
    );
    assert_secret_nowhere(&resp.body, "the page");
    assert_eq!(
        w.secrets.stored.lock().unwrap()["acme"]
            .zendesk_webhook_secret
            .expose(),
        ZD_REGISTERED_SECRET
    );
    // The JSON route answers ids and times, never the secret.
    let api = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/register",
        None,
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert_eq!(api.json()["zendesk"]["id"], ZD_WEBHOOK_ID);
    assert_secret_nowhere(&api.body, "the API answer");

    // The OpenAPI document lists the route.
    let doc: Value = call(h, &admin, Method::GET, "/admin/api/openapi.json", None)
        .await
        .json();
    assert!(
        doc["paths"]["/api/tenants/{tenant}/webhooks/register"]["post"].is_object(),
        "{doc}"
    );
}

#[tokio::test]
async fn activation_with_a_pasted_secret_passes_when_zendesk_refuses_registration() {
    let w = world().await;
    w.setup.zendesk_webhooks.lock().unwrap().refuse = Some(not_admin());
    // `onboard` pastes the signing secret and activates; it asserts that
    // activation passes.
    onboard(&w, "acme").await;
    assert_eq!(
        w.secrets.stored.lock().unwrap()["acme"]
            .zendesk_webhook_secret
            .expose(),
        "zendesk-signing-secret-8080",
        "the pasted secret stays in use"
    );
}

#[tokio::test]
async fn activation_without_any_secret_names_the_refusal_and_the_manual_path() {
    let w = world().await;
    let h = &w.h;
    w.setup.zendesk_webhooks.lock().unwrap().refuse = Some(not_admin());
    let admin = connected(&w).await;
    let resp = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/activate",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Other checks fail first (no Autotask, no mappings); registration waits
    // for them, and the missing secret says both ways to get one.
    let failures = resp.json()["failures"].clone();
    let secret = failures
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "Zendesk webhook signing secret")
        .cloned()
        .expect("the missing secret is named");
    let fix = secret["fix"].as_str().unwrap();
    assert!(
        fix.contains("Register webhooks") && fix.contains("paste"),
        "{fix}"
    );
    assert!(w
        .setup
        .zendesk_webhooks
        .lock()
        .unwrap()
        .registered
        .is_empty());
}

// ---------------------------------------------------------------------------
// Autotask: the Ticket and TicketNote webhooks
// ---------------------------------------------------------------------------

/// The URL the fake Autotask is asked to register for `acme`.
const ACME_AUTOTASK_URL: &str = "http://127.0.0.1:8080/t/acme/autotask";

/// Autotask's answer to an API user that may not manage webhooks, as the
/// port words it.
pub(super) fn no_webhook_permission() -> CheckFailure {
    CheckFailure {
        check: checks::AUTOTASK_WEBHOOKS.into(),
        fix: "Autotask refused to let the API user manage webhooks (missing permission)".into(),
        retryable: false,
    }
}

fn autotask_keys(w: &World) -> Vec<String> {
    w.setup.autotask_webhooks.lock().unwrap().keys.clone()
}

fn stored_autotask_secret(w: &World) -> Option<String> {
    w.secrets
        .stored
        .lock()
        .unwrap()
        .get("acme")
        .map(|s| s.autotask_webhook_secret.expose().to_owned())
        .filter(|s| !s.is_empty())
}

#[tokio::test]
async fn activation_registers_the_autotask_webhooks_and_keeps_their_key_in_the_secrets_store_only()
{
    let w = world().await;
    let admin = onboard(&w, "acme").await;
    let h = &w.h;

    let asked = w.setup.autotask_webhooks.lock().unwrap().registered.clone();
    assert_eq!(asked.len(), 1, "the passing activation registers once");
    assert_eq!(
        asked[0],
        (ACME_AUTOTASK_URL.to_owned(), "psa-bridge (acme)".to_owned())
    );
    // The key the webhooks now sign with replaced the one made by hand.
    let keys = autotask_keys(&w);
    assert_eq!(
        stored_autotask_secret(&w).as_deref(),
        Some(keys[0].as_str())
    );

    let rows = call(
        h,
        &admin,
        Method::GET,
        "/admin/api/tenants/acme/webhooks",
        None,
    )
    .await;
    let autotask = rows
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "autotask_webhook")
        .cloned()
        .unwrap();
    assert_eq!(autotask["registered"]["id"], AT_WEBHOOK_IDS);
    assert_eq!(autotask["registered"]["url"], ACME_AUTOTASK_URL);
    assert!(autotask["manual_steps"]
        .as_str()
        .unwrap()
        .contains("excluded resources"));
    let page = h.get("/admin/tenants/acme/webhooks", Some(&admin.0)).await;
    assert!(
        page.body.contains("id=\"webhooks-autotask-state\""),
        "{}",
        page.body
    );
    assert!(page.body.contains(AT_WEBHOOK_IDS), "{}", page.body);
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    let items = h.items().await;
    for key in &keys {
        assert!(!rows.body.contains(key.as_str()), "key in the API answer");
        assert!(!page.body.contains(key.as_str()), "key in the page");
        assert!(
            !items.iter().any(|i| i.contains(key.as_str())),
            "key in a store item"
        );
        assert!(!logs.contains(key.as_str()), "key in the logs");
    }
}

#[tokio::test]
async fn the_register_button_registers_autotask_webhooks_or_says_why_not_and_pasting_still_works() {
    let w = world().await;
    let h = &w.h;
    let admin = connected(&w).await;
    let resp = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/autotask",
        Some(json!({"username": "api@acme", "secret": AT_SECRET, "integration_code": AT_CODE})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    w.setup.autotask_webhooks.lock().unwrap().refuse = Some(no_webhook_permission());

    // Refused: the reason and Autotask's manual steps, nothing stored.
    let page = h.get("/admin/tenants/acme/webhooks", Some(&admin.0)).await;
    let csrf = page.csrf_field();
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/register",
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    assert!(resp.body.contains("missing permission"), "{}", resp.body);
    assert!(
        resp.body
            .contains("create a Ticket webhook and a Ticket Note webhook"),
        "{}",
        resp.body
    );
    assert!(
        resp.body.contains("id=\"rotate-autotask_webhook\""),
        "the manual key stays"
    );
    assert!(stored_autotask_secret(&w).is_none());
    let api = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/register",
        None,
    )
    .await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    assert_eq!(
        api.json()["failures"][0]["check"],
        checks::AUTOTASK_WEBHOOKS
    );

    // Making a key by hand still works.
    let resp = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/rotate",
        Some(json!({"kind": "autotask_webhook"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let manual = resp.json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(stored_autotask_secret(&w), Some(manual));

    // Allowed: both PSA and Zendesk webhooks are registered; every
    // registration sets (and stores) a new key, which no answer shows.
    w.setup.autotask_webhooks.lock().unwrap().refuse = None;
    let resp = h
        .form(
            "/admin/tenants/acme/webhooks/register",
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(
        resp.body
            .contains(&format!("created webhooks {AT_WEBHOOK_IDS}")),
        "{}",
        resp.body
    );
    let first = autotask_keys(&w)[0].clone();
    assert_eq!(stored_autotask_secret(&w).as_deref(), Some(first.as_str()));
    assert!(!resp.body.contains(&first));
    let api = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/register",
        None,
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert_eq!(api.json()["autotask"]["id"], AT_WEBHOOK_IDS);
    assert!(api.json()["autotask"]["summary"]
        .as_str()
        .unwrap()
        .contains("already registered"));
    assert_eq!(api.json()["zendesk"]["id"], ZD_WEBHOOK_ID);
    let keys = autotask_keys(&w);
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(
        stored_autotask_secret(&w).as_deref(),
        Some(keys[1].as_str())
    );
    for key in &keys {
        assert!(!api.body.contains(key.as_str()));
    }
}

#[tokio::test]
async fn activation_with_a_key_made_by_hand_passes_when_autotask_refuses_registration() {
    let w = world().await;
    w.setup.autotask_webhooks.lock().unwrap().refuse = Some(no_webhook_permission());
    // `onboard` makes the key under Webhooks (as for pasting into Autotask
    // by hand) and asserts that activation passes.
    onboard(&w, "acme").await;
    assert!(autotask_keys(&w).is_empty(), "nothing was registered");
    let stored = stored_autotask_secret(&w).expect("the key made by hand");
    assert!(!stored.starts_with("at-registered-key"));
}

#[tokio::test]
async fn rotating_the_key_of_registered_autotask_webhooks_sets_it_through_autotask() {
    let w = world().await;
    let admin = onboard(&w, "acme").await;
    let before = autotask_keys(&w).len();
    let resp = call(
        &w.h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/webhooks/rotate",
        Some(json!({"kind": "autotask_webhook"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let keys = autotask_keys(&w);
    assert_eq!(keys.len(), before + 1, "registered again, with a new key");
    let newest = keys.last().unwrap();
    assert_eq!(stored_autotask_secret(&w).as_deref(), Some(newest.as_str()));
    assert!(resp.json()["secret"].is_null(), "nothing to enter by hand");
    assert!(resp.json()["steps"]
        .as_str()
        .unwrap()
        .contains("Nothing to enter in Autotask"));
    assert!(!resp.body.contains(newest.as_str()));
}
