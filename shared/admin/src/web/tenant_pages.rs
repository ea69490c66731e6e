//! The tenant pages: list and creation (operators), dashboard, checklist,
//! Zendesk, Autotask or ConnectWise, mappings, sync log, dead letters,
//! webhooks, asset sync. Each
//! handler calls the same functions as the JSON API; a POST that fails on
//! the admin's input shows the page again with what to fix.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::mapping_form::{board_options, parse_mappings_form, sections, Opt, Section};
use super::pages::{error_page, render, see_other, Layout};
use super::AdminState;
use crate::accounts::CurrentUser;
use crate::assets::{self, AssetsView, RunDone, SetupCheck};
use crate::error::{AdminError, CheckView};
use crate::mappings::{self, MappingsView};
use crate::onboarding::Tenant;
use crate::ops::DeadLetter;
use crate::psa::Psa;
use crate::setup_flow::{
    self, AutotaskRequest, AutotaskStatus, ChecklistRow, ConnectWiseRequest, ConnectWiseStatus,
    ZendeskStatus, ZendeskTokenRequest,
};
use crate::tenants::{self, Dashboard, HookKind, LogFilter, NewTenant, Rotated, TenantSummary};

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/tenants/{tenant}", get(dashboard))
        .route("/tenants/{tenant}/activate", post(activate))
        .route("/tenants/{tenant}/sync", post(sync_now))
        .route("/tenants/{tenant}/checklist", get(checklist).post(confirm))
        .route(
            "/tenants/{tenant}/zendesk",
            get(zendesk).post(zendesk_token),
        )
        .route("/tenants/{tenant}/zendesk/oauth", post(oauth_start))
        .route("/tenants/{tenant}/zendesk/oauth/finish", get(oauth_finish))
        .route("/zendesk/oauth/callback", get(oauth_callback))
        .route(
            "/tenants/{tenant}/autotask",
            get(autotask).post(autotask_save),
        )
        .route(
            "/tenants/{tenant}/connectwise",
            get(connectwise).post(connectwise_save),
        )
        .route(
            "/tenants/{tenant}/connectwise/callback",
            post(connectwise_callback),
        )
        .route(
            "/tenants/{tenant}/mappings",
            get(mappings_page).post(mappings_save),
        )
        .route("/tenants/{tenant}/log", get(log))
        .route("/tenants/{tenant}/dead-letters", get(dead_letters))
        .route("/tenants/{tenant}/dead-letters/{id}/replay", post(replay))
        .route("/tenants/{tenant}/webhooks", get(webhooks).post(rotate))
        .route("/tenants/{tenant}/webhooks/rotate", post(rotate))
        .route(
            "/tenants/{tenant}/webhooks/register",
            post(register_webhooks),
        )
        .route("/tenants/{tenant}/assets", get(assets_page))
        .route("/tenants/{tenant}/assets/check", post(assets_check))
        .route("/tenants/{tenant}/assets/sync", post(assets_sync))
}

/// The fields every tenant page shows above its content.
struct Top {
    layout: Layout,
    tenant_id: String,
    /// The tenant's PSA: which PSA page the navigation links to.
    psa: Psa,
    notice: Option<String>,
    error: Option<String>,
    failures: Vec<CheckView>,
}

fn top(state: &AdminState, user: &CurrentUser, title: &'static str, tenant: &str) -> Top {
    Top {
        layout: Layout::new(title, state.base(), Some(user)),
        tenant_id: tenant.to_owned(),
        psa: Psa::Autotask,
        notice: None,
        error: None,
        failures: Vec::new(),
    }
}

impl Top {
    /// The top of a page about `tenant` (its PSA decides the navigation).
    fn of(mut self, tenant: &Tenant) -> Self {
        self.psa = tenant.onboarding.value.psa;
        self
    }
}

/// The error a page shows in place (input the admin can fix), or `None`
/// for errors that get the error page.
fn inline(e: AdminError) -> Result<(Option<String>, Vec<CheckView>), AdminError> {
    match e {
        AdminError::ChecksFailed(failures) => Ok((None, failures)),
        e @ (AdminError::Invalid(_)
        | AdminError::Conflict
        | AdminError::NotAvailable(_)
        | AdminError::Upstream { .. }) => Ok((Some(e.to_string()), Vec::new())),
        e => Err(e),
    }
}

macro_rules! page {
    ($name:ident, $path:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name {
            layout: Layout,
            tenant_id: String,
            psa: Psa,
            notice: Option<String>,
            error: Option<String>,
            failures: Vec<CheckView>,
            $($field: $ty,)*
        }
        impl $name {
            fn with(top: Top, $($field: $ty),*) -> Self {
                Self {
                    layout: top.layout,
                    tenant_id: top.tenant_id,
                    psa: top.psa,
                    notice: top.notice,
                    error: top.error,
                    failures: top.failures,
                    $($field,)*
                }
            }
        }
    };
}

page!(DashboardPage, "tenant.html", { d: Dashboard, assets: Option<AssetsView> });
page!(AssetsPage, "assets.html", { view: AssetsView, check: Option<SetupCheck>, done: Option<RunDone> });
page!(ChecklistPage, "checklist.html", { rows: Vec<ChecklistRow> });
page!(ZendeskPage, "zendesk.html", { status: ZendeskStatus });
page!(AutotaskPage, "autotask.html", { status: AutotaskStatus });
page!(ConnectWisePage, "connectwise.html", { status: ConnectWiseStatus, regions: Vec<Opt> });
page!(MappingsPage, "mappings.html", {
    sections: Vec<Section>,
    notes: Vec<mappings::NoteRow>,
    notes_missing: Vec<String>,
    organizations_unavailable: Option<String>,
    board: BoardPicker,
});

/// ConnectWise's board picker on the mappings page.
struct BoardPicker {
    options: Vec<Opt>,
    /// The board whose statuses the rows offer (saved with the form).
    shown: Option<i64>,
    note: String,
}
page!(LogPage, "log.html", { entries: Vec<LogRow>, level: String, ticket: String, since: String, until: String });
page!(DeadLettersPage, "dead_letters.html", { letters: Vec<DeadLetter> });
page!(WebhooksPage, "webhooks.html", {
    hooks: Vec<HookRow>,
    rotated: Option<Rotated>,
    callback: Option<CallbackRow>,
    registration: RegistrationRow,
});

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    layout: Layout,
    tenants: Vec<TenantSummary>,
    psas: [Psa; 2],
    operator: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "oauth_bounce.html")]
struct BouncePage {
    target: String,
}

fn status_of(top: &Top) -> StatusCode {
    if top.error.is_some() || !top.failures.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// Runs a page handler; an error becomes the error page.
fn finish(state: &AdminState, r: Result<Response, AdminError>) -> Response {
    r.unwrap_or_else(|e| error_page(state.base(), &e))
}

// ---- tenants --------------------------------------------------------------

async fn tenants_list(
    state: &AdminState,
    user: &CurrentUser,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let status = match error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let page = TenantsPage {
        layout: Layout::new("Tenants", state.base(), Some(user)),
        tenants: tenants::list(state, user).await?,
        psas: Psa::ALL,
        operator: user.role.is_operator(),
        error,
    };
    Ok(render(status, &page))
}

pub(super) async fn tenants_page(State(state): State<AdminState>, user: CurrentUser) -> Response {
    finish(&state, tenants_list(&state, &user, None).await)
}

pub(super) async fn create_tenant(
    State(state): State<AdminState>,
    user: CurrentUser,
    Form(form): Form<NewTenant>,
) -> Response {
    let r = match tenants::create(&state, &user, &form).await {
        Ok(t) => Ok(see_other(&state, &format!("/tenants/{}", t.id))),
        Err(e @ AdminError::Invalid(_)) => tenants_list(&state, &user, Some(e.to_string())).await,
        Err(e) => Err(e),
    };
    finish(&state, r)
}

// ---- dashboard ------------------------------------------------------------

async fn show_dashboard(
    state: &AdminState,
    user: &CurrentUser,
    t: &str,
    top: Top,
) -> Result<Response, AdminError> {
    let tenant = tenants::open(state, user, t).await?;
    let d = tenants::dashboard(state, &tenant).await?;
    let assets = match tenant.config.value.assets {
        Some(_) => Some(assets::view(state, &tenant).await?),
        None => None,
    };
    let status = status_of(&top);
    Ok(render(
        status,
        &DashboardPage::with(top.of(&tenant), d, assets),
    ))
}

async fn dashboard(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let top = top(&state, &user, "Tenant", &t);
    finish(&state, show_dashboard(&state, &user, &t, top).await)
}

async fn activate(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Tenant", &t);
        match setup_flow::activate(&state, &mut tenant).await {
            Ok(()) => top.notice = Some("Every check passed: the tenant is active.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        show_dashboard(&state, &user, &t, top).await
    };
    finish(&state, r.await)
}

async fn sync_now(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Tenant", &t);
        match tenants::sync_now(&state, &tenant).await {
            Ok(summary) => top.notice = Some(format!("Sweep done: {summary}")),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        show_dashboard(&state, &user, &t, top).await
    };
    finish(&state, r.await)
}

// ---- checklist ------------------------------------------------------------

async fn checklist(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let rows = setup_flow::checklist(&state, &tenant).await?;
        Ok(render(
            StatusCode::OK,
            &ChecklistPage::with(
                top(&state, &user, "Preparation checklist", &t).of(&tenant),
                rows,
            ),
        ))
    };
    finish(&state, r.await)
}

async fn confirm(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let items: Vec<String> = fields
            .into_iter()
            .filter(|(k, _)| k == "confirmed")
            .map(|(_, v)| v)
            .collect();
        let mut top = top(&state, &user, "Preparation checklist", &t).of(&tenant);
        match setup_flow::confirm(&state, &user, &mut tenant, &items).await {
            Ok(_) => top.notice = Some("Saved.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        let rows = setup_flow::checklist(&state, &tenant).await?;
        let status = status_of(&top);
        Ok(render(status, &ChecklistPage::with(top, rows)))
    };
    finish(&state, r.await)
}

// ---- Zendesk --------------------------------------------------------------

async fn show_zendesk(
    state: &AdminState,
    tenant: &Tenant,
    top: Top,
) -> Result<Response, AdminError> {
    let status = setup_flow::zendesk_status(state, tenant).await?;
    let code = status_of(&top);
    Ok(render(code, &ZendeskPage::with(top.of(tenant), status)))
}

async fn zendesk(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        show_zendesk(&state, &tenant, top(&state, &user, "Zendesk", &t)).await
    };
    finish(&state, r.await)
}

async fn zendesk_token(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(form): Form<ZendeskTokenRequest>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Zendesk", &t);
        match setup_flow::connect_zendesk_token(&state, &mut tenant, &form).await {
            Ok(_) => top.notice = Some("Zendesk is connected.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        show_zendesk(&state, &tenant, top).await
    };
    finish(&state, r.await)
}

#[derive(Deserialize)]
struct OAuthStartForm {
    base_url: String,
}

async fn oauth_start(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(form): Form<OAuthStartForm>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        match setup_flow::start_oauth(&state, &mut tenant, &form.base_url).await {
            // A page that moves on by itself, not a redirect: the console's
            // CSP (`form-action 'self'`) makes browsers refuse a form
            // submission that redirects to another origin.
            Ok(url) => Ok(render(StatusCode::OK, &BouncePage { target: url })),
            Err(e) => {
                let mut top = top(&state, &user, "Zendesk", &t);
                (top.error, top.failures) = inline(e)?;
                show_zendesk(&state, &tenant, top).await
            }
        }
    };
    finish(&state, r.await)
}

#[derive(Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

/// Zendesk redirects here. The session cookie is SameSite=Strict, so a
/// browser does not send it on this cross-site redirect; this page moves
/// the browser on within the console, where the cookie is sent again.
async fn oauth_callback(State(state): State<AdminState>, Query(q): Query<Callback>) -> Response {
    let Some(tenant) = setup_flow::tenant_of_state(&q.state)
        .filter(|t| bridge::model::TenantId::parse(t).is_some())
    else {
        return error_page(
            state.base(),
            &AdminError::Invalid("this Zendesk authorization has no valid state".into()),
        );
    };
    let query =
        serde_urlencoded::to_string([("code", &q.code), ("state", &q.state)]).unwrap_or_default();
    let page = BouncePage {
        target: format!(
            "{}/tenants/{tenant}/zendesk/oauth/finish?{query}",
            state.base()
        ),
    };
    render(StatusCode::OK, &page)
}

async fn oauth_finish(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Zendesk", &t);
        match setup_flow::finish_oauth(&state, &mut tenant, &q.code, &q.state).await {
            Ok(_) => top.notice = Some("Zendesk is connected with OAuth.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        show_zendesk(&state, &tenant, top).await
    };
    finish(&state, r.await)
}

// ---- Autotask -------------------------------------------------------------

async fn show_autotask(
    state: &AdminState,
    tenant: &Tenant,
    top: Top,
) -> Result<Response, AdminError> {
    let status = setup_flow::autotask_status(state, tenant).await?;
    let code = status_of(&top);
    Ok(render(code, &AutotaskPage::with(top.of(tenant), status)))
}

async fn autotask(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        show_autotask(&state, &tenant, top(&state, &user, "Autotask", &t)).await
    };
    finish(&state, r.await)
}

async fn autotask_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(form): Form<AutotaskRequest>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Autotask", &t).of(&tenant);
        let typed_username = match setup_flow::connect_autotask(&state, &mut tenant, &form).await {
            Ok(_) => {
                top.notice = Some("Autotask credentials verified and saved.".into());
                None
            }
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                // Nothing was saved; keep what the admin typed (the user name,
                // never a secret) so a second try needs only the fix.
                Some(form.username.trim().to_owned())
            }
        };
        let mut status = setup_flow::autotask_status(&state, &tenant).await?;
        if typed_username.is_some() {
            status.username = typed_username;
        }
        let code = status_of(&top);
        Ok(render(code, &AutotaskPage::with(top, status)))
    };
    finish(&state, r.await)
}

// ---- ConnectWise ----------------------------------------------------------

fn region_options(status: &ConnectWiseStatus) -> Vec<Opt> {
    // A tenant without a site yet starts on the most common region.
    let chosen = match status.region {
        "" => "na",
        region => region,
    };
    crate::psa::connectwise::REGIONS
        .iter()
        .map(|(region, label)| (*region, *label))
        .chain([(
            crate::psa::connectwise::ON_PREMISE,
            "On premises: the address below",
        )])
        .map(|(region, label)| Opt {
            value: region.to_owned(),
            label: label.to_owned(),
            selected: region == chosen,
        })
        .collect()
}

fn connectwise_page(top: Top, status: ConnectWiseStatus) -> Response {
    let code = status_of(&top);
    let regions = region_options(&status);
    render(code, &ConnectWisePage::with(top, status, regions))
}

async fn connectwise(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let status = setup_flow::connectwise_status(&state, &tenant).await?;
        Ok(connectwise_page(
            top(&state, &user, "ConnectWise", &t).of(&tenant),
            status,
        ))
    };
    finish(&state, r.await)
}

async fn connectwise_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(form): Form<ConnectWiseRequest>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "ConnectWise", &t).of(&tenant);
        let failed = match setup_flow::connect_connectwise(&state, &mut tenant, &form).await {
            Ok(_) => {
                top.notice = Some("ConnectWise keys verified and saved.".into());
                false
            }
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                true
            }
        };
        let mut status = setup_flow::connectwise_status(&state, &tenant).await?;
        if failed {
            // Nothing was saved; keep where and who the admin typed (never
            // a key) so that a second try needs only the fix.
            status.company_id = form.company_id.trim().to_owned();
            let typed = form.region.trim();
            status.region = crate::psa::connectwise::REGIONS
                .iter()
                .map(|(region, _)| *region)
                .find(|region| *region == typed)
                .unwrap_or(crate::psa::connectwise::ON_PREMISE);
            if status.region == crate::psa::connectwise::ON_PREMISE {
                status.site = form.site.trim().to_owned();
            }
        }
        Ok(connectwise_page(top, status))
    };
    finish(&state, r.await)
}

async fn connectwise_callback(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "ConnectWise", &t).of(&tenant);
        match setup_flow::register_callback(&state, &mut tenant).await {
            Ok(registration) => top.notice = Some(registration.summary),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        let status = setup_flow::connectwise_status(&state, &tenant).await?;
        Ok(connectwise_page(top, status))
    };
    finish(&state, r.await)
}

// ---- mappings -------------------------------------------------------------

fn mappings_view_page(mut top: Top, v: MappingsView) -> Response {
    top.psa = v.psa;
    let status = status_of(&top);
    let sections = sections(&v);
    let options = board_options(&v);
    let note = match (v.psa, v.board_shown) {
        (Psa::Autotask, _) => String::new(),
        (Psa::ConnectWise, None) => {
            "ConnectWise lists no active service board; add one in ConnectWise first.".into()
        }
        (Psa::ConnectWise, Some(shown)) if v.queue_id == Some(shown) => {
            "The status tables below offer this board's statuses; tickets from Zendesk go to it."
                .into()
        }
        (Psa::ConnectWise, Some(_)) => {
            "The status tables below offer this board's statuses; saving makes it the board \
             tickets from Zendesk go to."
                .into()
        }
    };
    render(
        status,
        &MappingsPage::with(
            top,
            sections,
            v.notes,
            v.notes_missing,
            v.organizations_unavailable,
            BoardPicker {
                options,
                shown: v.board_shown,
                note,
            },
        ),
    )
}

#[derive(Deserialize)]
struct BoardQuery {
    /// The ConnectWise board whose statuses to show.
    #[serde(default)]
    board: Option<String>,
}

fn board_of(q: &BoardQuery) -> Result<Option<i64>, AdminError> {
    match q.board.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| AdminError::Invalid(format!("{raw:?} is not a service board id"))),
    }
}

async fn mappings_page(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Query(q): Query<BoardQuery>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let live = mappings::live_for(&state, &tenant, board_of(&q)?).await?;
        Ok(mappings_view_page(
            top(&state, &user, "Mappings", &t),
            mappings::view(&tenant, &live),
        ))
    };
    finish(&state, r.await)
}

async fn mappings_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Mappings", &t);
        let update = parse_mappings_form(&fields);
        // ConnectWise: the statuses to validate against are the posted board's.
        let board = match (&update, tenant.onboarding.value.psa) {
            (Ok(u), Psa::ConnectWise) => u.queue_id,
            _ => None,
        };
        let live = mappings::live_for(&state, &tenant, board).await?;
        let saved = match update {
            Ok(update) => mappings::save(&state, &mut tenant, &live, &update).await,
            Err(e) => Err(e),
        };
        match saved {
            Ok(_) => top.notice = Some("Mappings saved.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        Ok(mappings_view_page(top, mappings::view(&tenant, &live)))
    };
    finish(&state, r.await)
}

// ---- operating ------------------------------------------------------------

struct LogRow {
    at: String,
    level: bridge::repo::LogLevel,
    ticket: String,
    step: String,
    message: String,
}

impl LogRow {
    fn level_name(&self) -> &'static str {
        match self.level {
            bridge::repo::LogLevel::Info => "info",
            bridge::repo::LogLevel::Error => "error",
        }
    }
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    level: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

async fn log(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Sync log", &t).of(&tenant);
        let time = |raw: &str, top: &mut Top| match raw.trim() {
            "" => None,
            raw => match chrono::DateTime::parse_from_rfc3339(raw) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => {
                    top.error = Some(format!("{raw:?} is not a time like 2025-01-31T08:00:00Z"));
                    None
                }
            },
        };
        let filter = LogFilter {
            level: Some(q.level.clone()),
            ticket: Some(q.ticket.clone()),
            since: time(&q.since, &mut top),
            until: time(&q.until, &mut top),
            limit: None,
        };
        let entries = tenants::log(&state, &tenant.id, &filter)
            .await?
            .into_iter()
            .map(|e| LogRow {
                at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                level: e.level,
                ticket: e.ticket.unwrap_or_default(),
                step: e.step,
                message: e.message,
            })
            .collect();
        let status = status_of(&top);
        Ok(render(
            status,
            &LogPage::with(top, entries, q.level, q.ticket, q.since, q.until),
        ))
    };
    finish(&state, r.await)
}

async fn show_dead_letters(
    state: &AdminState,
    tenant: &Tenant,
    mut top: Top,
) -> Result<Response, AdminError> {
    let letters = match tenants::dead_letters(state, &tenant.id).await {
        Ok(l) => l,
        Err(e) => {
            (top.error, top.failures) = inline(e)?;
            Vec::new()
        }
    };
    let status = status_of(&top);
    Ok(render(
        status,
        &DeadLettersPage::with(top.of(tenant), letters),
    ))
}

async fn dead_letters(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        show_dead_letters(&state, &tenant, top(&state, &user, "Dead letters", &t)).await
    };
    finish(&state, r.await)
}

async fn replay(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path((t, id)): Path<(String, String)>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Dead letters", &t);
        match tenants::replay(&state, &tenant.id, &id).await {
            Ok(()) => top.notice = Some("Replayed: the job is back on the queue.".into()),
            Err(e) => (top.error, top.failures) = inline(e)?,
        }
        show_dead_letters(&state, &tenant, top).await
    };
    finish(&state, r.await)
}

/// The ConnectWise callback on the webhooks page.
struct CallbackRow {
    url: String,
    state: String,
}

/// What the console registered itself, and the manual steps otherwise.
struct RegistrationRow {
    zendesk_state: String,
    zendesk_url: String,
    zendesk_steps: &'static str,
    /// Autotask tenants only: the state of the Ticket and TicketNote
    /// webhooks, their URL and the manual steps.
    autotask: Option<AutotaskRegistrationRow>,
}

struct AutotaskRegistrationRow {
    state: String,
    url: String,
    steps: &'static str,
}

struct HookRow {
    kind: &'static str,
    title: &'static str,
    url: String,
    secret: String,
    pasted: bool,
}

async fn show_webhooks(
    state: &AdminState,
    tenant: &Tenant,
    mut top: Top,
    rotated: Option<Rotated>,
) -> Result<Response, AdminError> {
    let hooks = match tenants::hook_status(state, tenant).await {
        Ok(rows) => rows
            .into_iter()
            .map(|(kind, url, secret)| HookRow {
                kind: match kind {
                    HookKind::ZendeskWebhook => "zendesk_webhook",
                    HookKind::AutotaskWebhook => "autotask_webhook",
                    HookKind::AutotaskCallout => "autotask_callout",
                },
                title: match kind {
                    HookKind::ZendeskWebhook => "Zendesk webhook signing secret",
                    HookKind::AutotaskWebhook => "Autotask webhook secret key",
                    HookKind::AutotaskCallout => "Autotask extension callout password",
                },
                url,
                secret,
                pasted: kind == HookKind::ZendeskWebhook,
            })
            .collect(),
        Err(e) => {
            (top.error, top.failures) = inline(e)?;
            Vec::new()
        }
    };
    let callback = (tenant.onboarding.value.psa == Psa::ConnectWise).then(|| {
        let url = tenants::connectwise_callback_url(state, &tenant.id);
        let state = match &tenant.onboarding.value.callback {
            Some(r) if r.url == url => {
                format!("{} ({})", r.summary, r.at.format("%Y-%m-%d %H:%M UTC"))
            }
            Some(_) => "registered for another address; register again".to_owned(),
            None => "not registered yet".to_owned(),
        };
        CallbackRow { url, state }
    });
    let zendesk_url = tenants::hook_url(state, &tenant.id, HookKind::ZendeskWebhook);
    let zendesk_state = match &tenant.onboarding.value.zendesk_webhook {
        Some(r) if r.url == zendesk_url => {
            format!("{} ({})", r.summary, r.at.format("%Y-%m-%d %H:%M UTC"))
        }
        Some(_) => "registered for another address; register again".to_owned(),
        None => "not registered yet".to_owned(),
    };
    let autotask = (tenant.onboarding.value.psa == Psa::Autotask).then(|| {
        let url = tenants::hook_url(state, &tenant.id, HookKind::AutotaskWebhook);
        let state = match &tenant.onboarding.value.autotask_webhooks {
            Some(r) if r.url == url => {
                format!("{} ({})", r.summary, r.at.format("%Y-%m-%d %H:%M UTC"))
            }
            Some(_) => "registered for another address; register again".to_owned(),
            None => "not registered yet".to_owned(),
        };
        AutotaskRegistrationRow {
            state,
            url,
            steps: setup_flow::AUTOTASK_WEBHOOK_STEPS,
        }
    });
    let registration = RegistrationRow {
        zendesk_state,
        zendesk_url,
        zendesk_steps: setup_flow::ZENDESK_WEBHOOK_STEPS,
        autotask,
    };
    let status = status_of(&top);
    Ok(render(
        status,
        &WebhooksPage::with(top.of(tenant), hooks, rotated, callback, registration),
    ))
}

async fn register_webhooks(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Webhooks", &t);
        match setup_flow::register_webhooks(&state, &mut tenant).await {
            Ok(done) => {
                let said: Vec<String> = done
                    .zendesk
                    .iter()
                    .map(|r| r.summary.clone())
                    .chain(done.autotask.iter().map(|r| r.summary.clone()))
                    .chain(done.connectwise_callback.iter().map(|r| r.summary.clone()))
                    .collect();
                top.notice = Some(said.join(" "));
            }
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                top.error.get_or_insert_with(|| {
                    "The console could not register every webhook; the manual steps below \
                     still work."
                        .to_owned()
                });
            }
        }
        show_webhooks(&state, &tenant, top, None).await
    };
    finish(&state, r.await)
}

async fn webhooks(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        show_webhooks(&state, &tenant, top(&state, &user, "Webhooks", &t), None).await
    };
    finish(&state, r.await)
}

#[derive(Deserialize)]
struct RotateForm {
    kind: String,
    #[serde(default)]
    secret: Option<String>,
}

async fn rotate(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Form(form): Form<RotateForm>,
) -> Response {
    let r = async {
        let mut tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Webhooks", &t);
        let kind = HookKind::parse(&form.kind)
            .ok_or_else(|| AdminError::Invalid("unknown webhook".into()));
        let rotated = match kind {
            Ok(kind) => tenants::rotate(&state, &mut tenant, kind, form.secret.as_deref()).await,
            Err(e) => Err(e),
        };
        let rotated = match rotated {
            Ok(r) => Some(r),
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                None
            }
        };
        show_webhooks(&state, &tenant, top, rotated).await
    };
    finish(&state, r.await)
}

// ---- asset sync -----------------------------------------------------------

async fn show_assets(
    state: &AdminState,
    tenant: &Tenant,
    top: Top,
    check: Option<SetupCheck>,
    done: Option<RunDone>,
) -> Result<Response, AdminError> {
    let view = assets::view(state, tenant).await?;
    let status = status_of(&top);
    Ok(render(
        status,
        &AssetsPage::with(top.of(tenant), view, check, done),
    ))
}

async fn assets_page(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        show_assets(
            &state,
            &tenant,
            top(&state, &user, "Assets", &t),
            None,
            None,
        )
        .await
    };
    finish(&state, r.await)
}

async fn assets_check(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Assets", &t);
        let check = match assets::check(&state, &tenant).await {
            Ok(check) => {
                if check.ready {
                    top.notice = Some(
                        "The PSA has everything the asset settings name: a run can go.".into(),
                    );
                }
                Some(check)
            }
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                None
            }
        };
        show_assets(&state, &tenant, top, check, None).await
    };
    finish(&state, r.await)
}

async fn assets_sync(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> Response {
    let r = async {
        let tenant = tenants::open(&state, &user, &t).await?;
        let mut top = top(&state, &user, "Assets", &t);
        let done = match assets::sync(&state, &tenant).await {
            Ok(done) => {
                top.notice = Some(format!("Asset sync: {}", done.message));
                Some(done)
            }
            Err(e) => {
                (top.error, top.failures) = inline(e)?;
                if !top.failures.is_empty() {
                    top.error = Some("Asset sync did not run, nothing was written.".into());
                }
                None
            }
        };
        show_assets(&state, &tenant, top, None, done).await
    };
    finish(&state, r.await)
}
