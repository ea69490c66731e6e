//! An in-memory PSA of configuration items for asset sync tests: strict
//! where the real Autotask is (a CI needs an existing product; a lookup by
//! an undefined UDF is refused; no delete; the company is fixed after
//! create), with a call log, and a budget that runs out after a chosen
//! number of calls (`RateLimited`, as the connectors' budget answers).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bridge::assets::ports::{AssetPsa, CiPatch, NewCi, PsaCi};
use bridge::config::{AssetMode, AssetSettings, FieldValue, ASSET_UDFS};
use bridge::error::ApiError;
use chrono::{DateTime, Utc};

const SYSTEM: &str = "autotask";

/// One call the fake answered (or refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetCall {
    SetupProblems,
    Get(i64),
    FindByUdf(String, String),
    FindBySerial(String),
    FindByReference(String),
    CiTypeValue(FieldValue),
    Create(NewCi),
    Update(i64, CiPatch),
}

impl AssetCall {
    pub fn is_write(&self) -> bool {
        matches!(self, AssetCall::Create(_) | AssetCall::Update(..))
    }
}

#[derive(Default)]
struct State {
    cis: BTreeMap<i64, PsaCi>,
    warranty: BTreeMap<i64, Option<DateTime<Utc>>>,
    next_id: i64,
    products: BTreeSet<i64>,
    udfs: BTreeSet<String>,
    /// The `configurationItemType` picklist: value → label.
    ci_types: BTreeMap<i64, String>,
    calls: Vec<AssetCall>,
    /// Calls left before every call answers `RateLimited`.
    budget: Option<usize>,
    /// Every n-th call is refused once with this `retry_after`, as a token
    /// bucket refuses the call that finds it empty.
    refuse_every: Option<(usize, Duration)>,
    attempts: usize,
    /// The next create lands but answers a timeout (a process that dies
    /// between the PSA write and recording it looks the same to the next run).
    lose_next_create_answer: bool,
}

/// Configuration items in memory.
pub struct FakeAssetPsa {
    state: Mutex<State>,
}

impl FakeAssetPsa {
    /// A PSA with product `product_id` and no UDFs.
    pub fn with_product(product_id: i64) -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 5000,
                products: [product_id].into(),
                ..State::default()
            }),
        }
    }

    /// Defines the advanced-mode UDFs and `inventory_udf`.
    pub fn define_asset_udfs(&self, inventory_udf: &str) {
        let mut s = self.state.lock().unwrap();
        s.udfs.extend(ASSET_UDFS.iter().map(|u| (*u).to_owned()));
        s.udfs.insert(inventory_udf.to_owned());
    }

    pub fn define_udf(&self, name: &str) {
        self.state.lock().unwrap().udfs.insert(name.to_owned());
    }

    /// A configuration item type (picklist value and label).
    pub fn define_ci_type(&self, value: i64, label: &str) {
        self.state
            .lock()
            .unwrap()
            .ci_types
            .insert(value, label.to_owned());
    }

    /// A CI made outside the bridge (by hand, or by an earlier tool).
    pub fn add_ci(&self, ci: PsaCi) {
        let mut s = self.state.lock().unwrap();
        s.warranty.insert(ci.id, None);
        s.cis.insert(ci.id, ci);
    }

    /// Every call from now on answers `RateLimited` after `calls` more.
    pub fn limit_calls(&self, calls: Option<usize>) {
        self.state.lock().unwrap().budget = calls;
    }

    /// Refuses every `period`-th call (counting refused ones) with a
    /// `RateLimited` naming `retry_after`; the call after it goes through.
    pub fn refuse_every(&self, period: usize, retry_after: Duration) {
        assert!(period > 1, "a period of 1 would refuse every call");
        let mut s = self.state.lock().unwrap();
        s.refuse_every = Some((period, retry_after));
        s.attempts = 0;
    }

    pub fn stop_refusing(&self) {
        self.state.lock().unwrap().refuse_every = None;
    }

    pub fn lose_next_create_answer(&self) {
        self.state.lock().unwrap().lose_next_create_answer = true;
    }

    pub fn cis(&self) -> Vec<PsaCi> {
        self.state.lock().unwrap().cis.values().cloned().collect()
    }

    pub fn ci(&self, id: i64) -> Option<PsaCi> {
        self.state.lock().unwrap().cis.get(&id).cloned()
    }

    pub fn warranty(&self, id: i64) -> Option<DateTime<Utc>> {
        self.state
            .lock()
            .unwrap()
            .warranty
            .get(&id)
            .copied()
            .flatten()
    }

    pub fn calls(&self) -> Vec<AssetCall> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn writes(&self) -> Vec<AssetCall> {
        self.calls()
            .into_iter()
            .filter(AssetCall::is_write)
            .collect()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Records the call, or refuses it when the budget is spent.
    fn call(&self, call: AssetCall) -> Result<std::sync::MutexGuard<'_, State>, ApiError> {
        let mut s = self.state.lock().unwrap();
        s.attempts += 1;
        if let Some((period, retry_after)) = s.refuse_every {
            if s.attempts.is_multiple_of(period) {
                return Err(ApiError::RateLimited {
                    system: SYSTEM,
                    retry_after,
                });
            }
        }
        if let Some(left) = s.budget.as_mut() {
            if *left == 0 {
                return Err(ApiError::RateLimited {
                    system: SYSTEM,
                    retry_after: Duration::from_secs(60),
                });
            }
            *left -= 1;
        }
        s.calls.push(call);
        Ok(s)
    }
}

#[async_trait]
impl AssetPsa for FakeAssetPsa {
    async fn asset_setup_problems(
        &self,
        settings: &AssetSettings,
    ) -> Result<Vec<String>, ApiError> {
        let s = self.call(AssetCall::SetupProblems)?;
        let mut problems = Vec::new();
        if !s.products.contains(&settings.product_id) {
            problems.push(format!(
                "product {} does not exist: create it in Autotask under Admin > Products",
                settings.product_id
            ));
        }
        if let Some(wanted) = &settings.ci_type {
            let known = match wanted {
                FieldValue::Number(n) => s.ci_types.contains_key(n),
                FieldValue::Text(label) => s
                    .ci_types
                    .values()
                    .any(|l| l.eq_ignore_ascii_case(label.trim())),
            };
            if !known {
                problems.push(format!(
                    "configuration item type {wanted} does not exist: create it in Autotask under Admin > Configuration Item Types"
                ));
            }
        }
        if settings.mode == AssetMode::Advanced {
            for udf in ASSET_UDFS
                .iter()
                .copied()
                .chain([settings.inventory_id_udf.as_str()])
            {
                if !s.udfs.contains(udf) {
                    problems.push(format!(
                        "user-defined field {udf:?} is missing: create it in Autotask under Admin > User-Defined Fields > Configuration Items"
                    ));
                }
            }
        }
        Ok(problems)
    }

    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError> {
        let s = self.call(AssetCall::Get(id))?;
        Ok(s.cis.get(&id).cloned())
    }

    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError> {
        let s = self.call(AssetCall::FindByUdf(udf.to_owned(), value.to_owned()))?;
        if !s.udfs.contains(udf) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 500,
                message: format!("Unable to find {udf} in the ConfigurationItem entity."),
            });
        }
        Ok(s.cis
            .values()
            .find(|ci| ci.udfs.get(udf).map(String::as_str) == Some(value))
            .cloned())
    }

    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError> {
        let s = self.call(AssetCall::FindBySerial(serial.to_owned()))?;
        Ok(s.cis
            .values()
            .find(|ci| ci.serial_number.as_deref() == Some(serial))
            .cloned())
    }

    async fn find_ci_by_reference(
        &self,
        reference_number: &str,
    ) -> Result<Option<PsaCi>, ApiError> {
        let s = self.call(AssetCall::FindByReference(reference_number.to_owned()))?;
        Ok(s.cis
            .values()
            .find(|ci| ci.reference_number.as_deref() == Some(reference_number))
            .cloned())
    }

    async fn ci_type_value(&self, value: &FieldValue) -> Result<Option<i64>, ApiError> {
        let s = self.call(AssetCall::CiTypeValue(value.clone()))?;
        Ok(match value {
            FieldValue::Number(n) => Some(*n),
            FieldValue::Text(label) => s
                .ci_types
                .iter()
                .find(|(_, l)| l.eq_ignore_ascii_case(label.trim()))
                .map(|(value, _)| *value),
        })
    }

    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError> {
        let mut s = self.call(AssetCall::Create(ci.clone()))?;
        if !s.products.contains(&ci.product_id) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 500,
                message: "Value does not reference an existing entity for productID.".into(),
            });
        }
        if ci.ci_type.is_some_and(|t| !s.ci_types.contains_key(&t)) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 500,
                message: "Value does not exist in the picklist for configurationItemType.".into(),
            });
        }
        if let Some(udf) = ci.fields.udfs.keys().find(|u| !s.udfs.contains(*u)) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 500,
                message: format!("Unable to find {udf} in the ConfigurationItem entity."),
            });
        }
        s.next_id += 1;
        let id = s.next_id;
        s.cis.insert(
            id,
            PsaCi {
                id,
                company_id: ci.company_id,
                is_active: ci.fields.is_active,
                reference_title: ci.fields.reference_title.clone(),
                reference_number: ci.fields.reference_number.clone(),
                serial_number: ci.fields.serial_number.clone(),
                udfs: ci.fields.udfs.clone(),
            },
        );
        s.warranty.insert(id, ci.fields.warranty_expiration);
        if std::mem::take(&mut s.lose_next_create_answer) {
            return Err(ApiError::Timeout { system: SYSTEM });
        }
        Ok(id)
    }

    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError> {
        let mut s = self.call(AssetCall::Update(id, patch.clone()))?;
        if let Some(udf) = patch.udfs.keys().find(|u| !s.udfs.contains(*u)) {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: 500,
                message: format!("Unable to find {udf} in the ConfigurationItem entity."),
            });
        }
        if let Some(warranty) = patch.warranty_expiration {
            s.warranty.insert(id, Some(warranty));
        }
        let Some(ci) = s.cis.get_mut(&id) else {
            return Err(ApiError::NotFound {
                system: SYSTEM,
                what: format!("configuration item {id}"),
            });
        };
        if let Some(v) = &patch.reference_title {
            ci.reference_title = Some(v.clone());
        }
        if let Some(v) = &patch.reference_number {
            ci.reference_number = Some(v.clone());
        }
        if let Some(v) = &patch.serial_number {
            ci.serial_number = Some(v.clone());
        }
        if let Some(v) = patch.is_active {
            ci.is_active = v;
        }
        for (k, v) in &patch.udfs {
            ci.udfs.insert(k.clone(), v.clone());
        }
        Ok(())
    }
}
