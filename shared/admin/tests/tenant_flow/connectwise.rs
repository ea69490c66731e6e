//! A tenant on ConnectWise PSA through the router, with the fake
//! ConnectWise: each failed verification names its check and what to fix,
//! the status choices follow the service board, the keys never leave the
//! secrets store, and the tenant turns active only when every check passes
//! (which registers the callback, once).

use bridge::config::TenantConfig;

use super::*;

const TENANT: &str = "cwacme";
const API: &str = "/admin/api/tenants/cwacme";
const PAGES: &str = "/admin/tenants/cwacme";
const WRONG_PRIVATE: &str = "cw-private-key-wrong-0000";
const CALLBACK_URL: &str = "http://127.0.0.1:8080/t/cwacme/connectwise";

async fn config(h: &Harness) -> TenantConfig {
    bridge::repo::Repo::new(h.store.as_ref())
        .tenant(&bridge::model::TenantId::parse(TENANT).unwrap())
        .await
        .unwrap()
        .expect("the tenant's config")
        .value
}

fn keys(public: &str, private: &str, client_id: &str) -> Value {
    json!({
        "region": "onprem", "site": CW_SITE, "company_id": CW_COMPANY,
        "public_key": public, "private_key": private, "client_id": client_id,
    })
}

fn checks_of(resp: &Resp) -> Vec<String> {
    resp.json()["failures"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

/// A ConnectWise tenant with its admin, the checklist confirmed and Zendesk
/// connected.
async fn prepared(w: &World) -> (String, String) {
    let admin = tenant_with_admin_on(&w.h, TENANT, "connectwise").await;
    confirm_and_connect_zendesk(&w.h, &admin).await;
    admin
}

async fn confirm_and_connect_zendesk(h: &Harness, admin: &(String, String)) {
    let list = call(h, admin, Method::GET, &format!("{API}/checklist"), None)
        .await
        .json();
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["api_member", "security_role", "board", "callbacks"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"].is_null()),
        "nothing to check live before the keys: {list}"
    );
    let resp = call(
        h,
        admin,
        Method::POST,
        &format!("{API}/checklist"),
        Some(json!({"confirmed": ids})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let resp = call(h, admin, Method::POST, &format!("{API}/zendesk"),
        Some(json!({"base_url": "https://acme.zendesk.com", "email": "agent@acme.example", "token": ZD_TOKEN}))).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}

/// The forward rows' suggestions as a save's table.
fn suggested(rows: &Value) -> serde_json::Map<String, Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            Some((
                r["zendesk"].as_str()?.to_owned(),
                json!(r["suggestion"].as_i64()?),
            ))
        })
        .collect()
}

fn row<'a>(rows: &'a Value, zendesk: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["zendesk"] == zendesk)
        .unwrap_or_else(|| panic!("no row {zendesk} in {rows}"))
}

fn labels(values: &Value) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_connectwise_msp_goes_from_checklist_to_active() {
    let w = world().await;
    let h = &w.h;
    let admin = tenant_with_admin_on(h, TENANT, "connectwise").await;
    let created = config(h).await;
    assert!(
        created.connectwise.is_some() && !created.active,
        "a ConnectWise tenant starts inactive, on ConnectWise"
    );
    // The keys wait for the checklist.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/connectwise"),
        Some(keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID)),
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.body.contains("checklist"), "{}", resp.body);
    confirm_and_connect_zendesk(h, &admin).await;

    // Each failure is its own check, with what to fix.
    let post = |body: Value| {
        let admin = admin.clone();
        async move {
            call(
                h,
                &admin,
                Method::POST,
                &format!("{API}/connectwise"),
                Some(body),
            )
            .await
        }
    };
    let mut wrong_site = keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID);
    wrong_site["region"] = json!("na");
    let resp = post(wrong_site).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        checks_of(&resp),
        ["ConnectWise company id"],
        "{}",
        resp.body
    );
    let resp = post(keys(CW_PUBLIC, WRONG_PRIVATE, CW_CLIENT_ID)).await;
    assert_eq!(checks_of(&resp), ["ConnectWise API keys"], "{}", resp.body);
    assert!(
        resp.json()["failures"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("public/private key pair"),
        "{}",
        resp.body
    );
    let resp = post(keys(CW_PUBLIC_NO_RIGHTS, CW_PRIVATE, CW_CLIENT_ID)).await;
    assert_eq!(
        checks_of(&resp),
        ["ConnectWise security role"],
        "{}",
        resp.body
    );
    assert!(resp.json()["failures"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("Service Desk"));
    let mut down = keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID);
    down["site"] = json!(CW_SITE_DOWN);
    let resp = post(down).await;
    assert_eq!(checks_of(&resp), ["ConnectWise site"], "{}", resp.body);
    assert_eq!(resp.json()["retryable"], true, "unreachable: try again");
    let resp = post(keys(CW_PUBLIC, CW_PRIVATE, "")).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.json()["error"].as_str().unwrap().contains("clientId"));
    let mut plain_http = keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID);
    plain_http["site"] = json!("http://cw.msp.example");
    let resp = post(plain_http).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.json()["error"].as_str().unwrap().contains("https://"));
    let stored = w.secrets.stored.lock().unwrap()[TENANT].clone();
    assert!(
        stored.connectwise_private_key.is_empty() && stored.connectwise_public_key.is_empty(),
        "keys that failed are not kept"
    );

    // The right keys: stored in the secrets store only, shown masked.
    let resp = post(keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let status = resp.json();
    assert_eq!(status["public_key"], "set, ends in 2468");
    assert_eq!(status["private_key"], "set, ends in 8842");
    assert_eq!(status["client_id"], "set, ends in 77c3");
    assert_eq!(status["region"], "onprem");
    assert_eq!(status["site"], CW_SITE);
    assert_eq!(status["connection"]["version"], "v2025.1");
    assert_eq!(status["callback_url"], CALLBACK_URL);
    for key in [CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID] {
        assert!(!resp.body.contains(key), "{key} echoed");
    }
    let stored = w.secrets.stored.lock().unwrap()[TENANT].clone();
    assert_eq!(stored.connectwise_private_key.expose(), CW_PRIVATE);
    assert_eq!(stored.connectwise_public_key, CW_PUBLIC);
    assert_eq!(stored.connectwise_client_id, CW_CLIENT_ID);
    assert_eq!(
        stored.zendesk_api_token.expose(),
        ZD_TOKEN,
        "merged, not replaced"
    );
    let cw = config(h).await.connectwise.expect("connectwise settings");
    assert_eq!(
        (cw.site.as_str(), cw.company_id.as_str()),
        (CW_SITE, CW_COMPANY)
    );
    // Saving again without keys keeps the stored ones.
    let mut keep = keys("", "", "");
    keep["region"] = json!("onprem");
    let resp = post(keep).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);

    // The checklist now checks live.
    let list = call(h, &admin, Method::GET, &format!("{API}/checklist"), None)
        .await
        .json();
    let result = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(result("api_member")["ok"], true, "{list}");
    assert!(result("api_member")["detail"]
        .as_str()
        .unwrap()
        .contains("v2025.1"));
    assert_eq!(result("security_role")["ok"], true, "{list}");
    assert!(result("board")["detail"]
        .as_str()
        .unwrap()
        .contains("2 active service boards"));
    assert!(result("callbacks").is_null());

    // Not active yet: no board, no mappings, no webhook secret.
    let resp = call(h, &admin, Method::POST, &format!("{API}/activate"), None).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let checks = checks_of(&resp);
    for check in ["Service board", "Zendesk webhook signing secret"] {
        assert!(checks.contains(&check.to_owned()), "{checks:?}");
    }
    assert!(
        !checks.iter().any(|c| c.starts_with("Autotask")),
        "nothing of Autotask: {checks:?}"
    );
    assert!(w.setup.connectwise.lock().unwrap().callbacks.is_empty());

    // Mappings: the statuses offered are those of the board shown.
    let view = call(h, &admin, Method::GET, &format!("{API}/mappings"), None)
        .await
        .json();
    assert_eq!(view["psa"], "connectwise");
    assert_eq!(view["board_shown"], CW_BOARD_DESK, "the first active board");
    assert_eq!(labels(&view["queues"]), ["Service Desk", "NOC"]);
    assert_eq!(
        labels(&view["statuses"]),
        [
            "New",
            "In Progress",
            "Waiting Customer",
            "Waiting Vendor",
            "Complete",
            "Closed"
        ],
        "active statuses of the service desk board"
    );
    let status = suggested(&view["status"]);
    assert_eq!(
        json!(status),
        json!({"new": 101, "open": 102, "pending": 103, "hold": 104, "solved": 105, "closed": 106})
    );
    let priority = suggested(&view["priority"]);
    assert_eq!(
        json!(priority),
        json!({"urgent": 1, "normal": 3}),
        "a word of the priority's name is the suggestion; nothing guessed for high and low"
    );
    let noc = call(
        h,
        &admin,
        Method::GET,
        &format!("{API}/mappings?board={CW_BOARD_NOC}"),
        None,
    )
    .await
    .json();
    assert_eq!(noc["board_shown"], CW_BOARD_NOC);
    assert_eq!(
        labels(&noc["statuses"]),
        ["New", "Investigating", "Escalated", "Resolved"],
        "the NOC board's own statuses"
    );
    assert_eq!(row(&noc["status"], "solved")["suggestion"], 204);
    let resp = call(
        h,
        &admin,
        Method::GET,
        &format!("{API}/mappings?board={CW_BOARD_OLD}"),
        None,
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an inactive board is not offered"
    );

    // A status of another board is refused for this one.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/mappings"),
        Some(json!({"queue_id": CW_BOARD_DESK, "status": {"open": 202}})),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    // Note visibilities are Autotask's.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/mappings"),
        Some(json!({"internal_note_publish": 1})),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );

    // The NOC board first: saved, but it has no default team.
    let priorities = json!({"urgent": 1, "high": 2, "normal": 3, "low": 4});
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/mappings"),
        Some(json!({
            "queue_id": CW_BOARD_NOC,
            "status": {"new": 201, "open": 202, "pending": 203, "hold": 203, "solved": 204, "closed": 204},
            "status_to_desk": {"202": "open"},
            "priority": priorities,
            "default_company_id": 701,
            "companies": {"501": 700},
        })),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let saved = config(h).await;
    let cw = saved.connectwise.as_ref().unwrap();
    assert_eq!(cw.board_id, Some(CW_BOARD_NOC));
    assert_eq!(cw.default_company_id, Some(701));
    assert_eq!(cw.companies_by_organization.get(&501), Some(&700));
    assert_eq!(saved.mappings.status["open"], "Investigating");
    assert_eq!(
        saved.autotask.default_company_id, None,
        "nothing on Autotask's side"
    );
    let resp = call(h, &admin, Method::POST, &format!("{API}/activate"), None).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        checks_of(&resp).contains(&"ConnectWise board team".to_owned()),
        "{}",
        resp.body
    );

    // Back on the service desk: what the NOC names is shown, not dropped.
    let desk = call(
        h,
        &admin,
        Method::GET,
        &format!("{API}/mappings?board={CW_BOARD_DESK}"),
        None,
    )
    .await
    .json();
    let open = row(&desk["status"], "open");
    assert_eq!(open["current"], "Investigating");
    assert_eq!(open["missing"], true, "{open}");
    assert!(
        desk["status_to_desk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["psa_label"] == "Investigating" && r["missing"] == true),
        "the reverse entry of another board's status is listed: {}",
        desk["status_to_desk"]
    );
    let mut status = status.clone();
    status.insert("closed".into(), json!(106));
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/mappings"),
        Some(json!({"queue_id": CW_BOARD_DESK, "status": status, "priority": priorities})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let saved = config(h).await;
    assert_eq!(
        saved.connectwise.as_ref().unwrap().board_id,
        Some(CW_BOARD_DESK)
    );
    assert_eq!(saved.mappings.status["open"], "In Progress");

    // A status taken off the board is shown as missing and fails activation.
    w.setup
        .connectwise
        .lock()
        .unwrap()
        .statuses
        .iter_mut()
        .filter(|s| s.1 == 106)
        .for_each(|s| s.3 = false);
    let view = call(h, &admin, Method::GET, &format!("{API}/mappings"), None)
        .await
        .json();
    let closed = row(&view["status"], "closed");
    assert_eq!(
        (closed["current"].as_str(), closed["missing"].as_bool()),
        (Some("Closed"), Some(true))
    );
    let resp = call(h, &admin, Method::POST, &format!("{API}/activate"), None).await;
    assert!(
        checks_of(&resp).contains(&"ConnectWise board statuses".to_owned()),
        "{}",
        resp.body
    );
    w.setup
        .connectwise
        .lock()
        .unwrap()
        .statuses
        .iter_mut()
        .filter(|s| s.1 == 106)
        .for_each(|s| s.3 = true);

    // Inbound: Zendesk's signing secret; ConnectWise needs none.
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/webhooks/rotate"),
        Some(json!({"kind": "autotask_webhook"})),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/webhooks/rotate"),
        Some(json!({"kind": "zendesk_webhook", "secret": "zendesk-signing-secret-8080"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let hooks = call(h, &admin, Method::GET, &format!("{API}/webhooks"), None)
        .await
        .json();
    let kinds: Vec<&str> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["zendesk_webhook", "connectwise_callback"]);
    assert_eq!(hooks[1]["url"], CALLBACK_URL);
    assert!(hooks[1]["registered"].is_null());

    // Every check passes: active, and the callback registered once.
    let resp = call(h, &admin, Method::POST, &format!("{API}/activate"), None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(config(h).await.active);
    let dash = call(h, &admin, Method::GET, API, None).await.json();
    assert_eq!(dash["tenant"]["active"], true);
    assert_eq!(dash["psa_connected"], true);
    let expected = vec![(CALLBACK_URL.to_owned(), format!("psa-bridge {TENANT}"))];
    assert_eq!(w.setup.connectwise.lock().unwrap().callbacks, expected);
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/connectwise/callback"),
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.json()["summary"]
        .as_str()
        .unwrap()
        .contains("already registered"));
    assert_eq!(
        w.setup.connectwise.lock().unwrap().callbacks,
        expected,
        "registering again changes nothing"
    );
    let list = call(h, &admin, Method::GET, &format!("{API}/checklist"), None)
        .await
        .json();
    let board = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "board")
        .unwrap();
    assert_eq!(board["result"]["ok"], true, "{board}");
}

#[tokio::test]
async fn the_connectwise_pages_name_each_failure_and_follow_the_chosen_board() {
    let w = world().await;
    let h = &w.h;
    let admin = prepared(&w).await;
    let page = h.get(&format!("{PAGES}/connectwise"), Some(&admin.0)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(r#"id="nav-psa">ConnectWise</a>"#),
        "the navigation leads to the ConnectWise page"
    );
    assert!(page.body.contains(CALLBACK_URL));
    let csrf = page.csrf_field();
    let form = |private: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("region", "onprem".to_owned()),
            ("site", CW_SITE.to_owned()),
            ("company_id", CW_COMPANY.to_owned()),
            ("public_key", CW_PUBLIC.to_owned()),
            ("private_key", private.to_owned()),
            ("client_id", CW_CLIENT_ID.to_owned()),
        ]
    };
    let fields = form(WRONG_PRIVATE);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = h
        .form(&format!("{PAGES}/connectwise"), Some(&admin.0), &fields)
        .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.body.contains("ConnectWise API keys") && resp.body.contains("public/private key pair"),
        "{}",
        resp.body
    );
    assert!(
        resp.body.contains(&format!(r#"value="{CW_COMPANY}""#))
            && resp.body.contains(&format!(r#"value="{CW_SITE}""#)),
        "where and who stay typed"
    );
    assert!(!resp.body.contains(WRONG_PRIVATE) && !resp.body.contains(CW_PUBLIC));
    let fields = form(CW_PRIVATE);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = h
        .form(&format!("{PAGES}/connectwise"), Some(&admin.0), &fields)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("verified and saved"));

    // The board picker re-renders the status rows with that board's statuses.
    let desk = h.get(&format!("{PAGES}/mappings"), Some(&admin.0)).await;
    assert_eq!(desk.status, StatusCode::OK, "{}", desk.body);
    assert!(desk.body.contains(r#"<select name="board" id="board">"#));
    assert!(desk.body.contains("Waiting Customer") && !desk.body.contains("Investigating"));
    assert!(!desk.body.contains("Public note visibilities"));
    let noc = h
        .get(
            &format!("{PAGES}/mappings?board={CW_BOARD_NOC}"),
            Some(&admin.0),
        )
        .await;
    assert_eq!(noc.status, StatusCode::OK, "{}", noc.body);
    assert!(noc.body.contains("Investigating") && !noc.body.contains("Waiting Customer"));
    assert!(noc
        .body
        .contains(&format!(r#"name="queue_id" value="{CW_BOARD_NOC}""#)));
    let csrf = noc.csrf_field();
    let board = CW_BOARD_NOC.to_string();
    let resp = h
        .form(
            &format!("{PAGES}/mappings"),
            Some(&admin.0),
            &[
                ("csrf", &csrf),
                ("queue_id", &board),
                ("status.open", "202"),
                ("priority.urgent", "1"),
                ("default_company_id", "700"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("Mappings saved."));
    let saved = config(h).await;
    assert_eq!(saved.connectwise.unwrap().board_id, Some(CW_BOARD_NOC));
    assert_eq!(saved.mappings.status["open"], "Investigating");

    // The callback from its page, with the outcome shown.
    let resp = h
        .form(
            &format!("{PAGES}/connectwise/callback"),
            Some(&admin.0),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(
        resp.body.contains("registered the ticket callback"),
        "{}",
        resp.body
    );
    let hooks = h.get(&format!("{PAGES}/webhooks"), Some(&admin.0)).await;
    assert!(hooks.body.contains("ConnectWise callback") && !hooks.body.contains("Autotask"));

    // Autotask's pages are not this tenant's.
    let resp = h.get(&format!("{PAGES}/autotask"), Some(&admin.0)).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.body.contains("ConnectWise"));
    let resp = call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/autotask"),
        Some(json!({"username": "api@acme", "secret": AT_SECRET, "integration_code": AT_CODE})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn connectwise_keys_never_show_in_pages_the_api_the_store_or_the_log() {
    let w = world().await;
    let h = &w.h;
    let admin = prepared(&w).await;
    call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/connectwise"),
        Some(keys(CW_PUBLIC, WRONG_PRIVATE, CW_CLIENT_ID)),
    )
    .await;
    let admin = {
        let resp = call(
            h,
            &admin,
            Method::POST,
            &format!("{API}/connectwise"),
            Some(keys(CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID)),
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        admin
    };
    call(
        h,
        &admin,
        Method::POST,
        &format!("{API}/connectwise/callback"),
        None,
    )
    .await;
    for path in [
        "",
        "/checklist",
        "/zendesk",
        "/connectwise",
        "/mappings",
        "/webhooks",
    ] {
        let page = h.get(&format!("{PAGES}{path}"), Some(&admin.0)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        call(h, &admin, Method::GET, &format!("{API}{path}"), None).await;
    }
    let seen = h.seen.lock().unwrap().clone();
    let items = h.items().await;
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    for secret in [CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID, WRONG_PRIVATE] {
        assert!(
            !seen.iter().any(|r| r.contains(secret)),
            "{secret} in a response"
        );
        assert!(
            !items.iter().any(|i| i.contains(secret)),
            "{secret} in a store item"
        );
        assert!(!logs.contains(secret), "{secret} in the log");
    }
    assert!(w.secrets.values().contains(&CW_PRIVATE.to_owned()));
}
