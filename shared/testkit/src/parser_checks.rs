//! Input framing and invariants of the webhook/callout parser fuzz targets.
//!
//! One function per target. Each reads the request pieces out of the raw input,
//! calls the bridge's parser and verifier, and asserts what must hold beyond
//! "no panic". The libFuzzer targets (`fuzz/fuzz_targets/`) call these; the
//! stable test `shared/bridge/tests/parser_robustness.rs` runs the seeds in
//! `fuzz/seeds/` plus deterministic mutations through them.
//!
//! Framing: a target with header lines takes them off the front of the input,
//! one per `\n`-terminated line, then the rest is the body. A line that is not
//! UTF-8 is an absent header (the HTTP layer reads headers with
//! `to_str().ok()`); an input that runs out early has empty headers or body.
//!
//! - `zendesk_webhook`: timestamp line, signature line, body.
//! - `autotask_webhook`: `X-Hook-Signature` line, body.
//! - `autotask_callout`: `Content-Type` line, body.
//! - `autotask_callout_credentials`: the whole input is the `Authorization` value.
//!
//! Every function returns whether the request would be answered 2xx
//! (authenticated, and readable: an event to sync or an authentic event the
//! bridge ignores and logs), so the seeds can be checked to be accepted. A
//! reader may refuse a body only when it is unreadable (not a JSON object, for
//! the webhooks); everything else authentic is answered, never refused, so a
//! tenant's webhook is never deactivated over one odd event.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bridge::config::Secret;
use bridge::connectors::autotask::inbound::{self as autotask_inbound, Inbound as PsaInbound};
use bridge::connectors::zendesk::inbound::{self as zendesk_inbound, Inbound as DeskInbound};
use bridge::connectors::{autotask, zendesk};
use bridge::error::InboundError;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};

/// Zendesk signing secret the seeds are signed with.
pub const ZENDESK_SECRET: &str = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0";
/// The receiving clock of the Zendesk target; seed timestamps are near it.
pub const ZENDESK_NOW: &str = "2026-11-23T18:40:12Z";
/// Autotask webhook secret the seeds are signed with.
pub const AUTOTASK_HOOK_SECRET: &str = "hook-secret-0123456789";
/// Callout credentials the Authorization seeds carry.
pub const CALLOUT_USER: &str = "callout-user";
pub const CALLOUT_PASSWORD: &str = "s3cret:with:colons";

/// The documented replay window of Zendesk webhooks, both ways.
const ZENDESK_MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Splits `N` header lines off the front of `data`; the rest is the body.
fn split_headers<const N: usize>(data: &[u8]) -> ([Option<&str>; N], &[u8]) {
    let mut headers = [None; N];
    let mut rest = data;
    for header in &mut headers {
        let (line, tail) = match rest.iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        *header = std::str::from_utf8(line).ok();
        rest = tail;
    }
    (headers, rest)
}

/// A header as the verifiers see it: trimmed, and absent when blank.
fn present(header: Option<&str>) -> Option<&str> {
    header.map(str::trim).filter(|h| !h.is_empty())
}

/// The same body with its first byte changed (or one byte added).
fn tampered(body: &[u8]) -> Vec<u8> {
    let mut copy = body.to_vec();
    match copy.first_mut() {
        Some(first) => *first ^= 0x01,
        None => copy.push(b'{'),
    }
    copy
}

fn assert_json_object(body: &[u8]) {
    let value: serde_json::Value =
        serde_json::from_slice(body).expect("an accepted JSON body parses as JSON");
    assert!(value.is_object(), "an accepted JSON body is an object");
}

/// Zendesk's MAC, computed here independently: HMAC-SHA256(secret, timestamp + body).
fn zendesk_mac(secret: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Autotask's MAC, computed here independently: HMAC-SHA1(secret, body).
fn autotask_mac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The body as Autotask's .NET serializer re-escapes it before signing,
/// computed here independently of the bridge (fact sheet: inside strings
/// `& < > ' " ` +` become `\u0026 \u003C \u003E \u0027 \u0022 \u0060 \u002B`
/// and non-ASCII characters their UTF-16 `\uXXXX`; `\"` becomes `\u0022`,
/// other escapes stay). `None` when the body is not UTF-8.
fn dotnet_escaped(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = Vec::with_capacity(body.len() * 2);
    let (mut inside, mut after_backslash) = (false, false);
    for c in text.chars() {
        let mut buf = [0_u8; 4];
        if !inside {
            inside = c == '"';
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else if after_backslash {
            after_backslash = false;
            if c == '"' {
                out.pop();
                out.extend_from_slice(b"\\u0022");
            } else {
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        } else if c == '\\' {
            after_backslash = true;
            out.push(b'\\');
        } else if c == '"' {
            inside = false;
            out.push(b'"');
        } else if "&<>'`+".contains(c) || !c.is_ascii() {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{unit:04X}").as_bytes());
            }
        } else {
            out.push(c as u8);
        }
    }
    Some(out)
}

/// An ignored event's account: a reason an admin can read, a fix when one
/// is given, never overly long (it is built from what the sender put in).
fn assert_plain_account(reason: &str, fix: Option<&str>) {
    assert!(!reason.trim().is_empty(), "empty reason");
    assert!(reason.chars().count() <= 400, "reason too long: {reason:?}");
    if let Some(fix) = fix {
        assert!(!fix.trim().is_empty(), "empty fix");
    }
}

fn is_json_object(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object())
}

fn zendesk_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ZENDESK_NOW)
        .expect("valid constant")
        .with_timezone(&Utc)
}

/// Whether `timestamp` is an RFC 3339 time within the replay window of `now`.
fn fresh(timestamp: &str, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(timestamp)
        .map(|sent| (now - sent.with_timezone(&Utc)).abs() <= ZENDESK_MAX_SKEW)
        .unwrap_or(false)
}

/// `zendesk::parse_webhook` and `zendesk::verify_signature`.
pub fn zendesk_webhook(data: &[u8]) -> bool {
    let ([timestamp, signature], body) = split_headers::<2>(data);
    let now = zendesk_now();
    let secret = Secret::new(ZENDESK_SECRET);

    let read = zendesk_inbound::read_webhook(body, timestamp);
    match &read {
        Ok(DeskInbound::Sync(event)) => {
            assert!(
                event.ticket_id > 0,
                "ticket id {} accepted",
                event.ticket_id
            );
            assert!(!event.event_id.is_empty(), "empty event id");
            assert_eq!(event.event_id.trim(), event.event_id, "untrimmed event id");
            assert_json_object(body);
        }
        Ok(DeskInbound::Ignore(unusable)) => {
            assert_plain_account(&unusable.reason, unusable.fix.as_deref());
            assert!(unusable.ticket_id.is_none_or(|id| id > 0), "{unusable:?}");
            assert_json_object(body);
        }
        // Only an unreadable body is refused.
        Err(err) => {
            assert!(matches!(err, InboundError::Malformed(_)), "{err:?}");
            assert!(!is_json_object(body), "refused a JSON object: {err:?}");
        }
    }
    // The strict parser agrees.
    let parsed = zendesk::parse_webhook(body, timestamp);
    match (&read, &parsed) {
        (Ok(DeskInbound::Sync(event)), Ok(parsed)) => assert_eq!(event, parsed),
        (Ok(DeskInbound::Ignore(unusable)), Err(InboundError::Malformed(reason))) => {
            assert_eq!(&unusable.reason, reason)
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        other => panic!("read and parse disagree: {other:?}"),
    }
    // The timestamp only feeds a derived event id, never the ticket or the verdict.
    let untimed = zendesk_inbound::read_webhook(body, None);
    let ticket = |r: &Result<DeskInbound, InboundError>| match r {
        Ok(DeskInbound::Sync(event)) => Ok((true, Some(event.ticket_id))),
        Ok(DeskInbound::Ignore(unusable)) => Ok((false, unusable.ticket_id)),
        Err(err) => Err(err.to_string()),
    };
    assert_eq!(ticket(&read), ticket(&untimed));

    let verified = zendesk::verify_signature(&secret, timestamp, signature, body, now);
    let (Some(sent_signature), Some(sent_at)) = (present(signature), present(timestamp)) else {
        let missing = if present(signature).is_none() {
            zendesk::SIGNATURE_HEADER
        } else {
            zendesk::TIMESTAMP_HEADER
        };
        assert_eq!(verified, Err(InboundError::MissingHeader(missing)));
        return false;
    };
    let expected = zendesk_mac(ZENDESK_SECRET, sent_at, body);
    if verified.is_ok() {
        // Never accepts a signature it did not compute, nor a replay.
        assert_eq!(
            STANDARD.decode(sent_signature).ok(),
            Some(expected.clone()),
            "accepted a signature that is not the HMAC of timestamp + body"
        );
        assert!(fresh(sent_at, now), "accepted timestamp {sent_at:?}");
    } else {
        assert!(
            matches!(
                verified,
                Err(InboundError::BadSignature | InboundError::StaleTimestamp)
            ),
            "{verified:?}"
        );
    }
    // The real signature for this timestamp passes exactly when the timestamp is fresh.
    let real = STANDARD.encode(&expected);
    let with_real = zendesk::verify_signature(&secret, timestamp, Some(&real), body, now);
    let want = if fresh(sent_at, now) {
        Ok(())
    } else {
        Err(InboundError::StaleTimestamp)
    };
    assert_eq!(with_real, want, "real signature at {sent_at:?}");
    // ... and it covers the body.
    assert_eq!(
        zendesk::verify_signature(&secret, timestamp, Some(&real), &tampered(body), now),
        Err(InboundError::BadSignature)
    );
    // An empty secret verifies nothing, not even what it signed itself.
    let unkeyed = STANDARD.encode(zendesk_mac("", sent_at, body));
    assert_eq!(
        zendesk::verify_signature(&Secret::new(""), timestamp, Some(&unkeyed), body, now),
        Err(InboundError::BadSignature)
    );

    verified.is_ok() && read.is_ok()
}

/// `autotask::verify_hook_signature_form` and `autotask::read_webhook`.
pub fn autotask_webhook(data: &[u8]) -> bool {
    let ([signature], body) = split_headers::<1>(data);
    let secret = Secret::new(AUTOTASK_HOOK_SECRET);
    let expected = autotask_mac(AUTOTASK_HOOK_SECRET, body);
    let escaped = dotnet_escaped(body);
    let expected_escaped = escaped
        .as_deref()
        .map(|escaped| autotask_mac(AUTOTASK_HOOK_SECRET, escaped));

    let verified = autotask_inbound::verify_hook_signature_form(&secret, signature, body);
    assert_eq!(
        autotask::verify_hook_signature(&secret, signature, body)
            .as_ref()
            .err(),
        verified.as_ref().err()
    );
    match signature {
        None => assert_eq!(
            verified,
            Err(InboundError::MissingHeader(autotask::HOOK_SIGNATURE_HEADER))
        ),
        Some(sent) if verified.is_ok() => {
            // Never accepts a signature it did not compute, and names the
            // form it matched.
            let sent = sent.trim();
            let encoded = match sent.get(..5) {
                Some(prefix) if prefix.eq_ignore_ascii_case("sha1=") => &sent[5..],
                _ => sent,
            };
            let decoded = STANDARD.decode(encoded.trim()).ok();
            let want = match verified {
                Ok(autotask_inbound::HookSignatureForm::RawBody) => Some(expected.clone()),
                _ => expected_escaped.clone(),
            };
            assert_eq!(
                decoded, want,
                "accepted a signature that is not the HMAC of the body in the form named ({verified:?})"
            );
        }
        Some(_) => assert_eq!(verified, Err(InboundError::BadSignature)),
    }
    // The real signature passes in every documented form, over the raw body
    // and over its .NET-escaped form, and covers the body.
    let mut reals = vec![(STANDARD.encode(&expected), "raw_body")];
    if let Some(mac) = &expected_escaped {
        let form = if mac == &expected {
            "raw_body"
        } else {
            "net_escaped"
        };
        reals.push((STANDARD.encode(mac), form));
    }
    for (real, form) in reals {
        for header in [
            format!("sha1={real}"),
            real.clone(),
            format!(" SHA1={real} "),
        ] {
            assert_eq!(
                autotask_inbound::verify_hook_signature_form(&secret, Some(&header), body)
                    .map(|f| f.as_str()),
                Ok(form),
                "{header}"
            );
            assert_eq!(
                autotask::verify_hook_signature(&secret, Some(&header), &tampered(body)),
                Err(InboundError::BadSignature)
            );
        }
    }
    for over in [Some(body.to_vec()), escaped.clone()].into_iter().flatten() {
        let unkeyed = format!("sha1={}", STANDARD.encode(autotask_mac("", &over)));
        assert_eq!(
            autotask::verify_hook_signature(&Secret::new(""), Some(&unkeyed), body),
            Err(InboundError::BadSignature)
        );
    }

    let read = autotask_inbound::read_webhook(body);
    match &read {
        Ok(PsaInbound::Sync { event, form }) => {
            assert!(
                event.ticket_id > 0,
                "ticket id {} accepted",
                event.ticket_id
            );
            assert!(
                matches!(*form, "Ticket" | "Tickets" | "TicketNote" | "TicketNotes"),
                "form {form:?}"
            );
            let (kind, rest) = event
                .event_id
                .strip_prefix("webhook:")
                .and_then(|rest| rest.split_once(':'))
                .unwrap_or_else(|| panic!("event id {:?}", event.event_id));
            assert!(matches!(kind, "ticket" | "ticketnote"), "kind {kind:?}");
            if kind == "ticket" {
                assert!(rest.starts_with(&format!("{}:", event.ticket_id)));
            }
            // kind, a positive i64 and a marker cut to 64 characters.
            assert!(
                event.event_id.chars().count() <= 104,
                "{:?}",
                event.event_id
            );
            assert_json_object(body);
        }
        Ok(PsaInbound::Ignore(unusable)) => {
            assert_plain_account(&unusable.reason, unusable.fix.as_deref());
            assert!(unusable.ticket_id.is_none_or(|id| id > 0), "{unusable:?}");
            assert_json_object(body);
        }
        // Only an unreadable body is refused.
        Err(err) => {
            assert!(matches!(err, InboundError::Malformed(_)), "{err:?}");
            assert!(!is_json_object(body), "refused a JSON object: {err:?}");
        }
    }
    // The strict parser agrees.
    match (&read, &autotask::parse_webhook(body)) {
        (Ok(PsaInbound::Sync { event, .. }), Ok(parsed)) => assert_eq!(event, parsed),
        (Ok(PsaInbound::Ignore(unusable)), Err(InboundError::Malformed(reason))) => {
            assert_eq!(&unusable.reason, reason)
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        other => panic!("read and parse disagree: {other:?}"),
    }

    verified.is_ok() && read.is_ok()
}

/// `autotask::read_callout` with an arbitrary content type.
pub fn autotask_callout(data: &[u8]) -> bool {
    let ([content_type], body) = split_headers::<1>(data);

    let read = autotask_inbound::read_callout(content_type, body);
    check_callout(&read, body, &["form", "json", "xml"]);
    // The strict parser agrees.
    match (&read, &autotask::parse_callout(content_type, body)) {
        (Ok(PsaInbound::Sync { event, .. }), Ok(parsed)) => assert_eq!(event, parsed),
        (Ok(PsaInbound::Ignore(unusable)), Err(InboundError::Malformed(reason))) => {
            assert_eq!(&unusable.reason, reason)
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        other => panic!("read and parse disagree: {other:?}"),
    }
    // Media types are case-insensitive and their parameters do not matter.
    let upper = content_type.map(str::to_ascii_uppercase);
    assert_eq!(autotask_inbound::read_callout(upper.as_deref(), body), read);
    let with_charset = content_type.map(|c| format!("{c}; charset=utf-8"));
    assert_eq!(
        autotask_inbound::read_callout(with_charset.as_deref(), body),
        read
    );

    read.is_ok()
}

/// `autotask::read_callout_query`: the whole input is the query string of a
/// callout sent by GET. Whatever it holds is read as form pairs; the same
/// pairs posted as a form body name the same ticket.
pub fn autotask_callout_query(data: &[u8]) -> bool {
    let Ok(query) = std::str::from_utf8(data) else {
        // The HTTP layer hands over the raw query as text only.
        return false;
    };
    let read = autotask_inbound::read_callout_query(query);
    check_callout(&read, data, &["query"]);
    let posted = autotask_inbound::read_callout(Some("application/x-www-form-urlencoded"), data);
    let ticket = |r: &Result<PsaInbound, InboundError>| match r {
        Ok(PsaInbound::Sync { event, .. }) => Some(event.clone()),
        _ => None,
    };
    assert_eq!(ticket(&read), ticket(&posted), "GET and POST disagree");
    read.is_ok()
}

fn check_callout(read: &Result<PsaInbound, InboundError>, body: &[u8], forms: &[&str]) {
    match read {
        Ok(PsaInbound::Sync { event, form }) => {
            assert!(
                event.ticket_id > 0,
                "ticket id {} accepted",
                event.ticket_id
            );
            assert!(forms.contains(form), "form {form:?}");
            assert!(
                !body.iter().all(u8::is_ascii_whitespace),
                "synced a blank body"
            );
            let marker = event
                .event_id
                .strip_prefix(&format!("callout:{}:", event.ticket_id))
                .unwrap_or_else(|| panic!("event id {:?}", event.event_id));
            assert!(!marker.is_empty(), "empty event marker");
            assert!(marker.chars().count() <= 64, "marker {marker:?}");
        }
        Ok(PsaInbound::Ignore(unusable)) => {
            assert_plain_account(&unusable.reason, unusable.fix.as_deref());
            assert_eq!(unusable.ticket_id, None, "{unusable:?}");
        }
        Err(err) => assert!(matches!(err, InboundError::Malformed(_)), "{err:?}"),
    }
}

/// `autotask::verify_callout_credentials` with an arbitrary `Authorization` value.
pub fn autotask_callout_credentials(data: &[u8]) -> bool {
    let authorization = std::str::from_utf8(data).ok();
    let password = Secret::new(CALLOUT_PASSWORD);

    let verified = autotask::verify_callout_credentials(CALLOUT_USER, &password, authorization);
    let Some(header) = authorization else {
        assert_eq!(verified, Err(InboundError::MissingHeader("Authorization")));
        return false;
    };
    if verified.is_ok() {
        // Never accepts anything but `Basic base64(user:password)` of the
        // configured pair.
        let tokens: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(tokens.len(), 2, "accepted {header:?}");
        assert!(
            tokens[0].eq_ignore_ascii_case("basic"),
            "scheme {:?}",
            tokens[0]
        );
        let pair = format!("{CALLOUT_USER}:{CALLOUT_PASSWORD}");
        assert_eq!(
            STANDARD.decode(tokens[1]).ok().as_deref(),
            Some(pair.as_bytes()),
            "accepted {header:?}"
        );
    } else {
        assert_eq!(verified, Err(InboundError::BadCredentials));
    }
    // Unconfigured credentials match nothing.
    for (user, pass) in [("", CALLOUT_PASSWORD), (CALLOUT_USER, ""), ("", "")] {
        assert_eq!(
            autotask::verify_callout_credentials(user, &Secret::new(pass), Some(header)),
            Err(InboundError::BadCredentials),
            "unconfigured {user:?}/{pass:?} matched {header:?}"
        );
    }
    // The input read as `user:password`, sent the standard way, is accepted
    // for exactly that pair.
    if let Some((user, pass)) = header.split_once(':') {
        if !user.is_empty() && !pass.is_empty() {
            let sent = format!("Basic {}", STANDARD.encode(header));
            assert_eq!(
                autotask::verify_callout_credentials(user, &Secret::new(pass), Some(&sent)),
                Ok(()),
                "{user:?}/{pass:?}"
            );
            let other = Secret::new(format!("{pass}x"));
            assert_eq!(
                autotask::verify_callout_credentials(user, &other, Some(&sent)),
                Err(InboundError::BadCredentials)
            );
        }
    }

    verified.is_ok()
}
