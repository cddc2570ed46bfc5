//! Store ← outbox, status: counts of notices and messages by state, the dead letters and
//! what waits for a retry or for its server, for `status` and the health endpoint.

use super::{Result, Store};
use crate::domain::{ErrorKind, MessageStatus, NoticeStatus};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub notices: Vec<(String, i64)>,
    pub messages: Vec<(String, i64)>,
}

/// A message that will never be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: String,
    /// The `Message-ID` it was built with (what a recipient's mail system would log).
    pub message_id: String,
    /// Person code, and the address on `channel` that was tried.
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub subject: String,
    /// How many sends were tried.
    pub attempts: i64,
    /// The last answer from the server, or why it could not be built.
    pub last_error: Option<String>,
    /// Who caused it: `recipient` (the address was refused: a bounce), `build` (the message
    /// could not be built from its data), `exhausted` (temporary failures until the attempts
    /// ran out).
    pub error_kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    pub counts: OutboxCounts,
    pub dead_letters: Vec<DeadLetter>,
    /// Queued messages waiting for a retry: (count, earliest next attempt, epoch seconds).
    pub retrying: i64,
    pub next_retry_at: Option<i64>,
    /// Queued messages held back because their channel's server was unreachable or
    /// misconfigured — no address is at fault — and the latest such error.
    pub waiting_on_server: i64,
    pub server_error: Option<String>,
}

impl Store {
    /// Notices and messages by state, the dead letters, and what waits for a retry. A notice
    /// in a message is counted by the message's state (queued, sent, dead): summed from the
    /// messages' notice counts, not read from a hundred thousand notice rows.
    pub async fn status_report(&self, dead_limit: i64) -> Result<StatusReport> {
        let mut notices: BTreeMap<String, i64> = BTreeMap::new();
        for status in [NoticeStatus::Pending, NoticeStatus::Superseded] {
            notices.insert(status.to_string(), self.count_notices(status).await?);
        }
        for (status, notice_count, _) in &self.count_messages().await? {
            *notices.entry(status.clone()).or_default() += notice_count;
        }
        let notices: Vec<(String, i64)> = notices.into_iter().filter(|(_, n)| *n > 0).collect();
        let messages: Vec<(String, i64)> =
            self.count_messages().await?.into_iter().map(|(status, _, n)| (status, n)).collect();
        let (retrying, next_retry_at) = self.retrying().await?;
        let (waiting_on_server, server_error) = self.waiting_on_server().await?;
        Ok(StatusReport {
            counts: OutboxCounts { notices, messages },
            dead_letters: self.dead_letters(dead_limit).await?,
            retrying,
            next_retry_at,
            waiting_on_server,
            server_error,
        })
    }

    /// Notices in `status`: one count per partial index (its condition is the query's, as a
    /// literal).
    async fn count_notices(&self, status: NoticeStatus) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM notices WHERE status = '{status}'"))
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Per message status: the notices in those messages, and the messages.
    async fn count_messages(&self) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT status, CAST(SUM(notice_count) AS BIGINT), COUNT(*) FROM messages GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest dead letters, newest first.
    async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT id, message_id, recipient, address, channel, subject, attempts, last_error, error_kind
               FROM messages WHERE status = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(MessageStatus::Dead.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queued messages that failed at least once, and the earliest next attempt.
    async fn retrying(&self) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as("SELECT COUNT(*), MIN(next_attempt_at) FROM messages WHERE status = $1 AND attempts > 0")
            .bind(MessageStatus::Queued.as_str())
            .fetch_one(&self.pool)
            .await?)
    }

    /// Queued messages waiting for their server, and the latest such error.
    async fn waiting_on_server(&self) -> Result<(i64, Option<String>)> {
        let queued = MessageStatus::Queued.as_str();
        let server = ErrorKind::Server.as_str();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages WHERE status = $1 AND error_kind = $2")
            .bind(queued)
            .bind(server)
            .fetch_one(&self.pool)
            .await?;
        let latest: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT last_error FROM messages WHERE status = $1 AND error_kind = $2
              ORDER BY next_attempt_at DESC LIMIT 1",
        )
        .bind(queued)
        .bind(server)
        .fetch_optional(&self.pool)
        .await?;
        Ok((n, latest.and_then(|(e,)| e)))
    }
}
