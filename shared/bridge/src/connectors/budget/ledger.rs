//! A tenant's Autotask budget kept in the store, so that every process (each
//! Lambda instance of the worker, the sweep, a local run beside a
//! `psa-bridge sweep`) draws on one budget instead of one each.
//!
//! Rate: one token bucket per tenant (`TENANT#t` / [`RATE_SK`]). A process
//! leases tokens from it in small blocks under optimistic locking and spends
//! them from memory, so the store sees one read and one write per block, not
//! per request. A leased token that is never spent is lost, never spent twice:
//! the requests of all processes together stay under the rate.
//!
//! Concurrency: one item per slot (`BUDGET#AUTOTASK#SLOT#<n>`, n below the
//! cap). A call holds a slot for as long as it runs: taken with one versioned
//! write, given back with another. A slot whose holder died (a killed Lambda
//! instance, an aborted task) is free again when its lease runs out, and the
//! lease is longer than any call can take. Slot items never expire, so their
//! versions only grow: a late give-back can never free a slot that somebody
//! else has taken since.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::StoreError;
use crate::model::TenantId;
use crate::ports::{Condition, Store};
use crate::repo::tenant_pk;

/// Sort key of a tenant's shared Autotask token bucket.
pub const RATE_SK: &str = "BUDGET#AUTOTASK#RATE";
/// Sort key prefix of a tenant's shared Autotask concurrency slots.
pub const SLOT_SK_PREFIX: &str = "BUDGET#AUTOTASK#SLOT#";

/// Optimistic-lock attempts on the bucket before a lease gives up as busy.
const LEASE_ATTEMPTS: usize = 5;

#[derive(Debug, Serialize, Deserialize)]
struct RateState {
    /// Unspent credit, in microseconds of the sustained rate.
    credit_us: u64,
    /// When `credit_us` was last brought up to date (Unix microseconds).
    updated_at_us: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SlotState {
    /// Until when the slot is held (Unix microseconds); in the past: free.
    held_until_us: i64,
    /// Random id of the taking attempt (0: free), so that an attempt
    /// cancelled during its write can tell whether the write landed.
    #[serde(default)]
    holder: u64,
}

impl SlotState {
    fn free() -> String {
        serde_json::to_string(&SlotState {
            held_until_us: 0,
            holder: 0,
        })
        .expect("plain struct serializes")
    }
}

/// Armed while a slot-taking write is in flight. Dropped armed, the attempt
/// was cancelled (an aborted job) and cannot know whether its write landed:
/// a background task looks, and gives the slot back if it holds it, instead
/// of leaving it taken until the lease runs out.
struct TakeInFlight {
    ledger: Arc<SharedLedger>,
    sk: String,
    holder: u64,
    armed: bool,
}

impl Drop for TakeInFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (ledger, sk, holder) = (
                self.ledger.clone(),
                std::mem::take(&mut self.sk),
                self.holder,
            );
            runtime.spawn(async move { ledger.release_if_held_by(sk, holder).await });
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
    sk: String,
    version: u64,
}

/// One tenant's budget items in the store.
pub struct SharedLedger {
    store: Arc<dyn Store>,
    tenant: TenantId,
    pk: String,
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
            pk: tenant_pk(&tenant),
            tenant,
            slots: slots.max(1),
            slot_lease,
        }
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
            let (mut state, condition) = match self.store.get(&self.pk, RATE_SK).await? {
                None => (
                    RateState {
                        credit_us: capacity_us,
                        updated_at_us: now_us,
                    },
                    Condition::MustNotExist,
                ),
                Some(item) => {
                    let state = serde_json::from_str(&item.body).unwrap_or_else(|err| {
                        // Rewritten below; a broken item must not stop all calls.
                        warn!(tenant = %self.tenant, %err, "shared Autotask bucket unreadable; starting it over full");
                        RateState {
                            credit_us: capacity_us,
                            updated_at_us: now_us,
                        }
                    });
                    (state, Condition::VersionIs(item.version))
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
            let body = serde_json::to_string(&state).expect("plain struct serializes");
            match self
                .store
                .put(&self.pk, RATE_SK, &body, condition, None)
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
        let held = SlotState {
            held_until_us: now_us.saturating_add(self.slot_lease.as_micros() as i64),
            holder: rand::random::<u64>() | 1,
        };
        let body = serde_json::to_string(&held).expect("plain struct serializes");
        let start = rand::random::<usize>() % self.slots;
        for offset in 0..self.slots {
            let sk = format!("{SLOT_SK_PREFIX}{}", (start + offset) % self.slots);
            let condition = match self.store.get(&self.pk, &sk).await? {
                None => Condition::MustNotExist,
                Some(item) => {
                    let held_until = serde_json::from_str::<SlotState>(&item.body)
                        .map(|slot| slot.held_until_us)
                        // An unreadable slot counts as free and is rewritten.
                        .unwrap_or(i64::MIN);
                    if held_until > now_us {
                        continue;
                    }
                    Condition::VersionIs(item.version)
                }
            };
            let mut in_flight = TakeInFlight {
                ledger: self.clone(),
                sk: sk.clone(),
                holder: held.holder,
                armed: true,
            };
            let written = self.store.put(&self.pk, &sk, &body, condition, None).await;
            in_flight.armed = false;
            match written {
                Ok(version) => return Ok(Some(SlotLease { sk, version })),
                // Another process took it between our read and write.
                Err(StoreError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// Gives the slot back if the taking attempt `holder` holds it (its write
    /// landed though the attempt was cancelled).
    async fn release_if_held_by(&self, sk: String, holder: u64) {
        let Ok(Some(item)) = self.store.get(&self.pk, &sk).await else {
            return;
        };
        let held =
            serde_json::from_str::<SlotState>(&item.body).is_ok_and(|slot| slot.holder == holder);
        if held {
            let lease = SlotLease {
                sk,
                version: item.version,
            };
            self.release_slot(&lease).await;
        }
    }

    /// Gives a slot back. Never fails the call that held it: if the write
    /// does not happen, the lease runs out by itself.
    pub async fn release_slot(&self, lease: &SlotLease) {
        let free = SlotState::free();
        match self
            .store
            .put(
                &self.pk,
                &lease.sk,
                &free,
                Condition::VersionIs(lease.version),
                None,
            )
            .await
        {
            Ok(_) => {}
            // Our lease ran out and somebody else holds the slot now.
            Err(StoreError::Conflict { .. }) => {
                debug!(tenant = %self.tenant, slot = %lease.sk, "slot already re-leased; nothing to give back")
            }
            Err(err) => warn!(
                tenant = %self.tenant,
                slot = %lease.sk,
                lease_secs = self.slot_lease.as_secs(),
                %err,
                "could not give an Autotask concurrency slot back; it frees itself when its lease runs out"
            ),
        }
    }
}
