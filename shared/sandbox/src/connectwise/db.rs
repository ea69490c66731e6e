//! The simulated database (members, boards with their statuses and teams,
//! priorities, companies, configurations, tickets, notes, callbacks), its
//! JSON shapes, and the mutations shared by the API (after `validate`) and
//! the Rust methods (which stand for technicians in the ConnectWise UI).

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Map, Value};

use super::{CallbackEntry, Note, NoteKind, Ticket};

/// `summary` max length (fact sheet §6).
pub(super) const SUMMARY_MAX: usize = 100;
/// `externalXRef` max length (§6).
pub(super) const XREF_MAX: usize = 100;
/// Callback `description` max length (§10).
pub(super) const CALLBACK_DESCRIPTION_MAX: usize = 100;
/// Member `identifier` max length (§9).
pub(super) const MEMBER_IDENTIFIER_MAX: usize = 15;

/// Global priorities: name, level, color, default.
const PRIORITIES: &[(&str, &str, &str, bool)] = &[
    (
        "Priority 1 - Emergency Response",
        "Priority1",
        "#FF0000",
        false,
    ),
    ("Priority 2 - Quick Response", "Priority2", "#FF9900", false),
    ("Priority 3 - Normal Response", "Priority3", "#33CC33", true),
    (
        "Priority 4 - Scheduled Maintenance",
        "Priority4",
        "#3366FF",
        false,
    ),
    ("Do Not Respond", "NotApplicable", "#999999", false),
];

/// Statuses each new board gets: name, default, closed, inactive.
const BOARD_STATUSES: &[(&str, bool, bool, bool)] = &[
    ("New", true, false, false),
    ("In Progress", false, false, false),
    ("Waiting Customer", false, false, false),
    ("Waiting Vendor", false, false, false),
    ("Complete", false, true, false),
    ("Closed", false, true, false),
    ("Old Status", false, false, true),
];

/// Now, in whole seconds: ConnectWise's timestamps have no fraction.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as ConnectWise writes datetimes (§2).
pub(super) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The note flags of a note kind: (detailDescription, internalAnalysis, resolution).
pub(super) fn flags(kind: NoteKind) -> (bool, bool, bool) {
    match kind {
        NoteKind::Discussion => (true, false, false),
        NoteKind::Internal => (false, true, false),
        NoteKind::Resolution => (false, false, true),
    }
}

/// A JSON object's member by case-insensitive name (Json.NET binds request
/// bodies case-insensitively).
pub(super) fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Who makes a change.
#[derive(Debug, Clone)]
pub(super) struct Actor {
    pub(super) member_id: i64,
    pub(super) identifier: String,
}

pub(super) struct Member {
    pub(super) id: i64,
    pub(super) identifier: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) license_class: &'static str,
    pub(super) inactive: bool,
}

impl Member {
    fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    fn reference(&self) -> Value {
        json!({"id": self.id, "identifier": self.identifier, "name": self.name()})
    }
}

pub(super) struct Board {
    pub(super) id: i64,
    pub(super) name: String,
}

pub(super) struct Status {
    pub(super) id: i64,
    pub(super) board_id: i64,
    pub(super) name: String,
    pub(super) sort_order: i64,
    pub(super) default_flag: bool,
    pub(super) closed_status: bool,
    pub(super) inactive: bool,
}

pub(super) struct Team {
    pub(super) id: i64,
    pub(super) board_id: i64,
    pub(super) name: String,
    pub(super) leader_id: i64,
    pub(super) default_flag: bool,
}

pub(super) struct Priority {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) level: String,
    pub(super) color: String,
    pub(super) sort_order: i64,
    pub(super) default_flag: bool,
}

pub(super) struct Company {
    pub(super) id: i64,
    pub(super) identifier: String,
    pub(super) name: String,
    pub(super) entered: DateTime<Utc>,
}

pub(super) struct Configuration {
    pub(super) id: i64,
    pub(super) company_id: i64,
    pub(super) name: String,
    pub(super) serial_number: Option<String>,
    pub(super) tag_number: Option<String>,
    pub(super) active: bool,
    pub(super) entered: DateTime<Utc>,
}

pub(super) struct Callback {
    pub(super) entry: CallbackEntry,
    pub(super) member_id: i64,
    pub(super) entered: DateTime<Utc>,
    pub(super) entered_by: String,
}

/// A validated ticket create.
pub(super) struct NewTicket {
    pub(super) summary: String,
    pub(super) board_id: i64,
    pub(super) status_id: i64,
    pub(super) priority_id: i64,
    pub(super) company_id: i64,
    pub(super) external_xref: Option<String>,
    pub(super) team_id: Option<i64>,
    pub(super) owner_id: Option<i64>,
    pub(super) custom_fields: Vec<Value>,
    /// `initialDescription` & co., in that order.
    pub(super) initial_notes: Vec<(String, NoteKind)>,
}

/// A validated note create.
pub(super) struct NewNote {
    pub(super) text: String,
    pub(super) flags: (bool, bool, bool),
    /// The note's `member`, when the body names one.
    pub(super) member_id: Option<i64>,
}

#[derive(Default)]
pub(super) struct Db {
    pub(super) members: BTreeMap<i64, Member>,
    pub(super) boards: BTreeMap<i64, Board>,
    pub(super) statuses: BTreeMap<i64, Status>,
    pub(super) teams: BTreeMap<i64, Team>,
    pub(super) priorities: BTreeMap<i64, Priority>,
    pub(super) companies: BTreeMap<i64, Company>,
    pub(super) configurations: BTreeMap<i64, Configuration>,
    pub(super) tickets: BTreeMap<i64, Ticket>,
    pub(super) notes: BTreeMap<i64, Note>,
    pub(super) callbacks: BTreeMap<i64, Callback>,
    next_member: i64,
    next_board: i64,
    next_status: i64,
    next_team: i64,
    next_company: i64,
    next_configuration: i64,
    next_ticket: i64,
    next_note: i64,
    next_callback: i64,
}

fn take(counter: &mut i64) -> i64 {
    let id = *counter;
    *counter += 1;
    id
}

impl Db {
    /// A tenant with its API member and the global priorities; returns the
    /// API member's id too.
    pub(super) fn new(api_member_identifier: &str) -> (Self, i64) {
        // Distinct id ranges per entity make a mixed-up id fail loudly.
        let mut db = Self {
            next_member: 150,
            next_board: 10,
            next_status: 300,
            next_team: 40,
            next_company: 250,
            next_configuration: 700,
            next_ticket: 5001,
            next_note: 90001,
            next_callback: 3001,
            ..Self::default()
        };
        for (i, (name, level, color, default_flag)) in PRIORITIES.iter().enumerate() {
            let id = i as i64 + 1;
            db.priorities.insert(
                id,
                Priority {
                    id,
                    name: (*name).to_owned(),
                    level: (*level).to_owned(),
                    color: (*color).to_owned(),
                    sort_order: id,
                    default_flag: *default_flag,
                },
            );
        }
        let api = db.add_member(api_member_identifier, "PSA", "Bridge API", "A");
        (db, api)
    }

    pub(super) fn add_member(
        &mut self,
        identifier: &str,
        first: &str,
        last: &str,
        license_class: &'static str,
    ) -> i64 {
        assert!(
            !identifier.is_empty() && identifier.chars().count() <= MEMBER_IDENTIFIER_MAX,
            "member identifier {identifier:?} must be 1 to {MEMBER_IDENTIFIER_MAX} characters"
        );
        assert!(
            !self
                .members
                .values()
                .any(|m| m.identifier.eq_ignore_ascii_case(identifier)),
            "member identifier {identifier:?} is taken"
        );
        let id = take(&mut self.next_member);
        self.members.insert(
            id,
            Member {
                id,
                identifier: identifier.to_owned(),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                license_class,
                inactive: false,
            },
        );
        id
    }

    pub(super) fn add_board(&mut self, name: &str, leader_id: i64) -> i64 {
        let id = take(&mut self.next_board);
        self.boards.insert(
            id,
            Board {
                id,
                name: name.to_owned(),
            },
        );
        for (sort, (status, default_flag, closed_status, inactive)) in
            BOARD_STATUSES.iter().enumerate()
        {
            let status_id = take(&mut self.next_status);
            self.statuses.insert(
                status_id,
                Status {
                    id: status_id,
                    board_id: id,
                    name: (*status).to_owned(),
                    sort_order: sort as i64,
                    default_flag: *default_flag,
                    closed_status: *closed_status,
                    inactive: *inactive,
                },
            );
        }
        let team_id = take(&mut self.next_team);
        self.teams.insert(
            team_id,
            Team {
                id: team_id,
                board_id: id,
                name: format!("{name} Team").chars().take(30).collect(),
                leader_id,
                default_flag: true,
            },
        );
        id
    }

    pub(super) fn add_company(&mut self, identifier: &str, name: &str) -> i64 {
        assert!(
            !self
                .companies
                .values()
                .any(|c| c.identifier.eq_ignore_ascii_case(identifier)),
            "company identifier {identifier:?} is taken"
        );
        let id = take(&mut self.next_company);
        self.companies.insert(
            id,
            Company {
                id,
                identifier: identifier.to_owned(),
                name: name.to_owned(),
                entered: now(),
            },
        );
        id
    }

    pub(super) fn add_configuration(
        &mut self,
        company_id: i64,
        name: &str,
        serial_number: Option<&str>,
        tag_number: Option<&str>,
    ) -> i64 {
        assert!(
            self.companies.contains_key(&company_id),
            "add_configuration: no company {company_id} in the sandbox"
        );
        let id = take(&mut self.next_configuration);
        self.configurations.insert(
            id,
            Configuration {
                id,
                company_id,
                name: name.to_owned(),
                serial_number: serial_number.map(str::to_owned),
                tag_number: tag_number.map(str::to_owned),
                active: true,
                entered: now(),
            },
        );
        id
    }

    /// The member as an actor; panics when there is no such member.
    pub(super) fn actor(&self, member_id: i64) -> Actor {
        let member = self
            .members
            .get(&member_id)
            .unwrap_or_else(|| panic!("no member {member_id} in the sandbox"));
        Actor {
            member_id,
            identifier: member.identifier.clone(),
        }
    }

    pub(super) fn default_status(&self, board_id: i64) -> i64 {
        self.statuses
            .values()
            .find(|s| s.board_id == board_id && s.default_flag && !s.inactive)
            .map(|s| s.id)
            .unwrap_or_else(|| panic!("board {board_id} has no default status"))
    }

    pub(super) fn default_priority(&self) -> i64 {
        self.priorities
            .values()
            .find(|p| p.default_flag)
            .map(|p| p.id)
            .expect("one priority is the default")
    }

    /// Whether `status_id` is an active status of `board_id` (for the
    /// technician methods).
    pub(super) fn check_status(&self, board_id: i64, status_id: i64) -> Result<(), String> {
        match self.statuses.get(&status_id) {
            None => Err(format!("no status {status_id}")),
            Some(s) if s.board_id != board_id => Err(format!(
                "status {status_id} ({:?}) is a status of board {}, not of board {board_id}",
                s.name, s.board_id
            )),
            Some(s) if s.inactive => Err(format!("status {status_id} ({:?}) is inactive", s.name)),
            Some(_) => Ok(()),
        }
    }

    /// Inserts a validated ticket and its initial notes; returns its id.
    pub(super) fn insert_ticket(
        &mut self,
        new: NewTicket,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> i64 {
        let id = take(&mut self.next_ticket);
        let closed = self.statuses[&new.status_id].closed_status;
        self.tickets.insert(
            id,
            Ticket {
                id,
                summary: new.summary,
                board_id: new.board_id,
                status_id: new.status_id,
                priority_id: new.priority_id,
                company_id: new.company_id,
                external_xref: new.external_xref,
                closed,
                closed_date: closed.then_some(at),
                closed_by: closed.then(|| actor.identifier.clone()),
                team_id: new.team_id,
                owner_id: new.owner_id,
                custom_fields: new.custom_fields,
                date_entered: at,
                entered_by: actor.identifier.clone(),
                last_updated: at,
                updated_by: actor.identifier.clone(),
            },
        );
        for (text, kind) in new.initial_notes {
            self.insert_note(id, &text, flags(kind), actor.member_id, actor, at);
        }
        id
    }

    /// Stores an edited ticket: `closedFlag` (and closed date/by) from its
    /// status, `lastUpdated` and `updatedBy` from the change.
    pub(super) fn save_ticket(&mut self, mut ticket: Ticket, actor: &Actor, at: DateTime<Utc>) {
        let closed = self.statuses[&ticket.status_id].closed_status;
        if closed && !ticket.closed {
            ticket.closed_date = Some(at);
            ticket.closed_by = Some(actor.identifier.clone());
        } else if !closed {
            ticket.closed_date = None;
            ticket.closed_by = None;
        }
        ticket.closed = closed;
        ticket.last_updated = at;
        ticket.updated_by = actor.identifier.clone();
        self.tickets.insert(ticket.id, ticket);
    }

    /// Adds a note to an existing ticket and bumps the ticket's
    /// `lastUpdated`/`updatedBy`.
    pub(super) fn insert_note(
        &mut self,
        ticket_id: i64,
        text: &str,
        (detail, internal, resolution): (bool, bool, bool),
        member_id: i64,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Note {
        let id = take(&mut self.next_note);
        let note = Note {
            id,
            ticket_id,
            text: text.to_owned(),
            detail_description: detail,
            internal_analysis: internal,
            resolution,
            member_id: Some(member_id),
            created_by: actor.identifier.clone(),
            date_created: at,
        };
        self.notes.insert(id, note.clone());
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.last_updated = at;
            ticket.updated_by = actor.identifier.clone();
        }
        note
    }

    pub(super) fn insert_callback(
        &mut self,
        mut entry: CallbackEntry,
        member_id: i64,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> i64 {
        let id = take(&mut self.next_callback);
        entry.id = id;
        self.callbacks.insert(
            id,
            Callback {
                entry,
                member_id,
                entered: at,
                entered_by: actor.identifier.clone(),
            },
        );
        id
    }

    // -----------------------------------------------------------------------
    // JSON shapes (null fields are left out, as ConnectWise does)
    // -----------------------------------------------------------------------

    pub(super) fn ticket_json(&self, t: &Ticket) -> Value {
        let board = &self.boards[&t.board_id];
        let status = &self.statuses[&t.status_id];
        let priority = &self.priorities[&t.priority_id];
        let company = &self.companies[&t.company_id];
        let mut value = json!({
            "id": t.id,
            "summary": t.summary,
            "recordType": "ServiceTicket",
            "board": {"id": board.id, "name": board.name},
            "status": {"id": status.id, "name": status.name, "sort": status.sort_order},
            "priority": {"id": priority.id, "name": priority.name, "sort": priority.sort_order,
                "level": priority.level},
            "company": {"id": company.id, "identifier": company.identifier, "name": company.name},
            "closedFlag": t.closed,
            "customFields": t.custom_fields,
            "_info": {
                "lastUpdated": time(&t.last_updated),
                "updatedBy": t.updated_by,
                "dateEntered": time(&t.date_entered),
                "enteredBy": t.entered_by,
            },
        });
        let object = value.as_object_mut().expect("a ticket is an object");
        if let Some(xref) = &t.external_xref {
            object.insert("externalXRef".to_owned(), json!(xref));
        }
        if let Some(team) = t.team_id.and_then(|id| self.teams.get(&id)) {
            object.insert("team".to_owned(), json!({"id": team.id, "name": team.name}));
        }
        if let Some(owner) = t.owner_id.and_then(|id| self.members.get(&id)) {
            object.insert("owner".to_owned(), owner.reference());
        }
        if let Some(date) = &t.closed_date {
            object.insert("closedDate".to_owned(), json!(time(date)));
        }
        if let Some(by) = &t.closed_by {
            object.insert("closedBy".to_owned(), json!(by));
        }
        value
    }

    pub(super) fn note_json(&self, n: &Note) -> Value {
        let mut value = json!({
            "id": n.id,
            "ticketId": n.ticket_id,
            "text": n.text,
            "detailDescriptionFlag": n.detail_description,
            "internalAnalysisFlag": n.internal_analysis,
            "resolutionFlag": n.resolution,
            "issueFlag": false,
            "customerUpdatedFlag": false,
            "dateCreated": time(&n.date_created),
            "createdBy": n.created_by,
            "internalFlag": n.internal_analysis,
            "externalFlag": n.detail_description || n.resolution,
            "_info": {"lastUpdated": time(&n.date_created), "updatedBy": n.created_by},
        });
        if let Some(member) = n.member_id.and_then(|id| self.members.get(&id)) {
            value["member"] = member.reference();
        }
        value
    }

    pub(super) fn member_json(&self, m: &Member) -> Value {
        json!({
            "id": m.id,
            "identifier": m.identifier,
            "firstName": m.first_name,
            "lastName": m.last_name,
            "licenseClass": m.license_class,
            "inactiveFlag": m.inactive,
            "officeEmail": format!("{}@sandbox.example", m.identifier.to_ascii_lowercase()),
        })
    }

    pub(super) fn board_json(&self, b: &Board) -> Value {
        json!({
            "id": b.id,
            "name": b.name,
            "location": {"id": 1, "name": "Main"},
            "department": {"id": 1, "name": "Service"},
            "inactiveFlag": false,
            "projectFlag": false,
        })
    }

    pub(super) fn status_json(&self, s: &Status) -> Value {
        json!({
            "id": s.id,
            "name": s.name,
            "board": {"id": s.board_id, "name": self.boards[&s.board_id].name},
            "sortOrder": s.sort_order,
            "displayOnBoard": !s.inactive,
            "inactive": s.inactive,
            "closedStatus": s.closed_status,
            "defaultFlag": s.default_flag,
            "timeEntryNotAllowed": false,
            "escalationStatus": "NotResponded",
            "customerPortalFlag": true,
        })
    }

    pub(super) fn team_json(&self, t: &Team) -> Value {
        let mut value = json!({
            "id": t.id,
            "name": t.name,
            "members": [t.leader_id],
            "defaultFlag": t.default_flag,
            "boardId": t.board_id,
        });
        if let Some(leader) = self.members.get(&t.leader_id) {
            value["teamLeader"] = leader.reference();
        }
        value
    }

    pub(super) fn priority_json(&self, p: &Priority) -> Value {
        json!({
            "id": p.id,
            "name": p.name,
            "color": p.color,
            "sortOrder": p.sort_order,
            "defaultFlag": p.default_flag,
            "level": p.level,
        })
    }

    pub(super) fn company_json(&self, c: &Company) -> Value {
        json!({
            "id": c.id,
            "identifier": c.identifier,
            "name": c.name,
            "status": {"id": 1, "name": "Active"},
            "deletedFlag": false,
            "_info": {"lastUpdated": time(&c.entered), "dateEntered": time(&c.entered)},
        })
    }

    pub(super) fn configuration_json(&self, c: &Configuration) -> Value {
        let company = &self.companies[&c.company_id];
        let mut value = json!({
            "id": c.id,
            "name": c.name,
            "type": {"id": 1, "name": "Managed Workstation"},
            "status": {"id": 1, "name": if c.active { "Active" } else { "Inactive" }},
            "company": {"id": company.id, "identifier": company.identifier, "name": company.name},
            "activeFlag": c.active,
            "_info": {"lastUpdated": time(&c.entered), "dateEntered": time(&c.entered)},
        });
        if let Some(serial) = &c.serial_number {
            value["serialNumber"] = json!(serial);
        }
        if let Some(tag) = &c.tag_number {
            value["tagNumber"] = json!(tag);
        }
        value
    }

    pub(super) fn callback_json(&self, c: &Callback) -> Value {
        let e = &c.entry;
        json!({
            "id": e.id,
            "description": e.description,
            "url": e.url,
            "objectId": e.object_id,
            "type": e.callback_type,
            "level": e.level,
            "memberId": c.member_id,
            "inactiveFlag": e.inactive,
            "isSoapCallbackFlag": false,
            "isSelfSuppressedFlag": false,
            "_info": {"lastUpdated": time(&c.entered), "updatedBy": c.entered_by},
        })
    }
}
