//! One view of a tenant's PSA sandbox, Autotask or ConnectWise, for what
//! checks every tenant the same way: the chaos scenario, the exactly-once
//! audit of the end-to-end tests, the benchmark.

use crate::world::{ConnectWiseWorld, TenantWorld};
use sandbox::connectwise::NoteKind;
use sandbox::faults::Faults;

/// A PSA ticket as the checks need it.
#[derive(Debug, Clone)]
pub struct PsaTicketView {
    pub id: i64,
    pub title: String,
    /// Autotask: the description field; ConnectWise: the text of the first
    /// note, which `initialDescription` became.
    pub description: Option<String>,
    pub status: i64,
    pub priority: i64,
    pub company_id: i64,
    pub external_ref: Option<String>,
}

/// A PSA note as the checks need it.
#[derive(Debug, Clone)]
pub struct PsaNoteView {
    pub id: i64,
    /// Where the bridge's marker is: the title (Autotask) or the text
    /// (ConnectWise, whose notes have no title).
    pub marked: String,
    /// The note's body (ConnectWise: the whole text, marker included).
    pub text: String,
    pub public: bool,
    pub by_technician: bool,
}

/// A tenant's PSA.
pub enum PsaView<'a> {
    Autotask(&'a TenantWorld),
    ConnectWise(&'a ConnectWiseWorld),
}

impl<'a> PsaView<'a> {
    pub fn of(t: &'a TenantWorld) -> Self {
        match &t.connectwise {
            Some(cw) => PsaView::ConnectWise(cw),
            None => PsaView::Autotask(t),
        }
    }

    /// The product's name, as the bridge's marks write it.
    pub fn label(&self) -> &'static str {
        match self {
            PsaView::Autotask(_) => "Autotask",
            PsaView::ConnectWise(_) => "ConnectWise",
        }
    }

    /// API calls the PSA sandbox has served.
    pub fn api_calls(&self) -> u64 {
        match self {
            PsaView::Autotask(t) => t.autotask.api_calls(),
            PsaView::ConnectWise(cw) => cw.sandbox.api_calls(),
        }
    }

    pub fn faults(&self) -> &Faults {
        match self {
            PsaView::Autotask(t) => t.autotask.faults(),
            PsaView::ConnectWise(cw) => cw.sandbox.faults(),
        }
    }

    pub fn tickets(&self) -> Vec<PsaTicketView> {
        match self {
            PsaView::Autotask(t) => t
                .autotask
                .tickets()
                .into_iter()
                .map(|p| PsaTicketView {
                    id: p.id,
                    title: p.title,
                    description: p.description,
                    status: p.status,
                    priority: p.priority,
                    company_id: p.company_id,
                    external_ref: p.external_id,
                })
                .collect(),
            PsaView::ConnectWise(cw) => cw
                .sandbox
                .tickets()
                .into_iter()
                .map(|p| PsaTicketView {
                    id: p.id,
                    description: cw.sandbox.notes(p.id).first().map(|n| n.text.clone()),
                    title: p.summary,
                    status: p.status_id,
                    priority: p.priority_id,
                    company_id: p.company_id,
                    external_ref: p.external_xref,
                })
                .collect(),
        }
    }

    /// The PSA tickets that carry Zendesk ticket `desk_id` as their
    /// reference: one once it arrived, never more.
    pub fn tickets_for(&self, desk_id: u64) -> Vec<PsaTicketView> {
        let reference = format!("zendesk:{desk_id}");
        self.tickets()
            .into_iter()
            .filter(|p| p.external_ref.as_deref() == Some(reference.as_str()))
            .collect()
    }

    /// The notes of a ticket; on ConnectWise without the first one, which is
    /// the ticket's description.
    pub fn notes(&self, psa_id: i64) -> Vec<PsaNoteView> {
        match self {
            PsaView::Autotask(t) => t
                .autotask
                .notes(psa_id)
                .into_iter()
                .map(|n| PsaNoteView {
                    id: n.id,
                    marked: n.title,
                    text: n.description,
                    public: n.publish == 1,
                    by_technician: n.creator_resource_id == t.technician,
                })
                .collect(),
            PsaView::ConnectWise(cw) => cw
                .sandbox
                .notes(psa_id)
                .into_iter()
                .skip(1)
                .map(|n| PsaNoteView {
                    id: n.id,
                    marked: n.text.clone(),
                    text: n.text,
                    public: n.detail_description,
                    by_technician: n.member_id == Some(cw.technician),
                })
                .collect(),
        }
    }

    /// A technician writes a note in the PSA's own screens.
    pub fn add_technician_note(&self, psa_id: i64, text: &str, internal: bool) {
        match self {
            PsaView::Autotask(t) => {
                t.autotask
                    .add_note(psa_id, t.technician, "Remote session", text, internal);
            }
            PsaView::ConnectWise(cw) => {
                let kind = if internal {
                    NoteKind::Internal
                } else {
                    NoteKind::Discussion
                };
                cw.sandbox.add_note_as(cw.technician, psa_id, text, kind);
            }
        }
    }

    /// The id of a status name on the tenant's queue or board.
    pub fn status_id(&self, name: &str) -> i64 {
        match self {
            PsaView::Autotask(t) => t.autotask.picklist_value("status", name),
            PsaView::ConnectWise(cw) => cw.sandbox.board_status(cw.board, name),
        }
        .unwrap_or_else(|| panic!("no status {name}"))
    }

    pub fn priority_id(&self, name: &str) -> i64 {
        match self {
            PsaView::Autotask(t) => t.autotask.picklist_value("priority", name),
            PsaView::ConnectWise(cw) => cw.sandbox.priority(name),
        }
        .unwrap_or_else(|| panic!("no priority {name}"))
    }
}
