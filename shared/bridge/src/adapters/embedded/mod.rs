//! Embedded adapters: SQLite for the store and the queue, a TOML file for the
//! secrets. They serve the local all-in-one process and the tests, and keep
//! DynamoDB's and SQS FIFO's semantics so that what works locally works in AWS.

mod queue;
mod secrets;
mod store;

pub use queue::{DeadLetter, EmbeddedQueue, QueueDepth};
pub use secrets::FileSecrets;
pub use store::SqliteStore;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

/// How long a writer waits for another connection's lock (the store and the
/// queue may share one file through two connections) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (and creates) a database file, or a private in-memory one.
fn open_connection(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Best effort: if it fails, opening the file reports the real cause.
                let _ = std::fs::create_dir_all(dir);
            }
            Connection::open(path)?
        }
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if path.is_some() {
        // WAL lets readers run beside the writer. synchronous=NORMAL skips the
        // fsync per commit: a power cut may lose the last commits but never
        // corrupts the file, and a lost job is repaired by the next sweep.
        // Without it the queue could not take 10,000 sends a second.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

/// A panic while the lock was held cannot leave the database half-written
/// (an open transaction rolls back on drop), so a poisoned lock is safe to reuse.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since the epoch, the queue's time unit.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
