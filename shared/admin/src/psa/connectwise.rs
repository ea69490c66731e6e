//! ConnectWise PSA: shown as "coming" until its connector and screens land
//! (board, board statuses and team checks go here).

use super::ChecklistItem;

pub const AVAILABLE: bool = false;

pub const CHECKLIST: &[ChecklistItem] = &[];
