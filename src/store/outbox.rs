//! The outbox tables. Notices are inserted by key (`ON CONFLICT DO NOTHING`), so replaying a
//! plan is harmless. Delivery claims pending notices inside one write transaction, groups
//! them into messages and records those (leased to the claimer) before anything is sent;
//! afterwards each message is marked sent, retried later, or dead — only by its lease holder.
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas never take the same rows;
//! SQLite gets the same guarantee from `BEGIN IMMEDIATE`.

use super::{placeholders, Result, Store};
use crate::config::Backend;
use crate::domain::Notice;
use sqlx::Any;
use std::collections::HashSet;

/// A notice waiting in the outbox, as delivery sees it when claiming.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedNotice {
    pub key: String,
    pub kind: String,
    pub directive: Option<String>,
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub ladder: String,
    pub stage: String,
    pub effective_due: Option<String>,
    pub days_overdue: i64,
}

const QUEUED_NOTICE_COLUMNS: &str =
    "key, kind, directive, recipient, address, channel, ladder, stage, effective_due, days_overdue";

/// A message built from claimed notices, to be recorded (and leased) before it is sent.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub message_id: String,
    /// reminder, digest or report.
    pub kind: String,
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub subject: String,
    pub payload: String,
    pub notice_keys: Vec<String>,
}

/// A recorded message leased to this process for one send attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedMessage {
    pub id: String,
    pub message_id: String,
    pub kind: String,
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub subject: String,
    pub payload: String,
    pub attempts: i64,
}

const CLAIMED_MESSAGE_COLUMNS: &str = "id, message_id, kind, recipient, address, channel, subject, payload, attempts";

/// What became of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Sent,
    /// Try again at `next_attempt_at` (logical epoch seconds).
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// Pending notices claimed in an open write transaction. Commit with the messages built from
/// them; dropping it rolls back and leaves them pending.
pub struct NoticeClaim {
    tx: sqlx::Transaction<'static, Any>,
    pub notices: Vec<QueuedNotice>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub notices: Vec<(String, i64)>,
    pub messages: Vec<(String, i64)>,
}

/// A message that will never be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: String,
    pub message_id: String,
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub subject: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    pub counts: OutboxCounts,
    pub dead_letters: Vec<DeadLetter>,
    /// Queued messages waiting for a retry: (count, earliest next attempt, epoch seconds).
    pub retrying: i64,
    pub next_retry_at: Option<i64>,
}

fn lock_suffix(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

impl Store {
    /// Records owed notices; returns how many were new. An earlier stage still pending when a
    /// later one is recorded is superseded at claim time, when every notice is re-planned.
    pub async fn enqueue(&self, notices: &[Notice], now: i64) -> Result<usize> {
        const COLUMNS: usize = 13;
        let mut inserted: Vec<String> = Vec::new();
        let mut tx = self.begin_write().await?;
        for chunk in notices.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| placeholders(1 + i * COLUMNS, COLUMNS).replacen(')', ", 'pending')", 1))
                .collect();
            let sql = format!(
                "INSERT INTO notices (key, kind, directive, recipient, address, channel, ladder, stage,
                     effective_due, days_overdue, planned_at, updated_at, reason, status)
                 VALUES {} ON CONFLICT (key) DO NOTHING RETURNING key",
                values.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String,)>(&sql);
            for n in chunk {
                query = query
                    .bind(n.key.clone())
                    .bind(n.kind.as_str())
                    .bind(n.directive.clone())
                    .bind(n.recipient.clone())
                    .bind(n.address.clone())
                    .bind(n.channel.as_str())
                    .bind(n.ladder.as_str())
                    .bind(n.stage.clone())
                    .bind(n.effective_due.map(|d| d.to_string()))
                    .bind(i64::from(n.days_overdue))
                    .bind(now)
                    .bind(now)
                    .bind(None::<String>);
            }
            inserted.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|(k,)| k));
        }
        tx.commit().await?;
        Ok(inserted.len())
    }

    /// Which of `keys` the outbox already holds (in any state).
    pub async fn known_keys(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in keys.chunks(500) {
            let sql = format!("SELECT key FROM notices WHERE key IN {}", placeholders(1, chunk.len()));
            let mut query = sqlx::query_as::<_, (String,)>(&sql);
            for key in chunk {
                query = query.bind(key.clone());
            }
            known.extend(query.fetch_all(&self.pool).await?.into_iter().map(|(k,)| k));
        }
        Ok(known)
    }

    /// Claims pending notices: the first `limit` in recipient order, plus every other pending
    /// notice of those recipients, so one person's notices end up in one message.
    pub async fn claim_notices(&self, limit: u32) -> Result<NoticeClaim> {
        let mut tx = self.begin_write().await?;
        let lock = lock_suffix(self.backend);
        let sql = format!(
            "SELECT {QUEUED_NOTICE_COLUMNS} FROM notices WHERE status = 'pending'
              ORDER BY recipient, channel, key LIMIT $1{lock}"
        );
        let mut notices: Vec<QueuedNotice> = sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let mut recipients: Vec<String> = notices.iter().map(|n| n.recipient.clone()).collect();
        recipients.dedup();
        let mut seen: HashSet<String> = notices.iter().map(|n| n.key.clone()).collect();
        for chunk in recipients.chunks(500) {
            let sql = format!(
                "SELECT {QUEUED_NOTICE_COLUMNS} FROM notices WHERE status = 'pending' AND recipient IN {}{lock}",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, QueuedNotice>(&sql);
            for r in chunk {
                query = query.bind(r.clone());
            }
            for n in query.fetch_all(&mut *tx).await? {
                if seen.insert(n.key.clone()) {
                    notices.push(n);
                }
            }
        }
        Ok(NoticeClaim { tx, notices })
    }

    /// Leases queued messages whose next attempt is due at `now` (logical clock) and whose
    /// lease, if any, has expired on the wall clock — retries, and sends a crashed process
    /// left behind.
    pub async fn claim_due_messages(
        &self,
        owner: &str,
        now: i64,
        wall_now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE messages SET lease_owner = $1, lease_until = $2
              WHERE status = 'queued' AND (lease_until IS NULL OR lease_until < $3)
                AND id IN (SELECT id FROM messages
                            WHERE status = 'queued' AND next_attempt_at <= $4
                              AND (lease_until IS NULL OR lease_until < $3)
                            ORDER BY next_attempt_at, id LIMIT $5{})
              RETURNING {CLAIMED_MESSAGE_COLUMNS}",
            lock_suffix(self.backend)
        );
        let claimed = sqlx::query_as(&sql)
            .bind(owner.to_string())
            .bind(lease_until)
            .bind(wall_now)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records the outcome of one send attempt, if this process still holds the lease.
    /// Returns false when the lease was lost (another process has taken the message over).
    pub async fn finish_message(&self, id: &str, owner: &str, outcome: &MessageOutcome, now: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let (status, next_at, error) = match outcome {
            MessageOutcome::Sent => ("sent", None, None),
            MessageOutcome::Retry { next_attempt_at, error } => ("queued", Some(*next_attempt_at), Some(error.clone())),
            MessageOutcome::Dead { error } => ("dead", None, Some(error.clone())),
        };
        let updated = sqlx::query(
            "UPDATE messages SET status = $1, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,
                    next_attempt_at = COALESCE($2, next_attempt_at), last_error = COALESCE($3, last_error),
                    sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END
              WHERE id = $5 AND lease_owner = $6 AND status = 'queued'",
        )
        .bind(status)
        .bind(next_at)
        .bind(error.clone())
        .bind(now)
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 && status != "queued" {
            sqlx::query("UPDATE notices SET status = $1, reason = $2, updated_at = $3 WHERE message = $4")
                .bind(status)
                .bind(error)
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Gives back every lease this process holds (on shutdown), so another round can send
    /// them at once instead of waiting for the lease to expire.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND status = 'queued'",
        )
        .bind(owner.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Copies the notices of a dead message onto another channel (the person's chat, when
    /// their email bounced), keyed for that channel so the copy is made once. Returns how
    /// many copies are new.
    pub async fn copy_notices_to_channel(&self, message: &str, channel: &str, address: &str, now: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // Keys end in ':<channel>'; the copy swaps that last part.
        let copied = sqlx::query(
            "INSERT INTO notices (key, kind, directive, recipient, address, channel, ladder, stage, effective_due,
                                  days_overdue, status, message, reason, planned_at, updated_at)
             SELECT substr(key, 1, length(key) - length(channel)) || $1, kind, directive, recipient, $2, $1, ladder,
                    stage, effective_due, days_overdue, 'pending', NULL, $3, $4, $4
               FROM notices WHERE message = $5
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(channel.to_string())
        .bind(address.to_string())
        .bind(format!("fallback: the {} message bounced", "email"))
        .bind(now)
        .bind(message.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(copied)
    }

    /// Notices and messages by state, the dead letters, and what waits for a retry.
    pub async fn status_report(&self, dead_limit: i64) -> Result<StatusReport> {
        let notices: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM notices GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        let messages: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        let dead_letters = sqlx::query_as(
            "SELECT id, message_id, recipient, address, channel, subject, attempts, last_error
               FROM messages WHERE status = 'dead' ORDER BY created_at DESC, id LIMIT $1",
        )
        .bind(dead_limit)
        .fetch_all(&self.pool)
        .await?;
        let (retrying, next_retry_at): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(next_attempt_at) FROM messages WHERE status = 'queued' AND attempts > 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StatusReport { counts: OutboxCounts { notices, messages }, dead_letters, retrying, next_retry_at })
    }

    /// Empties the outbox (benchmarks only: `nhacviec bench` measures a cycle from scratch).
    pub async fn clear_outbox(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM messages").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM notices").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts every message back in the queue, due at once and unleased, as if never sent;
    /// returns how many (benchmarks only: the SMTP runs resend the same recorded messages).
    pub async fn requeue_messages(&self) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = 0, lease_owner = NULL,
                    lease_until = NULL, last_error = NULL, sent_at = NULL",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE notices SET status = 'queued' WHERE message IS NOT NULL").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Messages not yet finished (queued, including retries) — the backlog.
    pub async fn backlog(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status = 'queued') + (SELECT COUNT(*) FROM notices WHERE status = 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}

impl NoticeClaim {
    /// Records the messages (leased to `owner` until `lease_until`, wall clock), links their
    /// notices, marks stale notices superseded with their reason, and commits.
    pub async fn commit(
        mut self,
        messages: &[NewMessage],
        superseded: &[(String, String)],
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<()> {
        for m in messages {
            sqlx::query(
                "INSERT INTO messages (id, message_id, kind, recipient, address, channel, subject, payload, notice_count,
                        status, attempts, next_attempt_at, lease_until, lease_owner, last_error, created_at, sent_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $11, $12, NULL, $13, NULL)",
            )
            .bind(m.id.clone())
            .bind(m.message_id.clone())
            .bind(m.kind.clone())
            .bind(m.recipient.clone())
            .bind(m.address.clone())
            .bind(m.channel.clone())
            .bind(m.subject.clone())
            .bind(m.payload.clone())
            .bind(i64::try_from(m.notice_keys.len()).unwrap_or(i64::MAX))
            .bind(now)
            .bind(lease_until)
            .bind(owner.to_string())
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
            for chunk in m.notice_keys.chunks(500) {
                let sql = format!(
                    "UPDATE notices SET status = 'queued', message = $1, updated_at = $2 WHERE key IN {}",
                    placeholders(3, chunk.len())
                );
                let mut query = sqlx::query(&sql).bind(m.id.clone()).bind(now);
                for key in chunk {
                    query = query.bind(key.clone());
                }
                query.execute(&mut *self.tx).await?;
            }
        }
        for (key, reason) in superseded {
            sqlx::query("UPDATE notices SET status = 'superseded', reason = $1, updated_at = $2 WHERE key = $3")
                .bind(reason.clone())
                .bind(now)
                .bind(key.clone())
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}
