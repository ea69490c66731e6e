//! The single table in SQLite, with DynamoDB's semantics.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use rusqlite::{named_params, params, Connection, OptionalExtension, Row, ToSql};

use super::{Db, WriteFailed};
use crate::error::StoreError;
use crate::ports::{Condition, Item, Store, MAX_ITEM_BYTES};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS items (
        pk TEXT NOT NULL,
        sk TEXT NOT NULL,
        body TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (pk, sk)
    );
    CREATE INDEX IF NOT EXISTS items_by_sk ON items (sk);
    CREATE INDEX IF NOT EXISTS items_by_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
";

const COLUMNS: &str = "pk, sk, body, version, expires_at";
/// An item whose `expires_at` has passed is gone for readers, as if
/// DynamoDB's TTL had already deleted it (its deletion may lag by days).
const LIVE: &str = "(expires_at IS NULL OR expires_at >= :now)";
/// Expired rows are deleted at most this often, by a write.
const PURGE_EVERY_SECS: i64 = 60;

/// The store of the local process: one SQLite table `items` keyed like the
/// DynamoDB table. Writes are group-committed (see `Db`), reads go straight
/// to the connection.
pub struct SqliteStore {
    db: Db,
    next_purge: AtomicI64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn unavailable(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    // rusqlite's messages name the failure, never the bound values.
    move |e| StoreError::Unavailable(format!("sqlite {op}: {e}"))
}

fn not_written(e: WriteFailed) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn read_item(row: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        pk: row.get(0)?,
        sk: row.get(1)?,
        body: row.get(2)?,
        version: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

/// The smallest string greater than every string that starts with `prefix`,
/// so a prefix query is an index range (`sk >= prefix AND sk < bound`).
/// SQLite compares TEXT bytewise, and UTF-8 byte order is code point order,
/// so bumping the last bumpable character is exact. `None`: no upper bound.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The conditional write itself, run inside a batch. `Ok(Err(_))` is a lost
/// condition: nothing was written and the rest of the batch is unaffected.
fn put_in(
    conn: &Connection,
    item: &Item,
    condition: Condition,
    now: i64,
) -> rusqlite::Result<Result<u64, StoreError>> {
    let current: Option<u64> = conn
        .prepare_cached(&format!(
            "SELECT version FROM items WHERE pk = :pk AND sk = :sk AND {LIVE}"
        ))?
        .query_row(
            named_params! {":pk": item.pk, ":sk": item.sk, ":now": now},
            |row| row.get(0),
        )
        .optional()?;
    let holds = match condition {
        Condition::Always => true,
        Condition::MustNotExist => current.is_none(),
        Condition::VersionIs(expected) => current == Some(expected),
    };
    if !holds {
        tracing::debug!(
            pk = item.pk,
            sk = item.sk,
            ?condition,
            ?current,
            "conditional write lost"
        );
        return Ok(Err(StoreError::Conflict {
            pk: item.pk.clone(),
            sk: item.sk.clone(),
        }));
    }
    let version = current.map_or(1, |v| v + 1);
    conn.prepare_cached(
        "INSERT INTO items (pk, sk, body, version, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (pk, sk) DO UPDATE SET
            body = excluded.body, version = excluded.version, expires_at = excluded.expires_at",
    )?
    .execute(params![
        item.pk,
        item.sk,
        item.body,
        version,
        item.expires_at
    ])?;
    Ok(Ok(version))
}

impl SqliteStore {
    /// Opens or creates the database file and its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_db(Db::open(Some(path), SCHEMA, "store"))
    }

    /// A private store that lives as long as this value (tests, demos).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_db(Db::open(None, SCHEMA, "store"))
    }

    fn with_db(db: Result<Db, String>) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.map_err(StoreError::Unavailable)?,
            next_purge: AtomicI64::new(0),
        })
    }

    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// Whether this write should also delete expired rows (readers already
    /// skip them; deleting now and then only reclaims space).
    fn purge_due(&self, now: i64) -> bool {
        let due = self.next_purge.load(Ordering::Relaxed);
        now >= due
            && self
                .next_purge
                .compare_exchange(
                    due,
                    now + PURGE_EVERY_SECS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn select(
        &self,
        op: &'static str,
        sql: &str,
        params: &[(&str, &dyn ToSql)],
    ) -> Result<Vec<Item>, StoreError> {
        self.db
            .read(|conn| {
                conn.prepare_cached(sql)?
                    .query_map(params, read_item)?
                    .collect()
            })
            .map_err(unavailable(op))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM items WHERE pk = :pk AND sk = :sk AND {LIVE}");
        let now = self.now();
        let items = self.select(
            "get",
            &sql,
            named_params! {":pk": pk, ":sk": sk, ":now": now},
        )?;
        Ok(items.into_iter().next())
    }

    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        // DynamoDB counts attribute names and values; key and body dominate.
        let size = pk.len() + sk.len() + body.len();
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge {
                pk: pk.to_owned(),
                sk: sk.to_owned(),
                size,
                limit: MAX_ITEM_BYTES,
            });
        }
        let item = Item {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            body: body.to_owned(),
            version: 0,
            expires_at,
        };
        let now = self.now();
        let purge = self.purge_due(now);
        self.db
            .write(move |conn| {
                if purge {
                    let purged = conn.execute("DELETE FROM items WHERE expires_at < ?1", [now])?;
                    tracing::debug!(purged, "expired items deleted");
                }
                put_in(conn, &item, condition, now)
            })
            .await
            .map_err(not_written)?
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let upper = prefix_upper_bound(sk_prefix);
        let sql = format!(
            "SELECT {COLUMNS} FROM items WHERE pk = :pk AND sk >= :lower {} AND {LIVE}
             ORDER BY sk {} LIMIT :limit",
            if upper.is_some() {
                "AND sk < :upper"
            } else {
                ""
            },
            if newest_first { "DESC" } else { "ASC" },
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = self.now();
        let mut params: Vec<(&str, &dyn ToSql)> = vec![
            (":pk", &pk),
            (":lower", &sk_prefix),
            (":now", &now),
            (":limit", &limit),
        ];
        if let Some(upper) = &upper {
            params.push((":upper", upper));
        }
        self.select("query", &sql, &params)
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?
                    .execute([pk, sk])
                    .map(drop)
            })
            .await
            .map_err(not_written)
    }

    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM items WHERE sk = :sk AND {LIVE} ORDER BY pk");
        let now = self.now();
        self.select("scan", &sql, named_params! {":sk": sk, ":now": now})
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_bound_is_the_next_string_after_all_extensions() {
        assert_eq!(prefix_upper_bound("LINK#Z#").as_deref(), Some("LINK#Z$"));
        assert_eq!(prefix_upper_bound("NOTE#é").as_deref(), Some("NOTE#ê"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
