//! `Store` on one DynamoDB table: `pk` (S, hash), `sk` (S, range), `body` (S),
//! `version` (N), `expires_at` (N, the table's TTL attribute).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use bridge::error::StoreError;
use bridge::ports::{Condition, Item, Store, MAX_ITEM_BYTES};

const PK: &str = "pk";
const SK: &str = "sk";
const BODY: &str = "body";
const VERSION: &str = "version";
const EXPIRES_AT: &str = "expires_at";

/// DynamoDB stores a number in at most 21 bytes.
const NUMBER_BYTES: usize = 21;

/// Expression fragment true for items that have not expired. DynamoDB TTL
/// deletes expired items lazily (up to days later), so reads and conditions
/// must treat them as absent themselves.
const LIVE: &str = "(attribute_not_exists(#e) OR #e > :now)";

type Key = HashMap<String, AttributeValue>;

/// The single-table store in DynamoDB. Reads are strongly consistent: link
/// records guard ticket creation, so a read must see the write before it.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: &str, sk: &str) -> Key {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// Item size as DynamoDB counts it (attribute names plus values), so a write
/// that AWS would refuse is refused before the call, identically everywhere.
fn item_size(pk: &str, sk: &str, body: &str, expires: bool) -> usize {
    let mut size = PK.len() + pk.len() + SK.len() + sk.len() + BODY.len() + body.len();
    size += VERSION.len() + NUMBER_BYTES;
    if expires {
        size += EXPIRES_AT.len() + NUMBER_BYTES;
    }
    size
}

/// Throttling, 5xx, timeouts and transport failures are all worth retrying;
/// DynamoDB's few permanent errors here (a missing table, a bad expression)
/// are deployment bugs that no `StoreError` variant describes better.
fn unavailable<E, R>(op: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("DynamoDB {op}: {}", DisplayErrorContext(err)))
}

fn corrupt(pk: &str, sk: &str, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        message: message.into(),
    }
}

fn string_attr<'a>(item: &'a Key, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number_attr<T: std::str::FromStr>(item: &Key, name: &str) -> Option<Result<T, ()>> {
    item.get(name).map(|v| {
        v.as_n()
            .map_err(|_| ())
            .and_then(|n| n.parse().map_err(|_| ()))
    })
}

fn parse_item(item: &Key) -> Result<Item, StoreError> {
    let pk = string_attr(item, PK).unwrap_or_default();
    let sk = string_attr(item, SK).unwrap_or_default();
    if pk.is_empty() || sk.is_empty() {
        return Err(corrupt(pk, sk, "item has no string pk/sk"));
    }
    let body = string_attr(item, BODY).ok_or_else(|| corrupt(pk, sk, "no string `body`"))?;
    let version = number_attr::<u64>(item, VERSION)
        .and_then(Result::ok)
        .ok_or_else(|| corrupt(pk, sk, "no numeric `version`"))?;
    let expires_at = number_attr::<i64>(item, EXPIRES_AT)
        .transpose()
        .map_err(|()| corrupt(pk, sk, "`expires_at` is not an integer"))?;
    Ok(Item {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        body: body.to_owned(),
        version,
        expires_at,
    })
}

fn is_live(item: &Item, now: i64) -> bool {
    item.expires_at.is_none_or(|at| at > now)
}

#[async_trait]
impl Store for DynamoStore {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        match out.item() {
            None => Ok(None),
            Some(raw) => {
                let item = parse_item(raw)?;
                Ok(is_live(&item, now_secs()).then_some(item))
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self, body), fields(body_len = body.len()))]
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        let size = item_size(pk, sk, body, expires_at.is_some());
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge {
                pk: pk.to_owned(),
                sk: sk.to_owned(),
                size,
                limit: MAX_ITEM_BYTES,
            });
        }

        // One UpdateItem does the check, the write and the version bump
        // atomically, and returns the new version without a second read.
        let mut names = HashMap::from([
            ("#b".to_owned(), BODY.to_owned()),
            ("#v".to_owned(), VERSION.to_owned()),
            ("#e".to_owned(), EXPIRES_AT.to_owned()),
        ]);
        let mut values = HashMap::from([(":b".to_owned(), s(body)), (":one".to_owned(), n(1))]);
        let mut update = match condition {
            // An expired item still physically present counts as absent, so
            // the new one starts again at version 1.
            Condition::MustNotExist => "SET #b = :b, #v = :one".to_owned(),
            Condition::Always | Condition::VersionIs(_) => {
                values.insert(":zero".to_owned(), n(0));
                "SET #b = :b, #v = if_not_exists(#v, :zero) + :one".to_owned()
            }
        };
        match expires_at {
            Some(at) => {
                update.push_str(", #e = :e");
                values.insert(":e".to_owned(), n(at));
            }
            None => update.push_str(" REMOVE #e"),
        }
        let check = match condition {
            Condition::Always => None,
            Condition::MustNotExist => {
                names.insert("#pk".to_owned(), PK.to_owned());
                Some("attribute_not_exists(#pk) OR #e <= :now".to_owned())
            }
            Condition::VersionIs(v) => {
                values.insert(":expected".to_owned(), n(v));
                Some(format!("#v = :expected AND {LIVE}"))
            }
        };
        if check.is_some() {
            values.insert(":now".to_owned(), n(now_secs()));
        }

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(update)
            .set_condition_expression(check)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                let service = err.as_service_error();
                if service.is_some_and(|e| e.is_conditional_check_failed_exception()) {
                    return Err(StoreError::Conflict {
                        pk: pk.to_owned(),
                        sk: sk.to_owned(),
                    });
                }
                // Our size estimate and DynamoDB's can differ by a few bytes.
                if service.is_some_and(|e| {
                    e.code() == Some("ValidationException")
                        && e.message()
                            .is_some_and(|m| m.contains("exceeded the maximum allowed size"))
                }) {
                    return Err(StoreError::TooLarge {
                        pk: pk.to_owned(),
                        sk: sk.to_owned(),
                        size,
                        limit: MAX_ITEM_BYTES,
                    });
                }
                return Err(unavailable("UpdateItem", &err));
            }
        };
        match condition {
            // Known from the condition that held; UPDATED_NEW may omit an
            // attribute whose value did not change.
            Condition::MustNotExist => Ok(1),
            Condition::VersionIs(v) => Ok(v + 1),
            Condition::Always => out
                .attributes()
                .and_then(|a| number_attr::<u64>(a, VERSION))
                .and_then(Result::ok)
                .ok_or_else(|| corrupt(pk, sk, "UpdateItem returned no numeric `version`")),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        if limit == 0 {
            return Ok(items);
        }
        let mut values = HashMap::from([
            (":pk".to_owned(), s(pk)),
            (":now".to_owned(), n(now_secs())),
        ]);
        let key_condition = if sk_prefix.is_empty() {
            "pk = :pk"
        } else {
            values.insert(":p".to_owned(), s(sk_prefix));
            "pk = :pk AND begins_with(sk, :p)"
        };
        let mut start: Option<Key> = None;
        loop {
            // Limit counts items read before the expiry filter, so a page can
            // come back short while more remain: keep following the cursor.
            let page_limit = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .filter_expression(LIVE)
                .expression_attribute_names("#e", EXPIRES_AT)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!newest_first)
                .consistent_read(true)
                .limit(page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query", &e))?;
            for raw in out.items() {
                items.push(parse_item(raw)?);
            }
            match out.last_evaluated_key() {
                Some(next) if items.len() < limit && !next.is_empty() => start = Some(next.clone()),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        let values = HashMap::from([
            (":sk".to_owned(), s(sk)),
            (":now".to_owned(), n(now_secs())),
        ]);
        let mut items = Vec::new();
        let mut start: Option<Key> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(format!("sk = :sk AND {LIVE}"))
                .expression_attribute_names("#e", EXPIRES_AT)
                .set_expression_attribute_values(Some(values.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Scan", &e))?;
            for raw in out.items() {
                items.push(parse_item(raw)?);
            }
            match out.last_evaluated_key() {
                Some(next) if !next.is_empty() => start = Some(next.clone()),
                _ => break,
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_size_counts_names_keys_and_numbers() {
        assert_eq!(item_size("p", "s", "", false), 2 + 1 + 2 + 1 + 4 + 7 + 21);
        assert_eq!(
            item_size("p", "s", "", true) - item_size("p", "s", "", false),
            10 + 21
        );
    }

    #[test]
    fn parse_item_reads_every_attribute_and_rejects_bad_versions() {
        let mut raw = key("TENANT#a", "CONFIG");
        raw.insert(BODY.into(), s("{}"));
        raw.insert(VERSION.into(), n(3));
        raw.insert(EXPIRES_AT.into(), n(99));
        let item = parse_item(&raw).unwrap();
        assert_eq!(
            item,
            Item {
                pk: "TENANT#a".into(),
                sk: "CONFIG".into(),
                body: "{}".into(),
                version: 3,
                expires_at: Some(99),
            }
        );
        assert!(is_live(&item, 98));
        assert!(!is_live(&item, 99));

        raw.insert(VERSION.into(), s("3"));
        assert!(matches!(parse_item(&raw), Err(StoreError::Corrupt { .. })));
    }
}
