//! Asset sync over the embedded store and the in-memory PSA of configuration
//! items: runs (both modes, no duplicates, only changes, resumption) and the
//! signed inventory push through its router.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::assets::device::{Device, DeviceState};
use bridge::assets::ingest::{sign, MAX_INVENTORY_BYTES};
use bridge::assets::ports::{AssetPsa, CiPatch, NewCi, PsaCi};
use bridge::assets::run::due;
use bridge::assets::store::{self as asset_store, CiLink};
use bridge::assets::{
    import_batch, inventory_router, parse_json_batch, run_assets, AssetRunError, AssetRunOptions,
    AssetRunSummary,
};
use bridge::config::{
    AssetMode, AssetSettings, AutotaskSettings, Mappings, ReferenceNumberSource, Secret,
    TenantConfig, TenantSecrets, ZendeskSettings,
};
use bridge::error::ApiError;
use bridge::ingest::IngestState;
use bridge::model::TenantId;
use bridge::ports::{Condition, Store};
use bridge::repo::{LogLevel, Repo};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use testkit::assets::{AssetCall, FakeAssetPsa};
use testkit::fakes::{FakePsa, FixedClock};
use tower::ServiceExt;

const PRODUCT: i64 = 29682999;
const DEFAULT_COMPANY: i64 = 1;
const INVENTORY_UDF: &str = "Inventory Device ID";
const SECRET: &str = "inventory-signing-secret";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 10, 6, 0, 0).unwrap()
}

fn settings(mode: AssetMode) -> AssetSettings {
    AssetSettings {
        mode,
        product_id: PRODUCT,
        ci_type: None,
        category_id: Some(7),
        reference_number: ReferenceNumberSource::InventoryId,
        schedule_days: vec![10, 25],
        inventory_id_udf: INVENTORY_UDF.to_owned(),
    }
}

fn config(assets: Option<AssetSettings>) -> TenantConfig {
    TenantConfig {
        id: TenantId::parse("acme").unwrap(),
        active: true,
        zendesk: ZendeskSettings {
            base_url: "http://desk".into(),
            cluster_id_field: None,
        },
        autotask: AutotaskSettings {
            zone_lookup_url: "http://psa".into(),
            queue_id: None,
            default_company_id: Some(DEFAULT_COMPANY),
            ..AutotaskSettings::new("")
        },
        connectwise: None,
        mappings: Mappings::default(),
        fields: Default::default(),
        assets,
    }
}

fn device(id: &str, serial: Option<&str>) -> Device {
    Device {
        name: Some(format!("{id}-host")),
        serial_number: serial.map(str::to_owned),
        warranty_end_date: NaiveDate::from_ymd_opt(2027, 3, 1),
        make: Some("Dell".into()),
        model: Some("R650".into()),
        operating_system: Some("Windows Server 2022".into()),
        ip_address: Some("10.0.0.5".into()),
        ram: Some("32 GB".into()),
        ..Device::managed(id)
    }
}

struct World {
    store: Arc<SqliteStore>,
    assets: FakeAssetPsa,
    psa: FakePsa,
    clock: FixedClock,
    config: TenantConfig,
}

impl World {
    fn new(mode: AssetMode) -> Self {
        let assets = FakeAssetPsa::with_product(PRODUCT);
        if mode == AssetMode::Advanced {
            assets.define_asset_udfs(INVENTORY_UDF);
        }
        Self {
            store: Arc::new(SqliteStore::in_memory().unwrap()),
            assets,
            psa: FakePsa::default(),
            clock: FixedClock::at(t0()),
            config: config(Some(settings(mode))),
        }
    }

    fn tenant(&self) -> &TenantId {
        &self.config.id
    }

    async fn push(&self, devices: Vec<Device>) {
        let batch = bridge::assets::DeviceBatch {
            devices,
            rejected: Vec::new(),
        };
        import_batch(
            self.store.as_ref(),
            self.tenant(),
            batch,
            self.clock.now_utc(),
        )
        .await
        .unwrap();
    }

    async fn run(&self) -> Result<AssetRunSummary, AssetRunError> {
        self.run_with(&AssetRunOptions::default()).await
    }

    async fn run_with(&self, options: &AssetRunOptions) -> Result<AssetRunSummary, AssetRunError> {
        run_assets(
            self.store.as_ref(),
            &self.assets,
            &self.psa,
            &self.config,
            &self.clock,
            options,
        )
        .await
    }

    async fn record(&self, id: &str) -> asset_store::DeviceRecord {
        asset_store::device(self.store.as_ref(), self.tenant(), id)
            .await
            .unwrap()
            .unwrap()
            .value
    }

    async fn log(&self) -> Vec<bridge::repo::SyncLogEntry> {
        Repo::new(self.store.as_ref())
            .log_entries(self.tenant(), 500)
            .await
            .unwrap()
    }
}

trait Now {
    fn now_utc(&self) -> DateTime<Utc>;
}
impl Now for FixedClock {
    fn now_utc(&self) -> DateTime<Utc> {
        bridge::ports::Clock::now(self)
    }
}

fn creates(calls: &[AssetCall]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, AssetCall::Create(_)))
        .count()
}

#[tokio::test]
async fn simple_mode_creates_cis_with_the_standard_fields_only() {
    let w = World::new(AssetMode::Simple);
    w.psa.add_configuration_item("cluster-7f3a", 4242);
    let mut by_cluster = device("dev-2", Some("SN2"));
    by_cluster.cluster_id = Some("cluster-7f3a".into());
    let mut by_hint = device("dev-3", None);
    by_hint.company_hint = Some("777".into());
    by_hint.state = DeviceState::Discovered;
    w.push(vec![device("dev-1", Some("SN1")), by_cluster, by_hint])
        .await;

    let summary = w.run().await.unwrap();
    assert_eq!((summary.created, summary.failed.len()), (3, 0), "{summary}");
    assert!(summary.finished);
    let cis = w.assets.cis();
    assert_eq!(cis.len(), 3);
    let ci1 = cis
        .iter()
        .find(|c| c.reference_number.as_deref() == Some("dev-1"))
        .unwrap();
    assert_eq!(ci1.reference_title.as_deref(), Some("dev-1-host"));
    assert_eq!(ci1.serial_number.as_deref(), Some("SN1"));
    assert_eq!(ci1.company_id, DEFAULT_COMPANY);
    assert!(ci1.is_active);
    assert!(ci1.udfs.is_empty(), "simple mode writes no UDFs");
    assert_eq!(
        w.assets.warranty(ci1.id),
        Some(Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap())
    );
    let company = |id: &str| {
        cis.iter()
            .find(|c| c.reference_number.as_deref() == Some(id))
            .unwrap()
            .company_id
    };
    assert_eq!(company("dev-2"), 4242);
    assert_eq!(company("dev-3"), 777);
    assert!(
        !cis.iter()
            .find(|c| c.reference_number.as_deref() == Some("dev-3"))
            .unwrap()
            .is_active
    );
    // Product and category from the settings.
    for call in w.assets.calls() {
        if let AssetCall::Create(new) = call {
            assert_eq!((new.product_id, new.category_id), (PRODUCT, Some(7)));
        }
    }
    assert_eq!(w.record("dev-1").await.ci, CiLink::Linked { ci_id: ci1.id });
    // The summary line.
    let log = w.log().await;
    assert!(log.iter().any(|e| e.step == "asset_sync"
        && e.message
            .contains("3 created, 0 updated, 0 deactivated, 0 unchanged, 0 failed")));
}

#[tokio::test]
async fn advanced_mode_writes_the_udfs_and_the_inventory_id() {
    let mut w = World::new(AssetMode::Advanced);
    w.config.assets.as_mut().unwrap().reference_number = ReferenceNumberSource::ClusterId;
    let mut dev = device("dev-1", Some("SN1"));
    dev.cluster_id = Some("cluster-1".into());
    w.push(vec![dev]).await;
    let summary = w.run().await.unwrap();
    assert_eq!(summary.created, 1, "{summary}");
    let ci = &w.assets.cis()[0];
    assert_eq!(ci.reference_number.as_deref(), Some("cluster-1"));
    assert_eq!(
        ci.udfs.get(INVENTORY_UDF).map(String::as_str),
        Some("dev-1")
    );
    assert_eq!(ci.udfs.get("Make").map(String::as_str), Some("Dell"));
    assert_eq!(ci.udfs.get("RAM").map(String::as_str), Some("32 GB"));
    assert_eq!(
        ci.udfs.get("Operating System").map(String::as_str),
        Some("Windows Server 2022")
    );
    // Only fields with a value are written.
    assert!(!ci.udfs.contains_key("Gateway"));
}

#[tokio::test]
async fn an_identical_second_run_and_push_make_no_psa_call() {
    let w = World::new(AssetMode::Advanced);
    let fleet: Vec<Device> = (0..20)
        .map(|i| device(&format!("dev-{i}"), Some(&format!("SN{i}"))))
        .collect();
    w.push(fleet.clone()).await;
    assert_eq!(w.run().await.unwrap().created, 20);
    w.assets.clear_calls();

    // The same push again: nothing stored, and the run calls nothing.
    let outcome = import_batch(
        w.store.as_ref(),
        w.tenant(),
        bridge::assets::DeviceBatch {
            devices: fleet,
            rejected: vec![],
        },
        t0(),
    )
    .await
    .unwrap();
    assert_eq!((outcome.stored, outcome.unchanged), (0, 20));
    let summary = w.run().await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.unchanged),
        (0, 0, 20)
    );
    assert!(
        w.assets.calls().is_empty(),
        "no PSA call, not even the setup check: {:?}",
        w.assets.calls()
    );
}

#[tokio::test]
async fn a_changed_device_patches_only_the_changed_fields() {
    let w = World::new(AssetMode::Advanced);
    w.push(vec![
        device("dev-1", Some("SN1")),
        device("dev-2", Some("SN2")),
    ])
    .await;
    w.run().await.unwrap();
    w.assets.clear_calls();

    let mut changed = device("dev-1", Some("SN1"));
    changed.ip_address = Some("10.0.0.9".into());
    changed.name = Some("renamed".into());
    w.push(vec![changed, device("dev-2", Some("SN2"))]).await;
    let summary = w.run().await.unwrap();
    assert_eq!((summary.updated, summary.unchanged), (1, 1), "{summary}");
    let calls = w.assets.calls();
    let [AssetCall::SetupProblems, AssetCall::Update(_, patch)] = calls.as_slice() else {
        panic!("expected the setup check and one patch: {calls:?}");
    };
    assert_eq!(patch.reference_title.as_deref(), Some("renamed"));
    assert_eq!(
        patch.udfs.iter().collect::<Vec<_>>(),
        vec![(&"IP Address".to_owned(), &"10.0.0.9".to_owned())]
    );
    assert_eq!(patch.serial_number, None);
    assert_eq!(patch.warranty_expiration, None);
    assert_eq!(patch.is_active, None);
    assert_eq!(patch.reference_number, None);
}

#[tokio::test]
async fn managed_to_unmanaged_deactivates_and_never_deletes() {
    let w = World::new(AssetMode::Simple);
    w.push(vec![device("dev-1", Some("SN1"))]).await;
    w.run().await.unwrap();
    let mut gone = device("dev-1", Some("SN1"));
    gone.state = DeviceState::Unmanaged;
    w.push(vec![gone]).await;
    let summary = w.run().await.unwrap();
    assert_eq!(summary.deactivated, 1, "{summary}");
    let cis = w.assets.cis();
    assert_eq!(cis.len(), 1);
    assert!(!cis[0].is_active);
    // Managed again: active again.
    w.push(vec![device("dev-1", Some("SN1"))]).await;
    assert_eq!(w.run().await.unwrap().updated, 1);
    assert!(w.assets.cis()[0].is_active);
}

#[tokio::test]
async fn missing_udfs_are_reported_before_anything_is_written() {
    let w = World::new(AssetMode::Simple);
    let mut w = w;
    w.config.assets = Some(settings(AssetMode::Advanced));
    w.assets.define_udf("Make");
    w.push(vec![device("dev-1", Some("SN1"))]).await;
    let error = w.run().await.unwrap_err();
    let AssetRunError::SetupIncomplete { problems } = &error else {
        panic!("{error}");
    };
    assert!(!error.is_retryable());
    assert_eq!(problems.len(), 12, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("\"BIOS Name\"")));
    assert!(problems.iter().any(|p| p.contains(INVENTORY_UDF)));
    assert!(!problems.iter().any(|p| p.contains("\"Make\"")));
    assert!(w.assets.writes().is_empty());
    assert_eq!(w.assets.calls(), vec![AssetCall::SetupProblems]);
    let log = w.log().await;
    assert!(log.iter().any(|e| e.level == LogLevel::Error
        && e.message.contains("nothing was written")
        && e.message.contains("BIOS Name")));
    // Once the UDFs exist, the next run goes.
    w.assets.define_asset_udfs(INVENTORY_UDF);
    assert_eq!(w.run().await.unwrap().created, 1);
}

#[tokio::test]
async fn a_bad_device_does_not_stop_the_others() {
    let mut w = World::new(AssetMode::Simple);
    w.config.autotask.default_company_id = None;
    let mut good = device("dev-1", Some("SN1"));
    good.company_hint = Some("55".into());
    let mut orphan = device("dev-2", Some("SN2"));
    orphan.cluster_id = Some("nowhere".into());
    let mut good2 = device("dev-3", None);
    good2.company_hint = Some("55".into());
    w.push(vec![good, orphan, good2]).await;
    let summary = w.run().await.unwrap();
    assert_eq!(summary.created, 2, "{summary}");
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, "dev-2");
    assert!(summary.failed[0].1.contains("no company"), "{summary}");
    assert!(summary.finished);
    assert!(w.record("dev-2").await.last_error.is_some());
    let log = w.log().await;
    assert!(log
        .iter()
        .any(|e| e.ticket.as_deref() == Some("device:dev-2") && e.message.contains("nowhere")));
    assert!(log
        .iter()
        .any(|e| e.step == "asset_sync" && e.message.contains("1 failed; dev-2: no company")));
}

#[tokio::test]
async fn an_interrupted_run_resumes_without_duplicates() {
    let w = World::new(AssetMode::Advanced);
    let fleet: Vec<Device> = (0..10)
        .map(|i| device(&format!("dev-{i}"), Some(&format!("SN{i}"))))
        .collect();
    w.push(fleet).await;
    // The budget runs out midway: setup check + 4 devices × (UDF lookup,
    // serial lookup, create) + 1 call; this run may not pause for it.
    w.assets.limit_calls(Some(1 + 4 * 3 + 1));
    let first = w
        .run_with(&AssetRunOptions {
            budget_pause: Duration::ZERO,
            ..AssetRunOptions::default()
        })
        .await
        .unwrap();
    assert!(!first.finished);
    assert_eq!(first.created, 4, "{first}");
    assert_eq!(first.remaining, 6);
    assert!(first.stopped.as_deref().unwrap().contains("rate limit"));
    let log = w.log().await;
    assert!(log
        .iter()
        .any(|e| e.step == "asset_sync" && e.message.contains("the next run resumes")));

    // The next create lands in the PSA but its answer is lost, as if the
    // process died right after the call.
    w.assets.limit_calls(None);
    w.assets.lose_next_create_answer();
    let second = w.run().await.unwrap();
    assert!(second.resumed);
    assert_eq!(second.created, 5, "{second}");
    assert_eq!(second.failed.len(), 1);
    assert!(matches!(
        w.record(&second.failed[0].0).await.ci,
        CiLink::Creating { .. }
    ));

    let third = w.run().await.unwrap();
    assert_eq!((third.created, third.unchanged), (1, 9), "{third}");
    assert_eq!(
        creates(&w.assets.calls()),
        10 + 1 - 1,
        "one create per device"
    );
    assert_eq!(w.assets.cis().len(), 10, "no duplicate CI");
    let fourth = w.run().await.unwrap();
    assert_eq!(fourth.unchanged, 10);
}

#[tokio::test]
async fn a_run_pauses_for_the_budget_and_finishes_in_one_go() {
    let w = World::new(AssetMode::Advanced);
    let fleet: Vec<Device> = (0..10)
        .map(|i| device(&format!("dev-{i}"), Some(&format!("SN{i}"))))
        .collect();
    w.push(fleet).await;
    // Every third call finds the bucket empty, from the setup check on
    // (as a small burst refuses it): without pausing the run would stop at
    // its third call, before a single device.
    w.assets.refuse_every(3, Duration::from_millis(5));
    let summary = w.run().await.unwrap();
    assert!(summary.finished, "{summary}");
    assert_eq!(summary.created, 10, "{summary}");
    assert!(summary.paused >= 10, "it paused for the budget: {summary}");
    assert!(summary.to_string().contains("paused"), "{summary}");
    assert_eq!(creates(&w.assets.calls()), 10, "one create per device");
    assert_eq!(w.assets.cis().len(), 10, "no duplicate CI");

    // A refusal that asks for longer than the run may pause (the fake's
    // spent budget names a minute) stops it; the next run resumes.
    w.assets.stop_refusing();
    w.push(vec![device("dev-new", Some("SN-new"))]).await;
    w.assets.limit_calls(Some(1));
    let stopped = w.run().await.unwrap();
    assert!(!stopped.finished && stopped.remaining == 1, "{stopped}");
    assert_eq!(stopped.paused, 0, "{stopped}");

    // Nor does a run pause past its deadline, even before its first device.
    w.assets.limit_calls(None);
    w.assets.refuse_every(2, Duration::from_secs(5));
    let deadline = w.clock.now_utc() + chrono::Duration::seconds(2);
    let cut = w
        .run_with(&AssetRunOptions {
            deadline: Some(deadline),
            ..AssetRunOptions::default()
        })
        .await
        .unwrap();
    assert!(cut.resumed && !cut.finished && cut.remaining == 1, "{cut}");
    assert_eq!(cut.paused, 0, "{cut}");

    w.assets.stop_refusing();
    let last = w.run().await.unwrap();
    assert!(last.finished && last.created == 1, "{last}");
    assert_eq!(w.assets.cis().len(), 11, "no duplicate CI");
}

#[tokio::test]
async fn simple_mode_a_lost_create_answer_without_serial_does_not_duplicate() {
    // Simple mode writes no UDF and the device has no serial number: only
    // the reference number (the inventory id) identifies its CI.
    let w = World::new(AssetMode::Simple);
    w.push(vec![device("dev-1", None), device("dev-2", None)])
        .await;
    // The first create lands in the PSA but its answer is lost, as if the
    // process died between `create_ci` and saving the link.
    w.assets.lose_next_create_answer();
    let first = w.run().await.unwrap();
    assert_eq!((first.created, first.failed.len()), (1, 1), "{first}");
    let lost = first.failed[0].0.clone();
    assert!(matches!(w.record(&lost).await.ci, CiLink::Creating { .. }));
    assert_eq!(w.assets.cis().len(), 2, "both creates landed");

    w.assets.clear_calls();
    let second = w.run().await.unwrap();
    assert_eq!(
        (second.created, second.unchanged, second.failed.len()),
        (1, 1, 0),
        "{second}"
    );
    assert_eq!(creates(&w.assets.calls()), 0, "found, not created again");
    assert!(w
        .assets
        .calls()
        .contains(&AssetCall::FindByReference(lost.clone())));
    assert_eq!(w.assets.cis().len(), 2, "no duplicate CI");
    let ci = w
        .assets
        .cis()
        .into_iter()
        .find(|c| c.reference_number.as_deref() == Some(lost.as_str()))
        .unwrap();
    assert_eq!(w.record(&lost).await.ci, CiLink::Linked { ci_id: ci.id });
    w.assets.clear_calls();
    assert_eq!(w.run().await.unwrap().unchanged, 2);
    assert!(w.assets.calls().is_empty());
}

#[tokio::test]
async fn a_reference_number_match_naming_another_device_is_not_taken() {
    let w = World::new(AssetMode::Simple);
    w.assets.define_udf(INVENTORY_UDF);
    // Same reference number, but its UDF says it is another device.
    w.assets.add_ci(PsaCi {
        id: 31,
        company_id: 3,
        is_active: true,
        reference_title: None,
        reference_number: Some("dev-1".into()),
        serial_number: None,
        udfs: [(INVENTORY_UDF.to_owned(), "someone-else".to_owned())].into(),
    });
    w.push(vec![device("dev-1", None)]).await;
    let summary = w.run().await.unwrap();
    assert_eq!(summary.created, 1, "{summary}");
    assert_ne!(w.record("dev-1").await.ci, CiLink::Linked { ci_id: 31 });
}

#[tokio::test]
async fn a_ci_type_label_is_resolved_once_per_run_and_an_unknown_one_writes_nothing() {
    use bridge::config::FieldValue;
    let mut w = World::new(AssetMode::Simple);
    w.assets.define_ci_type(12, "Server");
    w.config.assets.as_mut().unwrap().ci_type = Some(FieldValue::Text("server".into()));
    w.push(vec![
        device("dev-1", Some("SN1")),
        device("dev-2", Some("SN2")),
    ])
    .await;
    let summary = w.run().await.unwrap();
    assert_eq!(summary.created, 2, "{summary}");
    let calls = w.assets.calls();
    let lookups = calls
        .iter()
        .filter(|c| matches!(c, AssetCall::CiTypeValue(_)))
        .count();
    assert_eq!(lookups, 1, "resolved once per run: {calls:?}");
    for call in &calls {
        if let AssetCall::Create(new) = call {
            assert_eq!(new.ci_type, Some(12));
        }
    }

    // A label the PSA lacks: a setup problem, nothing written. The check
    // names it...
    let mut w = World::new(AssetMode::Simple);
    w.assets.define_ci_type(12, "Server");
    w.config.assets.as_mut().unwrap().ci_type = Some(FieldValue::Text("Workstation".into()));
    w.push(vec![device("dev-1", Some("SN1"))]).await;
    let err = w.run().await.unwrap_err();
    assert!(
        matches!(&err, AssetRunError::SetupIncomplete { problems } if problems.iter().any(|p| p.contains("Workstation"))),
        "{err}"
    );
    // ...and so does the lookup where the check passes (the type was
    // removed in between, or a PSA whose check cannot tell).
    let unchecked = SetupPasses(&w.assets);
    let err = run_assets(
        w.store.as_ref(),
        &unchecked,
        &w.psa,
        &w.config,
        &w.clock,
        &AssetRunOptions::default(),
    )
    .await
    .unwrap_err();
    let AssetRunError::SetupIncomplete { problems } = &err else {
        panic!("{err}");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"Workstation\"") && p.contains("ci_type")),
        "{problems:?}"
    );
    assert!(!err.is_retryable());
    assert!(w
        .assets
        .calls()
        .contains(&AssetCall::CiTypeValue(FieldValue::Text(
            "Workstation".into()
        ))));
    assert!(w.assets.writes().is_empty());
    assert!(w.assets.cis().is_empty());
    let log = w.log().await;
    assert!(log
        .iter()
        .any(|e| e.level == LogLevel::Error && e.message.contains("nothing was written")));
}

/// The fake PSA with a setup check that finds nothing missing.
struct SetupPasses<'a>(&'a FakeAssetPsa);

#[async_trait::async_trait]
impl AssetPsa for SetupPasses<'_> {
    async fn asset_setup_problems(&self, _: &AssetSettings) -> Result<Vec<String>, ApiError> {
        Ok(Vec::new())
    }
    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError> {
        self.0.get_ci(id).await
    }
    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError> {
        self.0.find_ci_by_udf(udf, value).await
    }
    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError> {
        self.0.find_ci_by_serial(serial).await
    }
    async fn find_ci_by_reference(&self, reference: &str) -> Result<Option<PsaCi>, ApiError> {
        self.0.find_ci_by_reference(reference).await
    }
    async fn ci_type_value(
        &self,
        value: &bridge::config::FieldValue,
    ) -> Result<Option<i64>, ApiError> {
        self.0.ci_type_value(value).await
    }
    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError> {
        self.0.create_ci(ci).await
    }
    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError> {
        self.0.update_ci(id, patch).await
    }
}

#[tokio::test]
async fn matching_by_udf_and_by_serial_links_existing_cis() {
    let w = World::new(AssetMode::Advanced);
    let by_udf = PsaCi {
        id: 11,
        company_id: 9,
        is_active: true,
        reference_title: Some("old name".into()),
        reference_number: Some("dev-1".into()),
        serial_number: None,
        udfs: [(INVENTORY_UDF.to_owned(), "dev-1".to_owned())].into(),
    };
    let by_serial = PsaCi {
        id: 12,
        company_id: 9,
        is_active: false,
        reference_title: Some("dev-2-host".into()),
        reference_number: None,
        serial_number: Some("SN2".into()),
        udfs: Default::default(),
    };
    // Same serial, but its UDF says it is another device: not a match.
    let other_device = PsaCi {
        id: 13,
        company_id: 9,
        is_active: true,
        reference_title: None,
        reference_number: None,
        serial_number: Some("OEM".into()),
        udfs: [(INVENTORY_UDF.to_owned(), "someone-else".to_owned())].into(),
    };
    w.assets.add_ci(by_udf);
    w.assets.add_ci(by_serial);
    w.assets.add_ci(other_device);
    w.push(vec![
        device("dev-1", Some("SN1")),
        device("dev-2", Some("SN2")),
        device("dev-3", Some("OEM")),
    ])
    .await;
    let summary = w.run().await.unwrap();
    assert_eq!((summary.updated, summary.created), (2, 1), "{summary}");
    assert_eq!(w.assets.cis().len(), 4);
    assert_eq!(w.record("dev-1").await.ci, CiLink::Linked { ci_id: 11 });
    assert_eq!(w.record("dev-2").await.ci, CiLink::Linked { ci_id: 12 });
    assert_eq!(w.record("dev-1").await.company_id, Some(9));
    let ci11 = w.assets.ci(11).unwrap();
    assert_eq!(ci11.reference_title.as_deref(), Some("dev-1-host"));
    assert_eq!(ci11.serial_number.as_deref(), Some("SN1"));
    let ci12 = w.assets.ci(12).unwrap();
    assert!(ci12.is_active);
    assert_eq!(
        ci12.udfs.get(INVENTORY_UDF).map(String::as_str),
        Some("dev-2")
    );
    // The unrelated CI is untouched.
    assert_eq!(
        w.assets
            .ci(13)
            .unwrap()
            .udfs
            .get(INVENTORY_UDF)
            .map(String::as_str),
        Some("someone-else")
    );
    // Linked: the next run needs no lookup.
    w.assets.clear_calls();
    assert_eq!(w.run().await.unwrap().unchanged, 3);
    assert!(w.assets.calls().is_empty());
}

#[tokio::test]
async fn simple_mode_without_the_udf_matches_by_serial() {
    let w = World::new(AssetMode::Simple);
    w.assets.add_ci(PsaCi {
        id: 21,
        company_id: 3,
        is_active: true,
        reference_title: Some("dev-1-host".into()),
        reference_number: Some("dev-1".into()),
        serial_number: Some("SN1".into()),
        udfs: Default::default(),
    });
    w.push(vec![
        device("dev-1", Some("SN1")),
        device("dev-2", Some("SN2")),
    ])
    .await;
    let summary = w.run().await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.failed.len()),
        (1, 1, 0),
        "{summary}"
    );
    assert_eq!(w.record("dev-1").await.ci, CiLink::Linked { ci_id: 21 });
    // Only the warranty date (not read back from the PSA) was sent.
    let patches: Vec<_> = w
        .assets
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            AssetCall::Update(id, patch) => Some((id, patch)),
            _ => None,
        })
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].0, 21);
    assert!(patches[0].1.warranty_expiration.is_some());
    assert_eq!(
        (
            &patches[0].1.reference_title,
            &patches[0].1.serial_number,
            patches[0].1.is_active
        ),
        (&None, &None, None)
    );
    // After the PSA refused the UDF lookup once, the run stopped asking.
    let udf_lookups = w
        .assets
        .calls()
        .iter()
        .filter(|c| matches!(c, AssetCall::FindByUdf(..)))
        .count();
    assert_eq!(udf_lookups, 1);
}

#[tokio::test]
async fn a_second_run_waits_for_the_lease_and_schedules_run_once_a_day() {
    let w = World::new(AssetMode::Simple);
    // Another run holds the lease.
    asset_store::put_run_state(
        w.store.as_ref(),
        w.tenant(),
        &asset_store::AssetRunState {
            run_id: "other".into(),
            started_at: t0(),
            lease_until: t0() + chrono::Duration::minutes(5),
            finished: false,
            finished_at: None,
            totals: Default::default(),
            scheduled_on: None,
        },
        Condition::MustNotExist,
    )
    .await
    .unwrap();
    let busy = w.run().await.unwrap_err();
    assert!(matches!(busy, AssetRunError::Busy { .. }) && busy.is_retryable());
    assert!(!due(w.store.as_ref(), &w.config, t0()).await.unwrap());
    // Its lease runs out: the unfinished run is due (resumed) on any day.
    w.clock.advance(chrono::Duration::minutes(6));
    assert!(due(
        w.store.as_ref(),
        &w.config,
        t0() + chrono::Duration::minutes(6)
    )
    .await
    .unwrap());
    let scheduled = run_assets(
        w.store.as_ref(),
        &w.assets,
        &w.psa,
        &w.config,
        &w.clock,
        &AssetRunOptions {
            scheduled: true,
            ..AssetRunOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(scheduled.finished && scheduled.resumed);
    // The 10th ran; later that day it is not due, on the 11th neither, on the 25th yes.
    let later = t0() + chrono::Duration::hours(3);
    assert!(!due(w.store.as_ref(), &w.config, later).await.unwrap());
    let eleventh = Utc.with_ymd_and_hms(2026, 12, 11, 6, 0, 0).unwrap();
    assert!(!due(w.store.as_ref(), &w.config, eleventh).await.unwrap());
    let twenty_fifth = Utc.with_ymd_and_hms(2026, 12, 25, 0, 5, 0).unwrap();
    assert!(due(w.store.as_ref(), &w.config, twenty_fifth)
        .await
        .unwrap());
    // A tenant without asset settings is never due.
    assert!(!due(w.store.as_ref(), &config(None), twenty_fifth)
        .await
        .unwrap());
    let history = asset_store::run_history(w.store.as_ref(), w.tenant(), 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
}

// ---- The inventory push ----

struct Push {
    store: Arc<SqliteStore>,
    router: axum::Router,
    tenant: TenantId,
}

fn secrets(inventory: &str) -> TenantSecrets {
    TenantSecrets {
        zendesk_email: String::new(),
        zendesk_api_token: Secret::default(),
        zendesk_oauth_token: Secret::default(),
        zendesk_webhook_secret: Secret::new("w"),
        autotask_username: String::new(),
        autotask_secret: Secret::default(),
        autotask_integration_code: Secret::default(),
        autotask_callout_username: String::new(),
        autotask_callout_password: Secret::default(),
        autotask_webhook_secret: Secret::default(),
        connectwise_public_key: String::new(),
        connectwise_private_key: Secret::default(),
        connectwise_client_id: String::new(),
        inventory_signing_secret: Secret::new(inventory),
    }
}

async fn push_world(assets: Option<AssetSettings>, secret: &str) -> Push {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let config = config(assets);
    Repo::new(store.as_ref())
        .put_tenant(&config, Condition::Always)
        .await
        .unwrap();
    let secrets = FileSecrets::from_map(HashMap::from([(config.id.clone(), secrets(secret))]));
    let state = IngestState {
        store: store.clone(),
        secrets: Arc::new(secrets),
        queue: Arc::new(EmbeddedQueue::in_memory().unwrap()),
        clock: Arc::new(FixedClock::at(t0())),
    };
    Push {
        store,
        router: inventory_router(state),
        tenant: config.id,
    }
}

fn ts() -> String {
    t0().to_rfc3339()
}

impl Push {
    async fn send(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> (StatusCode, Value) {
        let mut request = Request::post(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn signed(&self, body: Vec<u8>, timestamp: &str) -> (StatusCode, Value) {
        let signature = sign(SECRET, timestamp, &body);
        self.send(
            "/t/acme/inventory",
            body,
            &[
                ("x-inventory-signature", signature),
                ("x-inventory-timestamp", timestamp.to_owned()),
            ],
        )
        .await
    }

    async fn stored_items(&self) -> usize {
        let pk = format!("TENANT#{}", self.tenant);
        self.store
            .query(&pk, "DEVICE#", false, 100)
            .await
            .unwrap()
            .len()
            + self
                .store
                .query(&pk, "LOG#", false, 100)
                .await
                .unwrap()
                .len()
    }
}

fn body(devices: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "devices": devices })).unwrap()
}

#[tokio::test]
async fn a_signed_push_stores_good_devices_and_reports_bad_ones() {
    let p = push_world(Some(settings(AssetMode::Simple)), SECRET).await;
    let devices = json!([
        {"inventory_id":"dev-1","name":"FS01","state":"managed","serial_number":"SN1"},
        {"inventory_id":"dev-2","state":"sold"},
        {"name":"anonymous","state":"managed"},
        {"inventory_id":"dev-4","state":"discovered","warranty_end_date":"2027-01-31"}
    ]);
    let (status, answer) = p.signed(body(devices.clone()), &ts()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stored"], 2);
    assert_eq!(answer["unchanged"], 0);
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["inventory_id"], "dev-2");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("sold"));
    assert_eq!(rejected[1]["index"], 2);
    assert_eq!(rejected[1]["inventory_id"], Value::Null);
    let log = Repo::new(p.store.as_ref())
        .log_entries(&p.tenant, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e.step == "inventory_push"));
    let stored = asset_store::device(p.store.as_ref(), &p.tenant, "dev-4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.value.device.state, DeviceState::Discovered);

    // The same push again: nothing written, versions unchanged.
    let (status, answer) = p.signed(body(devices), &ts()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (answer["stored"].as_u64(), answer["unchanged"].as_u64()),
        (Some(0), Some(2))
    );
    let again = asset_store::device(p.store.as_ref(), &p.tenant, "dev-4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, stored.version);

    // A bare array and Unix-seconds timestamps are accepted too.
    let bare = serde_json::to_vec(&json!([{"inventory_id":"dev-9","state":"managed"}])).unwrap();
    let (status, answer) = p.signed(bare, &t0().timestamp().to_string()).await;
    assert_eq!(
        (status, answer["stored"].as_u64()),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn bad_pushes_are_refused_with_nothing_stored() {
    let p = push_world(Some(settings(AssetMode::Simple)), SECRET).await;
    let good = body(json!([{"inventory_id":"dev-1","state":"managed"}]));

    // Unsigned.
    let (status, answer) = p.send("/t/acme/inventory", good.clone(), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("X-Inventory-Signature"));
    // Wrong secret.
    let wrong = sign("not the secret", &ts(), &good);
    let (status, _) = p
        .send(
            "/t/acme/inventory",
            good.clone(),
            &[
                ("x-inventory-signature", wrong),
                ("x-inventory-timestamp", ts()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Stale.
    let stale = (t0() - chrono::Duration::minutes(6)).to_rfc3339();
    let (status, answer) = p.signed(good.clone(), &stale).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"].as_str().unwrap().contains("5-minute"));
    // Malformed.
    let (status, _) = p.signed(b"{\"devices\": [".to_vec(), &ts()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = p.signed(b"{\"items\": []}".to_vec(), &ts()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Oversize body.
    let mut huge = good.clone();
    huge.resize(MAX_INVENTORY_BYTES + 1, b' ');
    let (status, answer) = p.signed(huge, &ts()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().unwrap().contains("page"));
    // Too many devices, under the byte cap.
    let many: Vec<Value> = (0..5001)
        .map(|i| json!({"inventory_id": format!("d{i}"), "state": "managed"}))
        .collect();
    let (status, _) = p.signed(body(Value::Array(many)), &ts()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown tenant.
    let (status, _) = p.send("/t/nobody/inventory", good.clone(), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(p.stored_items().await, 0, "nothing stored");
    let (status, _) = p.signed(good, &ts()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tenants_without_a_secret_or_asset_settings_refuse_pushes() {
    let good = body(json!([{"inventory_id":"dev-1","state":"managed"}]));
    let no_secret = push_world(Some(settings(AssetMode::Simple)), "").await;
    let (status, answer) = no_secret.signed(good.clone(), &ts()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("inventory_signing_secret"));
    assert_eq!(no_secret.stored_items().await, 0);

    let no_assets = push_world(None, SECRET).await;
    let (status, answer) = no_assets.signed(good, &ts()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("not configured"));
    assert_eq!(no_assets.stored_items().await, 0);
}

#[tokio::test]
async fn a_pushed_batch_runs_end_to_end() {
    // Parse → store → run, as the CLI import does.
    let w = World::new(AssetMode::Simple);
    let batch = parse_json_batch(
        br#"[{"inventory_id":"a","state":"managed","name":"A"},{"inventory_id":"b","state":"unmanaged"}]"#,
    )
    .unwrap();
    import_batch(w.store.as_ref(), w.tenant(), batch, t0())
        .await
        .unwrap();
    let summary = w.run().await.unwrap();
    assert_eq!(summary.created, 2);
    assert_eq!(w.assets.cis().iter().filter(|c| c.is_active).count(), 1);
}

#[tokio::test]
async fn a_csv_push_is_read_by_its_content_type() {
    let p = push_world(Some(settings(AssetMode::Simple)), SECRET).await;
    let csv =
        b"inventory_id,name,state,serial_number\ndev-1,FS01,managed,SN1\ndev-2,,bogus,\n".to_vec();
    let signature = sign(SECRET, &ts(), &csv);
    let request = Request::post("/t/acme/inventory")
        .header("content-type", "text/csv; charset=utf-8")
        .header("x-inventory-signature", signature)
        .header("x-inventory-timestamp", ts())
        .body(Body::from(csv))
        .unwrap();
    let response = p.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["stored"], 1);
    assert_eq!(answer["rejected"][0]["inventory_id"], "dev-2");
}

// ---- Runs through the connectors: CLI, console and the schedule ----

struct Connectors {
    assets: Arc<FakeAssetPsa>,
    psa: Arc<FakePsa>,
}

#[async_trait::async_trait]
impl bridge::ports::Connectors for Connectors {
    async fn desk(
        &self,
        _config: &TenantConfig,
        _secrets: &TenantSecrets,
    ) -> Result<Arc<dyn bridge::ports::ServiceDesk>, bridge::error::SyncError> {
        Err(bridge::error::SyncError::Config(
            "no desk in asset tests".into(),
        ))
    }
    async fn psa(
        &self,
        _config: &TenantConfig,
        _secrets: &TenantSecrets,
    ) -> Result<Arc<dyn bridge::ports::Psa>, bridge::error::SyncError> {
        Ok(self.psa.clone())
    }
    async fn assets(
        &self,
        _config: &TenantConfig,
        _secrets: &TenantSecrets,
    ) -> Result<Arc<dyn bridge::assets::ports::AssetPsa>, bridge::error::SyncError> {
        Ok(self.assets.clone())
    }
}

#[tokio::test]
async fn the_schedule_runs_due_tenants_once_per_schedule_day() {
    use bridge::assets::{check_tenant_assets, run_due_assets, run_tenant_assets, AssetDeps};
    let store = SqliteStore::in_memory().unwrap();
    let with_assets = config(Some(settings(AssetMode::Advanced)));
    let mut without = config(None);
    without.id = TenantId::parse("plain").unwrap();
    for c in [&with_assets, &without] {
        Repo::new(&store)
            .put_tenant(c, Condition::Always)
            .await
            .unwrap();
    }
    let secrets = FileSecrets::from_map(HashMap::from([
        (with_assets.id.clone(), secrets(SECRET)),
        (without.id.clone(), secrets(SECRET)),
    ]));
    let connectors = Connectors {
        assets: Arc::new(FakeAssetPsa::with_product(PRODUCT)),
        psa: Arc::new(FakePsa::default()),
    };
    let clock = FixedClock::at(t0());
    let deps = AssetDeps {
        store: &store,
        secrets: &secrets,
        connectors: &connectors,
        clock: &clock,
    };
    import_batch(
        &store,
        &with_assets.id,
        bridge::assets::DeviceBatch {
            devices: vec![device("dev-1", Some("SN1"))],
            rejected: vec![],
        },
        t0(),
    )
    .await
    .unwrap();

    // The check lists what is missing; the scheduled run fails with it.
    let problems = check_tenant_assets(deps, &with_assets.id).await.unwrap();
    assert_eq!(problems.len(), 13, "{problems:?}");
    assert!(matches!(
        check_tenant_assets(deps, &without.id).await,
        Err(AssetRunError::NotConfigured(_))
    ));
    let pass = run_due_assets(deps, &AssetRunOptions::default())
        .await
        .unwrap();
    assert_eq!(pass.runs.len(), 1, "only the tenant with asset settings");
    assert_eq!(pass.failed(), 1);
    assert!(!pass.runs[0].retryable);

    // Fixed; the same day is not run again by the schedule, "sync now" runs.
    connectors.assets.define_asset_udfs(INVENTORY_UDF);
    assert!(check_tenant_assets(deps, &with_assets.id)
        .await
        .unwrap()
        .is_empty());
    clock.advance(chrono::Duration::hours(1));
    assert!(run_due_assets(deps, &AssetRunOptions::default())
        .await
        .unwrap()
        .runs
        .is_empty());
    let now = run_tenant_assets(deps, &with_assets.id, &AssetRunOptions::default())
        .await
        .unwrap();
    assert_eq!(now.created, 1);

    // The 25th: due again, nothing to write, no PSA call.
    *clock.0.lock().unwrap() = Utc.with_ymd_and_hms(2026, 12, 25, 6, 0, 0).unwrap();
    connectors.assets.clear_calls();
    let pass = run_due_assets(deps, &AssetRunOptions::default())
        .await
        .unwrap();
    assert_eq!(pass.runs.len(), 1);
    let summary = pass.runs[0].summary.as_ref().unwrap();
    assert_eq!((summary.unchanged, summary.created), (1, 0));
    assert!(connectors.assets.calls().is_empty());
    let json = serde_json::to_value(&pass).unwrap();
    assert_eq!(json["runs"][0]["tenant"], "acme");
}

#[tokio::test]
async fn a_push_and_a_run_writing_one_device_at_once_keep_both_changes() {
    let w = World::new(AssetMode::Simple);
    w.push(vec![device("dev-1", Some("SN1"))]).await;
    let stale = asset_store::device(w.store.as_ref(), w.tenant(), "dev-1")
        .await
        .unwrap()
        .unwrap();
    // A push lands after the run read the record...
    let mut renamed = device("dev-1", Some("SN1"));
    renamed.name = Some("renamed".into());
    w.push(vec![renamed]).await;
    // ...and the run records its CI link under the version it read.
    let saved = asset_store::update_device(w.store.as_ref(), w.tenant(), stale, |r| {
        r.ci = CiLink::Linked { ci_id: 77 }
    })
    .await
    .unwrap();
    assert_eq!(saved.value.ci, CiLink::Linked { ci_id: 77 });
    assert_eq!(saved.value.device.name.as_deref(), Some("renamed"));
    let stored = w.record("dev-1").await;
    assert_eq!(stored, saved.value);
}

// ---- Against the Autotask sandbox, through the real connector ----

#[tokio::test]
async fn runs_against_the_autotask_sandbox_create_patch_and_then_call_nothing() {
    use bridge::connectors::autotask::AutotaskClient;
    use sandbox::autotask::{AutotaskSandbox, AutotaskSandboxConfig};

    let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig {
        username: "sync@msp.example".to_owned(),
        secret: "api-secret-1".to_owned(),
        integration_code: "INTEGRATION-CODE-1".to_owned(),
        ..AutotaskSandboxConfig::default()
    })
    .await
    .expect("sandbox starts");
    let company = sandbox.add_company("Contoso");
    sandbox.add_configuration_item(company, "cluster-7f3a");
    let product = sandbox.add_product("Managed workstation");
    let client = AutotaskClient::connect(
        bridge::connectors::http::client(),
        &sandbox.zone_lookup_url(),
        "sync@msp.example",
        &Secret::new("api-secret-1"),
        &Secret::new("INTEGRATION-CODE-1"),
    )
    .await
    .expect("connects");
    let store = SqliteStore::in_memory().unwrap();
    let clock = FixedClock::at(t0());
    let mut config = config(Some(AssetSettings {
        product_id: product,
        category_id: None,
        ..settings(AssetMode::Advanced)
    }));
    config.autotask.default_company_id = Some(company);
    let run = |config: TenantConfig| {
        let (store, client, clock) = (&store, &client, &clock);
        async move {
            run_assets(
                store,
                client,
                client,
                &config,
                clock,
                &AssetRunOptions::default(),
            )
            .await
        }
    };
    let mut by_cluster = device("dev-1", Some("SN1"));
    by_cluster.cluster_id = Some("cluster-7f3a".into());
    let fleet = vec![by_cluster, device("dev-2", Some("SN2"))];
    import_batch(
        &store,
        &config.id,
        bridge::assets::DeviceBatch {
            devices: fleet.clone(),
            rejected: vec![],
        },
        t0(),
    )
    .await
    .unwrap();

    // Advanced mode without the UDFs: the list, and nothing written.
    let before = sandbox.configuration_items().len();
    let error = run(config.clone()).await.unwrap_err();
    let AssetRunError::SetupIncomplete { problems } = error else {
        panic!("{error}");
    };
    assert_eq!(problems.len(), 13, "{problems:?}");
    assert_eq!(sandbox.configuration_items().len(), before);

    for udf in bridge::config::ASSET_UDFS {
        sandbox.add_ci_udf(udf);
    }
    sandbox.add_ci_udf(INVENTORY_UDF);
    let first = run(config.clone()).await.unwrap();
    assert_eq!((first.created, first.failed.len()), (2, 0), "{first}");
    let ours: Vec<_> = sandbox
        .configuration_items()
        .into_iter()
        .filter(|ci| ci.product_id == product)
        .collect();
    assert_eq!(ours.len(), 2);
    let dev1 = ours
        .iter()
        .find(|ci| ci.udfs.get(INVENTORY_UDF).map(String::as_str) == Some("dev-1"))
        .expect("the inventory id UDF is written");
    assert_eq!(dev1.company_id, company, "company through the cluster id");
    assert_eq!(dev1.reference_title.as_deref(), Some("dev-1-host"));
    assert_eq!(dev1.serial_number.as_deref(), Some("SN1"));
    assert_eq!(dev1.udfs.get("Make").map(String::as_str), Some("Dell"));
    assert!(dev1.warranty_expiration.is_some());

    // Nothing changed: not one API call.
    let calls = sandbox.api_calls();
    let second = run(config.clone()).await.unwrap();
    assert_eq!(second.unchanged, 2, "{second}");
    assert_eq!(sandbox.api_calls(), calls);

    // Unmanaged now: one PATCH that deactivates, nothing else written.
    let mut gone = fleet[1].clone();
    gone.state = DeviceState::Unmanaged;
    import_batch(
        &store,
        &config.id,
        bridge::assets::DeviceBatch {
            devices: vec![gone],
            rejected: vec![],
        },
        t0(),
    )
    .await
    .unwrap();
    let patches_before = sandbox
        .api_requests_matching("PATCH", "ConfigurationItems")
        .len();
    let third = run(config.clone()).await.unwrap();
    assert_eq!((third.deactivated, third.unchanged), (1, 1), "{third}");
    let patches = sandbox.api_requests_matching("PATCH", "ConfigurationItems");
    assert_eq!(patches.len(), patches_before + 1);
    assert!(sandbox
        .configuration_items()
        .iter()
        .any(|ci| ci.product_id == product && !ci.is_active));
    assert_eq!(
        sandbox
            .configuration_items()
            .iter()
            .filter(|ci| ci.product_id == product)
            .count(),
        2,
        "nothing created twice, nothing deleted"
    );
}

#[tokio::test]
async fn a_tenant_that_never_ran_is_due_on_any_day() {
    // Its first run after activation must not wait for a schedule day (in
    // AWS the schedule's pass is what runs it).
    let w = World::new(AssetMode::Advanced);
    let eleventh = Utc.with_ymd_and_hms(2026, 12, 11, 6, 0, 0).unwrap();
    assert!(due(w.store.as_ref(), &w.config, eleventh).await.unwrap());
    let mut inactive = w.config.clone();
    inactive.active = false;
    assert!(!due(w.store.as_ref(), &inactive, eleventh).await.unwrap());

    w.push(vec![device("dev-1", Some("SN1"))]).await;
    let first = w.run().await.unwrap();
    assert!(first.finished, "{first}");
    assert!(
        !due(w.store.as_ref(), &w.config, eleventh).await.unwrap(),
        "after its first run, only schedule days and interrupted runs"
    );
}
