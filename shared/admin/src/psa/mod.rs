//! What differs per PSA: the preparation checklist and the words around it.
//! Each PSA has its own module and templates so that ConnectWise's screens
//! slot in beside Autotask's without reshaping the others.

pub mod autotask;
pub mod connectwise;

use serde::{Deserialize, Serialize};

/// The PSA a tenant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Psa {
    Autotask,
    // As `as_str` and the API's `psa` field spell it.
    #[serde(rename = "connectwise")]
    ConnectWise,
}

impl Psa {
    pub const ALL: [Psa; 2] = [Psa::Autotask, Psa::ConnectWise];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "autotask" => Some(Psa::Autotask),
            "connectwise" => Some(Psa::ConnectWise),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Psa::Autotask => "autotask",
            Psa::ConnectWise => "connectwise",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Psa::Autotask => "Autotask",
            Psa::ConnectWise => "ConnectWise PSA",
        }
    }

    /// The name in navigation and table headings.
    pub fn short_name(self) -> &'static str {
        match self {
            Psa::Autotask => "Autotask",
            Psa::ConnectWise => "ConnectWise",
        }
    }

    /// The PSA a tenant's engine config says it runs.
    pub fn of_config(config: &bridge::config::TenantConfig) -> Self {
        match config.psa_system() {
            bridge::model::PsaSystem::Autotask => Psa::Autotask,
            bridge::model::PsaSystem::ConnectWise => Psa::ConnectWise,
        }
    }

    /// Whether tenants can be created with it yet.
    pub fn available(self) -> bool {
        match self {
            Psa::Autotask => true,
            Psa::ConnectWise => connectwise::AVAILABLE,
        }
    }

    pub fn checklist(self) -> &'static [ChecklistItem] {
        match self {
            Psa::Autotask => autotask::CHECKLIST,
            Psa::ConnectWise => connectwise::CHECKLIST,
        }
    }
}

/// How an item of the checklist is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveCheck {
    /// Only the admin can tell (a setting inside the PSA the API cannot read).
    None,
    /// The API user (Autotask) or API member (ConnectWise) signs in.
    ApiUser,
    /// The PSA lists at least one active queue.
    Queues,
    /// The PSA lists the statuses the mapping needs.
    Statuses,
    /// The API member's security role can read what the sync needs
    /// (ConnectWise: service boards and companies).
    Permissions,
    /// The service board for new tickets is active, with a default team
    /// and the statuses the mapping needs (ConnectWise); before a board is
    /// chosen, that there is an active board to choose.
    Board,
}

/// One preparation step, done in the PSA before the bridge is connected.
#[derive(Debug, Clone, Copy)]
pub struct ChecklistItem {
    pub id: &'static str,
    pub title: &'static str,
    /// How to do it, in the PSA's own words.
    pub how: &'static str,
    pub live: LiveCheck,
}
