//! Engine unit tests over in-memory fakes of Zendesk and Autotask and the
//! embedded store.

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use bridge::adapters::embedded::SqliteStore;
use bridge::config::{AutotaskSettings, Mappings, TenantConfig, ZendeskSettings};
use bridge::error::SyncError;
use bridge::model::{
    DeskComment, JobSubject, PsaNote, PsaSystem, PsaTicketId, SyncJob, TenantId, Visibility,
};
use bridge::repo::{Repo, TicketLink};
use bridge::step::Step;
use bridge::sync::*;
use testkit::fakes::{FakeDesk, FakePsa, FixedClock};
use testkit::gates::{GatePoint, GatedPsa, Gates};
use testkit::hooks::{CrashingStore, StoppedPut};

pub(crate) struct Fixture {
    pub(crate) config: TenantConfig,
    pub(crate) store: Arc<CrashingStore>,
    pub(crate) desk: FakeDesk,
    pub(crate) psa: Arc<FakePsa>,
    pub(crate) clock: Arc<FixedClock>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let psa = Arc::new(FakePsa::default());
        psa.add_configuration_item("CL-1", 501);
        Self {
            config: TenantConfig {
                id: TenantId::parse("acme").unwrap(),
                active: true,
                zendesk: ZendeskSettings {
                    base_url: "http://desk".into(),
                    cluster_id_field: Some(9),
                },
                autotask: AutotaskSettings {
                    zone_lookup_url: "http://psa".into(),
                    queue_id: Some(29),
                    default_company_id: None,
                    ..AutotaskSettings::new("")
                },
                connectwise: None,
                mappings: Mappings::default(),
                fields: Default::default(),
                assets: None,
            },
            store: Arc::new(CrashingStore::new(Arc::new(
                SqliteStore::in_memory().unwrap(),
            ))),
            desk: FakeDesk::default(),
            psa,
            clock: Arc::new(FixedClock::at(
                Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
            )),
        }
    }

    pub(crate) async fn sync(&self, desk_id: u64) -> Result<SyncReport, StepFailure> {
        let cx = SyncContext::new(
            &self.config,
            self.store.as_ref(),
            &self.desk,
            self.psa.as_ref(),
            self.clock.as_ref(),
        );
        sync_pair(&cx, desk_id).await
    }

    pub(crate) async fn link(&self, desk_id: u64) -> TicketLink {
        Repo::new(self.store.as_ref())
            .desk_link(&self.config.id, desk_id)
            .await
            .unwrap()
            .unwrap()
            .value
    }
}

#[tokio::test]
async fn first_sync_creates_the_psa_ticket_with_every_mapped_field() {
    let f = Fixture::new();
    let z = f
        .desk
        .new_ticket("Printer on fire", "It smokes", Some("urgent"), Some("CL-1"));
    f.desk.edit(z, |t| t.status = "open".into());

    let report = f.sync(z).await.unwrap();

    assert!(report.created_psa_ticket);
    let tickets = f.psa.tickets();
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(t.title, "Printer on fire");
    assert_eq!(t.description.as_deref(), Some("It smokes"));
    assert_eq!(t.priority, 4, "urgent -> Critical");
    assert_eq!(
        t.status, 1,
        "first sync creates as New whatever the Zendesk status"
    );
    assert_eq!(
        t.company_id, 501,
        "company of the CI whose reference is the cluster id"
    );
    assert_eq!(t.queue_id, Some(29));
    assert_eq!(t.external_id.as_deref(), Some("zendesk:1"));
    assert_eq!(
        f.desk.ticket(z).external_id,
        Some(format!("autotask:{}", t.id))
    );
    assert_eq!(f.link(z).await.psa_ticket_id(), Some(t.id));
    let reverse = Repo::new(f.store.as_ref())
        .psa_link(&f.config.id, t.id)
        .await
        .unwrap();
    assert_eq!(reverse.map(|l| l.desk_ticket_id), Some(z));
    assert!(
        f.psa.notes(t.id).is_empty(),
        "the description is not also a note"
    );
}

#[tokio::test]
async fn unchanged_ticket_writes_nothing_and_changes_push_only_what_changed() {
    let f = Fixture::new();
    let z = f
        .desk
        .new_ticket("Subject", "Body", Some("low"), Some("CL-1"));
    f.sync(z).await.unwrap();
    let writes = f.psa.api_writes();

    let again = f.sync(z).await.unwrap();
    assert!(!again.created_psa_ticket);
    assert_eq!(f.psa.api_writes(), writes, "a replayed job writes nothing");

    let psa_id = f.psa.tickets()[0].id;
    // A technician reassigns the priority in Autotask; an unrelated Zendesk
    // change must not revert it.
    f.psa.edit(psa_id, |t| t.priority = 1);
    f.desk.edit(z, |t| {
        t.subject = "Subject v2".into();
        t.status = "solved".into();
    });
    let report = f.sync(z).await.unwrap();
    assert_eq!(report.fields_updated, vec!["title", "status"]);
    let t = &f.psa.tickets()[0];
    assert_eq!(
        (t.title.as_str(), t.status, t.priority),
        ("Subject v2", 5, 1)
    );
    let (_, patch) = f.psa.patches().pop().unwrap();
    assert_eq!(patch.priority, None, "only changed fields are sent");
}

#[tokio::test]
async fn comments_flow_both_ways_once_with_visibility_and_attribution() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    let p = f.psa.tickets()[0].id;

    f.desk.comment(z, "Ann Agent", "internal thought", false);
    f.desk.comment(z, "Carl Customer", "any news?", true);
    f.psa.technician_note(
        p,
        "Tess Tech",
        "Onsite",
        "replaced toner",
        Visibility::Public,
    );
    f.psa
        .technician_note(p, "Tess Tech", "Cost", "billable", Visibility::Internal);

    let report = f.sync(z).await.unwrap();
    assert_eq!((report.notes_to_psa, report.comments_to_desk), (2, 2));

    // Three more round trips: every side re-reports everything; nothing echoes.
    for _ in 0..3 {
        let r = f.sync(z).await.unwrap();
        assert_eq!((r.notes_to_psa, r.comments_to_desk), (0, 0));
    }
    let notes = f.psa.notes(p);
    assert_eq!(notes.len(), 4);
    let mirrored: Vec<_> = notes
        .iter()
        .filter(|n| desk_comment_marked_in(n).is_some())
        .collect();
    assert_eq!(mirrored.len(), 2);
    assert_eq!(
        mirrored[0].visibility,
        Visibility::Internal,
        "internal stays internal"
    );
    assert!(mirrored[0]
        .title
        .as_deref()
        .unwrap()
        .ends_with("by Ann Agent"));
    assert_eq!(mirrored[1].visibility, Visibility::Public);

    let comments = f.desk.comments(z);
    assert_eq!(
        comments.len(),
        5,
        "description + 2 comments + 2 mirrored notes"
    );
    let from_psa: Vec<_> = comments
        .iter()
        .filter(|c| psa_note_marked_in(c).is_some())
        .collect();
    assert!(from_psa[0].public);
    assert!(from_psa[0].body.contains("replaced toner") && from_psa[0].body.contains("Tess Tech"));
    assert!(
        !from_psa[1].public,
        "an internal note never becomes a public comment"
    );
    assert_eq!(f.link(z).await.comments.len(), 4);
}

/// Runs `run` until the store reaches the put `parked` waits for, then drops
/// it there, as a process that died at that point; returns the put it died
/// before, for the test to check it is the one its name says.
async fn crash_at<F: std::future::Future>(
    parked: tokio::sync::oneshot::Receiver<StoppedPut>,
    run: F,
) -> StoppedPut {
    tokio::select! {
        put = parked => put.expect("the store holds the put"),
        _ = run => panic!("the run finished before reaching the crash point"),
    }
}

fn past_the_lease() -> chrono::Duration {
    chrono::Duration::from_std(bridge::timing::PAIR_LEASE).unwrap() + chrono::Duration::seconds(1)
}

#[tokio::test]
async fn crash_between_psa_create_and_link_write_does_not_duplicate_the_ticket() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    // Puts: 1 = the create's claim, 2 = the reverse link after the create
    // (the first of the two link writes that record the ticket).
    let parked = f.store.park_on_put(2);
    let died_before = crash_at(parked, f.sync(z)).await;
    let created = f.psa.tickets();
    assert_eq!(created.len(), 1, "the create landed");
    assert_eq!(
        died_before.sk,
        format!("LINK#P#{}", created[0].id),
        "the run died at the reverse link write of the ticket it created"
    );
    let repo = Repo::new(f.store.as_ref());
    assert_eq!(
        repo.psa_link(&f.config.id, created[0].id).await.unwrap(),
        None,
        "no reverse link"
    );
    assert_eq!(
        f.link(z).await.psa_ticket_id(),
        None,
        "the link still holds only the create's claim"
    );

    // While the dead run's lease lasts, nobody touches the pair.
    let err = f.sync(z).await.unwrap_err();
    assert!(matches!(err.error, SyncError::PairBusy { .. }), "{err:?}");
    assert_eq!(f.psa.tickets().len(), 1);

    // Then the claim is resolved by the reference the created ticket carries.
    f.clock.advance(past_the_lease());
    let report = f.sync(z).await.unwrap();
    assert!(report.adopted_psa_ticket && !report.created_psa_ticket);
    assert_eq!(
        report.claims_resolved, 0,
        "the create claim is the link's state"
    );
    assert_eq!(f.psa.tickets().len(), 1);
    assert_eq!(f.link(z).await.psa_ticket_id(), Some(f.psa.tickets()[0].id));
}

#[tokio::test]
async fn a_link_write_refused_after_the_create_gives_the_pair_back_at_once() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    // Puts: 1 = claim, 2 = reverse link: refused (the run lives and gives up).
    f.store.refuse_put(2);
    assert!(f.sync(z).await.unwrap_err().error.is_retryable());
    let created = f.psa.tickets();
    assert_eq!(created.len(), 1, "the create landed");
    assert_eq!(
        f.store.refused_put().map(|put| put.sk),
        Some(format!("LINK#P#{}", created[0].id)),
        "the refused write is the reverse link of the ticket just created"
    );
    let link = f.link(z).await;
    assert_eq!(link.lease, None, "released, not left to run out");
    // No wait for a lease: the retry adopts the ticket at once.
    let report = f.sync(z).await.unwrap();
    assert!(report.adopted_psa_ticket);
    assert_eq!(f.psa.tickets().len(), 1);
}

#[tokio::test]
async fn crash_after_mirroring_notes_but_before_saving_the_link_does_not_duplicate_them() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    let p = f.psa.tickets()[0].id;
    for i in 0..3 {
        f.desk.comment(z, "Ann", &format!("c{i}"), true);
    }
    f.psa
        .technician_note(p, "Tess", "t", "n", Visibility::Public);
    // Puts: 1 = the claim of four writes, 2 = the link save after them.
    let parked = f.store.park_on_put(2);
    let died_before = crash_at(parked, f.sync(z)).await;
    assert_eq!(
        died_before.sk,
        format!("LINK#Z#{z}"),
        "the run died at its link save"
    );
    let unsaved: TicketLink = serde_json::from_str(&died_before.body).unwrap();
    assert!(
        unsaved.claims.is_empty() && unsaved.comments.len() == 4,
        "the save that records the four writes: {unsaved:?}"
    );
    assert_eq!(f.psa.notes(p).len(), 4);
    let claimed = f.link(z).await;
    assert_eq!(claimed.claims.len(), 4, "{claimed:?}");
    assert!(claimed.lease.is_some());

    f.clock.advance(past_the_lease());
    let report = f.sync(z).await.unwrap();
    assert_eq!(report.claims_resolved, 4);
    assert_eq!(
        report.own_copies_recognised, 4,
        "3 notes + 1 comment recognised by marker"
    );
    assert_eq!((report.notes_to_psa, report.comments_to_desk), (0, 0));
    assert_eq!(f.psa.notes(p).len(), 4);
    assert_eq!(f.desk.comments(z).len(), 5);
    let link = f.link(z).await;
    assert!(link.claims.is_empty() && link.lease.is_none(), "{link:?}");
}

#[tokio::test]
async fn a_failed_note_write_is_resumed_without_duplicates() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    let p = f.psa.tickets()[0].id;
    for i in 0..5 {
        f.desk.comment(z, "Ann", &format!("c{i}"), true);
    }
    *f.psa.fail_notes_after.lock().unwrap() = Some(2);
    let err = f.sync(z).await.unwrap_err();
    assert!(err.error.is_retryable());
    assert_eq!(err.step, Step::MirrorCommentToPsa);
    *f.psa.fail_notes_after.lock().unwrap() = None;
    f.sync(z).await.unwrap();
    let bodies: Vec<_> = f.psa.notes(p).into_iter().map(|n| n.description).collect();
    assert_eq!(bodies, ["c0", "c1", "c2", "c3", "c4"]);
}

#[tokio::test]
async fn unknown_cluster_is_a_permanent_error_unless_a_default_company_is_set() {
    let mut f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-404"));
    let err = f.sync(z).await.unwrap_err();
    assert_eq!(err.step, Step::ResolveCompany);
    assert!(!err.error.is_retryable());
    assert!(err.error.to_string().contains("CL-404"));
    assert!(f.psa.tickets().is_empty());
    assert!(
        Repo::new(f.store.as_ref())
            .desk_link(&f.config.id, z)
            .await
            .unwrap()
            .is_none(),
        "no claim is left behind by a permanent failure"
    );

    f.config.autotask.default_company_id = Some(77);
    f.sync(z).await.unwrap();
    assert_eq!(f.psa.tickets()[0].company_id, 77);
}

#[tokio::test]
async fn an_unmatched_cluster_goes_to_the_organizations_company_before_the_default() {
    let mut f = Fixture::new();
    f.config.autotask.default_company_id = Some(77);
    f.config.autotask.companies_by_organization.insert(501, 900);
    let with_org = f.desk.new_ticket("S", "D", None, Some("CL-404"));
    f.desk.edit(with_org, |t| t.organization_id = Some(501));
    let other_org = f.desk.new_ticket("S", "D", None, None);
    f.desk.edit(other_org, |t| t.organization_id = Some(502));
    let matched = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.desk.edit(matched, |t| t.organization_id = Some(501));

    for z in [with_org, other_org, matched] {
        f.sync(z).await.unwrap();
    }
    let company_of = |z: u64| {
        let reference = format!("zendesk:{z}");
        f.psa
            .tickets()
            .into_iter()
            .find(|t| t.external_id.as_deref() == Some(reference.as_str()))
            .map(|t| t.company_id)
    };
    assert_eq!(
        company_of(with_org),
        Some(900),
        "the organization's company"
    );
    assert_eq!(
        company_of(other_org),
        Some(77),
        "no association: the default"
    );
    let cluster_company = company_of(matched).unwrap();
    assert!(
        cluster_company != 900 && cluster_company != 77,
        "a matching configuration item wins over the association"
    );
}

#[tokio::test]
async fn a_missing_mapping_is_reported_but_comments_still_flow() {
    let mut f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    f.config.mappings.status.remove("pending");
    f.desk.edit(z, |t| t.status = "pending".into());
    f.desk.comment(z, "Ann", "still here", true);

    let err = f.sync(z).await.unwrap_err();
    assert_eq!(err.step, Step::MapStatus);
    assert!(matches!(
        err.error,
        SyncError::MissingMapping {
            table: "status",
            ..
        }
    ));
    assert_eq!(f.psa.notes(f.psa.tickets()[0].id).len(), 1);
    assert_eq!(
        f.link(z).await.seen.status,
        "new",
        "the unmapped value is retried later"
    );
}

#[tokio::test]
async fn psa_events_for_unlinked_tickets_are_skipped() {
    let f = Fixture::new();
    let cx = SyncContext::new(
        &f.config,
        f.store.as_ref(),
        &f.desk,
        f.psa.as_ref(),
        f.clock.as_ref(),
    );
    let job = SyncJob {
        tenant: f.config.id.clone(),
        subject: JobSubject::Psa(PsaTicketId(4242)),
        desk_ticket_id: None,
        event_id: "e".into(),
        received_at_ms: 0,
        change: bridge::model::ChangeHint::Unknown,
    };
    let report = sync_job(&cx, &job).await.unwrap();
    assert!(report.skipped.is_some());
    assert_eq!(f.psa.api_writes() + f.desk.api_writes(), 0);
}

#[test]
fn markers_round_trip_and_ignore_lookalikes() {
    let note = PsaNote {
        id: 77,
        ticket_id: 1,
        title: Some("Zendesk comment #123 by Ann".into()),
        description: "x".into(),
        visibility: Visibility::Public,
        creator_resource_id: None,
        creator_name: Some("Tess".into()),
        created_at: None,
    };
    assert_eq!(desk_comment_marked_in(&note), Some(123));
    let comment = DeskComment {
        id: 5,
        author_id: 1,
        author_name: None,
        body: comment_body_for(PsaSystem::Autotask, &note),
        public: true,
        created_at: None,
    };
    assert_eq!(psa_note_marked_in(&comment), Some(77));
    let lookalike = DeskComment {
        body: "see (Autotask note #12 for details".into(),
        ..comment
    };
    assert_eq!(psa_note_marked_in(&lookalike), None);
}

fn gated(f: &Fixture) -> (Arc<Gates>, GatedPsa) {
    let gates = Arc::new(Gates::default());
    let psa = GatedPsa {
        inner: f.psa.clone(),
        gates: gates.clone(),
    };
    (gates, psa)
}

/// A linked pair with two new Zendesk comments and one technician note.
async fn pair_with_three_writes_pending(f: &Fixture) -> (u64, i64) {
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    let p = f.psa.tickets()[0].id;
    f.desk.comment(z, "Ann", "one", true);
    f.desk.comment(z, "Ann", "two", true);
    f.psa
        .technician_note(p, "Tess", "t", "tech note", Visibility::Public);
    (z, p)
}

fn assert_each_written_once(f: &Fixture, z: u64, p: i64) {
    let notes: Vec<_> = f.psa.notes(p).into_iter().map(|n| n.description).collect();
    assert_eq!(notes, ["tech note", "one", "two"], "one note per comment");
    let copies = f
        .desk
        .comments(z)
        .into_iter()
        .filter(|c| psa_note_marked_in(c).is_some())
        .count();
    assert_eq!(copies, 1, "one comment per note");
}

/// list/list/write/write: two runs of one pair both listed before either
/// wrote. The second's claim names a link version the first has moved past,
/// so it stops before writing anything.
#[tokio::test]
async fn two_runs_that_both_listed_before_writing_write_each_note_once() {
    let f = Fixture::new();
    let (z, p) = pair_with_three_writes_pending(&f).await;
    let (gates, psa) = gated(&f);
    let mut first_listed = gates.pause_at(GatePoint::ListedNotes, 1);
    let mut second_listed = gates.pause_at(GatePoint::ListedNotes, 2);
    let cx = SyncContext::new(&f.config, f.store.as_ref(), &f.desk, &psa, f.clock.as_ref());

    let first = sync_pair(&cx, z);
    let second = sync_pair(&cx, z);
    tokio::pin!(first, second);
    first_listed
        .run_until_reached(first.as_mut(), "the first run")
        .await;
    second_listed
        .run_until_reached(second.as_mut(), "the second run")
        .await;
    first_listed.release();
    let first = first.await.unwrap();
    assert_eq!((first.notes_to_psa, first.comments_to_desk), (2, 1));
    second_listed.release();
    let err = second.await.unwrap_err();
    assert!(matches!(err.error, SyncError::Overtaken), "{err:?}");
    assert!(err.error.is_retryable());

    assert_each_written_once(&f, z, p);
    let replay = f.sync(z).await.unwrap();
    assert_eq!(replay.writes, 0);
    assert_each_written_once(&f, z, p);
}

/// A write in flight: while the first run's note is on its way, a second run
/// finds the pair held and leaves it alone.
#[tokio::test]
async fn a_run_that_finds_a_write_in_flight_leaves_the_pair_alone() {
    let f = Fixture::new();
    let (z, p) = pair_with_three_writes_pending(&f).await;
    let (gates, psa) = gated(&f);
    let mut sending = gates.pause_at(GatePoint::AddingNote, 1);
    let cx = SyncContext::new(&f.config, f.store.as_ref(), &f.desk, &psa, f.clock.as_ref());

    let first = sync_pair(&cx, z);
    tokio::pin!(first);
    sending
        .run_until_reached(first.as_mut(), "the first run")
        .await;
    let err = f.sync(z).await.unwrap_err();
    assert!(matches!(err.error, SyncError::PairBusy { .. }), "{err:?}");
    assert_eq!(f.psa.notes(p).len(), 1, "the second run wrote nothing");
    sending.release();
    first.await.unwrap();
    assert_each_written_once(&f, z, p);
}

/// A run stalled past its lease (after one write, before the next) is
/// overtaken: the next run resolves its claims from the marked copies and
/// finishes, and the stalled run stops before its next write.
#[tokio::test]
async fn a_run_stalled_past_its_lease_stops_before_its_next_write() {
    let f = Fixture::new();
    let (z, p) = pair_with_three_writes_pending(&f).await;
    let (gates, psa) = gated(&f);
    let mut wrote_one = gates.pause_at(GatePoint::AddedNote, 1);
    let cx = SyncContext::new(&f.config, f.store.as_ref(), &f.desk, &psa, f.clock.as_ref());

    let stalled = sync_pair(&cx, z);
    tokio::pin!(stalled);
    wrote_one
        .run_until_reached(stalled.as_mut(), "the stalled run")
        .await;
    f.clock.advance(past_the_lease());
    let second = f.sync(z).await.unwrap();
    assert_eq!(second.claims_resolved, 3);
    assert_eq!(second.own_copies_recognised, 1, "the stalled run's note");
    assert_eq!((second.notes_to_psa, second.comments_to_desk), (1, 1));

    wrote_one.release();
    let err = stalled.await.unwrap_err();
    assert!(matches!(err.error, SyncError::Overtaken), "{err:?}");
    assert_each_written_once(&f, z, p);
    let link = f.link(z).await;
    assert!(link.lease.is_none() && link.claims.is_empty(), "{link:?}");
}

/// A first sync longer than one run's write budget stops starting writes when
/// the budget is spent, saves what it did, and the next runs go on from there.
#[tokio::test]
async fn a_long_sync_makes_progress_across_runs_within_its_write_budget() {
    let f = Fixture::new();
    let z = f.desk.new_ticket("S", "D", None, Some("CL-1"));
    f.sync(z).await.unwrap();
    let p = f.psa.tickets()[0].id;
    for i in 0..60 {
        f.desk.comment(z, "Ann", &format!("c{i}"), true);
    }
    // Each note takes a second: 25 s of budget is about 25 notes a run.
    let clock = f.clock.clone();
    *f.psa.after_note.lock().unwrap() = Some(Box::new(move || {
        clock.advance(chrono::Duration::seconds(1));
    }));
    let mut runs = Vec::new();
    loop {
        let report = f.sync(z).await.unwrap();
        runs.push(report.notes_to_psa);
        let link = f.link(z).await;
        assert!(link.lease.is_none() && link.claims.is_empty(), "{link:?}");
        assert_eq!(
            link.comments.len(),
            runs.iter().sum::<usize>(),
            "saved as it went"
        );
        if !report.unfinished {
            break;
        }
        assert!(runs.len() < 10, "no progress: {runs:?}");
    }
    assert_eq!(runs, [25, 25, 10]);
    let bodies: Vec<_> = f.psa.notes(p).into_iter().map(|n| n.description).collect();
    let expected: Vec<_> = (0..60).map(|i| format!("c{i}")).collect();
    assert_eq!(bodies, expected);
}
