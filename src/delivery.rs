//! Delivery rounds: claim pending notices, re-check each against its directive (stale ones
//! are superseded, not sent), group them per person and channel into one rendered message,
//! record the message with its Message-ID under a lease, and only then send — outside any
//! transaction. Each outcome is recorded by the lease holder: sent, retry later, or dead.

mod planned;

pub use planned::PlannedDelivery;

use crate::app::Outlets;
use crate::calendar::Calendar;
use crate::channels::{Built, DeliveryError, Envelope, Stored};
use crate::config::Config;
use crate::domain::{Bounce, Channel, Directive, MessageKind, Notice, Person, Status, Superseded};
use crate::metrics::Metrics;
use crate::outbox::retry_delay;
use crate::parallel::map_in_parallel;
use crate::planner::{plan_bounces, plan_directive, Snapshot};
use crate::render::ReminderInput;
use crate::reports::{audience_of, render_report, report_still_owed, report_window, ReportInput};
use crate::store::{pack, ClaimedMessage, DeadCause, MessageOutcome, NewMessage, Store};
use chrono::DateTime;
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The notices that become one message: (recipient, channel, slot) and the notices.
type Group<'n> = ((String, Channel, usize), Vec<&'n Notice>);

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

/// Everything a delivery pass needs besides the store.
pub struct Deliverer<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub outlets: &'a Outlets,
    pub owner: &'a str,
    pub metrics: &'a Metrics,
    /// Message ids and retry jitter.
    pub clock: &'a crate::clock::Clock,
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
    fn lease_until(&self) -> i64 {
        crate::clock::wall_seconds() + i64::try_from(self.config.delivery.lease_seconds).unwrap_or(300)
    }

    /// Delivers everything that can go out at `now`: new notices first, then messages due for
    /// a retry or abandoned by a crashed sender. Returns when nothing more can be sent at `now`.
    pub async fn deliver(
        &self,
        snapshot: &Snapshot,
        calendar: &Calendar,
        now: DateTime<Tz>,
    ) -> Result<DeliveryStats, crate::store::StoreError> {
        let mut stats = DeliveryStats::default();
        let mut phases = Phases::default();
        while !self.stopping.load(Ordering::SeqCst) {
            let fresh = self.claim_and_record(snapshot, calendar, now, &mut stats, &mut phases).await?;
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
            self.send_all(batch, now, &mut stats).await?;
            phases.send += started.elapsed();
        }
        tracing::debug!(?phases, ?stats, "delivery pass done");
        Ok(stats)
    }

    /// Claims pending notices, supersedes the stale ones, records one message per person and
    /// channel (or per notice when grouping is off) — a digest or report always its own
    /// message — leased to this process.
    async fn claim_and_record(
        &self,
        snapshot: &Snapshot,
        calendar: &Calendar,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
        phases: &mut Phases,
    ) -> Result<Vec<ClaimedMessage>, crate::store::StoreError> {
        let started = crate::clock::monotonic();
        let claim = self.store.claim_notices(self.config.delivery.batch_size).await?;
        phases.claim += started.elapsed();
        if claim.notices.is_empty() {
            return Ok(Vec::new());
        }
        let (reports, reminders): (Vec<&Notice>, Vec<&Notice>) =
            claim.notices.iter().partition(|n| n.kind.message_kind() != MessageKind::Reminder);
        let started = crate::clock::monotonic();
        let mut superseded = Vec::new();
        let mut messages = Vec::new();
        if !reminders.is_empty() {
            self.reminder_messages(snapshot, calendar, now, &reminders, &mut messages, &mut superseded).await?;
        }
        if !reports.is_empty() {
            self.report_messages(snapshot, calendar, now, &reports, &mut messages, &mut superseded).await?;
        }
        phases.prepare += started.elapsed();
        let started = crate::clock::monotonic();
        let lease_until = self.lease_until();
        claim.commit(&messages, &superseded, self.owner, lease_until, now.timestamp()).await?;
        phases.commit += started.elapsed();
        stats.superseded += superseded.len();
        stats.messages_created += messages.len();
        self.count_superseded(&superseded);
        Ok(self.sendable(messages, stats))
    }

    /// Re-plans each claimed reminder's directive: still owed → grouped into a message;
    /// otherwise superseded with the reason.
    async fn reminder_messages(
        &self,
        snapshot: &Snapshot,
        calendar: &Calendar,
        now: DateTime<Tz>,
        notices: &[&Notice],
        messages: &mut Vec<NewMessage>,
        superseded: &mut Vec<Superseded>,
    ) -> Result<(), crate::store::StoreError> {
        let codes: Vec<String> =
            notices.iter().filter_map(|n| n.directive.clone()).collect::<HashSet<_>>().into_iter().collect();
        let directives: HashMap<String, Directive> =
            self.store.directives_by_code(&codes).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
        let today = now.date_naive();
        let mut owed: HashMap<&str, Vec<Notice>> = HashMap::new();
        for (code, directive) in &directives {
            let mut out = Vec::new();
            plan_directive(snapshot, &self.config.policy, calendar, today, directive, &mut out);
            owed.insert(code.as_str(), out);
        }
        let bounces: HashSet<String> =
            plan_bounces(snapshot).iter().map(|n| n.key.without_channel().to_string()).collect();
        let mut kept = Vec::with_capacity(notices.len());
        for notice in notices {
            let verdict = match notice.directive.as_deref() {
                Some(code) => still_owed(notice, directives.get(code), owed.get(code)),
                None if bounces.contains(notice.key.without_channel()) => Ok(()),
                None => Err("the address was corrected or the person left".into()),
            };
            match verdict {
                Ok(()) => kept.push(*notice),
                Err(reason) => superseded.push(Superseded::of(notice, reason)),
            }
        }
        let by_code: HashMap<&str, &Directive> = directives.iter().map(|(code, d)| (code.as_str(), d)).collect();
        let (built, failed) = self.render_groups(snapshot, now, &kept, &by_code);
        messages.extend(built);
        superseded.extend(failed);
        Ok(())
    }

    /// Groups owed notices into one message per person and channel (per notice when grouping
    /// is off, and always for a webhook) and renders them, on every core. Notices whose
    /// recipient is gone or inactive, or whose message cannot be rendered or addressed, come
    /// back apart with the reason.
    pub(crate) fn render_groups(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        notices: &[&Notice],
        directives: &HashMap<&str, &Directive>,
    ) -> (Vec<NewMessage>, Vec<Superseded>) {
        let mut superseded = Vec::new();
        let mut groups: BTreeMap<(String, Channel, usize), Vec<&Notice>> = BTreeMap::new();
        for (i, notice) in notices.iter().enumerate() {
            if !snapshot.people.get(&notice.recipient).is_some_and(|p| p.active) {
                superseded.push(Superseded::of(notice, "recipient no longer active"));
                continue;
            }
            let alone = !self.config.delivery.group
                || self.outlets.channel(notice.channel).is_some_and(|c| c.one_notice_per_message());
            let slot = if alone { i } else { 0 };
            groups.entry((notice.recipient.clone(), notice.channel, slot)).or_default().push(notice);
        }
        let agency = &self.config.agency.name;
        let renderer = &self.outlets.renderer;
        let today = now.date_naive();
        let groups: Vec<Group> = groups.into_iter().collect();
        // Rendering and MIME-encoding are the CPU-heavy part of a round: spread over the cores.
        let built = map_in_parallel(&groups, |((recipient, channel, _), group)| {
            let Some(person) = snapshot.people.get(recipient) else {
                return Err(group.iter().map(|n| Superseded::of(n, "recipient no longer active")).collect::<Vec<_>>());
            };
            let input = ReminderInput { agency, today, recipient: person, notices: group, directives, snapshot };
            Ok(self.build(MessageKind::Reminder, person, *channel, group, now, |outlet, to| {
                outlet.reminder(renderer, &input, to)
            }))
        });
        let mut messages = Vec::with_capacity(built.len());
        for result in built {
            match result {
                Ok(message) => messages.push(message),
                Err(stale) => superseded.extend(stale),
            }
        }
        (messages, superseded)
    }

    /// Digests and monthly reports: each still owed (same week or month, recipient still a
    /// leader or chief) becomes its own message, built from the store's current directives.
    async fn report_messages(
        &self,
        snapshot: &Snapshot,
        calendar: &Calendar,
        now: DateTime<Tz>,
        notices: &[&Notice],
        messages: &mut Vec<NewMessage>,
        superseded: &mut Vec<Superseded>,
    ) -> Result<(), crate::store::StoreError> {
        let today = now.date_naive();
        let (since, due_from, due_until) = report_window(today);
        let directives = self.store.report_directives(since, due_from, due_until).await?;
        let input = ReportInput { snapshot, directives: &directives, calendar, policy: &self.config.policy, today };
        for notice in notices {
            let verdict =
                report_still_owed(&notice.stage, today, calendar, &self.config.report_schedule).and_then(|()| {
                    let person = snapshot.people.get(&notice.recipient).filter(|p| p.active);
                    let audience = audience_of(snapshot, &notice.recipient);
                    person.zip(audience).ok_or_else(|| "recipient no longer leads a block".to_string())
                });
            let (person, audience) = match verdict {
                Ok(found) => found,
                Err(reason) => {
                    superseded.push(Superseded::of(notice, reason));
                    continue;
                }
            };
            let kind = notice.kind.message_kind();
            messages.push(self.build(kind, person, notice.channel, &[notice], now, |outlet, to| {
                let rendered = render_report(&self.outlets.digests, &input, person, &audience, &notice.stage)
                    .map_err(|e| format!("cannot be rendered: {e}"))?;
                outlet.report(rendered, to)
            }));
        }
        Ok(())
    }

    /// Builds one message of `notices` for `person` on `channel` with `make`, to record. A
    /// message that cannot be built is still recorded, dead at once with the reason (a dead
    /// letter an operator sees in `status`), so it never blocks the batch and is never
    /// retried in a loop. Building runs templates and the mail library over imported text:
    /// whatever it meets, it fails this one message, never the round.
    fn build(
        &self,
        kind: MessageKind,
        person: &Person,
        channel: Channel,
        notices: &[&Notice],
        now: DateTime<Tz>,
        make: impl FnOnce(&dyn crate::channels::Channel, &Envelope<'_>) -> Result<Built, String>,
    ) -> NewMessage {
        // Time-ordered (UUIDv7): a round's messages, and the notices that point at them, are
        // appended at the end of their indexes instead of landing on random pages of them.
        let id = self.clock.new_id().to_string();
        let message_id = format!("<{id}@{}>", self.outlets.message_id_domain());
        let to = Envelope { person, message_id: &message_id, now };
        let built = match self.outlets.channel(channel) {
            None => Err(format!("the {channel} channel is switched off in configuration")),
            Some(outlet) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(outlet, &to)))
                .unwrap_or_else(|_| Err("rendering failed on this message's content".to_string())),
        };
        let (subject, payload, dead) = match built {
            Ok(Built { subject, payload }) => (subject, payload, None),
            Err(reason) => {
                tracing::error!(recipient = %person.code, %channel, notices = notices.len(), %reason, "message dead-lettered: it cannot be built");
                (String::new(), String::new(), Some(reason))
            }
        };
        NewMessage {
            packed: pack(&payload),
            id,
            message_id,
            kind,
            recipient: person.code.clone(),
            address: person.address_on(channel).unwrap_or_default(),
            channel,
            subject,
            payload,
            notice_keys: notices.iter().map(|n| n.key.clone()).collect(),
            dead,
        }
    }

    /// Counts and logs notices superseded rather than sent, under their own channel and kind.
    fn count_superseded(&self, superseded: &[Superseded]) {
        for s in superseded {
            self.metrics.record_message(s.kind.as_str(), s.channel.as_str(), "superseded");
            tracing::info!(key = %s.key, reason = %s.reason, "notice superseded, not sent");
        }
    }

    /// Sends a batch, `delivery.concurrency` at a time. Outcomes are recorded as soon as their
    /// sends return, while other sends go on; those that return while a recording is under
    /// way are recorded together, in one transaction (a group commit: one commit per message
    /// is what a round of thousands of messages spends most of its recording time on). A crash
    /// mid-batch leaves at most the sends in flight and the group being recorded unrecorded;
    /// their leases expire and they go out again.
    async fn send_all(
        &self,
        batch: Vec<ClaimedMessage>,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
    ) -> Result<(), crate::store::StoreError> {
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

    /// Records one group of outcomes, counts them, and falls back to chat for dead emails.
    async fn record_group(
        &self,
        done: &[(ClaimedMessage, MessageOutcome)],
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
    ) -> Result<(), crate::store::StoreError> {
        let held = self.record_outcomes(done, now).await?;
        for ((m, outcome), held) in done.iter().zip(held) {
            match outcome {
                MessageOutcome::Sent => stats.sent += 1,
                MessageOutcome::Retry { .. } => stats.retry_later += 1,
                MessageOutcome::Deferred { .. } => stats.deferred += 1,
                MessageOutcome::Dead { .. } => stats.dead += 1,
            }
            if !held {
                stats.lease_lost += 1;
                tracing::warn!(message_id = %m.message_id, "lease lost before the outcome was recorded");
            } else if let MessageOutcome::Dead { error, cause: DeadCause::Recipient } = outcome {
                // Only the recipient's own refusal is a bounce.
                self.fall_back(m, error, now).await?;
            }
        }
        Ok(())
    }

    /// Hands one stored message to its channel.
    async fn send_one(&self, m: &ClaimedMessage) -> Result<(), DeliveryError> {
        let stored = Stored { message_id: &m.message_id, address: &m.address, payload: &m.payload };
        match self.outlets.channel(m.channel) {
            Some(outlet) => outlet.send(stored).await,
            None => {
                Err(DeliveryError::Permanent(format!("the {} channel is switched off in configuration", m.channel)))
            }
        }
    }

    /// When an email is rejected for good: remember the bounce (the unit head is told, the
    /// block leader sees it in the digest), and send the same notices to the person's chat
    /// channel if they have one they do not already receive on.
    async fn fall_back(
        &self,
        m: &ClaimedMessage,
        reason: &str,
        now: DateTime<Tz>,
    ) -> Result<(), crate::store::StoreError> {
        if m.channel != Channel::Email || m.kind != MessageKind::Reminder {
            return Ok(());
        }
        let bounce = Bounce {
            person: m.recipient.clone(),
            address: m.address.clone(),
            channel: Channel::Email,
            reason: reason.to_string(),
        };
        self.store.record_bounce(&bounce, now.timestamp()).await?;
        let Some(person) = self.store.people().await?.into_iter().find(|p| p.code == m.recipient) else {
            return Ok(());
        };
        let enabled = self.config.enabled_channels();
        let already: Vec<Channel> = person.routes().into_iter().map(|(c, _)| c).collect();
        let chat = [Channel::Telegram, Channel::Webhook].into_iter().find(|c| {
            enabled.contains(c)
                && !already.contains(c)
                && (*c != Channel::Telegram || person.reach.telegram_chat_id.is_some())
                && (*c != Channel::Webhook || person.reach.webhook_id.is_some())
        });
        if let Some(channel) = chat {
            let address = person.address_on(channel).unwrap_or_default();
            let copied =
                self.store.copy_notices_to_channel(&m.id, m.channel, channel, &address, now.timestamp()).await?;
            tracing::info!(recipient = %m.recipient, %channel, copied, "email bounced: notices sent on the chat channel instead");
        }
        Ok(())
    }

    fn log_outcome(&self, message: &ClaimedMessage, outcome: &MessageOutcome) {
        let label = match outcome {
            MessageOutcome::Sent => "sent",
            MessageOutcome::Retry { .. } => "retry",
            MessageOutcome::Deferred { .. } => "server_error",
            MessageOutcome::Dead { .. } => "dead",
        };
        self.metrics.record_message(message.kind.as_str(), message.channel.as_str(), label);
        let (id, to) = (&message.message_id, &message.recipient);
        match outcome {
            MessageOutcome::Sent => tracing::info!(message_id = %id, recipient = %to, "sent"),
            MessageOutcome::Retry { error, next_attempt_at } => {
                tracing::warn!(message_id = %id, recipient = %to, error, next_attempt_at, "send failed, will retry")
            }
            MessageOutcome::Deferred { error, .. } => {
                tracing::debug!(message_id = %id, recipient = %to, error, "not sent: the server is unreachable or misconfigured")
            }
            MessageOutcome::Dead { error, cause } => {
                tracing::error!(message_id = %id, recipient = %to, error, cause = cause.as_str(), "send failed permanently")
            }
        }
    }

    /// Records the outcomes of sends that have happened, in one transaction; says for each
    /// whether this process still held its lease. A database hiccup here (a restart, a
    /// failover) is retried for a while rather than left to the lease — an expired lease
    /// would send the messages again.
    async fn record_outcomes(
        &self,
        done: &[(ClaimedMessage, MessageOutcome)],
        now: DateTime<Tz>,
    ) -> Result<Vec<bool>, crate::store::StoreError> {
        let outcomes: Vec<(&str, &MessageOutcome)> = done.iter().map(|(m, o)| (m.id.as_str(), o)).collect();
        let mut wait = Duration::from_millis(250);
        let give_up = crate::clock::monotonic() + Duration::from_secs(60);
        loop {
            match self.store.finish_messages(self.owner, &outcomes, now.timestamp()).await {
                Ok(held) => return Ok(held),
                Err(e) if crate::clock::monotonic() < give_up => {
                    tracing::warn!(messages = outcomes.len(), error = %e, "cannot record sends yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    // Kept for the next round, which records them before it claims or sends
                    // anything (their leases would otherwise expire and send them again).
                    if let Ok(mut kept) = self.unrecorded.lock() {
                        kept.extend(done.iter().map(|(m, outcome)| UnrecordedOutcome {
                            message: m.id.clone(),
                            outcome: outcome.clone(),
                            at: now.timestamp(),
                        }));
                    }
                    tracing::error!(messages = outcomes.len(), error = %e, "cannot record sends: the outcomes are kept and recorded once the database takes writes again");
                    return Err(e);
                }
            }
        }
    }

    /// Waits for the next round, no attempt counted: the channel's server is at fault.
    fn deferred(&self, now: DateTime<Tz>, error: String) -> MessageOutcome {
        let wait = i64::try_from(self.config.delivery.retry_base_seconds).unwrap_or(60);
        MessageOutcome::Deferred { next_attempt_at: now.timestamp() + wait, error }
    }

    /// Why `channel` is paused in this round, if it is.
    fn paused_reason(&self, channel: Channel) -> Option<String> {
        self.paused.lock().ok()?.get(channel.as_str()).cloned()
    }

    /// Pauses `channel` for the rest of the round, saying so once.
    fn pause(&self, channel: Channel, reason: &str) {
        let Ok(mut paused) = self.paused.lock() else { return };
        if !paused.contains_key(channel.as_str()) {
            tracing::error!(%channel, %reason, "delivery paused on this channel until the next round: its server is unreachable or misconfigured; nothing is lost and no recipient is blamed");
            paused.insert(channel.to_string(), reason.to_string());
        }
    }

    /// The channels paused in this round, with the reason.
    pub fn paused_channels(&self) -> BTreeMap<String, String> {
        self.paused.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The recorded messages to send: a message recorded dead (it could not be built) is
    /// counted, not sent.
    fn sendable(&self, messages: Vec<NewMessage>, stats: &mut DeliveryStats) -> Vec<ClaimedMessage> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            if m.dead.is_some() {
                stats.dead += 1;
                self.metrics.record_message(m.kind.as_str(), m.channel.as_str(), "dead");
            } else {
                out.push(ClaimedMessage::from(m));
            }
        }
        out
    }

    fn outcome(
        &self,
        message: &ClaimedMessage,
        result: Result<(), DeliveryError>,
        now: DateTime<Tz>,
    ) -> MessageOutcome {
        let delivery = &self.config.delivery;
        let attempt = u32::try_from(message.attempts + 1).unwrap_or(u32::MAX);
        match result {
            Ok(()) => MessageOutcome::Sent,
            Err(DeliveryError::Permanent(error)) => MessageOutcome::Dead { error, cause: DeadCause::Recipient },
            Err(DeliveryError::Unavailable(error)) => self.deferred(now, error),
            Err(DeliveryError::Transient(error)) if attempt >= delivery.max_attempts => MessageOutcome::Dead {
                error: format!("gave up after {attempt} attempts; last error: {error}"),
                cause: DeadCause::Exhausted,
            },
            Err(DeliveryError::Transient(error)) => {
                let delay =
                    retry_delay(delivery.retry_base_seconds, delivery.retry_max_seconds, attempt, self.clock.jitter());
                MessageOutcome::Retry {
                    next_attempt_at: now.timestamp() + i64::try_from(delay).unwrap_or(i64::MAX / 2),
                    error,
                }
            }
            // A server that asks us to wait (HTTP 429) is obeyed to the second.
            Err(DeliveryError::Throttled { retry_after_seconds, reason }) => MessageOutcome::Retry {
                next_attempt_at: now.timestamp() + i64::try_from(retry_after_seconds).unwrap_or(i64::MAX / 2),
                error: reason,
            },
        }
    }
}

/// A queued notice is still owed when re-planning its directive now yields its very key;
/// otherwise it is stale, and the reason says why.
fn still_owed(notice: &Notice, directive: Option<&Directive>, owed: Option<&Vec<Notice>>) -> Result<(), String> {
    let Some(directive) = directive else {
        return Err("directive no longer exists".into());
    };
    // Compared without the channel: a copy sent on chat after an email bounce is owed as
    // long as the email notice would be.
    if owed.is_some_and(|o| o.iter().any(|n| n.key.without_channel() == notice.key.without_channel())) {
        return Ok(());
    }
    Err(match directive.status {
        Status::Completed => "directive completed".into(),
        Status::Cancelled => "directive cancelled".into(),
        _ if notice.effective_due.is_some() && notice.effective_due != directive.due_on => {
            "no longer owed: due date changed or a later stage was reached".into()
        }
        _ => "no longer owed: reassigned or state changed".into(),
    })
}
