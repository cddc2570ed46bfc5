//! Store ← sources: what a sync reads and writes beside the directives themselves — which
//! source supplied each directive (`directives.origin`), every change to a directive
//! (`directive_history`), each source's last run (`source_runs`) — and the timeline
//! `nhacviec history` prints.

use super::directory::Importer;
use super::rows::{DirectiveRow, DIRECTIVE_COLUMNS};
use super::{Result, Store};
use crate::domain::Directive;
use serde::Serialize;

/// One change to one field of a directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HistoryRow {
    pub id: String,
    pub code: String,
    /// A field of the directive, or `created` / `cancelled (missing from the source)`.
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    /// The source's name, or `import`.
    pub origin: String,
    pub at: i64,
}

impl HistoryRow {
    /// A due date moved later: an extension (gia hạn). ISO dates compare as text.
    pub fn is_extension(&self) -> bool {
        self.field == "due_on" && self.old_value.is_some() && self.new_value > self.old_value
    }
}

/// A source's last run, as `nhacviec sources` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SourceRun {
    pub source: String,
    pub started_at: i64,
    pub finished_at: i64,
    /// `ok`, `unchanged` (same content as the last good run: skipped), `refused` or `failed`.
    pub result: String,
    pub rows_read: i64,
    pub rows_applied: i64,
    pub rows_rejected: i64,
    /// Directives created, changed or cancelled.
    pub changed: i64,
    pub content_hash: Option<String>,
    /// The HTTP validators of the last answer (`http` sources).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub failures_in_row: i64,
    pub last_success_at: Option<i64>,
    /// The problems of the run, one per line.
    pub problems: String,
}

/// One notice of a directive, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NoticeEvent {
    pub key: String,
    pub kind: String,
    pub stage: String,
    pub recipient: String,
    pub channel: String,
    /// pending | queued | sent | superseded | dead
    pub status: String,
    pub reason: Option<String>,
    pub planned_at: i64,
    pub updated_at: i64,
    /// The message's attempts so far (more than one: retried).
    pub attempts: Option<i64>,
}

impl Importer {
    /// The given directives as they stand, read inside the sync's transaction.
    pub async fn directives_in(&mut self, codes: &[String]) -> Result<Vec<Directive>> {
        // Found by key, never by a scan PostgreSQL picks from stale statistics (2.1 s for
        // 100,000 codes just after as many were inserted, against 0.1 s).
        if let Some(sql) = self.dialect.lookups_by_key_only() {
            sqlx::query(sql).execute(&mut *self.tx).await?;
        }
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(super::rows_per_statement(1)) {
            let list = super::Marks::new(self.dialect).tuple(chunk.len());
            let sql = format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE code IN {list}");
            let mut query = sqlx::query_as::<_, DirectiveRow>(&sql);
            for code in chunk {
                query = query.bind(code.as_str());
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                out.push(Directive::try_from(row)?);
            }
        }
        Ok(out)
    }

    /// Codes of the directives `origin` supplied that are not cancelled.
    pub async fn live_codes_of(&mut self, origin: &str) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT code FROM directives WHERE origin = {} AND status <> 'cancelled'",
            super::Marks::new(self.dialect).mark()
        );
        let rows: Vec<(String,)> = sqlx::query_as(&sql).bind(origin).fetch_all(&mut *self.tx).await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Keeps every other transaction that locks `name` out until this one ends: two replicas
    /// syncing one source (`source so-theo-doi`), or deciding on one directive
    /// (`directive NV-01`), go one after the other, each against what the other committed.
    pub async fn lock_named(&mut self, name: &str) -> Result<()> {
        if let Some(sql) = self.dialect.lock_named() {
            sqlx::query(sql).bind(name).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Cancels `codes` (a snapshot no longer lists them).
    pub async fn cancel(&mut self, codes: &[String], now: i64) -> Result<()> {
        for chunk in codes.chunks(super::rows_per_statement(1) - 1) {
            let mut marks = super::Marks::new(self.dialect);
            let sql = format!(
                "UPDATE directives SET status = 'cancelled', updated_at = {} WHERE code IN {}",
                marks.mark(),
                marks.tuple(chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(now);
            for code in chunk {
                query = query.bind(code.as_str());
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Appends `rows` to the directives' history.
    pub async fn record_history(&mut self, rows: &[HistoryRow]) -> Result<()> {
        use super::directory::{insert_rows, opt_text, text, Value};
        // A named function, not a closure: a closure's borrow would not be general enough for
        // the futures that must be `Send` (the web handlers').
        fn values(row: &HistoryRow) -> Vec<Value> {
            vec![
                text(&row.id),
                text(&row.code),
                text(&row.field),
                opt_text(row.old_value.as_deref()),
                opt_text(row.new_value.as_deref()),
                text(&row.origin),
                Value::Int(row.at),
            ]
        }
        let values = rows.iter().map(values);
        let columns = ["id", "code", "field", "old_value", "new_value", "origin", "at"];
        insert_rows(&mut self.tx, self.dialect, "directive_history", &columns, values, "").await
    }
}

impl Store {
    /// Records `run` as its source's last run.
    pub async fn record_source_run(&self, run: &SourceRun) -> Result<()> {
        let mut marks = self.marks();
        let sql = format!(
            "INSERT INTO source_runs (source, started_at, finished_at, result, rows_read, rows_applied, rows_rejected,
                                      changed, content_hash, etag, last_modified, failures_in_row, last_success_at,
                                      problems)
             VALUES {} ON CONFLICT (source) DO UPDATE SET started_at = excluded.started_at,
                finished_at = excluded.finished_at, result = excluded.result, rows_read = excluded.rows_read,
                rows_applied = excluded.rows_applied, rows_rejected = excluded.rows_rejected,
                changed = excluded.changed, content_hash = excluded.content_hash, etag = excluded.etag,
                last_modified = excluded.last_modified,
                failures_in_row = excluded.failures_in_row, last_success_at = excluded.last_success_at,
                problems = excluded.problems",
            marks.tuple(14)
        );
        sqlx::query(&sql)
            .bind(run.source.as_str())
            .bind(run.started_at)
            .bind(run.finished_at)
            .bind(run.result.as_str())
            .bind(run.rows_read)
            .bind(run.rows_applied)
            .bind(run.rows_rejected)
            .bind(run.changed)
            .bind(run.content_hash.clone())
            .bind(run.etag.clone())
            .bind(run.last_modified.clone())
            .bind(run.failures_in_row)
            .bind(run.last_success_at)
            .bind(run.problems.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every source's last run, by name.
    pub async fn source_runs(&self) -> Result<Vec<SourceRun>> {
        let rows = sqlx::query_as::<_, SourceRun>(
            "SELECT source, started_at, finished_at, result, rows_read, rows_applied, rows_rejected, changed,
                    content_hash, etag, last_modified, failures_in_row, last_success_at, problems
               FROM source_runs ORDER BY source",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// A directive's changes, oldest first.
    pub async fn history_of(&self, code: &str) -> Result<Vec<HistoryRow>> {
        let sql = format!(
            "SELECT id, code, field, old_value, new_value, origin, at FROM directive_history WHERE code = {} ORDER BY at, id",
            self.marks().mark()
        );
        Ok(sqlx::query_as::<_, HistoryRow>(&sql).bind(code).fetch_all(&self.pool).await?)
    }

    /// Every change to `field` of any directive at or after `since` (Unix seconds), oldest first.
    pub async fn changes_since(&self, field: &str, since: i64) -> Result<Vec<HistoryRow>> {
        let mut marks = self.marks();
        let sql = format!(
            "SELECT id, code, field, old_value, new_value, origin, at FROM directive_history
              WHERE field = {} AND at >= {} ORDER BY at, id",
            marks.mark(),
            marks.mark()
        );
        Ok(sqlx::query_as::<_, HistoryRow>(&sql).bind(field).bind(since).fetch_all(&self.pool).await?)
    }

    /// A directive's notices, oldest first, with their messages' attempts.
    pub async fn notices_of(&self, code: &str) -> Result<Vec<NoticeEvent>> {
        let sql = format!(
            "SELECT n.key, n.kind, n.stage, n.recipient, n.channel, n.status, n.reason, n.planned_at, n.updated_at,
                    m.attempts
               FROM notices n LEFT JOIN messages m ON m.id = n.message
              WHERE n.directive = {} ORDER BY n.planned_at, n.key",
            self.marks().mark()
        );
        Ok(sqlx::query_as::<_, NoticeEvent>(&sql).bind(code).fetch_all(&self.pool).await?)
    }
}
