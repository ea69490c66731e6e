//! Which ticket fields a run writes, and to which side.
//!
//! A field moves when its value on one side moved away from what the link
//! recorded for that side (`seen` for the desk, `seen_psa` for the PSA) and
//! the tenant's rule lets it flow that way. What the bridge writes is
//! recorded on both sides, so its own write never looks like a change and is
//! never echoed back. When both sides moved and the rule is `both`, the
//! desk's value wins: it is where the customer and the vendor work. When the
//! two sides already agree (a write whose record was lost to a crash, or
//! values that map onto each other), nothing is written; the agreement is
//! recorded.

use tracing::{debug, warn};

use super::{AtStep, StepFailure, SyncContext};
use crate::error::SyncError;
use crate::mapping::{map_desk_value, map_psa_value, resolve_picklist};
use crate::model::{DeskTicket, DeskTicketPatch, PsaSystem, PsaTicket, PsaTicketPatch};
use crate::repo::{LogLevel, Repo, SyncLogEntry, TicketLink};
use crate::step::Step;

/// A value one side holds, recorded in the link once written or agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    DeskSubject(String),
    DeskPriority(Option<String>),
    DeskStatus(String),
    DeskCluster(Option<String>),
    PsaTitle(String),
    PsaPriority(i64),
    PsaStatus(i64),
}

impl Seen {
    fn record(&self, link: &mut TicketLink) {
        match self.clone() {
            Seen::DeskSubject(v) => link.seen.subject = v,
            Seen::DeskPriority(v) => link.seen.priority = v,
            Seen::DeskStatus(v) => link.seen.status = v,
            Seen::DeskCluster(v) => link.seen.cluster_id = v,
            Seen::PsaTitle(v) => link.seen_psa.title = Some(v),
            Seen::PsaPriority(v) => link.seen_psa.priority = Some(v),
            Seen::PsaStatus(v) => link.seen_psa.status = Some(v),
        }
    }
}

/// Records values in the link (after their write, or because both sides agree).
pub(super) fn record(marks: &[Seen], link: &mut TicketLink) {
    for mark in marks {
        mark.record(link);
    }
}

/// The PSA fields to patch; `marks` are recorded once the patch is written,
/// so a field that failed to map is tried again on the next change.
#[derive(Debug)]
pub(super) struct PsaFieldPatch {
    pub patch: PsaTicketPatch,
    pub changed: Vec<&'static str>,
    pub marks: Vec<Seen>,
}

/// The desk fields to patch from the PSA, and what to record once written.
#[derive(Debug)]
pub(super) struct DeskFieldPatch {
    pub patch: DeskTicketPatch,
    pub changed: Vec<&'static str>,
    pub marks: Vec<Seen>,
}

/// What a run does with the fields of one pair.
#[derive(Debug, Default)]
pub(super) struct FieldPlan {
    pub to_psa: Option<PsaFieldPatch>,
    pub to_desk: Option<DeskFieldPatch>,
    /// Values to record without a write.
    pub agreed: Vec<Seen>,
    /// The first field that could not be mapped (not retryable); the other
    /// fields and the comments are synced all the same.
    pub problem: Option<StepFailure>,
}

/// Plans the field writes of a linked pair. A retryable problem (the PSA
/// unreachable while reading a picklist) fails the run instead.
pub(super) async fn plan(
    cx: &SyncContext<'_>,
    ticket: &DeskTicket,
    psa_ticket_id: i64,
    link: &TicketLink,
) -> Result<FieldPlan, StepFailure> {
    let rules = &cx.tenant.fields;
    // A ConnectWise status belongs to the ticket's board, which a technician
    // may have changed: a status going to the PSA is resolved on the board
    // the ticket is on now, so the ticket is read first.
    let status_needs_board = cx.tenant.psa_system() == PsaSystem::ConnectWise
        && rules.status.to_psa()
        && ticket.status != link.seen.status;
    let psa = if rules.any_field_to_desk() || status_needs_board {
        let found = cx
            .psa
            .get_ticket(psa_ticket_id)
            .await
            .at(Step::ReadPsaTicket)?;
        if found.is_none() {
            warn!("the linked PSA ticket was not found; no field is taken from it");
        }
        found
    } else {
        None
    };
    let from_psa = match (rules.to_desk_only_in_queue, &psa) {
        (Some(queue), Some(psa)) if psa.queue_id != Some(queue) => {
            debug!(
                queue = ?psa.queue_id,
                only_queue = queue,
                "the PSA ticket is outside the queue PSA changes are taken from"
            );
            false
        }
        _ => true,
    };
    let mut planner = Planner {
        cx,
        ticket,
        link,
        psa: psa.as_ref(),
        from_psa,
        plan: FieldPlan::default(),
        psa_patch: PsaFieldPatch {
            patch: PsaTicketPatch::default(),
            changed: Vec::new(),
            marks: Vec::new(),
        },
        desk_patch: DeskFieldPatch {
            patch: DeskTicketPatch::default(),
            changed: Vec::new(),
            marks: Vec::new(),
        },
    };
    planner.subject();
    let outcome = planner.priority().await;
    planner.note(outcome)?;
    let outcome = planner.status().await;
    planner.note(outcome)?;
    let outcome = planner.company().await;
    planner.note(outcome)?;
    Ok(planner.finish())
}

struct Planner<'p, 'a> {
    cx: &'p SyncContext<'a>,
    ticket: &'p DeskTicket,
    link: &'p TicketLink,
    /// The PSA ticket, read only when some field may be taken from it.
    psa: Option<&'p PsaTicket>,
    /// Whether PSA changes may reach the desk (the queue restriction).
    from_psa: bool,
    plan: FieldPlan,
    psa_patch: PsaFieldPatch,
    desk_patch: DeskFieldPatch,
}

impl Planner<'_, '_> {
    /// Keeps the first permanent problem; a retryable one ends the plan.
    fn note(&mut self, outcome: Result<(), StepFailure>) -> Result<(), StepFailure> {
        match outcome {
            Ok(()) => Ok(()),
            Err(failure) if failure.error.is_retryable() => Err(failure),
            Err(failure) => {
                if self.plan.problem.is_none() {
                    self.plan.problem = Some(failure);
                }
                Ok(())
            }
        }
    }

    fn finish(mut self) -> FieldPlan {
        if !self.psa_patch.patch.is_empty() {
            self.plan.to_psa = Some(self.psa_patch);
        }
        if !self.desk_patch.patch.is_empty() {
            self.plan.to_desk = Some(self.desk_patch);
        }
        self.plan
    }

    /// Whether the PSA value moved away from the one recorded. An unknown
    /// recorded value is not a move: the current one becomes the baseline.
    fn psa_moved<T: PartialEq>(&self, now: Option<&T>, seen: Option<&T>) -> bool {
        matches!((now, seen), (Some(now), Some(seen)) if now != seen)
    }

    fn baseline(&mut self, unknown: bool, mark: Option<Seen>) {
        if let (true, Some(mark)) = (unknown, mark) {
            self.plan.agreed.push(mark);
        }
    }

    fn subject(&mut self) {
        let rule = self.cx.tenant.fields.subject;
        let max = self.cx.psa.title_max_chars();
        let desk = &self.ticket.subject;
        let psa_title = self.psa.map(|p| &p.title);
        if rule.to_psa() && *desk != self.link.seen.subject {
            let stored = truncate(desk, max);
            let marks = [
                Seen::DeskSubject(desk.clone()),
                Seen::PsaTitle(stored.clone()),
            ];
            if psa_title == Some(&stored) {
                self.plan.agreed.extend(marks);
            } else {
                self.psa_patch.patch.title = Some(desk.clone());
                self.psa_patch.changed.push("title");
                self.psa_patch.marks.extend(marks);
            }
        } else if rule.to_desk()
            && self.from_psa
            && self.psa_moved(psa_title, self.link.seen_psa.title.as_ref())
        {
            let title = psa_title.expect("moved").clone();
            if truncate(desk, max) == title {
                self.plan
                    .agreed
                    .extend([Seen::DeskSubject(desk.clone()), Seen::PsaTitle(title)]);
            } else {
                self.desk_patch.patch.subject = Some(title.clone());
                self.desk_patch.changed.push("subject");
                self.desk_patch
                    .marks
                    .extend([Seen::DeskSubject(title.clone()), Seen::PsaTitle(title)]);
            }
        } else {
            let unknown = self.link.seen_psa.title.is_none();
            self.baseline(unknown, psa_title.cloned().map(Seen::PsaTitle));
        }
    }

    async fn priority(&mut self) -> Result<(), StepFailure> {
        let rule = self.cx.tenant.fields.priority;
        let desk = &self.ticket.priority;
        let psa_now = self.psa.map(|p| p.priority);
        if rule.to_psa() && *desk != self.link.seen.priority {
            let value = map_priority(self.cx, desk.as_deref()).await?;
            let marks = [Seen::DeskPriority(desk.clone()), Seen::PsaPriority(value)];
            if psa_now == Some(value) {
                self.plan.agreed.extend(marks);
            } else {
                self.psa_patch.patch.priority = Some(value);
                self.psa_patch.changed.push("priority");
                self.psa_patch.marks.extend(marks);
            }
        } else if rule.to_desk()
            && self.from_psa
            && self.psa_moved(psa_now.as_ref(), self.link.seen_psa.priority.as_ref())
        {
            let value = psa_now.expect("moved");
            let wanted = priority_for_desk(self.cx, value).await?;
            let agrees = desk.as_deref() == Some(wanted)
                || map_priority(self.cx, desk.as_deref()).await.ok() == Some(value);
            if agrees {
                self.plan
                    .agreed
                    .extend([Seen::DeskPriority(desk.clone()), Seen::PsaPriority(value)]);
            } else {
                self.desk_patch.patch.priority = Some(wanted.to_owned());
                self.desk_patch.changed.push("priority");
                self.desk_patch.marks.extend([
                    Seen::DeskPriority(Some(wanted.to_owned())),
                    Seen::PsaPriority(value),
                ]);
            }
        } else {
            let unknown = self.link.seen_psa.priority.is_none();
            self.baseline(unknown, psa_now.map(Seen::PsaPriority));
        }
        Ok(())
    }

    async fn status(&mut self) -> Result<(), StepFailure> {
        let rule = self.cx.tenant.fields.status;
        let desk = &self.ticket.status;
        let psa_now = self.psa.map(|p| p.status);
        let queue = self
            .psa
            .and_then(|p| p.queue_id)
            .or(self.cx.tenant.psa_queue_id());
        if rule.to_psa() && *desk != self.link.seen.status {
            let value = map_status(self.cx, desk, queue).await?;
            let marks = [Seen::DeskStatus(desk.clone()), Seen::PsaStatus(value)];
            if psa_now == Some(value) {
                self.plan.agreed.extend(marks);
            } else {
                self.psa_patch.patch.status = Some(value);
                self.psa_patch.changed.push("status");
                self.psa_patch.marks.extend(marks);
            }
        } else if rule.to_desk()
            && self.from_psa
            && self.psa_moved(psa_now.as_ref(), self.link.seen_psa.status.as_ref())
        {
            let value = psa_now.expect("moved");
            let wanted = status_for_desk(self.cx, value, queue).await?;
            let agrees =
                desk == wanted || map_status(self.cx, desk, queue).await.ok() == Some(value);
            if agrees {
                self.plan
                    .agreed
                    .extend([Seen::DeskStatus(desk.clone()), Seen::PsaStatus(value)]);
            } else {
                self.desk_patch.patch.status = Some(wanted.to_owned());
                self.desk_patch.changed.push("status");
                self.desk_patch
                    .marks
                    .extend([Seen::DeskStatus(wanted.to_owned()), Seen::PsaStatus(value)]);
            }
        } else {
            let unknown = self.link.seen_psa.status.is_none();
            self.baseline(unknown, psa_now.map(Seen::PsaStatus));
        }
        Ok(())
    }

    async fn company(&mut self) -> Result<(), StepFailure> {
        let cluster = &self.ticket.cluster_id;
        if self.cx.tenant.fields.company.to_psa() && *cluster != self.link.seen.cluster_id {
            let choice =
                resolve_company(self.cx, cluster.as_deref(), self.ticket.organization_id).await?;
            self.psa_patch.patch.company_id = Some(choice.company_id);
            self.psa_patch.patch.configuration_item_id = choice.device;
            self.psa_patch.changed.push("company");
            self.psa_patch
                .marks
                .push(Seen::DeskCluster(cluster.clone()));
        }
        Ok(())
    }
}

/// The first `max` characters of `text`: what the PSA keeps of a title.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The title as the PSA stores it.
pub(super) fn stored_title(cx: &SyncContext<'_>, title: &str) -> String {
    truncate(title, cx.psa.title_max_chars())
}

pub(super) async fn map_priority(
    cx: &SyncContext<'_>,
    desk_priority: Option<&str>,
) -> Result<i64, StepFailure> {
    let mappings = &cx.tenant.mappings;
    let desk_value = desk_priority.unwrap_or(&mappings.priority_when_unset);
    let label = map_desk_value("priority", &mappings.priority, desk_value).at(Step::MapPriority)?;
    let values = cx
        .psa
        .ticket_picklist("priority")
        .await
        .at(Step::ReadPsaPicklists)?;
    resolve_picklist("priority", label, &values).at(Step::MapPriority)
}

/// The PSA status for a Zendesk status on a ticket in `queue_id`: by the
/// table of that queue (ConnectWise boards may have their own), resolved
/// against the statuses valid there.
pub(super) async fn map_status(
    cx: &SyncContext<'_>,
    desk_status: &str,
    queue_id: Option<i64>,
) -> Result<i64, StepFailure> {
    let label = map_desk_value("status", cx.tenant.status_table(queue_id), desk_status)
        .at(Step::MapStatus)?;
    let values = cx
        .psa
        .ticket_statuses(queue_id)
        .await
        .at(Step::ReadPsaPicklists)?;
    resolve_picklist("status", label, &values).at(Step::MapStatus)
}

async fn priority_for_desk(cx: &SyncContext<'_>, value: i64) -> Result<&'static str, StepFailure> {
    let values = cx
        .psa
        .ticket_picklist("priority")
        .await
        .at(Step::ReadPsaPicklists)?;
    map_psa_value(
        "priority_to_desk",
        &cx.tenant.mappings.priority_to_desk,
        value,
        &values,
    )
    .map(|p| p.as_str())
    .at(Step::MapPriority)
}

async fn status_for_desk(
    cx: &SyncContext<'_>,
    value: i64,
    queue_id: Option<i64>,
) -> Result<&'static str, StepFailure> {
    let values = cx
        .psa
        .ticket_statuses(queue_id)
        .await
        .at(Step::ReadPsaPicklists)?;
    map_psa_value(
        "status_to_desk",
        &cx.tenant.mappings.status_to_desk,
        value,
        &values,
    )
    .map(|s| s.as_str())
    .at(Step::MapStatus)
}

/// The PSA company of a ticket, and the device (configuration item) it is
/// about when its cluster id names one.
pub(super) struct CompanyChoice {
    pub company_id: i64,
    /// The active configuration item of that company the cluster id names.
    pub device: Option<i64>,
}

/// The company of the configuration item whose reference number is the
/// cluster id (and that item, to link the ticket to, when it is active);
/// else the company associated with the ticket's Zendesk organization;
/// else the tenant's default company. An inactive item is not linked, and
/// the sync log says why.
pub(super) async fn resolve_company(
    cx: &SyncContext<'_>,
    cluster_id: Option<&str>,
    organization_id: Option<u64>,
) -> Result<CompanyChoice, StepFailure> {
    let associated = organization_id.and_then(|org| cx.tenant.company_for_organization(org));
    let default = associated.or(cx.tenant.default_company_id());
    let cluster_id = cluster_id.map(str::trim).filter(|c| !c.is_empty());
    let fallback = |error: SyncError| {
        default
            .map(|company_id| CompanyChoice {
                company_id,
                device: None,
            })
            .ok_or(StepFailure {
                step: Step::ResolveCompany,
                error,
            })
    };
    let Some(cluster) = cluster_id else {
        return fallback(SyncError::NoCompany);
    };
    let found = cx
        .psa
        .configuration_item_for_reference(cluster)
        .await
        .at(Step::ResolveCompany)?;
    match found {
        Some(ci) => {
            if let (Some(id), false) = (ci.id, ci.active) {
                note_unlinked_device(cx, cluster, id).await;
            }
            Ok(CompanyChoice {
                company_id: ci.company_id,
                device: ci.id.filter(|_| ci.active),
            })
        }
        None => fallback(SyncError::NoCompanyForCluster {
            cluster_id: cluster.to_owned(),
        }),
    }
}

/// Says in the sync log why a ticket is not linked to the device its
/// cluster id names. Only a note: the ticket syncs all the same.
async fn note_unlinked_device(cx: &SyncContext<'_>, cluster: &str, device: i64) {
    let entry = SyncLogEntry {
        at: cx.clock.now(),
        level: LogLevel::Info,
        ticket: None,
        step: Step::ResolveCompany.name().to_owned(),
        message: format!(
            "the configuration item {device} named by cluster id {cluster:?} is inactive, so the \
             ticket is not linked to it (its company is still used)"
        ),
        retryable: false,
    };
    if let Err(error) = Repo::new(cx.store).log(&cx.tenant.id, &entry).await {
        warn!(%error, "could not write the device note to the sync log");
    }
}
