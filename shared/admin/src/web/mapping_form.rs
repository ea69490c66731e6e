//! The mappings page's form: the select rows built from a `MappingsView`
//! (what is stored, what the PSA has now, suggestions) and the posted
//! fields read back into a `MappingsUpdate`. The handlers are in
//! `tenant_pages`.
//!
//! ConnectWise's board is not a row of the form: it is picked in a form of
//! its own (`GET ?board=`) that shows the page again with that board's
//! statuses, and the shown board travels with the save as `queue_id`.

use crate::error::AdminError;
use crate::mappings::{self, MappingsUpdate, MappingsView};
use crate::psa::Psa;

pub(super) struct Opt {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

pub(super) struct SelectRow {
    pub(super) name: String,
    pub(super) label: String,
    pub(super) note: String,
    pub(super) missing: bool,
    pub(super) options: Vec<Opt>,
}

pub(super) struct Section {
    pub(super) title: String,
    pub(super) rows: Vec<SelectRow>,
}

/// Options for a row: "keep" (stored value, or nothing) first, then the
/// live values; the suggestion is pre-selected when nothing is stored.
fn options(
    choices: &[(String, String)],
    current: Option<&str>,
    suggestion: Option<String>,
) -> Vec<Opt> {
    let preselect = match current {
        Some(c) => Some(c.to_owned()),
        None => suggestion,
    };
    let mut out = vec![Opt {
        value: String::new(),
        label: "(unchanged)".into(),
        selected: preselect.is_none(),
    }];
    out.extend(choices.iter().map(|(value, label)| Opt {
        selected: preselect.as_deref() == Some(value.as_str()),
        value: value.clone(),
        label: label.clone(),
    }));
    out
}

/// ConnectWise's board picker: the active boards, the shown one selected.
pub(super) fn board_options(v: &MappingsView) -> Vec<Opt> {
    if v.psa != Psa::ConnectWise {
        return Vec::new();
    }
    v.queues
        .iter()
        .map(|b| Opt {
            value: b.value.to_string(),
            label: b.label.clone(),
            selected: v.board_shown == Some(b.value),
        })
        .collect()
}

pub(super) fn sections(v: &MappingsView) -> Vec<Section> {
    let psa = v.psa.short_name();
    let connectwise = v.psa == Psa::ConnectWise;
    // A ConnectWise status missing from the shown board may well be one of
    // another board: say so rather than that it is gone.
    let gone = if connectwise {
        "is not an active status of this board".to_owned()
    } else {
        format!("no longer exists in {psa}")
    };
    let picks = |values: &[bridge::model::PicklistValue]| -> Vec<(String, String)> {
        values
            .iter()
            .map(|p| (p.value.to_string(), p.label.clone()))
            .collect()
    };
    let names = |list: &[&str]| -> Vec<(String, String)> {
        list.iter()
            .map(|s| (s.to_string(), s.to_string()))
            .collect()
    };
    let note = |current: &Option<String>, missing: bool, suggested: bool| match (current, missing) {
        (Some(c), true) => format!("stored \"{c}\" {gone}"),
        (Some(c), false) => format!("stored: {c}"),
        (None, _) if suggested => "suggested by name: confirm".into(),
        (None, _) => "not mapped".into(),
    };
    let forward = |rows: &[mappings::ForwardRow],
                   table: &str,
                   values: &[bridge::model::PicklistValue]|
     -> Vec<SelectRow> {
        rows.iter()
            .map(|r| SelectRow {
                name: format!("{table}.{}", r.zendesk),
                label: r.zendesk.to_owned(),
                note: note(&r.current, r.missing, r.suggestion.is_some()),
                missing: r.missing,
                options: options(
                    &picks(values),
                    r.current_value.map(|v| v.to_string()).as_deref(),
                    r.suggestion.map(|s| s.to_string()),
                ),
            })
            .collect()
    };
    let reverse = |rows: &[mappings::ReverseRow], table: &str, desk: &[&str]| -> Vec<SelectRow> {
        rows.iter()
            .filter_map(|r| {
                let value = r.psa_value?;
                Some(SelectRow {
                    name: format!("{table}.{value}"),
                    label: r.psa_label.clone(),
                    note: note(&r.current, false, r.suggestion.is_some()),
                    missing: false,
                    options: options(
                        &names(desk),
                        r.current.as_deref(),
                        r.suggestion.map(str::to_owned),
                    ),
                })
            })
            .chain(rows.iter().filter(|r| r.missing).map(|r| SelectRow {
                name: String::new(),
                label: r.psa_label.clone(),
                note: format!("stored for \"{}\", which {gone}", r.psa_label),
                missing: true,
                options: Vec::new(),
            }))
            .collect()
    };
    let companies: Vec<(String, String)> = v
        .companies
        .iter()
        .map(|c| (c.id.to_string(), c.name.clone()))
        .collect();
    let mut general = Vec::new();
    if !connectwise {
        general.push(SelectRow {
            name: "queue_id".into(),
            label: "Queue for new tickets".into(),
            note: if v.queue_missing {
                "the stored queue no longer exists".into()
            } else {
                String::new()
            },
            missing: v.queue_missing,
            options: options(
                &picks(&v.queues),
                v.queue_id.map(|q| q.to_string()).as_deref(),
                None,
            ),
        });
    } else if v.queue_missing {
        general.push(SelectRow {
            name: String::new(),
            label: "Service board for new tickets".into(),
            note: "the stored board is no longer an active board in ConnectWise; pick another \
                   above and save"
                .into(),
            missing: true,
            options: Vec::new(),
        });
    }
    general.push(SelectRow {
        name: "default_company_id".into(),
        label: "Default company".into(),
        note: if v.default_company_missing {
            "the stored company no longer exists".into()
        } else {
            String::new()
        },
        missing: v.default_company_missing,
        options: options(
            &companies,
            v.default_company_id.map(|c| c.to_string()).as_deref(),
            None,
        ),
    });
    if !connectwise {
        let internal = v
            .notes
            .iter()
            .find(|n| n.internal)
            .map(|n| n.value.to_string());
        general.push(SelectRow {
            name: "internal_note_publish".into(),
            label: "Visibility of internal notes written to Autotask".into(),
            note: String::new(),
            missing: false,
            options: options(
                &v.notes
                    .iter()
                    .map(|n| (n.value.to_string(), n.label.clone()))
                    .collect::<Vec<_>>(),
                internal.as_deref(),
                None,
            ),
        });
    }
    let associations = v
        .associations
        .iter()
        .map(|a| SelectRow {
            name: format!("company.{}", a.org_id),
            label: a.org_name.clone(),
            note: if a.missing {
                "the stored company no longer exists".into()
            } else if a.current.is_none() && a.suggestion.is_some() {
                "suggested by name: confirm".into()
            } else {
                String::new()
            },
            missing: a.missing,
            options: options(
                &companies,
                a.current.map(|c| c.to_string()).as_deref(),
                a.suggestion.map(|s| s.to_string()),
            ),
        })
        .collect();
    vec![
        Section {
            title: if connectwise {
                "Company".into()
            } else {
                "Queue and company".into()
            },
            rows: general,
        },
        Section {
            title: format!("Status: Zendesk → {psa}"),
            rows: forward(&v.status, "status", &v.statuses),
        },
        Section {
            title: format!("Status: {psa} → Zendesk"),
            rows: reverse(
                &v.status_to_desk,
                "status_to_desk",
                &mappings::DESK_STATUSES_SETTABLE,
            ),
        },
        Section {
            title: format!("Priority: Zendesk → {psa}"),
            rows: forward(&v.priority, "priority", &v.priorities),
        },
        Section {
            title: format!("Priority: {psa} → Zendesk"),
            rows: reverse(
                &v.priority_to_desk,
                "priority_to_desk",
                &mappings::DESK_PRIORITIES,
            ),
        },
        Section {
            title: format!("Zendesk organization → {psa} company"),
            rows: associations,
        },
    ]
}

/// The form's fields as a `MappingsUpdate`; an empty select keeps the
/// stored value.
pub(super) fn parse_mappings_form(
    fields: &[(String, String)],
) -> Result<MappingsUpdate, AdminError> {
    let bad = |k: &str| AdminError::Invalid(format!("unreadable field {k:?}"));
    let num = |k: &str, v: &str| v.parse::<i64>().map_err(|_| bad(k));
    let mut u = MappingsUpdate::default();
    let mut public = Vec::new();
    let mut notes_shown = false;
    for (k, v) in fields {
        if k == "public" {
            public.push(num(k, v)?);
            continue;
        }
        if k == "notes_shown" {
            notes_shown = true;
            continue;
        }
        if v.is_empty() || k == crate::web::CSRF_FIELD {
            continue;
        }
        match k.split_once('.') {
            None if k == "queue_id" => u.queue_id = Some(num(k, v)?),
            None if k == "default_company_id" => u.default_company_id = Some(num(k, v)?),
            None if k == "internal_note_publish" => u.internal_note_publish = Some(num(k, v)?),
            Some(("status", z)) => _ = u.status.insert(z.to_owned(), num(k, v)?),
            Some(("priority", z)) => _ = u.priority.insert(z.to_owned(), num(k, v)?),
            Some(("status_to_desk", p)) => _ = u.status_to_desk.insert(num(k, p)?, v.clone()),
            Some(("priority_to_desk", p)) => _ = u.priority_to_desk.insert(num(k, p)?, v.clone()),
            Some(("company", o)) => _ = u.companies.insert(num(k, o)?, num(k, v)?),
            _ => return Err(bad(k)),
        }
    }
    if notes_shown {
        u.public_note_publish = Some(public);
    }
    Ok(u)
}
