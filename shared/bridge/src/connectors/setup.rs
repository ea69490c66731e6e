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
//!
//! No [`CheckFailure`], log line or error built here carries a credential:
//! fixed texts are used, and any text that came from outside is scrubbed of
//! the credentials before it is shown.

use async_trait::async_trait;

use crate::config::Secret;
use crate::connectors::autotask::AutotaskClient;
use crate::connectors::http;
use crate::connectors::zendesk::{self, OAuthError, PreflightError, ZendeskClient};
use crate::error::ApiError;
use crate::setup::{
    AutotaskAccess, AutotaskVerified, CheckFailure, NamedId, PsaChoices, TenantSetup,
    ZendeskAccess, ZendeskAuth, ZendeskVerified,
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
    pub const AUTOTASK_ZONE_LOOKUP: &str = "Autotask zone lookup";
    pub const AUTOTASK_USER: &str = "Autotask API user";
    pub const AUTOTASK_SECRET: &str = "Autotask API secret";
    pub const AUTOTASK_INTEGRATION_CODE: &str = "Autotask integration code";
    pub const AUTOTASK_ACCESS: &str = "Autotask API access";
    pub const AUTOTASK_PERMISSIONS: &str = "Autotask API user permissions";
    pub const AUTOTASK_PICKLISTS: &str = "Autotask picklists";
    pub const AUTOTASK_COMPANIES: &str = "Autotask companies";
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

fn names_integration_code(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("integrationcode")
        || message.contains("integration code")
        || message.contains("tracking identifier")
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
    fn integration_code_errors_are_recognised() {
        assert!(names_integration_code("IntegrationCode is invalid."));
        assert!(names_integration_code("The integration code is not valid"));
        assert!(!names_integration_code("Missing Required Field: title"));
    }
}
