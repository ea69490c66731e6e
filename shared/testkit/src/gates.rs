//! Gates on the API clients: a test pauses a run at chosen points of its API
//! calls to interleave two runs of one ticket pair exactly as it wants.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bridge::config::{TenantConfig, TenantSecrets};
use bridge::error::{ApiError, SyncError};
use bridge::model::{
    DeskComment, DeskTicket, DeskTicketPatch, NewPsaNote, NewPsaTicket, PicklistValue, PsaNote,
    PsaTicket, PsaTicketPatch, Visibility,
};
use bridge::ports::{Connectors, DeskChanges, DeskCursor, Psa, ServiceDesk};
use chrono::{DateTime, Utc};

/// Where a [`Gates`] can hold a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatePoint {
    /// The PSA's notes were listed; the run has not acted on them yet.
    ListedNotes,
    /// A PSA note is about to be sent.
    AddingNote,
    /// A PSA note was created; the run has not been told yet.
    AddedNote,
    /// A desk comment is about to be sent.
    AddingComment,
    /// A desk comment was created; the run has not been told yet.
    AddedComment,
}

struct Armed {
    point: GatePoint,
    nth: usize,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
    release: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Pauses a run at chosen points of its API calls, so a test can interleave
/// two runs of one ticket pair exactly as it wants (list/list/write/write, a
/// write in flight, a stall longer than the lease).
#[derive(Default)]
pub struct Gates {
    calls: Mutex<HashMap<GatePoint, usize>>,
    armed: Mutex<Vec<Armed>>,
}

/// A pause armed at one point; `reached` resolves when a run stands there.
pub struct Pause {
    reached: tokio::sync::oneshot::Receiver<()>,
    release: tokio::sync::oneshot::Sender<()>,
}

impl Pause {
    /// Waits until the run stands at the point.
    pub async fn reached(&mut self) {
        (&mut self.reached)
            .await
            .expect("the gated run ended before reaching its pause");
    }

    /// Drives `run` until it stands at this pause, and leaves it there: the
    /// caller keeps the future, to release it later or to drop it (a run that
    /// died at that point). Panics, naming `who`, if the run ends first.
    pub async fn run_until_reached<F>(&mut self, run: Pin<&mut F>, who: &str)
    where
        F: Future,
        F::Output: std::fmt::Debug,
    {
        tokio::select! {
            () = self.reached() => {}
            ended = run => panic!("{who} ended before reaching its pause: {ended:?}"),
        }
    }

    /// Lets the run go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl Gates {
    /// Holds the `nth` (1-based) pass through `point` until released.
    pub fn pause_at(&self, point: GatePoint, nth: usize) -> Pause {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel();
        self.armed.lock().unwrap().push(Armed {
            point,
            nth,
            reached: Some(reached_tx),
            release: Some(release_rx),
        });
        Pause { reached, release }
    }

    /// How often a run passed `point`.
    pub fn passes(&self, point: GatePoint) -> usize {
        self.calls.lock().unwrap().get(&point).copied().unwrap_or(0)
    }

    async fn pass(&self, point: GatePoint) {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(point).or_default();
            *n += 1;
            *n
        };
        let hold = {
            let mut armed = self.armed.lock().unwrap();
            armed
                .iter_mut()
                .find(|a| a.point == point && a.nth == n)
                .and_then(|a| Some((a.reached.take()?, a.release.take()?)))
        };
        if let Some((reached, release)) = hold {
            let _ = reached.send(());
            // A dropped `Pause` lets the run go on.
            let _ = release.await;
        }
    }
}

/// A PSA whose calls pass through [`Gates`].
pub struct GatedPsa {
    pub inner: Arc<dyn Psa>,
    pub gates: Arc<Gates>,
}

#[async_trait]
impl Psa for GatedPsa {
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        self.inner.get_ticket(id).await
    }
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        self.inner.find_ticket_by_external_id(external_id).await
    }
    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        self.inner.new_ticket_problems(ticket).await
    }
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        self.inner.create_ticket(ticket).await
    }
    fn title_max_chars(&self) -> usize {
        self.inner.title_max_chars()
    }
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        self.inner.update_ticket(id, patch).await
    }
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        let notes = self.inner.list_notes(ticket_id).await?;
        self.gates.pass(GatePoint::ListedNotes).await;
        Ok(notes)
    }
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        self.gates.pass(GatePoint::AddingNote).await;
        let id = self.inner.add_note(ticket_id, note).await?;
        self.gates.pass(GatePoint::AddedNote).await;
        Ok(id)
    }
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        self.inner.resource_name(resource_id).await
    }
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        self.inner.company_for_reference(reference).await
    }
    async fn configuration_item_for_reference(
        &self,
        reference: &str,
    ) -> Result<Option<bridge::ports::CiRef>, ApiError> {
        self.inner.configuration_item_for_reference(reference).await
    }
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        self.inner.ticket_picklist(field).await
    }
    async fn ticket_statuses(&self, queue_id: Option<i64>) -> Result<Vec<PicklistValue>, ApiError> {
        self.inner.ticket_statuses(queue_id).await
    }
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        self.inner.tickets_changed_since(since).await
    }
}

/// A service desk whose comment writes pass through [`Gates`].
pub struct GatedDesk {
    pub inner: Arc<dyn ServiceDesk>,
    pub gates: Arc<Gates>,
}

#[async_trait]
impl ServiceDesk for GatedDesk {
    async fn get_ticket(&self, id: u64) -> Result<DeskTicket, ApiError> {
        self.inner.get_ticket(id).await
    }
    async fn list_comments(&self, ticket_id: u64) -> Result<Vec<DeskComment>, ApiError> {
        self.inner.list_comments(ticket_id).await
    }
    async fn add_comment(
        &self,
        ticket_id: u64,
        body: &str,
        visibility: Visibility,
    ) -> Result<u64, ApiError> {
        self.gates.pass(GatePoint::AddingComment).await;
        let id = self.inner.add_comment(ticket_id, body, visibility).await?;
        self.gates.pass(GatePoint::AddedComment).await;
        Ok(id)
    }
    async fn update_ticket(&self, ticket_id: u64, patch: &DeskTicketPatch) -> Result<(), ApiError> {
        self.inner.update_ticket(ticket_id, patch).await
    }
    async fn set_external_id(&self, ticket_id: u64, external_id: &str) -> Result<(), ApiError> {
        self.inner.set_external_id(ticket_id, external_id).await
    }
    async fn changed_tickets(&self, position: &DeskCursor) -> Result<DeskChanges, ApiError> {
        self.inner.changed_tickets(position).await
    }
}

/// Connectors whose clients pass through one [`Gates`]: give each of two
/// workers its own to interleave them.
pub struct GatedConnectors {
    pub inner: Arc<dyn Connectors>,
    pub gates: Arc<Gates>,
}

#[async_trait]
impl Connectors for GatedConnectors {
    async fn desk(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn ServiceDesk>, SyncError> {
        Ok(Arc::new(GatedDesk {
            inner: self.inner.desk(config, secrets).await?,
            gates: self.gates.clone(),
        }))
    }
    async fn psa(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn Psa>, SyncError> {
        Ok(Arc::new(GatedPsa {
            inner: self.inner.psa(config, secrets).await?,
            gates: self.gates.clone(),
        }))
    }
}
