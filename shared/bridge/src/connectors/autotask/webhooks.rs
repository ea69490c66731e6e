//! Registering the bridge's Autotask REST webhooks (Ticket and TicketNote)
//! through the API, so the admin does not create them by hand.
//!
//! Contract (../shared/specs/autotask-rest.md "REST webhooks"; the vendor
//! swagger has only the Company, Contact and ConfigurationItem webhook
//! entities, whose shapes the Ticket ones share):
//! - Entities `TicketWebhooks` and `TicketNoteWebhooks`: `POST {Entity}`
//!   creates (answers `{"itemId":n}`), `POST {Entity}/query` queries,
//!   `PATCH {Entity}` with `{id, …}` updates, `DELETE {Entity}/{id}` deletes,
//!   `GET {Entity}/{id}` reads (`{"item":{…}}`). Children
//!   `{Entity}/{parentId}/Fields` (`fieldID, isSubscribedField,
//!   isDisplayAlwaysField`, GET lists, POST adds, PATCH updates) and
//!   `{Entity}/{parentId}/ExcludedResources` (`resourceID`, GET lists, POST
//!   adds). URL shapes and model fields as in aenichols/ATREST-CSharp-Client
//!   @24fe5e68 `docs/CompanyWebhooksApi.md`, `CompanyWebhookFieldsChildApi.md`,
//!   `CompanyWebhookExcludedResourcesChildApi.md`, `CompanyWebhookModel.md`
//!   (the client was generated before the Ticket webhooks existed; it has
//!   no Ticket ones); entity names, camelCase bodies and the singular
//!   `TicketWebhooks`/`TicketNoteWebhooks` prefix as msoukhomlinov/
//!   n8n-nodes-autotask @5068192 `nodes/Autotask/helpers/webhook/urls.ts`
//!   and `AutotaskTrigger.node.ts` send them.
//! - Create needs `webhookUrl`, `deactivationUrl`, `secretKey` (≤ 64
//!   characters), `isSubscribedTo{Create,Update,Delete}Events`, `isActive`
//!   and `notificationEmailAddress` (fact sheet, S10). A webhook is
//!   `isReady` only once a subscribed field was added (S11, S4).
//! - `fieldID` is a value of the `fieldID` picklist of
//!   `GET {Entity}WebhookFields/entityInformation/fields` (label = the
//!   field), as n8n-nodes-autotask `helpers/webhook/fields.ts` reads it; the
//!   labels' exact spelling is not published, so they are matched without
//!   case, spaces or underscores.
//! - The secret key cannot be read back. Re-registering a webhook that
//!   exists therefore PATCHes `{id, secretKey}` with a new key (as
//!   n8n-nodes-autotask does for a webhook whose key it lost): afterwards the
//!   one key the console stores is the key both webhooks sign with, whoever
//!   made them. Events signed with the old key in the moment before the
//!   console stores the new one fail verification and are retried by
//!   Autotask (30 s later, fact sheet "Delivery and retries").
//! - The API user is found with `POST Resources/query` on `userName`, then
//!   `email` (ResourceModel in the vendor swagger has both), and added to
//!   each webhook's excluded resources so the bridge's own writes do not
//!   come back (S10).
//! - Autotask answers a missing permission with a 500 and a text ("…does not
//!   have adequate permissions…"), read as a permanent rejection like every
//!   other validation 500 of this client.

use crate::connectors::http::same_endpoint;
use rand::distributions::Alphanumeric;
use rand::Rng;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{CreateResult, ItemResult};
use super::{AutotaskClient, SYSTEM};
use crate::config::Secret;
use crate::error::ApiError;

/// Autotask's limit on `SecretKey`.
pub const SECRET_KEY_MAX: usize = 64;
/// Length of the keys the bridge generates (alphanumeric, ~285 bits).
const SECRET_KEY_LEN: usize = 48;

/// One of the two webhook entities the bridge registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookEntity {
    Ticket,
    TicketNote,
}

impl HookEntity {
    pub const ALL: [HookEntity; 2] = [HookEntity::Ticket, HookEntity::TicketNote];

    /// The webhook entity's path (`TicketWebhooks`).
    pub fn path(self) -> &'static str {
        match self {
            HookEntity::Ticket => "TicketWebhooks",
            HookEntity::TicketNote => "TicketNoteWebhooks",
        }
    }

    /// Where its field ids are described (`fieldID` picklist).
    fn field_info_entity(self) -> &'static str {
        match self {
            HookEntity::Ticket => "TicketWebhookFields",
            HookEntity::TicketNote => "TicketNoteWebhookFields",
        }
    }

    /// The fields the bridge asks for: `(names it may be labelled with,
    /// subscribed, display always, needed)`. A change of a subscribed field
    /// fires the webhook; the ingest needs only the ticket's id (the `Id` of
    /// a Ticket event, `TicketID` of a TicketNote event, see `inbound`), and
    /// reads the ticket itself, so the subscribed fields are the ones the
    /// sync mirrors. A field the tenant's Autotask does not offer is left
    /// out, unless it is needed.
    fn wanted_fields(self) -> &'static [WantedField] {
        match self {
            HookEntity::Ticket => TICKET_FIELDS,
            HookEntity::TicketNote => NOTE_FIELDS,
        }
    }
}

/// A field of a webhook the bridge wants.
#[derive(Debug, Clone, Copy)]
pub struct WantedField {
    /// Labels it may carry in the `fieldID` picklist, normalized (lower
    /// case, no spaces or underscores), preferred first.
    pub labels: &'static [&'static str],
    pub subscribed: bool,
    pub display_always: bool,
    /// Registration fails without it.
    pub needed: bool,
}

const fn field(labels: &'static [&'static str], subscribed: bool, always: bool) -> WantedField {
    WantedField {
        labels,
        subscribed,
        display_always: always,
        needed: false,
    }
}

/// Ticket fields the sync mirrors (status, priority, title, description,
/// queue, company, assignment, due date); `TicketNumber` is shown always, to
/// read the sync log.
const TICKET_FIELDS: &[WantedField] = &[
    WantedField {
        needed: true,
        ..field(&["status"], true, false)
    },
    field(&["priority"], true, false),
    field(&["title"], true, false),
    field(&["description"], true, false),
    field(&["queueid", "queue"], true, false),
    field(&["companyid", "company"], true, false),
    field(
        &["assignedresourceid", "assignedresource", "primaryresource"],
        true,
        false,
    ),
    field(&["duedatetime", "duedate"], true, false),
    field(&["ticketnumber"], false, true),
];

/// Note fields: a new or edited note fires through title, description or
/// publish; `TicketID` must be display-always or the event names no ticket.
const NOTE_FIELDS: &[WantedField] = &[
    WantedField {
        needed: true,
        ..field(&["ticketid", "ticket"], false, true)
    },
    WantedField {
        needed: true,
        ..field(&["description"], true, false)
    },
    field(&["title"], true, false),
    field(&["publish"], true, false),
];

/// Lower case without spaces, underscores or dashes.
fn normalized(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A newly generated secret key: 48 random alphanumeric characters (Autotask
/// takes up to [`SECRET_KEY_MAX`]).
pub fn generate_secret_key() -> Secret {
    let key: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(SECRET_KEY_LEN)
        .map(char::from)
        .collect();
    Secret::new(key)
}

/// A webhook as queried (the secret key is never returned).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHook {
    id: i64,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    is_ready: Option<bool>,
    #[serde(default)]
    is_subscribed_to_create_events: Option<bool>,
    #[serde(default)]
    is_subscribed_to_update_events: Option<bool>,
}

impl WireHook {
    fn points_at(&self, endpoint: &str) -> bool {
        self.webhook_url
            .as_deref()
            .is_some_and(|url| same_endpoint(url, endpoint))
    }

    /// Active and told of creates and updates: worth keeping.
    fn is_wanted(&self) -> bool {
        self.is_active == Some(true)
            && self.is_subscribed_to_create_events == Some(true)
            && self.is_subscribed_to_update_events == Some(true)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHookField {
    id: i64,
    #[serde(rename = "fieldID")]
    field_id: i64,
    #[serde(default)]
    is_subscribed_field: bool,
    #[serde(default)]
    is_display_always_field: bool,
}

#[derive(Debug, Deserialize)]
struct WireExcluded {
    #[serde(rename = "resourceID")]
    resource_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResourceRow {
    id: i64,
    #[serde(default)]
    email: Option<String>,
}

/// What was done to one webhook entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HookChanges {
    pub entity: HookEntity,
    /// The webhook kept (or created).
    pub id: i64,
    pub created: bool,
    /// Other webhooks to the same URL (duplicates, inactive ones) deleted.
    pub removed: usize,
    /// Fields added or corrected.
    pub fields_set: usize,
    /// Whether the API user had to be added to the excluded resources.
    pub excluded_added: bool,
}

/// Both webhooks, the key they now sign with, and the excluded API user.
#[derive(Debug, Clone)]
pub struct EnsuredWebhooks {
    pub ticket: HookChanges,
    pub note: HookChanges,
    pub secret_key: Secret,
    pub api_resource_id: i64,
}

/// What [`AutotaskClient::ensure_webhooks`] registers.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    /// Where Autotask posts events (and its `Deactivated` notice).
    pub endpoint: &'a str,
    /// The webhooks' name in Autotask.
    pub name: &'a str,
    /// The API user whose writes are excluded (`UserName` header value).
    pub api_username: &'a str,
    /// Where Autotask mails threshold and deactivation notices; `None`: the
    /// API user's email (or its user name, which is an address).
    pub notification_email: Option<&'a str>,
}

impl AutotaskClient {
    /// The resource id of the API user: `Resources` by `userName`, then
    /// by `email`. Its email too, for notices.
    pub async fn api_user_resource(
        &self,
        username: &str,
    ) -> Result<(i64, Option<String>), ApiError> {
        for field in ["userName", "email"] {
            let query = json!({
                "MaxRecords": 2,
                "IncludeFields": ["id", "email"],
                "filter": [{ "op": "eq", "field": field, "value": username.trim() }],
            });
            let found: Vec<WireResourceRow> =
                self.query_all("Resources", query, "resource query").await?;
            if let Some(row) = found.into_iter().next() {
                return Ok((row.id, row.email.filter(|e| e.contains('@'))));
            }
        }
        Err(ApiError::NotFound {
            system: SYSTEM,
            what: "the API user among the Resources (by userName or email)".to_owned(),
        })
    }

    /// Field id by normalized label, active values only.
    async fn webhook_field_ids(&self, entity: HookEntity) -> Result<Vec<(String, i64)>, ApiError> {
        Ok(self
            .picklist(entity.field_info_entity(), "fieldID")
            .await?
            .into_iter()
            .filter(|v| v.is_active)
            .map(|v| (normalized(&v.label), v.value))
            .collect())
    }

    async fn webhooks_of(&self, entity: HookEntity) -> Result<Vec<WireHook>, ApiError> {
        self.query_all(
            entity.path(),
            json!({ "filter": [{ "op": "gt", "field": "id", "value": 0 }] }),
            "webhook query",
        )
        .await
    }

    /// Makes sure exactly one active `entity` webhook posts to the endpoint,
    /// signing with `secret_key`, with the wanted fields and the API user
    /// excluded; safe to repeat. The kept webhook (the oldest active one
    /// subscribed to creates and updates) gets the new key by PATCH; without
    /// one, a webhook is created. The others at the same URL are deleted
    /// once the kept one is complete, so events keep arriving throughout.
    async fn ensure_one(
        &self,
        entity: HookEntity,
        request: &WebhookRequest<'_>,
        secret_key: &Secret,
        notification_email: &str,
        api_resource_id: i64,
    ) -> Result<HookChanges, ApiError> {
        let path = entity.path();
        let field_ids = self.webhook_field_ids(entity).await?;
        let mut wanted: Vec<(i64, &WantedField)> = Vec::new();
        for want in entity.wanted_fields() {
            let id = want
                .labels
                .iter()
                .find_map(|l| field_ids.iter().find(|(label, _)| label == l))
                .map(|(_, id)| *id);
            match id {
                Some(id) => wanted.push((id, want)),
                None if want.needed => {
                    return Err(ApiError::Rejected {
                        system: SYSTEM,
                        status: 0,
                        message: format!(
                            "{path}: Autotask offers no webhook field {:?}, which the bridge needs",
                            want.labels[0]
                        ),
                    })
                }
                None => {}
            }
        }
        let mut hooks = self.webhooks_of(entity).await?;
        hooks.sort_by_key(|h| h.id);
        let ours: Vec<&WireHook> = hooks
            .iter()
            .filter(|h| h.points_at(request.endpoint))
            .collect();
        let mut changes = HookChanges {
            entity,
            id: 0,
            created: false,
            removed: 0,
            fields_set: 0,
            excluded_added: false,
        };
        changes.id = match ours.iter().find(|h| h.is_wanted()) {
            Some(kept) => {
                let _: Value = self
                    .call(
                        Method::PATCH,
                        &self.url(path),
                        Some(&json!({ "id": kept.id, "secretKey": secret_key.expose() })),
                        "webhook",
                    )
                    .await?;
                kept.id
            }
            None => {
                let body = json!({
                    "name": request.name,
                    "webhookUrl": request.endpoint,
                    "deactivationUrl": request.endpoint,
                    "secretKey": secret_key.expose(),
                    "isSubscribedToCreateEvents": true,
                    "isSubscribedToUpdateEvents": true,
                    // Deleted tickets and notes are not mirrored.
                    "isSubscribedToDeleteEvents": false,
                    "isActive": true,
                    "notificationEmailAddress": notification_email,
                    "sendThresholdExceededNotification": true,
                });
                let created: CreateResult = self
                    .call(Method::POST, &self.url(path), Some(&body), "webhook")
                    .await?;
                changes.created = true;
                created.item_id
            }
        };
        let id = changes.id;

        let present: Vec<WireHookField> = self
            .child_list(&format!("{path}/{id}/Fields"), "webhook fields")
            .await?;
        for (field_id, want) in &wanted {
            match present.iter().find(|f| f.field_id == *field_id) {
                Some(f)
                    if f.is_subscribed_field == want.subscribed
                        && f.is_display_always_field == want.display_always => {}
                Some(f) => {
                    let _: Value = self
                        .call(
                            Method::PATCH,
                            &self.url(&format!("{path}/{id}/Fields")),
                            Some(&json!({
                                "id": f.id,
                                "isSubscribedField": want.subscribed,
                                "isDisplayAlwaysField": want.display_always,
                            })),
                            "webhook field",
                        )
                        .await?;
                    changes.fields_set += 1;
                }
                None => {
                    let _: CreateResult = self
                        .call(
                            Method::POST,
                            &self.url(&format!("{path}/{id}/Fields")),
                            Some(&json!({
                                "webhookID": id,
                                "fieldID": field_id,
                                "isSubscribedField": want.subscribed,
                                "isDisplayAlwaysField": want.display_always,
                            })),
                            "webhook field",
                        )
                        .await?;
                    changes.fields_set += 1;
                }
            }
        }

        let excluded: Vec<WireExcluded> = self
            .child_list(
                &format!("{path}/{id}/ExcludedResources"),
                "webhook excluded resources",
            )
            .await?;
        if !excluded.iter().any(|e| e.resource_id == api_resource_id) {
            let _: CreateResult = self
                .call(
                    Method::POST,
                    &self.url(&format!("{path}/{id}/ExcludedResources")),
                    Some(&json!({ "webhookID": id, "resourceID": api_resource_id })),
                    "webhook excluded resource",
                )
                .await?;
            changes.excluded_added = true;
        }

        let read: ItemResult<WireHook> = self
            .call(
                Method::GET,
                &self.url(&format!("{path}/{id}")),
                None,
                "webhook",
            )
            .await?;
        let hook = read.item.ok_or_else(|| ApiError::NotFound {
            system: SYSTEM,
            what: format!("{path} {id} right after it was set up"),
        })?;
        if hook.is_ready != Some(true) || hook.is_active != Some(true) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 0,
                message: format!(
                    "{path} {id} is not ready and active after its fields were added (isReady {:?}, isActive {:?})",
                    hook.is_ready, hook.is_active
                ),
            });
        }

        for extra in ours.iter().filter(|h| h.id != id) {
            match self
                .call::<Value>(
                    Method::DELETE,
                    &self.url(&format!("{path}/{}", extra.id)),
                    None,
                    "webhook",
                )
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => changes.removed += 1,
                Err(err) => return Err(err),
            }
        }
        Ok(changes)
    }

    /// Every row of a child collection (`GET {parent}/{id}/{Child}`).
    async fn child_list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let first: super::wire::Page<T> =
            self.call(Method::GET, &self.url(path), None, what).await?;
        self.follow(first, super::NextPage::Get, what).await
    }

    /// Makes sure one Ticket and one TicketNote webhook post to the
    /// endpoint, subscribed to the fields the sync mirrors (TicketID shown
    /// always on notes), the API user excluded, both signing with one newly
    /// generated secret key, which is returned (store it: Autotask never
    /// shows it again). Safe to repeat; every repetition rotates the key.
    ///
    /// Errors as every call: a missing permission is Autotask's 500 with a
    /// text, a permanent [`ApiError::Rejected`]; an Autotask without the
    /// webhook entities answers 404 ([`ApiError::NotFound`]); the API user
    /// not found among the resources is `NotFound` too.
    #[tracing::instrument(name = "autotask.ensure_webhooks", skip_all, fields(system = SYSTEM))]
    pub async fn ensure_webhooks(
        &self,
        request: &WebhookRequest<'_>,
    ) -> Result<EnsuredWebhooks, ApiError> {
        let (api_resource_id, resource_email) =
            self.api_user_resource(request.api_username).await?;
        let notification_email = request
            .notification_email
            .map(str::to_owned)
            .or(resource_email)
            .unwrap_or_else(|| request.api_username.trim().to_owned());
        let secret_key = generate_secret_key();
        let ticket = self
            .ensure_one(
                HookEntity::Ticket,
                request,
                &secret_key,
                &notification_email,
                api_resource_id,
            )
            .await?;
        let note = self
            .ensure_one(
                HookEntity::TicketNote,
                request,
                &secret_key,
                &notification_email,
                api_resource_id,
            )
            .await?;
        for c in [&ticket, &note] {
            tracing::info!(
                entity = ?c.entity,
                webhook = c.id,
                created = c.created,
                removed = c.removed,
                fields_set = c.fields_set,
                "autotask webhook ensured"
            );
        }
        Ok(EnsuredWebhooks {
            ticket,
            note,
            secret_key,
            api_resource_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_fit_autotask_and_differ() {
        let a = generate_secret_key();
        let b = generate_secret_key();
        assert_eq!(a.expose().len(), SECRET_KEY_LEN);
        assert!(a.expose().len() <= SECRET_KEY_MAX);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn labels_match_without_case_or_spacing() {
        assert_eq!(normalized("Ticket ID"), "ticketid");
        assert_eq!(normalized("queue_ID"), "queueid");
    }

    #[test]
    fn notes_need_ticket_id_shown_always() {
        let ticket_id = NOTE_FIELDS
            .iter()
            .find(|f| f.labels.contains(&"ticketid"))
            .unwrap();
        assert!(ticket_id.needed && ticket_id.display_always);
        assert!(TICKET_FIELDS.iter().any(|f| f.needed && f.subscribed));
    }

    #[test]
    fn endpoints_compare_without_trailing_slash_or_host_case() {
        assert!(same_endpoint(
            "https://Bridge.example.com/t/acme/autotask/",
            "https://bridge.example.com/t/acme/autotask"
        ));
        assert!(!same_endpoint(
            "https://bridge.example.com/t/acme/autotask",
            "https://bridge.example.com/t/other/autotask"
        ));
    }
}
