//! The mapping screens from live values: queue, status and priority tables
//! both ways, public note visibilities, company associations and the
//! default company. Every row carries the stored value (flagged when the
//! PSA no longer has it, never dropped) and a suggestion by name.

use std::collections::BTreeMap;

use bridge::config::{DeskPriority, DeskStatus, FieldValue, TenantConfig};
use bridge::model::PicklistValue;
use bridge::setup::{NamedId, PsaChoices};
use serde::{Deserialize, Serialize};

use crate::credentials;
use crate::error::{AdminError, CheckView};
use crate::onboarding::Tenant;
use crate::setup_flow::require_checklist;
use crate::suggest::{suggest, suggest_name};
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
    pub queues: Vec<PicklistValue>,
    pub queue_id: Option<i64>,
    pub queue_missing: bool,
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
            suggestion: suggest_name(&v.label, desk).map(|i| desk[i]),
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
}

pub async fn live(state: &AdminState, tenant: &Tenant) -> Result<Live, AdminError> {
    let setup = state.ports().setup()?;
    let creds = credentials::load(state, &tenant.id).await?;
    let config = &tenant.config.value;
    let access = creds.autotask_access(config).ok_or_else(|| {
        AdminError::Invalid("enter and verify the Autotask credentials first".into())
    })?;
    let failed = |f: bridge::setup::CheckFailure| AdminError::ChecksFailed(vec![f.into()]);
    let choices = setup.autotask_choices(&access).await.map_err(failed)?;
    let companies = setup.autotask_companies(&access).await.map_err(failed)?;
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
    })
}

pub fn view(tenant: &Tenant, live: &Live) -> MappingsView {
    let config = &tenant.config.value;
    let c = &live.choices;
    let m = &config.mappings;
    let at = &config.autotask;
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
        .filter(|(_, found)| found.is_none())
        .map(|(fv, _)| fv.to_string())
        .collect();
    if internal.is_none() {
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
        queues: active(&c.queues).cloned().collect(),
        queue_id: at.queue_id,
        queue_missing: at
            .queue_id
            .is_some_and(|q| !active(&c.queues).any(|v| v.value == q)),
        statuses: active(&c.statuses).cloned().collect(),
        priorities: active(&c.priorities).cloned().collect(),
        status: forward(&DESK_STATUSES, &m.status, &c.statuses),
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
        default_company_id: at.default_company_id,
        default_company_missing: at
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

fn label_of(values: &[PicklistValue], value: i64, what: &str) -> Result<String, AdminError> {
    active(values)
        .find(|v| v.value == value)
        .map(|v| v.label.clone())
        .ok_or_else(|| {
            AdminError::Invalid(format!("{what} {value} is not an active value in Autotask"))
        })
}

fn desk<T: for<'de> Deserialize<'de>>(raw: &str, what: &str) -> Result<T, AdminError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|_| {
        AdminError::Invalid(format!(
            "{raw:?} is not a Zendesk {what} the bridge can set"
        ))
    })
}

/// Validates a save against the live values and stores it.
pub async fn save(
    state: &AdminState,
    tenant: &mut Tenant,
    live: &Live,
    req: &MappingsUpdate,
) -> Result<MappingsView, AdminError> {
    require_checklist(tenant)?;
    let c = &live.choices;
    let mut config = tenant.config.value.clone();
    if let Some(q) = req.queue_id {
        label_of(&c.queues, q, "queue")?;
        config.autotask.queue_id = Some(q);
    }
    for (table, values, keys, target) in [
        (
            &req.status,
            &c.statuses,
            &DESK_STATUSES[..],
            &mut config.mappings.status,
        ),
        (
            &req.priority,
            &c.priorities,
            &DESK_PRIORITIES[..],
            &mut config.mappings.priority,
        ),
    ] {
        for (zendesk, value) in table {
            if !keys.contains(&zendesk.as_str()) {
                return Err(AdminError::Invalid(format!(
                    "{zendesk:?} is not a Zendesk value"
                )));
            }
            target.insert(zendesk.clone(), label_of(values, *value, "value")?);
        }
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
    let company_known = |id: i64| live.companies.iter().any(|c| c.id == id);
    if let Some(id) = req.default_company_id {
        if !company_known(id) {
            return Err(AdminError::Invalid(format!(
                "company {id} is not in Autotask"
            )));
        }
        config.autotask.default_company_id = Some(id);
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
    config.autotask.companies_by_organization = companies
        .iter()
        .filter_map(|(org, company)| Some((org.parse().ok()?, *company)))
        .collect();
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

/// What keeps the mappings from working with the PSA's values today.
pub fn problems(config: &TenantConfig, c: &PsaChoices) -> Vec<CheckView> {
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
