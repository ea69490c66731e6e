//! A persistent job queue in SQLite with SQS FIFO semantics.
//!
//! Every message group has a head: its oldest message. Only heads carry a
//! `ready_at` time, so "which groups can deliver now" is one range scan of a
//! small partial index however long the backlog is. A head stays the head
//! while it is in flight or waiting out a retry delay, which is what keeps
//! one ticket's jobs strictly one at a time and in order; deleting it (or
//! dead-lettering it) promotes the next message of its group.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{duration_ms, now_ms, Db, WriteFailed};
use crate::error::QueueError;
use crate::model::SyncJob;
use crate::ports::{Delivery, Queue};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS queue_messages (
        id INTEGER PRIMARY KEY,
        grp TEXT NOT NULL,
        job TEXT NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        ready_at INTEGER,
        receipt TEXT
    );
    CREATE INDEX IF NOT EXISTS queue_messages_by_group ON queue_messages (grp, id);
    CREATE INDEX IF NOT EXISTS queue_messages_ready
        ON queue_messages (ready_at) WHERE ready_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS queue_dedup (
        dedup_id TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS queue_dedup_by_expiry ON queue_dedup (expires_at);
    CREATE TABLE IF NOT EXISTS queue_dead_letters (
        id INTEGER PRIMARY KEY,
        grp TEXT NOT NULL,
        job TEXT NOT NULL,
        receive_count INTEGER NOT NULL,
        dead_at INTEGER NOT NULL
    );
";

/// SQS FIFO drops a message whose deduplication id was sent in the last 5 minutes.
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a received message stays invisible (SQS VisibilityTimeout).
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(60);
const DEFAULT_MAX_RECEIVES: u32 = 5;
/// A waiting receiver re-checks at least this often, for messages that
/// another process sharing the file has sent (its sends cannot notify us).
const MAX_POLL_GAP: Duration = Duration::from_secs(1);
const DEDUP_PURGE_EVERY_MS: i64 = 1_000;

/// Message counts, as SQS's approximate-number attributes report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Waiting to be delivered, including those queued behind an in-flight
    /// message of their group.
    pub visible: u64,
    /// Delivered and not yet completed, or waiting out a retry delay.
    pub in_flight: u64,
    /// In the dead-letter table.
    pub dead: u64,
}

/// A message the queue gave up on after its receive limit.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: i64,
    /// The job, unless its body could not be read as one.
    pub job: Option<SyncJob>,
    pub receive_count: u32,
    /// When it was dead-lettered (Unix milliseconds).
    pub dead_at_ms: i64,
}

/// The queue of the local process. See the module docs for how FIFO groups
/// are kept. Every change is one small write in a group commit (see `Db`),
/// so concurrent ingest requests share commits.
pub struct EmbeddedQueue {
    db: Db,
    /// Wakes long-polling receivers when a message may have become deliverable.
    ready: Notify,
    visibility: Duration,
    max_receives: u32,
    next_dedup_purge: AtomicI64,
}

impl fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("visibility", &self.visibility)
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

fn unavailable(op: &'static str) -> impl Fn(rusqlite::Error) -> QueueError {
    // rusqlite's messages name the failure, never the bound values.
    move |e| QueueError::Unavailable(format!("sqlite {op}: {e}"))
}

fn not_written(e: WriteFailed) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// The receipt names the message and this one delivery of it, so a receipt
/// from an earlier delivery cannot touch a redelivered message.
fn new_receipt(id: i64) -> String {
    format!("{id}.{}", uuid::Uuid::new_v4().simple())
}

fn receipt_id(receipt: &str) -> Result<i64, QueueError> {
    receipt
        .split_once('.')
        .and_then(|(id, _)| id.parse().ok())
        .ok_or_else(|| QueueError::Invalid("not a receipt of this queue".to_owned()))
}

/// Makes the oldest message of `grp` its head, deliverable from `now`.
fn promote_next(conn: &Connection, grp: &str, now: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE queue_messages SET ready_at = ?2
             WHERE id = (SELECT MIN(id) FROM queue_messages WHERE grp = ?1)",
        )?
        .execute(params![grp, now])?;
    Ok(changed > 0)
}

/// Appends a message to its group; it is the head if the group was empty.
fn append(conn: &Connection, grp: &str, job: &str, now: i64) -> rusqlite::Result<bool> {
    let group_busy: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM queue_messages WHERE grp = ?1)")?
        .query_row([grp], |row| row.get(0))?;
    let ready_at = (!group_busy).then_some(now);
    conn.prepare_cached("INSERT INTO queue_messages (grp, job, ready_at) VALUES (?1, ?2, ?3)")?
        .execute(params![grp, job, ready_at])?;
    Ok(!group_busy)
}

/// Enqueues unless the dedup id was seen within the window. The window runs
/// from the first send, as in SQS: a duplicate neither enqueues nor extends
/// it. Returns whether the message is deliverable at once.
fn send_in(
    conn: &Connection,
    grp: &str,
    dedup_id: &str,
    job: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let fresh = conn
        .prepare_cached(
            "INSERT INTO queue_dedup (dedup_id, expires_at) VALUES (?1, ?2)
             ON CONFLICT (dedup_id) DO UPDATE SET expires_at = excluded.expires_at
             WHERE queue_dedup.expires_at <= ?3",
        )?
        .execute(params![dedup_id, now + duration_ms(DEDUP_WINDOW), now])?
        > 0;
    if !fresh {
        tracing::debug!(dedup_id, "duplicate job dropped");
        return Ok(false);
    }
    append(conn, grp, job, now)
}

/// Moves a head over the receive limit to the dead letters.
fn bury(conn: &Connection, id: i64, grp: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO queue_dead_letters (grp, job, receive_count, dead_at)
         SELECT grp, job, receive_count, ?2 FROM queue_messages WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    conn.execute("DELETE FROM queue_messages WHERE id = ?1", [id])?;
    promote_next(conn, grp, now).map(drop)
}

/// Delivers up to `max` group heads that are due, dead-lettering those over
/// the receive limit. Also returns when the next head falls due.
fn receive_in(
    conn: &Connection,
    max: usize,
    visibility: Duration,
    max_receives: u32,
    now: i64,
) -> rusqlite::Result<(Vec<Delivery>, Option<i64>)> {
    let mut deliveries = Vec::new();
    loop {
        let room = i64::try_from(max - deliveries.len()).unwrap_or(i64::MAX);
        let due: Vec<(i64, String, String, u32)> = conn
            .prepare_cached(
                "SELECT id, grp, job, receive_count FROM queue_messages
                 WHERE ready_at <= ?1 ORDER BY ready_at, id LIMIT ?2",
            )?
            .query_map(params![now, room], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut promoted = false;
        for (id, grp, body, receive_count) in due {
            match serde_json::from_str::<SyncJob>(&body) {
                Ok(job) if receive_count < max_receives => {
                    let receipt = new_receipt(id);
                    conn.prepare_cached(
                        "UPDATE queue_messages
                         SET receive_count = receive_count + 1, ready_at = ?2, receipt = ?3
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        now + duration_ms(visibility),
                        receipt
                    ])?;
                    deliveries.push(Delivery {
                        receipt,
                        job,
                        receive_count: receive_count + 1,
                    });
                }
                Ok(job) => {
                    tracing::warn!(
                        tenant = %job.tenant, ticket = %job.subject, receive_count,
                        "job reached the receive limit; moved to the dead letters"
                    );
                    bury(conn, id, &grp, now)?;
                    promoted = true;
                }
                Err(e) => {
                    // Only a hand-edited file gets here. Jobs are hints and the
                    // sweep finds the change again, so dropping the message
                    // beats blocking its group forever.
                    tracing::error!(message = id, error = %e, "unreadable job dropped");
                    conn.execute("DELETE FROM queue_messages WHERE id = ?1", [id])?;
                    promote_next(conn, &grp, now)?;
                    promoted = true;
                }
            }
        }
        // A removed head may have promoted a message that is due now.
        if !promoted || deliveries.len() >= max {
            break;
        }
    }
    let next_due = conn.query_row(
        "SELECT MIN(ready_at) FROM queue_messages WHERE ready_at IS NOT NULL",
        [],
        |row| row.get(0),
    )?;
    Ok((deliveries, next_due))
}

impl EmbeddedQueue {
    /// Opens or creates the queue's tables in a database file; the store's
    /// file works too (separate tables, separate connection).
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        Self::with_db(Db::open(Some(path), SCHEMA, "queue"))
    }

    /// A private queue that lives as long as this value (tests, demos).
    pub fn in_memory() -> Result<Self, QueueError> {
        Self::with_db(Db::open(None, SCHEMA, "queue"))
    }

    /// How long a received message stays invisible before it is redelivered
    /// (SQS VisibilityTimeout; default 60 s).
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// Receives after which a message goes to the dead letters instead of
    /// being delivered again (SQS redrive policy maxReceiveCount; default 5).
    pub fn with_max_receive_count(mut self, count: u32) -> Self {
        self.max_receives = count.max(1);
        self
    }

    fn with_db(db: Result<Db, String>) -> Result<Self, QueueError> {
        Ok(Self {
            db: db.map_err(QueueError::Unavailable)?,
            ready: Notify::new(),
            visibility: DEFAULT_VISIBILITY,
            max_receives: DEFAULT_MAX_RECEIVES,
            next_dedup_purge: AtomicI64::new(0),
        })
    }

    /// Moves every dead letter back to the end of its group with a fresh
    /// receive count (the DLQ replay, once the cause is fixed). Returns how
    /// many were moved.
    pub fn redrive_dead_letters(&self) -> Result<usize, QueueError> {
        let now = now_ms();
        let moved = self
            .db
            .write_now(|conn| {
                let dead: Vec<(String, String)> = conn
                    .prepare("SELECT grp, job FROM queue_dead_letters ORDER BY id")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (grp, job) in &dead {
                    append(conn, grp, job, now)?;
                }
                conn.execute("DELETE FROM queue_dead_letters", [])?;
                Ok(dead.len())
            })
            .map_err(unavailable("redrive"))?;
        if moved > 0 {
            tracing::info!(moved, "dead letters redriven");
            self.ready.notify_waiters();
        }
        Ok(moved)
    }

    /// The dead letters, oldest first, for an admin to read and replay one
    /// by one. A body that is not a job (written by another version) is
    /// listed with `job: None` rather than hidden.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let rows: Vec<(i64, String, u32, i64)> =
            self.db
                .read(|conn| {
                    conn.prepare(
                    "SELECT id, job, receive_count, dead_at FROM queue_dead_letters ORDER BY id",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect()
                })
                .map_err(unavailable("dead letters"))?;
        Ok(rows
            .into_iter()
            .map(|(id, body, receive_count, dead_at_ms)| DeadLetter {
                id,
                job: serde_json::from_str(&body).ok(),
                receive_count,
                dead_at_ms,
            })
            .collect())
    }

    /// Moves one dead letter back to the end of its group with a fresh
    /// receive count; false when there is no such dead letter (already
    /// replayed).
    pub fn redrive_dead_letter(&self, id: i64) -> Result<bool, QueueError> {
        let now = now_ms();
        let moved = self
            .db
            .write_now(|conn| {
                let dead: Option<(String, String)> = conn
                    .query_row(
                        "SELECT grp, job FROM queue_dead_letters WHERE id = ?1",
                        [id],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                let Some((grp, job)) = dead else {
                    return Ok(false);
                };
                append(conn, &grp, &job, now)?;
                conn.execute("DELETE FROM queue_dead_letters WHERE id = ?1", [id])?;
                Ok(true)
            })
            .map_err(unavailable("redrive"))?;
        if moved {
            tracing::info!(dead_letter = id, "dead letter redriven");
            self.ready.notify_waiters();
        }
        Ok(moved)
    }

    pub fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = now_ms();
        self.db
            .read(|conn| {
                conn.query_row(
                    "SELECT
                        (SELECT COUNT(*) FROM queue_messages),
                        (SELECT COUNT(*) FROM queue_messages
                            WHERE receipt IS NOT NULL AND ready_at > ?1),
                        (SELECT COUNT(*) FROM queue_dead_letters)",
                    [now],
                    |row| {
                        let total: u64 = row.get(0)?;
                        let in_flight: u64 = row.get(1)?;
                        Ok(QueueDepth {
                            visible: total - in_flight,
                            in_flight,
                            dead: row.get(2)?,
                        })
                    },
                )
            })
            .map_err(unavailable("depth"))
    }

    /// Whether this write should also forget expired dedup ids.
    fn dedup_purge_due(&self, now: i64) -> bool {
        let due = self.next_dedup_purge.load(Ordering::Relaxed);
        now >= due
            && self
                .next_dedup_purge
                .compare_exchange(
                    due,
                    now + DEDUP_PURGE_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send(&self, job: &SyncJob) -> Result<(), QueueError> {
        let body = serde_json::to_string(job)
            .map_err(|e| QueueError::Invalid(format!("job cannot be encoded: {e}")))?;
        let (grp, dedup_id) = (job.message_group(), job.dedup_id());
        let now = now_ms();
        let purge = self.dedup_purge_due(now);
        let head = self
            .db
            .write(move |conn| {
                if purge {
                    conn.prepare_cached("DELETE FROM queue_dedup WHERE expires_at <= ?1")?
                        .execute([now])?;
                }
                send_in(conn, &grp, &dedup_id, &body, now)
            })
            .await
            .map_err(not_written)?;
        if head {
            self.ready.notify_waiters();
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        // A caller may pass Duration::MAX for "wait as long as it takes".
        let deadline = started
            .checked_add(wait)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        let (visibility, max_receives) = (self.visibility, self.max_receives);
        loop {
            // Registered before looking, so a send between the look and the
            // wait still wakes us.
            let woken = self.ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (deliveries, next_due) = self
                .db
                .write(move |conn| receive_in(conn, max, visibility, max_receives, now_ms()))
                .await
                .map_err(not_written)?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let mut until = deadline.min(now + MAX_POLL_GAP);
            if let Some(due) = next_due {
                let in_ms = u64::try_from(due - now_ms()).unwrap_or(0);
                until = until.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn complete(&self, receipt: &str) -> Result<(), QueueError> {
        let id = receipt_id(receipt)?;
        let owned = receipt.to_owned();
        let outcome = self
            .db
            .write(move |conn| {
                let grp: Option<String> = conn
                    .prepare_cached(
                        "DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2 RETURNING grp",
                    )?
                    .query_row(params![id, owned], |row| row.get(0))
                    .optional()?;
                grp.map(|grp| promote_next(conn, &grp, now_ms()))
                    .transpose()
            })
            .await
            .map_err(not_written)?;
        match outcome {
            // As in SQS: a receipt from an earlier delivery deletes nothing.
            None => tracing::warn!(
                receipt,
                "complete with a stale receipt ignored; the job was redelivered"
            ),
            Some(true) => self.ready.notify_waiters(),
            Some(false) => {}
        }
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let id = receipt_id(receipt)?;
        let owned = receipt.to_owned();
        let due = now_ms().saturating_add(duration_ms(delay));
        let current = self
            .db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE queue_messages SET ready_at = ?3 WHERE id = ?1 AND receipt = ?2",
                )?
                .execute(params![id, owned, due])
            })
            .await
            .map_err(not_written)?
            > 0;
        if current {
            // A waiting receiver recomputes when the next message falls due.
            self.ready.notify_waiters();
        } else {
            tracing::warn!(
                receipt,
                "retry with a stale receipt ignored; the job was redelivered"
            );
        }
        Ok(())
    }
}
