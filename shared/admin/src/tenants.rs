//! Tenants as operators create them and admins operate them: creation,
//! the list, the dashboard, the sync log, "Sync now", dead letters and
//! webhook secrets. Pages and the JSON API both call these functions, so
//! both apply the same rules; every function that takes a tenant id from a
//! request starts with `authorize`.

use bridge::config::{
    AutotaskSettings, ConnectWiseSettings, Mappings, TenantConfig, ZendeskSettings,
};
use bridge::model::TenantId;
use bridge::ports::Condition;
use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::accounts::{require_tenant, CurrentUser};
use crate::credentials::{self, Credentials};
use crate::error::{AdminError, CheckView};
use crate::onboarding::{self, map_store_err, Onboarding, Tenant};
use crate::ops::{DeadLetter, OpsError};
use crate::psa::Psa;
use crate::web::AdminState;

/// How many log entries the log page and the dashboard look through.
pub const LOG_WINDOW: usize = 1000;

/// The tenant a request names, if the signed-in person may see it. Another
/// tenant's id and a malformed one are both "not found".
pub fn authorize(user: &CurrentUser, raw: &str) -> Result<TenantId, AdminError> {
    let tenant = TenantId::parse(raw).ok_or(AdminError::NotFound)?;
    require_tenant(user, &tenant)?;
    Ok(tenant)
}

/// Loads a tenant the person may see.
pub async fn open(state: &AdminState, user: &CurrentUser, raw: &str) -> Result<Tenant, AdminError> {
    let tenant = authorize(user, raw)?;
    Tenant::load(state.accounts().store(), &tenant).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewTenant {
    pub id: String,
    pub name: String,
    /// `autotask` (the default) or `connectwise`.
    #[serde(default)]
    pub psa: Option<String>,
    /// The tenant's Zendesk, `https://<subdomain>.zendesk.com`; may be set
    /// later by the tenant's admin.
    #[serde(default)]
    pub zendesk_url: Option<String>,
}

/// A new tenant: inactive, with safe defaults (no note is public, empty
/// mapping tables so that nothing is mapped by guess).
pub async fn create(
    state: &AdminState,
    user: &CurrentUser,
    req: &NewTenant,
) -> Result<TenantSummary, AdminError> {
    if !user.role.is_operator() {
        return Err(AdminError::OperatorOnly);
    }
    let id = TenantId::parse(req.id.trim()).ok_or_else(|| {
        AdminError::Invalid("a tenant id is 1-64 lowercase letters, digits, '-' or '_'".into())
    })?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AdminError::Invalid(
            "a tenant name is 1-100 characters".into(),
        ));
    }
    let psa = Psa::parse(req.psa.as_deref().unwrap_or("autotask"))
        .ok_or_else(|| AdminError::Invalid("unknown PSA".into()))?;
    if !psa.available() {
        return Err(AdminError::Invalid(format!(
            "{} is coming soon; create the tenant with Autotask for now",
            psa.display_name()
        )));
    }
    let zendesk_url = match req.zendesk_url.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(url) => check_base_url(url)?,
    };
    let settings = state.ports().settings();
    let mut autotask = AutotaskSettings::new(settings.autotask_zone_lookup_url.clone());
    autotask.public_note_publish = Vec::new();
    let config = TenantConfig {
        id: id.clone(),
        active: false,
        zendesk: ZendeskSettings {
            base_url: zendesk_url,
            cluster_id_field: None,
        },
        autotask,
        // The site and company id come with the keys, on the ConnectWise page.
        connectwise: (psa == Psa::ConnectWise).then(|| ConnectWiseSettings::new("", "")),
        mappings: Mappings {
            priority: Default::default(),
            status: Default::default(),
            priority_to_desk: Default::default(),
            status_to_desk: Default::default(),
            ..Mappings::default()
        },
        fields: Default::default(),
        assets: None,
    };
    let store = state.accounts().store();
    Repo::new(store)
        .put_tenant(&config, Condition::MustNotExist)
        .await
        .map_err(|e| match e {
            bridge::error::StoreError::Conflict { .. } => {
                AdminError::Invalid(format!("a tenant with the id {id} already exists"))
            }
            e => AdminError::store("create tenant")(e),
        })?;
    let item = Onboarding::new(name.to_owned(), psa);
    onboarding::write(store, &id, &item, Condition::Always).await?;
    tracing::info!(tenant = %id, by = %user.email, "tenant created");
    Ok(TenantSummary::of(&config, &item))
}

/// A Zendesk base URL: `https://...` without a path (or `http://` on
/// loopback, for the sandbox).
pub fn check_base_url(raw: &str) -> Result<String, AdminError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| {
            url.strip_prefix("http://")
                .filter(|r| r.starts_with("127.0.0.1") || r.starts_with("localhost"))
        })
        .ok_or_else(|| AdminError::Invalid("the Zendesk URL must start with https://".into()))?;
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return Err(AdminError::Invalid(
            "the Zendesk URL is the account's address only, like https://acme.zendesk.com".into(),
        ));
    }
    Ok(url.to_owned())
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: String,
    pub name: String,
    pub psa: Psa,
    pub active: bool,
}

impl TenantSummary {
    fn of(config: &TenantConfig, item: &Onboarding) -> Self {
        Self {
            id: config.id.to_string(),
            name: item.name.clone(),
            psa: item.psa,
            active: config.active,
        }
    }
}

/// Every tenant for an operator; their own for an admin.
pub async fn list(
    state: &AdminState,
    user: &CurrentUser,
) -> Result<Vec<TenantSummary>, AdminError> {
    let store = state.accounts().store();
    let configs = match user.role.tenant() {
        None => Repo::new(store)
            .tenants()
            .await
            .map_err(map_store_err("list tenants"))?,
        Some(own) => match Repo::new(store).tenant(own).await {
            Ok(Some(v)) => vec![v.value],
            Ok(None) => Vec::new(),
            Err(e) => return Err(map_store_err("read tenant")(e)),
        },
    };
    let mut out = Vec::new();
    for config in configs {
        let item = onboarding::read(store, &config.id)
            .await?
            .map(|v| v.value)
            .unwrap_or_else(|| Onboarding::new(config.id.to_string(), Psa::of_config(&config)));
        out.push(TenantSummary::of(&config, &item));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Filters of the sync log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogFilter {
    /// `info` or `error`.
    #[serde(default)]
    pub level: Option<String>,
    /// A ticket reference (`zendesk:123`) or its number alone.
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub limit: Option<usize>,
}

impl LogFilter {
    fn matches(&self, e: &SyncLogEntry) -> bool {
        let level_ok = match self.level.as_deref().filter(|l| !l.is_empty()) {
            Some("error") => e.level == LogLevel::Error,
            Some("info") => e.level == LogLevel::Info,
            _ => true,
        };
        let ticket_ok = match self
            .ticket
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => true,
            Some(wanted) => e
                .ticket
                .as_deref()
                .is_some_and(|t| t == wanted || t.rsplit(':').next() == Some(wanted)),
        };
        level_ok
            && ticket_ok
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at <= u)
    }
}

pub async fn log(
    state: &AdminState,
    tenant: &TenantId,
    filter: &LogFilter,
) -> Result<Vec<SyncLogEntry>, AdminError> {
    let entries = Repo::new(state.accounts().store())
        .log_entries(tenant, LOG_WINDOW)
        .await
        .map_err(map_store_err("read sync log"))?;
    let limit = filter.limit.unwrap_or(200).clamp(1, LOG_WINDOW);
    Ok(entries
        .into_iter()
        .filter(|e| filter.matches(e))
        .take(limit)
        .collect())
}

/// Log steps written by a sweep (reconcile).
fn is_sweep_step(step: &str) -> bool {
    step == "sweep" || step.ends_with("_cursor") || step.ends_with("_changes")
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub tenant: TenantSummary,
    /// Why the tenant is not active (empty when it is).
    pub inactive_because: Vec<String>,
    pub last_checks: Option<crate::onboarding::CheckRun>,
    pub last_sweep: Option<SyncLogEntry>,
    pub synced_today: usize,
    pub errors_today: usize,
    pub recent_errors: Vec<SyncLogEntry>,
    pub checklist_done: bool,
    pub zendesk_connected: bool,
    pub autotask_connected: bool,
    /// The tenant's PSA (Autotask or ConnectWise) credentials are verified.
    pub psa_connected: bool,
    pub mappings_saved: bool,
}

pub async fn dashboard(state: &AdminState, tenant: &Tenant) -> Result<Dashboard, AdminError> {
    let entries = Repo::new(state.accounts().store())
        .log_entries(&tenant.id, LOG_WINDOW)
        .await
        .map_err(map_store_err("read sync log"))?;
    let midnight = state
        .accounts()
        .now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let today = || entries.iter().filter(|e| e.at >= midnight);
    let o = &tenant.onboarding.value;
    let mut why = Vec::new();
    if !tenant.config.value.active {
        if !o.checklist_done() {
            why.push("the preparation checklist is not complete".to_owned());
        }
        if o.zendesk.is_none() {
            why.push("Zendesk is not connected".to_owned());
        }
        if !o.psa_connected() {
            why.push(match o.psa {
                Psa::Autotask => "Autotask credentials are not verified".to_owned(),
                Psa::ConnectWise => "the ConnectWise API keys are not verified".to_owned(),
            });
        }
        if o.mappings_saved_at.is_none() {
            why.push("the mappings are not saved".to_owned());
        }
        if let Some(run) = &o.last_checks {
            why.extend(
                run.failures
                    .iter()
                    .map(|f| format!("{}: {}", f.check, f.fix)),
            );
        }
        if why.is_empty() {
            why.push("not activated yet".to_owned());
        }
    }
    Ok(Dashboard {
        tenant: TenantSummary::of(&tenant.config.value, o),
        inactive_because: why,
        last_checks: o.last_checks.clone(),
        last_sweep: entries.iter().find(|e| is_sweep_step(&e.step)).cloned(),
        synced_today: today()
            .filter(|e| e.level == LogLevel::Info && e.ticket.is_some())
            .count(),
        errors_today: today().filter(|e| e.level == LogLevel::Error).count(),
        recent_errors: entries
            .iter()
            .filter(|e| e.level == LogLevel::Error)
            .take(10)
            .cloned()
            .collect(),
        checklist_done: o.checklist_done(),
        zendesk_connected: o.zendesk.is_some(),
        autotask_connected: o.autotask.is_some(),
        psa_connected: o.psa_connected(),
        mappings_saved: o.mappings_saved_at.is_some(),
    })
}

pub(crate) fn ops_err(e: OpsError) -> AdminError {
    match e {
        OpsError::NotFound => AdminError::NotFound,
        OpsError::Failed { message, retryable } => AdminError::Upstream { message, retryable },
        OpsError::SetupIncomplete { problems } => AdminError::ChecksFailed(
            problems
                .into_iter()
                .map(|fix| CheckView {
                    check: "Asset sync setup".to_owned(),
                    fix,
                    retryable: false,
                })
                .collect(),
        ),
    }
}

pub async fn sync_now(state: &AdminState, tenant: &Tenant) -> Result<String, AdminError> {
    let ops = state.ports().operations()?;
    if !tenant.config.value.active {
        return Err(AdminError::Invalid(
            "the tenant is not active yet; activate it first".into(),
        ));
    }
    ops.sync_now(&tenant.id).await.map_err(ops_err)
}

pub async fn dead_letters(
    state: &AdminState,
    tenant: &TenantId,
) -> Result<Vec<DeadLetter>, AdminError> {
    state
        .ports()
        .operations()?
        .dead_letters(tenant)
        .await
        .map_err(ops_err)
}

pub async fn replay(state: &AdminState, tenant: &TenantId, id: &str) -> Result<(), AdminError> {
    if id.is_empty() || id.len() > 512 {
        return Err(AdminError::NotFound);
    }
    state
        .ports()
        .operations()?
        .replay(tenant, id)
        .await
        .map_err(ops_err)?;
    tracing::info!(tenant = %tenant, "dead letter replayed");
    Ok(())
}

/// Which inbound secret to rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Autotask REST webhooks' `SecretKey`: the bridge makes it up.
    AutotaskWebhook,
    /// The extension callout's Basic-auth password: the bridge makes it up.
    AutotaskCallout,
    /// Zendesk makes its webhook's signing secret itself; the admin resets
    /// it in Zendesk and pastes the new one here.
    ZendeskWebhook,
}

impl HookKind {
    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
    }
}

/// The answer of a rotation: a secret the bridge made up is shown this once.
#[derive(Serialize)]
pub struct Rotated {
    pub kind: HookKind,
    /// The new secret, when the bridge generated it; never shown again.
    pub secret: Option<String>,
    pub username: Option<String>,
    pub masked: String,
    pub url: String,
    pub steps: String,
}

pub fn hook_url(state: &AdminState, tenant: &TenantId, kind: HookKind) -> String {
    let system = match kind {
        HookKind::ZendeskWebhook => "zendesk",
        HookKind::AutotaskWebhook | HookKind::AutotaskCallout => "autotask",
    };
    format!(
        "{}/t/{tenant}/{system}",
        state.ports().settings().ingest_url.trim_end_matches('/')
    )
}

/// The inbound secrets a tenant's PSA uses: ConnectWise signs its
/// callbacks with a key it serves itself, so only Zendesk's is kept.
fn hook_kinds(psa: Psa) -> &'static [HookKind] {
    match psa {
        Psa::Autotask => &[
            HookKind::ZendeskWebhook,
            HookKind::AutotaskWebhook,
            HookKind::AutotaskCallout,
        ],
        Psa::ConnectWise => &[HookKind::ZendeskWebhook],
    }
}

/// Where ConnectWise calls the bridge for a tenant.
pub fn connectwise_callback_url(state: &AdminState, tenant: &TenantId) -> String {
    format!(
        "{}/t/{tenant}/connectwise",
        state.ports().settings().ingest_url.trim_end_matches('/')
    )
}

pub async fn rotate(
    state: &AdminState,
    tenant: &mut Tenant,
    kind: HookKind,
    pasted: Option<&str>,
) -> Result<Rotated, AdminError> {
    use bridge::config::Secret;
    let psa = tenant.onboarding.value.psa;
    if !hook_kinds(psa).contains(&kind) {
        return Err(AdminError::Invalid(format!(
            "a tenant on {} has no such secret",
            psa.display_name()
        )));
    }
    // Webhooks the console registered get their new key through Autotask's
    // API (registering again sets and stores one): a key made here would
    // not match them until entered by hand.
    let autotask_url = hook_url(state, &tenant.id, HookKind::AutotaskWebhook);
    if kind == HookKind::AutotaskWebhook
        && tenant
            .onboarding
            .value
            .autotask_webhooks
            .as_ref()
            .is_some_and(|r| r.url == autotask_url)
    {
        let registered = crate::setup_flow::register_autotask_webhooks(state, tenant).await?;
        let creds = credentials::load(state, &tenant.id).await?;
        tracing::info!(tenant = %tenant.id, kind = ?kind, "webhook secret rotated through Autotask");
        return Ok(Rotated {
            kind,
            secret: None,
            username: None,
            masked: creds.mask(credentials::AUTOTASK_WEBHOOK_SECRET),
            url: autotask_url,
            steps: format!(
                "{} Nothing to enter in Autotask: the webhooks sign with the new key already.",
                registered.summary
            ),
        });
    }
    let tenant = &tenant.id;
    let url = hook_url(state, tenant, kind);
    let (changes, shown, username, steps) = match kind {
        HookKind::AutotaskWebhook => {
            let secret = credentials::random_secret();
            let steps = "In Autotask, open the tenant's Ticket and Ticket Note webhooks \
                         (Admin > Extensions & Integrations > Webhooks) and paste this \
                         value as each one's Secret Key. Events signed with the old key \
                         are refused from now on."
                .to_owned();
            (
                vec![(credentials::AUTOTASK_WEBHOOK_SECRET, secret.clone())],
                Some(secret),
                None,
                steps,
            )
        }
        HookKind::AutotaskCallout => {
            let secret = credentials::random_secret();
            let user = format!("psa-bridge-{tenant}");
            let steps = "In Autotask, open the extension callout (Admin > Extensions & \
                         Integrations > Extension Callout) and set its username and \
                         password to these values."
                .to_owned();
            (
                vec![
                    (
                        credentials::AUTOTASK_CALLOUT_USERNAME,
                        Secret::new(user.clone()),
                    ),
                    (credentials::AUTOTASK_CALLOUT_PASSWORD, secret.clone()),
                ],
                Some(secret),
                Some(user),
                steps,
            )
        }
        HookKind::ZendeskWebhook => {
            let pasted = pasted
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    AdminError::Invalid(
                        "paste the signing secret Zendesk shows after \"Reset secret\"".into(),
                    )
                })?;
            if pasted.len() > 256 || pasted.chars().any(char::is_whitespace) {
                return Err(AdminError::Invalid(
                    "that is not a Zendesk signing secret".into(),
                ));
            }
            let steps =
                "Zendesk signs with the secret it showed you; nothing else to do.".to_owned();
            (
                vec![(credentials::ZENDESK_WEBHOOK_SECRET, Secret::new(pasted))],
                None,
                None,
                steps,
            )
        }
    };
    let field = changes
        .last()
        .map(|(f, _)| *f)
        .expect("one change at least");
    let creds: Credentials = credentials::update(state, tenant, changes).await?;
    tracing::info!(tenant = %tenant, kind = ?kind, "webhook secret rotated");
    Ok(Rotated {
        kind,
        secret: shown.map(|s| s.expose().to_owned()),
        username,
        masked: creds.mask(field),
        url,
        steps,
    })
}

/// What the webhooks page shows of each inbound secret the tenant's PSA uses.
pub async fn hook_status(
    state: &AdminState,
    tenant: &Tenant,
) -> Result<Vec<(HookKind, String, String)>, AdminError> {
    let creds = credentials::load(state, &tenant.id).await?;
    Ok(hook_kinds(tenant.onboarding.value.psa)
        .iter()
        .map(|kind| {
            let field = match kind {
                HookKind::ZendeskWebhook => credentials::ZENDESK_WEBHOOK_SECRET,
                HookKind::AutotaskWebhook => credentials::AUTOTASK_WEBHOOK_SECRET,
                HookKind::AutotaskCallout => credentials::AUTOTASK_CALLOUT_PASSWORD,
            };
            (*kind, hook_url(state, &tenant.id, *kind), creds.mask(field))
        })
        .collect())
}

/// Failures as the API and pages list them.
pub fn views(failures: Vec<bridge::setup::CheckFailure>) -> Vec<CheckView> {
    failures.into_iter().map(CheckView::from).collect()
}
