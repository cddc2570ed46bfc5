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
    /// 5xx replies and malformed addresses: retrying will not help.
    #[error("permanent failure: {0}")]
    Permanent(String),
}
