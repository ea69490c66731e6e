//! What onboarding needs from the outside systems, as ports: the admin
//! console checks a tenant's credentials live, reads the PSA's real values
//! for the mapping tables, and keeps the credentials it is given in the
//! secrets store (never in the table). The HTTP implementation lives beside
//! the connectors; tests and the console's own unit tests may use fakes.
//!
//! Every failure is a [`CheckFailure`]: which check failed, in words an MSP
//! admin can act on, and what to fix. It never carries a credential.

use async_trait::async_trait;

use crate::config::{Secret, TenantSecrets};
use crate::error::SecretsError;
use crate::model::{PicklistValue, TenantId};

/// How the bridge signs in to a tenant's Zendesk.
#[derive(Clone)]
pub enum ZendeskAuth {
    /// An agent's address and an API token (`{email}/token:{token}`).
    ApiToken { email: String, token: Secret },
    /// An OAuth access token from the authorization code grant (`Bearer`).
    OAuth { access_token: Secret },
}

/// A Zendesk account and how to sign in to it.
#[derive(Clone)]
pub struct ZendeskAccess {
    /// `https://{subdomain}.zendesk.com` (or the sandbox's URL).
    pub base_url: String,
    pub auth: ZendeskAuth,
}

/// An Autotask API user's credentials; the zone is found from them.
#[derive(Clone)]
pub struct AutotaskAccess {
    /// Where the zone lookup is asked (production: Autotask's
    /// `webservices.autotask.net`; tests: the sandbox).
    pub zone_lookup_url: String,
    pub username: String,
    pub secret: Secret,
    pub integration_code: Secret,
}

/// A ConnectWise PSA API member's keys, the integration's clientId, and
/// where the tenant's ConnectWise lives.
#[derive(Clone)]
pub struct ConnectWiseAccess {
    /// A cloud site (`https://na.myconnectwise.net`, ...), an on-premise
    /// origin, or a sandbox on loopback.
    pub site: String,
    /// The company id the MSP signs in with.
    pub company_id: String,
    /// Public half of the API member's key pair (not secret on its own, but
    /// kept with the private key).
    pub public_key: String,
    pub private_key: Secret,
    /// The integration's clientId (developer.connectwise.com/ClientID).
    pub client_id: String,
}

/// One check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {fix}")]
pub struct CheckFailure {
    /// What was checked, e.g. "Autotask API user", "Autotask integration
    /// code", "Zendesk admin rights".
    pub check: String,
    /// What the admin should do about it, in plain words.
    pub fix: String,
    /// True when trying again later may pass without changing anything
    /// (the system did not answer, rate limits).
    pub retryable: bool,
}

/// A Zendesk sign-in that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZendeskVerified {
    /// The signed-in agent's address (shown to the admin).
    pub agent_email: String,
    /// The incremental export (the sweep) needs an admin.
    pub is_admin: bool,
}

/// An Autotask sign-in that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutotaskVerified {
    /// The REST base URL of the tenant's zone, as the zone lookup said.
    pub api_base_url: String,
}

/// A ConnectWise sign-in that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectWiseVerified {
    /// `{api origin}/{codebase}apis/3.0/`, as companyinfo named it.
    pub api_base_url: String,
    /// The codebase (`v2025_1/`).
    pub codebase: String,
    /// ConnectWise's version (`system/info`), empty when it did not say.
    pub version: String,
}

/// Something with an id and a name, as a picker shows it (Zendesk
/// organizations, Autotask companies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedId {
    pub id: i64,
    pub name: String,
}

/// The PSA's live values the mapping screens choose from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PsaChoices {
    pub queues: Vec<PicklistValue>,
    pub statuses: Vec<PicklistValue>,
    pub priorities: Vec<PicklistValue>,
    /// TicketNote `publish` values (which of them count as public is the
    /// tenant's choice).
    pub note_publish: Vec<PicklistValue>,
}

/// A webhook the console registered on the tenant's behalf.
#[derive(Debug, Clone)]
pub struct RegisteredHook {
    /// The outside system's id of the webhook (shown, and used to rotate).
    pub id: String,
    /// The secret it signs with; goes to the secrets store only.
    pub signing_secret: Secret,
}

/// A webhook registration that worked: the webhook, and what was done, in
/// words for the admin.
#[derive(Debug, Clone)]
pub struct HookRegistration {
    pub hook: RegisteredHook,
    pub summary: String,
}

/// Live checks and reads against a tenant's Zendesk and PSA (Autotask or
/// ConnectWise).
#[async_trait]
pub trait TenantSetup: Send + Sync {
    /// Signs in and says who we are and whether we are an admin.
    async fn verify_zendesk(&self, access: &ZendeskAccess)
        -> Result<ZendeskVerified, CheckFailure>;

    /// Exchanges an OAuth authorization code for an access token
    /// (`POST {base_url}/oauth/tokens`, grant type `authorization_code`).
    async fn zendesk_oauth_token(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Secret, CheckFailure>;

    async fn zendesk_organizations(
        &self,
        access: &ZendeskAccess,
    ) -> Result<Vec<NamedId>, CheckFailure>;

    /// Makes sure exactly one Zendesk webhook, subscribed to the ticket
    /// events the bridge acts on, posts to `endpoint` (creating it as
    /// `name`, deleting duplicates), and reads its signing secret; safe to
    /// repeat. Needs a Zendesk admin.
    async fn register_zendesk_webhook(
        &self,
        access: &ZendeskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure>;

    /// Makes sure exactly one Autotask Ticket webhook and one TicketNote
    /// webhook post to `endpoint` (created as `name`; duplicates deleted),
    /// with the fields the sync needs and the API user among their excluded
    /// resources, both signing with a newly generated secret key, which is
    /// returned as the hook's signing secret; safe to repeat (every time
    /// the key is new: Autotask never shows a key again). Needs an API user
    /// allowed to manage webhooks.
    async fn register_autotask_webhooks(
        &self,
        access: &AutotaskAccess,
        endpoint: &str,
        name: &str,
    ) -> Result<HookRegistration, CheckFailure>;

    /// Finds the zone and makes one authenticated query; a wrong user,
    /// secret or integration code each fail with their own check.
    async fn verify_autotask(
        &self,
        access: &AutotaskAccess,
    ) -> Result<AutotaskVerified, CheckFailure>;

    /// Queues, statuses, priorities and note publish values, live.
    async fn autotask_choices(&self, access: &AutotaskAccess) -> Result<PsaChoices, CheckFailure>;

    async fn autotask_companies(
        &self,
        access: &AutotaskAccess,
    ) -> Result<Vec<NamedId>, CheckFailure>;

    /// Finds the company at the site (companyinfo) and makes one call with
    /// the keys and clientId; an unknown company, refused keys, a security
    /// role without rights and a missing clientId each fail with their own
    /// check.
    async fn verify_connectwise(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<ConnectWiseVerified, CheckFailure>;

    /// The active service boards.
    async fn connectwise_boards(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure>;

    /// The values the mapping screens choose from for one board: its
    /// statuses (statuses belong to a board in ConnectWise), the global
    /// priorities, and the boards as `queues`. `note_publish` stays empty
    /// (ConnectWise marks notes with flags, not a picklist).
    async fn connectwise_board_choices(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
    ) -> Result<PsaChoices, CheckFailure>;

    /// What keeps tickets from working on a board, each with what to fix
    /// (empty: none): the board is active, has a default team and active
    /// statuses, and has every status in `status_names` (the names the
    /// mapping tables use for it). A failure to ask is one of them.
    async fn connectwise_board_checks(
        &self,
        access: &ConnectWiseAccess,
        board_id: i64,
        status_names: &[String],
    ) -> Vec<CheckFailure>;

    async fn connectwise_companies(
        &self,
        access: &ConnectWiseAccess,
    ) -> Result<Vec<NamedId>, CheckFailure>;

    /// Makes sure exactly one ticket callback with `description` points at
    /// `url` (adding it, removing duplicates); safe to repeat. Answers what
    /// was done, in words.
    async fn register_connectwise_callback(
        &self,
        access: &ConnectWiseAccess,
        url: &str,
        description: &str,
    ) -> Result<String, CheckFailure>;
}

/// Where the console puts credentials: the secrets store (Secrets Manager in
/// AWS, the local secrets file locally), never the table.
#[async_trait]
pub trait SecretsWriter: Send + Sync {
    /// Replaces the tenant's credentials as a whole.
    async fn put_tenant_secrets(
        &self,
        tenant: &TenantId,
        secrets: &TenantSecrets,
    ) -> Result<(), SecretsError>;
}
