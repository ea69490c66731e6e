//! Field directions: desk → PSA through the forward tables, PSA → desk
//! through the reverse tables, the queue restriction, and no echo either way.

use bridge::config::{Direction, FromDeskOnly};
use bridge::error::SyncError;
use bridge::model::{ChangeHint, DeskTicketPatch};
use bridge::ports::Condition;
use bridge::repo::{ClaimedWrite, Repo, SeenPsaValues};
use bridge::step::Step;
use bridge::sync::{sync_pair_after, SyncContext, SyncReport};
use testkit::fakes::FAKE_TITLE_MAX;

use crate::sync::Fixture;

const NEW: i64 = 1;
const COMPLETE: i64 = 5;
const WAITING_CUSTOMER: i64 = 7;
const IN_PROGRESS: i64 = 8;
const WAITING_VENDOR: i64 = 12;
const HIGH: i64 = 1;
const CRITICAL: i64 = 4;

/// A linked pair; returns the Zendesk and Autotask ids.
async fn linked(f: &Fixture, subject: &str) -> (u64, i64) {
    let z = f
        .desk
        .new_ticket(subject, "D", Some("normal"), Some("CL-1"));
    f.sync(z).await.unwrap();
    (z, f.link(z).await.psa_ticket_id().unwrap())
}

/// Writes made to both systems so far.
fn writes(f: &Fixture) -> (usize, usize) {
    (f.desk.api_writes(), f.psa.api_writes())
}

#[tokio::test]
async fn a_psa_status_change_reaches_the_desk_through_the_reverse_table_and_is_not_echoed() {
    let mut f = Fixture::new();
    f.config.fields.status = Direction::Both;
    let (z, p) = linked(&f, "S").await;
    assert_eq!(f.psa.ticket(p).status, NEW);

    f.psa.edit(p, |t| t.status = WAITING_CUSTOMER);
    let report = f.sync(z).await.unwrap();
    assert_eq!(report.desk_fields_updated, ["status"]);
    assert_eq!(f.desk.ticket(z).status, "pending");
    assert_eq!(
        f.desk.field_patches(),
        [(
            z,
            DeskTicketPatch {
                status: Some("pending".into()),
                ..DeskTicketPatch::default()
            }
        )]
    );
    assert!(f.psa.patches().is_empty(), "nothing was written back");

    let before = writes(&f);
    let again = f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before, "the desk's new status is not echoed");
    assert!(again.fields_updated.is_empty() && again.desk_fields_updated.is_empty());

    // And the other way, on the same pair.
    f.desk.edit(z, |t| t.status = "solved".into());
    let report = f.sync(z).await.unwrap();
    assert_eq!(report.fields_updated, ["status"]);
    assert_eq!(f.psa.ticket(p).status, COMPLETE);
    let before = writes(&f);
    f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before, "the PSA's new status is not echoed");
    assert_eq!(f.desk.field_patches().len(), 1);
}

#[tokio::test]
async fn psa_changes_are_taken_only_from_the_configured_queue() {
    let mut f = Fixture::new();
    f.config.fields.status = Direction::ToDesk;
    f.config.fields.to_desk_only_in_queue = Some(29);
    let (z, p) = linked(&f, "S").await;
    assert_eq!(f.psa.ticket(p).queue_id, Some(29));

    f.psa.edit(p, |t| t.status = IN_PROGRESS);
    f.sync(z).await.unwrap();
    assert_eq!(f.desk.ticket(z).status, "open", "in the queue: taken");

    f.psa.edit(p, |t| {
        t.queue_id = Some(8);
        t.status = COMPLETE;
    });
    let report = f.sync(z).await.unwrap();
    assert!(report.desk_fields_updated.is_empty());
    assert_eq!(f.desk.ticket(z).status, "open", "outside the queue: left");

    // Back in the queue, the desk catches up with the PSA's current value.
    f.psa.edit(p, |t| t.queue_id = Some(29));
    f.sync(z).await.unwrap();
    assert_eq!(f.desk.ticket(z).status, "solved");
    assert_eq!(f.desk.field_patches().len(), 2);
}

#[tokio::test]
async fn a_to_desk_field_ignores_desk_changes_and_takes_psa_changes() {
    let mut f = Fixture::new();
    f.config.fields.priority = Direction::ToDesk;
    let (z, p) = linked(&f, "S").await;

    f.desk.edit(z, |t| t.priority = Some("urgent".into()));
    f.sync(z).await.unwrap();
    assert!(
        f.psa.patches().is_empty(),
        "to_desk: the desk is not the source"
    );

    f.psa.edit(p, |t| t.priority = HIGH);
    let report = f.sync(z).await.unwrap();
    assert_eq!(report.desk_fields_updated, ["priority"]);
    assert_eq!(f.desk.ticket(z).priority.as_deref(), Some("high"));
    assert!(f.psa.patches().is_empty());
}

#[tokio::test]
async fn when_both_sides_changed_the_desk_value_wins() {
    let mut f = Fixture::new();
    f.config.fields.status = Direction::Both;
    let (z, p) = linked(&f, "S").await;

    f.desk.edit(z, |t| t.status = "pending".into());
    f.psa.edit(p, |t| t.status = WAITING_VENDOR);
    f.sync(z).await.unwrap();
    assert_eq!(f.psa.ticket(p).status, WAITING_CUSTOMER);
    assert_eq!(f.desk.ticket(z).status, "pending");
    assert!(f.desk.field_patches().is_empty());
}

#[tokio::test]
async fn values_that_already_agree_are_recorded_without_a_write() {
    let mut f = Fixture::new();
    f.config.fields.priority = Direction::Both;
    let (z, p) = linked(&f, "S").await;

    // Both sides moved to values that map onto each other (as after a run
    // that wrote one side and died before recording it).
    f.desk.edit(z, |t| t.priority = Some("urgent".into()));
    f.psa.edit(p, |t| t.priority = CRITICAL);
    let before = writes(&f);
    f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before);
    let link = f.link(z).await;
    assert_eq!(link.seen.priority.as_deref(), Some("urgent"));
    assert_eq!(link.seen_psa.priority, Some(CRITICAL));
}

#[tokio::test]
async fn a_title_the_psa_shortened_is_not_taken_back_to_the_desk() {
    let mut f = Fixture::new();
    f.config.fields.subject = Direction::Both;
    let long = "x".repeat(FAKE_TITLE_MAX + 40);
    let (z, p) = linked(&f, &long).await;
    assert_eq!(f.psa.ticket(p).title.chars().count(), FAKE_TITLE_MAX);

    let before = writes(&f);
    f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before, "the cut title is what the bridge wrote");
    assert_eq!(f.desk.ticket(z).subject, long);

    f.psa.edit(p, |t| t.title = "Printer fixed?".into());
    f.sync(z).await.unwrap();
    assert_eq!(f.desk.ticket(z).subject, "Printer fixed?");
    let before = writes(&f);
    f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before);
}

#[tokio::test]
async fn a_psa_value_missing_from_the_reverse_table_is_reported_and_comments_still_flow() {
    let mut f = Fixture::new();
    f.config.fields.status = Direction::ToDesk;
    f.config.mappings.status_to_desk.remove("Waiting Customer");
    let (z, p) = linked(&f, "S").await;

    f.psa.edit(p, |t| t.status = WAITING_CUSTOMER);
    f.desk.comment(z, "Ann", "still here", true);
    let err = f.sync(z).await.unwrap_err();
    assert_eq!(err.step, Step::MapStatus);
    assert!(
        matches!(
            &err.error,
            SyncError::MissingMapping { table: "status_to_desk", value } if value == "Waiting Customer"
        ),
        "{}",
        err.error
    );
    assert_eq!(f.psa.notes(p).len(), 1, "the comment was mirrored");
    assert_eq!(f.desk.ticket(z).status, "new");
    assert_eq!(
        f.link(z).await.seen_psa.status,
        Some(NEW),
        "the unmapped value is tried again on the next change"
    );
}

#[tokio::test]
async fn a_link_from_before_the_reverse_direction_takes_the_current_values_as_its_baseline() {
    let mut f = Fixture::new();
    let (z, p) = linked(&f, "S").await;
    let repo = Repo::new(f.store.as_ref());
    let stored = repo.desk_link(&f.config.id, z).await.unwrap().unwrap();
    let mut old = stored.value;
    old.seen_psa = SeenPsaValues::default();
    repo.put_desk_link(&f.config.id, &old, Condition::VersionIs(stored.version))
        .await
        .unwrap();
    f.psa.edit(p, |t| t.status = COMPLETE);
    f.config.fields.status = Direction::Both;

    let before = writes(&f);
    f.sync(z).await.unwrap();
    assert_eq!(writes(&f), before, "no value is taken on the first look");
    assert_eq!(f.link(z).await.seen_psa.status, Some(COMPLETE));

    f.psa.edit(p, |t| t.status = IN_PROGRESS);
    f.sync(z).await.unwrap();
    assert_eq!(f.desk.ticket(z).status, "open", "later changes are taken");
}

#[tokio::test]
async fn description_and_company_rules_that_are_off_are_honoured_at_create() {
    let mut f = Fixture::new();
    f.config.fields.description = FromDeskOnly::Off;
    f.config.fields.company = FromDeskOnly::Off;
    f.config.autotask.default_company_id = Some(77);
    let (_, p) = linked(&f, "S").await;
    let ticket = f.psa.ticket(p);
    assert_eq!(ticket.description.as_deref(), Some(""));
    assert_eq!(
        ticket.company_id, 77,
        "the cluster id CL-1 is not looked at"
    );
}

async fn sync_after(f: &Fixture, desk_id: u64, hint: ChangeHint) -> SyncReport {
    let cx = SyncContext::new(
        &f.config,
        f.store.as_ref(),
        &f.desk,
        f.psa.as_ref(),
        f.clock.as_ref(),
    );
    sync_pair_after(&cx, desk_id, hint).await.unwrap()
}

#[tokio::test]
async fn an_event_about_a_comment_already_mirrored_needs_no_run() {
    let f = Fixture::new();
    let (z, p) = linked(&f, "S").await;
    let comment = f.desk.comment(z, "Ann", "hello", true);
    f.sync(z).await.unwrap();
    let note = f.link(z).await.comments[0].psa_note_id;
    assert_eq!(f.psa.notes(p).len(), 1);

    // The PSA's event for the bridge's own note, and Zendesk's for the comment.
    f.desk.edit(z, |t| t.subject = "changed meanwhile".into());
    for hint in [
        ChangeHint::PsaNote { id: note },
        ChangeHint::DeskComment { id: comment },
    ] {
        let report = sync_after(&f, z, hint).await;
        assert!(report.skipped.is_some(), "{hint:?}: {report:?}");
        assert!(report.fields_updated.is_empty());
    }
    assert!(f.psa.patches().is_empty(), "the skipped runs read nothing");

    // An event about a comment the link does not know runs in full.
    let report = sync_after(&f, z, ChangeHint::DeskComment { id: comment + 1000 }).await;
    assert!(report.skipped.is_none());
    assert_eq!(report.fields_updated, ["title"]);
}

#[tokio::test]
async fn an_event_about_fields_leaves_comments_alone_unless_claims_are_open() {
    let f = Fixture::new();
    let (z, p) = linked(&f, "S").await;
    f.desk.comment(z, "Ann", "arrives with its own event", true);
    f.desk.edit(z, |t| t.status = "open".into());

    let report = sync_after(&f, z, ChangeHint::Fields).await;
    assert_eq!(report.fields_updated, ["status"]);
    assert!(
        f.psa.notes(p).is_empty(),
        "comments are their own events' job"
    );

    let report = sync_after(&f, z, ChangeHint::Unknown).await;
    assert_eq!(report.notes_to_psa, 1);

    // A claim left by a stopped run is resolved whatever the event said.
    let repo = Repo::new(f.store.as_ref());
    let stored = repo.desk_link(&f.config.id, z).await.unwrap().unwrap();
    let mut link = stored.value;
    let comment = f.desk.comment(z, "Ann", "claimed, then the run died", true);
    link.claims.push(ClaimedWrite::Note {
        desk_comment_id: comment,
    });
    repo.put_desk_link(&f.config.id, &link, Condition::VersionIs(stored.version))
        .await
        .unwrap();
    let report = sync_after(&f, z, ChangeHint::Fields).await;
    assert_eq!((report.claims_resolved, report.notes_to_psa), (1, 1));
}
