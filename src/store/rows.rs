//! Rows as the database returns them (portable types only: text, integers, booleans) and
//! their conversion into domain types; a value that does not parse is reported as corrupt.

use super::{Result, StoreError};
use crate::domain::{
    CalendarDay, Channel, Directive, Ladder, Notice, NoticeKey, NoticeKind, Person, Reach, Stage, Unit,
};
use chrono::NaiveDate;
use std::str::FromStr;

fn parse<T: FromStr>(table: &'static str, column: &'static str, value: &str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt { table, column, value: value.to_string() })
}

fn parse_date(table: &'static str, column: &'static str, value: Option<&str>) -> Result<Option<NaiveDate>> {
    value.map(|v| parse(table, column, v)).transpose()
}

#[derive(sqlx::FromRow)]
pub(super) struct UnitRow {
    code: String,
    name: String,
    head: Option<String>,
    leader: Option<String>,
}

impl From<UnitRow> for Unit {
    fn from(r: UnitRow) -> Unit {
        Unit { code: r.code, name: r.name, head: r.head, leader: r.leader }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    code: String,
    name: String,
    title: String,
    email: String,
    unit: String,
    role: String,
    active: i64,
    channels: String,
    telegram_chat_id: Option<String>,
    webhook_id: Option<String>,
}

/// The column list matching [`PersonRow`].
pub(super) const PERSON_COLUMNS: &str =
    "code, name, title, email, unit, role, active, channels, telegram_chat_id, webhook_id";

impl TryFrom<PersonRow> for Person {
    type Error = StoreError;
    fn try_from(r: PersonRow) -> Result<Person> {
        Ok(Person {
            role: parse("people", "role", &r.role)?,
            code: r.code,
            name: r.name,
            title: r.title,
            email: r.email,
            unit: r.unit,
            active: r.active != 0,
            reach: Reach {
                channels: r
                    .channels
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| parse("people", "channels", c))
                    .collect::<Result<Vec<Channel>>>()?,
                telegram_chat_id: r.telegram_chat_id,
                webhook_id: r.webhook_id,
            },
        })
    }
}

/// Also read from a JSON array in column order (SQLite's planning selection comes that way).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct DirectiveRow {
    code: String,
    kind: String,
    title: String,
    source: String,
    unit: String,
    assignee: Option<String>,
    leader: Option<String>,
    assigned_on: Option<String>,
    due_on: Option<String>,
    status: String,
    completed_on: Option<String>,
    closed_on: Option<String>,
    result: Option<String>,
    confidential: i64,
}

/// The column list matching [`DirectiveRow`], for every SELECT of directives.
pub(super) const DIRECTIVE_COLUMNS: &str = "code, kind, title, source, unit, assignee, leader, \
    assigned_on, due_on, status, completed_on, closed_on, result, confidential";

impl TryFrom<DirectiveRow> for Directive {
    type Error = StoreError;
    fn try_from(r: DirectiveRow) -> Result<Directive> {
        const T: &str = "directives";
        Ok(Directive {
            kind: parse(T, "kind", &r.kind)?,
            status: parse(T, "status", &r.status)?,
            assigned_on: parse_date(T, "assigned_on", r.assigned_on.as_deref())?,
            due_on: parse_date(T, "due_on", r.due_on.as_deref())?,
            completed_on: parse_date(T, "completed_on", r.completed_on.as_deref())?,
            closed_on: parse_date(T, "closed_on", r.closed_on.as_deref())?,
            code: r.code,
            title: r.title,
            source: r.source,
            unit: r.unit,
            assignee: r.assignee,
            leader: r.leader,
            result: r.result,
            confidential: r.confidential != 0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CalendarRow {
    date: String,
    kind: String,
    note: String,
}

impl TryFrom<CalendarRow> for CalendarDay {
    type Error = StoreError;
    fn try_from(r: CalendarRow) -> Result<CalendarDay> {
        Ok(CalendarDay {
            date: parse("calendar_days", "date", &r.date)?,
            kind: parse("calendar_days", "kind", &r.kind)?,
            note: r.note,
        })
    }
}

/// A notice as the outbox holds it.
#[derive(sqlx::FromRow)]
pub(super) struct NoticeRecord {
    key: String,
    kind: String,
    directive: Option<String>,
    recipient: String,
    address: String,
    channel: String,
    ladder: String,
    stage: String,
    effective_due: Option<String>,
    days_overdue: i64,
}

/// The column list matching [`NoticeRecord`].
pub(super) const NOTICE_COLUMNS: &str =
    "key, kind, directive, recipient, address, channel, ladder, stage, effective_due, days_overdue";

impl TryFrom<NoticeRecord> for Notice {
    type Error = StoreError;
    fn try_from(r: NoticeRecord) -> Result<Notice> {
        const T: &str = "notices";
        let ladder: Ladder = parse(T, "ladder", &r.ladder)?;
        let kind = match parse(T, "kind", &r.kind)? {
            // Recorded before monthly reports had a kind of their own.
            NoticeKind::Digest if ladder == Ladder::Report => NoticeKind::Report,
            kind => kind,
        };
        let stage = Stage::parse(ladder, &r.stage).map_err(|_| StoreError::Corrupt {
            table: T,
            column: "stage",
            value: r.stage.clone(),
        })?;
        Ok(Notice {
            kind,
            channel: parse(T, "channel", &r.channel)?,
            effective_due: parse_date(T, "effective_due", r.effective_due.as_deref())?,
            days_overdue: i32::try_from(r.days_overdue).unwrap_or(i32::MAX),
            key: NoticeKey::stored(r.key),
            directive: r.directive,
            recipient: r.recipient,
            address: r.address,
            stage,
            ladder,
        })
    }
}
