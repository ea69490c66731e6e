use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::DateTime;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::db::{ticket_json, Entity};
use super::picklists::ticket_fields;
use super::query::matches;
use super::*;
use crate::recording::REDACTED;
use std::collections::HashMap;

#[test]
fn filters_match_like_autotask() {
    let row = ticket_json(&Ticket {
        id: 7,
        ticket_number: "T20261123.0001".into(),
        title: "Printer".into(),
        description: None,
        status: 8,
        priority: 2,
        company_id: 174,
        queue_id: None,
        ticket_type: None,
        source: None,
        billing_code_id: None,
        assigned_resource_id: None,
        assigned_resource_role_id: None,
        external_id: Some("zd:42".into()),
        configuration_item_id: None,
        creator_resource_id: 1,
        create_date: DateTime::UNIX_EPOCH,
        last_activity_date: DateTime::UNIX_EPOCH,
    });
    let row = row.as_object().unwrap();
    let known = Entity::Tickets.fields();
    let check = |filter: Value| matches(row, &filter, &known, Entity::Tickets.path());
    assert_eq!(
        check(json!({"op":"eq","field":"externalID","value":"ZD:42"})),
        Ok(true)
    );
    assert_eq!(
        check(json!({"op":"eq","field":"status","value":"8"})),
        Ok(true)
    );
    assert_eq!(
        check(json!({"op":"noteq","field":"status","value":8})),
        Ok(false)
    );
    assert_eq!(check(json!({"op":"gte","field":"id","value":7})), Ok(true));
    assert_eq!(check(json!({"op":"notExist","field":"queueID"})), Ok(true));
    assert_eq!(
        check(json!({"op":"in","field":"priority","value":[1,2]})),
        Ok(true)
    );
    assert_eq!(
        check(json!({"op":"beginsWith","field":"ticketNumber","value":"t2026"})),
        Ok(true)
    );
    assert_eq!(
        check(
            json!({"op":"or","items":[{"op":"eq","field":"id","value":1},{"op":"eq","field":"id","value":7}]})
        ),
        Ok(true)
    );
    assert!(check(json!({"op":"eq","field":"externalIDs","value":"x"}))
        .unwrap_err()
        .contains("Unable to find"));
    assert!(check(json!({"op":"like","field":"id","value":1})).is_err());
}

#[test]
fn field_lists_name_every_serialized_field() {
    let fields = ticket_fields(&[]);
    let described: Vec<&str> = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in Entity::Tickets.fields() {
        assert!(
            described.contains(&name.as_str()),
            "{name} is not described"
        );
    }
}

// ---------------------------------------------------------------------------
// The handle: technician edits and request recording
// ---------------------------------------------------------------------------

const USER: &str = "api-user@sandbox.example";
const SECRET: &str = "sandbox-secret";
const CODE: &str = "SANDBOXINTEGRATIONCODE";

fn api(sandbox: &AutotaskSandbox, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{API_ROOT}/{path}", sandbox.base_url()))
        .header("UserName", USER)
        .header("Secret", SECRET)
        .header("ApiIntegrationCode", CODE)
}

/// A ticket created through the API, as the bridge would.
async fn api_ticket(sandbox: &AutotaskSandbox) -> i64 {
    let company = sandbox.add_company("Contoso");
    let created: Value = api(sandbox, reqwest::Method::POST, "Tickets")
        .json(
            &json!({"companyID": company, "title": "Printer", "status": 1, "priority": 2,
            "queueID": 29682833, "externalID": "zendesk:1"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["itemId"].as_i64().unwrap()
}

struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Delivery { headers, body });
            StatusCode::OK
        }
    });
    let (url, _task) = crate::serve(app).await.unwrap();
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("receiver open")
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_technician_edit_changes_the_fields_and_fires_like_an_api_change() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap();
    let id = api_ticket(&sandbox).await;
    let (callout_url, mut callouts) = receiver().await;
    let (webhook_url, mut webhooks) = receiver().await;
    sandbox.set_callout(Some(CalloutTarget {
        url: callout_url,
        username: "callout".to_owned(),
        password: "pw".to_owned(),
    }));
    sandbox.set_webhook(Some(WebhookTarget {
        url: webhook_url,
        secret_key: "key".to_owned(),
        excluded_resource_ids: vec![AutotaskSandboxConfig::default().api_resource_id],
    }));
    let tech = sandbox.add_resource("Tess Technician");
    let before = sandbox.ticket(id).unwrap();

    sandbox.update_as_technician(
        id,
        tech,
        &[
            ("status", json!(8)),
            ("Priority", json!("4")),
            ("title", json!("Printer on fire")),
            ("QUEUEID", json!(29682969)),
        ],
    );

    let after = sandbox.ticket(id).unwrap();
    assert_eq!(
        (
            after.status,
            after.priority,
            after.title.as_str(),
            after.queue_id
        ),
        (8, 4, "Printer on fire", Some(29682969))
    );
    assert_eq!(
        (after.company_id, &after.description, &after.external_id),
        (before.company_id, &before.description, &before.external_id)
    );
    assert!(after.last_activity_date > before.last_activity_date);

    // The callout carries the ticket as it now is, with HTTP Basic auth.
    let callout = next(&mut callouts).await;
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&callout.body).unwrap();
    assert_eq!(form["id"], id.to_string());
    assert_eq!(
        (form["Status"].as_str(), form["Priority"].as_str()),
        ("8", "4")
    );
    assert_eq!(form["QueueID"], "29682969");
    assert!(callout.headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));

    // The technician is not excluded: a signed Ticket Update webhook naming
    // exactly the changed fields, in Autotask's field names.
    let webhook = next(&mut webhooks).await;
    assert!(webhook.headers["x-hook-signature"]
        .to_str()
        .unwrap()
        .starts_with("sha1="));
    let payload: Value = serde_json::from_slice(&webhook.body).unwrap();
    assert_eq!(payload["Action"], "Update");
    assert_eq!(payload["EntityType"], "Ticket");
    assert_eq!(
        (payload["Id"].as_i64(), payload["PersonID"].as_i64()),
        (Some(id), Some(tech))
    );
    assert_eq!(
        payload["Fields"],
        json!({"Status": "8", "Priority": "4", "Title": "Printer on fire",
            "QueueID": "29682969", "TicketNumber": after.ticket_number})
    );
    let sequence = payload["SequenceNumber"].as_i64().unwrap();

    // Values equal to the current ones change nothing and fire nothing; the
    // next event is the status change after it.
    sandbox.update_as_technician(id, tech, &[("status", json!(8)), ("priority", json!(4))]);
    assert_eq!(sandbox.ticket(id).unwrap(), after);
    sandbox.set_status(id, tech, 5);
    let payload: Value = serde_json::from_slice(&next(&mut webhooks).await.body).unwrap();
    assert_eq!(payload["Fields"]["Status"], "5");
    assert_eq!(payload["SequenceNumber"].as_i64(), Some(sequence + 1));
    let form: HashMap<String, String> =
        serde_urlencoded::from_bytes(&next(&mut callouts).await.body).unwrap();
    assert_eq!(form["Status"], "5");
    assert!(callouts.try_recv().is_err() && webhooks.try_recv().is_err());

    // Technician edits are not API requests: none was recorded.
    assert!(sandbox.api_requests_matching("PATCH", "Tickets").is_empty());
}

#[tokio::test]
async fn a_technician_edit_with_an_invalid_value_panics_and_changes_nothing() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap();
    let id = api_ticket(&sandbox).await;
    let tech = sandbox.add_resource("Tess Technician");
    let before = sandbox.ticket(id).unwrap();
    let edit =
        |fields: &[(&str, Value)]| panic_message(|| sandbox.update_as_technician(id, tech, fields));

    let message = edit(&[("status", json!(8)), ("status", json!(14))]);
    assert!(message.contains("status is given twice"), "{message}");
    let message = edit(&[("status", json!(14))]);
    assert!(
        message.contains(
            "status 14 is not an active picklist value: \"On Hold (retired)\" is inactive"
        ),
        "{message}"
    );
    let message = edit(&[("priority", json!(99))]);
    assert!(
        message.contains("the priority picklist has no value 99"),
        "{message}"
    );
    let message = edit(&[("queueID", json!("Level I Support"))]);
    assert!(message.contains("a number is expected"), "{message}");
    let message = edit(&[("companyID", json!(999_999))]);
    assert!(
        message.contains("does not reference an existing entity for companyID"),
        "{message}"
    );
    let message = edit(&[("title", json!("x".repeat(256)))]);
    assert!(message.contains("maximum length of 255"), "{message}");
    let message = edit(&[("ticketNumber", json!("T1")), ("queueID", Value::Null)]);
    assert!(
        message.contains("ticketNumber is not a ticket field a technician can change")
            && message.contains("queueID cannot be set to null"),
        "{message}"
    );
    let message = panic_message(|| sandbox.set_status(424_242, tech, 5));
    assert!(
        message.contains("no ticket 424242 in the sandbox"),
        "{message}"
    );
    let message = panic_message(|| sandbox.set_status(id, tech, 14));
    assert!(
        message.contains("is not an active picklist value"),
        "{message}"
    );

    // A valid field next to an invalid one is not applied either.
    edit(&[("title", json!("Changed")), ("status", json!(14))]);
    assert_eq!(sandbox.ticket(id).unwrap(), before);
    // The sandbox still works after the panics.
    sandbox.update_as_technician(id, tech, &[("description", json!("Now with details"))]);
    assert_eq!(
        sandbox.ticket(id).unwrap().description.as_deref(),
        Some("Now with details")
    );
}

#[tokio::test]
async fn requests_are_recorded_with_credentials_redacted() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap();
    let zone = reqwest::get(format!(
        "{}/atservicesrest/v1.0/zoneInformation?user={USER}",
        sandbox.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(zone.status(), 200);
    let id = api_ticket(&sandbox).await;
    let patched = api(&sandbox, reqwest::Method::PATCH, "Tickets")
        .json(&json!({"id": id, "status": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let refused = reqwest::Client::new()
        .get(format!("{}{API_ROOT}/Tickets/{id}", sandbox.base_url()))
        .header("UserName", USER)
        .header("Secret", "wrong")
        .header("ApiIntegrationCode", CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let all = sandbox.requests();
    let lines: Vec<(&str, &str, Option<u16>)> = all
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    let ticket_path = format!("{API_ROOT}/Tickets/{id}");
    assert_eq!(
        lines,
        vec![
            ("GET", "/atservicesrest/v1.0/zoneInformation", Some(200)),
            ("POST", "/ATServicesRest/V1.0/Tickets", Some(200)),
            ("PATCH", "/ATServicesRest/V1.0/Tickets", Some(200)),
            ("GET", ticket_path.as_str(), Some(401)),
        ]
    );
    assert_eq!(all[0].query_param("user").as_deref(), Some(USER));
    assert!(all[0].body.is_none() && all[0].body_len == 0);
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    let patch = sandbox.api_requests_matching("patch", "Tickets");
    assert_eq!(patch.len(), 1);
    assert_eq!(patch[0].json(), &json!({"id": id, "status": 8}));
    assert_eq!(patch[0].header("UserName"), Some(USER));
    assert_eq!(patch[0].header("Secret"), Some(REDACTED));
    assert_eq!(patch[0].header("ApiIntegrationCode"), Some(REDACTED));
    assert_eq!(
        sandbox.requests_matching("POST", "/ATServicesRest/V1.0/Tickets"),
        vec![all[1].clone()]
    );
    // Neither the secret nor the wrong one is kept anywhere.
    let dump = format!("{all:?}");
    assert!(!dump.contains(SECRET) && !dump.contains("wrong") && !dump.contains(CODE));

    sandbox.clear_requests();
    assert!(sandbox.requests().is_empty());
    // Faulted requests are recorded too, with the status they were given.
    sandbox.faults().update(|f| f.server_error_rate = 1.0);
    let failed = api(&sandbox, reqwest::Method::GET, &format!("Tickets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let after = sandbox.requests();
    assert_eq!(
        (after.len(), after[0].seq, after[0].status),
        (1, 5, Some(500))
    );
}

// ---------------------------------------------------------------------------
// Strictness: query paging, required fields, the publish picklist
// ---------------------------------------------------------------------------

fn error_texts(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn query_pages_are_fetched_by_posting_the_query_to_the_next_page_url() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap();
    let company = sandbox.add_company("Contoso");
    let tech = sandbox.add_resource("Tess Technician");
    let ids: Vec<i64> = (0..7)
        .map(|n| sandbox.add_ticket(tech, company, &format!("Ticket {n}")))
        .collect();
    let query = json!({"MaxRecords": 3, "IncludeFields": ["id"],
        "filter": [{"op": "gte", "field": "id", "value": ids[0]}]});

    let mut seen = Vec::new();
    let mut page: Value = api(&sandbox, reqwest::Method::POST, "Tickets/query")
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["pageDetails"]["prevPageUrl"].is_null());
    let mut pages = 1;
    loop {
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_i64().unwrap()),
        );
        let Some(next) = page["pageDetails"]["nextPageUrl"]
            .as_str()
            .map(str::to_owned)
        else {
            break;
        };
        // Only the paging state is in the link, never the filter.
        let url = reqwest::Url::parse(&next).unwrap();
        assert_eq!(url.path(), format!("{API_ROOT}/Tickets/query/next"));
        let params: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(params, vec!["paging"]);
        assert!(!next.contains("filter"));

        let client = reqwest::Client::new();
        let get = client
            .get(&next)
            .header("UserName", USER)
            .header("Secret", SECRET)
            .header("ApiIntegrationCode", CODE)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 405);
        let bare = client
            .post(&next)
            .header("UserName", USER)
            .header("Secret", SECRET)
            .header("ApiIntegrationCode", CODE)
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 500);
        let texts = error_texts(&bare.json().await.unwrap());
        assert!(texts[0].contains("Parameter name: filters"), "{texts:?}");

        page = client
            .post(&next)
            .header("UserName", USER)
            .header("Secret", SECRET)
            .header("ApiIntegrationCode", CODE)
            .json(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(page["pageDetails"]["prevPageUrl"].is_string());
        pages += 1;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // Every page kept IncludeFields from the body.
    assert_eq!(page["items"][0].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn a_create_without_the_databases_required_fields_is_refused_with_a_500() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        required_ticket_fields: vec!["queueID".to_owned(), "billingCodeID".to_owned()],
        unlisted_required_ticket_fields: vec!["ticketType".to_owned()],
        ..AutotaskSandboxConfig::default()
    })
    .await
    .unwrap();
    let company = sandbox.add_company("Contoso");
    let fields: Value = api(
        &sandbox,
        reqwest::Method::GET,
        "Tickets/entityInformation/fields",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let required = |name: &str| {
        fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["isRequired"]
            .as_bool()
            .unwrap()
    };
    assert!(required("queueID") && required("billingCodeID") && required("title"));
    assert!(
        !required("ticketType"),
        "unlisted: required, but not said so"
    );
    assert!(!required("source"));

    let create = |extra: Value| {
        let mut body =
            json!({"companyID": company, "title": "Printer", "status": 1, "priority": 2});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        api(&sandbox, reqwest::Method::POST, "Tickets")
            .json(&body)
            .send()
    };
    let refused = create(json!({"assignedResourceID": 29683001}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        error_texts(&refused.json().await.unwrap()),
        vec![
            "Value does not reference an existing entity for queueID . ",
            "Value does not reference an existing entity for billingCodeID . ",
            "Value does not reference an existing entity for ticketType . ",
            "When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.",
            "Value does not reference an existing entity for assignedResourceID . ",
        ]
    );
    assert!(sandbox.tickets().is_empty());

    let tech = sandbox.add_resource("Tess Technician");
    let created = create(
        json!({"queueID": 29682833, "billingCodeID": 29682802, "ticketType": 2,
        "source": 4, "assignedResourceID": tech, "assignedResourceRoleID": 29683461}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 200);
    let ticket = &sandbox.tickets()[0];
    assert_eq!(
        (
            ticket.queue_id,
            ticket.billing_code_id,
            ticket.ticket_type,
            ticket.source,
            ticket.assigned_resource_id,
            ticket.assigned_resource_role_id
        ),
        (
            Some(29682833),
            Some(29682802),
            Some(2),
            Some(4),
            Some(tech),
            Some(29683461)
        )
    );
}

#[tokio::test]
async fn the_publish_picklist_is_the_real_one_and_notes_take_any_active_value() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
        .await
        .unwrap();
    let labels: Vec<(Option<i64>, &str)> = [
        "All Autotask Users",
        "Internal Project Team",
        "Internal & Co-Managed",
        "Internal Only",
    ]
    .into_iter()
    .map(|label| (sandbox.picklist_value("publish", label), label))
    .collect();
    assert_eq!(
        labels,
        vec![
            (Some(1), "All Autotask Users"),
            (Some(2), "Internal Project Team"),
            (Some(4), "Internal & Co-Managed"),
            (None, "Internal Only"),
        ]
    );
    let id = api_ticket(&sandbox).await;
    let note = |publish: i64| {
        api(&sandbox, reqwest::Method::POST, &format!("Tickets/{id}/Notes"))
            .json(&json!({"ticketID": id, "title": "t", "description": "d", "noteType": 1, "publish": publish}))
            .send()
    };
    assert_eq!(note(4).await.unwrap().status(), 200);
    let refused = note(3).await.unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        error_texts(&refused.json().await.unwrap()),
        vec!["Value does not reference an existing entity for publish . "]
    );
    let tech = sandbox.add_resource("Tess Technician");
    let co_managed = sandbox.add_note_published(id, tech, "Co-managed", "Body", 4);
    assert_eq!(
        sandbox
            .notes(id)
            .iter()
            .find(|n| n.id == co_managed)
            .unwrap()
            .publish,
        4
    );
    let message = panic_message(|| {
        sandbox.add_note_published(id, tech, "x", "y", 3);
    });
    assert!(
        message.contains("3 is not an active publish value"),
        "{message}"
    );
}
