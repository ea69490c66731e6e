//! The mapping screens from live values: queue (Autotask) or service board
//! (ConnectWise), status and priority tables both ways, public note
//! visibilities (Autotask), company associations and the default company.
//! Every row carries the stored value (flagged when the PSA no longer has
//! it, never dropped) and a suggestion by name.
//!
//! ConnectWise's statuses belong to a board, so its status tables are read
//! and validated against one board's statuses: the board being shown, which
//! is the one a save makes the board for new tickets. The forward table
//! edited for a board is the board's own (`connectwise.status_by_board`)
//! when it has one, else the shared `mappings.status`, as the sync reads it.

use std::collections::BTreeMap;

use bridge::config::{DeskPriority, DeskStatus, FieldValue, TenantConfig};
use bridge::model::PicklistValue;
use bridge::setup::{NamedId, PsaChoices};
use serde::{Deserialize, Serialize};

use crate::credentials;
use crate::error::{AdminError, CheckView};
use crate::onboarding::Tenant;
use crate::psa::Psa;
use crate::setup_flow::require_checklist;
use crate::suggest::{suggest, suggest_desk_value, suggest_name};
use crate::web::AdminState;

/// Zendesk's ticket statuses, as the forward table is keyed.
pub const DESK_STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
pub const DESK_PRIORITIES: [&str; 4] = ["urgent", "high", "normal", "low"];
/// What the reverse tables may name (Zendesk never takes "new" back).
pub const DESK_STATUSES_SETTABLE: [&str; 5] = ["open", "pending", "hold", "solved", "closed"];

/// Desk value → PSA value.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardRow {
    pub zendesk: &'static str,
    /// The stored PSA label, if any.
    pub current: Option<String>,
    pub current_value: Option<i64>,
    /// The stored label is not among the PSA's active values.
    pub missing: bool,
    pub suggestion: Option<i64>,
}

/// PSA value → desk value.
#[derive(Debug, Clone, Serialize)]
pub struct ReverseRow {
    /// `None` when the stored label is no longer in the PSA.
    pub psa_value: Option<i64>,
    pub psa_label: String,
    pub current: Option<String>,
    pub missing: bool,
    pub suggestion: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoteRow {
    pub value: i64,
    pub label: String,
    pub public: bool,
    pub internal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompanyRow {
    pub org_id: i64,
    pub org_name: String,
    pub current: Option<i64>,
    pub missing: bool,
    pub suggestion: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MappingsView {
    pub psa: Psa,
    /// Autotask's queues, or ConnectWise's service boards.
    pub queues: Vec<PicklistValue>,
    /// The stored queue or board for new tickets.
    pub queue_id: Option<i64>,
    pub queue_missing: bool,
    /// ConnectWise: the board whose statuses the status rows offer (saving
    /// makes it the board for new tickets).
    pub board_shown: Option<i64>,
    pub statuses: Vec<PicklistValue>,
    pub priorities: Vec<PicklistValue>,
    pub status: Vec<ForwardRow>,
    pub priority: Vec<ForwardRow>,
    pub status_to_desk: Vec<ReverseRow>,
    pub priority_to_desk: Vec<ReverseRow>,
    pub notes: Vec<NoteRow>,
    /// Stored public/internal values the PSA no longer has.
    pub notes_missing: Vec<String>,
    pub companies: Vec<Named>,
    pub associations: Vec<CompanyRow>,
    pub default_company_id: Option<i64>,
    pub default_company_missing: bool,
    /// Why organizations could not be read (Zendesk not connected...).
    pub organizations_unavailable: Option<String>,
}

fn active(values: &[PicklistValue]) -> impl Iterator<Item = &PicklistValue> {
    values.iter().filter(|v| v.is_active)
}

fn by_label<'a>(values: &'a [PicklistValue], label: &str) -> Option<&'a PicklistValue> {
    active(values).find(|v| v.label == label)
}

fn field_value_in(values: &[PicklistValue], fv: &FieldValue) -> Option<i64> {
    match fv {
        FieldValue::Number(n) => active(values).find(|v| v.value == *n).map(|v| v.value),
        FieldValue::Text(t) => by_label(values, t).map(|v| v.value),
    }
}

fn forward(
    keys: &[&'static str],
    table: &BTreeMap<String, String>,
    live: &[PicklistValue],
) -> Vec<ForwardRow> {
    keys.iter()
        .map(|zendesk| {
            let current = table.get(*zendesk).cloned();
            let found = current.as_deref().and_then(|c| by_label(live, c));
            ForwardRow {
                zendesk,
                missing: current.is_some() && found.is_none(),
                current_value: found.map(|v| v.value),
                current,
                suggestion: suggest(zendesk, live),
            }
        })
        .collect()
}

fn reverse(
    table: &BTreeMap<String, String>,
    live: &[PicklistValue],
    desk: &[&'static str],
) -> Vec<ReverseRow> {
    let mut rows: Vec<ReverseRow> = active(live)
        .map(|v| ReverseRow {
            psa_value: Some(v.value),
            psa_label: v.label.clone(),
            current: table.get(&v.label).cloned(),
            missing: false,
            suggestion: suggest_desk_value(&v.label, desk).map(|i| desk[i]),
        })
        .collect();
    for (label, value) in table {
        if by_label(live, label).is_none() {
            rows.push(ReverseRow {
                psa_value: None,
                psa_label: label.clone(),
                current: Some(value.clone()),
                missing: true,
                suggestion: None,
            });
        }
    }
    rows
}

fn as_strings<T: Serialize>(table: &BTreeMap<String, T>) -> BTreeMap<String, String> {
    table
        .iter()
        .filter_map(|(k, v)| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => Some((k.clone(), s)),
            _ => None,
        })
        .collect()
}

/// The live values the screens choose from.
pub struct Live {
    pub choices: PsaChoices,
    pub companies: Vec<NamedId>,
    pub organizations: Result<Vec<NamedId>, String>,
    /// ConnectWise: the board `choices.statuses` belong to (none when the
    /// PSA has no active board).
    pub board: Option<i64>,
}

/// The live values with the stored board (ConnectWise).
pub async fn live(state: &AdminState, tenant: &Tenant) -> Result<Live, AdminError> {
    live_for(state, tenant, None).await
}

/// The live values; for ConnectWise with the statuses of `board` (an
/// active board), else of the stored board, else of the first active one.
pub async fn live_for(
    state: &AdminState,
    tenant: &Tenant,
    board: Option<i64>,
) -> Result<Live, AdminError> {
    let setup = state.ports().setup()?;
    let creds = credentials::load(state, &tenant.id).await?;
    let config = &tenant.config.value;
    let failed = |f: bridge::setup::CheckFailure| AdminError::ChecksFailed(vec![f.into()]);
    let (choices, companies, board) = match tenant.onboarding.value.psa {
        Psa::Autotask => {
            let access = creds.autotask_access(config).ok_or_else(|| {
                AdminError::Invalid("enter and verify the Autotask credentials first".into())
            })?;
            let choices = setup.autotask_choices(&access).await.map_err(failed)?;
            let companies = setup.autotask_companies(&access).await.map_err(failed)?;
            (choices, companies, None)
        }
        Psa::ConnectWise => {
            let access = creds.connectwise_access(config).ok_or_else(|| {
                AdminError::Invalid("enter and verify the ConnectWise API keys first".into())
            })?;
            let boards = setup.connectwise_boards(&access).await.map_err(failed)?;
            let active = |id: i64| boards.iter().any(|b| b.id == id);
            if let Some(wanted) = board.filter(|b| !active(*b)) {
                return Err(AdminError::Invalid(format!(
                    "service board {wanted} is not an active board in ConnectWise"
                )));
            }
            let stored = config.connectwise.as_ref().and_then(|cw| cw.board_id);
            let shown = board
                .or(stored.filter(|b| active(*b)))
                .or(boards.first().map(|b| b.id));
            let choices = match shown {
                Some(b) => setup
                    .connectwise_board_choices(&access, b)
                    .await
                    .map_err(failed)?,
                None => PsaChoices::default(),
            };
            let companies = setup.connectwise_companies(&access).await.map_err(failed)?;
            (choices, companies, shown)
        }
    };
    let organizations = match creds.zendesk_access(config) {
        None => Err("connect Zendesk to associate organizations".to_owned()),
        Some(z) => setup
            .zendesk_organizations(&z)
            .await
            .map_err(|f| f.to_string()),
    };
    Ok(Live {
        choices,
        companies,
        organizations,
        board,
    })
}

/// What the view and a save read and write per PSA: the queue or board,
/// the default company and the associations the sync reads.
struct PsaSide {
    queue_id: Option<i64>,
    default_company_id: Option<i64>,
}

fn psa_side(config: &TenantConfig) -> PsaSide {
    match &config.connectwise {
        Some(cw) => PsaSide {
            queue_id: cw.board_id,
            default_company_id: cw.default_company_id,
        },
        None => PsaSide {
            queue_id: config.autotask.queue_id,
            default_company_id: config.autotask.default_company_id,
        },
    }
}

/// The forward status table that applies on `board` (ConnectWise), as the
/// sync reads it; Autotask's one table otherwise.
fn status_table(config: &TenantConfig, board: Option<i64>) -> &BTreeMap<String, String> {
    config.status_table(board)
}

/// The status names the sync needs on a ConnectWise board: its forward
/// table's values and the status new tickets are created with.
pub fn status_names_for_board(config: &TenantConfig, board: i64) -> Vec<String> {
    let mut names: Vec<String> = status_table(config, Some(board))
        .values()
        .cloned()
        .collect();
    names.push(config.mappings.initial_status.clone());
    names
}

pub fn view(tenant: &Tenant, live: &Live) -> MappingsView {
    let config = &tenant.config.value;
    let psa = tenant.onboarding.value.psa;
    let c = &live.choices;
    let m = &config.mappings;
    let at = &config.autotask;
    let side = psa_side(config);
    // ConnectWise marks notes with flags; it has no visibilities to choose.
    let has_notes = psa == Psa::Autotask;
    let public: Vec<Option<i64>> = at
        .public_note_publish
        .iter()
        .map(|fv| field_value_in(&c.note_publish, fv))
        .collect();
    let internal = field_value_in(&c.note_publish, &at.internal_note_publish);
    let mut notes_missing: Vec<String> = at
        .public_note_publish
        .iter()
        .zip(&public)
        .filter(|(_, found)| found.is_none() && has_notes)
        .map(|(fv, _)| fv.to_string())
        .collect();
    if internal.is_none() && has_notes {
        notes_missing.push(at.internal_note_publish.to_string());
    }
    let company_ids: Vec<i64> = live.companies.iter().map(|c| c.id).collect();
    let company_names: Vec<&str> = live.companies.iter().map(|c| c.name.as_str()).collect();
    let stored = &tenant.onboarding.value.companies;
    let (associations, organizations_unavailable) = match &live.organizations {
        Ok(orgs) => (
            orgs.iter()
                .map(|org| {
                    let current = stored.get(&org.id.to_string()).copied();
                    CompanyRow {
                        org_id: org.id,
                        org_name: org.name.clone(),
                        missing: current.is_some_and(|id| !company_ids.contains(&id)),
                        current,
                        suggestion: suggest_name(&org.name, &company_names)
                            .map(|i| live.companies[i].id),
                    }
                })
                .collect(),
            None,
        ),
        Err(why) => (Vec::new(), Some(why.clone())),
    };
    MappingsView {
        psa,
        queues: active(&c.queues).cloned().collect(),
        queue_id: side.queue_id,
        queue_missing: side
            .queue_id
            .is_some_and(|q| !active(&c.queues).any(|v| v.value == q)),
        board_shown: live.board,
        statuses: active(&c.statuses).cloned().collect(),
        priorities: active(&c.priorities).cloned().collect(),
        status: forward(
            &DESK_STATUSES,
            status_table(config, live.board),
            &c.statuses,
        ),
        priority: forward(&DESK_PRIORITIES, &m.priority, &c.priorities),
        status_to_desk: reverse(
            &as_strings(&m.status_to_desk),
            &c.statuses,
            &DESK_STATUSES_SETTABLE,
        ),
        priority_to_desk: reverse(
            &as_strings(&m.priority_to_desk),
            &c.priorities,
            &DESK_PRIORITIES,
        ),
        notes: active(&c.note_publish)
            .map(|v| NoteRow {
                value: v.value,
                label: v.label.clone(),
                public: public.contains(&Some(v.value)),
                internal: internal == Some(v.value),
            })
            .collect(),
        notes_missing,
        companies: live
            .companies
            .iter()
            .map(|c| Named {
                id: c.id,
                name: c.name.clone(),
            })
            .collect(),
        associations,
        default_company_id: side.default_company_id,
        default_company_missing: side
            .default_company_id
            .is_some_and(|id| !company_ids.contains(&id)),
        organizations_unavailable,
    }
}

/// A save of the mapping screens. Absent entries keep their stored value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MappingsUpdate {
    #[serde(default)]
    pub queue_id: Option<i64>,
    /// Zendesk status → PSA status value.
    #[serde(default)]
    pub status: BTreeMap<String, i64>,
    #[serde(default)]
    pub priority: BTreeMap<String, i64>,
    /// PSA status value → Zendesk status.
    #[serde(default)]
    pub status_to_desk: BTreeMap<i64, String>,
    #[serde(default)]
    pub priority_to_desk: BTreeMap<i64, String>,
    /// The note publish values that become public comments (replaces).
    #[serde(default)]
    pub public_note_publish: Option<Vec<i64>>,
    #[serde(default)]
    pub internal_note_publish: Option<i64>,
    #[serde(default)]
    pub default_company_id: Option<i64>,
    /// Zendesk organization id → PSA company id.
    #[serde(default)]
    pub companies: BTreeMap<i64, i64>,
}

fn label_of(
    psa: Psa,
    values: &[PicklistValue],
    value: i64,
    what: &str,
) -> Result<String, AdminError> {
    active(values)
        .find(|v| v.value == value)
        .map(|v| v.label.clone())
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "{what} {value} is not an active value in {}",
                psa.short_name()
            ))
        })
}

fn desk<T: for<'de> Deserialize<'de>>(raw: &str, what: &str) -> Result<T, AdminError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|_| {
        AdminError::Invalid(format!(
            "{raw:?} is not a Zendesk {what} the bridge can set"
        ))
    })
}

/// Validates a save against the live values and stores it. For
/// ConnectWise, `live` must hold the statuses of the board being saved
/// (`req.queue_id`, else the stored board): see [`live_for`].
pub async fn save(
    state: &AdminState,
    tenant: &mut Tenant,
    live: &Live,
    req: &MappingsUpdate,
) -> Result<MappingsView, AdminError> {
    require_checklist(tenant)?;
    let psa = tenant.onboarding.value.psa;
    let c = &live.choices;
    let mut config = tenant.config.value.clone();
    let label_of =
        |values: &[PicklistValue], value: i64, what: &str| label_of(psa, values, value, what);
    if psa == Psa::ConnectWise {
        let notes_given = req.internal_note_publish.is_some()
            || req
                .public_note_publish
                .as_ref()
                .is_some_and(|p| !p.is_empty());
        if notes_given {
            return Err(AdminError::Invalid(
                "ConnectWise has no note visibilities: a Discussion note is public, every \
                 other note internal"
                    .into(),
            ));
        }
        let board = req.queue_id.or(psa_side(&config).queue_id);
        let touches_statuses = !req.status.is_empty() || !req.status_to_desk.is_empty();
        if board.is_none() && touches_statuses {
            return Err(AdminError::Invalid(
                "statuses belong to a service board in ConnectWise: send the board as queue_id \
                 with them"
                    .into(),
            ));
        }
        if board != live.board && (req.queue_id.is_some() || touches_statuses) {
            // A caller bug, not the admin's: the statuses were read for another board.
            return Err(AdminError::Invalid(
                "the statuses were read for another service board; reload and try again".into(),
            ));
        }
    }
    if let Some(q) = req.queue_id {
        label_of(&c.queues, q, "queue")?;
        match config.connectwise.as_mut() {
            Some(cw) => cw.board_id = Some(q),
            None => config.autotask.queue_id = Some(q),
        }
    }
    // The forward status table the sync reads for this board.
    let status_target = match (config.connectwise.as_mut(), live.board) {
        (Some(cw), Some(board)) if cw.status_by_board.contains_key(&board) => cw
            .status_by_board
            .get_mut(&board)
            .expect("checked just above"),
        _ => &mut config.mappings.status,
    };
    for (zendesk, value) in &req.status {
        if !DESK_STATUSES.contains(&zendesk.as_str()) {
            return Err(AdminError::Invalid(format!(
                "{zendesk:?} is not a Zendesk value"
            )));
        }
        status_target.insert(zendesk.clone(), label_of(&c.statuses, *value, "status")?);
    }
    for (zendesk, value) in &req.priority {
        if !DESK_PRIORITIES.contains(&zendesk.as_str()) {
            return Err(AdminError::Invalid(format!(
                "{zendesk:?} is not a Zendesk value"
            )));
        }
        config.mappings.priority.insert(
            zendesk.clone(),
            label_of(&c.priorities, *value, "priority")?,
        );
    }
    for (value, zendesk) in &req.status_to_desk {
        let status: DeskStatus = desk(zendesk, "status")?;
        config
            .mappings
            .status_to_desk
            .insert(label_of(&c.statuses, *value, "status")?, status);
    }
    for (value, zendesk) in &req.priority_to_desk {
        let priority: DeskPriority = desk(zendesk, "priority")?;
        config
            .mappings
            .priority_to_desk
            .insert(label_of(&c.priorities, *value, "priority")?, priority);
    }
    if psa == Psa::Autotask {
        if let Some(public) = &req.public_note_publish {
            config.autotask.public_note_publish = public
                .iter()
                .map(|v| label_of(&c.note_publish, *v, "note visibility").map(FieldValue::Text))
                .collect::<Result<_, _>>()?;
        }
        if let Some(internal) = req.internal_note_publish {
            config.autotask.internal_note_publish =
                FieldValue::Text(label_of(&c.note_publish, internal, "note visibility")?);
        }
    }
    let company_known = |id: i64| live.companies.iter().any(|c| c.id == id);
    if let Some(id) = req.default_company_id {
        if !company_known(id) {
            return Err(AdminError::Invalid(format!(
                "company {id} is not in {}",
                psa.short_name()
            )));
        }
        match config.connectwise.as_mut() {
            Some(cw) => cw.default_company_id = Some(id),
            None => config.autotask.default_company_id = Some(id),
        }
    }
    let mut companies = tenant.onboarding.value.companies.clone();
    for (org, company) in &req.companies {
        let org_known = live
            .organizations
            .as_ref()
            .is_ok_and(|orgs| orgs.iter().any(|o| o.id == *org));
        if !org_known || !company_known(*company) {
            return Err(AdminError::Invalid(format!(
                "organization {org} or company {company} does not exist"
            )));
        }
        companies.insert(org.to_string(), *company);
    }
    // What the sync reads: tickets of an organization go to its company when
    // their cluster id matches no configuration item.
    let by_organization: BTreeMap<u64, i64> = companies
        .iter()
        .filter_map(|(org, company)| Some((org.parse().ok()?, *company)))
        .collect();
    match config.connectwise.as_mut() {
        Some(cw) => cw.companies_by_organization = by_organization,
        None => config.autotask.companies_by_organization = by_organization,
    }
    let store = state.accounts().store();
    tenant.config.value = config;
    tenant.save_config(store).await?;
    tenant.onboarding.value.companies = companies;
    tenant.onboarding.value.mappings_saved_at = Some(state.accounts().now());
    tenant.save_onboarding(store).await?;
    tracing::info!(tenant = %tenant.id, "mappings saved");
    Ok(view(tenant, live))
}

fn problem(check: String, fix: &str) -> CheckView {
    CheckView {
        check,
        fix: fix.into(),
        retryable: false,
    }
}

/// What keeps the mappings from working with the PSA's values today. For
/// ConnectWise, `c` holds the statuses of the board for new tickets.
pub fn problems(config: &TenantConfig, c: &PsaChoices) -> Vec<CheckView> {
    if config.connectwise.is_some() {
        return problems_connectwise(config, c);
    }
    let mut out = Vec::new();
    let m = &config.mappings;
    match config.autotask.queue_id {
        None => out.push(problem("Queue".into(), "pick the queue under Mappings")),
        Some(q) if !active(&c.queues).any(|v| v.value == q) => out.push(problem(
            format!("Queue {q}"),
            "it is no longer an active queue in Autotask; pick another",
        )),
        Some(_) => {}
    }
    for (keys, table, values, what) in [
        (&DESK_STATUSES[..], &m.status, &c.statuses, "status"),
        (&DESK_PRIORITIES[..], &m.priority, &c.priorities, "priority"),
    ] {
        for key in keys {
            match table.get(*key) {
                None => out.push(problem(
                    format!("Zendesk {what} \"{key}\""),
                    "map it to an Autotask value under Mappings",
                )),
                Some(label) if by_label(values, label).is_none() => out.push(problem(
                    format!("Zendesk {what} \"{key}\" → \"{label}\""),
                    "that Autotask value no longer exists; map another",
                )),
                Some(_) => {}
            }
        }
    }
    for label in m.status_to_desk.keys() {
        if by_label(&c.statuses, label).is_none() {
            out.push(problem(
                format!("Autotask status \"{label}\""),
                "no longer exists; remap it",
            ));
        }
    }
    for label in m.priority_to_desk.keys() {
        if by_label(&c.priorities, label).is_none() {
            out.push(problem(
                format!("Autotask priority \"{label}\""),
                "no longer exists; remap it",
            ));
        }
    }
    if by_label(&c.statuses, &m.initial_status).is_none() {
        out.push(problem(
            format!("Initial status \"{}\"", m.initial_status),
            "new Autotask tickets need it; add the status in Autotask",
        ));
    }
    let at = &config.autotask;
    for fv in at
        .public_note_publish
        .iter()
        .chain([&at.internal_note_publish])
    {
        if field_value_in(&c.note_publish, fv).is_none() {
            out.push(problem(
                format!("Note visibility {fv}"),
                "no longer exists in Autotask; choose again under Mappings",
            ));
        }
    }
    out
}

/// ConnectWise's: whether the board's status names exist is the board
/// check's (`connectwise_board_checks`), which knows the board; this checks
/// what is left: every Zendesk value mapped, and the priorities, which are
/// global.
fn problems_connectwise(config: &TenantConfig, c: &PsaChoices) -> Vec<CheckView> {
    let mut out = Vec::new();
    let m = &config.mappings;
    let board = psa_side(config).queue_id;
    if board.is_none() {
        out.push(problem(
            "Service board".into(),
            "pick the ConnectWise service board under Mappings",
        ));
    }
    let statuses = status_table(config, board);
    for key in DESK_STATUSES {
        if !statuses.contains_key(key) {
            out.push(problem(
                format!("Zendesk status \"{key}\""),
                "map it to a status of the service board under Mappings",
            ));
        }
    }
    for key in DESK_PRIORITIES {
        match m.priority.get(key) {
            None => out.push(problem(
                format!("Zendesk priority \"{key}\""),
                "map it to a ConnectWise priority under Mappings",
            )),
            Some(label) if by_label(&c.priorities, label).is_none() => out.push(problem(
                format!("Zendesk priority \"{key}\" → \"{label}\""),
                "that ConnectWise priority no longer exists; map another",
            )),
            Some(_) => {}
        }
    }
    for label in m.priority_to_desk.keys() {
        if by_label(&c.priorities, label).is_none() {
            out.push(problem(
                format!("ConnectWise priority \"{label}\""),
                "no longer exists; remap it under Mappings",
            ));
        }
    }
    out
}
