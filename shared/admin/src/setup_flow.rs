//! Onboarding a tenant: the preparation checklist, connecting Zendesk (API
//! token or OAuth), verifying the PSA (Autotask, or ConnectWise and its
//! callback), and activation, which runs every check again and turns the
//! tenant on only when all pass.

use base64::Engine;
use bridge::config::Secret;
use bridge::setup::{
    AutotaskAccess, CheckFailure, ConnectWiseAccess, ConnectWiseVerified, NamedId, PsaChoices,
    ZendeskAccess, ZendeskAuth,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounts::CurrentUser;
use crate::credentials::{self, Credentials};
use crate::error::{AdminError, CheckView};
use crate::mappings;
use crate::onboarding::{
    Ack, AutotaskConnection, CallbackRegistration, CheckRun, ConnectWiseConnection, PendingOAuth,
    Tenant, WebhookRegistration, ZendeskConnection, ZendeskMethod,
};
use crate::psa::{connectwise, LiveCheck, Psa};
use crate::tenants::{self, check_base_url, HookKind};
use crate::web::AdminState;

fn failure(check: &str, fix: &str) -> CheckView {
    CheckView {
        check: check.into(),
        fix: fix.into(),
        retryable: false,
    }
}

/// A PSA's pages serve only tenants on that PSA.
pub fn require_psa(tenant: &Tenant, psa: Psa) -> Result<(), AdminError> {
    let own = tenant.onboarding.value.psa;
    if own == psa {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "this tenant's PSA is {}, not {}",
            own.display_name(),
            psa.display_name()
        )))
    }
}

/// Settings pages wait for the checklist.
pub fn require_checklist(tenant: &Tenant) -> Result<(), AdminError> {
    if tenant.onboarding.value.checklist_done() {
        Ok(())
    } else {
        Err(AdminError::Invalid(
            "complete the preparation checklist first".into(),
        ))
    }
}

/// A live check's outcome on the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct LiveResult {
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistRow {
    pub id: &'static str,
    pub title: &'static str,
    pub how: &'static str,
    pub live: LiveCheck,
    pub confirmed: bool,
    /// `None`: not checkable, or no credentials to check with yet.
    pub result: Option<LiveResult>,
}

/// The checklist with live results where the credentials allow them.
pub async fn checklist(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<Vec<ChecklistRow>, AdminError> {
    let o = &tenant.onboarding.value;
    let results: Vec<Option<LiveResult>> = match o.psa {
        Psa::Autotask => {
            let live = live_autotask(state, tenant).await?;
            o.psa
                .checklist()
                .iter()
                .map(|item| live.as_ref().and_then(|l| live_result(item.live, l)))
                .collect()
        }
        Psa::ConnectWise => {
            let live = live_connectwise(state, tenant).await?;
            o.psa
                .checklist()
                .iter()
                .map(|item| {
                    live.as_ref()
                        .and_then(|l| live_result_connectwise(item.live, l))
                })
                .collect()
        }
    };
    Ok(o.psa
        .checklist()
        .iter()
        .zip(results)
        .map(|(item, result)| ChecklistRow {
            id: item.id,
            title: item.title,
            how: item.how,
            live: item.live,
            confirmed: o.checklist.contains_key(item.id),
            result,
        })
        .collect())
}

/// What ConnectWise says with the stored keys.
struct ConnectWiseLive {
    verified: ConnectWiseVerified,
    boards: Result<Vec<NamedId>, CheckFailure>,
    companies: Result<usize, CheckFailure>,
    /// The board for new tickets and what keeps it from working.
    board: Option<(i64, Vec<CheckFailure>)>,
}

async fn live_connectwise(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<Option<Result<ConnectWiseLive, CheckFailure>>, AdminError> {
    let Ok(setup) = state.ports().setup() else {
        return Ok(None);
    };
    let Ok(creds) = credentials::load(state, &tenant.id).await else {
        return Ok(None);
    };
    let config = &tenant.config.value;
    let Some(access) = creds.connectwise_access(config) else {
        return Ok(None);
    };
    let verified = match setup.verify_connectwise(&access).await {
        Ok(v) => v,
        Err(f) => return Ok(Some(Err(f))),
    };
    let boards = setup.connectwise_boards(&access).await;
    let companies = setup.connectwise_companies(&access).await.map(|c| c.len());
    let board = match config.connectwise.as_ref().and_then(|cw| cw.board_id) {
        Some(board) => {
            let names = mappings::status_names_for_board(config, board);
            Some((
                board,
                setup.connectwise_board_checks(&access, board, &names).await,
            ))
        }
        None => None,
    };
    Ok(Some(Ok(ConnectWiseLive {
        verified,
        boards,
        companies,
        board,
    })))
}

fn live_result_connectwise(
    kind: LiveCheck,
    live: &Result<ConnectWiseLive, CheckFailure>,
) -> Option<LiveResult> {
    let not_ok = |f: &CheckFailure| LiveResult {
        ok: false,
        detail: f.to_string(),
    };
    let live = match (kind, live) {
        (LiveCheck::None | LiveCheck::Queues | LiveCheck::Statuses, _) => return None,
        (_, Err(f)) => return Some(not_ok(f)),
        (_, Ok(live)) => live,
    };
    Some(match kind {
        LiveCheck::ApiUser => LiveResult {
            ok: true,
            detail: match live.verified.version.as_str() {
                "" => "the API member signs in".to_owned(),
                version => format!("the API member signs in (ConnectWise {version})"),
            },
        },
        LiveCheck::Permissions => match (&live.boards, &live.companies) {
            (Err(f), _) | (_, Err(f)) => not_ok(f),
            (Ok(boards), Ok(companies)) => LiveResult {
                ok: true,
                detail: format!(
                    "reads {} active service boards and {companies} companies",
                    boards.len()
                ),
            },
        },
        LiveCheck::Board => match (&live.board, &live.boards) {
            (Some((_, failures)), _) if !failures.is_empty() => LiveResult {
                ok: false,
                detail: failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            (Some((board, _)), boards) => {
                let name = boards
                    .as_ref()
                    .ok()
                    .and_then(|b| b.iter().find(|b| b.id == *board))
                    .map(|b| format!("\"{}\"", b.name))
                    .unwrap_or_else(|| board.to_string());
                LiveResult {
                    ok: true,
                    detail: format!(
                        "board {name} is active, has a default team and the mapped statuses"
                    ),
                }
            }
            (None, Ok(boards)) => LiveResult {
                ok: !boards.is_empty(),
                detail: format!(
                    "{} active service boards; pick one under Mappings",
                    boards.len()
                ),
            },
            (None, Err(f)) => not_ok(f),
        },
        LiveCheck::None | LiveCheck::Queues | LiveCheck::Statuses => {
            unreachable!("returned above")
        }
    })
}

/// What Autotask says with the stored credentials: the choices, or why not.
async fn live_autotask(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<Option<Result<PsaChoices, CheckFailure>>, AdminError> {
    let Ok(setup) = state.ports().setup() else {
        return Ok(None);
    };
    let Ok(creds) = credentials::load(state, &tenant.id).await else {
        return Ok(None);
    };
    let Some(access) = creds.autotask_access(&tenant.config.value) else {
        return Ok(None);
    };
    Ok(Some(match setup.verify_autotask(&access).await {
        Ok(_) => setup.autotask_choices(&access).await,
        Err(e) => Err(e),
    }))
}

fn live_result(kind: LiveCheck, live: &Result<PsaChoices, CheckFailure>) -> Option<LiveResult> {
    let choices = match (kind, live) {
        (LiveCheck::None, _) => return None,
        (_, Err(f)) => {
            return Some(LiveResult {
                ok: false,
                detail: f.to_string(),
            })
        }
        (_, Ok(c)) => c,
    };
    let count = |v: &[bridge::model::PicklistValue]| v.iter().filter(|x| x.is_active).count();
    Some(match kind {
        LiveCheck::ApiUser => LiveResult {
            ok: true,
            detail: "the API user signs in".into(),
        },
        LiveCheck::Queues => LiveResult {
            ok: count(&choices.queues) > 0,
            detail: format!("{} active queues", count(&choices.queues)),
        },
        LiveCheck::Statuses => LiveResult {
            ok: count(&choices.statuses) > 0,
            detail: format!("{} active statuses", count(&choices.statuses)),
        },
        // ConnectWise's; Autotask's checklist does not use them.
        LiveCheck::Permissions | LiveCheck::Board => return None,
        LiveCheck::None => unreachable!("returned above"),
    })
}

/// Confirms exactly the listed items; an item whose live check fails cannot
/// be confirmed.
pub async fn confirm(
    state: &AdminState,
    user: &CurrentUser,
    tenant: &mut Tenant,
    items: &[String],
) -> Result<Vec<ChecklistRow>, AdminError> {
    let rows = checklist(state, tenant).await?;
    for id in items {
        if !rows.iter().any(|r| r.id == id) {
            return Err(AdminError::Invalid(format!("no checklist item {id:?}")));
        }
    }
    let failing: Vec<CheckView> = rows
        .iter()
        .filter(|r| items.contains(&r.id.to_owned()))
        .filter_map(|r| match &r.result {
            Some(res) if !res.ok => Some(failure(r.title, &res.detail)),
            _ => None,
        })
        .collect();
    if !failing.is_empty() {
        return Err(AdminError::ChecksFailed(failing));
    }
    let now = state.accounts().now();
    let o = &mut tenant.onboarding.value;
    o.checklist.retain(|id, _| items.contains(id));
    for id in items {
        o.checklist.entry(id.clone()).or_insert_with(|| Ack {
            by: user.email.to_string(),
            at: now,
        });
    }
    tenant.save_onboarding(state.accounts().store()).await?;
    checklist(state, tenant).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ZendeskTokenRequest {
    pub base_url: String,
    pub email: String,
    /// Empty: keep the stored token.
    #[serde(default)]
    pub token: String,
}

/// What the Zendesk page shows.
#[derive(Debug, Clone, Serialize)]
pub struct ZendeskStatus {
    pub base_url: String,
    pub connection: Option<ZendeskConnection>,
    pub email: Option<String>,
    pub token: String,
    pub oauth_available: bool,
}

pub async fn zendesk_status(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<ZendeskStatus, AdminError> {
    let creds = credentials::load(state, &tenant.id)
        .await
        .unwrap_or_default();
    Ok(ZendeskStatus {
        base_url: tenant.config.value.zendesk.base_url.clone(),
        connection: tenant.onboarding.value.zendesk.clone(),
        email: creds
            .get(credentials::ZENDESK_EMAIL)
            .map(|e| e.expose().to_owned()),
        token: creds.mask(credentials::ZENDESK_API_TOKEN),
        oauth_available: state.ports().settings().zendesk_oauth.is_some(),
    })
}

/// Connects Zendesk with an agent's API token, verified live first.
pub async fn connect_zendesk_token(
    state: &AdminState,
    tenant: &mut Tenant,
    req: &ZendeskTokenRequest,
) -> Result<ZendeskStatus, AdminError> {
    require_checklist(tenant)?;
    let setup = state.ports().setup()?;
    let base_url = check_base_url(&req.base_url)?;
    let email = req.email.trim();
    if !email.contains('@') {
        return Err(AdminError::Invalid(
            "the agent's email address is needed".into(),
        ));
    }
    let current = credentials::load(state, &tenant.id).await?;
    let token = match req.token.trim() {
        "" => current
            .get(credentials::ZENDESK_API_TOKEN)
            .cloned()
            .ok_or_else(|| AdminError::Invalid("the API token is needed".into()))?,
        t => Secret::new(t),
    };
    let access = ZendeskAccess {
        base_url: base_url.clone(),
        auth: ZendeskAuth::ApiToken {
            email: email.to_owned(),
            token: token.clone(),
        },
    };
    let verified = setup
        .verify_zendesk(&access)
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    credentials::update(
        state,
        &tenant.id,
        vec![
            (credentials::ZENDESK_EMAIL, Secret::new(email)),
            (credentials::ZENDESK_API_TOKEN, token),
        ],
    )
    .await?;
    connected(state, tenant, base_url, ZendeskMethod::ApiToken, verified).await?;
    zendesk_status(state, tenant).await
}

async fn connected(
    state: &AdminState,
    tenant: &mut Tenant,
    base_url: String,
    method: ZendeskMethod,
    verified: bridge::setup::ZendeskVerified,
) -> Result<(), AdminError> {
    let store = state.accounts().store();
    if tenant.config.value.zendesk.base_url != base_url {
        tenant.config.value.zendesk.base_url = base_url;
        tenant.save_config(store).await?;
    }
    tenant.onboarding.value.zendesk = Some(ZendeskConnection {
        method,
        agent_email: verified.agent_email,
        is_admin: verified.is_admin,
        verified_at: state.accounts().now(),
    });
    tenant.save_onboarding(store).await?;
    tracing::info!(tenant = %tenant.id, method = ?method, "zendesk connected");
    Ok(())
}

fn hash_state(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the authorization code grant: a fresh `state` (tenant id, a dot,
/// 32 random bytes) kept hashed with an expiry, and the URL to send the
/// admin to.
pub async fn start_oauth(
    state: &AdminState,
    tenant: &mut Tenant,
    base_url: &str,
) -> Result<String, AdminError> {
    require_checklist(tenant)?;
    let settings = state.ports().settings();
    let client = settings
        .zendesk_oauth
        .as_ref()
        .ok_or(AdminError::NotAvailable("Connect with OAuth"))?;
    let base_url = check_base_url(base_url)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let oauth_state = format!("{}.{nonce}", tenant.id);
    tenant.onboarding.value.oauth = Some(PendingOAuth {
        state_hash: hash_state(&oauth_state),
        expires_at: state.accounts().now() + settings.oauth_state_ttl,
        base_url: base_url.clone(),
    });
    tenant.save_onboarding(state.accounts().store()).await?;
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", settings.oauth_redirect_uri().as_str()),
        ("scope", "read write"),
        ("state", oauth_state.as_str()),
    ])
    .map_err(|_| AdminError::Internal("oauth url"))?
    // Form encoding writes a space as '+'; a literal '+' is "%2B", so this
    // only turns spaces into the "%20" every OAuth server reads.
    .replace('+', "%20");
    Ok(format!("{base_url}/oauth/authorizations/new?{query}"))
}

/// The tenant a callback's `state` names (before it is checked).
pub fn tenant_of_state(oauth_state: &str) -> Option<&str> {
    oauth_state.split_once('.').map(|(tenant, _)| tenant)
}

/// Completes the grant: the `state` must be the pending one of this tenant
/// and unexpired (it is used up either way), then the code is exchanged and
/// the token verified and stored.
pub async fn finish_oauth(
    state: &AdminState,
    tenant: &mut Tenant,
    code: &str,
    oauth_state: &str,
) -> Result<ZendeskStatus, AdminError> {
    let refused = || {
        AdminError::Invalid(
            "this Zendesk authorization does not match the one started here, or it expired; \
             start \"Connect with OAuth\" again"
                .into(),
        )
    };
    let pending = tenant.onboarding.value.oauth.clone().ok_or_else(refused)?;
    let matches: bool = hash_state(oauth_state)
        .as_bytes()
        .ct_eq(pending.state_hash.as_bytes())
        .into();
    if !matches {
        tracing::warn!(tenant = %tenant.id, "oauth state mismatch refused");
        return Err(refused());
    }
    tenant.onboarding.value.oauth = None;
    tenant.save_onboarding(state.accounts().store()).await?;
    if pending.expires_at < state.accounts().now() || code.is_empty() {
        return Err(refused());
    }
    let setup = state.ports().setup()?;
    let settings = state.ports().settings();
    let client = settings
        .zendesk_oauth
        .as_ref()
        .ok_or(AdminError::NotAvailable("Connect with OAuth"))?;
    let token = setup
        .zendesk_oauth_token(
            &pending.base_url,
            &client.client_id,
            &client.client_secret,
            code,
            &settings.oauth_redirect_uri(),
        )
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    let access = ZendeskAccess {
        base_url: pending.base_url.clone(),
        auth: ZendeskAuth::OAuth {
            access_token: token.clone(),
        },
    };
    let verified = setup
        .verify_zendesk(&access)
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    credentials::update(
        state,
        &tenant.id,
        vec![(credentials::ZENDESK_OAUTH_TOKEN, token)],
    )
    .await?;
    connected(
        state,
        tenant,
        pending.base_url,
        ZendeskMethod::OAuth,
        verified,
    )
    .await?;
    zendesk_status(state, tenant).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AutotaskRequest {
    pub username: String,
    /// Empty: keep the stored one.
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub integration_code: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutotaskStatus {
    pub username: Option<String>,
    pub secret: String,
    pub integration_code: String,
    pub connection: Option<AutotaskConnection>,
}

pub async fn autotask_status(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<AutotaskStatus, AdminError> {
    require_psa(tenant, Psa::Autotask)?;
    let creds = credentials::load(state, &tenant.id)
        .await
        .unwrap_or_default();
    Ok(AutotaskStatus {
        username: creds
            .get(credentials::AUTOTASK_USERNAME)
            .map(|u| u.expose().to_owned()),
        secret: creds.mask(credentials::AUTOTASK_SECRET),
        integration_code: creds.mask(credentials::AUTOTASK_INTEGRATION_CODE),
        connection: tenant.onboarding.value.autotask.clone(),
    })
}

/// Verifies Autotask credentials live and stores them only if they work.
pub async fn connect_autotask(
    state: &AdminState,
    tenant: &mut Tenant,
    req: &AutotaskRequest,
) -> Result<AutotaskStatus, AdminError> {
    require_psa(tenant, Psa::Autotask)?;
    require_checklist(tenant)?;
    let setup = state.ports().setup()?;
    let current = credentials::load(state, &tenant.id).await?;
    let keep = |given: &str, field: &str, what: &str| match given.trim() {
        "" => current
            .get(field)
            .cloned()
            .ok_or_else(|| AdminError::Invalid(format!("the {what} is needed"))),
        v => Ok(Secret::new(v)),
    };
    let username = req.username.trim();
    if username.is_empty() {
        return Err(AdminError::Invalid(
            "the API user's username is needed".into(),
        ));
    }
    let secret = keep(&req.secret, credentials::AUTOTASK_SECRET, "secret")?;
    let code = keep(
        &req.integration_code,
        credentials::AUTOTASK_INTEGRATION_CODE,
        "integration code",
    )?;
    let access = AutotaskAccess {
        zone_lookup_url: tenant.config.value.autotask.zone_lookup_url.clone(),
        username: username.to_owned(),
        secret: secret.clone(),
        integration_code: code.clone(),
    };
    let verified = setup
        .verify_autotask(&access)
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    credentials::update(
        state,
        &tenant.id,
        vec![
            (credentials::AUTOTASK_USERNAME, Secret::new(username)),
            (credentials::AUTOTASK_SECRET, secret),
            (credentials::AUTOTASK_INTEGRATION_CODE, code),
        ],
    )
    .await?;
    tenant.onboarding.value.autotask = Some(AutotaskConnection {
        api_base_url: verified.api_base_url,
        verified_at: state.accounts().now(),
    });
    tenant.save_onboarding(state.accounts().store()).await?;
    tracing::info!(tenant = %tenant.id, "autotask verified");
    autotask_status(state, tenant).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectWiseRequest {
    /// A cloud region (`na`, `eu`, `au`, `aus`, `za`), or `onprem` (or
    /// empty) for the address in `site`.
    #[serde(default)]
    pub region: String,
    /// The address of an on-premise ConnectWise (`https://cw.example.com`);
    /// ignored with a cloud region.
    #[serde(default)]
    pub site: String,
    pub company_id: String,
    /// Empty: keep the stored one (for each of the three).
    #[serde(default)]
    pub public_key: String,
    #[serde(default)]
    pub private_key: String,
    #[serde(default)]
    pub client_id: String,
}

/// What the ConnectWise page shows: the site and company, the keys and
/// clientId only as masks.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectWiseStatus {
    pub site: String,
    /// The cloud region of the site, or `onprem`.
    pub region: &'static str,
    pub company_id: String,
    pub public_key: String,
    pub private_key: String,
    pub client_id: String,
    pub connection: Option<ConnectWiseConnection>,
    /// Where ConnectWise calls the bridge for this tenant.
    pub callback_url: String,
    pub callback: Option<CallbackRegistration>,
}

pub async fn connectwise_status(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<ConnectWiseStatus, AdminError> {
    require_psa(tenant, Psa::ConnectWise)?;
    let creds = credentials::load(state, &tenant.id)
        .await
        .unwrap_or_default();
    let cw = tenant
        .config
        .value
        .connectwise
        .clone()
        .unwrap_or_else(|| bridge::config::ConnectWiseSettings::new("", ""));
    Ok(ConnectWiseStatus {
        region: connectwise::region_of(&cw.site),
        site: cw.site,
        company_id: cw.company_id,
        public_key: creds.mask(credentials::CONNECTWISE_PUBLIC_KEY),
        private_key: creds.mask(credentials::CONNECTWISE_PRIVATE_KEY),
        client_id: creds.mask(credentials::CONNECTWISE_CLIENT_ID),
        connection: tenant.onboarding.value.connectwise.clone(),
        callback_url: tenants::connectwise_callback_url(state, &tenant.id),
        callback: tenant.onboarding.value.callback.clone(),
    })
}

/// The site a request names: a cloud region's, or an https address (http
/// only on loopback, where the sandbox runs), as its origin.
fn connectwise_site(req: &ConnectWiseRequest) -> Result<String, AdminError> {
    let region = req.region.trim();
    if let Some(site) = connectwise::cloud_site(region) {
        return Ok(site);
    }
    if !(region.is_empty() || region == connectwise::ON_PREMISE) {
        return Err(AdminError::Invalid(format!(
            "{region:?} is not a ConnectWise cloud region (na, eu, au, aus, za)"
        )));
    }
    let raw = req.site.trim();
    if raw.is_empty() {
        return Err(AdminError::Invalid(
            "pick the cloud region, or enter your ConnectWise server's address".into(),
        ));
    }
    let bad = || {
        AdminError::Invalid(
            "the ConnectWise address is the https:// address you sign in at, like \
             https://cw.example.com"
                .into(),
        )
    };
    let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let host_ok = !host.is_empty()
        && host_port
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let loopback = matches!(host, "127.0.0.1" | "localhost");
    match scheme.to_ascii_lowercase().as_str() {
        "https" if host_ok => Ok(format!("https://{}", host_port.to_ascii_lowercase())),
        "http" if host_ok && loopback => Ok(format!("http://{host_port}")),
        _ => Err(bad()),
    }
}

/// Verifies ConnectWise keys live and stores them only if they work: the
/// keys and clientId in the secrets store, the site and company id in the
/// tenant's config.
pub async fn connect_connectwise(
    state: &AdminState,
    tenant: &mut Tenant,
    req: &ConnectWiseRequest,
) -> Result<ConnectWiseStatus, AdminError> {
    require_psa(tenant, Psa::ConnectWise)?;
    require_checklist(tenant)?;
    let setup = state.ports().setup()?;
    let site = connectwise_site(req)?;
    let company_id = req.company_id.trim();
    if company_id.is_empty()
        || company_id.chars().count() > 64
        || company_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AdminError::Invalid(
            "the company id is the one you sign in to ConnectWise with (no spaces)".into(),
        ));
    }
    let current = credentials::load(state, &tenant.id).await?;
    let keep = |given: &str, field: &str, what: &str| match given.trim() {
        "" => current
            .get(field)
            .cloned()
            .ok_or_else(|| AdminError::Invalid(format!("the {what} is needed"))),
        v => Ok(Secret::new(v)),
    };
    let public_key = keep(
        &req.public_key,
        credentials::CONNECTWISE_PUBLIC_KEY,
        "API member's public key",
    )?;
    let private_key = keep(
        &req.private_key,
        credentials::CONNECTWISE_PRIVATE_KEY,
        "API member's private key",
    )?;
    let client_id = keep(
        &req.client_id,
        credentials::CONNECTWISE_CLIENT_ID,
        "integration's clientId",
    )?;
    let access = ConnectWiseAccess {
        site: site.clone(),
        company_id: company_id.to_owned(),
        public_key: public_key.expose().to_owned(),
        private_key: private_key.clone(),
        client_id: client_id.expose().to_owned(),
    };
    let verified = setup
        .verify_connectwise(&access)
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    credentials::update(
        state,
        &tenant.id,
        vec![
            (credentials::CONNECTWISE_PUBLIC_KEY, public_key),
            (credentials::CONNECTWISE_PRIVATE_KEY, private_key),
            (credentials::CONNECTWISE_CLIENT_ID, client_id),
        ],
    )
    .await?;
    let store = state.accounts().store();
    let cw = tenant
        .config
        .value
        .connectwise
        .get_or_insert_with(|| bridge::config::ConnectWiseSettings::new("", ""));
    if cw.site != site || cw.company_id != company_id {
        cw.site = site;
        cw.company_id = company_id.to_owned();
        tenant.save_config(store).await?;
    }
    tenant.onboarding.value.connectwise = Some(ConnectWiseConnection {
        api_base_url: verified.api_base_url,
        codebase: verified.codebase,
        version: verified.version,
        verified_at: state.accounts().now(),
    });
    tenant.save_onboarding(store).await?;
    tracing::info!(tenant = %tenant.id, "connectwise verified");
    connectwise_status(state, tenant).await
}

/// Makes sure ConnectWise calls the bridge on ticket changes: exactly one
/// owner-level ticket callback to the tenant's URL (repeating is harmless).
pub async fn register_callback(
    state: &AdminState,
    tenant: &mut Tenant,
) -> Result<CallbackRegistration, AdminError> {
    require_psa(tenant, Psa::ConnectWise)?;
    let setup = state.ports().setup()?;
    let creds = credentials::load(state, &tenant.id).await?;
    let access = creds
        .connectwise_access(&tenant.config.value)
        .ok_or_else(|| AdminError::Invalid("verify the ConnectWise API keys first".into()))?;
    let url = tenants::connectwise_callback_url(state, &tenant.id);
    let summary = setup
        .register_connectwise_callback(
            &access,
            &url,
            &connectwise::callback_description(tenant.id.as_str()),
        )
        .await
        .map_err(|f| AdminError::ChecksFailed(vec![f.into()]))?;
    let registration = CallbackRegistration {
        url,
        summary,
        at: state.accounts().now(),
    };
    tenant.onboarding.value.callback = Some(registration.clone());
    tenant.save_onboarding(state.accounts().store()).await?;
    tracing::info!(tenant = %tenant.id, "connectwise callback ensured");
    Ok(registration)
}

/// The name the console gives the tenant's Zendesk webhook (found again by
/// its endpoint, not by this name).
pub fn zendesk_webhook_name(tenant: &bridge::model::TenantId) -> String {
    format!("psa-bridge ({tenant})")
}

/// What the admin does by hand when the console cannot register the
/// Zendesk webhook itself.
pub const ZENDESK_WEBHOOK_STEPS: &str = "In Zendesk Admin Center > Apps and integrations > \
    Webhooks, create a webhook with this URL, method POST, format JSON, subscribed to the \
    ticket events Ticket created, Comment added, Status changed, Priority changed, Subject \
    changed and Custom field changed; then reveal its signing secret and paste it here.";

/// Registers the bridge's Zendesk webhook through Zendesk's API (exactly one
/// webhook to the tenant's URL, subscribed to the ticket events; repeating
/// is harmless) and keeps its signing secret in the secrets store only. The
/// onboarding item records the webhook's id and when.
pub async fn register_zendesk_webhook(
    state: &AdminState,
    tenant: &mut Tenant,
) -> Result<WebhookRegistration, AdminError> {
    let setup = state.ports().setup()?;
    let creds = credentials::load(state, &tenant.id).await?;
    let access = creds
        .zendesk_access(&tenant.config.value)
        .ok_or_else(|| AdminError::Invalid("connect Zendesk first".into()))?;
    let url = tenants::hook_url(state, &tenant.id, HookKind::ZendeskWebhook);
    let registered = setup
        .register_zendesk_webhook(&access, &url, &zendesk_webhook_name(&tenant.id))
        .await;
    keep_registration(state, tenant, url, registered, RegisteredSystem::Zendesk).await
}

/// The name the console gives the tenant's Autotask webhooks (found again
/// by their URL, not by this name).
pub fn autotask_webhook_name(tenant: &bridge::model::TenantId) -> String {
    format!("psa-bridge ({tenant})")
}

/// What the admin does by hand when the console cannot register the
/// Autotask webhooks itself.
pub const AUTOTASK_WEBHOOK_STEPS: &str = "In Autotask (Admin > Extensions & Integrations > \
    Webhooks), create a Ticket webhook and a Ticket Note webhook with this URL as Webhook URL \
    and Deactivation URL, subscribed to create and update events, active; as fields, subscribe \
    the ticket's Status, Priority, Title, Description and Queue, and on the note webhook \
    Description and Title, with Ticket ID as a display-always field; add the API user to the \
    excluded resources; set as Secret Key the one \"Rotate\" makes under \"Autotask webhook secret key\" \
    below (or use an extension callout instead).";

/// Registers the tenant's Autotask Ticket and TicketNote webhooks through
/// Autotask's API (exactly one of each to the tenant's URL, with the fields
/// the sync needs and the API user excluded; repeating is harmless) and
/// keeps their new secret key in the secrets store only. Every registration
/// sets a new key on the webhooks (Autotask never shows a key again, so the
/// stored one cannot be checked against theirs). The onboarding item
/// records the webhooks' ids and when.
pub async fn register_autotask_webhooks(
    state: &AdminState,
    tenant: &mut Tenant,
) -> Result<WebhookRegistration, AdminError> {
    if tenant.onboarding.value.psa != Psa::Autotask {
        return Err(AdminError::Invalid(
            "this tenant's PSA is not Autotask".into(),
        ));
    }
    let setup = state.ports().setup()?;
    let creds = credentials::load(state, &tenant.id).await?;
    let access = creds
        .autotask_access(&tenant.config.value)
        .ok_or_else(|| AdminError::Invalid("enter the Autotask credentials first".into()))?;
    let url = tenants::hook_url(state, &tenant.id, HookKind::AutotaskWebhook);
    let registered = setup
        .register_autotask_webhooks(&access, &url, &autotask_webhook_name(&tenant.id))
        .await;
    keep_registration(state, tenant, url, registered, RegisteredSystem::Autotask).await
}

/// Whose webhooks a registration made.
#[derive(Debug, Clone, Copy)]
enum RegisteredSystem {
    Zendesk,
    Autotask,
}

/// Keeps what a webhook registration made: the secret in the secrets store
/// only, its id, URL and time in the onboarding item.
async fn keep_registration(
    state: &AdminState,
    tenant: &mut Tenant,
    url: String,
    registered: Result<bridge::setup::HookRegistration, bridge::setup::CheckFailure>,
    system: RegisteredSystem,
) -> Result<WebhookRegistration, AdminError> {
    let registered = match registered {
        Ok(registered) => registered,
        Err(f) => {
            tracing::warn!(tenant = %tenant.id, ?system, check = %f.check, retryable = f.retryable,
                "webhook registration failed");
            return Err(AdminError::ChecksFailed(vec![f.into()]));
        }
    };
    let secret_name = match system {
        RegisteredSystem::Zendesk => credentials::ZENDESK_WEBHOOK_SECRET,
        RegisteredSystem::Autotask => credentials::AUTOTASK_WEBHOOK_SECRET,
    };
    credentials::update(
        state,
        &tenant.id,
        vec![(secret_name, registered.hook.signing_secret.clone())],
    )
    .await?;
    let registration = WebhookRegistration {
        id: registered.hook.id,
        url,
        summary: registered.summary,
        at: state.accounts().now(),
    };
    let onboarding = &mut tenant.onboarding.value;
    *match system {
        RegisteredSystem::Zendesk => &mut onboarding.zendesk_webhook,
        RegisteredSystem::Autotask => &mut onboarding.autotask_webhooks,
    } = Some(registration.clone());
    tenant.save_onboarding(state.accounts().store()).await?;
    tracing::info!(tenant = %tenant.id, ?system, webhook = %registration.id, "webhooks registered");
    Ok(registration)
}

/// What "Register webhooks" did.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub zendesk: Option<WebhookRegistration>,
    pub autotask: Option<WebhookRegistration>,
    pub connectwise_callback: Option<CallbackRegistration>,
}

/// Registers every webhook the APIs let the console register: the Zendesk
/// webhook, for Autotask its Ticket and TicketNote webhooks, and for
/// ConnectWise the callback. Each failure says why and
/// the manual steps stay available.
pub async fn register_webhooks(
    state: &AdminState,
    tenant: &mut Tenant,
) -> Result<Registered, AdminError> {
    let mut failures = Vec::new();
    let zendesk = match register_zendesk_webhook(state, tenant).await {
        Ok(r) => Some(r),
        Err(AdminError::ChecksFailed(f)) => {
            failures.extend(f);
            None
        }
        Err(e) => return Err(e),
    };
    // Autotask's webhooks wait for its credentials (the page still says
    // "not registered yet"; activation names the missing credentials).
    let autotask_ready = tenant.onboarding.value.psa == Psa::Autotask
        && credentials::load(state, &tenant.id)
            .await?
            .autotask_access(&tenant.config.value)
            .is_some();
    let autotask = if autotask_ready {
        match register_autotask_webhooks(state, tenant).await {
            Ok(r) => Some(r),
            Err(AdminError::ChecksFailed(f)) => {
                failures.extend(f);
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let connectwise_callback = if tenant.onboarding.value.psa == Psa::ConnectWise {
        match register_callback(state, tenant).await {
            Ok(r) => Some(r),
            Err(AdminError::ChecksFailed(f)) => {
                failures.extend(f);
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    if failures.is_empty() {
        Ok(Registered {
            zendesk,
            autotask,
            connectwise_callback,
        })
    } else {
        Err(AdminError::ChecksFailed(failures))
    }
}

/// The check name of a failed Autotask webhook registration (the bridge's).
const AUTOTASK_WEBHOOKS_CHECK: &str = bridge::connectors::setup::checks::AUTOTASK_WEBHOOKS;

/// Every check a live tenant needs, run now.
pub async fn run_checks(state: &AdminState, tenant: &Tenant) -> Result<Vec<CheckView>, AdminError> {
    let mut failures = connection_checks(state, tenant).await?;
    let creds = credentials::load(state, &tenant.id).await?;
    failures.extend(secret_checks(&creds, tenant));
    Ok(failures)
}

/// The inbound secrets: registered by the console or pasted by the admin,
/// both kept in the same field of the secrets store.
fn secret_checks(creds: &Credentials, tenant: &Tenant) -> Vec<CheckView> {
    let mut failures = Vec::new();
    if creds.get(credentials::ZENDESK_WEBHOOK_SECRET).is_none() {
        failures.push(failure(
            "Zendesk webhook signing secret",
            "use \"Register webhooks\" under Webhooks (needs a Zendesk admin), or create the \
             webhook in Zendesk by hand and paste its signing secret there",
        ));
    }
    if tenant.onboarding.value.psa == Psa::Autotask
        && creds.get(credentials::AUTOTASK_WEBHOOK_SECRET).is_none()
        && creds.get(credentials::AUTOTASK_CALLOUT_PASSWORD).is_none()
    {
        failures.push(failure(
            "Autotask webhook or callout secret",
            "use \"Register webhooks\" under Webhooks, or create a secret there and enter it \
             in Autotask's webhooks or extension callout",
        ));
    }
    failures
}

/// The checks of the connections and settings (everything but the inbound
/// secrets), run now.
async fn connection_checks(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<Vec<CheckView>, AdminError> {
    let setup = state.ports().setup()?;
    let creds: Credentials = credentials::load(state, &tenant.id).await?;
    let config = &tenant.config.value;
    let mut failures = Vec::new();
    if !tenant.onboarding.value.checklist_done() {
        failures.push(failure(
            "Preparation checklist",
            "confirm every item of the checklist",
        ));
    }
    match creds.zendesk_access(config) {
        None => failures.push(failure("Zendesk connection", "connect Zendesk")),
        Some(access) => match setup.verify_zendesk(&access).await {
            Ok(v) if !v.is_admin => failures.push(failure(
                "Zendesk admin rights",
                "connect with an agent who is a Zendesk admin (the sweep needs one)",
            )),
            Ok(_) => {}
            Err(f) => failures.push(f.into()),
        },
    }
    match tenant.onboarding.value.psa {
        Psa::Autotask => match creds.autotask_access(config) {
            None => failures.push(failure(
                "Autotask credentials",
                "enter the API user's credentials",
            )),
            Some(access) => match setup.verify_autotask(&access).await {
                Err(f) => failures.push(f.into()),
                Ok(_) => match setup.autotask_choices(&access).await {
                    Err(f) => failures.push(f.into()),
                    Ok(choices) => failures.extend(mappings::problems(config, &choices)),
                },
            },
        },
        Psa::ConnectWise => match creds.connectwise_access(config) {
            None => failures.push(failure(
                "ConnectWise credentials",
                "enter the site, company id, API keys and clientId on the ConnectWise page",
            )),
            Some(access) => match setup.verify_connectwise(&access).await {
                Err(f) => failures.push(f.into()),
                Ok(_) => match config.connectwise.as_ref().and_then(|cw| cw.board_id) {
                    None => failures.push(failure(
                        "Service board",
                        "pick the ConnectWise service board under Mappings",
                    )),
                    Some(board) => {
                        let names = mappings::status_names_for_board(config, board);
                        failures.extend(
                            setup
                                .connectwise_board_checks(&access, board, &names)
                                .await
                                .into_iter()
                                .map(CheckView::from),
                        );
                        match setup.connectwise_board_choices(&access, board).await {
                            Err(f) => failures.push(f.into()),
                            Ok(choices) => failures.extend(mappings::problems(config, &choices)),
                        }
                    }
                },
            },
        },
    }
    Ok(failures)
}

/// Runs every check; turns the tenant active only when all pass. The
/// webhooks (Zendesk's, and a ConnectWise tenant's callback) are ensured
/// once every other check passed, so that nothing calls a tenant that
/// cannot sync. A Zendesk webhook that cannot be registered is no failure
/// when the admin pasted a signing secret by hand: the manual path stays.
pub async fn activate(state: &AdminState, tenant: &mut Tenant) -> Result<(), AdminError> {
    let mut failures = connection_checks(state, tenant).await?;
    if failures.is_empty() {
        let pasted = credentials::load(state, &tenant.id)
            .await?
            .get(credentials::ZENDESK_WEBHOOK_SECRET)
            .is_some();
        match register_zendesk_webhook(state, tenant).await {
            Ok(_) => {}
            Err(AdminError::ChecksFailed(f)) if pasted => {
                tracing::info!(tenant = %tenant.id, failures = f.len(),
                    "zendesk webhook not registered; the pasted signing secret stays in use");
            }
            Err(AdminError::ChecksFailed(f)) => failures.extend(f),
            Err(e) => return Err(e),
        }
    }
    if failures.is_empty() && tenant.onboarding.value.psa == Psa::Autotask {
        let creds = credentials::load(state, &tenant.id).await?;
        let has_secret = creds.get(credentials::AUTOTASK_WEBHOOK_SECRET).is_some();
        let has_callout = creds.get(credentials::AUTOTASK_CALLOUT_PASSWORD).is_some();
        // An admin who set up the extension callout (and no webhook) chose
        // callouts: webhooks beside it would report every change twice.
        if has_secret || !has_callout {
            match register_autotask_webhooks(state, tenant).await {
                Ok(_) => {}
                Err(AdminError::ChecksFailed(f)) if has_secret || has_callout => {
                    tracing::info!(tenant = %tenant.id, failures = f.len(),
                        "autotask webhooks not registered; the pasted secret stays in use");
                }
                Err(AdminError::ChecksFailed(f)) => failures.extend(f),
                Err(e) => return Err(e),
            }
        }
    }
    if failures.is_empty() && tenant.onboarding.value.psa == Psa::ConnectWise {
        match register_callback(state, tenant).await {
            Ok(_) => {}
            Err(AdminError::ChecksFailed(f)) => failures.extend(f),
            Err(e) => return Err(e),
        }
    }
    let creds = credentials::load(state, &tenant.id).await?;
    let reported = |check: &str| failures.iter().any(|f: &CheckView| f.check == check);
    let missing: Vec<CheckView> = secret_checks(&creds, tenant)
        .into_iter()
        // A failed registration already says what to do about the secret.
        .filter(|f| !(f.check.starts_with("Zendesk webhook") && reported("Zendesk webhook")))
        .filter(|f| !(f.check.starts_with("Autotask webhook") && reported(AUTOTASK_WEBHOOKS_CHECK)))
        .collect();
    failures.extend(missing);
    let store = state.accounts().store();
    tenant.onboarding.value.last_checks = Some(CheckRun {
        at: state.accounts().now(),
        failures: failures.clone(),
    });
    tenant.save_onboarding(store).await?;
    if !failures.is_empty() {
        return Err(AdminError::ChecksFailed(failures));
    }
    if !tenant.config.value.active {
        tenant.config.value.active = true;
        tenant.save_config(store).await?;
        first_asset_run(state, tenant);
    }
    tracing::info!(tenant = %tenant.id, "tenant activated");
    Ok(())
}

/// A tenant with asset sync gets its first run when it turns active, in
/// the background: a first load of thousands of devices takes longer than a
/// page may wait, and its summary lands in the sync log (and the assets
/// page) like any run's. Where runs are only on request (AWS, where a
/// background task would freeze with the Lambda), the asset schedule's next
/// 5-minute pass does the first run: a tenant that never ran is due.
fn first_asset_run(state: &AdminState, tenant: &Tenant) {
    if tenant.config.value.assets.is_none() {
        return;
    }
    let Some(runner) = state.ports().asset_runner() else {
        return;
    };
    let id = tenant.id.clone();
    tokio::spawn(async move {
        match runner.sync_assets(&id).await {
            Ok(summary) => {
                tracing::info!(tenant = %id, %summary, "first asset sync run after activation")
            }
            Err(error) => {
                tracing::warn!(tenant = %id, %error, "first asset sync run after activation failed")
            }
        }
    });
}
