//! The ConnectWise client against a running ConnectWise sandbox, over real
//! HTTP: codebase discovery, tickets, notes and paging, lookups, statuses,
//! error classification, callback registration, and the signature of the
//! callbacks the sandbox fires.
//!
//! One file for the whole client on purpose: one test binary links faster
//! than one per area, and the sandbox setup is shared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use bridge::config::{ConnectWiseSettings, TenantSecrets};
use bridge::connectors::connectwise::{
    classify, key_url_allowed, read_callback, verify_signature, CallbackUse, ConnectWiseClient,
    SigningKeys, SIGNATURE_HEADER,
};
use bridge::error::{ApiError, InboundError};
use bridge::model::{NewPsaNote, NewPsaTicket, PsaTicketPatch, Visibility};
use bridge::ports::Psa;
use chrono::{Duration as TimeDelta, Utc};
use sandbox::connectwise::{
    ConnectWiseSandbox, ConnectWiseSandboxConfig, NoteKind, RecordedRequest,
};
use serde_json::json;
use tokio::sync::mpsc;

const CLIENT_ID: &str = "0f5d3c1e-8a4b-4c2d-9e6f-7a8b9c0d1e2f";

fn secrets(public: &str, private: &str, client_id: &str) -> TenantSecrets {
    serde_json::from_value(json!({
        "zendesk_email": "agent@msp.example",
        "zendesk_api_token": "zd-token",
        "zendesk_webhook_secret": "zd-hook",
        "connectwise_public_key": public,
        "connectwise_private_key": private,
        "connectwise_client_id": client_id,
    }))
    .expect("secrets document")
}

fn good_secrets() -> TenantSecrets {
    secrets("pub-key", "priv-key", CLIENT_ID)
}

struct World {
    sandbox: ConnectWiseSandbox,
    client: ConnectWiseClient,
    settings: ConnectWiseSettings,
    board: i64,
    company: i64,
}

impl World {
    fn status(&self, name: &str) -> i64 {
        self.sandbox
            .board_status(self.board, name)
            .unwrap_or_else(|| panic!("status {name}"))
    }

    fn priority(&self, name: &str) -> i64 {
        self.sandbox
            .priority(name)
            .unwrap_or_else(|| panic!("priority {name}"))
    }

    fn new_ticket(&self, title: &str, external_id: &str) -> NewPsaTicket {
        NewPsaTicket {
            title: title.to_owned(),
            description: "The printer on floor 2 is offline.".to_owned(),
            status: self.status("New"),
            priority: self.priority("Priority 3 - Normal Response"),
            company_id: self.company,
            queue_id: Some(self.board),
            external_id: external_id.to_owned(),
            configuration_item_id: None,
        }
    }

    /// Requests to exactly `{api base}{path}`.
    fn api(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        let full = format!("/{}apis/3.0/{path}", self.sandbox.codebase());
        self.sandbox
            .requests_matching(method, &full)
            .into_iter()
            .filter(|r| r.path.eq_ignore_ascii_case(&full))
            .collect()
    }

    fn companyinfo_reads(&self) -> usize {
        self.sandbox
            .requests_matching("GET", "/login/companyinfo/")
            .len()
    }
}

async fn connect_with(
    settings: &ConnectWiseSettings,
    secrets: &TenantSecrets,
) -> Result<ConnectWiseClient, ApiError> {
    ConnectWiseClient::connect(bridge::connectors::http::client(), settings, secrets).await
}

async fn world() -> World {
    let sandbox = ConnectWiseSandbox::start(ConnectWiseSandboxConfig::default())
        .await
        .expect("sandbox starts");
    let board = sandbox.add_board("Help Desk");
    let company = sandbox.add_company("contoso", "Contoso");
    let mut settings = ConnectWiseSettings::new(sandbox.site_url(), "acme");
    settings.board_id = Some(board);
    let client = connect_with(&settings, &good_secrets())
        .await
        .expect("codebase lookup");
    World {
        sandbox,
        client,
        settings,
        board,
        company,
    }
}

// ---------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connect_finds_the_codebase_and_every_call_carries_the_credentials() {
    let w = world().await;
    assert_eq!(w.client.codebase(), "v2025_1/");
    assert_eq!(w.client.api_origin(), w.sandbox.site_url());
    assert_eq!(w.client.base_url(), w.sandbox.api_base());

    let info = w.client.system_info().await.expect("system info");
    assert!(info.is_object(), "{info}");

    let lookup = &w
        .sandbox
        .requests_matching("GET", "/login/companyinfo/acme")[0];
    assert_eq!(
        lookup.header("authorization"),
        None,
        "companyinfo is unauthenticated"
    );
    let call = &w.api("GET", "system/info")[0];
    assert_eq!(call.header("authorization"), Some("Basic [redacted]"));
    assert!(call.header("clientid").is_some(), "{:?}", call.headers);
    assert_eq!(call.header("accept"), Some("application/json"));

    let debug = format!("{:?}", w.client);
    assert!(!debug.contains("priv-key"), "{debug}");
    assert!(!debug.contains("pub-key"), "{debug}");
    assert!(!debug.contains(CLIENT_ID), "{debug}");
}

#[tokio::test]
async fn connect_names_what_is_wrong() {
    let w = world().await;

    let mut unknown = w.settings.clone();
    unknown.company_id = "globex".to_owned();
    let err = connect_with(&unknown, &good_secrets()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains(&format!(
            "ConnectWise knows no company globex at {}",
            w.sandbox.site_url()
        )),
        "{err}"
    );

    let before = w.sandbox.requests().len();
    for (secrets, setting) in [
        (secrets("", "priv-key", CLIENT_ID), "connectwise_public_key"),
        (secrets("pub-key", "", CLIENT_ID), "connectwise_private_key"),
        (secrets("pub-key", "priv-key", " "), "connectwise_client_id"),
    ] {
        let err = connect_with(&w.settings, &secrets).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains(setting), "{err}");
    }
    assert_eq!(
        w.sandbox.requests().len(),
        before,
        "nothing is sent without credentials"
    );

    // The lookup needs no keys; the first real call finds them wrong.
    let wrong = connect_with(&w.settings, &secrets("pub-key", "not-the-key", CLIENT_ID))
        .await
        .expect("companyinfo is unauthenticated");
    let err = wrong.system_info().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tickets_are_created_with_every_field_and_found_by_their_reference() {
    let w = world().await;
    let mut ticket = w.new_ticket("Printer offline", "zendesk:1001");
    ticket.status = w.status("In Progress");
    ticket.priority = w.priority("Priority 1 - Emergency Response");
    assert!(w
        .client
        .new_ticket_problems(&ticket)
        .await
        .unwrap()
        .is_empty());
    let id = w.client.create_ticket(&ticket).await.expect("created");

    let stored = w.sandbox.ticket(id).expect("in the sandbox");
    assert_eq!(stored.summary, "Printer offline");
    assert_eq!(stored.board_id, w.board);
    assert_eq!(stored.status_id, ticket.status);
    assert_eq!(stored.priority_id, ticket.priority);
    assert_eq!(stored.company_id, w.company);
    assert_eq!(stored.external_xref.as_deref(), Some("zendesk:1001"));
    let notes = w.sandbox.notes(id);
    assert_eq!(notes.len(), 1, "initialDescription became the first note");
    assert_eq!(
        notes[0].text,
        format!(
            "{}\n\n— description of Zendesk ticket #1001",
            ticket.description
        ),
        "the description, marked so that it is never mirrored back"
    );
    assert!(notes[0].detail_description);
    assert!(
        w.client.list_notes(id).await.unwrap().is_empty(),
        "the description is not a note to mirror"
    );

    let posts = w.api("POST", "service/tickets");
    assert_eq!(posts.len(), 1);
    let body = posts[0].json();
    assert_eq!(body["board"], json!({"id": w.board}));
    assert_eq!(body["company"], json!({"id": w.company}));
    assert_eq!(body["initialDescription"], json!(notes[0].text));

    let read = w.client.get_ticket(id).await.unwrap().expect("found");
    assert_eq!(read.id, id);
    assert_eq!(read.title, "Printer offline");
    assert_eq!(read.status, ticket.status);
    assert_eq!(read.priority, ticket.priority);
    assert_eq!(read.company_id, w.company);
    assert_eq!(read.queue_id, Some(w.board));
    assert_eq!(read.external_id.as_deref(), Some("zendesk:1001"));
    assert_eq!(read.last_activity, Some(stored.last_updated));
    assert_eq!(read.ticket_number, None);
    assert_eq!(read.description, None);

    let found = w
        .client
        .find_ticket_by_external_id("zendesk:1001")
        .await
        .unwrap()
        .expect("found by externalXRef");
    assert_eq!(found.id, id);
    assert_eq!(
        w.client
            .find_ticket_by_external_id("zendesk:100")
            .await
            .unwrap(),
        None,
        "equality, not a prefix"
    );

    // A reference with quotes and backslashes stays one string literal.
    let odd = r#"zendesk:"7\" or id > 0"#;
    let odd_id = w
        .client
        .create_ticket(&w.new_ticket("Odd reference", odd))
        .await
        .unwrap();
    let found = w.client.find_ticket_by_external_id(odd).await.unwrap();
    assert_eq!(found.map(|t| t.id), Some(odd_id));

    assert_eq!(w.client.get_ticket(987_654).await.unwrap(), None);
}

#[tokio::test]
async fn the_summary_is_cut_to_100_characters() {
    let w = world().await;
    assert_eq!(w.client.title_max_chars(), 100);
    let mut ticket = w.new_ticket(&"é".repeat(150), "zendesk:2");
    ticket.description = String::new();
    let id = w.client.create_ticket(&ticket).await.expect("created");
    let stored = w.sandbox.ticket(id).unwrap();
    assert_eq!(stored.summary, "é".repeat(100));
    assert!(w.sandbox.notes(id).is_empty(), "no empty first note");
    assert!(w.api("POST", "service/tickets")[0]
        .json()
        .get("initialDescription")
        .is_none());
}

#[tokio::test]
async fn patches_change_only_what_is_set_and_a_refusal_keeps_connectwise_words() {
    let w = world().await;
    let id = w
        .client
        .create_ticket(&w.new_ticket("Printer offline", "zendesk:3"))
        .await
        .unwrap();
    let other_company = w.sandbox.add_company("globex", "Globex");
    let patch = PsaTicketPatch {
        title: Some("Printer offline again".to_owned()),
        status: Some(w.status("Waiting Customer")),
        priority: Some(w.priority("Priority 4 - Scheduled Maintenance")),
        company_id: Some(other_company),
        configuration_item_id: None,
    };
    w.client.update_ticket(id, &patch).await.expect("patched");
    let stored = w.sandbox.ticket(id).unwrap();
    assert_eq!(stored.summary, "Printer offline again");
    assert_eq!(stored.status_id, patch.status.unwrap());
    assert_eq!(stored.priority_id, patch.priority.unwrap());
    assert_eq!(stored.company_id, other_company);
    let patches = w.api("PATCH", &format!("service/tickets/{id}"));
    assert_eq!(patches.len(), 1);
    let ops = patches[0].json().as_array().expect("an operation array");
    assert_eq!(ops.len(), 4);
    assert!(ops.contains(
        &json!({"op": "replace", "path": "status", "value": {"id": patch.status.unwrap()}})
    ));

    w.client
        .update_ticket(id, &PsaTicketPatch::default())
        .await
        .unwrap();
    assert_eq!(
        w.api("PATCH", &format!("service/tickets/{id}")).len(),
        1,
        "an empty patch sends nothing"
    );

    // A status of another board: ConnectWise refuses it with a 400.
    let elsewhere = w.sandbox.add_board("Projects Intake");
    let foreign = w.sandbox.board_status(elsewhere, "New").unwrap();
    let err = w
        .client
        .update_ticket(
            id,
            &PsaTicketPatch {
                status: Some(foreign),
                ..PsaTicketPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    match &err {
        ApiError::Rejected {
            status: 400,
            message,
            ..
        } => assert!(
            message.to_ascii_lowercase().contains("status"),
            "ConnectWise's own words are kept: {message}"
        ),
        other => panic!("expected a 400 rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn statuses_belong_to_a_board_and_picklists_are_cached() {
    let w = world().await;
    let statuses = w.client.ticket_statuses(Some(w.board)).await.unwrap();
    let labels: Vec<&str> = statuses.iter().map(|s| s.label.as_str()).collect();
    for name in [
        "New",
        "In Progress",
        "Waiting Customer",
        "Waiting Vendor",
        "Complete",
        "Closed",
        "Old Status",
    ] {
        let status = statuses
            .iter()
            .find(|s| s.label == name)
            .unwrap_or_else(|| panic!("{name} in {labels:?}"));
        assert_eq!(status.value, w.status(name));
        assert_eq!(status.is_active, name != "Old Status", "{name}");
    }
    assert_eq!(w.client.ticket_statuses(None).await.unwrap(), statuses);
    assert_eq!(w.client.ticket_picklist("status").await.unwrap(), statuses);
    let path = format!("service/boards/{}/statuses", w.board);
    assert_eq!(w.api("GET", &path).len(), 1, "cached for the sync");

    let other = w.sandbox.add_board("Network");
    let other_statuses = w.client.ticket_statuses(Some(other)).await.unwrap();
    let new_here = statuses.iter().find(|s| s.label == "New").unwrap().value;
    let new_there = other_statuses
        .iter()
        .find(|s| s.label == "New")
        .unwrap()
        .value;
    assert_ne!(
        new_here, new_there,
        "the same name has another id per board"
    );

    let detailed = w.client.board_statuses(w.board).await.unwrap();
    let by_name = |name: &str| detailed.iter().find(|s| s.name == name).unwrap().clone();
    assert!(by_name("New").default);
    assert!(by_name("Closed").closed);
    assert!(by_name("Complete").closed);
    assert!(!by_name("In Progress").closed);
    assert!(by_name("Old Status").inactive);

    let priorities = w.client.ticket_picklist("priority").await.unwrap();
    let normal = priorities
        .iter()
        .find(|p| p.label == "Priority 3 - Normal Response")
        .expect("the default priority");
    assert_eq!(normal.value, w.priority("Priority 3 - Normal Response"));
    assert!(priorities.iter().all(|p| p.is_active));
    w.client.ticket_picklist("priority").await.unwrap();
    assert_eq!(w.api("GET", "service/priorities").len(), 1, "cached");
    assert!(w.client.ticket_picklist("impact").await.is_err());

    let boards = w.client.boards().await.unwrap();
    assert!(boards
        .iter()
        .any(|b| b.id == w.board && b.name == "Help Desk" && !b.inactive));
    let teams = w.client.board_teams(w.board).await.unwrap();
    assert_eq!(
        teams.iter().find(|t| t.default).map(|t| t.id),
        w.sandbox.board_team(w.board)
    );
    let companies = w.client.companies().await.unwrap();
    assert!(companies
        .iter()
        .any(|c| c.id == w.company && c.identifier == "contoso" && c.name == "Contoso"));
}

#[tokio::test]
async fn without_a_board_the_setting_is_named_and_nothing_is_created() {
    let w = world().await;
    let mut settings = w.settings.clone();
    settings.board_id = None;
    let client = connect_with(&settings, &good_secrets()).await.unwrap();
    let err = client.ticket_picklist("status").await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("connectwise.board_id"), "{err}");

    let mut ticket = w.new_ticket(" ", "zendesk:4");
    ticket.queue_id = None;
    let problems = client.new_ticket_problems(&ticket).await.unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("connectwise.board_id"), "{problems:?}");
    assert!(problems[1].contains("summary"), "{problems:?}");
    let err = client.create_ticket(&ticket).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(w.api("POST", "service/tickets").is_empty());

    // A ticket that names its board needs no tenant board.
    ticket.queue_id = Some(w.board);
    ticket.title = "Fine".to_owned();
    assert!(client
        .new_ticket_problems(&ticket)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// Notes and members
// ---------------------------------------------------------------------------

#[tokio::test]
async fn notes_round_trip_with_their_titles_and_visibility() {
    let w = world().await;
    let ticket = w
        .client
        .create_ticket(&w.new_ticket("Printer offline", "zendesk:5"))
        .await
        .unwrap();
    let echo = w
        .client
        .add_note(
            ticket,
            &NewPsaNote {
                title: "Zendesk comment #42 by Ann".to_owned(),
                description: "Restarted it.\n\nStill offline.".to_owned(),
                visibility: Visibility::Internal,
            },
        )
        .await
        .expect("note added");
    let public = w
        .client
        .add_note(
            ticket,
            &NewPsaNote {
                title: String::new(),
                description: "We are on it.".to_owned(),
                visibility: Visibility::Public,
            },
        )
        .await
        .unwrap();
    let stored = w.sandbox.notes(ticket);
    let echo_stored = stored.iter().find(|n| n.id == echo).unwrap();
    assert_eq!(
        echo_stored.text,
        "Zendesk comment #42 by Ann\n\nRestarted it.\n\nStill offline."
    );
    assert!(echo_stored.internal_analysis && !echo_stored.detail_description);
    let public_stored = stored.iter().find(|n| n.id == public).unwrap();
    assert!(public_stored.detail_description && !public_stored.internal_analysis);
    assert!(!public_stored.resolution);

    let jane = w.sandbox.add_member("jdoe", "Jane", "Doe");
    let discussion = w.sandbox.add_note_as(
        jane,
        ticket,
        "Called the customer.\n\nNo answer.",
        NoteKind::Discussion,
    );
    let internal = w.sandbox.add_note_as(
        jane,
        ticket,
        "Zendesk comment #7 is not ours",
        NoteKind::Internal,
    );
    let resolution =
        w.sandbox
            .add_note_as(jane, ticket, "Replaced the fuser.", NoteKind::Resolution);

    let notes = w.client.list_notes(ticket).await.expect("notes");
    let ids: Vec<i64> = notes.iter().map(|n| n.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first");
    assert_eq!(
        notes.len(),
        5,
        "two of ours and three by Jane; the description is left out"
    );
    assert_eq!(w.sandbox.notes(ticket).len(), 6, "the description is there");
    let note = |id: i64| notes.iter().find(|n| n.id == id).unwrap();

    assert_eq!(
        note(echo).title.as_deref(),
        Some("Zendesk comment #42 by Ann")
    );
    assert_eq!(note(echo).description, "Restarted it.\n\nStill offline.");
    assert_eq!(note(echo).visibility, Visibility::Internal);
    assert_eq!(note(echo).ticket_id, ticket);

    assert_eq!(note(public).title, None);
    assert_eq!(note(public).description, "We are on it.");
    assert_eq!(note(public).visibility, Visibility::Public);

    let by_jane = note(discussion);
    assert_eq!(by_jane.title, None);
    assert_eq!(by_jane.description, "Called the customer.\n\nNo answer.");
    assert_eq!(by_jane.visibility, Visibility::Public);
    assert_eq!(by_jane.creator_resource_id, Some(jane));
    assert!(by_jane.created_at.is_some());

    // The echo marker is recognised on the first line only as a title: a
    // technician's note that starts with it is read the same way.
    assert_eq!(
        note(internal).title.as_deref(),
        Some("Zendesk comment #7 is not ours")
    );
    assert_eq!(note(internal).visibility, Visibility::Internal);
    assert_eq!(
        note(resolution).visibility,
        Visibility::Internal,
        "only Discussion notes are public"
    );
}

#[tokio::test]
async fn notes_are_read_page_by_page_to_the_end() {
    let w = world().await;
    let client = connect_with(&w.settings, &good_secrets())
        .await
        .unwrap()
        .with_page_size(2);
    let jane = w.sandbox.add_member("jdoe", "Jane", "Doe");
    let ticket = w.sandbox.add_ticket_as(jane, w.board, w.company, "Paging");
    let written: Vec<i64> = (0..5)
        .map(|i| {
            w.sandbox
                .add_note_as(jane, ticket, &format!("note {i}"), NoteKind::Internal)
        })
        .collect();
    let notes = client.list_notes(ticket).await.unwrap();
    let read: Vec<i64> = notes.iter().map(|n| n.id).collect();
    assert_eq!(read, written);
    let pages = w.api("GET", &format!("service/tickets/{ticket}/notes"));
    assert_eq!(pages.len(), 3, "2 + 2 + 1");
    assert!(pages
        .iter()
        .all(|r| r.query_param("pageSize").as_deref() == Some("2")));
}

#[tokio::test]
async fn member_names_are_read_once() {
    let w = world().await;
    let jane = w.sandbox.add_member("jdoe", "Jane", "Doe");
    assert_eq!(
        w.client.resource_name(jane).await.unwrap().as_deref(),
        Some("Jane Doe")
    );
    assert_eq!(
        w.client.resource_name(jane).await.unwrap().as_deref(),
        Some("Jane Doe")
    );
    assert_eq!(
        w.api("GET", &format!("system/members/{jane}")).len(),
        1,
        "cached"
    );
    assert_eq!(w.client.resource_name(424_242).await.unwrap(), None);
}

#[tokio::test]
async fn companies_are_found_by_configuration_name_serial_or_tag() {
    let w = world().await;
    let globex = w.sandbox.add_company("globex", "Globex");
    w.sandbox
        .add_configuration(w.company, "PC-001", Some("SN-123"), Some("TAG-9"));
    w.sandbox.add_configuration(globex, "Router", None, None);
    let retired = w.sandbox.add_configuration(globex, "OLD-1", None, None);
    w.sandbox.set_configuration_active(retired, false);
    // The same name at two companies: the older configuration wins.
    w.sandbox.add_configuration(globex, "Shared", None, None);
    w.sandbox.add_configuration(w.company, "Shared", None, None);

    for (reference, company) in [
        ("PC-001", Some(w.company)),
        ("SN-123", Some(w.company)),
        ("TAG-9", Some(w.company)),
        ("Router", Some(globex)),
        ("OLD-1", None),
        ("nothing", None),
        (r#"a"b\c"#, None),
        ("Shared", Some(globex)),
    ] {
        assert_eq!(
            w.client.company_for_reference(reference).await.unwrap(),
            company,
            "{reference}"
        );
    }
    let before = w.sandbox.requests().len();
    assert_eq!(w.client.company_for_reference(" ").await.unwrap(), None);
    assert_eq!(
        w.sandbox.requests().len(),
        before,
        "no call for a blank reference"
    );
}

// ---------------------------------------------------------------------------
// Changes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn changes_since_are_read_across_forward_only_pages() {
    let w = world().await;
    let client = connect_with(&w.settings, &good_secrets())
        .await
        .unwrap()
        .with_page_size(3);
    let jane = w.sandbox.add_member("jdoe", "Jane", "Doe");
    let tickets: Vec<i64> = (0..9)
        .map(|i| {
            w.sandbox
                .add_ticket_as(jane, w.board, w.company, &format!("Ticket {i}"))
        })
        .collect();
    let long_ago = Utc::now() - TimeDelta::hours(3);
    for old in &tickets[..2] {
        w.sandbox.set_ticket_last_updated(*old, long_ago);
    }

    let changed = client
        .tickets_changed_since(Utc::now() - TimeDelta::hours(1))
        .await
        .expect("changes");
    let mut ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, tickets[2..].to_vec());
    for (id, at) in &changed {
        assert_eq!(*at, w.sandbox.ticket(*id).unwrap().last_updated);
    }

    let reads = w.api("GET", "service/tickets");
    assert!(reads.len() >= 3, "7 tickets in pages of 3: {}", reads.len());
    for read in &reads {
        assert_eq!(read.header("pagination-type"), Some("forward-only"));
        assert_eq!(read.query_param("pageSize").as_deref(), Some("3"));
    }
    assert!(reads[0]
        .query_param("conditions")
        .unwrap()
        .starts_with("lastUpdated > ["));
    assert_eq!(
        reads[0].query_param("fields").as_deref(),
        Some("id,_info/lastUpdated")
    );
    assert!(
        reads[1].query_param("pageId").is_some(),
        "{:?}",
        reads[1].query
    );
    assert!(
        reads.iter().all(|r| r.query_param("page").is_none()),
        "no page numbers in forward-only mode"
    );
}

/// A server without forward-only paging (it answers 400) and with a
/// `Link` to another origin on another list.
async fn stub_without_forward_only() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let (elsewhere, _other) = sandbox::serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    }))
    .await
    .unwrap();
    let tickets = axum::routing::get(
        |headers: HeaderMap, query: axum::extract::Query<Vec<(String, String)>>| async move {
            if headers.contains_key("pagination-type") {
                return (
                    StatusCode::BAD_REQUEST,
                    HeaderMap::new(),
                    axum::Json(
                        json!({"code": "InvalidObject", "message": "forward-only paging is not supported for this resource"}),
                    ),
                );
            }
            let page = query
                .0
                .iter()
                .find(|(k, _)| k == "page")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let at = "2026-01-01T00:00:00Z";
            let mut links = HeaderMap::new();
            let items = match page.as_str() {
                "1" => {
                    links.insert(
                        "link",
                        r#"</v1/apis/3.0/service/tickets?pageSize=2&page=2>; rel="next""#
                            .parse()
                            .unwrap(),
                    );
                    json!([{"id": 1, "_info": {"lastUpdated": at}}, {"id": 2, "_info": {"lastUpdated": at}}])
                }
                _ => json!([{"id": 3, "_info": {"lastUpdated": at}}]),
            };
            (StatusCode::OK, links, axum::Json(items))
        },
    );
    let notes = axum::routing::get(move || {
        let next =
            format!("<{elsewhere}/v1/apis/3.0/service/tickets/1/notes?page=2>; rel=\"next\"");
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("link", next.parse().unwrap());
            (
                headers,
                axum::Json(json!([{"id": 1, "text": "a", "detailDescriptionFlag": true}])),
            )
        }
    });
    let app = axum::Router::new()
        .route(
            "/login/companyinfo/acme",
            axum::routing::get(|| async { axum::Json(json!({"Codebase": "v1/"})) }),
        )
        .route("/v1/apis/3.0/service/tickets", tickets)
        .route("/v1/apis/3.0/service/tickets/{id}/notes", notes);
    let (base, _task) = sandbox::serve(app).await.unwrap();
    (base, hits)
}

#[tokio::test]
async fn without_forward_only_paging_pages_are_numbered_and_links_stay_on_the_api() {
    let (base, elsewhere_hits) = stub_without_forward_only().await;
    let settings = ConnectWiseSettings::new(&base, "acme");
    let client = ConnectWiseClient::connect(
        bridge::connectors::http::client(),
        &settings,
        &good_secrets(),
    )
    .await
    .unwrap()
    .with_page_size(2);
    let changed = client
        .tickets_changed_since(Utc::now() - TimeDelta::hours(1))
        .await
        .expect("navigable paging after the 400");
    let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3]);

    let err = client.list_notes(1).await.unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("not followed"), "{err}");
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "no request (and no credentials) went to the other origin"
    );
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_codebase_change_is_followed_after_one_reread() {
    let w = world().await;
    let id = w
        .client
        .create_ticket(&w.new_ticket("Printer offline", "zendesk:6"))
        .await
        .unwrap();
    let lookups = w.companyinfo_reads();
    w.sandbox.set_codebase("v2025_2/");

    let ticket = w.client.get_ticket(id).await.expect("read after the move");
    assert_eq!(ticket.map(|t| t.id), Some(id));
    assert_eq!(w.companyinfo_reads(), lookups + 1, "one re-read");
    assert_eq!(w.client.codebase(), "v2025_2/");
    assert_eq!(w.client.base_url(), w.sandbox.api_base());

    w.client.get_ticket(id).await.unwrap();
    assert_eq!(w.companyinfo_reads(), lookups + 1, "no re-read once moved");

    // A ticket that does not exist: one re-read, the same codebase, None.
    assert_eq!(w.client.get_ticket(999_999).await.unwrap(), None);
    assert_eq!(w.companyinfo_reads(), lookups + 2);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable_and_creates_are_never_resent() {
    let w = world().await;
    w.sandbox.faults().update(|f| {
        f.rate_limit_burst = 1;
        f.retry_after_secs = 7;
    });
    let err = w.client.get_ticket(1).await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());

    w.sandbox.faults().update(|f| f.server_error_rate = 1.0);
    let err = w.client.get_ticket(1).await.unwrap_err();
    assert!(matches!(err, ApiError::Server { .. }), "{err:?}");
    assert!(err.is_retryable());

    let err = w
        .client
        .create_ticket(&w.new_ticket("Printer offline", "zendesk:7"))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        w.api("POST", "service/tickets").len(),
        1,
        "a failed create is not re-sent by the client"
    );
    w.sandbox.faults().clear();
    assert!(w.sandbox.tickets().is_empty());
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

const RECEIVER_PATH: &str = "/t/acme/connectwise";

#[tokio::test]
async fn callbacks_are_registered_once_and_strays_at_our_url_removed() {
    let w = world().await;
    let url = "https://bridge.example/t/acme/connectwise";
    let first = w
        .client
        .ensure_callbacks(url, "psa-bridge acme")
        .await
        .unwrap();
    assert_eq!((first.added, first.removed, first.kept), (1, 0, 0));
    let registered = w.sandbox.callbacks();
    assert_eq!(registered.len(), 1);
    let entry = &registered[0];
    assert_eq!(entry.url, url);
    assert_eq!(entry.object_id, 1);
    assert!(entry.callback_type.eq_ignore_ascii_case("ticket"));
    assert!(entry.level.eq_ignore_ascii_case("owner"));
    assert_eq!(entry.description, "psa-bridge acme");
    assert!(!entry.inactive);

    let again = w
        .client
        .ensure_callbacks(url, "psa-bridge acme")
        .await
        .unwrap();
    assert_eq!((again.added, again.removed, again.kept), (0, 0, 1));

    // A duplicate, a callback of ours at another level, and someone else's.
    let raw = reqwest::Client::new();
    let auth = format!("Basic {}", base64_encode("acme+pub-key:priv-key"));
    for body in [
        json!({"url": url, "objectId": 1, "type": "ticket", "level": "owner", "description": "psa-bridge acme"}),
        json!({"url": url, "objectId": w.board, "type": "ticket", "level": "board", "description": "psa-bridge acme"}),
        json!({"url": "https://other.example/hook", "objectId": 1, "type": "ticket", "level": "owner", "description": "other"}),
    ] {
        let response = raw
            .post(format!("{}system/callbacks", w.sandbox.api_base()))
            .header("authorization", &auth)
            .header("clientId", CLIENT_ID)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let third = w
        .client
        .ensure_callbacks(url, "psa-bridge acme")
        .await
        .unwrap();
    assert_eq!((third.added, third.removed, third.kept), (0, 2, 1));
    let left = w.sandbox.callbacks();
    assert_eq!(left.iter().filter(|c| c.url == url).count(), 1);
    assert!(left.iter().any(|c| c.url == "https://other.example/hook"));
    assert_eq!(
        left.iter().find(|c| c.url == url).unwrap().id,
        entry.id,
        "the original is the one kept"
    );

    // A new description: the new one is added before the old one goes.
    let renamed = w
        .client
        .ensure_callbacks(url, "psa-bridge acme (renamed)")
        .await
        .unwrap();
    assert_eq!((renamed.added, renamed.removed, renamed.kept), (1, 1, 0));
    let ours: Vec<_> = w
        .sandbox
        .callbacks()
        .into_iter()
        .filter(|c| c.url == url)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].description, "psa-bridge acme (renamed)");
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver standing in for the bridge's ingest: records every POST.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        RECEIVER_PATH,
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Delivery { headers, body });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let (url, _task) = sandbox::serve(app).await.expect("receiver starts");
    (format!("{url}{RECEIVER_PATH}"), rx)
}

async fn next_delivery(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a callback within 10 s")
        .expect("receiver open")
}

#[tokio::test]
async fn a_real_callback_verifies_with_the_key_fetched_from_its_key_url() {
    let w = world().await;
    let (url, mut deliveries) = receiver().await;
    w.client
        .ensure_callbacks(&url, "psa-bridge acme")
        .await
        .unwrap();
    let jane = w.sandbox.add_member("jdoe", "Jane", "Doe");
    let ticket = w
        .sandbox
        .add_ticket_as(jane, w.board, w.company, "Printer offline");

    let delivery = next_delivery(&mut deliveries).await;
    let callback = read_callback(&delivery.body).expect("a readable callback");
    assert!(
        callback.action.eq_ignore_ascii_case("added"),
        "{callback:?}"
    );
    assert!(callback.entity_type.eq_ignore_ascii_case("ticket"));
    assert_eq!(callback.id, Some(ticket));
    match classify(&callback) {
        CallbackUse::Sync { ticket_id, .. } => assert_eq!(ticket_id, ticket),
        other => panic!("{other:?}"),
    }
    let key_url = callback.key_url.clone().expect("Metadata.key_url");
    assert!(key_url_allowed(&key_url, &w.settings), "{key_url}");

    let keys = SigningKeys::new(bridge::connectors::http::client());
    let key = keys.key(&key_url).await.expect("signing key");
    let signature = delivery
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    verify_signature(&key, signature, &delivery.body).expect("signature verifies");
    let mut tampered = delivery.body.to_vec();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    assert_eq!(
        verify_signature(&key, signature, &tampered),
        Err(InboundError::BadSignature)
    );
    assert_eq!(
        verify_signature(&key, None, &delivery.body),
        Err(InboundError::MissingHeader("x-content-signature"))
    );

    // The next callback is checked with the cached key.
    w.sandbox
        .add_note_as(jane, ticket, "Looked at it.", NoteKind::Internal);
    let delivery = next_delivery(&mut deliveries).await;
    let callback = read_callback(&delivery.body).unwrap();
    assert_eq!(callback.id, Some(ticket));
    let key = keys
        .key(callback.key_url.as_deref().unwrap())
        .await
        .unwrap();
    let signature = delivery
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    verify_signature(&key, signature, &delivery.body).unwrap();
    assert_eq!(w.sandbox.key_fetches(), 1, "the key came from the cache");

    let mut elsewhere = w.settings.clone();
    elsewhere.site = "https://na.myconnectwise.net".to_owned();
    assert!(!key_url_allowed(&key_url, &elsewhere));
}

#[tokio::test]
async fn signing_keys_are_not_fetched_through_redirects() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let (target, _target_task) = sandbox::serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"signing_key": "from-elsewhere"})) }
    }))
    .await
    .unwrap();
    let app = axum::Router::new().route(
        "/v2025_1/callbackkey/index.rails",
        axum::routing::get(move || {
            let location = format!("{target}/key");
            async move { (StatusCode::FOUND, [("location", location)]) }
        }),
    );
    let (site, _site_task) = sandbox::serve(app).await.unwrap();
    let keys = SigningKeys::new(bridge::connectors::http::client());
    let err = keys
        .key(&format!("{site}/v2025_1/callbackkey/index.rails?id=1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
