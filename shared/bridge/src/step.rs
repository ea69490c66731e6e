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
            Step::ConnectPsa => "connect_psa",
            Step::ReadDeskTicket => "read_zendesk_ticket",
            Step::ReadLink => "read_link",
            Step::WaitForOtherRun => "wait_for_other_run",
            Step::ClaimWrite => "claim_write",
            Step::SaveLink => "save_link",
            Step::FindPsaTicket => "find_psa_ticket",
            Step::ReadPsaTicket => "read_psa_ticket",
            Step::ReadPsaPicklists => "read_psa_picklists",
            Step::MapStatus => "map_status",
            Step::MapPriority => "map_priority",
            Step::ResolveCompany => "resolve_company",
            Step::CreatePsaTicket => "create_psa_ticket",
            Step::UpdatePsaTicket => "update_psa_ticket",
            Step::UpdateDeskTicket => "update_zendesk_ticket",
            Step::SetDeskExternalId => "set_zendesk_external_id",
            Step::ReadDeskComments => "read_zendesk_comments",
            Step::ReadPsaNotes => "read_psa_notes",
            Step::ReadPsaResource => "read_psa_resource",
            Step::MirrorCommentToPsa => "mirror_comment_to_psa",
            Step::MirrorNoteToDesk => "mirror_note_to_zendesk",
            Step::Sweep => "sweep",
            Step::ReadDeskCursor => "read_zendesk_cursor",
            Step::ReadPsaCursor => "read_psa_cursor",
            Step::ReadDeskChanges => "read_zendesk_changes",
            Step::ReadPsaChanges => "read_psa_changes",
            Step::EnqueueDeskJobs => "enqueue_zendesk_jobs",
            Step::EnqueuePsaJobs => "enqueue_psa_jobs",
            Step::SaveDeskCursor => "save_zendesk_cursor",
            Step::SavePsaCursor => "save_psa_cursor",
        }
    }

    /// What could not be done, in an admin's words ("could not ...").
    pub fn what_failed(self) -> &'static str {
        match self {
            Step::ReadJob => "could not read the job",
            Step::ReadTenant => "could not read the tenant's settings",
            Step::ReadCredentials => "could not read the tenant's credentials",
            Step::ConnectDesk => "could not connect to Zendesk",
            Step::ConnectPsa => "could not connect to the PSA",
            Step::ReadDeskTicket => "could not read the Zendesk ticket",
            Step::ReadLink => "could not look up which Zendesk ticket a PSA ticket belongs to",
            Step::WaitForOtherRun => "another run was still working on this ticket",
            Step::ClaimWrite => "could not claim the next write",
            Step::SaveLink => "could not record what was mirrored",
            Step::FindPsaTicket => "could not look for the PSA ticket",
            Step::ReadPsaTicket => "could not read the PSA ticket",
            Step::ReadPsaPicklists => "could not read the PSA's status and priority values",
            Step::MapStatus => "could not map the status",
            Step::MapPriority => "could not map the priority",
            Step::ResolveCompany => "could not find the company for the cluster id",
            Step::CreatePsaTicket => "could not create the PSA ticket",
            Step::UpdatePsaTicket => "could not update the PSA ticket",
            Step::UpdateDeskTicket => "could not update the Zendesk ticket",
            Step::SetDeskExternalId => "could not write the PSA reference on the Zendesk ticket",
            Step::ReadDeskComments => "could not read the Zendesk comments",
            Step::ReadPsaNotes => "could not read the PSA notes",
            Step::ReadPsaResource => "could not read the technician's name",
            Step::MirrorCommentToPsa => "could not copy a Zendesk comment to the PSA",
            Step::MirrorNoteToDesk => "could not copy a PSA note to Zendesk",
            Step::Sweep => "the sweep failed",
            Step::ReadDeskCursor | Step::ReadPsaCursor => "could not read the sweep position",
            Step::ReadDeskChanges => "could not ask Zendesk what changed",
            Step::ReadPsaChanges => "could not ask the PSA what changed",
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
