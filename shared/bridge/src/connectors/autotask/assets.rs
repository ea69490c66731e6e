//! Asset sync's port ([`AssetPsa`]) on Autotask: configuration items (CIs),
//! after ../shared/specs/autotask-assets.md.
//!
//! Contract notes that shape this code:
//! - A CI needs `companyID`, `productID` and `isActive` on create; the
//!   company cannot change afterwards (Autotask ignores it on update), so a
//!   patch never sends it. `PATCH` is partial: only what changed is sent,
//!   since every update makes a new CI "version" in the UI.
//! - UDF values travel as `userDefinedFields: [{name, value}]` strings; a
//!   name the database lacks fails the whole write, which is why the setup
//!   check lists every missing UDF before a run writes anything.
//! - One UDF per query (`"udf": true`), so a lookup by the inventory-id UDF
//!   is a query of its own.
//! - String lengths are not pinned down by the fact sheet (§9): they are read
//!   from `ConfigurationItems/entityInformation/fields` (cached with the
//!   picklists) and values are cut to them, as ticket titles are.
//! - Query results omit `userDefinedFields` when no returned record has a
//!   value; masked values (`*****`, Protected Data Permissions) say nothing
//!   about the device and are dropped.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::wire::{self, find_pick, picklist_of, truncate, CreateResult, FieldInfo, ItemResult};
use super::{AutotaskClient, SYSTEM};
use crate::assets::ports::{AssetPsa, CiPatch, NewCi, PsaCi};
use crate::config::{AssetMode, AssetSettings, FieldValue, ASSET_UDFS};
use crate::error::ApiError;

const ENTITY: &str = "ConfigurationItems";
const CI_TYPE_FIELD: &str = "configurationItemType";
const PRODUCTS_PLACE: &str = "Admin > Products and Services > Products";
const CI_TYPES_PLACE: &str =
    "Admin > Features & Settings > Configuration Items > Configuration Item Types";
const CATEGORIES_PLACE: &str =
    "Admin > Features & Settings > Configuration Items > Configuration Item Categories";
const UDFS_PLACE: &str = "Admin > Features & Settings > Configuration Items > User-Defined Fields";
/// What Autotask shows instead of a UDF value the API user may not see.
const MASKED: &str = "*****";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCi {
    id: i64,
    #[serde(rename = "companyID", default)]
    company_id: Option<i64>,
    #[serde(default)]
    is_active: Option<bool>,
    #[serde(default)]
    reference_title: Option<String>,
    #[serde(default)]
    reference_number: Option<String>,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    user_defined_fields: Option<Vec<WireUdf>>,
}

#[derive(Deserialize)]
struct WireUdf {
    name: String,
    #[serde(default)]
    value: Option<Value>,
}

impl WireCi {
    fn into_model(self) -> Result<PsaCi, ApiError> {
        let missing = |field: &str| ApiError::Malformed {
            system: SYSTEM,
            message: format!("configuration item {} has no {field}", self.id),
        };
        let udfs = self
            .user_defined_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|udf| {
                let value = match udf.value? {
                    Value::String(text) => text,
                    Value::Null => return None,
                    other => other.to_string(),
                };
                (value != MASKED).then_some((udf.name, value))
            })
            .collect();
        Ok(PsaCi {
            id: self.id,
            company_id: self.company_id.ok_or_else(|| missing("companyID"))?,
            is_active: self.is_active.ok_or_else(|| missing("isActive"))?,
            reference_title: self.reference_title,
            reference_number: self.reference_number,
            serial_number: self.serial_number,
            udfs,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNamed {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
}

#[derive(Deserialize)]
struct UdfDefinitions {
    #[serde(default)]
    fields: Vec<UdfDefinition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UdfDefinition {
    name: String,
    #[serde(default)]
    is_active: Option<bool>,
}

/// `YYYY-MM-DDTHH:MM:SSZ`: Autotask's datetimes are UTC.
fn utc(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `text` cut to what the field keeps, when the field list says.
fn fitted(fields: &[FieldInfo], name: &str, text: &str) -> String {
    match fields
        .iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
        .and_then(FieldInfo::max_chars)
    {
        Some(max) => truncate(text, max),
        None => text.to_owned(),
    }
}

fn udf_list(udfs: &BTreeMap<String, String>) -> Value {
    Value::Array(
        udfs.iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

/// The standard and UDF fields of a create or patch, `None` left out.
struct Writes<'a> {
    reference_title: Option<&'a str>,
    reference_number: Option<&'a str>,
    serial_number: Option<&'a str>,
    warranty_expiration: Option<&'a DateTime<Utc>>,
    is_active: Option<bool>,
    udfs: &'a BTreeMap<String, String>,
}

impl Writes<'_> {
    fn has_text(&self) -> bool {
        self.reference_title.is_some()
            || self.reference_number.is_some()
            || self.serial_number.is_some()
    }

    fn into_body(self, body: &mut Map<String, Value>, fields: &[FieldInfo]) {
        for (name, value) in [
            ("referenceTitle", self.reference_title),
            ("referenceNumber", self.reference_number),
            ("serialNumber", self.serial_number),
        ] {
            if let Some(text) = value {
                body.insert(name.to_owned(), json!(fitted(fields, name, text)));
            }
        }
        if let Some(at) = self.warranty_expiration {
            body.insert("warrantyExpirationDate".to_owned(), json!(utc(at)));
        }
        if let Some(active) = self.is_active {
            body.insert("isActive".to_owned(), json!(active));
        }
        if !self.udfs.is_empty() {
            body.insert("userDefinedFields".to_owned(), udf_list(self.udfs));
        }
    }
}

/// The body of `POST ConfigurationItems`.
fn create_body(ci: &NewCi, fields: &[FieldInfo]) -> Value {
    let mut body = Map::new();
    body.insert("companyID".to_owned(), json!(ci.company_id));
    body.insert("productID".to_owned(), json!(ci.product_id));
    if let Some(ci_type) = ci.ci_type {
        body.insert(CI_TYPE_FIELD.to_owned(), json!(ci_type));
    }
    if let Some(category) = ci.category_id {
        body.insert("configurationItemCategoryID".to_owned(), json!(category));
    }
    let f = &ci.fields;
    Writes {
        reference_title: f.reference_title.as_deref(),
        reference_number: f.reference_number.as_deref(),
        serial_number: f.serial_number.as_deref(),
        warranty_expiration: f.warranty_expiration.as_ref(),
        is_active: Some(f.is_active),
        udfs: &f.udfs,
    }
    .into_body(&mut body, fields);
    Value::Object(body)
}

fn patch_writes(patch: &CiPatch) -> Writes<'_> {
    Writes {
        reference_title: patch.reference_title.as_deref(),
        reference_number: patch.reference_number.as_deref(),
        serial_number: patch.serial_number.as_deref(),
        warranty_expiration: patch.warranty_expiration.as_ref(),
        is_active: patch.is_active,
        udfs: &patch.udfs,
    }
}

/// Of several CIs matching one key, the active one first, then the oldest:
/// a retired duplicate must not take the device's place.
fn preferred(items: Vec<WireCi>, what: &str) -> Result<Option<PsaCi>, ApiError> {
    if items.len() > 1 {
        tracing::warn!(
            count = items.len(),
            what,
            "several Autotask configuration items match one device"
        );
    }
    items
        .into_iter()
        .min_by_key(|ci| (ci.is_active == Some(false), ci.id))
        .map(WireCi::into_model)
        .transpose()
}

impl AutotaskClient {
    /// A record by id (`{"item": null}` and 404 both mean none).
    async fn get_item<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        let result: Result<ItemResult<T>, _> =
            self.call(Method::GET, &self.url(path), None, what).await;
        match result {
            Ok(found) => Ok(found.item),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn find_ci(&self, filter: Value, what: &str) -> Result<Option<PsaCi>, ApiError> {
        let items: Vec<WireCi> = self
            .query_all(ENTITY, wire::query(wire::PAGE_SIZE, filter), what)
            .await?;
        preferred(items, what)
    }

    async fn product_problem(&self, id: i64) -> Result<Option<String>, ApiError> {
        let product: Option<WireNamed> =
            self.get_item(&format!("Products/{id}"), "product").await?;
        Ok(match product {
            None => Some(format!(
                "Autotask has no product {id} (asset setting product_id): create the product devices are instances of in {PRODUCTS_PLACE} and set product_id to its id"
            )),
            Some(p) if p.is_active == Some(false) => Some(format!(
                "Autotask product {id} \"{}\" is inactive (asset setting product_id): activate it in {PRODUCTS_PLACE} or name an active product",
                p.name.unwrap_or_default()
            )),
            Some(_) => None,
        })
    }

    async fn ci_type_problem(
        &self,
        wanted: &crate::config::FieldValue,
    ) -> Result<Option<String>, ApiError> {
        let fields = self.fields(ENTITY).await?;
        let Some(values) = picklist_of(&fields, CI_TYPE_FIELD) else {
            return Ok(Some(format!(
                "Autotask reports no {CI_TYPE_FIELD} picklist, so the CI type {wanted} (asset setting ci_type) cannot be set; define types in {CI_TYPES_PLACE} or remove ci_type"
            )));
        };
        let active: Vec<String> = values
            .iter()
            .filter(|v| v.is_active)
            .filter_map(|v| Some(format!("{} ({})", v.label.trim(), v.numeric()?)))
            .collect();
        let one_of = if active.is_empty() {
            String::new()
        } else {
            format!(" (active types: {})", active.join(", "))
        };
        Ok(match find_pick(values, wanted) {
            None => Some(format!(
                "Autotask has no configuration item type {wanted} (asset setting ci_type){one_of}: create it in {CI_TYPES_PLACE} or name an existing one"
            )),
            Some(pick) if !pick.is_active => Some(format!(
                "the configuration item type \"{}\" (asset setting ci_type) is inactive in Autotask{one_of}: activate it in {CI_TYPES_PLACE} or name an active one",
                pick.label.trim()
            )),
            Some(_) => None,
        })
    }

    async fn category_problem(&self, id: i64) -> Result<Option<String>, ApiError> {
        let category: Option<WireNamed> = self
            .get_item(
                &format!("ConfigurationItemCategories/{id}"),
                "configuration item category",
            )
            .await?;
        Ok(match category {
            None => Some(format!(
                "Autotask has no configuration item category {id} (asset setting category_id): create it in {CATEGORIES_PLACE} or remove category_id to use the default category"
            )),
            Some(c) if c.is_active == Some(false) => Some(format!(
                "Autotask configuration item category {id} \"{}\" is inactive (asset setting category_id): activate it in {CATEGORIES_PLACE}",
                c.name.unwrap_or_default()
            )),
            Some(_) => None,
        })
    }

    /// One problem per UDF advanced mode writes that the database lacks (or
    /// has inactive, or spelt in another case).
    async fn udf_problems(&self, settings: &AssetSettings) -> Result<Vec<String>, ApiError> {
        let defined: UdfDefinitions = self
            .call(
                Method::GET,
                &self.url(&format!("{ENTITY}/entityInformation/userDefinedFields")),
                None,
                "configuration item user-defined fields",
            )
            .await?;
        let mut wanted: Vec<&str> = ASSET_UDFS.to_vec();
        let inventory = settings.inventory_id_udf.trim();
        if !wanted.contains(&inventory) {
            wanted.push(inventory);
        }
        let mut problems = Vec::new();
        for name in wanted {
            let exact = defined.fields.iter().find(|d| d.name == name);
            let any_case = defined
                .fields
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(name));
            match (exact, any_case) {
                (Some(d), _) | (None, Some(d)) if d.is_active == Some(false) => {
                    problems.push(format!(
                        "the configuration item user-defined field \"{}\" is inactive in Autotask: activate it in {UDFS_PLACE}",
                        d.name
                    ))
                }
                (Some(_), _) => {}
                (None, Some(d)) => problems.push(format!(
                    "the configuration item user-defined field \"{name}\" exists in Autotask as \"{}\": rename it to \"{name}\" in {UDFS_PLACE}",
                    d.name
                )),
                (None, None) => problems.push(format!(
                    "the configuration item user-defined field \"{name}\" does not exist in Autotask: create it (text) in {UDFS_PLACE}"
                )),
            }
        }
        Ok(problems)
    }
}

#[async_trait]
impl AssetPsa for AutotaskClient {
    #[tracing::instrument(skip(self, settings), fields(system = SYSTEM))]
    async fn asset_setup_problems(
        &self,
        settings: &AssetSettings,
    ) -> Result<Vec<String>, ApiError> {
        let mut problems = Vec::new();
        problems.extend(self.product_problem(settings.product_id).await?);
        if let Some(wanted) = &settings.ci_type {
            problems.extend(self.ci_type_problem(wanted).await?);
        }
        if let Some(category) = settings.category_id {
            problems.extend(self.category_problem(category).await?);
        }
        if settings.mode == AssetMode::Advanced {
            problems.extend(self.udf_problems(settings).await?);
        }
        Ok(problems)
    }

    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError> {
        let found: Option<WireCi> = self
            .get_item(&format!("{ENTITY}/{id}"), "configuration item")
            .await?;
        found.map(WireCi::into_model).transpose()
    }

    #[tracing::instrument(skip(self, value), fields(system = SYSTEM))]
    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError> {
        let filter = json!([{ "op": "eq", "field": udf, "value": value, "udf": true }]);
        self.find_ci(filter, "configuration item query by user-defined field")
            .await
    }

    #[tracing::instrument(skip(self, serial), fields(system = SYSTEM))]
    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError> {
        self.find_ci(
            wire::eq_filter("serialNumber", serial),
            "configuration item query by serial number",
        )
        .await
    }

    /// A query by `referenceNumber` (Autotask compares strings without
    /// case): only a CI whose reference number is exactly `reference_number`
    /// counts. A value longer than the field keeps (cut on write) names no
    /// device for certain, so it finds nothing.
    #[tracing::instrument(skip(self, reference_number), fields(system = SYSTEM))]
    async fn find_ci_by_reference(
        &self,
        reference_number: &str,
    ) -> Result<Option<PsaCi>, ApiError> {
        let fields = self.fields(ENTITY).await?;
        if fitted(&fields, "referenceNumber", reference_number) != reference_number {
            return Ok(None);
        }
        let what = "configuration item query by reference number";
        let items: Vec<WireCi> = self
            .query_all(
                ENTITY,
                wire::query(
                    wire::PAGE_SIZE,
                    wire::eq_filter("referenceNumber", reference_number),
                ),
                what,
            )
            .await?;
        let exact = items
            .into_iter()
            .filter(|ci| ci.reference_number.as_deref() == Some(reference_number))
            .collect();
        preferred(exact, what)
    }

    /// A number as it is (the setup check verifies it is a type); a label
    /// (case-insensitive) from the `configurationItemType` picklist, cached
    /// with the entity's fields.
    #[tracing::instrument(skip(self), fields(system = SYSTEM))]
    async fn ci_type_value(&self, value: &FieldValue) -> Result<Option<i64>, ApiError> {
        if let FieldValue::Number(n) = value {
            return Ok(Some(*n));
        }
        let fields = self.fields(ENTITY).await?;
        Ok(picklist_of(&fields, CI_TYPE_FIELD)
            .and_then(|values| find_pick(values, value))
            .and_then(|pick| pick.numeric()))
    }

    #[tracing::instrument(skip(self, ci), fields(system = SYSTEM, company_id = ci.company_id))]
    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError> {
        let fields = self.fields(ENTITY).await?;
        let created: CreateResult = self
            .call(
                Method::POST,
                &self.url(ENTITY),
                Some(&create_body(ci, &fields)),
                "configuration item",
            )
            .await?;
        tracing::info!(
            ci_id = created.item_id,
            "autotask configuration item created"
        );
        Ok(created.item_id)
    }

    #[tracing::instrument(skip(self, patch), fields(system = SYSTEM))]
    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError> {
        if patch.is_empty() {
            return Ok(());
        }
        let writes = patch_writes(patch);
        // Lengths matter only for text; a flag or UDF change costs no field read.
        let fields = if writes.has_text() {
            self.fields(ENTITY).await?
        } else {
            Default::default()
        };
        let mut body = Map::new();
        body.insert("id".to_owned(), json!(id));
        writes.into_body(&mut body, &fields);
        let _: CreateResult = self
            .call(
                Method::PATCH,
                &self.url(ENTITY),
                Some(&Value::Object(body)),
                "configuration item",
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::ports::CiFields;
    use chrono::TimeZone;

    fn fields() -> Vec<FieldInfo> {
        serde_json::from_value(json!([
            {"name": "referenceTitle", "dataType": "string", "length": 5},
            {"name": "serialNumber", "dataType": "string", "length": 0},
        ]))
        .unwrap()
    }

    #[test]
    fn bodies_carry_only_given_fields_cut_to_the_stated_lengths() {
        let ci = NewCi {
            company_id: 7,
            product_id: 9,
            ci_type: None,
            category_id: Some(3),
            fields: CiFields {
                reference_title: Some("ACME-FS01".into()),
                serial_number: Some("S".repeat(300)),
                warranty_expiration: Some(Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()),
                is_active: false,
                ..CiFields::default()
            },
        };
        assert_eq!(
            create_body(&ci, &fields()),
            json!({"companyID": 7, "productID": 9, "configurationItemCategoryID": 3,
                   "referenceTitle": "ACME-", "serialNumber": "S".repeat(300),
                   "warrantyExpirationDate": "2027-03-01T00:00:00Z", "isActive": false})
        );
        let patch = CiPatch {
            udfs: [("RAM".to_owned(), "16 GB".to_owned())].into(),
            ..CiPatch::default()
        };
        let mut body = Map::new();
        patch_writes(&patch).into_body(&mut body, &[]);
        assert_eq!(
            Value::Object(body),
            json!({"userDefinedFields": [{"name": "RAM", "value": "16 GB"}]})
        );
    }

    #[test]
    fn masked_and_empty_udf_values_are_dropped() {
        let ci: WireCi = serde_json::from_value(json!({
            "id": 1, "companyID": 2, "isActive": true,
            "userDefinedFields": [{"name": "Make", "value": "Dell"}, {"name": "RAM", "value": null},
                                  {"name": "Secret", "value": "*****"}]}))
        .unwrap();
        let ci = ci.into_model().unwrap();
        assert_eq!(ci.udfs, [("Make".to_owned(), "Dell".to_owned())].into());
    }
}
