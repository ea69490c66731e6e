//! Entity queries (`POST {entity}/query`, `POST {entity}/query/next`):
//! filters, `MaxRecords`, `IncludeFields` and paging.
//!
//! Paging follows the real API: `nextPageUrl` carries only
//! `paging={"pageSize":N,"previousIds":[…],"nextIds":[…]}`, not the filter,
//! so the next page is fetched by POSTing the same query body to it. A GET
//! on it answers 405 (see the router), a POST without the body 500.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::api::{errors, parse_object, Ctx};
use super::assets::{drop_empty_udfs, probe_row, udf_conditions, udf_value, TWO_UDFS};
use super::db::{as_i64, get_ci, Entity, QUERY_PAGE_MAX};

/// Where a page starts, as carried by a next-page URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Paging {
    page_size: usize,
    /// The first id of each page before this one, oldest first.
    previous_ids: Vec<i64>,
    /// The first id of this page.
    start_id: i64,
}

impl Paging {
    fn to_json(&self) -> String {
        json!({
            "pageSize": self.page_size,
            "previousIds": self.previous_ids,
            "nextIds": [self.start_id],
        })
        .to_string()
    }

    fn parse(raw: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(raw).ok()?;
        let object = value.as_object()?;
        let page_size = get_ci(object, "pageSize").and_then(as_i64)?;
        let ids = |name: &str| -> Option<Vec<i64>> {
            match get_ci(object, name) {
                None => Some(Vec::new()),
                Some(list) => list.as_array()?.iter().map(as_i64).collect(),
            }
        };
        Some(Self {
            page_size: page_size.clamp(1, QUERY_PAGE_MAX as i64) as usize,
            previous_ids: ids("previousIds")?,
            start_id: *ids("nextIds")?.first()?,
        })
    }
}

pub(super) fn query(s: Ctx, entity: Entity, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    run_query(s, entity, body, None)
}

/// The message ASP.NET gives when the query body (its `filters`) is missing.
const NO_FILTERS: &str = "Value cannot be null.\r\nParameter name: filters";

pub(super) fn query_next(
    s: Ctx,
    entity: Entity,
    params: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let Some(paging) = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("paging"))
        .and_then(|(_, v)| Paging::parse(v))
    else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["The paging parameter is missing or invalid.".to_owned()],
        );
    };
    // Without the query body Autotask does not know the filter: it fails
    // inside, with a 500, rather than answering 400.
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(body)) if get_ci(&body, "filter").is_some() => body,
        _ => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![NO_FILTERS.to_owned()],
            )
        }
    };
    run_query(s, entity, body, Some(paging))
}

pub(super) fn run_query(
    s: Ctx,
    entity: Entity,
    body: Map<String, Value>,
    paging: Option<Paging>,
) -> Response {
    let Some(filter) = get_ci(&body, "filter").and_then(Value::as_array).cloned() else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["A query must have a filter.".to_owned()],
        );
    };
    let size = match &paging {
        Some(paging) => paging.page_size,
        None => get_ci(&body, "MaxRecords")
            .and_then(as_i64)
            .map(|m| m.clamp(1, QUERY_PAGE_MAX as i64) as usize)
            .unwrap_or(QUERY_PAGE_MAX),
    };
    let known = entity.fields();
    let include: Option<Vec<String>> = match get_ci(&body, "IncludeFields") {
        None => None,
        Some(Value::Array(names)) => {
            let mut fields = vec!["id".to_owned()];
            for name in names {
                let Some(name) = name.as_str() else {
                    return errors(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        vec!["IncludeFields must be a list of field names.".to_owned()],
                    );
                };
                match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                    Some(field) if !fields.contains(field) => fields.push(field.clone()),
                    Some(_) => {}
                    None => {
                        return errors(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            vec![format!(
                                "Unable to find {name} in the {} entity.",
                                entity.path()
                            )],
                        )
                    }
                }
            }
            Some(fields)
        }
        Some(_) => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec!["IncludeFields must be a list of field names.".to_owned()],
            )
        }
    };
    // Autotask: "You can only query by one user-defined field at a time."
    if udf_conditions(&filter) > 1 {
        return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![TWO_UDFS.to_owned()]);
    }
    // Autotask checks a filter before it reads a row: an empty table refuses
    // an unknown field or UDF as a full one does.
    let (probe, rows) = {
        let db = s.db();
        (probe_row(&db, entity), db.rows(entity))
    };
    if let Some(probe) = probe.as_object() {
        for condition in &filter {
            if let Err(message) = matches(probe, condition, &known, entity.path()) {
                return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![message]);
            }
        }
    }
    // Rows come in id order; a page starts at the id its link names.
    let start_id = paging.as_ref().map(|p| p.start_id);
    let mut matched = Vec::new();
    for row in rows {
        let object = row.as_object().expect("entities serialize as objects");
        let id = object.get("id").and_then(as_i64).unwrap_or_default();
        if start_id.is_some_and(|start| id < start) {
            continue;
        }
        let mut keep = true;
        for condition in &filter {
            match matches(object, condition, &known, entity.path()) {
                Ok(true) => {}
                Ok(false) => {
                    keep = false;
                    break;
                }
                Err(message) => return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![message]),
            }
        }
        if keep {
            matched.push((
                id,
                match &include {
                    Some(fields) => Value::Object(
                        object
                            .iter()
                            .filter(|(k, _)| fields.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    None => row,
                },
            ));
        }
    }
    let next_start = matched.get(size).map(|(id, _)| *id);
    matched.truncate(size);
    let previous_ids = paging
        .as_ref()
        .map(|p| p.previous_ids.clone())
        .unwrap_or_default();
    let link = |paging: Paging| {
        let query = serde_urlencoded::to_string([("paging", paging.to_json())])
            .expect("strings encode as form data");
        format!(
            "{}/ATServicesRest/V1.0/{}/query/next?{query}",
            s.base_url(),
            entity.path()
        )
    };
    let next = match (next_start, matched.first()) {
        (Some(start_id), Some((first, _))) => {
            let mut previous = previous_ids.clone();
            previous.push(*first);
            Some(link(Paging {
                page_size: size,
                previous_ids: previous,
                start_id,
            }))
        }
        _ => None,
    };
    let prev = previous_ids.split_last().map(|(start_id, before)| {
        link(Paging {
            page_size: size,
            previous_ids: before.to_vec(),
            start_id: *start_id,
        })
    });
    let mut items: Vec<Value> = matched.into_iter().map(|(_, row)| row).collect();
    drop_empty_udfs(&mut items);
    Json(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(),
            "requestCount": size,
            "prevPageUrl": prev,
            "nextPageUrl": next,
        }
    }))
    .into_response()
}

/// One filter condition on a row of an entity whose fields are `known` and
/// whose path (in error texts) is `entity_path`: Autotask's operators and
/// groups, unknown fields and operators refused as Autotask words it. Every
/// query of the sandbox filters through this (tables, webhooks, resources).
pub(super) fn matches(
    row: &Map<String, Value>,
    condition: &Value,
    known: &[String],
    entity_path: &str,
) -> Result<bool, String> {
    let op = condition
        .get("op")
        .and_then(Value::as_str)
        .ok_or("Each filter needs an op.")?
        .to_ascii_lowercase();
    if op == "and" || op == "or" {
        let items = condition
            .get("items")
            .and_then(Value::as_array)
            .ok_or("A grouping filter needs items.")?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(matches(row, item, known, entity_path)?);
        }
        return Ok(if op == "and" {
            results.iter().all(|r| *r)
        } else {
            results.iter().any(|r| *r)
        });
    }
    let field = condition
        .get("field")
        .and_then(Value::as_str)
        .ok_or("Each filter needs a field.")?;
    let udf;
    let actual = if condition.get("udf").and_then(Value::as_bool) == Some(true) {
        udf = udf_value(row, field, entity_path)?;
        &udf
    } else {
        // The UDF list is not a field: UDFs are filtered with `"udf": true`.
        if field.eq_ignore_ascii_case("userDefinedFields")
            || !known.iter().any(|k| k.eq_ignore_ascii_case(field))
        {
            return Err(format!(
                "Unable to find {field} in the {entity_path} entity."
            ));
        }
        row.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v)
            .unwrap_or(&Value::Null)
    };
    let expected = condition.get("value").unwrap_or(&Value::Null);
    let text = |v: &Value| match v {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    Ok(match op.as_str() {
        "eq" => equal(actual, expected),
        "noteq" => !equal(actual, expected),
        "gt" | "gte" | "lt" | "lte" => match compare(actual, expected) {
            Some(ordering) => match op.as_str() {
                "gt" => ordering.is_gt(),
                "gte" => ordering.is_ge(),
                "lt" => ordering.is_lt(),
                _ => ordering.is_le(),
            },
            None => false,
        },
        "beginswith" => !actual.is_null() && text(actual).starts_with(&text(expected)),
        "endswith" => !actual.is_null() && text(actual).ends_with(&text(expected)),
        "contains" => !actual.is_null() && text(actual).contains(&text(expected)),
        "exist" => !actual.is_null(),
        "notexist" => actual.is_null(),
        "in" | "notin" => {
            let list = expected
                .as_array()
                .ok_or("in and notIn need a list value.")?;
            let found = list.iter().any(|v| equal(actual, v));
            if op == "in" {
                found
            } else {
                !found
            }
        }
        other => return Err(format!("Invalid filter operator {other}.")),
    })
}

pub(super) fn equal(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
            b.trim().parse::<f64>().ok() == a.as_f64()
        }
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => {
            b.eq_ignore_ascii_case(&a.to_string())
        }
        _ => false,
    }
}

pub(super) fn compare(actual: &Value, expected: &Value) -> Option<std::cmp::Ordering> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match (number(actual), number(expected)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        // ISO dates in one format order correctly as text.
        _ => Some(actual.as_str()?.cmp(expected.as_str()?)),
    }
}
