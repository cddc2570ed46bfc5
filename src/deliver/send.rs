//! Deliver ← send: recorded messages go to their channels, `delivery.concurrency` at a time,
//! outside any transaction; each outcome is recorded as soon as its send returns, by the lease
//! holder. A server that is down pauses its channel for the round (nothing counted against the
//! messages, no recipient blamed); only a recipient refused for good is a bounce, which falls
//! back to the person's chat channel.

use super::{Deliverer, DeliveryStats, UnrecordedOutcome};
use crate::channels::{DeliveryError, Stored};
use crate::deliver::window::retry_delay;
use crate::domain::{Bounce, Channel, MessageKind};
use crate::store::{ClaimedMessage, DeadCause, MessageOutcome, NewMessage, StoreError};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::time::Duration;

impl Deliverer<'_> {
    /// Records one group of outcomes, counts them, and falls back to chat for dead emails.
    pub(super) async fn record_group(
        &self,
        done: &[(ClaimedMessage, MessageOutcome)],
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
    ) -> Result<(), StoreError> {
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
    pub(super) async fn send_one(&self, m: &ClaimedMessage) -> Result<(), DeliveryError> {
        let stored = Stored { message_id: &m.message_id, address: &m.address, payload: &m.payload };
        match self.builder.outlets.channel(m.channel) {
            Some(outlet) => outlet.send(stored).await,
            None => {
                Err(DeliveryError::Permanent(format!("the {} channel is switched off in configuration", m.channel)))
            }
        }
    }

    /// When an email is rejected for good: remember the bounce (the unit head is told, the
    /// block leader sees it in the digest), and send the same notices to the person's chat
    /// channel if they have one they do not already receive on.
    async fn fall_back(&self, m: &ClaimedMessage, reason: &str, now: DateTime<Tz>) -> Result<(), StoreError> {
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
        // The first other channel switched on that the person has their own address on.
        let already: Vec<Channel> = person.routes().into_iter().map(|(c, _)| c).collect();
        let chat = self
            .config
            .enabled_channels()
            .into_iter()
            .find(|c| *c != m.channel && !already.contains(c) && person.has_own_address_on(*c));
        if let Some(channel) = chat {
            let address = person.address_on(channel).unwrap_or_default();
            let copied =
                self.store.copy_notices_to_channel(&m.id, m.channel, channel, &address, now.timestamp()).await?;
            tracing::info!(recipient = %m.recipient, %channel, copied, "email bounced: notices sent on the chat channel instead");
        }
        Ok(())
    }

    pub(super) fn log_outcome(&self, message: &ClaimedMessage, outcome: &MessageOutcome) {
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
    ) -> Result<Vec<bool>, StoreError> {
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
    pub(super) fn deferred(&self, now: DateTime<Tz>, error: String) -> MessageOutcome {
        let wait = i64::try_from(self.config.delivery.retry_base_seconds).unwrap_or(60);
        MessageOutcome::Deferred { next_attempt_at: now.timestamp() + wait, error }
    }

    /// Why `channel` is paused in this round, if it is.
    pub(super) fn paused_reason(&self, channel: Channel) -> Option<String> {
        self.paused.lock().ok()?.get(channel.as_str()).cloned()
    }

    /// Pauses `channel` for the rest of the round, saying so once.
    pub(super) fn pause(&self, channel: Channel, reason: &str) {
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
    pub(super) fn sendable(&self, messages: Vec<NewMessage>, stats: &mut DeliveryStats) -> Vec<ClaimedMessage> {
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

    pub(super) fn outcome(
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
                let delay = retry_delay(
                    delivery.retry_base_seconds,
                    delivery.retry_max_seconds,
                    attempt,
                    self.builder.clock.jitter(),
                );
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
