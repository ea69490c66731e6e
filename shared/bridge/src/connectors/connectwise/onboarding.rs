//! What onboarding reads from ConnectWise (boards with their statuses and
//! teams, priorities, companies) and the registration of the bridge's
//! callback. The sync itself needs only the cached statuses and priorities.

use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::wire::{
    self, Created, WireBoard, WireBoardStatus, WireCallback, WireCompany, WirePriority, WireTeam,
};
use super::{ConnectWiseClient, Paging, Target, PICKLIST_TTL};
use crate::error::ApiError;
use crate::model::PicklistValue;

/// A service board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    pub id: i64,
    pub name: String,
    pub inactive: bool,
}

/// A status of one service board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardStatus {
    pub id: i64,
    pub name: String,
    pub inactive: bool,
    /// Setting it closes the ticket (`closedStatus`).
    pub closed: bool,
    /// The board's default for new tickets (`defaultFlag`).
    pub default: bool,
}

/// A team of one service board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardTeam {
    pub id: i64,
    pub name: String,
    pub default: bool,
}

/// A customer company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Company {
    pub id: i64,
    pub identifier: String,
    pub name: String,
}

/// What [`ConnectWiseClient::ensure_callbacks`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallbackChanges {
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
}

impl ConnectWiseClient {
    /// `GET system/info`: proves that the keys and clientId are accepted.
    pub async fn system_info(&self) -> Result<Value, ApiError> {
        self.call(Method::GET, "system/info", &[], None, "system information")
            .await
    }

    /// Every service board, inactive ones included and marked.
    pub async fn boards(&self) -> Result<Vec<Board>, ApiError> {
        let boards: Vec<WireBoard> = self
            .list("service/boards", &[], Paging::Navigable, "service boards")
            .await?;
        Ok(boards
            .into_iter()
            .map(|b| Board {
                id: b.id,
                name: b.name.unwrap_or_default(),
                inactive: b.inactive_flag.unwrap_or(false),
            })
            .collect())
    }

    /// The statuses of one board, read afresh (and cached for the sync).
    pub async fn board_statuses(&self, board_id: i64) -> Result<Vec<BoardStatus>, ApiError> {
        let wire: Vec<WireBoardStatus> = self
            .list(
                &format!("service/boards/{board_id}/statuses"),
                &[],
                Paging::Navigable,
                "board statuses",
            )
            .await?;
        let statuses: Vec<BoardStatus> = wire
            .into_iter()
            .map(|s| BoardStatus {
                id: s.id,
                name: s.name.unwrap_or_default(),
                inactive: s.inactive.unwrap_or(false),
                closed: s.closed_status.unwrap_or(false),
                default: s.default_flag.unwrap_or(false),
            })
            .collect();
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(board_id, (Instant::now(), Arc::new(statuses.clone())));
        Ok(statuses)
    }

    /// The statuses of one board, cached for `PICKLIST_TTL`.
    pub(super) async fn cached_statuses(
        &self,
        board_id: i64,
    ) -> Result<Arc<Vec<BoardStatus>>, ApiError> {
        let cached = self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&board_id)
            .filter(|(at, _)| at.elapsed() < PICKLIST_TTL)
            .map(|(_, statuses)| statuses.clone());
        match cached {
            Some(statuses) => Ok(statuses),
            None => Ok(Arc::new(self.board_statuses(board_id).await?)),
        }
    }

    /// The teams of one board.
    pub async fn board_teams(&self, board_id: i64) -> Result<Vec<BoardTeam>, ApiError> {
        let teams: Vec<WireTeam> = self
            .list(
                &format!("service/boards/{board_id}/teams"),
                &[],
                Paging::Navigable,
                "board teams",
            )
            .await?;
        Ok(teams
            .into_iter()
            .map(|t| BoardTeam {
                id: t.id,
                name: t.name.unwrap_or_default(),
                default: t.default_flag.unwrap_or(false),
            })
            .collect())
    }

    /// Every ticket priority, read afresh (and cached for the sync).
    pub async fn priorities(&self) -> Result<Vec<PicklistValue>, ApiError> {
        let wire: Vec<WirePriority> = self
            .list("service/priorities", &[], Paging::Navigable, "priorities")
            .await?;
        let priorities: Vec<PicklistValue> = wire
            .into_iter()
            .map(|p| PicklistValue {
                value: p.id,
                label: p.name.unwrap_or_default(),
                is_active: true,
            })
            .collect();
        *self.priorities.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Arc::new(priorities.clone())));
        Ok(priorities)
    }

    pub(super) async fn cached_priorities(&self) -> Result<Arc<Vec<PicklistValue>>, ApiError> {
        let cached = self
            .priorities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < PICKLIST_TTL)
            .map(|(_, values)| values.clone());
        match cached {
            Some(values) => Ok(values),
            None => Ok(Arc::new(self.priorities().await?)),
        }
    }

    /// Every company.
    pub async fn companies(&self) -> Result<Vec<Company>, ApiError> {
        let companies: Vec<WireCompany> = self
            .list(
                "company/companies",
                &[("fields", "id,identifier,name".to_owned())],
                Paging::Navigable,
                "companies",
            )
            .await?;
        Ok(companies
            .into_iter()
            .map(|c| Company {
                id: c.id,
                identifier: c.identifier.unwrap_or_default(),
                name: c.name.unwrap_or_default(),
            })
            .collect())
    }

    /// Registers the bridge's ticket callback idempotently: the callbacks
    /// pointing at `url` are listed; one owner-level ticket callback with
    /// `description` is kept (or added), and every other one pointing at
    /// `url` (a duplicate, or one of another type, level or description)
    /// is deleted. The new one is added before the old ones go, so changes
    /// keep arriving throughout.
    pub async fn ensure_callbacks(
        &self,
        url: &str,
        description: &str,
    ) -> Result<CallbackChanges, ApiError> {
        let registered: Vec<WireCallback> = self
            .list(
                "system/callbacks",
                &[("conditions", format!("url contains {}", wire::quote(url)))],
                Paging::Navigable,
                "callbacks",
            )
            .await?;
        let mut ours: Vec<&WireCallback> = registered.iter().filter(|c| c.points_at(url)).collect();
        ours.sort_by_key(|c| c.id);
        let keep = ours
            .iter()
            .find(|c| c.is_wanted(url, description))
            .map(|c| c.id);
        let mut changes = CallbackChanges::default();
        if keep.is_some() {
            changes.kept = 1;
        } else {
            let _: Created = self
                .call(
                    Method::POST,
                    "system/callbacks",
                    &[],
                    Some(&wire::callback_body(url, description)),
                    "callback",
                )
                .await?;
            changes.added = 1;
        }
        for extra in ours.iter().filter(|c| Some(c.id) != keep) {
            match self
                .send(
                    Method::DELETE,
                    Target::Path(&format!("system/callbacks/{}", extra.id)),
                    &[],
                    None,
                    false,
                    "callback",
                )
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => changes.removed += 1,
                Err(err) => return Err(err),
            }
        }
        tracing::info!(
            added = changes.added,
            removed = changes.removed,
            kept = changes.kept,
            "connectwise callbacks ensured"
        );
        Ok(changes)
    }
}
