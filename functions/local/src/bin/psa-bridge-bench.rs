//! Load benchmark of the local runner (not a test: it measures and prints).
//!
//! 1. Ingest: signed Zendesk webhooks posted over keep-alive HTTP by 64
//!    concurrent clients; every request has its HMAC verified, the tenant and
//!    its secret looked up, and a job written to the embedded queue.
//! 2. End to end: tickets opened and commented in the sandbox Zendesk at a
//!    steady rate with 50 ms latency on every API call; the time until each
//!    change is visible in the sandbox Autotask.
//! 3. Cost per change: API calls to each system and store operations per
//!    ticket created, comment, field change and technician note, with the
//!    bridge's own writes firing webhooks and callouts (so echoes are paid
//!    for here too), counted from the sandboxes and a counting store.
//! 4. Embedded writes: queue sends and conditional store puts on one SQLite
//!    file from 64 concurrent tasks, and sends from one task alone; group
//!    commit should let concurrent writers get far more through than one.
//! 5. Asset sync: a fleet of devices pushed signed to `/t/{tenant}/inventory`
//!    (pages of at most the ingest limit), a first run that creates every
//!    configuration item, then 1 % of the devices changed, pushed again and a
//!    second run; Autotask calls, wall time and store operations of each, at
//!    the API latency within the default Autotask budget (see `assets`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::connectors::budget::AutotaskBudget;
use bridge::error::StoreError;
use bridge::ports::{Condition, Item, Store};
use clap::Parser;
use futures::stream::{self, StreamExt};
use psa_bridge_local::psa_view::PsaView;
use psa_bridge_local::world::{
    tenant_secrets, wait_for, Adapters, TenantSpec, TenantWorld, World, WorldOptions,
};
use sandbox::zendesk::NewTicket;

#[derive(Parser)]
struct Args {
    /// Requests per ingest run.
    #[arg(long, default_value_t = 20_000)]
    ingest_requests: usize,
    /// Ingest runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    ingest_runs: usize,
    /// Concurrent ingest clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Steady end-to-end event rate (events per second).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Duration of the end-to-end run in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Simulated latency of every Zendesk and Autotask API call.
    #[arg(long, default_value_t = 50)]
    api_latency_ms: u64,
    /// Autotask calls in flight at once for the tenant (the shared budget's
    /// cap; production default 3). With it, one tenant's Autotask calls top
    /// out at cap / API latency per second, whatever the bridge does.
    #[arg(long, default_value_t = 3)]
    autotask_max_concurrent: usize,
    /// ConnectWise calls in flight at once for the tenant (production
    /// default 5).
    #[arg(long, default_value_t = 5)]
    connectwise_max_concurrent: usize,
    /// Run only this part: ingest, end-to-end, cost, writes or assets.
    #[arg(long)]
    only: Option<String>,
    /// Changes of each kind per tenant in the cost-per-change run.
    #[arg(long, default_value_t = 20)]
    cost_changes: usize,
    /// Writes per concurrent embedded-write run (a tenth of them for the
    /// single writer).
    #[arg(long, default_value_t = 20_000)]
    writes: usize,
    /// Devices in the asset sync run's fleet.
    #[arg(long, default_value_t = 5_000)]
    asset_devices: usize,
    /// Seconds of the first asset run on the production budget (a run
    /// pauses for the budget until its deadline; a pass of the AWS asset
    /// function writes for about 250 s).
    #[arg(long, default_value_t = 60)]
    asset_pass_secs: u64,
    /// Devices changed before the second asset run, in percent of the fleet.
    #[arg(long, default_value_t = 1.0)]
    asset_changed_percent: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "psa-bridge benchmark on {} cores",
        std::thread::available_parallelism()?.get()
    );
    let runs = |part: &str| args.only.as_deref().is_none_or(|only| only == part);
    if let Some(only) = &args.only {
        anyhow::ensure!(
            ["ingest", "end-to-end", "cost", "writes", "assets"].contains(&only.as_str()),
            "--only takes ingest, end-to-end, cost, writes or assets, not {only:?}"
        );
    }
    if runs("ingest") {
        ingest(&args).await?;
    }
    if runs("end-to-end") {
        end_to_end(&args, TenantSpec::new("acme")).await?;
        end_to_end(&args, TenantSpec::connectwise("northwind")).await?;
    }
    if runs("cost") {
        cost_per_change(&args).await?;
    }
    if runs("writes") {
        embedded_writes(&args).await?;
    }
    if runs("assets") {
        asset_sync(&args).await?;
    }
    Ok(())
}

fn signed_event(secret: &str, n: usize) -> (Vec<u8>, String, String) {
    let body = serde_json::json!({
        "type": "zen:event-type:ticket.comment_added",
        "id": format!("bench-{n}-{}", uuid::Uuid::new_v4()),
        "account_id": 1,
        "subject": format!("zen:ticket:{}", 1 + n % 5000),
        "detail": {"id": (1 + n % 5000).to_string()},
        "event": {}
    })
    .to_string()
    .into_bytes();
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let signature = sandbox::zendesk::sign(secret, &timestamp, &body);
    (body, timestamp, signature)
}

async fn ingest(args: &Args) -> anyhow::Result<()> {
    // Worker off: this measures ingest alone; jobs stay queued, counted here.
    let specs = vec![TenantSpec::new("acme")];
    let secrets = tenant_secrets(&specs)?;
    let queue = Arc::new(EmbeddedQueue::in_memory()?);
    let adapters = Adapters {
        store: Arc::new(SqliteStore::in_memory()?),
        queue: queue.clone(),
        secrets: Arc::new(FileSecrets::from_map(secrets.clone())),
    };
    let world = World::start_on(
        adapters,
        specs,
        &secrets,
        WorldOptions {
            worker_concurrency: 0,
            ..WorldOptions::default()
        },
    )
    .await?;
    let secret = world
        .tenant("acme")
        .secrets
        .zendesk_webhook_secret
        .expose()
        .to_owned();
    let url = Arc::new(format!("{}/t/acme/zendesk", world.bridge.base_url));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    let mut rates = Vec::new();
    for run in 0..args.ingest_runs {
        // Signing is the sender's cost, not the bridge's: done before the clock starts.
        let requests: Vec<_> = (0..args.ingest_requests)
            .map(|n| signed_event(&secret, run * args.ingest_requests + n))
            .collect();
        let started = Instant::now();
        let statuses: Vec<u16> = stream::iter(requests)
            .map(|(body, timestamp, signature)| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .post(url.as_str())
                        .header("x-zendesk-webhook-signature", signature)
                        .header("x-zendesk-webhook-signature-timestamp", timestamp)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let accepted = statuses.iter().filter(|s| **s == 202).count();
        anyhow::ensure!(
            accepted == args.ingest_requests,
            "only {accepted} of {} accepted",
            args.ingest_requests
        );
        let rate = accepted as f64 / elapsed.as_secs_f64();
        println!(
            "  ingest run {}: {accepted} signed webhooks in {:.2} s = {rate:.0} req/s",
            run + 1,
            elapsed.as_secs_f64()
        );
        rates.push(rate);
    }
    let depth = queue.depth()?;
    anyhow::ensure!(
        depth.visible as usize == args.ingest_requests * args.ingest_runs,
        "queue holds {} jobs, expected {}",
        depth.visible,
        args.ingest_requests * args.ingest_runs
    );
    rates.sort_by(f64::total_cmp);
    println!(
        "ingest: median {:.0} req/s over {} runs of {} requests, {} concurrent clients (every job verified in the queue)",
        rates[rates.len() / 2],
        args.ingest_runs,
        args.ingest_requests,
        args.concurrency
    );
    world.bridge.stop().await;
    Ok(())
}

async fn end_to_end(args: &Args, spec: TenantSpec) -> anyhow::Result<()> {
    let id = spec.id.clone();
    let world = Arc::new(
        World::start(
            vec![spec],
            WorldOptions {
                api_latency: Duration::from_millis(args.api_latency_ms),
                worker_concurrency: 32,
                autotask_budget: AutotaskBudget {
                    max_concurrent: args.autotask_max_concurrent,
                    ..WorldOptions::default().autotask_budget
                },
                connectwise_budget: AutotaskBudget {
                    max_concurrent: args.connectwise_max_concurrent,
                    ..WorldOptions::default().connectwise_budget
                },
                ..WorldOptions::default()
            },
        )
        .await?,
    );
    let psa_label = PsaView::of(world.tenant(&id)).label();
    let cap = if psa_label == "Autotask" {
        args.autotask_max_concurrent
    } else {
        args.connectwise_max_concurrent
    };
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    let mut waits = Vec::new();
    let mut open_tickets: Vec<u64> = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let world = world.clone();
        // Every third event opens a ticket; the others comment on an open one.
        let event = if n % 3 == 0 || open_tickets.is_empty() {
            let tenant = world.tenant(&id);
            let started = Instant::now();
            let desk_id = tenant.zendesk.create_ticket(NewTicket {
                subject: format!("bench ticket {n}"),
                description: "load".into(),
                priority: Some("normal".into()),
                status: None,
                cluster_id: Some("CL-100".into()),
                requester_name: "Bench".into(),
            });
            open_tickets.push(desk_id);
            (started, desk_id, None)
        } else {
            let desk_id = open_tickets[n % open_tickets.len()];
            let text = format!("bench comment {n}");
            let started = Instant::now();
            world
                .tenant(&id)
                .zendesk
                .add_comment(desk_id, "Bench", &text, true);
            (started, desk_id, Some(text))
        };
        let id = id.clone();
        waits.push(tokio::spawn(async move {
            let (started, desk_id, comment) = event;
            let psa = PsaView::of(world.tenant(&id));
            let visible = wait_for(Duration::from_secs(60), || {
                let ticket = psa.tickets_for(desk_id).into_iter().next()?;
                match &comment {
                    None => Some(()),
                    Some(text) => psa
                        .notes(ticket.id)
                        .iter()
                        .any(|n| n.text.contains(text.as_str()))
                        .then_some(()),
                }
            })
            .await;
            visible.map(|()| started.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    for wait in waits {
        latencies.push(
            wait.await?
                .ok_or_else(|| anyhow::anyhow!("a change never arrived"))?,
        );
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_millis();
    println!(
        "end to end ({psa_label}): {} changes at {}/s with {} ms API latency, {cap} {psa_label} calls at once: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        args.rate,
        args.api_latency_ms,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies.last().unwrap().as_millis()
    );
    Ok(())
}

/// Counts the store operations that pass through it.
struct CountingStore {
    inner: Arc<dyn Store>,
    reads: AtomicU64,
    writes: AtomicU64,
    /// Writes to the Autotask budget's items (rate bucket, concurrency slots).
    budget_writes: AtomicU64,
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(pk, sk).await
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if sk.starts_with(bridge::repo::AUTOTASK_BUDGET_SK_PREFIX) {
            self.budget_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.put(pk, sk, body, condition, expires_at).await
    }
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.query(pk, sk_prefix, newest_first, limit).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(pk, sk).await
    }
    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.scan_sort_key(sk).await
    }
}

/// Totals at one moment, to subtract.
#[derive(Clone, Copy)]
struct Counts {
    psa: u64,
    zendesk: u64,
    reads: u64,
    writes: u64,
    budget_writes: u64,
}

impl Counts {
    fn of(tenant: &TenantWorld, store: &CountingStore) -> Self {
        Self {
            psa: PsaView::of(tenant).api_calls(),
            zendesk: tenant.zendesk.api_calls(),
            reads: store.reads.load(Ordering::Relaxed),
            writes: store.writes.load(Ordering::Relaxed),
            budget_writes: store.budget_writes.load(Ordering::Relaxed),
        }
    }
}

/// Waits until the queue has been empty for half a second: every job the
/// changes caused, echoes included, has run.
async fn quiet(queue: &EmbeddedQueue) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut empty_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let depth = queue.depth()?;
        if depth.visible == 0 && depth.in_flight == 0 {
            if empty_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_millis(500)
            {
                return Ok(());
            }
        } else {
            empty_since = None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the queue never emptied: {:?}", queue.depth()?)
}

async fn cost_per_change(args: &Args) -> anyhow::Result<()> {
    use psa_bridge_local::world::AutotaskEvents;
    use sandbox::zendesk::TicketChange;

    // One tenant per Autotask event form and one on ConnectWise; none
    // excludes the API user, so every write of the bridge comes back as an
    // event (the worst case).
    let specs = vec![
        TenantSpec::new("hooked"),
        TenantSpec {
            events: AutotaskEvents::Callout,
            ..TenantSpec::new("called")
        },
        TenantSpec::connectwise("cw"),
    ];
    let secrets = tenant_secrets(&specs)?;
    let queue = Arc::new(EmbeddedQueue::in_memory()?);
    let store = Arc::new(CountingStore {
        inner: Arc::new(SqliteStore::in_memory()?),
        reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        budget_writes: AtomicU64::new(0),
    });
    let adapters = Adapters {
        store: store.clone(),
        queue: queue.clone(),
        secrets: Arc::new(FileSecrets::from_map(secrets.clone())),
    };
    let world = World::start_on(adapters, specs, &secrets, WorldOptions::default()).await?;
    let n = args.cost_changes;
    println!("cost per change ({n} of each kind per tenant; the bridge's own writes fire events):");
    for tenant in &world.tenants {
        let psa = PsaView::of(tenant);
        let form = match &tenant.connectwise {
            Some(_) => "ConnectWise callbacks".to_owned(),
            None => format!("Autotask {:?}", tenant.events),
        };
        let mut desk_ids = Vec::new();
        let mut psa_ids = Vec::new();
        let phase = |kind: &str, before: Counts| {
            let after = Counts::of(tenant, &store);
            let per = |a: u64, b: u64| (a - b) as f64 / n as f64;
            println!(
                "  {} ({form}), {kind}: {:.2} {} calls, {:.2} Zendesk calls, {:.2} store reads, {:.2} store writes ({:.2} of them the PSA budget's)",
                tenant.id,
                per(after.psa, before.psa),
                psa.label(),
                per(after.zendesk, before.zendesk),
                per(after.reads, before.reads),
                per(after.writes, before.writes),
                per(after.budget_writes, before.budget_writes),
            );
        };

        let before = Counts::of(tenant, &store);
        for i in 0..n {
            desk_ids.push(tenant.zendesk.create_ticket(NewTicket {
                subject: format!("cost ticket {i}"),
                description: "load".into(),
                priority: Some("normal".into()),
                status: None,
                cluster_id: Some("CL-100".into()),
                requester_name: "Bench".into(),
            }));
        }
        for desk_id in &desk_ids {
            let ticket = wait_for(Duration::from_secs(60), || {
                psa.tickets_for(*desk_id).into_iter().next()
            })
            .await
            .ok_or_else(|| anyhow::anyhow!("ticket {desk_id} never reached the PSA"))?;
            psa_ids.push(ticket.id);
        }
        quiet(&queue).await?;
        phase("ticket created", before);

        let before = Counts::of(tenant, &store);
        for (i, desk_id) in desk_ids.iter().enumerate() {
            tenant
                .zendesk
                .add_comment(*desk_id, "Bench", &format!("cost comment {i}"), true);
        }
        for (i, psa_id) in psa_ids.iter().enumerate() {
            let text = format!("cost comment {i}");
            wait_for(Duration::from_secs(60), || {
                psa.notes(*psa_id)
                    .iter()
                    .any(|n| n.text.contains(&text))
                    .then_some(())
            })
            .await
            .ok_or_else(|| anyhow::anyhow!("comment {i} never reached the PSA"))?;
        }
        quiet(&queue).await?;
        phase("Zendesk comment", before);

        let before = Counts::of(tenant, &store);
        for desk_id in &desk_ids {
            tenant.zendesk.update_ticket(
                *desk_id,
                TicketChange {
                    subject: None,
                    priority: Some("high".into()),
                    status: Some("open".into()),
                },
            );
        }
        let high = psa.priority_id(&tenant.config.mappings.priority["high"]);
        for desk_id in &desk_ids {
            wait_for(Duration::from_secs(60), || {
                psa.tickets_for(*desk_id)
                    .into_iter()
                    .find(|t| t.priority == high)
            })
            .await
            .ok_or_else(|| anyhow::anyhow!("field change never reached the PSA"))?;
        }
        quiet(&queue).await?;
        phase("Zendesk field change", before);

        let before = Counts::of(tenant, &store);
        for (i, psa_id) in psa_ids.iter().enumerate() {
            psa.add_technician_note(*psa_id, &format!("cost note {i}"), false);
        }
        for (i, desk_id) in desk_ids.iter().enumerate() {
            let text = format!("cost note {i}");
            wait_for(Duration::from_secs(60), || {
                tenant
                    .zendesk
                    .comments(*desk_id)
                    .iter()
                    .any(|c| c.body.contains(&text))
                    .then_some(())
            })
            .await
            .ok_or_else(|| anyhow::anyhow!("note {i} never reached Zendesk"))?;
        }
        quiet(&queue).await?;
        phase("technician note", before);
    }
    // Stopping gives back the slots kept between calls: their writes count.
    world.bridge.stop().await;
    let calls: u64 = world
        .tenants
        .iter()
        .map(|t| PsaView::of(t).api_calls())
        .sum();
    let budget_writes = store.budget_writes.load(Ordering::Relaxed);
    println!(
        "  PSA budgets: {budget_writes} store writes for {calls} PSA calls, {:.2} per call",
        budget_writes as f64 / calls.max(1) as f64
    );
    Ok(())
}

/// Runs `op(0..n)` from `tasks` concurrent tasks; returns operations per second.
async fn rate<F, Fut>(n: usize, tasks: usize, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (t..n).step_by(tasks) {
                    op(i).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn embedded_writes(args: &Args) -> anyhow::Result<()> {
    use bridge::model::{DeskTicketId, JobSubject, SyncJob, TenantId};
    use bridge::ports::Queue;

    let dir = std::env::temp_dir().join(format!(
        "psa-bridge-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bridge.db");
    let queue = Arc::new(EmbeddedQueue::open(&path)?);
    let store = Arc::new(SqliteStore::open(&path)?);
    let tenant = TenantId::parse("acme").expect("valid tenant id");
    let job = move |ticket: u64, event: String| SyncJob {
        tenant: tenant.clone(),
        subject: JobSubject::Desk(DeskTicketId(ticket)),
        desk_ticket_id: None,
        event_id: event,
        received_at_ms: 0,
        change: bridge::model::ChangeHint::Unknown,
    };

    let (q, j) = (queue.clone(), job.clone());
    let sends = rate(args.writes, args.concurrency, move |i| {
        let (q, j) = (q.clone(), j.clone());
        async move { Ok(q.send(&j(1 + i as u64 % 500, format!("evt-{i}"))).await?) }
    })
    .await?;
    let (q, j) = (queue.clone(), job);
    let one_sender = rate(args.writes / 10, 1, move |i| {
        let (q, j) = (q.clone(), j.clone());
        async move { Ok(q.send(&j(900, format!("seq-{i}"))).await?) }
    })
    .await?;
    let s = store.clone();
    let puts = rate(args.writes, args.concurrency, move |i| {
        let s = s.clone();
        async move {
            let body = format!(r#"{{"psa_ticket":{i},"comments":[]}}"#);
            s.put(
                "TENANT#acme",
                &format!("LINK#Z#{i}"),
                &body,
                Condition::MustNotExist,
                None,
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "embedded writes (one SQLite file): {sends:.0} sends/s from {} tasks, {one_sender:.0}/s from one ({:.1}x), {puts:.0} conditional puts/s from {} tasks",
        args.concurrency,
        sends / one_sender,
        args.concurrency
    );
    Ok(())
}

/// Device `i` of the asset fleet; `revision` changes its last logged user.
fn bench_device(i: usize, revision: usize) -> serde_json::Value {
    serde_json::json!({
        "inventory_id": format!("dev-{i:05}"),
        "name": format!("WS-{i:05}"),
        "state": "managed",
        "serial_number": format!("SN{i:08}"),
        "warranty_end_date": "2028-06-30",
        "make": "Dell",
        "model": "OptiPlex 7090",
        "operating_system": "Windows 11 Pro",
        "bios_name": "Dell Inc.",
        "bios_version": "2.14.0",
        "device_type": "Workstation",
        "dns_name": format!("ws-{i:05}.corp.example"),
        "drive_info": "C: 512 GB SSD",
        "gateway": "10.0.0.1",
        "ip_address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        "ram": "16 GB",
        "last_logged_user": format!("user{i}-r{revision}"),
        "cluster_id": if i.is_multiple_of(2) { "CL-100" } else { "CL-200" },
    })
}

/// Pushes `devices` signed, in pages of at most the ingest limit; returns
/// (stored, unchanged, pushes).
async fn push_devices(
    url: &str,
    secret: &str,
    devices: &[serde_json::Value],
) -> anyhow::Result<(usize, usize, usize)> {
    use bridge::assets::ingest::{
        sign, MAX_DEVICES_PER_PUSH, MAX_INVENTORY_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    };
    let client = reqwest::Client::new();
    let (mut stored, mut unchanged, mut pushes) = (0, 0, 0);
    for page in devices.chunks(MAX_DEVICES_PER_PUSH) {
        let body = serde_json::to_vec(&serde_json::json!({ "devices": page }))?;
        anyhow::ensure!(
            body.len() <= MAX_INVENTORY_BYTES,
            "a page of {} devices is {} bytes, over the push limit",
            page.len(),
            body.len()
        );
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(secret, &timestamp, &body);
        let response = client
            .post(url)
            .header(SIGNATURE_HEADER, signature)
            .header(TIMESTAMP_HEADER, timestamp)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await?;
        anyhow::ensure!(status == 200, "push refused with {status}: {answer}");
        anyhow::ensure!(
            answer["rejected"].as_array().is_some_and(Vec::is_empty),
            "devices rejected: {answer}"
        );
        stored += answer["stored"].as_u64().unwrap_or(0) as usize;
        unchanged += answer["unchanged"].as_u64().unwrap_or(0) as usize;
        pushes += 1;
    }
    Ok((stored, unchanged, pushes))
}

/// Asset sync at fleet scale: one Autotask tenant in advanced mode (every
/// UDF written), `asset_devices` devices over two clusters.
///
/// A run writes one device after the other and pauses whenever the budget
/// refuses a call, until its deadline (the next run resumes). So with the
/// production budget (9,000/h, a burst of 150, 3 at once) a first load goes
/// at the budget's rate once the burst is spent; the bench runs that for
/// `asset_pass_secs` and measures the rate, then finishes the load with the
/// world's hourly rate lifted (concurrency cap kept) to measure what it
/// costs in calls and time, and says how long those calls take at 9,000/h
/// and in how many passes of the 5-minute asset schedule. The second
/// run (1 % changed) runs on the production budget, its bucket full as after
/// an idle hour.
async fn asset_sync(args: &Args) -> anyhow::Result<()> {
    use bridge::assets::{run_tenant_assets, AssetDeps, AssetRunOptions, AssetRunSummary};
    use bridge::config::{AssetMode, AssetSettings, FieldValue, ReferenceNumberSource};
    use bridge::connectors::HttpConnectors;
    use bridge::ports::Connectors;

    let mut spec = TenantSpec::new("fleet");
    spec.default_company = true;
    spec.assets = Some(AssetSettings {
        mode: AssetMode::Advanced,
        product_id: 0,
        ci_type: Some(FieldValue::Number(1)),
        category_id: None,
        reference_number: ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: "Inventory Device ID".to_owned(),
    });
    let specs = vec![spec];
    let secrets = tenant_secrets(&specs)?;
    let store = Arc::new(CountingStore {
        inner: Arc::new(SqliteStore::in_memory()?),
        reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        budget_writes: AtomicU64::new(0),
    });
    let adapters = Adapters {
        store: store.clone(),
        queue: Arc::new(EmbeddedQueue::in_memory()?),
        secrets: Arc::new(FileSecrets::from_map(secrets.clone())),
    };
    let world = World::start_on(
        adapters,
        specs,
        &secrets,
        WorldOptions {
            api_latency: Duration::from_millis(args.api_latency_ms),
            ..WorldOptions::default()
        },
    )
    .await?;
    let tenant = world.tenant("fleet");
    let wiring = &world.bridge.wiring;
    // The production budget, kept in the same store as the world's.
    let production: Arc<dyn Connectors> = Arc::new(
        HttpConnectors::default()
            .with_shared_autotask_budget(AutotaskBudget::default(), wiring.store.clone()),
    );
    let lifted = wiring.connectors.clone();
    let on_production = AssetDeps {
        store: wiring.store.as_ref(),
        secrets: wiring.secrets.as_ref(),
        connectors: production.as_ref(),
        clock: wiring.clock.as_ref(),
    };
    let on_lifted = AssetDeps {
        connectors: lifted.as_ref(),
        ..on_production
    };
    // A full production bucket, as after an idle hour (the lifted budget
    // shares the item and may have left it anywhere).
    let refill = || async {
        store
            .delete(
                &bridge::repo::tenant_pk(&tenant.id),
                bridge::repo::AUTOTASK_RATE_SK,
            )
            .await
    };
    let options = AssetRunOptions::default();
    let url = format!("{}/t/fleet/inventory", world.bridge.base_url);
    let secret = tenant.secrets.inventory_signing_secret.expose().to_owned();
    let n = args.asset_devices;
    println!(
        "asset sync: {n} devices (advanced mode, 13 UDFs), {} ms API latency, Autotask budget {}/h, burst {}, {} at once:",
        args.api_latency_ms,
        AutotaskBudget::default().requests_per_hour,
        AutotaskBudget::default().burst,
        AutotaskBudget::default().max_concurrent
    );
    let report = |what: &str, before: Counts, started: Instant, extra: String| {
        let after = Counts::of(tenant, &store);
        println!(
            "  {what}: {} Autotask calls, {:.2} s, {} store reads, {} store writes ({} of them the budget's){extra}",
            after.psa - before.psa,
            started.elapsed().as_secs_f64(),
            after.reads - before.reads,
            after.writes - before.writes,
            after.budget_writes - before.budget_writes,
        );
    };
    let outcome = |s: &AssetRunSummary| format!("; {s}; finished {}", s.finished);

    // Push the fleet.
    let devices: Vec<_> = (0..n).map(|i| bench_device(i, 0)).collect();
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let (stored, unchanged, pushes) = push_devices(&url, &secret, &devices).await?;
    anyhow::ensure!(stored == n, "{stored} of {n} devices stored");
    report(
        "push",
        before,
        started,
        format!("; {pushes} signed push(es), {stored} stored, {unchanged} unchanged"),
    );

    // First run on the production budget: the burst, then the budget's
    // rate, until its deadline.
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let pass = Duration::from_secs(args.asset_pass_secs);
    let first_options = AssetRunOptions {
        deadline: Some(chrono::Utc::now() + chrono::Duration::from_std(pass)?),
        ..AssetRunOptions::default()
    };
    let first = run_tenant_assets(on_production, &tenant.id, &first_options).await?;
    let first_secs = started.elapsed().as_secs_f64();
    let calls_first = Counts::of(tenant, &store).psa - before.psa;
    report(
        &format!(
            "first run, production budget (full bucket), {} s deadline",
            args.asset_pass_secs
        ),
        before,
        started,
        outcome(&first),
    );
    let budget = AutotaskBudget::default();
    let after_burst = calls_first.saturating_sub(u64::from(budget.burst));
    println!(
        "  paced: {:.2} calls/s after the burst of {} ({:.2} allowed by {}/h), {} device(s) in {first_secs:.0} s",
        after_burst as f64 / first_secs,
        budget.burst,
        f64::from(budget.requests_per_hour) / 3600.0,
        budget.requests_per_hour,
        first.created,
    );

    // The rest of the first load with the hourly rate lifted.
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let mut runs = 0;
    let mut created = first.created;
    loop {
        runs += 1;
        let run = run_tenant_assets(on_lifted, &tenant.id, &options).await?;
        created += run.created;
        anyhow::ensure!(run.failed.is_empty(), "devices failed: {run}");
        if run.finished {
            break;
        }
        anyhow::ensure!(runs < 20, "the first load does not finish: {run}");
    }
    let calls_rest = Counts::of(tenant, &store).psa - before.psa;
    report(
        &format!("rest of the first load, hourly rate lifted ({runs} run(s))"),
        before,
        started,
        format!("; {created} created in all"),
    );
    let cis = tenant.autotask.configuration_items().len();
    // The world seeds a CI per cluster id.
    anyhow::ensure!(
        created == n && cis == n + tenant.clusters.len(),
        "{created} created, {cis} CIs in the sandbox for {n} devices"
    );
    let load_calls = calls_first + calls_rest;
    // A pass of the AWS asset function writes for its timeout less the
    // write reserve, at the budget's rate (the burst helps the first only).
    let pass_secs = 250.0;
    let per_pass = f64::from(budget.requests_per_hour) / 3600.0 * pass_secs;
    println!(
        "  first load in all: {load_calls} Autotask calls ({:.2} per device) = {:.1} h at the {}/h budget, paced within each run: about {} passes of the 5-minute asset schedule ({per_pass:.0} calls each)",
        load_calls as f64 / n as f64,
        load_calls as f64 / f64::from(budget.requests_per_hour),
        budget.requests_per_hour,
        (load_calls as f64 / per_pass).ceil()
    );

    // 1 % changed, the whole fleet pushed again, a second run on the
    // production budget.
    let changed = ((n as f64 * args.asset_changed_percent / 100.0).round() as usize).max(1);
    let step = n / changed;
    let devices: Vec<_> = (0..n)
        .map(|i| bench_device(i, usize::from(i % step == 0 && i / step < changed)))
        .collect();
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let (stored, unchanged, pushes) = push_devices(&url, &secret, &devices).await?;
    anyhow::ensure!(
        stored == changed,
        "{stored} devices stored, {changed} changed"
    );
    report(
        "second push",
        before,
        started,
        format!("; {pushes} signed push(es), {stored} stored, {unchanged} unchanged"),
    );
    refill().await?;
    tenant.autotask.clear_requests();
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let second = run_tenant_assets(on_production, &tenant.id, &options).await?;
    let patches = tenant
        .autotask
        .api_requests_matching("PATCH", "ConfigurationItems")
        .len();
    let posts = tenant
        .autotask
        .api_requests_matching("POST", "ConfigurationItems")
        .iter()
        .filter(|r| !r.path.ends_with("/query"))
        .count();
    report(
        &format!("second run ({changed} changed), production budget"),
        before,
        started,
        format!(
            "; {patches} CI PATCHes, {posts} CI creates{}",
            outcome(&second)
        ),
    );
    anyhow::ensure!(
        second.finished && second.updated == changed && patches == changed && posts == 0,
        "the second run did not patch exactly the {changed} changed devices: {second}"
    );

    // A third run with nothing changed: no PSA call at all.
    let (before, started) = (Counts::of(tenant, &store), Instant::now());
    let third = run_tenant_assets(on_production, &tenant.id, &options).await?;
    report(
        "third run (nothing changed)",
        before,
        started,
        outcome(&third),
    );
    world.bridge.stop().await;
    Ok(())
}
