//! One check for the signed-with-a-timestamp scheme that Zendesk webhooks
//! use and inventory pushes copy: `signature` = base64(HMAC-SHA256(secret,
//! timestamp + body)), the timestamp within 5 minutes of ours either way (a
//! clock ahead of ours is as suspicious as an old request).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::error::InboundError;

/// Replay window of signed requests, both ways.
const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

type HmacSha256 = Hmac<Sha256>;

/// One sender's form of the scheme: its header names and the timestamp
/// forms it sends.
pub struct TimestampedHmac {
    pub signature_header: &'static str,
    pub timestamp_header: &'static str,
    /// `None` for a timestamp that cannot be read (answered as stale).
    pub parse_timestamp: fn(&str) -> Option<DateTime<Utc>>,
}

/// An RFC 3339 / ISO-8601 timestamp.
pub fn rfc3339(timestamp: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

impl TimestampedHmac {
    /// Checks the signature (in constant time) and then the timestamp.
    pub fn verify(
        &self,
        secret: &Secret,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), InboundError> {
        let signature = signature
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(InboundError::MissingHeader(self.signature_header))?;
        let timestamp = timestamp
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(InboundError::MissingHeader(self.timestamp_header))?;
        // With an empty key anyone can compute a valid signature.
        if secret.is_empty() {
            return Err(InboundError::BadSignature);
        }
        let provided = BASE64
            .decode(signature)
            .map_err(|_| InboundError::BadSignature)?;
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key size");
        mac.update(timestamp.as_bytes());
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&provided)
            .map_err(|_| InboundError::BadSignature)?;
        let sent_at = (self.parse_timestamp)(timestamp).ok_or(InboundError::StaleTimestamp)?;
        if (now - sent_at).abs() > MAX_SKEW {
            return Err(InboundError::StaleTimestamp);
        }
        Ok(())
    }
}
