//! Entity queries (`POST {entity}/query`, `GET {entity}/query/next`):
//! filters, `MaxRecords`, `IncludeFields` and paging.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::api::{errors, page, parse_object, Ctx};
use super::db::{as_i64, get_ci, Entity, QUERY_PAGE_MAX};

pub(super) fn query(s: Ctx, entity: Entity, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    run_query(s, entity, body, 0)
}

pub(super) fn query_next(s: Ctx, entity: Entity, params: HashMap<String, String>) -> Response {
    let search = params.get("search").map(String::as_str).unwrap_or_default();
    let body = match parse_object(search.as_bytes()) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let offset = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    run_query(s, entity, body, offset)
}

pub(super) fn run_query(
    s: Ctx,
    entity: Entity,
    body: Map<String, Value>,
    offset: usize,
) -> Response {
    let Some(filter) = get_ci(&body, "filter").and_then(Value::as_array).cloned() else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["A query must have a filter.".to_owned()],
        );
    };
    let size = get_ci(&body, "MaxRecords")
        .and_then(as_i64)
        .map(|m| m.clamp(1, QUERY_PAGE_MAX as i64) as usize)
        .unwrap_or(QUERY_PAGE_MAX);
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
    let rows = s.db().rows(entity);
    let mut matched = Vec::new();
    for row in rows {
        let object = row.as_object().expect("entities serialize as objects");
        let mut keep = true;
        for condition in &filter {
            match matches(object, condition, &known, entity) {
                Ok(true) => {}
                Ok(false) => {
                    keep = false;
                    break;
                }
                Err(message) => return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![message]),
            }
        }
        if keep {
            matched.push(match &include {
                Some(fields) => Value::Object(
                    object
                        .iter()
                        .filter(|(k, _)| fields.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                None => row,
            });
        }
    }
    let mut search = json!({ "filter": filter, "MaxRecords": size });
    if let Some(fields) = &include {
        search["IncludeFields"] = json!(fields);
    }
    let search = search.to_string();
    let base = s.base_url().to_owned();
    let link = move |offset: usize| {
        let query = serde_urlencoded::to_string([
            ("search", search.clone()),
            ("offset", offset.to_string()),
        ])
        .expect("strings encode as form data");
        format!(
            "{base}/ATServicesRest/V1.0/{}/query/next?{query}",
            entity.path()
        )
    };
    page(matched, offset, size, link)
}

pub(super) fn matches(
    row: &Map<String, Value>,
    condition: &Value,
    known: &[String],
    entity: Entity,
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
            results.push(matches(row, item, known, entity)?);
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
    if !known.iter().any(|k| k.eq_ignore_ascii_case(field)) {
        return Err(format!(
            "Unable to find {field} in the {} entity.",
            entity.path()
        ));
    }
    let actual = row
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .map(|(_, v)| v)
        .unwrap_or(&Value::Null);
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
