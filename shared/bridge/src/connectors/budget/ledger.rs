//! A tenant's Autotask budget kept in the store, so that every process (each
//! Lambda instance of the worker, the sweep, a local run beside a
//! `psa-bridge sweep`) draws on one budget instead of one each.
//!
//! The items' keys and shapes live in [`crate::repo`] ([`AutotaskRate`],
//! [`AutotaskSlot`]); this module holds what is done with them.
//!
//! Rate: one token bucket per tenant (`TENANT#t` / `BUDGET#AUTOTASK#RATE`). A process
//! leases tokens from it in small blocks under optimistic locking and spends
//! them from memory, so the store sees one read and one write per block, not
//! per request. A leased token that is never spent is lost, never spent twice:
//! the requests of all processes together stay under the rate.
//!
//! Concurrency: one item per slot (`BUDGET#AUTOTASK#SLOT#<n>`, n below the
//! cap). A call holds a slot for as long as it runs: taken with one versioned
//! write, given back with another; between calls the process may keep it for
//! a short idle hold (see `HeldSlots`), so one take and one give-back serve a
//! burst of calls. A slot whose holder died (a killed Lambda
//! instance, an aborted task) is free again when its lease runs out, and the
//! lease is longer than any call can take. Slot items never expire, so their
//! versions only grow: a late give-back can never free a slot that somebody
//! else has taken since.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::error::StoreError;
use crate::model::TenantId;
use crate::ports::{Condition, Store};
use crate::repo::{autotask_slot_sk, AutotaskRate, AutotaskSlot, Repo};

/// Optimistic-lock attempts on the bucket before a lease gives up as busy.
const LEASE_ATTEMPTS: usize = 5;

/// Armed while a slot-taking write is in flight. Dropped armed, the attempt
/// was cancelled (an aborted job) and cannot know whether its write landed:
/// a background task looks, and gives the slot back if it holds it, instead
/// of leaving it taken until the lease runs out.
struct TakeInFlight {
    ledger: Arc<SharedLedger>,
    slot: usize,
    holder: u64,
    armed: bool,
}

impl Drop for TakeInFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (ledger, slot, holder) = (self.ledger.clone(), self.slot, self.holder);
            runtime.spawn(async move { ledger.release_if_held_by(slot, holder).await });
        }
    }
}

/// The outcome of asking the shared bucket for tokens.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenLease {
    /// This many tokens now belong to the caller (at least one).
    Granted(u32),
    /// The bucket is empty; a token accrues after this long.
    Empty { retry_after: Duration },
    /// Other processes kept winning the race for the bucket.
    Contended,
}

/// A concurrency slot held by this process; give it back with
/// [`SharedLedger::release_slot`].
#[derive(Debug)]
pub struct SlotLease {
    slot: usize,
    version: u64,
    /// Until when the store says we hold it (Unix microseconds).
    held_until_us: i64,
    holder: u64,
}

impl SlotLease {
    /// How much of the lease is left at `now`.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        let left = self.held_until_us.saturating_sub(now.timestamp_micros());
        Duration::from_micros(left.max(0) as u64)
    }
}

/// One tenant's budget items in the store.
pub struct SharedLedger {
    store: Arc<dyn Store>,
    tenant: TenantId,
    slots: usize,
    slot_lease: Duration,
}

impl SharedLedger {
    pub fn new(
        store: Arc<dyn Store>,
        tenant: TenantId,
        slots: usize,
        slot_lease: Duration,
    ) -> Self {
        Self {
            store,
            tenant,
            slots: slots.max(1),
            slot_lease,
        }
    }

    fn repo(&self) -> Repo<'_> {
        Repo::new(self.store.as_ref())
    }

    /// Takes up to `want` tokens from the shared bucket, refilled at one token
    /// per `interval` up to `capacity` of credit. A bucket never written
    /// before starts full.
    pub async fn lease_tokens(
        &self,
        now: DateTime<Utc>,
        want: u32,
        interval: Duration,
        capacity: Duration,
    ) -> Result<TokenLease, StoreError> {
        let now_us = now.timestamp_micros();
        let interval_us = (interval.as_micros() as u64).max(1);
        let capacity_us = capacity.as_micros() as u64;
        for _ in 0..LEASE_ATTEMPTS {
            let full = AutotaskRate {
                credit_us: capacity_us,
                updated_at_us: now_us,
            };
            let (mut state, condition) = match self.repo().autotask_rate(&self.tenant).await? {
                None => (full, Condition::MustNotExist),
                Some(item) => {
                    let condition = item.condition();
                    let state = item.value.unwrap_or_else(|err| {
                        // Rewritten below; a broken item must not stop all calls.
                        warn!(tenant = %self.tenant, %err, "shared Autotask bucket unreadable; starting it over full");
                        full
                    });
                    (state, condition)
                }
            };
            // A clock that steps back (another process's, or ours) adds no credit.
            if now_us > state.updated_at_us {
                let elapsed = (now_us - state.updated_at_us) as u64;
                state.credit_us = state.credit_us.saturating_add(elapsed).min(capacity_us);
                state.updated_at_us = now_us;
            }
            let available = state.credit_us / interval_us;
            if available == 0 {
                return Ok(TokenLease::Empty {
                    retry_after: Duration::from_micros(interval_us - state.credit_us),
                });
            }
            let granted = available.min(u64::from(want.max(1))) as u32;
            state.credit_us -= u64::from(granted) * interval_us;
            match self
                .repo()
                .put_autotask_rate(&self.tenant, &state, condition)
                .await
            {
                Ok(_) => return Ok(TokenLease::Granted(granted)),
                Err(StoreError::Conflict { .. }) => {
                    debug!(tenant = %self.tenant, "lost the race for the shared Autotask bucket; rereading");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(TokenLease::Contended)
    }

    /// Takes a free concurrency slot until `now + slot_lease`, or `None` when
    /// every slot is held. Slots are tried from a random one on, so processes
    /// rarely race for the same item.
    pub async fn take_slot(
        self: &Arc<Self>,
        now: DateTime<Utc>,
    ) -> Result<Option<SlotLease>, StoreError> {
        let now_us = now.timestamp_micros();
        let held = AutotaskSlot {
            held_until_us: now_us.saturating_add(self.slot_lease.as_micros() as i64),
            holder: rand::random::<u64>() | 1,
        };
        let start = rand::random::<usize>() % self.slots;
        for offset in 0..self.slots {
            let slot = (start + offset) % self.slots;
            let condition = match self.repo().autotask_slot(&self.tenant, slot).await? {
                None => Condition::MustNotExist,
                Some(item) => {
                    let held_until = item
                        .value
                        .as_ref()
                        .map(|slot| slot.held_until_us)
                        // An unreadable slot counts as free and is rewritten.
                        .unwrap_or(i64::MIN);
                    if held_until > now_us {
                        continue;
                    }
                    item.condition()
                }
            };
            let mut in_flight = TakeInFlight {
                ledger: self.clone(),
                slot,
                holder: held.holder,
                armed: true,
            };
            let written = self
                .repo()
                .put_autotask_slot(&self.tenant, slot, &held, condition)
                .await;
            in_flight.armed = false;
            match written {
                Ok(version) => {
                    return Ok(Some(SlotLease {
                        slot,
                        version,
                        held_until_us: held.held_until_us,
                        holder: held.holder,
                    }))
                }
                // Another process took it between our read and write.
                Err(StoreError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// Gives the slot back if the taking attempt `holder` holds it (its write
    /// landed though the attempt was cancelled).
    async fn release_if_held_by(&self, slot: usize, holder: u64) {
        let Ok(Some(item)) = self.repo().autotask_slot(&self.tenant, slot).await else {
            return;
        };
        let held = item.value.is_ok_and(|slot| slot.holder == holder);
        if held {
            let lease = SlotLease {
                slot,
                version: item.version,
                held_until_us: 0,
                holder,
            };
            self.release_slot(&lease).await;
        }
    }

    /// Extends a slot this process kept between calls to a full lease from
    /// `now`, with one versioned write. `None`: the lease ran out and somebody
    /// else took the slot meanwhile.
    pub async fn renew_slot(
        &self,
        lease: SlotLease,
        now: DateTime<Utc>,
    ) -> Result<Option<SlotLease>, StoreError> {
        let held = AutotaskSlot {
            held_until_us: now
                .timestamp_micros()
                .saturating_add(self.slot_lease.as_micros() as i64),
            holder: lease.holder,
        };
        match self
            .repo()
            .put_autotask_slot(
                &self.tenant,
                lease.slot,
                &held,
                Condition::VersionIs(lease.version),
            )
            .await
        {
            Ok(version) => Ok(Some(SlotLease {
                version,
                held_until_us: held.held_until_us,
                ..lease
            })),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Gives a slot back. Never fails the call that held it: if the write
    /// does not happen, the lease runs out by itself.
    pub async fn release_slot(&self, lease: &SlotLease) {
        match self
            .repo()
            .put_autotask_slot(
                &self.tenant,
                lease.slot,
                &AutotaskSlot::FREE,
                Condition::VersionIs(lease.version),
            )
            .await
        {
            Ok(_) => {}
            // Our lease ran out and somebody else holds the slot now.
            Err(StoreError::Conflict { .. }) => {
                debug!(tenant = %self.tenant, slot = %autotask_slot_sk(lease.slot), "slot already re-leased; nothing to give back")
            }
            Err(err) => warn!(
                tenant = %self.tenant,
                slot = %autotask_slot_sk(lease.slot),
                lease_secs = self.slot_lease.as_secs(),
                %err,
                "could not give an Autotask concurrency slot back; it frees itself when its lease runs out"
            ),
        }
    }
}
