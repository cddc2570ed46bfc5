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
use super::{Builder, Deliverer, DeliveryStats, Phases, RoundDelivery, OUTCOMES_PER_COMMIT};
use crate::channels::DeliveryError;
use crate::config::Backend;
use crate::domain::{Directive, Notice, Superseded};
use crate::plan::Snapshot;
use crate::store::{ClaimedMessage, MessageOutcome, NewMessage, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Finds a snapshot's directives by code without copying a code: the store hands them over in
/// code order, so a binary search serves; any other order is sorted once, by position.
pub(super) struct DirectiveIndex {
    /// Positions in code order, when the snapshot's own order is not.
    order: Option<Vec<usize>>,
}

impl DirectiveIndex {
    pub(super) fn of(snapshot: &Snapshot) -> DirectiveIndex {
        let directives = &snapshot.directives;
        if directives.windows(2).all(|w| w[0].code <= w[1].code) {
            return DirectiveIndex { order: None };
        }
        let mut order: Vec<usize> = (0..directives.len()).collect();
        order.sort_unstable_by(|a, b| directives[*a].code.cmp(&directives[*b].code));
        DirectiveIndex { order: Some(order) }
    }

    pub(super) fn find<'s>(&self, snapshot: &'s Snapshot, code: &str) -> Option<&'s Directive> {
        let directives = &snapshot.directives;
        let position = match &self.order {
            None => directives.binary_search_by(|d| d.code.as_str().cmp(code)).ok()?,
            Some(order) => order[order.binary_search_by(|i| directives[*i].code.as_str().cmp(code)).ok()?],
        };
        directives.get(position)
    }
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
        owed: &Arc<Vec<Notice>>,
        now: DateTime<Tz>,
        batches: Vec<Vec<Planned>>,
        done: &mut RoundDelivery,
        phases: &mut Phases,
    ) -> Result<Vec<Planned>, StoreError> {
        let overlap_sends = self.store.backend() == Backend::Postgres;
        let queue = Arc::new(Mutex::new(VecDeque::from(batches)));
        let stop_building = Arc::new(AtomicBool::new(false));
        let mut built = self.start_building(snapshot, owed, now, &queue, &stop_building);
        let mut sending: Vec<ClaimedMessage> = Vec::new();
        let mut sent = DeliveryStats::default();
        let mut send_time = Duration::ZERO;
        let mut unreached = Vec::new();
        let outcome = async {
            loop {
                // Waits for batch n to be built and records it. A message is sent as soon as
                // it is recorded (its lease runs from then): on PostgreSQL batch n-1 goes out
                // meanwhile, never waiting on a build.
                let step = async {
                    let Some(prepared) = built.recv().await else { return Ok::<_, StoreError>(None) };
                    if self.stopping.load(Ordering::SeqCst) {
                        return Ok(Some(Err(prepared.batch)));
                    }
                    Ok(Some(Ok(self.record_planned(owed, prepared, now, done, phases).await?)))
                };
                let stepped = if overlap_sends {
                    let previous = std::mem::take(&mut sending);
                    let (stepped, was_sent) =
                        tokio::join!(step, self.send_timed(previous, now, &mut sent, &mut send_time));
                    was_sent?;
                    stepped?
                } else {
                    step.await?
                };
                match stepped {
                    None => return Ok::<(), StoreError>(()),
                    Some(Err(batch)) => {
                        unreached.extend(batch);
                        return Ok(());
                    }
                    Some(Ok(recorded)) if overlap_sends => sending = recorded,
                    Some(Ok(recorded)) => self.send_timed(recorded, now, &mut sent, &mut send_time).await?,
                }
            }
        }
        .await;
        // Whatever happened, the builder stops after its current batch; what it built and
        // what it never reached wait as pending.
        stop_building.store(true, Ordering::SeqCst);
        while let Some(prepared) = built.recv().await {
            unreached.extend(prepared.batch);
        }
        let last = self.send_timed(sending, now, &mut sent, &mut send_time).await;
        done.stats.absorb(sent);
        phases.send += send_time;
        outcome?;
        last?;
        let left = std::mem::take(&mut *queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        unreached.extend(left.into_iter().flatten());
        Ok(unreached.into_iter().filter(|p| !p.adopted).collect())
    }

    /// Starts the round's builder: a thread of its own that takes batches off `queue` in
    /// order and builds each (itself on every core), one batch ahead of its consumer. The
    /// thread ends with the round, and what it allocated goes back with it (the blocking
    /// pool's threads live on, and held a round's peak some 45 MB higher).
    fn start_building(
        &self,
        snapshot: &Arc<Snapshot>,
        owed: &Arc<Vec<Notice>>,
        now: DateTime<Tz>,
        queue: &Arc<Mutex<VecDeque<Vec<Planned>>>>,
        stop: &Arc<AtomicBool>,
    ) -> mpsc::Receiver<Prepared> {
        let (ready, built) = mpsc::channel(1);
        let builder = self.builder.clone();
        let (snapshot, owed, queue, stop) =
            (Arc::clone(snapshot), Arc::clone(owed), Arc::clone(queue), Arc::clone(stop));
        let spawned = std::thread::Builder::new().name("nhacviec-build".into()).spawn(move || {
            let index = DirectiveIndex::of(&snapshot);
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front();
                let Some(batch) = next else { break };
                let prepared = build_batch(&builder, &snapshot, &owed, &index, now, batch);
                if let Err(mpsc::error::SendError(prepared)) = ready.blocking_send(prepared) {
                    // The round ended: the batch goes back, unrecorded.
                    queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_front(prepared.batch);
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that builds messages; the plan waits to be claimed");
        }
        built
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

/// Builds one batch of planned notices into its messages.
fn build_batch(
    builder: &Builder,
    snapshot: &Snapshot,
    owed: &[Notice],
    index: &DirectiveIndex,
    now: DateTime<Tz>,
    batch: Vec<Planned>,
) -> Prepared {
    let started = crate::clock::monotonic();
    let notices: Vec<&Notice> = batch.iter().map(|p| &owed[p.index]).collect();
    let directives: HashMap<&str, &Directive> = notices
        .iter()
        .filter_map(|n| n.directive.as_deref())
        .filter_map(|code| Some((code, index.find(snapshot, code)?)))
        .collect();
    let (messages, superseded) = builder.reminders(snapshot, now, &notices, &directives);
    drop(notices);
    Prepared { batch, messages, superseded, took: started.elapsed() }
}
