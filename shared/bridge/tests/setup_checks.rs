//! The onboarding checks ([`HttpSetup`]) against the Zendesk, Autotask and
//! ConnectWise sandboxes over real HTTP: sign-ins that work, each wrong
//! credential named by its own check, the live values the mapping screens
//! choose from (ConnectWise's per board), the Zendesk OAuth round trip, the
//! ConnectWise callback registered once, and no credential in any failure.
//! Also the writable local secrets file.
//!
//! One file on purpose: one test binary links faster than one per area.

use std::collections::HashMap;
use std::time::Duration;

use bridge::adapters::embedded::SecretsFile;
use bridge::config::{Secret, TenantSecrets};
use bridge::connectors::setup::{checks, HttpSetup};
use bridge::connectors::zendesk::{oauth_authorize_url, ZendeskClient, OAUTH_SCOPE};
use bridge::error::SecretsError;
use bridge::model::TenantId;
use bridge::ports::Secrets;
use bridge::setup::{
    AutotaskAccess, CheckFailure, ConnectWiseAccess, SecretsWriter, TenantSetup, ZendeskAccess,
    ZendeskAuth,
};
use sandbox::autotask::{AutotaskSandbox, AutotaskSandboxConfig, API_ROOT};
use sandbox::connectwise::{ConnectWiseSandbox, ConnectWiseSandboxConfig};
use sandbox::zendesk::{Role, ZendeskSandbox, ZendeskSandboxConfig};

const AT_USER: &str = "sync@msp.example";
const AT_SECRET: &str = "at-secret-9f2c";
const AT_CODE: &str = "AT-INTEGRATION-CODE-77a1";
const ZD_EMAIL: &str = "bridge@acme-msp.example";
const ZD_TOKEN: &str = "zd-api-token-51e0";
const CLIENT_ID: &str = "psa_bridge";
const CLIENT_SECRET: &str = "oauth-client-secret-d4c3";
const REDIRECT: &str = "https://bridge.example/admin/zendesk/callback";
const CW_COMPANY: &str = "acmemsp";
const CW_PUBLIC: &str = "cw-public-3c1d";
const CW_PRIVATE: &str = "cw-private-77e0";
const CW_CLIENT_ID: &str = "0b6a3c7e-5f1d-4c2a-9e8b-7d6f5a4b3c2d";

/// Every credential the tests use, right or wrong: none may ever show in a
/// failure.
const CREDENTIALS: &[&str] = &[
    AT_SECRET,
    AT_CODE,
    ZD_TOKEN,
    CLIENT_SECRET,
    "wrong-secret-31aa",
    "WRONG-CODE-8bb2",
    "wrong-token-c0ff",
    "wrong-client-secret-e1e1",
    CW_PUBLIC,
    CW_PRIVATE,
    CW_CLIENT_ID,
    "cw-wrong-private-9a9a",
];

fn assert_no_credential(failure: &CheckFailure, extra: &[&str]) {
    let shown = format!("{failure} {failure:?}");
    for credential in CREDENTIALS.iter().chain(extra) {
        assert!(!shown.contains(credential), "a credential shows in {shown}");
    }
}

async fn autotask() -> AutotaskSandbox {
    AutotaskSandbox::start(AutotaskSandboxConfig {
        username: AT_USER.to_owned(),
        secret: AT_SECRET.to_owned(),
        integration_code: AT_CODE.to_owned(),
        ..AutotaskSandboxConfig::default()
    })
    .await
    .expect("autotask sandbox starts")
}

fn at_access(sandbox: &AutotaskSandbox, user: &str, secret: &str, code: &str) -> AutotaskAccess {
    AutotaskAccess {
        zone_lookup_url: sandbox.zone_lookup_url(),
        username: user.to_owned(),
        secret: Secret::new(secret),
        integration_code: Secret::new(code),
    }
}

async fn zendesk() -> ZendeskSandbox {
    let sandbox = ZendeskSandbox::start(ZendeskSandboxConfig {
        agent_email: ZD_EMAIL.to_owned(),
        api_token: ZD_TOKEN.to_owned(),
        webhook_secret: "zd-webhook-secret".to_owned(),
        webhook_url: None,
        cluster_id_field: 360_012_345,
    })
    .await
    .expect("zendesk sandbox starts");
    sandbox.register_oauth_client(CLIENT_ID, CLIENT_SECRET, REDIRECT);
    sandbox
}

fn zd_token_access(sandbox: &ZendeskSandbox, token: &str) -> ZendeskAccess {
    ZendeskAccess {
        base_url: sandbox.base_url().to_owned(),
        auth: ZendeskAuth::ApiToken {
            email: ZD_EMAIL.to_owned(),
            token: Secret::new(token),
        },
    }
}

fn setup() -> HttpSetup {
    HttpSetup::new(bridge::connectors::http::client())
}

// ------------------------------------------------------------------ Autotask

#[tokio::test]
async fn right_autotask_credentials_verify_and_name_the_zone() {
    let sandbox = autotask().await;
    let verified = setup()
        .verify_autotask(&at_access(&sandbox, AT_USER, AT_SECRET, AT_CODE))
        .await
        .expect("verifies");
    assert_eq!(
        verified.api_base_url,
        format!("{}/ATServicesRest/V1.0/", sandbox.base_url())
    );
    assert_eq!(
        sandbox
            .requests_matching("POST", &format!("{API_ROOT}/Companies/query"))
            .len(),
        1,
        "one authenticated query"
    );
}

#[tokio::test]
async fn each_wrong_autotask_credential_names_its_own_field() {
    let sandbox = autotask().await;
    let setup = setup();
    let cases = [
        (
            at_access(&sandbox, "nobody@msp.example", AT_SECRET, AT_CODE),
            checks::AUTOTASK_USER,
        ),
        (
            at_access(&sandbox, AT_USER, "wrong-secret-31aa", AT_CODE),
            checks::AUTOTASK_SECRET,
        ),
        (
            at_access(&sandbox, AT_USER, AT_SECRET, "WRONG-CODE-8bb2"),
            checks::AUTOTASK_INTEGRATION_CODE,
        ),
        (
            at_access(&sandbox, AT_USER, "", AT_CODE),
            checks::AUTOTASK_SECRET,
        ),
        (
            at_access(&sandbox, AT_USER, AT_SECRET, "CODE\nPASTED"),
            checks::AUTOTASK_INTEGRATION_CODE,
        ),
    ];
    for (access, check) in cases {
        let failure = setup.verify_autotask(&access).await.unwrap_err();
        assert_eq!(failure.check, check, "{failure}");
        assert!(!failure.retryable, "{failure}");
        assert!(!failure.fix.is_empty());
        assert_no_credential(&failure, &[]);
    }
}

#[tokio::test]
async fn the_sandbox_answers_a_wrong_integration_code_like_autotask() {
    let sandbox = autotask().await;
    let response = reqwest::Client::new()
        .post(format!("{}{API_ROOT}/Companies/query", sandbox.base_url()))
        .header("UserName", AT_USER)
        .header("Secret", AT_SECRET)
        .header("ApiIntegrationCode", "WRONG-CODE-8bb2")
        .json(&serde_json::json!({"filter": [{"op": "gt", "field": "id", "value": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0], "IntegrationCode is invalid.");
}

#[tokio::test]
async fn an_unreachable_autotask_is_worth_retrying() {
    let sandbox = autotask().await;
    let access = at_access(&sandbox, AT_USER, AT_SECRET, AT_CODE);
    drop(sandbox);
    // Nothing listens there any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let failure = setup().verify_autotask(&access).await.unwrap_err();
    assert_eq!(failure.check, checks::AUTOTASK_ZONE_LOOKUP, "{failure}");
    assert!(failure.retryable, "{failure}");
    assert_no_credential(&failure, &[]);
}

#[tokio::test]
async fn autotask_choices_are_the_live_picklists() {
    let sandbox = autotask().await;
    let choices = setup()
        .autotask_choices(&at_access(&sandbox, AT_USER, AT_SECRET, AT_CODE))
        .await
        .expect("choices");
    let labels = |values: &[bridge::model::PicklistValue]| -> Vec<String> {
        values.iter().map(|v| v.label.clone()).collect()
    };
    assert!(labels(&choices.queues).contains(&"Level I Support".to_owned()));
    assert_eq!(
        choices
            .queues
            .iter()
            .find(|q| q.label == "Level I Support")
            .map(|q| q.value),
        sandbox.picklist_value("queueID", "Level I Support")
    );
    assert!(labels(&choices.statuses).contains(&"Waiting Customer".to_owned()));
    assert!(
        choices.statuses.iter().any(|s| !s.is_active),
        "inactive values are kept and marked"
    );
    assert_eq!(
        labels(&choices.priorities),
        ["Critical", "High", "Medium", "Low"]
    );
    assert_eq!(
        choices
            .note_publish
            .iter()
            .map(|v| (v.value, v.label.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "All Autotask Users"),
            (2, "Internal Project Team"),
            (4, "Internal & Co-Managed")
        ]
    );
    assert_eq!(
        sandbox
            .requests_matching("GET", &format!("{API_ROOT}/Tickets/entityInformation"))
            .len(),
        1,
        "the Tickets field list is read once for three picklists"
    );
}

#[tokio::test]
async fn autotask_companies_are_the_active_ones_across_pages() {
    let sandbox = autotask().await;
    let contoso = sandbox.add_company("Contoso");
    let gone = sandbox.add_company("Gone Ltd");
    sandbox.set_company_active(gone, false);
    for i in 0..520 {
        sandbox.add_company(&format!("Customer {i:03}"));
    }
    let companies = setup()
        .autotask_companies(&at_access(&sandbox, AT_USER, AT_SECRET, AT_CODE))
        .await
        .expect("companies");
    assert_eq!(companies.len(), 521);
    assert_eq!(companies[0].id, contoso, "sorted by name");
    assert_eq!(companies[0].name, "Contoso");
    assert!(companies.iter().all(|c| c.id != gone), "inactive left out");
    assert!(
        !sandbox
            .requests_matching("POST", &format!("{API_ROOT}/Companies/query/next"))
            .is_empty(),
        "the second page was read"
    );

    let failure = setup()
        .autotask_companies(&at_access(&sandbox, AT_USER, "wrong-secret-31aa", AT_CODE))
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::AUTOTASK_SECRET);
}

// ------------------------------------------------------------------- Zendesk

#[tokio::test]
async fn a_zendesk_admin_verifies_and_a_plain_agent_verifies_without_admin() {
    let sandbox = zendesk().await;
    let setup = setup();
    let verified = setup
        .verify_zendesk(&zd_token_access(&sandbox, ZD_TOKEN))
        .await
        .expect("verifies");
    assert_eq!(verified.agent_email, ZD_EMAIL);
    assert!(verified.is_admin);

    sandbox.set_api_user_role(Role::Agent);
    let verified = setup
        .verify_zendesk(&zd_token_access(&sandbox, ZD_TOKEN))
        .await
        .expect("an agent signs in too");
    assert_eq!(verified.agent_email, ZD_EMAIL);
    assert!(!verified.is_admin);
}

#[tokio::test]
async fn wrong_zendesk_credentials_and_addresses_name_what_to_fix() {
    let sandbox = zendesk().await;
    let setup = setup();
    let failure = setup
        .verify_zendesk(&zd_token_access(&sandbox, "wrong-token-c0ff"))
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_TOKEN, "{failure}");
    assert!(!failure.retryable);
    assert_no_credential(&failure, &[]);

    let mut access = zd_token_access(&sandbox, ZD_TOKEN);
    access.auth = ZendeskAuth::ApiToken {
        email: " ".to_owned(),
        token: Secret::new(ZD_TOKEN),
    };
    let failure = setup.verify_zendesk(&access).await.unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_EMAIL);

    let mut access = zd_token_access(&sandbox, ZD_TOKEN);
    access.base_url = "http://acme.zendesk.com".to_owned();
    let failure = setup.verify_zendesk(&access).await.unwrap_err();
    assert_eq!(
        failure.check,
        checks::ZENDESK_ADDRESS,
        "plain http off loopback"
    );

    let mut access = zd_token_access(&sandbox, ZD_TOKEN);
    access.base_url = format!("{}/not-zendesk", sandbox.base_url());
    let failure = setup.verify_zendesk(&access).await.unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_ADDRESS, "{failure}");

    sandbox.faults().update(|f| f.server_error_rate = 1.0);
    let failure = setup
        .verify_zendesk(&zd_token_access(&sandbox, ZD_TOKEN))
        .await
        .unwrap_err();
    assert!(failure.retryable, "{failure}");
    assert_no_credential(&failure, &[]);
    sandbox.faults().clear();
}

#[tokio::test]
async fn zendesk_organizations_come_back_across_pages() {
    let sandbox = zendesk().await;
    let ids: Vec<u64> = (0..130)
        .map(|i| sandbox.add_organization(&format!("Org {i:03}")))
        .collect();
    let organizations = setup()
        .zendesk_organizations(&zd_token_access(&sandbox, ZD_TOKEN))
        .await
        .expect("organizations");
    assert_eq!(
        organizations
            .iter()
            .map(|o| o.id as u64)
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(organizations[129].name, "Org 129");
    assert_eq!(
        sandbox
            .requests_matching("GET", "/api/v2/organizations.json")
            .len(),
        2,
        "two pages of at most 100"
    );
}

/// Follows the authorization page as a browser would: reads the form, posts
/// "Allow", and returns where Zendesk sent it back.
async fn allow(sandbox: &ZendeskSandbox, state: &str) -> reqwest::Url {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(oauth_authorize_url(
            sandbox.base_url(),
            CLIENT_ID,
            REDIRECT,
            state,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"allow\""), "{html}");
    assert!(html.contains("action=\"/oauth/authorizations\""), "{html}");
    // The form's hidden fields, as the browser would send them.
    let mut form: Vec<(String, String)> = html
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + input[start..].find('"').unwrap();
                input[start..end]
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
            };
            (attr("name"), attr("value"))
        })
        .collect();
    form.push(("decision".to_owned(), "allow".to_owned()));
    let decided = browser
        .post(format!("{}/oauth/authorizations", sandbox.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 302);
    let location = decided.headers()["location"].to_str().unwrap().to_owned();
    reqwest::Url::parse(&location).unwrap()
}

#[tokio::test]
async fn zendesk_oauth_round_trip_gives_a_token_the_api_accepts_once() {
    let sandbox = zendesk().await;
    let setup = setup();
    let state = "st&te/with?odd=chars";
    let back = allow(&sandbox, state).await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let query: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(query["state"], state, "state comes back unchanged");
    let code = query["code"].clone();

    let token = setup
        .zendesk_oauth_token(
            sandbox.base_url(),
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &code,
            REDIRECT,
        )
        .await
        .expect("the code is exchanged");
    let body = sandbox.requests_matching("POST", "/oauth/tokens")[0]
        .json()
        .clone();
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["redirect_uri"], REDIRECT);
    assert_eq!(body["scope"], OAUTH_SCOPE);

    let oauth = ZendeskAccess {
        base_url: sandbox.base_url().to_owned(),
        auth: ZendeskAuth::OAuth {
            access_token: token.clone(),
        },
    };
    let verified = setup.verify_zendesk(&oauth).await.expect("Bearer works");
    assert_eq!(verified.agent_email, ZD_EMAIL);
    assert!(verified.is_admin);
    let me = sandbox.requests_matching("GET", "/api/v2/users/me");
    assert_eq!(
        me.last().unwrap().header("authorization"),
        Some("Bearer [redacted]")
    );

    // The same code again: refused, and says to connect again.
    let replayed = setup
        .zendesk_oauth_token(
            sandbox.base_url(),
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &code,
            REDIRECT,
        )
        .await
        .unwrap_err();
    assert_eq!(replayed.check, checks::ZENDESK_OAUTH, "{replayed}");
    assert!(!replayed.retryable);
    assert_no_credential(&replayed, &[&code, token.expose()]);
    let refused = sandbox.requests_matching("POST", "/oauth/tokens");
    assert_eq!(refused.last().unwrap().status, Some(400));
    assert_eq!(sandbox.oauth_tokens_issued(), 1);

    // A revoked token no longer signs in.
    sandbox.revoke_oauth_tokens();
    let failure = setup.verify_zendesk(&oauth).await.unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_OAUTH, "{failure}");
    assert_no_credential(&failure, &[token.expose()]);
}

#[tokio::test]
async fn zendesk_oauth_refusals_are_named() {
    let sandbox = zendesk().await;
    let setup = setup();
    let exchange = |code: String, secret: &'static str, redirect: &'static str| {
        let setup = setup.clone();
        let base = sandbox.base_url().to_owned();
        async move {
            setup
                .zendesk_oauth_token(&base, CLIENT_ID, &Secret::new(secret), &code, redirect)
                .await
        }
    };
    let code_of = |url: reqwest::Url| {
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };

    let code = code_of(allow(&sandbox, "s1").await);
    let failure = exchange(code.clone(), "wrong-client-secret-e1e1", REDIRECT)
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_OAUTH_CLIENT, "{failure}");
    assert_no_credential(&failure, &[&code]);

    let code = code_of(allow(&sandbox, "s2").await);
    let failure = exchange(code.clone(), CLIENT_SECRET, "https://evil.example/cb")
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_OAUTH, "redirect must match");
    let failure = exchange(code, CLIENT_SECRET, REDIRECT).await.unwrap_err();
    assert_eq!(
        failure.check,
        checks::ZENDESK_OAUTH,
        "a code presented once is spent"
    );

    sandbox.set_oauth_code_lifetime(Duration::from_millis(10));
    let code = code_of(allow(&sandbox, "s3").await);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let failure = exchange(code, CLIENT_SECRET, REDIRECT).await.unwrap_err();
    assert_eq!(failure.check, checks::ZENDESK_OAUTH, "expired");
    assert_eq!(sandbox.oauth_tokens_issued(), 0);

    // An authorization request for another redirect URL gets an error page,
    // not a redirect.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(oauth_authorize_url(
            sandbox.base_url(),
            CLIENT_ID,
            "https://evil.example/cb",
            "x",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
}

#[tokio::test]
async fn a_read_only_oauth_token_cannot_write() {
    let sandbox = zendesk().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let decided = browser
        .post(format!("{}/oauth/authorizations", sandbox.base_url()))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", "read"),
            ("state", "s"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    let location = reqwest::Url::parse(decided.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = setup()
        .zendesk_oauth_token(
            sandbox.base_url(),
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &code,
            REDIRECT,
        )
        .await
        .unwrap();
    let put = reqwest::Client::new()
        .put(format!("{}/api/v2/tickets/1.json", sandbox.base_url()))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({"ticket": {"status": "open"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403);
}

fn tenant_secrets(oauth_token: &str) -> TenantSecrets {
    TenantSecrets {
        zendesk_email: ZD_EMAIL.to_owned(),
        zendesk_api_token: Secret::new(ZD_TOKEN),
        zendesk_oauth_token: Secret::new(oauth_token),
        zendesk_webhook_secret: Secret::new("zd-webhook-secret-77"),
        autotask_username: AT_USER.to_owned(),
        autotask_secret: Secret::new(AT_SECRET),
        autotask_integration_code: Secret::new(AT_CODE),
        autotask_callout_username: "callout".to_owned(),
        autotask_callout_password: Secret::new("callout-pw-5e5e"),
        autotask_webhook_secret: Secret::new("at-hook-6f6f"),
        connectwise_public_key: String::new(),
        connectwise_private_key: Secret::default(),
        connectwise_client_id: String::new(),
        inventory_signing_secret: Secret::default(),
    }
}

#[tokio::test]
async fn the_tenant_client_uses_oauth_when_it_has_a_token_and_the_api_token_otherwise() {
    let sandbox = zendesk().await;
    let code = allow(&sandbox, "s")
        .await
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = setup()
        .zendesk_oauth_token(
            sandbox.base_url(),
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &code,
            REDIRECT,
        )
        .await
        .unwrap();
    let http = bridge::connectors::http::client();
    for (secrets, scheme) in [
        (tenant_secrets(""), "Basic [redacted]"),
        (tenant_secrets(token.expose()), "Bearer [redacted]"),
    ] {
        sandbox.clear_requests();
        let client = ZendeskClient::for_tenant(http.clone(), sandbox.base_url(), &secrets, None);
        let user = client.preflight().await.expect("signs in");
        assert_eq!(user.email, ZD_EMAIL);
        assert_eq!(
            sandbox.requests()[0].header("authorization"),
            Some(scheme),
            "{scheme}"
        );
        assert!(!format!("{client:?}").contains(token.expose()));
    }
}

// -------------------------------------------------------------- secrets file

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "psa-setup-checks-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn the_secrets_file_round_trips_privately_and_keeps_other_tenants() {
    let path = temp_path("secrets.toml");
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta-msp").unwrap();
    let file = SecretsFile::open(&path).unwrap();
    assert!(matches!(
        file.tenant_secrets(&acme).await,
        Err(SecretsError::Missing(_))
    ));

    let first = tenant_secrets("oauth-access-1a1a");
    file.put_tenant_secrets(&acme, &first).await.unwrap();
    assert_eq!(file.tenant_secrets(&acme).await.unwrap(), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // Another process (here: another handle) adds a tenant; neither write
    // loses the other's.
    let other = SecretsFile::open(&path).unwrap();
    other
        .put_tenant_secrets(&beta, &tenant_secrets(""))
        .await
        .unwrap();
    let mut second = tenant_secrets("");
    second.autotask_secret = Secret::new("rotated-at-secret-2b2b");
    file.put_tenant_secrets(&acme, &second).await.unwrap();
    assert_eq!(file.tenant_secrets(&acme).await.unwrap(), second);
    assert_eq!(
        file.tenant_secrets(&beta).await.unwrap(),
        tenant_secrets("")
    );

    // The read-only reader the local process uses reads it back the same.
    let reader = bridge::adapters::embedded::FileSecrets::load(&path).unwrap();
    assert_eq!(reader.tenant_secrets(&acme).await.unwrap(), second);
    assert_eq!(
        reader.tenant_secrets(&beta).await.unwrap(),
        tenant_secrets("")
    );

    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("secrets.toml")]);

    let shown = format!("{file:?} {other:?}");
    assert!(
        shown.contains("acme") && shown.contains("beta-msp"),
        "{shown}"
    );
    for value in [
        ZD_TOKEN,
        AT_SECRET,
        AT_CODE,
        "oauth-access-1a1a",
        "rotated-at-secret-2b2b",
        "zd-webhook-secret-77",
        "callout-pw-5e5e",
        "at-hook-6f6f",
    ] {
        assert!(!shown.contains(value), "{shown}");
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn a_secrets_file_that_cannot_be_written_is_unavailable_without_values() {
    let path = temp_path("missing-dir/secrets.toml");
    let file = SecretsFile::open(&path).unwrap();
    let err = file
        .put_tenant_secrets(&TenantId::parse("acme").unwrap(), &tenant_secrets(""))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretsError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(AT_SECRET) && !shown.contains(ZD_TOKEN),
        "{shown}"
    );
}

// ---------------------------------------------------------------- ConnectWise

async fn connectwise() -> ConnectWiseSandbox {
    ConnectWiseSandbox::start(ConnectWiseSandboxConfig {
        company_id: CW_COMPANY.to_owned(),
        public_key: CW_PUBLIC.to_owned(),
        private_key: CW_PRIVATE.to_owned(),
        ..ConnectWiseSandboxConfig::default()
    })
    .await
    .expect("connectwise sandbox starts")
}

fn cw_access(site: &str, company: &str, private: &str, client_id: &str) -> ConnectWiseAccess {
    ConnectWiseAccess {
        site: site.to_owned(),
        company_id: company.to_owned(),
        public_key: CW_PUBLIC.to_owned(),
        private_key: Secret::new(private),
        client_id: client_id.to_owned(),
    }
}

fn cw_good(sandbox: &ConnectWiseSandbox) -> ConnectWiseAccess {
    cw_access(sandbox.site_url(), CW_COMPANY, CW_PRIVATE, CW_CLIENT_ID)
}

#[tokio::test]
async fn right_connectwise_keys_verify_and_name_the_codebase() {
    let sandbox = connectwise().await;
    let verified = setup()
        .verify_connectwise(&cw_good(&sandbox))
        .await
        .expect("verifies");
    assert_eq!(verified.api_base_url, sandbox.api_base());
    assert_eq!(verified.codebase, sandbox.codebase());
}

#[tokio::test]
async fn each_wrong_connectwise_setting_names_its_own_check() {
    let sandbox = connectwise().await;
    let site = sandbox.site_url();
    let setup = setup();
    let cases = [
        (
            cw_access(site, "nosuchco", CW_PRIVATE, CW_CLIENT_ID),
            checks::CONNECTWISE_COMPANY,
        ),
        (
            cw_access(site, CW_COMPANY, "cw-wrong-private-9a9a", CW_CLIENT_ID),
            checks::CONNECTWISE_KEYS,
        ),
        (
            cw_access(site, CW_COMPANY, CW_PRIVATE, ""),
            checks::CONNECTWISE_CLIENT_ID,
        ),
        (
            cw_access(site, CW_COMPANY, "", CW_CLIENT_ID),
            checks::CONNECTWISE_KEYS,
        ),
        (
            cw_access(site, "", CW_PRIVATE, CW_CLIENT_ID),
            checks::CONNECTWISE_COMPANY,
        ),
        (
            cw_access(
                "http://cw.msp.example",
                CW_COMPANY,
                CW_PRIVATE,
                CW_CLIENT_ID,
            ),
            checks::CONNECTWISE_SITE,
        ),
        (
            cw_access(site, CW_COMPANY, "pasted\nkey", CW_CLIENT_ID),
            checks::CONNECTWISE_KEYS,
        ),
    ];
    for (access, check) in cases {
        let failure = setup.verify_connectwise(&access).await.unwrap_err();
        assert_eq!(failure.check, check, "{failure}");
        assert!(!failure.retryable, "{failure}");
        assert_no_credential(&failure, &[]);
    }
    let failure = setup
        .verify_connectwise(&cw_access(
            site,
            CW_COMPANY,
            "cw-wrong-private-9a9a",
            CW_CLIENT_ID,
        ))
        .await
        .unwrap_err();
    assert!(failure.fix.contains("public/private key pair"), "{failure}");
}

#[tokio::test]
async fn an_unreachable_connectwise_is_worth_retrying() {
    let sandbox = connectwise().await;
    let access = cw_good(&sandbox);
    drop(sandbox);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let failure = setup().verify_connectwise(&access).await.unwrap_err();
    assert_eq!(failure.check, checks::CONNECTWISE_SITE, "{failure}");
    assert!(failure.retryable, "{failure}");
    assert_no_credential(&failure, &[]);
}

/// A ConnectWise that finds the company but answers every API call with
/// `status`: what the sandbox cannot be made to do (a security role
/// without rights; cloud's 404 for keys of another company).
async fn connectwise_answering(status: u16) -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/login/companyinfo/{company}",
            get(|| async {
                axum::Json(serde_json::json!({"Codebase": "v2025_1/", "CompanyID": CW_COMPANY}))
            }),
        )
        .fallback(move || async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                axum::Json(serde_json::json!({
                    "code": "Forbidden",
                    "message": format!("not allowed; key {CW_PUBLIC}"),
                })),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_security_role_without_rights_and_cloud_404s_are_named() {
    let site = connectwise_answering(403).await;
    let failure = setup()
        .verify_connectwise(&cw_access(&site, CW_COMPANY, CW_PRIVATE, CW_CLIENT_ID))
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::CONNECTWISE_PERMISSIONS, "{failure}");
    assert!(failure.fix.contains("Service Desk"), "{failure}");
    assert_no_credential(&failure, &[]);

    let site = connectwise_answering(404).await;
    let failure = setup()
        .verify_connectwise(&cw_access(&site, CW_COMPANY, CW_PRIVATE, CW_CLIENT_ID))
        .await
        .unwrap_err();
    assert_eq!(failure.check, checks::CONNECTWISE_KEYS, "{failure}");
}

#[tokio::test]
async fn connectwise_status_choices_are_those_of_the_board_asked_for() {
    let sandbox = connectwise().await;
    let desk = sandbox.add_board("Service Desk");
    let noc = sandbox.add_board("NOC");
    let access = cw_good(&sandbox);
    let setup = setup();
    let boards = setup.connectwise_boards(&access).await.expect("boards");
    assert_eq!(boards.iter().map(|b| b.id).collect::<Vec<_>>(), [desk, noc]);
    let on_desk = setup
        .connectwise_board_choices(&access, desk)
        .await
        .expect("desk values");
    let on_noc = setup
        .connectwise_board_choices(&access, noc)
        .await
        .expect("noc values");
    let id_of = |choices: &bridge::setup::PsaChoices, name: &str| {
        choices
            .statuses
            .iter()
            .find(|s| s.label == name)
            .map(|s| s.value)
    };
    assert_eq!(
        id_of(&on_desk, "Waiting Customer"),
        sandbox.board_status(desk, "Waiting Customer")
    );
    assert_eq!(
        id_of(&on_noc, "Waiting Customer"),
        sandbox.board_status(noc, "Waiting Customer")
    );
    assert_ne!(
        id_of(&on_desk, "New"),
        id_of(&on_noc, "New"),
        "the same name is another status on each board"
    );
    assert!(
        on_desk
            .statuses
            .iter()
            .any(|s| s.label == "Old Status" && !s.is_active),
        "inactive statuses are kept and marked"
    );
    assert_eq!(
        on_desk.queues.iter().map(|q| q.value).collect::<Vec<_>>(),
        [desk, noc]
    );
    assert_eq!(
        on_desk
            .priorities
            .iter()
            .find(|p| p.label == "Priority 3 - Normal Response")
            .map(|p| p.value),
        sandbox.priority("Priority 3 - Normal Response")
    );
    assert!(on_desk.note_publish.is_empty());
    let gone = setup
        .connectwise_board_choices(&access, 999_999)
        .await
        .unwrap_err();
    assert_eq!(gone.check, checks::CONNECTWISE_BOARD, "{gone}");
}

#[tokio::test]
async fn connectwise_board_checks_name_the_statuses_the_mapping_lacks() {
    let sandbox = connectwise().await;
    let board = sandbox.add_board("Service Desk");
    let access = cw_good(&sandbox);
    let setup = setup();
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let failures = setup
        .connectwise_board_checks(
            &access,
            board,
            &names(&["New", "waiting customer", "Complete"]),
        )
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let failures = setup
        .connectwise_board_checks(&access, board, &names(&["New", "Escalated", "Old Status"]))
        .await;
    assert_eq!(
        failures
            .iter()
            .map(|f| f.check.as_str())
            .collect::<Vec<_>>(),
        [checks::CONNECTWISE_BOARD_STATUSES]
    );
    assert!(
        failures[0].fix.contains("\"Escalated\" or \"Old Status\""),
        "an inactive status is as good as none: {}",
        failures[0]
    );
    let failures = setup.connectwise_board_checks(&access, 999_999, &[]).await;
    assert_eq!(failures[0].check, checks::CONNECTWISE_BOARD);
    let companies = {
        sandbox.add_company("Globex", "Globex");
        sandbox.add_company("AcmeCorp", "Acme Corp");
        setup
            .connectwise_companies(&access)
            .await
            .expect("companies")
    };
    assert_eq!(
        companies
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["Acme Corp", "Globex"]
    );
}

#[tokio::test]
async fn the_connectwise_callback_is_registered_once_however_often_asked() {
    let sandbox = connectwise().await;
    let access = cw_good(&sandbox);
    let setup = setup();
    let url = "https://bridge.example/t/acme/connectwise";
    let first = setup
        .register_connectwise_callback(&access, url, "psa-bridge acme")
        .await
        .expect("registered");
    assert!(first.contains("registered the ticket callback"), "{first}");
    let again = setup
        .register_connectwise_callback(&access, url, "psa-bridge acme")
        .await
        .expect("registered again");
    assert!(again.contains("already registered"), "{again}");
    let ours: Vec<_> = sandbox
        .callbacks()
        .into_iter()
        .filter(|c| c.url == url)
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].description, "psa-bridge acme");
    assert!(ours[0].callback_type.eq_ignore_ascii_case("ticket"));
    assert!(ours[0].level.eq_ignore_ascii_case("owner"));
    let refused = setup
        .register_connectwise_callback(&access, "ftp://bridge.example/x", "psa-bridge acme")
        .await
        .unwrap_err();
    assert_eq!(refused.check, checks::CONNECTWISE_CALLBACK);
}
