//! What asset sync needs from the PSA: configuration items (CIs), looked up,
//! created and patched, and a check that the tenant's settings name things
//! the PSA has. Autotask implements it today (`connectors/autotask/assets.rs`);
//! ConnectWise configurations can follow behind the same port.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{AssetSettings, FieldValue};
use crate::error::ApiError;

/// A configuration item as the PSA holds it, as much as asset sync reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaCi {
    pub id: i64,
    pub company_id: i64,
    pub is_active: bool,
    pub reference_title: Option<String>,
    pub reference_number: Option<String>,
    pub serial_number: Option<String>,
    /// User-defined field values by UDF name (absent when the PSA returned none).
    pub udfs: BTreeMap<String, String>,
}

/// The fields asset sync writes on a CI. Every field is the full value;
/// `None` clears nothing (an unknown value is left as it is in the PSA).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiFields {
    pub reference_title: Option<String>,
    pub reference_number: Option<String>,
    pub serial_number: Option<String>,
    pub warranty_expiration: Option<DateTime<Utc>>,
    pub is_active: bool,
    /// UDF values by UDF name (advanced mode; empty in simple mode).
    pub udfs: BTreeMap<String, String>,
}

/// A CI to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCi {
    pub company_id: i64,
    pub product_id: i64,
    /// `configurationItemType` picklist value, when the tenant set one.
    pub ci_type: Option<i64>,
    /// `configurationItemCategoryID`, when the tenant set one (else the
    /// PSA's default category applies).
    pub category_id: Option<i64>,
    pub fields: CiFields,
}

/// Only what changed; `None` (and absent UDFs) leave a field as it is.
/// The company is never patched: Autotask ignores it after create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiPatch {
    pub reference_title: Option<String>,
    pub reference_number: Option<String>,
    pub serial_number: Option<String>,
    pub warranty_expiration: Option<DateTime<Utc>>,
    pub is_active: Option<bool>,
    pub udfs: BTreeMap<String, String>,
}

impl CiPatch {
    pub fn is_empty(&self) -> bool {
        self.reference_title.is_none()
            && self.reference_number.is_none()
            && self.serial_number.is_none()
            && self.warranty_expiration.is_none()
            && self.is_active.is_none()
            && self.udfs.is_empty()
    }
}

/// Configuration items of one tenant's PSA.
#[async_trait]
pub trait AssetPsa: Send + Sync {
    /// What the settings name that the PSA lacks or cannot use: the product,
    /// the CI type, the category, and (advanced mode) each UDF, each in plain
    /// words saying where in the PSA to create it. Empty when a run can go.
    async fn asset_setup_problems(&self, settings: &AssetSettings)
        -> Result<Vec<String>, ApiError>;
    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError>;
    /// The CI whose UDF `udf` holds `value` (Autotask queries one UDF at a time).
    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError>;
    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError>;
    /// The CI whose `referenceNumber` is exactly `reference_number`. Simple
    /// mode writes no UDF, so when the reference number is the inventory id
    /// this is how a CI created by a run that died before saving its link is
    /// found again. A PSA that cannot look it up answers `None`.
    async fn find_ci_by_reference(
        &self,
        reference_number: &str,
    ) -> Result<Option<PsaCi>, ApiError> {
        let _ = reference_number;
        Ok(None)
    }
    /// The CI type picklist value the setting `ci_type` names: a number as it
    /// is, a label (case-insensitive) through the PSA's picklist. `None`: the
    /// PSA has no such type (a setup problem; the run writes nothing).
    async fn ci_type_value(&self, value: &FieldValue) -> Result<Option<i64>, ApiError> {
        Ok(match value {
            FieldValue::Number(n) => Some(*n),
            FieldValue::Text(_) => None,
        })
    }
    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError>;
    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError>;
}
