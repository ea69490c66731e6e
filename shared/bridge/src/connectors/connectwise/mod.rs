//! ConnectWise PSA (ConnectWise Manage): the REST client (`apis/3.0`). Its
//! wire format is in [`wire`]; the readers and checks of ConnectWise's
//! callbacks are in [`inbound`].
//!
//! Contract notes that shape this code (fact sheet `connectwise-psa.md`):
//! - The API base is `{api origin}/{codebase}apis/3.0/`. The codebase comes
//!   from the unauthenticated `login/companyinfo/{company}` and can change
//!   under a cloud tenant (upgrade): a 404 on the first try of a call
//!   re-reads it once and, if it moved, the call is tried again there.
//! - Every call carries `Basic base64("{company}+{public}:{private}")` and
//!   the integration's `clientId`.
//! - The engine's words map onto ConnectWise's: a "queue" is a service
//!   board, a "resource" a member, the cross reference is `externalXRef`.
//!   Statuses belong to a board: the same name has another id on each.
//! - Notes have no title: the bridge's title is the first line of the text.
//!   A Discussion note (`detailDescriptionFlag`) is customer-facing; every
//!   other note reads as internal.
//! - Creates are never retried here: a slow create that timed out may still
//!   land, and the engine adopts it by `externalXRef` instead.
//! - Changes: `conditions=lastUpdated > [since]`, forward-only paging where
//!   the server has it (it is keyset paging, stable while records change).

pub mod inbound;
mod onboarding;
pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, LINK};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{ConnectWiseSettings, TenantSecrets};
use crate::connectors::http::{parse_retry_after, transport_error};
use crate::error::ApiError;
use crate::model::{NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch};
use crate::ports::Psa;

pub use inbound::{
    classify, key_url_allowed, read_callback, verify_signature, Callback, CallbackUse, SigningKeys,
    SIGNATURE_HEADER,
};
pub use onboarding::{Board, BoardStatus, BoardTeam, CallbackChanges, Company};
use wire::{ChangedTicket, Created, WireConfiguration, WireMember, WireNote, WireTicket};

pub(crate) const SYSTEM: &str = "connectwise";

/// Boards' statuses and the priorities change when an admin edits them,
/// which is rare; five minutes of staleness saves a call on every sync.
const PICKLIST_TTL: Duration = Duration::from_secs(300);
/// Guards against a server that keeps handing out next-page links.
const MAX_PAGES: usize = 200;

/// A ConnectWise PSA client bound to one company (tenant), after the
/// codebase lookup.
pub struct ConnectWiseClient {
    http: reqwest::Client,
    /// The configured site, for messages.
    site: String,
    company_id: String,
    /// Scheme, host and port of the API: paging links must stay on it, or
    /// the credentials would be sent elsewhere.
    api_origin: String,
    /// `{api origin}/{codebase}apis/3.0/` with its codebase; replaced when a
    /// cloud upgrade moves the codebase.
    base: RwLock<Base>,
    /// Authentication headers, marked sensitive so they never show in debug output.
    headers: HeaderMap,
    /// The tenant's board for new tickets (`connectwise.board_id`).
    board_id: Option<i64>,
    page_size: u32,
    priorities: Mutex<Option<Fetched<PicklistValue>>>,
    statuses: Mutex<HashMap<i64, Fetched<BoardStatus>>>,
    /// Member names by id; they change rarely and every mirrored note needs one.
    member_names: Mutex<HashMap<i64, Option<String>>>,
}

/// A cached list with the time it was fetched.
type Fetched<T> = (Instant, Arc<Vec<T>>);

#[derive(Debug, Clone)]
struct Base {
    codebase: String,
    url: String,
}

impl fmt::Debug for ConnectWiseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectWiseClient")
            .field("site", &self.site)
            .field("company_id", &self.company_id)
            .field("base", &self.base_url())
            .field("board_id", &self.board_id)
            .finish_non_exhaustive()
    }
}

/// Where a call goes: a path under the API base (which may move with the
/// codebase), or a paging link as the server wrote it.
#[derive(Clone, Copy)]
enum Target<'a> {
    Path(&'a str),
    Url(&'a str),
}

/// How a list is paged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Paging {
    /// `page=N` with `Link` headers (every list endpoint has it).
    Navigable,
    /// `pagination-type: forward-only` (keyset by id), falling back to
    /// navigable paging where the endpoint refuses it.
    ForwardOnly,
}

fn setting_missing(message: impl Into<String>) -> ApiError {
    ApiError::Rejected {
        system: SYSTEM,
        status: 0,
        message: message.into(),
    }
}

impl ConnectWiseClient {
    /// Finds the API base: a cloud site `https://{region}.myconnectwise.net`
    /// (or staging) is served by its `api-` host, an `api-` site is kept, any
    /// other origin (on-premise, a loopback sandbox) is used as it is. Then
    /// `GET {api origin}/login/companyinfo/{company}` names the codebase
    /// (JSON `null`: no such company). Missing credentials or settings fail
    /// before anything is sent, naming the setting.
    pub async fn connect(
        http: reqwest::Client,
        settings: &ConnectWiseSettings,
        secrets: &TenantSecrets,
    ) -> Result<Self, ApiError> {
        let company_id = settings.company_id.trim();
        if company_id.is_empty() {
            return Err(setting_missing(
                "the ConnectWise company id is not set (connectwise.company_id)",
            ));
        }
        if settings.site.trim().is_empty() {
            return Err(setting_missing(
                "the ConnectWise site is not set (connectwise.site)",
            ));
        }
        let public = secrets.connectwise_public_key.trim();
        if public.is_empty() {
            return Err(setting_missing(
                "the ConnectWise API member's public key is not set (connectwise_public_key)",
            ));
        }
        let private = secrets.connectwise_private_key.expose();
        if private.trim().is_empty() {
            return Err(setting_missing(
                "the ConnectWise API member's private key is not set (connectwise_private_key)",
            ));
        }
        let client_id = secrets.connectwise_client_id.trim();
        if client_id.is_empty() {
            return Err(setting_missing(
                "the integration's ConnectWise clientId is not set (connectwise_client_id)",
            ));
        }
        let origins = wire::site_origins(&settings.site).map_err(setting_missing)?;
        let headers = auth_headers(company_id, public, private, client_id)?;
        let mut client = Self {
            http,
            site: settings.site.trim().to_owned(),
            company_id: company_id.to_owned(),
            api_origin: origins.api,
            base: RwLock::new(Base {
                codebase: String::new(),
                url: String::new(),
            }),
            headers,
            board_id: settings.board_id,
            page_size: wire::PAGE_SIZE_MAX,
            priorities: Mutex::new(None),
            statuses: Mutex::new(HashMap::new()),
            member_names: Mutex::new(HashMap::new()),
        };
        let codebase = client.read_codebase().await?;
        client.base = RwLock::new(client.base_for(&codebase));
        tracing::debug!(base = %client.base_url(), "connectwise codebase found");
        Ok(client)
    }

    /// Reads at most `size` records per page (1..=1000; ConnectWise's
    /// maximum is the default). For tests and for tenants whose pages time out.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, wire::PAGE_SIZE_MAX);
        self
    }

    /// `scheme://host[:port]` of the API.
    pub fn api_origin(&self) -> &str {
        &self.api_origin
    }

    /// The codebase calls go to now (`v2025_1/`).
    pub fn codebase(&self) -> String {
        self.base
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .codebase
            .clone()
    }

    /// The base every call goes to now (`{origin}/{codebase}apis/3.0/`).
    pub fn base_url(&self) -> String {
        self.base
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .url
            .clone()
    }

    fn base_for(&self, codebase: &str) -> Base {
        Base {
            codebase: codebase.to_owned(),
            url: format!("{}/{codebase}apis/3.0/", self.api_origin),
        }
    }

    /// `GET login/companyinfo/{company}` (unauthenticated): the codebase.
    async fn read_codebase(&self) -> Result<String, ApiError> {
        let url = format!(
            "{}/login/companyinfo/{}",
            self.api_origin,
            url_segment(&self.company_id)
        );
        let response = self
            .http
            .get(&url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        if !response.status().is_success() {
            return Err(error_of(
                response,
                &Method::GET,
                "login/companyinfo",
                "company information",
            )
            .await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        wire::codebase_of(&body)?.ok_or_else(|| ApiError::Rejected {
            system: SYSTEM,
            status: 200,
            message: format!(
                "ConnectWise knows no company {} at {}",
                self.company_id, self.site
            ),
        })
    }

    /// Re-reads the codebase; `true` when it moved (and the base with it).
    async fn refresh_codebase(&self) -> Result<bool, ApiError> {
        let codebase = self.read_codebase().await?;
        let mut base = self.base.write().unwrap_or_else(|e| e.into_inner());
        if base.codebase == codebase {
            return Ok(false);
        }
        tracing::info!(
            old = %base.codebase,
            new = %codebase,
            "connectwise codebase changed; calls go to the new one"
        );
        *base = self.base_for(&codebase);
        Ok(true)
    }

    /// Sends one call and returns the successful response. A 404 on the
    /// first try of a path re-reads the codebase once and, if it moved,
    /// tries the new base: 404 is the only symptom of an upgrade, and it
    /// also means nothing was done, so even a POST may be sent again.
    async fn send(
        &self,
        method: Method,
        target: Target<'_>,
        query: &[(&str, String)],
        body: Option<&Value>,
        forward_only: bool,
        what: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let mut reread = false;
        loop {
            let url = match target {
                Target::Path(path) => format!("{}{path}", self.base_url()),
                Target::Url(url) => url.to_owned(),
            };
            let mut request = self
                .http
                .request(method.clone(), &url)
                .headers(self.headers.clone());
            if !query.is_empty() {
                request = request.query(query);
            }
            if forward_only {
                request = request.header("pagination-type", "forward-only");
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| transport_error(SYSTEM, e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::NOT_FOUND && !reread {
                if let Target::Path(_) = target {
                    reread = true;
                    drop(response);
                    if self.refresh_codebase().await? {
                        continue;
                    }
                    return Err(ApiError::NotFound {
                        system: SYSTEM,
                        what: what.to_owned(),
                    });
                }
            }
            let path = match target {
                Target::Path(path) => path.to_owned(),
                Target::Url(url) => url
                    .split_once("/apis/3.0/")
                    .map(|(_, path)| path.to_owned())
                    .unwrap_or_default(),
            };
            return Err(error_of(response, &method, &path, what).await);
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, ApiError> {
        let response = self
            .send(method, Target::Path(path), query, body, false, what)
            .await?;
        read_json(response, what).await
    }

    /// One GET of a list page.
    async fn page(
        &self,
        target: Target<'_>,
        query: &[(&str, String)],
        forward_only: bool,
        what: &str,
    ) -> Result<reqwest::Response, ApiError> {
        self.send(Method::GET, target, query, None, forward_only, what)
            .await
    }

    /// Every record of a list, following its pages to the end: `Link`
    /// `rel="next"` (kept on the API origin) while there is one; without any
    /// `Link` header, in navigable mode, the next page number while pages
    /// come back full.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&'static str, String)],
        paging: Paging,
        what: &str,
    ) -> Result<Vec<T>, ApiError> {
        let size = self.page_size;
        let mut query: Vec<(&str, String)> = params.to_vec();
        query.push(("pageSize", size.to_string()));
        let numbered = |page: usize| {
            let mut query = query.clone();
            query.push(("page", page.to_string()));
            query
        };
        let mut forward_only = paging == Paging::ForwardOnly;
        let mut response = if forward_only {
            match self.page(Target::Path(path), &query, true, what).await {
                Err(ApiError::Rejected {
                    status: 400,
                    message,
                    ..
                }) => {
                    tracing::info!(
                        path,
                        %message,
                        "connectwise refused forward-only paging; paging by page number"
                    );
                    forward_only = false;
                    self.page(Target::Path(path), &numbered(1), false, what)
                        .await?
                }
                other => other?,
            }
        } else {
            self.page(Target::Path(path), &numbered(1), false, what)
                .await?
        };
        let mut items = Vec::new();
        let mut page_number = 1;
        loop {
            let link = response
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            let page: Vec<T> = read_json(response, what).await?;
            let count = page.len();
            items.extend(page);
            let next = wire::next_link(&link);
            let guess_next = next.is_none() && !forward_only && link.is_empty();
            if count == 0 || (next.is_none() && !(guess_next && count >= size as usize)) {
                break;
            }
            if guess_next {
                tracing::info!(
                    path,
                    page = page_number,
                    "connectwise sent a full page without a Link header; asking for the next page number"
                );
            }
            if page_number >= MAX_PAGES {
                return Err(ApiError::Malformed {
                    system: SYSTEM,
                    message: format!("{what}: paging did not end after {MAX_PAGES} pages"),
                });
            }
            page_number += 1;
            response = match next {
                Some(next) => {
                    let next = self.same_origin(&next, what)?;
                    self.page(Target::Url(&next), &[], forward_only, what)
                        .await?
                }
                None => {
                    self.page(Target::Path(path), &numbered(page_number), false, what)
                        .await?
                }
            };
        }
        Ok(items)
    }

    /// `next` resolved against the API base, if it is on the API origin;
    /// anything else is refused before a request (and the credentials with
    /// it) is sent.
    fn same_origin(&self, next: &str, what: &str) -> Result<String, ApiError> {
        let base = url::Url::parse(&self.base_url()).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("API base is not a URL: {e}"),
        })?;
        let parsed = base.join(next).map_err(|e| ApiError::Malformed {
            system: SYSTEM,
            message: format!("{what}: next-page link is not a URL: {e}"),
        })?;
        let origin = parsed.origin().ascii_serialization();
        if origin != self.api_origin || !parsed.username().is_empty() {
            return Err(ApiError::Malformed {
                system: SYSTEM,
                message: format!(
                    "{what}: next-page link points to {origin}, outside the tenant's ConnectWise API {}; not followed (the credentials would go there)",
                    self.api_origin
                ),
            });
        }
        Ok(parsed.into())
    }

    /// Why `ticket` cannot be created, in plain words; empty when it can.
    fn problems_of(&self, ticket: &NewPsaTicket) -> Vec<String> {
        let mut problems = Vec::new();
        if ticket.queue_id.or(self.board_id).is_none() {
            problems.push(
                "no ConnectWise service board is set for new tickets: set connectwise.board_id"
                    .to_owned(),
            );
        }
        if ticket.title.trim().is_empty() {
            problems.push(
                "the ticket has no summary (the Zendesk subject is empty) and ConnectWise requires one"
                    .to_owned(),
            );
        }
        problems
    }
}

fn auth_headers(
    company: &str,
    public: &str,
    private: &str,
    client_id: &str,
) -> Result<HeaderMap, ApiError> {
    let value = |v: &str, sensitive: bool| {
        let mut value = HeaderValue::from_str(v).map_err(|_| {
            setting_missing(
                "the ConnectWise keys or clientId contain characters not allowed in HTTP headers",
            )
        })?;
        value.set_sensitive(sensitive);
        Ok::<_, ApiError>(value)
    };
    let basic = STANDARD.encode(format!("{company}+{public}:{private}"));
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value(&format!("Basic {basic}"), true)?);
    headers.insert(HeaderName::from_static("clientid"), value(client_id, true)?);
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}

/// A value as one URL path segment (the company id is the tenant's text).
fn url_segment(value: &str) -> String {
    let mut url = url::Url::parse("http://x/").expect("static URL");
    url.path_segments_mut()
        .expect("http URLs have paths")
        .push(value);
    url.path().trim_start_matches('/').to_owned()
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

async fn error_of(
    response: reqwest::Response,
    method: &Method,
    path: &str,
    what: &str,
) -> ApiError {
    let status = response.status().as_u16();
    let retry_after = parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
    let body = response.text().await.unwrap_or_default();
    classify_failure(status, retry_after, &body, method, path, what)
}

/// Sorts a failed answer into retryable and permanent, keeping
/// ConnectWise's own words.
fn classify_failure(
    status: u16,
    retry_after: Duration,
    body: &str,
    method: &Method,
    path: &str,
    what: &str,
) -> ApiError {
    let message = wire::describe(body).unwrap_or_else(|| short(body, 300));
    match status {
        429 => ApiError::RateLimited {
            system: SYSTEM,
            retry_after,
        },
        401 => ApiError::Unauthorized {
            system: SYSTEM,
            status,
        },
        403 => ApiError::Forbidden {
            system: SYSTEM,
            message: forbidden_message(method, path, what, &message),
        },
        404 => ApiError::NotFound {
            system: SYSTEM,
            what: what.to_owned(),
        },
        408 => ApiError::Timeout { system: SYSTEM },
        409 => ApiError::Conflict {
            system: SYSTEM,
            message,
        },
        500..=599 => ApiError::Server {
            system: SYSTEM,
            status,
            message,
        },
        _ => ApiError::Rejected {
            system: SYSTEM,
            status,
            message,
        },
    }
}

/// A 403 in words an MSP admin can act on: the API member's security role
/// lacks a right, and which area of the role to look at.
fn forbidden_message(method: &Method, path: &str, what: &str, said: &str) -> String {
    let verb = match *method {
        Method::GET => "read",
        Method::POST => "add",
        Method::DELETE => "delete",
        _ => "change",
    };
    let area = match path.split('/').next().unwrap_or("") {
        "service" => "Service Desk (Service Tickets, Service Boards)",
        "company" => "Companies (Company Maintenance, Configurations)",
        "system" => "System (Member Maintenance, Table Setup)",
        "project" => "Project",
        _ => "the module of that record",
    };
    let said = if said.trim().is_empty() {
        String::new()
    } else {
        format!(" (ConnectWise said: {said})")
    };
    format!(
        "ConnectWise does not let the bridge's API member {verb} {what}{said}. In ConnectWise, give the API member's security role (System > Security Roles) that right under {area}."
    )
}

fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl Psa for ConnectWiseClient {
    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        let result: Result<WireTicket, _> = self
            .call(
                Method::GET,
                &format!("service/tickets/{id}"),
                &[],
                None,
                "ticket",
            )
            .await;
        match result {
            Ok(ticket) => ticket.into_model().map(Some),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        let tickets: Vec<WireTicket> = self
            .call(
                Method::GET,
                "service/tickets",
                &[
                    (
                        "conditions",
                        wire::eq_condition("externalXRef", external_id),
                    ),
                    ("pageSize", "10".to_owned()),
                ],
                None,
                "ticket query",
            )
            .await?;
        if tickets.len() > 1 {
            // Two tickets with our reference mean a create raced; the oldest is
            // the one the link record most likely points at.
            tracing::warn!(
                count = tickets.len(),
                "several ConnectWise tickets share one externalXRef"
            );
        }
        tickets
            .into_iter()
            .min_by_key(|t| t.id)
            .map(WireTicket::into_model)
            .transpose()
    }

    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        Ok(self.problems_of(ticket))
    }

    #[tracing::instrument(skip(self, ticket), fields(system = SYSTEM, external_id = %ticket.external_id))]
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        let problems = self.problems_of(ticket);
        if !problems.is_empty() {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 0,
                message: format!("ticket not sent: {}", problems.join("; ")),
            });
        }
        let body = wire::create_body(ticket, ticket.queue_id.or(self.board_id));
        let created: Created = self
            .call(Method::POST, "service/tickets", &[], Some(&body), "ticket")
            .await?;
        tracing::info!(ticket_id = created.id, "connectwise ticket created");
        Ok(created.id)
    }

    #[tracing::instrument(skip(self, patch), fields(system = SYSTEM))]
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        let ops = wire::patch_ops(patch);
        if ops.is_empty() {
            return Ok(());
        }
        self.send(
            Method::PATCH,
            Target::Path(&format!("service/tickets/{id}")),
            &[],
            Some(&Value::Array(ops)),
            false,
            "ticket",
        )
        .await?;
        Ok(())
    }

    fn title_max_chars(&self) -> usize {
        wire::SUMMARY_MAX
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        let notes: Vec<WireNote> = self
            .list(
                &format!("service/tickets/{ticket_id}/notes"),
                &[],
                Paging::Navigable,
                "ticket notes",
            )
            .await?;
        // The description the bridge created the ticket with is Zendesk's
        // first comment already: not a note to mirror.
        let mut notes: Vec<PsaNote> = notes
            .into_iter()
            .filter(|n| !n.is_description())
            .map(|n| n.into_model(ticket_id))
            .collect();
        notes.sort_by_key(|n| n.id);
        Ok(notes)
    }

    #[tracing::instrument(skip(self, note), fields(system = SYSTEM, visibility = ?note.visibility))]
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        let created: Created = self
            .call(
                Method::POST,
                &format!("service/tickets/{ticket_id}/notes"),
                &[],
                Some(&wire::note_body(note)),
                "ticket note",
            )
            .await?;
        Ok(created.id)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        if let Some(known) = self
            .member_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&resource_id)
        {
            return Ok(known.clone());
        }
        let result: Result<WireMember, _> = self
            .call(
                Method::GET,
                &format!("system/members/{resource_id}"),
                &[],
                None,
                "member",
            )
            .await;
        let name = match result {
            Ok(member) => member.display_name(),
            Err(ApiError::NotFound { .. }) => None,
            Err(err) => return Err(err),
        };
        self.member_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(resource_id, name.clone());
        Ok(name)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        if reference.trim().is_empty() {
            return Ok(None);
        }
        let configurations: Vec<WireConfiguration> = self
            .list(
                "company/configurations",
                &[
                    ("conditions", wire::configuration_condition(reference)),
                    ("fields", "id,company".to_owned()),
                ],
                Paging::Navigable,
                "configurations",
            )
            .await?;
        let companies: BTreeSet<i64> = configurations
            .iter()
            .filter_map(WireConfiguration::company_id)
            .collect();
        if companies.len() > 1 {
            tracing::warn!(
                reference,
                companies = ?companies,
                "configurations of several companies match the reference; taking the oldest configuration's"
            );
        }
        // The oldest configuration: a later duplicate must not steer tickets
        // to another customer.
        Ok(configurations
            .iter()
            .filter(|c| c.company_id().is_some())
            .min_by_key(|c| c.id)
            .and_then(WireConfiguration::company_id))
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        match field {
            "priority" => Ok(self.cached_priorities().await?.as_ref().clone()),
            "status" => {
                let board = self.board_id.ok_or_else(|| {
                    setting_missing(
                        "ConnectWise statuses belong to a service board and the tenant has none: set the service board (connectwise.board_id)",
                    )
                })?;
                self.ticket_statuses(Some(board)).await
            }
            other => Err(ApiError::NotFound {
                system: SYSTEM,
                what: format!("ticket picklist field {other:?}"),
            }),
        }
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn ticket_statuses(&self, queue_id: Option<i64>) -> Result<Vec<PicklistValue>, ApiError> {
        let board = queue_id.or(self.board_id).ok_or_else(|| {
            setting_missing(
                "ConnectWise statuses belong to a service board and none is known: set the service board (connectwise.board_id)",
            )
        })?;
        Ok(self
            .cached_statuses(board)
            .await?
            .iter()
            .map(|s| PicklistValue {
                value: s.id,
                label: s.name.clone(),
                is_active: !s.inactive,
            })
            .collect())
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        let changed: Vec<ChangedTicket> = self
            .list(
                "service/tickets",
                &[
                    ("conditions", wire::changed_since_condition(since)),
                    ("fields", "id,_info/lastUpdated".to_owned()),
                ],
                Paging::ForwardOnly,
                "ticket change query",
            )
            .await?;
        tracing::debug!(count = changed.len(), "read connectwise ticket changes");
        changed
            .into_iter()
            .map(ChangedTicket::into_change)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> ApiError {
        classify_failure(
            status,
            Duration::from_secs(7),
            body,
            &Method::GET,
            "service/tickets/5",
            "ticket",
        )
    }

    #[test]
    fn failures_are_sorted_into_retryable_and_permanent() {
        let limited = classify(429, "");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert!(limited.is_retryable());
        for status in [500, 502, 503, 504, 408, 409] {
            assert!(classify(status, "").is_retryable(), "{status}");
        }
        let timeout = classify(
            500,
            r#"{"code":"ConnectWiseApi","message":"Operation timeout"}"#,
        );
        assert!(timeout.is_retryable());
        assert!(timeout.to_string().contains("Operation timeout"));

        let rejected = classify(
            400,
            r#"{"code":"InvalidObject","message":"ticket object is invalid","errors":[{"code":"InvalidField","message":"Status is not valid for this board","field":"status"}]}"#,
        );
        assert!(!rejected.is_retryable());
        assert!(
            rejected
                .to_string()
                .contains("status: Status is not valid for this board"),
            "{rejected}"
        );
        assert!(matches!(
            classify(401, ""),
            ApiError::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(classify(404, ""), ApiError::NotFound { .. }));
        assert!(matches!(
            classify(405, ""),
            ApiError::Rejected { status: 405, .. }
        ));

        let forbidden = classify(403, r#"{"code":"Unauthorized","message":"no access"}"#);
        assert!(!forbidden.is_retryable());
        let text = forbidden.to_string();
        assert!(text.contains("read ticket"), "{text}");
        assert!(text.contains("Service Desk"), "{text}");
        assert!(text.contains("no access"), "{text}");
    }

    #[test]
    fn company_ids_are_one_path_segment() {
        assert_eq!(url_segment("acme"), "acme");
        assert_eq!(url_segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn credentials_are_basic_company_plus_public_and_sensitive() {
        let headers = auth_headers("acme", "pub", "priv", "client-guid").unwrap();
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(
            auth.to_str().unwrap(),
            format!("Basic {}", STANDARD.encode("acme+pub:priv"))
        );
        assert_eq!(headers.get("clientid").unwrap(), "client-guid");
        assert!(format!("{headers:?}").contains("Sensitive"));
        assert!(!format!("{headers:?}").contains("priv"));
        assert!(auth_headers("acme", "pub", "priv", "client\nid").is_err());
    }
}
