//! Import: JSON or CSV files in, a validated batch out, then one all-or-nothing upsert.
//! Every problem is collected (not just the first) and names its file, its place (JSON path
//! or CSV line) and its field, so an administrator can fix a whole file in one pass.

use crate::calendar::Calendar;
use crate::domain::{
    CalendarDay, CalendarDayKind, Channel, Directive, DirectiveKind, Person, Reach, Role, Status, Unit,
};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// One problem found in an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportIssue {
    pub file: String,
    /// `directives[3]` in JSON, `line 7` in CSV, or where the parser stopped.
    pub location: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}: field \"{}\": {}", self.file, self.location, field, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.location, self.message),
        }
    }
}

/// Everything wrong with an import; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportErrors(pub Vec<ImportIssue>);

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "import rejected, nothing was written ({} problem(s)):", self.0.len())?;
        for issue in &self.0 {
            writeln!(f, "  {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

/// Validated rows ready for the store, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportBatch {
    pub units: Vec<Unit>,
    pub people: Vec<Person>,
    pub directives: Vec<Directive>,
    pub calendar: Vec<CalendarDay>,
}

/// Codes that already exist in the store: an import may refer to them without carrying them.
#[derive(Debug, Clone, Default)]
pub struct KnownCodes {
    pub units: HashSet<String>,
    pub people: HashSet<String>,
}

/// A record being read: a JSON object or a CSV row, both seen as field → JSON value.
struct Record<'a> {
    file: &'a str,
    location: String,
    fields: Map<String, Value>,
    issues: &'a mut Vec<ImportIssue>,
}

impl Record<'_> {
    fn issue(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.issues.push(ImportIssue {
            file: self.file.to_string(),
            location: self.location.clone(),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    fn check_fields(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> = self.fields.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
        for field in unknown {
            self.issue(Some(&field), format!("unknown field (expected one of: {})", allowed.join(", ")));
        }
    }

    /// A text value, `None` when absent, null or empty.
    fn opt_text(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                let kind = json_kind(other);
                self.issue(Some(field), format!("expected text, found {kind}"));
                None
            }
        }
    }

    fn text(&mut self, field: &str) -> Option<String> {
        let value = self.opt_text(field);
        if value.is_none() && !self.already_reported(field) {
            self.issue(Some(field), "is required");
        }
        value
    }

    fn already_reported(&self, field: &str) -> bool {
        self.issues
            .iter()
            .any(|i| i.location == self.location && i.file == self.file && i.field.as_deref() == Some(field))
    }

    fn vocab<T: FromStr<Err = String>>(&mut self, field: &str, default: Option<T>) -> Option<T> {
        match (self.opt_text(field), default) {
            (Some(text), _) => match text.parse() {
                Ok(v) => Some(v),
                Err(e) => {
                    self.issue(Some(field), e);
                    None
                }
            },
            (None, Some(default)) => Some(default),
            (None, None) => {
                if !self.already_reported(field) {
                    self.issue(Some(field), "is required");
                }
                None
            }
        }
    }

    /// A list of channels: a JSON list of names, or one text of comma-separated names.
    fn channels(&mut self, field: &str) -> Vec<Channel> {
        let names: Vec<String> = match self.fields.get(field) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect(),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
            Some(other) => {
                let kind = json_kind(other);
                self.issue(Some(field), format!("expected a list of channels, found {kind}"));
                return Vec::new();
            }
        };
        let mut channels = Vec::new();
        for name in names {
            match name.parse::<Channel>() {
                Ok(c) if !channels.contains(&c) => channels.push(c),
                Ok(_) => {}
                Err(e) => self.issue(Some(field), e),
            }
        }
        channels
    }

    fn date(&mut self, field: &str) -> Option<NaiveDate> {
        let text = self.opt_text(field)?;
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.issue(Some(field), format!("{text:?} is not a date YYYY-MM-DD"));
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, default: bool) -> bool {
        match self.fields.get(field) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
                "" => default,
                "true" | "1" | "yes" | "có" => true,
                "false" | "0" | "no" | "không" => false,
                other => {
                    let msg = format!("{other:?} is not true or false");
                    self.issue(Some(field), msg);
                    default
                }
            },
            Some(other) => {
                let kind = json_kind(other);
                self.issue(Some(field), format!("expected true or false, found {kind}"));
                default
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const UNIT_FIELDS: &[&str] = &["code", "name", "head", "leader"];
const PERSON_FIELDS: &[&str] =
    &["code", "name", "title", "email", "unit", "role", "active", "channels", "telegram_chat_id", "webhook_id"];
const DIRECTIVE_FIELDS: &[&str] = &[
    "code",
    "kind",
    "title",
    "source",
    "unit",
    "assignee",
    "leader",
    "assigned_on",
    "due_on",
    "status",
    "completed_on",
    "closed_on",
    "result",
    "confidential",
];
const CALENDAR_FIELDS: &[&str] = &["date", "kind", "note"];

/// Rows read from files, before cross-references are checked.
#[derive(Default)]
struct Parsed {
    batch: ImportBatch,
    /// Where each row came from, to report reference errors in place.
    unit_refs: Vec<(String, String, &'static str, String)>,
    person_refs: Vec<(String, String, &'static str, String)>,
    /// Directives whose due date is "YYYY-MM": resolved once the calendar is known.
    month_due: Vec<(usize, i32, u32)>,
}

/// Reads, validates and cross-checks the given files. `known` holds codes already in the
/// store; `calendar` resolves "by the end of the month" due dates.
pub fn read_files(paths: &[&Path], known: &KnownCodes, calendar: &Calendar) -> Result<ImportBatch, ImportErrors> {
    let mut issues = Vec::new();
    let mut parsed = Parsed::default();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Err(e) => issues.push(ImportIssue {
                file: name,
                location: "file".into(),
                field: None,
                message: format!("cannot read: {e}"),
            }),
            Ok(bytes) => {
                let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
                if is_csv {
                    read_csv(&name, &bytes, &mut parsed, &mut issues);
                } else {
                    read_json(&name, &bytes, &mut parsed, &mut issues);
                }
            }
        }
    }
    cross_check(&mut parsed, known, &mut issues);
    let mut calendar = calendar.clone();
    for day in &parsed.batch.calendar {
        calendar.set_day(day);
    }
    for (index, year, month) in std::mem::take(&mut parsed.month_due) {
        if let Some(directive) = parsed.batch.directives.get_mut(index) {
            directive.due_on = calendar.last_working_day_of_month(year, month);
        }
    }
    if issues.is_empty() {
        Ok(parsed.batch)
    } else {
        Err(ImportErrors(issues))
    }
}

fn read_json(file: &str, bytes: &[u8], parsed: &mut Parsed, issues: &mut Vec<ImportIssue>) {
    let root: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            issues.push(ImportIssue {
                file: file.into(),
                location: format!("line {} column {}", e.line(), e.column()),
                field: None,
                message: format!("broken JSON: {e}"),
            });
            return;
        }
    };
    let Value::Object(root) = root else {
        issues.push(ImportIssue {
            file: file.into(),
            location: "$".into(),
            field: None,
            message: "expected an object with units, people, directives and/or calendar".into(),
        });
        return;
    };
    for (section, value) in root {
        if !["units", "people", "directives", "calendar"].contains(&section.as_str()) {
            issues.push(ImportIssue {
                file: file.into(),
                location: section.clone(),
                field: None,
                message: "unknown section (expected units, people, directives, calendar)".into(),
            });
            continue;
        }
        let Value::Array(items) = value else {
            issues.push(ImportIssue {
                file: file.into(),
                location: section.clone(),
                field: None,
                message: format!("expected a list, found {}", json_kind(&value)),
            });
            continue;
        };
        let mut seen = HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let location = format!("{section}[{i}]");
            let Value::Object(fields) = item else {
                issues.push(ImportIssue {
                    file: file.into(),
                    location,
                    field: None,
                    message: format!("expected an object, found {}", json_kind(&item)),
                });
                continue;
            };
            let record = Record { file, location, fields, issues };
            read_record(&section, record, parsed, &mut seen);
        }
    }
}

fn read_csv(file: &str, bytes: &[u8], parsed: &mut Parsed, issues: &mut Vec<ImportIssue>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            issues.push(ImportIssue {
                file: file.into(),
                location: "line 1".into(),
                field: None,
                message: format!("cannot read the header row: {e}"),
            });
            return;
        }
    };
    let mut seen = HashMap::new();
    for row in reader.records() {
        match row {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                issues.push(ImportIssue {
                    file: file.into(),
                    location: format!("line {line}"),
                    field: None,
                    message: format!("broken CSV: {e}"),
                });
            }
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line());
                let fields = headers
                    .iter()
                    .zip(row.iter())
                    .map(|(h, v)| (h.trim().to_string(), Value::String(v.to_string())))
                    .collect();
                let record = Record { file, location: format!("line {line}"), fields, issues };
                read_record("directives", record, parsed, &mut seen);
            }
        }
    }
}

fn read_record(section: &str, mut r: Record<'_>, parsed: &mut Parsed, seen: &mut HashMap<String, String>) {
    let key_field = if section == "calendar" { "date" } else { "code" };
    if let Some(code) = r.opt_text(key_field) {
        if let Some(first) = seen.get(&code) {
            let msg = format!("duplicate {key_field} {code:?} (first at {first})");
            r.issue(Some(key_field), msg);
            return;
        }
        seen.insert(code, r.location.clone());
    }
    let before = r.issues.len();
    match section {
        "units" => {
            r.check_fields(UNIT_FIELDS);
            let unit = Unit {
                code: r.text("code").unwrap_or_default(),
                name: r.text("name").unwrap_or_default(),
                head: r.opt_text("head"),
                leader: r.opt_text("leader"),
            };
            for (field, code) in [("head", &unit.head), ("leader", &unit.leader)] {
                if let Some(code) = code {
                    parsed.person_refs.push((r.file.into(), r.location.clone(), field, code.clone()));
                }
            }
            if r.issues.len() == before {
                parsed.batch.units.push(unit);
            }
        }
        "people" => {
            r.check_fields(PERSON_FIELDS);
            let email = r.text("email").unwrap_or_default();
            if !email.is_empty() && email.parse::<lettre::Address>().is_err() {
                r.issue(Some("email"), format!("{email:?} is not a valid email address"));
            }
            let person = Person {
                code: r.text("code").unwrap_or_default(),
                name: r.text("name").unwrap_or_default(),
                title: r.opt_text("title").unwrap_or_default(),
                email,
                unit: r.text("unit").unwrap_or_default(),
                role: r.vocab::<Role>("role", Some(Role::Officer)).unwrap_or(Role::Officer),
                active: r.boolean("active", true),
                reach: Reach {
                    channels: r.channels("channels"),
                    telegram_chat_id: r.opt_text("telegram_chat_id"),
                    webhook_id: r.opt_text("webhook_id"),
                },
            };
            if person.reach.channels.contains(&Channel::Telegram) && person.reach.telegram_chat_id.is_none() {
                r.issue(Some("telegram_chat_id"), "is required when channels include telegram");
            }
            parsed.unit_refs.push((r.file.into(), r.location.clone(), "unit", person.unit.clone()));
            if r.issues.len() == before {
                parsed.batch.people.push(person);
            }
        }
        "directives" => read_directive(r, parsed, before),
        _ => {
            r.check_fields(CALENDAR_FIELDS);
            let day = CalendarDay {
                date: r.date("date").unwrap_or_default(),
                kind: r.vocab::<CalendarDayKind>("kind", None).unwrap_or(CalendarDayKind::Holiday),
                note: r.opt_text("note").unwrap_or_default(),
            };
            if r.fields.get("date").is_none_or(Value::is_null) {
                r.issue(Some("date"), "is required");
            }
            if r.issues.len() == before {
                parsed.batch.calendar.push(day);
            }
        }
    }
}

fn read_directive(mut r: Record<'_>, parsed: &mut Parsed, before: usize) {
    r.check_fields(DIRECTIVE_FIELDS);
    let mut month_due = None;
    let due_on = match r.opt_text("due_on") {
        Some(text) if text.len() == 7 => match NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
            Ok(first) => {
                month_due = Some((chrono::Datelike::year(&first), chrono::Datelike::month(&first)));
                None
            }
            Err(_) => {
                r.issue(Some("due_on"), format!("{text:?} is not a date YYYY-MM-DD or a month YYYY-MM"));
                None
            }
        },
        Some(_) => r.date("due_on"),
        None => None,
    };
    let directive = Directive {
        code: r.text("code").unwrap_or_default(),
        kind: r.vocab::<DirectiveKind>("kind", Some(DirectiveKind::Task)).unwrap_or(DirectiveKind::Task),
        title: r.text("title").unwrap_or_default(),
        source: r.opt_text("source").unwrap_or_default(),
        unit: r.text("unit").unwrap_or_default(),
        assignee: r.opt_text("assignee"),
        leader: r.opt_text("leader"),
        assigned_on: r.date("assigned_on"),
        due_on,
        status: r.vocab::<Status>("status", Some(Status::Open)).unwrap_or(Status::Open),
        completed_on: r.date("completed_on"),
        closed_on: r.date("closed_on"),
        result: r.opt_text("result"),
        confidential: r.boolean("confidential", false),
    };
    if directive.status == Status::Completed && directive.completed_on.is_none() && !r.already_reported("completed_on")
    {
        r.issue(Some("completed_on"), "is required when status is completed");
    }
    if directive.status == Status::Closed && directive.closed_on.is_none() && !r.already_reported("closed_on") {
        r.issue(Some("closed_on"), "is required when status is closed (the day it was ended)");
    }
    if let (Some(assigned), Some(due)) = (directive.assigned_on, directive.due_on) {
        if due < assigned {
            r.issue(Some("due_on"), format!("{due} is before assigned_on {assigned}"));
        }
    }
    parsed.unit_refs.push((r.file.into(), r.location.clone(), "unit", directive.unit.clone()));
    for (field, code) in [("assignee", &directive.assignee), ("leader", &directive.leader)] {
        if let Some(code) = code {
            parsed.person_refs.push((r.file.into(), r.location.clone(), field, code.clone()));
        }
    }
    if r.issues.len() == before {
        if let Some((year, month)) = month_due {
            parsed.month_due.push((parsed.batch.directives.len(), year, month));
        }
        parsed.batch.directives.push(directive);
    }
}

fn cross_check(parsed: &mut Parsed, known: &KnownCodes, issues: &mut Vec<ImportIssue>) {
    let units: HashSet<&str> =
        known.units.iter().map(String::as_str).chain(parsed.batch.units.iter().map(|u| u.code.as_str())).collect();
    let people: HashSet<&str> =
        known.people.iter().map(String::as_str).chain(parsed.batch.people.iter().map(|p| p.code.as_str())).collect();
    for (file, location, field, code) in &parsed.unit_refs {
        if !code.is_empty() && !units.contains(code.as_str()) {
            issues.push(ImportIssue {
                file: file.clone(),
                location: location.clone(),
                field: Some((*field).into()),
                message: format!("unknown unit {code:?}"),
            });
        }
    }
    for (file, location, field, code) in &parsed.person_refs {
        if !people.contains(code.as_str()) {
            issues.push(ImportIssue {
                file: file.clone(),
                location: location.clone(),
                field: Some((*field).into()),
                message: format!("unknown person {code:?}"),
            });
        }
    }
}
