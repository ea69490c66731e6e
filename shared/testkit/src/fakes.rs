//! In-memory fakes of the outside systems (Zendesk, Autotask, the clock) for
//! tests of the engine, and the secrets document tests seed a secrets store
//! with. The adapters and connectors are tested against the emulator and the
//! sandboxes instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bridge::config::TenantSecrets;
use bridge::error::ApiError;
use bridge::model::{
    DeskComment, DeskTicket, DeskTicketPatch, NewPsaNote, NewPsaTicket, PicklistValue, PsaNote,
    PsaTicket, PsaTicketPatch, Visibility,
};
use bridge::ports::{Clock, DeskChanges, DeskCursor, Psa, ServiceDesk};
use chrono::{DateTime, Utc};

/// Title length the fake Autotask keeps, as the real one.
pub const FAKE_TITLE_MAX: usize = 255;

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
    field_patches: Vec<(u64, DeskTicketPatch)>,
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
                organization_id: None,
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

    /// Field patches the bridge sent, oldest first.
    pub fn field_patches(&self) -> Vec<(u64, DeskTicketPatch)> {
        self.state.lock().unwrap().field_patches.clone()
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
    async fn update_ticket(&self, ticket_id: u64, patch: &DeskTicketPatch) -> Result<(), ApiError> {
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.changes.push(ticket_id);
        s.field_patches.push((ticket_id, patch.clone()));
        let ticket = s.tickets.get_mut(&ticket_id).unwrap();
        if let Some(subject) = &patch.subject {
            ticket.subject = subject.clone();
        }
        if let Some(status) = &patch.status {
            ticket.status = status.clone();
        }
        if let Some(priority) = &patch.priority {
            ticket.priority = Some(priority.clone());
        }
        Ok(())
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

    pub fn ticket(&self, id: i64) -> PsaTicket {
        self.state.lock().unwrap().tickets[&id].clone()
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
    async fn new_ticket_problems(&self, _ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        Ok(Vec::new())
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
                title: new.title.chars().take(FAKE_TITLE_MAX).collect(),
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
    fn title_max_chars(&self) -> usize {
        FAKE_TITLE_MAX
    }
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        let mut s = self.state.lock().unwrap();
        s.writes += 1;
        s.patches.push((id, patch.clone()));
        let t = s.tickets.get_mut(&id).unwrap();
        if let Some(v) = &patch.title {
            t.title = v.chars().take(FAKE_TITLE_MAX).collect();
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

/// The JSON document an operator stores in the secrets store for a tenant:
/// every credential, as the secrets writers write it.
pub fn secret_document(secrets: &TenantSecrets) -> String {
    serde_json::to_string(&secrets.to_document()).expect("a map of strings serializes")
}
