//! What people can do with their accounts: the operations behind every page
//! and API route, over the store, the mailer and the clock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bridge::model::TenantId;
use bridge::ports::{Clock, Store};
use chrono::{DateTime, Utc};

use crate::error::{AdminError, NotFound};
use crate::mail::{Mail, Mailer};
use crate::password::{self, HashCost};
use crate::sessions::{Session, SessionToken, Sessions};
use crate::users::{Email, Profile, Role, Users};

/// Waits before a failed login is answered. Injected so that tests see the
/// delays without spending them.
#[async_trait]
pub trait Pause: Send + Sync {
    async fn pause(&self, duration: Duration);
}

/// The real wait.
#[derive(Debug, Clone, Copy, Default)]
pub struct SleepPause;

#[async_trait]
impl Pause for SleepPause {
    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The delay before answering a failed login, growing with the number of
/// consecutive failures: 250 ms, 0.5 s, 1 s, 2 s, then 4 s at most.
pub fn failure_delay(failures: u32) -> Duration {
    let doublings = failures.clamp(1, 5) - 1;
    Duration::from_millis(250 << doublings)
}

/// The console's account rules. `Default` is what production runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where people sign in, written into mails (e.g. `https://host/admin`).
    pub console_url: String,
    pub session_ttl: chrono::Duration,
    pub hash_cost: HashCost,
    /// Consecutive failures that lock an account...
    pub max_failed_logins: u32,
    /// ...for this long.
    pub lockout: chrono::Duration,
    /// Life of a "forgot password" temporary password.
    pub reset_ttl: chrono::Duration,
    /// Life of an invitation's temporary password.
    pub invitation_ttl: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            console_url: "http://127.0.0.1:8080/admin".into(),
            session_ttl: chrono::Duration::hours(8),
            hash_cost: HashCost::default(),
            max_failed_logins: 5,
            lockout: chrono::Duration::minutes(15),
            reset_ttl: chrono::Duration::minutes(30),
            invitation_ttl: chrono::Duration::days(7),
        }
    }
}

/// The signed-in person of a request.
#[derive(Clone)]
pub struct CurrentUser {
    pub email: Email,
    pub role: Role,
    pub must_change_password: bool,
    pub(crate) session: Session,
}

impl fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentUser")
            .field("email", &self.email)
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .finish_non_exhaustive()
    }
}

impl CurrentUser {
    /// The token every state-changing request of this session must carry.
    pub fn csrf_token(&self) -> &str {
        &self.session.csrf_token
    }

    pub fn session_expires_at(&self) -> DateTime<Utc> {
        self.session.expires_at
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.session.csrf_matches(presented)
    }
}

/// Tenant isolation for every tenant-scoped route: an operator sees every
/// tenant; a tenant admin sees only their own, and another tenant's
/// resource is "not found" rather than "forbidden", so that its existence
/// is not revealed.
pub fn require_tenant(user: &CurrentUser, tenant: &TenantId) -> Result<(), NotFound> {
    match &user.role {
        Role::Operator => Ok(()),
        Role::TenantAdmin { tenant: own } if own == tenant => Ok(()),
        Role::TenantAdmin { .. } => Err(NotFound),
    }
}

/// A session just opened (login, password change): the token goes into the
/// Set-Cookie header and nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub token: SessionToken,
    pub user: CurrentUser,
}

/// What an invitation created.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub email: Email,
    pub tenant: TenantId,
    pub expires_at: DateTime<Utc>,
}

/// The account operations.
pub struct Accounts {
    store: Arc<dyn Store>,
    users: Users,
    sessions: Sessions,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    pause: Arc<dyn Pause>,
    settings: Settings,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(store: Arc<dyn Store>, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: store.clone(),
            users: Users::new(store.clone()),
            sessions: Sessions::new(store),
            mailer,
            clock,
            pause: Arc::new(SleepPause),
            settings: Settings::default(),
        }
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub fn with_pause(mut self, pause: Arc<dyn Pause>) -> Self {
        self.pause = pause;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store the tenant pages read and write (the same table).
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Creates an operator with a password of their choosing (the CLI's
    /// "create the first operator"). Refuses an address already in use.
    pub async fn create_operator(&self, email: &str, password: &str) -> Result<(), AdminError> {
        let email = Email::parse(email)?;
        password::check_policy(password)?;
        let mut profile = Profile::new(email.clone(), Role::Operator, self.clock.now());
        profile.password_hash = Some(password::hash(&self.settings.hash_cost, password).await?);
        self.users.create(&profile).await?;
        tracing::info!(email = %email, "operator created");
        Ok(())
    }

    /// An operator invites a tenant's admin: the admin is mailed a temporary
    /// password and must choose their own at first login.
    pub async fn invite_admin(
        &self,
        by: &CurrentUser,
        email: &str,
        tenant: &str,
    ) -> Result<Invitation, AdminError> {
        if !by.role.is_operator() {
            return Err(AdminError::OperatorOnly);
        }
        let email = Email::parse(email)?;
        let tenant = TenantId::parse(tenant.trim()).ok_or_else(|| {
            AdminError::Invalid("a tenant id is 1-64 lowercase letters, digits, '-' or '_'".into())
        })?;
        let now = self.clock.now();
        let expires_at = now + self.settings.invitation_ttl;
        let temp = password::temporary();
        let mut profile = Profile::new(
            email.clone(),
            Role::TenantAdmin {
                tenant: tenant.clone(),
            },
            now,
        );
        profile.temp_password_hash = Some(password::hash(&self.settings.hash_cost, &temp).await?);
        profile.temp_expires_at = Some(expires_at);
        profile.must_change_password = true;
        profile.invited_by = Some(by.email.clone());
        self.users.create(&profile).await?;

        let mail = Mail {
            to: email.to_string(),
            subject: "Your psa-bridge admin account".into(),
            body: format!(
                "{by} invited you to administer the tenant \"{tenant}\" on psa-bridge.\n\n\
                 Sign in at {url}/login\n  email: {email}\n  temporary password: {temp}\n\n\
                 The temporary password works until {until} UTC; you will choose your own \
                 password when you first sign in.\n",
                by = by.email,
                url = self.settings.console_url,
                until = expires_at.format("%Y-%m-%d %H:%M"),
            ),
        };
        if let Err(e) = self.mailer.send(mail).await {
            // Without the mail nobody can sign in; removing the account lets
            // the operator simply invite again.
            tracing::warn!(email = %email, error = %e, "invitation mail failed; invitation withdrawn");
            self.users.delete(&email).await?;
            return Err(e.into());
        }
        tracing::info!(email = %email, tenant = %tenant, by = %by.email, "admin invited");
        Ok(Invitation {
            email,
            tenant,
            expires_at,
        })
    }

    /// Signs in and opens a new session (a new token every time: a token
    /// planted before login is worth nothing after it). Every failure is
    /// the same `BadLogin` after a delay that grows with the failures, and
    /// repeated failures lock the account for a while.
    pub async fn login(&self, email: &str, password: &str) -> Result<NewSession, AdminError> {
        let now = self.clock.now();
        let cost = &self.settings.hash_cost;
        let email = Email::parse(email).ok();
        let found = match &email {
            Some(email) => self.users.get(email).await?,
            None => None,
        };
        let (Some(email), Some(found)) = (email, found) else {
            // Unknown addresses cost a hash too, so timing does not tell;
            // they keep no failure count (that would store any address
            // anyone types), so their delay stays the first one.
            password::matching(cost, password, [None, None]).await;
            self.pause.pause(failure_delay(1)).await;
            return Err(AdminError::BadLogin);
        };
        let profile = &found.profile;
        let matched = password::matching(
            cost,
            password,
            [
                profile.password_hash.as_deref(),
                profile.live_temp_hash(now),
            ],
        )
        .await;

        let max = self.settings.max_failed_logins;
        if profile.is_locked(now) {
            // Checked after hashing all the same, so a locked account
            // answers as slowly as any other failure.
            tracing::info!(email = %email, "login refused: account locked");
            self.pause.pause(failure_delay(max)).await;
            return Err(AdminError::BadLogin);
        }
        if matched.is_none() {
            let lockout = self.settings.lockout;
            let updated = self
                .users
                .update(&email, |p| {
                    if p.is_locked(now) {
                        return max;
                    }
                    p.failed_logins += 1;
                    if p.failed_logins < max {
                        return p.failed_logins;
                    }
                    p.failed_logins = 0;
                    p.locked_until = Some(now + lockout);
                    max
                })
                .await?;
            let failures = updated.map_or(1, |(_, failures)| failures);
            if failures >= max {
                tracing::warn!(email = %email, "account locked after repeated failed logins");
            } else {
                tracing::info!(email = %email, failures, "login failed");
            }
            self.pause.pause(failure_delay(failures)).await;
            return Err(AdminError::BadLogin);
        }

        let used_temp = matched == Some(1);
        let (profile, ()) = self
            .users
            .update(&email, |p| {
                p.failed_logins = 0;
                p.locked_until = None;
                // Whoever holds a mailed password must choose their own.
                p.must_change_password |= used_temp;
            })
            .await?
            .ok_or(AdminError::BadLogin)?;
        let session = self.open_session(&profile, now).await?;
        tracing::info!(email = %email, temporary = used_temp, "signed in");
        Ok(session)
    }

    async fn open_session(
        &self,
        profile: &Profile,
        now: DateTime<Utc>,
    ) -> Result<NewSession, AdminError> {
        let expires_at = now + self.settings.session_ttl;
        let (token, session) = self
            .sessions
            .open(&profile.email, profile.session_epoch, now, expires_at)
            .await?;
        Ok(NewSession {
            token,
            user: CurrentUser {
                email: profile.email.clone(),
                role: profile.role.clone(),
                must_change_password: profile.must_change_password,
                session,
            },
        })
    }

    /// The person a session token belongs to, if the session is live and
    /// not ended by a password change since.
    pub async fn authenticate(
        &self,
        token: &SessionToken,
    ) -> Result<Option<CurrentUser>, AdminError> {
        let now = self.clock.now();
        let Some(session) = self.sessions.find(token, now).await? else {
            return Ok(None);
        };
        let Some(found) = self.users.get(&session.email).await? else {
            return Ok(None);
        };
        let profile = found.profile;
        if profile.session_epoch != session.epoch {
            return Ok(None);
        }
        Ok(Some(CurrentUser {
            email: profile.email,
            role: profile.role,
            must_change_password: profile.must_change_password,
            session,
        }))
    }

    /// Ends the session.
    pub async fn logout(&self, user: &CurrentUser) -> Result<(), AdminError> {
        self.sessions.delete(&user.session.key).await?;
        tracing::info!(email = %user.email, "signed out");
        Ok(())
    }

    /// Ends a session a browser still presented at login, if it had one.
    pub async fn end_session(&self, token: &SessionToken) -> Result<(), AdminError> {
        if let Some(session) = self.sessions.find(token, self.clock.now()).await? {
            self.sessions.delete(&session.key).await?;
        }
        Ok(())
    }

    /// Sets a new password. `current` is the password or a live temporary
    /// one. Ends every session of the person (other browsers included) and
    /// opens a new one for this browser.
    pub async fn change_password(
        &self,
        user: &CurrentUser,
        current: &str,
        new: &str,
    ) -> Result<NewSession, AdminError> {
        password::check_policy(new)?;
        let now = self.clock.now();
        let cost = &self.settings.hash_cost;
        let found = self
            .users
            .get(&user.email)
            .await?
            .ok_or(AdminError::Unauthenticated)?;
        let profile = &found.profile;
        let current_hashes = [
            profile.password_hash.as_deref(),
            profile.live_temp_hash(now),
        ];
        if password::matching(cost, current, current_hashes)
            .await
            .is_none()
        {
            self.pause.pause(failure_delay(1)).await;
            return Err(AdminError::WrongCurrentPassword);
        }
        if new == current {
            return Err(AdminError::Invalid(
                "choose a new password different from the current one".into(),
            ));
        }
        let hash = password::hash(cost, new).await?;
        let (profile, ()) = self
            .users
            .update(&user.email, |p| {
                p.password_hash = Some(hash.clone());
                p.temp_password_hash = None;
                p.temp_expires_at = None;
                p.must_change_password = false;
                p.failed_logins = 0;
                p.locked_until = None;
                p.session_epoch = p.session_epoch.wrapping_add(1);
            })
            .await?
            .ok_or(AdminError::Unauthenticated)?;
        self.sessions.delete(&user.session.key).await?;
        let session = self.open_session(&profile, now).await?;
        tracing::info!(email = %user.email, "password changed");
        Ok(session)
    }

    /// Mails a temporary password that works beside the current one for
    /// `reset_ttl`. The outcome is `Ok(())` whether or not the address has
    /// an account, and also when the mail or the write fails for a known
    /// one (logged), so the caller's answer cannot reveal who has one.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AdminError> {
        let cost = &self.settings.hash_cost;
        let Ok(email) = Email::parse(email) else {
            password::matching(cost, "", [None, None]).await;
            return Ok(());
        };
        // A read failure happens alike for every address, so it may show.
        if self.users.get(&email).await?.is_none() {
            password::matching(cost, "", [None, None]).await;
            tracing::info!(email = %email, "password reset asked for an unknown address");
            return Ok(());
        }
        if let Err(e) = self.send_reset(&email).await {
            tracing::warn!(email = %email, error = %e, retryable = e.is_retryable(), "password reset not sent");
        }
        Ok(())
    }

    async fn send_reset(&self, email: &Email) -> Result<(), AdminError> {
        let now = self.clock.now();
        let expires_at = now + self.settings.reset_ttl;
        let temp = password::temporary();
        let hash = password::hash(&self.settings.hash_cost, &temp).await?;
        let updated = self
            .users
            .update(email, |p| {
                p.temp_password_hash = Some(hash.clone());
                p.temp_expires_at = Some(expires_at);
            })
            .await?;
        if updated.is_none() {
            return Ok(());
        }
        let minutes = self.settings.reset_ttl.num_minutes();
        self.mailer
            .send(Mail {
                to: email.to_string(),
                subject: "Your psa-bridge temporary password".into(),
                body: format!(
                    "Someone (hopefully you) asked for a temporary password for {email}.\n\n\
                     Sign in at {url}/login\n  temporary password: {temp}\n\n\
                     It works for {minutes} minutes, beside your current password, and you \
                     will choose a new password after signing in with it. If you did not ask \
                     for it, ignore this mail: your current password keeps working.\n",
                    url = self.settings.console_url,
                ),
            })
            .await?;
        tracing::info!(email = %email, "temporary password mailed");
        Ok(())
    }
}
