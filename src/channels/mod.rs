//! Channels: the last hop. Delivery decides what is owed and to whom; a [`Channel`] builds
//! that into its own payload (a MIME email, a chat message, a webhook's JSON) before it is
//! recorded, then sends the stored payload as it is and says whose fault a failure was:
//! the message's (transient: retry later), the server's (unavailable: pause the round), or
//! the recipient's (permanent: a bounce). A new channel implements the trait and is listed in
//! [`Outlets`]; delivery does not change.

pub mod email;
mod http_status;
pub mod outlets;
mod smtp_pool;
pub mod telegram;
pub mod webhook;

pub use email::EmailChannel;
pub use outlets::{templates_dir as outlets_templates_dir, Outlets};

use crate::domain::{self, Person};
use crate::render::{ReminderInput, Rendered, Renderer};
use chrono::DateTime;
use chrono_tz::Tz;
use futures_util::future::BoxFuture;

/// One way of reaching people: email, Telegram, a webhook, and those still to come.
pub trait Channel: Send + Sync {
    /// Which channel this is, as people's `channels` and the outbox name it.
    fn name(&self) -> domain::Channel;

    /// Whether each notice goes alone (a receiver idempotent by the notice's key) rather
    /// than grouped into one message per person.
    fn one_notice_per_message(&self) -> bool {
        false
    }

    /// Builds one person's reminder, listing `input`'s notices.
    fn reminder(&self, renderer: &Renderer, input: &ReminderInput<'_>, to: &Envelope<'_>) -> Result<Built, String>;

    /// Builds a weekly digest or a monthly report already rendered; a channel that carries
    /// none refuses.
    fn report(&self, rendered: Rendered, to: &Envelope<'_>) -> Result<Built, String> {
        drop(rendered);
        Err(format!("the {} channel does not carry digests or reports (to {})", self.name(), to.person.code))
    }

    /// Sends one stored message.
    fn send<'a>(&'a self, message: Stored<'a>) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Who a message is built for, and what identifies it.
pub struct Envelope<'a> {
    pub person: &'a Person,
    /// The message's `Message-ID` (`<id@domain>`), also the idempotency key of a retry.
    pub message_id: &'a str,
    /// The instant the message is built at, for its `Date`.
    pub now: DateTime<Tz>,
}

/// A message as its channel built it: a one-line subject (shown in `status`) and the payload
/// that is stored and sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub subject: String,
    pub payload: String,
}

impl Built {
    /// A chat payload, its subject the first line of it.
    pub fn chat(payload: String) -> Built {
        Built { subject: payload.lines().next().unwrap_or_default().chars().take(200).collect(), payload }
    }
}

/// A recorded message as a channel sends it.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub message_id: &'a str,
    pub address: &'a str,
    pub payload: &'a str,
}

/// Why a send failed, and whether trying again later can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// 4xx replies, timeouts, refused or dropped connections: retry with backoff.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The server asked us to slow down (HTTP 429): retry after exactly this long.
    #[error("throttled for {retry_after_seconds}s: {reason}")]
    Throttled { retry_after_seconds: u64, reason: String },
    /// The server is unreachable or misconfigured (connection refused, TLS or AUTH failure,
    /// our sender refused, a bad token): nothing can go out on this channel now, and it is
    /// nobody's address at fault. The round pauses on this channel; the message waits for the
    /// next round without an attempt counted against it.
    #[error("server unreachable or misconfigured: {0}")]
    Unavailable(String),
    /// The recipient was refused for good (a 5xx answer to RCPT TO or to the message, an
    /// invalid address): retrying will not help. Only this counts as a bounce.
    #[error("permanent failure: {0}")]
    Permanent(String),
}
