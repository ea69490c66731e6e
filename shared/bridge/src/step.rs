//! The steps a sync or a sweep can fail at. Each has one name (kept in the
//! tenant's sync log, where admins and tests look for it) and one sentence
//! for an admin, both defined here and nowhere else.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    // The worker, before the engine runs.
    ReadJob,
    ReadTenant,
    ReadCredentials,
    ConnectDesk,
    ConnectPsa,
    // The engine, on one ticket pair.
    ReadDeskTicket,
    ReadLink,
    WaitForOtherRun,
    ClaimWrite,
    SaveLink,
    FindPsaTicket,
    ReadPsaTicket,
    ReadPsaPicklists,
    MapStatus,
    MapPriority,
    ResolveCompany,
    CreatePsaTicket,
    UpdatePsaTicket,
    UpdateDeskTicket,
    SetDeskExternalId,
    ReadDeskComments,
    ReadPsaNotes,
    ReadPsaResource,
    MirrorCommentToPsa,
    MirrorNoteToDesk,
    // The reconciliation sweep of one tenant.
    Sweep,
    ReadDeskCursor,
    ReadPsaCursor,
    ReadDeskChanges,
    ReadPsaChanges,
    EnqueueDeskJobs,
    EnqueuePsaJobs,
    SaveDeskCursor,
    SavePsaCursor,
}

impl Step {
    /// The step's name in the sync log.
    pub fn name(self) -> &'static str {
        match self {
            Step::ReadJob => "read_job",
            Step::ReadTenant => "read_tenant",
            Step::ReadCredentials => "read_credentials",
            Step::ConnectDesk => "connect_zendesk",
            Step::ConnectPsa => "connect_autotask",
            Step::ReadDeskTicket => "read_zendesk_ticket",
            Step::ReadLink => "read_link",
            Step::WaitForOtherRun => "wait_for_other_run",
            Step::ClaimWrite => "claim_write",
            Step::SaveLink => "save_link",
            Step::FindPsaTicket => "find_autotask_ticket",
            Step::ReadPsaTicket => "read_autotask_ticket",
            Step::ReadPsaPicklists => "read_autotask_picklists",
            Step::MapStatus => "map_status",
            Step::MapPriority => "map_priority",
            Step::ResolveCompany => "resolve_company",
            Step::CreatePsaTicket => "create_autotask_ticket",
            Step::UpdatePsaTicket => "update_autotask_ticket",
            Step::UpdateDeskTicket => "update_zendesk_ticket",
            Step::SetDeskExternalId => "set_zendesk_external_id",
            Step::ReadDeskComments => "read_zendesk_comments",
            Step::ReadPsaNotes => "read_autotask_notes",
            Step::ReadPsaResource => "read_autotask_resource",
            Step::MirrorCommentToPsa => "mirror_comment_to_autotask",
            Step::MirrorNoteToDesk => "mirror_note_to_zendesk",
            Step::Sweep => "sweep",
            Step::ReadDeskCursor => "read_zendesk_cursor",
            Step::ReadPsaCursor => "read_autotask_cursor",
            Step::ReadDeskChanges => "read_zendesk_changes",
            Step::ReadPsaChanges => "read_autotask_changes",
            Step::EnqueueDeskJobs => "enqueue_zendesk_jobs",
            Step::EnqueuePsaJobs => "enqueue_autotask_jobs",
            Step::SaveDeskCursor => "save_zendesk_cursor",
            Step::SavePsaCursor => "save_autotask_cursor",
        }
    }

    /// What could not be done, in an admin's words ("could not ...").
    pub fn what_failed(self) -> &'static str {
        match self {
            Step::ReadJob => "could not read the job",
            Step::ReadTenant => "could not read the tenant's settings",
            Step::ReadCredentials => "could not read the tenant's credentials",
            Step::ConnectDesk => "could not connect to Zendesk",
            Step::ConnectPsa => "could not connect to Autotask",
            Step::ReadDeskTicket => "could not read the Zendesk ticket",
            Step::ReadLink => {
                "could not look up which Zendesk ticket an Autotask ticket belongs to"
            }
            Step::WaitForOtherRun => "another run was still working on this ticket",
            Step::ClaimWrite => "could not claim the next write",
            Step::SaveLink => "could not record what was mirrored",
            Step::FindPsaTicket => "could not look for the Autotask ticket",
            Step::ReadPsaTicket => "could not read the Autotask ticket",
            Step::ReadPsaPicklists => "could not read Autotask's status and priority values",
            Step::MapStatus => "could not map the status",
            Step::MapPriority => "could not map the priority",
            Step::ResolveCompany => "could not find the company for the cluster id",
            Step::CreatePsaTicket => "could not create the Autotask ticket",
            Step::UpdatePsaTicket => "could not update the Autotask ticket",
            Step::UpdateDeskTicket => "could not update the Zendesk ticket",
            Step::SetDeskExternalId => {
                "could not write the Autotask reference on the Zendesk ticket"
            }
            Step::ReadDeskComments => "could not read the Zendesk comments",
            Step::ReadPsaNotes => "could not read the Autotask notes",
            Step::ReadPsaResource => "could not read the technician's name",
            Step::MirrorCommentToPsa => "could not copy a Zendesk comment to Autotask",
            Step::MirrorNoteToDesk => "could not copy an Autotask note to Zendesk",
            Step::Sweep => "the sweep failed",
            Step::ReadDeskCursor | Step::ReadPsaCursor => "could not read the sweep position",
            Step::ReadDeskChanges => "could not ask Zendesk what changed",
            Step::ReadPsaChanges => "could not ask Autotask what changed",
            Step::EnqueueDeskJobs | Step::EnqueuePsaJobs => "could not queue the changed tickets",
            Step::SaveDeskCursor | Step::SavePsaCursor => "could not save the sweep position",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
