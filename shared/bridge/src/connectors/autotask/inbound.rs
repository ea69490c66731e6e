//! Autotask's incoming calls: the credential check of extension callouts, the
//! signature check of REST webhooks, and the parsers of both. Nothing here
//! talks to Autotask.

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

/// Header carrying the REST webhook signature.
pub const HOOK_SIGNATURE_HEADER: &str = "X-Hook-Signature";

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
        Some(time) if !time.trim().is_empty() => truncate(time.trim(), 64),
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
            truncate(entity, 40)
        )));
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
                truncate(raw, 40)
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
}
