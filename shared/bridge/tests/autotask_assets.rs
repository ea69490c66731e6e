//! Asset sync's Autotask side (`AssetPsa` on `AutotaskClient`) against a
//! running Autotask sandbox, over real HTTP: the bodies it sends (asserted as
//! the sandbox recorded them), lookups by UDF and serial number, the setup
//! check, and the budget every asset call draws on.

use std::collections::BTreeMap;
use std::sync::Arc;

use bridge::assets::ports::{AssetPsa, CiFields, CiPatch, NewCi};
use bridge::config::{AssetSettings, Secret, TenantConfig, TenantSecrets, ASSET_UDFS};
use bridge::connectors::autotask::AutotaskClient;
use bridge::connectors::budget::{AutotaskBudget, AutotaskBudgets};
use bridge::connectors::HttpConnectors;
use bridge::error::{ApiError, SyncError};
use bridge::model::TenantId;
use bridge::ports::{Connectors, Psa, ServiceDesk};
use chrono::{TimeZone, Utc};
use sandbox::autotask::{AutotaskSandbox, AutotaskSandboxConfig, API_ROOT};
use serde_json::{json, Value};
use testkit::fakes::FixedClock;

const USER: &str = "assets@msp.example";
const SECRET: &str = "asset-secret-1";
const CODE: &str = "ASSET-CODE-1";
const INVENTORY_UDF: &str = "Inventory Device ID";

async fn sandbox() -> AutotaskSandbox {
    AutotaskSandbox::start(AutotaskSandboxConfig {
        username: USER.to_owned(),
        secret: SECRET.to_owned(),
        integration_code: CODE.to_owned(),
        ..AutotaskSandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

async fn client(sandbox: &AutotaskSandbox) -> AutotaskClient {
    AutotaskClient::connect(
        bridge::connectors::http::client(),
        &sandbox.zone_lookup_url(),
        USER,
        &Secret::new(SECRET),
        &Secret::new(CODE),
    )
    .await
    .expect("zone discovery")
}

fn define_all_udfs(sandbox: &AutotaskSandbox) {
    for name in ASSET_UDFS {
        sandbox.add_ci_udf(name);
    }
    sandbox.add_ci_udf(INVENTORY_UDF);
}

/// The JSON bodies of the `method` requests at exactly `{API_ROOT}/{path}`.
fn bodies(sandbox: &AutotaskSandbox, method: &str, path: &str) -> Vec<Value> {
    let path = format!("{API_ROOT}/{path}");
    sandbox
        .requests_matching(method, &path)
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.body.expect("a JSON body"))
        .collect()
}

fn settings(value: Value) -> AssetSettings {
    serde_json::from_value(value).expect("asset settings")
}

fn udfs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn new_ci(company: i64, product: i64, inventory_id: &str, serial: &str) -> NewCi {
    NewCi {
        company_id: company,
        product_id: product,
        ci_type: None,
        category_id: None,
        fields: CiFields {
            reference_title: Some(format!("host-{inventory_id}")),
            reference_number: Some(inventory_id.to_owned()),
            serial_number: Some(serial.to_owned()),
            warranty_expiration: None,
            is_active: true,
            udfs: udfs(&[(INVENTORY_UDF, inventory_id)]),
        },
    }
}

#[tokio::test]
async fn a_create_sends_every_field_once_and_the_sandbox_stores_them() {
    let sandbox = sandbox().await;
    define_all_udfs(&sandbox);
    let company = sandbox.add_company("Contoso");
    let product = sandbox.add_product("Dell PowerEdge R650");
    let category = sandbox.add_ci_category("Servers");
    let server = sandbox.ci_type_value("Server").unwrap();
    let client = client(&sandbox).await;
    let ci = NewCi {
        company_id: company,
        product_id: product,
        ci_type: Some(server),
        category_id: Some(category),
        fields: CiFields {
            reference_title: Some("ACME-FS01".to_owned()),
            reference_number: Some("dev-8812".to_owned()),
            serial_number: Some("CZ1234ABC".to_owned()),
            warranty_expiration: Some(Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()),
            is_active: true,
            udfs: udfs(&[
                (INVENTORY_UDF, "dev-8812"),
                ("Make", "Dell"),
                ("RAM", "64 GB"),
            ]),
        },
    };
    let id = client.create_ci(&ci).await.expect("created");

    assert_eq!(
        bodies(&sandbox, "POST", "ConfigurationItems"),
        vec![json!({
            "companyID": company, "productID": product, "isActive": true,
            "configurationItemType": server, "configurationItemCategoryID": category,
            "referenceTitle": "ACME-FS01", "referenceNumber": "dev-8812",
            "serialNumber": "CZ1234ABC", "warrantyExpirationDate": "2027-03-01T00:00:00Z",
            "userDefinedFields": [
                {"name": INVENTORY_UDF, "value": "dev-8812"},
                {"name": "Make", "value": "Dell"},
                {"name": "RAM", "value": "64 GB"}]
        })]
    );
    let stored = sandbox.configuration_item(id).unwrap();
    assert_eq!(
        (
            stored.company_id,
            stored.product_id,
            stored.ci_type,
            stored.category_id
        ),
        (company, product, Some(server), Some(category))
    );
    assert_eq!(stored.udfs, ci.fields.udfs);

    let read = client.get_ci(id).await.unwrap().expect("found");
    assert_eq!(
        (
            read.company_id,
            read.is_active,
            read.reference_title.as_deref(),
            read.serial_number.as_deref()
        ),
        (company, true, Some("ACME-FS01"), Some("CZ1234ABC"))
    );
    assert_eq!(read.udfs, ci.fields.udfs);
    assert_eq!(client.get_ci(424242).await.unwrap(), None);
}

#[tokio::test]
async fn a_title_longer_than_autotask_keeps_is_cut_to_the_stated_length() {
    let sandbox = sandbox().await;
    let company = sandbox.add_company("Contoso");
    let client = client(&sandbox).await;
    let mut ci = new_ci(company, sandbox.default_product_id(), "dev-1", "SN1");
    ci.fields.udfs.clear();
    ci.fields.reference_title = Some("é".repeat(250));
    let id = client.create_ci(&ci).await.expect("created, not refused");
    assert_eq!(
        sandbox
            .configuration_item(id)
            .unwrap()
            .reference_title
            .unwrap()
            .chars()
            .count(),
        200
    );
}

#[tokio::test]
async fn a_patch_sends_only_what_changed_and_never_the_company() {
    let sandbox = sandbox().await;
    define_all_udfs(&sandbox);
    let company = sandbox.add_company("Contoso");
    let client = client(&sandbox).await;
    let mut ci = new_ci(company, sandbox.default_product_id(), "dev-1", "SN1");
    ci.fields.udfs.insert("Make".to_owned(), "Dell".to_owned());
    let id = client.create_ci(&ci).await.unwrap();
    let before = sandbox.configuration_item(id).unwrap();
    sandbox.clear_requests();

    let patch = CiPatch {
        serial_number: Some("SN1-replaced".to_owned()),
        is_active: Some(false),
        udfs: udfs(&[("RAM", "32 GB")]),
        ..CiPatch::default()
    };
    client.update_ci(id, &patch).await.expect("patched");
    assert_eq!(
        bodies(&sandbox, "PATCH", "ConfigurationItems"),
        vec![
            json!({"id": id, "serialNumber": "SN1-replaced", "isActive": false,
                    "userDefinedFields": [{"name": "RAM", "value": "32 GB"}]})
        ]
    );
    let after = sandbox.configuration_item(id).unwrap();
    assert_eq!(after.serial_number.as_deref(), Some("SN1-replaced"));
    assert!(!after.is_active);
    assert_eq!(after.reference_title, before.reference_title);
    assert_eq!(after.udfs["Make"], "Dell");
    assert_eq!(after.udfs["RAM"], "32 GB");

    // A flag alone needs no field descriptions: one request.
    sandbox.clear_requests();
    let calls = sandbox.api_calls();
    let reactivate = CiPatch {
        is_active: Some(true),
        ..CiPatch::default()
    };
    client.update_ci(id, &reactivate).await.unwrap();
    assert_eq!(sandbox.api_calls() - calls, 1);
    assert_eq!(
        bodies(&sandbox, "PATCH", "ConfigurationItems"),
        vec![json!({"id": id, "isActive": true})]
    );

    let calls = sandbox.api_calls();
    client.update_ci(id, &CiPatch::default()).await.unwrap();
    assert_eq!(sandbox.api_calls(), calls, "an empty patch sends nothing");
}

#[tokio::test]
async fn a_write_naming_a_udf_autotask_lacks_is_a_permanent_rejection() {
    let sandbox = sandbox().await;
    sandbox.add_ci_udf(INVENTORY_UDF);
    let company = sandbox.add_company("Contoso");
    let client = client(&sandbox).await;
    let mut ci = new_ci(company, sandbox.default_product_id(), "dev-1", "SN1");
    ci.fields
        .udfs
        .insert("BIOS Name".to_owned(), "AMI".to_owned());
    let err = client.create_ci(&ci).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { status: 500, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("BIOS Name"), "{err}");
    assert!(sandbox.configuration_items().is_empty());
}

#[tokio::test]
async fn cis_are_found_by_the_inventory_udf_and_by_serial_number() {
    let sandbox = sandbox().await;
    sandbox.add_ci_udf(INVENTORY_UDF);
    let company = sandbox.add_company("Contoso");
    let client = client(&sandbox).await;
    let product = sandbox.default_product_id();
    let first = client
        .create_ci(&new_ci(company, product, "dev-1", "SN-A"))
        .await
        .unwrap();
    let second = client
        .create_ci(&new_ci(company, product, "dev-2", "SN-B"))
        .await
        .unwrap();
    // A retired CI with the same serial, created later: the active one wins.
    let mut retired = new_ci(company, product, "dev-3", "SN-A");
    retired.fields.is_active = false;
    client.create_ci(&retired).await.unwrap();
    // A CI made by hand, without the UDF.
    let manual = sandbox.add_configuration_item(company, "cluster-9");

    sandbox.clear_requests();
    let found = client
        .find_ci_by_udf(INVENTORY_UDF, "dev-2")
        .await
        .unwrap()
        .expect("found by UDF");
    assert_eq!(found.id, second);
    assert_eq!(found.udfs[INVENTORY_UDF], "dev-2");
    let queries = bodies(&sandbox, "POST", "ConfigurationItems/query");
    assert_eq!(
        queries[0]["filter"],
        json!([{"op": "eq", "field": INVENTORY_UDF, "value": "dev-2", "udf": true}])
    );
    assert_eq!(
        client
            .find_ci_by_udf(INVENTORY_UDF, "dev-404")
            .await
            .unwrap(),
        None
    );

    let by_serial = client.find_ci_by_serial("SN-A").await.unwrap().unwrap();
    assert_eq!((by_serial.id, by_serial.is_active), (first, true));
    assert_eq!(by_serial.udfs[INVENTORY_UDF], "dev-1");
    assert_eq!(client.find_ci_by_serial("SN-Z").await.unwrap(), None);

    let plain = client.get_ci(manual).await.unwrap().unwrap();
    assert!(plain.udfs.is_empty(), "no UDF values, none read: {plain:?}");
}

#[tokio::test]
async fn cis_are_found_by_exact_reference_number_and_ci_type_labels_resolve() {
    let sandbox = sandbox().await;
    let company = sandbox.add_company("Contoso");
    let client = client(&sandbox).await;
    let product = sandbox.default_product_id();
    let mut plain = new_ci(company, product, "dev-1", "SN-A");
    plain.fields.udfs.clear();
    let first = client.create_ci(&plain).await.unwrap();

    sandbox.clear_requests();
    let found = client
        .find_ci_by_reference("dev-1")
        .await
        .unwrap()
        .expect("found by reference number");
    assert_eq!(found.id, first);
    let queries = bodies(&sandbox, "POST", "ConfigurationItems/query");
    assert_eq!(
        queries[0]["filter"],
        json!([{"op": "eq", "field": "referenceNumber", "value": "dev-1"}])
    );
    assert_eq!(client.find_ci_by_reference("dev-404").await.unwrap(), None);
    // Another case is another inventory id.
    assert_eq!(client.find_ci_by_reference("DEV-1").await.unwrap(), None);
    // Longer than the field keeps: it cannot name the device for certain.
    let long = "d".repeat(400);
    sandbox.clear_requests();
    assert_eq!(client.find_ci_by_reference(&long).await.unwrap(), None);
    assert!(bodies(&sandbox, "POST", "ConfigurationItems/query").is_empty());

    use bridge::config::FieldValue;
    let server = sandbox.ci_type_value("Server").unwrap();
    assert_eq!(
        client
            .ci_type_value(&FieldValue::Text(" server ".into()))
            .await
            .unwrap(),
        Some(server)
    );
    assert_eq!(
        client
            .ci_type_value(&FieldValue::Text("No such type".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client.ci_type_value(&FieldValue::Number(77)).await.unwrap(),
        Some(77)
    );
}

#[tokio::test]
async fn a_lookup_by_a_udf_autotask_lacks_is_refused_permanently() {
    let sandbox = sandbox().await;
    let client = client(&sandbox).await;
    let err = client
        .find_ci_by_udf(INVENTORY_UDF, "dev-1")
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn the_setup_check_lists_exactly_the_missing_udfs_and_where_to_create_them() {
    let sandbox = sandbox().await;
    let product = sandbox.add_product("Managed workstation");
    let client = client(&sandbox).await;
    for name in ["BIOS Name", "DNS", "Make", "Model", "RAM"] {
        sandbox.add_ci_udf(name);
    }
    let advanced = settings(json!({"mode": "advanced", "product_id": product}));
    let problems = client.asset_setup_problems(&advanced).await.unwrap();
    let mut missing: Vec<&str> = ASSET_UDFS
        .iter()
        .copied()
        .filter(|n| !["BIOS Name", "DNS", "Make", "Model", "RAM"].contains(n))
        .collect();
    missing.push(INVENTORY_UDF);
    assert_eq!(problems.len(), missing.len(), "{problems:#?}");
    for (problem, name) in problems.iter().zip(&missing) {
        assert!(problem.contains(&format!("\"{name}\"")), "{problem}");
        assert!(
            problem.contains(
                "Admin > Features & Settings > Configuration Items > User-Defined Fields"
            ),
            "{problem}"
        );
    }

    // Simple mode writes no UDFs, so none is required.
    let simple = settings(json!({"product_id": product}));
    assert_eq!(
        client.asset_setup_problems(&simple).await.unwrap(),
        Vec::<String>::new()
    );

    define_all_udfs(&sandbox);
    assert_eq!(
        client.asset_setup_problems(&advanced).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_setup_check_names_a_missing_or_inactive_product_type_and_category() {
    let sandbox = sandbox().await;
    let product = sandbox.add_product("Laptop");
    let category = sandbox.add_ci_category("Workstations");
    let client = client(&sandbox).await;

    let good =
        settings(json!({"product_id": product, "ci_type": "server", "category_id": category}));
    assert_eq!(
        client.asset_setup_problems(&good).await.unwrap(),
        Vec::<String>::new()
    );
    let by_number = settings(json!({"product_id": product, "ci_type": 2}));
    assert!(client
        .asset_setup_problems(&by_number)
        .await
        .unwrap()
        .is_empty());

    let bad = settings(json!({"product_id": 77, "ci_type": "Mainframe", "category_id": 9999}));
    let problems = client.asset_setup_problems(&bad).await.unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("no product 77"), "{}", problems[0]);
    assert!(
        problems[0].contains("Admin > Products and Services > Products"),
        "{}",
        problems[0]
    );
    assert!(problems[1].contains("\"Mainframe\""), "{}", problems[1]);
    assert!(problems[1].contains("Server (2)"), "{}", problems[1]);
    assert!(problems[2].contains("category 9999"), "{}", problems[2]);

    sandbox.set_product_active(product, false);
    let retired_type =
        settings(json!({"product_id": product, "ci_type": "Legacy Device (retired)"}));
    let problems = client.asset_setup_problems(&retired_type).await.unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("inactive"), "{}", problems[0]);
    assert!(problems[1].contains("inactive"), "{}", problems[1]);
}

#[tokio::test]
async fn asset_calls_draw_on_the_tenants_budget_and_stop_before_autotask_when_it_is_spent() {
    let sandbox = sandbox().await;
    sandbox.add_ci_udf(INVENTORY_UDF);
    let company = sandbox.add_company("Contoso");
    let client = Arc::new(client(&sandbox).await);
    let clock = Arc::new(FixedClock::at(Utc::now()));
    let budgets = AutotaskBudgets::new(
        AutotaskBudget {
            requests_per_hour: 3_600,
            burst: 3,
            ..AutotaskBudget::default()
        },
        clock,
    );
    let tenant = TenantId::parse("acme").unwrap();
    let assets = budgets.wrap_assets(&tenant, client);

    let calls = sandbox.api_calls();
    let ci = new_ci(company, sandbox.default_product_id(), "dev-1", "SN1");
    // Token 1 (the create also reads the field descriptions, under it).
    let id = assets.create_ci(&ci).await.unwrap();
    // Tokens 2 and 3.
    assert!(assets.get_ci(id).await.unwrap().is_some());
    assets.find_ci_by_serial("SN1").await.unwrap();
    let reached = sandbox.api_calls() - calls;
    assert_eq!(reached, 4);

    let err = assets
        .find_ci_by_udf(INVENTORY_UDF, "dev-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::RateLimited { .. }),
        "the fourth call finds the budget spent: {err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        sandbox.api_calls() - calls,
        reached,
        "a call turned away never reaches Autotask"
    );
    let err = assets.find_ci_by_reference("dev-1").await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    let err = assets
        .ci_type_value(&bridge::config::FieldValue::Text("Server".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(sandbox.api_calls() - calls, reached);
    // An empty patch and a CI type given as a number cost nothing, even
    // with the budget spent.
    assets.update_ci(id, &CiPatch::default()).await.unwrap();
    assert_eq!(
        assets
            .ci_type_value(&bridge::config::FieldValue::Number(12))
            .await
            .unwrap(),
        Some(12)
    );
}

fn tenant_config(sandbox: &AutotaskSandbox, connectwise: bool) -> TenantConfig {
    let mut config = json!({
        "id": "acme",
        "zendesk": {"base_url": "http://127.0.0.1:9"},
        "autotask": {"zone_lookup_url": sandbox.zone_lookup_url()},
    });
    if connectwise {
        config["connectwise"] = json!({"site": "http://127.0.0.1:9", "company_id": "acme"});
    }
    serde_json::from_value(config).expect("tenant config")
}

fn tenant_secrets() -> TenantSecrets {
    serde_json::from_value(json!({
        "zendesk_email": "agent@msp.example",
        "zendesk_api_token": "zd-token",
        "zendesk_webhook_secret": "zd-hook",
        "autotask_username": USER,
        "autotask_secret": SECRET,
        "autotask_integration_code": CODE,
    }))
    .expect("tenant secrets")
}

#[tokio::test]
async fn the_http_connectors_give_autotask_tenants_budgeted_assets_and_refuse_connectwise_ones() {
    let sandbox = sandbox().await;
    let company = sandbox.add_company("Contoso");
    let ci = sandbox.add_configuration_item(company, "cluster-1");
    let connectors = HttpConnectors::default();
    let secrets = tenant_secrets();

    let calls = sandbox.api_calls();
    let assets = connectors
        .assets(&tenant_config(&sandbox, false), &secrets)
        .await
        .expect("an Autotask tenant has assets");
    let found = assets.get_ci(ci).await.unwrap().unwrap();
    assert_eq!(found.reference_number.as_deref(), Some("cluster-1"));
    assert_eq!(sandbox.api_calls() - calls, 1);

    let refused = connectors
        .asset_psa(&tenant_config(&sandbox, true), &secrets)
        .await
        .err()
        .expect("ConnectWise tenants are refused");
    assert!(!refused.is_retryable());
    assert!(
        refused
            .to_string()
            .contains("asset sync supports Autotask tenants"),
        "{refused}"
    );
}

/// Connectors that predate asset sync.
struct TicketsOnly;

#[async_trait::async_trait]
impl Connectors for TicketsOnly {
    async fn desk(
        &self,
        _: &TenantConfig,
        _: &TenantSecrets,
    ) -> Result<Arc<dyn ServiceDesk>, SyncError> {
        Err(SyncError::Config("no desk".to_owned()))
    }

    async fn psa(&self, _: &TenantConfig, _: &TenantSecrets) -> Result<Arc<dyn Psa>, SyncError> {
        Err(SyncError::Config("no psa".to_owned()))
    }
}

#[tokio::test]
async fn connectors_without_asset_support_refuse_permanently() {
    let sandbox = sandbox().await;
    let err = TicketsOnly
        .assets(&tenant_config(&sandbox, false), &tenant_secrets())
        .await
        .err()
        .expect("refused");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("asset sync is not available"),
        "{err}"
    );
}
