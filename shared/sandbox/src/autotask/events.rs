//! Outgoing events of a change: the extension callout (form data, HTTP
//! Basic) and the REST webhook (JSON, `X-Hook-Signature` HMAC-SHA1), both
//! delivered through the fault plan.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;

use super::db::{time, Change};
use super::Shared;
use crate::faults::deliver_webhook;

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
            let form = serde_urlencoded::to_string([
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
            ])
            .expect("strings encode as form data");
            let credentials = STANDARD.encode(format!("{}:{}", callout.username, callout.password));
            deliver_webhook(
                &self.faults,
                &self.http,
                callout.url,
                vec![
                    ("Authorization".to_owned(), format!("Basic {credentials}")),
                    (
                        "Content-Type".to_owned(),
                        "application/x-www-form-urlencoded".to_owned(),
                    ),
                ],
                form.into_bytes(),
            );
        }
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
        let body = serde_json::to_vec(&payload).expect("JSON values serialize");
        let mut mac = Hmac::<Sha1>::new_from_slice(webhook.secret_key.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(&body);
        let signature = format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()));
        deliver_webhook(
            &self.faults,
            &self.http,
            webhook.url,
            vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Hook-Signature".to_owned(), signature),
            ],
            body,
        );
    }
}
