//! Outgoing event webhooks: Zendesk's ticket event payloads, signed with
//! HMAC-SHA256 and delivered through the fault plan.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;

use super::state::{stamp, Hooks, Inner};
use super::{Shared, Ticket};
use crate::faults::deliver_webhook;

impl Shared {
    /// Signs and sends webhooks; called after the state lock is released.
    pub(super) fn send(&self, hooks: Hooks) {
        let Some(url) = hooks.url else { return };
        for payload in hooks.payloads {
            let body = serde_json::to_vec(&payload).expect("JSON serializes");
            let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let signature = sign(&hooks.secret, &timestamp, &body);
            let headers = vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Zendesk-Webhook-Signature".to_owned(), signature),
                (
                    "X-Zendesk-Webhook-Signature-Timestamp".to_owned(),
                    timestamp,
                ),
            ];
            deliver_webhook(&self.faults, &self.http, url.clone(), headers, body);
        }
    }
}

/// base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk signs webhooks.
/// (Duplicated from the bridge on purpose: the sandbox must not depend on it.)
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

impl Inner {
    pub(super) fn hooks(&self, payloads: Vec<Value>) -> Hooks {
        Hooks {
            url: self.webhook_url.clone(),
            secret: self.webhook_secret.clone(),
            payloads,
        }
    }

    /// An event webhook payload in the shape of Zendesk's ticket events.
    pub(super) fn event_payload(
        &self,
        ticket: &Ticket,
        kind: &str,
        actor: u64,
        via_api: bool,
        event: Value,
    ) -> Value {
        let upper = |s: &str| s.to_ascii_uppercase();
        json!({
            "account_id": 1_000_001,
            "detail": {
                "actor_id": actor.to_string(),
                "assignee_id": null,
                "brand_id": "1",
                "created_at": stamp(ticket.created_at),
                "custom_status": null,
                "description": ticket.description,
                "external_id": ticket.external_id,
                "form_id": "1",
                "group_id": null,
                "id": ticket.id.to_string(),
                "is_public": true,
                "organization_id": null,
                "priority": ticket.priority.as_deref().map(upper),
                "requester_id": ticket.requester_id.to_string(),
                "status": upper(&ticket.status),
                "subject": ticket.subject,
                "submitter_id": ticket.requester_id.to_string(),
                "tags": [],
                "type": null,
                "updated_at": stamp(ticket.updated_at),
                "via": { "channel": if via_api { "api" } else { "web" } },
            },
            "event": event,
            "id": uuid(),
            "subject": format!("zen:ticket:{}", ticket.id),
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
            "type": format!("zen:event-type:ticket.{kind}"),
            "zendesk_event_version": "2022-11-06",
        })
    }
}

fn uuid() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
