//! Validation of API writes (fact sheet §5-§7, §13): ticket creates and
//! PATCHes and note creates, with the references they carry (callback
//! registrations are validated in `events`). Everything is checked before anything is written; all errors
//! of a request are reported together in one 400 `InvalidObject`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::api::{ApiError, FieldError};
use super::db::{get_ci, Actor, Db, NewNote, NewTicket, SUMMARY_MAX, XREF_MAX};
use super::{NoteKind, Ticket};

/// Ticket references the sandbox has no records for: a value naming one is
/// refused as the real API refuses an unknown id.
const UNMODELLED_REFERENCES: &[&str] = &[
    "contact",
    "type",
    "subType",
    "item",
    "source",
    "location",
    "department",
    "site",
    "agreement",
    "sla",
];

/// Ticket fields a PATCH may not write.
const READ_ONLY: &[&str] = &[
    "id",
    "_info",
    "closedFlag",
    "closedDate",
    "closedBy",
    "recordType",
    "dateEntered",
    "enteredBy",
];

/// Ticket fields only a POST may carry.
const POST_ONLY: &[&str] = &[
    "initialDescription",
    "initialInternalAnalysis",
    "initialResolution",
];

/// Ticket fields a PATCH may write (bare, case-sensitive paths, §5).
const PATCHABLE: &[&str] = &[
    "summary",
    "board",
    "status",
    "priority",
    "company",
    "team",
    "owner",
    "externalXRef",
    "customFields",
];

impl Db {
    // -----------------------------------------------------------------------
    // Validation of API writes
    // -----------------------------------------------------------------------

    /// A `POST /service/tickets` body, validated (fact sheet §6, §13.3-4).
    pub(super) fn ticket_from_body(
        &self,
        body: &Map<String, Value>,
    ) -> Result<NewTicket, ApiError> {
        const R: &str = "ticket";
        let field = |name: &str| get_ci(body, name).filter(|v| !v.is_null());
        let mut errors = Vec::new();
        let mut keep = |result: Result<i64, FieldError>| match result {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(e);
                None
            }
        };

        let company = match field("company") {
            None => keep(Err(FieldError::missing(R, "company"))),
            Some(v) => keep(self.resolve_company(R, v)),
        };
        let board = match field("board") {
            Some(v) => keep(self.resolve_board(R, v)),
            // The API member's service defaults: here, the first board.
            None => keep(self.boards.keys().next().copied().ok_or_else(|| {
                FieldError::missing(R, "board")
                    .with_message("board is required: the tenant has no service board")
            })),
        };
        let status = match (board, field("status")) {
            (Some(board), Some(v)) => keep(self.resolve_status(R, board, v)),
            (Some(board), None) => Some(self.default_status(board)),
            (None, _) => None,
        };
        let priority = match field("priority") {
            Some(v) => keep(self.resolve_priority(R, v)),
            None => Some(self.default_priority()),
        };
        let team = match (board, field("team")) {
            (Some(board), Some(v)) => keep(self.resolve_team(R, board, v)),
            _ => None,
        };
        let owner = field("owner").and_then(|v| keep(self.resolve_member(R, "owner", v)));
        for name in UNMODELLED_REFERENCES {
            if let Some(v) = field(name) {
                errors.push(unmodelled(R, name, v));
            }
        }

        let summary = match text_field(field("summary"), R, "summary", Some(SUMMARY_MAX)) {
            Ok(Some(s)) if !s.trim().is_empty() => s,
            Ok(_) => {
                errors.push(FieldError::missing(R, "summary"));
                String::new()
            }
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        let external_xref =
            match text_field(field("externalXRef"), R, "externalXRef", Some(XREF_MAX)) {
                Ok(x) => x.filter(|x| !x.is_empty()),
                Err(e) => {
                    errors.push(e);
                    None
                }
            };
        let custom_fields = match field("customFields").map(|v| custom_fields(R, v)) {
            None => Vec::new(),
            Some(Ok(fields)) => fields,
            Some(Err(e)) => {
                errors.push(e);
                Vec::new()
            }
        };
        if let Some(record_type) = field("recordType") {
            if record_type.as_str() != Some("ServiceTicket") {
                errors.push(FieldError::invalid(
                    R,
                    "recordType",
                    "recordType must be \"ServiceTicket\" on /service/tickets",
                ));
            }
        }
        let mut initial_notes = Vec::new();
        for (name, kind) in [
            ("initialDescription", NoteKind::Discussion),
            ("initialInternalAnalysis", NoteKind::Internal),
            ("initialResolution", NoteKind::Resolution),
        ] {
            match text_field(field(name), R, name, None) {
                Ok(Some(text)) if !text.trim().is_empty() => initial_notes.push((text, kind)),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        match (errors.is_empty(), company, board, status, priority) {
            (true, Some(company_id), Some(board_id), Some(status_id), Some(priority_id)) => {
                Ok(NewTicket {
                    summary,
                    board_id,
                    status_id,
                    priority_id,
                    company_id,
                    external_xref,
                    team_id: team,
                    owner_id: owner,
                    custom_fields,
                    initial_notes,
                })
            }
            _ => Err(ApiError::invalid(R, errors)),
        }
    }

    /// Applies a `PATCH /service/tickets/{id}` body (fact sheet §5): a JSON
    /// array of `{op, path, value}`, `op` one of add/replace/remove, `path` a
    /// bare case-sensitive field name, references as objects, custom fields
    /// only as the whole array; a board move needs a status of the new board
    /// in the same PATCH. All or nothing. `Ok(None)` for an empty array
    /// (nothing changes, nothing fires).
    pub(super) fn patch_ticket(
        &mut self,
        id: i64,
        body: &Value,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<Ticket>, ApiError> {
        const R: &str = "ticket";
        let Value::Array(ops) = body else {
            return Err(ApiError::bad_request(
                "A PATCH body must be a JSON array of operations, e.g. \
                 [{\"op\":\"replace\",\"path\":\"summary\",\"value\":\"…\"}].",
            ));
        };
        let original =
            self.tickets.get(&id).cloned().ok_or_else(|| {
                ApiError::not_found(format!("Ticket with id {id} was not found."))
            })?;
        if ops.is_empty() {
            return Ok(None);
        }
        let mut ticket = original.clone();
        let mut errors = Vec::new();
        let mut status_value: Option<&Value> = None;
        let mut team_value: Option<Option<&Value>> = None;
        for (i, op) in ops.iter().enumerate() {
            let Some(op) = op.as_object() else {
                errors.push(FieldError::invalid(
                    R,
                    "op",
                    format!("operation {i} is not an object {{op, path, value}}"),
                ));
                continue;
            };
            let path = match op.get("path") {
                Some(Value::String(path)) => path.as_str(),
                _ => {
                    errors.push(
                        FieldError::missing(R, "path")
                            .with_message(format!("operation {i} has no path")),
                    );
                    continue;
                }
            };
            let remove = match op.get("op").and_then(Value::as_str) {
                Some(o) if o.eq_ignore_ascii_case("add") || o.eq_ignore_ascii_case("replace") => {
                    false
                }
                Some(o) if o.eq_ignore_ascii_case("remove") => true,
                Some(o) => {
                    errors.push(FieldError::invalid(
                        R,
                        path,
                        format!("op {o:?} is not one of add, replace, remove"),
                    ));
                    continue;
                }
                None => {
                    errors.push(
                        FieldError::missing(R, path)
                            .with_message(format!("operation {i} has no op")),
                    );
                    continue;
                }
            };
            if path.is_empty() || path.contains('/') {
                errors.push(FieldError::invalid(
                    R,
                    path,
                    format!(
                        "path {path:?} is not a field name: give the bare field (e.g. \"summary\", \
                         \"status\" with value {{\"id\": …}}), not a pointer or nested path"
                    ),
                ));
                continue;
            }
            let value = if remove {
                None
            } else {
                match op.get("value") {
                    None => {
                        errors.push(
                            FieldError::missing(R, path)
                                .with_message(format!("operation {i} ({path}) has no value")),
                        );
                        continue;
                    }
                    Some(v) => Some(v).filter(|v| !v.is_null()),
                }
            };
            let required = |field: &str| {
                FieldError::missing(R, field)
                    .with_message(format!("{field} is required and cannot be removed"))
            };
            match path {
                "summary" => match text_field(value, R, "summary", Some(SUMMARY_MAX)) {
                    Ok(Some(s)) if !s.trim().is_empty() => ticket.summary = s,
                    Ok(_) => errors.push(required("summary")),
                    Err(e) => errors.push(e),
                },
                "board" => match value.map(|v| self.resolve_board(R, v)) {
                    None => errors.push(required("board")),
                    Some(Ok(board)) => ticket.board_id = board,
                    Some(Err(e)) => errors.push(e),
                },
                "status" => match value {
                    None => errors.push(required("status")),
                    Some(v) => status_value = Some(v),
                },
                "priority" => match value.map(|v| self.resolve_priority(R, v)) {
                    None => errors.push(required("priority")),
                    Some(Ok(priority)) => ticket.priority_id = priority,
                    Some(Err(e)) => errors.push(e),
                },
                "company" => match value.map(|v| self.resolve_company(R, v)) {
                    None => errors.push(required("company")),
                    Some(Ok(company)) => ticket.company_id = company,
                    Some(Err(e)) => errors.push(e),
                },
                "team" => team_value = Some(value),
                "owner" => match value.map(|v| self.resolve_member(R, "owner", v)) {
                    None => ticket.owner_id = None,
                    Some(Ok(owner)) => ticket.owner_id = Some(owner),
                    Some(Err(e)) => errors.push(e),
                },
                "externalXRef" => match text_field(value, R, "externalXRef", Some(XREF_MAX)) {
                    Ok(x) => ticket.external_xref = x.filter(|x| !x.is_empty()),
                    Err(e) => errors.push(e),
                },
                "customFields" => match value.map(|v| custom_fields(R, v)) {
                    None => ticket.custom_fields = Vec::new(),
                    Some(Ok(fields)) => ticket.custom_fields = fields,
                    Some(Err(e)) => errors.push(e),
                },
                p if READ_ONLY.contains(&p) => {
                    errors.push(FieldError::invalid(R, p, format!("{p} is read-only")));
                }
                p if POST_ONLY.contains(&p) => errors.push(FieldError::invalid(
                    R,
                    p,
                    format!("{p} can only be given when the ticket is created"),
                )),
                p if UNMODELLED_REFERENCES.contains(&p) => {
                    if let Some(v) = value {
                        errors.push(unmodelled(R, p, v));
                    }
                }
                p => {
                    let hint = PATCHABLE
                        .iter()
                        .chain(READ_ONLY)
                        .find(|k| k.eq_ignore_ascii_case(p))
                        .map(|k| format!(" (paths are case-sensitive: {k:?})"))
                        .unwrap_or_default();
                    errors.push(FieldError::invalid(
                        R,
                        p,
                        format!("{p:?} is not a field of a ticket{hint}"),
                    ));
                }
            }
        }
        let board_moved = ticket.board_id != original.board_id;
        match status_value {
            Some(v) => match self.resolve_status(R, ticket.board_id, v) {
                Ok(status) => ticket.status_id = status,
                Err(e) => errors.push(e),
            },
            None if board_moved => {
                errors.push(FieldError::missing(R, "status").with_message(format!(
                    "moving the ticket to board {} needs a status of that board in the same PATCH",
                    ticket.board_id
                )))
            }
            None => {}
        }
        match team_value {
            Some(None) => ticket.team_id = None,
            Some(Some(v)) => match self.resolve_team(R, ticket.board_id, v) {
                Ok(team) => ticket.team_id = Some(team),
                Err(e) => errors.push(e),
            },
            None => {
                let on_board = |team: i64| self.teams.get(&team).map(|t| t.board_id);
                if ticket
                    .team_id
                    .is_some_and(|team| on_board(team) != Some(ticket.board_id))
                {
                    ticket.team_id = None;
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(R, errors));
        }
        self.save_ticket(ticket, actor, at);
        Ok(self.tickets.get(&id).cloned())
    }

    /// A `POST /service/tickets/{id}/notes` body, validated (fact sheet §7).
    pub(super) fn note_from_body(
        &self,
        ticket_id: i64,
        body: &Map<String, Value>,
    ) -> Result<NewNote, ApiError> {
        const R: &str = "ticketNote";
        let field = |name: &str| get_ci(body, name).filter(|v| !v.is_null());
        let mut errors = Vec::new();
        if let Some(other) = field("ticketId") {
            if other.as_i64() != Some(ticket_id) {
                errors.push(FieldError::invalid(
                    R,
                    "ticketId",
                    format!("ticketId {other} does not match the ticket {ticket_id} of the URL"),
                ));
            }
        }
        let text = match text_field(field("text"), R, "text", None) {
            Ok(Some(text)) if !text.trim().is_empty() => text,
            Ok(_) => {
                errors.push(FieldError::missing(R, "text"));
                String::new()
            }
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        let mut flag = |name: &str| match field(name) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(FieldError::invalid(
                    R,
                    name,
                    format!("{name} must be true or false"),
                ));
                false
            }
        };
        let flags = (
            flag("detailDescriptionFlag"),
            flag("internalAnalysisFlag"),
            flag("resolutionFlag"),
        );
        for name in ["issueFlag", "customerUpdatedFlag", "processNotifications"] {
            flag(name);
        }
        // The fact sheet (§7, §14) marks as uncertain (L) whether a note must
        // be at least one of Discussion, Internal or Resolution. The sandbox
        // takes the strict reading and refuses a note with none of the three,
        // so a client never relies on the lenient one.
        if flags == (false, false, false) && errors.is_empty() {
            errors.push(FieldError::invalid(
                R,
                "detailDescriptionFlag",
                "a note must be a Discussion (detailDescriptionFlag), Internal \
                 (internalAnalysisFlag) or Resolution (resolutionFlag) note: set at least one",
            ));
        }
        let member_id = match field("member").map(|v| self.resolve_member(R, "member", v)) {
            None => None,
            Some(Ok(member)) => Some(member),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
        };
        if let Some(v) = field("contact") {
            errors.push(unmodelled(R, "contact", v));
        }
        if errors.is_empty() {
            Ok(NewNote {
                text,
                flags,
                member_id,
            })
        } else {
            Err(ApiError::invalid(R, errors))
        }
    }

    // -----------------------------------------------------------------------
    // References
    // -----------------------------------------------------------------------

    fn resolve_company(&self, r: &'static str, value: &Value) -> Result<i64, FieldError> {
        let company = match reference(r, "company", value, "identifier")? {
            Ref::Id(id) => self.companies.get(&id),
            Ref::Key(key) => self
                .companies
                .values()
                .find(|c| c.identifier.eq_ignore_ascii_case(key)),
        };
        company
            .map(|c| c.id)
            .ok_or_else(|| not_found(r, "company", value))
    }

    fn resolve_board(&self, r: &'static str, value: &Value) -> Result<i64, FieldError> {
        let board = match reference(r, "board", value, "name")? {
            Ref::Id(id) => self.boards.get(&id),
            Ref::Key(key) => self
                .boards
                .values()
                .find(|b| b.name.eq_ignore_ascii_case(key)),
        };
        board
            .map(|b| b.id)
            .ok_or_else(|| not_found(r, "board", value))
    }

    /// A status reference checked against the ticket's (final) board: it
    /// must be a status of that board and active (fact sheet §8).
    fn resolve_status(
        &self,
        r: &'static str,
        board_id: i64,
        value: &Value,
    ) -> Result<i64, FieldError> {
        let status = match reference(r, "status", value, "name")? {
            Ref::Id(id) => self.statuses.get(&id),
            Ref::Key(key) => self
                .statuses
                .values()
                .find(|s| s.board_id == board_id && s.name.eq_ignore_ascii_case(key)),
        }
        .ok_or_else(|| not_found(r, "status", value))?;
        let board_name = |id: i64| {
            self.boards
                .get(&id)
                .map(|b| b.name.clone())
                .unwrap_or_default()
        };
        if status.board_id != board_id {
            return Err(FieldError::invalid(
                r,
                "status",
                format!(
                    "status {} ({:?}) is a status of board {} ({:?}), not of the ticket's board {} ({:?})",
                    status.id,
                    status.name,
                    status.board_id,
                    board_name(status.board_id),
                    board_id,
                    board_name(board_id)
                ),
            ));
        }
        if status.inactive {
            return Err(FieldError::invalid(
                r,
                "status",
                format!("status {} ({:?}) is inactive", status.id, status.name),
            ));
        }
        Ok(status.id)
    }

    fn resolve_priority(&self, r: &'static str, value: &Value) -> Result<i64, FieldError> {
        let priority = match reference(r, "priority", value, "name")? {
            Ref::Id(id) => self.priorities.get(&id),
            Ref::Key(key) => self
                .priorities
                .values()
                .find(|p| p.name.eq_ignore_ascii_case(key)),
        };
        priority
            .map(|p| p.id)
            .ok_or_else(|| not_found(r, "priority", value))
    }

    fn resolve_team(
        &self,
        r: &'static str,
        board_id: i64,
        value: &Value,
    ) -> Result<i64, FieldError> {
        let team = match reference(r, "team", value, "name")? {
            Ref::Id(id) => self.teams.get(&id),
            Ref::Key(key) => self
                .teams
                .values()
                .find(|t| t.board_id == board_id && t.name.eq_ignore_ascii_case(key)),
        }
        .ok_or_else(|| not_found(r, "team", value))?;
        if team.board_id != board_id {
            return Err(FieldError::invalid(
                r,
                "team",
                format!(
                    "team {} is a team of board {}, not of the ticket's board {board_id}",
                    team.id, team.board_id
                ),
            ));
        }
        Ok(team.id)
    }

    fn resolve_member(
        &self,
        r: &'static str,
        field: &str,
        value: &Value,
    ) -> Result<i64, FieldError> {
        let member = match reference(r, field, value, "identifier")? {
            Ref::Id(id) => self.members.get(&id),
            Ref::Key(key) => self
                .members
                .values()
                .find(|m| m.identifier.eq_ignore_ascii_case(key)),
        }
        .ok_or_else(|| not_found(r, field, value))?;
        if member.inactive {
            return Err(FieldError::invalid(
                r,
                field,
                format!("member {} is inactive", member.identifier),
            ));
        }
        Ok(member.id)
    }
}

/// A reference value: `{"id": N}` or `{"<key>": "…"}` (`identifier` for
/// companies and members, `name` for the others).
enum Ref<'a> {
    Id(i64),
    Key(&'a str),
}

fn reference<'a>(
    r: &'static str,
    field: &str,
    value: &'a Value,
    key: &str,
) -> Result<Ref<'a>, FieldError> {
    let Some(object) = value.as_object() else {
        return Err(FieldError::invalid(
            r,
            field,
            format!("{field} must be a reference object such as {{\"id\": 1}}, not {value}"),
        ));
    };
    if let Some(id) = get_ci(object, "id").filter(|v| !v.is_null()) {
        return id.as_i64().map(Ref::Id).ok_or_else(|| {
            FieldError::invalid(r, field, format!("{field}/id must be an integer, not {id}"))
        });
    }
    match get_ci(object, key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Ref::Key(s)),
        _ => {
            Err(FieldError::missing(r, field)
                .with_message(format!("{field}: id or {key} is required")))
        }
    }
}

fn not_found(r: &'static str, field: &str, value: &Value) -> FieldError {
    FieldError::invalid(r, field, format!("{field} {value} was not found"))
}

fn unmodelled(r: &'static str, field: &str, value: &Value) -> FieldError {
    FieldError::invalid(
        r,
        field,
        format!("{field} {value} was not found (the sandbox has no {field} records)"),
    )
}

/// An optional string field of at most `max` characters.
pub(super) fn text_field(
    value: Option<&Value>,
    r: &'static str,
    field: &str,
    max: Option<usize>,
) -> Result<Option<String>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match max {
            Some(max) if s.chars().count() > max => Err(FieldError::invalid(
                r,
                field,
                format!(
                    "{field} must be at most {max} characters (got {})",
                    s.chars().count()
                ),
            )),
            _ => Ok(Some(s.clone())),
        },
        Some(other) => Err(FieldError::invalid(
            r,
            field,
            format!("{field} must be a string, not {other}"),
        )),
    }
}

/// `customFields`: the whole array of `{id, …, value}` (fact sheet §5).
fn custom_fields(r: &'static str, value: &Value) -> Result<Vec<Value>, FieldError> {
    let invalid = |message: &str| FieldError::invalid(r, "customFields", message);
    let Value::Array(items) = value else {
        return Err(invalid(
            "customFields must be the whole array of custom fields",
        ));
    };
    for item in items {
        if item.get("id").and_then(Value::as_i64).is_none() {
            return Err(invalid("each custom field needs an integer id"));
        }
    }
    Ok(items.clone())
}
