//! Zendesk's incoming calls: the signature check of its webhooks and the
//! reader of their bodies. Nothing here talks to Zendesk. An authentic body
//! the bridge cannot use (an event about users, a deleted ticket, a trigger
//! without a ticket id) is [`Inbound::Ignore`], answered 2xx and written to
//! the tenant's sync log; only a body that is not a JSON object is an error.
//!
//! Contract: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(signing secret,
//! `X-Zendesk-Webhook-Signature-Timestamp` + raw body)).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::connectors::signing::{self, TimestampedHmac};
use crate::error::InboundError;
use crate::model::ChangeHint;

pub const SIGNATURE_HEADER: &str = "X-Zendesk-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Zendesk-Webhook-Signature-Timestamp";

const SCHEME: TimestampedHmac = TimestampedHmac {
    signature_header: SIGNATURE_HEADER,
    timestamp_header: TIMESTAMP_HEADER,
    parse_timestamp: signing::rfc3339,
};

/// The webhook signature of `body` sent at `timestamp`:
/// base64(HMAC-SHA256(secret, timestamp + body)).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    signing::sign(secret, timestamp, body)
}

/// Checks a Zendesk webhook's signature and its timestamp (ISO-8601, within
/// 5 minutes of `now` either way, against replays).
pub fn verify_signature(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), InboundError> {
    SCHEME.verify(secret, timestamp, signature, body, now)
}

/// What an incoming Zendesk webhook says: this ticket changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskEvent {
    pub ticket_id: u64,
    /// What the event says changed: a comment, or only fields; a trigger
    /// body or another event type does not say.
    pub change: ChangeHint,
    /// Source event id, used for queue de-duplication.
    pub event_id: String,
}

/// What an authentic Zendesk webhook asks of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Sync this ticket.
    Sync(DeskEvent),
    /// Nothing to sync (an event about something else than a ticket, a
    /// deleted ticket, a trigger body without a usable ticket id); answered
    /// 2xx and written to the tenant's sync log.
    Ignore(Unusable),
}

/// An authentic event the bridge cannot use, in words for an MSP admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// The Zendesk ticket it concerns, when the event names one.
    pub ticket_id: Option<u64>,
    /// What arrived and why nothing is synced.
    pub reason: String,
    /// What to change so it does not happen again; `None` when nothing is
    /// wrong (a deleted ticket).
    pub fix: Option<String>,
}

const WEBHOOK_SETTINGS: &str = "Zendesk Admin Center > Apps and integrations > Webhooks";

fn ignore(ticket_id: Option<u64>, reason: String, fix: Option<&str>) -> Inbound {
    Inbound::Ignore(Unusable {
        ticket_id,
        reason,
        fix: fix.map(str::to_owned),
    })
}

/// Event types (after `zen:event-type:ticket.`) that say the ticket is gone;
/// compared without case and underscores, with or without a `ticket` prefix
/// (`soft_deleted`, `TicketSoftDeleted`, ...).
const GONE: [&str; 4] = [
    "softdeleted",
    "permanentlydeleted",
    "deleted",
    "markedasspam",
];

/// Reads either an event webhook (`{"type":"zen:event-type:ticket.…","id":…,
/// "detail":{"id":"123"},"subject":"zen:ticket:123",…}`) or a trigger webhook
/// whose JSON body the customer wrote (`{"ticket_id":123}` or `{"ticket":{"id":123}}`,
/// numbers or numeric strings). Without an event id in the payload, one is
/// derived from the ticket, the signature timestamp and the body, so a
/// redelivery de-duplicates while a different change does not. A body that
/// is not a JSON object is an error; anything else that names no live ticket
/// is [`Inbound::Ignore`] with what to fix.
pub fn read_webhook(body: &[u8], timestamp: Option<&str>) -> Result<Inbound, InboundError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|_| InboundError::Malformed("body is not valid JSON".to_owned()))?;
    let object = payload
        .as_object()
        .ok_or_else(|| InboundError::Malformed("body is not a JSON object".to_owned()))?;

    let trigger_fix = "make the trigger's JSON body name the ticket, e.g. \
                       {\"ticket_id\": \"{{ticket.id}}\"}, or subscribe the webhook to ticket events";
    let event_type = object
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with("zen:event-type:"));
    let mut change = ChangeHint::Unknown;
    let ticket_id = if let Some(event_type) = event_type {
        let event_type = truncate(event_type, 80);
        let Some(kind) = event_type.strip_prefix("zen:event-type:ticket.") else {
            return Ok(ignore(
                None,
                format!("{event_type} is not a ticket event; only ticket events are synced"),
                Some(&format!(
                    "subscribe the webhook to ticket events only ({WEBHOOK_SETTINGS})"
                )),
            ));
        };
        let named = match object.get("detail").and_then(|d| d.get("id")) {
            Some(id) => Some(id.clone()),
            None => object
                .get("subject")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix("zen:ticket:"))
                .map(Value::from),
        };
        let Some(named) = named else {
            return Ok(ignore(
                None,
                format!("{event_type}: the event names no ticket"),
                Some("nothing in Zendesk if this is rare: the 5-minute sweep still picks up ticket changes"),
            ));
        };
        let Some(id) = ticket_id(&named) else {
            return Ok(ignore(
                None,
                format!(
                    "{event_type}: ticket id {} is not a positive integer",
                    shown(&named)
                ),
                Some("nothing in Zendesk if this is rare: the 5-minute sweep still picks up ticket changes"),
            ));
        };
        let normalized: String = kind
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let normalized = normalized.strip_prefix("ticket").unwrap_or(&normalized);
        let status_deleted = object
            .get("detail")
            .and_then(|d| d.get("status"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("deleted"));
        change = change_of(normalized, object);
        if GONE.contains(&normalized) || status_deleted {
            let how = if normalized == "markedasspam" {
                "was marked as spam and deleted"
            } else {
                "was deleted"
            };
            return Ok(ignore(
                Some(id),
                format!(
                    "Zendesk ticket {id} {how} ({event_type}); deletions are not mirrored, so \
                     its Autotask ticket stays as it is"
                ),
                None,
            ));
        }
        id
    } else if let Some(id) = object
        .get("ticket_id")
        .or_else(|| object.get("ticket").and_then(|t| t.get("id")))
    {
        match ticket_id(id) {
            Some(id) => id,
            None => {
                return Ok(ignore(
                    None,
                    format!(
                        "the trigger's ticket id {} is not a positive integer",
                        shown(id)
                    ),
                    Some(trigger_fix),
                ))
            }
        }
    } else {
        return Ok(ignore(
            None,
            "no ticket id (expected detail.id, ticket_id or ticket.id)".to_owned(),
            Some(trigger_fix),
        ));
    };

    let event_id = match object.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Some(Value::Number(id)) => id.to_string(),
        _ => {
            let digest = Sha256::digest(body);
            let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            match timestamp {
                Some(ts) => format!("ticket:{ticket_id}:{}:{short}", ts.trim()),
                None => format!("ticket:{ticket_id}:{short}"),
            }
        }
    };
    Ok(Inbound::Sync(DeskEvent {
        ticket_id,
        change,
        event_id,
    }))
}

/// Event kinds (lower case, no underscores) that change only ticket fields.
const FIELD_EVENTS: &[&str] = &[
    "statuschanged",
    "prioritychanged",
    "subjectchanged",
    "externalidchanged",
    "customfieldchanged",
    "customstatuschanged",
    "agentassignmentchanged",
    "groupassignmentchanged",
    "tagschanged",
    "typechanged",
];

/// What a ticket event of this kind changed, as far as the event says.
fn change_of(kind: &str, event: &serde_json::Map<String, Value>) -> ChangeHint {
    if kind == "commentadded" {
        let id = event
            .get("event")
            .and_then(|e| e.get("comment"))
            .and_then(|c| c.get("id"))
            .and_then(|id| match id {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
        return id.map_or(ChangeHint::Unknown, |id| ChangeHint::DeskComment { id });
    }
    if FIELD_EVENTS.contains(&kind) {
        return ChangeHint::Fields;
    }
    ChangeHint::Unknown
}

/// [`read_webhook`] for callers that only take a ticket to sync: an ignored
/// event is `Malformed` with the reason.
pub fn parse_webhook(body: &[u8], timestamp: Option<&str>) -> Result<DeskEvent, InboundError> {
    match read_webhook(body, timestamp)? {
        Inbound::Sync(event) => Ok(event),
        Inbound::Ignore(unusable) => Err(InboundError::Malformed(unusable.reason)),
    }
}

/// A JSON value as shown in the sync log: strings quoted, cut to 40 chars.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// A ticket id from a number or a numeric string; trigger templates render
/// placeholders such as `{{ticket.id}}` as strings.
fn ticket_id(value: &Value) -> Option<u64> {
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0";
    const TS: &str = "2026-11-23T18:40:12Z";

    fn at(ts: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn verify(
        secret: &str,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now: &str,
    ) -> Result<(), InboundError> {
        verify_signature(&Secret::new(secret), ts, sig, body, at(now))
    }

    #[test]
    fn signature_matches_the_documented_formula() {
        // Independent computation: HMAC-SHA256 over timestamp || body, base64.
        use base64::engine::general_purpose::STANDARD as BASE64;
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(b"2026-11-23T18:40:12Z{\"a\":1}");
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(sign(SECRET, TS, b"{\"a\":1}"), expected);
        assert_ne!(
            sign(SECRET, TS, b"{\"a\":1}"),
            sign(SECRET, TS, b"{\"a\":2}")
        );
    }

    #[test]
    fn valid_signature_is_accepted_within_the_window() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(verify(SECRET, Some(TS), Some(&sig), body, TS), Ok(()));
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:44:59Z"),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:36:00Z"),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_or_wrong_secret_is_rejected() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), br#"{"ticket_id":8}"#, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify("another secret", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        // The timestamp is part of the signed message.
        assert_eq!(
            verify(SECRET, Some("2026-11-23T18:40:13Z"), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("not base64!"), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_never_verifies() {
        let body = b"{}";
        let sig = sign("", TS, body);
        assert_eq!(
            verify("", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn stale_future_and_unreadable_timestamps_are_rejected() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:45:13Z"),
            Err(InboundError::StaleTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:35:11Z"),
            Err(InboundError::StaleTimestamp)
        );
        let odd = "yesterday";
        let sig = sign(SECRET, odd, body);
        assert_eq!(
            verify(SECRET, Some(odd), Some(&sig), body, TS),
            Err(InboundError::StaleTimestamp)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), None, body, TS),
            Err(InboundError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(SECRET, Some(" "), Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn parses_event_webhooks() {
        let body = br#"{"type":"zen:event-type:ticket.comment_added","id":"d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52",
            "time":"2026-11-23T18:40:12Z","account_id":22129848,"subject":"zen:ticket:5158",
            "detail":{"id":"5158","status":"OPEN"},"event":{"comment":{"id":98,"is_public":true}}}"#;
        assert_eq!(
            parse_webhook(body, Some(TS)),
            Ok(DeskEvent {
                ticket_id: 5158,
                change: ChangeHint::DeskComment { id: 98 },
                event_id: "d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52".to_owned()
            })
        );
        // Without a detail object the subject names the ticket; a created
        // ticket says nothing narrower than "run in full".
        let body =
            br#"{"type":"zen:event-type:ticket.created","id":"e1","subject":"zen:ticket:77"}"#;
        let created = parse_webhook(body, None).unwrap();
        assert_eq!(
            (created.ticket_id, created.change),
            (77, ChangeHint::Unknown)
        );
        let body = br#"{"type":"zen:event-type:ticket.status_changed","id":"e2","subject":"zen:ticket:77"}"#;
        assert_eq!(
            parse_webhook(body, None).unwrap().change,
            ChangeHint::Fields
        );
    }

    #[test]
    fn parses_trigger_webhooks_and_derives_event_ids() {
        let numeric = parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap();
        assert_eq!(numeric.ticket_id, 123);
        assert!(numeric
            .event_id
            .starts_with("ticket:123:2026-11-23T18:40:12Z:"));
        // A redelivery maps to the same id; another send time to another one.
        assert_eq!(
            parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap(),
            numeric
        );
        assert_ne!(
            parse_webhook(br#"{"ticket_id":123}"#, Some("2026-11-23T18:40:13Z"))
                .unwrap()
                .event_id,
            numeric.event_id
        );
        let nested = parse_webhook(br#"{"ticket":{"id":"456","status":"open"}}"#, None).unwrap();
        assert_eq!(nested.ticket_id, 456);
        let string = parse_webhook(br#"{"ticket_id":" 9 ","id":"trigger-run-1"}"#, None).unwrap();
        assert_eq!(
            string,
            DeskEvent {
                ticket_id: 9,
                change: ChangeHint::Unknown,
                event_id: "trigger-run-1".to_owned()
            }
        );
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        for (body, reason) in [
            (&b"not json"[..], "body is not valid JSON"),
            (b"[1,2]", "body is not a JSON object"),
            (b"7", "body is not a JSON object"),
        ] {
            assert_eq!(
                read_webhook(body, Some(TS)),
                Err(InboundError::Malformed(reason.to_owned()))
            );
        }
    }

    #[test]
    fn authentic_but_unusable_bodies_are_ignored_with_what_to_fix() {
        let ignored = |body: &[u8]| match read_webhook(body, Some(TS)) {
            Ok(Inbound::Ignore(unusable)) => {
                // The strict parser refuses it with the same reason.
                assert_eq!(
                    parse_webhook(body, Some(TS)),
                    Err(InboundError::Malformed(unusable.reason.clone()))
                );
                unusable
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        };
        let trigger = "{\"ticket_id\": \"{{ticket.id}}\"}";
        for (body, reason, fix) in [
            (
                &br#"{"status":"open"}"#[..],
                "no ticket id (expected detail.id, ticket_id or ticket.id)",
                trigger,
            ),
            (
                br#"{"ticket_id":"{{ticket.id}}"}"#,
                "the trigger's ticket id \"{{ticket.id}}\" is not a positive integer",
                trigger,
            ),
            (
                br#"{"ticket_id":-3}"#,
                "the trigger's ticket id -3 is not a positive integer",
                trigger,
            ),
            (
                br#"{"ticket":{"id":0}}"#,
                "the trigger's ticket id 0 is not a positive integer",
                trigger,
            ),
            (
                br#"{"ticket_id":1.5}"#,
                "the trigger's ticket id 1.5 is not a positive integer",
                trigger,
            ),
            (
                br#"{"type":"zen:event-type:user.created","id":"x","detail":{"id":"5"}}"#,
                "zen:event-type:user.created is not a ticket event; only ticket events are synced",
                "subscribe the webhook to ticket events only",
            ),
            (
                br#"{"type":"zen:event-type:ticket.created","id":"x"}"#,
                "zen:event-type:ticket.created: the event names no ticket",
                "the 5-minute sweep",
            ),
            (
                br#"{"type":"zen:event-type:ticket.created","id":"x","detail":{"id":"abc"}}"#,
                "zen:event-type:ticket.created: ticket id \"abc\" is not a positive integer",
                "the 5-minute sweep",
            ),
        ] {
            let unusable = ignored(body);
            assert_eq!(unusable.reason, reason);
            assert!(
                unusable.fix.as_deref().is_some_and(|f| f.contains(fix)),
                "{unusable:?}"
            );
            assert_eq!(unusable.ticket_id, None);
        }
        // Deleted tickets: nothing to fix, the ticket named.
        for (body, id, words) in [
            (
                &br#"{"type":"zen:event-type:ticket.soft_deleted","id":"d","subject":"zen:ticket:77"}"#[..],
                77,
                "Zendesk ticket 77 was deleted (zen:event-type:ticket.soft_deleted)",
            ),
            (
                br#"{"type":"zen:event-type:ticket.permanently_deleted","id":"d","detail":{"id":"78"}}"#,
                78,
                "was deleted",
            ),
            (
                br#"{"type":"zen:event-type:ticket.TicketSoftDeleted","id":"d","detail":{"id":79}}"#,
                79,
                "was deleted",
            ),
            (
                br#"{"type":"zen:event-type:ticket.status_changed","id":"d","detail":{"id":"80","status":"DELETED"}}"#,
                80,
                "was deleted",
            ),
            (
                br#"{"type":"zen:event-type:ticket.marked_as_spam","id":"d","detail":{"id":"81"}}"#,
                81,
                "marked as spam and deleted",
            ),
        ] {
            let unusable = ignored(body);
            assert_eq!(unusable.ticket_id, Some(id), "{unusable:?}");
            assert!(unusable.reason.contains(words), "{unusable:?}");
            assert_eq!(unusable.fix, None);
        }
        // An undeleted ticket is synced.
        let undeleted =
            br#"{"type":"zen:event-type:ticket.undeleted","id":"u","detail":{"id":"82","status":"OPEN"}}"#;
        assert_eq!(parse_webhook(undeleted, None).unwrap().ticket_id, 82);
        // What the sender put in is cut short.
        let long = format!(r#"{{"ticket_id":"{}"}}"#, "9x".repeat(400));
        assert!(ignored(long.as_bytes()).reason.len() < 120);
    }
}
