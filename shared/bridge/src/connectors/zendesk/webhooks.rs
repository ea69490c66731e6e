//! Registering the bridge's Zendesk webhook through the Webhooks API, so the
//! admin does not create it by hand and copy its signing secret.
//!
//! Contract (Zendesk Webhooks API, developer.zendesk.com/api-reference/
//! webhooks/webhooks-api/webhooks/; request shapes also as used by
//! nukosuke/go-zendesk `zendesk/webhook.go`):
//! - `GET /api/v2/webhooks` lists webhooks in cursor pages (`page[size]`,
//!   `page[after]`, `meta.has_more`, `meta.after_cursor`); `filter[status]`
//!   and `filter[name_contains]` narrow the list. The Webhooks API takes no
//!   `.json` suffix (blakmatrix/node-zendesk#389).
//! - `POST /api/v2/webhooks` with `{"webhook":{name, endpoint, http_method,
//!   request_format, status, subscriptions}}` answers 201 `{"webhook":{id,…}}`.
//!   To subscribe a webhook to Zendesk events, `http_method` must be `POST`
//!   and `request_format` `json`; `subscriptions` lists event types
//!   (`zen:event-type:ticket.comment_added`, …). A webhook subscribed to
//!   events needs no trigger: Zendesk posts the fixed event schema itself.
//! - `GET /api/v2/webhooks/{id}/signing_secret` answers
//!   `{"signing_secret":{"algorithm":"SHA256","secret":"…"}}`; Zendesk makes
//!   the secret, it cannot be chosen.
//! - `DELETE /api/v2/webhooks/{id}` answers 204.
//! - Webhooks are managed by admins only: another role gets 403.

use crate::connectors::http::same_endpoint;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::wire::PageMeta;
use super::{read_json, ZendeskClient, SYSTEM};
use crate::config::Secret;
use crate::error::ApiError;
use crate::setup::RegisteredHook;

/// The ticket events the bridge's ingest acts on (see `inbound`): a new
/// ticket, a comment, and the fields the sync mirrors. Deletions are not
/// mirrored, so they are not asked for.
pub const WEBHOOK_SUBSCRIPTIONS: [&str; 6] = [
    "zen:event-type:ticket.created",
    "zen:event-type:ticket.comment_added",
    "zen:event-type:ticket.status_changed",
    "zen:event-type:ticket.priority_changed",
    "zen:event-type:ticket.subject_changed",
    "zen:event-type:ticket.custom_field_changed",
];

/// A webhook as the list describes it (the signing secret is not listed).
#[derive(Debug, Clone, Deserialize)]
struct WireWebhook {
    id: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    http_method: String,
    #[serde(default)]
    request_format: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    subscriptions: Option<Vec<String>>,
}

impl WireWebhook {
    fn points_at(&self, endpoint: &str) -> bool {
        same_endpoint(&self.endpoint, endpoint)
    }

    /// Active, posting JSON, and subscribed to every event the bridge needs.
    fn is_wanted(&self, endpoint: &str) -> bool {
        let subscriptions = self.subscriptions.as_deref().unwrap_or_default();
        self.points_at(endpoint)
            && self.status == "active"
            && self.http_method.eq_ignore_ascii_case("POST")
            && self.request_format == "json"
            && WEBHOOK_SUBSCRIPTIONS
                .iter()
                .all(|wanted| subscriptions.iter().any(|s| s == wanted))
    }
}

#[derive(Deserialize)]
struct WebhookPage {
    #[serde(default)]
    webhooks: Vec<WireWebhook>,
    #[serde(default)]
    meta: PageMeta,
}

#[derive(Deserialize)]
struct WebhookEnvelope {
    webhook: WireWebhook,
}

#[derive(Deserialize)]
struct SigningSecretEnvelope {
    signing_secret: WireSigningSecret,
}

#[derive(Deserialize)]
struct WireSigningSecret {
    #[serde(default)]
    algorithm: String,
    secret: Secret,
}

/// What [`ZendeskClient::ensure_webhook`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookChanges {
    pub created: bool,
    /// Other webhooks to the same endpoint (duplicates, inactive ones, or
    /// ones not subscribed to the bridge's events) that were deleted.
    pub removed: usize,
}

/// The webhook the bridge keeps, and what was changed to get there.
#[derive(Debug, Clone)]
pub struct EnsuredWebhook {
    pub hook: RegisteredHook,
    pub changes: WebhookChanges,
}

impl ZendeskClient {
    /// Every webhook of the account, through its cursor pages.
    async fn webhooks(&self) -> Result<Vec<WireWebhook>, ApiError> {
        let url = format!("{}/api/v2/webhooks", self.base_url);
        let mut all = Vec::new();
        self.each_cursor_page(&url, &[], "webhooks", |page: WebhookPage| {
            all.extend(page.webhooks);
            page.meta
        })
        .await?;
        Ok(all)
    }

    async fn signing_secret(&self, id: &str) -> Result<Secret, ApiError> {
        let request = self.http.get(format!(
            "{}/api/v2/webhooks/{}/signing_secret",
            self.base_url,
            path_segment(id)?
        ));
        let envelope: SigningSecretEnvelope =
            read_json(self.send(request, "webhook signing secret").await?).await?;
        let secret = envelope.signing_secret;
        if secret.secret.is_empty() {
            return Err(super::malformed("the webhook's signing secret is empty"));
        }
        // The bridge verifies HMAC-SHA256 only (`inbound`).
        if !secret.algorithm.is_empty() && !secret.algorithm.eq_ignore_ascii_case("sha256") {
            return Err(super::malformed(format!(
                "the webhook signs with {}, the bridge verifies SHA256 only",
                secret.algorithm
            )));
        }
        Ok(secret.secret)
    }

    /// Makes sure exactly one webhook posts the bridge's ticket events to
    /// `endpoint`, and reads its signing secret; safe to repeat. A webhook
    /// already pointing there that is active and subscribed to every event
    /// in [`WEBHOOK_SUBSCRIPTIONS`] is kept (the oldest such), otherwise one
    /// named `name` is created; every other webhook pointing at `endpoint`
    /// is deleted, so no event arrives twice. The new one is created before
    /// the old ones go, so events keep arriving throughout.
    ///
    /// Errors: a 403 (the user is not an admin) is a permanent
    /// [`ApiError::Forbidden`] that says so; the rest as every call.
    #[tracing::instrument(name = "zendesk.ensure_webhook", skip(self, endpoint))]
    pub async fn ensure_webhook(
        &self,
        endpoint: &str,
        name: &str,
    ) -> Result<EnsuredWebhook, ApiError> {
        self.ensure_webhook_inner(endpoint, name)
            .await
            .map_err(|err| match err {
                ApiError::Unauthorized { status: 403, .. } => ApiError::Forbidden {
                    system: SYSTEM,
                    message: format!(
                        "Zendesk refused to manage webhooks for {} (403): only a Zendesk \
                         admin may create webhooks and read their signing secrets",
                        self.who()
                    ),
                },
                other => other,
            })
    }

    async fn ensure_webhook_inner(
        &self,
        endpoint: &str,
        name: &str,
    ) -> Result<EnsuredWebhook, ApiError> {
        let listed = self.webhooks().await?;
        let ours: Vec<&WireWebhook> = listed.iter().filter(|w| w.points_at(endpoint)).collect();
        let mut changes = WebhookChanges::default();
        let keep = match ours.iter().find(|w| w.is_wanted(endpoint)) {
            Some(kept) => kept.id.clone(),
            None => {
                let body = json!({"webhook": {
                    "name": name,
                    "description": "psa-bridge: ticket events for the PSA sync",
                    "endpoint": endpoint,
                    "http_method": "POST",
                    "request_format": "json",
                    "status": "active",
                    "subscriptions": WEBHOOK_SUBSCRIPTIONS,
                }});
                let request = self
                    .http
                    .post(format!("{}/api/v2/webhooks", self.base_url))
                    .json(&body);
                let created: WebhookEnvelope =
                    read_json(self.send(request, "webhook").await?).await?;
                changes.created = true;
                created.webhook.id
            }
        };
        for extra in ours.iter().filter(|w| w.id != keep) {
            let request = self.http.delete(format!(
                "{}/api/v2/webhooks/{}",
                self.base_url,
                path_segment(&extra.id)?
            ));
            match self.send(request, "webhook").await {
                Ok(_) | Err(ApiError::NotFound { .. }) => changes.removed += 1,
                Err(err) => return Err(err),
            }
        }
        let signing_secret = self.signing_secret(&keep).await?;
        tracing::info!(
            webhook = %keep,
            created = changes.created,
            removed = changes.removed,
            "zendesk webhook ensured"
        );
        Ok(EnsuredWebhook {
            hook: RegisteredHook {
                id: keep,
                signing_secret,
            },
            changes,
        })
    }
}

/// A webhook id as a path segment: Zendesk's ids are alphanumeric (ULIDs);
/// anything else is refused rather than sent.
fn path_segment(id: &str) -> Result<&str, ApiError> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(super::malformed(format!(
            "webhook id {:?} is not a Zendesk id",
            id.chars().take(70).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_without_trailing_slash_or_host_case() {
        assert!(same_endpoint(
            "https://Bridge.example.com/t/acme/zendesk/",
            "https://bridge.example.com/t/acme/zendesk"
        ));
        assert!(!same_endpoint(
            "https://bridge.example.com/t/acme/zendesk",
            "https://bridge.example.com/t/ACME/zendesk"
        ));
    }

    #[test]
    fn a_webhook_is_kept_only_if_it_posts_every_wanted_event() {
        let mut hook = WireWebhook {
            id: "01F1KRFQ6BG29CNWFR60NK5FNY".into(),
            endpoint: "https://b.example/t/a/zendesk".into(),
            http_method: "POST".into(),
            request_format: "json".into(),
            status: "active".into(),
            subscriptions: Some(
                WEBHOOK_SUBSCRIPTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        };
        assert!(hook.is_wanted("https://b.example/t/a/zendesk"));
        hook.subscriptions = Some(vec!["conditional_ticket_events".into()]);
        assert!(!hook.is_wanted("https://b.example/t/a/zendesk"));
    }

    #[test]
    fn odd_ids_are_not_put_into_paths() {
        assert!(path_segment("01F1KRFQ6BG29CNWFR60NK5FNY").is_ok());
        assert!(path_segment("../users").is_err());
        assert!(path_segment("").is_err());
    }
}
