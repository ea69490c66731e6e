//! People as store items: `USER#<email>` / `PROFILE`. Everything that knows
//! this key and the item's shape is here.

use std::fmt;
use std::sync::Arc;

use bridge::model::TenantId;
use bridge::ports::{Condition, Store};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AdminError;

const SK: &str = "PROFILE";

/// An email address as the key of a person: trimmed and lowercased, so
/// `Ann@Example.com` and `ann@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Accepts what looks like an address; the mail that follows is the
    /// real check. `#` is refused because it separates key parts.
    pub fn parse(raw: &str) -> Result<Self, AdminError> {
        let email = raw.trim().to_lowercase();
        let (local, domain) = email.split_once('@').unwrap_or(("", ""));
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && email.len() <= 254
            && email
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '#' | '<' | '>' | '"' | '\\'));
        if valid {
            Ok(Self(email))
        } else {
            Err(AdminError::Invalid(
                "enter a valid email address (name@example.com)".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a person may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Runs the service: creates tenants, invites admins, sees every tenant.
    Operator,
    /// Sets up and watches one tenant, and sees nothing of the others.
    TenantAdmin { tenant: TenantId },
}

impl Role {
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Role::Operator => None,
            Role::TenantAdmin { tenant } => Some(tenant),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Role::Operator)
    }
}

/// The stored form of `Role`: tenant ids are validated again when read,
/// since `TenantId`'s own `Deserialize` takes any string.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredRole {
    Operator,
    TenantAdmin { tenant: String },
}

/// A person's profile item. Hashes are Argon2id PHC strings; `Debug`
/// leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: Email,
    pub role: Role,
    /// `None` until an invited admin chooses a password.
    pub password_hash: Option<String>,
    /// Set by an invitation or a login with a temporary password: every
    /// page leads to the password change until it is done.
    pub must_change_password: bool,
    /// A mailed temporary password (invitation or "forgot password"); it
    /// works beside `password_hash` until `temp_expires_at`.
    pub temp_password_hash: Option<String>,
    pub temp_expires_at: Option<DateTime<Utc>>,
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// Sessions carry the epoch they were opened in; a password change
    /// bumps it, which ends every older session at once.
    pub session_epoch: u32,
    pub created_at: DateTime<Utc>,
    /// The operator who invited this person (none for a CLI-made operator).
    pub invited_by: Option<Email>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("email", &self.email)
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

impl Profile {
    pub fn new(email: Email, role: Role, now: DateTime<Utc>) -> Self {
        Self {
            email,
            role,
            password_hash: None,
            must_change_password: false,
            temp_password_hash: None,
            temp_expires_at: None,
            failed_logins: 0,
            locked_until: None,
            session_epoch: 0,
            created_at: now,
            invited_by: None,
        }
    }

    /// The temporary password hash if it has not expired.
    pub fn live_temp_hash(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.temp_password_hash, self.temp_expires_at) {
            (Some(hash), Some(until)) if now < until => Some(hash),
            _ => None,
        }
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredProfile {
    email: String,
    role: StoredRole,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    must_change_password: bool,
    #[serde(default)]
    temp_password_hash: Option<String>,
    #[serde(default)]
    temp_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    failed_logins: u32,
    #[serde(default)]
    locked_until: Option<DateTime<Utc>>,
    #[serde(default)]
    session_epoch: u32,
    created_at: DateTime<Utc>,
    #[serde(default)]
    invited_by: Option<String>,
}

impl From<&Profile> for StoredProfile {
    fn from(p: &Profile) -> Self {
        Self {
            email: p.email.0.clone(),
            role: match &p.role {
                Role::Operator => StoredRole::Operator,
                Role::TenantAdmin { tenant } => StoredRole::TenantAdmin {
                    tenant: tenant.as_str().to_owned(),
                },
            },
            password_hash: p.password_hash.clone(),
            must_change_password: p.must_change_password,
            temp_password_hash: p.temp_password_hash.clone(),
            temp_expires_at: p.temp_expires_at,
            failed_logins: p.failed_logins,
            locked_until: p.locked_until,
            session_epoch: p.session_epoch,
            created_at: p.created_at,
            invited_by: p.invited_by.as_ref().map(|e| e.0.clone()),
        }
    }
}

impl TryFrom<StoredProfile> for Profile {
    type Error = &'static str;

    fn try_from(s: StoredProfile) -> Result<Self, Self::Error> {
        let role = match s.role {
            StoredRole::Operator => Role::Operator,
            StoredRole::TenantAdmin { tenant } => Role::TenantAdmin {
                tenant: TenantId::parse(&tenant).ok_or("invalid tenant id")?,
            },
        };
        Ok(Self {
            email: Email::parse(&s.email).map_err(|_| "invalid email")?,
            role,
            password_hash: s.password_hash,
            must_change_password: s.must_change_password,
            temp_password_hash: s.temp_password_hash,
            temp_expires_at: s.temp_expires_at,
            failed_logins: s.failed_logins,
            locked_until: s.locked_until,
            session_epoch: s.session_epoch,
            created_at: s.created_at,
            invited_by: s.invited_by.and_then(|e| Email::parse(&e).ok()),
        })
    }
}

/// A profile with the store version it was read at, for `VersionIs` writes.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub profile: Profile,
    pub version: u64,
}

/// Reads and writes profile items.
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn Store>,
}

fn pk(email: &Email) -> String {
    format!("USER#{}", email.0)
}

fn body(profile: &Profile) -> Result<String, AdminError> {
    serde_json::to_string(&StoredProfile::from(profile))
        .map_err(|_| AdminError::Internal("profile serialization"))
}

impl Users {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(&self, email: &Email) -> Result<Option<Versioned>, AdminError> {
        let Some(item) = self
            .store
            .get(&pk(email), SK)
            .await
            .map_err(AdminError::store("read profile"))?
        else {
            return Ok(None);
        };
        let stored: StoredProfile = serde_json::from_str(&item.body).map_err(|_| corrupt())?;
        let profile = Profile::try_from(stored).map_err(|_| corrupt())?;
        Ok(Some(Versioned {
            profile,
            version: item.version,
        }))
    }

    /// Creates the profile; `UserExists` if the address is taken.
    pub async fn create(&self, profile: &Profile) -> Result<(), AdminError> {
        let written = self
            .store
            .put(
                &pk(&profile.email),
                SK,
                &body(profile)?,
                Condition::MustNotExist,
                None,
            )
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(bridge::error::StoreError::Conflict { .. }) => Err(AdminError::UserExists),
            Err(e) => Err(AdminError::store("create profile")(e)),
        }
    }

    /// Replaces the profile read at `version`; a concurrent change in
    /// between is a retryable `Store` error with detail "concurrent update".
    pub async fn replace(&self, profile: &Profile, version: u64) -> Result<u64, AdminError> {
        self.store
            .put(
                &pk(&profile.email),
                SK,
                &body(profile)?,
                Condition::VersionIs(version),
                None,
            )
            .await
            .map_err(AdminError::store("update profile"))
    }

    /// Removes the profile (an invitation whose mail could not be sent).
    pub async fn delete(&self, email: &Email) -> Result<(), AdminError> {
        self.store
            .delete(&pk(email), SK)
            .await
            .map_err(AdminError::store("delete profile"))
    }

    /// Reads, changes and writes back the profile, again from a fresh read
    /// if another request changed it meanwhile (two failed logins at once
    /// must both count). `change` returns what the caller needs afterwards.
    pub async fn update<T>(
        &self,
        email: &Email,
        mut change: impl FnMut(&mut Profile) -> T,
    ) -> Result<Option<(Profile, T)>, AdminError> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let Some(Versioned {
                mut profile,
                version,
            }) = self.get(email).await?
            else {
                return Ok(None);
            };
            let out = change(&mut profile);
            match self.replace(&profile, version).await {
                Ok(_) => return Ok(Some((profile, out))),
                Err(AdminError::Store {
                    detail: "concurrent update",
                    ..
                }) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }
}

fn corrupt() -> AdminError {
    AdminError::Store {
        op: "read profile",
        detail: "stored item unreadable",
        retryable: false,
    }
}
