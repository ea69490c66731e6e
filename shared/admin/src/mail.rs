//! The `Mailer` port and its local adapter.
//!
//! Adapters: `OutboxMailer` (local process and tests: one file per mail, and
//! a log line) here; the SES adapter for AWS belongs in `shared/aws` beside
//! the other AWS adapters and implements this same trait, so this crate
//! never links the AWS SDK.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::MailError;

/// One mail. Its body may hold a temporary password, so `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Sends mail to people (invitations, temporary passwords).
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}

/// Writes each mail to `<dir>/<UTC timestamp>-<seq>-<to>.txt` and logs that
/// it did (without the body), so a local operator and the tests can read
/// what would have been sent.
#[derive(Debug)]
pub struct OutboxMailer {
    dir: PathBuf,
    seq: AtomicU64,
}

impl OutboxMailer {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            seq: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Keeps a file name to characters every file system accepts.
fn file_safe(to: &str) -> String {
    to.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        // The sequence number orders mails sent within one timestamp tick
        // and keeps their file names apart.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let path = self
            .dir
            .join(format!("{stamp}-{seq:06}-{}.txt", file_safe(&mail.to)));
        let text = format!(
            "To: {}\nSubject: {}\n\n{}\n",
            mail.to, mail.subject, mail.body
        );
        let io_error = |e: std::io::Error| MailError {
            message: format!("outbox {}: {e}", self.dir.display()),
            retryable: false,
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io_error)?;
        tokio::fs::write(&path, text).await.map_err(io_error)?;
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            file = %path.display(),
            "mail written to the outbox"
        );
        Ok(())
    }
}
