//! Outgoing events of a change: the extension callout and the REST webhook,
//! both sent through the fault plan (drops, duplicates, jitter).
//!
//! - **Callout**: the ticket's fields with HTTP Basic credentials, by the
//!   transport the callout is configured with ([`CalloutTransport`]: GET with
//!   the fields in the query string, POST of name-value form pairs, or POST
//!   of an XML document). One attempt per copy: Autotask's retry rules for
//!   callouts are not published.
//! - **Webhook**: JSON, `X-Hook-Signature: sha1=<base64 HMAC-SHA1>` computed
//!   over the body as sent or, like Autotask's .NET serializer, over the body
//!   with its strings re-escaped ([`WebhookSigning`]). Delivered by Autotask's
//!   rules ([`DeliveryRules`], fact sheet "Delivery and retries"): one event
//!   at a time, in order, later events waiting behind a failing one; each
//!   attempt waits `attempt_timeout` (10 s) for a 2xx; an event is tried
//!   `attempts_per_event` times (5) `retry_interval` apart (30 s, so about
//!   2 minutes) and then dropped; after `deactivate_after_failed_events` (25)
//!   failed events in a row the webhook is deactivated (nothing more is sent
//!   until [`AutotaskSandbox::reactivate_webhook`]) and a `Deactivated`
//!   notice goes to the deactivation URL, if one is set.
//!
//! Longer than 800 lines only with its unit tests (the delivery rules and
//! both signing forms), kept beside the code they check.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use serde_json::{json, Map, Value};
use sha1::Sha1;

use super::db::{note_json, ticket_json, time, Change};
use super::webhooks::{HookEntity, RegisteredWebhook};
use super::{AutotaskSandbox, CalloutTarget, Shared, Ticket, WebhookTarget};
use crate::faults::Faults;

/// Over what `X-Hook-Signature` is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookSigning {
    /// HMAC-SHA1 of the body bytes as sent.
    #[default]
    RawBody,
    /// HMAC-SHA1 of the body as Autotask's .NET serializer writes it: inside
    /// strings `&`, `<`, `>`, `'`, `"`, backtick and `+` become `\u0026`,
    /// `\u003C`, `\u003E`, `\u0027`, `\u0022`, `\u0060`, `\u002B`, and every
    /// non-ASCII character its UTF-16 `\uXXXX` escape(s); the body itself is
    /// sent unescaped (see [`dotnet_escaped_json`]).
    NetEscaped,
}

/// How an extension callout sends the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CalloutTransport {
    /// POST of `application/x-www-form-urlencoded` name-value pairs.
    #[default]
    PostForm,
    /// GET with the same pairs in the query string, no body.
    Get,
    /// POST of a flat XML document (`text/xml`), one element per field.
    PostXml,
}

/// Autotask's webhook delivery rules; [`Default`] is Autotask's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRules {
    /// How long one attempt waits for a 2xx.
    pub attempt_timeout: Duration,
    /// Attempts per event, the first included.
    pub attempts_per_event: u32,
    /// Wait between two attempts of one event.
    pub retry_interval: Duration,
    /// Failed events in a row that deactivate the webhook.
    pub deactivate_after_failed_events: u32,
    /// Where the `Deactivated` notice goes (Autotask's `DeactivationUrl`).
    pub deactivation_url: Option<String>,
}

impl Default for DeliveryRules {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            attempts_per_event: 5,
            retry_interval: Duration::from_secs(30),
            deactivate_after_failed_events: 25,
            deactivation_url: None,
        }
    }
}

impl DeliveryRules {
    /// Autotask's counts with every wait scaled down, so tests that drive
    /// webhooks into failure run in seconds: 2 s per attempt, 20 ms between
    /// attempts.
    pub fn fast() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(2),
            retry_interval: Duration::from_millis(20),
            ..Self::default()
        }
    }
}

/// What the webhook's deliveries came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStatus {
    /// Autotask's `IsActive`: false once the webhook was deactivated.
    pub active: bool,
    /// Events answered 2xx (at some attempt).
    pub events_delivered: u64,
    /// Events dropped after every attempt failed.
    pub events_failed: u64,
    /// Failed events since the last delivered one.
    pub consecutive_failed_events: u32,
    /// HTTP attempts made, retries included.
    pub attempts: u64,
    /// Events not sent because the webhook was inactive.
    pub events_not_sent: u64,
    /// Times the webhook was deactivated.
    pub deactivations: u64,
    /// `Deactivated` notices sent to the deactivation URL.
    pub deactivation_notices: u64,
    /// Events waiting or being delivered.
    pub pending: u64,
}

impl Default for WebhookStatus {
    fn default() -> Self {
        Self {
            active: true,
            events_delivered: 0,
            events_failed: 0,
            consecutive_failed_events: 0,
            attempts: 0,
            events_not_sent: 0,
            deactivations: 0,
            deactivation_notices: 0,
            pending: 0,
        }
    }
}

/// Event options and the webhook's delivery line, shared with its tasks.
#[derive(Default)]
pub(super) struct Events {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    signing: WebhookSigning,
    transport: CalloutTransport,
    rules: DeliveryRules,
    status: WebhookStatus,
    /// Events in order of arrival at the line (after their jitter).
    line: VecDeque<Outgoing>,
    /// Copies still sleeping their jitter.
    in_transit: u64,
    /// Whether a task is delivering the line (at most one).
    draining: bool,
    in_flight: bool,
    /// `SequenceNumber` of events sent with [`AutotaskSandbox::emit_webhook_event`].
    sequences: HashMap<(String, i64), i64>,
}

/// One signed webhook event on its way.
#[derive(Clone)]
struct Outgoing {
    url: String,
    body: Vec<u8>,
    signature: String,
    /// To sign the `Deactivated` notice, should this event be the last straw.
    secret_key: String,
    signing: WebhookSigning,
    guid: String,
}

impl Events {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> WebhookStatus {
        let state = self.state();
        WebhookStatus {
            pending: state.in_transit + state.line.len() as u64 + u64::from(state.in_flight),
            ..state.status.clone()
        }
    }

    /// Sends `outgoing` according to the fault plan, each copy joining the
    /// line after its jitter (so jitter still reorders events).
    fn submit(self: &Arc<Self>, outgoing: Outgoing, faults: &Faults, http: &reqwest::Client) {
        if !self.state().status.active {
            self.state().status.events_not_sent += 1;
            return;
        }
        for delay in faults.webhook_plan() {
            if delay.is_zero() {
                self.join_line(outgoing.clone(), faults, http);
                continue;
            }
            self.state().in_transit += 1;
            let (events, outgoing, faults, http) =
                (self.clone(), outgoing.clone(), faults.clone(), http.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                events.state().in_transit -= 1;
                events.join_line(outgoing, &faults, &http);
            });
        }
    }

    fn join_line(self: &Arc<Self>, outgoing: Outgoing, faults: &Faults, http: &reqwest::Client) {
        let start = {
            let mut state = self.state();
            state.line.push_back(outgoing);
            !std::mem::replace(&mut state.draining, true)
        };
        if start {
            tokio::spawn(drain(self.clone(), faults.clone(), http.clone()));
        }
    }
}

/// Delivers the line, one event at a time, by the delivery rules.
async fn drain(events: Arc<Events>, faults: Faults, http: reqwest::Client) {
    loop {
        let (next, rules) = {
            let mut state = events.state();
            let Some(next) = state.line.pop_front() else {
                state.draining = false;
                return;
            };
            if !state.status.active {
                state.status.events_not_sent += 1;
                continue;
            }
            state.in_flight = true;
            (next, state.rules.clone())
        };
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            ("X-Hook-Signature", next.signature.clone()),
        ];
        let mut delivered = false;
        for attempt in 0..rules.attempts_per_event.max(1) {
            if attempt > 0 {
                tokio::time::sleep(rules.retry_interval).await;
            }
            events.state().status.attempts += 1;
            let request = http
                .post(&next.url)
                .timeout(rules.attempt_timeout)
                .body(next.body.clone());
            if send(request, &headers).await {
                delivered = true;
                break;
            }
        }
        faults.record_webhook(delivered);
        let deactivated = {
            let mut state = events.state();
            state.in_flight = false;
            let status = &mut state.status;
            if delivered {
                status.events_delivered += 1;
                status.consecutive_failed_events = 0;
                false
            } else {
                status.events_failed += 1;
                status.consecutive_failed_events += 1;
                let last_straw = status.active
                    && status.consecutive_failed_events >= rules.deactivate_after_failed_events;
                if last_straw {
                    status.active = false;
                    status.deactivations += 1;
                    tracing::warn!(
                        failed_events = status.consecutive_failed_events,
                        "sandbox Autotask deactivated its webhook"
                    );
                }
                last_straw
            }
        };
        if let (true, Some(url)) = (deactivated, rules.deactivation_url.clone()) {
            let notice = json!({
                "Action": "Deactivated",
                "Guid": next.guid,
                "EntityType": "Ticket",
                "Id": 0,
                "Fields": {},
                "EventTime": time(&Utc::now()),
                "SequenceNumber": 0,
                "PersonID": 0,
            });
            let (body, signature) = signed(&notice, &next.secret_key, next.signing);
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("X-Hook-Signature", signature),
            ];
            let request = http.post(url).timeout(rules.attempt_timeout).body(body);
            send(request, &headers).await;
            events.state().status.deactivation_notices += 1;
        }
    }
}

/// Sends one request; whether it was answered 2xx.
async fn send(mut request: reqwest::RequestBuilder, headers: &[(&str, String)]) -> bool {
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    matches!(request.send().await, Ok(r) if r.status().is_success())
}

/// The webhook body as sent and its `X-Hook-Signature` (`sha1=<base64>`).
fn signed(payload: &Value, secret_key: &str, signing: WebhookSigning) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(payload).expect("JSON values serialize");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    match signing {
        WebhookSigning::RawBody => mac.update(&body),
        WebhookSigning::NetEscaped => mac.update(&dotnet_escaped_json(payload)),
    }
    let signature = format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()));
    (body, signature)
}

/// `value` serialized compactly as Autotask's .NET serializer writes the
/// text it signs: the same bytes as `serde_json::to_vec`, except that inside
/// strings `&`, `<`, `>`, `'`, backtick and `+` become `\u0026`, `\u003C`,
/// `\u003E`, `\u0027`, `\u0060`, `\u002B`, a quote `\u0022` (not `\"`), and
/// every non-ASCII character its UTF-16 escape(s) in upper-case hex
/// (`é` → `\u00E9`, `😀` → `\uD83D\uDE00`). Other escapes (`\\`, `\n`, ...)
/// are written as usual.
pub fn dotnet_escaped_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, DotNetEscapes);
    serde::Serialize::serialize(value, &mut serializer).expect("JSON values serialize");
    out
}

struct DotNetEscapes;

impl Formatter for DotNetEscapes {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            match c {
                '&' | '<' | '>' | '\'' | '`' | '+' => write!(writer, "\\u{:04X}", c as u32)?,
                c if !c.is_ascii() => {
                    let mut units = [0_u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        write!(writer, "\\u{unit:04X}")?;
                    }
                }
                c => writer.write_all(&[c as u8])?,
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        match char_escape {
            CharEscape::Quote => writer.write_all(b"\\u0022"),
            other => CompactFormatter.write_char_escape(writer, other),
        }
    }
}

/// The fields an extension callout sends for `ticket`.
fn callout_fields(ticket: &Ticket) -> Vec<(&'static str, String)> {
    vec![
        ("id", ticket.id.to_string()),
        ("TicketNumber", ticket.ticket_number.clone()),
        ("Title", ticket.title.clone()),
        ("Status", ticket.status.to_string()),
        ("Priority", ticket.priority.to_string()),
        ("CompanyID", ticket.company_id.to_string()),
        (
            "QueueID",
            ticket.queue_id.map(|q| q.to_string()).unwrap_or_default(),
        ),
        ("ExternalID", ticket.external_id.clone().unwrap_or_default()),
        ("LastActivityDate", time(&ticket.last_activity_date)),
    ]
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl Shared {
    /// Delivers the callout and webhook of one change. Never called with a lock held.
    pub(super) fn fire(&self, change: Change, actor: i64) {
        let (callout, webhook) = {
            let config = self.config();
            (config.callout.clone(), config.webhook.clone())
        };
        let ticket = match &change {
            Change::Ticket { ticket, .. } | Change::Note { ticket, .. } => ticket,
        };
        if let Some(callout) = callout {
            self.send_callout(&callout, ticket);
        }
        self.send_registered(&change, actor);
        let Some(webhook) = webhook else { return };
        if webhook.excluded_resource_ids.contains(&actor) {
            return;
        }
        let now = time(&Utc::now());
        let payload = match &change {
            Change::Ticket {
                action,
                ticket,
                fields,
                sequence,
            } => {
                let mut fields = fields.clone();
                fields.insert("TicketNumber".to_owned(), json!(ticket.ticket_number));
                json!({
                    "Action": action,
                    "Guid": self.webhook_guid,
                    "EntityType": "Ticket",
                    "Id": ticket.id,
                    "Fields": fields,
                    "EventTime": now,
                    "SequenceNumber": sequence,
                    "PersonID": actor,
                })
            }
            Change::Note { note, sequence, .. } => json!({
                "Action": "Create",
                "Guid": self.webhook_guid,
                "EntityType": "TicketNote",
                "Id": note.id,
                "Fields": {
                    "TicketID": note.ticket_id.to_string(),
                    "Title": note.title,
                    "Publish": note.publish.to_string(),
                    "NoteType": note.note_type.to_string(),
                },
                "EventTime": now,
                "SequenceNumber": sequence,
                "PersonID": actor,
            }),
        };
        self.send_webhook(&webhook, &payload);
    }

    /// Signs `payload` as the webhook is configured to and puts it on the
    /// delivery line.
    fn send_webhook(&self, webhook: &WebhookTarget, payload: &Value) {
        self.send_signed(
            &webhook.url,
            &webhook.secret_key,
            &self.webhook_guid,
            payload,
        );
    }

    /// Signs `payload` with `secret_key` (in the configured form) and puts
    /// it on the delivery line.
    fn send_signed(&self, url: &str, secret_key: &str, guid: &str, payload: &Value) {
        let signing = self.events.state().signing;
        let (body, signature) = signed(payload, secret_key, signing);
        let outgoing = Outgoing {
            url: url.to_owned(),
            body,
            signature,
            secret_key: secret_key.to_owned(),
            signing,
            guid: guid.to_owned(),
        };
        self.events.submit(outgoing, &self.faults, &self.http);
    }

    /// The events of one change to the webhooks registered through the API
    /// (`webhooks`), as Autotask sends them: only to active, ready webhooks
    /// of the change's entity subscribed to its action, not when the acting
    /// resource is excluded, not for an update that changed no subscribed
    /// field; `Fields` holds the changed subscribed fields and the
    /// display-always ones, values as strings; `Guid` is the webhook's;
    /// signed with its own `SecretKey`. They share the delivery line (and
    /// its rules and status) with the configured webhook.
    fn send_registered(&self, change: &Change, actor: i64) {
        let (entity, action, id, sequence, values, changed) = match change {
            Change::Ticket {
                action,
                ticket,
                fields,
                sequence,
            } => (
                HookEntity::Ticket,
                *action,
                ticket.id,
                *sequence,
                ticket_json(ticket),
                (*action != "Create").then(|| {
                    fields
                        .keys()
                        .map(|k| k.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                }),
            ),
            Change::Note { note, sequence, .. } => (
                HookEntity::TicketNote,
                "Create",
                note.id,
                *sequence,
                note_json(note),
                None,
            ),
        };
        let hooks: Vec<RegisteredWebhook> = self
            .hooks()
            .webhooks
            .iter()
            .filter(|h| {
                h.entity == entity
                    && h.active
                    && h.is_ready()
                    && match action {
                        "Create" => h.on_create,
                        "Update" => h.on_update,
                        "Delete" => h.on_delete,
                        _ => false,
                    }
                    && !h.excluded.iter().any(|(_, r)| *r == actor)
            })
            .cloned()
            .collect();
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        for hook in hooks {
            let mut fields = Map::new();
            let mut fired = false;
            for f in &hook.fields {
                let Some(name) = entity.field_name(f.field_id) else {
                    continue;
                };
                let was_changed = changed
                    .as_ref()
                    .is_none_or(|c| c.contains(&name.to_ascii_lowercase()));
                let value = values.get(name).and_then(text);
                if f.subscribed && was_changed && (changed.is_some() || value.is_some()) {
                    fired = true;
                }
                if f.display_always || (f.subscribed && was_changed) {
                    if let Some(value) = value {
                        let mut key = name.to_owned();
                        key[..1].make_ascii_uppercase();
                        fields.insert(key, Value::String(value));
                    }
                }
            }
            if !fired {
                continue;
            }
            let payload = json!({
                "Action": action,
                "Guid": hook.guid,
                "EntityType": match entity {
                    HookEntity::Ticket => "Ticket",
                    HookEntity::TicketNote => "TicketNote",
                },
                "Id": id,
                "Fields": fields,
                "EventTime": time(&Utc::now()),
                "SequenceNumber": sequence,
                "PersonID": actor,
            });
            self.send_signed(&hook.webhook_url, &hook.secret_key, &hook.guid, &payload);
        }
    }

    fn send_callout(&self, callout: &CalloutTarget, ticket: &Ticket) {
        let transport = self.events.state().transport;
        let fields = callout_fields(ticket);
        let form = serde_urlencoded::to_string(&fields).expect("strings encode as form data");
        let (method, url, content_type, body) = match transport {
            CalloutTransport::PostForm => (
                reqwest::Method::POST,
                callout.url.clone(),
                Some("application/x-www-form-urlencoded"),
                form.into_bytes(),
            ),
            CalloutTransport::Get => {
                let separator = if callout.url.contains('?') { '&' } else { '?' };
                (
                    reqwest::Method::GET,
                    format!("{}{separator}{form}", callout.url),
                    None,
                    Vec::new(),
                )
            }
            CalloutTransport::PostXml => {
                let mut xml = String::from(r#"<?xml version="1.0" encoding="utf-8"?><Ticket>"#);
                for (name, value) in &fields {
                    xml.push_str(&format!("<{name}>{}</{name}>", xml_text(value)));
                }
                xml.push_str("</Ticket>");
                (
                    reqwest::Method::POST,
                    callout.url.clone(),
                    Some("text/xml; charset=utf-8"),
                    xml.into_bytes(),
                )
            }
        };
        let credentials = STANDARD.encode(format!("{}:{}", callout.username, callout.password));
        let mut headers = vec![("Authorization", format!("Basic {credentials}"))];
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type.to_owned()));
        }
        for delay in self.faults.webhook_plan() {
            let (faults, http) = (self.faults.clone(), self.http.clone());
            let (method, url, headers, body) =
                (method.clone(), url.clone(), headers.clone(), body.clone());
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut request = http.request(method, url);
                if !body.is_empty() {
                    request = request.body(body);
                }
                faults.record_webhook(send(request, &headers).await);
            });
        }
    }
}

// ---------------------------------------------------------------------------
// The handle: event options, the webhook's state, events of any kind
// ---------------------------------------------------------------------------

impl AutotaskSandbox {
    /// Over what the webhook's `X-Hook-Signature` is computed from now on.
    pub fn set_webhook_signing(&self, signing: WebhookSigning) {
        self.shared.events.state().signing = signing;
    }

    /// How the extension callout sends the ticket from now on.
    pub fn set_callout_transport(&self, transport: CalloutTransport) {
        self.shared.events.state().transport = transport;
    }

    /// The webhook's delivery rules from the next event on.
    pub fn set_delivery_rules(&self, rules: DeliveryRules) {
        self.shared.events.state().rules = rules;
    }

    /// Whether the webhook is active and what its deliveries came to.
    pub fn webhook_status(&self) -> WebhookStatus {
        self.shared.events.status()
    }

    /// Sets a deactivated webhook active again (as an admin does in Autotask)
    /// and clears its count of failed events in a row.
    pub fn reactivate_webhook(&self) {
        let mut state = self.shared.events.state();
        state.status.active = true;
        state.status.consecutive_failed_events = 0;
    }

    /// Waits until no webhook event is waiting or being delivered, up to
    /// `limit`; returns the status then.
    pub async fn webhook_settled(&self, limit: Duration) -> WebhookStatus {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.webhook_status();
            if status.pending == 0 || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends a webhook event of any entity type and action, shaped and
    /// signed as Autotask sends them (the webhook's `Guid`, the next
    /// `SequenceNumber` of that entity and id, `EventTime` now, `PersonID`),
    /// through the webhook's delivery rules: the events a misconfigured or
    /// wider webhook sends (Company or Contact events, a TicketNote webhook
    /// without `TicketID` among its fields, deleted tickets...). Returns
    /// false, sending nothing, when no webhook is configured or `person_id`
    /// is one of its excluded resources.
    pub fn emit_webhook_event(
        &self,
        entity_type: &str,
        action: &str,
        id: i64,
        fields: Value,
        person_id: i64,
    ) -> bool {
        let Some(webhook) = self.shared.config().webhook.clone() else {
            return false;
        };
        if webhook.excluded_resource_ids.contains(&person_id) {
            return false;
        }
        let sequence = {
            let mut state = self.shared.events.state();
            let counter = state
                .sequences
                .entry((entity_type.to_owned(), id))
                .or_insert(0);
            *counter += 1;
            *counter
        };
        let payload = json!({
            "Action": action,
            "Guid": self.shared.webhook_guid,
            "EntityType": entity_type,
            "Id": id,
            "Fields": fields,
            "EventTime": time(&Utc::now()),
            "SequenceNumber": sequence,
            "PersonID": person_id,
        });
        self.shared.send_webhook(&webhook, &payload);
        true
    }

    /// Sends `payload` as it is, signed, through the webhook's delivery
    /// rules; false when no webhook is configured.
    pub fn emit_webhook_payload(&self, payload: &Value) -> bool {
        let Some(webhook) = self.shared.config().webhook.clone() else {
            return false;
        };
        self.shared.send_webhook(&webhook, payload);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

    use axum::body::Bytes;
    use axum::extract::RawQuery;
    use axum::http::{HeaderMap, Method, StatusCode};
    use tokio::sync::mpsc;

    use super::*;
    use crate::autotask::AutotaskSandboxConfig;

    struct Received {
        method: Method,
        query: Option<String>,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A receiver answering `status` (shared, so a test can change it).
    async fn receiver(status: Arc<AtomicU16>) -> (String, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            move |method: Method, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes| {
                let (tx, status) = (tx.clone(), status.clone());
                async move {
                    let _ = tx.send(Received {
                        method,
                        query,
                        headers,
                        body,
                    });
                    StatusCode::from_u16(status.load(Ordering::Relaxed)).unwrap()
                }
            },
        );
        let (url, _task) = crate::serve(app).await.unwrap();
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a delivery within 5 s")
            .expect("receiver open")
    }

    fn hmac(key: &str, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(data);
        format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    async fn sandbox_with_webhook(url: &str) -> AutotaskSandbox {
        let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
            .await
            .unwrap();
        sandbox.set_webhook(Some(WebhookTarget {
            url: url.to_owned(),
            secret_key: "key".to_owned(),
            excluded_resource_ids: Vec::new(),
        }));
        sandbox
    }

    #[test]
    fn dotnet_escapes_the_documented_characters_inside_strings_only() {
        let value = json!({"A&B": "x & y + <z> 'q' \"d\" `b` café 😀 \\ \n", "n": 1e5, "m": -2});
        let escaped = String::from_utf8(dotnet_escaped_json(&value)).unwrap();
        assert_eq!(
            escaped,
            r#"{"A\u0026B":"x \u0026 y \u002B \u003Cz\u003E \u0027q\u0027 \u0022d\u0022 \u0060b\u0060 caf\u00E9 \uD83D\uDE00 \\ \n","m":-2,"n":100000.0}"#
        );
        // Same structure as the plain serialization, and the same value.
        let plain = serde_json::to_string(&value).unwrap();
        assert!(plain.contains("x & y + <z>") && plain.contains("café"));
        assert_eq!(serde_json::from_str::<Value>(&escaped).unwrap(), value);
        // Nothing to escape: both forms are the same bytes.
        let simple = json!({"EntityType": "Ticket", "Id": 7, "Fields": {"Status": "5"}});
        assert_eq!(
            dotnet_escaped_json(&simple),
            serde_json::to_vec(&simple).unwrap()
        );
    }

    #[tokio::test]
    async fn the_webhook_signs_the_raw_body_or_the_dotnet_escaped_one() {
        let (url, mut rx) = receiver(Arc::new(AtomicU16::new(200))).await;
        let sandbox = sandbox_with_webhook(&url).await;
        let fields = json!({"Title": "Backup & restore + \"quotes\" for Zoë"});
        for signing in [WebhookSigning::RawBody, WebhookSigning::NetEscaped] {
            sandbox.set_webhook_signing(signing);
            assert!(sandbox.emit_webhook_event("Ticket", "Update", 7, fields.clone(), 5));
            let got = next(&mut rx).await;
            let body: Value = serde_json::from_slice(&got.body).unwrap();
            assert_eq!(body["Fields"], fields, "the body is sent unescaped");
            assert!(std::str::from_utf8(&got.body).unwrap().contains("Zoë"));
            let signature = got.headers["x-hook-signature"].to_str().unwrap();
            let over = match signing {
                WebhookSigning::RawBody => got.body.to_vec(),
                WebhookSigning::NetEscaped => dotnet_escaped_json(&body),
            };
            assert_eq!(signature, hmac("key", &over), "{signing:?}");
            if signing == WebhookSigning::NetEscaped {
                assert_ne!(over, got.body.to_vec(), "the two forms differ here");
            }
        }
    }

    #[tokio::test]
    async fn callouts_use_the_configured_transport() {
        let (url, mut rx) = receiver(Arc::new(AtomicU16::new(200))).await;
        let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
            .await
            .unwrap();
        sandbox.set_callout(Some(CalloutTarget {
            url,
            username: "callout".to_owned(),
            password: "pw".to_owned(),
        }));
        let company = sandbox.add_company("Contoso");
        let tech = sandbox.add_resource("Tess");
        let ticket = {
            let mut db = sandbox.shared.db();
            super::super::db::new_ticket(&mut db, tech, Utc::now(), |t| {
                t.company_id = company;
                t.title = "Printer & scanner <3".to_owned();
            })
        };
        let basic = format!("Basic {}", STANDARD.encode("callout:pw"));
        for transport in [
            CalloutTransport::PostForm,
            CalloutTransport::Get,
            CalloutTransport::PostXml,
        ] {
            sandbox.set_callout_transport(transport);
            sandbox.set_status(
                ticket.id,
                tech,
                if transport == CalloutTransport::Get {
                    8
                } else {
                    5
                },
            );
            let got = next(&mut rx).await;
            assert_eq!(
                got.headers["authorization"],
                basic.as_str(),
                "{transport:?}"
            );
            match transport {
                CalloutTransport::PostForm => {
                    assert_eq!(got.method, Method::POST);
                    assert_eq!(
                        got.headers["content-type"],
                        "application/x-www-form-urlencoded"
                    );
                    let pairs: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(&got.body).unwrap();
                    assert!(pairs.contains(&("id".to_owned(), ticket.id.to_string())));
                    assert!(pairs.contains(&("Title".to_owned(), ticket.title.clone())));
                }
                CalloutTransport::Get => {
                    assert_eq!(got.method, Method::GET);
                    assert!(got.body.is_empty());
                    assert!(got.headers.get("content-type").is_none());
                    let pairs: Vec<(String, String)> =
                        serde_urlencoded::from_str(got.query.as_deref().unwrap()).unwrap();
                    assert!(pairs.contains(&("id".to_owned(), ticket.id.to_string())));
                    assert!(pairs.contains(&("Title".to_owned(), ticket.title.clone())));
                    assert!(pairs.contains(&("Status".to_owned(), "8".to_owned())));
                }
                CalloutTransport::PostXml => {
                    assert_eq!(got.method, Method::POST);
                    assert_eq!(got.headers["content-type"], "text/xml; charset=utf-8");
                    let xml = std::str::from_utf8(&got.body).unwrap();
                    assert!(xml.starts_with("<?xml"), "{xml}");
                    assert!(xml.contains(&format!("<id>{}</id>", ticket.id)), "{xml}");
                    assert!(
                        xml.contains("<Title>Printer &amp; scanner &lt;3</Title>"),
                        "{xml}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn failing_events_are_retried_in_order_then_dropped_and_25_in_a_row_deactivate() {
        let status = Arc::new(AtomicU16::new(500));
        let (url, mut rx) = receiver(status.clone()).await;
        let (notice_url, mut notices) = receiver(Arc::new(AtomicU16::new(200))).await;
        let sandbox = sandbox_with_webhook(&url).await;
        sandbox.set_delivery_rules(DeliveryRules {
            retry_interval: Duration::from_millis(5),
            deactivation_url: Some(notice_url),
            ..DeliveryRules::fast()
        });

        // One failing event: 5 attempts, then dropped; the next one waits
        // behind it and is delivered once the receiver heals.
        assert!(sandbox.emit_webhook_event("Ticket", "Update", 1, json!({}), 5));
        for _ in 0..5 {
            let got = next(&mut rx).await;
            let body: Value = serde_json::from_slice(&got.body).unwrap();
            assert_eq!(body["Id"], 1);
        }
        let after = sandbox.webhook_settled(Duration::from_secs(5)).await;
        assert_eq!(
            (
                after.events_failed,
                after.attempts,
                after.consecutive_failed_events
            ),
            (1, 5, 1)
        );
        status.store(200, Ordering::Relaxed);
        assert!(sandbox.emit_webhook_event("Ticket", "Update", 2, json!({}), 5));
        let got = next(&mut rx).await;
        assert_eq!(serde_json::from_slice::<Value>(&got.body).unwrap()["Id"], 2);
        let after = sandbox.webhook_settled(Duration::from_secs(5)).await;
        assert_eq!(
            (
                after.events_delivered,
                after.consecutive_failed_events,
                after.active
            ),
            (1, 0, true)
        );

        // 24 failed events in a row keep it active; the 25th deactivates it.
        status.store(401, Ordering::Relaxed);
        for id in 0..24 {
            sandbox.emit_webhook_event("Ticket", "Update", 100 + id, json!({}), 5);
        }
        let after = sandbox.webhook_settled(Duration::from_secs(20)).await;
        assert_eq!((after.consecutive_failed_events, after.active), (24, true));
        sandbox.emit_webhook_event("Ticket", "Update", 200, json!({}), 5);
        let after = sandbox.webhook_settled(Duration::from_secs(20)).await;
        assert_eq!(
            (
                after.consecutive_failed_events,
                after.active,
                after.deactivations
            ),
            (25, false, 1)
        );
        let notice = next(&mut notices).await;
        let notice: Value = serde_json::from_slice(&notice.body).unwrap();
        assert_eq!(notice["Action"], "Deactivated");
        assert_eq!(notice["Guid"], sandbox.webhook_guid());

        // Inactive: nothing is sent, even to a healthy receiver.
        while rx.try_recv().is_ok() {}
        status.store(200, Ordering::Relaxed);
        sandbox.emit_webhook_event("Ticket", "Update", 300, json!({}), 5);
        let after = sandbox.webhook_settled(Duration::from_secs(5)).await;
        assert_eq!(after.events_not_sent, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "an inactive webhook sends nothing");

        // Reactivated, it delivers again.
        sandbox.reactivate_webhook();
        sandbox.emit_webhook_event("Ticket", "Update", 301, json!({}), 5);
        let got = next(&mut rx).await;
        assert_eq!(
            serde_json::from_slice::<Value>(&got.body).unwrap()["Id"],
            301
        );
    }

    #[tokio::test]
    async fn an_attempt_that_outlasts_the_timeout_fails() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                StatusCode::OK
            }
        });
        let (url, _task) = crate::serve(app).await.unwrap();
        let sandbox = sandbox_with_webhook(&url).await;
        sandbox.set_delivery_rules(DeliveryRules {
            attempt_timeout: Duration::from_millis(50),
            attempts_per_event: 2,
            retry_interval: Duration::from_millis(5),
            ..DeliveryRules::default()
        });
        sandbox.emit_webhook_event("Company", "Update", 9, json!({}), 5);
        let after = sandbox.webhook_settled(Duration::from_secs(5)).await;
        assert_eq!((after.events_failed, after.attempts), (1, 2));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn excluded_resources_and_missing_webhooks_send_nothing() {
        let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
            .await
            .unwrap();
        assert!(!sandbox.emit_webhook_event("Ticket", "Update", 1, json!({}), 5));
        assert!(!sandbox.emit_webhook_payload(&json!({})));
        sandbox.set_webhook(Some(WebhookTarget {
            url: "http://127.0.0.1:9/".to_owned(),
            secret_key: "key".to_owned(),
            excluded_resource_ids: vec![5],
        }));
        assert!(!sandbox.emit_webhook_event("Ticket", "Update", 1, json!({}), 5));
    }
}
