//! One run's hold on a ticket pair: the lease, the claims and the fencing
//! token, all in the pair's link item.
//!
//! Why in the link and not in an item of their own: the link's version is
//! then the fencing token for free. Every claim and every save of a run is a
//! conditional write naming the version that run last read or wrote, so a run
//! whose lease ran out while it was stalled, and whose pair another run has
//! since taken (and so written), fails its very next claim, before it can
//! write to either system again. A separate lease item could not fence the
//! link without a transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info};

use crate::error::{StoreError, SyncError};
use crate::ports::Condition;
use crate::repo::{ClaimedWrite, PairLease, Repo, TicketLink};
use crate::step::Step;
use crate::timing::{MIN_LEASE_FOR_WRITE, PAIR_LEASE};

use super::{StepFailure, SyncContext};

/// How long a run's hold lasts, and how much of it a write needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub length: Duration,
    pub min_left_for_write: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            length: PAIR_LEASE,
            min_left_for_write: MIN_LEASE_FOR_WRITE,
        }
    }
}

/// Whether a write may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MayWrite {
    Yes,
    /// The run's write budget is spent: save and re-queue the rest.
    OutOfTime,
}

pub(super) struct Fence<'c, 'a> {
    cx: &'c SyncContext<'a>,
    holder: String,
    /// The link version this run last read or wrote; `None` while no item exists.
    version: Option<u64>,
    /// Until when this run holds the pair, once it has claimed anything.
    lease_until: Option<DateTime<Utc>>,
}

impl<'c, 'a> Fence<'c, 'a> {
    pub(super) fn new(cx: &'c SyncContext<'a>) -> Self {
        Self {
            cx,
            holder: uuid::Uuid::new_v4().simple().to_string(),
            version: None,
            lease_until: None,
        }
    }

    /// The version the link was read at: the run's next write must find it.
    pub(super) fn read_at(&mut self, version: Option<u64>) {
        self.version = version;
    }

    pub(super) fn holds_lease(&self) -> bool {
        self.lease_until.is_some()
    }

    fn lease_length(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.cx.lease.length).unwrap_or(chrono::Duration::MAX)
    }

    /// Fails with `PairBusy` when another run holds the pair.
    pub(super) fn check_not_held(&self, link: &TicketLink) -> Result<(), StepFailure> {
        let now = self.cx.clock.now();
        match link.live_lease_of_other(&self.holder, now, self.lease_length()) {
            Some(until) => {
                let free_in = (until - now).to_std().unwrap_or_default();
                debug!(?free_in, "another run holds the ticket pair");
                Err(StepFailure {
                    step: Step::WaitForOtherRun,
                    error: SyncError::PairBusy { free_in },
                })
            }
            None => Ok(()),
        }
    }

    /// Announces `writes` (and records whatever the link learnt since the
    /// last save), taking or renewing the lease: a conditional write that
    /// fails if any other run has written the link since this run read it.
    pub(super) async fn claim(
        &mut self,
        link: &mut TicketLink,
        writes: impl IntoIterator<Item = ClaimedWrite>,
    ) -> Result<(), StepFailure> {
        for write in writes {
            if !link.claims.contains(&write) {
                link.claims.push(write);
            }
        }
        let until = self.cx.clock.now() + self.lease_length();
        link.lease = Some(PairLease {
            holder: self.holder.clone(),
            until,
        });
        self.put(link, Step::ClaimWrite).await?;
        self.lease_until = Some(until);
        Ok(())
    }

    /// Checked before every write: the run's budget, and enough lease left
    /// for the write to end before anyone else may take the pair (renewed
    /// here when short, which fails if the run was overtaken).
    pub(super) async fn may_write(
        &mut self,
        link: &mut TicketLink,
    ) -> Result<MayWrite, StepFailure> {
        let now = self.cx.clock.now();
        if now >= self.cx.write_deadline {
            info!("write budget spent; saving progress, the rest is re-queued");
            return Ok(MayWrite::OutOfTime);
        }
        let needed = chrono::Duration::from_std(self.cx.lease.min_left_for_write)
            .unwrap_or(chrono::Duration::MAX);
        let enough = self.lease_until.is_some_and(|until| until - now >= needed);
        if !enough {
            debug!("renewing the pair lease before the next write");
            self.claim(link, []).await?;
        }
        Ok(MayWrite::Yes)
    }

    /// Saves the link and gives up the lease. Claims still in the link are
    /// writes whose outcome is unknown; the next run resolves them.
    pub(super) async fn release(&mut self, link: &mut TicketLink) -> Result<(), StepFailure> {
        link.lease = None;
        self.put(link, Step::SaveLink).await?;
        self.lease_until = None;
        Ok(())
    }

    async fn put(&mut self, link: &TicketLink, step: Step) -> Result<(), StepFailure> {
        let condition = match self.version {
            Some(version) => Condition::VersionIs(version),
            None => Condition::MustNotExist,
        };
        let written = Repo::new(self.cx.store)
            .put_desk_link(&self.cx.tenant.id, link, condition)
            .await;
        match written {
            Ok(version) => {
                self.version = Some(version);
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => {
                info!(%step, "another run wrote this ticket pair; stopping before the next write");
                self.lease_until = None;
                Err(StepFailure {
                    step,
                    error: SyncError::Overtaken,
                })
            }
            Err(error) => Err(StepFailure {
                step,
                error: error.into(),
            }),
        }
    }
}
