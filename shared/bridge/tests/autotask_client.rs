//! The Autotask client against a running Autotask sandbox, over real HTTP:
//! zone discovery, tickets, notes and paging, lookups, picklists, error
//! classification, and the callouts and webhooks the sandbox fires.
//!
//! One file for the whole client on purpose: one test binary links faster
//! than one per area, and the sandbox setup is shared.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use bridge::config::{AutotaskSettings, FieldValue, Secret};
use bridge::connectors::autotask::webhooks::WebhookRequest;
use bridge::connectors::autotask::{
    parse_callout, parse_webhook, verify_callout_credentials, verify_hook_signature, AutotaskClient,
};
use bridge::error::{ApiError, InboundError};
use bridge::model::{NewPsaNote, NewPsaTicket, PsaTicketPatch, Visibility};
use bridge::ports::Psa;
use sandbox::autotask::{
    AutotaskSandbox, AutotaskSandboxConfig, CalloutTarget, HookEntity, RecordedRequest,
    WebhookTarget, API_ROOT,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const API_RESOURCE: i64 = 29682885;

fn config() -> AutotaskSandboxConfig {
    AutotaskSandboxConfig {
        username: "sync@msp.example".to_owned(),
        secret: "api-secret-1".to_owned(),
        integration_code: "INTEGRATION-CODE-1".to_owned(),
        api_resource_id: API_RESOURCE,
        callout: None,
        webhook: None,
        note_page_size: 3,
        ..AutotaskSandboxConfig::default()
    }
}

async fn connect(
    sandbox: &AutotaskSandbox,
    username: &str,
    secret: &str,
) -> Result<AutotaskClient, ApiError> {
    AutotaskClient::connect(
        bridge::connectors::http::client(),
        &sandbox.zone_lookup_url(),
        username,
        &Secret::new(secret),
        &Secret::new("INTEGRATION-CODE-1"),
    )
    .await
}

async fn setup() -> (AutotaskSandbox, AutotaskClient, i64) {
    let sandbox = AutotaskSandbox::start(config())
        .await
        .expect("sandbox starts");
    let company = sandbox.add_company("Contoso");
    let client = connect(&sandbox, "sync@msp.example", "api-secret-1")
        .await
        .expect("zone discovery");
    (sandbox, client, company)
}

/// The `method` requests the sandbox received at exactly `{API_ROOT}/{path}`,
/// oldest first.
fn received(sandbox: &AutotaskSandbox, method: &str, path: &str) -> Vec<RecordedRequest> {
    let path = format!("{API_ROOT}/{path}");
    sandbox
        .requests_matching(method, &path)
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// The JSON bodies of [`received`].
fn bodies(sandbox: &AutotaskSandbox, method: &str, path: &str) -> Vec<Value> {
    received(sandbox, method, path)
        .iter()
        .map(|r| r.json().clone())
        .collect()
}

fn new_ticket(sandbox: &AutotaskSandbox, company: i64, external_id: &str) -> NewPsaTicket {
    NewPsaTicket {
        title: "Printer on fire".to_owned(),
        description: "The office printer is on fire.".to_owned(),
        status: sandbox.picklist_value("status", "New").unwrap(),
        priority: sandbox.picklist_value("priority", "Medium").unwrap(),
        company_id: company,
        queue_id: sandbox.picklist_value("queueID", "Level I Support"),
        external_id: external_id.to_owned(),
        configuration_item_id: None,
    }
}

#[tokio::test]
async fn zone_discovery_points_the_client_at_the_zone() {
    let (sandbox, client, _) = setup().await;
    assert_eq!(
        client.base_url(),
        format!("{}/ATServicesRest/V1.0/", sandbox.base_url())
    );

    let err = connect(&sandbox, "nobody@msp.example", "api-secret-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { status: 500, .. }),
        "{err:?}"
    );
    assert!(
        !err.is_retryable(),
        "an unknown API user does not heal by retrying"
    );
}

#[tokio::test]
async fn created_tickets_are_found_by_external_id_and_read_back() {
    let (sandbox, client, company) = setup().await;
    let wanted = new_ticket(&sandbox, company, "zendesk:101");
    let id = client.create_ticket(&wanted).await.unwrap();

    // What Autotask received: every field of the new ticket, nothing else,
    // with the API user's headers (credentials redacted by the recording).
    let posts = received(&sandbox, "POST", "Tickets");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json(),
        &json!({
            "companyID": company,
            "title": "Printer on fire",
            "description": "The office printer is on fire.",
            "status": 1,
            "priority": 2,
            "queueID": 29682833,
            "externalID": "zendesk:101",
        })
    );
    assert_eq!(posts[0].header("username"), Some("sync@msp.example"));
    assert_eq!(
        posts[0].header("secret"),
        Some(sandbox::recording::REDACTED)
    );
    assert_eq!(
        posts[0].header("apiintegrationcode"),
        Some(sandbox::recording::REDACTED)
    );
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    assert_eq!(posts[0].status, Some(200));

    let found = client
        .find_ticket_by_external_id("zendesk:101")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(
        bodies(&sandbox, "POST", "Tickets/query"),
        vec![json!({
            "MaxRecords": 10,
            "filter": [{"op": "eq", "field": "externalID", "value": "zendesk:101"}],
        })]
    );
    let ticket = client.get_ticket(id).await.unwrap().expect("exists");
    assert_eq!(ticket, found);
    assert_eq!(ticket.title, wanted.title);
    assert_eq!(
        ticket.description.as_deref(),
        Some(wanted.description.as_str())
    );
    assert_eq!(
        (ticket.status, ticket.priority),
        (wanted.status, wanted.priority)
    );
    assert_eq!(ticket.company_id, company);
    assert_eq!(ticket.queue_id, wanted.queue_id);
    assert_eq!(ticket.external_id.as_deref(), Some("zendesk:101"));
    assert!(ticket.last_activity.is_some());
    let number = ticket.ticket_number.expect("numbered");
    let (date, seq) = number.strip_prefix('T').unwrap().split_once('.').unwrap();
    assert!(
        date.len() == 8 && date.chars().all(|c| c.is_ascii_digit()),
        "{number}"
    );
    assert_eq!(seq, "0001");

    assert_eq!(
        sandbox.ticket(id).unwrap().creator_resource_id,
        API_RESOURCE
    );
    assert_eq!(
        client
            .find_ticket_by_external_id("zendesk:404")
            .await
            .unwrap(),
        None
    );
    assert_eq!(client.get_ticket(999_999).await.unwrap(), None);
}

#[tokio::test]
async fn patches_change_only_the_given_fields() {
    let (sandbox, client, company) = setup().await;
    let id = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:7"))
        .await
        .unwrap();
    let before = sandbox.ticket(id).unwrap();

    let in_progress = sandbox.picklist_value("status", "In Progress").unwrap();
    let patch = PsaTicketPatch {
        status: Some(in_progress),
        ..Default::default()
    };
    client.update_ticket(id, &patch).await.unwrap();
    // PATCH leaves omitted fields alone, so the body names only the change.
    assert_eq!(
        bodies(&sandbox, "PATCH", "Tickets"),
        vec![json!({"id": id, "status": in_progress})]
    );
    let after = sandbox.ticket(id).unwrap();
    assert_eq!(after.status, in_progress);
    assert_eq!(
        (
            &after.title,
            &after.description,
            after.priority,
            after.company_id,
            after.queue_id,
            &after.external_id
        ),
        (
            &before.title,
            &before.description,
            before.priority,
            before.company_id,
            before.queue_id,
            &before.external_id
        )
    );
    assert!(after.last_activity_date > before.last_activity_date);

    let other = sandbox.add_company("Fabrikam");
    let patch = PsaTicketPatch {
        title: Some("Printer fixed".to_owned()),
        priority: sandbox.picklist_value("priority", "Critical"),
        company_id: Some(other),
        status: None,
        configuration_item_id: None,
    };
    client.update_ticket(id, &patch).await.unwrap();
    assert_eq!(
        bodies(&sandbox, "PATCH", "Tickets")[1],
        json!({"id": id, "title": "Printer fixed", "priority": 4, "companyID": other})
    );
    let after = sandbox.ticket(id).unwrap();
    assert_eq!(
        (
            after.title.as_str(),
            after.priority,
            after.company_id,
            after.status
        ),
        ("Printer fixed", 4, other, in_progress)
    );

    let calls = sandbox.api_calls();
    client
        .update_ticket(id, &PsaTicketPatch::default())
        .await
        .unwrap();
    assert_eq!(
        sandbox.api_calls(),
        calls,
        "an empty patch costs no API call"
    );
    assert_eq!(received(&sandbox, "PATCH", "Tickets").len(), 2);
}

#[tokio::test]
async fn notes_page_through_and_keep_their_visibility() {
    let (sandbox, client, company) = setup().await;
    let ticket = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:8"))
        .await
        .unwrap();
    let tech = sandbox.add_resource("Tess Technician");

    let note = |title: &str, visibility| NewPsaNote {
        title: title.to_owned(),
        description: format!("{title} body"),
        visibility,
    };
    let public = client
        .add_note(ticket, &note("public from zendesk", Visibility::Public))
        .await
        .unwrap();
    let internal = client
        .add_note(ticket, &note("internal from zendesk", Visibility::Internal))
        .await
        .unwrap();
    // The bodies Autotask received: the database's default note type, and
    // publish 1 ("All Autotask Users") or 2 ("Internal Project Team").
    let note_type = sandbox.picklist_value("noteType", "Task Notes").unwrap();
    assert_eq!(
        bodies(&sandbox, "POST", &format!("Tickets/{ticket}/Notes")),
        vec![
            json!({"ticketID": ticket, "title": "public from zendesk",
                "description": "public from zendesk body", "noteType": note_type, "publish": 1}),
            json!({"ticketID": ticket, "title": "internal from zendesk",
                "description": "internal from zendesk body", "noteType": note_type, "publish": 2}),
        ]
    );
    let mut expected = vec![
        (public, Visibility::Public, API_RESOURCE),
        (internal, Visibility::Internal, API_RESOURCE),
    ];
    for i in 0..5 {
        let is_internal = i % 2 == 1;
        let id = sandbox.add_note(
            ticket,
            tech,
            &format!("tech {i}"),
            &format!("tech body {i}"),
            is_internal,
        );
        let visibility = if is_internal {
            Visibility::Internal
        } else {
            Visibility::Public
        };
        expected.push((id, visibility, tech));
    }

    // The sandbox stores what Autotask would: publish 1 is customer-visible.
    let stored = sandbox.notes(ticket);
    assert_eq!(stored.iter().find(|n| n.id == public).unwrap().publish, 1);
    assert_eq!(stored.iter().find(|n| n.id == internal).unwrap().publish, 2);

    let calls = sandbox.api_calls();
    let notes = client.list_notes(ticket).await.unwrap();
    let got: Vec<_> = notes
        .iter()
        .map(|n| (n.id, n.visibility, n.creator_resource_id.unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert!(notes
        .iter()
        .all(|n| n.ticket_id == ticket && n.created_at.is_some()));
    assert_eq!(notes[0].title.as_deref(), Some("public from zendesk"));
    assert_eq!(notes[0].description, "public from zendesk body");
    // Seven notes at three per page, and the picklists already cached.
    assert_eq!(sandbox.api_calls() - calls, 3);
    let offsets: Vec<Option<String>> =
        received(&sandbox, "GET", &format!("Tickets/{ticket}/Notes"))
            .iter()
            .map(|r| r.query_param("offset"))
            .collect();
    assert_eq!(
        offsets,
        vec![None, Some("3".to_owned()), Some("6".to_owned())],
        "the first page, then the two nextPageUrls"
    );

    let missing = client.list_notes(424_242).await.unwrap_err();
    assert!(matches!(missing, ApiError::NotFound { .. }), "{missing:?}");
}

#[tokio::test]
async fn changed_tickets_page_through_and_notes_move_their_last_activity() {
    let (sandbox, client, company) = setup().await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let mut ids = Vec::new();
    // One more than a page of 500.
    for n in 0..501 {
        ids.push(
            client
                .create_ticket(&new_ticket(&sandbox, company, &format!("zendesk:{n}")))
                .await
                .unwrap(),
        );
    }
    let calls = sandbox.api_calls();
    let changed = client.tickets_changed_since(before).await.unwrap();
    assert_eq!(sandbox.api_calls() - calls, 2, "two pages");
    let mut got: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    got.sort_unstable();
    assert_eq!(got, ids);
    for (id, at) in &changed {
        let stored = sandbox.ticket(*id).unwrap().last_activity_date;
        assert_eq!(at.timestamp_millis(), stored.timestamp_millis());
    }
    let newest = changed.iter().map(|(_, at)| *at).max().unwrap();

    // A technician's note moves its ticket's lastActivityDate past every other.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let tech = sandbox.add_resource("Tess Technician");
    let noted = ids[17];
    sandbox.add_note(noted, tech, "Called the customer", "Back tomorrow", false);
    let calls = sandbox.api_calls();
    let changed = client.tickets_changed_since(newest).await.unwrap();
    assert_eq!(sandbox.api_calls() - calls, 1);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, noted);
    assert!(changed[0].1 > newest);
}

#[tokio::test]
async fn change_queries_ask_only_for_the_id_and_last_activity() {
    let (sandbox, client, company) = setup().await;
    client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:1"))
        .await
        .unwrap();
    let since = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(client.tickets_changed_since(since).await.unwrap().len(), 1);

    // The query the client sent, as the sandbox recorded it.
    let sent = bodies(&sandbox, "POST", "Tickets/query");
    assert_eq!(
        sent,
        vec![json!({
            "MaxRecords": 500,
            "IncludeFields": ["id", "lastActivityDate"],
            "filter": [{"op": "gt", "field": "lastActivityDate", "value": "2000-01-01T00:00:00.000Z"}],
        })]
    );
    // Sent again as it was, it is answered with those two fields only.
    let response: Value = reqwest::Client::new()
        .post(format!("{}Tickets/query", client.base_url()))
        .header("UserName", "sync@msp.example")
        .header("Secret", "api-secret-1")
        .header("ApiIntegrationCode", "INTEGRATION-CODE-1")
        .json(&sent[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = response["items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["id", "lastActivityDate"]);
}

#[tokio::test]
async fn configuration_items_resolve_to_their_company() {
    let (sandbox, client, company) = setup().await;
    sandbox.add_configuration_item(company, "cluster-eu-1");
    let other = sandbox.add_company("Fabrikam");
    sandbox.add_configuration_item(other, "cluster-us-2");

    assert_eq!(
        client.company_for_reference("cluster-eu-1").await.unwrap(),
        Some(company)
    );
    assert_eq!(
        client.company_for_reference("cluster-us-2").await.unwrap(),
        Some(other)
    );
    assert_eq!(
        client
            .company_for_reference("cluster-nowhere")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_ticket_is_created_linked_to_the_device_its_cluster_id_names() {
    let (sandbox, client, company) = setup().await;
    let device = sandbox.add_configuration_item(company, "cluster-eu-1");
    let retired = sandbox.add_configuration_item(company, "cluster-old");
    sandbox.set_configuration_item_active(retired, false);

    let found = client
        .configuration_item_for_reference("cluster-eu-1")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (found.id, found.company_id, found.active),
        (Some(device), company, true)
    );
    let old = client
        .configuration_item_for_reference("cluster-old")
        .await
        .unwrap()
        .expect("found");
    assert!(!old.active, "an inactive item is reported as such");

    let mut ticket = new_ticket(&sandbox, company, "zendesk:77");
    ticket.configuration_item_id = found.id;
    let id = client.create_ticket(&ticket).await.unwrap();
    assert_eq!(
        sandbox.ticket(id).unwrap().configuration_item_id,
        Some(device)
    );
    // The sandbox refuses what Autotask refuses: an inactive item.
    let mut refused = new_ticket(&sandbox, company, "zendesk:78");
    refused.configuration_item_id = Some(retired);
    let err = client.create_ticket(&refused).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn resource_names_are_read_once_and_cached() {
    let (sandbox, client, _) = setup().await;
    let tess = sandbox.add_resource("Tess Technician");
    assert_eq!(
        client.resource_name(tess).await.unwrap().as_deref(),
        Some("Tess Technician")
    );
    let calls = sandbox.api_calls();
    assert_eq!(
        client.resource_name(tess).await.unwrap().as_deref(),
        Some("Tess Technician")
    );
    assert_eq!(
        sandbox.api_calls(),
        calls,
        "the second lookup is served from the cache"
    );
    assert_eq!(client.resource_name(424_242).await.unwrap(), None);
}

#[tokio::test]
async fn picklists_come_from_entity_information_and_are_cached() {
    let (sandbox, client, _) = setup().await;
    let status = client.ticket_picklist("status").await.unwrap();
    let new = status.iter().find(|v| v.label == "New").expect("New");
    assert_eq!((new.value, new.is_active), (1, true));
    assert!(status.iter().any(|v| v.label == "Complete" && v.value == 5));
    assert!(
        status.iter().any(|v| !v.is_active),
        "inactive values are reported too"
    );

    let calls = sandbox.api_calls();
    let priority = client.ticket_picklist("priority").await.unwrap();
    assert!(priority
        .iter()
        .any(|v| v.label == "Critical" && v.value == 4));
    assert_eq!(sandbox.api_calls(), calls, "served from the cache");

    let err = client.ticket_picklist("nonsense").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_and_permanent() {
    let (sandbox, _, _) = setup().await;
    let client = connect(&sandbox, "sync@msp.example", "not-the-secret")
        .await
        .unwrap();
    let err = client.get_ticket(1).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_invalid_picklist_value_is_a_permanent_rejection() {
    let (sandbox, client, company) = setup().await;
    let mut ticket = new_ticket(&sandbox, company, "zendesk:9");
    ticket.status = 999;
    let err = client.create_ticket(&ticket).await.unwrap_err();
    match &err {
        ApiError::Rejected {
            status: 500,
            message,
            ..
        } => assert!(message.contains("status"), "{message}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(sandbox.tickets().is_empty());
    // Sent once as given (the client neither retries nor "fixes" the value).
    let posts = received(&sandbox, "POST", "Tickets");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json()["status"], 999);
    assert_eq!(posts[0].status, Some(500));

    ticket.status = 1;
    ticket.company_id = 1;
    let err = client.create_ticket(&ticket).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { .. }),
        "unknown company: {err:?}"
    );
}

#[tokio::test]
async fn a_rate_limit_burst_reports_retry_after() {
    let (sandbox, client, _) = setup().await;
    sandbox.faults().update(|f| {
        f.rate_limit_burst = 2;
        f.retry_after_secs = 7;
    });
    for _ in 0..2 {
        let err = client.get_ticket(1).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err:?}");
    }
    assert_eq!(
        client.get_ticket(1).await.unwrap(),
        None,
        "the burst is over"
    );
    assert_eq!(sandbox.faults().stats().rate_limited, 2);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let (sandbox, client, company) = setup().await;
    // The field descriptions a create is checked against, read (and cached)
    // before the outage, as the engine reads the status picklist first.
    client.ticket_picklist("status").await.unwrap();
    sandbox.faults().update(|f| f.server_error_rate = 1.0);
    let err = client.get_ticket(1).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let err = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:10"))
        .await
        .unwrap_err();
    assert!(
        err.is_retryable(),
        "an outage is not a validation error: {err:?}"
    );
    sandbox.faults().clear();
    assert!(sandbox.tickets().is_empty());
    // One attempt: retrying is the worker's decision, not the client's.
    let posts = received(&sandbox, "POST", "Tickets");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, Some(500));
    assert_eq!(posts[0].json()["externalID"], "zendesk:10");
}

// ---------------------------------------------------------------------------
// Callouts and webhooks
// ---------------------------------------------------------------------------

struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A tiny receiver that records every POST and answers 200.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Delivery { headers, body });
            StatusCode::OK
        }
    });
    let (url, _task) = sandbox::serve(app).await.expect("receiver starts");
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("receiver open")
}

const CALLOUT_USER: &str = "callout-user";
const CALLOUT_PASSWORD: &str = "callout-password-1";
const HOOK_SECRET: &str = "webhook-secret-key-1";

async fn with_events(
    sandbox: &AutotaskSandbox,
) -> (
    mpsc::UnboundedReceiver<Delivery>,
    mpsc::UnboundedReceiver<Delivery>,
) {
    let (callout_url, callouts) = receiver().await;
    let (webhook_url, webhooks) = receiver().await;
    sandbox.set_callout(Some(CalloutTarget {
        url: format!("{callout_url}/t/acme/autotask"),
        username: CALLOUT_USER.to_owned(),
        password: CALLOUT_PASSWORD.to_owned(),
    }));
    sandbox.set_webhook(Some(WebhookTarget {
        url: format!("{webhook_url}/t/acme/autotask"),
        secret_key: HOOK_SECRET.to_owned(),
        excluded_resource_ids: vec![API_RESOURCE],
    }));
    (callouts, webhooks)
}

#[tokio::test]
async fn a_technician_note_fires_an_authenticated_callout_and_a_signed_webhook() {
    let (sandbox, client, company) = setup().await;
    let ticket = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:11"))
        .await
        .unwrap();
    let (mut callouts, mut webhooks) = with_events(&sandbox).await;
    let tech = sandbox.add_resource("Tess Technician");
    let note = sandbox.add_note(
        ticket,
        tech,
        "Called the customer",
        "Printer replaced.",
        false,
    );

    let callout = next(&mut callouts).await;
    let authorization = callout.header("authorization");
    assert_eq!(
        verify_callout_credentials(CALLOUT_USER, &Secret::new(CALLOUT_PASSWORD), authorization),
        Ok(())
    );
    assert_eq!(
        verify_callout_credentials(CALLOUT_USER, &Secret::new("wrong"), authorization),
        Err(InboundError::BadCredentials)
    );
    let event = parse_callout(callout.header("content-type"), &callout.body).unwrap();
    assert_eq!(event.ticket_id, ticket);

    let webhook = next(&mut webhooks).await;
    let signature = webhook.header("x-hook-signature");
    assert!(signature.unwrap().starts_with("sha1="));
    assert_eq!(
        verify_hook_signature(&Secret::new(HOOK_SECRET), signature, &webhook.body),
        Ok(())
    );
    assert_eq!(
        verify_hook_signature(&Secret::new("another-key"), signature, &webhook.body),
        Err(InboundError::BadSignature)
    );
    let mut tampered = webhook.body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        verify_hook_signature(&Secret::new(HOOK_SECRET), signature, &tampered),
        Err(InboundError::BadSignature)
    );
    let event = parse_webhook(&webhook.body).unwrap();
    assert_eq!(event.ticket_id, ticket);
    assert_eq!(event.event_id, format!("webhook:ticketnote:{note}:1"));
    let payload: serde_json::Value = serde_json::from_slice(&webhook.body).unwrap();
    assert_eq!(payload["PersonID"], tech);
    assert_eq!(payload["Guid"], sandbox.webhook_guid());

    // A status change in the UI is a Ticket webhook naming the same ticket.
    sandbox.set_status(
        ticket,
        tech,
        sandbox.picklist_value("status", "Complete").unwrap(),
    );
    let callout = next(&mut callouts).await;
    let later = parse_callout(callout.header("content-type"), &callout.body).unwrap();
    assert_eq!(later.ticket_id, ticket);
    let webhook = next(&mut webhooks).await;
    let event = parse_webhook(&webhook.body).unwrap();
    assert_eq!(event.ticket_id, ticket);
    assert!(event
        .event_id
        .starts_with(&format!("webhook:ticket:{ticket}:")));
}

#[tokio::test]
async fn the_excluded_api_user_fires_callouts_but_no_webhooks() {
    let (sandbox, client, company) = setup().await;
    let ticket = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:12"))
        .await
        .unwrap();
    let (mut callouts, mut webhooks) = with_events(&sandbox).await;

    let api_note = client
        .add_note(
            ticket,
            &NewPsaNote {
                title: "From Zendesk".to_owned(),
                description: "Customer says thanks.".to_owned(),
                visibility: Visibility::Public,
            },
        )
        .await
        .unwrap();
    let patch = PsaTicketPatch {
        priority: sandbox.picklist_value("priority", "High"),
        ..Default::default()
    };
    client.update_ticket(ticket, &patch).await.unwrap();
    assert_eq!(
        bodies(&sandbox, "PATCH", "Tickets"),
        vec![json!({"id": ticket, "priority": 1})]
    );
    assert_eq!(
        bodies(&sandbox, "POST", &format!("Tickets/{ticket}/Notes"))[0]["publish"],
        1
    );
    for _ in 0..2 {
        let callout = next(&mut callouts).await;
        assert_eq!(
            parse_callout(callout.header("content-type"), &callout.body)
                .unwrap()
                .ticket_id,
            ticket
        );
    }

    // The next webhook must be the technician's: none was sent for the API
    // user's note or patch.
    let tech = sandbox.add_resource("Tess Technician");
    let tech_note = sandbox.add_note(ticket, tech, "Internal", "Check the toner.", true);
    let webhook = next(&mut webhooks).await;
    let payload: serde_json::Value = serde_json::from_slice(&webhook.body).unwrap();
    assert_eq!(
        payload["Id"], tech_note,
        "API note {api_note} must not fire a webhook"
    );
    assert!(webhooks.try_recv().is_err());

    // Without the exclusion, the API user's changes do fire webhooks.
    let (webhook_url, mut unfiltered) = receiver().await;
    sandbox.set_webhook(Some(WebhookTarget {
        url: webhook_url,
        secret_key: HOOK_SECRET.to_owned(),
        excluded_resource_ids: Vec::new(),
    }));
    let second = client
        .add_note(
            ticket,
            &NewPsaNote {
                title: "Again".to_owned(),
                description: "Echo?".to_owned(),
                visibility: Visibility::Internal,
            },
        )
        .await
        .unwrap();
    let webhook = next(&mut unfiltered).await;
    let payload: serde_json::Value = serde_json::from_slice(&webhook.body).unwrap();
    assert_eq!(
        (payload["Id"].as_i64(), payload["PersonID"].as_i64()),
        (Some(second), Some(API_RESOURCE))
    );
}

// ---------------------------------------------------------------------------
// Issue 10: query paging, note visibility, required fields
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_change_query_over_1100_tickets_posts_the_query_body_to_each_next_page() {
    let (sandbox, client, company) = setup().await;
    let tech = sandbox.add_resource("Tess Technician");
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let ids: Vec<i64> = (0..1100)
        .map(|n| sandbox.add_ticket(tech, company, &format!("Ticket {n}")))
        .collect();
    sandbox.clear_requests();

    let changed = client.tickets_changed_since(before).await.unwrap();

    let mut got: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    got.sort_unstable();
    assert_eq!(got, ids, "all 1,100 tickets, each once");
    // Three pages of at most 500: the query, then the same body POSTed to
    // each nextPageUrl (which carries only the paging state); never a GET.
    let sent = sandbox.api_requests_matching("POST", "Tickets/query");
    let paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    let next_path = format!("{API_ROOT}/Tickets/query/next");
    assert_eq!(
        paths,
        vec![
            format!("{API_ROOT}/Tickets/query").as_str(),
            next_path.as_str(),
            next_path.as_str()
        ]
    );
    assert!(sent.iter().all(|r| r.json() == sent[0].json()));
    assert!(sent.iter().all(|r| r.status == Some(200)));
    for next in &sent[1..] {
        let paging: Value = serde_json::from_str(&next.query_param("paging").unwrap()).unwrap();
        assert_eq!(paging["pageSize"], 500);
        assert!(
            next.query_param("search").is_none(),
            "the filter is not in the URL"
        );
    }
    assert!(sandbox
        .api_requests_matching("GET", "Tickets/query")
        .is_empty());
}

/// The first page of a change query sent by hand, and its next-page URL.
async fn next_page_url(sandbox: &AutotaskSandbox, client: &AutotaskClient) -> (Value, String) {
    let query = json!({"MaxRecords": 2, "filter": [{"op": "exist", "field": "id"}]});
    let first: Value = api_request(
        reqwest::Method::POST,
        &format!("{}Tickets/query", client.base_url()),
    )
    .json(&query)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["pageDetails"]["nextPageUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.starts_with(sandbox.base_url()), "{next}");
    (query, next)
}

/// A request with the API user's headers.
fn api_request(method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, url)
        .header("UserName", "sync@msp.example")
        .header("Secret", "api-secret-1")
        .header("ApiIntegrationCode", "INTEGRATION-CODE-1")
}

#[tokio::test]
async fn the_sandbox_answers_next_page_requests_like_autotask() {
    let (sandbox, client, company) = setup().await;
    let tech = sandbox.add_resource("Tess Technician");
    for n in 0..5 {
        sandbox.add_ticket(tech, company, &format!("Ticket {n}"));
    }
    let (query, next) = next_page_url(&sandbox, &client).await;
    assert!(!next.contains("filter"), "{next}");

    // GET on a POST query's next page: 405.
    let get = api_request(reqwest::Method::GET, &next)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    // POST without the body: 500 with an errors array.
    let bare = api_request(reqwest::Method::POST, &next)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 500);
    let body: Value = bare.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("Parameter name: filters"),
        "{body}"
    );
    // POST with the same body: the next two, and a link to the last one.
    let page: Value = api_request(reqwest::Method::POST, &next)
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let all: Vec<i64> = {
        let mut all: Vec<i64> = sandbox.tickets().iter().map(|t| t.id).collect();
        all.sort_unstable();
        all
    };
    assert_eq!(ids, all[2..4]);
    assert!(page["pageDetails"]["nextPageUrl"].is_string());
    assert!(page["pageDetails"]["prevPageUrl"].is_string());
}

#[tokio::test]
async fn next_page_links_off_the_zone_are_refused_before_credentials_are_sent() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};

    // Another server (same host, other port): it must never be called.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let (elsewhere, _other) = sandbox::serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    }))
    .await
    .unwrap();
    // A zone whose query answer points its next page there.
    let zone: Arc<OnceLock<String>> = Arc::default();
    let zone_url = zone.clone();
    let app = axum::Router::new()
        .route(
            "/atservicesrest/v1.0/zoneInformation",
            axum::routing::get(move || {
                let url = format!("{}/ATServicesRest/", zone_url.get().unwrap());
                async move { axum::Json(json!({ "zoneName": "Zone", "url": url })) }
            }),
        )
        .route(
            "/ATServicesRest/V1.0/Tickets/query",
            axum::routing::post(move || {
                let next = format!("{elsewhere}/ATServicesRest/V1.0/Tickets/query/next?paging=x");
                async move {
                    axum::Json(json!({
                        "items": [{"id": 1, "lastActivityDate": "2026-01-01T00:00:00Z"}],
                        "pageDetails": {"count": 1, "requestCount": 500, "prevPageUrl": null, "nextPageUrl": next},
                    }))
                }
            }),
        );
    let (base, _zone) = sandbox::serve(app).await.unwrap();
    zone.set(base.clone()).unwrap();
    let client = AutotaskClient::connect(
        bridge::connectors::http::client(),
        &format!("{base}/atservicesrest"),
        "sync@msp.example",
        &Secret::new("api-secret-1"),
        &Secret::new("INTEGRATION-CODE-1"),
    )
    .await
    .unwrap();

    let err = client
        .tickets_changed_since(chrono::Utc::now())
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::Malformed { .. }), "{err:?}");
    assert!(!err.is_retryable(), "a foreign link does not heal: {err:?}");
    let message = err.to_string();
    assert!(
        message.contains("outside the tenant's Autotask zone") && message.contains(&base),
        "{message}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent elsewhere");
}

#[tokio::test]
async fn notes_published_internal_and_co_managed_read_as_internal() {
    let (sandbox, client, company) = setup().await;
    // The sandbox's publish picklist is the real one: no "Internal Only".
    assert_eq!(
        sandbox.picklist_value("publish", "All Autotask Users"),
        Some(1)
    );
    assert_eq!(
        sandbox.picklist_value("publish", "Internal Project Team"),
        Some(2)
    );
    assert_eq!(
        sandbox.picklist_value("publish", "Internal & Co-Managed"),
        Some(4)
    );
    assert_eq!(sandbox.picklist_value("publish", "Internal Only"), None);
    let ticket = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:55"))
        .await
        .unwrap();
    let tech = sandbox.add_resource("Tess Technician");
    let co_managed =
        sandbox.add_note_published(ticket, tech, "Co-managed", "For the client's IT", 4);
    let public = sandbox.add_note(ticket, tech, "Public", "For everyone", false);

    let notes = client.list_notes(ticket).await.unwrap();
    let visibility = |id: i64| notes.iter().find(|n| n.id == id).unwrap().visibility;
    assert_eq!(visibility(co_managed), Visibility::Internal);
    assert_eq!(visibility(public), Visibility::Public);
}

#[tokio::test]
async fn a_required_field_without_a_value_fails_before_any_create() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        required_ticket_fields: vec!["billingCodeID".to_owned()],
        ..config()
    })
    .await
    .unwrap();
    let company = sandbox.add_company("Contoso");
    let client = connect(&sandbox, "sync@msp.example", "api-secret-1")
        .await
        .unwrap();

    let err = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:77"))
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("billingCodeID")
            && message.contains("autotask.ticket_defaults.billingCodeID"),
        "{message}"
    );
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        received(&sandbox, "POST", "Tickets").is_empty(),
        "no create was attempted"
    );
    assert!(sandbox.tickets().is_empty());
}

/// A client of `sandbox` with the tenant settings `settings` applied.
async fn connect_with(sandbox: &AutotaskSandbox, settings: &AutotaskSettings) -> AutotaskClient {
    connect(sandbox, "sync@msp.example", "api-secret-1")
        .await
        .unwrap()
        .with_settings(settings)
}

fn label(text: &str) -> FieldValue {
    FieldValue::Text(text.to_owned())
}

#[tokio::test]
async fn a_tenant_setting_decides_which_publish_values_are_public() {
    let (sandbox, default_client, company) = setup().await;
    let ticket = default_client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:56"))
        .await
        .unwrap();
    let tech = sandbox.add_resource("Tess Technician");
    let co_managed = sandbox.add_note_published(ticket, tech, "Co-managed", "For their IT", 4);
    let team = sandbox.add_note_published(ticket, tech, "Team", "Only us", 2);
    let visibility = |notes: &[bridge::model::PsaNote], id: i64| {
        notes.iter().find(|n| n.id == id).unwrap().visibility
    };

    // By default only "All Autotask Users" is public.
    let notes = default_client.list_notes(ticket).await.unwrap();
    assert_eq!(visibility(&notes, co_managed), Visibility::Internal);
    assert_eq!(visibility(&notes, team), Visibility::Internal);

    // A tenant whose co-managed customers see "Internal & Co-Managed" notes,
    // and whose private comments go to the co-managed team too.
    let mut settings = AutotaskSettings::new(sandbox.zone_lookup_url());
    settings.public_note_publish =
        vec![label("All Autotask Users"), label("Internal & Co-Managed")];
    settings.internal_note_publish = label("Internal Project Team");
    let client = connect_with(&sandbox, &settings).await;
    let notes = client.list_notes(ticket).await.unwrap();
    assert_eq!(visibility(&notes, co_managed), Visibility::Public);
    assert_eq!(visibility(&notes, team), Visibility::Internal);

    // Writes take the values from the live picklist, by label.
    let note = |visibility| NewPsaNote {
        title: "From Zendesk".to_owned(),
        description: "Hello".to_owned(),
        visibility,
    };
    settings.internal_note_publish = label("internal & co-managed");
    settings.public_note_publish = vec![label("All Autotask Users")];
    let client = connect_with(&sandbox, &settings).await;
    sandbox.clear_requests();
    client
        .add_note(ticket, &note(Visibility::Internal))
        .await
        .unwrap();
    client
        .add_note(ticket, &note(Visibility::Public))
        .await
        .unwrap();
    let published: Vec<Value> = bodies(&sandbox, "POST", &format!("Tickets/{ticket}/Notes"))
        .iter()
        .map(|b| b["publish"].clone())
        .collect();
    assert_eq!(published, vec![json!(4), json!(1)]);

    // A label this database does not have is refused before anything is sent.
    settings.internal_note_publish = label("Internal Only");
    let client = connect_with(&sandbox, &settings).await;
    sandbox.clear_requests();
    let err = client
        .add_note(ticket, &note(Visibility::Internal))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("autotask.internal_note_publish"),
        "{err}"
    );
    assert!(received(&sandbox, "POST", &format!("Tickets/{ticket}/Notes")).is_empty());
}

#[tokio::test]
async fn required_fields_are_filled_from_the_ticket_defaults_setting() {
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        required_ticket_fields: vec!["billingCodeID".to_owned(), "source".to_owned()],
        ..config()
    })
    .await
    .unwrap();
    let company = sandbox.add_company("Contoso");
    // Both are reported as required, with their picklists.
    let fields: Value = api_request(
        reqwest::Method::GET,
        &format!(
            "{}{API_ROOT}/Tickets/entityInformation/fields",
            sandbox.base_url()
        ),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let required: Vec<&str> = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["isRequired"] == true && f["isReadOnly"] == false)
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        vec![
            "title",
            "status",
            "priority",
            "companyID",
            "source",
            "billingCodeID"
        ]
    );

    let mut settings = AutotaskSettings::new(sandbox.zone_lookup_url());
    settings.ticket_defaults = [
        ("billingCodeID".to_owned(), label("Remote Support")),
        ("source".to_owned(), FieldValue::Number(4)),
    ]
    .into_iter()
    .collect();
    sandbox.clear_requests();
    let client = connect_with(&sandbox, &settings).await;
    let wanted = new_ticket(&sandbox, company, "zendesk:78");
    assert!(client
        .new_ticket_problems(&wanted)
        .await
        .unwrap()
        .is_empty());
    let id = client.create_ticket(&wanted).await.unwrap();

    let posts = bodies(&sandbox, "POST", "Tickets");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["billingCodeID"], 29682801, "the label, resolved");
    assert_eq!(posts[0]["source"], 4);
    let stored = sandbox.ticket(id).unwrap();
    assert_eq!(
        (stored.billing_code_id, stored.source),
        (Some(29682801), Some(4))
    );

    // The field descriptions are read once per client, not per create.
    client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:80"))
        .await
        .unwrap();
    assert_eq!(
        received(&sandbox, "GET", "Tickets/entityInformation/fields").len(),
        1
    );
}

#[tokio::test]
async fn a_required_field_autotask_does_not_list_fails_with_autotask_s_own_words() {
    // A tenant whose Autotask demands a field its field list does not flag:
    // the create is sent, refused with a 500, and the error keeps
    // Autotask's text and is permanent.
    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        unlisted_required_ticket_fields: vec!["billingCodeID".to_owned()],
        ..config()
    })
    .await
    .unwrap();
    let company = sandbox.add_company("Contoso");
    let client = connect(&sandbox, "sync@msp.example", "api-secret-1")
        .await
        .unwrap();
    let wanted = new_ticket(&sandbox, company, "zendesk:79");
    assert!(client
        .new_ticket_problems(&wanted)
        .await
        .unwrap()
        .is_empty());

    let err = client.create_ticket(&wanted).await.unwrap_err();

    assert!(
        matches!(&err, ApiError::Rejected { status: 500, message, .. }
            if message == "Value does not reference an existing entity for billingCodeID ."),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(received(&sandbox, "POST", "Tickets").len(), 1);
}

#[tokio::test]
async fn the_engine_names_a_missing_required_field_and_creates_nothing_until_it_is_set() {
    use bridge::adapters::embedded::SqliteStore;
    use bridge::config::{Mappings, TenantConfig, ZendeskSettings};
    use bridge::error::SyncError;
    use bridge::model::TenantId;
    use bridge::ports::SystemClock;
    use bridge::step::Step;
    use bridge::sync::{sync_pair, SyncContext};
    use testkit::fakes::FakeDesk;

    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        required_ticket_fields: vec!["billingCodeID".to_owned()],
        ..config()
    })
    .await
    .unwrap();
    let company = sandbox.add_company("Contoso");
    let mut tenant = TenantConfig {
        id: TenantId::parse("acme").unwrap(),
        active: true,
        zendesk: ZendeskSettings {
            base_url: "http://desk".into(),
            cluster_id_field: None,
        },
        autotask: AutotaskSettings {
            queue_id: sandbox.picklist_value("queueID", "Level I Support"),
            default_company_id: Some(company),
            ..AutotaskSettings::new(sandbox.zone_lookup_url())
        },
        connectwise: None,
        mappings: Mappings::default(),
        fields: Default::default(),
        assets: None,
    };
    let store = SqliteStore::in_memory().unwrap();
    let desk = FakeDesk::default();
    let zendesk_ticket = desk.new_ticket("Printer on fire", "It smokes", Some("high"), None);

    let client = connect_with(&sandbox, &tenant.autotask).await;
    let cx = SyncContext::new(&tenant, &store, &desk, &client, &SystemClock);
    let failure = sync_pair(&cx, zendesk_ticket).await.unwrap_err();

    assert_eq!(failure.step, Step::CreatePsaTicket);
    assert!(!failure.error.is_retryable());
    let message = failure.error.to_string();
    assert!(
        matches!(failure.error, SyncError::Config(_))
            && message.contains("billingCodeID")
            && message.contains("autotask.ticket_defaults.billingCodeID")
            && message.contains("Remote Support (29682801)"),
        "{message}"
    );
    assert!(
        received(&sandbox, "POST", "Tickets").is_empty(),
        "no create was attempted"
    );

    // Once the setting is given, the next run creates the ticket with it.
    tenant.autotask.ticket_defaults = [("billingCodeID".to_owned(), label("Onsite Support"))]
        .into_iter()
        .collect();
    let client = connect_with(&sandbox, &tenant.autotask).await;
    let cx = SyncContext::new(&tenant, &store, &desk, &client, &SystemClock);
    let report = sync_pair(&cx, zendesk_ticket).await.unwrap();

    assert!(report.created_psa_ticket);
    let posts = bodies(&sandbox, "POST", "Tickets");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["billingCodeID"], 29682802);
    assert_eq!(posts[0]["externalID"], format!("zendesk:{zendesk_ticket}"));
}

// ---------------------------------------------------------------------------
// Registering the REST webhooks (`ensure_webhooks`)
// ---------------------------------------------------------------------------

fn webhook_request(endpoint: &str) -> WebhookRequest<'_> {
    WebhookRequest {
        endpoint,
        name: "psa-bridge (acme)",
        api_username: "sync@msp.example",
        notification_email: None,
    }
}

#[tokio::test]
async fn ensure_webhooks_registers_both_entities_with_the_api_user_excluded_and_their_events_verify(
) {
    let (sandbox, client, company) = setup().await;
    let (url, mut deliveries) = receiver().await;
    let tech = sandbox.add_resource("Tess Tech");

    let ensured = client
        .ensure_webhooks(&webhook_request(&url))
        .await
        .unwrap();
    assert_eq!(ensured.api_resource_id, API_RESOURCE);
    assert!(ensured.ticket.created && ensured.note.created);
    let key = ensured.secret_key.expose().to_owned();
    assert!(key.len() <= sandbox::autotask::SECRET_KEY_MAX && key.len() >= 32);

    let hooks = sandbox.registered_webhooks();
    assert_eq!(hooks.len(), 2);
    for hook in &hooks {
        assert_eq!(hook.webhook_url, url);
        assert_eq!(hook.deactivation_url, url);
        assert_eq!(hook.secret_key, key, "both sign with the returned key");
        assert!(hook.active && hook.is_ready() && hook.on_create && hook.on_update);
        assert!(!hook.on_delete, "deletions are not mirrored");
        assert_eq!(hook.notification_email, "sync@msp.example");
        assert_eq!(
            hook.excluded.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
            vec![API_RESOURCE]
        );
    }
    let named = |hook: &sandbox::autotask::RegisteredWebhook, name: &str| {
        hook.fields
            .iter()
            .find(|f| hook.entity.field_name(f.field_id) == Some(name))
            .cloned()
    };
    let ticket_hook = hooks
        .iter()
        .find(|h| h.entity == HookEntity::Ticket)
        .unwrap();
    let note_hook = hooks
        .iter()
        .find(|h| h.entity == HookEntity::TicketNote)
        .unwrap();
    for field in ["status", "priority", "title", "description", "queueID"] {
        assert!(named(ticket_hook, field).unwrap().subscribed, "{field}");
    }
    let ticket_id = named(note_hook, "ticketID").unwrap();
    assert!(
        ticket_id.display_always,
        "TicketID is shown on every note event"
    );
    assert!(named(note_hook, "description").unwrap().subscribed);

    // The bridge's own writes (as the API user) send nothing; a
    // technician's do, signed with the key, and the ingest reads them.
    let ticket = client
        .create_ticket(&new_ticket(&sandbox, company, "zendesk:90"))
        .await
        .unwrap();
    sandbox.update_as_technician(ticket, tech, &[("priority", json!(1))]);
    let event = next(&mut deliveries).await;
    let signature = event.header("x-hook-signature");
    assert_eq!(
        verify_hook_signature(&ensured.secret_key, signature, &event.body),
        Ok(())
    );
    assert_eq!(parse_webhook(&event.body).unwrap().ticket_id, ticket);
    sandbox.add_note(ticket, tech, "Called", "Customer called back", false);
    let event = next(&mut deliveries).await;
    assert_eq!(
        verify_hook_signature(
            &ensured.secret_key,
            event.header("x-hook-signature"),
            &event.body
        ),
        Ok(())
    );
    assert_eq!(parse_webhook(&event.body).unwrap().ticket_id, ticket);
    sandbox.webhook_settled(Duration::from_secs(5)).await;
    assert!(
        deliveries.try_recv().is_err(),
        "the API user's create sent nothing"
    );
}

#[tokio::test]
async fn ensure_webhooks_again_keeps_one_per_entity_and_sets_a_new_key() {
    let (sandbox, client, _company) = setup().await;
    let url = "http://127.0.0.1:9/t/acme/autotask";
    let first = client.ensure_webhooks(&webhook_request(url)).await.unwrap();
    // A duplicate at the same URL (say, made by hand), and one elsewhere.
    let http = reqwest::Client::new();
    for (endpoint, key) in [
        (format!("{url}/"), "dup"),
        ("https://other.example/h".to_owned(), "other"),
    ] {
        let response = http
            .post(format!("{}{API_ROOT}/TicketWebhooks", sandbox.base_url()))
            .header("UserName", "sync@msp.example")
            .header("Secret", "api-secret-1")
            .header("ApiIntegrationCode", "INTEGRATION-CODE-1")
            .json(&json!({
                "webhookUrl": endpoint, "deactivationUrl": endpoint, "secretKey": key,
                "isSubscribedToCreateEvents": true, "isSubscribedToUpdateEvents": true,
                "isSubscribedToDeleteEvents": false, "isActive": true,
                "notificationEmailAddress": "ops@msp.example",
            }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    let again = client.ensure_webhooks(&webhook_request(url)).await.unwrap();
    assert!(!again.ticket.created && !again.note.created);
    assert_eq!(again.ticket.id, first.ticket.id, "the oldest is kept");
    assert_eq!(again.note.id, first.note.id);
    assert_eq!((again.ticket.removed, again.note.removed), (1, 0));
    assert_eq!((again.ticket.fields_set, again.note.fields_set), (0, 0));
    assert!(!again.ticket.excluded_added && !again.note.excluded_added);
    assert_ne!(again.secret_key.expose(), first.secret_key.expose());
    let hooks = sandbox.registered_webhooks();
    let ours: Vec<_> = hooks.iter().filter(|h| h.webhook_url == url).collect();
    assert_eq!(ours.len(), 2, "one per entity");
    for hook in ours {
        assert_eq!(
            hook.secret_key,
            again.secret_key.expose(),
            "the key was PATCHed"
        );
        assert_eq!(hook.excluded.len(), 1);
    }
    assert!(
        hooks
            .iter()
            .any(|h| h.webhook_url == "https://other.example/h"),
        "webhooks elsewhere are left alone"
    );
    // Only ids and flags went over the wire for the kept ones: one PATCH each.
    assert_eq!(bodies(&sandbox, "PATCH", "TicketWebhooks").len(), 1);
    assert_eq!(bodies(&sandbox, "PATCH", "TicketNoteWebhooks").len(), 1);
}

#[tokio::test]
async fn ensure_webhooks_without_permission_is_a_permanent_rejection_and_a_missing_user_not_found()
{
    let (sandbox, client, _company) = setup().await;
    sandbox.set_webhook_permission(false);
    let err = client
        .ensure_webhooks(&webhook_request("http://127.0.0.1:9/t/acme/autotask"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Rejected { status: 500, message, .. } if message.contains("adequate permissions")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(sandbox.registered_webhooks().is_empty());

    sandbox.set_webhook_permission(true);
    let err = client
        .ensure_webhooks(&WebhookRequest {
            api_username: "nobody@msp.example",
            ..webhook_request("http://127.0.0.1:9/t/acme/autotask")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
}
