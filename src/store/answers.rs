//! Store ← answers: the answers people give through their links, appended inside the write
//! transaction that checks them (so a decision is taken once), the directive changes an
//! accepted decision makes (completed; due date moved), and the answers read back for a
//! directive's page and for planning.

use super::directory::Importer;
use super::{Result, Store, StoreError};
use crate::answer::Answer;
use chrono::NaiveDate;

#[derive(sqlx::FromRow)]
struct AnswerRow {
    id: String,
    code: String,
    person: String,
    kind: String,
    note: Option<String>,
    percent: Option<i64>,
    on_date: Option<String>,
    cause: Option<String>,
    measures: Option<String>,
    accept: Option<i64>,
    at: i64,
    address: String,
}

const ANSWER_COLUMNS: &str = "id, code, person, kind, note, percent, on_date, cause, measures, accept, at, address";

impl TryFrom<AnswerRow> for Answer {
    type Error = StoreError;
    fn try_from(r: AnswerRow) -> Result<Answer> {
        let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
            table: "answers",
            column,
            value: value.to_string(),
        };
        Ok(Answer {
            kind: r.kind.parse().map_err(|()| corrupt("kind", &r.kind))?,
            on_date: match r.on_date {
                Some(d) => Some(d.parse::<NaiveDate>().map_err(|_| corrupt("on_date", &d))?),
                None => None,
            },
            cause: match r.cause {
                Some(c) => Some(c.parse().map_err(|()| corrupt("cause", &c))?),
                None => None,
            },
            id: r.id,
            code: r.code,
            person: r.person,
            note: r.note,
            percent: r.percent,
            measures: r.measures,
            accept: r.accept.map(|a| a != 0),
            at: r.at,
            address: r.address,
        })
    }
}

impl Importer {
    /// The answers given on `code`, oldest first, read inside this transaction.
    pub async fn answers_in(&mut self, code: &str) -> Result<Vec<Answer>> {
        let sql = format!(
            "SELECT {ANSWER_COLUMNS} FROM answers WHERE code = {} ORDER BY at, id",
            super::Marks::new(self.dialect).mark()
        );
        let rows: Vec<AnswerRow> = sqlx::query_as(&sql).bind(code).fetch_all(&mut *self.tx).await?;
        rows.into_iter().map(Answer::try_from).collect()
    }

    /// Appends `answer`.
    pub async fn record_answer(&mut self, answer: &Answer) -> Result<()> {
        let sql =
            format!("INSERT INTO answers ({ANSWER_COLUMNS}) VALUES {}", super::Marks::new(self.dialect).tuple(12));
        sqlx::query(&sql)
            .bind(answer.id.as_str())
            .bind(answer.code.as_str())
            .bind(answer.person.as_str())
            .bind(answer.kind.as_str())
            .bind(answer.note.clone())
            .bind(answer.percent)
            .bind(answer.on_date.map(|d| d.to_string()))
            .bind(answer.cause.map(|c| c.as_str()))
            .bind(answer.measures.clone())
            .bind(answer.accept.map(i64::from))
            .bind(answer.at)
            .bind(answer.address.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Marks `code` completed on `on` with `result` (a confirmed completion).
    pub async fn complete(&mut self, code: &str, on: NaiveDate, result: &str, now: i64) -> Result<()> {
        let mut marks = super::Marks::new(self.dialect);
        let sql = format!(
            "UPDATE directives SET status = 'completed', completed_on = {}, result = {}, updated_at = {} WHERE code = {}",
            marks.mark(),
            marks.mark(),
            marks.mark(),
            marks.mark()
        );
        sqlx::query(&sql).bind(on.to_string()).bind(result).bind(now).bind(code).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Moves `code`'s due date to `until` (an approved extension).
    pub async fn move_due_date(&mut self, code: &str, until: NaiveDate, now: i64) -> Result<()> {
        let mut marks = super::Marks::new(self.dialect);
        let sql = format!(
            "UPDATE directives SET due_on = {}, updated_at = {} WHERE code = {}",
            marks.mark(),
            marks.mark(),
            marks.mark()
        );
        sqlx::query(&sql).bind(until.to_string()).bind(now).bind(code).execute(&mut *self.tx).await?;
        Ok(())
    }
}

impl Store {
    /// The answers given on `code`, oldest first.
    pub async fn answers_of(&self, code: &str) -> Result<Vec<Answer>> {
        let sql = format!("SELECT {ANSWER_COLUMNS} FROM answers WHERE code = {} ORDER BY at, id", self.marks().mark());
        let rows: Vec<AnswerRow> = sqlx::query_as(&sql).bind(code).fetch_all(&self.pool).await?;
        rows.into_iter().map(Answer::try_from).collect()
    }
}
