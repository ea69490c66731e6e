//! Autotask's incoming calls: the credential check of extension callouts, the
//! signature check of REST webhooks, and the readers of both. Nothing here
//! talks to Autotask.
//!
//! A reader tells three outcomes apart: a body it cannot read at all (an
//! [`InboundError`], answered 400), an event about a ticket to sync
//! ([`Inbound::Sync`]), and an authentic event the bridge cannot use
//! ([`Inbound::Ignore`]: another entity type, a note that does not name its
//! ticket, a deleted ticket, an unknown action, the webhook's own
//! `Deactivated` notice), which ingest answers 2xx and writes to the tenant's
//! sync log, because Autotask deactivates a webhook after 25 failed events in
//! a row.
//!
//! Longer than 800 lines only with its unit tests (every reader's accepted
//! and ignored shapes), kept beside the code they check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::wire::{get_ci, lenient_i64, truncate};
use crate::config::Secret;
use crate::error::InboundError;
use crate::model::ChangeHint;

/// Header carrying the REST webhook signature.
pub const HOOK_SIGNATURE_HEADER: &str = "X-Hook-Signature";

/// Where to set up webhooks in Autotask, for the sync log.
const WEBHOOK_SETTINGS: &str = "Admin > Extensions & Integrations > Webhooks";
/// Where to set up extension callouts in Autotask, for the sync log.
const CALLOUT_SETTINGS: &str =
    "Admin > Extensions & Integrations > Other Extensions & Tools > Extension Callout";

/// "Ticket X changed in Autotask", as read from a callout or webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaEvent {
    pub ticket_id: i64,
    /// What the event says changed: a note (webhook) or the ticket's fields
    /// (webhook); a callout does not say.
    pub change: ChangeHint,
    /// Stable per source event, so redeliveries de-duplicate in the queue.
    pub event_id: String,
}

/// What an authentic callout or webhook asks of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Sync this ticket. `form` names the shape the event came in, for the
    /// log where the contract is uncertain: the webhook's `EntityType` as
    /// sent (`Ticket`, `Tickets`, `TicketNote`, `TicketNotes`), or the
    /// callout's encoding (`form`, `json`, `xml`, `query`).
    Sync { event: PsaEvent, form: &'static str },
    /// Nothing to sync; answered 2xx and written to the sync log.
    Ignore(Unusable),
}

/// An authentic event the bridge cannot use, in words for an MSP admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// The Autotask ticket it concerns, when the event names one.
    pub ticket_id: Option<i64>,
    /// What arrived and why nothing is synced.
    pub reason: String,
    /// What to change so it does not happen again; `None` when nothing is
    /// wrong (a deleted ticket).
    pub fix: Option<String>,
}

impl Inbound {
    fn ignore(ticket_id: Option<i64>, reason: String, fix: Option<&str>) -> Self {
        Inbound::Ignore(Unusable {
            ticket_id,
            reason,
            fix: fix.map(str::to_owned),
        })
    }

    /// The event to sync; an ignored event as the `Malformed` error of the
    /// strict parsers ([`parse_webhook`], [`parse_callout`]).
    fn into_event(self) -> Result<PsaEvent, InboundError> {
        match self {
            Inbound::Sync { event, .. } => Ok(event),
            Inbound::Ignore(unusable) => Err(InboundError::Malformed(unusable.reason)),
        }
    }
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

/// Which form of the body a webhook's signature was computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSignatureForm {
    /// The body bytes as received (Autotask's documentation).
    RawBody,
    /// The body with its strings re-escaped the way Autotask's .NET
    /// serializer writes them ([`dotnet_escaped`]), as a working receiver
    /// found Autotask signs.
    NetEscaped,
}

impl HookSignatureForm {
    pub fn as_str(self) -> &'static str {
        match self {
            HookSignatureForm::RawBody => "raw_body",
            HookSignatureForm::NetEscaped => "net_escaped",
        }
    }
}

/// Checks `X-Hook-Signature` (see [`verify_hook_signature_form`]).
pub fn verify_hook_signature(
    secret: &Secret,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), InboundError> {
    verify_hook_signature_form(secret, signature, body).map(drop)
}

/// Checks `X-Hook-Signature`: base64(HMAC-SHA1(secret key, body)), which
/// Autotask sends as `sha1=<base64>` (the bare form is accepted too), where
/// the body is either the raw bytes received or those bytes with their
/// strings re-escaped .NET-style ([`dotnet_escaped`]); the fact sheet marks
/// which one Autotask signs as uncertain, so both are accepted and the one
/// that matched is returned for the log. Both MACs are always computed and
/// each is compared in constant time.
pub fn verify_hook_signature_form(
    secret: &Secret,
    signature: Option<&str>,
    body: &[u8],
) -> Result<HookSignatureForm, InboundError> {
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
    let matches = |message: &[u8]| {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(message);
        // verify_slice compares in constant time.
        mac.verify_slice(&provided).is_ok()
    };
    let raw = matches(body);
    let escaped = match dotnet_escaped(body) {
        Some(escaped) if escaped != body => matches(&escaped),
        _ => false,
    };
    if raw {
        Ok(HookSignatureForm::RawBody)
    } else if escaped {
        Ok(HookSignatureForm::NetEscaped)
    } else {
        Err(InboundError::BadSignature)
    }
}

/// The webhook body as Autotask's .NET serializer writes the text it signs:
/// inside JSON strings, `&`, `<`, `>`, `'`, backtick and `+` become `\u0026`,
/// `\u003C`, `\u003E`, `\u0027`, `\u0060`, `\u002B`, an escaped quote `\"`
/// becomes `\u0022`, and every non-ASCII character its UTF-16 escape(s) in
/// upper-case hex (`é` → `\u00E9`); other escapes and everything outside
/// strings are kept byte for byte. `None` when the body is not UTF-8.
pub fn dotnet_escaped(body: &[u8]) -> Option<Vec<u8>> {
    use std::fmt::Write as _;
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(body.len() + body.len() / 8);
    let mut in_string = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if !in_string {
            in_string = c == '"';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some('"') => out.push_str("\\u0022"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '&' | '<' | '>' | '\'' | '`' | '+' => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c if !c.is_ascii() => {
                let mut units = [0_u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    Some(out.into_bytes())
}

/// Reads an extension callout posted as name-value pairs (form-urlencoded),
/// XML or JSON, by its content type or, without one, by its first byte. The
/// ticket id is `id` (or `TicketID`). Callouts carry no event id, so the
/// ticket's last activity time (or a digest of the body) stands in for one.
/// An unreadable body is an error; a readable one that names no ticket is
/// [`Inbound::Ignore`].
pub fn read_callout(content_type: Option<&str>, body: &[u8]) -> Result<Inbound, InboundError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(callout_without_ticket(
            "empty callout body: the callout names no ticket".to_owned(),
        ));
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (pairs, form) = match media.as_str() {
        "application/x-www-form-urlencoded" => (form_pairs(body)?, "form"),
        "application/json" | "text/json" => (json_pairs(body)?, "json"),
        "application/xml" | "text/xml" => (xml_pairs(body)?, "xml"),
        _ => match first {
            Some(b'{') => (json_pairs(body)?, "json"),
            Some(b'<') => (xml_pairs(body)?, "xml"),
            _ => (form_pairs(body)?, "form"),
        },
    };
    Ok(callout_event(&pairs, body, form))
}

/// Reads an extension callout sent by GET, its fields in the query string
/// (`id=4711&TicketNumber=…`), like [`read_callout`].
pub fn read_callout_query(query: &str) -> Result<Inbound, InboundError> {
    if query.trim().is_empty() {
        return Ok(callout_without_ticket(
            "a callout by GET arrived without a query string: it names no ticket".to_owned(),
        ));
    }
    let pairs = form_pairs(query.as_bytes())?;
    Ok(callout_event(&pairs, query.as_bytes(), "query"))
}

/// [`read_callout`] for callers that only take a ticket to sync: an
/// ignored callout is `Malformed` with the reason.
pub fn parse_callout(content_type: Option<&str>, body: &[u8]) -> Result<PsaEvent, InboundError> {
    read_callout(content_type, body)?.into_event()
}

fn callout_without_ticket(reason: String) -> Inbound {
    Inbound::ignore(
        None,
        reason,
        Some(&format!(
            "make the extension callout send the ticket's id field ({CALLOUT_SETTINGS}); \
             the 5-minute sweep still picks up the ticket's changes"
        )),
    )
}

fn callout_event(pairs: &[(String, String)], raw: &[u8], form: &'static str) -> Inbound {
    if pairs.is_empty() {
        return callout_without_ticket(format!(
            "the callout ({form}) has no fields, so it names no ticket"
        ));
    }
    let Some(raw_id) = pair(pairs, &["ticketid", "id"]) else {
        return callout_without_ticket("callout carries no ticket id (id or TicketID)".to_owned());
    };
    let Some(ticket_id) = positive_id(raw_id) else {
        return callout_without_ticket(format!(
            "the callout's ticket id {:?} is not a positive number",
            truncate(raw_id, 40)
        ));
    };
    let marker = match pair(pairs, &["lastactivitydate", "lastactivitydatetime"]) {
        Some(time) if !time.trim().is_empty() => truncate(time.trim(), 64),
        _ => digest_marker(raw),
    };
    Inbound::Sync {
        event: PsaEvent {
            ticket_id,
            change: ChangeHint::Unknown,
            event_id: format!("callout:{ticket_id}:{marker}"),
        },
        form,
    }
}

/// Reads a REST webhook (`{"Action","Guid","EntityType","Id","Fields",
/// "EventTime","SequenceNumber","PersonID"}`). `Guid` names the webhook, not
/// the event, so the event id is entity + id + sequence number (or event
/// time, or a digest of the body). A body that is not a JSON object is an
/// error; Ticket and TicketNote events (`EntityType` singular or plural, as
/// the fact sheet leaves open) that name a ticket are [`Inbound::Sync`];
/// everything else authentic is [`Inbound::Ignore`] with what to fix.
pub fn read_webhook(body: &[u8]) -> Result<Inbound, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("webhook body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| InboundError::Malformed("webhook body is not a JSON object".to_owned()))?;
    let action = get_ci(object, "Action")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let raw_id = get_ci(object, "Id");
    let id = raw_id.and_then(lenient_i64).filter(|id| *id > 0);
    let shown_id = match raw_id {
        Some(Value::String(s)) => format!("{:?}", truncate(s, 40)),
        Some(other) => truncate(&other.to_string(), 40),
        None => "none".to_owned(),
    };
    let shown_action = if action.is_empty() {
        "no Action".to_owned()
    } else {
        truncate(action, 40)
    };

    if action.eq_ignore_ascii_case("Deactivated") {
        return Ok(Inbound::ignore(
            None,
            "Autotask reports that it deactivated this webhook (it does so after 25 failed \
             deliveries in a row): no Autotask change arrives by webhook until it is active again"
                .to_owned(),
            Some(&format!(
                "find why deliveries failed (earlier entries here, and the webhook's error log in \
                 Autotask), then set the webhook active again under {WEBHOOK_SETTINGS}; the \
                 5-minute sweep keeps tickets in sync meanwhile"
            )),
        ));
    }
    let only_tickets = format!(
        "point only Autotask's Ticket and TicketNote webhooks at this URL ({WEBHOOK_SETTINGS}); \
         events of other entities are answered and ignored"
    );
    let entity = get_ci(object, "EntityType")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let Some(entity) = entity else {
        return Ok(Inbound::ignore(
            None,
            format!("an Autotask webhook event without an EntityType arrived ({shown_action}, Id {shown_id})"),
            Some(&only_tickets),
        ));
    };
    let (kind, form) = match entity.to_ascii_lowercase().as_str() {
        "ticket" => ("ticket", "Ticket"),
        "tickets" => ("ticket", "Tickets"),
        "ticketnote" => ("ticketnote", "TicketNote"),
        "ticketnotes" => ("ticketnote", "TicketNotes"),
        _ => {
            let entity = truncate(entity, 40);
            return Ok(Inbound::ignore(
                None,
                format!(
                    "Autotask sent a {entity} webhook event ({shown_action} of {entity} \
                     {shown_id}); only Ticket and TicketNote events are synced"
                ),
                Some(&only_tickets),
            ));
        }
    };
    let deleted = match action.to_ascii_lowercase().as_str() {
        "" | "create" | "update" => false,
        "delete" => true,
        _ => {
            return Ok(Inbound::ignore(
                id.filter(|_| kind == "ticket"),
                format!(
                    "Autotask sent a {form} webhook event with the unknown action {shown_action:?} \
                     (Id {shown_id}); only Create, Update and Delete are understood"
                ),
                Some(
                    "nothing in Autotask if this is rare: the 5-minute sweep still picks up the \
                     ticket's changes; report the action if it keeps coming",
                ),
            ));
        }
    };
    let ticket_id = if kind == "ticket" {
        let Some(id) = id else {
            return Ok(Inbound::ignore(
                None,
                format!(
                    "an Autotask {form} webhook event ({shown_action}) carries no numeric Id \
                     ({shown_id}), so it names no ticket"
                ),
                Some(&format!(
                    "check that the webhook posting to this URL is Autotask's Ticket webhook \
                     ({WEBHOOK_SETTINGS}); the 5-minute sweep still picks up ticket changes"
                )),
            ));
        };
        if deleted {
            return Ok(Inbound::ignore(
                Some(id),
                format!(
                    "Autotask ticket {id} was deleted; deletions are not mirrored, so its \
                     Zendesk ticket stays as it is"
                ),
                None,
            ));
        }
        id
    } else {
        let ticket = get_ci(object, "Fields")
            .and_then(Value::as_object)
            .and_then(|fields| get_ci(fields, "TicketID"))
            .and_then(lenient_i64)
            .filter(|id| *id > 0);
        if deleted {
            let of_ticket = ticket
                .map(|t| format!(" of Autotask ticket {t}"))
                .unwrap_or_default();
            return Ok(Inbound::ignore(
                ticket,
                format!(
                    "note {shown_id}{of_ticket} was deleted in Autotask; deleted notes are not \
                     mirrored, so its Zendesk comment stays"
                ),
                None,
            ));
        }
        let Some(ticket) = ticket else {
            return Ok(Inbound::ignore(
                None,
                format!(
                    "an Autotask {form} webhook event ({shown_action} of note {shown_id}) does \
                     not say which ticket the note belongs to"
                ),
                Some(&format!(
                    "add TicketID as a display-always field of the TicketNote webhook \
                     ({WEBHOOK_SETTINGS}, the webhook's fields); until then the 5-minute sweep \
                     picks up new notes"
                )),
            ));
        };
        ticket
    };
    let marker = get_ci(object, "SequenceNumber")
        .and_then(lenient_i64)
        .map(|n| n.to_string())
        .or_else(|| {
            get_ci(object, "EventTime")
                .and_then(Value::as_str)
                .map(|t| truncate(t.trim(), 64))
                .filter(|t| !t.is_empty())
        })
        .unwrap_or_else(|| digest_marker(body));
    Ok(Inbound::Sync {
        event: PsaEvent {
            ticket_id,
            change: match (kind, id) {
                ("ticket", _) => ChangeHint::Fields,
                (_, Some(note)) => ChangeHint::PsaNote { id: note },
                _ => ChangeHint::Unknown,
            },
            event_id: format!("webhook:{kind}:{}:{marker}", id.unwrap_or(0)),
        },
        form,
    })
}

/// [`read_webhook`] for callers that only take a ticket to sync: an ignored
/// event is `Malformed` with the reason.
pub fn parse_webhook(body: &[u8]) -> Result<PsaEvent, InboundError> {
    read_webhook(body)?.into_event()
}

/// 20 hex digits of the body's SHA-1: an event id for events without one.
fn digest_marker(raw: &[u8]) -> String {
    Sha1::digest(raw)
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn positive_id(raw: &str) -> Option<i64> {
    raw.trim().parse::<i64>().ok().filter(|id| *id > 0)
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
/// documents callouts send, without pulling in an XML parser. No leaf at all
/// is an empty list (the callout then names no ticket).
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
        assert_eq!(parse_webhook(next).unwrap().change, ChangeHint::Fields);
    }

    #[test]
    fn note_webhooks_take_the_ticket_from_fields() {
        let numeric = br#"{"Action":"Create","Guid":"g","EntityType":"TicketNote","Id":900,"Fields":{"TicketID":351181},"EventTime":"2025-09-15T15:10:00Z","SequenceNumber":1}"#;
        let event = parse_webhook(numeric).unwrap();
        assert_eq!(event.ticket_id, 351181);
        assert_eq!(event.event_id, "webhook:ticketnote:900:1");
        assert_eq!(event.change, ChangeHint::PsaNote { id: 900 });
        let string = br#"{"EntityType":"TicketNote","Id":"901","Fields":{"ticketID":"351181"},"EventTime":"2025-09-15T15:10:00Z"}"#;
        let event = parse_webhook(string).unwrap();
        assert_eq!(event.ticket_id, 351181);
        assert_eq!(
            event.event_id,
            "webhook:ticketnote:901:2025-09-15T15:10:00Z"
        );
    }

    #[test]
    fn unreadable_webhooks_are_errors() {
        let cases: [(&[u8], &str); 3] = [
            (b"not json", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (b"\"Ticket\"", "not a JSON object"),
        ];
        for (body, expected) in cases {
            match read_webhook(body) {
                Err(InboundError::Malformed(reason)) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    fn ignored(body: &[u8]) -> Unusable {
        match read_webhook(body) {
            Ok(Inbound::Ignore(unusable)) => unusable,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    /// (body, words of the reason, words of the fix or None, ticket named)
    type Case = (
        &'static [u8],
        &'static str,
        Option<&'static str>,
        Option<i64>,
    );

    #[test]
    fn authentic_but_unusable_webhooks_are_ignored_with_what_to_fix() {
        let cases: [Case; 10] = [
            (
                br#"{"Action":"Update","EntityType":"Company","Id":17,"SequenceNumber":1}"#,
                "Company webhook event (Update of Company 17)",
                Some("only Autotask's Ticket and TicketNote webhooks"),
                None,
            ),
            (
                br#"{"Action":"Create","EntityType":"Contacts","Id":"18"}"#,
                "Contacts webhook event",
                Some("Ticket and TicketNote"),
                None,
            ),
            (
                br#"{"Id":1,"SequenceNumber":1}"#,
                "without an EntityType",
                Some("Ticket and TicketNote"),
                None,
            ),
            (
                br#"{"EntityType":"Ticket","Id":"x","SequenceNumber":1}"#,
                "no numeric Id (\"x\")",
                Some("Ticket webhook"),
                None,
            ),
            (
                br#"{"Action":"Create","EntityType":"TicketNote","Id":3,"Fields":{},"SequenceNumber":1}"#,
                "does not say which ticket the note belongs to",
                Some("add TicketID as a display-always field of the TicketNote webhook"),
                None,
            ),
            (
                br#"{"Action":"Create","EntityType":"TicketNotes","Id":3,"Fields":{"TicketID":0}}"#,
                "does not say which ticket",
                Some("display-always"),
                None,
            ),
            (
                br#"{"Action":"Delete","EntityType":"Ticket","Id":7.0,"SequenceNumber":9}"#,
                "Autotask ticket 7 was deleted",
                None,
                Some(7),
            ),
            (
                br#"{"Action":"Delete","EntityType":"TicketNote","Id":30001,"Fields":{"TicketID":"7001"}}"#,
                "note 30001 of Autotask ticket 7001 was deleted",
                None,
                Some(7001),
            ),
            (
                br#"{"Action":"Merge","EntityType":"Ticket","Id":7,"SequenceNumber":2}"#,
                "unknown action \"Merge\"",
                Some("the 5-minute sweep"),
                Some(7),
            ),
            (
                br#"{"Action":"Deactivated","Guid":"g","EntityType":"Ticket","Id":0}"#,
                "deactivated this webhook",
                Some("set the webhook active again"),
                None,
            ),
        ];
        for (body, reason, fix, ticket) in cases {
            let unusable = ignored(body);
            assert!(unusable.reason.contains(reason), "{unusable:?}");
            match (fix, &unusable.fix) {
                (Some(words), Some(text)) => assert!(text.contains(words), "{unusable:?}"),
                (None, None) => {}
                _ => panic!("fix: {unusable:?}"),
            }
            assert_eq!(unusable.ticket_id, ticket, "{unusable:?}");
            // The strict parser refuses them with the same reason.
            assert_eq!(
                parse_webhook(body),
                Err(InboundError::Malformed(unusable.reason))
            );
        }
        // What the sender put in is cut short in the log.
        let long = format!(
            r#"{{"EntityType":"{}","Id":1,"SequenceNumber":1}}"#,
            "X".repeat(500)
        );
        assert!(ignored(long.as_bytes()).reason.len() < 300);
    }

    #[test]
    fn plural_entity_types_and_events_without_a_sequence_are_synced() {
        let read = |body: &[u8]| match read_webhook(body) {
            Ok(Inbound::Sync { event, form }) => (event, form),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        };
        let (event, form) =
            read(br#"{"Action":"Update","EntityType":"Tickets","Id":5,"SequenceNumber":3}"#);
        assert_eq!((event.ticket_id, form), (5, "Tickets"));
        assert_eq!(event.event_id, "webhook:ticket:5:3");
        let (event, form) = read(
            br#"{"Action":"Create","EntityType":"TicketNotes","Id":9,"Fields":{"TicketID":"5"},"SequenceNumber":1}"#,
        );
        assert_eq!((event.ticket_id, form), (5, "TicketNotes"));
        assert_eq!(event.event_id, "webhook:ticketnote:9:1");
        // Neither SequenceNumber nor EventTime: a digest of the body.
        let body = br#"{"EntityType":"Ticket","Id":3}"#;
        let (event, form) = read(body);
        assert_eq!(form, "Ticket");
        assert_eq!(
            event.event_id,
            format!("webhook:ticket:3:{}", digest_marker(body))
        );
        assert_eq!(read(body).0, event, "a redelivery de-duplicates");
        // A note that names its ticket but has no Id of its own.
        let (event, _) =
            read(br#"{"EntityType":"TicketNote","Fields":{"TicketID":5},"EventTime":"t"}"#);
        assert_eq!(event.event_id, "webhook:ticketnote:0:t");
    }

    #[test]
    fn dotnet_escaping_follows_the_fact_sheet() {
        let raw = r#"{"Title":"A & B + <c> 'd' \"e\" `f` café 😀 \\ \n \u00fc","N":1e+5,"Id":7}"#;
        let escaped = String::from_utf8(dotnet_escaped(raw.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            escaped,
            r#"{"Title":"A \u0026 B \u002B \u003Cc\u003E \u0027d\u0027 \u0022e\u0022 \u0060f\u0060 caf\u00E9 \uD83D\uDE00 \\ \n \u00fc","N":1e+5,"Id":7}"#
        );
        // Outside strings nothing changes; nothing to escape, nothing changes.
        let plain = br#"{ "EntityType" : "Ticket", "Id" : 7 }"#;
        assert_eq!(dotnet_escaped(plain).unwrap(), plain.to_vec());
        assert_eq!(dotnet_escaped(b"\xff\xfe"), None);
    }

    #[test]
    fn hook_signature_accepts_the_dotnet_escaped_body_and_says_which_form_matched() {
        let secret = Secret::new("hook-secret-0123456789");
        let body = r#"{"Action":"Create","EntityType":"TicketNote","Id":9,"Fields":{"TicketID":"5","Title":"Backup & restore + \"quotes\" for Zoë <ok>"},"SequenceNumber":1}"#.as_bytes();
        let escaped = dotnet_escaped(body).unwrap();
        assert_ne!(escaped, body);
        let over_escaped = sign("hook-secret-0123456789", &escaped);
        assert_eq!(
            verify_hook_signature(&secret, Some(&over_escaped), body),
            Ok(())
        );
        assert_eq!(
            verify_hook_signature_form(&secret, Some(&over_escaped), body),
            Ok(HookSignatureForm::NetEscaped)
        );
        let over_raw = sign("hook-secret-0123456789", body);
        assert_eq!(
            verify_hook_signature_form(&secret, Some(&over_raw), body),
            Ok(HookSignatureForm::RawBody)
        );
        // Either form under another key, or over another body, is refused.
        for wrong in [
            sign("another-secret", &escaped),
            sign("another-secret", body),
            sign(
                "hook-secret-0123456789",
                &dotnet_escaped(b"{\"Title\":\"A & C\"}").unwrap(),
            ),
        ] {
            assert_eq!(
                verify_hook_signature_form(&secret, Some(&wrong), body),
                Err(InboundError::BadSignature)
            );
        }
        // The escaped form's signature does not pass for the escaped text
        // sent as the body of another event.
        let tampered = String::from_utf8_lossy(body).replace("\"Id\":9", "\"Id\":10");
        assert_eq!(
            verify_hook_signature(&secret, Some(&over_escaped), tampered.as_bytes()),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn callouts_that_name_no_ticket_are_ignored_and_unreadable_ones_are_errors() {
        for (content_type, body) in [
            (None, &b""[..]),
            (Some("application/x-www-form-urlencoded"), b"Title=x"),
            (Some("application/x-www-form-urlencoded"), b"id=abc"),
            (Some("text/xml"), b"<a><b/></a>"),
            (Some("application/json"), br#"{"title":"x"}"#),
        ] {
            match read_callout(content_type, body) {
                Ok(Inbound::Ignore(unusable)) => {
                    assert!(
                        unusable
                            .fix
                            .as_deref()
                            .is_some_and(|f| f.contains("send the ticket's id")),
                        "{unusable:?}"
                    );
                    assert_eq!(unusable.ticket_id, None);
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        for (content_type, body) in [
            (Some("application/json"), &b"{not json"[..]),
            (Some("application/json"), b"[1]"),
            (Some("text/xml"), b"<a>\xff</a>"),
        ] {
            assert!(
                matches!(
                    read_callout(content_type, body),
                    Err(InboundError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn callouts_by_get_read_the_query_string() {
        let read = |query: &str| match read_callout_query(query) {
            Ok(Inbound::Sync { event, form }) => {
                assert_eq!(form, "query");
                event
            }
            other => panic!("{query}: {other:?}"),
        };
        let event = read("id=4711&TicketNumber=T20261123.0001&LastActivityDate=2026-11-23T10%3A00%3A00.123Z&Title=A+%26+B");
        assert_eq!(event.ticket_id, 4711);
        assert_eq!(event.event_id, "callout:4711:2026-11-23T10:00:00.123Z");
        // Same fields by GET and by POST: the same event.
        let posted = parse_callout(
            Some("application/x-www-form-urlencoded"),
            b"id=4711&TicketNumber=T20261123.0001&LastActivityDate=2026-11-23T10%3A00%3A00.123Z&Title=A+%26+B",
        )
        .unwrap();
        assert_eq!(posted, event);
        assert_eq!(read("TicketID=12&id=99").ticket_id, 12);
        assert!(read("id=5").event_id.starts_with("callout:5:"));
        for query in ["", "  ", "foo=bar", "id=-1"] {
            assert!(
                matches!(read_callout_query(query), Ok(Inbound::Ignore(_))),
                "{query:?}"
            );
        }
    }
}
