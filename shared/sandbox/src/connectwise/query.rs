//! List queries (fact sheet §3, §4): the `conditions` language (parsed in
//! `conditions`), `orderBy`,
//! `fields`, and paging (navigable `page`/`pageSize` with a `Link` header,
//! or `pagination-type: forward-only` keyset paging by `pageId`).
//!
//! `conditions` is parsed into a tree, not matched as text:
//!
//! ```text
//! expr       := term ("or" term)*
//! term       := factor ("and" factor)*
//! factor     := "not" factor | "(" expr ")" | comparison
//! comparison := field op literal | field ["not"] "in" "(" literal ("," literal)* ")"
//! op         := = | != | < | <= | > | >= | ["not"] contains | ["not"] like
//! literal    := "double-quoted" | number | true | false | null | [datetime]
//! ```
//!
//! Keywords are case-insensitive; fields are the entity's (case-insensitive,
//! nested with `/`, e.g. `board/id`, `_info/lastUpdated`; tickets also take
//! `lastUpdated` for `_info/lastUpdated`). Literals must fit the field:
//! strings quoted, numbers and booleans bare, datetimes in brackets; a
//! mismatch, an unknown field or a syntax error answers 400. String
//! comparisons ignore case (SQL Server's default collation); `like` takes
//! `%` as the wildcard. As in SQL, a null field matches nothing but `= null`
//! (and `!= null` matches only non-null fields).

use std::cmp::Ordering;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::api::{with_link, ApiError};
use super::conditions::{lookup, matches, parse_conditions};

/// The longest query string accepted (fact sheet §3: "under roughly 2,000").
pub(super) const QUERY_MAX: usize = 2000;
pub(super) const PAGE_SIZE_DEFAULT: usize = 25;
/// The hard limit (§4).
pub(super) const PAGE_SIZE_MAX: usize = 1000;

/// The type of a condition field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Str,
    Bool,
    Date,
}

/// The fields of an entity that conditions and `orderBy` may name.
#[derive(Debug)]
pub(super) struct Schema {
    pub(super) fields: &'static [(&'static str, Kind)],
    /// `(alias, field)`.
    pub(super) aliases: &'static [(&'static str, &'static str)],
}

impl Schema {
    pub(super) fn field(&self, name: &str) -> Option<(&'static str, Kind)> {
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map_or(name, |(_, field)| *field);
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .copied()
    }
}

use Kind::{Bool, Date, Int, Str};

pub(super) const TICKETS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("summary", Str),
        ("recordType", Str),
        ("externalXRef", Str),
        ("closedFlag", Bool),
        ("closedDate", Date),
        ("closedBy", Str),
        ("board/id", Int),
        ("board/name", Str),
        ("status/id", Int),
        ("status/name", Str),
        ("priority/id", Int),
        ("priority/name", Str),
        ("company/id", Int),
        ("company/identifier", Str),
        ("company/name", Str),
        ("team/id", Int),
        ("team/name", Str),
        ("owner/id", Int),
        ("owner/identifier", Str),
        ("_info/lastUpdated", Date),
        ("_info/updatedBy", Str),
        ("_info/dateEntered", Date),
        ("_info/enteredBy", Str),
    ],
    aliases: &[
        ("lastUpdated", "_info/lastUpdated"),
        ("updatedBy", "_info/updatedBy"),
        ("dateEntered", "_info/dateEntered"),
        ("enteredBy", "_info/enteredBy"),
    ],
};

pub(super) const NOTES: Schema = Schema {
    fields: &[
        ("id", Int),
        ("ticketId", Int),
        ("text", Str),
        ("detailDescriptionFlag", Bool),
        ("internalAnalysisFlag", Bool),
        ("resolutionFlag", Bool),
        ("internalFlag", Bool),
        ("externalFlag", Bool),
        ("member/id", Int),
        ("member/identifier", Str),
        ("dateCreated", Date),
        ("createdBy", Str),
        ("_info/lastUpdated", Date),
    ],
    aliases: &[("lastUpdated", "_info/lastUpdated")],
};

pub(super) const BOARDS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("name", Str),
        ("inactiveFlag", Bool),
        ("projectFlag", Bool),
        ("location/id", Int),
        ("department/id", Int),
    ],
    aliases: &[],
};

pub(super) const STATUSES: Schema = Schema {
    fields: &[
        ("id", Int),
        ("name", Str),
        ("sortOrder", Int),
        ("inactive", Bool),
        ("closedStatus", Bool),
        ("defaultFlag", Bool),
        ("board/id", Int),
    ],
    aliases: &[],
};

pub(super) const TEAMS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("name", Str),
        ("defaultFlag", Bool),
        ("teamLeader/id", Int),
    ],
    aliases: &[],
};

pub(super) const PRIORITIES: Schema = Schema {
    fields: &[
        ("id", Int),
        ("name", Str),
        ("sortOrder", Int),
        ("defaultFlag", Bool),
        ("level", Str),
    ],
    aliases: &[],
};

pub(super) const COMPANIES: Schema = Schema {
    fields: &[
        ("id", Int),
        ("identifier", Str),
        ("name", Str),
        ("deletedFlag", Bool),
        ("status/name", Str),
        ("_info/lastUpdated", Date),
    ],
    aliases: &[("lastUpdated", "_info/lastUpdated")],
};

pub(super) const CONFIGURATIONS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("name", Str),
        ("serialNumber", Str),
        ("tagNumber", Str),
        ("activeFlag", Bool),
        ("company/id", Int),
        ("company/identifier", Str),
        ("company/name", Str),
        ("type/name", Str),
        ("status/name", Str),
        ("_info/lastUpdated", Date),
    ],
    aliases: &[("lastUpdated", "_info/lastUpdated")],
};

pub(super) const MEMBERS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("identifier", Str),
        ("firstName", Str),
        ("lastName", Str),
        ("licenseClass", Str),
        ("inactiveFlag", Bool),
        ("officeEmail", Str),
    ],
    aliases: &[],
};

pub(super) const CALLBACKS: Schema = Schema {
    fields: &[
        ("id", Int),
        ("url", Str),
        ("objectId", Int),
        ("type", Str),
        ("level", Str),
        ("description", Str),
        ("inactiveFlag", Bool),
        ("memberId", Int),
    ],
    aliases: &[],
};

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

/// A list request: its query parameters, paging mode and own URL.
#[derive(Debug, Clone)]
pub(super) struct ListRequest {
    pub(super) params: Vec<(String, String)>,
    pub(super) forward_only: bool,
    /// `{site}{path}` as the client called it, for `Link`.
    pub(super) url: String,
}

impl ListRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    fn filtered(&self, mut rows: Vec<Value>, schema: &Schema) -> Result<Vec<Value>, ApiError> {
        for unsupported in ["childConditions", "customFieldConditions"] {
            if self.param(unsupported).is_some() {
                return Err(ApiError::bad_request(format!(
                    "{unsupported} is not supported by the sandbox"
                )));
            }
        }
        if let Some(conditions) = self.param("conditions") {
            let expr = parse_conditions(conditions, schema)
                .map_err(|e| ApiError::bad_request(format!("Invalid conditions: {e}")))?;
            if let Some(expr) = expr {
                rows.retain(|row| matches(&expr, row));
            }
        }
        Ok(rows)
    }

    /// `GET …/count`: `{"count": N}` of the rows matching `conditions`.
    pub(super) fn count(&self, rows: Vec<Value>, schema: &Schema) -> Result<Response, ApiError> {
        let rows = self.filtered(rows, schema)?;
        Ok(Json(json!({ "count": rows.len() })).into_response())
    }

    /// One page of the rows (in id order) matching the request.
    pub(super) fn respond(&self, rows: Vec<Value>, schema: &Schema) -> Result<Response, ApiError> {
        let mut rows = self.filtered(rows, schema)?;
        let size = match self.param("pageSize") {
            None => PAGE_SIZE_DEFAULT,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(size) if (1..=PAGE_SIZE_MAX).contains(&size) => size,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "pageSize must be a number from 1 to {PAGE_SIZE_MAX} (got {raw:?})"
                    )))
                }
            },
        };
        let order = self.param("orderBy");
        let mut links = Vec::new();
        let page: Vec<Value> = if self.forward_only {
            if order.is_some() {
                return Err(ApiError::bad_request(
                    "orderBy is not supported with pagination-type: forward-only",
                ));
            }
            let after = match self.param("pageId") {
                None => i64::MIN,
                Some(raw) => raw.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("pageId must be a number (got {raw:?})"))
                })?,
            };
            let id = |row: &Value| row.get("id").and_then(Value::as_i64).unwrap_or_default();
            rows.sort_by_key(id);
            rows.retain(|row| id(row) > after);
            let more = rows.len() > size;
            rows.truncate(size);
            if let (true, Some(last)) = (more, rows.last()) {
                links.push((
                    self.link(&[("pageId", id(last).to_string())], &["page"]),
                    "next",
                ));
            }
            rows
        } else {
            if let Some(order) = order {
                let keys = order_keys(order, schema)?;
                rows.sort_by(|a, b| {
                    keys.iter()
                        .map(|(field, descending)| {
                            let ordering = order_values(lookup(a, field), lookup(b, field));
                            if *descending {
                                ordering.reverse()
                            } else {
                                ordering
                            }
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                });
            }
            let page = match self.param("page") {
                None => 1,
                Some(raw) => match raw.trim().parse::<usize>() {
                    Ok(page) if page >= 1 => page,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "page must be a number from 1 (got {raw:?})"
                        )))
                    }
                },
            };
            let last = rows.len().div_ceil(size).max(1);
            if page > 1 {
                links.push((self.link(&[("page", "1".to_owned())], &[]), "first"));
                let prev = (page - 1).min(last);
                links.push((self.link(&[("page", prev.to_string())], &[]), "prev"));
            }
            if page < last {
                links.push((self.link(&[("page", (page + 1).to_string())], &[]), "next"));
                links.push((self.link(&[("page", last.to_string())], &[]), "last"));
            }
            rows.into_iter()
                .skip((page - 1).saturating_mul(size))
                .take(size)
                .collect()
        };
        let page = match self.param("fields") {
            None => page,
            Some(fields) => {
                let paths: Vec<&str> = fields
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .collect();
                page.iter().map(|row| project(row, &paths)).collect()
            }
        };
        let links: Vec<(String, &str)> = links;
        Ok(with_link(Json(page).into_response(), &links))
    }

    /// This request's URL with `set` parameters replaced (or added) and
    /// `drop` ones removed.
    fn link(&self, set: &[(&str, String)], drop: &[&str]) -> String {
        let mut params: Vec<(String, String)> = self
            .params
            .iter()
            .filter(|(k, _)| {
                !drop.iter().any(|d| d.eq_ignore_ascii_case(k))
                    && !set.iter().any(|(s, _)| s.eq_ignore_ascii_case(k))
            })
            .cloned()
            .collect();
        params.extend(set.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let query = serde_urlencoded::to_string(&params).expect("strings encode as form data");
        format!("{}?{query}", self.url)
    }
}

/// `orderBy=field [asc|desc], …`.
fn order_keys(order: &str, schema: &Schema) -> Result<Vec<(&'static str, bool)>, ApiError> {
    let mut keys = Vec::new();
    for part in order.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let bad = || {
            ApiError::bad_request(format!(
                "Invalid orderBy {part:?}: use \"field [asc|desc]\""
            ))
        };
        let (name, descending) = match words.as_slice() {
            [name] => (*name, false),
            [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
            [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
            _ => return Err(bad()),
        };
        let (field, _) = schema.field(name).ok_or_else(|| {
            ApiError::bad_request(format!("Invalid orderBy: unknown field '{name}'"))
        })?;
        keys.push((field, descending));
    }
    Ok(keys)
}

fn order_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// `fields=id,summary,board/name`: only those (nested) members of a row.
fn project(row: &Value, paths: &[&str]) -> Value {
    let mut out = Map::new();
    for path in paths {
        let mut source = row;
        let mut keys = Vec::new();
        let mut found = true;
        for segment in path.split('/') {
            let hit = source
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(segment)));
            match hit {
                Some((key, value)) => {
                    keys.push(key.clone());
                    source = value;
                }
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let Some((last, parents)) = keys.split_last() else {
            continue;
        };
        let mut target = &mut out;
        for key in parents {
            let entry = target
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            target = entry.as_object_mut().expect("just made an object");
        }
        target.insert(last.clone(), source.clone());
    }
    Value::Object(out)
}
