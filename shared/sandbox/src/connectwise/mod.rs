//! ConnectWise PSA (Manage) REST API simulator: one ConnectWise tenant per
//! instance, on loopback, following the contract in
//! `shared/specs/connectwise-psa.md` (the "fact sheet", §n below) strictly: it
//! refuses what the real API refuses, so a client that passes here has not
//! been let off lightly.
//!
//! - `GET {site}/login/companyinfo/{company}` (unauthenticated) names the
//!   codebase; an unknown company answers JSON `null` with 200 (§1).
//! - The API lives under `{site}/{codebase}apis/3.0/`. After
//!   [`ConnectWiseSandbox::set_codebase`] (a cloud upgrade) the old codebase
//!   answers 404 and companyinfo names the new one (§1). Paths are matched
//!   case-insensitively, as on IIS.
//! - Every API call needs `Authorization: Basic base64("{company}+{public}:{private}")`
//!   and a non-empty `clientId` header, else 401 `{"code":"Unauthorized",…}`
//!   (§2). Writes made with the keys are the API member's (`_info.updatedBy`,
//!   `enteredBy`, note `member` unless the note names one).
//! - Errors are `{"code","message","errors":[{code,message,resource,field}]}`
//!   (§11); validation errors are 400 `InvalidObject`.
//! - Tickets (§6): `summary` (≤ 100) and `company` required on POST, statuses
//!   are per board and must be active, `closedFlag` follows the status's
//!   `closedStatus`, `initialDescription` / `initialInternalAnalysis` /
//!   `initialResolution` become the first notes and are never returned.
//!   PATCH takes a JSON array of `{op, path, value}` with bare, case-sensitive
//!   paths (§5); moving to another board needs a status of that board in the
//!   same PATCH (§8). PUT and DELETE answer 405.
//! - Like the real API (Json.NET with null values ignored), null fields are
//!   left out of responses: a ticket without `externalXRef` has no such key.
//! - Lists take `conditions` (a real parser, see `query`), `orderBy`,
//!   `fields`, `page`/`pageSize` (≤ 1000, default 25) with a `Link` header,
//!   or `pagination-type: forward-only` with `pageId` (§3, §4); each list
//!   has a `/count`. Query strings over 2,000 characters are refused.
//! - `/system/callbacks` (§10): changes to tickets (creates, PATCHes, notes,
//!   technician edits through the Rust methods) POST the §10 body to every
//!   matching active callback, signed in `x-content-signature`, through the
//!   fault plan (drops, duplicates, jitter), on background tasks.
//! - Faults ([`Faults`]): latency, 5xx, 429 with `Retry-After`, hangs, on the
//!   API routes only (not companyinfo or the callback key), with CW-shaped
//!   error bodies.
//! - Every request is recorded ([`ConnectWiseSandbox::requests`]).
//!
//! Layout: this file holds the public handle and its types; `db` the database,
//! its JSON shapes and mutations; `validate` the checks of ticket and note
//! writes; `api` the HTTP routes, auth and errors; `query` the list schemas,
//! `orderBy`, `fields` and paging; `conditions` the `conditions` parser;
//! `events` callback registration, signing and delivery.

mod api;
mod conditions;
mod db;
mod events;
mod query;
mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use self::api::router;
use self::db::{now, Actor, Db, NewTicket};
use crate::faults::Faults;
pub use crate::recording::{RecordedRequest, RequestLog};

/// Configuration of one simulated ConnectWise tenant.
#[derive(Debug, Clone)]
pub struct ConnectWiseSandboxConfig {
    /// The company id users log in with (e.g. `acme`); compared
    /// case-insensitively.
    pub company_id: String,
    pub public_key: String,
    pub private_key: String,
    /// The codebase, ending with `/` (e.g. `v2025_1/`).
    pub codebase: String,
    /// Identifier of the API member the keys belong to (licenseClass `A`).
    pub api_member_identifier: String,
}

impl Default for ConnectWiseSandboxConfig {
    fn default() -> Self {
        Self {
            company_id: "acme".to_owned(),
            public_key: "pub-key".to_owned(),
            private_key: "priv-key".to_owned(),
            codebase: "v2025_1/".to_owned(),
            api_member_identifier: "psabridge".to_owned(),
        }
    }
}

/// The three note types of the ConnectWise UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// `detailDescriptionFlag`: customer-facing.
    Discussion,
    /// `internalAnalysisFlag`.
    Internal,
    /// `resolutionFlag`.
    Resolution,
}

/// A service ticket as stored in the simulated database.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: i64,
    pub summary: String,
    pub board_id: i64,
    pub status_id: i64,
    pub priority_id: i64,
    pub company_id: i64,
    pub external_xref: Option<String>,
    /// `closedFlag`: whether the status is a `closedStatus`.
    pub closed: bool,
    pub closed_date: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub team_id: Option<i64>,
    pub owner_id: Option<i64>,
    /// As last written (POST or a whole-array PATCH).
    pub custom_fields: Vec<serde_json::Value>,
    pub date_entered: DateTime<Utc>,
    pub entered_by: String,
    /// `_info.lastUpdated`, whole seconds.
    pub last_updated: DateTime<Utc>,
    /// `_info.updatedBy`: identifier of the member who made the last change.
    pub updated_by: String,
}

/// A ticket note as stored in the simulated database.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: i64,
    pub ticket_id: i64,
    pub text: String,
    pub detail_description: bool,
    pub internal_analysis: bool,
    pub resolution: bool,
    /// The note's `member` (author).
    pub member_id: Option<i64>,
    /// Identifier of the member who wrote it (the API member for API writes).
    pub created_by: String,
    pub date_created: DateTime<Utc>,
}

/// A callback registered through `/system/callbacks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEntry {
    pub id: i64,
    pub url: String,
    pub object_id: i64,
    /// As registered (compared case-insensitively).
    pub callback_type: String,
    pub level: String,
    pub description: String,
    pub inactive: bool,
}

/// A running simulator; clones share the tenant. The server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct ConnectWiseSandbox {
    shared: Arc<Shared>,
    _server: Arc<ServerGuard>,
}

struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared {
    config: Mutex<ConnectWiseSandboxConfig>,
    db: Mutex<Db>,
    faults: Faults,
    requests: RequestLog,
    site_url: OnceLock<String>,
    api_member_id: i64,
    api_calls: AtomicU64,
    key_fetches: AtomicU64,
    /// Shared with the delivery tasks.
    callback_deliveries: Arc<AtomicU64>,
    /// Callback signing keys `(id, key)`; the last one signs.
    signing_keys: Mutex<Vec<(String, String)>>,
    /// While set, callbacks are kept here instead of being sent, for a test
    /// to deliver itself (repeated, reordered).
    held_callbacks: Mutex<Option<Vec<SignedCallback>>>,
    http: reqwest::Client,
}

/// A callback as ConnectWise would POST it: the body and its
/// `x-content-signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallback {
    pub body: Vec<u8>,
    pub signature: String,
}

// ---------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------

impl ConnectWiseSandbox {
    /// Starts the simulator with the API member, the global priorities and
    /// no boards, companies or tickets. Panics on a codebase that does not
    /// end with `/` (a test bug).
    pub async fn start(config: ConnectWiseSandboxConfig) -> std::io::Result<Self> {
        assert!(
            config.codebase.ends_with('/') && config.codebase.len() > 1,
            "the codebase must end with '/', e.g. \"v2025_1/\" (got {:?})",
            config.codebase
        );
        let (db, api_member_id) = Db::new(&config.api_member_identifier);
        let http = reqwest::Client::builder()
            // ConnectWise's callback timeout is not published; 10 s.
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            db: Mutex::new(db),
            faults: Faults::default(),
            requests: RequestLog::default(),
            site_url: OnceLock::new(),
            api_member_id,
            api_calls: AtomicU64::new(0),
            key_fetches: AtomicU64::new(0),
            callback_deliveries: Arc::default(),
            signing_keys: Mutex::new(vec![events::new_signing_key()]),
            held_callbacks: Mutex::new(None),
            http,
        });
        let (url, task) = crate::serve(router(shared.clone())).await?;
        shared
            .site_url
            .set(url)
            .expect("the site URL is set once, at start");
        Ok(Self {
            shared,
            _server: Arc::new(ServerGuard(task)),
        })
    }

    /// `http://127.0.0.1:PORT`: serves `/login/companyinfo/{company}` and
    /// `/{codebase}apis/3.0/…`.
    pub fn site_url(&self) -> &str {
        self.shared.site_url()
    }

    /// `{site}/{codebase}apis/3.0/` with the current codebase.
    pub fn api_base(&self) -> String {
        self.shared.api_base()
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The current codebase (e.g. `v2025_1/`).
    pub fn codebase(&self) -> String {
        self.shared.config().codebase.clone()
    }

    /// A cloud upgrade: from now on the API answers only under the new
    /// codebase (the old path answers 404) and companyinfo names it. A
    /// missing trailing `/` is added.
    pub fn set_codebase(&self, codebase: &str) {
        let codebase = codebase.trim_start_matches('/');
        assert!(!codebase.is_empty(), "set_codebase: empty codebase");
        let codebase = if codebase.ends_with('/') {
            codebase.to_owned()
        } else {
            format!("{codebase}/")
        };
        self.shared.config().codebase = codebase;
    }

    /// Member id of the API member (the one the keys belong to).
    pub fn api_member_id(&self) -> i64 {
        self.shared.api_member_id
    }

    /// A technician (licenseClass `F`). Panics on an identifier already
    /// taken or longer than 15 characters.
    pub fn add_member(&self, identifier: &str, first: &str, last: &str) -> i64 {
        self.shared.db().add_member(identifier, first, last, "F")
    }

    /// A service board with its own statuses ("New" (default), "In
    /// Progress", "Waiting Customer", "Waiting Vendor", "Complete" and
    /// "Closed" (both closed), and an inactive "Old Status"; status ids are
    /// unique across boards) and a default team.
    pub fn add_board(&self, name: &str) -> i64 {
        let leader = self.shared.api_member_id;
        self.shared.db().add_board(name, leader)
    }

    /// Id of the status named `name` (any case) on `board_id`.
    pub fn board_status(&self, board_id: i64, name: &str) -> Option<i64> {
        self.shared
            .db()
            .statuses
            .values()
            .find(|s| s.board_id == board_id && s.name.eq_ignore_ascii_case(name))
            .map(|s| s.id)
    }

    /// Id of the board's default team.
    pub fn board_team(&self, board_id: i64) -> Option<i64> {
        self.shared
            .db()
            .teams
            .values()
            .find(|t| t.board_id == board_id && t.default_flag)
            .map(|t| t.id)
    }

    /// Id of a global priority by name (any case): "Priority 1 - Emergency
    /// Response" … "Priority 4 - Scheduled Maintenance", "Do Not Respond";
    /// "Priority 3 - Normal Response" is the default.
    pub fn priority(&self, name: &str) -> Option<i64> {
        self.shared
            .db()
            .priorities
            .values()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.id)
    }

    /// A customer company. Panics on an identifier already taken.
    pub fn add_company(&self, identifier: &str, name: &str) -> i64 {
        self.shared.db().add_company(identifier, name)
    }

    /// An active configuration of `company_id`. Panics when the company does
    /// not exist.
    pub fn add_configuration(
        &self,
        company_id: i64,
        name: &str,
        serial_number: Option<&str>,
        tag_number: Option<&str>,
    ) -> i64 {
        self.shared
            .db()
            .add_configuration(company_id, name, serial_number, tag_number)
    }

    /// Marks a configuration active or inactive (`activeFlag`).
    pub fn set_configuration_active(&self, configuration_id: i64, active: bool) {
        self.shared
            .db()
            .configurations
            .get_mut(&configuration_id)
            .unwrap_or_else(|| panic!("no configuration {configuration_id} in the sandbox"))
            .active = active;
    }

    /// A technician opens a ticket in the UI: the board's default status, the
    /// default priority; fires the `added` callbacks. Panics when the member,
    /// board or company does not exist.
    pub fn add_ticket_as(
        &self,
        member_id: i64,
        board_id: i64,
        company_id: i64,
        summary: &str,
    ) -> i64 {
        let (id, actor) = {
            let mut db = self.shared.db();
            let actor = db.actor(member_id);
            assert!(
                db.boards.contains_key(&board_id),
                "add_ticket_as: no board {board_id}"
            );
            assert!(
                db.companies.contains_key(&company_id),
                "add_ticket_as: no company {company_id}"
            );
            let new = NewTicket {
                summary: summary.to_owned(),
                board_id,
                status_id: db.default_status(board_id),
                priority_id: db.default_priority(),
                company_id,
                external_xref: None,
                team_id: None,
                owner_id: None,
                custom_fields: Vec::new(),
                initial_notes: Vec::new(),
            };
            (db.insert_ticket(new, &actor, now()), actor)
        };
        self.shared.fire("added", id, &actor.identifier);
        id
    }

    /// A technician adds a note in the UI; bumps the ticket's `lastUpdated`
    /// and fires its `updated` callbacks. Panics when the member or ticket
    /// does not exist.
    pub fn add_note_as(&self, member_id: i64, ticket_id: i64, text: &str, kind: NoteKind) -> i64 {
        let (id, actor) = {
            let mut db = self.shared.db();
            let actor = db.actor(member_id);
            assert!(
                db.tickets.contains_key(&ticket_id),
                "add_note_as: no ticket {ticket_id}"
            );
            let flags = db::flags(kind);
            let note = db.insert_note(ticket_id, text, flags, member_id, &actor, now());
            (note.id, actor)
        };
        self.shared.fire("updated", ticket_id, &actor.identifier);
        id
    }

    /// A technician changes the status. Panics when the status is not one of
    /// the ticket's board.
    pub fn set_status_as(&self, member_id: i64, ticket_id: i64, status_id: i64) {
        self.technician_edit(member_id, ticket_id, "set_status_as", |db, t| {
            db.check_status(t.board_id, status_id)?;
            t.status_id = status_id;
            Ok(())
        });
    }

    /// A technician changes the summary. Panics on a summary over 100
    /// characters or empty.
    pub fn set_summary_as(&self, member_id: i64, ticket_id: i64, summary: &str) {
        self.technician_edit(member_id, ticket_id, "set_summary_as", |_, t| {
            let length = summary.chars().count();
            if summary.trim().is_empty() || length > db::SUMMARY_MAX {
                return Err(format!(
                    "summary must be 1 to 100 characters (got {length})"
                ));
            }
            t.summary = summary.to_owned();
            Ok(())
        });
    }

    /// A technician changes the priority. Panics on an unknown priority.
    pub fn set_priority_as(&self, member_id: i64, ticket_id: i64, priority_id: i64) {
        self.technician_edit(member_id, ticket_id, "set_priority_as", |db, t| {
            if !db.priorities.contains_key(&priority_id) {
                return Err(format!("no priority {priority_id}"));
            }
            t.priority_id = priority_id;
            Ok(())
        });
    }

    /// A technician moves the ticket to another board with a status of that
    /// board. Panics when the status is not one of the new board's.
    pub fn move_board_as(&self, member_id: i64, ticket_id: i64, board_id: i64, status_id: i64) {
        self.technician_edit(member_id, ticket_id, "move_board_as", |db, t| {
            if !db.boards.contains_key(&board_id) {
                return Err(format!("no board {board_id}"));
            }
            db.check_status(board_id, status_id)?;
            t.board_id = board_id;
            t.status_id = status_id;
            if t.team_id
                .is_some_and(|team| db.teams.get(&team).map(|t| t.board_id) != Some(board_id))
            {
                t.team_id = None;
            }
            Ok(())
        });
    }

    /// Sets a ticket's `_info.lastUpdated` (nothing fires): lets a test put
    /// tickets in the past without waiting for the clock.
    pub fn set_ticket_last_updated(&self, ticket_id: i64, at: DateTime<Utc>) {
        use chrono::SubsecRound;
        self.shared
            .db()
            .tickets
            .get_mut(&ticket_id)
            .unwrap_or_else(|| panic!("no ticket {ticket_id} in the sandbox"))
            .last_updated = at.trunc_subsecs(0);
    }

    pub fn tickets(&self) -> Vec<Ticket> {
        self.shared.db().tickets.values().cloned().collect()
    }

    pub fn ticket(&self, id: i64) -> Option<Ticket> {
        self.shared.db().tickets.get(&id).cloned()
    }

    /// The ticket's notes in id order, the ones made from
    /// `initialDescription` & co. first.
    pub fn notes(&self, ticket_id: i64) -> Vec<Note> {
        self.shared
            .db()
            .notes
            .values()
            .filter(|n| n.ticket_id == ticket_id)
            .cloned()
            .collect()
    }

    /// The callbacks registered through `/system/callbacks`.
    /// While paused, callbacks are kept (signed, as they would be sent)
    /// instead of sent; [`Self::take_paused_callbacks`] hands them over.
    /// Unpausing drops what is still kept.
    pub fn set_callbacks_paused(&self, paused: bool) {
        *self.shared.held_callbacks.lock().unwrap() = paused.then(Vec::new);
    }

    /// The callbacks kept since the last call, oldest first.
    pub fn take_paused_callbacks(&self) -> Vec<SignedCallback> {
        self.shared
            .held_callbacks
            .lock()
            .unwrap()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// A callback of another type (`company`, `contact`, …) about record
    /// `id`, signed with the current key, as ConnectWise would send it.
    pub fn signed_callback_of_type(
        &self,
        callback_type: &str,
        action: &str,
        id: i64,
    ) -> SignedCallback {
        self.shared.signed_callback(
            callback_type,
            action,
            id,
            &serde_json::json!({"id": id}).to_string(),
            "apibridge",
        )
    }

    pub fn callbacks(&self) -> Vec<CallbackEntry> {
        self.shared
            .db()
            .callbacks
            .values()
            .map(|c| c.entry.clone())
            .collect()
    }

    /// Authenticated API requests served (faulted, refused and
    /// companyinfo/key requests are not counted).
    pub fn api_calls(&self) -> u64 {
        self.shared.api_calls.load(Ordering::Relaxed)
    }

    /// Callback signing keys served by the key URL.
    pub fn key_fetches(&self) -> u64 {
        self.shared.key_fetches.load(Ordering::Relaxed)
    }

    /// Callback POSTs made (after the fault plan: dropped ones are not, a
    /// duplicated one counts twice), counted once the receiver answered or
    /// the POST failed.
    pub fn callback_deliveries(&self) -> u64 {
        self.shared.callback_deliveries.load(Ordering::Relaxed)
    }

    /// Signs callbacks with a new key (a new key id in `key_url`) from now
    /// on; the old keys stay fetchable. Returns the new key id.
    pub fn rotate_callback_key(&self) -> String {
        let key = events::new_signing_key();
        let id = key.0.clone();
        self.shared.keys().push(key);
        id
    }

    /// Every request received so far (up to the log's capacity), oldest
    /// first, with `Authorization` redacted; faulted, refused, companyinfo
    /// and key requests included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.all()
    }

    /// The recorded `method` requests (any case) whose full path starts with
    /// `path_prefix` (e.g. `/v2025_1/apis/3.0/service/tickets`).
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.shared.requests.matching(method, path_prefix)
    }

    /// Like [`requests_matching`](Self::requests_matching) with the path
    /// relative to the current API root: `api_requests_matching("PATCH", "service/tickets")`.
    pub fn api_requests_matching(&self, method: &str, api_path: &str) -> Vec<RecordedRequest> {
        let codebase = self.codebase();
        let prefix = format!("/{codebase}apis/3.0/{}", api_path.trim_start_matches('/'));
        self.shared.requests.matching(method, &prefix)
    }

    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// The request log itself (capacity, dropped count).
    pub fn request_log(&self) -> &RequestLog {
        &self.shared.requests
    }

    /// Applies a technician's edit under the lock, bumps `lastUpdated`, and
    /// fires `updated`. `edit` returning an error is a test bug: panics.
    fn technician_edit(
        &self,
        member_id: i64,
        ticket_id: i64,
        what: &str,
        edit: impl FnOnce(&Db, &mut Ticket) -> Result<(), String>,
    ) {
        let outcome = {
            let mut db = self.shared.db();
            match (
                db.members.contains_key(&member_id),
                db.tickets.get(&ticket_id).cloned(),
            ) {
                (false, _) => Err(format!("no member {member_id} in the sandbox")),
                (_, None) => Err(format!("no ticket {ticket_id} in the sandbox")),
                (true, Some(mut ticket)) => edit(&db, &mut ticket).map(|()| {
                    let actor = db.actor(member_id);
                    db.save_ticket(ticket, &actor, now());
                    actor
                }),
            }
        };
        // Panics only once the lock is released.
        let actor =
            outcome.unwrap_or_else(|problem| panic!("{what} on ticket {ticket_id}: {problem}"));
        self.shared.fire("updated", ticket_id, &actor.identifier);
    }
}

impl Shared {
    fn site_url(&self) -> &str {
        self.site_url.get().map(String::as_str).unwrap_or_default()
    }

    fn api_base(&self) -> String {
        format!("{}/{}apis/3.0/", self.site_url(), self.config().codebase)
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn config(&self) -> MutexGuard<'_, ConnectWiseSandboxConfig> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(&self) -> MutexGuard<'_, Vec<(String, String)>> {
        self.signing_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API member as the actor of API writes.
    fn api_actor(&self) -> Actor {
        self.db().actor(self.api_member_id)
    }
}

#[cfg(test)]
mod tests;
