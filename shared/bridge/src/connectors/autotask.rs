//! Autotask: the REST client (ATServicesRest V1.0) and the checks and parsers
//! of Autotask's incoming calls (extension callouts and REST webhooks).
//!
//! Contract notes that shape this code:
//! - Zone discovery (`{lookup}/v1.0/zoneInformation?user=`) names the REST base
//!   (`…/ATServicesRest/`); every entity call goes to `{url}V1.0/…` with the
//!   `ApiIntegrationCode`, `UserName` and `Secret` headers.
//! - Errors come as `{"errors": ["…"]}`. Autotask answers many validation
//!   failures (bad picklist value, missing field, missing role) with HTTP 500,
//!   so a 500 whose message is clearly a validation error is permanent.
//! - Queries page by `pageDetails.nextPageUrl` (a GET, same headers, up to 500
//!   records per page).
//! - Changes: `POST Tickets/query` on `lastActivityDate gt <since>` (UTC; the date
//!   moves on any change, note or time entry) with `IncludeFields` so a page of
//!   500 stays small.
//! - Note visibility is the `publish` picklist of TicketNotes: "All Autotask
//!   Users" is the customer-visible state; everything else ("Internal Only",
//!   "Internal Project Team", "Internal & Co-Managed") is internal.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::connectors::http::{error_from_response, transport_error};
use crate::error::{ApiError, InboundError};
use crate::model::{
    NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch, Visibility,
};
use crate::ports::Psa;

const SYSTEM: &str = "autotask";

/// Header carrying the REST webhook signature.
pub const HOOK_SIGNATURE_HEADER: &str = "X-Hook-Signature";

/// Picklists change when an admin edits them, which is rare; five minutes of
/// staleness saves one call per sync against a 10,000-calls-per-hour budget.
const PICKLIST_TTL: Duration = Duration::from_secs(300);
/// Autotask's maximum page size.
const PAGE_SIZE: u32 = 500;
/// Guards against a server that keeps handing out next-page links.
const MAX_PAGES: usize = 200;
/// Field limits of the Tickets and TicketNotes entities; longer values are
/// rejected, so they are cut here rather than failing the sync forever.
const TICKET_TITLE_MAX: usize = 255;
const TICKET_DESCRIPTION_MAX: usize = 8000;
const NOTE_TITLE_MAX: usize = 250;
const NOTE_DESCRIPTION_MAX: usize = 32000;

/// The customer-visible `publish` label of ticket notes.
const PUBLIC_PUBLISH_LABEL: &str = "All Autotask Users";

/// An Autotask REST client bound to one database (tenant), after zone discovery.
pub struct AutotaskClient {
    http: reqwest::Client,
    /// `{zone url}V1.0/`.
    base: String,
    /// Scheme, host and port of `base`: next-page links must stay on it, or the
    /// credentials would be sent elsewhere.
    origin: String,
    /// Authentication headers, marked sensitive so they never show in debug output.
    headers: HeaderMap,
    fields: Mutex<FieldCache>,
    /// Technician names by resource id; they change rarely and every mirrored
    /// note needs one.
    resource_names: Mutex<HashMap<i64, Option<String>>>,
}

impl fmt::Debug for AutotaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutotaskClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Field descriptions per entity, with the time they were fetched.
type FieldCache = HashMap<&'static str, (Instant, Arc<Vec<FieldInfo>>)>;

#[derive(Deserialize)]
struct ZoneInfo {
    url: Option<String>,
    #[serde(rename = "zoneName")]
    zone_name: Option<String>,
}

impl AutotaskClient {
    /// Asks the zone lookup service where this user's database lives, once.
    /// Autotask answers an unknown or blank user name with a 500 and an
    /// `errors` body: that is a configuration problem, not an outage.
    pub async fn connect(
        http: reqwest::Client,
        zone_lookup_url: &str,
        username: &str,
        secret: &Secret,
        integration_code: &Secret,
    ) -> Result<Self, ApiError> {
        let headers = auth_headers(username, secret, integration_code)?;
        let lookup = format!(
            "{}/v1.0/zoneInformation",
            zone_lookup_url.trim_end_matches('/')
        );
        let response = http
            .get(&lookup)
            .query(&[("user", username)])
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        let status = response.status();
        if status == reqwest::StatusCode::INTERNAL_SERVER_ERROR {
            let body = response.text().await.unwrap_or_default();
            return Err(match describe(&body) {
                Some(message) => ApiError::Rejected {
                    system: SYSTEM,
                    status: 500,
                    message: format!("zone lookup failed for the API user: {message}"),
                },
                None => ApiError::Server {
                    system: SYSTEM,
                    status: 500,
                    message: "zone lookup failed".to_owned(),
                },
            });
        }
        if !status.is_success() {
            return Err(error_from_response(SYSTEM, response, "zone information", describe).await);
        }
        let zone: ZoneInfo = read_json(response, "zone information").await?;
        let url = zone
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or(ApiError::Malformed {
                system: SYSTEM,
                message: "zone information has no url".to_owned(),
            })?;
        let parsed = url::Url::parse(url.trim()).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("zone url is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ApiError::Malformed {
                system: SYSTEM,
                message: format!("zone url has unsupported scheme {:?}", parsed.scheme()),
            });
        }
        let mut base = parsed.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        base.push_str("V1.0/");
        tracing::debug!(zone = zone.zone_name.as_deref().unwrap_or(""), %base, "autotask zone discovered");
        Ok(Self {
            http,
            base,
            origin: parsed.origin().ascii_serialization(),
            headers,
            fields: Mutex::new(HashMap::new()),
            resource_names: Mutex::new(HashMap::new()),
        })
    }

    /// The REST base all entity calls go to (`…/ATServicesRest/V1.0/`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, url).headers(self.headers.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        if !response.status().is_success() {
            let err = error_from_response(SYSTEM, response, what, describe).await;
            return Err(reclassify(err));
        }
        read_json(response, what).await
    }

    /// Runs an entity query and follows `nextPageUrl` to the end.
    async fn query_all<T: DeserializeOwned>(
        &self,
        entity: &str,
        filter: Value,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let body = json!({ "MaxRecords": PAGE_SIZE, "filter": filter });
        let first: Page<T> = self
            .call(
                Method::POST,
                &self.url(&format!("{entity}/query")),
                Some(&body),
                what,
            )
            .await?;
        self.follow(first, what).await
    }

    async fn follow<T: DeserializeOwned>(
        &self,
        mut page: Page<T>,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut items = std::mem::take(&mut page.items);
        let mut pages = 1;
        while let Some(next) = page.next_page_url() {
            if pages >= MAX_PAGES {
                return Err(ApiError::Malformed {
                    system: SYSTEM,
                    message: format!("{what}: paging did not end after {MAX_PAGES} pages"),
                });
            }
            let next = self.same_origin(&next)?;
            page = self.call(Method::GET, &next, None, what).await?;
            items.append(&mut page.items);
            pages += 1;
        }
        Ok(items)
    }

    fn same_origin(&self, next: &str) -> Result<String, ApiError> {
        let parsed = url::Url::parse(next).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("nextPageUrl is not a URL: {e}"),
        })?;
        if parsed.origin().ascii_serialization() != self.origin {
            return Err(ApiError::Malformed {
                system: SYSTEM,
                message: "nextPageUrl points outside the Autotask zone".to_owned(),
            });
        }
        Ok(parsed.into())
    }

    /// Field descriptions of an entity, cached for `PICKLIST_TTL`.
    async fn fields(&self, entity: &'static str) -> Result<Arc<Vec<FieldInfo>>, ApiError> {
        let cached = {
            let cache = self.fields.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(entity)
                .filter(|(at, _)| at.elapsed() < PICKLIST_TTL)
                .map(|(_, fields)| fields.clone())
        };
        if let Some(fields) = cached {
            return Ok(fields);
        }
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            fields: Vec<FieldInfo>,
        }
        let fetched: Fields = self
            .call(
                Method::GET,
                &self.url(&format!("{entity}/entityInformation/fields")),
                None,
                "field information",
            )
            .await?;
        let fields = Arc::new(fetched.fields);
        self.fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entity, (Instant::now(), fields.clone()));
        Ok(fields)
    }

    async fn note_settings(&self) -> Result<NoteSettings, ApiError> {
        Ok(NoteSettings::from_fields(
            &self.fields("TicketNotes").await?,
        ))
    }
}

fn auth_headers(
    username: &str,
    secret: &Secret,
    integration_code: &Secret,
) -> Result<HeaderMap, ApiError> {
    let value = |v: &str| {
        let mut value = HeaderValue::from_str(v).map_err(|_| ApiError::Rejected {
            system: SYSTEM,
            status: 0,
            message: "Autotask credentials contain characters not allowed in HTTP headers"
                .to_owned(),
        })?;
        value.set_sensitive(true);
        Ok::<_, ApiError>(value)
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("apiintegrationcode"),
        value(integration_code.expose())?,
    );
    headers.insert(HeaderName::from_static("username"), value(username)?);
    headers.insert(HeaderName::from_static("secret"), value(secret.expose())?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}

async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(SYSTEM, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed {
        system: SYSTEM,
        message: format!("{what}: {e}"),
    })
}

/// Autotask's own message: `errors[]` joined, plus a top-level `message` if any.
fn describe(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let mut parts = Vec::new();
    if let Some(message) = get_ci(value.as_object()?, "message").and_then(Value::as_str) {
        parts.push(message.trim().to_owned());
    }
    if let Some(errors) = get_ci(value.as_object()?, "errors").and_then(Value::as_array) {
        for error in errors {
            let text = match error {
                Value::String(s) => s.trim().to_owned(),
                Value::Object(o) => get_ci(o, "message")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|| error.to_string()),
                other => other.to_string(),
            };
            if !text.is_empty() {
                parts.push(text);
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Autotask reports validation failures as HTTP 500; retrying those only burns
/// the hourly request budget, so they become permanent rejections.
fn reclassify(err: ApiError) -> ApiError {
    match err {
        ApiError::Server {
            system,
            status: 500,
            message,
        } if is_validation_message(&message) => ApiError::Rejected {
            system,
            status: 500,
            message,
        },
        other => other,
    }
}

fn is_validation_message(message: &str) -> bool {
    const MARKERS: &[&str] = &[
        "does not reference an existing entity",
        "required",
        "invalid",
        "is not valid",
        "must assign",
        "must be",
        "does not exist",
        "exceeds",
        "too long",
        "not allowed",
        "unable to find",
        "adequate permissions",
    ];
    let message = message.to_ascii_lowercase();
    MARKERS.iter().any(|marker| message.contains(marker))
}

fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(rename = "pageDetails", default)]
    page_details: Option<PageDetails>,
}

impl<T> Page<T> {
    fn next_page_url(&self) -> Option<String> {
        self.page_details
            .as_ref()
            .and_then(|d| d.next_page_url.clone())
            .filter(|url| !url.trim().is_empty())
    }
}

#[derive(Deserialize)]
struct PageDetails {
    #[serde(rename = "nextPageUrl", default)]
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct ItemResult<T> {
    item: Option<T>,
}

#[derive(Deserialize)]
struct CreateResult {
    #[serde(rename = "itemId")]
    item_id: i64,
}

#[derive(Deserialize)]
struct WireTicket {
    id: i64,
    #[serde(rename = "ticketNumber", default)]
    ticket_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(rename = "companyID", default)]
    company_id: Option<i64>,
    #[serde(rename = "queueID", default)]
    queue_id: Option<i64>,
    #[serde(rename = "externalID", default)]
    external_id: Option<String>,
    #[serde(
        rename = "lastActivityDate",
        default,
        deserialize_with = "lenient_time"
    )]
    last_activity_date: Option<DateTime<Utc>>,
}

impl WireTicket {
    fn into_model(self) -> Result<PsaTicket, ApiError> {
        let missing = |field: &str| ApiError::Malformed {
            system: SYSTEM,
            message: format!("ticket {} has no {field}", self.id),
        };
        Ok(PsaTicket {
            id: self.id,
            status: self.status.ok_or_else(|| missing("status"))?,
            priority: self.priority.ok_or_else(|| missing("priority"))?,
            company_id: self.company_id.ok_or_else(|| missing("companyID"))?,
            ticket_number: self.ticket_number,
            title: self.title.unwrap_or_default(),
            description: self.description,
            queue_id: self.queue_id,
            external_id: self.external_id.filter(|e| !e.is_empty()),
            last_activity: self.last_activity_date,
        })
    }
}

#[derive(Deserialize)]
struct WireNote {
    id: i64,
    #[serde(rename = "ticketID", default)]
    ticket_id: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    publish: Option<i64>,
    #[serde(rename = "creatorResourceID", default)]
    creator_resource_id: Option<i64>,
    #[serde(rename = "createDateTime", default, deserialize_with = "lenient_time")]
    create_date_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WireConfigurationItem {
    id: i64,
    #[serde(rename = "companyID", default)]
    company_id: Option<i64>,
    #[serde(rename = "isActive", default)]
    is_active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldInfo {
    name: String,
    #[serde(default)]
    is_pick_list: bool,
    #[serde(default)]
    picklist_values: Option<Vec<WirePicklistValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePicklistValue {
    /// A string ("1") in the live API, a number in some older answers.
    value: Value,
    #[serde(default)]
    label: String,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    is_default_value: bool,
}

fn yes() -> bool {
    true
}

impl WirePicklistValue {
    fn numeric(&self) -> Option<i64> {
        lenient_i64(&self.value)
    }
}

fn picklist_of<'a>(fields: &'a [FieldInfo], name: &str) -> Option<&'a [WirePicklistValue]> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name) && f.is_pick_list)
        .and_then(|f| f.picklist_values.as_deref())
}

/// Autotask dates come as RFC 3339 with fractions, sometimes without an offset
/// (always UTC). An unreadable date is dropped rather than failing the record.
fn lenient_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    Ok(raw.and_then(|s| parse_time(&s)))
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

fn lenient_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How notes are written and read in this database, from the TicketNotes picklists.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NoteSettings {
    /// `publish` values that customers can see.
    public_values: Vec<i64>,
    public_value: i64,
    internal_value: i64,
    note_type: i64,
}

impl NoteSettings {
    /// Falls back to Autotask's shipped values (1 "All Autotask Users",
    /// 2 "Internal Only", note type 1 "Task Summary") when a picklist is absent.
    fn from_fields(fields: &[FieldInfo]) -> Self {
        let publish = picklist_of(fields, "publish").unwrap_or_default();
        let public_values: Vec<i64> = publish
            .iter()
            .filter(|v| v.label.trim().eq_ignore_ascii_case(PUBLIC_PUBLISH_LABEL))
            .filter_map(WirePicklistValue::numeric)
            .collect();
        let public_values = if public_values.is_empty() {
            vec![1]
        } else {
            public_values
        };
        let internal_value = publish
            .iter()
            .filter(|v| v.is_active)
            .find(|v| v.label.trim().eq_ignore_ascii_case("Internal Only"))
            .or_else(|| {
                publish.iter().filter(|v| v.is_active).find(|v| {
                    let label = v.label.to_ascii_lowercase();
                    label.starts_with("internal") && !label.contains("co-managed")
                })
            })
            .and_then(WirePicklistValue::numeric)
            .unwrap_or(2);
        let note_types = picklist_of(fields, "noteType").unwrap_or_default();
        let note_type = note_types
            .iter()
            .find(|v| v.is_active && v.is_default_value)
            .or_else(|| {
                note_types
                    .iter()
                    .find(|v| v.is_active && v.label.eq_ignore_ascii_case("Task Summary"))
            })
            .and_then(WirePicklistValue::numeric)
            .unwrap_or(1);
        Self {
            public_value: public_values[0],
            public_values,
            internal_value,
            note_type,
        }
    }

    /// Unknown publish values read as internal: showing an internal note to a
    /// customer is the failure that must never happen.
    fn visibility(&self, publish: Option<i64>) -> Visibility {
        match publish {
            Some(p) if self.public_values.contains(&p) => Visibility::Public,
            _ => Visibility::Internal,
        }
    }

    fn publish_for(&self, visibility: Visibility) -> i64 {
        match visibility {
            Visibility::Public => self.public_value,
            Visibility::Internal => self.internal_value,
        }
    }
}

fn create_body(ticket: &NewPsaTicket) -> Value {
    let mut body = json!({
        "companyID": ticket.company_id,
        "title": truncate_chars(&ticket.title, TICKET_TITLE_MAX),
        "description": truncate_chars(&ticket.description, TICKET_DESCRIPTION_MAX),
        "status": ticket.status,
        "priority": ticket.priority,
        "externalID": ticket.external_id,
    });
    if let Some(queue) = ticket.queue_id {
        body["queueID"] = json!(queue);
    }
    body
}

/// PATCH leaves omitted fields untouched, so only the set fields are sent.
fn patch_body(id: i64, patch: &PsaTicketPatch) -> Value {
    let mut body = json!({ "id": id });
    if let Some(title) = &patch.title {
        body["title"] = json!(truncate_chars(title, TICKET_TITLE_MAX));
    }
    if let Some(status) = patch.status {
        body["status"] = json!(status);
    }
    if let Some(priority) = patch.priority {
        body["priority"] = json!(priority);
    }
    if let Some(company) = patch.company_id {
        body["companyID"] = json!(company);
    }
    body
}

fn note_title(note: &NewPsaNote) -> String {
    let title = note.title.trim();
    let title = if title.is_empty() {
        // Some ticket categories require note titles; the first line of the
        // body is the least surprising stand-in.
        note.description
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("Note")
            .trim()
    } else {
        title
    };
    truncate_chars(title, NOTE_TITLE_MAX)
}

#[async_trait]
impl Psa for AutotaskClient {
    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        let result: Result<ItemResult<WireTicket>, _> = self
            .call(
                Method::GET,
                &self.url(&format!("Tickets/{id}")),
                None,
                "ticket",
            )
            .await;
        match result {
            Ok(found) => found.item.map(WireTicket::into_model).transpose(),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        if let Some(known) = self.resource_names.lock().unwrap().get(&resource_id) {
            return Ok(known.clone());
        }
        let result: Result<ItemResult<WireResource>, _> = self
            .call(
                Method::GET,
                &self.url(&format!("Resources/{resource_id}")),
                None,
                "resource",
            )
            .await;
        let name = match result {
            Ok(found) => found.item.and_then(WireResource::display_name),
            Err(ApiError::NotFound { .. }) => None,
            Err(err) => return Err(err),
        };
        self.resource_names
            .lock()
            .unwrap()
            .insert(resource_id, name.clone());
        Ok(name)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        let body = json!({
            "MaxRecords": 10,
            "filter": [{ "op": "eq", "field": "externalID", "value": external_id }],
        });
        let page: Page<WireTicket> = self
            .call(
                Method::POST,
                &self.url("Tickets/query"),
                Some(&body),
                "ticket query",
            )
            .await?;
        if page.items.len() > 1 {
            // Two tickets with our reference mean a create raced; the oldest is
            // the one the link record most likely points at.
            tracing::warn!(
                count = page.items.len(),
                "several Autotask tickets share one externalID"
            );
        }
        page.items
            .into_iter()
            .min_by_key(|t| t.id)
            .map(WireTicket::into_model)
            .transpose()
    }

    #[tracing::instrument(skip(self, ticket), fields(system = SYSTEM, external_id = %ticket.external_id))]
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        let created: CreateResult = self
            .call(
                Method::POST,
                &self.url("Tickets"),
                Some(&create_body(ticket)),
                "ticket",
            )
            .await?;
        tracing::info!(ticket_id = created.item_id, "autotask ticket created");
        Ok(created.item_id)
    }

    #[tracing::instrument(skip(self, patch), fields(system = SYSTEM))]
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        if patch.is_empty() {
            return Ok(());
        }
        let _: CreateResult = self
            .call(
                Method::PATCH,
                &self.url("Tickets"),
                Some(&patch_body(id, patch)),
                "ticket",
            )
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        let settings = self.note_settings().await?;
        let first: Page<WireNote> = self
            .call(
                Method::GET,
                &self.url(&format!("Tickets/{ticket_id}/Notes")),
                None,
                "ticket notes",
            )
            .await?;
        let mut notes: Vec<PsaNote> = self
            .follow(first, "ticket notes")
            .await?
            .into_iter()
            .map(|n| PsaNote {
                id: n.id,
                ticket_id: n.ticket_id.unwrap_or(ticket_id),
                title: n.title.filter(|t| !t.is_empty()),
                description: n.description.unwrap_or_default(),
                visibility: settings.visibility(n.publish),
                creator_resource_id: n.creator_resource_id,
                creator_name: None,
                created_at: n.create_date_time,
            })
            .collect();
        notes.sort_by_key(|n| n.id);
        Ok(notes)
    }

    #[tracing::instrument(skip(self, note), fields(system = SYSTEM, visibility = ?note.visibility))]
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        let settings = self.note_settings().await?;
        let body = json!({
            "ticketID": ticket_id,
            "title": note_title(note),
            "description": truncate_chars(&note.description, NOTE_DESCRIPTION_MAX),
            "noteType": settings.note_type,
            "publish": settings.publish_for(note.visibility),
        });
        let created: CreateResult = self
            .call(
                Method::POST,
                &self.url(&format!("Tickets/{ticket_id}/Notes")),
                Some(&body),
                "ticket note",
            )
            .await?;
        Ok(created.item_id)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        let items: Vec<WireConfigurationItem> = self
            .query_all(
                "ConfigurationItems",
                json!([{ "op": "eq", "field": "referenceNumber", "value": reference }]),
                "configuration item query",
            )
            .await?;
        // Prefer active items, then the oldest; a retired duplicate must not
        // steer tickets to a former customer.
        let chosen = items
            .iter()
            .filter(|ci| ci.company_id.is_some())
            .min_by_key(|ci| (ci.is_active == Some(false), ci.id));
        let companies: std::collections::BTreeSet<i64> =
            items.iter().filter_map(|ci| ci.company_id).collect();
        if companies.len() > 1 {
            tracing::warn!(reference, companies = ?companies, "reference number matches items of several companies");
        }
        Ok(chosen.and_then(|ci| ci.company_id))
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        #[derive(Deserialize)]
        struct Changed {
            id: i64,
            #[serde(
                rename = "lastActivityDate",
                default,
                deserialize_with = "lenient_time"
            )]
            last_activity_date: Option<DateTime<Utc>>,
        }
        let body = json!({
            "MaxRecords": PAGE_SIZE,
            // Autotask requires the id among the fields once results span pages.
            "IncludeFields": ["id", "lastActivityDate"],
            "filter": [{
                "op": "gt",
                "field": "lastActivityDate",
                "value": since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            }],
        });
        let what = "ticket change query";
        let first: Page<Changed> = self
            .call(Method::POST, &self.url("Tickets/query"), Some(&body), what)
            .await?;
        let changed = self.follow(first, what).await?;
        tracing::debug!(count = changed.len(), "read autotask ticket changes");
        changed
            .into_iter()
            .map(|t| {
                let at = t.last_activity_date.ok_or_else(|| ApiError::Malformed {
                    system: SYSTEM,
                    message: format!("changed ticket {} has no lastActivityDate", t.id),
                })?;
                Ok((t.id, at))
            })
            .collect()
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        let fields = self.fields("Tickets").await?;
        let values = picklist_of(&fields, field).ok_or_else(|| ApiError::NotFound {
            system: SYSTEM,
            what: format!("ticket picklist field {field:?}"),
        })?;
        Ok(values
            .iter()
            .filter_map(|v| {
                v.numeric().map(|value| PicklistValue {
                    value,
                    label: v.label.clone(),
                    is_active: v.is_active,
                })
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------
// Incoming calls
// ---------------------------------------------------------------------------

/// "Ticket X changed in Autotask", as read from a callout or webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaEvent {
    pub ticket_id: i64,
    /// Stable per source event, so redeliveries de-duplicate in the queue.
    pub event_id: String,
}

/// Checks the HTTP Basic credentials an extension callout sends. Both parts are
/// compared in constant time (over SHA-256 digests, so lengths leak nothing).
pub fn verify_callout_credentials(
    expected_username: &str,
    expected_password: &Secret,
    authorization: Option<&str>,
) -> Result<(), InboundError> {
    let header = authorization.ok_or(InboundError::MissingHeader("Authorization"))?;
    let (scheme, encoded) = header
        .trim()
        .split_once(' ')
        .ok_or(InboundError::BadCredentials)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(InboundError::BadCredentials);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| InboundError::BadCredentials)?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(InboundError::BadCredentials)?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let user_ok = digest_eq(user, expected_username.as_bytes());
    let password_ok = digest_eq(password, expected_password.expose().as_bytes());
    // An unconfigured credential must never match an empty one.
    let configured = !expected_username.is_empty() && !expected_password.is_empty();
    if configured && bool::from(user_ok & password_ok) {
        Ok(())
    } else {
        Err(InboundError::BadCredentials)
    }
}

fn digest_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    Sha256::digest(a)
        .as_slice()
        .ct_eq(Sha256::digest(b).as_slice())
}

/// Checks `X-Hook-Signature`: base64(HMAC-SHA1(secret key, raw body)), which
/// Autotask sends as `sha1=<base64>`; the bare form is accepted too. The MAC
/// comparison is constant-time (`hmac` verifies through `subtle`).
pub fn verify_hook_signature(
    secret: &Secret,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), InboundError> {
    let header = signature
        .ok_or(InboundError::MissingHeader(HOOK_SIGNATURE_HEADER))?
        .trim();
    let encoded = match header.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha1=") => &header[5..],
        _ => header,
    };
    let provided = STANDARD
        .decode(encoded.trim())
        .map_err(|_| InboundError::BadSignature)?;
    if secret.is_empty() {
        return Err(InboundError::BadSignature);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&provided)
        .map_err(|_| InboundError::BadSignature)
}

/// Reads an extension callout. Autotask posts the ticket as name-value pairs
/// (form-urlencoded), XML or JSON depending on the callout's data format; the
/// ticket id is `id` (or `TicketID`). Callouts carry no event id, so the
/// ticket's last activity time (or a digest of the body) stands in for one.
pub fn parse_callout(content_type: Option<&str>, body: &[u8]) -> Result<PsaEvent, InboundError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InboundError::Malformed("empty callout body".to_owned()));
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let pairs = match media.as_str() {
        "application/x-www-form-urlencoded" => form_pairs(body)?,
        "application/json" | "text/json" => json_pairs(body)?,
        "application/xml" | "text/xml" => xml_pairs(body)?,
        _ => match first {
            Some(b'{') => json_pairs(body)?,
            Some(b'<') => xml_pairs(body)?,
            _ => form_pairs(body)?,
        },
    };
    let raw_id = pair(&pairs, &["ticketid", "id"]).ok_or_else(|| {
        InboundError::Malformed("callout carries no ticket id (id or TicketID)".to_owned())
    })?;
    let ticket_id = positive_id(raw_id)?;
    let marker = match pair(&pairs, &["lastactivitydate", "lastactivitydatetime"]) {
        Some(time) if !time.trim().is_empty() => truncate_chars(time.trim(), 64),
        _ => {
            let digest = Sha1::digest(body);
            digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
        }
    };
    Ok(PsaEvent {
        ticket_id,
        event_id: format!("callout:{ticket_id}:{marker}"),
    })
}

/// Reads a REST webhook (`{"Action","Guid","EntityType","Id","Fields",
/// "EventTime","SequenceNumber","PersonID"}`). `Guid` names the webhook, not
/// the event, so the event id is entity + id + sequence number.
pub fn parse_webhook(body: &[u8]) -> Result<PsaEvent, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("webhook body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| InboundError::Malformed("webhook body is not a JSON object".to_owned()))?;
    let entity = get_ci(object, "EntityType")
        .and_then(Value::as_str)
        .ok_or_else(|| InboundError::Malformed("webhook has no EntityType".to_owned()))?;
    let id = get_ci(object, "Id")
        .and_then(lenient_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| InboundError::Malformed("webhook has no numeric Id".to_owned()))?;
    let (kind, ticket_id) = if entity.eq_ignore_ascii_case("Ticket") {
        ("ticket", id)
    } else if entity.eq_ignore_ascii_case("TicketNote") {
        let ticket = get_ci(object, "Fields")
            .and_then(Value::as_object)
            .and_then(|fields| get_ci(fields, "TicketID"))
            .and_then(lenient_i64)
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                InboundError::Malformed(
                    "TicketNote webhook without Fields.TicketID; make TicketID a display-always field of the webhook"
                        .to_owned(),
                )
            })?;
        ("ticketnote", ticket)
    } else {
        return Err(InboundError::Malformed(format!(
            "unsupported EntityType {:?}; only Ticket and TicketNote webhooks are handled",
            truncate_chars(entity, 40)
        )));
    };
    let marker = get_ci(object, "SequenceNumber")
        .and_then(lenient_i64)
        .map(|n| n.to_string())
        .or_else(|| {
            get_ci(object, "EventTime")
                .and_then(Value::as_str)
                .map(|t| truncate_chars(t.trim(), 64))
                .filter(|t| !t.is_empty())
        })
        .ok_or_else(|| {
            InboundError::Malformed("webhook has neither SequenceNumber nor EventTime".to_owned())
        })?;
    Ok(PsaEvent {
        ticket_id,
        event_id: format!("webhook:{kind}:{id}:{marker}"),
    })
}

fn positive_id(raw: &str) -> Result<i64, InboundError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            InboundError::Malformed(format!(
                "ticket id {:?} is not a positive number",
                truncate_chars(raw, 40)
            ))
        })
}

/// First value whose key matches one of `names` (case- and underscore-insensitive).
fn pair<'a>(pairs: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| {
        pairs
            .iter()
            .find(|(key, _)| {
                key.chars()
                    .filter(|c| *c != '_')
                    .map(|c| c.to_ascii_lowercase())
                    .eq(name.chars())
            })
            .map(|(_, value)| value.as_str())
    })
}

fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, InboundError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| InboundError::Malformed(format!("callout body is not form data: {e}")))
}

/// Scalars of the top-level object and of objects nested one level down
/// (some formats wrap the ticket, e.g. `{"ticket": {...}}`).
fn json_pairs(body: &[u8]) -> Result<Vec<(String, String)>, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("callout body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| InboundError::Malformed("callout body is not a JSON object".to_owned()))?;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (key, value) in object {
        if let Some(text) = scalar(value) {
            pairs.push((key.clone(), text));
        }
    }
    for value in object.values() {
        if let Some(inner) = value.as_object() {
            pairs.extend(
                inner
                    .iter()
                    .filter_map(|(k, v)| scalar(v).map(|text| (k.clone(), text))),
            );
        }
    }
    Ok(pairs)
}

/// Leaf elements `<Name>text</Name>` at any depth; enough for the flat ticket
/// documents callouts send, without pulling in an XML parser.
fn xml_pairs(body: &[u8]) -> Result<Vec<(String, String)>, InboundError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| InboundError::Malformed("callout XML is not UTF-8".to_owned()))?;
    let mut pairs = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if tag.starts_with(['/', '?', '!']) || tag.ends_with('/') {
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or_default();
        let Some(next) = rest.find('<') else { break };
        let end = format!("</{name}>");
        if !name.is_empty() && rest[next..].starts_with(&end) {
            let value = rest[..next]
                .trim()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            let local = name.rsplit(':').next().unwrap_or(name);
            pairs.push((local.to_owned(), value));
        }
    }
    if pairs.is_empty() {
        return Err(InboundError::Malformed(
            "callout XML has no fields".to_owned(),
        ));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn callout_credentials_accept_the_right_pair_only() {
        let password = Secret::new("s3cret:with:colons");
        let good = basic("callout-user", "s3cret:with:colons");
        assert_eq!(
            verify_callout_credentials("callout-user", &password, Some(&good)),
            Ok(())
        );
        // The scheme is case-insensitive per RFC 7617.
        let lower = good.replacen("Basic", "basic", 1);
        assert_eq!(
            verify_callout_credentials("callout-user", &password, Some(&lower)),
            Ok(())
        );
        for wrong in [
            basic("callout-user", "s3cret"),
            basic("other-user", "s3cret:with:colons"),
            basic("callout-user", ""),
            "Bearer abc".to_owned(),
            "Basic !!!not-base64!!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon-here")),
            "Basic".to_owned(),
        ] {
            assert_eq!(
                verify_callout_credentials("callout-user", &password, Some(&wrong)),
                Err(InboundError::BadCredentials),
                "{wrong}"
            );
        }
        assert_eq!(
            verify_callout_credentials("callout-user", &password, None),
            Err(InboundError::MissingHeader("Authorization"))
        );
    }

    #[test]
    fn unconfigured_callout_credentials_never_match() {
        let empty = Secret::default();
        assert_eq!(
            verify_callout_credentials("", &empty, Some(&basic("", ""))),
            Err(InboundError::BadCredentials)
        );
        assert_eq!(
            verify_callout_credentials("user", &empty, Some(&basic("user", ""))),
            Err(InboundError::BadCredentials)
        );
    }

    #[test]
    fn hook_signature_verifies_prefixed_and_bare_forms() {
        let secret = Secret::new("hook-secret-0123456789");
        let body = br#"{"Action":"Update","EntityType":"Ticket","Id":7}"#;
        let signed = sign("hook-secret-0123456789", body);
        assert_eq!(verify_hook_signature(&secret, Some(&signed), body), Ok(()));
        let bare = signed.trim_start_matches("sha1=");
        assert_eq!(verify_hook_signature(&secret, Some(bare), body), Ok(()));
        let upper = signed.replacen("sha1=", "SHA1=", 1);
        assert_eq!(verify_hook_signature(&secret, Some(&upper), body), Ok(()));
    }

    #[test]
    fn hook_signature_rejects_tampering_wrong_secret_and_garbage() {
        let secret = Secret::new("hook-secret-0123456789");
        let body = br#"{"Action":"Update","EntityType":"Ticket","Id":7}"#;
        let signed = sign("hook-secret-0123456789", body);
        let tampered = br#"{"Action":"Update","EntityType":"Ticket","Id":8}"#;
        assert_eq!(
            verify_hook_signature(&secret, Some(&signed), tampered),
            Err(InboundError::BadSignature)
        );
        let other = sign("another-secret", body);
        assert_eq!(
            verify_hook_signature(&secret, Some(&other), body),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_hook_signature(&secret, Some("sha1=%%%"), body),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_hook_signature(&Secret::default(), Some(&sign("", body)), body),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_hook_signature(&secret, None, body),
            Err(InboundError::MissingHeader("X-Hook-Signature"))
        );
    }

    #[test]
    fn callout_forms_json_and_xml_name_the_ticket() {
        let form = b"id=4711&TicketNumber=T20261123.0001&Status=8&LastActivityDate=2026-11-23T10%3A00%3A00.123Z";
        let event = parse_callout(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            form,
        )
        .unwrap();
        assert_eq!(event.ticket_id, 4711);
        assert_eq!(event.event_id, "callout:4711:2026-11-23T10:00:00.123Z");

        let with_ticket_id = b"TicketID=12&id=99";
        assert_eq!(
            parse_callout(Some("application/x-www-form-urlencoded"), with_ticket_id)
                .unwrap()
                .ticket_id,
            12
        );

        let json = br#"{"ticket":{"id":"31","title":"Printer"}}"#;
        assert_eq!(
            parse_callout(Some("application/json"), json)
                .unwrap()
                .ticket_id,
            31
        );
        let flat = br#"{"ticket_id": 32}"#;
        assert_eq!(parse_callout(None, flat).unwrap().ticket_id, 32);

        let xml = br#"<?xml version="1.0"?><Ticket><id>44</id><Title>A &amp; B</Title></Ticket>"#;
        assert_eq!(parse_callout(Some("text/xml"), xml).unwrap().ticket_id, 44);
        assert_eq!(parse_callout(None, xml).unwrap().ticket_id, 44);
    }

    #[test]
    fn callouts_without_a_time_get_a_body_digest_as_event_id() {
        let a = parse_callout(None, b"id=5&Status=1").unwrap();
        let again = parse_callout(None, b"id=5&Status=1").unwrap();
        let b = parse_callout(None, b"id=5&Status=8").unwrap();
        assert_eq!(a, again);
        assert_ne!(a.event_id, b.event_id);
        assert!(a.event_id.starts_with("callout:5:"));
    }

    #[test]
    fn malformed_callouts_say_why() {
        let cases: [(Option<&str>, &[u8], &str); 6] = [
            (None, b"", "empty"),
            (
                Some("application/x-www-form-urlencoded"),
                b"Title=x",
                "no ticket id",
            ),
            (
                Some("application/x-www-form-urlencoded"),
                b"id=abc",
                "not a positive number",
            ),
            (
                Some("application/x-www-form-urlencoded"),
                b"id=-3",
                "not a positive number",
            ),
            (Some("application/json"), b"{not json", "not JSON"),
            (Some("text/xml"), b"<a><b/></a>", "no fields"),
        ];
        for (content_type, body, expected) in cases {
            match parse_callout(content_type, body) {
                Err(InboundError::Malformed(reason)) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn ticket_webhooks_name_the_ticket_and_a_per_event_id() {
        let body = br#"{"Action":"Update","Guid":"a1da62a4-2c49-40a8-8183-69994ce5b3eb","EntityType":"Ticket","Id":351182,"Fields":{"TicketNumber":"T20250915.0002","Status":"5"},"EventTime":"2025-09-15T15:10:00Z","SequenceNumber":2,"PersonID":30691780}"#;
        let event = parse_webhook(body).unwrap();
        assert_eq!(event.ticket_id, 351182);
        assert_eq!(event.event_id, "webhook:ticket:351182:2");
        let next = br#"{"Action":"Update","Guid":"a1da62a4-2c49-40a8-8183-69994ce5b3eb","EntityType":"Ticket","Id":351182,"Fields":{},"EventTime":"2025-09-15T15:11:00Z","SequenceNumber":3}"#;
        assert_ne!(parse_webhook(next).unwrap().event_id, event.event_id);
    }

    #[test]
    fn note_webhooks_take_the_ticket_from_fields() {
        let numeric = br#"{"Action":"Create","Guid":"g","EntityType":"TicketNote","Id":900,"Fields":{"TicketID":351181},"EventTime":"2025-09-15T15:10:00Z","SequenceNumber":1}"#;
        let event = parse_webhook(numeric).unwrap();
        assert_eq!(event.ticket_id, 351181);
        assert_eq!(event.event_id, "webhook:ticketnote:900:1");
        let string = br#"{"EntityType":"TicketNote","Id":"901","Fields":{"ticketID":"351181"},"EventTime":"2025-09-15T15:10:00Z"}"#;
        let event = parse_webhook(string).unwrap();
        assert_eq!(event.ticket_id, 351181);
        assert_eq!(
            event.event_id,
            "webhook:ticketnote:901:2025-09-15T15:10:00Z"
        );
    }

    #[test]
    fn malformed_webhooks_say_why() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"Id":1,"SequenceNumber":1}"#, "EntityType"),
            (
                br#"{"EntityType":"Ticket","Id":"x","SequenceNumber":1}"#,
                "numeric Id",
            ),
            (
                br#"{"EntityType":"TicketNote","Id":3,"Fields":{},"SequenceNumber":1}"#,
                "TicketID",
            ),
            (
                br#"{"EntityType":"Company","Id":3,"SequenceNumber":1}"#,
                "unsupported EntityType",
            ),
            (br#"{"EntityType":"Ticket","Id":3}"#, "SequenceNumber"),
        ];
        for (body, expected) in cases {
            match parse_webhook(body) {
                Err(InboundError::Malformed(reason)) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_bodies_are_described_and_validation_500s_are_permanent() {
        let body =
            r#"{"errors":["Value does not reference an existing entity for status . ","second"]}"#;
        assert_eq!(
            describe(body).as_deref(),
            Some("Value does not reference an existing entity for status .; second")
        );
        assert_eq!(
            describe(r#"{"Message":"No HTTP resource"}"#).as_deref(),
            Some("No HTTP resource")
        );
        assert_eq!(describe("<html>"), None);

        let validation = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 500,
            message: "When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.".into(),
        });
        assert!(matches!(validation, ApiError::Rejected { status: 500, .. }));
        assert!(!validation.is_retryable());
        let outage = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 500,
            message: "Internal server error".into(),
        });
        assert!(outage.is_retryable());
        let gateway = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 503,
            message: "required maintenance".into(),
        });
        assert!(gateway.is_retryable(), "only 500 carries validation errors");
    }

    #[test]
    fn patch_bodies_carry_only_the_set_fields() {
        let body = patch_body(
            7,
            &PsaTicketPatch {
                status: Some(8),
                ..Default::default()
            },
        );
        assert_eq!(body, json!({ "id": 7, "status": 8 }));
        let body = patch_body(
            7,
            &PsaTicketPatch {
                title: Some("x".repeat(300)),
                priority: Some(1),
                company_id: Some(3),
                status: None,
            },
        );
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 4);
        assert_eq!(
            object["title"].as_str().unwrap().chars().count(),
            TICKET_TITLE_MAX
        );
        assert_eq!(object["companyID"], 3);
        assert!(!object.contains_key("status"));
    }

    #[test]
    fn create_body_names_the_autotask_fields() {
        let body = create_body(&NewPsaTicket {
            title: "Printer".into(),
            description: "It is on fire".into(),
            status: 1,
            priority: 2,
            company_id: 174,
            queue_id: None,
            external_id: "zd:42".into(),
        });
        assert_eq!(
            body,
            json!({"companyID":174,"title":"Printer","description":"It is on fire","status":1,"priority":2,"externalID":"zd:42"})
        );
    }

    fn fields(json: Value) -> Vec<FieldInfo> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn note_settings_follow_the_publish_picklist_and_default_to_internal() {
        let settings = NoteSettings::from_fields(&fields(json!([
            {"name":"publish","isPickList":true,"picklistValues":[
                {"value":"1","label":"All Autotask Users","isActive":true},
                {"value":"2","label":"Internal Project Team","isActive":true},
                {"value":"4","label":"Internal & Co-Managed","isActive":true}]},
            {"name":"noteType","isPickList":true,"picklistValues":[
                {"value":"13","label":"Workflow Rule Note","isActive":true},
                {"value":"3","label":"Task Notes","isActive":true,"isDefaultValue":true}]}
        ])));
        assert_eq!(settings.publish_for(Visibility::Public), 1);
        assert_eq!(settings.publish_for(Visibility::Internal), 2);
        assert_eq!(settings.note_type, 3);
        assert_eq!(settings.visibility(Some(1)), Visibility::Public);
        assert_eq!(settings.visibility(Some(4)), Visibility::Internal);
        assert_eq!(settings.visibility(Some(77)), Visibility::Internal);
        assert_eq!(settings.visibility(None), Visibility::Internal);

        let fallback = NoteSettings::from_fields(&[]);
        assert_eq!(
            (
                fallback.public_value,
                fallback.internal_value,
                fallback.note_type
            ),
            (1, 2, 1)
        );
    }

    #[test]
    fn picklist_values_read_strings_and_numbers() {
        let parsed = fields(json!([{"name":"status","isPickList":true,"picklistValues":[
            {"value":"5","label":"Complete","isActive":true},
            {"value":8,"label":"In Progress"},
            {"value":"x","label":"Broken"}]}]));
        let values: Vec<Option<i64>> = picklist_of(&parsed, "STATUS")
            .unwrap()
            .iter()
            .map(|v| v.numeric())
            .collect();
        assert_eq!(values, vec![Some(5), Some(8), None]);
        assert!(picklist_of(&parsed, "priority").is_none());
    }

    #[test]
    fn autotask_times_parse_with_and_without_offsets() {
        assert!(parse_time("2018-01-23T11:00:00.00Z").is_some());
        assert_eq!(
            parse_time("2018-01-23T11:00:00.5"),
            parse_time("2018-01-23T11:00:00.5Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn empty_note_titles_fall_back_to_the_first_line() {
        let note = NewPsaNote {
            title: "  ".into(),
            description: "\n  First line\nsecond".into(),
            visibility: Visibility::Public,
        };
        assert_eq!(note_title(&note), "First line");
    }
}

/// The fields of a `Resources` entity the bridge reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResource {
    first_name: Option<String>,
    last_name: Option<String>,
}

impl WireResource {
    fn display_name(self) -> Option<String> {
        let name = [self.first_name, self.last_name]
            .into_iter()
            .flatten()
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    }
}
