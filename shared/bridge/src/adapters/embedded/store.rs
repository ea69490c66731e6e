//! The single table in SQLite, with DynamoDB's semantics.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{lock, open_connection};
use crate::error::StoreError;
use crate::ports::{Clock, Condition, Item, Store, SystemClock, MAX_ITEM_BYTES};

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
/// Expired rows are deleted at most this often, by a writer.
const PURGE_EVERY_SECS: i64 = 60;

/// The store of the local process: one SQLite table `items` keyed like the
/// DynamoDB table. Every operation takes microseconds, so a mutex around one
/// connection is enough and keeps conditional writes trivially atomic.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
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

impl SqliteStore {
    /// Opens or creates the database file and its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_connection(open_connection(Some(path)).map_err(unavailable("open"))?)
    }

    /// A private store that lives as long as this value (tests, demos).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_connection(open_connection(None).map_err(unavailable("open"))?)
    }

    /// Uses `clock` to decide which items have expired (tests of TTLs).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn with_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA).map_err(unavailable("schema"))?;
        Ok(Self {
            conn: Mutex::new(conn),
            clock: Arc::new(SystemClock),
            next_purge: AtomicI64::new(0),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn put_sync(
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
        let now = self.now();
        let mut conn = lock(&self.conn);
        // IMMEDIATE takes the write lock up front, so another process sharing
        // the file cannot slip a write between our read and our write.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable("put"))?;
        let current: Option<u64> = tx
            .prepare_cached(&format!(
                "SELECT version FROM items WHERE pk = :pk AND sk = :sk AND {LIVE}"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    rusqlite::named_params! {":pk": pk, ":sk": sk, ":now": now},
                    |row| row.get(0),
                )
                .optional()
            })
            .map_err(unavailable("put"))?;
        let holds = match condition {
            Condition::Always => true,
            Condition::MustNotExist => current.is_none(),
            Condition::VersionIs(expected) => current == Some(expected),
        };
        if !holds {
            tracing::debug!(pk, sk, ?condition, ?current, "conditional write lost");
            return Err(StoreError::Conflict {
                pk: pk.to_owned(),
                sk: sk.to_owned(),
            });
        }
        let version = current.map_or(1, |v| v + 1);
        tx.prepare_cached(
            "INSERT INTO items (pk, sk, body, version, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (pk, sk) DO UPDATE SET
                body = excluded.body, version = excluded.version, expires_at = excluded.expires_at",
        )
        .and_then(|mut stmt| stmt.execute(params![pk, sk, body, version, expires_at]))
        .map_err(unavailable("put"))?;
        tx.commit().map_err(unavailable("put"))?;
        self.purge_expired(&conn, now);
        Ok(version)
    }

    /// Deletes expired rows now and then; readers already skip them, so a
    /// failure here costs only disk space.
    fn purge_expired(&self, conn: &Connection, now: i64) {
        if now < self.next_purge.load(Ordering::Relaxed) {
            return;
        }
        self.next_purge
            .store(now + PURGE_EVERY_SECS, Ordering::Relaxed);
        match conn.execute("DELETE FROM items WHERE expires_at < ?1", [now]) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired items deleted"),
            Err(e) => tracing::warn!(error = %e, "purging expired items failed"),
        }
    }

    fn query_sync(
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
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(&sql).map_err(unavailable("query"))?;
        let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
            (":pk", &pk),
            (":lower", &sk_prefix),
            (":now", &now),
            (":limit", &limit),
        ];
        if let Some(upper) = &upper {
            named.push((":upper", upper));
        }
        let rows = stmt
            .query_map(named.as_slice(), read_item)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(unavailable("query"))?;
        Ok(rows)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let now = self.now();
        let conn = lock(&self.conn);
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM items WHERE pk = :pk AND sk = :sk AND {LIVE}"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                rusqlite::named_params! {":pk": pk, ":sk": sk, ":now": now},
                read_item,
            )
            .optional()
        })
        .map_err(unavailable("get"))
    }

    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.put_sync(pk, sk, body, condition, expires_at)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_sync(pk, sk_prefix, newest_first, limit)
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        let conn = lock(&self.conn);
        conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
            .and_then(|mut stmt| stmt.execute([pk, sk]))
            .map_err(unavailable("delete"))?;
        Ok(())
    }

    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        let now = self.now();
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE sk = :sk AND {LIVE} ORDER BY pk"
            ))
            .map_err(unavailable("scan"))?;
        let rows = stmt
            .query_map(rusqlite::named_params! {":sk": sk, ":now": now}, read_item)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(unavailable("scan"))?;
        Ok(rows)
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
