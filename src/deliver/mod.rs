//! Deliver: from owed notices to sent messages, in one pipeline a reader can follow —
//! take the notices (this tick's own plan, then what the outbox holds) → re-check them (a
//! claimed notice against its directive now; a planned one was just planned) → group them per
//! person and channel → build each message through its channel → record messages and notices,
//! leased to this process, before anything is sent → send, outside any transaction → record
//! each outcome (sent, retry later, waiting for its server, or dead). Its concurrency lives in
//! [`pipeline`].

mod build;
mod claim;
pub mod parallel;
mod pipeline;
mod planned;
mod send;
pub mod window;

pub use build::Builder;

use crate::calendar::Calendar;
use crate::config::Config;
use crate::domain::{Notice, Superseded};
use crate::metrics::Metrics;
use crate::plan::Snapshot;
use crate::store::{MessageOutcome, Store, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStats {
    pub messages_created: usize,
    pub sent: usize,
    pub retry_later: usize,
    pub dead: usize,
    pub superseded: usize,
    /// Messages left for the next round because their channel's server is unreachable or
    /// misconfigured.
    pub deferred: usize,
    /// Outcomes not recorded because another process had taken the lease over.
    pub lease_lost: usize,
}

impl DeliveryStats {
    /// Adds what another pass did.
    pub fn absorb(&mut self, other: DeliveryStats) {
        self.messages_created += other.messages_created;
        self.sent += other.sent;
        self.retry_later += other.retry_later;
        self.dead += other.dead;
        self.superseded += other.superseded;
        self.deferred += other.deferred;
        self.lease_lost += other.lease_lost;
    }
}

/// What a round recorded and delivered.
#[derive(Debug, Default)]
pub struct RoundDelivery {
    /// Notices new to the outbox (in messages, superseded, or left pending).
    pub recorded: usize,
    /// Notices recorded by an earlier tick, still pending, delivered from this tick's plan.
    pub adopted: usize,
    pub stats: DeliveryStats,
}

/// Most outcomes recorded in one transaction.
const OUTCOMES_PER_COMMIT: usize = 256;

/// Where a delivery pass spent its time (logged at debug level when the pass ends).
#[derive(Debug, Default)]
struct Phases {
    claim: Duration,
    /// Re-checking against the directives, rendering and MIME-encoding.
    prepare: Duration,
    commit: Duration,
    send: Duration,
}

/// Everything a delivery round needs besides the store.
pub struct Deliverer<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    /// Builds messages; owns shared handles, so building runs on the blocking pool.
    pub builder: Builder,
    pub owner: &'a str,
    pub metrics: &'a Metrics,
    /// Set on shutdown: stop claiming and start no new send.
    pub stopping: &'a AtomicBool,
    /// Channels whose server proved unreachable or misconfigured in this round, with the
    /// reason: nothing more is attempted on them until the next round.
    pub paused: std::sync::Mutex<BTreeMap<String, String>>,
    /// Outcomes of sends that happened but could not be recorded (the database refused:
    /// a full disk, a failover). Kept by the application across rounds and recorded before
    /// anything else is claimed or sent, so a message sent once is never sent again.
    pub unrecorded: &'a std::sync::Mutex<Vec<UnrecordedOutcome>>,
}

/// The outcome of a send that the database has not taken yet.
#[derive(Debug, Clone)]
pub struct UnrecordedOutcome {
    pub message: String,
    pub outcome: MessageOutcome,
    /// The logical instant of the round that sent it (epoch seconds).
    pub at: i64,
}

impl Deliverer<'_> {
    /// Delivers everything that can go out at `now`: first what `owed` (this tick's plan from
    /// `snapshot`; may be empty) holds that can go at once, then what waits in the outbox —
    /// notices left pending, digests and reports — then messages due for a retry or abandoned
    /// by a crashed sender. Returns when nothing more can be sent at `now`.
    pub async fn deliver(
        &self,
        snapshot: &Arc<Snapshot>,
        calendar: &Calendar,
        now: DateTime<Tz>,
        owed: Vec<Notice>,
    ) -> Result<RoundDelivery, StoreError> {
        let mut done = RoundDelivery::default();
        let mut phases = Phases::default();
        // 1. This tick's own plan, straight into messages.
        if !owed.is_empty() {
            let owed = Arc::new(owed);
            let started = crate::clock::monotonic();
            let batches = self.planned_batches(snapshot, now, &owed, &mut done).await?;
            phases.claim += started.elapsed();
            // Batches not reached when shutting down wait as pending. (After a database
            // failure the error goes up; what was not recorded is planned again next tick.)
            let unreached = self.run_planned(snapshot, &owed, now, batches, &mut done, &mut phases).await?;
            if !unreached.is_empty() {
                let left: Vec<&Notice> = unreached.iter().map(|p| &owed[p.index]).collect();
                done.recorded += self.store.enqueue_unrecorded(left, now.timestamp()).await?;
            }
        }
        // 2. The outbox: claimed notices, then retries.
        while !self.stopping.load(Ordering::SeqCst) {
            let fresh = self.claim_and_record(snapshot, calendar, now, &mut done.stats, &mut phases).await?;
            let batch = if fresh.is_empty() {
                let due = self
                    .store
                    .claim_due_messages(
                        self.owner,
                        now.timestamp(),
                        crate::clock::wall_seconds(),
                        self.lease_until(),
                        self.config.delivery.batch_size,
                    )
                    .await?;
                if due.is_empty() {
                    break;
                }
                due
            } else {
                fresh
            };
            let started = crate::clock::monotonic();
            self.send_all(batch, now, &mut done.stats).await?;
            phases.send += started.elapsed();
        }
        tracing::debug!(?phases, stats = ?done.stats, recorded = done.recorded, adopted = done.adopted, "delivery round done");
        Ok(done)
    }

    /// When a lease taken now ends (wall clock).
    fn lease_until(&self) -> i64 {
        crate::clock::wall_seconds() + i64::try_from(self.config.delivery.lease_seconds).unwrap_or(300)
    }

    /// Counts and logs notices superseded rather than sent, under their own channel and kind.
    fn count_superseded(&self, superseded: &[Superseded]) {
        for s in superseded {
            self.metrics.record_message(s.kind.as_str(), s.channel.as_str(), "superseded");
            tracing::info!(key = %s.key, reason = %s.reason, "notice superseded, not sent");
        }
    }
}
