//! [`TenantSetup`] over HTTP, on the same clients the sync uses, so that what
//! the console verifies is exactly what the bridge will send later.
//!
//! How each failure is told apart (what the admin must fix):
//! - Autotask's zone lookup answers an unknown API user name with a 500 and an
//!   `errors` body: the user name is wrong.
//! - With a known user, an entity call answers a wrong secret with 401 and a
//!   wrong integration code (tracking identifier) with a 500 whose message
//!   names the integration code (apigrate/autotask-restapi#19 reports the
//!   status codes; the message text follows the SOAP API's "IntegrationCode
//!   is invalid."). A 403 is the API user's security level.
//! - Zendesk answers bad credentials with 401 (or as to an anonymous user),
//!   a token endpoint refusal with `invalid_grant` / `invalid_client`.
//! - ConnectWise answers an unknown company at a site with JSON `null` from
//!   the unauthenticated companyinfo (so the site and company are told apart
//!   from the keys before any key is sent), refused keys with 401 (on cloud
//!   reportedly also 404), and a security role without a right with 403.
//!   Its clientId is only checked for presence here: the public contract
//!   says nothing of how a wrong one is refused.
//!
//! No [`CheckFailure`], log line or error built here carries a credential:
//! fixed texts are used, and any text that came from outside is scrubbed of
//! the credentials before it is shown.

use async_trait::async_trait;

use crate::config::{ConnectWiseSettings, Secret, TenantSecrets};
use crate::connectors::autotask::webhooks::{HookChanges, WebhookRequest};
use crate::connectors::autotask::AutotaskClient;
use crate::connectors::connectwise::ConnectWiseClient;
use crate::connectors::http;
use crate::connectors::zendesk::{self, OAuthError, PreflightError, ZendeskClient};
use crate::error::ApiError;
use crate::model::PicklistValue;
use crate::setup::{
    AutotaskAccess, AutotaskVerified, CheckFailure, ConnectWiseAccess, ConnectWiseVerified,
    HookRegistration, NamedId, PsaChoices, RegisteredHook, TenantSetup, ZendeskAccess, ZendeskAuth,
    ZendeskVerified,
};

/// The check names the console shows; the same words in every failure.
pub mod checks {
    pub const ZENDESK_ADDRESS: &str = "Zendesk address";
    pub const ZENDESK_EMAIL: &str = "Zendesk agent email";
    pub const ZENDESK_TOKEN: &str = "Zendesk API token";
    pub const ZENDESK_OAUTH: &str = "Zendesk OAuth connection";
    pub const ZENDESK_OAUTH_CLIENT: &str = "Zendesk OAuth client";
    pub const ZENDESK_ACCESS: &str = "Zendesk API access";
    pub const ZENDESK_ORGANIZATIONS: &str = "Zendesk organizations";
    pub const ZENDESK_WEBHOOK: &str = "Zendesk webhook";
    pub const AUTOTASK_ZONE_LOOKUP: &str = "Autotask zone lookup";
    pub const AUTOTASK_USER: &str = "Autotask API user";
    pub const AUTOTASK_SECRET: &str = "Autotask API secret";
    pub const AUTOTASK_INTEGRATION_CODE: &str = "Autotask integration code";
    pub const AUTOTASK_ACCESS: &str = "Autotask API access";
    pub const AUTOTASK_PERMISSIONS: &str = "Autotask API user permissions";
    pub const AUTOTASK_PICKLISTS: &str = "Autotask picklists";
    pub const AUTOTASK_COMPANIES: &str = "Autotask companies";
    pub const AUTOTASK_WEBHOOKS: &str = "Autotask webhooks";
    pub const CONNECTWISE_SITE: &str = "ConnectWise site";
    pub const CONNECTWISE_COMPANY: &str = "ConnectWise company id";
    pub const CONNECTWISE_KEYS: &str = "ConnectWise API keys";
    pub const CONNECTWISE_CLIENT_ID: &str = "ConnectWise clientId";
    pub const CONNECTWISE_PERMISSIONS: &str = "ConnectWise security role";
    pub const CONNECTWISE_ACCESS: &str = "ConnectWise API access";
    pub const CONNECTWISE_BOARD: &str = "ConnectWise service board";
    pub const CONNECTWISE_BOARD_TEAM: &str = "ConnectWise board team";
    pub const CONNECTWISE_BOARD_STATUSES: &str = "ConnectWise board statuses";
    pub const CONNECTWISE_PRIORITIES: &str = "ConnectWise priorities";
    pub const CONNECTWISE_COMPANIES: &str = "ConnectWise companies";
    pub const CONNECTWISE_CALLBACK: &str = "ConnectWise callback";
}

/// The live onboarding checks, over one shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpSetup {
    http: reqwest::Client,
}

impl Default for HttpSetup {
    fn default() -> Self {
        Self::new(http::client())
    }
}

impl HttpSetup {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    fn zendesk_client(&self, access: &ZendeskAccess) -> Result<ZendeskClient, CheckFailure> {
        check_url(
            &access.base_url,
            checks::ZENDESK_ADDRESS,
            "the Zendesk address",
        )?;
        Ok(match &access.auth {
            ZendeskAuth::ApiToken { email, token } => {
                if email.trim().is_empty() {
                    return Err(fail(
                        checks::ZENDESK_EMAIL,
                        "Enter the email address of the Zendesk agent whose API token this is.",
                    ));
                }
                if token.is_empty() {
                    return Err(fail(
                        checks::ZENDESK_TOKEN,
                        "Enter an API token (Zendesk Admin Center > Apps and integrations > \
                         Zendesk API).",
                    ));
                }
                ZendeskClient::new(
                    self.http.clone(),
                    &access.base_url,
                    email.trim(),
                    token,
                    None,
                )
            }
            ZendeskAuth::OAuth { access_token } => {
                if access_token.is_empty() {
                    return Err(fail(
                        checks::ZENDESK_OAUTH,
                        "Zendesk is not connected yet; use \"Connect with Zendesk\".",
                    ));
                }
                ZendeskClient::with_oauth_token(
                    self.http.clone(),
                    &access.base_url,
                    access_token,
                    None,
                )
            }
        })
    }

    async fn autotask_client(
        &self,
        access: &AutotaskAccess,
    ) -> Result<AutotaskClient, CheckFailure> {
        check_url(
            &access.zone_lookup_url,
            checks::AUTOTASK_ZONE_LOOKUP,
            "the Autotask zone lookup address",
        )?;
        let username = access.username.trim();
        for (value, check, what) in [
            (
                username,
                checks::AUTOTASK_USER,
                "the API user's Username (Key)",
            ),
            (
                access.secret.expose(),
                checks::AUTOTASK_SECRET,
                "the API user's Secret",
            ),
            (
                access.integration_code.expose(),
                checks::AUTOTASK_INTEGRATION_CODE,
                "the API Tracking Identifier (integration code) of the API user",
            ),
        ] {
            if value.is_empty() {
                return Err(fail(check, format!("Enter {what}.")));
            }
            // Autotask sends these as HTTP headers; a pasted line break or
            // similar would fail every call without saying which field.
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(fail(
                    check,
                    format!(
                        "{} contains characters that cannot be sent to Autotask (a line break \
                         or a non-ASCII character); paste it again.",
                        capitalize(what)
                    ),
                ));
            }
        }
        let connected = AutotaskClient::connect(
            self.http.clone(),
            &access.zone_lookup_url,
            username,
            &access.secret,
            &access.integration_code,
        )
        .await;
        match connected {
            Ok(client) => Ok(client),
            // The zone lookup answers an unknown user name with a 500 and
            // an error text (`Rejected` after the client's reading).
            Err(ApiError::Rejected { .. }) | Err(ApiError::NotFound { .. }) => Err(fail(
                checks::AUTOTASK_USER,
                "Autotask does not know this API user name. Copy the Username (Key) of the \
                 API-only user (Admin > Resources/Users > the API user > Credentials) exactly.",
            )),
            Err(err) => Err(autotask_unavailable(
                checks::AUTOTASK_ZONE_LOOKUP,
                &err,
                access,
            )),
        }
    }
}

impl HttpSetup {
    /// A client after the codebase lookup, or the check that failed on the
    /// way: a field left empty, the site, or the company at that site.
    async fn connectwise_client(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<ConnectWiseClient, CheckFailure> {
        check_url(
            &access.site,
            checks::CONNECTWISE_SITE,
            "the ConnectWise site",
        )?;
        let company = access.company_id.trim();
        for (value, check, what) in [
            (
                company,
                checks::CONNECTWISE_COMPANY,
                "the company id you sign in to ConnectWise with",
            ),
            (
                access.public_key.trim(),
                checks::CONNECTWISE_KEYS,
                "the API member's public key",
            ),
            (
                access.private_key.expose().trim(),
                checks::CONNECTWISE_KEYS,
                "the API member's private key",
            ),
            (
                access.client_id.trim(),
                checks::CONNECTWISE_CLIENT_ID,
                "the integration's clientId (ConnectWise requires it on every API call; \
                 get one at developer.connectwise.com/ClientID)",
            ),
        ] {
            if value.is_empty() {
                return Err(fail(check, format!("Enter {what}.")));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(fail(
                    check,
                    format!(
                        "{} contains characters that cannot be sent to ConnectWise (a line \
                         break or a non-ASCII character); paste it again.",
                        capitalize(what)
                    ),
                ));
            }
        }
        let settings = ConnectWiseSettings::new(access.site.trim(), company);
        let secrets = connectwise_secrets(access)?;
        match ConnectWiseClient::connect(self.http.clone(), &settings, &secrets).await {
            Ok(client) => Ok(client),
            // companyinfo answered, with JSON null: no such company there.
            Err(ApiError::Rejected { status: 200, .. }) => Err(fail(
                checks::CONNECTWISE_COMPANY,
                format!(
                    "ConnectWise knows no company \"{company}\" at {}. Enter the company id \
                     exactly as on ConnectWise's sign-in page, and check that the site (cloud \
                     region, or your own server's address) is the one you sign in at.",
                    host_of(&access.site)
                ),
            )),
            Err(err) => Err(connectwise_site_failure(&err, access)),
        }
    }
}

/// `TenantSecrets` with only the ConnectWise fields, as the client takes
/// them (built through its deserializer, so fields added later with a
/// default keep working).
fn connectwise_secrets(access: &ConnectWiseAccess) -> Result<TenantSecrets, CheckFailure> {
    serde_json::from_value(serde_json::json!({
        "zendesk_email": "",
        "zendesk_api_token": "",
        "zendesk_webhook_secret": "",
        "connectwise_public_key": access.public_key.trim(),
        "connectwise_private_key": access.private_key.expose().trim(),
        "connectwise_client_id": access.client_id.trim(),
    }))
    .map_err(|_| {
        // serde names the field, never the value; but no value is needed.
        fail(
            checks::CONNECTWISE_ACCESS,
            "This build of the bridge cannot hold ConnectWise credentials; ask the operator.",
        )
    })
}

#[async_trait]
impl TenantSetup for HttpSetup {
    #[tracing::instrument(name = "setup.verify_zendesk", skip_all, fields(host = %host_of(&access.base_url)))]
    async fn verify_zendesk(
        &self,
        access: &ZendeskAccess,
    ) -> Result<ZendeskVerified, CheckFailure> {
        let client = self.zendesk_client(access)?;
        let result = client.preflight().await;
        let outcome = match result {
            Ok(user) => Ok(ZendeskVerified {
                agent_email: user.email,
                is_admin: true,
            }),
            Err(PreflightError::NotAdmin { email, .. }) => Ok(ZendeskVerified {
                agent_email: email,
                is_admin: false,
            }),
            Err(PreflightError::NotRecognised { .. }) => Err(zendesk_not_accepted(access)),
            Err(PreflightError::Api(err)) => Err(zendesk_api_failure(&err, access)),
        };
        log_outcome("zendesk sign-in", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.zendesk_oauth_token", skip_all, fields(host = %host_of(base_url)))]
    async fn zendesk_oauth_token(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Secret, CheckFailure> {
        check_url(base_url, checks::ZENDESK_ADDRESS, "the Zendesk address")?;
        if client_id.trim().is_empty() || client_secret.is_empty() {
            return Err(fail(
                checks::ZENDESK_OAUTH_CLIENT,
                "The bridge's Zendesk OAuth client is not configured (unique identifier and \
                 secret); ask the operator.",
            ));
        }
        let result = zendesk::exchange_oauth_code(
            &self.http,
            base_url,
            client_id.trim(),
            client_secret,
            code,
            redirect_uri,
        )
        .await;
        let outcome = result.map_err(|err| match err {
            OAuthError::InvalidGrant => fail(
                checks::ZENDESK_OAUTH,
                "Zendesk refused the authorization: it expired (Zendesk allows two minutes), \
                 was already used, or was made for another address. Use \"Connect with \
                 Zendesk\" again.",
            ),
            OAuthError::InvalidClient => fail(
                checks::ZENDESK_OAUTH_CLIENT,
                "Zendesk did not accept the bridge's OAuth client (unique identifier or \
                 secret). Check the OAuth client in Zendesk Admin Center > Apps and \
                 integrations > APIs > OAuth clients.",
            ),
            OAuthError::Refused(code) => fail(
                checks::ZENDESK_OAUTH,
                format!(
                    "Zendesk refused the token request ({}). Check the OAuth client's redirect \
                     URL and connect again.",
                    scrub(&code, &[client_id, client_secret.expose(), code.as_str()])
                ),
            ),
            OAuthError::Api(err) => zendesk_transport_failure(&err, checks::ZENDESK_OAUTH),
        });
        log_outcome("zendesk oauth token", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.zendesk_organizations", skip_all, fields(host = %host_of(&access.base_url)))]
    async fn zendesk_organizations(
        &self,
        access: &ZendeskAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        let client = self.zendesk_client(access)?;
        let outcome = match client.organizations().await {
            Ok(list) => Ok(list
                .into_iter()
                .filter_map(|(id, name)| i64::try_from(id).ok().map(|id| NamedId { id, name }))
                .collect()),
            Err(ApiError::Unauthorized { status: 403, .. }) => Err(fail(
                checks::ZENDESK_ORGANIZATIONS,
                "Zendesk does not let this user list organizations (a custom agent role \
                 limited to its own organization); connect with an admin.",
            )),
            Err(err) => Err(zendesk_api_failure(&err, access)),
        };
        log_outcome("zendesk organizations", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.register_zendesk_webhook", skip_all, fields(host = %host_of(&access.base_url)))]
    async fn register_zendesk_webhook(
        &self,
        access: &ZendeskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure> {
        let outcome = async {
            check_url(
                endpoint,
                checks::ZENDESK_WEBHOOK,
                "the bridge's webhook URL",
            )?;
            let client = self.zendesk_client(access)?;
            let ensured = client
                .ensure_webhook(endpoint.trim(), name)
                .await
                .map_err(|err| match err {
                    ApiError::Forbidden { .. } => fail(
                        checks::ZENDESK_WEBHOOK,
                        "Zendesk lets only admins create webhooks and read their signing \
                         secrets, and the connected user is not one. Connect Zendesk as an \
                         admin, or create the webhook by hand (the steps below) and paste its \
                         signing secret.",
                    ),
                    ApiError::Unauthorized { status: 401, .. } => zendesk_not_accepted(access),
                    ApiError::NotFound { .. } => fail(
                        checks::ZENDESK_WEBHOOK,
                        "This Zendesk does not offer the Webhooks API at this address; create \
                         the webhook by hand (the steps below) and paste its signing secret.",
                    ),
                    other => zendesk_transport_failure(&other, checks::ZENDESK_WEBHOOK),
                })?;
            let changes = ensured.changes;
            let mut done = vec![if changes.created {
                format!("created webhook {}", ensured.hook.id)
            } else {
                format!("webhook {} was already registered", ensured.hook.id)
            }];
            if changes.removed > 0 {
                done.push(format!(
                    "removed {} outdated or duplicate webhook{} to the same address",
                    changes.removed,
                    if changes.removed == 1 { "" } else { "s" }
                ));
            }
            Ok(HookRegistration {
                hook: ensured.hook,
                summary: format!(
                    "Zendesk: {}; its signing secret is kept in the secrets store.",
                    done.join("; ")
                ),
            })
        }
        .await;
        log_outcome("zendesk webhook", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.register_autotask_webhooks", skip_all, fields(host = %host_of(&access.zone_lookup_url)))]
    async fn register_autotask_webhooks(
        &self,
        access: &AutotaskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure> {
        let outcome = async {
            check_url(
                endpoint,
                checks::AUTOTASK_WEBHOOKS,
                "the bridge's webhook URL",
            )?;
            let client = self.autotask_client(access).await?;
            let request = WebhookRequest {
                endpoint: endpoint.trim(),
                name,
                api_username: access.username.trim(),
                notification_email: None,
            };
            let ensured = client
                .ensure_webhooks(&request)
                .await
                .map_err(|err| autotask_webhook_failure(&err, access))?;
            let describe = |c: &HookChanges, what: &str| {
                let mut said = if c.created {
                    format!("created the {what} webhook {}", c.id)
                } else {
                    format!(
                        "the {what} webhook {} was already registered (new secret key)",
                        c.id
                    )
                };
                if c.removed > 0 {
                    said.push_str(&format!(
                        ", removed {} duplicate{} to the same address",
                        c.removed,
                        if c.removed == 1 { "" } else { "s" }
                    ));
                }
                said
            };
            Ok(HookRegistration {
                hook: RegisteredHook {
                    id: format!(
                        "Ticket {} / TicketNote {}",
                        ensured.ticket.id, ensured.note.id
                    ),
                    signing_secret: ensured.secret_key,
                },
                summary: format!(
                    "Autotask: {}; {}; the API user (resource {}) is excluded, and the secret \
                     key is kept in the secrets store.",
                    describe(&ensured.ticket, "Ticket"),
                    describe(&ensured.note, "TicketNote"),
                    ensured.api_resource_id
                ),
            })
        }
        .await;
        log_outcome("autotask webhooks", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.verify_autotask", skip_all, fields(host = %host_of(&access.zone_lookup_url)))]
    async fn verify_autotask(
        &self,
        access: &AutotaskAccess,
    ) -> Result<AutotaskVerified, CheckFailure> {
        let outcome = async {
            let client = self.autotask_client(access).await?;
            client
                .check_access()
                .await
                .map_err(|err| autotask_call_failure(&err, access, checks::AUTOTASK_ACCESS))?;
            Ok(AutotaskVerified {
                api_base_url: client.base_url().to_owned(),
            })
        }
        .await;
        log_outcome("autotask sign-in", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.autotask_choices", skip_all, fields(host = %host_of(&access.zone_lookup_url)))]
    async fn autotask_choices(&self, access: &AutotaskAccess) -> Result<PsaChoices, CheckFailure> {
        let outcome = async {
            let client = self.autotask_client(access).await?;
            let read = |entity: &'static str, field: &'static str| {
                let client = &client;
                async move {
                    client
                        .picklist(entity, field)
                        .await
                        .map_err(|err| match err {
                            ApiError::NotFound { .. } => fail(
                                checks::AUTOTASK_PICKLISTS,
                                format!(
                                "Autotask did not describe the {entity} field {field}; the API \
                                 user's security level may hide it."
                            ),
                            ),
                            err => autotask_call_failure(&err, access, checks::AUTOTASK_PICKLISTS),
                        })
                }
            };
            // One field list per entity is fetched and cached by the client,
            // so these four reads cost two requests.
            Ok(PsaChoices {
                queues: read("Tickets", "queueID").await?,
                statuses: read("Tickets", "status").await?,
                priorities: read("Tickets", "priority").await?,
                note_publish: read("TicketNotes", "publish").await?,
            })
        }
        .await;
        log_outcome("autotask picklists", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.autotask_companies", skip_all, fields(host = %host_of(&access.zone_lookup_url)))]
    async fn autotask_companies(
        &self,
        access: &AutotaskAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        let outcome = async {
            let client = self.autotask_client(access).await?;
            let companies = client
                .active_companies()
                .await
                .map_err(|err| autotask_call_failure(&err, access, checks::AUTOTASK_COMPANIES))?;
            let mut companies: Vec<NamedId> = companies
                .into_iter()
                .map(|(id, name)| NamedId { id, name })
                .collect();
            companies.sort_by_cached_key(|c| c.name.to_lowercase());
            Ok(companies)
        }
        .await;
        log_outcome("autotask companies", &outcome);
        outcome
    }
    #[tracing::instrument(name = "setup.verify_connectwise", skip_all, fields(host = %host_of(&access.site)))]
    async fn verify_connectwise(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<ConnectWiseVerified, CheckFailure> {
        let outcome = async {
            let client = self.connectwise_client(access).await?;
            let info = client.system_info().await.map_err(|err| {
                connectwise_call_failure(&err, access, checks::CONNECTWISE_ACCESS)
            })?;
            // The sync reads and writes tickets on boards: a role that can
            // sign in but not read boards fails here, not on the first ticket.
            client.boards().await.map_err(|err| {
                connectwise_call_failure(&err, access, checks::CONNECTWISE_ACCESS)
            })?;
            let version = info
                .get("version")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            Ok(ConnectWiseVerified {
                api_base_url: client.base_url(),
                codebase: client.codebase(),
                version,
            })
        }
        .await;
        log_outcome("connectwise sign-in", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.connectwise_boards", skip_all, fields(host = %host_of(&access.site)))]
    async fn connectwise_boards(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        let outcome = async {
            let client = self.connectwise_client(access).await?;
            let boards = client
                .boards()
                .await
                .map_err(|err| connectwise_call_failure(&err, access, checks::CONNECTWISE_BOARD))?;
            Ok(boards
                .into_iter()
                .filter(|b| !b.inactive)
                .map(|b| NamedId {
                    id: b.id,
                    name: b.name,
                })
                .collect())
        }
        .await;
        log_outcome("connectwise boards", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.connectwise_board_choices", skip_all, fields(host = %host_of(&access.site), board = board_id))]
    async fn connectwise_board_choices(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
    ) -> Result<PsaChoices, CheckFailure> {
        let outcome = async {
            let client = self.connectwise_client(access).await?;
            let failed = |check: &'static str| {
                move |err: ApiError| connectwise_call_failure(&err, access, check)
            };
            let boards = client
                .boards()
                .await
                .map_err(failed(checks::CONNECTWISE_BOARD))?;
            let statuses = client
                .board_statuses(board_id)
                .await
                .map_err(|err| match err {
                    ApiError::NotFound { .. } => board_gone(board_id),
                    err => {
                        connectwise_call_failure(&err, access, checks::CONNECTWISE_BOARD_STATUSES)
                    }
                })?;
            let priorities = client
                .priorities()
                .await
                .map_err(failed(checks::CONNECTWISE_PRIORITIES))?;
            Ok(PsaChoices {
                queues: boards
                    .into_iter()
                    .map(|b| PicklistValue {
                        value: b.id,
                        label: b.name,
                        is_active: !b.inactive,
                    })
                    .collect(),
                statuses: statuses
                    .into_iter()
                    .map(|s| PicklistValue {
                        value: s.id,
                        label: s.name,
                        is_active: !s.inactive,
                    })
                    .collect(),
                priorities,
                note_publish: Vec::new(),
            })
        }
        .await;
        log_outcome("connectwise board values", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.connectwise_board_checks", skip_all, fields(host = %host_of(&access.site), board = board_id))]
    async fn connectwise_board_checks(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
        status_names: &[String],
    ) -> Vec<CheckFailure> {
        let failures = async {
            let client = match self.connectwise_client(access).await {
                Ok(client) => client,
                Err(failure) => return vec![failure],
            };
            let board = match client.boards().await {
                Ok(boards) => boards.into_iter().find(|b| b.id == board_id),
                Err(err) => {
                    return vec![connectwise_call_failure(
                        &err,
                        access,
                        checks::CONNECTWISE_BOARD,
                    )]
                }
            };
            let Some(board) = board else {
                return vec![board_gone(board_id)];
            };
            let mut failures = Vec::new();
            if board.inactive {
                failures.push(fail(
                    checks::CONNECTWISE_BOARD,
                    format!(
                        "The service board \"{}\" is inactive in ConnectWise. Make it active \
                         (Service Desk > Service Board), or pick another board under Mappings.",
                        board.name
                    ),
                ));
            }
            match client.board_teams(board_id).await {
                Ok(teams) if teams.iter().any(|t| t.default) => {}
                Ok(teams) => failures.push(fail(
                    checks::CONNECTWISE_BOARD_TEAM,
                    format!(
                        "The service board \"{}\" has {}. In ConnectWise, open Service Desk > \
                         Service Board > {} > Teams and mark a team as the default: tickets \
                         from Zendesk are assigned to it.",
                        board.name,
                        if teams.is_empty() {
                            "no team"
                        } else {
                            "no default team"
                        },
                        board.name
                    ),
                )),
                Err(err) => failures.push(connectwise_call_failure(
                    &err,
                    access,
                    checks::CONNECTWISE_BOARD_TEAM,
                )),
            }
            match client.board_statuses(board_id).await {
                Ok(statuses) => {
                    let active: Vec<&str> = statuses
                        .iter()
                        .filter(|s| !s.inactive)
                        .map(|s| s.name.as_str())
                        .collect();
                    if active.is_empty() {
                        failures.push(fail(
                            checks::CONNECTWISE_BOARD_STATUSES,
                            format!(
                                "The service board \"{}\" has no active status. Add its statuses \
                                 in ConnectWise (Service Desk > Service Board > {} > Statuses).",
                                board.name, board.name
                            ),
                        ));
                    }
                    let mut missing: Vec<&str> = status_names
                        .iter()
                        .map(|n| n.trim())
                        .filter(|n| !n.is_empty())
                        .filter(|n| !active.iter().any(|a| same_name(a, n)))
                        .collect();
                    missing.sort_unstable();
                    missing.dedup();
                    if !missing.is_empty() {
                        failures.push(fail(
                            checks::CONNECTWISE_BOARD_STATUSES,
                            format!(
                                "The service board \"{}\" has no active status named {}, which \
                                 the status mapping uses. Add {} to the board in ConnectWise \
                                 (Service Desk > Service Board > {} > Statuses), or map to \
                                 another status under Mappings.",
                                board.name,
                                quoted_list(&missing),
                                if missing.len() == 1 { "it" } else { "them" },
                                board.name
                            ),
                        ));
                    }
                }
                Err(err) => failures.push(connectwise_call_failure(
                    &err,
                    access,
                    checks::CONNECTWISE_BOARD_STATUSES,
                )),
            }
            failures
        }
        .await;
        if failures.is_empty() {
            tracing::info!(what = "connectwise board", "setup check passed");
        }
        for failure in &failures {
            tracing::info!(
                what = "connectwise board",
                check = %failure.check,
                retryable = failure.retryable,
                "setup check failed"
            );
        }
        failures
    }

    #[tracing::instrument(name = "setup.connectwise_companies", skip_all, fields(host = %host_of(&access.site)))]
    async fn connectwise_companies(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure> {
        let outcome = async {
            let client = self.connectwise_client(access).await?;
            let companies = client.companies().await.map_err(|err| {
                connectwise_call_failure(&err, access, checks::CONNECTWISE_COMPANIES)
            })?;
            let mut companies: Vec<NamedId> = companies
                .into_iter()
                .map(|c| NamedId {
                    id: c.id,
                    name: c.name,
                })
                .collect();
            companies.sort_by_cached_key(|c| c.name.to_lowercase());
            Ok(companies)
        }
        .await;
        log_outcome("connectwise companies", &outcome);
        outcome
    }

    #[tracing::instrument(name = "setup.register_connectwise_callback", skip_all, fields(host = %host_of(&access.site)))]
    async fn register_connectwise_callback(
        &self,
        access: &ConnectWiseAccess,
        url: &str,
        description: &str,
    ) -> Result<String, CheckFailure> {
        let outcome = async {
            check_url(
                url,
                checks::CONNECTWISE_CALLBACK,
                "the bridge's callback URL",
            )?;
            let client = self.connectwise_client(access).await?;
            let changes = client
                .ensure_callbacks(url, description)
                .await
                .map_err(|err| {
                    connectwise_call_failure(&err, access, checks::CONNECTWISE_CALLBACK)
                })?;
            let mut done = Vec::new();
            if changes.added > 0 {
                done.push("registered the ticket callback".to_owned());
            }
            if changes.kept > 0 {
                done.push("the ticket callback was already registered".to_owned());
            }
            if changes.removed > 0 {
                done.push(format!(
                    "removed {} outdated or duplicate callback{} to the same address",
                    changes.removed,
                    if changes.removed == 1 { "" } else { "s" }
                ));
            }
            Ok(format!("ConnectWise {}.", done.join("; ")))
        }
        .await;
        log_outcome("connectwise callback", &outcome);
        outcome
    }
}

fn fail(check: &str, fix: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check: check.to_owned(),
        fix: fix.into(),
        retryable: false,
    }
}

fn try_later(check: &str, fix: impl Into<String>) -> CheckFailure {
    CheckFailure {
        retryable: true,
        ..fail(check, fix)
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Credentials go only over HTTPS; plain HTTP is accepted for loopback
/// addresses, where the sandboxes run.
fn check_url(url: &str, check: &str, what: &str) -> Result<(), CheckFailure> {
    let parsed = url::Url::parse(url.trim()).map_err(|_| {
        fail(
            check,
            format!("Enter {what} as a full URL, e.g. https://example.zendesk.com."),
        )
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(fail(
            check,
            format!("{} must be an https:// address.", capitalize(what)),
        )),
    }
}

/// Scheme and host of a URL, for log fields (never its path or query).
fn host_of(url: &str) -> String {
    url::Url::parse(url.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Removes every non-empty credential from text that came from outside.
fn scrub(text: &str, credentials: &[&str]) -> String {
    credentials
        .iter()
        .filter(|c| c.len() >= 3)
        .fold(text.to_owned(), |text, credential| {
            text.replace(credential, "***")
        })
}

fn log_outcome<T>(what: &str, outcome: &Result<T, CheckFailure>) {
    match outcome {
        Ok(_) => tracing::info!(what, "setup check passed"),
        Err(failure) => tracing::info!(
            what,
            check = %failure.check,
            retryable = failure.retryable,
            "setup check failed"
        ),
    }
}

fn zendesk_not_accepted(access: &ZendeskAccess) -> CheckFailure {
    match &access.auth {
        ZendeskAuth::ApiToken { .. } => fail(
            checks::ZENDESK_TOKEN,
            "Zendesk did not accept this email and API token. Check that the email is the \
             agent's sign-in address and that the token is active (Admin Center > Apps and \
             integrations > Zendesk API), with token access enabled.",
        ),
        ZendeskAuth::OAuth { .. } => fail(
            checks::ZENDESK_OAUTH,
            "Zendesk no longer accepts the OAuth connection (it was revoked or the account \
             changed). Use \"Connect with Zendesk\" again.",
        ),
    }
}

fn zendesk_api_failure(err: &ApiError, access: &ZendeskAccess) -> CheckFailure {
    match err {
        ApiError::Unauthorized { status: 401, .. } => zendesk_not_accepted(access),
        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => fail(
            checks::ZENDESK_ACCESS,
            "Zendesk refused the API call for this user (403). Check that API access is \
             enabled for the account and that the user is an agent or admin.",
        ),
        ApiError::NotFound { .. } => fail(
            checks::ZENDESK_ADDRESS,
            "No Zendesk API answers at this address; check the subdomain \
             (https://<subdomain>.zendesk.com).",
        ),
        other => zendesk_transport_failure(other, checks::ZENDESK_ACCESS),
    }
}

fn zendesk_transport_failure(err: &ApiError, check: &str) -> CheckFailure {
    if err.is_retryable() {
        try_later(
            check,
            "Zendesk did not answer properly just now (unreachable, busy or rate limited). \
             Check the address, then try again in a minute.",
        )
    } else {
        // Status only: a body is outside text.
        let status = match err {
            ApiError::Rejected { status, .. } => format!(" ({status})"),
            _ => String::new(),
        };
        fail(
            check,
            format!(
                "Zendesk refused the request{status}. Check the address and the connection, \
                 then try again."
            ),
        )
    }
}

fn autotask_unavailable(check: &str, err: &ApiError, access: &AutotaskAccess) -> CheckFailure {
    if err.is_retryable() {
        try_later(
            check,
            "Autotask did not answer properly just now (unreachable, busy or over its hourly \
             request limit). Try again in a few minutes.",
        )
    } else {
        fail(
            check,
            format!(
                "Autotask answered in a way the bridge cannot use: {}",
                scrub(&err.to_string(), &credentials(access))
            ),
        )
    }
}

fn credentials(access: &AutotaskAccess) -> [&str; 3] {
    [
        access.username.trim(),
        access.secret.expose(),
        access.integration_code.expose(),
    ]
}

/// An entity call failed after the zone lookup found the user.
fn autotask_call_failure(err: &ApiError, access: &AutotaskAccess, check: &str) -> CheckFailure {
    match err {
        ApiError::Unauthorized { status: 401, .. } => fail(
            checks::AUTOTASK_SECRET,
            "Autotask found the API user but refused its secret. Paste the Secret of the \
             API-only user again (generate a new one in Autotask if it was lost; Autotask \
             shows it only once).",
        ),
        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => fail(
            checks::AUTOTASK_PERMISSIONS,
            "The API user may not read what the bridge needs (403). Give it the \"API User \
             (system)\" security level, or one that can read and write tickets and notes and \
             read companies and resources.",
        ),
        ApiError::Rejected { message, .. } | ApiError::Server { message, .. }
            if names_integration_code(message) =>
        {
            fail(
                checks::AUTOTASK_INTEGRATION_CODE,
                "Autotask refused the integration code. Copy the API Tracking Identifier of \
                 the API user (its \"API Tracking Identifier\" section, Custom (Internal \
                 Integration)) exactly.",
            )
        }
        other => autotask_unavailable(check, other, access),
    }
}

/// A webhook registration failed: what the admin can do about it. Texts
/// from Autotask are not shown (they may quote the request).
fn autotask_webhook_failure(err: &ApiError, access: &AutotaskAccess) -> CheckFailure {
    match err {
        ApiError::NotFound { what, .. } if what.contains("API user") => fail(
            checks::AUTOTASK_WEBHOOKS,
            "The bridge could not find its API user among Autotask's resources (by user name \
             or email), so it cannot exclude the user's own changes. Check that the API user \
             may read resources, or create the webhooks by hand (the steps below).",
        ),
        ApiError::NotFound { .. } => fail(
            checks::AUTOTASK_WEBHOOKS,
            "This Autotask does not offer the Ticket webhook entities through the API; create \
             the webhooks by hand (the steps below) and enter their secret key.",
        ),
        ApiError::Rejected { message, .. } | ApiError::Server { message, .. }
            if message.to_ascii_lowercase().contains("permission") =>
        {
            fail(
                checks::AUTOTASK_WEBHOOKS,
                "Autotask refused to let the API user manage webhooks (missing permission). \
                 Give the API user a security level that may manage webhooks, or create the \
                 webhooks by hand (the steps below) and enter their secret key.",
            )
        }
        ApiError::Rejected { message, .. } if message.contains("webhook field") => fail(
            checks::AUTOTASK_WEBHOOKS,
            "Autotask does not offer a webhook field the bridge needs (Status on tickets, \
             TicketID and Description on notes); create the webhooks by hand (the steps below).",
        ),
        other => autotask_call_failure(other, access, checks::AUTOTASK_WEBHOOKS),
    }
}

fn names_integration_code(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("integrationcode")
        || message.contains("integration code")
        || message.contains("tracking identifier")
}

fn connectwise_credentials(access: &ConnectWiseAccess) -> [&str; 3] {
    [
        access.public_key.trim(),
        access.private_key.expose().trim(),
        access.client_id.trim(),
    ]
}

/// The codebase lookup failed for another reason than an unknown company:
/// nothing usable answers at the site, or it did not answer now.
fn connectwise_site_failure(err: &ApiError, access: &ConnectWiseAccess) -> CheckFailure {
    if err.is_retryable() {
        return try_later(
            checks::CONNECTWISE_SITE,
            format!(
                "ConnectWise did not answer at {} just now (unreachable, busy or rate limited). \
                 Check the site, then try again in a minute.",
                host_of(&access.site)
            ),
        );
    }
    match err {
        ApiError::NotFound { .. } | ApiError::Malformed { .. } => fail(
            checks::CONNECTWISE_SITE,
            format!(
                "No ConnectWise PSA answers at {}. On ConnectWise's cloud, pick the region you \
                 sign in at (na, eu, au, aus, za); on premises, enter your server's address \
                 (https://...).",
                host_of(&access.site)
            ),
        ),
        other => fail(
            checks::CONNECTWISE_SITE,
            format!(
                "ConnectWise answered in a way the bridge cannot use: {}",
                scrub(&other.to_string(), &connectwise_credentials(access))
            ),
        ),
    }
}

/// An API call failed after the codebase lookup found the company.
fn connectwise_call_failure(
    err: &ApiError,
    access: &ConnectWiseAccess,
    check: &str,
) -> CheckFailure {
    match err {
        ApiError::Unauthorized { status: 401, .. } => fail(
            checks::CONNECTWISE_KEYS,
            format!(
                "ConnectWise refused the API member's public/private key pair (401) for \
                 company \"{}\". Copy both keys again from System > Members > API Members > \
                 the member > API Keys; a private key is shown only once, so add a new pair if \
                 it was lost.",
                access.company_id.trim()
            ),
        ),
        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => {
            let said = match err {
                ApiError::Forbidden { message, .. } => {
                    format!(" {}", scrub(message, &connectwise_credentials(access)))
                }
                _ => String::new(),
            };
            fail(
                checks::CONNECTWISE_PERMISSIONS,
                format!(
                    "The API member's security role lacks a right the bridge needs (403).{said} \
                     It needs Service Desk (service tickets and boards: add, edit, inquire), \
                     Companies (companies and configurations: inquire) and System (table setup \
                     for callbacks) rights."
                ),
            )
        }
        // Reported from ConnectWise's cloud: wrong keys answered with 404.
        ApiError::NotFound { .. } if check == checks::CONNECTWISE_ACCESS => fail(
            checks::CONNECTWISE_KEYS,
            format!(
                "ConnectWise answered 404 to a call with these keys; on ConnectWise's cloud \
                 that means the keys do not belong to company \"{}\". Check the company id and \
                 copy both keys again.",
                access.company_id.trim()
            ),
        ),
        other if other.is_retryable() => try_later(
            check,
            "ConnectWise did not answer properly just now (unreachable, busy or rate limited). \
             Try again in a minute.",
        ),
        other => fail(
            check,
            format!(
                "ConnectWise refused the request: {}",
                scrub(&other.to_string(), &connectwise_credentials(access))
            ),
        ),
    }
}

fn board_gone(board_id: i64) -> CheckFailure {
    fail(
        checks::CONNECTWISE_BOARD,
        format!(
            "Service board {board_id} no longer exists in ConnectWise; pick another under \
             Mappings."
        ),
    )
}

/// Status names compare as the sync resolves them: case, spacing and
/// punctuation aside.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    norm(a) == norm(b)
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_over_https_except_to_loopback() {
        assert!(check_url("https://acme.zendesk.com", "c", "x").is_ok());
        assert!(check_url("http://127.0.0.1:4000", "c", "x").is_ok());
        assert!(check_url("http://localhost:4000", "c", "x").is_ok());
        assert!(check_url("http://acme.zendesk.com", "c", "x").is_err());
        assert!(check_url("acme.zendesk.com", "c", "x").is_err());
        assert!(check_url("ftp://127.0.0.1", "c", "x").is_err());
    }

    #[test]
    fn scrubbing_removes_every_credential() {
        assert_eq!(
            scrub(
                "user api@x secret s3cret code C0DE",
                &["api@x", "s3cret", "C0DE", ""]
            ),
            "user *** secret *** code ***"
        );
    }

    #[test]
    fn status_names_compare_like_the_sync_and_lists_read_well() {
        assert!(same_name("Waiting Customer", "waiting-customer"));
        assert!(!same_name("Closed", "Complete"));
        assert_eq!(quoted_list(&["A"]), "\"A\"");
        assert_eq!(quoted_list(&["A", "B", "C"]), "\"A\", \"B\" or \"C\"");
    }

    #[test]
    fn integration_code_errors_are_recognised() {
        assert!(names_integration_code("IntegrationCode is invalid."));
        assert!(names_integration_code("The integration code is not valid"));
        assert!(!names_integration_code("Missing Required Field: title"));
    }
}
