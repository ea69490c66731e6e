//! `psa-bridge`: the local all-in-one process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::assets::{
    check_tenant_assets, import_batch, parse_csv_batch, parse_json_batch, run_tenant_assets,
    AssetDeps, AssetRunOptions,
};
use bridge::model::TenantId;
use bridge::ports::Condition;
use bridge::repo::Repo;
use bridge::wiring::Wiring;
use clap::{Parser, Subcommand};
use psa_bridge_local::console::ConsoleOptions;
use psa_bridge_local::settings::Settings;
use psa_bridge_local::world::WorldOptions;
use psa_bridge_local::{demo, LocalBridge};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "psa-bridge",
    about = "Keeps Zendesk and Autotask tickets in sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandboxes and two demo tenants, sync some tickets, print what arrived.
    Demo {
        /// Latency added to every sandbox API call, in milliseconds.
        #[arg(long, default_value_t = 50)]
        api_latency_ms: u64,
        /// Keep serving the sandboxes and the admin console after the demo,
        /// until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Run the bridge with a configuration file.
    Run {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Run one reconciliation sweep: queue a job for every ticket changed since
    /// the last sweep (a running `run` process works them off), print what it did.
    Sweep {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Move dead-lettered jobs back to the queue (after fixing their cause).
    Replay {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
    },
    /// Store a device inventory file (JSON `{"devices":[...]}` or array, or
    /// CSV with a header row) for a tenant, as a signed push would; a later
    /// `sync-assets` (or the schedule) writes it to the PSA.
    ImportDevices {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        /// `.csv` is read as CSV, anything else as JSON.
        #[arg(long)]
        file: PathBuf,
    },
    /// Run asset sync for a tenant now and print its summary.
    SyncAssets {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
    },
    /// Check that the PSA has what the tenant's asset settings name (product,
    /// CI type, category, UDFs); lists what is missing and where to create it.
    CheckAssets {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
    },
    /// Create the first operator of the admin console (`/admin`). The
    /// password comes from PSA_BRIDGE_OPERATOR_PASSWORD or, if that is not
    /// set, from the first line of standard input, never from an argument
    /// (arguments show in the process list and the shell history).
    CreateOperator {
        #[arg(long, short, env = "PSA_BRIDGE_CONFIG", default_value = "bridge.toml")]
        config: PathBuf,
        /// The operator's e-mail address (their sign-in name).
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Command::Demo {
            api_latency_ms,
            serve,
        } => {
            let outbox =
                std::env::temp_dir().join(format!("psa-bridge-demo-outbox-{}", std::process::id()));
            demo::run(
                WorldOptions {
                    api_latency: Duration::from_millis(api_latency_ms),
                    console: Some(ConsoleOptions::outbox_only(outbox)),
                    ..WorldOptions::default()
                },
                serve,
            )
            .await
        }
        Command::Run { config } => run(config).await,
        Command::Sweep { config } => sweep(config).await,
        Command::CreateOperator { config, email } => create_operator(config, &email).await,
        Command::ImportDevices {
            config,
            tenant,
            file,
        } => import_devices(config, &tenant, &file).await,
        Command::SyncAssets { config, tenant } => sync_assets(config, &tenant).await,
        Command::CheckAssets { config, tenant } => check_assets(config, &tenant).await,
        Command::Replay { config } => {
            let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
            let queue = EmbeddedQueue::open(&settings.data_dir.join("queue.sqlite3"))?;
            let moved = queue.redrive_dead_letters()?;
            println!("moved {moved} dead-lettered job(s) back to the queue");
            Ok(())
        }
    }
}

/// The embedded adapters of a configuration, with its tenants written to the store.
async fn open(settings: &Settings) -> anyhow::Result<Wiring> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    let store = Arc::new(SqliteStore::open(&settings.data_dir.join("store.sqlite3"))?);
    let queue = Arc::new(EmbeddedQueue::open(
        &settings.data_dir.join("queue.sqlite3"),
    )?);
    let secrets = Arc::new(FileSecrets::load(&settings.secrets_file)?);
    let repo = Repo::new(store.as_ref());
    for tenant in &settings.tenants {
        repo.put_tenant(tenant, Condition::Always).await?;
        tracing::info!(tenant = %tenant.id, "tenant loaded");
    }
    Ok(Wiring::with_budgets(
        store,
        queue,
        secrets,
        settings.autotask_budget(),
        settings.connectwise_budget(),
    ))
}

fn sweep_interval(settings: &Settings) -> Option<Duration> {
    Some(Duration::from_secs(settings.sweep_interval_secs)).filter(|d| !d.is_zero())
}

async fn run(config: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let wiring = open(&settings).await?;
    let bridge = LocalBridge::start_with_console(
        wiring,
        settings.listen,
        settings.worker_concurrency,
        sweep_interval(&settings),
        Some(settings.console_options()),
    )
    .await?;
    println!("psa-bridge listening on {}", bridge.base_url);
    println!(
        "admin console: {}/admin (create the first operator with `psa-bridge create-operator --email ...`)",
        bridge.base_url
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    bridge.stop().await;
    Ok(())
}

async fn create_operator(config: PathBuf, email: &str) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let password = match std::env::var("PSA_BRIDGE_OPERATOR_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            eprintln!("password for {email} (one line, at least 12 characters):");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let wiring = open(&settings).await?;
    let accounts = psa_bridge_local::console::accounts(
        &wiring,
        &format!("http://{}", settings.listen),
        &settings.console_options(),
    );
    accounts
        .create_operator(email, &password)
        .await
        .with_context(|| format!("cannot create operator {email}"))?;
    println!(
        "operator {email} created; sign in at http://{}/admin",
        settings.listen
    );
    Ok(())
}

async fn sweep(config: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let mut wiring = open(&settings).await?;
    if let Some(every) = sweep_interval(&settings) {
        // A tenant's first sweep looks back one interval.
        wiring.sweep_options.interval = every;
    }
    let reports = wiring.sweeper().sweep_all().await?;
    if reports.is_empty() {
        println!("no active tenants");
    }
    for report in &reports {
        println!("{report}");
    }
    let failed = reports.iter().filter(|r| !r.is_ok()).count();
    if failed > 0 {
        anyhow::bail!("the sweep failed for {failed} tenant(s); see above and their sync logs");
    }
    Ok(())
}

/// The tenant named on the command line, which must be in the configuration
/// with asset settings.
fn asset_tenant(settings: &Settings, tenant: &str) -> anyhow::Result<TenantId> {
    let id = TenantId::parse(tenant).with_context(|| format!("{tenant:?} is not a tenant id"))?;
    let config = settings
        .tenants
        .iter()
        .find(|t| t.id == id)
        .with_context(|| format!("tenant {id} is not in the configuration"))?;
    if config.assets.is_none() {
        anyhow::bail!("tenant {id} has no [assets] settings; add them to its configuration first");
    }
    Ok(id)
}

fn asset_deps(wiring: &Wiring) -> AssetDeps<'_> {
    AssetDeps {
        store: wiring.store.as_ref(),
        secrets: wiring.secrets.as_ref(),
        connectors: wiring.connectors.as_ref(),
        clock: wiring.clock.as_ref(),
    }
}

async fn import_devices(config: PathBuf, tenant: &str, file: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let tenant = asset_tenant(&settings, tenant)?;
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let batch = if is_csv {
        parse_csv_batch(&body)
    } else {
        parse_json_batch(&body)
    }
    .with_context(|| format!("{} is not a device inventory", file.display()))?;
    let wiring = open(&settings).await?;
    let outcome = import_batch(wiring.store.as_ref(), &tenant, batch, wiring.clock.now()).await?;
    println!(
        "{tenant}: {} device(s) stored, {} unchanged, {} rejected",
        outcome.stored,
        outcome.unchanged,
        outcome.rejected.len()
    );
    for rejected in &outcome.rejected {
        let id = rejected.inventory_id.as_deref().unwrap_or("-");
        println!("  rejected #{} ({id}): {}", rejected.index, rejected.reason);
    }
    println!("run `psa-bridge sync-assets --tenant {tenant}` to write them to the PSA");
    Ok(())
}

async fn sync_assets(config: PathBuf, tenant: &str) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let tenant = asset_tenant(&settings, tenant)?;
    let wiring = open(&settings).await?;
    let result = run_tenant_assets(asset_deps(&wiring), &tenant, &AssetRunOptions::default()).await;
    wiring.connectors.give_back_held().await;
    let summary = result.with_context(|| format!("asset sync of {tenant} did not run"))?;
    println!("{tenant}: {summary}");
    if !summary.failed.is_empty() {
        anyhow::bail!(
            "{} device(s) failed; see above and the tenant's sync log",
            summary.failed.len()
        );
    }
    Ok(())
}

async fn check_assets(config: PathBuf, tenant: &str) -> anyhow::Result<()> {
    let settings = Settings::load(&config).map_err(anyhow::Error::msg)?;
    let tenant = asset_tenant(&settings, tenant)?;
    let wiring = open(&settings).await?;
    let result = check_tenant_assets(asset_deps(&wiring), &tenant).await;
    wiring.connectors.give_back_held().await;
    let problems = result.with_context(|| format!("cannot check the asset setup of {tenant}"))?;
    if problems.is_empty() {
        println!("{tenant}: asset sync is ready: the PSA has everything its settings name");
        return Ok(());
    }
    println!("{tenant}: asset sync cannot run yet; missing in the PSA:");
    for problem in &problems {
        println!("  - {problem}");
    }
    anyhow::bail!(
        "{} setup problem(s); fix them and check again",
        problems.len()
    )
}
