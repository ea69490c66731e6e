use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::conditions::{matches, parse_conditions};
use super::events::signature;
use super::query::TICKETS;
use super::*;
use crate::faults::FaultConfig;
use crate::recording::REDACTED;

const CLIENT_ID: &str = "0b6a3c7e-5f1d-4c2a-9e8b-7d6f5a4b3c2d";

fn basic(company: &str, public: &str, private: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{company}+{public}:{private}"))
    )
}

/// An authenticated API request, as the connector makes them.
fn api(sandbox: &ConnectWiseSandbox, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.api_base()))
        .header("Authorization", basic("acme", "pub-key", "priv-key"))
        .header("clientId", CLIENT_ID)
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.expect("the sandbox answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, headers, body)
}

async fn get(sandbox: &ConnectWiseSandbox, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(api(sandbox, Method::GET, path)).await;
    (status, body)
}

async fn post(sandbox: &ConnectWiseSandbox, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = send(api(sandbox, Method::POST, path).json(&body)).await;
    (status, body)
}

async fn patch(sandbox: &ConnectWiseSandbox, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = send(api(sandbox, Method::PATCH, path).json(&body)).await;
    (status, body)
}

/// The fields named by the inner errors of a 400.
fn error_fields(body: &Value) -> Vec<String> {
    assert_eq!(body["code"], "InvalidObject", "{body}");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `(url, rel)` of a `Link` header.
fn links(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(value) = headers.get("link") else {
        return Vec::new();
    };
    value
        .to_str()
        .unwrap()
        .split(", ")
        .map(|part| {
            let (url, rel) = part.split_once(">; rel=\"").expect("<url>; rel=\"…\"");
            (
                url.trim_start_matches('<').to_owned(),
                rel.trim_end_matches('"').to_owned(),
            )
        })
        .collect()
}

fn link(headers: &HeaderMap, rel: &str) -> Option<String> {
    links(headers)
        .into_iter()
        .find(|(_, r)| r == rel)
        .map(|(url, _)| url)
}

fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
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

struct World {
    sandbox: ConnectWiseSandbox,
    board: i64,
    other_board: i64,
    company: i64,
    tech: i64,
}

async fn world() -> World {
    let sandbox = ConnectWiseSandbox::start(ConnectWiseSandboxConfig::default())
        .await
        .unwrap();
    let board = sandbox.add_board("Help Desk");
    let other_board = sandbox.add_board("Projects Desk");
    let company = sandbox.add_company("contoso", "Contoso Ltd");
    let tech = sandbox.add_member("tess", "Tess", "Technician");
    World {
        sandbox,
        board,
        other_board,
        company,
        tech,
    }
}

impl World {
    /// A ticket created through the API; its id.
    async fn ticket(&self, summary: &str, xref: Option<&str>) -> i64 {
        let mut body = json!({"summary": summary, "company": {"id": self.company},
            "board": {"id": self.board}});
        if let Some(xref) = xref {
            body["externalXRef"] = json!(xref);
        }
        let (status, created) = post(&self.sandbox, "service/tickets", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_i64().unwrap()
    }
}

// ---------------------------------------------------------------------------
// Authentication, companyinfo, codebase
// ---------------------------------------------------------------------------

#[tokio::test]
async fn api_calls_need_basic_auth_with_the_company_and_a_client_id() {
    let World { sandbox, .. } = world().await;
    let url = format!("{}service/tickets", sandbox.api_base());
    let http = reqwest::Client::new();
    let good = basic("acme", "pub-key", "priv-key");
    let refused = [
        ("no clientId", http.get(&url).header("Authorization", &good)),
        (
            "blank clientId",
            http.get(&url)
                .header("Authorization", &good)
                .header("clientId", "  "),
        ),
        (
            "wrong private key",
            http.get(&url)
                .header("Authorization", basic("acme", "pub-key", "nope"))
                .header("clientId", CLIENT_ID),
        ),
        (
            "wrong company",
            http.get(&url)
                .header("Authorization", basic("globex", "pub-key", "priv-key"))
                .header("clientId", CLIENT_ID),
        ),
        (
            "no company prefix",
            http.get(&url)
                .header(
                    "Authorization",
                    format!("Basic {}", STANDARD.encode("pub-key:priv-key")),
                )
                .header("clientId", CLIENT_ID),
        ),
        (
            "no Authorization",
            http.get(&url).header("clientId", CLIENT_ID),
        ),
    ];
    for (case, request) in refused {
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(body["code"], "Unauthorized", "{case}: {body}");
        assert_eq!(body["errors"], json!([]), "{case}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(sandbox.api_calls(), 0, "refused calls are not served");

    // The company id is case-insensitive; keys are not.
    let (status, _, body) = send(
        http.get(&url)
            .header("Authorization", basic("ACME", "pub-key", "priv-key"))
            .header("clientId", CLIENT_ID),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    assert_eq!(sandbox.api_calls(), 1);

    // Credentials never reach the request log.
    let recorded = sandbox.api_requests_matching("GET", "service/tickets");
    assert_eq!(recorded.len(), 7);
    assert!(recorded
        .iter()
        .filter_map(|r| r.header("authorization"))
        .all(|h| h == format!("Basic {REDACTED}")));
}

#[tokio::test]
async fn companyinfo_names_the_codebase_and_unknown_companies_are_null() {
    let sandbox = ConnectWiseSandbox::start(ConnectWiseSandboxConfig::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for company in ["acme", "ACME"] {
        let (status, _, info) = send(http.get(format!(
            "{}/login/companyinfo/{company}",
            sandbox.site_url()
        )))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(info["Codebase"], "v2025_1/");
        assert_eq!(info["CompanyID"], "acme");
        assert_eq!(info["VersionCode"], "v2025.1");
        assert_eq!(info["IsCloud"], false);
        assert!(info["CompanyName"].is_string() && info["VersionNumber"].is_string());
    }
    let response = http
        .get(format!("{}/login/companyinfo/globex", sandbox.site_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap().trim(), "null");
    assert_eq!(sandbox.api_calls(), 0, "companyinfo is not an API call");
    assert_eq!(
        sandbox.api_base(),
        format!("{}/v2025_1/apis/3.0/", sandbox.site_url())
    );
}

#[tokio::test]
async fn a_codebase_change_moves_the_api_and_the_old_path_answers_404() {
    let sandbox = ConnectWiseSandbox::start(ConnectWiseSandboxConfig::default())
        .await
        .unwrap();
    let old_base = sandbox.api_base();
    let (status, info) = get(&sandbox, "system/info").await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["isCloud"], false);

    sandbox.set_codebase("v2025_2/");
    let (status, _, _) = send(
        reqwest::Client::new()
            .get(format!("{old_base}system/info"))
            .header("Authorization", basic("acme", "pub-key", "priv-key"))
            .header("clientId", CLIENT_ID),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old codebase is gone");
    let (_, _, info) =
        send(reqwest::Client::new().get(format!("{}/login/companyinfo/acme", sandbox.site_url())))
            .await;
    assert_eq!(info["Codebase"], "v2025_2/");
    assert_eq!(
        sandbox.api_base(),
        format!("{}/v2025_2/apis/3.0/", sandbox.site_url())
    );
    let (status, _) = get(&sandbox, "system/info").await;
    assert_eq!(status, StatusCode::OK, "the new codebase answers");
}

// ---------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ticket_creates_are_validated_like_connectwise() {
    let w = world().await;
    let sb = &w.sandbox;
    let valid = |summary: &str| json!({"summary": summary, "company": {"id": w.company}, "board": {"id": w.board}});

    let (status, body) = post(sb, "service/tickets", valid(&"x".repeat(101))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["summary"]);

    let (status, body) = post(
        sb,
        "service/tickets",
        json!({"summary": "No company", "board": {"id": w.board}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["company"]);
    assert_eq!(body["errors"][0]["code"], "MissingRequiredField");

    let other_new = sb.board_status(w.other_board, "New").unwrap();
    let mut wrong_board = valid("Wrong status");
    wrong_board["status"] = json!({"id": other_new});
    let (status, body) = post(sb, "service/tickets", wrong_board).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["status"]);

    let mut inactive = valid("Inactive status");
    inactive["status"] = json!({"id": sb.board_status(w.board, "Old Status").unwrap()});
    let (status, body) = post(sb, "service/tickets", inactive).await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["status".to_owned()])
    );

    let mut bad_refs = valid("Bad references");
    bad_refs["priority"] = json!({"id": 999});
    bad_refs["company"] = json!(w.company);
    bad_refs["externalXRef"] = json!("z".repeat(101));
    let (status, body) = post(sb, "service/tickets", bad_refs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut fields = error_fields(&body);
    fields.sort();
    assert_eq!(fields, ["company", "externalXRef", "priority"]);
    assert!(sb.tickets().is_empty(), "refused creates create nothing");

    // Exactly 100 characters is fine; the board defaults to the first one,
    // the status to its default, the company may be named by identifier.
    let (status, created) = post(
        sb,
        "service/tickets",
        json!({"summary": "y".repeat(100), "company": {"identifier": "contoso"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["board"]["id"], w.board);
    assert_eq!(created["status"]["name"], "New");
    assert_eq!(created["priority"]["name"], "Priority 3 - Normal Response");

    // A full create: the shape, initialDescription as the first note only.
    let (status, created) = post(
        sb,
        "service/tickets",
        json!({"summary": "Printer offline", "company": {"id": w.company},
            "board": {"id": w.board}, "status": {"id": sb.board_status(w.board, "In Progress")},
            "priority": {"id": sb.priority("Priority 2 - Quick Response")},
            "externalXRef": "zendesk:1234", "initialDescription": "User reports it is offline"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, fetched) = get(sb, &format!("service/tickets/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);
    for ticket in [&created, &fetched] {
        assert!(ticket.get("initialDescription").is_none(), "{ticket}");
        assert!(!ticket.to_string().contains("User reports"), "{ticket}");
    }
    assert_eq!(fetched["summary"], "Printer offline");
    assert_eq!(fetched["recordType"], "ServiceTicket");
    assert_eq!(fetched["externalXRef"], "zendesk:1234");
    assert_eq!(fetched["closedFlag"], false);
    assert_eq!(
        fetched["board"],
        json!({"id": w.board, "name": "Help Desk"})
    );
    assert_eq!(fetched["status"]["name"], "In Progress");
    assert_eq!(fetched["priority"]["name"], "Priority 2 - Quick Response");
    assert_eq!(
        fetched["company"],
        json!({"id": w.company, "identifier": "contoso", "name": "Contoso Ltd"})
    );
    let info = &fetched["_info"];
    assert_eq!(
        (&info["updatedBy"], &info["enteredBy"]),
        (&json!("psabridge"), &json!("psabridge"))
    );
    for key in ["lastUpdated", "dateEntered"] {
        let stamp = info[key].as_str().unwrap();
        assert_eq!(stamp.len(), 20, "{stamp}");
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'));
    }
    let notes = sb.notes(id);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].text, "User reports it is offline");
    assert!(notes[0].detail_description && !notes[0].internal_analysis && !notes[0].resolution);
    assert_eq!(notes[0].member_id, Some(sb.api_member_id()));
    assert_eq!(notes[0].created_by, "psabridge");
    let (_, listed) = get(sb, &format!("service/tickets/{id}/notes")).await;
    assert_eq!(listed[0]["text"], "User reports it is offline");
    assert_eq!(listed[0]["detailDescriptionFlag"], true);
    assert_eq!(listed[0]["member"]["identifier"], "psabridge");

    // closedFlag follows the status's closedStatus.
    let mut closed = valid("Closed at once");
    closed["status"] = json!({"id": sb.board_status(w.board, "Closed")});
    let (status, created) = post(sb, "service/tickets", closed).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["closedFlag"], true);
    assert!(sb.ticket(created["id"].as_i64().unwrap()).unwrap().closed);

    // PUT is not offered; unknown tickets are 404.
    let (status, _, body) =
        send(api(sb, Method::PUT, &format!("service/tickets/{id}")).json(&json!({}))).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::METHOD_NOT_ALLOWED, &json!("MethodNotAllowed"))
    );
    let (status, body) = get(sb, "service/tickets/999999").await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("NotFound"))
    );
}

#[tokio::test]
async fn patches_are_op_arrays_with_bare_paths() {
    let w = world().await;
    let sb = &w.sandbox;
    let id = w.ticket("Printer offline", Some("zendesk:1")).await;
    let path = format!("service/tickets/{id}");
    let before = sb.ticket(id).unwrap();

    let (status, body) = patch(sb, &path, json!({"summary": "not an array"})).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("BadRequest"))
    );
    for (op, field) in [
        (
            json!({"op": "replace", "path": "/summary", "value": "x"}),
            "/summary",
        ),
        (
            json!({"op": "replace", "path": "company/identifier", "value": "x"}),
            "company/identifier",
        ),
        (
            json!({"op": "replace", "path": "Summary", "value": "x"}),
            "Summary",
        ),
        (
            json!({"op": "move", "path": "summary", "value": "x"}),
            "summary",
        ),
        (json!({"op": "replace", "path": "summary"}), "summary"),
        (json!({"op": "remove", "path": "summary"}), "summary"),
        (
            json!({"op": "replace", "path": "closedFlag", "value": true}),
            "closedFlag",
        ),
        (
            json!({"op": "replace", "path": "status", "value": 5}),
            "status",
        ),
        (
            json!({"op": "replace", "path": "customFields", "value": {"id": 1}}),
            "customFields",
        ),
        (
            json!({"op": "replace", "path": "initialDescription", "value": "x"}),
            "initialDescription",
        ),
    ] {
        let (status, body) = patch(sb, &path, json!([op])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op}");
        assert_eq!(error_fields(&body), [field], "{op}");
        if field.contains('/') {
            let message = body["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains("not a field name"), "{message}");
        }
    }

    // Board moves need a status of the new board in the same PATCH.
    let (status, body) = patch(
        sb,
        &path,
        json!([
        {"op": "replace", "path": "board", "value": {"id": w.other_board}}]),
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["status".to_owned()])
    );
    let (status, body) = patch(sb, &path, json!([
        {"op": "replace", "path": "board", "value": {"id": w.other_board}},
        {"op": "replace", "path": "status", "value": {"id": sb.board_status(w.board, "In Progress")}}])).await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["status".to_owned()])
    );
    let (status, body) = patch(sb, &path, json!([
        {"op": "replace", "path": "status", "value": {"id": sb.board_status(w.other_board, "In Progress")}}])).await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["status".to_owned()])
    );
    assert_eq!(
        sb.ticket(id).unwrap(),
        before,
        "refused patches change nothing"
    );

    // A valid patch writes, bumps lastUpdated and names the API member.
    let past = Utc::now() - chrono::Duration::hours(1);
    sb.set_ticket_last_updated(id, past);
    let in_progress = sb.board_status(w.other_board, "In Progress").unwrap();
    let custom = json!([{"id": 7, "caption": "Zendesk", "type": "Text", "value": "1234"}]);
    let (status, patched) = patch(sb, &path, json!([
        {"op": "replace", "path": "summary", "value": "Printer on fire"},
        {"op": "replace", "path": "board", "value": {"id": w.other_board}},
        {"op": "replace", "path": "status", "value": {"id": in_progress}},
        {"op": "replace", "path": "priority", "value": {"id": sb.priority("Priority 1 - Emergency Response")}},
        {"op": "remove", "path": "externalXRef"},
        {"op": "replace", "path": "customFields", "value": custom}])).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["summary"], "Printer on fire");
    assert_eq!(
        (
            patched["board"]["id"].as_i64(),
            patched["status"]["id"].as_i64()
        ),
        (Some(w.other_board), Some(in_progress))
    );
    assert_eq!(
        patched["priority"]["name"],
        "Priority 1 - Emergency Response"
    );
    assert!(patched.get("externalXRef").is_none(), "{patched}");
    assert_eq!(patched["customFields"], custom);
    let after = sb.ticket(id).unwrap();
    assert!(
        after.last_updated > past,
        "lastUpdated moved: {}",
        after.last_updated
    );
    assert_eq!(
        patched["_info"]["lastUpdated"],
        super::db::time(&after.last_updated)
    );
    assert_eq!(after.updated_by, "psabridge");

    // Closing by status sets closedFlag; reopening clears it.
    let closed = sb.board_status(w.other_board, "Complete").unwrap();
    let (_, patched) = patch(
        sb,
        &path,
        json!([{"op": "replace", "path": "status", "value": {"id": closed}}]),
    )
    .await;
    assert_eq!(patched["closedFlag"], true);
    let (_, patched) = patch(
        sb,
        &path,
        json!([{"op": "replace", "path": "status", "value": {"name": "new"}}]),
    )
    .await;
    assert_eq!(
        (&patched["closedFlag"], &patched["status"]["name"]),
        (&json!(false), &json!("New"))
    );
}

#[tokio::test]
async fn notes_need_text_and_a_type_flag() {
    let w = world().await;
    let sb = &w.sandbox;
    let id = w.ticket("Printer offline", None).await;
    let path = format!("service/tickets/{id}/notes");

    let (status, body) = post(sb, &path, json!({"text": "No type"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["detailDescriptionFlag"]);
    let (status, body) = post(
        sb,
        &path,
        json!({"text": "All false", "detailDescriptionFlag": false,
        "internalAnalysisFlag": false, "resolutionFlag": false}),
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (
            StatusCode::BAD_REQUEST,
            vec!["detailDescriptionFlag".to_owned()]
        )
    );
    let (status, body) = post(
        sb,
        &path,
        json!({"text": "  ", "internalAnalysisFlag": true}),
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["text".to_owned()])
    );
    let (status, body) = post(
        sb,
        &path,
        json!({"text": "x", "internalAnalysisFlag": "yes"}),
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (
            StatusCode::BAD_REQUEST,
            vec!["internalAnalysisFlag".to_owned()]
        )
    );
    let (status, _) = post(
        sb,
        "service/tickets/999999/notes",
        json!({"text": "x", "internalAnalysisFlag": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(sb.notes(id).is_empty());

    let past = Utc::now() - chrono::Duration::hours(1);
    sb.set_ticket_last_updated(id, past);
    let (status, note) = post(
        sb,
        &path,
        json!({"text": "Checked the spooler", "internalAnalysisFlag": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["ticketId"], id);
    assert_eq!(
        (
            &note["internalAnalysisFlag"],
            &note["internalFlag"],
            &note["externalFlag"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(note["member"]["id"], sb.api_member_id());
    assert_eq!(note["createdBy"], "psabridge");
    assert!(note["dateCreated"].is_string());
    assert!(
        sb.ticket(id).unwrap().last_updated > past,
        "a note bumps the ticket"
    );

    // Written on behalf of a technician: member is theirs, createdBy the API's.
    let (status, note) = post(
        sb,
        &path,
        json!({"text": "Customer update", "detailDescriptionFlag": true,
        "member": {"identifier": "tess"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["member"]["id"], w.tech);
    assert_eq!(note["createdBy"], "psabridge");
    let note_id = note["id"].as_i64().unwrap();

    let (_, listed) = get(sb, &path).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let (status, one) = get(sb, &format!("{path}/{note_id}")).await;
    assert_eq!(
        (status, &one["text"]),
        (StatusCode::OK, &json!("Customer update"))
    );
    let other = w.ticket("Other", None).await;
    let (status, _) = get(sb, &format!("service/tickets/{other}/notes/{note_id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a note is found under its own ticket only"
    );
    let (_, count) = get(
        sb,
        &format!("{path}/count?conditions=internalAnalysisFlag=true"),
    )
    .await;
    assert_eq!(count, json!({"count": 1}));
}

// ---------------------------------------------------------------------------
// Conditions and paging
// ---------------------------------------------------------------------------

#[test]
fn the_conditions_parser_builds_a_tree() {
    let row = json!({"id": 7, "summary": "Printer on fire", "externalXRef": "zendesk:42",
        "closedFlag": false, "board": {"id": 10, "name": "Help Desk"},
        "status": {"id": 301, "name": "In Progress"},
        "_info": {"lastUpdated": "2025-03-01T12:00:00Z"}});
    let check = |conditions: &str| {
        let expr = parse_conditions(conditions, &TICKETS)
            .unwrap_or_else(|e| panic!("{conditions}: {e}"))
            .expect("not blank");
        matches(&expr, &row)
    };
    assert!(check(r#"externalXRef = "ZENDESK:42""#));
    assert!(check(r#"summary like "printer%fire""#));
    assert!(!check(r#"summary like "fire%""#));
    assert!(check(r#"summary not like "%water%""#));
    assert!(check(r#"summary contains "ON FI""#));
    assert!(check("board/id = 10 AND status/name = \"in progress\""));
    assert!(check(
        "lastUpdated > [2025-03-01T11:59:59Z] and _info/lastUpdated <= [2025-03-01T12:00:00Z]"
    ));
    assert!(!check("lastUpdated > [2025-03-01T12:00:00Z]"));
    assert!(check("id in (1, 7, 9) and id not in (8)"));
    assert!(check(
        "closedFlag = false and team/id = null and externalXRef != null"
    ));
    // and binds tighter than or; parentheses regroup.
    assert!(check("id = 1 and id = 2 or id = 7"));
    assert!(!check("id = 1 and (id = 2 or id = 7)"));
    assert!(check("not (id = 1) AND NOT closedFlag = true"));
    // SQL null semantics: a null field matches nothing but = null.
    assert!(!check(r#"team/name != "x""#));
    assert_eq!(parse_conditions("  ", &TICKETS), Ok(None));

    for malformed in [
        "externalXRef = 'x'",
        r#"summary = "open"#,
        "id in (1, 2",
        "id in ()",
        "id == 1",
        "id <> 1",
        "(id = 1",
        "id = 1)",
        "id = 1 and",
        "id 1",
        "nosuchfield = 1",
        r#"id = "7""#,
        "summary = 7",
        r#"lastUpdated > "2025-01-01""#,
        "lastUpdated > [yesterday]",
        "lastUpdated > [2025-01-01",
        "closedFlag > true",
        "id contains 7",
        "summary < null",
        "summary = open",
        "12abc = 1",
    ] {
        assert!(
            parse_conditions(malformed, &TICKETS).is_err(),
            "{malformed} should not parse"
        );
    }
}

#[tokio::test]
async fn conditions_filter_lists_and_malformed_ones_are_400() {
    let w = world().await;
    let sb = &w.sandbox;
    let first = w.ticket("Printer offline", Some("zendesk:1")).await;
    let second = w.ticket("Scanner on fire", Some("zendesk:2")).await;
    let third = w.ticket("Printer jammed", None).await;
    let long_ago = Utc::now() - chrono::Duration::days(2);
    sb.set_ticket_last_updated(first, long_ago);
    sb.set_ticket_last_updated(second, long_ago);
    let since = super::db::time(&(long_ago + chrono::Duration::hours(1)));

    let query = |conditions: String| async move {
        let (status, _, body) = send(
            api(sb, Method::GET, "service/tickets").query(&[("conditions", conditions.as_str())]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{conditions}: {body}");
        ids(&body)
    };
    assert_eq!(
        query(r#"externalXRef = "zendesk:2""#.into()).await,
        [second]
    );
    assert_eq!(query(format!("lastUpdated > [{since}]")).await, [third]);
    assert_eq!(
        query(format!("_info/lastUpdated < [{since}]")).await,
        [first, second]
    );
    assert_eq!(
        query(format!("id in ({first}, {third})")).await,
        [first, third]
    );
    assert_eq!(
        query(format!(
            r#"(externalXRef = "zendesk:1" OR externalXRef = "zendesk:2") and board/id = {} and summary like "Printer%""#,
            w.board
        ))
        .await,
        [first]
    );
    assert_eq!(
        query(r#"summary contains "printer" and externalXRef = null"#.into()).await,
        [third]
    );
    assert_eq!(
        query(r#"company/identifier = "contoso" and status/name = "New""#.into()).await,
        [first, second, third]
    );
    let (_, count) = get(
        sb,
        "service/tickets/count?conditions=summary%20like%20%22Printer%25%22",
    )
    .await;
    assert_eq!(count, json!({"count": 2}));

    for malformed in [
        "externalXRef = 'zendesk:1'",
        "summary = \"open",
        "id in (1, 2",
        "nosuchfield = 1",
        "lastUpdated > 2025-01-01",
        "id = 1 or",
    ] {
        let (status, _, body) =
            send(api(sb, Method::GET, "service/tickets").query(&[("conditions", malformed)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid conditions"),
            "{body}"
        );
    }

    // Over 2,000 characters of query string is refused.
    let many: Vec<String> = (0..400).map(|i| (10_000 + i).to_string()).collect();
    let (status, _, _) = send(
        api(sb, Method::GET, "service/tickets")
            .query(&[("conditions", format!("id in ({})", many.join(",")))]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Companies and configurations.
    let globex = sb.add_company("globex", "Globex Corporation");
    let laptop = sb.add_configuration(w.company, "LAPTOP-01", Some("SN-123"), Some("TAG-9"));
    let desktop = sb.add_configuration(globex, "DESKTOP-07", Some("SN-456"), None);
    let retired = sb.add_configuration(w.company, "OLD-PC", Some("SN-123"), None);
    sb.set_configuration_active(retired, false);
    let list = |path: &'static str, conditions: String| async move {
        let (status, _, body) =
            send(api(sb, Method::GET, path).query(&[("conditions", conditions.as_str())])).await;
        assert_eq!(status, StatusCode::OK, "{conditions}: {body}");
        ids(&body)
    };
    assert_eq!(
        list(
            "company/configurations",
            r#"serialNumber = "sn-123""#.into()
        )
        .await,
        [laptop, retired]
    );
    assert_eq!(
        list(
            "company/configurations",
            r#"serialNumber = "SN-123" and activeFlag = true"#.into()
        )
        .await,
        [laptop]
    );
    assert_eq!(
        list("company/configurations", r#"tagNumber = "TAG-9""#.into()).await,
        [laptop]
    );
    assert_eq!(
        list("company/configurations", format!("company/id = {globex}")).await,
        [desktop]
    );
    assert_eq!(
        list("company/configurations", r#"name like "%PC""#.into()).await,
        [retired]
    );
    assert_eq!(
        list("company/companies", r#"identifier = "GLOBEX""#.into()).await,
        [globex]
    );
    assert_eq!(
        list(
            "company/companies",
            format!(r#"name contains "ltd" or id = {globex}"#)
        )
        .await,
        [w.company, globex]
    );
    let (_, statuses) = get(
        sb,
        &format!(
            "service/boards/{}/statuses?conditions=closedStatus%3Dtrue",
            w.board
        ),
    )
    .await;
    let names: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Complete", "Closed"]);
}

#[tokio::test]
async fn navigable_paging_follows_link_headers() {
    let w = world().await;
    let sb = &w.sandbox;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(w.ticket(&format!("Ticket {i}"), None).await);
    }
    let (status, headers, body) = send(api(sb, Method::GET, "service/tickets?pageSize=3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), created[..3]);
    let rels: Vec<String> = links(&headers).into_iter().map(|(_, r)| r).collect();
    assert_eq!(rels, ["next", "last"]);
    let last = link(&headers, "last").unwrap();
    assert!(
        last.starts_with(&sb.api_base()) && last.contains("page=3") && last.contains("pageSize=3"),
        "{last}"
    );

    let mut seen = ids(&body);
    let mut next = link(&headers, "next");
    let mut pages = 1;
    while let Some(url) = next {
        assert!(
            url.starts_with(sb.site_url()),
            "absolute on the sandbox host: {url}"
        );
        let (status, headers, body) = send(
            reqwest::Client::new()
                .get(&url)
                .header("Authorization", basic("acme", "pub-key", "priv-key"))
                .header("clientId", CLIENT_ID),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&body));
        pages += 1;
        assert!(link(&headers, "first").is_some() && link(&headers, "prev").is_some());
        next = link(&headers, "next");
    }
    assert_eq!((pages, seen), (3, created.clone()));

    let (_, headers, body) = send(api(sb, Method::GET, "service/tickets?pageSize=3&page=3")).await;
    assert_eq!(ids(&body), created[6..]);
    assert!(link(&headers, "next").is_none() && link(&headers, "last").is_none());
    let (_, headers, body) = send(api(sb, Method::GET, "service/tickets")).await;
    assert_eq!(ids(&body).len(), 7, "default page size 25");
    assert!(headers.get("link").is_none(), "one page: no Link");
    let (_, _, body) = send(api(
        sb,
        Method::GET,
        "service/tickets?pageSize=2&orderBy=id%20desc",
    ))
    .await;
    assert_eq!(ids(&body), [created[6], created[5]]);
    let (_, _, body) = send(api(sb, Method::GET, "service/tickets?pageSize=3&page=9")).await;
    assert_eq!(body, json!([]));

    for bad in [
        "pageSize=1001",
        "pageSize=0",
        "page=0",
        "pageSize=ten",
        "orderBy=nosuch%20asc",
        "orderBy=id%20sideways",
    ] {
        let (status, _, body) = send(api(sb, Method::GET, &format!("service/tickets?{bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _, body) = send(api(sb, Method::GET, "service/tickets?pageSize=1000")).await;
    assert_eq!((status, ids(&body).len()), (StatusCode::OK, 7));
}

#[tokio::test]
async fn forward_only_paging_walks_by_page_id_until_no_link() {
    let w = world().await;
    let sb = &w.sandbox;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(w.ticket(&format!("Ticket {i}"), None).await);
    }
    let forward =
        |request: reqwest::RequestBuilder| request.header("pagination-type", "forward-only");

    let (status, _, body) = send(forward(api(
        sb,
        Method::GET,
        "service/tickets?orderBy=id%20desc",
    )))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, mut headers, body) =
        send(forward(api(sb, Method::GET, "service/tickets?pageSize=3"))).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = ids(&body);
    let mut sizes = vec![seen.len()];
    while let Some(url) = link(&headers, "next") {
        assert_eq!(
            links(&headers).len(),
            1,
            "forward-only links only to the next page"
        );
        assert!(
            url.starts_with(&sb.api_base()) && url.contains("pageId="),
            "{url}"
        );
        let (status, next_headers, body) = send(forward(
            reqwest::Client::new()
                .get(&url)
                .header("Authorization", basic("acme", "pub-key", "priv-key"))
                .header("clientId", CLIENT_ID),
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        sizes.push(ids(&body).len());
        seen.extend(ids(&body));
        headers = next_headers;
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, created);
    assert!(headers.get("link").is_none(), "no Link at the end");

    // pageId is "id greater than", combined with the conditions.
    let (_, headers, body) = send(forward(api(
        sb,
        Method::GET,
        &format!(
            "service/tickets?pageSize=3&pageId={}&conditions=id%20!%3D%20{}",
            created[3], created[5]
        ),
    )))
    .await;
    assert_eq!(ids(&body), [created[4], created[6]]);
    assert!(headers.get("link").is_none());
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

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
            StatusCode::NO_CONTENT
        }
    });
    let (url, _task) = crate::serve(app).await.unwrap();
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a callback within 5 s")
        .expect("receiver open")
}

async fn nothing_more(rx: &mut mpsc::UnboundedReceiver<Delivery>) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "no further callback");
}

/// Waits (up to 5 s) for `n` callback POSTs to have been answered.
async fn deliveries_reach(sandbox: &ConnectWiseSandbox, n: u64) {
    for _ in 0..250 {
        if sandbox.callback_deliveries() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandbox.callback_deliveries(), n);
}

/// Verifies a delivery as a receiver must: fetch `key_url`, then compare the
/// HMAC; returns the body.
async fn verified(delivery: &Delivery) -> Value {
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    let key_url = body["Metadata"]["key_url"].as_str().unwrap();
    let key: Value = reqwest::get(key_url).await.unwrap().json().await.unwrap();
    let key = key["signing_key"].as_str().expect("a signing key");
    let hashed = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&hashed).unwrap();
    hmac::Mac::update(&mut mac, &delivery.body);
    let expected = STANDARD.encode(hmac::Mac::finalize(mac).into_bytes());
    let header = delivery.headers["x-content-signature"].to_str().unwrap();
    assert_eq!(header, expected, "the signature verifies");
    body
}

#[tokio::test]
async fn callbacks_are_registered_and_fire_signed_on_ticket_changes() {
    let w = world().await;
    let sb = &w.sandbox;
    let (url, mut rx) = receiver().await;

    for (missing, body) in [
        (
            "url",
            json!({"objectId": 1, "type": "ticket", "level": "owner"}),
        ),
        (
            "objectId",
            json!({"url": url, "type": "ticket", "level": "owner"}),
        ),
        ("type", json!({"url": url, "objectId": 1, "level": "owner"})),
        (
            "level",
            json!({"url": url, "objectId": 1, "type": "ticket"}),
        ),
    ] {
        let (status, body) = post(sb, "system/callbacks", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_fields(&body), [missing]);
    }
    let (status, body) = post(
        sb,
        "system/callbacks",
        json!({"url": url, "objectId": 1, "type": "ticket", "level": "galaxy"}),
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["level".to_owned()])
    );

    // Type and level in the docs' capitals work too.
    let (status, owner) = post(
        sb,
        "system/callbacks",
        json!({"url": format!("{url}/owner"),
        "objectId": 1, "type": "Ticket", "level": "Owner", "description": "psa-bridge acme"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    let owner_id = owner["id"].as_i64().unwrap();
    let (status, _) = post(
        sb,
        "system/callbacks",
        json!({"url": format!("{url}/other-board"),
        "objectId": w.other_board, "type": "ticket", "level": "board"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(sb.callbacks().len(), 2);
    assert_eq!(sb.callbacks()[0].callback_type, "Ticket");
    let (_, listed) = get(
        sb,
        &format!(
            "system/callbacks?conditions=url%20contains%20%22{}%22",
            "owner"
        ),
    )
    .await;
    assert_eq!(ids(&listed), [owner_id]);
    let (status, one) = get(sb, &format!("system/callbacks/{owner_id}")).await;
    assert_eq!(
        (status, &one["description"]),
        (StatusCode::OK, &json!("psa-bridge acme"))
    );

    // An API create: "added" by the API member, the ticket as a string.
    let id = w.ticket("Printer offline", Some("zendesk:7")).await;
    let delivery = next(&mut rx).await;
    let body = verified(&delivery).await;
    assert_eq!(body["Action"], "added");
    assert_eq!(body["Type"], "ticket");
    assert_eq!(body["ID"], id);
    assert_eq!(body["MemberId"], "psabridge");
    assert_eq!(body["CompanyId"], "acme");
    assert_eq!(body["FromUrl"], sb.site_url());
    assert!(body["MessageId"].as_str().is_some_and(|m| !m.is_empty()));
    let entity: Value =
        serde_json::from_str(body["Entity"].as_str().expect("Entity is a string")).unwrap();
    assert_eq!(
        (&entity["id"], &entity["externalXRef"]),
        (&json!(id), &json!("zendesk:7"))
    );
    assert_eq!(sb.key_fetches(), 1);
    nothing_more(&mut rx).await;

    // A technician's note: "updated" by the technician.
    sb.add_note_as(w.tech, id, "Rebooted it", NoteKind::Discussion);
    let body = verified(&next(&mut rx).await).await;
    assert_eq!(
        (&body["Action"], &body["MemberId"]),
        (&json!("updated"), &json!("tess"))
    );
    // An API PATCH and an API note: "updated" by the API member.
    let (status, _) = patch(
        sb,
        &format!("service/tickets/{id}"),
        json!([{"op": "replace", "path": "summary", "value": "Printer back"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = verified(&next(&mut rx).await).await;
    assert_eq!(
        (&body["Action"], &body["MemberId"]),
        (&json!("updated"), &json!("psabridge"))
    );
    let entity: Value = serde_json::from_str(body["Entity"].as_str().unwrap()).unwrap();
    assert_eq!(entity["summary"], "Printer back");
    let (status, _) = post(
        sb,
        &format!("service/tickets/{id}/notes"),
        json!({"text": "Sync", "internalAnalysisFlag": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(verified(&next(&mut rx).await).await["Action"], "updated");
    nothing_more(&mut rx).await;

    // A move to the other board fires both the owner and the board callback.
    let in_progress = sb.board_status(w.other_board, "In Progress").unwrap();
    sb.move_board_as(w.tech, id, w.other_board, in_progress);
    let mut paths = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut rx).await;
        paths.push(verified(&delivery).await["MemberId"].clone());
    }
    assert_eq!(paths, [json!("tess"), json!("tess")]);
    deliveries_reach(sb, 6).await;

    // Deleted callbacks fire no more; a second delete is 404.
    let (status, _, body) = send(api(
        sb,
        Method::DELETE,
        &format!("system/callbacks/{owner_id}"),
    ))
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _, _) = send(api(
        sb,
        Method::DELETE,
        &format!("system/callbacks/{owner_id}"),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.ticket("On the help desk board", None).await;
    nothing_more(&mut rx).await;

    // Unknown key ids are 404; rotated keys sign from then on.
    let response = reqwest::get(format!(
        "{}/v2025_1/callbackkey/index.rails?id=nope",
        sb.site_url()
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let key_id = sb.rotate_callback_key();
    sb.set_priority_as(w.tech, id, sb.priority("Do Not Respond").unwrap());
    let delivery = next(&mut rx).await;
    let body = verified(&delivery).await;
    assert!(body["Metadata"]["key_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("id={key_id}")));
}

#[tokio::test]
async fn callback_deliveries_go_through_the_fault_plan() {
    let w = world().await;
    let sb = &w.sandbox;
    let (url, mut rx) = receiver().await;
    let (status, _) = post(
        sb,
        "system/callbacks",
        json!({"url": url, "objectId": 1, "type": "ticket", "level": "owner"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = sb.add_ticket_as(w.tech, w.board, w.company, "Printer offline");
    assert_eq!(verified(&next(&mut rx).await).await["Action"], "added");

    sb.faults().update(|f| f.drop_webhook_rate = 1.0);
    sb.set_summary_as(w.tech, id, "Dropped");
    nothing_more(&mut rx).await;
    assert_eq!(sb.faults().stats().webhooks_dropped, 1);

    sb.faults().set(FaultConfig {
        duplicate_webhook_rate: 1.0,
        ..FaultConfig::default()
    });
    sb.set_summary_as(w.tech, id, "Twice");
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(first.body, second.body, "a duplicate is the same message");
    deliveries_reach(sb, 3).await;
}

// ---------------------------------------------------------------------------
// Faults, technicians
// ---------------------------------------------------------------------------

#[tokio::test]
async fn faults_answer_in_the_connectwise_error_shape() {
    let w = world().await;
    let sb = &w.sandbox;
    sb.faults().set(FaultConfig {
        rate_limit_burst: 1,
        retry_after_secs: 7,
        ..FaultConfig::default()
    });
    let (status, headers, body) = send(api(sb, Method::GET, "service/tickets")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(
        (&body["code"], &body["errors"]),
        (&json!("TooManyRequests"), &json!([]))
    );
    let (status, _) = get(sb, "service/tickets").await;
    assert_eq!(status, StatusCode::OK, "the burst is over");

    sb.faults().set(FaultConfig {
        server_error_rate: 1.0,
        ..FaultConfig::default()
    });
    let (status, body) = post(
        sb,
        "service/tickets",
        json!({"summary": "x", "company": {"id": w.company}}),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    assert!(sb.tickets().is_empty(), "a faulted create writes nothing");
    assert_eq!(sb.faults().stats().server_errors, 1);
    assert_eq!(sb.api_calls(), 1, "faulted calls are not served");
}

#[tokio::test]
async fn technician_edits_are_checked_and_visible_through_the_api() {
    let w = world().await;
    let sb = &w.sandbox;
    let id = sb.add_ticket_as(w.tech, w.board, w.company, "Printer offline");
    let ticket = sb.ticket(id).unwrap();
    assert_eq!(ticket.status_id, sb.board_status(w.board, "New").unwrap());
    assert_eq!(
        (ticket.entered_by.as_str(), ticket.updated_by.as_str()),
        ("tess", "tess")
    );

    let other = sb.board_status(w.other_board, "Closed").unwrap();
    let message = panic_message(|| sb.set_status_as(w.tech, id, other));
    assert!(message.contains("not of board"), "{message}");
    let message = panic_message(|| {
        sb.move_board_as(
            w.tech,
            id,
            w.other_board,
            sb.board_status(w.board, "New").unwrap(),
        )
    });
    assert!(message.contains("not of board"), "{message}");
    assert_eq!(
        sb.ticket(id).unwrap(),
        ticket,
        "refused edits change nothing"
    );

    sb.set_status_as(w.tech, id, sb.board_status(w.board, "Closed").unwrap());
    let (_, fetched) = get(sb, &format!("service/tickets/{id}")).await;
    assert_eq!(
        (&fetched["closedFlag"], &fetched["_info"]["updatedBy"]),
        (&json!(true), &json!("tess"))
    );
    assert_eq!(fetched["closedBy"], "tess");

    // Status ids are unique across boards; each board has its default team.
    let (_, statuses) = get(sb, &format!("service/boards/{}/statuses", w.other_board)).await;
    let other_ids = ids(&statuses);
    let (_, mine) = get(sb, &format!("service/boards/{}/statuses", w.board)).await;
    assert!(ids(&mine).iter().all(|s| !other_ids.contains(s)));
    assert_eq!(mine.as_array().unwrap().len(), 7);
    assert!(mine
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "Old Status" && s["inactive"] == true));
    let (_, teams) = get(sb, &format!("service/boards/{}/teams", w.board)).await;
    assert_eq!(ids(&teams), [sb.board_team(w.board).unwrap()]);
    let (_, priorities) = get(sb, "service/priorities").await;
    assert_eq!(
        priorities
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["defaultFlag"] == true)
            .count(),
        1
    );
    let (_, members) = get(sb, "system/members?conditions=licenseClass%3D%22A%22").await;
    assert_eq!(members[0]["identifier"], "psabridge");
    let (_, member) = get(sb, &format!("system/members/{}", w.tech)).await;
    assert_eq!(
        (&member["identifier"], &member["licenseClass"]),
        (&json!("tess"), &json!("F"))
    );
}

#[test]
fn the_signature_is_hmac_sha256_keyed_by_the_sha256_of_the_key() {
    // Independent of the module's helper: the documented recipe.
    let body = br#"{"ID":1}"#;
    let hashed = <sha2::Sha256 as sha2::Digest>::digest(b"secret");
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&hashed).unwrap();
    hmac::Mac::update(&mut mac, body);
    let expected = STANDARD.encode(hmac::Mac::finalize(mac).into_bytes());
    assert_eq!(signature("secret", body), expected);
    assert_ne!(signature("other", body), expected);
}
