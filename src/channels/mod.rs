//! Channels: the last hop, from a recorded message to the outside world. A channel sends the
//! stored bytes as they are and classifies failure as transient (retry later) or permanent
//! (dead: retrying cannot help); it never decides what to send.

pub mod email;
mod http_status;
mod smtp_pool;
pub mod telegram;
pub mod webhook;

pub use email::EmailChannel;

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
