//! The marks the bridge leaves in what it writes: the cross references on
//! both tickets, the note title and the comment trailer that name the
//! original. They make a copy recognisable as the bridge's own even when the
//! link that recorded it was lost, which is what resolves a dead run's claims.

use crate::model::{DeskComment, PsaNote, PsaSystem};

const SYSTEMS: [PsaSystem; 2] = [PsaSystem::Autotask, PsaSystem::ConnectWise];

/// The PSA cross reference (Autotask `externalID`, ConnectWise
/// `externalXRef`) the bridge gives the ticket it creates.
pub fn psa_external_ref(desk_ticket_id: u64) -> String {
    format!("zendesk:{desk_ticket_id}")
}

/// The Zendesk `external_id` the bridge sets on a linked ticket
/// (`autotask:123`, `connectwise:123`).
pub fn desk_external_ref(system: PsaSystem, psa_ticket_id: i64) -> String {
    format!("{}:{psa_ticket_id}", system.name())
}

pub(super) fn parse_desk_external_ref(system: PsaSystem, external_id: Option<&str>) -> Option<i64> {
    external_id?
        .strip_prefix(system.name())?
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// Title of a note the bridge writes for a Zendesk comment. It names the
/// comment (the echo and crash marker) and its author, so the PSA shows who
/// wrote it rather than the API user.
pub fn note_title_for(comment: &DeskComment) -> String {
    let author = comment.author_name.as_deref().unwrap_or("Zendesk user");
    format!("Zendesk comment #{} by {author}", comment.id)
}

/// The Zendesk comment id a bridge-written note mirrors, if it is one.
pub fn desk_comment_marked_in(note: &PsaNote) -> Option<u64> {
    let rest = note.title.as_deref()?.strip_prefix("Zendesk comment #")?;
    leading_number(rest)
}

/// Body of a Zendesk comment the bridge writes for a PSA note; the trailer
/// attributes it to the technician and marks it as the bridge's copy.
pub fn comment_body_for(system: PsaSystem, note: &PsaNote) -> String {
    let author = note.creator_name.as_deref().unwrap_or(system.label());
    let text = match note.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => format!("{title}\n\n{}", note.description),
        _ => note.description.clone(),
    };
    format!(
        "{text}\n\n— {author} ({} note #{})",
        system.label(),
        note.id
    )
}

/// The PSA note id a bridge-written Zendesk comment mirrors, if it is one.
pub fn psa_note_marked_in(comment: &DeskComment) -> Option<i64> {
    let (at, marker) = SYSTEMS
        .iter()
        .filter_map(|system| {
            let marker = format!("({} note #", system.label());
            comment.body.rfind(&marker).map(|at| (at, marker))
        })
        .max_by_key(|(at, _)| *at)?;
    let rest = &comment.body[at + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if rest[digits.len()..].starts_with(')') {
        digits.parse().ok()
    } else {
        None
    }
}

fn leading_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
