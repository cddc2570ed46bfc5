//! Delivery of a tick's own plan: the reminders the tick has just planned go straight into
//! messages — rendered from the tick's snapshot, recorded together with their messages
//! (leased to this process) in one transaction, then sent. New notices are inserted there;
//! notices recorded by an earlier tick and still pending (planned overnight, outside the send
//! window) are adopted, since the fresh plan has just re-checked them. A national round of
//! ~100,000 notices thereby skips claiming each one and re-reading its directive. What cannot
//! go this way waits in the outbox for [`Deliverer::deliver`]'s claim: digests and reports, the
//! notices of a person who has pending notices the plan no longer owes (the claim supersedes
//! those, and one message per person and channel per round holds), and a batch a replica
//! recorded or claimed first.

use super::{Deliverer, DeliveryStats, Phases};
use crate::config::Backend;
use crate::domain::{Directive, MessageKind, Notice, Superseded};
use crate::planner::Snapshot;

use crate::store::{claim_order, ClaimedMessage, NewMessage, NoticeRow, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tokio::runtime::RuntimeFlavor;

/// What a tick recorded and delivered of its own plan.
#[derive(Debug, Default)]
pub struct PlannedDelivery {
    /// Notices new to the outbox (in messages, superseded, or left pending).
    pub recorded: usize,
    /// Notices recorded by an earlier tick, still pending, delivered by this one.
    pub adopted: usize,
    pub stats: DeliveryStats,
}

impl Deliverer<'_> {
    /// Records what `owed` (planned at `now` from `snapshot`) holds that the outbox does not,
    /// and sends the reminders among them that can go at once, batch by batch.
    pub async fn deliver_planned(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        owed: &[Notice],
    ) -> Result<PlannedDelivery, StoreError> {
        let mut done = PlannedDelivery::default();
        let mut phases = Phases::default();
        let started = crate::clock::monotonic();
        let (mut direct, later) = self.sort_out(snapshot, owed).await?;
        done.recorded += self.store.enqueue_unrecorded(later, now.timestamp()).await?;
        phases.claim += started.elapsed();
        direct.sort_unstable_by(|a, b| claim_order(a.notice).cmp(&claim_order(b.notice)));
        let directives: HashMap<&str, &Directive> = snapshot.directives.iter().map(|d| (d.code.as_str(), d)).collect();
        let batch_size = usize::try_from(self.config.delivery.batch_size).unwrap_or(500).max(1);
        let mut batches: Vec<&[Planned]> = Vec::new();
        let mut rest: &[Planned] = &direct;
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(batch_end(rest, batch_size));
            batches.push(batch);
            rest = after;
        }
        let handled = if tokio::runtime::Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
            self.one_after_another(snapshot, now, &batches, &directives, &mut done, &mut phases).await
        } else {
            self.pipelined(snapshot, now, &batches, &directives, &mut done, &mut phases)
        };
        // Batches not reached when shutting down wait as pending. (After a database failure
        // the error goes up; what was not recorded is planned again by the next tick.)
        let unreached: Vec<&Notice> = batches.iter().skip(handled?).flat_map(|b| new_in(b)).collect();
        if !unreached.is_empty() {
            done.recorded += self.store.enqueue_unrecorded(unreached, now.timestamp()).await?;
        }
        tracing::debug!(?phases, stats = ?done.stats, recorded = done.recorded, adopted = done.adopted, "planned delivery done");
        Ok(done)
    }

    /// A pipeline: batch n+1 is rendered (on a thread of its own, itself rendering on every
    /// core) while batch n is recorded and sent — on PostgreSQL, batch n+2 is rendered while
    /// n+1 is recorded and n sent. Rendering is CPU; recording and sending are mostly
    /// waiting, on the database and on the mail server or disk; so a round takes about as
    /// long as its longest step rather than the sum of them. Returns how many batches were
    /// recorded, in order.
    fn pipelined(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        batches: &[&[Planned<'_>]],
        directives: &HashMap<&str, &Directive>,
        done: &mut PlannedDelivery,
        phases: &mut Phases,
    ) -> Result<usize, StoreError> {
        let handle = tokio::runtime::Handle::current();
        // SQLite has a single writer: the outcomes of batch n and the recording of batch n+1
        // would queue on its lock (its busy handler sleeps in steps of milliseconds), and
        // measured slower than taking turns. PostgreSQL locks rows, so there they overlap.
        let overlap_sends = self.store.backend() == Backend::Postgres;
        // This worker thread blocks while it drives the pipeline; the runtime's other workers
        // carry on (block_in_place), and the recording and sending run on it via block_on.
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                // One batch rendered ahead, no more: memory stays at two batches.
                let (ready, mut rendered) = tokio::sync::mpsc::channel::<Rendered>(1);
                scope.spawn(move || {
                    for batch in batches {
                        if self.stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        // The receiver is gone only when recording failed; that error is returned.
                        if ready.blocking_send(self.render_batch(snapshot, now, batch, directives)).is_err() {
                            break;
                        }
                    }
                });
                handle.block_on(async {
                    // Batch n is sent while batch n+1 is recorded.
                    let mut handled = 0;
                    let mut sent = DeliveryStats::default();
                    let mut sending = Vec::new();
                    let mut send_time = std::time::Duration::ZERO;
                    while let Some(batch) = rendered.recv().await {
                        if overlap_sends {
                            let previous = std::mem::take(&mut sending);
                            let (recorded, was_sent) = tokio::join!(
                                self.record_batch(batch, now, done, phases),
                                self.send_timed(previous, now, &mut sent, &mut send_time)
                            );
                            was_sent?;
                            sending = recorded?;
                        } else {
                            let recorded = self.record_batch(batch, now, done, phases).await?;
                            self.send_timed(recorded, now, &mut sent, &mut send_time).await?;
                        }
                        handled += 1;
                    }
                    let last = self.send_timed(sending, now, &mut sent, &mut send_time).await;
                    done.stats.absorb(sent);
                    phases.send += send_time;
                    last.map(|()| handled)
                })
            })
        })
    }

    /// The same, one step after another (a single-threaded runtime cannot block one of its
    /// threads for the pipeline).
    async fn one_after_another(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        batches: &[&[Planned<'_>]],
        directives: &HashMap<&str, &Directive>,
        done: &mut PlannedDelivery,
        phases: &mut Phases,
    ) -> Result<usize, StoreError> {
        let mut handled = 0;
        for batch in batches {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let rendered = self.render_batch(snapshot, now, batch, directives);
            let messages = self.record_batch(rendered, now, done, phases).await?;
            let started = crate::clock::monotonic();
            self.send_all(messages, now, &mut done.stats).await?;
            phases.send += started.elapsed();
            handled += 1;
        }
        Ok(handled)
    }

    /// Sorts what is owed into what this tick delivers itself (new, or recorded and still
    /// pending) and what it leaves to the claim (new notices to record as pending). Notices
    /// already in a message, sent or superseded are neither.
    async fn sort_out<'n>(
        &self,
        snapshot: &Snapshot,
        owed: &'n [Notice],
    ) -> Result<(Vec<Planned<'n>>, Vec<&'n Notice>), StoreError> {
        let keys: Vec<&str> = owed.iter().map(|n| n.key.as_str()).collect();
        let states = self.store.states_of(&keys).await?;
        drop(keys);
        let route = |n: &Notice| (n.recipient.clone(), n.channel);
        // A person's route goes direct only if the plan owes every notice pending on it.
        let mut unowed_pending = self.store.pending_per_route().await?;
        for (n, _) in owed.iter().zip(&states).filter(|(_, state)| **state == Some(true)) {
            if let Some(count) = unowed_pending.get_mut(&route(n)) {
                *count -= 1;
            }
        }
        let mut direct = Vec::new();
        let mut later = Vec::new();
        for (n, state) in owed.iter().zip(states) {
            let goes_direct = n.kind.message_kind() == MessageKind::Reminder
                && snapshot.people.get(&n.recipient).is_some_and(|p| p.active)
                && unowed_pending.get(&route(n)).is_none_or(|left| *left <= 0);
            match state {
                None if goes_direct => direct.push(Planned { notice: n, adopted: false }),
                None => later.push(n),
                Some(true) if goes_direct => direct.push(Planned { notice: n, adopted: true }),
                Some(_) => {}
            }
        }
        Ok((direct, later))
    }

    /// Groups and renders one batch into its messages.
    fn render_batch<'b>(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        batch: &'b [Planned<'b>],
        directives: &HashMap<&str, &Directive>,
    ) -> Rendered<'b> {
        let started = crate::clock::monotonic();
        let refs: Vec<&Notice> = batch.iter().map(|p| p.notice).collect();
        let (messages, superseded) = self.render_groups(snapshot, now, &refs, directives);
        Rendered { batch, messages, superseded, took: started.elapsed() }
    }

    /// Records one rendered batch with its notices and returns its messages, leased to this
    /// process, to send; none when a replica recorded some of the batch first (then the batch
    /// waits as pending).
    async fn record_batch(
        &self,
        rendered: Rendered<'_>,
        now: DateTime<Tz>,
        done: &mut PlannedDelivery,
        phases: &mut Phases,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let Rendered { batch, messages, superseded, took } = rendered;
        phases.prepare += took;
        let started = crate::clock::monotonic();
        let message_of: HashMap<&str, &str> =
            messages.iter().flat_map(|m| m.notice_keys.iter().map(|k| (k.as_str(), m.id.as_str()))).collect();
        let reason_of: HashMap<&str, &str> = superseded.iter().map(|s| (s.key.as_str(), s.reason.as_str())).collect();
        let rows: Vec<NoticeRow> = batch
            .iter()
            .map(|&Planned { notice: n, adopted }| {
                let row = match (message_of.get(n.key.as_str()), reason_of.get(n.key.as_str())) {
                    (Some(id), _) => NoticeRow::queued(n, id),
                    (None, Some(reason)) => NoticeRow::superseded(n, reason),
                    (None, None) => NoticeRow::pending(n),
                };
                row.adopted(adopted)
            })
            .collect();
        let recorded = self
            .store
            .record_planned_messages(&rows, &messages, self.owner, self.lease_until(), now.timestamp())
            .await?;
        drop(rows);
        phases.commit += started.elapsed();
        if !recorded {
            let again = self.store.enqueue_unrecorded(new_in(batch).collect(), now.timestamp()).await?;
            tracing::info!(notices = batch.len(), again, "part of a planned batch was recorded or claimed by another process first; the batch waits to be claimed");
            done.recorded += again;
            return Ok(Vec::new());
        }
        done.recorded += new_in(batch).count();
        done.adopted += batch.len() - new_in(batch).count();
        done.stats.messages_created += messages.len();
        done.stats.superseded += superseded.len();
        self.count_superseded(&superseded);
        Ok(self.sendable(messages, &mut done.stats))
    }

    /// [`Deliverer::send_all`], adding the time it took.
    async fn send_timed(
        &self,
        messages: Vec<ClaimedMessage>,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
        took: &mut std::time::Duration,
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let started = crate::clock::monotonic();
        let sent = self.send_all(messages, now, stats).await;
        *took += started.elapsed();
        sent
    }
}

/// A notice of this tick's plan on its way into a message.
#[derive(Debug, Clone, Copy)]
struct Planned<'n> {
    notice: &'n Notice,
    /// Recorded by an earlier tick and still pending.
    adopted: bool,
}

/// The notices of a batch that are new to the outbox.
fn new_in<'b>(batch: &'b [Planned<'b>]) -> impl Iterator<Item = &'b Notice> + 'b {
    batch.iter().filter(|p| !p.adopted).map(|p| p.notice)
}

/// One batch of planned notices and what rendering made of it.
struct Rendered<'b> {
    batch: &'b [Planned<'b>],
    messages: Vec<NewMessage>,
    /// Notices that could not be rendered or addressed, with the reason.
    superseded: Vec<Superseded>,
    took: std::time::Duration,
}

/// Where the first batch of `notices` (in claim order) ends: at `size` notices or more, but
/// never inside one person's notices on one channel, so each of them makes one message.
fn batch_end(notices: &[Planned], size: usize) -> usize {
    if notices.len() <= size {
        return notices.len();
    }
    let route = |p: &Planned| (p.notice.recipient.clone(), p.notice.channel);
    let last = route(&notices[size - 1]);
    size + notices[size..].iter().take_while(|p| route(p) == last).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Ladder, NoticeKind};

    fn notice(recipient: &str, i: usize) -> Notice {
        Notice {
            kind: NoticeKind::Overdue,
            directive: Some(format!("D{i}")),
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: Channel::Email,
            stage: crate::domain::Stage::Day(1),
            key: crate::domain::NoticeKey::stored(format!("overdue:D{i}:{recipient}:T+1:email")),
            ladder: Ladder::Assignee,
            effective_due: None,
            days_overdue: 1,
        }
    }

    #[test]
    fn a_batch_never_splits_one_persons_notices() {
        let all: Vec<Notice> =
            [("a", 3), ("b", 4), ("c", 1)].iter().flat_map(|(r, n)| (0..*n).map(|i| notice(r, i))).collect();
        let refs: Vec<Planned> = all.iter().map(|notice| Planned { notice, adopted: false }).collect();
        assert_eq!(batch_end(&refs, 2), 3, "a's three notices stay together");
        assert_eq!(batch_end(&refs, 3), 3, "the batch ends where a's notices end");
        assert_eq!(batch_end(&refs, 4), 7, "b's notices are not split");
        assert_eq!(batch_end(&refs, 8), 8);
        assert_eq!(batch_end(&refs, 100), 8);
    }
}
