//! The outbox tables. Notices are inserted by key (one already recorded is left as it is),
//! so replaying a plan is harmless. Delivery claims pending notices inside one write
//! transaction, groups them into messages and records those (leased to the claimer) before
//! anything is sent; afterwards each message is marked sent, retried later, or dead — only
//! by its lease holder.
//! A notice's own status says pending, queued (in a message) or superseded; once in a
//! message it shares the message's fate, so an outcome updates one row, not every notice in
//! it (rows written before this rule may still say sent or dead themselves).
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas never take the same rows;
//! SQLite gets the same guarantee from `BEGIN IMMEDIATE`.

use super::{keep_prepared, rows_per_statement, Marks, Result, Store, StoreError, Tx};
use crate::config::Backend;
use crate::domain::Notice;
use std::collections::{BTreeMap, HashMap, HashSet};

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

impl From<&Notice> for QueuedNotice {
    fn from(n: &Notice) -> QueuedNotice {
        QueuedNotice {
            key: n.key.clone(),
            kind: n.kind.as_str().to_string(),
            directive: n.directive.clone(),
            recipient: n.recipient.clone(),
            address: n.address.clone(),
            channel: n.channel.as_str().to_string(),
            ladder: n.ladder.as_str().to_string(),
            stage: n.stage.clone(),
            effective_due: n.effective_due.map(|d| d.to_string()),
            days_overdue: i64::from(n.days_overdue),
        }
    }
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
    /// The payload as stored: [`pack`]ed (done where the message is rendered, on every core,
    /// rather than while the database waits).
    pub packed: Vec<u8>,
    pub notice_keys: Vec<String>,
    /// Why the message could not be built, if it could not: it is recorded dead with this
    /// reason (and its notices with it), never sent.
    pub dead: Option<String>,
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

impl From<NewMessage> for ClaimedMessage {
    /// A message just recorded under this process's lease, not yet tried.
    fn from(m: NewMessage) -> ClaimedMessage {
        ClaimedMessage {
            id: m.id,
            message_id: m.message_id,
            kind: m.kind,
            recipient: m.recipient,
            address: m.address,
            channel: m.channel,
            subject: m.subject,
            payload: m.payload,
            attempts: 0,
        }
    }
}

const CLAIMED_MESSAGE_COLUMNS: &str = "id, message_id, kind, recipient, address, channel, subject, attempts";

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
    pub fn as_str(self) -> &'static str {
        match self {
            DeadCause::Recipient => "recipient",
            DeadCause::Exhausted => "exhausted",
        }
    }
}

/// Pending notices claimed in an open write transaction. Commit with the messages built from
/// them; dropping it rolls back and leaves them pending.
pub struct NoticeClaim {
    tx: Tx,
    backend: Backend,
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

fn lock_suffix(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// Pending notices, walked in claim order. Without statistics SQLite takes the equality on
/// `notices_by_status` for the better index, then sorts every pending notice on each claim
/// (and scans them all again for each batch's recipients): 50 ms a claim at 100,000 pending.
/// The partial index is named for it; PostgreSQL's planner chooses it unaided.
fn pending_notices(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "notices",
        Backend::Sqlite => "notices INDEXED BY notices_pending_in_claim_order",
    }
}

impl Store {
    /// Records owed notices; returns how many were new. An earlier stage still pending when a
    /// later one is recorded is superseded at claim time, when every notice is re-planned.
    pub async fn enqueue(&self, notices: &[Notice], now: i64) -> Result<usize> {
        // Nearly every notice owed on a tick was recorded by an earlier one: find those with
        // a read (one parameter per key, no write lock) and insert only the rest. The insert
        // still skips a key that a replica records in between.
        let keys: Vec<&str> = notices.iter().map(|n| n.key.as_str()).collect();
        let known = self.known_keys(&keys).await?;
        let fresh: Vec<&Notice> = notices.iter().zip(known).filter(|(_, known)| !known).map(|(n, _)| n).collect();
        self.enqueue_unrecorded(fresh, now).await
    }

    /// Records notices found missing from the outbox a moment ago as pending; returns how
    /// many were new (a replica may have recorded some in between).
    pub async fn enqueue_unrecorded(&self, mut fresh: Vec<&Notice>, now: i64) -> Result<usize> {
        if fresh.is_empty() {
            return Ok(0);
        }
        // Stored in the order delivery claims them (recipient, channel, key), so each claim,
        // and each message's outcome, updates neighbouring rows on a few pages. In planning
        // order every batch of 500 touched some 500 pages per table and index, and each page
        // was written out again for a few changed bytes: gigabytes of WAL per national round.
        fresh.sort_unstable_by(|a, b| claim_order(a).cmp(&claim_order(b)));
        let rows: Vec<NoticeRow> = fresh.into_iter().map(NoticeRow::pending).collect();
        let mut tx = self.begin_write().await?;
        let inserted = insert_notices(&mut tx, self.backend, &rows, now).await?;
        tx.commit().await?;
        Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
    }

    /// How many notices wait to be claimed, per (recipient, channel).
    pub async fn pending_per_route(&self) -> Result<HashMap<(String, String), i64>> {
        let sql = format!(
            "SELECT recipient, channel, COUNT(*) FROM {} WHERE status = 'pending' GROUP BY recipient, channel",
            pending_notices(self.backend)
        );
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(recipient, channel, n)| ((recipient, channel), n)).collect())
    }

    /// Records notices planned a moment ago together with the messages they were rendered
    /// into (leased to `owner`), in one transaction — notices and message are recorded before
    /// anything is sent, as when pending notices are claimed. New notices are inserted;
    /// adopted ones (recorded earlier, still pending) move into their message. When any new
    /// notice is already recorded, or any adopted one is no longer pending (a replica planned
    /// or claimed the same round and got there first), nothing is recorded and `false` comes
    /// back: the caller then leaves them to the claim, which re-checks them, so nothing goes
    /// twice. PostgreSQL ending such a race as a deadlock counts the same.
    pub async fn record_planned_messages(
        &self,
        notices: &[NoticeRow<'_>],
        messages: &[NewMessage],
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool> {
        match self.try_record_planned(notices, messages, owner, lease_until, now).await {
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.code().as_deref() == Some("40P01") => {
                tracing::info!(error = %e, "a replica recorded the same notices at the same moment; left to the claim");
                Ok(false)
            }
            other => other,
        }
    }

    async fn try_record_planned(
        &self,
        notices: &[NoticeRow<'_>],
        messages: &[NewMessage],
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool> {
        let (adopted, new): (Vec<NoticeRow>, Vec<NoticeRow>) = notices.iter().partition(|r| r.adopted);
        let mut tx = self.begin_write().await?;
        if !adopted.is_empty() {
            // Adopted notices are found by key among the ~100,000 an overnight tick recorded.
            self.index_lookups_only(&mut tx).await?;
        }
        let inserted = insert_notices(&mut tx, self.backend, &new, now).await?;
        let queued: Vec<(&str, &str)> =
            adopted.iter().filter_map(|r| Some((r.notice.key.as_str(), r.message?))).collect();
        let superseded: Vec<(&str, &str)> =
            adopted.iter().filter_map(|r| Some((r.notice.key.as_str(), r.reason?))).collect();
        let still_pending = " AND notices.status = 'pending'";
        let set_queued = "status = 'queued', message = v.column2";
        let moved = update_notices(&mut tx, self.backend, set_queued, still_pending, &queued, now).await?
            + update_notices(
                &mut tx,
                self.backend,
                "status = 'superseded', reason = v.column2",
                still_pending,
                &superseded,
                now,
            )
            .await?;
        if usize::try_from(inserted).ok() != Some(new.len())
            || usize::try_from(moved).ok() != Some(queued.len() + superseded.len())
        {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_messages(&mut tx, self.backend, messages, owner, lease_until, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// For each of `keys`, whether the outbox already holds it (in any state).
    pub async fn known_keys(&self, keys: &[&str]) -> Result<Vec<bool>> {
        Ok(self.states_of(keys).await?.into_iter().map(|state| state.is_some()).collect())
    }

    /// For each of `keys`, in the same order: `None` when the outbox does not hold it, else
    /// whether it still waits to be claimed (pending). Aligned with `keys` rather than a map
    /// of them: a morning round asks about ~100,000 keys, and a map of owned keys was ~10 MB
    /// of the round's peak.
    pub async fn states_of(&self, keys: &[&str]) -> Result<Vec<Option<bool>>> {
        let mut states = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(states);
        }
        let mut tx = Tx::begin(&self.pool, "BEGIN").await?;
        self.index_lookups_only(&mut tx).await?;
        for chunk in keys.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT key, CAST(CASE WHEN status = 'pending' THEN 1 ELSE 0 END AS BIGINT) FROM notices WHERE key IN {}",
                Marks::new(self.backend).tuple(chunk.len())
            );
            let mut query =
                sqlx::query_as::<_, (String, i64)>(&sql).persistent(keep_prepared(chunk.len(), rows_per_statement(1)));
            for key in chunk {
                query = query.bind(*key);
            }
            let found: HashMap<String, bool> =
                query.fetch_all(&mut *tx).await?.into_iter().map(|(key, pending)| (key, pending == 1)).collect();
            states.extend(chunk.iter().map(|key| found.get(*key).copied()));
        }
        tx.commit().await?;
        Ok(states)
    }

    /// Claims pending notices: the first `limit` in recipient order, plus every other pending
    /// notice of those recipients, so one person's notices end up in one message.
    pub async fn claim_notices(&self, limit: u32) -> Result<NoticeClaim> {
        let mut tx = self.begin_write().await?;
        self.index_lookups_only(&mut tx).await?;
        let lock = lock_suffix(self.backend);
        let pending = pending_notices(self.backend);
        let sql = format!(
            "SELECT {QUEUED_NOTICE_COLUMNS} FROM {pending} WHERE status = 'pending'
              ORDER BY recipient, channel, key LIMIT $1{lock}"
        );
        let mut notices: Vec<QueuedNotice> = sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let mut recipients: Vec<String> = notices.iter().map(|n| n.recipient.clone()).collect();
        recipients.dedup();
        let mut seen: HashSet<String> = notices.iter().map(|n| n.key.clone()).collect();
        for chunk in recipients.chunks(500) {
            let sql = format!(
                "SELECT {QUEUED_NOTICE_COLUMNS} FROM {pending} WHERE status = 'pending' AND recipient IN {}{lock}",
                Marks::new(self.backend).tuple(chunk.len())
            );
            let mut query = sqlx::query_as::<_, QueuedNotice>(&sql).persistent(keep_prepared(chunk.len(), 500));
            for r in chunk {
                query = query.bind(r.clone());
            }
            for n in query.fetch_all(&mut *tx).await? {
                if seen.insert(n.key.clone()) {
                    notices.push(n);
                }
            }
        }
        Ok(NoticeClaim { tx, backend: self.backend, notices })
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
        let rows: Vec<ClaimedRow> = sqlx::query_as(&sql)
            .bind(owner.to_string())
            .bind(lease_until)
            .bind(wall_now)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut payloads: HashMap<String, String> = HashMap::with_capacity(rows.len());
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT id, payload, payload_lz4 FROM message_payloads WHERE id IN {}",
                Marks::new(self.backend).tuple(chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, Option<Vec<u8>>)>(&sql)
                .persistent(keep_prepared(chunk.len(), rows_per_statement(1)));
            for id in chunk {
                query = query.bind(*id);
            }
            for (id, plain, packed) in query.fetch_all(&mut *tx).await? {
                let payload = match packed {
                    Some(bytes) => unpack(&id, &bytes)?,
                    None => plain,
                };
                payloads.insert(id, payload);
            }
        }
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| ClaimedMessage {
                payload: payloads.remove(&r.id).unwrap_or_default(),
                id: r.id,
                message_id: r.message_id,
                kind: r.kind,
                recipient: r.recipient,
                address: r.address,
                channel: r.channel,
                subject: r.subject,
                attempts: r.attempts,
            })
            .collect())
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
        let mut held_sent: HashSet<String> = HashSet::new();
        let sent: Vec<&str> =
            outcomes.iter().filter(|(_, o)| matches!(o, MessageOutcome::Sent)).map(|(id, _)| *id).collect();
        for chunk in sent.chunks(rows_per_statement(1)) {
            let mut marks = Marks::new(self.backend);
            let at = marks.mark();
            let list = marks.tuple(chunk.len());
            let owner_mark = marks.mark();
            let sql = format!(
                "UPDATE messages SET status = 'sent', attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,
                        sent_at = {at}
                  WHERE id IN {list} AND lease_owner = {owner_mark} AND status = 'queued' RETURNING id"
            );
            let mut query = sqlx::query_as::<_, (String,)>(&sql)
                .persistent(keep_prepared(chunk.len(), rows_per_statement(1)))
                .bind(now);
            for id in chunk {
                query = query.bind(*id);
            }
            let held: Vec<String> = query.bind(owner).fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id).collect();
            held_sent.extend(held);
        }
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

    /// Notices and messages by state, the dead letters, and what waits for a retry. A notice
    /// in a message is counted by the message's state (queued, sent, dead): summed from the
    /// messages' notice counts, not read from a hundred thousand notice rows.
    pub async fn status_report(&self, dead_limit: i64) -> Result<StatusReport> {
        let mut notices: BTreeMap<String, i64> = BTreeMap::new();
        // One count per partial index (each index's condition is its query's).
        for status in ["pending", "superseded"] {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM notices WHERE status = '{status}'"))
                .fetch_one(&self.pool)
                .await?;
            notices.insert(status.to_string(), n);
        }
        let by_message: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, CAST(SUM(notice_count) AS BIGINT), COUNT(*) FROM messages GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        for (status, notice_count, _) in &by_message {
            *notices.entry(status.clone()).or_default() += notice_count;
        }
        let notices: Vec<(String, i64)> = notices.into_iter().filter(|(_, n)| *n > 0).collect();
        let messages: Vec<(String, i64)> = by_message.into_iter().map(|(status, _, n)| (status, n)).collect();
        let dead_letters = sqlx::query_as(
            "SELECT id, message_id, recipient, address, channel, subject, attempts, last_error, error_kind
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
        let (waiting_on_server,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM messages WHERE status = 'queued' AND error_kind = 'server'")
                .fetch_one(&self.pool)
                .await?;
        let server_error: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT last_error FROM messages WHERE status = 'queued' AND error_kind = 'server'
              ORDER BY next_attempt_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(StatusReport {
            counts: OutboxCounts { notices, messages },
            dead_letters,
            retrying,
            next_retry_at,
            waiting_on_server,
            server_error: server_error.and_then(|(e,)| e),
        })
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
        insert_messages(&mut self.tx, self.backend, messages, owner, lease_until, now).await?;
        let queued: Vec<(&str, &str)> =
            messages.iter().flat_map(|m| m.notice_keys.iter().map(|k| (k.as_str(), m.id.as_str()))).collect();
        let superseded: Vec<(&str, &str)> = superseded.iter().map(|(k, r)| (k.as_str(), r.as_str())).collect();
        let moved =
            update_notices(&mut self.tx, self.backend, "status = 'queued', message = v.column2", "", &queued, now)
                .await?
                + update_notices(
                    &mut self.tx,
                    self.backend,
                    "status = 'superseded', reason = v.column2",
                    "",
                    &superseded,
                    now,
                )
                .await?;
        if usize::try_from(moved).ok() != Some(queued.len() + superseded.len()) {
            // Dropped, the transaction rolls back: the claimed notices stay pending.
            return Err(StoreError::Outbox(format!(
                "{moved} of {} claimed notices could be linked to their message; nothing recorded",
                queued.len() + superseded.len()
            )));
        }
        self.tx.commit().await?;
        Ok(())
    }
}

/// Inserts messages queued and leased to `owner`, with their payloads.
async fn insert_messages(
    tx: &mut Tx,
    backend: Backend,
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
        let mut marks = Marks::new(backend);
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
            query = query
                .bind(m.id.as_str())
                .bind(m.message_id.as_str())
                .bind(m.kind.as_str())
                .bind(m.recipient.as_str())
                .bind(m.address.as_str())
                .bind(m.channel.as_str())
                .bind(m.subject.as_str())
                .bind(i64::try_from(m.notice_keys.len()).unwrap_or(i64::MAX))
                .bind(if m.dead.is_some() { "dead" } else { "queued" })
                .bind(now)
                .bind(m.dead.is_none().then_some(lease_until))
                .bind(m.dead.is_none().then_some(owner))
                .bind(m.dead.clone())
                .bind(now)
                .bind(m.dead.is_some().then_some("build"));
        }
        query.execute(&mut **tx).await?;
        let sql = format!(
            "INSERT INTO message_payloads (id, payload, payload_lz4) VALUES {}",
            Marks::new(backend).rows(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql).persistent(keep);
        for m in chunk {
            query = query.bind(m.id.as_str()).bind("").bind(m.packed.as_slice());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A payload as it is stored: LZ4-packed (a national round's quarter of a gigabyte of MIME
/// shrinks to about a quarter), its length in front.
pub fn pack(payload: &str) -> Vec<u8> {
    lz4_flex::compress_prepend_size(payload.as_bytes())
}

/// A stored payload's text from its [`pack`]ed bytes.
fn unpack(id: &str, bytes: &[u8]) -> Result<String> {
    let corrupt = |e: String| StoreError::Corrupt {
        table: "message_payloads",
        column: "payload_lz4",
        value: format!("{id}: {e}"),
    };
    let raw = lz4_flex::decompress_size_prepended(bytes).map_err(|e| corrupt(e.to_string()))?;
    String::from_utf8(raw).map_err(|e| corrupt(e.to_string()))
}

/// The order delivery claims notices in (and the outbox stores them in).
pub(crate) fn claim_order(n: &Notice) -> (&str, &str, &str) {
    (n.recipient.as_str(), n.channel.as_str(), n.key.as_str())
}

/// A notice as it is first recorded: pending; queued in a message; or superseded, with why.
#[derive(Debug, Clone, Copy)]
pub struct NoticeRow<'n> {
    pub notice: &'n Notice,
    /// The message it is queued in, if any.
    pub message: Option<&'n str>,
    /// Why it is superseded, if it is.
    pub reason: Option<&'n str>,
    /// Already in the outbox, pending: moved rather than inserted.
    pub adopted: bool,
}

impl<'n> NoticeRow<'n> {
    /// pending, queued (in its message) or superseded (with its reason).
    pub fn status(&self) -> &'static str {
        match (self.message, self.reason) {
            (Some(_), _) => "queued",
            (None, Some(_)) => "superseded",
            (None, None) => "pending",
        }
    }

    /// The same row, for a notice already recorded and still pending.
    pub fn adopted(self, adopted: bool) -> NoticeRow<'n> {
        NoticeRow { adopted, ..self }
    }

    pub fn pending(notice: &'n Notice) -> NoticeRow<'n> {
        NoticeRow { notice, message: None, reason: None, adopted: false }
    }

    pub fn queued(notice: &'n Notice, message: &'n str) -> NoticeRow<'n> {
        NoticeRow { notice, message: Some(message), reason: None, adopted: false }
    }

    pub fn superseded(notice: &'n Notice, reason: &'n str) -> NoticeRow<'n> {
        NoticeRow { notice, message: None, reason: Some(reason), adopted: false }
    }
}

/// Inserts notices by key (one already there is left alone) in multi-row statements; returns how
/// many were new.
async fn insert_notices(tx: &mut Tx, backend: Backend, rows: &[NoticeRow<'_>], now: i64) -> Result<u64> {
    const COLUMNS: usize = 15;
    // Up to 500 rows a statement: a delivery batch (~500 notices) is one statement or two.
    // Fixed chunks of 100 kept prepared measured no faster on SQLite; on PostgreSQL they made
    // the morning round 2.4 times slower (10.3 → 24 s: the prepared statements' generic plans).
    const ROWS: usize = 500;
    let mut inserted = 0;
    let (insert, on_conflict) = insert_notices_verb(backend);
    for chunk in rows.chunks(ROWS) {
        let mut marks = Marks::new(backend);
        let values: Vec<String> = (0..chunk.len()).map(|_| marks.tuple(COLUMNS)).collect();
        let sql = format!(
            "{insert} INTO notices (key, kind, directive, recipient, address, channel, ladder, stage,
                 effective_due, days_overdue, planned_at, updated_at, status, message, reason)
             VALUES {}{on_conflict}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), ROWS));
        for row in chunk {
            let n = row.notice;
            query = query
                .bind(n.key.as_str())
                .bind(n.kind.as_str())
                .bind(n.directive.as_deref())
                .bind(n.recipient.as_str())
                .bind(n.address.as_str())
                .bind(n.channel.as_str())
                .bind(n.ladder.as_str())
                .bind(n.stage.as_str())
                .bind(n.effective_due.map(|d| d.to_string()))
                .bind(i64::from(n.days_overdue))
                .bind(now)
                .bind(now)
                .bind(row.status())
                .bind(row.message)
                .bind(row.reason);
        }
        // Counted, not returned: SQLite's rows come back one by one through sqlx.
        inserted += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}

/// `INSERT` for a multi-row statement on notices whose every value is bound from a
/// non-optional field where the column is `NOT NULL`, so that no row can break a constraint
/// but the key's uniqueness. On SQLite that is `INSERT OR IGNORE`: a statement inside a
/// transaction that might abort halfway makes SQLite first copy every page it changes to a
/// statement journal, to undo just that statement; one that cannot abort skips the copy (a
/// national cycle: 0.2–0.3 s of ~3 s; a sixth of the SQLite thread's time went there). A
/// skipped row shows in the count of rows inserted, which callers compare with what they
/// asked. PostgreSQL keeps `INSERT … ON CONFLICT (key) DO NOTHING`. (`UPDATE OR IGNORE`
/// for adoption measured no different, and was not kept.)
fn insert_notices_verb(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => ("INSERT OR IGNORE", ""),
        Backend::Postgres => ("INSERT", " ON CONFLICT (key) DO NOTHING"),
    }
}

/// Sets `set` (which may read `v.column2`, the second of each pair) and `updated_at` on the
/// notices keyed by the first of each pair: one statement per thousand notices, joined
/// against a `VALUES` list (UPDATE … FROM works alike on SQLite ≥ 3.33 and PostgreSQL).
async fn update_notices(
    tx: &mut Tx,
    backend: Backend,
    set: &str,
    condition: &str,
    pairs: &[(&str, &str)],
    now: i64,
) -> Result<u64> {
    let mut updated = 0;
    for chunk in pairs.chunks(rows_per_statement(2)) {
        let mut marks = Marks::new(backend);
        let at = marks.mark();
        let sql = format!(
            "UPDATE notices SET {set}, updated_at = {at} FROM (VALUES {}) AS v WHERE notices.key = v.column1{condition}",
            marks.rows(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), rows_per_statement(2))).bind(now);
        for (key, value) in chunk {
            query = query.bind(*key).bind(*value);
        }
        updated += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(updated)
}

/// Records one outcome inside `tx`, if `owner` still holds the message's lease.
async fn finish_in(tx: &mut Tx, id: &str, owner: &str, outcome: &MessageOutcome, now: i64) -> Result<bool> {
    let (status, next_at, error, kind, attempted) = match outcome {
        MessageOutcome::Sent => ("sent", None, None, None, 1_i64),
        MessageOutcome::Retry { next_attempt_at, error } => {
            ("queued", Some(*next_attempt_at), Some(error.clone()), Some("transient"), 1)
        }
        MessageOutcome::Deferred { next_attempt_at, error } => {
            ("queued", Some(*next_attempt_at), Some(error.clone()), Some("server"), 0)
        }
        MessageOutcome::Dead { error, cause } => ("dead", None, Some(error.clone()), Some(cause.as_str()), 1),
    };
    let updated = sqlx::query(
        "UPDATE messages SET status = $1, attempts = attempts + $2, lease_owner = NULL, lease_until = NULL,
                next_attempt_at = COALESCE($3, next_attempt_at), last_error = COALESCE($4, last_error),
                error_kind = COALESCE($5, error_kind), sent_at = CASE WHEN $1 = 'sent' THEN $6 ELSE sent_at END
          WHERE id = $7 AND lease_owner = $8 AND status = 'queued'",
    )
    .bind(status)
    .bind(attempted)
    .bind(next_at)
    .bind(error.clone())
    .bind(kind)
    .bind(now)
    .bind(id.to_string())
    .bind(owner.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Ladder, NoticeKind};

    fn notice(directive: &str, recipient: &str) -> Notice {
        let kind = NoticeKind::Overdue;
        Notice {
            kind,
            key: crate::domain::notice_key(kind, &[directive, recipient, "2025-09-15", "T+1"], Channel::Email),
            directive: Some(directive.into()),
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: Channel::Email,
            stage: "T+1".into(),
            ladder: Ladder::Assignee,
            effective_due: None,
            days_overdue: 1,
        }
    }

    fn message(id: &str, recipient: &str, keys: Vec<String>) -> NewMessage {
        NewMessage {
            id: id.into(),
            message_id: format!("<{id}@example.gov.vn>"),
            kind: "reminder".into(),
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: "email".into(),
            subject: "s".into(),
            payload: format!("payload of {id}"),
            packed: pack(&format!("payload of {id}")),
            notice_keys: keys,
            dead: None,
        }
    }

    #[tokio::test]
    async fn key_states_come_back_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::open(&url, 2, 1000).await.unwrap();
        let (a, b, c) = (notice("D1", "a"), notice("D2", "b"), notice("D3", "c"));
        store.enqueue(&[a.clone(), b.clone()], 100).await.unwrap();
        let claim = store.claim_notices(1).await.unwrap();
        let claimed: Vec<String> = claim.notices.iter().map(|n| n.key.clone()).collect();
        assert_eq!(claimed, vec![a.key.clone()]);
        claim.commit(&[message("m-a", "a", claimed)], &[], "me", i64::MAX, 100).await.unwrap();

        let asked = [c.key.as_str(), b.key.as_str(), a.key.as_str(), b.key.as_str()];
        let states = store.states_of(&asked).await.unwrap();
        assert_eq!(
            states,
            vec![None, Some(true), Some(false), Some(true)],
            "unknown, pending, in a message, pending again"
        );
        assert_eq!(store.known_keys(&asked).await.unwrap(), vec![false, true, true, true]);
        assert!(store.states_of(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_claim_whose_message_names_a_missing_notice_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let store = Store::open(&url, 2, 1000).await.unwrap();
        let a = notice("D1", "a");
        store.enqueue(std::slice::from_ref(&a), 100).await.unwrap();
        let claim = store.claim_notices(10).await.unwrap();
        let keys = vec![a.key.clone(), "overdue:NO-SUCH:a:2025-09-15:T+1:email".to_string()];
        let failed = claim.commit(&[message("m-a", "a", keys)], &[], "me", i64::MAX, 100).await;
        assert!(matches!(failed, Err(StoreError::Outbox(_))), "{failed:?}");
        assert_eq!(store.states_of(&[a.key.as_str()]).await.unwrap(), vec![Some(true)], "still pending");
        let (messages,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages").fetch_one(&store.pool).await.unwrap();
        assert_eq!(messages, 0, "the message was not recorded either");
    }

    #[tokio::test]
    async fn outcomes_recorded_together_match_outcomes_recorded_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("o.db").display());
        let store = Store::open(&url, 2, 1000).await.unwrap();
        let notices = [notice("D1", "a"), notice("D2", "a"), notice("D1", "b"), notice("D1", "c")];
        assert_eq!(store.enqueue(&notices, 100).await.unwrap(), 4);
        assert_eq!(store.enqueue(&notices, 100).await.unwrap(), 0, "a replay records nothing");
        let claim = store.claim_notices(10).await.unwrap();
        let keys = |r: &str| claim.notices.iter().filter(|n| n.recipient == r).map(|n| n.key.clone()).collect();
        let messages = [message("m-a", "a", keys("a")), message("m-b", "b", keys("b")), message("m-c", "c", keys("c"))];
        claim.commit(&messages, &[], "me", i64::MAX, 100).await.unwrap();

        let dead = MessageOutcome::Dead { error: "550 no such user".into(), cause: DeadCause::Recipient };
        let held = store
            .finish_messages(
                "me",
                &[("m-a", &MessageOutcome::Sent), ("m-b", &dead), ("m-c", &MessageOutcome::Sent)],
                200,
            )
            .await
            .unwrap();
        assert_eq!(held, vec![true, true, true]);
        let again = store.finish_messages("me", &[("m-c", &MessageOutcome::Sent)], 300).await.unwrap();
        assert_eq!(again, vec![false], "a finished message is no longer leased");

        let counts = store.status_report(10).await.unwrap().counts;
        assert_eq!(counts.messages, vec![("dead".to_string(), 1), ("sent".to_string(), 2)]);
        assert_eq!(counts.notices, vec![("dead".to_string(), 1), ("sent".to_string(), 3)]);
        let (sent_at,): (Option<i64>,) =
            sqlx::query_as("SELECT sent_at FROM messages WHERE id = 'm-a'").fetch_one(&store.pool).await.unwrap();
        assert_eq!(sent_at, Some(200));
    }
}
