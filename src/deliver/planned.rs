//! Deliver ← the plan: the reminders a tick has just planned go straight into messages — built
//! from the tick's snapshot, recorded together with their messages (leased to this process) in
//! one transaction, then sent. New notices are inserted there; notices recorded by an earlier
//! tick and still pending (planned overnight, outside the send window) are adopted, since the
//! fresh plan has just re-checked them. A national round of ~100,000 notices thereby skips
//! claiming each one and re-reading its directive. What cannot go this way waits in the
//! outbox for the claim: digests and reports, the notices of a person who has pending notices
//! the plan no longer owes (the claim supersedes those, and one message per person and channel
//! per round holds), and a batch a replica recorded or claimed first.

use super::pipeline::DirectiveIndex;
use super::pipeline::Prepared;
use super::{Deliverer, Phases, RoundDelivery};
use crate::domain::{Channel, MessageKind, Notice};
use crate::plan::Snapshot;
use crate::report::{deferred_to_digest, is_digest_day, may_defer_to_digest};
use crate::store::{claim_order, ClaimedMessage, NoticeRow, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::{HashMap, HashSet};

impl Deliverer<'_> {
    /// The positions in `owed` of the notices today's weekly digests list for their readers
    /// (see [`deferred_to_digest`]); none on other days.
    fn in_todays_digest(&self, snapshot: &Snapshot, now: DateTime<Tz>, owed: &[Notice]) -> HashSet<usize> {
        let schedule = &self.config.report_schedule;
        let digest_day = is_digest_day(schedule, now);
        let candidates: Vec<usize> = (0..owed.len()).filter(|i| may_defer_to_digest(&owed[*i], digest_day)).collect();
        if candidates.is_empty() {
            return HashSet::new();
        }
        let index = DirectiveIndex::of(snapshot);
        candidates
            .into_iter()
            .filter(|i| {
                let notice = &owed[*i];
                let directive = notice.directive.as_deref().and_then(|code| index.find(snapshot, code));
                directive.is_some_and(|d| deferred_to_digest(snapshot, schedule, now, notice, &d.unit).is_some())
            })
            .collect()
    }
}

/// A notice of this tick's plan on its way into a message: its place in the plan (the
/// notices themselves stay where the planner put them, shared, never copied).
#[derive(Debug, Clone, Copy)]
pub(super) struct Planned {
    pub(super) index: usize,
    /// Recorded by an earlier tick and still pending.
    pub(super) adopted: bool,
}

impl Deliverer<'_> {
    /// Sorts what is owed into batches this tick delivers itself (new, or recorded and still
    /// pending), in claim order and never splitting one person's notices on one channel, and
    /// records the rest that the outbox lacks as pending, for the claim. Notices already in a
    /// message, sent or superseded are neither.
    pub(super) async fn planned_batches(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        owed: &[Notice],
        done: &mut RoundDelivery,
    ) -> Result<Vec<Vec<Planned>>, StoreError> {
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
        // On the weekly digest's day, what the digest lists is not sent to its reader as well:
        // those notices wait for the claim, which supersedes them.
        let in_digest = self.in_todays_digest(snapshot, now, owed);
        for (index, (n, state)) in owed.iter().zip(states).enumerate() {
            let goes_direct = n.kind.message_kind() == MessageKind::Reminder
                && !in_digest.contains(&index)
                && snapshot.people.get(&n.recipient).is_some_and(|p| p.active)
                && unowed_pending.get(&route(n)).is_none_or(|left| *left <= 0);
            match state {
                None if goes_direct => direct.push(Planned { index, adopted: false }),
                None => later.push(n),
                Some(true) if goes_direct => direct.push(Planned { index, adopted: true }),
                Some(_) => {}
            }
        }
        done.recorded += self.store.enqueue_unrecorded(later, now.timestamp()).await?;
        direct.sort_unstable_by(|a, b| claim_order(&owed[a.index]).cmp(&claim_order(&owed[b.index])));
        let batch_size = usize::try_from(self.config.delivery.batch_size).unwrap_or(500).max(1);
        // Each batch its own exact allocation: split off the front, a batch would keep the
        // capacity of everything behind it (a national round: over a gigabyte).
        let mut sizes = Vec::new();
        let mut start = 0;
        while start < direct.len() {
            let size = batch_end(owed, &direct[start..], batch_size);
            sizes.push(size);
            start += size;
        }
        let mut notices = direct.into_iter();
        Ok(sizes.into_iter().map(|size| notices.by_ref().take(size).collect()).collect())
    }

    /// Records one built batch with its notices and returns its messages, leased to this
    /// process, to send; none when a replica recorded some of the batch first (then the batch
    /// waits as pending).
    pub(super) async fn record_planned(
        &self,
        owed: &[Notice],
        prepared: Prepared,
        now: DateTime<Tz>,
        done: &mut RoundDelivery,
        phases: &mut Phases,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let Prepared { batch, messages, superseded, took } = prepared;
        phases.prepare += took;
        let started = crate::clock::monotonic();
        let message_of: HashMap<&str, &str> =
            messages.iter().flat_map(|m| m.notice_keys.iter().map(|k| (k.as_str(), m.id.as_str()))).collect();
        let reason_of: HashMap<&str, &str> = superseded.iter().map(|s| (s.key.as_str(), s.reason.as_str())).collect();
        let rows: Vec<NoticeRow> = batch
            .iter()
            .map(|&Planned { index, adopted }| {
                let n = &owed[index];
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
        let new = new_in(owed, &batch).count();
        if !recorded {
            let again = self.store.enqueue_unrecorded(new_in(owed, &batch).collect(), now.timestamp()).await?;
            tracing::info!(notices = batch.len(), again, "part of a planned batch was recorded or claimed by another process first; the batch waits to be claimed");
            done.recorded += again;
            return Ok(Vec::new());
        }
        done.recorded += new;
        done.adopted += batch.len() - new;
        done.stats.messages_created += messages.len();
        done.stats.superseded += superseded.len();
        self.count_superseded(&superseded);
        Ok(self.sendable(messages, &mut done.stats))
    }
}

/// The notices of a batch that are new to the outbox.
pub(super) fn new_in<'n>(owed: &'n [Notice], batch: &'n [Planned]) -> impl Iterator<Item = &'n Notice> {
    batch.iter().filter(|p| !p.adopted).map(|p| &owed[p.index])
}

/// Where the first batch of `notices` (in claim order) ends: at `size` notices or more, but
/// never inside one person's notices on one channel, so each of them makes one message.
fn batch_end(owed: &[Notice], notices: &[Planned], size: usize) -> usize {
    if notices.len() <= size {
        return notices.len();
    }
    let route = |p: &Planned| -> (&str, Channel) { (owed[p.index].recipient.as_str(), owed[p.index].channel) };
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
        let refs: Vec<Planned> = (0..all.len()).map(|index| Planned { index, adopted: false }).collect();
        assert_eq!(batch_end(&all, &refs, 2), 3, "a's three notices stay together");
        assert_eq!(batch_end(&all, &refs, 3), 3, "the batch ends where a's notices end");
        assert_eq!(batch_end(&all, &refs, 4), 7, "b's notices are not split");
        assert_eq!(batch_end(&all, &refs, 8), 8);
        assert_eq!(batch_end(&all, &refs, 100), 8);
    }
}
