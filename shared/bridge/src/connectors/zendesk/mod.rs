//! Zendesk: the API client. Its wire format is in [`wire`], the checks and
//! parsers of Zendesk's webhooks are in [`inbound`].
//!
//! Contract (Zendesk Support API v2):
//! - API token auth: HTTP basic with user `{email}/token` and the token as password;
//!   OAuth: `Authorization: Bearer <access token>` (authorization code grant,
//!   `POST {base}/oauth/tokens`, see [`exchange_oauth_code`]). An access token
//!   from that grant does not expire unless `expires_in` was asked for.
//! - Tickets, comments and their cursor pages: see [`wire`]. The next page is
//!   built from `after_cursor`, never by following a link.
//! - 429 carries `Retry-After` (the export's 10 a minute; Update Ticket's 100 a
//!   minute per account and 30 per 10 minutes per ticket per user): retryable
//!   with that delay, so a burst of notes on one ticket is delayed, not dropped.
//! - 409 is a conflicting concurrent update of the same ticket: retryable.
//! - Changes: `GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>` on the
//!   first call, `?cursor=<after_cursor>` afterwards; at most 10 requests a minute,
//!   the most recent minute left out, deleted tickets included unless
//!   `exclude_deleted=true`. Admins only: a 403 there is a permanent error that
//!   names the user and its role (read from `GET /api/v2/users/me.json`, which
//!   [`ZendeskClient::preflight`] checks up front).

pub mod inbound;
pub mod webhooks;
pub mod wire;

use std::collections::HashMap;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Secret, TenantSecrets};
use crate::connectors::http::{error_from_response, transport_error};
use crate::error::ApiError;
use crate::model::{DeskComment, DeskTicket, DeskTicketPatch, Visibility};
use crate::ports::{DeskChanges, DeskCursor, ServiceDesk};

pub use inbound::{
    parse_webhook, sign, verify_signature, DeskEvent, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
pub use webhooks::{EnsuredWebhook, WebhookChanges, WEBHOOK_SUBSCRIPTIONS};
use wire::{
    describe_error, not_admin_message, CommentPage, CurrentUser, ExportPage, OAuthErrorBody,
    OAuthToken, OrganizationPage, PageMeta, TicketEnvelope, UpdateResponse, ADMIN_ROLE,
    EXPORT_PAGE_SIZE, PAGE_SIZE,
};

/// System name used in errors and logs.
pub const SYSTEM: &str = "zendesk";

/// Export requests per sweep. Zendesk allows 10 a minute per account; a sweep
/// every 5 minutes that reads at most 5 pages (5,000 changed tickets) leaves
/// room for retries, and whatever is left is read by the next sweep.
const MAX_EXPORT_PAGES: usize = 5;

/// The bridge's API user, as `GET /api/v2/users/me.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZendeskUser {
    pub id: u64,
    pub name: String,
    pub email: String,
    /// `end-user`, `agent` or `admin`.
    pub role: String,
}

/// Why the bridge cannot work with a tenant's Zendesk credentials, in words
/// an admin can act on.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The user is not an admin, so the sweep's incremental export would be
    /// refused (403).
    #[error("{}", not_admin_message(.email, .role))]
    NotAdmin { email: String, role: String },
    /// Zendesk answered as to an anonymous visitor: the credentials were not
    /// recognised. `email` is empty for an OAuth token.
    #[error("{}", not_recognised_message(.email))]
    NotRecognised { email: String },
    /// `users/me` could not be read.
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn not_recognised_message(email: &str) -> String {
    if email.is_empty() {
        "Zendesk did not recognise the OAuth access token; connect Zendesk again".to_owned()
    } else {
        format!("Zendesk did not recognise the API token of {email}; check the email and the token")
    }
}

impl PreflightError {
    /// Whether trying again later can help (an outage, not a setting).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PreflightError::Api(err) if err.is_retryable())
    }
}

/// How requests are signed in; `Secret` keeps both out of debug output.
#[derive(Debug, Clone)]
enum Auth {
    ApiToken { email: String, token: Secret },
    Bearer(Secret),
}

/// The scope the bridge asks for in the OAuth grant: it reads and writes
/// tickets and comments, and registers its webhook and trigger.
pub const OAUTH_SCOPE: &str = "read write";

/// Zendesk API client of one tenant. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct ZendeskClient {
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
    cluster_id_field: Option<u64>,
}

impl ZendeskClient {
    /// `base_url` is `https://<subdomain>.zendesk.com` (or a sandbox); `cluster_id_field`
    /// is the id of the ticket custom field holding the "cluster id".
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        email: &str,
        api_token: &Secret,
        cluster_id_field: Option<u64>,
    ) -> Self {
        Self::with_auth(
            http,
            base_url,
            Auth::ApiToken {
                email: email.to_owned(),
                token: api_token.clone(),
            },
            cluster_id_field,
        )
    }

    /// Signs in with an OAuth access token (`Authorization: Bearer`).
    pub fn with_oauth_token(
        http: reqwest::Client,
        base_url: &str,
        access_token: &Secret,
        cluster_id_field: Option<u64>,
    ) -> Self {
        Self::with_auth(
            http,
            base_url,
            Auth::Bearer(access_token.clone()),
            cluster_id_field,
        )
    }

    /// The tenant's client: its OAuth token when it has one, else its API token.
    pub fn for_tenant(
        http: reqwest::Client,
        base_url: &str,
        secrets: &TenantSecrets,
        cluster_id_field: Option<u64>,
    ) -> Self {
        if secrets.zendesk_oauth_token.is_empty() {
            Self::new(
                http,
                base_url,
                &secrets.zendesk_email,
                &secrets.zendesk_api_token,
                cluster_id_field,
            )
        } else {
            Self::with_oauth_token(
                http,
                base_url,
                &secrets.zendesk_oauth_token,
                cluster_id_field,
            )
        }
    }

    fn with_auth(
        http: reqwest::Client,
        base_url: &str,
        auth: Auth,
        cluster_id_field: Option<u64>,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            cluster_id_field,
        }
    }

    /// The configured agent's address; empty with OAuth, where Zendesk says
    /// who the token belongs to (`users/me`).
    fn email(&self) -> &str {
        match &self.auth {
            Auth::ApiToken { email, .. } => email,
            Auth::Bearer(_) => "",
        }
    }

    /// The user the credentials sign in as, for messages.
    fn who(&self) -> &str {
        match &self.auth {
            Auth::ApiToken { email, .. } => email,
            Auth::Bearer(_) => "the user who connected Zendesk",
        }
    }

    fn ticket_url(&self, id: u64) -> String {
        format!("{}/api/v2/tickets/{id}.json", self.base_url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let request = match &self.auth {
            Auth::ApiToken { email, token } => {
                request.basic_auth(format!("{email}/token"), Some(token.expose()))
            }
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
        };
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| transport_error(SYSTEM, err))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let err = match error_from_response(SYSTEM, response, what, describe_error).await {
                // A concurrent update of the same ticket: the next try wins.
                ApiError::Rejected {
                    status: 409,
                    message,
                    ..
                } => ApiError::Conflict {
                    system: SYSTEM,
                    message,
                },
                other => other,
            };
            tracing::debug!(%err, retryable = err.is_retryable(), "zendesk call failed");
            Err(err)
        }
    }

    /// The API user (`GET /api/v2/users/me.json`).
    pub async fn current_user(&self) -> Result<Option<ZendeskUser>, ApiError> {
        let request = self
            .http
            .get(format!("{}/api/v2/users/me.json", self.base_url));
        let me: CurrentUser = read_json(self.send(request, "current user").await?).await?;
        let user = me.user;
        Ok(user.id.map(|id| ZendeskUser {
            id,
            name: user.name.unwrap_or_default(),
            email: user.email.unwrap_or_else(|| self.email().to_owned()),
            role: user.role.unwrap_or_default(),
        }))
    }

    /// Checks before syncing that the credentials work and that their user
    /// may use everything the bridge needs: tickets, comments and the
    /// incremental export, which Zendesk allows for admins only.
    #[tracing::instrument(name = "zendesk.preflight", skip(self))]
    pub async fn preflight(&self) -> Result<ZendeskUser, PreflightError> {
        let Some(user) = self.current_user().await? else {
            return Err(PreflightError::NotRecognised {
                email: self.email().to_owned(),
            });
        };
        if user.role != ADMIN_ROLE {
            return Err(PreflightError::NotAdmin {
                email: user.email,
                role: user.role,
            });
        }
        Ok(user)
    }

    /// Turns the export's 403 into an error an admin can act on: the export
    /// is for admins, so it names the user and its role.
    async fn export_refused(&self) -> ApiError {
        let message = match self.preflight().await {
            Err(PreflightError::NotAdmin { email, role }) => not_admin_message(&email, &role),
            Ok(user) => format!(
                "Zendesk refused the incremental export used by the sweep (403) to {}, \
                 although that user is an admin; check that the API token has full access",
                user.email
            ),
            Err(err) => format!(
                "Zendesk refused the incremental export used by the sweep (403) to {}; the \
                 export needs an admin, and the user's role could not be read ({err})",
                self.who()
            ),
        };
        tracing::warn!(%message, "zendesk export refused");
        ApiError::Forbidden {
            system: SYSTEM,
            message,
        }
    }

    /// Every organization of the account (`GET /api/v2/organizations.json`),
    /// as (id, name), through its cursor pages.
    #[tracing::instrument(name = "zendesk.organizations", skip(self))]
    pub async fn organizations(&self) -> Result<Vec<(u64, String)>, ApiError> {
        let url = format!("{}/api/v2/organizations.json", self.base_url);
        let mut organizations = Vec::new();
        self.each_cursor_page(&url, &[], "organizations", |page: OrganizationPage| {
            organizations.extend(
                page.organizations
                    .into_iter()
                    .map(|o| (o.id, o.name.unwrap_or_default())),
            );
            page.meta
        })
        .await?;
        tracing::debug!(count = organizations.len(), "listed zendesk organizations");
        Ok(organizations)
    }

    /// Reads every cursor page of `url` (`page[size]` and `query`), handing
    /// each to `take`, which answers the page's `meta`. The next page is
    /// built from `after_cursor` rather than by following `links.next`, so
    /// credentials only ever go to the configured host; a page that has more
    /// but no cursor, or a cursor that does not advance, is malformed.
    /// `what` names the listing in errors and logs.
    async fn each_cursor_page<P, F>(
        &self,
        url: &str,
        query: &[(&str, &str)],
        what: &str,
        mut take: F,
    ) -> Result<(), ApiError>
    where
        P: DeserializeOwned,
        F: FnMut(P) -> PageMeta,
    {
        let mut after: Option<String> = None;
        loop {
            let mut page_query = vec![("page[size]", PAGE_SIZE)];
            page_query.extend_from_slice(query);
            if let Some(cursor) = &after {
                page_query.push(("page[after]", cursor));
            }
            let request = self.http.get(url).query(&page_query);
            let meta = take(read_json(self.send(request, what).await?).await?);
            if !meta.has_more {
                return Ok(());
            }
            let cursor = meta
                .after_cursor
                .filter(|c| !c.is_empty())
                .ok_or_else(|| malformed(format!("{what}: page has more but no after_cursor")))?;
            if after.as_deref() == Some(cursor.as_str()) {
                return Err(malformed(format!("{what}: cursor did not advance")));
            }
            after = Some(cursor);
        }
    }

    /// Updates a ticket with `{"ticket": fields}` and returns the response.
    async fn put_ticket(&self, id: u64, fields: Value) -> Result<UpdateResponse, ApiError> {
        let request = self
            .http
            .put(self.ticket_url(id))
            .json(&wire::ticket_update(fields));
        read_json(self.send(request, &format!("ticket {id}")).await?).await
    }

    /// Sets one ticket custom field (for example the cluster id, or a PSA reference
    /// kept in a custom field instead of `external_id`).
    #[tracing::instrument(name = "zendesk.set_custom_field", skip(self, value))]
    pub async fn set_custom_field(
        &self,
        ticket_id: u64,
        field_id: u64,
        value: Value,
    ) -> Result<(), ApiError> {
        self.put_ticket(ticket_id, wire::custom_field(field_id, value))
            .await
            .map(drop)
    }
}

#[async_trait]
impl ServiceDesk for ZendeskClient {
    #[tracing::instrument(name = "zendesk.get_ticket", skip(self))]
    async fn get_ticket(&self, id: u64) -> Result<DeskTicket, ApiError> {
        let request = self.http.get(self.ticket_url(id));
        let envelope: TicketEnvelope =
            read_json(self.send(request, &format!("ticket {id}")).await?).await?;
        Ok(envelope.into_model(self.cluster_id_field))
    }

    #[tracing::instrument(name = "zendesk.list_comments", skip(self))]
    async fn list_comments(&self, ticket_id: u64) -> Result<Vec<DeskComment>, ApiError> {
        let url = format!("{}/api/v2/tickets/{ticket_id}/comments.json", self.base_url);
        let what = format!("ticket {ticket_id}");
        let mut comments = Vec::new();
        let mut names = HashMap::new();
        self.each_cursor_page(&url, &[("include", "users")], &what, |page: CommentPage| {
            names.extend(
                page.users
                    .into_iter()
                    .filter_map(|u| u.name.map(|name| (u.id, name))),
            );
            comments.extend(page.comments);
            page.meta
        })
        .await?;
        tracing::debug!(count = comments.len(), "listed zendesk comments");
        Ok(comments.into_iter().map(|c| c.into_model(&names)).collect())
    }

    #[tracing::instrument(name = "zendesk.add_comment", skip(self, body))]
    async fn add_comment(
        &self,
        ticket_id: u64,
        body: &str,
        visibility: Visibility,
    ) -> Result<u64, ApiError> {
        let public = visibility == Visibility::Public;
        let response = self
            .put_ticket(ticket_id, wire::comment(body, visibility))
            .await?;
        let id = response
            .comment_id()
            .ok_or_else(|| malformed("ticket update reported no Comment event"))?;
        tracing::debug!(comment_id = id, public, "added zendesk comment");
        Ok(id)
    }

    #[tracing::instrument(name = "zendesk.update_ticket", skip(self))]
    async fn update_ticket(&self, ticket_id: u64, patch: &DeskTicketPatch) -> Result<(), ApiError> {
        self.put_ticket(ticket_id, wire::field_patch(patch))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "zendesk.set_external_id", skip(self))]
    async fn set_external_id(&self, ticket_id: u64, external_id: &str) -> Result<(), ApiError> {
        self.put_ticket(ticket_id, wire::external_id(external_id))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "zendesk.changed_tickets", skip(self))]
    async fn changed_tickets(&self, position: &DeskCursor) -> Result<DeskChanges, ApiError> {
        let url = format!("{}/api/v2/incremental/tickets/cursor.json", self.base_url);
        let mut changes = DeskChanges {
            ticket_ids: Vec::new(),
            next: position.clone(),
            complete: false,
            pages: 0,
        };
        let mut seen = std::collections::HashSet::new();
        while changes.pages < MAX_EXPORT_PAGES {
            let mut query = vec![
                ("per_page", EXPORT_PAGE_SIZE.to_owned()),
                ("exclude_deleted", "true".to_owned()),
            ];
            match &changes.next {
                DeskCursor::StartTime(at) => query.push(("start_time", at.timestamp().to_string())),
                DeskCursor::Cursor(cursor) => query.push(("cursor", cursor.clone())),
            }
            let request = self.http.get(&url).query(&query);
            let page: ExportPage = match self.send(request, "ticket export").await {
                Ok(response) => read_json(response).await?,
                // A cursor is a valid resume point: what earlier pages returned is
                // kept, and the next sweep goes on from there.
                Err(err) if changes.pages > 0 && err.is_retryable() => {
                    tracing::warn!(%err, pages = changes.pages, "ticket export cut short");
                    return Ok(changes);
                }
                Err(ApiError::Unauthorized { status: 403, .. }) => {
                    return Err(self.export_refused().await)
                }
                Err(err) => return Err(err),
            };
            changes.pages += 1;
            for ticket in page.tickets {
                // Deleted tickets have nothing left to mirror (and 404 when read).
                if ticket.status.as_deref() != Some("deleted") && seen.insert(ticket.id) {
                    changes.ticket_ids.push(ticket.id);
                }
            }
            let cursor = page.after_cursor.filter(|c| !c.is_empty());
            if page.end_of_stream {
                // An export that found nothing names no cursor: keep the position.
                if let Some(cursor) = cursor {
                    changes.next = DeskCursor::Cursor(cursor);
                }
                changes.complete = true;
                break;
            }
            let cursor =
                cursor.ok_or_else(|| malformed("export has more pages but no after_cursor"))?;
            if changes.next == DeskCursor::Cursor(cursor.clone()) {
                return Err(malformed("export cursor did not advance"));
            }
            changes.next = DeskCursor::Cursor(cursor);
        }
        tracing::debug!(
            count = changes.ticket_ids.len(),
            pages = changes.pages,
            complete = changes.complete,
            "read zendesk ticket changes"
        );
        Ok(changes)
    }
}

/// Why an OAuth authorization code could not be exchanged for a token.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The code is unknown, expired (Zendesk keeps it 120 s), already used,
    /// or was issued for another client or redirect URI.
    #[error("Zendesk refused the authorization code (invalid_grant)")]
    InvalidGrant,
    /// The OAuth client's identifier or secret is wrong.
    #[error("Zendesk did not accept the OAuth client (invalid_client)")]
    InvalidClient,
    /// Another OAuth error code, e.g. `invalid_scope`, `unsupported_grant_type`.
    #[error("Zendesk refused the token request ({0})")]
    Refused(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl OAuthError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, OAuthError::Api(err) if err.is_retryable())
    }
}

/// The page Zendesk's users are sent to, to allow the bridge access
/// (`GET {base}/oauth/authorizations/new`); Zendesk sends them back to
/// `redirect_uri` with `code` and the unchanged `state`.
pub fn oauth_authorize_url(
    base_url: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("scope", OAUTH_SCOPE),
        ("state", state),
    ])
    .unwrap_or_default();
    format!(
        "{}/oauth/authorizations/new?{query}",
        base_url.trim_end_matches('/')
    )
}

/// Exchanges an authorization code for an access token
/// (`POST {base}/oauth/tokens`, grant type `authorization_code`, JSON body).
#[tracing::instrument(name = "zendesk.oauth_token", skip_all)]
pub async fn exchange_oauth_code(
    http: &reqwest::Client,
    base_url: &str,
    client_id: &str,
    client_secret: &Secret,
    code: &str,
    redirect_uri: &str,
) -> Result<Secret, OAuthError> {
    let body = serde_json::json!({
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret.expose(),
        "redirect_uri": redirect_uri,
        "scope": OAUTH_SCOPE,
    });
    let response = http
        .post(format!("{}/oauth/tokens", base_url.trim_end_matches('/')))
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|err| transport_error(SYSTEM, err))?;
    let status = response.status();
    if status.is_success() {
        let token: OAuthToken = read_json(response).await?;
        return token
            .access_token
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| malformed("the token response has no access_token").into());
    }
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        let bytes = response.bytes().await.unwrap_or_default();
        let error = serde_json::from_slice::<OAuthErrorBody>(&bytes)
            .unwrap_or_default()
            .error
            .unwrap_or_default();
        tracing::debug!(status = status.as_u16(), %error, "zendesk oauth token refused");
        return Err(match error.as_str() {
            "invalid_grant" => OAuthError::InvalidGrant,
            "invalid_client" => OAuthError::InvalidClient,
            "" => OAuthError::Refused(format!("HTTP {}", status.as_u16())),
            // Only the error code is kept: descriptions are free text.
            other => OAuthError::Refused(other.chars().take(64).collect()),
        });
    }
    Err(
        error_from_response(SYSTEM, response, "OAuth token", describe_error)
            .await
            .into(),
    )
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::Malformed {
        system: SYSTEM,
        message: message.into(),
    }
}

/// Decodes a success body. A body that does not parse is `Malformed` (permanent),
/// not a transport failure: retrying will not change what the API sends.
async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|err| transport_error(SYSTEM, err))?;
    serde_json::from_slice(&bytes).map_err(|err| malformed(err.to_string()))
}
