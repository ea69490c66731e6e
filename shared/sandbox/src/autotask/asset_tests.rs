//! The asset entities over HTTP: configuration items, products, categories,
//! CI types, UDFs and the ticket's primary CI, each strictness rule with a
//! request the real API refuses.

use reqwest::Method;
use serde_json::{json, Value};

use super::*;

const USER: &str = "api-user@sandbox.example";
const SECRET: &str = "sandbox-secret";
const CODE: &str = "SANDBOXINTEGRATIONCODE";

async fn start() -> AutotaskSandbox {
    AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap()
}

/// Status and JSON body of one API call.
async fn call(
    sandbox: &AutotaskSandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{API_ROOT}/{path}", sandbox.base_url()))
        .header("UserName", USER)
        .header("Secret", SECRET)
        .header("ApiIntegrationCode", CODE);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn error_texts(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("an errors list in {body}"))
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

async fn create(sandbox: &AutotaskSandbox, body: Value) -> (u16, Value) {
    call(sandbox, Method::POST, "ConfigurationItems", Some(body)).await
}

async fn query(sandbox: &AutotaskSandbox, body: Value) -> (u16, Value) {
    call(
        sandbox,
        Method::POST,
        "ConfigurationItems/query",
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_create_needs_company_product_and_active_flag_and_stores_nothing_otherwise() {
    let sandbox = start().await;
    let (status, body) = create(&sandbox, json!({"referenceTitle": "FS01"})).await;
    assert_eq!(status, 500);
    let texts = error_texts(&body);
    for field in ["companyID", "productID", "isActive"] {
        assert!(
            texts.contains(&format!("Missing Required Field: {field}")),
            "{texts:?}"
        );
    }
    assert!(sandbox.configuration_items().is_empty());
}

#[tokio::test]
async fn a_create_refuses_references_to_nothing_and_inactive_products() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let product = sandbox.add_product("Dell PowerEdge R650");
    let base = json!({"companyID": company, "productID": product, "isActive": true});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({"companyID": 999}), "companyID"),
        (json!({"productID": 999}), "productID"),
        (
            json!({"configurationItemCategoryID": 999}),
            "configurationItemCategoryID",
        ),
        (
            json!({"configurationItemType": 99}),
            "configurationItemType",
        ),
        // An inactive picklist value is as good as none.
        (
            json!({"configurationItemType": sandbox.ci_type_value("Legacy Device (retired)").unwrap()}),
            "configurationItemType",
        ),
    ];
    for (extra, field) in cases {
        let (status, body) = create(&sandbox, with(extra.clone())).await;
        assert_eq!(status, 500, "{extra}");
        assert_eq!(
            error_texts(&body),
            vec![format!(
                "Value does not reference an existing entity for {field} . "
            )]
        );
    }
    sandbox.set_product_active(product, false);
    let (status, body) = create(&sandbox, base.clone()).await;
    assert_eq!(status, 500);
    assert!(error_texts(&body)[0].contains("inactive"), "{body}");
    let (status, body) = create(&sandbox, with(json!({"isActive": "yes"}))).await;
    assert_eq!((status, error_texts(&body).len()), (500, 2), "{body}");
    let (status, body) = create(
        &sandbox,
        with(json!({"productID": sandbox.default_product_id(), "serialNumber": "x".repeat(101)})),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        error_texts(&body)[0].contains("maximum length of 100"),
        "{body}"
    );
    assert!(sandbox.configuration_items().is_empty());
}

#[tokio::test]
async fn a_full_create_is_read_back_with_its_udfs_and_gets_the_default_category_when_none_is_given()
{
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let product = sandbox.add_product("Dell PowerEdge R650");
    let category = sandbox.add_ci_category("Servers");
    sandbox.add_ci_udf("Inventory ID");
    sandbox.add_ci_udf("Make");
    let server = sandbox.ci_type_value("server").unwrap();
    let (status, created) = create(
        &sandbox,
        json!({"companyID": company, "productID": product, "isActive": true,
               "referenceTitle": "ACME-FS01", "referenceNumber": "cluster-7f3a",
               "serialNumber": "CZ1234ABC", "warrantyExpirationDate": "2027-03-01T00:00:00Z",
               "configurationItemType": server, "configurationItemCategoryID": category,
               "userDefinedFields": [{"name": "inventory id", "value": "dev-8812"}]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["itemId"].as_i64().unwrap();
    let ci = sandbox.configuration_item(id).unwrap();
    assert_eq!(
        (
            ci.company_id,
            ci.product_id,
            ci.is_active,
            ci.ci_type,
            ci.category_id
        ),
        (company, product, true, Some(server), Some(category))
    );
    assert_eq!(ci.serial_number.as_deref(), Some("CZ1234ABC"));
    assert_eq!(
        ci.warranty_expiration.map(|t| t.to_rfc3339()),
        Some("2027-03-01T00:00:00+00:00".to_owned())
    );
    // Stored under the defined name, whatever the case sent.
    assert_eq!(
        ci.udfs,
        [("Inventory ID".to_owned(), "dev-8812".to_owned())].into()
    );

    let (_, read) = call(
        &sandbox,
        Method::GET,
        &format!("ConfigurationItems/{id}"),
        None,
    )
    .await;
    let item = &read["item"];
    assert_eq!(item["referenceTitle"], "ACME-FS01");
    assert_eq!(item["warrantyExpirationDate"], "2027-03-01T00:00:00.000Z");
    let udfs = item["userDefinedFields"].as_array().unwrap();
    assert!(udfs.contains(&json!({"name": "Inventory ID", "value": "dev-8812"})));
    assert!(udfs.contains(&json!({"name": "Make", "value": null})));

    let (_, plain) = create(
        &sandbox,
        json!({"companyID": company, "productID": product, "isActive": false}),
    )
    .await;
    let plain = plain["itemId"].as_i64().unwrap();
    assert_eq!(
        sandbox.configuration_item(plain).unwrap().category_id,
        Some(DEFAULT_CATEGORY_FOR_TESTS)
    );
    let (_, read) = call(
        &sandbox,
        Method::GET,
        &format!("ConfigurationItems/{plain}"),
        None,
    )
    .await;
    assert!(
        read["item"].get("userDefinedFields").is_none(),
        "no UDF values, no list: {read}"
    );
    let (status, missing) = call(&sandbox, Method::GET, "ConfigurationItems/999999", None).await;
    assert_eq!((status, missing), (200, json!({"item": null})));
}

const DEFAULT_CATEGORY_FOR_TESTS: i64 = super::assets::DEFAULT_CATEGORY;

#[tokio::test]
async fn an_unknown_udf_is_refused_with_a_500_and_nothing_is_written() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    sandbox.add_ci_udf("Make");
    let (status, body) = create(
        &sandbox,
        json!({"companyID": company, "productID": sandbox.default_product_id(), "isActive": true,
               "userDefinedFields": [{"name": "Make", "value": "Dell"}, {"name": "RAM", "value": "16 GB"}]}),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        error_texts(&body),
        vec!["The user-defined field \"RAM\" does not exist for the ConfigurationItems entity."]
    );
    assert!(sandbox.configuration_items().is_empty());

    let id = sandbox.add_configuration_item(company, "cl-1");
    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"id": id, "userDefinedFields": [{"name": "RAM", "value": "8"}]})),
    )
    .await;
    assert_eq!(status, 500);
    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"id": id, "userDefinedFields": [{"name": "Make", "value": 7}]})),
    )
    .await;
    assert_eq!(status, 500, "UDF values are strings");
    assert!(sandbox.configuration_item(id).unwrap().udfs.is_empty());
}

#[tokio::test]
async fn a_patch_changes_only_what_it_names_and_never_the_company() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let other = sandbox.add_company("Fabrikam");
    sandbox.add_ci_udf("Make");
    sandbox.add_ci_udf("Model");
    let (_, created) = create(
        &sandbox,
        json!({"companyID": company, "productID": sandbox.default_product_id(), "isActive": true,
               "referenceTitle": "FS01", "serialNumber": "SN1",
               "userDefinedFields": [{"name": "Make", "value": "Dell"}, {"name": "Model", "value": "R650"}]}),
    )
    .await;
    let id = created["itemId"].as_i64().unwrap();
    let before = sandbox.configuration_item(id).unwrap();
    let (status, body) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"id": id, "companyID": other, "isActive": false,
                    "userDefinedFields": [{"name": "Model", "value": "R660"}]})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"itemId": id})));
    let after = sandbox.configuration_item(id).unwrap();
    assert_eq!(after.company_id, company, "companyID is ignored on update");
    assert!(!after.is_active);
    assert_eq!(after.reference_title, before.reference_title);
    assert_eq!(after.serial_number.as_deref(), Some("SN1"));
    assert_eq!(after.udfs["Make"], "Dell");
    assert_eq!(after.udfs["Model"], "R660");

    let (status, body) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"referenceTitle": "x"})),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(error_texts(&body), vec!["Missing Required Field: id"]);
    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"id": 999999, "referenceTitle": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "ConfigurationItems",
        Some(json!({"id": id, "productID": 5})),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(sandbox.configuration_item(id).unwrap(), after);
}

#[tokio::test]
async fn there_is_no_delete() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let id = sandbox.add_configuration_item(company, "cl-1");
    let (status, body) = call(
        &sandbox,
        Method::DELETE,
        &format!("ConfigurationItems/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 405);
    assert!(body["Message"].as_str().unwrap().contains("DELETE"));
    assert!(sandbox.configuration_item(id).is_some());
}

#[tokio::test]
async fn queries_match_one_udf_and_standard_fields_and_omit_udfs_when_none_has_a_value() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let other = sandbox.add_company("Fabrikam");
    sandbox.add_ci_udf("Inventory ID");
    sandbox.add_ci_udf("Make");
    let mut ids = Vec::new();
    for (n, (owner, active)) in [(company, true), (company, false), (other, true)]
        .into_iter()
        .enumerate()
    {
        let (_, created) = create(
            &sandbox,
            json!({"companyID": owner, "productID": sandbox.default_product_id(), "isActive": active,
                   "serialNumber": format!("SN{n}"), "referenceNumber": format!("ref-{n}"),
                   "userDefinedFields": [{"name": "Inventory ID", "value": format!("dev-{n}")}]}),
        )
        .await;
        ids.push(created["itemId"].as_i64().unwrap());
    }
    let bare = sandbox.add_configuration_item(company, "cl-bare");
    let found = |body: &Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("items in {body}"))
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };

    let (status, body) = query(
        &sandbox,
        json!({"MaxRecords": 500, "filter": [{"op": "and", "items": [
            {"op": "eq", "field": "companyID", "value": company},
            {"op": "eq", "field": "Inventory ID", "value": "dev-1", "udf": true}]}]}),
    )
    .await;
    assert_eq!((status, found(&body)), (200, vec![ids[1]]));
    assert_eq!(
        body["items"][0]["userDefinedFields"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (status, body) = query(
        &sandbox,
        json!({"filter": [
            {"op": "eq", "field": "Inventory ID", "value": "dev-1", "udf": true},
            {"op": "or", "items": [{"op": "eq", "field": "Make", "value": "Dell", "udf": true}]}]}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(error_texts(&body)[0].contains("more than one user-defined field"));

    let (status, _) = query(
        &sandbox,
        json!({"filter": [{"op": "eq", "field": "Nickname", "value": "x", "udf": true}]}),
    )
    .await;
    assert_eq!(status, 500, "an undefined UDF cannot be queried");
    let (status, _) = query(
        &sandbox,
        json!({"filter": [{"op": "eq", "field": "Inventory ID", "value": "dev-1"}]}),
    )
    .await;
    assert_eq!(status, 500, "a UDF is not a field without \"udf\": true");

    for (filter, expected) in [
        (
            json!({"op": "eq", "field": "serialNumber", "value": "SN2"}),
            vec![ids[2]],
        ),
        (
            json!({"op": "eq", "field": "referenceNumber", "value": "REF-0"}),
            vec![ids[0]],
        ),
        (
            json!({"op": "eq", "field": "companyID", "value": other}),
            vec![ids[2]],
        ),
        (
            json!({"op": "eq", "field": "isActive", "value": false}),
            vec![ids[1]],
        ),
    ] {
        let (status, body) = query(&sandbox, json!({"filter": [filter]})).await;
        assert_eq!((status, found(&body)), (200, expected), "{filter}");
    }

    let (_, body) = query(
        &sandbox,
        json!({"filter": [{"op": "eq", "field": "referenceNumber", "value": "cl-bare"}]}),
    )
    .await;
    assert_eq!(found(&body), vec![bare]);
    assert!(
        body["items"][0].get("userDefinedFields").is_none(),
        "no returned record has a UDF value: {body}"
    );
    assert_eq!(body["items"][0]["isActive"], true);
    assert_eq!(body["items"][0]["productID"], sandbox.default_product_id());
}

#[tokio::test]
async fn ci_queries_page_like_ticket_queries() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let ids: Vec<i64> = (0..5)
        .map(|n| sandbox.add_configuration_item(company, &format!("cl-{n}")))
        .collect();
    let body =
        json!({"MaxRecords": 2, "filter": [{"op": "eq", "field": "companyID", "value": company}]});
    let (_, mut page) = query(&sandbox, body.clone()).await;
    let mut seen = Vec::new();
    loop {
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        let Some(next) = page["pageDetails"]["nextPageUrl"].as_str() else {
            break;
        };
        page = reqwest::Client::new()
            .post(next)
            .header("UserName", USER)
            .header("Secret", SECRET)
            .header("ApiIntegrationCode", CODE)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(seen, ids);
    let (_, big) = query(
        &sandbox,
        json!({"MaxRecords": 10_000, "filter": [{"op": "gt", "field": "id", "value": 0}]}),
    )
    .await;
    assert_eq!(
        big["pageDetails"]["requestCount"], 500,
        "MaxRecords is at most 500"
    );
}

#[tokio::test]
async fn field_descriptions_carry_the_ci_type_picklist_lengths_and_the_udf_definitions() {
    let sandbox = start().await;
    sandbox.add_ci_udf("Make");
    let (_, fields) = call(
        &sandbox,
        Method::GET,
        "ConfigurationItems/entityInformation/fields",
        None,
    )
    .await;
    let fields = fields["fields"].as_array().unwrap();
    let field = |name: &str| fields.iter().find(|f| f["name"] == name).unwrap().clone();
    for name in ["companyID", "productID", "isActive"] {
        assert_eq!(field(name)["isRequired"], true, "{name}");
    }
    assert_eq!(field("referenceTitle")["isRequired"], false);
    assert_eq!(field("referenceNumber")["length"], 50);
    let types = field("configurationItemType");
    assert_eq!(types["isPickList"], true);
    assert!(types["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["label"] == "Server" && v["value"] == "2"));
    let (_, udfs) = call(
        &sandbox,
        Method::GET,
        "ConfigurationItems/entityInformation/userDefinedFields",
        None,
    )
    .await;
    assert_eq!(udfs["fields"][0]["name"], "Make");
    assert_eq!(udfs["fields"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn products_categories_and_types_are_readable_and_product_creates_are_strict() {
    let sandbox = start().await;
    let product = sandbox.add_product("Laptop");
    let category = sandbox.add_ci_category("Workstations");
    let (_, read) = call(&sandbox, Method::GET, &format!("Products/{product}"), None).await;
    assert_eq!(
        (
            read["item"]["name"].clone(),
            read["item"]["isActive"].clone()
        ),
        (json!("Laptop"), json!(true))
    );
    let (_, read) = call(&sandbox, Method::GET, "Products/1", None).await;
    assert_eq!(read, json!({"item": null}));
    let (_, read) = call(
        &sandbox,
        Method::GET,
        &format!("ConfigurationItemCategories/{category}"),
        None,
    )
    .await;
    assert_eq!(read["item"]["name"], "Workstations");
    let (status, body) = call(
        &sandbox,
        Method::POST,
        "ConfigurationItemTypes/query",
        Some(json!({"filter": [{"op": "eq", "field": "name", "value": "Printer"}]})),
    )
    .await;
    assert_eq!((status, body["items"][0]["id"].clone()), (200, json!(4)));

    let (status, body) = call(
        &sandbox,
        Method::POST,
        "Products",
        Some(json!({"name": "Router"})),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(error_texts(&body).len(), 3, "{body}");
    let (status, body) = call(
        &sandbox,
        Method::POST,
        "Products",
        Some(
            json!({"name": "Router", "isActive": true, "isSerialized": true,
                    "productBillingCodeID": 29682850}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &sandbox,
        Method::DELETE,
        &format!("Products/{product}"),
        None,
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_tickets_primary_ci_must_exist_be_active_and_belong_to_its_company() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let other = sandbox.add_company("Fabrikam");
    let mine = sandbox.add_configuration_item(company, "cl-1");
    let theirs = sandbox.add_configuration_item(other, "cl-2");
    let retired = sandbox.add_configuration_item(company, "cl-3");
    sandbox.set_configuration_item_active(retired, false);
    let ticket = |ci: i64| {
        json!({"companyID": company, "title": "Printer", "status": 1, "priority": 2,
               "configurationItemID": ci})
    };
    for (ci, text) in [
        (999, "does not reference an existing entity"),
        (theirs, "ticket's company"),
        (retired, "must be active"),
    ] {
        let (status, body) = call(&sandbox, Method::POST, "Tickets", Some(ticket(ci))).await;
        assert_eq!(status, 500, "{ci}");
        assert!(error_texts(&body)[0].contains(text), "{body}");
    }
    assert!(sandbox.tickets().is_empty());

    let (status, created) = call(&sandbox, Method::POST, "Tickets", Some(ticket(mine))).await;
    assert_eq!(status, 200);
    let id = created["itemId"].as_i64().unwrap();
    assert_eq!(
        sandbox.ticket(id).unwrap().configuration_item_id,
        Some(mine)
    );
    let (_, read) = call(&sandbox, Method::GET, &format!("Tickets/{id}"), None).await;
    assert_eq!(read["item"]["configurationItemID"], mine);

    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "configurationItemID": theirs})),
    )
    .await;
    assert_eq!(status, 500);
    let (status, _) = call(
        &sandbox,
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "configurationItemID": theirs, "companyID": other})),
    )
    .await;
    assert_eq!(
        status, 200,
        "moving the ticket to the CI's company allows it"
    );
    let after = sandbox.ticket(id).unwrap();
    assert_eq!(
        (after.company_id, after.configuration_item_id),
        (other, Some(theirs))
    );
}

#[tokio::test]
async fn asset_calls_are_counted_and_recorded() {
    let sandbox = start().await;
    let company = sandbox.add_company("Contoso");
    let before = sandbox.api_calls();
    let (_, created) = create(
        &sandbox,
        json!({"companyID": company, "productID": sandbox.default_product_id(), "isActive": true}),
    )
    .await;
    let id = created["itemId"].as_i64().unwrap();
    call(
        &sandbox,
        Method::GET,
        &format!("ConfigurationItems/{id}"),
        None,
    )
    .await;
    call(
        &sandbox,
        Method::GET,
        "ConfigurationItems/entityInformation/userDefinedFields",
        None,
    )
    .await;
    assert_eq!(sandbox.api_calls() - before, 3);
    assert_eq!(
        sandbox
            .api_requests_matching("POST", "ConfigurationItems")
            .len(),
        1
    );
    assert_eq!(
        sandbox
            .api_requests_matching("GET", "ConfigurationItems/")
            .len(),
        2
    );
}

#[tokio::test]
async fn a_bad_filter_is_refused_even_when_no_record_exists() {
    let sandbox = start().await;
    for filter in [
        json!({"op": "eq", "field": "Inventory ID", "value": "x", "udf": true}),
        json!({"op": "eq", "field": "serialNumbr", "value": "x"}),
    ] {
        let (status, body) = query(&sandbox, json!({ "filter": [filter] })).await;
        assert_eq!(status, 500, "{filter}");
        assert!(error_texts(&body)[0].contains("Unable to find"), "{body}");
    }
    sandbox.add_ci_udf("Inventory ID");
    let (status, body) = query(
        &sandbox,
        json!({"filter": [{"op": "eq", "field": "Inventory ID", "value": "x", "udf": true}]}),
    )
    .await;
    assert_eq!((status, body["items"].clone()), (200, json!([])));
}
