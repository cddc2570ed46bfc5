//! Deliver ← pipeline: all the concurrency of a round, in one place. A tick's planned batches
//! are built on the blocking pool one batch ahead (building is CPU; recording and sending are
//! mostly waiting, on the database and on the mail server or disk), so a round takes about as
//! long as its longest step rather than the sum of them; memory stays at two batches. On
//! PostgreSQL, which locks rows, batch n+1 is recorded while batch n is sent; SQLite has a
//! single writer, and the outcomes of batch n and the recording of batch n+1 would queue on
//! its lock, which measured slower than taking turns. Within a batch, sends run
//! `delivery.concurrency` at a time, and the outcomes that return together are recorded
//! together (a group commit).

use super::planned::Planned;
use super::{Deliverer, DeliveryStats, Phases, RoundDelivery, OUTCOMES_PER_COMMIT};
use crate::channels::DeliveryError;
use crate::config::Backend;
use crate::domain::{Directive, Notice, Superseded};
use crate::planner::Snapshot;
use crate::store::{ClaimedMessage, MessageOutcome, NewMessage, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where one step of the planned pipeline left off.
enum Step {
    /// Shutting down: this batch was built, not recorded.
    Stopped(Vec<Planned>),
    /// The batch is recorded: its messages to send, and the next batch being built.
    Recorded { recorded: Vec<ClaimedMessage>, following: Option<JoinHandle<Prepared>> },
}

/// One batch of planned notices and the messages built from it.
pub(super) struct Prepared {
    pub(super) batch: Vec<Planned>,
    pub(super) messages: Vec<NewMessage>,
    /// Notices that could not be addressed, with the reason.
    pub(super) superseded: Vec<Superseded>,
    pub(super) took: Duration,
}

impl Deliverer<'_> {
    /// Builds, records and sends a tick's planned batches, in order. Returns the notices of
    /// the batches not reached (when shutting down), to be left pending.
    pub(super) async fn run_planned(
        &self,
        snapshot: &Arc<Snapshot>,
        now: DateTime<Tz>,
        batches: Vec<Vec<Planned>>,
        done: &mut RoundDelivery,
        phases: &mut Phases,
    ) -> Result<Vec<Planned>, StoreError> {
        let index: Arc<HashMap<String, usize>> =
            Arc::new(snapshot.directives.iter().enumerate().map(|(i, d)| (d.code.clone(), i)).collect());
        let overlap_sends = self.store.backend() == Backend::Postgres;
        let mut batches = batches.into_iter();
        let mut ahead = batches.next().map(|batch| self.build_ahead(snapshot, &index, now, batch));
        let mut sending: Vec<ClaimedMessage> = Vec::new();
        let mut sent = DeliveryStats::default();
        let mut send_time = Duration::ZERO;
        let mut unreached = Vec::new();
        while let Some(building) = ahead.take() {
            // Waits for batch n to be built, starts building n+1, and records n. A message is
            // sent as soon as it is recorded (its lease runs from then): on PostgreSQL batch
            // n-1 goes out meanwhile, never waiting on a build.
            let step = async {
                let prepared =
                    building.await.map_err(|e| StoreError::Outbox(format!("building a batch failed: {e}")))?;
                if self.stopping.load(Ordering::SeqCst) {
                    return Ok::<_, StoreError>(Step::Stopped(prepared.batch));
                }
                let following = batches.next().map(|batch| self.build_ahead(snapshot, &index, now, batch));
                let recorded = self.record_planned(prepared, now, done, phases).await?;
                Ok(Step::Recorded { recorded, following })
            };
            let stepped = if overlap_sends {
                let previous = std::mem::take(&mut sending);
                let (stepped, was_sent) = tokio::join!(step, self.send_timed(previous, now, &mut sent, &mut send_time));
                was_sent?;
                stepped?
            } else {
                step.await?
            };
            match stepped {
                Step::Stopped(batch) => {
                    unreached.extend(batch);
                    break;
                }
                Step::Recorded { recorded, following } if overlap_sends => {
                    sending = recorded;
                    ahead = following;
                }
                Step::Recorded { recorded, following } => {
                    ahead = following;
                    self.send_timed(recorded, now, &mut sent, &mut send_time).await?;
                }
            }
        }
        let last = self.send_timed(sending, now, &mut sent, &mut send_time).await;
        done.stats.absorb(sent);
        phases.send += send_time;
        last?;
        unreached.extend(batches.flatten());
        Ok(unreached.into_iter().filter(|p| !p.adopted).collect())
    }

    /// Builds `batch` on the blocking pool (itself building on every core).
    fn build_ahead(
        &self,
        snapshot: &Arc<Snapshot>,
        index: &Arc<HashMap<String, usize>>,
        now: DateTime<Tz>,
        batch: Vec<Planned>,
    ) -> JoinHandle<Prepared> {
        let (builder, snapshot, index) = (self.builder.clone(), Arc::clone(snapshot), Arc::clone(index));
        tokio::task::spawn_blocking(move || {
            let started = crate::clock::monotonic();
            let notices: Vec<&Notice> = batch.iter().map(|p| &p.notice).collect();
            let directives: HashMap<&str, &Directive> = notices
                .iter()
                .filter_map(|n| n.directive.as_deref())
                .filter_map(|code| Some((code, snapshot.directives.get(*index.get(code)?)?)))
                .collect();
            let (messages, superseded) = builder.reminders(&snapshot, now, &notices, &directives);
            drop(notices);
            Prepared { batch, messages, superseded, took: started.elapsed() }
        })
    }

    /// [`Deliverer::send_all`], adding the time it took.
    async fn send_timed(
        &self,
        messages: Vec<ClaimedMessage>,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
        took: &mut Duration,
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let started = crate::clock::monotonic();
        let sent = self.send_all(messages, now, stats).await;
        *took += started.elapsed();
        sent
    }

    /// Sends a batch, `delivery.concurrency` at a time. Outcomes are recorded as soon as their
    /// sends return, while other sends go on; those that return while a recording is under
    /// way are recorded together, in one transaction (a group commit: one commit per message
    /// is what a round of thousands of messages spends most of its recording time on). A crash
    /// mid-batch leaves at most the sends in flight and the group being recorded unrecorded;
    /// their leases expire and they go out again.
    pub(super) async fn send_all(
        &self,
        batch: Vec<ClaimedMessage>,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
    ) -> Result<(), StoreError> {
        let concurrency = usize::try_from(self.config.delivery.concurrency).unwrap_or(1);
        // Set when outcomes can no longer be recorded: start no send whose outcome would be lost.
        let unrecordable = AtomicBool::new(false);
        let (returned, mut to_record) = tokio::sync::mpsc::unbounded_channel::<(ClaimedMessage, MessageOutcome)>();
        let sending = async {
            let returned = returned;
            stream::iter(batch)
                .map(|m| async {
                    if self.stopping.load(Ordering::SeqCst) || unrecordable.load(Ordering::SeqCst) {
                        return None;
                    }
                    if let Some(reason) = self.paused_reason(m.channel) {
                        let outcome = self.deferred(now, reason);
                        self.metrics.record_message(m.kind.as_str(), m.channel.as_str(), "server_error");
                        return Some((m, outcome));
                    }
                    let result = self.send_one(&m).await;
                    if let Err(DeliveryError::Unavailable(reason)) = &result {
                        self.pause(m.channel, reason);
                    }
                    let outcome = self.outcome(&m, result, now);
                    self.log_outcome(&m, &outcome);
                    Some((m, outcome))
                })
                .buffer_unordered(concurrency)
                .for_each(|done| {
                    if let Some(done) = done {
                        // The receiver is gone only after a recording error, reported below.
                        let _ = returned.send(done);
                    }
                    std::future::ready(())
                })
                .await;
        };
        let recording = async {
            while let Some(first) = to_record.recv().await {
                let mut done = vec![first];
                while done.len() < OUTCOMES_PER_COMMIT {
                    match to_record.try_recv() {
                        Ok(more) => done.push(more),
                        Err(_) => break,
                    }
                }
                let recorded = self.record_group(&done, now, stats).await;
                if recorded.is_err() {
                    unrecordable.store(true, Ordering::SeqCst);
                    return recorded;
                }
            }
            Ok(())
        };
        let ((), recorded) = tokio::join!(sending, recording);
        recorded
    }
}
