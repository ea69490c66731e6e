//! The chaos scenario, run once per backend (`chaos.rs`: embedded adapters;
//! `chaos_aws.rs`: DynamoDB, SQS and Secrets Manager on the emulator).
//!
//! Chaos, end to end: three tenants (two on Autotask, the third on
//! ConnectWise), 201 tickets and over 1,000 comments opened in Zendesk plus
//! technician notes in the PSA, while both sandboxes drop half
//! of their webhooks, send 30% twice, reorder deliveries, answer a fifth of
//! all API calls with a 5xx, hang now and then, and send bursts of 429s; and
//! the worker is killed between an Autotask create and its link write. Once
//! the faults stop, one reconciliation sweep must leave every ticket, comment
//! and note exactly once on each side, every mapped field equal, no echo,
//! nothing dead-lettered.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{assert_mirrored_exactly_once, settle_within};
use async_trait::async_trait;
use bridge::config::TenantSecrets;
use bridge::error::StoreError;
use bridge::model::TenantId;
use bridge::ports::{Condition, Store};
use bridge::repo::{ClaimedWrite, Repo, TicketLink};
use psa_bridge_local::demo::{connectwise_demo_tenant, demo_tenants};
use psa_bridge_local::psa_view::PsaView;
use sandbox::faults::{FaultConfig, FaultStats};
use sandbox::zendesk::NewTicket;
use testkit::hooks::{HookedStore, PutHook};
use testkit::world::{Backend, BackendParts, TenantSpec, TenantWorld, World, WorldOptions};
use tokio::sync::{mpsc, oneshot};

/// How big a chaos run is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// The demo tenants plus a third (`initech`) when 3.
    pub tenants: usize,
    pub tickets_per_tenant: usize,
    pub comments_per_ticket: usize,
}
/// Every third ticket gets a technician note in Autotask.
const NOTE_EVERY: usize = 3;
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const CLUSTERS: [&str; 2] = ["CL-100", "CL-200"];

/// The faults of the chaos phase; `latency` stays on afterwards.
fn chaos_faults(latency: Duration) -> FaultConfig {
    FaultConfig {
        latency,
        server_error_rate: 0.2,
        hang_rate: 0.01,
        hang: Duration::from_millis(300),
        drop_webhook_rate: 0.5,
        duplicate_webhook_rate: 0.3,
        webhook_jitter: Duration::from_millis(300),
        ..FaultConfig::default()
    }
}

/// A store that plays dead once armed: the first forward link write of a
/// run that has just created its Autotask ticket (the link still holds that
/// run's create claim; the bridge is about to record the ticket) never
/// returns, and the test is told so it can kill the worker right there.
struct KillBeforeLinkWrite {
    armed: AtomicUsize,
    parked: mpsc::UnboundedSender<ParkedLinkWrite>,
}

/// The link write the kill switch holds.
struct ParkedLinkWrite {
    tenant: String,
    desk_id: u64,
    /// The Autotask ticket the run created and was about to record.
    psa_id: i64,
    /// Resolves when the parked write is dropped: its run really died.
    dropped: oneshot::Receiver<()>,
}

/// Sends when dropped: tells the test the parked write's run is gone.
struct OnDrop(Option<oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            let _ = signal.send(());
        }
    }
}

impl KillBeforeLinkWrite {
    /// Whether `body` records the Autotask ticket that the run holding the
    /// stored link's create claim has just created (not one adopted after
    /// another run died): same lease holder, create claimed, not linked yet.
    async fn records_own_create(
        inner: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
    ) -> Result<Option<i64>, StoreError> {
        let Ok(after) = serde_json::from_str::<TicketLink>(body) else {
            return Ok(None);
        };
        let (Some(psa_id), Some(lease)) = (after.psa_ticket_id(), &after.lease) else {
            return Ok(None);
        };
        let before = inner
            .get(pk, sk)
            .await?
            .and_then(|item| serde_json::from_str::<TicketLink>(&item.body).ok());
        let own_create = before.is_some_and(|b| {
            b.psa_ticket_id().is_none()
                && b.claims.contains(&ClaimedWrite::Ticket)
                && b.lease.is_some_and(|l| l.holder == lease.holder)
        });
        Ok(own_create.then_some(psa_id))
    }
}

#[async_trait]
impl PutHook for KillBeforeLinkWrite {
    async fn before_put(
        &self,
        inner: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        // Once disarmed, no extra read per link write.
        if self.armed.load(Ordering::SeqCst) == 0
            || !sk.starts_with("LINK#Z#")
            || !matches!(condition, Condition::VersionIs(_))
        {
            return Ok(());
        }
        let Some(psa_id) = Self::records_own_create(inner, pk, sk, body).await? else {
            return Ok(());
        };
        let take = || {
            self.armed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if take() {
            let (signal, dropped) = oneshot::channel();
            let _signal_on_drop = OnDrop(Some(signal));
            let _ = self.parked.send(ParkedLinkWrite {
                tenant: pk.trim_start_matches("TENANT#").to_owned(),
                desk_id: sk
                    .trim_start_matches("LINK#Z#")
                    .parse()
                    .expect("numeric Zendesk ticket id"),
                psa_id,
                dropped,
            });
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// Where the worker was killed.
struct Kill {
    tenant: String,
    desk_id: u64,
    psa_id: i64,
}

/// Kills the worker at `parked`, after checking that the write held there
/// is the link write right after an Autotask create (the ticket exists, the
/// link does not record it yet), and checks that the kill dropped it.
async fn kill_worker_at(world: &mut World, parked: ParkedLinkWrite) -> Kill {
    let ParkedLinkWrite {
        tenant,
        desk_id,
        psa_id,
        dropped,
    } = parked;
    {
        let t = world.tenant(&tenant);
        let created: Vec<i64> = PsaView::of(t)
            .tickets_for(desk_id)
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            created,
            [psa_id],
            "{tenant}: the killed run created PSA ticket {psa_id} for Zendesk #{desk_id}"
        );
        let link = Repo::new(world.store())
            .desk_link(&t.id, desk_id)
            .await
            .expect("link readable")
            .expect("the create was claimed in the link");
        assert_eq!(
            link.value.psa_ticket_id(),
            None,
            "{tenant}: the link write after the create has not happened"
        );
    }
    world.crash_worker().await;
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .expect("killing the worker dropped the parked link write")
        .ok();
    Kill {
        tenant,
        desk_id,
        psa_id,
    }
}

/// Any backend, behind the kill switch.
struct KillSwitch<'a> {
    inner: &'a dyn Backend,
    kills: usize,
    parked: mpsc::UnboundedSender<ParkedLinkWrite>,
}

#[async_trait]
impl Backend for KillSwitch<'_> {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts> {
        let mut parts = self.inner.build(secrets).await?;
        parts.store = Arc::new(HookedStore {
            inner: parts.store,
            hook: KillBeforeLinkWrite {
                armed: AtomicUsize::new(self.kills),
                parked: self.parked.clone(),
            },
        });
        Ok(parts)
    }
}

fn psa_ticket_of(t: &TenantWorld, z: u64) -> Option<i64> {
    PsaView::of(t).tickets_for(z).first().map(|p| p.id)
}

struct Opened {
    desk_id: u64,
    subject: String,
    priority: &'static str,
    cluster: &'static str,
}

/// Runs the chaos scenario on `backend` (whose queue must allow a few dozen
/// receives and redeliver a killed worker's messages within seconds), asserts
/// convergence, and writes the counts to `target/tmp/<report_file>`
/// (`cargo test` hides a passing test's output; CI prints the file).
pub async fn converges_exactly_once_after_chaos_and_one_sweep(
    backend: &dyn Backend,
    scale: Scale,
    report_file: &str,
) {
    let _alone = crate::support::alone().await;
    let started = Instant::now();
    let (parked_tx, mut parked) = mpsc::unbounded_channel();
    // The demo's tenants: two on Autotask (webhooks, callouts), one on
    // ConnectWise; then more Autotask ones.
    let mut specs: Vec<TenantSpec> = demo_tenants();
    specs.push(connectwise_demo_tenant());
    specs.push(TenantSpec::new("initech"));
    specs.truncate(scale.tenants);
    for spec in &mut specs {
        // The bridge's own writes fire webhooks too, so echoes are possible.
        spec.exclude_api_user = false;
    }
    let latency = Duration::from_millis(2);
    let mut world = World::start_on(
        &KillSwitch {
            inner: backend,
            kills: 1,
            parked: parked_tx,
        },
        specs,
        WorldOptions {
            api_latency: latency,
            backoff_base: Duration::from_millis(25),
            permanent_retry: Duration::from_millis(500),
            ..WorldOptions::default()
        },
    )
    .await
    .unwrap();
    for t in &world.tenants {
        t.zendesk.faults().set(chaos_faults(latency));
        PsaView::of(t).faults().set(chaos_faults(latency));
    }

    // Zendesk: tickets with comments, interleaved across tenants.
    let mut opened: BTreeMap<String, Vec<Opened>> = BTreeMap::new();
    let mut kills = Vec::new();
    let mut sweeps_during_chaos = 0;
    for i in 0..scale.tickets_per_tenant {
        for t in &world.tenants {
            let subject = format!("{} chaos ticket {i}", t.id);
            let priority = PRIORITIES[i % PRIORITIES.len()];
            let cluster = CLUSTERS[i % CLUSTERS.len()];
            let desk_id = t.zendesk.create_ticket(NewTicket {
                subject: subject.clone(),
                description: format!("{subject}: what happened"),
                priority: Some(priority.into()),
                status: None,
                cluster_id: Some(cluster.into()),
                requester_name: "Casey Customer".into(),
            });
            for c in 0..scale.comments_per_ticket {
                t.zendesk.add_comment(
                    desk_id,
                    "Agent Alex",
                    &format!("update {c} on {subject}"),
                    c % 2 == 0,
                );
            }
            opened.entry(t.id.to_string()).or_default().push(Opened {
                desk_id,
                subject,
                priority,
                cluster,
            });
        }
        if i % 10 == 5 {
            // A 429 burst at one tenant's Zendesk and another's Autotask.
            let a = &world.tenants[i % world.tenants.len()];
            let b = &world.tenants[(i + 1) % world.tenants.len()];
            a.zendesk.faults().update(|f| {
                f.rate_limit_burst = 25;
                f.retry_after_secs = 1;
            });
            PsaView::of(b).faults().update(|f| {
                f.rate_limit_burst = 25;
                f.retry_after_secs = 1;
            });
        }
        if i % 20 == 19 {
            // The timer's sweep, under the same faults.
            let _ = world.sweep_now().await;
            sweeps_during_chaos += 1;
        }
        if let Ok(at) = parked.try_recv() {
            kills.push(kill_worker_at(&mut world, at).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if kills.is_empty() {
        // Creates go on in the background; wait for the armed one.
        let at = tokio::time::timeout(Duration::from_secs(60), parked.recv())
            .await
            .expect("a create reached its link write while armed")
            .expect("the kill switch is alive");
        kills.push(kill_worker_at(&mut world, at).await);
    }

    // The faults stay on while the bridge works through the backlog, with
    // the timer's sweeps, until most tickets made it to Autotask.
    let arrived = |world: &World| -> usize {
        opened
            .iter()
            .map(|(tenant, tickets)| {
                let t = world.tenant(tenant);
                tickets
                    .iter()
                    .filter(|o| psa_ticket_of(t, o.desk_id).is_some())
                    .count()
            })
            .sum()
    };
    let total: usize = opened.values().map(Vec::len).sum();
    let waiting = Instant::now();
    while arrived(&world) * 10 < total * 8 && waiting.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = world.sweep_now().await;
        sweeps_during_chaos += 1;
    }

    // Technicians answer in Autotask on tickets that made it there, and
    // agents add a comment in Zendesk, all still under faults.
    let mut technician_notes = 0;
    for (tenant, tickets) in &opened {
        let t = world.tenant(tenant);
        for (n, o) in tickets.iter().enumerate() {
            if n % NOTE_EVERY == 0 {
                if let Some(psa_id) = psa_ticket_of(t, o.desk_id) {
                    PsaView::of(t).add_technician_note(
                        psa_id,
                        &format!("technician note {n} for {}", o.subject),
                        n % 2 == 0,
                    );
                    technician_notes += 1;
                }
            }
            if n % NOTE_EVERY == 1 {
                t.zendesk.add_comment(
                    o.desk_id,
                    "Agent Alex",
                    "Any news from the technician?",
                    true,
                );
            }
        }
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = world.sweep_now().await;
        sweeps_during_chaos += 1;
    }

    // The faults stop. What is queued drains; then exactly one sweep.
    let mut injected = Vec::new();
    for t in &world.tenants {
        injected.push((
            t.id.to_string(),
            t.zendesk.faults().stats(),
            PsaView::of(t).faults().stats(),
        ));
        let psa = PsaView::of(t);
        for faults in [t.zendesk.faults(), psa.faults()] {
            faults.set(FaultConfig {
                latency,
                ..FaultConfig::default()
            });
        }
    }
    let chaos_done = started.elapsed();
    settle_within(&world, Duration::from_secs(2), Duration::from_secs(300)).await;
    // The sweeps during the chaos may have used up Zendesk's 10 export
    // requests a minute; the next sweep in production comes 5 minutes later.
    for t in &world.tenants {
        t.zendesk.forget_export_requests();
    }
    let reports = world.sweep_now().await.expect("tenants listed");
    for report in &reports {
        assert!(report.is_ok(), "the sweep after the faults: {report}");
    }
    settle_within(&world, Duration::from_secs(2), Duration::from_secs(300)).await;

    // Every ticket, comment and note exactly once on each side, no echoes.
    let mut report = Vec::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push(line);
    };
    say(format!("chaos: {} worker kill(s) between a PSA create and its link write, {sweeps_during_chaos} sweep(s) under faults, then 1 sweep", kills.len()));
    for (tenant, zendesk, autotask) in &injected {
        say(format!(
            "  {tenant}: Zendesk webhooks sent {} dropped {} duplicated {}, API 5xx {} 429 {} hung {}; \
             PSA webhooks/callouts/callbacks sent {} dropped {} duplicated {}, API 5xx {} 429 {} hung {}",
            zendesk.webhooks_sent, zendesk.webhooks_dropped, zendesk.webhooks_duplicated,
            zendesk.server_errors, zendesk.rate_limited, zendesk.hung,
            autotask.webhooks_sent, autotask.webhooks_dropped, autotask.webhooks_duplicated,
            autotask.server_errors, autotask.rate_limited, autotask.hung,
        ));
    }
    let (mut all_tickets, mut all_notes, mut all_comments, mut desk_comments) = (0, 0, 0, 0);
    for (tenant, tickets) in &opened {
        let t = world.tenant(tenant);
        let ids: Vec<u64> = tickets.iter().map(|o| o.desk_id).collect();
        let (psa_tickets, notes, comments) = assert_mirrored_exactly_once(t, &ids);

        // Every mapped field equal.
        let psa = PsaView::of(t);
        for o in tickets {
            let psa_id = psa_ticket_of(t, o.desk_id).unwrap();
            let p = psa.tickets_for(o.desk_id).remove(0);
            assert_eq!(p.title, o.subject, "{tenant}: title");
            assert!(
                p.description
                    .as_deref()
                    .is_some_and(|d| d.contains(&format!("{}: what happened", o.subject))),
                "{tenant}: description {:?}",
                p.description
            );
            let label = &t.config.mappings.priority[o.priority];
            assert_eq!(
                p.priority,
                psa.priority_id(label),
                "{tenant}: priority {}",
                o.priority
            );
            assert_eq!(
                p.status,
                psa.status_id(&t.config.mappings.initial_status),
                "{tenant}: created as New"
            );
            let company = t.clusters.iter().find(|(c, _)| c == o.cluster).unwrap().1;
            assert_eq!(
                p.company_id, company,
                "{tenant}: company of cluster {}",
                o.cluster
            );
            assert_eq!(
                t.zendesk.ticket(o.desk_id).unwrap().external_id,
                Some(format!("{}:{psa_id}", psa.label().to_lowercase())),
                "{tenant}: cross reference on the Zendesk side"
            );
        }
        let originals: usize = ids
            .iter()
            .map(|&z| {
                t.zendesk
                    .comments(z)
                    .iter()
                    .skip(1)
                    .filter(|c| !c.via_api)
                    .count()
            })
            .sum();
        say(format!(
            "  {tenant} ({}): {} Zendesk tickets -> {psa_tickets} PSA tickets; {originals} Zendesk comments and \
             {} technician notes -> {notes} PSA notes, {comments} Zendesk comments (description included); echoes 0",
            psa.label(),
            ids.len(),
            notes - originals,
        ));
        all_tickets += psa_tickets;
        all_notes += notes;
        all_comments += comments;
        desk_comments += originals;
    }
    let depth = world.queue_depth().await.unwrap();
    assert_eq!(depth.dead, 0, "nothing dead-lettered: {depth:?}");
    assert_eq!(kills.len(), 1);
    for kill in &kills {
        // The next run adopted the ticket the killed run created.
        let t = world.tenant(&kill.tenant);
        let link = Repo::new(world.store())
            .desk_link(&t.id, kill.desk_id)
            .await
            .unwrap()
            .expect("linked");
        assert_eq!(
            link.value.psa_ticket_id(),
            Some(kill.psa_id),
            "{}: Zendesk #{} linked to the ticket its killed run created",
            kill.tenant,
            kill.desk_id
        );
    }
    let opened_total = scale.tenants * scale.tickets_per_tenant;
    assert_eq!(all_tickets, opened_total);
    assert!(
        desk_comments >= opened_total * scale.comments_per_ticket,
        "{desk_comments}"
    );
    assert!(
        technician_notes * 10 >= opened_total * 2,
        "notes written under faults: {technician_notes}"
    );
    assert_eq!(all_notes, desk_comments + technician_notes);
    let total = |stat: fn(&FaultStats) -> u64| -> u64 {
        injected.iter().map(|(_, z, a)| stat(z) + stat(a)).sum()
    };
    let dropped = total(|s| s.webhooks_dropped);
    let duplicated = total(|s| s.webhooks_duplicated);
    let errors = total(|s| s.server_errors);
    let limited = total(|s| s.rate_limited);
    assert!(
        dropped > 0 && duplicated > 0 && errors > 0 && limited > 0,
        "the faults really happened"
    );
    say(format!(
        "chaos totals: {all_tickets} tickets on each side, {desk_comments} Zendesk comments and {technician_notes} technician notes, \
         {all_notes} PSA notes, {all_comments} Zendesk comments, 0 echoes, 0 dead-lettered; \
         faults: {dropped} webhooks dropped, {duplicated} duplicated, {errors} 5xx, {limited} 429; \
         chaos phase {:.1} s, converged {:.1} s",
        chaos_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(report_file);
    std::fs::write(&path, report.join("\n") + "\n").expect("chaos report written");
    world.stop().await;
}
