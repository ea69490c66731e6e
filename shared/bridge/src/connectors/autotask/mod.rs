//! Autotask: the REST client (ATServicesRest V1.0). Its wire format and field
//! limits are in [`wire`]; the checks and parsers of Autotask's incoming calls
//! (extension callouts and REST webhooks) are in [`inbound`]; registering the
//! REST webhooks through the API is in [`webhooks`].
//!
//! Contract notes that shape this code:
//! - Zone discovery (`{lookup}/v1.0/zoneInformation?user=`) names the REST base
//!   (`…/ATServicesRest/`); every entity call goes to `{url}V1.0/…` with the
//!   `ApiIntegrationCode`, `UserName` and `Secret` headers.
//! - Autotask answers many validation failures (bad picklist value, missing
//!   field, missing role) with HTTP 500, so a 500 whose message is clearly a
//!   validation error is permanent.
//! - Queries page by `pageDetails.nextPageUrl`. The next page of a
//!   `POST {Entity}/query` is fetched by POSTing the same query body to that
//!   URL (it carries only the paging state; Autotask answers a GET with 405
//!   and a bare POST with 500); a child collection's next page (`GET
//!   Tickets/{id}/Notes`) is a GET. Either way the link must stay on the
//!   zone's origin, or the credentials would be sent elsewhere.
//! - Tenant settings the client applies ([`AutotaskClient::with_settings`]):
//!   which note `publish` values are customer-visible and which one internal
//!   notes get, and the values of the ticket fields the tenant's Autotask
//!   requires on create.
//! - Changes: `POST Tickets/query` on `lastActivityDate gt <since>` (UTC; the date
//!   moves on any change, note or time entry).

mod assets;
pub mod inbound;
pub mod webhooks;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{AutotaskSettings, FieldValue, Secret};
use crate::connectors::http::{error_from_response, transport_error};
use crate::error::ApiError;
use crate::model::{NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch};
use crate::ports::{CiRef, Psa};

pub use inbound::{
    parse_callout, parse_webhook, verify_callout_credentials, verify_hook_signature, PsaEvent,
    HOOK_SIGNATURE_HEADER,
};
use wire::{
    describe, extra_ticket_fields, picklist_of, ChangedTicket, CreateResult, FieldInfo, FieldList,
    ItemResult, NotePublish, NoteSettings, Page, WireCompany, WireConfigurationItem, WireNote,
    WireResource, WireTicket, ZoneInfo, PAGE_SIZE,
};

const SYSTEM: &str = "autotask";

/// Picklists change when an admin edits them, which is rare; five minutes of
/// staleness saves one call per sync against a 10,000-calls-per-hour budget.
const PICKLIST_TTL: Duration = Duration::from_secs(300);
/// Guards against a server that keeps handing out next-page links.
const MAX_PAGES: usize = 200;

/// An Autotask REST client bound to one database (tenant), after zone discovery.
pub struct AutotaskClient {
    http: reqwest::Client,
    /// `{zone url}V1.0/`.
    base: String,
    /// Scheme, host and port of `base`: next-page links must stay on it, or the
    /// credentials would be sent elsewhere.
    origin: String,
    /// Authentication headers, marked sensitive so they never show in debug output.
    headers: HeaderMap,
    fields: Mutex<FieldCache>,
    /// Technician names by resource id; they change rarely and every mirrored
    /// note needs one.
    resource_names: Mutex<HashMap<i64, Option<String>>>,
    /// Note visibility settings of the tenant.
    note_publish: NotePublish,
    /// Values of further ticket fields on create, by Autotask field name.
    ticket_defaults: BTreeMap<String, FieldValue>,
}

/// How the next page of a query is asked for.
enum NextPage<'a> {
    /// A child collection (`GET Tickets/{id}/Notes`): GET the link.
    Get,
    /// A `POST {Entity}/query`: POST this same body to the link.
    Post(&'a Value),
}

impl fmt::Debug for AutotaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutotaskClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Field descriptions per entity, with the time they were fetched.
type FieldCache = HashMap<&'static str, (Instant, Arc<Vec<FieldInfo>>)>;

impl AutotaskClient {
    /// Asks the zone lookup service where this user's database lives, once.
    /// Autotask answers an unknown or blank user name with a 500 and an
    /// `errors` body: that is a configuration problem, not an outage.
    pub async fn connect(
        http: reqwest::Client,
        zone_lookup_url: &str,
        username: &str,
        secret: &Secret,
        integration_code: &Secret,
    ) -> Result<Self, ApiError> {
        let headers = auth_headers(username, secret, integration_code)?;
        let lookup = format!(
            "{}/v1.0/zoneInformation",
            zone_lookup_url.trim_end_matches('/')
        );
        let response = http
            .get(&lookup)
            .query(&[("user", username)])
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        let status = response.status();
        if status == reqwest::StatusCode::INTERNAL_SERVER_ERROR {
            let body = response.text().await.unwrap_or_default();
            return Err(match describe(&body) {
                Some(message) => ApiError::Rejected {
                    system: SYSTEM,
                    status: 500,
                    message: format!("zone lookup failed for the API user: {message}"),
                },
                None => ApiError::Server {
                    system: SYSTEM,
                    status: 500,
                    message: "zone lookup failed".to_owned(),
                },
            });
        }
        if !status.is_success() {
            return Err(error_from_response(SYSTEM, response, "zone information", describe).await);
        }
        let zone: ZoneInfo = read_json(response, "zone information").await?;
        let url = zone
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or(ApiError::Malformed {
                system: SYSTEM,
                message: "zone information has no url".to_owned(),
            })?;
        let parsed = url::Url::parse(url.trim()).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("zone url is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ApiError::Malformed {
                system: SYSTEM,
                message: format!("zone url has unsupported scheme {:?}", parsed.scheme()),
            });
        }
        let mut base = parsed.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        base.push_str("V1.0/");
        tracing::debug!(zone = zone.zone_name.as_deref().unwrap_or(""), %base, "autotask zone discovered");
        Ok(Self {
            http,
            base,
            origin: parsed.origin().ascii_serialization(),
            headers,
            fields: Mutex::new(HashMap::new()),
            resource_names: Mutex::new(HashMap::new()),
            note_publish: NotePublish::default(),
            ticket_defaults: BTreeMap::new(),
        })
    }

    /// Applies the tenant's settings: note visibility
    /// (`public_note_publish`, `internal_note_publish`) and the values of
    /// ticket fields required on create (`ticket_defaults`). Without it the
    /// defaults apply (only "All Autotask Users" is public, internal notes
    /// are "Internal Project Team", no further ticket fields).
    pub fn with_settings(mut self, settings: &AutotaskSettings) -> Self {
        self.note_publish = NotePublish {
            public: settings.public_note_publish.clone(),
            internal: settings.internal_note_publish.clone(),
        };
        self.ticket_defaults = settings.ticket_defaults.clone();
        self
    }

    /// The REST base all entity calls go to (`…/ATServicesRest/V1.0/`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, url).headers(self.headers.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        if !response.status().is_success() {
            let err = error_from_response(SYSTEM, response, what, describe).await;
            return Err(reclassify(err));
        }
        read_json(response, what).await
    }

    /// Runs an entity query and follows `nextPageUrl` to the end.
    async fn query_all<T: DeserializeOwned>(
        &self,
        entity: &str,
        body: Value,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let first: Page<T> = self
            .call(
                Method::POST,
                &self.url(&format!("{entity}/query")),
                Some(&body),
                what,
            )
            .await?;
        self.follow(first, NextPage::Post(&body), what).await
    }

    async fn follow<T: DeserializeOwned>(
        &self,
        mut page: Page<T>,
        next_page: NextPage<'_>,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut items = std::mem::take(&mut page.items);
        let mut pages = 1;
        while let Some(next) = page.next_page_url() {
            if pages >= MAX_PAGES {
                return Err(ApiError::Malformed {
                    system: SYSTEM,
                    message: format!("{what}: paging did not end after {MAX_PAGES} pages"),
                });
            }
            let next = self.same_origin(&next, what)?;
            page = match next_page {
                NextPage::Get => self.call(Method::GET, &next, None, what).await?,
                NextPage::Post(body) => self.call(Method::POST, &next, Some(body), what).await?,
            };
            items.append(&mut page.items);
            pages += 1;
        }
        Ok(items)
    }

    /// `next` if it is on the zone's origin (scheme, host and port of the
    /// base URL zone discovery named); anything else is refused before a
    /// request (and the credentials with it) is sent.
    fn same_origin(&self, next: &str, what: &str) -> Result<String, ApiError> {
        let parsed = url::Url::parse(next).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("{what}: nextPageUrl is not a URL: {e}"),
        })?;
        let origin = parsed.origin().ascii_serialization();
        if origin != self.origin {
            return Err(ApiError::Malformed {
                system: SYSTEM,
                message: format!(
                    "{what}: nextPageUrl points to {origin}, outside the tenant's Autotask zone {}; not followed (the credentials would go there)",
                    self.origin
                ),
            });
        }
        Ok(parsed.into())
    }

    /// Field descriptions of an entity, cached for `PICKLIST_TTL`.
    async fn fields(&self, entity: &'static str) -> Result<Arc<Vec<FieldInfo>>, ApiError> {
        let cached = {
            let cache = self.fields.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(entity)
                .filter(|(at, _)| at.elapsed() < PICKLIST_TTL)
                .map(|(_, fields)| fields.clone())
        };
        if let Some(fields) = cached {
            return Ok(fields);
        }
        let fetched: FieldList = self
            .call(
                Method::GET,
                &self.url(&format!("{entity}/entityInformation/fields")),
                None,
                "field information",
            )
            .await?;
        let fields = Arc::new(fetched.fields);
        self.fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entity, (Instant::now(), fields.clone()));
        Ok(fields)
    }

    /// The values of a picklist field of `entity` (`Tickets`, `TicketNotes`),
    /// inactive ones included and marked, from the cached field descriptions.
    pub async fn picklist(
        &self,
        entity: &'static str,
        field: &str,
    ) -> Result<Vec<PicklistValue>, ApiError> {
        let fields = self.fields(entity).await?;
        let values = picklist_of(&fields, field).ok_or_else(|| ApiError::NotFound {
            system: SYSTEM,
            what: format!("{entity} picklist field {field:?}"),
        })?;
        Ok(values
            .iter()
            .filter_map(|v| {
                v.numeric().map(|value| PicklistValue {
                    value,
                    label: v.label.clone(),
                    is_active: v.is_active,
                })
            })
            .collect())
    }

    /// One authenticated query (a single company id): proves that the user
    /// name, secret and integration code are accepted together.
    pub async fn check_access(&self) -> Result<(), ApiError> {
        let _: Page<Value> = self
            .call(
                Method::POST,
                &self.url("Companies/query"),
                Some(&wire::probe_query()),
                "company query",
            )
            .await?;
        Ok(())
    }

    /// Every active company as (id, name), through all query pages.
    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    pub async fn active_companies(&self) -> Result<Vec<(i64, String)>, ApiError> {
        let companies: Vec<WireCompany> = self
            .query_all("Companies", wire::active_companies_query(), "company query")
            .await?;
        tracing::debug!(count = companies.len(), "read autotask companies");
        Ok(companies
            .into_iter()
            .map(|c| (c.id, c.company_name.unwrap_or_default()))
            .collect())
    }

    async fn note_settings(&self) -> Result<NoteSettings, ApiError> {
        Ok(NoteSettings::from_fields(
            &self.fields("TicketNotes").await?,
            &self.note_publish,
        ))
    }

    /// The tenant's further ticket fields for `ticket`, checked against the
    /// (cached) Tickets field descriptions; the problems in plain words
    /// otherwise.
    async fn extra_ticket_fields(
        &self,
        ticket: &NewPsaTicket,
    ) -> Result<Result<serde_json::Map<String, Value>, Vec<String>>, ApiError> {
        let fields = self.fields("Tickets").await?;
        Ok(extra_ticket_fields(&fields, ticket, &self.ticket_defaults))
    }
}

fn auth_headers(
    username: &str,
    secret: &Secret,
    integration_code: &Secret,
) -> Result<HeaderMap, ApiError> {
    let value = |v: &str| {
        let mut value = HeaderValue::from_str(v).map_err(|_| ApiError::Rejected {
            system: SYSTEM,
            status: 0,
            message: "Autotask credentials contain characters not allowed in HTTP headers"
                .to_owned(),
        })?;
        value.set_sensitive(true);
        Ok::<_, ApiError>(value)
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("apiintegrationcode"),
        value(integration_code.expose())?,
    );
    headers.insert(HeaderName::from_static("username"), value(username)?);
    headers.insert(HeaderName::from_static("secret"), value(secret.expose())?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}

async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(SYSTEM, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed {
        system: SYSTEM,
        message: format!("{what}: {e}"),
    })
}

/// Autotask reports validation failures as HTTP 500; retrying those only burns
/// Autotask reports validation failures as HTTP 500; retrying those only burns
/// the hourly request budget, so they become permanent rejections.
fn reclassify(err: ApiError) -> ApiError {
    match err {
        ApiError::Server {
            system,
            status: 500,
            message,
        } if is_validation_message(&message) => ApiError::Rejected {
            system,
            status: 500,
            message,
        },
        other => other,
    }
}

fn is_validation_message(message: &str) -> bool {
    const MARKERS: &[&str] = &[
        "does not reference an existing entity",
        "required",
        "invalid",
        "is not valid",
        "must assign",
        "must be",
        "does not exist",
        "exceeds",
        "too long",
        "not allowed",
        "unable to find",
        "adequate permissions",
    ];
    let message = message.to_ascii_lowercase();
    MARKERS.iter().any(|marker| message.contains(marker))
}

#[async_trait]
impl Psa for AutotaskClient {
    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        let result: Result<ItemResult<WireTicket>, _> = self
            .call(
                Method::GET,
                &self.url(&format!("Tickets/{id}")),
                None,
                "ticket",
            )
            .await;
        match result {
            Ok(found) => found.item.map(WireTicket::into_model).transpose(),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        if let Some(known) = self.resource_names.lock().unwrap().get(&resource_id) {
            return Ok(known.clone());
        }
        let result: Result<ItemResult<WireResource>, _> = self
            .call(
                Method::GET,
                &self.url(&format!("Resources/{resource_id}")),
                None,
                "resource",
            )
            .await;
        let name = match result {
            Ok(found) => found.item.and_then(WireResource::display_name),
            Err(ApiError::NotFound { .. }) => None,
            Err(err) => return Err(err),
        };
        self.resource_names
            .lock()
            .unwrap()
            .insert(resource_id, name.clone());
        Ok(name)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        let body = wire::query(10, wire::eq_filter("externalID", external_id));
        let page: Page<WireTicket> = self
            .call(
                Method::POST,
                &self.url("Tickets/query"),
                Some(&body),
                "ticket query",
            )
            .await?;
        if page.items.len() > 1 {
            // Two tickets with our reference mean a create raced; the oldest is
            // the one the link record most likely points at.
            tracing::warn!(
                count = page.items.len(),
                "several Autotask tickets share one externalID"
            );
        }
        page.items
            .into_iter()
            .min_by_key(|t| t.id)
            .map(WireTicket::into_model)
            .transpose()
    }

    #[tracing::instrument(skip(self, ticket), fields(system = SYSTEM, external_id = %ticket.external_id))]
    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        Ok(self
            .extra_ticket_fields(ticket)
            .await?
            .err()
            .unwrap_or_default())
    }

    #[tracing::instrument(skip(self, ticket), fields(system = SYSTEM, external_id = %ticket.external_id))]
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        // A create Autotask would refuse for a missing setting is not sent.
        let extra = self
            .extra_ticket_fields(ticket)
            .await?
            .map_err(|problems| ApiError::Rejected {
                system: SYSTEM,
                status: 0,
                message: format!("ticket not sent: {}", problems.join("; ")),
            })?;
        let created: CreateResult = self
            .call(
                Method::POST,
                &self.url("Tickets"),
                Some(&wire::create_body(ticket, &extra)),
                "ticket",
            )
            .await?;
        tracing::info!(ticket_id = created.item_id, "autotask ticket created");
        Ok(created.item_id)
    }

    fn title_max_chars(&self) -> usize {
        wire::TICKET_TITLE_MAX
    }

    #[tracing::instrument(skip(self, patch), fields(system = SYSTEM))]
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        if patch.is_empty() {
            return Ok(());
        }
        let _: CreateResult = self
            .call(
                Method::PATCH,
                &self.url("Tickets"),
                Some(&wire::patch_body(id, patch)),
                "ticket",
            )
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        let settings = self.note_settings().await?;
        let first: Page<WireNote> = self
            .call(
                Method::GET,
                &self.url(&format!("Tickets/{ticket_id}/Notes")),
                None,
                "ticket notes",
            )
            .await?;
        let mut notes: Vec<PsaNote> = self
            .follow(first, NextPage::Get, "ticket notes")
            .await?
            .into_iter()
            .map(|n| n.into_model(ticket_id, &settings))
            .collect();
        notes.sort_by_key(|n| n.id);
        Ok(notes)
    }

    #[tracing::instrument(skip(self, note), fields(system = SYSTEM, visibility = ?note.visibility))]
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        let settings = self.note_settings().await?;
        let body = wire::note_body(ticket_id, note, &settings)?;
        let created: CreateResult = self
            .call(
                Method::POST,
                &self.url(&format!("Tickets/{ticket_id}/Notes")),
                Some(&body),
                "ticket note",
            )
            .await?;
        Ok(created.item_id)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        Ok(self
            .configuration_item_for_reference(reference)
            .await?
            .map(|ci| ci.company_id))
    }

    async fn configuration_item_for_reference(
        &self,
        reference: &str,
    ) -> Result<Option<CiRef>, ApiError> {
        let items: Vec<WireConfigurationItem> = self
            .query_all(
                "ConfigurationItems",
                wire::query(PAGE_SIZE, wire::eq_filter("referenceNumber", reference)),
                "configuration item query",
            )
            .await?;
        // Prefer active items, then the oldest; a retired duplicate must not
        // steer tickets to a former customer.
        let chosen = items
            .iter()
            .filter(|ci| ci.company_id.is_some())
            .min_by_key(|ci| (ci.is_active == Some(false), ci.id));
        let companies: std::collections::BTreeSet<i64> =
            items.iter().filter_map(|ci| ci.company_id).collect();
        if companies.len() > 1 {
            tracing::warn!(reference, companies = ?companies, "reference number matches items of several companies");
        }
        Ok(chosen.and_then(|ci| {
            Some(CiRef {
                id: Some(ci.id),
                company_id: ci.company_id?,
                active: ci.is_active != Some(false),
            })
        }))
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        let changed: Vec<ChangedTicket> = self
            .query_all(
                "Tickets",
                wire::changed_since_query(since),
                "ticket change query",
            )
            .await?;
        tracing::debug!(count = changed.len(), "read autotask ticket changes");
        changed
            .into_iter()
            .map(ChangedTicket::into_change)
            .collect()
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        self.picklist("Tickets", field).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_described_and_validation_500s_are_permanent() {
        let body =
            r#"{"errors":["Value does not reference an existing entity for status . ","second"]}"#;
        assert_eq!(
            describe(body).as_deref(),
            Some("Value does not reference an existing entity for status .; second")
        );
        assert_eq!(
            describe(r#"{"Message":"No HTTP resource"}"#).as_deref(),
            Some("No HTTP resource")
        );
        assert_eq!(describe("<html>"), None);

        let validation = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 500,
            message: "When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.".into(),
        });
        assert!(matches!(validation, ApiError::Rejected { status: 500, .. }));
        assert!(!validation.is_retryable());
        let outage = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 500,
            message: "Internal server error".into(),
        });
        assert!(outage.is_retryable());
        let gateway = reclassify(ApiError::Server {
            system: SYSTEM,
            status: 503,
            message: "required maintenance".into(),
        });
        assert!(gateway.is_retryable(), "only 500 carries validation errors");
    }
}
