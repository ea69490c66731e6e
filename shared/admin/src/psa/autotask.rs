//! Autotask's preparation checklist (DESIGN.md "The admin console").

use super::{ChecklistItem, LiveCheck};

pub const CHECKLIST: &[ChecklistItem] = &[
    ChecklistItem {
        id: "api_user",
        title: "An API-only user with its integration code",
        how: "Admin > Resources (Users): add a resource with the security level \
              \"API User (system)\", a username and secret, and the tracking \
              identifier (integration code) of this integration.",
        live: LiveCheck::ApiUser,
    },
    ChecklistItem {
        id: "callout",
        title: "A ticket webhook or an extension callout pointing at the bridge",
        how: "Either REST webhooks on Tickets and TicketNotes with the API user \
              excluded (\"Register webhooks\" under Webhooks creates them, and \
              activation does, when the API user's security level may manage \
              webhooks) or a workflow rule with an extension callout to the tenant's \
              Autotask URL shown under Webhooks.",
        live: LiveCheck::None,
    },
    ChecklistItem {
        id: "queue",
        title: "The queue tickets from Zendesk go to",
        how: "Admin > Service Desk (Tickets) > Queues: the queue must exist and be \
              active; you pick it under Mappings.",
        live: LiveCheck::Queues,
    },
    ChecklistItem {
        id: "statuses",
        title: "The ticket statuses you want to map",
        how: "Admin > Service Desk (Tickets) > Ticket Statuses: add statuses such as \
              \"Waiting Customer\" before mapping, so that every Zendesk status has one.",
        live: LiveCheck::Statuses,
    },
];
