//! The sync engine: given a hint that a ticket changed, re-read both sides,
//! compare with the link record, and write only the difference.
//!
//! Convergence rests on three things: the link record (what was mirrored),
//! a conditional write on it (who may create), and markers the bridge leaves
//! in what it writes (so a copy is recognised as its own even when the link
//! write was lost to a crash).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::config::TenantConfig;
use crate::error::SyncError;
use crate::mapping::resolve_picklist;
use crate::model::{
    ChangeHint, DeskComment, DeskTicket, DeskTicketId, JobSubject, NewPsaNote, NewPsaTicket,
    PsaNote, PsaTicketId, Side, SyncJob,
};
use crate::ports::{Clock, Psa, ServiceDesk, Store};
use crate::repo::{
    ClaimedWrite, CommentLink, LinkState, PsaLink, Repo, SeenDeskValues, SeenPsaValues, TicketLink,
};
use crate::step::Step;
use crate::timing::JOB_WRITE_BUDGET;

mod fence;
mod fields;
mod markers;

pub use fence::LeaseTiming;
use fence::{Fence, MayWrite};
use fields::{map_priority, resolve_company, stored_title, DeskFieldPatch, PsaFieldPatch};
use markers::parse_desk_external_ref;
pub use markers::{
    comment_body_for, desk_comment_marked_in, desk_external_ref, note_title_for, psa_external_ref,
    psa_note_marked_in,
};

/// What the engine needs for one tenant.
pub struct SyncContext<'a> {
    pub tenant: &'a TenantConfig,
    pub store: &'a dyn Store,
    pub desk: &'a dyn ServiceDesk,
    pub psa: &'a dyn Psa,
    pub clock: &'a dyn Clock,
    /// No write starts after this; what is left is re-queued.
    pub write_deadline: DateTime<Utc>,
    /// How long the run's hold on the pair lasts, and how much a write needs.
    pub lease: LeaseTiming,
}

impl<'a> SyncContext<'a> {
    /// A context whose write budget ([`JOB_WRITE_BUDGET`]) starts now.
    pub fn new(
        tenant: &'a TenantConfig,
        store: &'a dyn Store,
        desk: &'a dyn ServiceDesk,
        psa: &'a dyn Psa,
        clock: &'a dyn Clock,
    ) -> Self {
        let budget = chrono::Duration::from_std(JOB_WRITE_BUDGET).expect("small");
        Self {
            tenant,
            store,
            desk,
            psa,
            clock,
            write_deadline: clock.now() + budget,
            lease: LeaseTiming::default(),
        }
    }
}

/// What one run did; logged, and read by tests and the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub desk_ticket_id: Option<u64>,
    pub psa_ticket_id: Option<i64>,
    pub created_psa_ticket: bool,
    pub adopted_psa_ticket: bool,
    /// PSA fields written from the desk.
    pub fields_updated: Vec<&'static str>,
    /// Desk fields written from the PSA.
    pub desk_fields_updated: Vec<&'static str>,
    pub notes_to_psa: usize,
    pub comments_to_desk: usize,
    /// Copies the bridge itself wrote, recognised and not mirrored back.
    pub own_copies_recognised: usize,
    /// Why nothing was done, when nothing was.
    pub skipped: Option<String>,
    /// A PSA-side job that ran outside its pair's lane: nothing was done; it
    /// is to be re-sent in the lane of this Zendesk ticket.
    pub reroute_to_desk_ticket: Option<u64>,
    /// Writes made to either system (tickets, fields, references, comments, notes).
    pub writes: usize,
    /// Writes an earlier run claimed and did not record, resolved by this one.
    pub claims_resolved: usize,
    /// The time budget ran out with writes left: re-queue the job.
    pub unfinished: bool,
}

/// A failure and the step it happened in, for the sync log.
#[derive(Debug)]
pub struct StepFailure {
    pub step: Step,
    pub error: SyncError,
}

trait AtStep<T> {
    fn at(self, step: Step) -> Result<T, StepFailure>;
}

impl<T, E: Into<SyncError>> AtStep<T> for Result<T, E> {
    fn at(self, step: Step) -> Result<T, StepFailure> {
        self.map_err(|e| StepFailure {
            step,
            error: e.into(),
        })
    }
}

/// Runs one job.
pub async fn sync_job(cx: &SyncContext<'_>, job: &SyncJob) -> Result<SyncReport, StepFailure> {
    let repo = Repo::new(cx.store);
    let desk_ticket_id = match job.subject {
        JobSubject::Desk(DeskTicketId(desk_id)) => desk_id,
        JobSubject::Psa(PsaTicketId(psa_id)) => {
            match repo
                .psa_link(&cx.tenant.id, psa_id)
                .await
                .at(Step::ReadLink)?
            {
                Some(link) if job.desk_ticket_id != Some(DeskTicketId(link.desk_ticket_id)) => {
                    return Ok(SyncReport {
                        psa_ticket_id: Some(psa_id),
                        reroute_to_desk_ticket: Some(link.desk_ticket_id),
                        ..SyncReport::default()
                    })
                }
                Some(link) => link.desk_ticket_id,
                None => {
                    return Ok(SyncReport {
                        psa_ticket_id: Some(psa_id),
                        skipped: Some("PSA ticket is not linked to a Zendesk ticket".into()),
                        ..SyncReport::default()
                    })
                }
            }
        }
    };
    sync_pair_after(cx, desk_ticket_id, job.change).await
}

/// Brings one ticket pair in line: creates the PSA ticket if needed, pushes
/// changed fields, mirrors new comments both ways.
///
/// Exactly once however runs of one pair interleave: a run that finds the
/// pair held by another stops at once (`PairBusy`); every write to either
/// system is claimed in the link first, by a conditional write that fails if
/// another run wrote the link since this one read it (`Overtaken`); a write
/// starts only while the run's lease has room for it to end; and a claim left
/// by a run that stopped is resolved from the marked copies on the other side.
pub async fn sync_pair(
    cx: &SyncContext<'_>,
    desk_ticket_id: u64,
) -> Result<SyncReport, StepFailure> {
    sync_pair_after(cx, desk_ticket_id, ChangeHint::Unknown).await
}

/// [`sync_pair`] for a change the event described ([`ChangeHint`]).
pub async fn sync_pair_after(
    cx: &SyncContext<'_>,
    desk_ticket_id: u64,
    hint: ChangeHint,
) -> Result<SyncReport, StepFailure> {
    let mut fence = Fence::new(cx);
    let mut report = SyncReport {
        desk_ticket_id: Some(desk_ticket_id),
        ..SyncReport::default()
    };
    let mut held = None;
    let result = run_pair(cx, &mut fence, &mut held, desk_ticket_id, hint, &mut report).await;
    if let (Err(_), Some(link)) = (&result, held.as_mut()) {
        if fence.holds_lease() {
            // Give the pair back now rather than make the retry wait out the
            // lease; what was written is recorded, unknown outcomes stay claimed.
            if let Err(release) = fence.release(link).await {
                warn!(step = %release.step, error = %release.error, "could not give the pair back; its lease runs out by itself");
            }
        }
    }
    result.map(|()| report)
}

async fn run_pair(
    cx: &SyncContext<'_>,
    fence: &mut Fence<'_, '_>,
    held: &mut Option<TicketLink>,
    desk_ticket_id: u64,
    hint: ChangeHint,
    report: &mut SyncReport,
) -> Result<(), StepFailure> {
    let repo = Repo::new(cx.store);
    let existing = repo
        .desk_link(&cx.tenant.id, desk_ticket_id)
        .await
        .at(Step::ReadLink)?;
    if let Some(found) = &existing {
        if let Some(why) = already_recorded(&found.value, hint) {
            debug!(?hint, "{why}");
            report.psa_ticket_id = found.value.psa_ticket_id();
            report.skipped = Some(why.to_owned());
            return Ok(());
        }
        fence.check_not_held(&found.value)?;
    }
    let ticket = cx
        .desk
        .get_ticket(desk_ticket_id)
        .await
        .at(Step::ReadDeskTicket)?;
    fence.read_at(existing.as_ref().map(|v| v.version));
    // Every create is claimed in the link before it is made, so without a
    // link no run can have created an Autotask ticket for this one.
    let created_before = existing.is_some();
    let link = held.insert(match existing {
        Some(found) => found.value,
        None => TicketLink::unclaimed(desk_ticket_id, cx.clock.now()),
    });
    let is_new = link.psa_ticket_id().is_none();
    if is_new {
        create_or_adopt(cx, fence, link, &ticket, created_before, report).await?;
    }
    let psa_ticket_id = link.psa_ticket_id().expect("linked above");
    report.psa_ticket_id = Some(psa_ticket_id);
    // Claims left by a run that stopped are resolved from the marked copies,
    // so they need the comments listed whatever the event said.
    let fields_only = hint == ChangeHint::Fields && !is_new && link.claims.is_empty();
    if !link.claims.is_empty() {
        info!(claims = ?link.claims, "resolving writes an earlier run claimed but did not record");
        report.claims_resolved = link.claims.len();
        link.claims.clear();
    }

    let mut plan = Vec::new();
    // Checked on every run, not only at create: a failed write right after
    // the link was saved would otherwise never be repaired.
    let reference = desk_external_ref(cx.tenant.psa_system(), psa_ticket_id);
    if ticket.external_id.as_deref() != Some(reference.as_str()) {
        plan.push(Planned::ExternalRef(reference));
    }
    // Field problems (a missing mapping, say) must not hold back comments:
    // they are collected, the rest is synced, and the first one is reported.
    let mut problem = None;
    let mut agreed = false;
    if !is_new {
        let fields = fields::plan(cx, &ticket, psa_ticket_id, link).await?;
        agreed = !fields.agreed.is_empty();
        fields::record(&fields.agreed, link);
        plan.extend(fields.to_psa.map(Planned::Fields));
        plan.extend(fields.to_desk.map(Planned::DeskFields));
        problem = fields.problem;
    }
    if !fields_only {
        plan.extend(plan_comments(cx, &ticket, psa_ticket_id, link, report).await?);
    }

    let unfinished = execute(cx, fence, link, &ticket, psa_ticket_id, plan, report).await?;
    let link_changed = report.writes > 0
        || report.own_copies_recognised > 0
        || report.claims_resolved > 0
        || agreed
        || link.synced_at.is_none();
    if link_changed || fence.holds_lease() {
        link.synced_at = Some(cx.clock.now());
        fence.release(link).await?;
        debug!("link saved");
    }
    if unfinished {
        if report.writes == 0 {
            return Err(StepFailure {
                step: Step::ClaimWrite,
                error: SyncError::OutOfTime,
            });
        }
        report.unfinished = true;
    }
    match problem {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// Why the event behind a job needs no run: it is about a comment or note the
/// link already pairs (most often the bridge's own copy coming back).
fn already_recorded(link: &TicketLink, hint: ChangeHint) -> Option<&'static str> {
    let known = match hint {
        ChangeHint::DeskComment { id } => link.comments.iter().any(|c| c.desk_comment_id == id),
        ChangeHint::PsaNote { id } => link.comments.iter().any(|c| c.psa_note_id == id),
        ChangeHint::Unknown | ChangeHint::Fields => false,
    };
    known.then_some("the event is about a comment or note already mirrored; nothing to do")
}

/// Finds the PSA ticket this Zendesk ticket already has (after a crash, or a
/// lost link) or creates it under a claim, and links it. `link` is either new
/// or a `Creating` claim whose run is known to have stopped.
async fn create_or_adopt(
    cx: &SyncContext<'_>,
    fence: &mut Fence<'_, '_>,
    link: &mut TicketLink,
    ticket: &DeskTicket,
    created_before: bool,
    report: &mut SyncReport,
) -> Result<(), StepFailure> {
    // Either side may already carry the cross reference: the Zendesk ticket
    // if a link was lost (a store restored or moved), the Autotask ticket if
    // a claimed create landed and its run stopped before linking it.
    let mut found = None;
    if let Some(psa_id) =
        parse_desk_external_ref(cx.tenant.psa_system(), ticket.external_id.as_deref())
    {
        found = cx.psa.get_ticket(psa_id).await.at(Step::FindPsaTicket)?;
    }
    if found.is_none() && created_before {
        found = cx
            .psa
            .find_ticket_by_external_id(&psa_external_ref(ticket.id))
            .await
            .at(Step::FindPsaTicket)?;
    }

    let (psa_ticket_id, ticket_number, seen_psa) = match found {
        Some(psa_ticket) => {
            info!(
                psa_ticket_id = psa_ticket.id,
                "adopting the PSA ticket that already references this Zendesk ticket"
            );
            report.adopted_psa_ticket = true;
            let seen_psa = SeenPsaValues {
                title: Some(psa_ticket.title),
                priority: Some(psa_ticket.priority),
                status: Some(psa_ticket.status),
            };
            (psa_ticket.id, psa_ticket.ticket_number, seen_psa)
        }
        None => {
            if link.claims.contains(&ClaimedWrite::Ticket) {
                info!("a run that claimed this create stopped and no PSA ticket carries the reference; creating it");
            }
            // Everything that can fail permanently is resolved before the claim,
            // so a missing mapping never leaves a claim behind.
            let new_ticket = new_psa_ticket(cx, ticket).await?;
            let seen_psa = SeenPsaValues {
                title: Some(stored_title(cx, &new_ticket.title)),
                priority: Some(new_ticket.priority),
                status: Some(new_ticket.status),
            };
            link.state = LinkState::Creating {
                claimed_at: cx.clock.now(),
            };
            fence.claim(link, [ClaimedWrite::Ticket]).await?;
            if fence.may_write(link).await? == MayWrite::OutOfTime {
                return Err(StepFailure {
                    step: Step::CreatePsaTicket,
                    error: SyncError::OutOfTime,
                });
            }
            let psa_id = cx
                .psa
                .create_ticket(&new_ticket)
                .await
                .at(Step::CreatePsaTicket)?;
            info!(psa_ticket_id = psa_id, "created PSA ticket");
            report.created_psa_ticket = true;
            report.writes += 1;
            // The create answers only the id; the ticket number is filled in
            // when a later run reads the ticket, rather than spend a call now.
            (psa_id, None, seen_psa)
        }
    };

    // The reverse link first: once the forward link says "linked", no later
    // run comes back here, so a reverse link lost after it would leave the
    // PSA side's events unroutable for good. The other way round, a lost
    // forward write only means the next run adopts the ticket again.
    Repo::new(cx.store)
        .put_psa_link(
            &cx.tenant.id,
            psa_ticket_id,
            PsaLink {
                desk_ticket_id: ticket.id,
            },
        )
        .await
        .at(Step::SaveLink)?;
    link.state = LinkState::Linked { psa_ticket_id };
    link.psa_ticket_number = ticket_number;
    link.seen = SeenDeskValues {
        subject: ticket.subject.clone(),
        priority: ticket.priority.clone(),
        status: ticket.status.clone(),
        cluster_id: ticket.cluster_id.clone(),
    };
    link.seen_psa = seen_psa;
    link.claims.retain(|c| *c != ClaimedWrite::Ticket);
    if fence.holds_lease() {
        fence.claim(link, []).await
    } else {
        fence.release(link).await
    }
}

async fn new_psa_ticket(
    cx: &SyncContext<'_>,
    ticket: &DeskTicket,
) -> Result<NewPsaTicket, StepFailure> {
    let mappings = &cx.tenant.mappings;
    let queue_id = cx.tenant.psa_queue_id();
    let statuses = cx
        .psa
        .ticket_statuses(queue_id)
        .await
        .at(Step::ReadPsaPicklists)?;
    let status =
        resolve_picklist("status", &mappings.initial_status, &statuses).at(Step::MapStatus)?;
    let priority = map_priority(cx, ticket.priority.as_deref()).await?;
    let rules = &cx.tenant.fields;
    // With the company rule off the cluster id is not looked at: the ticket
    // goes to the default company (Autotask requires one).
    let cluster_id = rules
        .company
        .to_psa()
        .then_some(ticket.cluster_id.as_deref())
        .flatten();
    let company = resolve_company(cx, cluster_id, ticket.organization_id).await?;
    let description = if rules.description.to_psa() {
        ticket.description.clone()
    } else {
        String::new()
    };
    let new_ticket = NewPsaTicket {
        title: ticket.subject.clone(),
        description,
        status,
        priority,
        company_id: company.company_id,
        queue_id,
        external_id: psa_external_ref(ticket.id),
        configuration_item_id: company.device,
    };
    // A field the PSA requires and the tenant's settings do not fill would
    // fail the create on every retry: said plainly now, before the claim.
    let problems = cx
        .psa
        .new_ticket_problems(&new_ticket)
        .await
        .at(Step::CreatePsaTicket)?;
    if !problems.is_empty() {
        return Err(StepFailure {
            step: Step::CreatePsaTicket,
            error: SyncError::Config(problems.join("; ")),
        });
    }
    Ok(new_ticket)
}

/// Writes claimed per store write: a first sync of thousands of comments makes
/// progress in steps, and a run that stops leaves few unknown outcomes.
const CLAIM_CHUNK: usize = 25;

/// One write a run has decided to make.
#[derive(Debug)]
enum Planned {
    ExternalRef(String),
    Fields(PsaFieldPatch),
    DeskFields(DeskFieldPatch),
    Note(DeskComment),
    Comment(PsaNote),
}

impl Planned {
    fn claim(&self) -> ClaimedWrite {
        match self {
            Planned::ExternalRef(_) => ClaimedWrite::ExternalRef,
            Planned::Fields(_) => ClaimedWrite::Fields,
            Planned::DeskFields(_) => ClaimedWrite::DeskFields,
            Planned::Note(comment) => ClaimedWrite::Note {
                desk_comment_id: comment.id,
            },
            Planned::Comment(note) => ClaimedWrite::Comment {
                psa_note_id: note.id,
            },
        }
    }
}

/// Claims the planned writes (a chunk per store write) and makes them, each
/// only while the run may still write. Returns whether writes were left for
/// another run because the time budget ran out.
async fn execute(
    cx: &SyncContext<'_>,
    fence: &mut Fence<'_, '_>,
    link: &mut TicketLink,
    ticket: &DeskTicket,
    psa_ticket_id: i64,
    plan: Vec<Planned>,
    report: &mut SyncReport,
) -> Result<bool, StepFailure> {
    let mut remaining = plan.into_iter().peekable();
    while remaining.peek().is_some() {
        if cx.clock.now() >= cx.write_deadline {
            return Ok(true);
        }
        let chunk: Vec<Planned> = remaining.by_ref().take(CLAIM_CHUNK).collect();
        fence.claim(link, chunk.iter().map(Planned::claim)).await?;
        for (at, write) in chunk.iter().enumerate() {
            if fence.may_write(link).await? == MayWrite::OutOfTime {
                unclaim(link, &chunk[at..]);
                return Ok(true);
            }
            if let Err(failure) = perform(cx, link, ticket, psa_ticket_id, write, report).await {
                // The failed write may still have landed: its claim stays for
                // the next run to resolve. The ones after it never started.
                unclaim(link, &chunk[at + 1..]);
                return Err(failure);
            }
            unclaim(link, std::slice::from_ref(write));
        }
    }
    Ok(false)
}

fn unclaim(link: &mut TicketLink, writes: &[Planned]) {
    let done: HashSet<ClaimedWrite> = writes.iter().map(Planned::claim).collect();
    link.claims.retain(|c| !done.contains(c));
}

/// Makes one write and records it in the link.
async fn perform(
    cx: &SyncContext<'_>,
    link: &mut TicketLink,
    ticket: &DeskTicket,
    psa_ticket_id: i64,
    write: &Planned,
    report: &mut SyncReport,
) -> Result<(), StepFailure> {
    match write {
        Planned::ExternalRef(reference) => {
            cx.desk
                .set_external_id(ticket.id, reference)
                .await
                .at(Step::SetDeskExternalId)?;
        }
        Planned::Fields(fields) => {
            cx.psa
                .update_ticket(psa_ticket_id, &fields.patch)
                .await
                .at(Step::UpdatePsaTicket)?;
            fields::record(&fields.marks, link);
            report.fields_updated = fields.changed.clone();
        }
        Planned::DeskFields(fields) => {
            cx.desk
                .update_ticket(ticket.id, &fields.patch)
                .await
                .at(Step::UpdateDeskTicket)?;
            fields::record(&fields.marks, link);
            report.desk_fields_updated = fields.changed.clone();
        }
        Planned::Note(comment) => {
            let note = NewPsaNote {
                title: note_title_for(comment),
                description: comment.body.clone(),
                visibility: if comment.public {
                    crate::model::Visibility::Public
                } else {
                    crate::model::Visibility::Internal
                },
            };
            let note_id = cx
                .psa
                .add_note(psa_ticket_id, &note)
                .await
                .at(Step::MirrorCommentToPsa)?;
            link.comments.push(CommentLink {
                desk_comment_id: comment.id,
                psa_note_id: note_id,
                origin: Side::Desk,
            });
            report.notes_to_psa += 1;
        }
        Planned::Comment(note) => {
            let mut note = note.clone();
            if note.creator_name.is_none() {
                if let Some(resource) = note.creator_resource_id {
                    note.creator_name = cx
                        .psa
                        .resource_name(resource)
                        .await
                        .at(Step::ReadPsaResource)?;
                }
            }
            let comment_id = cx
                .desk
                .add_comment(
                    ticket.id,
                    &comment_body_for(cx.tenant.psa_system(), &note),
                    note.visibility,
                )
                .await
                .at(Step::MirrorNoteToDesk)?;
            link.comments.push(CommentLink {
                desk_comment_id: comment_id,
                psa_note_id: note.id,
                origin: Side::Psa,
            });
            report.comments_to_desk += 1;
        }
    }
    report.writes += 1;
    Ok(())
}

/// Lists both sides, recognises the bridge's own copies, and plans a note for
/// every unmirrored comment and a comment for every unmirrored note.
async fn plan_comments(
    cx: &SyncContext<'_>,
    ticket: &DeskTicket,
    psa_ticket_id: i64,
    link: &mut TicketLink,
    report: &mut SyncReport,
) -> Result<Vec<Planned>, StepFailure> {
    let rules = &cx.tenant.fields;
    if !rules.comments.to_psa() && !rules.comments.to_desk() {
        return Ok(Vec::new());
    }
    let desk_comments = cx
        .desk
        .list_comments(ticket.id)
        .await
        .at(Step::ReadDeskComments)?;
    // A ticket this run created has no notes yet: one added since will send
    // its own event, whose run waits for this one's lease.
    let psa_notes = if report.created_psa_ticket {
        Vec::new()
    } else {
        cx.psa
            .list_notes(psa_ticket_id)
            .await
            .at(Step::ReadPsaNotes)?
    };

    let mut pairs = KnownPairs::from(&*link);
    // Recognise the bridge's own copies first (their link may have been lost
    // between the write and the link save), so neither loop mirrors them back.
    for note in &psa_notes {
        if let Some(desk_id) = desk_comment_marked_in(note) {
            if !pairs.psa.contains(&note.id) && !pairs.desk.contains(&desk_id) {
                pairs.remember(link, desk_id, note.id, Side::Desk);
                report.own_copies_recognised += 1;
            }
        }
    }
    for comment in &desk_comments {
        if let Some(note_id) = psa_note_marked_in(comment) {
            if !pairs.desk.contains(&comment.id) && !pairs.psa.contains(&note_id) {
                pairs.remember(link, comment.id, note_id, Side::Psa);
                report.own_copies_recognised += 1;
            }
        }
    }

    let mut plan = Vec::new();
    if rules.comments.to_psa() {
        // The first comment is the ticket's description, sent at create.
        for comment in desk_comments.into_iter().skip(1) {
            if !pairs.desk.contains(&comment.id) && psa_note_marked_in(&comment).is_none() {
                plan.push(Planned::Note(comment));
            }
        }
    }
    if rules.comments.to_desk() {
        for note in psa_notes {
            if !pairs.psa.contains(&note.id) && desk_comment_marked_in(&note).is_none() {
                plan.push(Planned::Comment(note));
            }
        }
    }
    Ok(plan)
}

/// Comment ids on each side that already belong to a mirrored pair.
struct KnownPairs {
    desk: HashSet<u64>,
    psa: HashSet<i64>,
}

impl From<&TicketLink> for KnownPairs {
    fn from(link: &TicketLink) -> Self {
        Self {
            desk: link.comments.iter().map(|c| c.desk_comment_id).collect(),
            psa: link.comments.iter().map(|c| c.psa_note_id).collect(),
        }
    }
}

impl KnownPairs {
    fn remember(&mut self, link: &mut TicketLink, desk: u64, psa: i64, origin: Side) {
        self.desk.insert(desk);
        self.psa.insert(psa);
        link.comments.push(CommentLink {
            desk_comment_id: desk,
            psa_note_id: psa,
            origin,
        });
    }
}
