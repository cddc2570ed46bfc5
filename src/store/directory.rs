//! Units, people, directives and calendar days: upserted by `import` in one transaction,
//! read back whole (units, people, calendar) or pre-filtered (directives) for the planner.

use super::dialect::Dialect;
use super::rows::{CalendarRow, DirectiveRow, PersonRow, UnitRow, DIRECTIVE_COLUMNS, PERSON_COLUMNS};
use super::{keep_prepared, rows_per_statement, Marks, Result, Store, StoreError, Tx};
use crate::domain::{Bounce, CalendarDay, Directive, Person, Unit};
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

/// How many rows of each kind an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub units: usize,
    pub people: usize,
    pub directives: usize,
    pub calendar: usize,
}

/// Which directives can owe anything at a planning instant: live ones due on or before
/// `due_until` (the upcoming horizon), live ones missing an assignee or a due date, and
/// ones closed on or after `closed_since`.
#[derive(Debug, Clone, Copy)]
pub struct PlanningWindow {
    pub due_until: NaiveDate,
    pub closed_since: NaiveDate,
}

/// A bindable value: the few portable types the schema uses.
pub(super) enum Value {
    Text(Option<String>),
    Int(i64),
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(Some(s.to_string()))
}

pub(super) fn opt_text(s: Option<&str>) -> Value {
    Value::Text(s.map(str::to_string))
}

fn date(d: Option<NaiveDate>) -> Value {
    Value::Text(d.map(|d| d.to_string()))
}

fn bind<'q>(query: Query<'q, Any, AnyArguments<'q>>, value: Value) -> Query<'q, Any, AnyArguments<'q>> {
    match value {
        Value::Text(v) => query.bind(v),
        Value::Int(v) => query.bind(v),
    }
}

/// A record's columns, then when the row was written.
fn stamped(fields: &[&'static str]) -> Vec<&'static str> {
    fields.iter().copied().chain(["updated_at"]).collect()
}

async fn upsert(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    table: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
) -> Result<()> {
    let updates: Vec<String> = columns[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let on_conflict = format!(" ON CONFLICT ({}) DO UPDATE SET {}", columns[0], updates.join(", "));
    insert_rows(tx, dialect, table, columns, rows, &on_conflict).await
}

/// Inserts `rows` (values in `columns` order), `suffix` appended to each statement. Rows are
/// made one statement's worth at a time, never all at once (100,000 directives as bind
/// values would take some 70 MB).
pub(super) async fn insert_rows(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    table: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<Value>>,
    suffix: &str,
) -> Result<()> {
    let list = columns.join(", ");
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows.by_ref().take(rows_per_statement(columns.len())).collect();
        let sql = format!(
            "INSERT INTO {table} ({list}) VALUES {}{suffix}",
            Marks::new(dialect).rows(chunk.len(), columns.len())
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), rows_per_statement(columns.len())));
        for value in chunk.into_iter().flatten() {
            query = bind(query, value);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An import in progress: one write transaction that sections are streamed into, chunk by
/// chunk, so a million directives never need to sit in memory at once. Dropping it without
/// `commit` rolls everything back.
pub struct Importer {
    pub(super) tx: Tx,
    pub(super) dialect: &'static dyn Dialect,
    /// Run before the commit, to undo what the import set for itself.
    restore: Option<String>,
    counts: ImportCounts,
}

impl Importer {
    pub async fn units(&mut self, units: &[Unit], now_epoch: i64) -> Result<()> {
        let at = || Value::Int(now_epoch);
        upsert(
            &mut self.tx,
            self.dialect,
            "units",
            &stamped(Unit::FIELDS),
            units.iter().map(|u| {
                vec![text(&u.code), text(&u.name), opt_text(u.head.as_deref()), opt_text(u.leader.as_deref()), at()]
            }),
        )
        .await?;
        self.counts.units += units.len();
        Ok(())
    }

    pub async fn people(&mut self, people: &[Person], now_epoch: i64) -> Result<()> {
        let at = || Value::Int(now_epoch);
        upsert(
            &mut self.tx,
            self.dialect,
            "people",
            &stamped(Person::FIELDS),
            people.iter().map(|p| {
                vec![
                    text(&p.code),
                    text(&p.name),
                    text(&p.title),
                    text(&p.email),
                    text(&p.unit),
                    text(p.role.as_str()),
                    Value::Int(i64::from(p.active)),
                    text(&p.reach.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")),
                    opt_text(p.reach.telegram_chat_id.as_deref()),
                    opt_text(p.reach.webhook_id.as_deref()),
                    at(),
                ]
            }),
        )
        .await?;
        self.counts.people += people.len();
        Ok(())
    }

    pub async fn directives(&mut self, directives: &[Directive], now_epoch: i64) -> Result<()> {
        self.directives_with_origin(directives, now_epoch, None).await
    }

    /// Upserts directives a source supplied, marking them as that source's in the same
    /// statement (a separate `UPDATE … SET origin` cost a PostgreSQL sync of 100,000 rows 3.7 s).
    pub async fn directives_from(&mut self, directives: &[Directive], now_epoch: i64, origin: &str) -> Result<()> {
        self.directives_with_origin(directives, now_epoch, Some(origin)).await
    }

    async fn directives_with_origin(
        &mut self,
        directives: &[Directive],
        now_epoch: i64,
        origin: Option<&str>,
    ) -> Result<()> {
        let at = || Value::Int(now_epoch);
        let mut columns = stamped(Directive::FIELDS);
        if origin.is_some() {
            columns.push("origin");
        }
        upsert(
            &mut self.tx,
            self.dialect,
            "directives",
            &columns,
            directives.iter().map(|d| {
                let mut row = vec![
                    text(&d.code),
                    text(d.kind.as_str()),
                    text(&d.title),
                    text(&d.source),
                    text(&d.unit),
                    opt_text(d.assignee.as_deref()),
                    opt_text(d.leader.as_deref()),
                    date(d.assigned_on),
                    date(d.due_on),
                    text(d.status.as_str()),
                    date(d.completed_on),
                    date(d.closed_on),
                    opt_text(d.result.as_deref()),
                    Value::Int(i64::from(d.confidential)),
                    at(),
                ];
                if let Some(origin) = origin {
                    row.push(text(origin));
                }
                row
            }),
        )
        .await?;
        self.counts.directives += directives.len();
        Ok(())
    }

    pub async fn calendar(&mut self, calendar: &[CalendarDay]) -> Result<()> {
        upsert(
            &mut self.tx,
            self.dialect,
            "calendar_days",
            &["date", "kind", "note"],
            calendar.iter().map(|c| vec![text(&c.date.to_string()), text(c.kind.as_str()), text(&c.note)]),
        )
        .await?;
        self.counts.calendar += calendar.len();
        Ok(())
    }

    /// Makes the whole import visible at once.
    pub async fn commit(mut self) -> Result<ImportCounts> {
        if let Some(restore) = &self.restore {
            sqlx::query(restore).execute(&mut *self.tx).await?;
        }
        self.tx.commit().await?;
        Ok(self.counts)
    }
}

impl Store {
    /// Starts an import: sections are added in any order and any number of chunks, and land
    /// together on `commit`.
    pub async fn begin_import(&self) -> Result<Importer> {
        let mut tx = self.begin_write().await?;
        let settings = self.dialect.import_settings();
        if let Some((set, _)) = &settings {
            sqlx::query(set).execute(&mut *tx).await?;
        }
        let restore = settings.map(|(_, restore)| restore);
        Ok(Importer { tx, dialect: self.dialect, restore, counts: ImportCounts::default() })
    }

    /// Upserts everything by code in one transaction: all of it lands, or none of it.
    pub async fn import(
        &self,
        units: &[Unit],
        people: &[Person],
        directives: &[Directive],
        calendar: &[CalendarDay],
        now_epoch: i64,
    ) -> Result<ImportCounts> {
        let mut import = self.begin_import().await?;
        import.units(units, now_epoch).await?;
        import.people(people, now_epoch).await?;
        import.directives(directives, now_epoch).await?;
        import.calendar(calendar).await?;
        import.commit().await
    }

    pub async fn units(&self) -> Result<Vec<Unit>> {
        let rows: Vec<UnitRow> =
            sqlx::query_as("SELECT code, name, head, leader FROM units ORDER BY code").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Unit::from).collect())
    }

    pub async fn people(&self) -> Result<Vec<Person>> {
        let rows: Vec<PersonRow> =
            sqlx::query_as(&format!("SELECT {PERSON_COLUMNS} FROM people ORDER BY code")).fetch_all(&self.pool).await?;
        rows.into_iter().map(Person::try_from).collect()
    }

    /// One person by code (a page's visitor, the people its directive names).
    pub async fn person(&self, code: &str) -> Result<Option<Person>> {
        let sql = format!("SELECT {PERSON_COLUMNS} FROM people WHERE code = {}", self.marks().mark());
        let row: Option<PersonRow> = sqlx::query_as(&sql).bind(code).fetch_optional(&self.pool).await?;
        row.map(Person::try_from).transpose()
    }

    /// One unit by code.
    pub async fn unit(&self, code: &str) -> Result<Option<Unit>> {
        let sql = format!("SELECT code, name, head, leader FROM units WHERE code = {}", self.marks().mark());
        let row: Option<UnitRow> = sqlx::query_as(&sql).bind(code).fetch_optional(&self.pool).await?;
        Ok(row.map(Unit::from))
    }

    pub async fn calendar_days(&self) -> Result<Vec<CalendarDay>> {
        let rows: Vec<CalendarRow> =
            sqlx::query_as("SELECT date, kind, note FROM calendar_days ORDER BY date").fetch_all(&self.pool).await?;
        rows.into_iter().map(CalendarDay::try_from).collect()
    }

    /// Whether any directive has been imported (an empty database plans nothing, and the CLI
    /// says how to fill it).
    pub async fn has_directives(&self) -> Result<bool> {
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM directives LIMIT 1").fetch_optional(&self.pool).await?;
        Ok(found.is_some())
    }

    /// Every directive, in code order (for exports and tests; planning uses the window).
    pub async fn all_directives(&self) -> Result<Vec<Directive>> {
        let sql = format!("SELECT {DIRECTIVE_COLUMNS} FROM directives ORDER BY code");
        let rows: Vec<DirectiveRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter().map(Directive::try_from).collect()
    }

    /// The directives that can owe something in `window`, in code order. Three index-backed
    /// selections, so the cost follows the directives near their deadlines, not the table.
    pub async fn planning_directives(&self, window: PlanningWindow) -> Result<Vec<Directive>> {
        // The second selection repeats the predicate of the partial index `directives_incomplete`
        // word for word (a partial index is used only then); its date test is written so that
        // no date index looks cheaper.
        let selections = |columns: &str| {
            format!(
                "SELECT {columns} FROM directives WHERE status IN ('open', 'in_progress') AND due_on <= $1
                 UNION ALL
                 SELECT {columns} FROM directives
                  WHERE status IN ('open', 'in_progress') AND (assignee IS NULL OR due_on IS NULL)
                    AND COALESCE(due_on, '9999-12-31') > $1
                 UNION ALL
                 SELECT {columns} FROM directives WHERE status = 'closed' AND closed_on >= $2"
            )
        };
        let due_until = window.due_until.to_string();
        let closed_since = window.closed_since.to_string();
        let binds = [due_until.as_str(), closed_since.as_str()];
        let mut directives = Vec::new();
        if self.dialect.reads_rows_as_json() {
            // The row ids come from the indexes alone; the rows are then read in row-id order,
            // front to back through the file, about a thousand to a JSON row. Sorted below:
            // SQLite, asked to ORDER BY code over a UNION, reads the whole table in code order.
            let sql = format!(
                "SELECT json_group_array(json_array({DIRECTIVE_COLUMNS})) FROM directives
                  WHERE rowid IN ({}) GROUP BY rowid >> 10",
                selections("rowid")
            );
            self.select_directives_as_json(&sql, &binds, true, &mut directives).await?;
        } else {
            // Sorted below, not by ORDER BY: 100,000 rows overflow the default work_mem, and
            // PostgreSQL sorted them on disk (an external merge of 22 MB) before sending the first.
            self.select_directives(&selections(DIRECTIVE_COLUMNS), &binds, true, &mut directives).await?;
        }
        // Byte order (SQLite's BINARY collation): the same on both backends, whatever
        // PostgreSQL's locale would have made of ORDER BY.
        directives.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        Ok(directives)
    }

    /// What reports are built from: every live directive, those closed or completed on or
    /// after `since`, and every directive due between `due_from` and `due_until`.
    pub async fn report_directives(
        &self,
        since: NaiveDate,
        due_from: NaiveDate,
        due_until: NaiveDate,
    ) -> Result<Vec<Directive>> {
        let sql = format!(
            "SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE status IN ('open', 'in_progress')
             UNION
             SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE status = 'closed' AND closed_on >= $1
             UNION
             SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE status = 'completed' AND completed_on >= $1
             UNION
             SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE due_on >= $2 AND due_on <= $3
             ORDER BY code"
        );
        let rows: Vec<DirectiveRow> = sqlx::query_as(&sql)
            .bind(since.to_string())
            .bind(due_from.to_string())
            .bind(due_until.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Directive::try_from).collect()
    }

    /// The current state of the given directives (delivery re-checks queued notices with it).
    pub async fn directives_by_code(&self, codes: &[String]) -> Result<Vec<Directive>> {
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(rows_per_statement(1)) {
            let list = self.marks().tuple(chunk.len());
            let codes: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let keep = keep_prepared(chunk.len(), rows_per_statement(1));
            if self.dialect.reads_rows_as_json() {
                // One JSON row instead of a row per directive: a national round re-checks the
                // directive of every one of its notices.
                let sql = format!(
                    "SELECT json_group_array(json_array({DIRECTIVE_COLUMNS})) FROM directives WHERE code IN {list}"
                );
                self.select_directives_as_json(&sql, &codes, keep, &mut out).await?;
            } else {
                let sql = format!("SELECT {DIRECTIVE_COLUMNS} FROM directives WHERE code IN {list}");
                self.select_directives(&sql, &codes, keep, &mut out).await?;
            }
        }
        Ok(out)
    }

    /// The directives `sql` selects (its text parameters bound in order), converted as
    /// they stream in, never held twice.
    async fn select_directives(&self, sql: &str, binds: &[&str], keep: bool, out: &mut Vec<Directive>) -> Result<()> {
        let mut query = sqlx::query_as::<_, DirectiveRow>(sql).persistent(keep);
        for value in binds {
            query = query.bind(*value);
        }
        let mut rows = query.fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            out.push(Directive::try_from(row)?);
        }
        Ok(())
    }

    /// The directives `sql` selects as JSON arrays of rows (see the dialect's
    /// `reads_rows_as_json`).
    async fn select_directives_as_json(
        &self,
        sql: &str,
        binds: &[&str],
        keep: bool,
        out: &mut Vec<Directive>,
    ) -> Result<()> {
        let mut query = sqlx::query_as::<_, (String,)>(sql).persistent(keep);
        for value in binds {
            query = query.bind(*value);
        }
        let mut chunks = query.fetch(&self.pool);
        while let Some((chunk,)) = chunks.try_next().await? {
            for row in parse_directive_rows(&chunk)? {
                out.push(Directive::try_from(row)?);
            }
        }
        Ok(())
    }

    /// Codes already present, so an import may refer to units and people it does not carry.
    pub async fn existing_codes(&self, table: &'static str) -> Result<Vec<String>> {
        let sql = match table {
            "units" => "SELECT code FROM units",
            "people" => "SELECT code FROM people",
            _ => "SELECT code FROM directives",
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }
}

impl Store {
    /// Addresses that rejected a message permanently, oldest first.
    pub async fn bounces(&self) -> Result<Vec<Bounce>> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT person, address, channel, reason FROM bounces ORDER BY at, person")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(person, address, channel, reason)| {
                Ok(Bounce {
                    channel: channel.parse().map_err(|_| StoreError::Corrupt {
                        table: "bounces",
                        column: "channel",
                        value: channel.clone(),
                    })?,
                    person,
                    address,
                    reason,
                })
            })
            .collect()
    }

    /// Records that `address` rejected a message permanently (once per person and address).
    pub async fn record_bounce(&self, bounce: &Bounce, now: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO bounces (person, address, channel, reason, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (person, address, channel) DO NOTHING",
        )
        .bind(bounce.person.clone())
        .bind(bounce.address.clone())
        .bind(bounce.channel.as_str())
        .bind(bounce.reason.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Directive rows that SQLite aggregated into a JSON array of arrays, in column order.
fn parse_directive_rows(json: &str) -> Result<Vec<DirectiveRow>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        table: "directives",
        column: "(json_group_array of the selection)",
        value: e.to_string(),
    })
}
