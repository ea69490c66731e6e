//! In-memory fakes of the outside systems, for the engine's unit tests
//! (`sync/tests.rs`, `reconcile/tests.rs`); built only for `cargo test`.
//!
//! The test kit's copy of them (`testkit::fakes`, `testkit::hooks`,
//! `testkit::gates`, used by every test outside this crate) cannot serve
//! these unit tests: testkit depends on bridge, so its fakes implement the
//! ports of another copy of this crate. This copy goes once those unit tests
//! move to `shared/bridge/tests/`; until then, change both alike.
#![allow(dead_code)] // not every test module uses every fake

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{ApiError, StoreError};
use crate::model::{
    DeskComment, DeskTicket, NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket,
    PsaTicketPatch, Visibility,
};
use crate::ports::{Clock, Condition, DeskChanges, DeskCursor, Item, Psa, ServiceDesk, Store};

/// The bridge's user id in the fake Zendesk.
pub const DESK_API_USER: u64 = 1;

#[derive(Default)]
struct DeskState {
    tickets: BTreeMap<u64, DeskTicket>,
    comments: BTreeMap<u64, Vec<DeskComment>>,
    next_id: u64,
    writes: usize,
    /// Ticket ids in the order they changed: the fake's change feed, whose
    /// cursor is a position in this list.
    changes: Vec<u64>,
    export_requests: Vec<DeskCursor>,
    fail_exports: bool,
}

/// A Zendesk with tickets and comments in memory.
#[derive(Default)]
pub struct FakeDesk {
    state: Mutex<DeskState>,
}

impl FakeDesk {
    pub fn new_ticket(
        &self,
        subject: &str,
        description: &str,
        priority: Option<&str>,
        cluster: Option<&str>,
    ) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.changes.push(id);
        s.tickets.insert(
            id,
            DeskTicket {
                id,
                subject: subject.into(),
                description: description.into(),
                priority: priority.map(Into::into),
                status: "new".into(),
                external_id: None,
                cluster_id: cluster.map(Into::into),
                updated_at: None,
            },
        );
        drop(s);
        self.push_comment(id, 100, "Requester", description, true);
        id
    }

    fn push_comment(
        &self,
        ticket: u64,
        author_id: u64,
        author: &str,
        body: &str,
        public: bool,
    ) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.changes.push(ticket);
        s.comments.entry(ticket).or_default().push(DeskComment {
            id,
            author_id,
            author_name: Some(author.into()),
            body: body.into(),
            public,
            created_at: None,
        });
        id
    }

    /// A comment by an agent or end user (not the bridge).
    pub fn comment(&self, ticket: u64, author: &str, body: &str, public: bool) -> u64 {
        self.push_comment(ticket, 200, author, body, public)
    }

    pub fn edit(&self, ticket: u64, change: impl FnOnce(&mut DeskTicket)) {
        let mut s = self.state.lock().unwrap();
        s.changes.push(ticket);
        change(s.tickets.get_mut(&ticket).unwrap());
    }

    /// Positions the change feed was asked for, oldest first.
    pub fn export_requests(&self) -> Vec<DeskCursor> {
        self.state.lock().unwrap().export_requests.clone()
    }

    /// Makes the change feed answer 503 (or work again).
    pub fn fail_exports(&self, fail: bool) {
        self.state.lock().unwrap().fail_exports = fail;
    }

    pub fn ticket(&self, id: u64) -> DeskTicket {
        self.state.lock().unwrap().tickets[&id].clone()
    }

    pub fn comments(&self, ticket: u64) -> Vec<DeskComment> {
        self.state
            .lock()
            .unwrap()
            .comments
            .get(&ticket)
            .cloned()
            .unwrap_or_default()
    }

    /// Writes made through the API (by the bridge).
    pub fn api_writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }
}

#[async_trait]
impl ServiceDesk for FakeDesk {
    async fn get_ticket(&self, id: u64) -> Result<DeskTicket, ApiError> {
        self.state
            .lock()
            .unwrap()
            .tickets
            .get(&id)
            .cloned()
            .ok_or(ApiError::NotFound {
                system: "zendesk",
                what: format!("ticket {id}"),
            })
    }
    async fn list_comments(&self, ticket_id: u64) -> Result<Vec<DeskComment>, ApiError> {
        Ok(self.comments(ticket_id))
    }
    async fn add_comment(
        &self,
        ticket_id: u64,
        body: &str,
        visibility: Visibility,
    ) -> Result<u64, ApiError> {
        self.state.lock().unwrap().writes += 1;
        Ok(self.push_comment(
            ticket_id,
            DESK_API_USER,
            "psa-bridge",
            body,
            visibility == Visibility::Public,
        ))
    }
    async fn set_external_id(&self, ticket_id: u64, external_id: &str) -> Result<(), ApiError> {
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.changes.push(ticket_id);
        s.tickets.get_mut(&ticket_id).unwrap().external_id = Some(external_id.into());
        Ok(())
    }
    async fn changed_tickets(&self, position: &DeskCursor) -> Result<DeskChanges, ApiError> {
        let mut s = self.state.lock().unwrap();
        s.export_requests.push(position.clone());
        if s.fail_exports {
            return Err(ApiError::Server {
                system: "zendesk",
                status: 503,
                message: "injected".into(),
            });
        }
        // The fake keeps no change times: a start time means "from the beginning".
        let from = match position {
            DeskCursor::StartTime(_) => 0,
            DeskCursor::Cursor(c) => c.parse().map_err(|_| ApiError::Rejected {
                system: "zendesk",
                status: 400,
                message: format!("bad cursor {c:?}"),
            })?,
        };
        let mut ids: Vec<u64> = Vec::new();
        for id in s.changes.iter().skip(from) {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        Ok(DeskChanges {
            ticket_ids: ids,
            next: DeskCursor::Cursor(s.changes.len().to_string()),
            complete: true,
            pages: 1,
        })
    }
}

#[derive(Default)]
struct PsaState {
    tickets: BTreeMap<i64, PsaTicket>,
    notes: BTreeMap<i64, Vec<PsaNote>>,
    companies_by_reference: HashMap<String, i64>,
    resources: HashMap<i64, String>,
    next_id: i64,
    patches: Vec<(i64, PsaTicketPatch)>,
    writes: usize,
    change_queries: Vec<DateTime<Utc>>,
}

/// An Autotask with default picklists in memory.
pub struct FakePsa {
    state: Mutex<PsaState>,
    /// Fail `add_note` with a 503 once this many notes were added (crash tests).
    pub fail_notes_after: Mutex<Option<usize>>,
    /// Runs after every note added (tests that let time pass per write).
    #[allow(clippy::type_complexity)]
    pub after_note: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Default for FakePsa {
    fn default() -> Self {
        Self {
            state: Mutex::new(PsaState {
                next_id: 1000,
                ..PsaState::default()
            }),
            fail_notes_after: Mutex::new(None),
            after_note: Mutex::new(None),
        }
    }
}

pub fn picklist(pairs: &[(i64, &str)]) -> Vec<PicklistValue> {
    pairs
        .iter()
        .map(|(value, label)| PicklistValue {
            value: *value,
            label: (*label).into(),
            is_active: true,
        })
        .collect()
}

impl FakePsa {
    pub fn add_configuration_item(&self, reference: &str, company_id: i64) {
        self.state
            .lock()
            .unwrap()
            .companies_by_reference
            .insert(reference.into(), company_id);
    }

    /// A note written by a technician in the Autotask UI.
    pub fn technician_note(
        &self,
        ticket_id: i64,
        who: &str,
        title: &str,
        text: &str,
        visibility: Visibility,
    ) -> i64 {
        let mut s = self.state.lock().unwrap();
        // Like Autotask, a note names its creator by resource id only.
        let resource = match s.resources.iter().find(|(_, name)| *name == who) {
            Some((id, _)) => *id,
            None => {
                let id = 500 + s.resources.len() as i64;
                s.resources.insert(id, who.to_owned());
                id
            }
        };
        s.next_id += 1;
        let id = s.next_id;
        s.notes.entry(ticket_id).or_default().push(PsaNote {
            id,
            ticket_id,
            title: Some(title.into()),
            description: text.into(),
            visibility,
            creator_resource_id: Some(resource),
            creator_name: None,
            created_at: None,
        });
        id
    }

    pub fn tickets(&self) -> Vec<PsaTicket> {
        self.state
            .lock()
            .unwrap()
            .tickets
            .values()
            .cloned()
            .collect()
    }

    pub fn notes(&self, ticket_id: i64) -> Vec<PsaNote> {
        self.state
            .lock()
            .unwrap()
            .notes
            .get(&ticket_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn patches(&self) -> Vec<(i64, PsaTicketPatch)> {
        self.state.lock().unwrap().patches.clone()
    }

    pub fn edit(&self, id: i64, change: impl FnOnce(&mut PsaTicket)) {
        change(self.state.lock().unwrap().tickets.get_mut(&id).unwrap());
    }

    pub fn api_writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }

    /// Sets a ticket's `lastActivityDate` (the fake has no clock of its own).
    pub fn set_activity(&self, id: i64, at: DateTime<Utc>) {
        self.edit(id, |t| t.last_activity = Some(at));
    }

    /// The `since` of every change query, oldest first.
    pub fn change_queries(&self) -> Vec<DateTime<Utc>> {
        self.state.lock().unwrap().change_queries.clone()
    }
}

#[async_trait]
impl Psa for FakePsa {
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        Ok(self.state.lock().unwrap().tickets.get(&id).cloned())
    }
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .tickets
            .values()
            .find(|t| t.external_id.as_deref() == Some(external_id))
            .cloned())
    }
    async fn create_ticket(&self, new: &NewPsaTicket) -> Result<i64, ApiError> {
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.next_id += 1;
        let id = s.next_id;
        s.tickets.insert(
            id,
            PsaTicket {
                id,
                ticket_number: Some(format!("T20261123.{id:04}")),
                title: new.title.clone(),
                description: Some(new.description.clone()),
                status: new.status,
                priority: new.priority,
                company_id: new.company_id,
                queue_id: new.queue_id,
                external_id: Some(new.external_id.clone()),
                last_activity: None,
            },
        );
        Ok(id)
    }
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.patches.push((id, patch.clone()));
        let t = s.tickets.get_mut(&id).unwrap();
        if let Some(v) = &patch.title {
            t.title = v.clone();
        }
        if let Some(v) = patch.status {
            t.status = v;
        }
        if let Some(v) = patch.priority {
            t.priority = v;
        }
        if let Some(v) = patch.company_id {
            t.company_id = v;
        }
        Ok(())
    }
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        Ok(self.notes(ticket_id))
    }
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        if let Some(limit) = *self.fail_notes_after.lock().unwrap() {
            if self.notes(ticket_id).len() >= limit {
                return Err(ApiError::Server {
                    system: "autotask",
                    status: 503,
                    message: "injected".into(),
                });
            }
        }
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.next_id += 1;
        let id = s.next_id;
        s.notes.entry(ticket_id).or_default().push(PsaNote {
            id,
            ticket_id,
            title: Some(note.title.clone()),
            description: note.description.clone(),
            visibility: note.visibility,
            creator_resource_id: Some(1),
            creator_name: Some("API user".into()),
            created_at: None,
        });
        drop(s);
        if let Some(after) = self.after_note.lock().unwrap().as_ref() {
            after();
        }
        Ok(id)
    }
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .resources
            .get(&resource_id)
            .cloned())
    }
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .companies_by_reference
            .get(reference)
            .copied())
    }
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        Ok(match field {
            "status" => picklist(&[
                (1, "New"),
                (5, "Complete"),
                (7, "Waiting Customer"),
                (8, "In Progress"),
                (12, "Waiting Vendor"),
            ]),
            "priority" => picklist(&[(1, "High"), (2, "Medium"), (3, "Low"), (4, "Critical")]),
            _ => Vec::new(),
        })
    }
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        let mut s = self.state.lock().unwrap();
        s.change_queries.push(since);
        let mut changed: Vec<(i64, DateTime<Utc>)> = s
            .tickets
            .values()
            .filter_map(|t| Some((t.id, t.last_activity?)))
            .filter(|(_, at)| *at > since)
            .collect();
        changed.sort_by_key(|(id, at)| (*at, *id));
        Ok(changed)
    }
}

/// A clock tests set by hand.
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// What a [`HookedStore`] does before each put: `Ok(())` lets the put
/// through, an error fails it; it may also park the put forever (a process
/// that died mid-write).
#[async_trait]
pub trait PutHook: Send + Sync {
    async fn before_put(
        &self,
        inner: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
        condition: &Condition,
    ) -> Result<(), StoreError>;
}

/// A store that passes everything to `inner`, running `hook` before each
/// put (crash tests).
pub struct HookedStore<H> {
    pub inner: Arc<dyn Store>,
    pub hook: H,
}

#[async_trait]
impl<H: PutHook> Store for HookedStore<H> {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.hook
            .before_put(self.inner.as_ref(), pk, sk, body, &condition)
            .await?;
        self.inner.put(pk, sk, body, condition, expires_at).await
    }
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, sk_prefix, newest_first, limit).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.inner.delete(pk, sk).await
    }
    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        self.inner.scan_sort_key(sk).await
    }
}

/// Fails the `fail_at`-th put, as if the store refused that write; or, armed
/// with [`CrashingStore::park_on_put`], holds the `park_at`-th put forever and
/// says so, so a test can drop the run right there (a process that died
/// before that write reached the store).
pub struct CrashOnPut {
    puts: AtomicUsize,
    fail_at: AtomicUsize,
    park_at: AtomicUsize,
    parked: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait]
impl PutHook for CrashOnPut {
    async fn before_put(
        &self,
        _: &dyn Store,
        _: &str,
        _: &str,
        _: &str,
        _: &Condition,
    ) -> Result<(), StoreError> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected crash".into()));
        }
        if n == self.park_at.load(Ordering::SeqCst) {
            if let Some(parked) = self.parked.lock().unwrap().take() {
                let _ = parked.send(());
            }
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// A store that loses the `fail_at`-th put (see [`CrashOnPut`]).
pub type CrashingStore = HookedStore<CrashOnPut>;

impl CrashingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            hook: CrashOnPut {
                puts: AtomicUsize::new(0),
                fail_at: AtomicUsize::new(usize::MAX),
                park_at: AtomicUsize::new(usize::MAX),
                parked: Mutex::new(None),
            },
        }
    }
    /// The `n`-th put from now on (1-based) fails.
    pub fn crash_on_put(&self, n: usize) {
        self.hook
            .fail_at
            .store(self.hook.puts.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    /// The `n`-th put from now on (1-based) never returns; the receiver
    /// resolves when it is reached.
    pub fn park_on_put(&self, n: usize) -> tokio::sync::oneshot::Receiver<()> {
        let (parked, reached) = tokio::sync::oneshot::channel();
        *self.hook.parked.lock().unwrap() = Some(parked);
        self.hook
            .park_at
            .store(self.hook.puts.load(Ordering::SeqCst) + n, Ordering::SeqCst);
        reached
    }
}

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
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        self.inner.create_ticket(ticket).await
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
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        self.inner.ticket_picklist(field).await
    }
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        self.inner.tickets_changed_since(since).await
    }
}
