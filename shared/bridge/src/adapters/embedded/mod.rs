//! Embedded adapters: SQLite for the store and the queue, a TOML file for the
//! secrets. They serve the local all-in-one process and the tests, and keep
//! DynamoDB's and SQS FIFO's semantics so that what works locally works in AWS.

mod queue;
mod secrets;
mod store;

pub use queue::{DeadLetter, EmbeddedQueue, QueueDepth, DEFAULT_VISIBILITY};
pub use secrets::{FileSecrets, SecretsFile};
pub use store::SqliteStore;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

/// How long a writer waits for another connection's lock (the store and the
/// queue may share one file through two connections) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most writes committed together; bounds how long readers wait for the lock.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer thread before senders are made to wait.
const WRITE_BACKLOG: usize = 8192;

/// Sent back to a caller once its write is committed.
type Reply = Box<dyn FnOnce() + Send>;
/// A write, run inside a batch's transaction.
type Write = Box<dyn FnOnce(&Connection) -> rusqlite::Result<Reply> + Send>;

/// The write was rolled back; the writer thread logged the database error.
#[derive(Debug)]
struct WriteFailed;

impl fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sqlite write was not committed (the database error is logged)")
    }
}

/// One SQLite connection with group commit. Writes go to a dedicated thread,
/// which runs everything that queued up meanwhile in one transaction: a
/// commit costs about the same for one write as for hundreds, so throughput
/// grows with the number of concurrent writers, and commits (WAL appends,
/// checkpoints) run off the async worker threads. Reads take the connection
/// directly (waiting out a batch at worst) and see every acknowledged write.
struct Db {
    conn: Arc<Mutex<Connection>>,
    writes: mpsc::Sender<Write>,
}

impl Db {
    fn open(path: Option<&Path>, schema: &str, name: &'static str) -> Result<Self, String> {
        let conn = open_connection(path)
            .and_then(|conn| conn.execute_batch(schema).map(|()| conn))
            .map_err(|e| format!("sqlite open: {e}"))?;
        let conn = Arc::new(Mutex::new(conn));
        let (writes, queued) = mpsc::channel(WRITE_BACKLOG);
        let writer_conn = conn.clone();
        std::thread::Builder::new()
            .name(format!("sqlite-{name}"))
            .spawn(move || run_writer(&writer_conn, queued, name))
            .map_err(|e| format!("cannot start the sqlite writer thread: {e}"))?;
        Ok(Self { conn, writes })
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        read(&lock(&self.conn))
    }

    /// Runs `write` in a transaction of its own on the caller's thread, for
    /// rare writes from synchronous code (admin actions).
    fn write_now<T>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = write(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `write` in the next batch and returns its result once committed.
    /// A database error rolls back the whole batch: every write in it fails.
    async fn write<T, F>(&self, write: F) -> Result<T, WriteFailed>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Write = Box::new(move |conn| {
            let value = write(conn)?;
            Ok(Box::new(move || {
                // The caller may have given up waiting; nothing to undo.
                let _ = done.send(value);
            }))
        });
        self.writes.send(job).await.map_err(|_| WriteFailed)?;
        result.await.map_err(|_| WriteFailed)
    }
}

/// Exits when the `Db` is dropped (its sender closes the channel).
fn run_writer(conn: &Mutex<Connection>, mut queued: mpsc::Receiver<Write>, name: &'static str) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let size = batch.len();
        // A panicking write must not kill the thread (and with it every later
        // write); its transaction rolls back as it unwinds.
        let committed = catch_unwind(AssertUnwindSafe(|| {
            let mut conn = lock(conn);
            commit(&mut conn, batch.drain(..))
        }));
        batch.clear();
        match committed {
            // Answer only after the lock is released, so callers can read at once.
            Ok(Ok(replies)) => replies.into_iter().for_each(|reply| reply()),
            // Dropped replies tell their callers the write failed.
            Ok(Err(e)) => {
                tracing::error!(db = name, writes = size, error = %e, "sqlite batch rolled back");
            }
            Err(_) => {
                tracing::error!(
                    db = name,
                    writes = size,
                    "sqlite write panicked; batch rolled back"
                );
            }
        }
    }
}

fn commit(
    conn: &mut Connection,
    batch: impl Iterator<Item = Write>,
) -> rusqlite::Result<Vec<Reply>> {
    // IMMEDIATE takes the write lock up front, so another connection to the
    // file cannot slip a write between a batch's reads and writes.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let replies = batch
        .map(|write| write(&tx))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(replies)
}

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
