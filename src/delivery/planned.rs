//! Delivery of a tick's own plan: the notices the tick has just planned and the outbox does
//! not hold yet go straight into messages — rendered from the tick's snapshot, recorded
//! together with their messages (leased to this process) in one transaction, then sent. A
//! national round of ~100,000 notices thereby skips writing each notice as pending, claiming
//! it back and re-reading its directive. Whatever cannot go this way waits in the outbox as
//! pending for [`Deliverer::deliver`]'s claim: digests and reports, notices of a person who
//! already has notices pending (one message per person and channel per round), and a batch
//! a replica recorded first.

use super::{Deliverer, DeliveryStats, Phases};
use crate::domain::{Directive, Notice, NoticeKind};
use crate::planner::Snapshot;
use crate::store::{ClaimedMessage, NoticeRow, QueuedNotice, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a tick recorded and delivered of its own plan.
#[derive(Debug, Default)]
pub struct PlannedDelivery {
    /// Notices new to the outbox (in messages, superseded, or left pending).
    pub recorded: usize,
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
        let started = Instant::now();
        let keys: Vec<String> = owed.iter().map(|n| n.key.clone()).collect();
        let known = self.store.known_keys(&keys).await?;
        drop(keys);
        let waiting = self.store.pending_routes().await?;
        let (mut direct, later): (Vec<&Notice>, Vec<&Notice>) =
            owed.iter().filter(|n| !known.contains(&n.key)).partition(|n| {
                n.kind != NoticeKind::Digest
                    && snapshot.people.get(&n.recipient).is_some_and(|p| p.active)
                    && !waiting.contains(&(n.recipient.clone(), n.channel.as_str().to_string()))
            });
        done.recorded += self.store.enqueue_unrecorded(later, now.timestamp()).await?;
        phases.claim += started.elapsed();
        direct.sort_unstable_by(|a, b| {
            (a.recipient.as_str(), a.channel, a.key.as_str()).cmp(&(b.recipient.as_str(), b.channel, b.key.as_str()))
        });
        let directives: HashMap<&str, &Directive> = snapshot.directives.iter().map(|d| (d.code.as_str(), d)).collect();
        let batch_size = usize::try_from(self.config.raw.delivery.batch_size).unwrap_or(500).max(1);
        let mut rest: &[&Notice] = &direct;
        while !rest.is_empty() {
            if self.stopping.load(Ordering::SeqCst) {
                done.recorded += self.store.enqueue_unrecorded(rest.to_vec(), now.timestamp()).await?;
                break;
            }
            let (batch, after) = rest.split_at(batch_end(rest, batch_size));
            rest = after;
            let sent = self.deliver_batch(snapshot, now, batch, &directives, &mut done, &mut phases).await?;
            let started = Instant::now();
            self.send_all(sent, now, &mut done.stats).await?;
            phases.send += started.elapsed();
        }
        tracing::debug!(?phases, stats = ?done.stats, recorded = done.recorded, "planned delivery done");
        Ok(done)
    }

    /// Renders one batch, records it with its messages, and returns the messages to send;
    /// none when a replica recorded some of the batch first (then it waits as pending).
    async fn deliver_batch(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        batch: &[&Notice],
        directives: &HashMap<&str, &Directive>,
        done: &mut PlannedDelivery,
        phases: &mut Phases,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let started = Instant::now();
        let queued: Vec<QueuedNotice> = batch.iter().map(|n| QueuedNotice::from(*n)).collect();
        let refs: Vec<&QueuedNotice> = queued.iter().collect();
        let (messages, superseded) = self.render_groups(snapshot, now, &refs, directives);
        let message_of: HashMap<&str, &str> =
            messages.iter().flat_map(|m| m.notice_keys.iter().map(|k| (k.as_str(), m.id.as_str()))).collect();
        let reason_of: HashMap<&str, &str> = superseded.iter().map(|(k, r)| (k.as_str(), r.as_str())).collect();
        let rows: Vec<NoticeRow> = batch
            .iter()
            .map(|n| match (message_of.get(n.key.as_str()), reason_of.get(n.key.as_str())) {
                (Some(id), _) => NoticeRow::queued(n, id),
                (None, Some(reason)) => NoticeRow::superseded(n, reason),
                (None, None) => NoticeRow::pending(n),
            })
            .collect();
        phases.prepare += started.elapsed();
        let started = Instant::now();
        let recorded = self
            .store
            .record_planned_messages(&rows, &messages, self.owner, self.lease_until(), now.timestamp())
            .await?;
        phases.commit += started.elapsed();
        if !recorded {
            let again = self.store.enqueue_unrecorded(batch.to_vec(), now.timestamp()).await?;
            tracing::info!(
                notices = batch.len(),
                again,
                "part of a planned batch was recorded by another process first; the rest waits to be claimed"
            );
            done.recorded += again;
            return Ok(Vec::new());
        }
        done.recorded += batch.len();
        done.stats.messages_created += messages.len();
        done.stats.superseded += superseded.len();
        for (key, reason) in &superseded {
            self.metrics.record_message("reminder", "email", "superseded");
            tracing::info!(key, reason, "notice superseded, not sent");
        }
        Ok(messages.into_iter().map(ClaimedMessage::from).collect())
    }
}

/// Where the first batch of `notices` (in claim order) ends: at `size` notices or more, but
/// never inside one person's notices on one channel, so each of them makes one message.
fn batch_end(notices: &[&Notice], size: usize) -> usize {
    if notices.len() <= size {
        return notices.len();
    }
    let route = |n: &Notice| (n.recipient.clone(), n.channel);
    let last = route(notices[size - 1]);
    size + notices[size..].iter().take_while(|n| route(n) == last).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Ladder};

    fn notice(recipient: &str, i: usize) -> Notice {
        Notice {
            kind: NoticeKind::Overdue,
            directive: Some(format!("D{i}")),
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: Channel::Email,
            stage: "T+1".into(),
            key: format!("overdue:D{i}:{recipient}:T+1:email"),
            ladder: Ladder::Assignee,
            effective_due: None,
            days_overdue: 1,
        }
    }

    #[test]
    fn a_batch_never_splits_one_persons_notices() {
        let all: Vec<Notice> =
            [("a", 3), ("b", 4), ("c", 1)].iter().flat_map(|(r, n)| (0..*n).map(|i| notice(r, i))).collect();
        let refs: Vec<&Notice> = all.iter().collect();
        assert_eq!(batch_end(&refs, 2), 3, "a's three notices stay together");
        assert_eq!(batch_end(&refs, 3), 3, "the batch ends where a's notices end");
        assert_eq!(batch_end(&refs, 4), 7, "b's notices are not split");
        assert_eq!(batch_end(&refs, 8), 8);
        assert_eq!(batch_end(&refs, 100), 8);
    }
}
