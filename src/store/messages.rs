//! Store ← outbox, messages: what delivery built from claimed notices, recorded (leased to
//! the claimer, wall clock) before anything is sent; afterwards each is marked sent, tried
//! again later, or dead — only by its lease holder. Retries and sends a crashed process left
//! behind are claimed again once their lease expires.

use super::dialect::Dialect;
use super::payloads::{insert_payloads, read_payloads};
use super::{keep_prepared, rows_per_statement, Marks, Result, Store, StoreError, Tx};
use crate::domain::{Channel, ErrorKind, MessageKind, MessageStatus, NoticeKey};
use std::collections::HashSet;

/// A message as it is recorded and sent: to whom, where, on which channel, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The row's id (UUIDv7).
    pub id: String,
    /// The `Message-ID` the recipient's mail client sees; the idempotency key on chat.
    pub message_id: String,
    pub kind: MessageKind,
    /// The recipient's person code.
    pub recipient: String,
    /// Their address on `channel`.
    pub address: String,
    pub channel: Channel,
    pub subject: String,
    /// What the channel sends (MIME bytes, or a chat request's body), unpacked.
    pub payload: String,
}

/// A message built from claimed notices, to be recorded (and leased) before it is sent.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message: Message,
    /// The payload as stored: [`pack`](super::pack)ed (done where the message is rendered, on
    /// every core, rather than while the database waits).
    pub packed: Vec<u8>,
    pub notice_keys: Vec<NoticeKey>,
    /// Why the message could not be built, if it could not: it is recorded dead with this
    /// reason (and its notices with it), never sent.
    pub dead: Option<String>,
}

impl NewMessage {
    /// `message` for `notice_keys`, its payload packed here; `dead` if it could not be built.
    pub fn new(message: Message, notice_keys: Vec<NoticeKey>, dead: Option<String>) -> NewMessage {
        NewMessage { packed: super::pack(&message.payload), message, notice_keys, dead }
    }
}

/// A recorded message leased to this process for one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub message: Message,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::ops::Deref for NewMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl std::ops::Deref for ClaimedMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl From<NewMessage> for ClaimedMessage {
    /// A message just recorded under this process's lease, not yet tried.
    fn from(m: NewMessage) -> ClaimedMessage {
        ClaimedMessage { message: m.message, attempts: 0 }
    }
}

/// A claimed message's row; its payload is read from `message_payloads`.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    message_id: String,
    kind: String,
    recipient: String,
    address: String,
    channel: String,
    subject: String,
    attempts: i64,
}

const CLAIMED_COLUMNS: &str = "id, message_id, kind, recipient, address, channel, subject, attempts";

impl ClaimedRow {
    fn with_payload(self, payload: String) -> Result<ClaimedMessage> {
        let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
            table: "messages",
            column,
            value: value.to_string(),
        };
        let message = Message {
            kind: self.kind.parse().map_err(|_| corrupt("kind", &self.kind))?,
            channel: self.channel.parse().map_err(|_| corrupt("channel", &self.channel))?,
            id: self.id,
            message_id: self.message_id,
            recipient: self.recipient,
            address: self.address,
            subject: self.subject,
            payload,
        };
        Ok(ClaimedMessage { message, attempts: self.attempts })
    }
}

/// What became of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Sent,
    /// A temporary failure of this message: try again at `next_attempt_at` (logical epoch
    /// seconds); the attempt counts towards `delivery.max_attempts`.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// Not sent because the channel's server is unreachable or misconfigured: waits for
    /// `next_attempt_at` without an attempt counted, so no outage can use a message up.
    Deferred {
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        error: String,
        cause: DeadCause,
    },
}

/// Why a message is dead; stored in `messages.error_kind` beside the error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadCause {
    /// The server refused the recipient for good (a bounce).
    Recipient,
    /// Temporary failures until `delivery.max_attempts` ran out.
    Exhausted,
}

impl DeadCause {
    pub fn error_kind(self) -> ErrorKind {
        match self {
            DeadCause::Recipient => ErrorKind::Recipient,
            DeadCause::Exhausted => ErrorKind::Exhausted,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.error_kind().as_str()
    }
}

impl MessageOutcome {
    /// The row an outcome leaves: status, next attempt, error, who caused it, and whether
    /// the attempt counts.
    fn record(&self) -> (MessageStatus, Option<i64>, Option<&str>, Option<ErrorKind>, i64) {
        match self {
            MessageOutcome::Sent => (MessageStatus::Sent, None, None, None, 1),
            MessageOutcome::Retry { next_attempt_at, error } => {
                (MessageStatus::Queued, Some(*next_attempt_at), Some(error), Some(ErrorKind::Transient), 1)
            }
            MessageOutcome::Deferred { next_attempt_at, error } => {
                (MessageStatus::Queued, Some(*next_attempt_at), Some(error), Some(ErrorKind::Server), 0)
            }
            MessageOutcome::Dead { error, cause } => {
                (MessageStatus::Dead, None, Some(error), Some(cause.error_kind()), 1)
            }
        }
    }
}

impl Store {
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
        let queued = MessageStatus::Queued;
        let sql = format!(
            "UPDATE messages SET lease_owner = $1, lease_until = $2
              WHERE status = '{queued}' AND (lease_until IS NULL OR lease_until < $3)
                AND id IN (SELECT id FROM messages
                            WHERE status = '{queued}' AND next_attempt_at <= $4
                              AND (lease_until IS NULL OR lease_until < $3)
                            ORDER BY next_attempt_at, id LIMIT $5{})
              RETURNING {CLAIMED_COLUMNS}",
            self.dialect.claim_lock()
        );
        let rows: Vec<ClaimedRow> = sqlx::query_as(&sql)
            .bind(owner.to_string())
            .bind(lease_until)
            .bind(wall_now)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut payloads = read_payloads(&mut tx, self.dialect, &ids).await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| {
                let payload = payloads.remove(&r.id).unwrap_or_default();
                r.with_payload(payload)
            })
            .collect()
    }

    /// Records the outcome of one send attempt, if this process still holds the lease.
    /// Returns false when the lease was lost (another process has taken the message over).
    pub async fn finish_message(&self, id: &str, owner: &str, outcome: &MessageOutcome, now: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let held = finish_in(&mut tx, id, owner, outcome, now).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// [`Store::finish_message`] for several outcomes in one transaction; says for each
    /// whether the lease was still held. One commit per message is what a round of ten
    /// thousand messages spends most of its recording time on (an fsync each on PostgreSQL);
    /// a sender that records the outcomes ready at the same moment together pays it once.
    pub async fn finish_messages(
        &self,
        owner: &str,
        outcomes: &[(&str, &MessageOutcome)],
        now: i64,
    ) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let sent: Vec<&str> =
            outcomes.iter().filter(|(_, o)| matches!(o, MessageOutcome::Sent)).map(|(id, _)| *id).collect();
        let held_sent = mark_sent(&mut tx, self.dialect, owner, &sent, now).await?;
        let mut result = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            result.push(match outcome {
                MessageOutcome::Sent => held_sent.contains(*id),
                _ => finish_in(&mut tx, id, owner, outcome, now).await?,
            });
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Gives back every lease this process holds (on shutdown), so another round can send
    /// them at once instead of waiting for the lease to expire.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND status = $2",
        )
        .bind(owner.to_string())
        .bind(MessageStatus::Queued.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Messages not yet finished (queued, including retries) and notices waiting to be
    /// claimed — the backlog.
    pub async fn backlog(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status = $1) + (SELECT COUNT(*) FROM notices WHERE status = $2)",
        )
        .bind(MessageStatus::Queued.as_str())
        .bind(crate::domain::NoticeStatus::Pending.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}

/// Inserts messages queued and leased to `owner` (or dead, when they could not be built),
/// with their payloads.
pub(super) async fn insert_messages(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    messages: &[NewMessage],
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<()> {
    // A batch becomes a handful of multi-row statements rather than one round trip per
    // message and per notice: a national cycle records some ten thousand messages.
    // Payloads run to tens of kilobytes: fewer messages per statement than rows elsewhere.
    const MESSAGES_PER_STATEMENT: usize = 100;
    for chunk in messages.chunks(MESSAGES_PER_STATEMENT) {
        let keep = keep_prepared(chunk.len(), MESSAGES_PER_STATEMENT);
        let mut marks = Marks::new(dialect);
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| {
                let head: Vec<String> = (0..9).map(|_| marks.mark()).collect();
                let tail: Vec<String> = (0..5).map(|_| marks.mark()).collect();
                format!("({}, 0, {}, NULL, {})", head.join(", "), tail.join(", "), marks.mark())
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (id, message_id, kind, recipient, address, channel, subject, notice_count,
                        status, attempts, next_attempt_at, lease_until, lease_owner, last_error, created_at, sent_at,
                        error_kind)
                 VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).persistent(keep);
        for m in chunk {
            let status = if m.dead.is_some() { MessageStatus::Dead } else { MessageStatus::Queued };
            query = query
                .bind(m.id.as_str())
                .bind(m.message_id.as_str())
                .bind(m.kind.as_str())
                .bind(m.recipient.as_str())
                .bind(m.address.as_str())
                .bind(m.channel.as_str())
                .bind(m.subject.as_str())
                .bind(i64::try_from(m.notice_keys.len()).unwrap_or(i64::MAX))
                .bind(status.as_str())
                .bind(now)
                .bind(m.dead.is_none().then_some(lease_until))
                .bind(m.dead.is_none().then_some(owner))
                .bind(m.dead.clone())
                .bind(now)
                .bind(m.dead.is_some().then_some(ErrorKind::Build.as_str()));
        }
        query.execute(&mut **tx).await?;
        insert_payloads(tx, dialect, chunk, keep).await?;
    }
    Ok(())
}

/// Marks the messages `ids` sent where `owner` still holds their lease; returns those.
async fn mark_sent(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    owner: &str,
    ids: &[&str],
    now: i64,
) -> Result<HashSet<String>> {
    let mut held = HashSet::new();
    for chunk in ids.chunks(rows_per_statement(1)) {
        let mut marks = Marks::new(dialect);
        let at = marks.mark();
        let list = marks.tuple(chunk.len());
        let owner_mark = marks.mark();
        let sql = format!(
            "UPDATE messages SET status = '{}', attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,
                    sent_at = {at}
              WHERE id IN {list} AND lease_owner = {owner_mark} AND status = '{}' RETURNING id",
            MessageStatus::Sent,
            MessageStatus::Queued
        );
        let mut query = sqlx::query_as::<_, (String,)>(&sql)
            .persistent(keep_prepared(chunk.len(), rows_per_statement(1)))
            .bind(now);
        for id in chunk {
            query = query.bind(*id);
        }
        held.extend(query.bind(owner).fetch_all(&mut **tx).await?.into_iter().map(|(id,)| id));
    }
    Ok(held)
}

/// Records one outcome inside `tx`, if `owner` still holds the message's lease.
async fn finish_in(tx: &mut Tx, id: &str, owner: &str, outcome: &MessageOutcome, now: i64) -> Result<bool> {
    let (status, next_at, error, kind, attempted) = outcome.record();
    let updated = sqlx::query(
        "UPDATE messages SET status = $1, attempts = attempts + $2, lease_owner = NULL, lease_until = NULL,
                next_attempt_at = COALESCE($3, next_attempt_at), last_error = COALESCE($4, last_error),
                error_kind = COALESCE($5, error_kind), sent_at = CASE WHEN $1 = $6 THEN $7 ELSE sent_at END
          WHERE id = $8 AND lease_owner = $9 AND status = $10",
    )
    .bind(status.as_str())
    .bind(attempted)
    .bind(next_at)
    .bind(error.map(str::to_string))
    .bind(kind.map(ErrorKind::as_str))
    .bind(MessageStatus::Sent.as_str())
    .bind(now)
    .bind(id.to_string())
    .bind(owner.to_string())
    .bind(MessageStatus::Queued.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}
