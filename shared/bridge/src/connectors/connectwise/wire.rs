//! ConnectWise PSA's wire format (REST `apis/3.0`): where the API lives for a
//! configured site, the JSON the bridge sends and reads, `conditions`
//! quoting, `Link` paging headers and error bodies. Only the client
//! (`super`) and the callback checks (`super::inbound`) use these.
//!
//! Contract notes that shape this code (fact sheet `connectwise-psa.md`):
//! - Cloud sites (`na.myconnectwise.net`, …) are served by the `api-` host of
//!   the same domain; the path starts with the tenant's codebase
//!   (`v2025_1/`), which `login/companyinfo/{company}` names.
//! - PATCH takes a JSON array of `{op, path, value}`; references are replaced
//!   as whole `{"id": n}` objects (nested paths are reported to give false 200s).
//! - `conditions` strings are double-quoted, datetimes in square brackets.
//! - Lists page by the `Link` header (`rel="next"`), at most 1,000 records.
//! - Errors come as `{"code", "message", "errors": [{"code", "message", "field"}]}`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::SYSTEM;
use crate::error::ApiError;
use crate::model::{NewPsaNote, NewPsaTicket, PsaNote, PsaTicket, PsaTicketPatch, Visibility};

/// `summary` is at most 100 characters; ConnectWise refuses longer ones.
pub const SUMMARY_MAX: usize = 100;
/// `externalXRef` is at most 100 characters.
pub const EXTERNAL_XREF_MAX: usize = 100;
/// A callback's `description` is at most 100 characters.
pub const CALLBACK_DESCRIPTION_MAX: usize = 100;
/// ConnectWise's hard page-size limit.
pub const PAGE_SIZE_MAX: u32 = 1000;

/// The first line of a note the bridge wrote for a Zendesk comment starts
/// with this (`sync::markers::note_title_for`); ConnectWise notes have no
/// title, so the bridge folds it into the text and unfolds it on reading.
pub const ECHO_TITLE_PREFIX: &str = "Zendesk comment #";

/// Domains of ConnectWise's cloud; their browser host `x.domain` is served
/// by the API host `api-x.domain`.
const CLOUD_DOMAINS: &[&str] = &["myconnectwise.net", "connectwisedev.com"];
/// Cloud regions the fact sheet lists; another label still works (the
/// `api-` rule is the same) but is logged.
const KNOWN_REGIONS: &[&str] = &[
    "na",
    "eu",
    "au",
    "aus",
    "za",
    "staging",
    "sandbox-na",
    "sandbox-eu",
    "sandbox-au",
];

/// The first `max` characters of `text` (never splitting a character).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// A member of an object by name, ignoring ASCII case (callback bodies and
/// companyinfo capitalise keys; sources disagree on the exact casing).
pub(super) fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// An integer sent as a number or as a numeric string.
pub(super) fn lenient_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Where the API lives
// ---------------------------------------------------------------------------

/// What the configured site says about where ConnectWise answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOrigins {
    /// `scheme://host[:port]` of the configured site, as given.
    pub site: String,
    /// `scheme://host[:port]` the API is called on.
    pub api: String,
    /// Whether the site is on ConnectWise's cloud.
    pub cloud: bool,
}

/// Finds the API origin for a configured site: a cloud site's browser host
/// maps to its `api-` host (always HTTPS: cloud requires it), a site already
/// on an `api-` host is kept, anything else (on-premise, a loopback sandbox)
/// is used as it is. Only the origin of `site` counts; a path is ignored.
pub fn site_origins(site: &str) -> Result<SiteOrigins, String> {
    let parsed = url::Url::parse(site.trim())
        .map_err(|e| format!("connectwise.site {site:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!(
            "connectwise.site {site:?} must start with https:// (it has scheme {:?})",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("connectwise.site must not carry a user name or password".to_owned());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("connectwise.site {site:?} names no host"))?
        .to_ascii_lowercase();
    let site_origin = parsed.origin().ascii_serialization();
    match cloud_hosts(&host) {
        Some((_, api_host)) => {
            if parsed.scheme() != "https" {
                tracing::info!(
                    site,
                    "connectwise cloud site given with http; the API is called over https"
                );
            }
            Ok(SiteOrigins {
                site: site_origin,
                api: format!("https://{api_host}"),
                cloud: true,
            })
        }
        None => Ok(SiteOrigins {
            api: site_origin.clone(),
            site: site_origin,
            cloud: false,
        }),
    }
}

/// For a host on ConnectWise's cloud, its browser host and its API host
/// (`na.myconnectwise.net`, `api-na.myconnectwise.net`); `None` elsewhere.
pub(super) fn cloud_hosts(host: &str) -> Option<(String, String)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = CLOUD_DOMAINS.iter().find(|d| {
        host.strip_suffix(*d)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    })?;
    let label = &host[..host.len() - domain.len() - 1];
    let region = label.strip_prefix("api-").unwrap_or(label);
    if region.is_empty() {
        return None;
    }
    if !KNOWN_REGIONS.contains(&region) {
        tracing::info!(
            region,
            "connectwise cloud region not in the known list; using its api- host"
        );
    }
    Some((
        format!("{region}.{domain}"),
        format!("api-{region}.{domain}"),
    ))
}

/// The `Codebase` of a `login/companyinfo/{company}` answer: `Ok(None)` for
/// the JSON `null` ConnectWise answers for an unknown company; the codebase
/// normalised to end in exactly one `/`.
pub(super) fn codebase_of(body: &[u8]) -> Result<Option<String>, ApiError> {
    let malformed = |message: String| ApiError::Malformed {
        system: SYSTEM,
        message,
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("company information: {e}")))?;
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        _ => return Err(malformed("company information is not an object".to_owned())),
    };
    let raw = get_ci(&object, "Codebase")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| malformed("company information names no Codebase".to_owned()))?;
    let trimmed = raw.trim_matches('/');
    // The codebase becomes part of every URL path; anything beyond a plain
    // path segment would let the answer steer requests elsewhere.
    let plain = !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && trimmed != "."
        && trimmed != "..";
    if !plain {
        return Err(malformed(format!(
            "company information names an unusable Codebase {raw:?}"
        )));
    }
    let field = |name: &str| get_ci(&object, name).and_then(|v| v.as_str()).unwrap_or("");
    let is_cloud = get_ci(&object, "IsCloud").and_then(|v| v.as_bool());
    tracing::debug!(
        company_name = field("CompanyName"),
        version = field("VersionCode"),
        is_cloud,
        "connectwise company information read"
    );
    Ok(Some(format!("{trimmed}/")))
}

// ---------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------

/// A string literal of the `conditions` language: double quotes, with `\`
/// and `"` escaped, so a value can never close the literal and add clauses.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A datetime literal of the `conditions` language: `[2025-01-01T00:00:00Z]`.
pub fn datetime_literal(at: DateTime<Utc>) -> String {
    format!("[{}]", at.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// `field = "value"`.
pub fn eq_condition(field: &str, value: &str) -> String {
    format!("{field} = {}", quote(value))
}

/// Active configurations whose name, serial number or tag number is `reference`.
pub(super) fn configuration_condition(reference: &str) -> String {
    let quoted = quote(reference);
    format!(
        "(name = {quoted} or serialNumber = {quoted} or tagNumber = {quoted}) and activeFlag = true"
    )
}

/// Tickets changed after `since`.
pub(super) fn changed_since_condition(since: DateTime<Utc>) -> String {
    format!("lastUpdated > {}", datetime_literal(since))
}

// ---------------------------------------------------------------------------
// Link headers
// ---------------------------------------------------------------------------

/// The `rel="next"` target of a `Link` header (RFC 8288:
/// `<url>; rel="next", <url>; rel="last"`), as written (maybe relative).
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = after[..close].trim();
        let params_end = after[close + 1..]
            .find('<')
            .map_or(after.len(), |at| close + 1 + at);
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
    None
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// `{"id": n}`: how ConnectWise takes a reference.
fn reference(id: i64) -> Value {
    json!({ "id": id })
}

/// The body of `POST service/tickets`. `board` is the ticket's board, or
/// the tenant's when the ticket names none.
pub(super) fn create_body(ticket: &NewPsaTicket, board: Option<i64>) -> Value {
    let mut body = json!({
        "summary": truncate(ticket.title.trim(), SUMMARY_MAX),
        "company": reference(ticket.company_id),
        "status": reference(ticket.status),
        "priority": reference(ticket.priority),
        "externalXRef": truncate(&ticket.external_id, EXTERNAL_XREF_MAX),
    });
    if let Some(board) = board {
        body["board"] = reference(board);
    }
    // Never echoed back; it becomes the ticket's first Discussion note.
    if !ticket.description.trim().is_empty() {
        body["initialDescription"] = json!(initial_description(
            &ticket.description,
            &ticket.external_id
        ));
    }
    body
}

/// How the last line of the bridge's `initialDescription` begins.
/// ConnectWise keeps the description as the ticket's first Discussion note;
/// in Zendesk it is the first comment already, so that note must never be
/// mirrored back. The mark tells it apart from a technician's note.
const DESCRIPTION_MARK: &str = "— description of Zendesk ticket #";

/// The description as sent at create, with the mark on its last line.
pub(super) fn initial_description(description: &str, external_id: &str) -> String {
    let desk_id = external_id.strip_prefix("zendesk:").unwrap_or(external_id);
    format!("{description}\n\n{DESCRIPTION_MARK}{desk_id}")
}

/// Whether a note is the description the bridge created the ticket with.
pub(super) fn is_description_note(text: &str) -> bool {
    text.trim_end()
        .rsplit('\n')
        .next()
        .and_then(|last| last.trim().strip_prefix(DESCRIPTION_MARK))
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
}

/// The PATCH operations of `patch`: only the set fields, references as whole
/// objects.
pub(super) fn patch_ops(patch: &PsaTicketPatch) -> Vec<Value> {
    let replace = |path: &str, value: Value| json!({"op": "replace", "path": path, "value": value});
    let mut ops = Vec::new();
    if let Some(title) = &patch.title {
        ops.push(replace(
            "summary",
            json!(truncate(title.trim(), SUMMARY_MAX)),
        ));
    }
    if let Some(status) = patch.status {
        ops.push(replace("status", reference(status)));
    }
    if let Some(priority) = patch.priority {
        ops.push(replace("priority", reference(priority)));
    }
    if let Some(company) = patch.company_id {
        ops.push(replace("company", reference(company)));
    }
    ops
}

/// A note's text: ConnectWise notes have no title, so the title goes on the
/// first line, a blank line before the body.
pub(super) fn note_text(note: &NewPsaNote) -> String {
    let title = note.title.trim();
    if title.is_empty() {
        note.description.clone()
    } else {
        format!("{title}\n\n{}", note.description)
    }
}

/// The body of `POST service/tickets/{id}/notes`. The flags are what makes
/// a note customer-facing (Discussion) or internal (Internal Analysis).
pub(super) fn note_body(note: &NewPsaNote) -> Value {
    let public = note.visibility == Visibility::Public;
    json!({
        "text": note_text(note),
        "detailDescriptionFlag": public,
        "internalAnalysisFlag": !public,
        "resolutionFlag": false,
    })
}

/// A note's text split back into the bridge's title and body: only a text
/// whose first line is the bridge's echo marker has a title.
pub(super) fn split_note_text(text: &str) -> (Option<String>, String) {
    let (first, rest) = match text.split_once('\n') {
        Some((first, rest)) => (first.trim_end_matches('\r'), Some(rest)),
        None => (text, None),
    };
    if !first.starts_with(ECHO_TITLE_PREFIX) {
        return (None, text.to_owned());
    }
    let body = rest
        .map(|rest| {
            rest.strip_prefix("\r\n")
                .or_else(|| rest.strip_prefix('\n'))
                .unwrap_or(rest)
        })
        .unwrap_or("");
    (Some(first.to_owned()), body.to_owned())
}

/// The body of `POST system/callbacks`: every ticket of the company
/// (`owner` level, object 1), delivered to `url`.
pub(super) fn callback_body(url: &str, description: &str) -> Value {
    json!({
        "url": url,
        "objectId": 1,
        "type": "ticket",
        "level": "owner",
        "description": truncate(description, CALLBACK_DESCRIPTION_MAX),
        "inactiveFlag": false,
    })
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// ConnectWise's own message: the top-level `message` plus each inner error
/// (`field: message`), or the bare `code` when nothing else is said.
pub fn describe(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let object = value.as_object()?;
    let mut parts = Vec::new();
    if let Some(message) = get_ci(object, "message").and_then(Value::as_str) {
        let message = message.trim();
        if !message.is_empty() {
            parts.push(message.to_owned());
        }
    }
    if let Some(errors) = get_ci(object, "errors").and_then(Value::as_array) {
        for error in errors {
            let text = match error {
                Value::String(s) => s.trim().to_owned(),
                Value::Object(o) => {
                    let message = get_ci(o, "message")
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .unwrap_or("");
                    match get_ci(o, "field").and_then(Value::as_str) {
                        Some(field) if !field.is_empty() && !message.is_empty() => {
                            format!("{field}: {message}")
                        }
                        _ if !message.is_empty() => message.to_owned(),
                        _ => get_ci(o, "code")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    }
                }
                _ => String::new(),
            };
            if !text.is_empty() {
                parts.push(text);
            }
        }
    }
    if parts.is_empty() {
        if let Some(code) = get_ci(object, "code").and_then(Value::as_str) {
            parts.push(code.trim().to_owned());
        }
    }
    parts.retain(|p| !p.is_empty());
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A reference to another record (`{id, name}` or `{id, identifier, name}`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Ref {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(super) id: Option<i64>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) identifier: Option<String>,
}

fn ref_id(reference: &Option<Ref>) -> Option<i64> {
    reference.as_ref().and_then(|r| r.id)
}

/// The `_info` map; only `lastUpdated` is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Info {
    #[serde(rename = "lastUpdated", default, deserialize_with = "lenient_time")]
    pub(super) last_updated: Option<DateTime<Utc>>,
}

/// When a record last changed: `_info.lastUpdated` (the fact sheet's M
/// source), else a top-level `lastUpdated`, which is logged so that the
/// form real tenants send becomes known.
fn last_updated(
    info: Option<&Info>,
    top_level: Option<DateTime<Utc>>,
    id: i64,
) -> Option<DateTime<Utc>> {
    info.and_then(|i| i.last_updated).or_else(|| {
        if top_level.is_some() {
            tracing::info!(
                id,
                form = "top_level",
                "connectwise lastUpdated read outside _info"
            );
        }
        top_level
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct WireTicket {
    pub(super) id: i64,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    status: Option<Ref>,
    #[serde(default)]
    priority: Option<Ref>,
    #[serde(default)]
    company: Option<Ref>,
    #[serde(default)]
    board: Option<Ref>,
    #[serde(rename = "externalXRef", default)]
    external_x_ref: Option<String>,
    #[serde(rename = "_info", default)]
    info: Option<Info>,
    #[serde(rename = "lastUpdated", default, deserialize_with = "lenient_time")]
    last_updated: Option<DateTime<Utc>>,
}

impl WireTicket {
    pub(super) fn into_model(self) -> Result<PsaTicket, ApiError> {
        let missing = |field: &str| ApiError::Malformed {
            system: SYSTEM,
            message: format!("ticket {} has no {field}", self.id),
        };
        Ok(PsaTicket {
            id: self.id,
            ticket_number: None,
            title: self.summary.clone().unwrap_or_default(),
            description: None,
            status: ref_id(&self.status).ok_or_else(|| missing("status"))?,
            priority: ref_id(&self.priority).ok_or_else(|| missing("priority"))?,
            company_id: ref_id(&self.company).ok_or_else(|| missing("company"))?,
            queue_id: ref_id(&self.board),
            external_id: self.external_x_ref.clone().filter(|x| !x.is_empty()),
            last_activity: last_updated(self.info.as_ref(), self.last_updated, self.id),
        })
    }
}

/// A ticket of the change query: only the fields it asks for.
#[derive(Debug, Deserialize)]
pub(super) struct ChangedTicket {
    id: i64,
    #[serde(rename = "_info", default)]
    info: Option<Info>,
    #[serde(rename = "lastUpdated", default, deserialize_with = "lenient_time")]
    last_updated: Option<DateTime<Utc>>,
}

impl ChangedTicket {
    pub(super) fn into_change(self) -> Result<(i64, DateTime<Utc>), ApiError> {
        let at = last_updated(self.info.as_ref(), self.last_updated, self.id).ok_or_else(|| {
            ApiError::Malformed {
                system: SYSTEM,
                message: format!("changed ticket {} has no _info.lastUpdated", self.id),
            }
        })?;
        Ok((self.id, at))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireNote {
    id: i64,
    #[serde(default)]
    ticket_id: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    detail_description_flag: Option<bool>,
    #[serde(default)]
    external_flag: Option<bool>,
    #[serde(default)]
    resolution_flag: Option<bool>,
    #[serde(default)]
    member: Option<Ref>,
    #[serde(default, deserialize_with = "lenient_time")]
    date_created: Option<DateTime<Utc>>,
}

impl WireNote {
    /// The description the bridge created the ticket with.
    pub(super) fn is_description(&self) -> bool {
        is_description_note(self.text.as_deref().unwrap_or(""))
    }

    /// Only a Discussion note is public: an unknown combination must never
    /// publish an internal note. `externalFlag` is derived by ConnectWise
    /// (for Resolution notes too, as far as can be told), so it counts only
    /// when the Discussion flag itself is missing and the note is not a
    /// Resolution note.
    pub(super) fn into_model(self, ticket_id: i64) -> PsaNote {
        let public = match self.detail_description_flag {
            Some(discussion) => discussion,
            None => self.external_flag == Some(true) && self.resolution_flag != Some(true),
        };
        let (title, description) = split_note_text(self.text.as_deref().unwrap_or(""));
        PsaNote {
            id: self.id,
            ticket_id: self.ticket_id.unwrap_or(ticket_id),
            title,
            description,
            visibility: if public {
                Visibility::Public
            } else {
                Visibility::Internal
            },
            creator_resource_id: ref_id(&self.member),
            creator_name: self
                .member
                .and_then(|m| m.name.or(m.identifier))
                .filter(|n| !n.trim().is_empty()),
            created_at: self.date_created,
        }
    }
}

/// A created record: only its id is read.
#[derive(Debug, Deserialize)]
pub(super) struct Created {
    pub(super) id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMember {
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

impl WireMember {
    /// "First Last"; the identifier when the member has no name.
    pub(super) fn display_name(self) -> Option<String> {
        let name = [self.first_name, self.last_name]
            .into_iter()
            .flatten()
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() {
            self.identifier.filter(|i| !i.trim().is_empty())
        } else {
            Some(name)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireConfiguration {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) company: Option<Ref>,
}

impl WireConfiguration {
    pub(super) fn company_id(&self) -> Option<i64> {
        ref_id(&self.company)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireBoard {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) inactive_flag: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireBoardStatus {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) inactive: Option<bool>,
    #[serde(default)]
    pub(super) closed_status: Option<bool>,
    #[serde(default)]
    pub(super) default_flag: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireTeam {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) default_flag: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WirePriority {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireCompany {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) identifier: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// A registered callback.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireCallback {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) url: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    pub(super) object_id: Option<i64>,
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) level: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) inactive_flag: Option<bool>,
}

impl WireCallback {
    /// Whether the callback points at `url` (ignoring a trailing slash).
    pub(super) fn points_at(&self, url: &str) -> bool {
        self.url
            .as_deref()
            .is_some_and(|u| u.trim().trim_end_matches('/') == url.trim().trim_end_matches('/'))
    }

    /// Whether it is exactly the callback [`callback_body`] registers. Type
    /// and level are compared ignoring case: the docs capitalise them,
    /// clients send them in lower case.
    pub(super) fn is_wanted(&self, url: &str, description: &str) -> bool {
        self.points_at(url)
            && self
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("ticket"))
            && self
                .level
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case("owner"))
            && self.object_id == Some(1)
            && self.inactive_flag != Some(true)
            && self.description.as_deref().unwrap_or("").trim()
                == truncate(description, CALLBACK_DESCRIPTION_MAX).trim()
    }
}

/// The body of `GET {key_url}`.
#[derive(Debug, Deserialize)]
pub(super) struct SigningKeyBody {
    #[serde(default)]
    pub(super) signing_key: Option<String>,
}

fn lenient_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.as_ref().and_then(lenient_i64))
}

/// Parses ConnectWise datetimes (`2025-01-01T00:00:00Z`), tolerating a
/// missing offset (UTC) and fractional seconds.
pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

fn lenient_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.as_deref().and_then(parse_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_sites_map_to_their_api_host_and_other_origins_stay() {
        let cases = [
            (
                "https://na.myconnectwise.net",
                "https://api-na.myconnectwise.net",
                true,
            ),
            (
                "https://eu.myconnectwise.net/v4_6_release/ConnectWise.aspx",
                "https://api-eu.myconnectwise.net",
                true,
            ),
            (
                "https://aus.myconnectwise.net",
                "https://api-aus.myconnectwise.net",
                true,
            ),
            (
                "https://za.myconnectwise.net/",
                "https://api-za.myconnectwise.net",
                true,
            ),
            (
                "https://staging.connectwisedev.com",
                "https://api-staging.connectwisedev.com",
                true,
            ),
            (
                "https://api-au.myconnectwise.net",
                "https://api-au.myconnectwise.net",
                true,
            ),
            (
                "http://NA.myconnectwise.net",
                "https://api-na.myconnectwise.net",
                true,
            ),
            ("https://cw.example.com", "https://cw.example.com", false),
            (
                "https://cw.example.com:8443/x",
                "https://cw.example.com:8443",
                false,
            ),
            ("http://127.0.0.1:39111", "http://127.0.0.1:39111", false),
            // Not the cloud domain, only a look-alike.
            (
                "https://na.myconnectwise.net.evil.example",
                "https://na.myconnectwise.net.evil.example",
                false,
            ),
            (
                "https://evilmyconnectwise.net",
                "https://evilmyconnectwise.net",
                false,
            ),
        ];
        for (site, api, cloud) in cases {
            let origins = site_origins(site).unwrap();
            assert_eq!(origins.api, api, "{site}");
            assert_eq!(origins.cloud, cloud, "{site}");
        }
        assert!(site_origins("ftp://na.myconnectwise.net").is_err());
        assert!(site_origins("na.myconnectwise.net").is_err());
        assert!(site_origins("https://user:pw@cw.example.com").is_err());
    }

    #[test]
    fn companyinfo_gives_the_codebase_or_none_for_an_unknown_company() {
        let body = br#"{"CompanyName":"Acme MSP","Codebase":"v2025_1/","VersionCode":"v2025.1","CompanyID":"acme","IsCloud":true}"#;
        assert_eq!(codebase_of(body).unwrap().as_deref(), Some("v2025_1/"));
        assert_eq!(
            codebase_of(br#"{"codebase":"/v4_6_release"}"#)
                .unwrap()
                .as_deref(),
            Some("v4_6_release/")
        );
        assert_eq!(codebase_of(b"null").unwrap(), None);
        for bad in [
            &br#"{"Codebase":""}"#[..],
            br#"{"Codebase":"../x/"}"#,
            br#"{"Codebase":"a/b/"}"#,
            br#"{"Codebase":"v1?x="}"#,
            br#"{"CompanyName":"x"}"#,
            b"[1]",
            b"<html>",
        ] {
            assert!(
                matches!(codebase_of(bad), Err(ApiError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn condition_strings_are_quoted_so_values_cannot_add_clauses() {
        assert_eq!(quote("zendesk:12"), r#""zendesk:12""#);
        assert_eq!(quote(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote(r"a\b"), r#""a\\b""#);
        assert_eq!(
            quote(r#"x\" or id > 0 or name = \""#),
            r#""x\\\" or id > 0 or name = \\\"""#
        );
        assert_eq!(
            eq_condition("externalXRef", "zendesk:7"),
            r#"externalXRef = "zendesk:7""#
        );
        assert_eq!(
            configuration_condition("SN\"1"),
            r#"(name = "SN\"1" or serialNumber = "SN\"1" or tagNumber = "SN\"1") and activeFlag = true"#
        );
        let at = DateTime::parse_from_rfc3339("2025-03-04T05:06:07.891Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            changed_since_condition(at),
            "lastUpdated > [2025-03-04T05:06:07Z]"
        );
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let navigable = r#"<https://api-na.myconnectwise.net/v4_6_release/apis/3.0/service/tickets?pageSize=1000&page=2>; rel="next", <https://api-na.myconnectwise.net/v4_6_release/apis/3.0/service/tickets?pageSize=1000&page=5>; rel="last""#;
        assert_eq!(
            next_link(navigable).as_deref(),
            Some("https://api-na.myconnectwise.net/v4_6_release/apis/3.0/service/tickets?pageSize=1000&page=2")
        );
        let last_page = r#"<https://h/x?page=1>; rel="first", <https://h/x?page=4>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(
            next_link("<https://h/x?pageId=9&a=b,c>;rel=next").as_deref(),
            Some("https://h/x?pageId=9&a=b,c")
        );
        assert_eq!(
            next_link(r#"<https://h/p?page=1>; rel="prev", </rel?page=3>; title="x"; REL="Next""#)
                .as_deref(),
            Some("/rel?page=3")
        );
        assert_eq!(
            next_link(r#"<https://h/a>; rel="prev next""#).as_deref(),
            Some("https://h/a")
        );
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("<https://h/a"), None);
        assert_eq!(next_link(r#"<>; rel="next""#), None);
    }

    #[test]
    fn create_body_carries_every_field_and_cuts_the_summary() {
        let ticket = NewPsaTicket {
            title: "é".repeat(150),
            description: "User reports".into(),
            status: 16,
            priority: 4,
            company_id: 250,
            queue_id: Some(1),
            external_id: "zendesk:1234".into(),
            configuration_item_id: None,
        };
        let body = create_body(&ticket, ticket.queue_id);
        assert_eq!(body["summary"].as_str().unwrap().chars().count(), 100);
        assert_eq!(body["company"], json!({"id": 250}));
        assert_eq!(body["board"], json!({"id": 1}));
        assert_eq!(body["status"], json!({"id": 16}));
        assert_eq!(body["priority"], json!({"id": 4}));
        assert_eq!(body["externalXRef"], "zendesk:1234");
        assert_eq!(
            body["initialDescription"],
            "User reports\n\n— description of Zendesk ticket #1234"
        );
        assert!(is_description_note(
            body["initialDescription"].as_str().unwrap()
        ));
        assert!(!is_description_note("User reports"));
        assert!(!is_description_note(
            "— description of Zendesk ticket #12 is what I meant\nthanks"
        ));
        assert!(body.get("processNotifications").is_none());

        let bare = NewPsaTicket {
            description: "  ".into(),
            queue_id: None,
            ..ticket
        };
        let body = create_body(&bare, None);
        assert!(body.get("initialDescription").is_none());
        assert!(body.get("board").is_none());
    }

    #[test]
    fn patches_are_operation_arrays_with_whole_references() {
        let patch = PsaTicketPatch {
            title: Some("x".repeat(120)),
            status: Some(42),
            priority: Some(3),
            company_id: Some(7),
            configuration_item_id: None,
        };
        let ops = patch_ops(&patch);
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0]["op"], "replace");
        assert_eq!(ops[0]["path"], "summary");
        assert_eq!(ops[0]["value"].as_str().unwrap().len(), 100);
        assert_eq!(
            ops[1],
            json!({"op": "replace", "path": "status", "value": {"id": 42}})
        );
        assert_eq!(ops[2]["value"], json!({"id": 3}));
        assert_eq!(ops[3]["path"], "company");
        assert!(patch_ops(&PsaTicketPatch::default()).is_empty());
    }

    #[test]
    fn note_titles_fold_into_the_text_and_come_back_only_for_echo_markers() {
        let note = NewPsaNote {
            title: "Zendesk comment #42 by Ann".into(),
            description: "Hello\n\nSecond paragraph".into(),
            visibility: Visibility::Internal,
        };
        let text = note_text(&note);
        assert_eq!(
            text,
            "Zendesk comment #42 by Ann\n\nHello\n\nSecond paragraph"
        );
        assert_eq!(
            split_note_text(&text),
            (
                Some("Zendesk comment #42 by Ann".to_owned()),
                "Hello\n\nSecond paragraph".to_owned()
            )
        );
        let body = note_body(&note);
        assert_eq!(body["detailDescriptionFlag"], false);
        assert_eq!(body["internalAnalysisFlag"], true);
        assert_eq!(body["resolutionFlag"], false);

        let untitled = NewPsaNote {
            title: " ".into(),
            description: "Just text".into(),
            visibility: Visibility::Public,
        };
        assert_eq!(note_text(&untitled), "Just text");
        assert_eq!(note_body(&untitled)["detailDescriptionFlag"], true);

        assert_eq!(
            split_note_text("Zendesk comment #1 by B\r\n\r\nbody"),
            (
                Some("Zendesk comment #1 by B".to_owned()),
                "body".to_owned()
            )
        );
        assert_eq!(
            split_note_text("Zendesk comment #1 by B"),
            (Some("Zendesk comment #1 by B".to_owned()), String::new())
        );
        assert_eq!(
            split_note_text("Customer called\n\nabout the printer"),
            (None, "Customer called\n\nabout the printer".to_owned())
        );
    }

    #[test]
    fn notes_are_public_only_when_flagged_as_discussion_or_external() {
        let read = |flags: Value| {
            let mut note = json!({"id": 5, "ticketId": 9, "text": "t",
                "member": {"id": 3, "identifier": "jdoe", "name": "Jane Doe"},
                "dateCreated": "2025-01-02T03:04:05Z"});
            note.as_object_mut()
                .unwrap()
                .extend(flags.as_object().unwrap().clone());
            serde_json::from_value::<WireNote>(note)
                .unwrap()
                .into_model(9)
        };
        assert_eq!(
            read(json!({"detailDescriptionFlag": true})).visibility,
            Visibility::Public
        );
        assert_eq!(
            read(json!({"externalFlag": true})).visibility,
            Visibility::Public
        );
        assert_eq!(
            read(json!({"internalAnalysisFlag": true})).visibility,
            Visibility::Internal
        );
        assert_eq!(
            read(json!({"resolutionFlag": true})).visibility,
            Visibility::Internal
        );
        assert_eq!(read(json!({})).visibility, Visibility::Internal);
        // The derived externalFlag of a Resolution note does not publish it.
        assert_eq!(
            read(json!({"detailDescriptionFlag": false, "resolutionFlag": true, "externalFlag": true}))
                .visibility,
            Visibility::Internal
        );
        assert_eq!(
            read(json!({"resolutionFlag": true, "externalFlag": true})).visibility,
            Visibility::Internal
        );
        let note = read(json!({"detailDescriptionFlag": false, "internalAnalysisFlag": true}));
        assert_eq!(note.creator_resource_id, Some(3));
        assert_eq!(note.creator_name.as_deref(), Some("Jane Doe"));
        assert_eq!(
            note.created_at.unwrap().to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
        assert_eq!(note.title, None);
        assert_eq!(note.description, "t");
    }

    #[test]
    fn tickets_read_their_references_and_last_update() {
        let ticket: WireTicket = serde_json::from_value(json!({
            "id": 5001, "summary": "Printer offline",
            "board": {"id": 1, "name": "Help Desk"},
            "status": {"id": 16, "name": "New"},
            "priority": {"id": 4, "name": "Priority 3 - Normal"},
            "company": {"id": 250, "identifier": "acme", "name": "Acme"},
            "externalXRef": "zendesk:1234",
            "_info": {"lastUpdated": "2025-01-01T10:00:00Z", "updatedBy": "apibridge"},
            "recordType": "ServiceTicket"
        }))
        .unwrap();
        let model = ticket.into_model().unwrap();
        assert_eq!(model.title, "Printer offline");
        assert_eq!(
            (model.status, model.priority, model.company_id),
            (16, 4, 250)
        );
        assert_eq!(model.queue_id, Some(1));
        assert_eq!(model.external_id.as_deref(), Some("zendesk:1234"));
        assert_eq!(
            model.last_activity.unwrap().to_rfc3339(),
            "2025-01-01T10:00:00+00:00"
        );
        assert_eq!(model.ticket_number, None);
        assert_eq!(model.description, None);

        let partial: WireTicket = serde_json::from_value(
            json!({"id": 1, "status": {"id": 1}, "priority": {"id": 2}, "externalXRef": ""}),
        )
        .unwrap();
        let err = partial.into_model().unwrap_err();
        assert!(err.to_string().contains("has no company"), "{err}");

        let changed: ChangedTicket = serde_json::from_value(
            json!({"id": 3, "_info": {"lastUpdated": "2025-01-01T10:00:00"}}),
        )
        .unwrap();
        assert_eq!(changed.into_change().unwrap().0, 3);
        let top_level: ChangedTicket =
            serde_json::from_value(json!({"id": 4, "lastUpdated": "2025-01-01T10:00:00Z"}))
                .unwrap();
        assert_eq!(top_level.into_change().unwrap().0, 4);
        let undated: ChangedTicket = serde_json::from_value(json!({"id": 3})).unwrap();
        assert!(undated.into_change().is_err());
    }

    #[test]
    fn error_bodies_keep_connectwise_words() {
        let body = r#"{"code":"InvalidObject","message":"configuration object is invalid",
            "errors":[{"code":"MissingRequiredField","message":"id or deviceIdentifier is required.",
            "resource":"configuration","field":"id"}]}"#;
        assert_eq!(
            describe(body).as_deref(),
            Some("configuration object is invalid; id: id or deviceIdentifier is required.")
        );
        assert_eq!(
            describe(r#"{"code":"ConnectWiseApi","message":"UserNotAuthenticated"}"#).as_deref(),
            Some("UserNotAuthenticated")
        );
        assert_eq!(
            describe(r#"{"code":"ObjectExists"}"#).as_deref(),
            Some("ObjectExists")
        );
        assert_eq!(
            describe(r#"{"errors":["Rate limit"]}"#).as_deref(),
            Some("Rate limit")
        );
        assert_eq!(describe("<html>busy</html>"), None);
        assert_eq!(describe("null"), None);
    }

    #[test]
    fn callbacks_are_compared_on_every_registered_field() {
        let wanted = |extra: Value| {
            let mut value = json!({"id": 1, "url": "https://b.example/t/acme/connectwise",
                "objectId": 1, "type": "Ticket", "level": "Owner",
                "description": "psa-bridge acme", "inactiveFlag": false});
            value
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<WireCallback>(value)
                .unwrap()
                .is_wanted("https://b.example/t/acme/connectwise", "psa-bridge acme")
        };
        assert!(wanted(json!({})));
        assert!(wanted(
            json!({"url": "https://b.example/t/acme/connectwise/"})
        ));
        assert!(!wanted(json!({"level": "board"})));
        assert!(!wanted(json!({"objectId": 2})));
        assert!(!wanted(json!({"type": "company"})));
        assert!(!wanted(json!({"inactiveFlag": true})));
        assert!(!wanted(json!({"description": "other"})));
        assert!(!wanted(
            json!({"url": "https://b.example/t/acme/connectwise2"})
        ));
        let body = callback_body("https://b.example/x", &"d".repeat(150));
        assert_eq!(body["objectId"], 1);
        assert_eq!(body["type"], "ticket");
        assert_eq!(body["level"], "owner");
        assert_eq!(body["description"].as_str().unwrap().len(), 100);
    }

    #[test]
    fn members_are_named_first_then_last() {
        let member = |v: Value| {
            serde_json::from_value::<WireMember>(v)
                .unwrap()
                .display_name()
        };
        assert_eq!(
            member(json!({"identifier": "jdoe", "firstName": "Jane", "lastName": "Doe"}))
                .as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(
            member(json!({"identifier": "api", "firstName": " "})).as_deref(),
            Some("api")
        );
        assert_eq!(member(json!({})), None);
    }
}
