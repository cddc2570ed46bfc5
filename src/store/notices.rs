//! Store ← outbox, notices: what the planner owes, recorded by key (one already recorded is
//! left as it is, so replaying a plan is harmless), claimed by delivery inside one write
//! transaction, then linked to the message it went into or superseded with its reason. Once
//! in a message a notice shares the message's fate, so an outcome updates one row, not every
//! notice in it. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas never take the
//! same rows; SQLite gets the same guarantee from `BEGIN IMMEDIATE`.

use super::messages::{insert_messages, NewMessage};
use super::rows::{NoticeRecord, NOTICE_COLUMNS};
use super::{dialect::Dialect, keep_prepared, rows_per_statement, Marks, Result, Store, StoreError, Tx};
use crate::domain::{Channel, Notice, NoticeKey, NoticeStatus, Superseded};
use std::collections::{HashMap, HashSet};

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
    pub fn status(&self) -> NoticeStatus {
        match (self.message, self.reason) {
            (Some(_), _) => NoticeStatus::Queued,
            (None, Some(_)) => NoticeStatus::Superseded,
            (None, None) => NoticeStatus::Pending,
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

/// The order delivery claims notices in (and the outbox stores them in).
pub(crate) fn claim_order(n: &Notice) -> (&str, Channel, &str) {
    (n.recipient.as_str(), n.channel, n.key.as_str())
}

/// Pending notices claimed in an open write transaction. Commit with the messages built from
/// them; dropping it rolls back and leaves them pending.
pub struct NoticeClaim {
    tx: Tx,
    dialect: &'static dyn Dialect,
    pub notices: Vec<Notice>,
}

/// `status = 'pending'`, spelled as partial indexes need it: a literal, not a parameter.
fn is_pending() -> String {
    format!("status = '{}'", NoticeStatus::Pending)
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
        let inserted = insert_notices(&mut tx, self.dialect, &rows, now).await?;
        tx.commit().await?;
        Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
    }

    /// How many notices wait to be claimed, per (recipient, channel).
    pub async fn pending_per_route(&self) -> Result<HashMap<(String, Channel), i64>> {
        let sql = format!(
            "SELECT recipient, channel, COUNT(*) FROM {} WHERE {} GROUP BY recipient, channel",
            self.dialect.pending_notices(),
            is_pending()
        );
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(recipient, channel, n)| {
                let channel = channel.parse().map_err(|_| StoreError::Corrupt {
                    table: "notices",
                    column: "channel",
                    value: channel.clone(),
                })?;
                Ok(((recipient, channel), n))
            })
            .collect()
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
                "SELECT key, CAST(CASE WHEN {} THEN 1 ELSE 0 END AS BIGINT) FROM notices WHERE key IN {}",
                is_pending(),
                self.marks().tuple(chunk.len())
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
        let lock = self.dialect.claim_lock();
        let pending = self.dialect.pending_notices();
        let sql = format!(
            "SELECT {NOTICE_COLUMNS} FROM {pending} WHERE {}
              ORDER BY recipient, channel, key LIMIT $1{lock}",
            is_pending()
        );
        let rows: Vec<NoticeRecord> = sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let mut notices = rows.into_iter().map(Notice::try_from).collect::<Result<Vec<Notice>>>()?;
        let mut recipients: Vec<String> = notices.iter().map(|n| n.recipient.clone()).collect();
        recipients.dedup();
        let mut seen: HashSet<NoticeKey> = notices.iter().map(|n| n.key.clone()).collect();
        for chunk in recipients.chunks(500) {
            let sql = format!(
                "SELECT {NOTICE_COLUMNS} FROM {pending} WHERE {} AND recipient IN {}{lock}",
                is_pending(),
                self.marks().tuple(chunk.len())
            );
            let mut query = sqlx::query_as::<_, NoticeRecord>(&sql).persistent(keep_prepared(chunk.len(), 500));
            for r in chunk {
                query = query.bind(r.clone());
            }
            for row in query.fetch_all(&mut *tx).await? {
                let n = Notice::try_from(row)?;
                if seen.insert(n.key.clone()) {
                    notices.push(n);
                }
            }
        }
        Ok(NoticeClaim { tx, dialect: self.dialect, notices })
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
        let recorded: Result<bool> = async {
            let (adopted, new): (Vec<NoticeRow>, Vec<NoticeRow>) = notices.iter().partition(|r| r.adopted);
            let mut tx = self.begin_write().await?;
            if !adopted.is_empty() {
                // Adopted notices are found by key among the ~100,000 an overnight tick recorded.
                self.index_lookups_only(&mut tx).await?;
            }
            let inserted = insert_notices(&mut tx, self.dialect, &new, now).await?;
            let queued: Vec<(&str, &str)> =
                adopted.iter().filter_map(|r| Some((r.notice.key.as_str(), r.message?))).collect();
            let superseded: Vec<(&str, &str)> =
                adopted.iter().filter_map(|r| Some((r.notice.key.as_str(), r.reason?))).collect();
            let still_pending = format!(" AND notices.{}", is_pending());
            let moved = move_notices(&mut tx, self.dialect, Move::IntoMessage, &still_pending, &queued, now).await?
                + move_notices(&mut tx, self.dialect, Move::Superseded, &still_pending, &superseded, now).await?;
            if usize::try_from(inserted).ok() != Some(new.len())
                || usize::try_from(moved).ok() != Some(queued.len() + superseded.len())
            {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_messages(&mut tx, self.dialect, messages, owner, lease_until, now).await?;
            tx.commit().await?;
            Ok(true)
        }
        .await;
        match recorded {
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.code().as_deref() == Some("40P01") => {
                tracing::info!(error = %e, "a replica recorded the same notices at the same moment; left to the claim");
                Ok(false)
            }
            other => other,
        }
    }

    /// Copies the notices of a dead message onto another channel (the person's chat, when
    /// their email bounced), keyed for that channel so the copy is made once. Returns how
    /// many copies are new.
    pub async fn copy_notices_to_channel(
        &self,
        message: &str,
        from: Channel,
        channel: Channel,
        address: &str,
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // Keys end in ':<channel>'; the copy swaps that last part.
        let copied = sqlx::query(
            "INSERT INTO notices (key, kind, directive, recipient, address, channel, ladder, stage, effective_due,
                                  days_overdue, status, message, reason, planned_at, updated_at)
             SELECT substr(key, 1, length(key) - length(channel)) || $1, kind, directive, recipient, $2, $1, ladder,
                    stage, effective_due, days_overdue, $3, NULL, $4, $5, $5
               FROM notices WHERE message = $6
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(channel.as_str())
        .bind(address.to_string())
        .bind(NoticeStatus::Pending.as_str())
        .bind(format!("fallback: the {from} message bounced"))
        .bind(now)
        .bind(message.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(copied)
    }
}

impl NoticeClaim {
    /// Records the messages (leased to `owner` until `lease_until`, wall clock), links their
    /// notices, marks stale notices superseded with their reason, and commits.
    pub async fn commit(
        mut self,
        messages: &[NewMessage],
        superseded: &[Superseded],
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<()> {
        insert_messages(&mut self.tx, self.dialect, messages, owner, lease_until, now).await?;
        let queued: Vec<(&str, &str)> =
            messages.iter().flat_map(|m| m.notice_keys.iter().map(|k| (k.as_str(), m.id.as_str()))).collect();
        let superseded: Vec<(&str, &str)> = superseded.iter().map(|s| (s.key.as_str(), s.reason.as_str())).collect();
        let moved = move_notices(&mut self.tx, self.dialect, Move::IntoMessage, "", &queued, now).await?
            + move_notices(&mut self.tx, self.dialect, Move::Superseded, "", &superseded, now).await?;
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

/// Inserts notices by key (one already there is left alone) in multi-row statements; returns how
/// many were new.
async fn insert_notices(tx: &mut Tx, dialect: &'static dyn Dialect, rows: &[NoticeRow<'_>], now: i64) -> Result<u64> {
    const COLUMNS: usize = 15;
    // Up to 500 rows a statement: a delivery batch (~500 notices) is one statement or two.
    // Fixed chunks of 100 kept prepared measured no faster on SQLite; on PostgreSQL they made
    // the morning round 2.4 times slower (10.3 → 24 s: the prepared statements' generic plans).
    const ROWS: usize = 500;
    let mut inserted = 0;
    let (insert, on_conflict) = dialect.insert_skipping_known();
    for chunk in rows.chunks(ROWS) {
        let mut marks = Marks::new(dialect);
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
                .bind(n.stage.to_string())
                .bind(n.effective_due.map(|d| d.to_string()))
                .bind(i64::from(n.days_overdue))
                .bind(now)
                .bind(now)
                .bind(row.status().as_str())
                .bind(row.message)
                .bind(row.reason);
        }
        // Counted, not returned: SQLite's rows come back one by one through sqlx.
        inserted += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}

/// Where claimed or planned notices move: into the message they went into (pairs of key and
/// message id), or superseded (pairs of key and reason).
#[derive(Debug, Clone, Copy)]
enum Move {
    IntoMessage,
    Superseded,
}

/// Moves the notices keyed by the first of each pair as `to` says.
async fn move_notices(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    to: Move,
    condition: &str,
    pairs: &[(&str, &str)],
    now: i64,
) -> Result<u64> {
    let set = match to {
        Move::IntoMessage => format!("status = '{}', message = v.column2", NoticeStatus::Queued),
        Move::Superseded => format!("status = '{}', reason = v.column2", NoticeStatus::Superseded),
    };
    update_notices(tx, dialect, &set, condition, pairs, now).await
}

/// Sets `set` (which may read `v.column2`, the second of each pair) and `updated_at` on the
/// notices keyed by the first of each pair: one statement per thousand notices, joined
/// against a `VALUES` list (UPDATE … FROM works alike on SQLite ≥ 3.33 and PostgreSQL).
async fn update_notices(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    set: &str,
    condition: &str,
    pairs: &[(&str, &str)],
    now: i64,
) -> Result<u64> {
    let mut updated = 0;
    for chunk in pairs.chunks(rows_per_statement(2)) {
        let mut marks = Marks::new(dialect);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Ladder, MessageKind, NoticeKind, Stage};
    use crate::store::{DeadCause, Message, MessageOutcome};

    fn notice(directive: &str, recipient: &str) -> Notice {
        let kind = NoticeKind::Overdue;
        Notice {
            kind,
            key: NoticeKey::new(kind, &[directive, recipient, "2025-09-15", "T+1"], Channel::Email),
            directive: Some(directive.into()),
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: Channel::Email,
            stage: Stage::Day(1),
            ladder: Ladder::Assignee,
            effective_due: None,
            days_overdue: 1,
        }
    }

    fn message(id: &str, recipient: &str, keys: Vec<NoticeKey>) -> NewMessage {
        let message = Message {
            id: id.into(),
            message_id: format!("<{id}@example.gov.vn>"),
            kind: MessageKind::Reminder,
            recipient: recipient.into(),
            address: format!("{recipient}@example.gov.vn"),
            channel: Channel::Email,
            subject: "s".into(),
            payload: format!("payload of {id}"),
        };
        NewMessage::new(message, keys, None)
    }

    #[tokio::test]
    async fn key_states_come_back_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::open(&url, 2, 1000).await.unwrap();
        let (a, b, c) = (notice("D1", "a"), notice("D2", "b"), notice("D3", "c"));
        store.enqueue(&[a.clone(), b.clone()], 100).await.unwrap();
        let claim = store.claim_notices(1).await.unwrap();
        let claimed: Vec<NoticeKey> = claim.notices.iter().map(|n| n.key.clone()).collect();
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
        let keys = vec![a.key.clone(), NoticeKey::stored("overdue:NO-SUCH:a:2025-09-15:T+1:email".to_string())];
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
