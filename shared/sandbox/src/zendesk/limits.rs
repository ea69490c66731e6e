//! Zendesk's rate limits that the bridge can run into: the incremental
//! export's 10 requests a minute, and the Update Ticket endpoint's limits
//! (100 updates a minute per account, 30 updates per 10 minutes per ticket
//! per user). Over a limit Zendesk answers 429 with `Retry-After` in seconds.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::state::Inner;

/// At most `max` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub max: u32,
    pub window: Duration,
}

impl RateWindow {
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }
}

/// Limits of `PUT /api/v2/tickets/{id}` (Update Ticket). `None` switches a
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateLimits {
    /// Ticket updates of the whole account. Zendesk: 100 a minute (300 with
    /// the High Volume add-on); updates made in the agent UI count too.
    pub per_account: Option<RateWindow>,
    /// Updates of one ticket by one user. Zendesk: 30 per 10 minutes.
    pub per_ticket_per_user: Option<RateWindow>,
}

impl UpdateLimits {
    /// Zendesk's published limits (Professional plan, no High Volume add-on).
    pub const ZENDESK: Self = Self {
        per_account: Some(RateWindow::new(100, Duration::from_secs(60))),
        per_ticket_per_user: Some(RateWindow::new(30, Duration::from_secs(600))),
    };

    /// No update limit at all.
    pub const OFF: Self = Self {
        per_account: None,
        per_ticket_per_user: None,
    };

    /// What a sandbox starts with: Zendesk's per-ticket limit, which no
    /// ordinary sync comes near, and no account-wide limit, which depends on
    /// the plan and which load tests (the benchmark, the chaos test) exceed on
    /// purpose. Tests of the account limit switch it on with
    /// [`ZendeskSandbox::set_update_limits`](super::ZendeskSandbox::set_update_limits).
    pub const SANDBOX_DEFAULT: Self = Self {
        per_account: None,
        per_ticket_per_user: Some(RateWindow::new(30, Duration::from_secs(600))),
    };
}

impl Default for UpdateLimits {
    fn default() -> Self {
        Self::SANDBOX_DEFAULT
    }
}

/// The times of the requests made inside a window.
#[derive(Debug, Default)]
pub(super) struct Window {
    calls: VecDeque<Instant>,
}

impl Window {
    fn forget_before(&mut self, now: Instant, window: Duration) {
        while self
            .calls
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window)
        {
            self.calls.pop_front();
        }
    }

    /// How long until one more call fits under `limit`; `None` if it fits now.
    fn wait(&mut self, now: Instant, limit: RateWindow) -> Option<Duration> {
        self.forget_before(now, limit.window);
        if self.calls.len() < limit.max as usize {
            return None;
        }
        if limit.max == 0 {
            return Some(limit.window);
        }
        // The call that must leave the window before one more fits.
        let at = self.calls[self.calls.len() - limit.max as usize];
        Some(limit.window.saturating_sub(now.duration_since(at)))
    }

    fn push(&mut self, now: Instant) {
        self.calls.push_back(now);
    }
}

/// Seconds for `Retry-After`: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// The request-time bookkeeping of the limits.
#[derive(Debug, Default)]
pub(super) struct Limiter {
    pub(super) export: Window,
    account_updates: Window,
    ticket_updates: HashMap<(u64, u64), Window>,
}

impl Inner {
    /// Counts an export request against the per-minute limit; the error is
    /// the `Retry-After` in seconds.
    pub(super) fn take_export_call(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let limit = RateWindow::new(self.export_rate_limit, Duration::from_secs(60));
        if let Some(wait) = self.limiter.export.wait(now, limit) {
            return Err(retry_after_secs(wait));
        }
        self.limiter.export.push(now);
        Ok(())
    }

    /// Counts an API update of `ticket_id` by `user` against the update
    /// limits; over one of them nothing is counted and the error is the
    /// `Retry-After` in seconds.
    pub(super) fn take_update_call(&mut self, ticket_id: u64, user: u64) -> Result<(), u64> {
        let now = Instant::now();
        let limits = self.update_limits;
        let limiter = &mut self.limiter;
        let account = limits
            .per_account
            .and_then(|limit| limiter.account_updates.wait(now, limit));
        let ticket = limits.per_ticket_per_user.and_then(|limit| {
            limiter
                .ticket_updates
                .entry((ticket_id, user))
                .or_default()
                .wait(now, limit)
        });
        if let Some(wait) = account.max(ticket) {
            return Err(retry_after_secs(wait));
        }
        self.note_update(ticket_id, user, now);
        Ok(())
    }

    /// Counts an update made in the agent UI: it uses up the limits like an
    /// API update (Zendesk counts UI updates toward the endpoint limit), but a
    /// person in the UI is never refused.
    pub(super) fn count_ui_update(&mut self, ticket_id: u64, user: u64) {
        self.note_update(ticket_id, user, Instant::now());
    }

    fn note_update(&mut self, ticket_id: u64, user: u64, now: Instant) {
        let limits = self.update_limits;
        if let Some(limit) = limits.per_account {
            self.limiter
                .account_updates
                .forget_before(now, limit.window);
            self.limiter.account_updates.push(now);
        }
        if let Some(limit) = limits.per_ticket_per_user {
            let window = self
                .limiter
                .ticket_updates
                .entry((ticket_id, user))
                .or_default();
            window.forget_before(now, limit.window);
            window.push(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_names_the_wait_until_its_oldest_call_leaves() {
        let limit = RateWindow::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let mut window = Window::default();
        assert_eq!(window.wait(start, limit), None);
        window.push(start);
        window.push(start + Duration::from_secs(4));
        let wait = window.wait(start + Duration::from_secs(6), limit).unwrap();
        assert_eq!(wait, Duration::from_secs(4));
        assert_eq!(window.wait(start + Duration::from_secs(10), limit), None);
        assert_eq!(retry_after_secs(Duration::from_millis(1_300)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
