//! Sessions as store items: `SESSION#<sha256 hex of the token>` / `SESSION`,
//! with a TTL. The token itself lives only in the browser's cookie, so a
//! leaked table holds nothing that signs anyone in.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bridge::ports::{Condition, Store};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AdminError;
use crate::users::Email;

const SK: &str = "SESSION";

/// 32 random bytes, base64url. Neither `Debug` nor `Display` shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        Self(random_b64url())
    }

    /// Takes a token from a cookie; anything that cannot be one is refused
    /// before it reaches the store.
    pub fn from_cookie(raw: &str) -> Option<Self> {
        let valid = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(raw.to_owned()))
    }

    /// The token for the one Set-Cookie header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The store key of the session: the token's SHA-256 (a fast hash is
    /// enough, the token has 256 bits of entropy).
    fn key(&self) -> SessionKey {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        SessionKey(format!("SESSION#{hex}"))
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// The partition key of a stored session. Kept out of logs and errors too.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

fn random_b64url() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A stored session, as read back.
#[derive(Clone)]
pub struct Session {
    pub key: SessionKey,
    pub email: Email,
    pub csrf_token: String,
    pub epoch: u32,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Constant-time comparison with what a request presented.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf_token.as_bytes().ct_eq(presented.as_bytes()))
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    email: String,
    csrf_token: String,
    #[serde(default)]
    epoch: u32,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Reads and writes session items.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Opens a session with a new token and CSRF token.
    pub async fn open(
        &self,
        email: &Email,
        epoch: u32,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(SessionToken, Session), AdminError> {
        let token = SessionToken::generate();
        let session = Session {
            key: token.key(),
            email: email.clone(),
            csrf_token: random_b64url(),
            epoch,
            expires_at,
        };
        let body = serde_json::to_string(&StoredSession {
            email: email.as_str().to_owned(),
            csrf_token: session.csrf_token.clone(),
            epoch,
            created_at: now,
            expires_at,
        })
        .map_err(|_| AdminError::Internal("session serialization"))?;
        // MustNotExist: a 256-bit collision is not expected, but a write
        // must never take over someone else's session.
        self.store
            .put(
                &session.key.0,
                SK,
                &body,
                Condition::MustNotExist,
                Some(expires_at.timestamp()),
            )
            .await
            .map_err(AdminError::store("open session"))?;
        Ok((token, session))
    }

    /// The live session of a token. The store's TTL deletes lazily (hours
    /// late in DynamoDB) and runs on the wall clock, so expiry is checked
    /// here against the injected clock.
    pub async fn find(
        &self,
        token: &SessionToken,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, AdminError> {
        let key = token.key();
        let Some(item) = self
            .store
            .get(&key.0, SK)
            .await
            .map_err(AdminError::store("read session"))?
        else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_str::<StoredSession>(&item.body) else {
            tracing::warn!("unreadable session item ignored");
            return Ok(None);
        };
        let Ok(email) = Email::parse(&stored.email) else {
            return Ok(None);
        };
        if now >= stored.expires_at {
            return Ok(None);
        }
        Ok(Some(Session {
            key,
            email,
            csrf_token: stored.csrf_token,
            epoch: stored.epoch,
            expires_at: stored.expires_at,
        }))
    }

    pub async fn delete(&self, key: &SessionKey) -> Result<(), AdminError> {
        self.store
            .delete(&key.0, SK)
            .await
            .map_err(AdminError::store("delete session"))
    }
}
