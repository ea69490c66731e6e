//! The connectors against the vendors' own API descriptions, and Zendesk's
//! rules end to end.
//!
//! - Every method + path the Autotask and Zendesk connectors send during
//!   end-to-end runs (the pipeline cases, sweeps, the Zendesk preflight), as
//!   the sandboxes recorded them, must be an operation of the vendor files in
//!   `../shared/specs/vendor/` (beside the checkout): the Autotask REST
//!   swagger and Zendesk's OpenAPI slices, or one of the few operations
//!   listed here with where they are documented (Zendesk's Webhooks API,
//!   Autotask's Ticket and TicketNote webhook entities, which the swagger
//!   predates). An undocumented one fails the test, naming it.
//! - A non-admin Zendesk API user: the sweep's export is refused, and the
//!   tenant's sync log says so in plain words.
//! - Zendesk's per-ticket update limit: 40 technician notes written at once on
//!   one Autotask ticket all become Zendesk comments, each exactly once,
//!   although Zendesk refuses the updates over its limit with 429 (and two
//!   updates with 409, a conflicting concurrent update).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge::connectors::autotask::webhooks::WebhookRequest;
use bridge::connectors::autotask::AutotaskClient;
use bridge::connectors::zendesk::ZendeskClient;
use bridge::repo::{LogLevel, Repo};
use sandbox::autotask::AutotaskSandbox;
use sandbox::zendesk::{NewTicket, RateWindow, Role, UpdateLimits, ZendeskSandbox};
use sandbox::RecordedRequest;
use serde_json::Value;
use testkit::world::{wait_for, TenantSpec, TenantWorld, World, WorldOptions};
use yaml_rust2::{Yaml, YamlLoader};

use crate::pipeline_cases as cases;
use crate::support::{assert_mirrored_exactly_once, psa_tickets_for, settle_within, ARRIVAL};

// ---------------------------------------------------------------------------
// The vendors' API descriptions
// ---------------------------------------------------------------------------

/// `../shared/specs` relative to the workspace root.
fn specs_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace");
    workspace.join("../shared/specs")
}

fn vendor_dir() -> PathBuf {
    let dir = specs_dir().join("vendor");
    assert!(
        dir.join("autotask-rest-v1.swagger.json").is_file(),
        "the vendor API descriptions are missing: expected {} (../shared/specs/vendor beside the \
         checkout, as CI has it; see its SOURCE.md). The contract test cannot run without them.",
        dir.display()
    );
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One segment of a documented path.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    /// A path parameter; `digits` when it is an id (an integer).
    Param {
        digits: bool,
    },
}

/// One documented operation.
#[derive(Debug, Clone)]
struct Operation {
    /// Upper case.
    method: String,
    /// As the vendor writes it, e.g. `/V1.0/Tickets/{parentId}/Notes`.
    template: String,
    segments: Vec<Segment>,
}

/// A vendor's documented operations.
struct VendorApi {
    name: &'static str,
    /// Zendesk's paths are case-sensitive; Autotask's are not (its own zone
    /// lookup example is `atservicesrest/v1.0/zoneInformation`, the swagger
    /// says `/V1.0/ZoneInformation`).
    case_sensitive: bool,
    operations: Vec<Operation>,
}

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

impl Operation {
    fn new(method: &str, template: &str, is_id: impl Fn(&str) -> bool) -> Self {
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param {
                        digits: is_id(name),
                    },
                    None => Segment::Literal(segment.to_owned()),
                },
            )
            .collect();
        Self {
            method: method.to_ascii_uppercase(),
            template: template.to_owned(),
            segments,
        }
    }

    fn matches(&self, method: &str, path: &str, case_sensitive: bool) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        parts.len() == self.segments.len()
            && parts
                .iter()
                .zip(&self.segments)
                .all(|(part, segment)| match segment {
                    Segment::Literal(text) if case_sensitive => part == text,
                    Segment::Literal(text) => part.eq_ignore_ascii_case(text),
                    Segment::Param { digits: true } => {
                        !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
                    }
                    Segment::Param { digits: false } => !part.is_empty(),
                })
    }
}

impl VendorApi {
    /// The Autotask REST swagger (2.0): paths under `basePath` `/ATServicesRest`;
    /// a path parameter declared `integer` matches digits only.
    fn autotask(vendor: &Path) -> Self {
        let file = vendor.join("autotask-rest-v1.swagger.json");
        let swagger: Value = serde_json::from_str(&read(&file))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        assert_eq!(
            swagger["basePath"], "/ATServicesRest",
            "the swagger's basePath changed"
        );
        let paths = swagger["paths"]
            .as_object()
            .unwrap_or_else(|| panic!("{} has no paths", file.display()));
        let mut operations = Vec::new();
        for (template, item) in paths {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let integer_params: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path" && p["type"] == "integer")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                operations.push(Operation::new(method, template, |name| {
                    integer_params.contains(name)
                }));
            }
        }
        Self {
            name: "Autotask REST swagger",
            case_sensitive: false,
            operations,
        }
    }

    /// Zendesk's OpenAPI slices (`zendesk-*.openapi.yml`). Their parameter
    /// definitions are left out of the slices, so a parameter named `id` or
    /// `*_id` is taken as an id (digits only), as Zendesk's ids are integers.
    fn zendesk(vendor: &Path) -> Self {
        let mut files: Vec<PathBuf> = std::fs::read_dir(vendor)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", vendor.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("zendesk-") && n.ends_with(".openapi.yml"))
            })
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no zendesk-*.openapi.yml in {}",
            vendor.display()
        );
        let is_id = |name: &str| name == "id" || name.ends_with("_id");
        let mut operations = Vec::new();
        for file in &files {
            let docs = YamlLoader::load_from_str(&read(file))
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
            let paths = docs
                .first()
                .and_then(|doc| doc["paths"].as_hash())
                .unwrap_or_else(|| panic!("{} has no paths", file.display()));
            for (template, item) in paths {
                let Some(template) = template.as_str() else {
                    continue;
                };
                for method in METHODS {
                    if !matches!(item[method], Yaml::BadValue) {
                        operations.push(Operation::new(method, template, is_id));
                    }
                }
            }
        }
        Self {
            name: "Zendesk OpenAPI slices",
            case_sensitive: true,
            operations,
        }
    }

    fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|op| op.matches(method, path, self.case_sensitive))
    }
}

/// What a recorded request is, for the vendor's description.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// A documented operation (method and the vendor's path template).
    Documented(String, String),
    /// A next-page link the server handed out (`pageDetails.nextPageUrl`),
    /// continuing this documented query.
    NextPageOf(String),
    /// Not in the vendor's description: method, path as sent.
    Undocumented(String, String),
}

/// Zendesk operations the vendor files here do not hold (they are slices of
/// the Support API; the Webhooks API is documented apart), each with where
/// it is documented: (method, template, source). Matched exactly as sent:
/// the Webhooks API takes no `.json` suffix, and its ids are ULIDs (letters
/// and digits), not integers.
const ZENDESK_DOCUMENTED_ELSEWHERE: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/api/v2/webhooks",
        "developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/ (List Webhooks)",
    ),
    (
        "POST",
        "/api/v2/webhooks",
        "developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/ (Create or Clone Webhook); nukosuke/go-zendesk zendesk/webhook.go",
    ),
    (
        "DELETE",
        "/api/v2/webhooks/{webhook_id}",
        "developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/ (Delete Webhook); nukosuke/go-zendesk zendesk/webhook.go",
    ),
    (
        "GET",
        "/api/v2/webhooks/{webhook_id}/signing_secret",
        "developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/ (Show Webhook Signing Secret)",
    ),
];

/// A Zendesk webhook id: a ULID, 26 characters of Crockford's base32.
fn is_webhook_id(segment: &str) -> bool {
    segment.len() == 26
        && segment
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Zendesk: the path without the `.json` suffix Zendesk accepts on every path
/// of the Support API; the Webhooks API's operations as listed above.
fn zendesk_verdict(api: &VendorApi, request: &RecordedRequest) -> Verdict {
    let path = request.path.split('?').next().unwrap_or(&request.path);
    for (method, template, _source) in ZENDESK_DOCUMENTED_ELSEWHERE {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let wanted: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        let same = request.method.eq_ignore_ascii_case(method)
            && parts.len() == wanted.len()
            && parts.iter().zip(&wanted).all(|(part, want)| {
                if want.starts_with('{') {
                    is_webhook_id(part)
                } else {
                    part == want
                }
            });
        if same {
            return Verdict::Documented((*method).to_owned(), (*template).to_owned());
        }
    }
    let path = path.strip_suffix(".json").unwrap_or(path);
    match api.find(&request.method, path) {
        Some(op) => Verdict::Documented(op.method.clone(), op.template.clone()),
        None => Verdict::Undocumented(request.method.clone(), request.path.clone()),
    }
}

/// Where the Autotask Ticket and TicketNote webhook operations are
/// documented: the vendor swagger here predates them, but documents the
/// same operations of `CompanyWebhooks` (checked by
/// `autotask_webhook_operations_mirror_documented_company_ones`).
const AUTOTASK_WEBHOOK_SOURCES: &str = "autotask.net/help/DeveloperHelp/Content/APIs/Webhooks/\
    REST_WebhooksEntity.htm and REST_WebhookFieldsEntity.htm (fact sheet S10: TicketWebhooks, \
    TicketNoteWebhooks, children Fields and ExcludedResources); msoukhomlinov/n8n-nodes-autotask \
    @5068192 nodes/Autotask/helpers/webhook/urls.ts and AutotaskTrigger.node.ts (the same \
    URLs); the swagger's CompanyWebhooks operations of the same shape";

/// Autotask operations the vendor swagger here does not hold, matched like
/// the swagger's (any case, integer ids): (method, template). Each is the
/// `CompanyWebhooks` operation of the swagger with `Ticket`/`TicketNote` for
/// `Company`; sources in [`AUTOTASK_WEBHOOK_SOURCES`].
const AUTOTASK_DOCUMENTED_ELSEWHERE: &[(&str, &str)] = &[
    ("POST", "/V1.0/TicketWebhooks"),
    ("PATCH", "/V1.0/TicketWebhooks"),
    ("POST", "/V1.0/TicketWebhooks/query"),
    ("GET", "/V1.0/TicketWebhooks/{id}"),
    ("DELETE", "/V1.0/TicketWebhooks/{id}"),
    ("GET", "/V1.0/TicketWebhooks/{parentId}/Fields"),
    ("POST", "/V1.0/TicketWebhooks/{parentId}/Fields"),
    ("PATCH", "/V1.0/TicketWebhooks/{parentId}/Fields"),
    ("GET", "/V1.0/TicketWebhooks/{parentId}/ExcludedResources"),
    ("POST", "/V1.0/TicketWebhooks/{parentId}/ExcludedResources"),
    ("GET", "/V1.0/TicketWebhookFields/entityInformation/fields"),
    ("POST", "/V1.0/TicketNoteWebhooks"),
    ("PATCH", "/V1.0/TicketNoteWebhooks"),
    ("POST", "/V1.0/TicketNoteWebhooks/query"),
    ("GET", "/V1.0/TicketNoteWebhooks/{id}"),
    ("DELETE", "/V1.0/TicketNoteWebhooks/{id}"),
    ("GET", "/V1.0/TicketNoteWebhooks/{parentId}/Fields"),
    ("POST", "/V1.0/TicketNoteWebhooks/{parentId}/Fields"),
    ("PATCH", "/V1.0/TicketNoteWebhooks/{parentId}/Fields"),
    (
        "GET",
        "/V1.0/TicketNoteWebhooks/{parentId}/ExcludedResources",
    ),
    (
        "POST",
        "/V1.0/TicketNoteWebhooks/{parentId}/ExcludedResources",
    ),
    (
        "GET",
        "/V1.0/TicketNoteWebhookFields/entityInformation/fields",
    ),
];

/// `path` (below the base path) against the Autotask templates listed
/// above: literals in any case, `{…}` an integer id.
fn autotask_documented_elsewhere(method: &str, path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    AUTOTASK_DOCUMENTED_ELSEWHERE
        .iter()
        .find(|(m, template)| {
            let wanted: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            method.eq_ignore_ascii_case(m)
                && parts.len() == wanted.len()
                && parts.iter().zip(&wanted).all(|(part, want)| {
                    if want.starts_with('{') {
                        !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
                    } else {
                        part.eq_ignore_ascii_case(want)
                    }
                })
        })
        .map(|(_, template)| *template)
}

/// Autotask: the path below the swagger's `basePath`, any case. A POST to a
/// `…/query/next?paging=…` link is the next page of the query before it:
/// Autotask's `pageDetails.nextPageUrl`, which the fact sheet documents
/// ("POSTing the same query body to `nextPageUrl`"); the query it continues
/// must be documented itself.
fn autotask_verdict(api: &VendorApi, request: &RecordedRequest) -> Verdict {
    let undocumented = || Verdict::Undocumented(request.method.clone(), request.path.clone());
    let base = "/ATServicesRest";
    let Some(path) = request
        .path
        .get(..base.len())
        .filter(|prefix| prefix.eq_ignore_ascii_case(base))
        .map(|_| &request.path[base.len()..])
    else {
        return undocumented();
    };
    if let Some(query) = path
        .strip_suffix("/next")
        .filter(|q| q.to_ascii_lowercase().ends_with("/query"))
    {
        if request.method == "POST" && request.query_param("paging").is_some() {
            return match api.find("POST", query) {
                Some(op) => Verdict::NextPageOf(format!("POST {}", op.template)),
                None => undocumented(),
            };
        }
    }
    if let Some(template) = autotask_documented_elsewhere(&request.method, path) {
        return Verdict::Documented(request.method.to_ascii_uppercase(), template.to_owned());
    }
    match api.find(&request.method, path) {
        Some(op) => Verdict::Documented(op.method.clone(), op.template.clone()),
        None => undocumented(),
    }
}

/// The fact sheet documents the next-page rule the `NextPageOf` verdict rests on.
fn assert_next_page_rule_documented() {
    let sheet = specs_dir().join("autotask-rest.md");
    let text = read(&sheet);
    assert!(
        text.contains("POSTing the same query body to `nextPageUrl`"),
        "{} no longer documents POSTing a query's body to nextPageUrl; the contract test's \
         next-page rule rests on it",
        sheet.display()
    );
}

// ---------------------------------------------------------------------------
// Driving the connectors
// ---------------------------------------------------------------------------

/// Handles to every tenant's sandboxes (clones share the running sandbox and
/// its request log), kept after a case consumes its world.
#[derive(Default)]
struct Recorded {
    zendesk: Vec<(String, ZendeskSandbox)>,
    autotask: Vec<(String, AutotaskSandbox)>,
}

impl Recorded {
    fn keep(&mut self, label: &str, world: &World) {
        for t in &world.tenants {
            let who = format!("{label}/{}", t.id);
            self.zendesk.push((who.clone(), t.zendesk.clone()));
            self.autotask.push((who, t.autotask.clone()));
        }
    }
}

async fn pipeline_world() -> World {
    World::start(cases::tenants(), WorldOptions::default())
        .await
        .unwrap()
}

fn open(t: &TenantWorld, subject: &str) -> u64 {
    t.zendesk.create_ticket(NewTicket {
        subject: subject.into(),
        description: format!("{subject}: details"),
        priority: Some("high".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    })
}

async fn sweep_ok(world: &World) {
    for report in world.sweep_now().await.expect("tenants listed") {
        assert!(report.is_ok(), "{report}");
    }
}

/// A tenant whose webhooks are all lost, so only sweeps carry its changes:
/// the export, the Autotask change query and its next page, and the whole
/// sync of a ticket, a comment and a technician note after sweeps.
async fn sweeps(recorded: &mut Recorded) {
    let world = World::start(vec![TenantSpec::new("sweeper")], WorldOptions::default())
        .await
        .unwrap();
    recorded.keep("sweeps", &world);
    let t = world.tenant("sweeper");
    for faults in [t.zendesk.faults(), t.autotask.faults()] {
        faults.update(|f| f.drop_webhook_rate = 1.0);
    }
    let z = open(t, "Backup failed");
    t.zendesk
        .add_comment(z, "Casey Customer", "Since Monday", true);
    sweep_ok(&world).await;
    let psa = wait_for(ARRIVAL, || psa_tickets_for(t, z).into_iter().next())
        .await
        .expect("the sweep's job created the Autotask ticket");
    settle_within(&world, Duration::from_millis(300), Duration::from_secs(60)).await;

    t.autotask
        .add_note(psa.id, t.technician, "Update", "Restarted the job", false);
    // More changed Autotask tickets than one query page (500) holds.
    let company = t.clusters[0].1;
    for n in 0..501 {
        t.autotask
            .add_ticket(t.technician, company, &format!("other ticket {n}"));
    }
    sweep_ok(&world).await;
    let mirrored = wait_for(ARRIVAL, || {
        t.zendesk
            .comments(z)
            .iter()
            .any(|c| c.body.contains("Restarted the job"))
            .then_some(())
    })
    .await;
    assert!(mirrored.is_some(), "the technician note reached Zendesk");
    settle_within(&world, Duration::from_millis(300), Duration::from_secs(60)).await;
}

/// The Zendesk preflight (`users/me`), with a tenant's own credentials.
async fn preflight(recorded: &mut Recorded) {
    let world = World::start(vec![TenantSpec::new("preflight")], WorldOptions::default())
        .await
        .unwrap();
    recorded.keep("preflight", &world);
    let t = world.tenant("preflight");
    let client = ZendeskClient::new(
        bridge::connectors::http::client(),
        t.zendesk.base_url(),
        &t.secrets.zendesk_email,
        &t.secrets.zendesk_api_token,
        t.config.zendesk.cluster_id_field,
    );
    let user = client
        .preflight()
        .await
        .expect("the world's API user is an admin");
    assert_eq!(user.role, "admin");
}

/// The console's registration of the Zendesk webhook, with a tenant's own
/// credentials: a hand-made duplicate to the same endpoint first, so that
/// the list, the creation, the deletion and the signing secret are all sent.
async fn webhook_registration(recorded: &mut Recorded) {
    let world = World::start(vec![TenantSpec::new("hooks")], WorldOptions::default())
        .await
        .unwrap();
    recorded.keep("webhooks", &world);
    let t = world.tenant("hooks");
    let endpoint = format!("{}/t/hooks/zendesk", world.bridge.base_url);
    let made_by_hand = reqwest::Client::new()
        .post(format!("{}/api/v2/webhooks", t.zendesk.base_url()))
        .basic_auth(
            format!("{}/token", t.secrets.zendesk_email),
            Some(t.secrets.zendesk_api_token.expose()),
        )
        .json(
            &serde_json::json!({"webhook": {"name": "by hand", "endpoint": endpoint,
            "http_method": "POST", "request_format": "json", "status": "active",
            "subscriptions": ["conditional_ticket_events"]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made_by_hand.status(), 201);
    let client = ZendeskClient::new(
        bridge::connectors::http::client(),
        t.zendesk.base_url(),
        &t.secrets.zendesk_email,
        &t.secrets.zendesk_api_token,
        t.config.zendesk.cluster_id_field,
    );
    let ensured = client
        .ensure_webhook(&endpoint, "psa-bridge (hooks)")
        .await
        .expect("the world's API user is an admin");
    assert!(ensured.changes.created);
    assert_eq!(ensured.changes.removed, 1);
}

/// The console's registration of the Autotask webhooks, with a tenant's own
/// credentials: an inactive hand-made Ticket webhook to the same endpoint
/// first (deleted), then two registrations (the second keeps both webhooks
/// and PATCHes their key), so that every operation of `ensure_webhooks` is
/// sent.
async fn autotask_webhook_registration(recorded: &mut Recorded) {
    let world = World::start(vec![TenantSpec::new("athooks")], WorldOptions::default())
        .await
        .unwrap();
    recorded.keep("autotask-webhooks", &world);
    let t = world.tenant("athooks");
    let endpoint = format!("{}/t/athooks/autotask", world.bridge.base_url);
    let made_by_hand = reqwest::Client::new()
        .post(format!(
            "{}{}/TicketWebhooks",
            t.autotask.base_url(),
            sandbox::autotask::API_ROOT
        ))
        .header("UserName", &t.secrets.autotask_username)
        .header("Secret", t.secrets.autotask_secret.expose())
        .header(
            "ApiIntegrationCode",
            t.secrets.autotask_integration_code.expose(),
        )
        .json(
            &serde_json::json!({"webhookUrl": endpoint, "deactivationUrl": endpoint,
            "secretKey": "made-by-hand", "isSubscribedToCreateEvents": true,
            "isSubscribedToUpdateEvents": true, "isSubscribedToDeleteEvents": false,
            "isActive": false, "notificationEmailAddress": "ops@msp.example"}),
        )
        .send()
        .await
        .unwrap();
    assert!(made_by_hand.status().is_success());
    let client = AutotaskClient::connect(
        bridge::connectors::http::client(),
        &t.autotask.zone_lookup_url(),
        &t.secrets.autotask_username,
        &t.secrets.autotask_secret,
        &t.secrets.autotask_integration_code,
    )
    .await
    .unwrap();
    let request = WebhookRequest {
        endpoint: &endpoint,
        name: "psa-bridge (athooks)",
        api_username: &t.secrets.autotask_username,
        notification_email: None,
    };
    let first = client.ensure_webhooks(&request).await.unwrap();
    assert!(first.ticket.created && first.note.created);
    assert_eq!(first.ticket.removed, 1);
    let again = client.ensure_webhooks(&request).await.unwrap();
    assert!(!again.ticket.created && !again.note.created);
}

/// Operations every run of this test must have exercised, so that it cannot
/// pass by sending nothing: (vendor, method, template).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("autotask", "GET", "/V1.0/ZoneInformation"),
    ("autotask", "POST", "/V1.0/Tickets"),
    ("autotask", "PATCH", "/V1.0/Tickets"),
    ("autotask", "POST", "/V1.0/Tickets/query"),
    ("autotask", "GET", "/V1.0/Tickets/{parentId}/Notes"),
    ("autotask", "POST", "/V1.0/Tickets/{parentId}/Notes"),
    ("autotask", "GET", "/V1.0/Tickets/entityInformation/fields"),
    ("autotask", "POST", "/V1.0/ConfigurationItems/query"),
    ("autotask", "GET", "/V1.0/Resources/{id}"),
    ("autotask", "POST", "/V1.0/Resources/query"),
    ("autotask", "POST", "/V1.0/TicketWebhooks"),
    ("autotask", "PATCH", "/V1.0/TicketWebhooks"),
    ("autotask", "POST", "/V1.0/TicketWebhooks/query"),
    ("autotask", "GET", "/V1.0/TicketWebhooks/{id}"),
    ("autotask", "DELETE", "/V1.0/TicketWebhooks/{id}"),
    ("autotask", "GET", "/V1.0/TicketWebhooks/{parentId}/Fields"),
    ("autotask", "POST", "/V1.0/TicketWebhooks/{parentId}/Fields"),
    (
        "autotask",
        "GET",
        "/V1.0/TicketWebhooks/{parentId}/ExcludedResources",
    ),
    (
        "autotask",
        "POST",
        "/V1.0/TicketWebhooks/{parentId}/ExcludedResources",
    ),
    (
        "autotask",
        "GET",
        "/V1.0/TicketWebhookFields/entityInformation/fields",
    ),
    ("autotask", "POST", "/V1.0/TicketNoteWebhooks"),
    ("autotask", "PATCH", "/V1.0/TicketNoteWebhooks"),
    (
        "autotask",
        "POST",
        "/V1.0/TicketNoteWebhooks/{parentId}/Fields",
    ),
    (
        "autotask",
        "POST",
        "/V1.0/TicketNoteWebhooks/{parentId}/ExcludedResources",
    ),
    (
        "autotask",
        "GET",
        "/V1.0/TicketNoteWebhookFields/entityInformation/fields",
    ),
    ("zendesk", "GET", "/api/v2/tickets/{ticket_id}"),
    ("zendesk", "PUT", "/api/v2/tickets/{ticket_id}"),
    ("zendesk", "GET", "/api/v2/tickets/{ticket_id}/comments"),
    ("zendesk", "GET", "/api/v2/incremental/tickets/cursor"),
    ("zendesk", "GET", "/api/v2/users/me"),
    ("zendesk", "GET", "/api/v2/webhooks"),
    ("zendesk", "POST", "/api/v2/webhooks"),
    ("zendesk", "DELETE", "/api/v2/webhooks/{webhook_id}"),
    (
        "zendesk",
        "GET",
        "/api/v2/webhooks/{webhook_id}/signing_secret",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_the_connectors_send_is_in_the_vendors_api_descriptions() {
    let vendor = vendor_dir();
    let autotask_api = VendorApi::autotask(&vendor);
    let zendesk_api = VendorApi::zendesk(&vendor);
    assert_next_page_rule_documented();

    let mut recorded = Recorded::default();
    let worlds = [
        pipeline_world().await,
        pipeline_world().await,
        pipeline_world().await,
        pipeline_world().await,
        World::start(cases::noc_tenant(), WorldOptions::default())
            .await
            .unwrap(),
    ];
    for (n, world) in worlds.iter().enumerate() {
        recorded.keep(&format!("pipeline{n}"), world);
    }
    let [a, b, c, d, noc] = worlds;
    tokio::join!(
        cases::every_mapped_field_follows_each_tenants_own_tables(a),
        cases::comments_flow_both_ways_exactly_once_over_three_round_trips(b),
        cases::repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each(c),
        cases::cluster_id_resolves_to_the_configuration_items_company_or_is_reported(d),
        cases::psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue(noc),
    );
    sweeps(&mut recorded).await;
    preflight(&mut recorded).await;
    webhook_registration(&mut recorded).await;
    autotask_webhook_registration(&mut recorded).await;

    // (vendor, verdict) -> requests, and one example of who sent it.
    let mut seen: BTreeMap<(&str, Verdict), (usize, String)> = BTreeMap::new();
    let mut note = |vendor: &'static str, verdict: Verdict, who: &str| {
        let entry = seen.entry((vendor, verdict)).or_insert((0, who.to_owned()));
        entry.0 += 1;
    };
    for (who, sandbox) in &recorded.zendesk {
        assert_eq!(
            sandbox.request_log().dropped(),
            0,
            "{who}: request log overflowed"
        );
        for request in sandbox.requests() {
            note("zendesk", zendesk_verdict(&zendesk_api, &request), who);
        }
    }
    for (who, sandbox) in &recorded.autotask {
        assert_eq!(
            sandbox.request_log().dropped(),
            0,
            "{who}: request log overflowed"
        );
        for request in sandbox.requests() {
            note("autotask", autotask_verdict(&autotask_api, &request), who);
        }
    }

    let mut report = String::new();
    for ((vendor, verdict), (count, who)) in &seen {
        let line = match verdict {
            Verdict::Documented(method, template) => format!("{vendor}: {method} {template}"),
            Verdict::NextPageOf(query) => format!("{vendor}: next page of {query}"),
            Verdict::Undocumented(method, path) => {
                format!("{vendor}: UNDOCUMENTED {method} {path} (first from {who})")
            }
        };
        report.push_str(&format!("  {line}: {count} request(s)\n"));
    }
    println!("requests the connectors sent, by operation:\n{report}");

    let undocumented: Vec<String> = seen
        .keys()
        .filter_map(|(vendor, verdict)| match verdict {
            Verdict::Undocumented(method, path) => {
                let api = if *vendor == "zendesk" {
                    zendesk_api.name
                } else {
                    autotask_api.name
                };
                Some(format!("{method} {path} is not in the {api}"))
            }
            _ => None,
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "the connectors sent requests the vendors do not document:\n  {}\n(all requests:\n{report})",
        undocumented.join("\n  ")
    );

    let missing: Vec<String> = EXPECTED
        .iter()
        .filter(|(vendor, method, template)| {
            !seen.keys().any(|(v, verdict)| {
                v == vendor
                    && matches!(verdict, Verdict::Documented(m, t) if m == method && t == template)
            })
        })
        .map(|(vendor, method, template)| format!("{vendor} {method} {template}"))
        .collect();
    assert!(
        missing.is_empty(),
        "the contract test no longer exercises {missing:?}; drive them, or drop them from EXPECTED \
         if the connectors stopped sending them\n{report}"
    );
}

#[test]
fn the_matcher_sorts_paths_as_the_vendors_document_them() {
    let vendor = vendor_dir();
    let autotask = VendorApi::autotask(&vendor);
    let zendesk = VendorApi::zendesk(&vendor);
    let request = |method: &str, path: &str, query: Option<&str>| RecordedRequest {
        seq: 1,
        received_at: chrono::Utc::now(),
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers: Vec::new(),
        body: None,
        body_len: 0,
        status: Some(200),
    };
    let documented = |m: &str, t: &str| Verdict::Documented(m.to_owned(), t.to_owned());
    let z = |m: &str, p: &str| zendesk_verdict(&zendesk, &request(m, p, None));
    let a = |m: &str, p: &str, q: Option<&str>| autotask_verdict(&autotask, &request(m, p, q));

    assert_eq!(
        z("PUT", "/api/v2/tickets/42.json"),
        documented("PUT", "/api/v2/tickets/{ticket_id}")
    );
    assert_eq!(
        z("GET", "/api/v2/users/me.json"),
        documented("GET", "/api/v2/users/me")
    );
    assert_eq!(
        z("GET", "/api/v2/incremental/tickets/cursor.json"),
        documented("GET", "/api/v2/incremental/tickets/cursor")
    );
    // Zendesk's ids are numbers, its paths case-sensitive, and comments are
    // created through the ticket, not POSTed.
    assert!(matches!(
        z("GET", "/api/v2/tickets/abc.json"),
        Verdict::Undocumented(..)
    ));
    assert!(matches!(
        z("GET", "/api/v2/Tickets/42.json"),
        Verdict::Undocumented(..)
    ));
    assert!(matches!(
        z("POST", "/api/v2/tickets/42/comments.json"),
        Verdict::Undocumented(..)
    ));
    // The Webhooks API, from its own documentation: no `.json`, ULID ids.
    assert_eq!(
        z(
            "GET",
            "/api/v2/webhooks/01F1KRFQ6BG29CNWFR60NK5FNY/signing_secret"
        ),
        Verdict::Documented(
            "GET".into(),
            "/api/v2/webhooks/{webhook_id}/signing_secret".into()
        )
    );
    for (method, path) in [
        ("GET", "/api/v2/webhooks.json"),
        ("DELETE", "/api/v2/webhooks/42"),
        ("PUT", "/api/v2/webhooks/01F1KRFQ6BG29CNWFR60NK5FNY"),
    ] {
        assert!(
            matches!(z(method, path), Verdict::Undocumented(..)),
            "{method} {path}"
        );
    }

    assert_eq!(
        a(
            "GET",
            "/atservicesrest/v1.0/zoneInformation",
            Some("user=x")
        ),
        documented("GET", "/V1.0/ZoneInformation")
    );
    assert_eq!(
        a("POST", "/ATServicesRest/V1.0/Tickets/7/Notes", None),
        documented("POST", "/V1.0/Tickets/{parentId}/Notes")
    );
    assert_eq!(
        a(
            "POST",
            "/ATServicesRest/V1.0/Tickets/query/next",
            Some("paging=%7B%7D")
        ),
        Verdict::NextPageOf("POST /V1.0/Tickets/query".to_owned())
    );
    // Notes are created under their ticket; a GET next page is not Autotask's rule.
    assert!(matches!(
        a("POST", "/ATServicesRest/V1.0/TicketNotes", None),
        Verdict::Undocumented(..)
    ));
    assert!(matches!(
        a(
            "GET",
            "/ATServicesRest/V1.0/Tickets/query/next",
            Some("paging=%7B%7D")
        ),
        Verdict::Undocumented(..)
    ));
    assert!(matches!(
        a("GET", "/V1.0/Tickets/7", None),
        Verdict::Undocumented(..)
    ));
    // The Ticket webhook entities, from their own documentation.
    assert_eq!(
        a(
            "POST",
            "/ATServicesRest/V1.0/TicketNoteWebhooks/4101/Fields",
            None
        ),
        documented("POST", "/V1.0/TicketNoteWebhooks/{parentId}/Fields")
    );
    for (method, path) in [
        ("PUT", "/ATServicesRest/V1.0/TicketWebhooks"),
        ("GET", "/ATServicesRest/V1.0/TicketWebhooks/abc"),
        ("DELETE", "/ATServicesRest/V1.0/TicketWebhooks/7/Fields/9"),
        ("POST", "/ATServicesRest/V1.0/TicketWebhooks/7/UdfFields"),
    ] {
        assert!(
            matches!(a(method, path, None), Verdict::Undocumented(..)),
            "{method} {path}"
        );
    }
}

/// The Ticket and TicketNote webhook operations the contract accepts are
/// exactly ones the vendor swagger documents for `CompanyWebhooks` (same
/// method, same path with `Company` for `Ticket`/`TicketNote`), and the fact
/// sheet names both entities and their children.
#[test]
fn autotask_webhook_operations_mirror_documented_company_ones() {
    let autotask = VendorApi::autotask(&vendor_dir());
    assert!(AUTOTASK_WEBHOOK_SOURCES.contains("REST_WebhooksEntity"));
    for (method, template) in AUTOTASK_DOCUMENTED_ELSEWHERE {
        let company = template
            .replace("TicketNoteWebhook", "CompanyWebhook")
            .replace("TicketWebhook", "CompanyWebhook")
            .replace("{id}", "7")
            .replace("{parentId}", "7");
        assert!(
            autotask.find(method, &company).is_some(),
            "{method} {template}: the swagger has no {method} {company} to mirror"
        );
    }
    let sheet = read(&specs_dir().join("autotask-rest.md"));
    for needle in [
        "`TicketWebhooks`",
        "`TicketNoteWebhooks`",
        "/Fields`",
        "/ExcludedResources`",
    ] {
        assert!(
            sheet.contains(needle),
            "the fact sheet no longer names {needle}"
        );
    }
}

// ---------------------------------------------------------------------------
// Zendesk's rules end to end
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_log_says_plainly_that_the_sweeps_export_needs_a_zendesk_admin() {
    let world = World::start(vec![TenantSpec::new("agentonly")], WorldOptions::default())
        .await
        .unwrap();
    let t = world.tenant("agentonly");
    t.zendesk.set_api_user_role(Role::Agent);
    open(t, "Printer offline");

    let reports = world.sweep_now().await.expect("tenants listed");
    let report = &reports[0];
    let expected = format!(
        "the Zendesk user {} is an agent; the incremental export used by the sweep needs an admin",
        t.secrets.zendesk_email
    );
    assert_eq!(
        report.failures.len(),
        1,
        "only the Zendesk side fails: {report}"
    );
    let failure = &report.failures[0];
    assert!(failure.message.contains(&expected), "{report}");
    assert!(
        !failure.retryable,
        "a role does not heal by waiting: {report}"
    );

    let entries = Repo::new(world.store())
        .log_entries(&t.id, 20)
        .await
        .unwrap();
    let logged = entries
        .iter()
        .find(|e| e.step == "read_zendesk_changes")
        .unwrap_or_else(|| panic!("no sweep failure in the sync log: {entries:?}"));
    assert_eq!(logged.level, LogLevel::Error);
    assert!(!logged.retryable);
    assert!(logged.message.contains(&expected), "{}", logged.message);
    assert!(
        logged.message.contains("Make that user an admin"),
        "says what to do: {}",
        logged.message
    );
    // Refused once, not hammered.
    let exports = t
        .zendesk
        .requests_matching("GET", "/api/v2/incremental/tickets/cursor.json");
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].status, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_faster_than_zendesks_per_ticket_limit_or_in_conflict_arrive_delayed_each_exactly_once(
) {
    let world = World::start(
        vec![TenantSpec::new("busy")],
        WorldOptions {
            // Retries come back after the server's Retry-After, or this.
            backoff_base: Duration::from_millis(200),
            ..WorldOptions::default()
        },
    )
    .await
    .unwrap();
    let t = world.tenant("busy");
    // Zendesk allows 30 updates per ticket per user in 10 minutes; here in 2 s.
    t.zendesk.set_update_limits(UpdateLimits {
        per_account: None,
        per_ticket_per_user: Some(RateWindow::new(30, Duration::from_secs(2))),
    });
    let z = open(t, "Network outage");
    let psa = wait_for(ARRIVAL, || psa_tickets_for(t, z).into_iter().next())
        .await
        .expect("the ticket reached Autotask");
    settle_within(&world, Duration::from_millis(300), Duration::from_secs(60)).await;

    // Two updates collide with another request (409), and a technician
    // writes 40 notes at once, each firing a webhook.
    t.zendesk.conflict_next_updates(2);
    for n in 0..40 {
        t.autotask.add_note(
            psa.id,
            t.technician,
            "Progress",
            &format!("step {n} done"),
            n % 2 == 0,
        );
    }
    let arrived = wait_for(Duration::from_secs(90), || {
        let comments = t.zendesk.comments(z);
        (0..40)
            .all(|n| {
                let text = format!("step {n} done");
                comments.iter().any(|c| c.body.contains(&text))
            })
            .then_some(())
    })
    .await;
    assert!(
        arrived.is_some(),
        "not every note reached Zendesk: {} comments",
        t.zendesk.comments(z).len()
    );
    settle_within(&world, Duration::from_millis(500), Duration::from_secs(90)).await;

    // Each note exactly once, with its visibility; nothing echoed.
    let comments = t.zendesk.comments(z);
    for n in 0..40 {
        let text = format!("step {n} done");
        let copies: Vec<_> = comments.iter().filter(|c| c.body.contains(&text)).collect();
        assert_eq!(copies.len(), 1, "note {n} mirrored once");
        assert_eq!(
            copies[0].public,
            n % 2 != 0,
            "note {n} keeps its visibility"
        );
    }
    assert_mirrored_exactly_once(t, &[z]);
    // Zendesk's limit was really hit, and the refused updates were retried.
    let puts = t
        .zendesk
        .requests_matching("PUT", &format!("/api/v2/tickets/{z}.json"));
    let refused = puts.iter().filter(|r| r.status == Some(429)).count();
    assert!(refused >= 1, "the per-ticket limit was never reached");
    let conflicts = puts.iter().filter(|r| r.status == Some(409)).count();
    assert_eq!(conflicts, 2, "the conflicting updates were retried");
    let written = puts.iter().filter(|r| r.status == Some(200)).count();
    assert_eq!(written, 41, "40 comments and the cross reference, no more");
}
