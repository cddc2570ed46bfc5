//! Deliver ← build: the CPU part of a round. Owed notices are grouped into one message per
//! person and channel (one per notice where grouping is off or the channel wants it), and each
//! message is built by its channel — rendered, MIME-encoded — on every core. Owns what it needs
//! (shared handles), so it runs on the blocking pool beside the round's database and network
//! work. A message that cannot be built is recorded dead at once, alone.

use crate::channels::{Built, Envelope, Outlets};
use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::parallel::map_in_parallel;
use crate::domain::{Channel, Directive, MessageKind, Notice, Person, Superseded};
use crate::plan::Snapshot;
use crate::render::ReminderInput;
use crate::store::{Message, NewMessage};
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The notices that become one message: (recipient, channel, slot) and the notices.
type Group<'n> = ((String, Channel, usize), Vec<&'n Notice>);

/// Builds messages from notices; cheap to clone.
#[derive(Clone)]
pub struct Builder {
    pub config: Arc<Config>,
    pub outlets: Arc<Outlets>,
    pub clock: Arc<Clock>,
}

impl Builder {
    /// Groups owed reminders into messages and builds them, on every core. Notices whose
    /// recipient is gone or inactive come back superseded with the reason.
    pub fn reminders(
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
        let reply_to_address = crate::channels::outlets::reply_address(&self.config);
        let reply_to = reply_to_address.as_deref();
        let renderer = &self.outlets.renderer;
        let today = now.date_naive();
        let groups: Vec<Group> = groups.into_iter().collect();
        let built = map_in_parallel(&groups, |((recipient, channel, _), group)| {
            let Some(person) = snapshot.people.get(recipient) else {
                return Err(group.iter().map(|n| Superseded::of(n, "recipient no longer active")).collect::<Vec<_>>());
            };
            let input =
                ReminderInput { agency, reply_to, today, recipient: person, notices: group, directives, snapshot };
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

    /// Builds one message of `notices` for `person` on `channel` with `make`. A message that
    /// cannot be built is still returned, dead with the reason (a dead letter an operator sees
    /// in `status`), so it never blocks the batch and is never retried in a loop. Building
    /// runs templates and the mail library over imported text: whatever it meets, it fails
    /// this one message, never the round.
    pub fn build(
        &self,
        kind: MessageKind,
        person: &Person,
        channel: Channel,
        notices: &[&Notice],
        now: DateTime<Tz>,
        make: impl FnOnce(&dyn crate::channels::Channel, &Envelope<'_>) -> Result<Built, String>,
    ) -> NewMessage {
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
        let message = Message {
            id,
            message_id,
            kind,
            recipient: person.code.clone(),
            address: person.address_on(channel).unwrap_or_default(),
            channel,
            subject,
            payload,
        };
        NewMessage::new(message, notices.iter().map(|n| n.key.clone()).collect(), dead)
    }
}
