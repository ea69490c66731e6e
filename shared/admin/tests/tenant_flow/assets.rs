//! Asset sync in the console: the last run's summary read from the store,
//! "Check asset setup" and "Sync assets now" on the pages and the API, for a
//! tenant with `assets` settings; a tenant without them, and a deployment
//! without the port, say so.

use bridge::config::{AssetMode, AssetSettings, FieldValue, ReferenceNumberSource};
use bridge::model::TenantId;
use bridge::ports::Condition;
use bridge::repo::Repo;

use super::*;

/// Gives `tenant` asset settings, as an operator's configuration does.
async fn configure_assets(h: &Harness, tenant: &str) {
    let repo = Repo::new(h.store.as_ref());
    let id = TenantId::parse(tenant).unwrap();
    let mut config = repo.tenant(&id).await.unwrap().unwrap().value;
    config.assets = Some(AssetSettings {
        mode: AssetMode::Advanced,
        product_id: 29682999,
        ci_type: Some(FieldValue::Text("Server".into())),
        category_id: None,
        reference_number: ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: "Inventory Device ID".into(),
    });
    repo.put_tenant(&config, Condition::Always).await.unwrap();
}

const MISSING: &str = "the configuration item user-defined field \"RAM\" does not exist in Autotask: create it (text) in Admin > Features & Settings > Configuration Items > User-Defined Fields";

#[tokio::test]
async fn an_admin_checks_the_asset_setup_and_syncs_assets_from_the_api() {
    let w = world().await;
    let h = &w.h;
    let admin = tenant_with_admin(h, "acme").await;
    configure_assets(h, "acme").await;
    let base = "/admin/api/tenants/acme/assets";

    let view = call(h, &admin, Method::GET, base, None).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    let view = view.json();
    assert_eq!(view["configured"], true);
    assert_eq!(view["settings"]["mode"], "advanced");
    assert_eq!(view["settings"]["ci_type"], "Server");
    assert_eq!(view["settings"]["schedule_days"], json!([10, 25]));
    assert!(view.get("last_run").is_none(), "{view}");

    // Something is missing: the check lists it, a run writes nothing.
    *w.assets.problems.lock().unwrap() = vec![MISSING.to_owned()];
    let check = call(h, &admin, Method::POST, &format!("{base}/check"), None).await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert_eq!(check.json()["ready"], false);
    assert_eq!(check.json()["problems"], json!([MISSING]));
    let run = call(h, &admin, Method::POST, &format!("{base}/sync"), None).await;
    assert_eq!(run.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", run.body);
    assert_eq!(run.json()["code"], "checks_failed");
    assert_eq!(run.json()["failures"][0]["fix"], MISSING);
    assert!(call(h, &admin, Method::GET, base, None)
        .await
        .json()
        .get("last_run")
        .is_none());

    // Fixed in the PSA: ready, and a run answers its summary.
    w.assets.problems.lock().unwrap().clear();
    let check = call(h, &admin, Method::POST, &format!("{base}/check"), None).await;
    assert_eq!(check.json(), json!({"ready": true, "problems": []}));
    let run = call(h, &admin, Method::POST, &format!("{base}/sync"), None).await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    let run = run.json();
    assert_eq!(
        (run["created"].clone(), run["updated"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(run["finished"], true);
    assert!(run["message"]
        .as_str()
        .unwrap()
        .starts_with("2 created, 1 updated, 0 deactivated, 0 unchanged, 1 failed"));
    assert_eq!(*w.assets.synced.lock().unwrap(), ["acme", "acme"]);

    // The summary, read back from the store.
    let view = call(h, &admin, Method::GET, base, None).await.json();
    let last = &view["last_run"];
    assert_eq!(last["state"], "finished");
    assert_eq!(
        (last["created"].clone(), last["failed"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(last["failures"][0]["device"], "dev-9");
    assert!(view["last_message"]["message"]
        .as_str()
        .unwrap()
        .contains("2 created"));
    assert_eq!(view["last_message"]["level"], "error");
}

#[tokio::test]
async fn the_dashboard_and_the_assets_page_show_the_last_run_and_run_the_buttons() {
    let w = world().await;
    let h = &w.h;
    let admin = tenant_with_admin(h, "acme").await;

    // Without asset settings: no section, and the buttons say why not.
    let page = h.get("/admin/tenants/acme", Some(&admin.0)).await;
    assert!(!page.body.contains("id=\"assets\""), "{}", page.body);
    let page = h.get("/admin/tenants/acme/assets", Some(&admin.0)).await;
    assert!(page.body.contains("id=\"assets-off\""), "{}", page.body);
    let page = h
        .form(
            "/admin/tenants/acme/assets/sync",
            Some(&admin.0),
            &[("csrf", &admin.1)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("not configured"), "{}", page.body);
    assert!(!w.assets.called());

    configure_assets(h, "acme").await;
    let page = h.get("/admin/tenants/acme", Some(&admin.0)).await;
    assert!(page.body.contains("id=\"assets\""), "{}", page.body);
    assert!(
        page.body.contains("No asset sync run yet."),
        "{}",
        page.body
    );
    for button in ["Check asset setup", "Sync assets now"] {
        assert!(page.body.contains(button), "{button}");
    }

    // Check: what is missing and where to create it.
    *w.assets.problems.lock().unwrap() = vec![MISSING.to_owned()];
    let page = h
        .form(
            "/admin/tenants/acme/assets/check",
            Some(&admin.0),
            &[("csrf", &admin.1)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"asset-problems\""), "{}", page.body);
    assert!(
        page.body
            .contains("Admin &#62; Features &#38; Settings &#62; Configuration Items"),
        "{}",
        page.body
    );
    // A run with the setup missing: nothing written, each problem listed.
    let page = h
        .form(
            "/admin/tenants/acme/assets/sync",
            Some(&admin.0),
            &[("csrf", &admin.1)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("nothing was written"), "{}", page.body);
    assert!(page.body.contains("id=\"failures\""), "{}", page.body);

    w.assets.problems.lock().unwrap().clear();
    let page = h
        .form(
            "/admin/tenants/acme/assets/check",
            Some(&admin.0),
            &[("csrf", &admin.1)],
        )
        .await;
    assert!(
        page.body.contains("Asset setup is complete."),
        "{}",
        page.body
    );
    let page = h
        .form(
            "/admin/tenants/acme/assets/sync",
            Some(&admin.0),
            &[("csrf", &admin.1)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"asset-run-done\""), "{}", page.body);
    assert!(page.body.contains("dev-9"), "{}", page.body);
    assert!(
        page.body
            .contains("2 created, 1 updated, 0 deactivated, 0 unchanged, 1 failed"),
        "{}",
        page.body
    );

    // The dashboard reads the run back from the store.
    let page = h.get("/admin/tenants/acme", Some(&admin.0)).await;
    assert!(page.body.contains("Last run: finished"), "{}", page.body);
    assert!(
        page.body.contains("id=\"asset-last-message\""),
        "{}",
        page.body
    );
    let page = h.get("/admin/tenants/acme/assets", Some(&admin.0)).await;
    assert!(page.body.contains("id=\"asset-failures\""), "{}", page.body);
    assert!(page.body.contains("advanced mode"), "{}", page.body);
}

#[tokio::test]
async fn without_the_asset_port_the_buttons_are_not_available_but_the_summary_shows() {
    let bare = Harness::new().await;
    let op = bare.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let resp = call(
        &bare,
        &op,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    configure_assets(&bare, "acme").await;
    let view = call(
        &bare,
        &op,
        Method::GET,
        "/admin/api/tenants/acme/assets",
        None,
    )
    .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.json()["configured"], true);
    for action in ["check", "sync"] {
        let resp = call(
            &bare,
            &op,
            Method::POST,
            &format!("/admin/api/tenants/acme/assets/{action}"),
            None,
        )
        .await;
        assert_eq!(resp.status, StatusCode::NOT_IMPLEMENTED, "{}", resp.body);
        assert!(resp.body.contains("not available in this deployment"));
    }
    let page = bare
        .form(
            "/admin/tenants/acme/assets/sync",
            Some(&op.0),
            &[("csrf", &op.1)],
        )
        .await;
    assert!(
        page.body.contains("not available in this deployment"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("No asset sync run yet."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_tenant_with_asset_sync_gets_its_first_run_when_it_turns_active() {
    let w = world().await;
    let h = &w.h;
    let admin = onboard(&w, "acme").await;
    assert!(
        w.assets.synced.lock().unwrap().is_empty(),
        "no asset settings, no run"
    );

    // Paused, given asset settings, and turned active again.
    configure_assets(h, "acme").await;
    let repo = Repo::new(h.store.as_ref());
    let id = TenantId::parse("acme").unwrap();
    let mut config = repo.tenant(&id).await.unwrap().unwrap().value;
    config.active = false;
    repo.put_tenant(&config, Condition::Always).await.unwrap();
    let resp = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/activate",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);

    // The run goes on in the background; the answer did not wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.assets.synced.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(*w.assets.synced.lock().unwrap(), ["acme"]);

    // Activating an active tenant again starts no second run.
    let resp = call(
        h,
        &admin,
        Method::POST,
        "/admin/api/tenants/acme/activate",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(*w.assets.synced.lock().unwrap(), ["acme"]);
}
