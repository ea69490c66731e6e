//! Asset sync end to end (issue 13): signed inventory pushes over real HTTP
//! to `/t/{tenant}/inventory`, runs through the world's connectors into the
//! sandbox Autotask's configuration items, checked in the sandbox (every
//! field and UDF) and in its request log (which writes were made).

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::assets::ingest::{sign, MAX_INVENTORY_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use bridge::assets::{
    check_tenant_assets, run_tenant_assets, AssetDeps, AssetRunError, AssetRunOptions,
    AssetRunSummary,
};
use bridge::config::{AssetMode, AssetSettings, FieldValue, ReferenceNumberSource, ASSET_UDFS};
use bridge::connectors::budget::AutotaskBudget;
use bridge::ports::Condition;
use bridge::repo::Repo;
use chrono::{TimeZone, Utc};
use sandbox::autotask::{ConfigurationItem, API_ROOT};
use sandbox::zendesk::NewTicket;
use serde_json::{json, Value};
use testkit::world::{wait_for, TenantSpec, TenantWorld, World, WorldOptions};

use crate::support::{post, psa_tickets_for, ARRIVAL};

const INVENTORY_UDF: &str = "Inventory Device ID";

fn settings(mode: AssetMode) -> AssetSettings {
    AssetSettings {
        mode,
        // The world puts in the sandbox's default product.
        product_id: 0,
        ci_type: Some(FieldValue::Number(1)),
        category_id: None,
        reference_number: ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: INVENTORY_UDF.to_owned(),
    }
}

fn spec(id: &str, assets: AssetSettings) -> TenantSpec {
    TenantSpec {
        default_company: true,
        assets: Some(assets),
        ..TenantSpec::new(id)
    }
}

async fn world_of(spec: TenantSpec, options: WorldOptions) -> World {
    World::start(vec![spec], options).await.unwrap()
}

async fn world(id: &str, mode: AssetMode) -> World {
    world_of(spec(id, settings(mode)), WorldOptions::default()).await
}

/// Signs `body` for `t` (at `timestamp`, default now) and posts it to its
/// inventory route.
async fn push_raw(
    world: &World,
    t: &TenantWorld,
    body: Vec<u8>,
    timestamp: Option<String>,
) -> (u16, Value) {
    let timestamp = timestamp.unwrap_or_else(|| Utc::now().timestamp().to_string());
    let signature = sign(
        t.secrets.inventory_signing_secret.expose(),
        &timestamp,
        &body,
    );
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (SIGNATURE_HEADER.to_owned(), signature),
        (TIMESTAMP_HEADER.to_owned(), timestamp),
    ];
    let (status, text) = post(&inventory_url(world, t), &headers, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn inventory_url(world: &World, t: &TenantWorld) -> String {
    format!("{}/t/{}/inventory", world.bridge.base_url, t.id)
}

/// Pushes `devices` signed; must be accepted. Returns the answer.
async fn push(world: &World, t: &TenantWorld, devices: &[Value]) -> Value {
    let body = serde_json::to_vec(&json!({ "devices": devices })).unwrap();
    let (status, answer) = push_raw(world, t, body, None).await;
    assert_eq!(status, 200, "push refused: {answer}");
    answer
}

/// "Sync assets now" through the world's store, secrets and connectors.
async fn run(world: &World, t: &TenantWorld) -> Result<AssetRunSummary, AssetRunError> {
    run_with(world, t, &AssetRunOptions::default()).await
}

/// A run that stops at the first call the budget or Autotask refuses, as a
/// run whose pause would pass its deadline does.
async fn run_without_pausing(
    world: &World,
    t: &TenantWorld,
) -> Result<AssetRunSummary, AssetRunError> {
    let options = AssetRunOptions {
        budget_pause: Duration::ZERO,
        ..AssetRunOptions::default()
    };
    run_with(world, t, &options).await
}

async fn run_with(
    world: &World,
    t: &TenantWorld,
    options: &AssetRunOptions,
) -> Result<AssetRunSummary, AssetRunError> {
    let wiring = &world.bridge.wiring;
    let deps = AssetDeps {
        store: wiring.store.as_ref(),
        secrets: wiring.secrets.as_ref(),
        connectors: wiring.connectors.as_ref(),
        clock: wiring.clock.as_ref(),
    };
    run_tenant_assets(deps, &t.id, options).await
}

async fn run_ok(world: &World, t: &TenantWorld) -> AssetRunSummary {
    let summary = run(world, t).await.expect("the asset run");
    assert!(summary.finished, "run stopped early: {summary}");
    assert!(summary.failed.is_empty(), "devices failed: {summary}");
    summary
}

/// A device with every field set.
fn full_device(id: &str, cluster: &str) -> Value {
    json!({
        "inventory_id": id,
        "name": format!("{id}-host"),
        "state": "managed",
        "serial_number": format!("SN-{id}"),
        "warranty_end_date": "2028-06-30",
        "make": "Dell",
        "model": "OptiPlex 7090",
        "operating_system": "Windows 11 Pro",
        "bios_name": "Dell Inc.",
        "bios_version": "2.14.0",
        "device_type": "Workstation",
        "dns_name": format!("{id}.corp.example"),
        "drive_info": "C: 512 GB SSD",
        "gateway": "10.0.0.1",
        "ip_address": "10.0.0.42",
        "ram": "16 GB",
        "last_logged_user": "CORP\\alice",
        "cluster_id": cluster,
    })
}

/// The CIs whose reference number is `reference` (the inventory id by default).
fn cis_for(t: &TenantWorld, reference: &str) -> Vec<ConfigurationItem> {
    t.autotask
        .configuration_items()
        .into_iter()
        .filter(|ci| ci.reference_number.as_deref() == Some(reference))
        .collect()
}

fn ci_for(t: &TenantWorld, reference: &str) -> ConfigurationItem {
    let cis = cis_for(t, reference);
    assert_eq!(cis.len(), 1, "one CI for {reference}: {cis:?}");
    cis.into_iter().next().unwrap()
}

fn company_of(t: &TenantWorld, cluster: &str) -> i64 {
    t.clusters
        .iter()
        .find(|(c, _)| c == cluster)
        .map(|(_, company)| *company)
        .unwrap_or_else(|| panic!("no cluster {cluster}"))
}

/// CI writes the PSA saw: creates (`POST ConfigurationItems`, not queries)
/// and patches.
fn ci_writes(t: &TenantWorld) -> (Vec<Value>, Vec<Value>) {
    let creates = t
        .autotask
        .api_requests_matching("POST", "ConfigurationItems")
        .into_iter()
        .filter(|r| r.path == format!("{API_ROOT}/ConfigurationItems"))
        .map(|r| r.json().clone())
        .collect();
    let patches = t
        .autotask
        .api_requests_matching("PATCH", "ConfigurationItems")
        .into_iter()
        .map(|r| r.json().clone())
        .collect();
    (creates, patches)
}

/// The devices stored for `t` (what pushes kept).
async fn stored_devices(world: &World, t: &TenantWorld) -> usize {
    bridge::assets::store::devices(world.store(), &t.id)
        .await
        .unwrap()
        .len()
}

async fn log_messages(world: &World, t: &TenantWorld) -> Vec<String> {
    Repo::new(world.store())
        .log_entries(&t.id, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn midnight(y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_creates_the_right_cis_in_simple_mode() {
    let world = world("simple", AssetMode::Simple).await;
    let t = world.tenant("simple");
    let fabrikam = company_of(t, "CL-200");
    let devices = [
        full_device("dev-1", "CL-100"),
        json!({"inventory_id": "dev-2", "name": "kiosk", "state": "discovered",
               "serial_number": "SN-2", "company_hint": fabrikam.to_string()}),
        json!({"inventory_id": "dev-3", "state": "unmanaged"}),
    ];
    let answer = push(&world, t, &devices).await;
    assert_eq!(answer["stored"], 3, "{answer}");
    assert_eq!(answer["rejected"], json!([]), "{answer}");
    assert!(
        cis_for(t, "dev-1").is_empty(),
        "a push alone writes nothing to the PSA"
    );

    let summary = run_ok(&world, t).await;
    assert_eq!(summary.created, 3, "{summary}");
    let product = t.autotask.default_product_id();
    let workstation = t.autotask.ci_type_value("Workstation");

    let one = ci_for(t, "dev-1");
    assert_eq!(one.company_id, company_of(t, "CL-100"), "by its cluster id");
    assert_eq!(one.product_id, product);
    assert!(one.is_active, "managed: active");
    assert_eq!(one.reference_title.as_deref(), Some("dev-1-host"));
    assert_eq!(one.serial_number.as_deref(), Some("SN-dev-1"));
    assert_eq!(one.warranty_expiration, Some(midnight(2028, 6, 30)));
    assert_eq!(one.ci_type, workstation);
    assert!(one.category_id.is_some(), "the default category");
    assert!(
        one.udfs.is_empty(),
        "simple mode writes no UDF: {:?}",
        one.udfs
    );

    let two = ci_for(t, "dev-2");
    assert_eq!(two.company_id, fabrikam, "by its company hint");
    assert!(!two.is_active, "discovered: inactive");
    assert_eq!(two.reference_title.as_deref(), Some("kiosk"));
    assert_eq!(two.serial_number.as_deref(), Some("SN-2"));
    assert_eq!(two.warranty_expiration, None);
    assert!(two.udfs.is_empty());

    let three = ci_for(t, "dev-3");
    assert_eq!(
        Some(three.company_id),
        t.default_company,
        "neither hint nor cluster: the tenant's default company"
    );
    assert!(!three.is_active, "unmanaged: inactive");
    assert_eq!(three.serial_number, None);

    let (creates, patches) = ci_writes(t);
    assert_eq!(creates.len(), 3, "one create per device");
    assert!(patches.is_empty(), "{patches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_creates_the_right_cis_with_every_udf_in_advanced_mode() {
    let world = world("advanced", AssetMode::Advanced).await;
    let t = world.tenant("advanced");
    push(&world, t, &[full_device("adv-1", "CL-200")]).await;
    let summary = run_ok(&world, t).await;
    assert_eq!(summary.created, 1, "{summary}");

    let ci = ci_for(t, "adv-1");
    assert_eq!(ci.company_id, company_of(t, "CL-200"));
    assert_eq!(ci.product_id, t.autotask.default_product_id());
    assert!(ci.is_active);
    assert_eq!(ci.reference_title.as_deref(), Some("adv-1-host"));
    assert_eq!(ci.serial_number.as_deref(), Some("SN-adv-1"));
    assert_eq!(ci.warranty_expiration, Some(midnight(2028, 6, 30)));
    assert_eq!(ci.ci_type, t.autotask.ci_type_value("Workstation"));
    let expected: BTreeMap<String, String> = [
        ("BIOS Name", "Dell Inc."),
        ("BIOS Version", "2.14.0"),
        ("Device Type", "Workstation"),
        ("DNS", "adv-1.corp.example"),
        ("Drive Info", "C: 512 GB SSD"),
        ("Gateway", "10.0.0.1"),
        ("IP Address", "10.0.0.42"),
        ("Make", "Dell"),
        ("Model", "OptiPlex 7090"),
        ("Operating System", "Windows 11 Pro"),
        ("RAM", "16 GB"),
        ("Last Logged User", "CORP\\alice"),
        (INVENTORY_UDF, "adv-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(ci.udfs, expected, "every UDF written");
    assert_eq!(ASSET_UDFS.len() + 1, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_identical_push_and_run_write_nothing() {
    let world = world("again", AssetMode::Advanced).await;
    let t = world.tenant("again");
    let devices: Vec<Value> = (0..5)
        .map(|i| full_device(&format!("same-{i}"), "CL-100"))
        .collect();
    push(&world, t, &devices).await;
    assert_eq!(run_ok(&world, t).await.created, 5);
    let cis = t.autotask.configuration_items();

    t.autotask.clear_requests();
    let calls = t.autotask.api_calls();
    let answer = push(&world, t, &devices).await;
    assert_eq!(answer["stored"], 0, "nothing changed: {answer}");
    assert_eq!(answer["unchanged"], 5, "{answer}");
    let summary = run_ok(&world, t).await;
    assert_eq!(summary.unchanged, 5, "{summary}");
    assert_eq!((summary.created, summary.updated), (0, 0), "{summary}");
    let (creates, patches) = ci_writes(t);
    assert!(
        creates.is_empty() && patches.is_empty(),
        "{creates:?} {patches:?}"
    );
    assert_eq!(
        t.autotask.api_calls(),
        calls,
        "an unchanged fleet costs no PSA call at all: {:?}",
        t.autotask.requests()
    );
    assert_eq!(t.autotask.configuration_items(), cis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_device_patches_only_what_changed() {
    let world = world("changed", AssetMode::Advanced).await;
    let t = world.tenant("changed");
    let (a, b) = (
        full_device("chg-a", "CL-100"),
        full_device("chg-b", "CL-100"),
    );
    push(&world, t, &[a.clone(), b.clone()]).await;
    run_ok(&world, t).await;
    let before_b = ci_for(t, "chg-b");

    let mut a2 = a.clone();
    a2["name"] = json!("chg-a-renamed");
    a2["ip_address"] = json!("10.0.0.99");
    t.autotask.clear_requests();
    let answer = push(&world, t, &[a2, b]).await;
    assert_eq!(
        (answer["stored"].clone(), answer["unchanged"].clone()),
        (json!(1), json!(1))
    );
    let summary = run_ok(&world, t).await;
    assert_eq!((summary.updated, summary.unchanged), (1, 1), "{summary}");

    let (creates, patches) = ci_writes(t);
    assert!(creates.is_empty(), "{creates:?}");
    assert_eq!(patches.len(), 1, "one patch: {patches:?}");
    let ci = ci_for(t, "chg-a");
    assert_eq!(
        patches[0],
        json!({
            "id": ci.id,
            "referenceTitle": "chg-a-renamed",
            "userDefinedFields": [{"name": "IP Address", "value": "10.0.0.99"}],
        }),
        "only the changed fields"
    );
    assert_eq!(ci.reference_title.as_deref(), Some("chg-a-renamed"));
    assert_eq!(ci.udfs["IP Address"], "10.0.0.99");
    assert_eq!(ci.udfs["Make"], "Dell", "the other UDFs kept");
    assert_eq!(ci.serial_number.as_deref(), Some("SN-chg-a"));
    assert_eq!(ci_for(t, "chg-b"), before_b, "the other device untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_to_unmanaged_deactivates_and_deletes_nothing() {
    let world = world("retire", AssetMode::Simple).await;
    let t = world.tenant("retire");
    let device = full_device("ret-1", "CL-100");
    push(&world, t, std::slice::from_ref(&device)).await;
    run_ok(&world, t).await;
    assert!(ci_for(t, "ret-1").is_active);
    let count = t.autotask.configuration_items().len();

    let mut retired = device;
    retired["state"] = json!("unmanaged");
    t.autotask.clear_requests();
    push(&world, t, &[retired]).await;
    let summary = run_ok(&world, t).await;
    assert_eq!(summary.deactivated, 1, "{summary}");

    let ci = ci_for(t, "ret-1");
    assert!(!ci.is_active, "deactivated");
    let (creates, patches) = ci_writes(t);
    assert!(creates.is_empty());
    assert_eq!(patches, vec![json!({"id": ci.id, "isActive": false})]);
    assert_eq!(
        t.autotask.configuration_items().len(),
        count,
        "nothing created or deleted"
    );
    assert!(t
        .autotask
        .api_requests_matching("DELETE", "ConfigurationItems")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_udfs_are_reported_before_anything_is_written() {
    // Set up for simple mode (no UDFs in the PSA), then switched to advanced
    // with only some of its UDFs defined.
    let world = world("partial", AssetMode::Simple).await;
    let t = world.tenant("partial");
    let defined = ["BIOS Name", "Make", "Model"];
    for udf in defined {
        t.autotask.add_ci_udf(udf);
    }
    let mut config = t.config.clone();
    config.assets = Some(AssetSettings {
        product_id: t.autotask.default_product_id(),
        ..settings(AssetMode::Advanced)
    });
    Repo::new(world.store())
        .put_tenant(&config, Condition::Always)
        .await
        .unwrap();
    let missing: Vec<&str> = ASSET_UDFS
        .iter()
        .copied()
        .chain([INVENTORY_UDF])
        .filter(|u| !defined.contains(u))
        .collect();

    // The validation step lists them, reading only.
    let wiring = &world.bridge.wiring;
    let deps = AssetDeps {
        store: wiring.store.as_ref(),
        secrets: wiring.secrets.as_ref(),
        connectors: wiring.connectors.as_ref(),
        clock: wiring.clock.as_ref(),
    };
    let problems = check_tenant_assets(deps, &t.id).await.unwrap();
    for udf in &missing {
        assert!(
            problems.iter().any(|p| p.contains(&format!("\"{udf}\""))
                || p.contains(&format!("'{udf}'"))
                || p.contains(udf)),
            "{udf} reported missing: {problems:?}"
        );
    }
    for udf in defined {
        assert!(
            !problems.iter().any(|p| p.contains(&format!("\"{udf}\""))),
            "{udf} exists: {problems:?}"
        );
    }

    let count = t.autotask.configuration_items().len();
    push(&world, t, &[full_device("part-1", "CL-100")]).await;
    t.autotask.clear_requests();
    match run(&world, t).await {
        Err(AssetRunError::SetupIncomplete { problems }) => {
            for udf in &missing {
                assert!(
                    problems.iter().any(|p| p.contains(udf)),
                    "{udf} in {problems:?}"
                );
            }
        }
        other => panic!("expected the setup to be reported incomplete, got {other:?}"),
    }
    assert_eq!(
        t.autotask.configuration_items().len(),
        count,
        "no CI created"
    );
    let (creates, patches) = ci_writes(t);
    assert!(
        creates.is_empty() && patches.is_empty(),
        "{creates:?} {patches:?}"
    );
    let log = log_messages(&world, t).await;
    let line = log
        .iter()
        .find(|m| m.contains("nothing was written"))
        .unwrap_or_else(|| panic!("the sync log says why: {log:?}"));
    for udf in &missing {
        assert!(line.contains(udf), "{udf} named in {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_device_in_a_batch_does_not_stop_the_others() {
    let world = world("mixed", AssetMode::Simple).await;
    let t = world.tenant("mixed");
    let devices = [
        full_device("ok-1", "CL-100"),
        json!({"inventory_id": "bad-1", "state": "exploded"}),
        json!({"name": "no id", "state": "managed"}),
        full_device("ok-2", "CL-200"),
    ];
    let answer = push(&world, t, &devices).await;
    assert_eq!(answer["stored"], 2, "{answer}");
    let rejected = answer["rejected"].as_array().expect("rejected list");
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["inventory_id"], "bad-1");
    assert!(rejected[0]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(rejected[1]["index"], 2);
    let log = log_messages(&world, t).await;
    assert!(
        log.iter().any(|m| m.contains("bad-1")),
        "the rejected device is in the sync log: {log:?}"
    );

    let summary = run_ok(&world, t).await;
    assert_eq!(summary.created, 2, "{summary}");
    ci_for(t, "ok-1");
    ci_for(t, "ok-2");
    assert!(cis_for(t, "bad-1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_without_duplicates() {
    // A budget of 30 calls that refills in 0.3 s: each run stops once it is
    // spent (a run's setup check and lookups take about 8 of them, each new
    // device about 3), and the next one resumes.
    let defaults = WorldOptions::default();
    let options = WorldOptions {
        autotask_budget: AutotaskBudget {
            requests_per_hour: 360_000,
            burst: 30,
            ..defaults.autotask_budget.clone()
        },
        ..defaults
    };
    let world = world_of(spec("resume", settings(AssetMode::Advanced)), options).await;
    let t = world.tenant("resume");
    let n = 20;
    let devices: Vec<Value> = (0..n)
        .map(|i| full_device(&format!("res-{i:02}"), "CL-100"))
        .collect();
    push(&world, t, &devices).await;
    let before = t.autotask.configuration_items().len();

    let first = run_without_pausing(&world, t).await.expect("first run");
    assert!(
        !first.finished && first.remaining > 0,
        "the budget stops the first run: {first}"
    );
    assert!(first.created < n, "{first}");
    let mut created = first.created;
    let mut runs = 1;
    let mut resumed = false;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let summary = run_without_pausing(&world, t).await.expect("a resumed run");
        runs += 1;
        created += summary.created;
        resumed |= summary.resumed;
        if summary.finished {
            assert!(summary.failed.is_empty(), "{summary}");
            break;
        }
        assert!(runs < 40, "never finished: {summary}");
    }
    assert!(resumed, "later runs continue the interrupted one");
    assert_eq!(created, n, "each device created once over {runs} runs");
    assert_eq!(
        t.autotask.configuration_items().len(),
        before + n,
        "one CI per device"
    );
    for device in &devices {
        ci_for(t, device["inventory_id"].as_str().unwrap());
    }
    let (creates, _) = ci_writes(t);
    assert_eq!(creates.len(), n, "one create per device, never two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_autotask_429s_resumes_without_duplicates() {
    let world = world("throttled", AssetMode::Simple).await;
    let t = world.tenant("throttled");
    let n = 8;
    let devices: Vec<Value> = (0..n)
        .map(|i| full_device(&format!("thr-{i}"), "CL-100"))
        .collect();
    push(&world, t, &devices).await;
    let before = t.autotask.configuration_items().len();
    // Once the run has created its first CI, Autotask itself answers 429 for
    // a while (another integration spent the database's quota).
    t.autotask
        .faults()
        .update(|f| f.latency = Duration::from_millis(30));
    let sandbox = t.autotask.clone();
    let throttle = tokio::spawn(async move {
        while sandbox.configuration_items().len() <= before {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sandbox.faults().update(|f| {
            f.rate_limit_burst = 3;
            f.retry_after_secs = 0;
        });
    });
    let first = run_without_pausing(&world, t).await.expect("the first run");
    throttle.await.unwrap();
    assert!(
        !first.finished && first.created >= 1 && first.created < n,
        "the 429s stopped the run midway: {first}"
    );
    assert!(first.stopped.is_some(), "{first}");
    let mut created = first.created;
    let mut runs = 1;
    loop {
        runs += 1;
        assert!(runs < 10, "never finished");
        match run_without_pausing(&world, t).await {
            Ok(summary) => {
                created += summary.created;
                if summary.finished {
                    assert!(summary.resumed, "{summary}");
                    break;
                }
            }
            // The 429 burst may still meet the setup check.
            Err(error) if error.is_retryable() => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(created, n, "each device created once");
    assert_eq!(t.autotask.configuration_items().len(), before + n);
    for device in &devices {
        ci_for(t, device["inventory_id"].as_str().unwrap());
    }
    let (creates, _) = ci_writes(t);
    assert_eq!(creates.len(), n, "one create per device, never two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_load_pauses_for_a_small_budget_and_finishes_in_one_run() {
    // A burst of 5 (fewer than the setup check's calls) refilling at 20 a
    // second, and Autotask answering 429 for a while midway: the run pauses
    // for each refusal and finishes in one go, one CI per device.
    let defaults = WorldOptions::default();
    let options = WorldOptions {
        autotask_budget: AutotaskBudget {
            requests_per_hour: 72_000,
            burst: 5,
            ..defaults.autotask_budget.clone()
        },
        ..defaults
    };
    let world = world_of(spec("paced", settings(AssetMode::Advanced)), options).await;
    let t = world.tenant("paced");
    let n = 12;
    let devices: Vec<Value> = (0..n)
        .map(|i| full_device(&format!("pac-{i:02}"), "CL-100"))
        .collect();
    push(&world, t, &devices).await;
    let before = t.autotask.configuration_items().len();
    let sandbox = t.autotask.clone();
    let throttle = tokio::spawn(async move {
        while sandbox.configuration_items().len() < before + 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sandbox.faults().update(|f| {
            f.rate_limit_burst = 3;
            f.retry_after_secs = 0;
        });
    });
    let summary = run(&world, t).await.expect("the run");
    throttle.await.unwrap();
    assert!(summary.finished, "one run did it all: {summary}");
    assert!(!summary.resumed, "{summary}");
    assert_eq!(summary.created, n, "{summary}");
    assert!(summary.paused > 0, "it paused for the budget: {summary}");
    assert!(summary.failed.is_empty(), "{summary}");
    assert_eq!(t.autotask.configuration_items().len(), before + n);
    let (creates, _) = ci_writes(t);
    assert_eq!(creates.len(), n, "one create per device, never two");
    let log = log_messages(&world, t).await;
    assert!(
        log.iter()
            .any(|m| m.starts_with("Asset sync:") && m.contains("paused")),
        "the summary in the sync log says it paused: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unsigned_stale_and_oversize_pushes_are_rejected_with_nothing_stored() {
    let world = world("strict", AssetMode::Simple).await;
    let t = world.tenant("strict");
    let good = serde_json::to_vec(&json!({"devices": [full_device("s-1", "CL-100")]})).unwrap();

    // Malformed, correctly signed.
    let (status, answer) = push_raw(&world, t, b"{\"devices\": [".to_vec(), None).await;
    assert_eq!(status, 400, "malformed: {answer}");
    let (status, answer) = push_raw(&world, t, b"{\"devices\": 7}".to_vec(), None).await;
    assert_eq!(status, 400, "wrong shape: {answer}");

    // Unsigned, and signed with another key.
    let now = Utc::now().timestamp().to_string();
    let unsigned = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (TIMESTAMP_HEADER.to_owned(), now.clone()),
    ];
    let (status, _) = post(&inventory_url(&world, t), &unsigned, good.clone()).await;
    assert_eq!(status, 401, "unsigned");
    let forged = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (TIMESTAMP_HEADER.to_owned(), now.clone()),
        (
            SIGNATURE_HEADER.to_owned(),
            sign("not-the-secret", &now, &good),
        ),
    ];
    let (status, _) = post(&inventory_url(&world, t), &forged, good.clone()).await;
    assert_eq!(status, 401, "wrong key");
    let (status, _) = post(&inventory_url(&world, t), &[], good.clone()).await;
    assert_eq!(status, 401, "no headers at all");

    // Stale: signed right, ten minutes old (and ten minutes ahead).
    for skew in [-600, 600] {
        let stale = (Utc::now().timestamp() + skew).to_string();
        let (status, answer) = push_raw(&world, t, good.clone(), Some(stale)).await;
        assert_eq!(status, 401, "timestamp {skew} s off: {answer}");
    }

    // Oversize: over the byte limit, and over the device limit.
    let mut huge = b"{\"devices\": [".to_vec();
    huge.resize(MAX_INVENTORY_BYTES + 1024, b' ');
    huge.extend_from_slice(b"]}");
    let (status, _) = push_raw(&world, t, huge, None).await;
    assert_eq!(status, 413, "over the byte limit");
    let many: Vec<Value> = (0..5_001)
        .map(|i| json!({"inventory_id": format!("m{i}"), "state": "managed"}))
        .collect();
    let body = serde_json::to_vec(&json!({ "devices": many })).unwrap();
    let (status, answer) = push_raw(&world, t, body, None).await;
    assert_eq!(status, 413, "over the device limit: {answer}");

    assert_eq!(stored_devices(&world, t).await, 0, "nothing stored");

    // The same good push, signed now, is taken: the refusals were about
    // the pushes, not the tenant.
    let (status, answer) = push_raw(&world, t, good, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stored_devices(&world, t).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_with_a_devices_cluster_id_is_linked_to_its_ci() {
    let world = world_of(
        spec(
            "linked",
            AssetSettings {
                reference_number: ReferenceNumberSource::ClusterId,
                ..settings(AssetMode::Simple)
            },
        ),
        WorldOptions::default(),
    )
    .await;
    let t = world.tenant("linked");
    let contoso = company_of(t, "CL-100");
    let mut device = full_device("link-1", "CL-300");
    device["company_hint"] = json!(contoso.to_string());
    push(&world, t, &[device]).await;
    run_ok(&world, t).await;
    let ci = ci_for(t, "CL-300");
    assert_eq!(ci.company_id, contoso);
    assert!(ci.is_active);

    let desk_id = t.zendesk.create_ticket(NewTicket {
        subject: "Workstation will not boot".into(),
        description: "Blue screen since this morning".into(),
        priority: Some("normal".into()),
        status: None,
        cluster_id: Some("CL-300".into()),
        requester_name: "Alice".into(),
    });
    let ticket = wait_for(ARRIVAL, || psa_tickets_for(t, desk_id).into_iter().next())
        .await
        .expect("the ticket reached Autotask");
    assert_eq!(ticket.company_id, contoso, "the CI's company");
    assert_eq!(
        ticket.configuration_item_id,
        Some(ci.id),
        "the ticket is linked to the device's configuration item"
    );
}
