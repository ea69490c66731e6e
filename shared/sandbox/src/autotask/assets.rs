//! Configuration items (the UI's "Devices"), the products they are instances
//! of, their types (the `configurationItemType` picklist) and categories,
//! their user-defined fields, and the ticket's primary CI
//! (`Tickets.configurationItemID`), after ../shared/specs/autotask-assets.md.
//!
//! Strict where Autotask is, since a lenient sandbox hides what a real tenant
//! refuses on the first day:
//! - A create needs `companyID`, `productID` and `isActive`; references must
//!   exist (the product also active); without a category the global default
//!   one is assigned; the type must be an active picklist value.
//! - `PATCH` is partial (`{"id", …changed}`); `companyID` cannot change after
//!   create and a value sent on update is ignored, as Autotask does.
//! - There is no delete (405, ASP.NET's text).
//! - UDF values travel as `[{name, value}]` strings; a name this database has
//!   not defined is refused with a 500. A query may test one UDF
//!   (`"udf": true`), never two. Records carry `userDefinedFields` only when
//!   one of those returned has a UDF value.
//! - Field lengths are the SOAP-era ones the fact sheet names (§9, L), both
//!   reported by `entityInformation/fields` and enforced.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::api::{errors, method_not_allowed, parse_object, Ctx};
use super::db::{as_i64, get_ci, reference_error, time, Db, Entity};
use super::picklists::{active_pick, field_json, Pick};
use super::AutotaskSandbox;

/// A configuration item as stored in the simulated database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationItem {
    pub id: i64,
    pub company_id: i64,
    pub product_id: i64,
    pub is_active: bool,
    pub reference_title: Option<String>,
    pub reference_number: Option<String>,
    pub serial_number: Option<String>,
    pub warranty_expiration: Option<DateTime<Utc>>,
    /// `configurationItemType` picklist value.
    pub ci_type: Option<i64>,
    /// `configurationItemCategoryID`.
    pub category_id: Option<i64>,
    /// UDF values by the UDF's defined name.
    pub udfs: BTreeMap<String, String>,
}

pub(super) struct Product {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) active: bool,
    pub(super) serialized: bool,
    pub(super) billing_code_id: i64,
}

pub(super) struct Category {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) active: bool,
    pub(super) global_default: bool,
}

pub(super) const REFERENCE_TITLE_MAX: usize = 200;
pub(super) const REFERENCE_NUMBER_MAX: usize = 50;
pub(super) const SERIAL_NUMBER_MAX: usize = 100;

/// Admin-defined CI types of a plausible tenant (tenant data: read them from
/// the picklist, never assume them).
pub(super) const CI_TYPE: &[Pick] = &[
    (1, "Workstation", true, false),
    (2, "Server", true, false),
    (3, "Network Device", true, false),
    (4, "Printer", true, false),
    (5, "Mobile Device", true, false),
    (6, "Legacy Device (retired)", false, false),
];

/// Material billing codes a product may name (`productBillingCodeID`).
const MATERIAL_BILLING_CODES: &[i64] = &[29682850, 29682851];

/// The product `add_configuration_item` uses, seeded in every database.
pub(super) const DEFAULT_PRODUCT: i64 = 29682999;
/// The category Autotask assigns to a CI created without one.
pub(super) const DEFAULT_CATEGORY: i64 = 101;

pub(super) fn seed(db: &mut Db) {
    db.products.insert(
        DEFAULT_PRODUCT,
        Product {
            id: DEFAULT_PRODUCT,
            name: "Managed Device".to_owned(),
            active: true,
            serialized: true,
            billing_code_id: MATERIAL_BILLING_CODES[0],
        },
    );
    db.next_product = DEFAULT_PRODUCT + 101;
    db.categories.insert(
        DEFAULT_CATEGORY,
        Category {
            id: DEFAULT_CATEGORY,
            name: "Default Device Category".to_owned(),
            active: true,
            global_default: true,
        },
    );
    db.next_category = DEFAULT_CATEGORY + 1;
}

// ---------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------

/// A CI with every defined UDF (null when it has no value); responses drop
/// the list again when no returned record has a value ([`drop_empty_udfs`]).
pub(super) fn ci_json(ci: &ConfigurationItem, udfs: &[String]) -> Value {
    let defined: Vec<Value> = udfs
        .iter()
        .map(|name| json!({ "name": name, "value": ci.udfs.get(name) }))
        .collect();
    json!({
        "id": ci.id,
        "companyID": ci.company_id,
        "productID": ci.product_id,
        "isActive": ci.is_active,
        "referenceTitle": ci.reference_title,
        "referenceNumber": ci.reference_number,
        "serialNumber": ci.serial_number,
        "warrantyExpirationDate": ci.warranty_expiration.as_ref().map(time),
        "configurationItemType": ci.ci_type,
        "configurationItemCategoryID": ci.category_id,
        "userDefinedFields": defined,
    })
}

pub(super) fn product_json(p: &Product) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "isActive": p.active,
        "isSerialized": p.serialized,
        "productBillingCodeID": p.billing_code_id,
    })
}

pub(super) fn category_json(c: &Category) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "isActive": c.active,
        "isGlobalDefault": c.global_default,
        "displayColorRGB": 0,
    })
}

pub(super) fn ci_type_rows() -> Vec<Value> {
    CI_TYPE
        .iter()
        .map(|(id, name, active, _)| json!({ "id": id, "name": name, "isActive": active }))
        .collect()
}

/// Field names of the asset entities, for queries (see `Entity::fields`).
pub(super) fn sample_fields(entity: Entity) -> Value {
    match entity {
        Entity::ConfigurationItems => ci_json(&blank_ci(), &[]),
        Entity::Products => product_json(&Product {
            id: 0,
            name: String::new(),
            active: true,
            serialized: false,
            billing_code_id: 0,
        }),
        Entity::ConfigurationItemCategories => category_json(&Category {
            id: 0,
            name: String::new(),
            active: true,
            global_default: false,
        }),
        Entity::ConfigurationItemTypes => json!({ "id": 0, "name": "", "isActive": true }),
        Entity::Tickets | Entity::TicketNotes | Entity::Companies => json!({}),
    }
}

/// A blank record of `entity` with every field (and, for CIs, every defined
/// UDF) to check a filter against.
pub(super) fn probe_row(db: &Db, entity: Entity) -> Value {
    match entity {
        Entity::ConfigurationItems => ci_json(&blank_ci(), &db.ci_udfs),
        other => other.sample(),
    }
}

fn blank_ci() -> ConfigurationItem {
    ConfigurationItem {
        id: 0,
        company_id: 0,
        product_id: 0,
        is_active: true,
        reference_title: None,
        reference_number: None,
        serial_number: None,
        warranty_expiration: None,
        ci_type: None,
        category_id: None,
        udfs: BTreeMap::new(),
    }
}

/// Removes `userDefinedFields` from every record when none has a value, as
/// Autotask's responses do.
pub(super) fn drop_empty_udfs(items: &mut [Value]) {
    let any = items.iter().any(|item| {
        item.get("userDefinedFields")
            .and_then(Value::as_array)
            .is_some_and(|udfs| udfs.iter().any(|u| !u["value"].is_null()))
    });
    if !any {
        for item in items {
            if let Some(object) = item.as_object_mut() {
                object.remove("userDefinedFields");
            }
        }
    }
}

fn ci_fields() -> Value {
    let string = |name: &str, max: usize| {
        let mut field = field_json(name, "string", false, false, None);
        field["length"] = json!(max);
        field
    };
    json!({ "fields": [
        field_json("id", "long", true, true, None),
        field_json("companyID", "integer", true, false, None),
        field_json("productID", "integer", true, false, None),
        field_json("isActive", "boolean", true, false, None),
        string("referenceTitle", REFERENCE_TITLE_MAX),
        string("referenceNumber", REFERENCE_NUMBER_MAX),
        string("serialNumber", SERIAL_NUMBER_MAX),
        field_json("warrantyExpirationDate", "datetime", false, false, None),
        field_json("configurationItemType", "integer", false, false, Some(CI_TYPE)),
        field_json("configurationItemCategoryID", "integer", false, false, None),
    ]})
}

fn udf_definitions(db: &Db) -> Value {
    let fields: Vec<Value> = db
        .ci_udfs
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "label": name,
                "type": "string",
                "isPickList": false,
                "picklistValues": null,
                "isRequired": false,
                "isActive": true,
                "isProtected": false,
            })
        })
        .collect();
    json!({ "fields": fields })
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// How many conditions of `filter` (nested groups included) name a UDF.
pub(super) fn udf_conditions(filter: &[Value]) -> usize {
    filter
        .iter()
        .map(|condition| {
            let own = usize::from(condition.get("udf").and_then(Value::as_bool) == Some(true));
            let nested = condition
                .get("items")
                .and_then(Value::as_array)
                .map_or(0, |items| udf_conditions(items));
            own + nested
        })
        .sum()
}

pub(super) const TWO_UDFS: &str =
    "Querying more than one user-defined field at a time is not allowed.";

/// The value of UDF `name` in a stored row (which lists every defined UDF).
pub(super) fn udf_value(
    row: &Map<String, Value>,
    name: &str,
    entity_path: &str,
) -> Result<Value, String> {
    let unknown =
        || format!("Unable to find user-defined field {name} in the {entity_path} entity.");
    let udfs = row
        .get("userDefinedFields")
        .and_then(Value::as_array)
        .ok_or_else(unknown)?;
    udfs.iter()
        .find(|u| {
            u["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|u| u["value"].clone())
        .ok_or_else(unknown)
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

pub(super) fn routes(api: Router<Ctx>) -> Router<Ctx> {
    api.route("/ConfigurationItems", post(create_ci).patch(update_ci))
        .route(
            "/ConfigurationItems/{id}",
            get(get_ci_item).delete(|| async { method_not_allowed("DELETE") }),
        )
        .route(
            "/ConfigurationItems/entityInformation/fields",
            get(|| async { Json(ci_fields()) }),
        )
        .route(
            "/ConfigurationItems/entityInformation/userDefinedFields",
            get(|State(s): State<Ctx>| async move { Json(udf_definitions(&s.db())) }),
        )
        .route("/Products", post(create_product))
        .route(
            "/Products/{id}",
            get(|State(s): State<Ctx>, Path(id): Path<i64>| async move {
                let item = s.db().products.get(&id).map(product_json);
                Json(json!({ "item": item }))
            })
            .delete(|| async { method_not_allowed("DELETE") }),
        )
        .route(
            "/ConfigurationItemCategories/{id}",
            get(|State(s): State<Ctx>, Path(id): Path<i64>| async move {
                let item = s.db().categories.get(&id).map(category_json);
                Json(json!({ "item": item }))
            })
            .delete(|| async { method_not_allowed("DELETE") }),
        )
        .route(
            "/ConfigurationItemTypes/{id}",
            get(|Path(id): Path<i64>| async move {
                let item = ci_type_rows().into_iter().find(|t| t["id"] == json!(id));
                Json(json!({ "item": item }))
            }),
        )
}

async fn get_ci_item(State(s): State<Ctx>, Path(id): Path<i64>) -> Response {
    let db = s.db();
    let item = db.items.get(&id).map(|ci| {
        let mut rows = [ci_json(ci, &db.ci_udfs)];
        drop_empty_udfs(&mut rows);
        let [row] = rows;
        row
    });
    Json(json!({ "item": item })).into_response()
}

async fn create_ci(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let mut db = s.db();
    let mut ci = match validated(&db, &body, None) {
        Ok(ci) => ci,
        Err(messages) => return errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
    };
    ci.id = db.next_item;
    db.next_item += 1;
    let id = ci.id;
    db.items.insert(id, ci);
    Json(json!({ "itemId": id })).into_response()
}

async fn update_ci(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(id) = get_ci(&body, "id").and_then(as_i64) else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["Missing Required Field: id".to_owned()],
        );
    };
    let mut db = s.db();
    let Some(existing) = db.items.get(&id) else {
        return errors(
            StatusCode::NOT_FOUND,
            vec![format!("ConfigurationItem {id} does not exist.")],
        );
    };
    match validated(&db, &body, Some(existing)) {
        Ok(ci) => {
            db.items.insert(id, ci);
            Json(json!({ "itemId": id })).into_response()
        }
        Err(messages) => errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
    }
}

/// The CI a create (`existing` = None) or a partial update would leave, or
/// every problem Autotask would report.
fn validated(
    db: &Db,
    body: &Map<String, Value>,
    existing: Option<&ConfigurationItem>,
) -> Result<ConfigurationItem, Vec<String>> {
    let creating = existing.is_none();
    let mut ci = existing.cloned().unwrap_or_else(blank_ci);
    let mut problems = Vec::new();
    // Present and not null; on create an absent required field is an error.
    let field = |name: &str, problems: &mut Vec<String>| {
        let value = get_ci(body, name);
        if value.is_none() && creating {
            problems.push(format!("Missing Required Field: {name}"));
        }
        value
    };

    if creating {
        if let Some(company) = field("companyID", &mut problems) {
            match as_i64(company).filter(|c| db.companies.contains_key(c)) {
                Some(c) => ci.company_id = c,
                None => problems.push(reference_error("companyID")),
            }
        }
    }
    if let Some(product) = field("productID", &mut problems) {
        match as_i64(product).and_then(|p| db.products.get(&p)) {
            Some(p) if p.active => ci.product_id = p.id,
            Some(p) => problems.push(format!(
                "productID {}: the product \"{}\" is inactive; an inactive product is not allowed.",
                p.id, p.name
            )),
            None => problems.push(reference_error("productID")),
        }
    }
    if let Some(active) = field("isActive", &mut problems) {
        match active {
            Value::Bool(b) => ci.is_active = *b,
            _ => problems.push("isActive must be true or false.".to_owned()),
        }
    }
    for (name, max, slot) in [
        (
            "referenceTitle",
            REFERENCE_TITLE_MAX,
            &mut ci.reference_title,
        ),
        (
            "referenceNumber",
            REFERENCE_NUMBER_MAX,
            &mut ci.reference_number,
        ),
        ("serialNumber", SERIAL_NUMBER_MAX, &mut ci.serial_number),
    ] {
        match present(body, name) {
            None => {}
            Some(Value::Null) => *slot = None,
            Some(Value::String(text)) if text.chars().count() > max => problems.push(format!(
                "{name} exceeds the maximum length of {max} characters"
            )),
            Some(Value::String(text)) => *slot = Some(text.clone()),
            Some(_) => problems.push(format!("{name} must be a string")),
        }
    }
    match present(body, "warrantyExpirationDate") {
        None => {}
        Some(Value::Null) => ci.warranty_expiration = None,
        Some(value) => match value.as_str().and_then(parse_time) {
            Some(at) => ci.warranty_expiration = Some(at),
            None => problems.push(format!("warrantyExpirationDate value {value} is not valid")),
        },
    }
    match present(body, "configurationItemType") {
        None => {}
        Some(Value::Null) => ci.ci_type = None,
        Some(value) => match as_i64(value).filter(|v| active_pick(CI_TYPE, *v)) {
            Some(v) => ci.ci_type = Some(v),
            None => problems.push(reference_error("configurationItemType")),
        },
    }
    match get_ci(body, "configurationItemCategoryID") {
        None if creating => ci.category_id = default_category(db),
        None => {}
        Some(value) => match as_i64(value).and_then(|c| db.categories.get(&c)) {
            Some(c) if c.active => ci.category_id = Some(c.id),
            _ => problems.push(reference_error("configurationItemCategoryID")),
        },
    }
    match present(body, "userDefinedFields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(udfs)) => {
            for udf in udfs {
                let name = udf.get("name").and_then(Value::as_str).unwrap_or_default();
                let Some(defined) = db.ci_udfs.iter().find(|d| d.eq_ignore_ascii_case(name)) else {
                    problems.push(format!(
                        "The user-defined field \"{name}\" does not exist for the ConfigurationItems entity."
                    ));
                    continue;
                };
                match udf.get("value") {
                    None | Some(Value::Null) => {
                        ci.udfs.remove(defined);
                    }
                    Some(Value::String(value)) => {
                        ci.udfs.insert(defined.clone(), value.clone());
                    }
                    Some(_) => problems.push(format!(
                        "The value of the user-defined field \"{defined}\" must be a string."
                    )),
                }
            }
        }
        Some(_) => problems
            .push("userDefinedFields must be a list of {\"name\", \"value\"} objects.".to_owned()),
    }
    if problems.is_empty() {
        Ok(ci)
    } else {
        Err(problems)
    }
}

/// A member by name in any case, null included (null clears on update).
fn present<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn default_category(db: &Db) -> Option<i64> {
    db.categories
        .values()
        .find(|c| c.global_default && c.active)
        .map(|c| c.id)
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

async fn create_product(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let mut problems = Vec::new();
    let mut required = |name: &str| {
        let value = get_ci(&body, name);
        if value.is_none() {
            problems.push(format!("Missing Required Field: {name}"));
        }
        value
    };
    let name = required("name");
    let active = required("isActive");
    let serialized = required("isSerialized");
    let billing = required("productBillingCodeID");
    let name = match name.map(|n| n.as_str().map(str::trim)) {
        Some(Some(n)) if !n.is_empty() => n.to_owned(),
        Some(_) => {
            problems.push("name must be a non-empty string".to_owned());
            String::new()
        }
        None => String::new(),
    };
    let mut flag = |name: &str, value: Option<&Value>| match value {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push(format!("{name} must be true or false."));
            false
        }
        None => false,
    };
    let active = flag("isActive", active);
    let serialized = flag("isSerialized", serialized);
    let billing_code_id = match billing.map(as_i64) {
        Some(Some(code)) if MATERIAL_BILLING_CODES.contains(&code) => code,
        Some(_) => {
            problems.push(reference_error("productBillingCodeID"));
            0
        }
        None => 0,
    };
    if !problems.is_empty() {
        return errors(StatusCode::INTERNAL_SERVER_ERROR, problems);
    }
    let mut db = s.db();
    let id = db.next_product;
    db.next_product += 1;
    db.products.insert(
        id,
        Product {
            id,
            name,
            active,
            serialized,
            billing_code_id,
        },
    );
    Json(json!({ "itemId": id })).into_response()
}

// ---------------------------------------------------------------------------
// Tickets.configurationItemID
// ---------------------------------------------------------------------------

/// Why CI `ci_id` cannot be the primary CI of a ticket of `company_id`:
/// it must exist, be active and belong to the ticket's company (stated for
/// additional CIs, assumed for the primary one: sheet §6).
pub(super) fn ticket_ci_problem(db: &Db, ci_id: i64, company_id: i64) -> Option<String> {
    match db.items.get(&ci_id) {
        None => Some(reference_error("configurationItemID")),
        Some(ci) if !ci.is_active => Some(format!(
            "configurationItemID {ci_id}: the configuration item must be active."
        )),
        Some(ci) if ci.company_id != company_id => Some(format!(
            "configurationItemID {ci_id}: the configuration item must be one of the ticket's company ({company_id})."
        )),
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------

impl AutotaskSandbox {
    /// An active, serialized product (Admin > Products and Services >
    /// Products); CIs are instances of one.
    pub fn add_product(&self, name: &str) -> i64 {
        let mut db = self.shared.db();
        let id = db.next_product;
        db.next_product += 1;
        db.products.insert(
            id,
            Product {
                id,
                name: name.to_owned(),
                active: true,
                serialized: true,
                billing_code_id: MATERIAL_BILLING_CODES[0],
            },
        );
        id
    }

    /// Panics if there is no such product.
    pub fn set_product_active(&self, product_id: i64, active: bool) {
        self.shared
            .db()
            .products
            .get_mut(&product_id)
            .unwrap_or_else(|| panic!("no product {product_id} in the sandbox"))
            .active = active;
    }

    /// An active configuration item category.
    pub fn add_ci_category(&self, name: &str) -> i64 {
        let mut db = self.shared.db();
        let id = db.next_category;
        db.next_category += 1;
        db.categories.insert(
            id,
            Category {
                id,
                name: name.to_owned(),
                active: true,
                global_default: false,
            },
        );
        id
    }

    /// Defines a (text) user-defined field on ConfigurationItems, as an admin
    /// does in Admin > Features & Settings > Configuration Items >
    /// User-Defined Fields. Defining one twice changes nothing.
    pub fn add_ci_udf(&self, name: &str) {
        let mut db = self.shared.db();
        if !db.ci_udfs.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            db.ci_udfs.push(name.to_owned());
        }
    }

    /// The `configurationItemType` picklist value of an active or inactive
    /// type, by label (any case).
    pub fn ci_type_value(&self, label: &str) -> Option<i64> {
        CI_TYPE
            .iter()
            .find(|(_, l, _, _)| l.eq_ignore_ascii_case(label))
            .map(|(v, _, _, _)| *v)
    }

    /// Marks a CI active or inactive, as a technician does in the UI.
    /// Panics if there is no such CI.
    pub fn set_configuration_item_active(&self, id: i64, active: bool) {
        self.shared
            .db()
            .items
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no configuration item {id} in the sandbox"))
            .is_active = active;
    }

    pub fn configuration_items(&self) -> Vec<ConfigurationItem> {
        self.shared.db().items.values().cloned().collect()
    }

    pub fn configuration_item(&self, id: i64) -> Option<ConfigurationItem> {
        self.shared.db().items.get(&id).cloned()
    }

    /// The product every database has (and `add_configuration_item` uses).
    pub fn default_product_id(&self) -> i64 {
        DEFAULT_PRODUCT
    }
}

pub(super) fn new_reference_ci(db: &mut Db, company_id: i64, reference_number: &str) -> i64 {
    let id = db.next_item;
    db.next_item += 1;
    let mut ci = blank_ci();
    ci.id = id;
    ci.company_id = company_id;
    ci.product_id = DEFAULT_PRODUCT;
    ci.reference_title = Some(reference_number.to_owned());
    ci.reference_number = Some(reference_number.to_owned());
    ci.category_id = default_category(db);
    db.items.insert(id, ci);
    id
}
