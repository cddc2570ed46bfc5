//! Import: JSON or CSV files in, a validated batch out, then one all-or-nothing upsert.
//! Every problem is collected (not just the first) and names its file, its place (JSON path
//! or CSV line) and its field, so an administrator can fix a whole file in one pass.
//!
//! What gets through is safe for everything downstream: every text is bounded in length
//! ([`text_rule`]) and free of control characters (only `result` may hold line breaks and
//! tabs), a code is defined once across all the files of one import, and an empty file is
//! refused rather than read as "nothing to do". Each printed problem is a single line.

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

/// Longest code (unit, person, directive, and every reference to one), in characters.
/// Codes are keys people type and read in plan lines and notice keys; 64 holds any document
/// number seen in practice ("KL08-2022-01", "123/QĐ-TTr-NV1-2022") several times over.
pub const CODE_MAX: usize = 64;
/// Longest directive title (trích yếu): a long paragraph. It goes into email subjects and
/// bodies, so it must be bounded; before it was, a 50 MB title made a 109 MB email.
pub const TITLE_MAX: usize = 2_000;
/// Longest name of a unit or a person, and a person's title (chức vụ): the longest unit
/// names ("Phòng Tiếp công dân, xử lý đơn thư và giải quyết khiếu nại, tố cáo") are under 100.
pub const NAME_MAX: usize = 200;
/// Longest email address: RFC 5321 §4.5.3.1.3 allows a 256-octet path, 254 without the
/// angle brackets.
pub const EMAIL_MAX: usize = 254;
/// Longest `source`, the assigning document(s): room for several references with their dates.
pub const SOURCE_MAX: usize = 500;
/// Longest `result`, a note on the outcome or a list of output documents: a page of text.
pub const RESULT_MAX: usize = 4_000;
/// Longest calendar `note`: a day's name and the government notice that declared it.
pub const NOTE_MAX: usize = 500;
/// Longest Telegram chat id: a 64-bit integer (at most 20 characters) or an @username
/// (at most 32), with room to spare.
pub const TELEGRAM_CHAT_ID_MAX: usize = 64;
/// Longest webhook id: opaque to us (a Zalo user id, a phone number, …), so more generous.
pub const WEBHOOK_ID_MAX: usize = 128;
/// Longest value of every other field (vocabulary, dates, booleans, channel lists), whose
/// valid values are short words: the bound keeps a huge wrong value out of the error report.
pub const WORD_MAX: usize = 64;

/// How long a text field may be and whether it may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Counted in characters, not bytes: a Vietnamese letter is two or three bytes of UTF-8
    /// and the limit is about what a person reads.
    pub max_chars: usize,
    /// Line breaks and tabs allowed. Only for free text that is never put in a header, a
    /// subject or a one-line log: everything else is one line, because a line break in a
    /// name breaks email headers and one-line reports later, far from the import.
    pub multiline: bool,
}

/// The rule for `field` in `section` (`units`, `people`, `directives`, `calendar`).
pub fn text_rule(section: &str, field: &str) -> TextRule {
    let (max_chars, multiline) = match (section, field) {
        (_, "code" | "unit" | "head" | "leader" | "assignee") => (CODE_MAX, false),
        ("directives", "title") => (TITLE_MAX, false),
        (_, "name" | "title") => (NAME_MAX, false),
        (_, "email") => (EMAIL_MAX, false),
        (_, "source") => (SOURCE_MAX, false),
        (_, "result") => (RESULT_MAX, true),
        (_, "note") => (NOTE_MAX, false),
        (_, "telegram_chat_id") => (TELEGRAM_CHAT_ID_MAX, false),
        (_, "webhook_id") => (WEBHOOK_ID_MAX, false),
        _ => (WORD_MAX, false),
    };
    TextRule { max_chars, multiline }
}

/// What is wrong with `text` under `rule`, if anything. Length first: a value far too long
/// is reported as such, not by the first odd character somewhere inside it.
fn text_problem(text: &str, rule: TextRule) -> Option<String> {
    let len = text.chars().count();
    if len > rule.max_chars {
        return Some(format!("is {len} characters long; the limit is {}", rule.max_chars));
    }
    let allowed = |c: char| rule.multiline && matches!(c, '\n' | '\t');
    let (at, c) = text.chars().enumerate().find(|&(_, c)| c.is_control() && !allowed(c))?;
    let what = if rule.multiline {
        "only line breaks and tabs may appear in this field"
    } else {
        "this field must be one line of text"
    };
    Some(format!("contains the control character U+{:04X} at character {}; {what}", u32::from(c), at + 1))
}

/// A name taken from the file itself (an unknown field or section), made fit for a one-line
/// report: control characters escaped, cut to [`WORD_MAX`] characters.
fn shown(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().take(WORD_MAX) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if name.chars().nth(WORD_MAX).is_some() {
        out.push('…');
    }
    out
}

/// A record being read: a JSON object or a CSV row, both seen as field → JSON value.
struct Record<'a> {
    file: &'a str,
    section: &'static str,
    location: String,
    fields: Map<String, Value>,
    issues: &'a mut Vec<ImportIssue>,
    /// Where this record's issues begin in `issues`: only those need scanning for repeats.
    start: usize,
}

impl<'a> Record<'a> {
    fn new(
        file: &'a str,
        section: &'static str,
        location: String,
        fields: Map<String, Value>,
        issues: &'a mut Vec<ImportIssue>,
    ) -> Record<'a> {
        let start = issues.len();
        Record { file, section, location, fields, issues, start }
    }

    fn issue(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.issues.push(ImportIssue {
            file: self.file.to_string(),
            location: self.location.clone(),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    /// An issue with a field's value, reported once even though the value is read more than
    /// once (the code is read for the duplicate check and again for the row).
    fn issue_once(&mut self, field: &str, message: impl Into<String>) {
        if !self.already_reported(field) {
            self.issue(Some(field), message);
        }
    }

    fn check_fields(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> =
            self.fields.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| shown(k)).collect();
        for field in unknown {
            self.issue(Some(&field), format!("unknown field (expected one of: {})", allowed.join(", ")));
        }
    }

    /// `text` (already trimmed) if it obeys the field's rule; otherwise the problem is reported.
    fn checked(&mut self, field: &str, text: &str) -> bool {
        match text_problem(text, text_rule(self.section, field)) {
            None => true,
            Some(problem) => {
                self.issue_once(field, problem);
                false
            }
        }
    }

    /// A text value, `None` when absent, null, empty, or reported as wrong.
    fn opt_text(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let text = s.trim().to_string();
                self.checked(field, &text).then_some(text)
            }
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                let kind = json_kind(other);
                self.issue_once(field, format!("expected text, found {kind}"));
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
        self.issues[self.start..].iter().any(|i| i.field.as_deref() == Some(field))
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
        let names: Vec<String> = match self.fields.get(field).cloned() {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => {
                let mut names = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if self.checked(field, s.trim()) => names.push(s.trim().to_string()),
                        Value::String(_) => {}
                        other => {
                            self.issue(Some(field), format!("expected a channel name, found {}", json_kind(&other)))
                        }
                    }
                }
                names
            }
            Some(Value::String(s)) if !self.checked(field, s.trim()) => return Vec::new(),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
            Some(other) => {
                let kind = json_kind(&other);
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
        match self.fields.get(field).cloned() {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) if !self.checked(field, s.trim()) => default,
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
                let kind = json_kind(&other);
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

const UNIT_FIELDS: &[&str] = Unit::FIELDS;
const PERSON_FIELDS: &[&str] = Person::FIELDS;
const DIRECTIVE_FIELDS: &[&str] = Directive::FIELDS;
const CALENDAR_FIELDS: &[&str] = &["date", "kind", "note"];

/// Where a row came from: file and location, as both are printed.
type Place = (String, String);

/// Rows read from files, before cross-references are checked.
#[derive(Default)]
struct Parsed {
    batch: ImportBatch,
    /// Where each row came from, to report reference errors in place.
    unit_refs: Vec<(String, String, &'static str, String)>,
    person_refs: Vec<(String, String, &'static str, String)>,
    /// Directives whose due date is "YYYY-MM": resolved once the calendar is known.
    month_due: Vec<(usize, i32, u32)>,
    /// The first place each key (code, or calendar date) was seen, per section, across all
    /// the files of the import: the store upserts by key, so a second row with the same key
    /// would silently overwrite the first, and which one wins would depend on file order.
    seen: HashMap<&'static str, HashMap<String, Place>>,
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
            Ok(bytes) => read_source(&name, &bytes, &mut parsed, &mut issues),
        }
    }
    finish(parsed, issues, known, calendar)
}

/// [`read_files`] on contents already in memory, each `(name, bytes)`: a name ending in
/// `.csv` (any case) is read as CSV, any other as JSON. The seam the property tests use.
pub fn read_sources(
    sources: &[(&str, &[u8])],
    known: &KnownCodes,
    calendar: &Calendar,
) -> Result<ImportBatch, ImportErrors> {
    let mut issues = Vec::new();
    let mut parsed = Parsed::default();
    for (name, bytes) in sources {
        read_source(name, bytes, &mut parsed, &mut issues);
    }
    finish(parsed, issues, known, calendar)
}

/// One row of a source after its mapping: nhacviec's field names, values as an import file
/// would hold them.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// `row 7` (a sheet or CSV, as the file numbers it) or `[3]` (JSON).
    pub location: String,
    pub fields: Map<String, Value>,
    /// Already rejected while mapping (its problems are reported); still listed by the source.
    pub rejected: bool,
}

/// Validates each of `rows` as a row of `section` (`directives`, `units`, `people`) the way
/// `import` validates a file's, on its own: a row with any problem is left out of the batch
/// and its problems returned; the others are the batch. `file` names the source in reports.
pub fn read_rows(
    file: &str,
    section: &'static str,
    rows: Vec<SourceRow>,
    known: &KnownCodes,
    calendar: &Calendar,
) -> (ImportBatch, Vec<ImportIssue>) {
    let mut issues = Vec::new();
    let mut parsed = Parsed::default();
    // Where each kept record came from, by section, in batch order.
    let mut places: Vec<String> = Vec::new();
    for row in rows.into_iter().filter(|r| !r.rejected) {
        let before = (parsed.batch.units.len(), parsed.batch.people.len(), parsed.batch.directives.len());
        read_record(Record::new(file, section, row.location.clone(), row.fields, &mut issues), &mut parsed);
        let after = (parsed.batch.units.len(), parsed.batch.people.len(), parsed.batch.directives.len());
        if after != before {
            places.push(row.location);
        }
    }
    cross_check(&mut parsed, known, &mut issues);
    for (index, year, month) in std::mem::take(&mut parsed.month_due) {
        if let Some(directive) = parsed.batch.directives.get_mut(index) {
            directive.due_on = calendar.last_working_day_of_month(year, month);
        }
    }
    let bad: HashSet<&str> = issues.iter().map(|i| i.location.as_str()).collect();
    let keep: Vec<bool> = places.iter().map(|p| !bad.contains(p.as_str())).collect();
    let mut batch = std::mem::take(&mut parsed.batch);
    let mut kept = keep.iter();
    match section {
        "units" => batch.units.retain(|_| *kept.next().unwrap_or(&false)),
        "people" => batch.people.retain(|_| *kept.next().unwrap_or(&false)),
        _ => batch.directives.retain(|_| *kept.next().unwrap_or(&false)),
    }
    (batch, issues)
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn read_source(file: &str, bytes: &[u8], parsed: &mut Parsed, issues: &mut Vec<ImportIssue>) {
    // Some Windows editors start UTF-8 with a byte-order mark; it carries no data in either
    // format (RFC 8259 §8.1 lets a JSON parser ignore it).
    let content = bytes.strip_prefix(BOM).unwrap_or(bytes);
    // An empty file is nearly always a failed export or a truncated copy: reading it as
    // "nothing to import" would hide that an agency's directives never arrived.
    if content.iter().all(u8::is_ascii_whitespace) {
        let message = if bytes.is_empty() {
            "the file is empty (0 bytes); nothing was imported from any file"
        } else {
            "the file holds nothing but whitespace; nothing was imported from any file"
        };
        issues.push(ImportIssue { file: file.into(), location: "file".into(), field: None, message: message.into() });
        return;
    }
    let is_csv = Path::new(file).extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        read_csv(file, content, parsed, issues);
    } else {
        read_json(file, content, parsed, issues);
    }
}

fn finish(
    mut parsed: Parsed,
    mut issues: Vec<ImportIssue>,
    known: &KnownCodes,
    calendar: &Calendar,
) -> Result<ImportBatch, ImportErrors> {
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
    // `{}` (or only empty lists) stays a valid no-op: every section is optional (the README's
    // import format), and a generated file may rightly carry nothing today. It is not an empty file.
    for (name, value) in root {
        let section = match name.as_str() {
            "units" => "units",
            "people" => "people",
            "directives" => "directives",
            "calendar" => "calendar",
            _ => {
                // A blank name in quotes, so the location is never blank.
                let shown = shown(&name);
                let location = if shown.trim().is_empty() { format!("{shown:?}") } else { shown };
                issues.push(ImportIssue {
                    file: file.into(),
                    location,
                    field: None,
                    message: "unknown section (expected units, people, directives, calendar)".into(),
                });
                continue;
            }
        };
        let Value::Array(items) = value else {
            issues.push(ImportIssue {
                file: file.into(),
                location: section.into(),
                field: None,
                message: format!("expected a list, found {}", json_kind(&value)),
            });
            continue;
        };
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
            read_record(Record::new(file, section, location, fields, issues), parsed);
        }
    }
}

fn read_csv(file: &str, bytes: &[u8], parsed: &mut Parsed, issues: &mut Vec<ImportIssue>) {
    // A spreadsheet's "CSV" may be Windows-1258 or UTF-16, and `;`-separated in a Vietnamese
    // locale: read it as it is, and say how to save it if anything else is wrong with it.
    let (text, encoding) = decode(bytes);
    let first_issue = issues.len();
    let bytes = text.as_bytes();
    let mut reader = csv::ReaderBuilder::new().flexible(false).delimiter(separator(&text)).from_reader(bytes);
    let mut lines = LineCounter::new(bytes);
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
    // Two columns of one name would collapse into one field, the last silently winning.
    let mut columns = HashSet::new();
    for header in headers.iter().map(str::trim) {
        if !columns.insert(header) {
            issues.push(ImportIssue {
                file: file.into(),
                location: "line 1".into(),
                field: Some(shown(header)),
                message: "duplicate column".into(),
            });
        }
    }
    // A column nhacviec does not know is reported once, here, not once per row.
    let unknown: HashSet<String> =
        headers.iter().map(str::trim).filter(|h| !DIRECTIVE_FIELDS.contains(h)).map(str::to_string).collect();
    for header in headers.iter().map(str::trim).filter(|h| unknown.contains(*h)) {
        issues.push(ImportIssue {
            file: file.into(),
            location: "line 1".into(),
            field: Some(shown(header)),
            message: format!("unknown column (expected some of: {})", DIRECTIVE_FIELDS.join(", ")),
        });
    }
    let mut rows = 0usize;
    for row in reader.records() {
        rows += 1;
        match row {
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                issues.push(ImportIssue {
                    file: file.into(),
                    location: format!("line {line}"),
                    field: None,
                    message: format!("broken CSV: {e}"),
                });
            }
            // A blank row (an export's trailing empty lines, or `;;;;`) carries nothing.
            Ok(row) if row.iter().all(|v| v.trim().is_empty()) => rows -= 1,
            Ok(row) => {
                let line = row.position().map_or(0, |p| lines.line_at(p.byte()));
                let fields = headers
                    .iter()
                    .zip(row.iter())
                    .filter(|(h, _)| !unknown.contains(h.trim()))
                    .map(|(h, v)| (h.trim().to_string(), Value::String(v.to_string())))
                    .collect();
                read_record(Record::new(file, "directives", format!("line {line}"), fields, issues), parsed);
            }
        }
    }
    // Like an empty file: an export that wrote its header and then failed.
    if rows == 0 {
        issues.push(ImportIssue {
            file: file.into(),
            location: "line 1".into(),
            field: None,
            message: "a header row and no directives; nothing was imported from any file".into(),
        });
    }
    if encoding != "UTF-8" && issues.len() > first_issue {
        issues.push(ImportIssue {
            file: file.into(),
            location: "file".into(),
            field: None,
            message: format!(
                "read as {encoding}; save the sheet as \"CSV UTF-8\" to be sure every letter comes through"
            ),
        });
    }
}

/// Text of a file whatever a spreadsheet saved it as: UTF-8 (with or without BOM), UTF-16
/// with a BOM, else Windows-1258, the Vietnamese Windows code page. Says which it read.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return (text.into_owned(), encoding.name());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1258.decode(bytes);
            (text.into_owned(), "windows-1258")
        }
    }
}

/// The separator of a CSV header line: `;` where it outnumbers `,` (a spreadsheet in a
/// Vietnamese locale, where `,` is the decimal mark), a tab likewise, else `,`.
pub fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    let count = |c: char| header.matches(c).count();
    let (comma, semicolon, tab) = (count(','), count(';'), count('\t'));
    if semicolon > comma && semicolon >= tab {
        b';'
    } else if tab > comma && tab > semicolon {
        b'\t'
    } else {
        b','
    }
}

/// The lines (from 1, as an editor numbers them) CSV records start on, from the byte offsets
/// the csv crate gives, asked in increasing order: counted on from the last answer, so a
/// whole file costs one pass. With CRLF line ends an offset can sit on the previous line's
/// end, so line ends there are stepped over first.
pub struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    pub fn new(text: &'a [u8]) -> LineCounter<'a> {
        LineCounter { text, at: 0, line: 1 }
    }

    /// The line the record at byte offset `byte` starts on.
    pub fn line_at(&mut self, byte: u64) -> usize {
        let mut target = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while target < self.text.len() && matches!(self.text[target], b'\r' | b'\n') {
            target += 1;
        }
        if target < self.at {
            // Asked out of order (never, from the csv crate): count afresh.
            self.at = 0;
            self.line = 1;
        }
        self.line += self.text[self.at..target].iter().filter(|b| **b == b'\n').count();
        self.at = target;
        self.line
    }
}

fn read_record(mut r: Record<'_>, parsed: &mut Parsed) {
    let section = r.section;
    let key_field = if section == "calendar" { "date" } else { "code" };
    if let Some(text) = r.opt_text(key_field) {
        // A date is one key however it is spelt ("2022-09-01", "2022-9-1").
        let key = match section {
            "calendar" => NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_or(text, |d| d.to_string()),
            _ => text,
        };
        let seen = parsed.seen.entry(section).or_default();
        match seen.get(&key) {
            // The same message as ever within one file; across files, the first file too.
            Some((file, first)) if file == r.file => {
                let msg = format!("duplicate {key_field} {key:?} (first at {first})");
                r.issue(Some(key_field), msg);
            }
            Some((file, first)) => {
                let msg = format!("duplicate {key_field} {key:?} (first at {file}: {first})");
                r.issue(Some(key_field), msg);
            }
            None => {
                seen.insert(key, (r.file.to_string(), r.location.clone()));
            }
        }
    }
    // A duplicate is still read through, so that the rest of what is wrong with it is
    // reported in the same pass; it never reaches the batch, as it has an issue already.
    let before = r.start;
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
            if person.reach.channels.contains(&Channel::Telegram)
                && person.reach.telegram_chat_id.is_none()
                && !r.already_reported("telegram_chat_id")
            {
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
            let date = r.date("date");
            let day = CalendarDay {
                date: date.unwrap_or_default(),
                kind: r.vocab::<CalendarDayKind>("kind", None).unwrap_or(CalendarDayKind::Holiday),
                note: r.opt_text("note").unwrap_or_default(),
            };
            // Also when the date is an empty text, which used to become 1 January 1970.
            if date.is_none() && !r.already_reported("date") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::json;

    fn agency() -> Value {
        json!({
            "units": [{"code": "NV1", "name": "Phòng Nghiệp vụ 1", "head": "tp", "leader": "tp"}],
            "people": [
                {"code": "tp", "name": "Huỳnh Văn Phúc", "title": "Trưởng phòng", "email": "tp@example.gov.vn",
                 "unit": "NV1", "role": "head", "channels": ["email", "webhook"], "webhook_id": "zalo-1"},
                {"code": "lien", "name": "Nguyễn Thị Liên", "title": "Thanh tra viên", "email": "lien@example.gov.vn",
                 "unit": "NV1", "channels": "email, telegram", "telegram_chat_id": "-100123"}
            ],
            "directives": [{"code": "KL-01", "kind": "task", "title": "Kiểm tra, báo cáo", "source": "KL giao ban 08/2022",
                            "unit": "NV1", "assignee": "lien", "leader": "tp", "assigned_on": "2022-08-11",
                            "due_on": "2022-09-30", "status": "completed", "completed_on": "2022-09-01",
                            "result": "Báo cáo số 12/BC", "confidential": "true"}],
            "calendar": [{"date": "2022-09-01", "kind": "holiday", "note": "Quốc khánh"}]
        })
    }

    fn read(files: &[(&str, Vec<u8>)]) -> Result<ImportBatch, ImportErrors> {
        let sources: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        read_sources(&sources, &KnownCodes::default(), &Calendar::weekdays_only())
    }

    fn json_file(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn problems(files: &[(&str, Vec<u8>)]) -> Vec<ImportIssue> {
        match read(files) {
            Ok(batch) => panic!("expected the import to be rejected, got {batch:?}"),
            Err(ImportErrors(issues)) => issues,
        }
    }

    /// The agency with one field of one row replaced.
    fn with(section: &str, index: usize, field: &str, value: Value) -> Vec<u8> {
        let mut doc = agency();
        doc[section][index][field] = value;
        json_file(&doc)
    }

    #[test]
    fn record_lines_are_counted_on_from_the_last_answer_whatever_the_line_ends() {
        let text = b"a,b\r\nx,1\r\n\"two\nlines\",2\ny,3\n";
        let mut lines = LineCounter::new(text);
        assert_eq!(lines.line_at(3), 2, "an offset on the header's CRLF is the next line");
        assert_eq!(lines.line_at(10), 3);
        assert_eq!(lines.line_at(24), 5, "a quoted field spanning lines counts them");
        assert_eq!(lines.line_at(3), 2, "asked again from the start: counted afresh");
    }

    #[test]
    fn the_reference_agency_imports_cleanly() {
        let batch = read(&[("a.json", json_file(&agency()))]).unwrap();
        assert_eq!((batch.units.len(), batch.people.len(), batch.directives.len(), batch.calendar.len()), (1, 2, 1, 1));
    }

    #[test]
    fn a_control_character_in_any_single_line_field_is_rejected_naming_the_field() {
        let fields: &[(&str, usize, &str)] = &[
            ("units", 0, "code"),
            ("units", 0, "name"),
            ("units", 0, "head"),
            ("units", 0, "leader"),
            ("people", 0, "code"),
            ("people", 0, "name"),
            ("people", 0, "title"),
            ("people", 0, "email"),
            ("people", 0, "unit"),
            ("people", 0, "role"),
            ("people", 0, "active"),
            ("people", 0, "channels"),
            ("people", 1, "telegram_chat_id"),
            ("people", 0, "webhook_id"),
            ("directives", 0, "code"),
            ("directives", 0, "kind"),
            ("directives", 0, "title"),
            ("directives", 0, "source"),
            ("directives", 0, "unit"),
            ("directives", 0, "assignee"),
            ("directives", 0, "leader"),
            ("directives", 0, "due_on"),
            ("directives", 0, "status"),
            ("directives", 0, "confidential"),
            ("calendar", 0, "date"),
            ("calendar", 0, "kind"),
            ("calendar", 0, "note"),
        ];
        for &(section, index, field) in fields {
            for c in ['\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{9b}'] {
                let issues = problems(&[("a.json", with(section, index, field, json!(format!("A{c}B"))))]);
                let issue = issues
                    .iter()
                    .find(|i| i.field.as_deref() == Some(field))
                    .unwrap_or_else(|| panic!("{section}.{field} {c:?}: no issue names the field: {issues:?}"));
                assert_eq!(issue.location, format!("{section}[{index}]"));
                let code = format!("U+{:04X} at character 2", u32::from(c));
                assert!(issue.message.contains(&code), "{section}.{field}: {}", issue.message);
                assert!(!issue.to_string().contains(['\n', '\r', '\0']), "{issue}");
            }
        }
    }

    #[test]
    fn a_result_may_hold_line_breaks_and_tabs_but_no_other_control_character() {
        let ok = with("directives", 0, "result", json!("Báo cáo số 12/BC\n\tđã gửi"));
        assert_eq!(
            read(&[("a.json", ok)]).unwrap().directives[0].result.as_deref(),
            Some("Báo cáo số 12/BC\n\tđã gửi")
        );
        for c in ['\r', '\0', '\u{1b}', '\u{85}'] {
            let issues = problems(&[("a.json", with("directives", 0, "result", json!(format!("a{c}b"))))]);
            assert_eq!(issues.len(), 1, "{issues:?}");
            assert_eq!(issues[0].field.as_deref(), Some("result"));
            assert!(issues[0].message.contains("only line breaks and tabs"), "{}", issues[0].message);
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_not_rejected() {
        let batch = read(&[("a.json", with("people", 0, "name", json!("\t Huỳnh Văn Phúc \r\n")))]).unwrap();
        assert_eq!(batch.people[0].name, "Huỳnh Văn Phúc");
    }

    #[test]
    fn each_text_field_is_bounded_in_characters_and_the_error_gives_limit_and_length() {
        // "ệ" is three bytes: the limits count what a person reads, not bytes.
        let fields: &[(&str, usize, &str, usize)] = &[
            ("units", 0, "code", CODE_MAX),
            ("units", 0, "name", NAME_MAX),
            ("people", 0, "name", NAME_MAX),
            ("people", 0, "title", NAME_MAX),
            ("people", 1, "telegram_chat_id", TELEGRAM_CHAT_ID_MAX),
            ("people", 0, "webhook_id", WEBHOOK_ID_MAX),
            ("directives", 0, "code", CODE_MAX),
            ("directives", 0, "title", TITLE_MAX),
            ("directives", 0, "source", SOURCE_MAX),
            ("directives", 0, "result", RESULT_MAX),
            ("calendar", 0, "note", NOTE_MAX),
        ];
        for &(section, index, field, max) in fields {
            let ok = "ệ".repeat(max);
            let mut doc = agency();
            doc[section][index][field] = json!(ok);
            // A unit code at its limit must still be the code the rest of the file refers to.
            if section == "units" && field == "code" {
                doc["people"][0]["unit"] = json!(ok);
                doc["people"][1]["unit"] = json!(ok);
                doc["directives"][0]["unit"] = json!(ok);
            }
            read(&[("a.json", json_file(&doc))]).unwrap_or_else(|e| panic!("{section}.{field} at its limit: {e}"));
            let issues = problems(&[("a.json", with(section, index, field, json!("ệ".repeat(max + 1))))]);
            let issue = issues.iter().find(|i| i.field.as_deref() == Some(field)).expect("names the field");
            let want = format!("is {} characters long; the limit is {max}", max + 1);
            assert_eq!(issue.message, want, "{section}.{field}");
        }
        // An address is ASCII; 255 characters is past RFC 5321's 254.
        let long = format!("{}@example.gov.vn", "a".repeat(EMAIL_MAX + 1 - "@example.gov.vn".len()));
        let issues = problems(&[("a.json", with("people", 0, "email", json!(long)))]);
        assert_eq!(issues[0].field.as_deref(), Some("email"));
        assert_eq!(issues[0].message, "is 255 characters long; the limit is 254");
    }

    #[test]
    fn a_huge_value_is_reported_by_its_length_not_echoed_back() {
        let issues = problems(&[("a.json", with("directives", 0, "status", json!("x".repeat(1_000_000))))]);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].message, "is 1000000 characters long; the limit is 64");
    }

    #[test]
    fn a_code_defined_in_three_files_is_reported_naming_the_first_place_and_nothing_is_read() {
        let a = json!({"units": [{"code": "NV1", "name": "Phòng 1"}],
                       "directives": [{"code": "D1", "title": "Một", "unit": "NV1"}]});
        let b = "code,title,unit\nD0,Không,NV1\nD1,Hai,NV1\n".into();
        let c = json!({"directives": [{"code": "D1", "title": "Ba", "unit": "NV1"}]});
        let issues = problems(&[("a.json", json_file(&a)), ("b.csv", b), ("c.json", json_file(&c))]);
        let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "b.csv: line 3: field \"code\": duplicate code \"D1\" (first at a.json: directives[0])",
                "c.json: directives[0]: field \"code\": duplicate code \"D1\" (first at a.json: directives[0])",
            ]
        );
    }

    #[test]
    fn units_people_and_calendar_days_are_also_unique_across_files() {
        let a = json_file(&agency());
        let b = json_file(&json!({
            "units": [{"code": "NV1", "name": "Khác"}],
            "people": [{"code": "lien", "name": "Khác", "email": "k@example.gov.vn", "unit": "NV1"}],
            // The same day as "2022-09-01", spelt without the zeros.
            "calendar": [{"date": "2022-9-1", "kind": "holiday"}]
        }));
        let lines: Vec<String> = problems(&[("a.json", a), ("b.json", b)]).iter().map(ToString::to_string).collect();
        // Sections come in name order (serde_json's map is sorted).
        assert_eq!(
            lines,
            [
                "b.json: calendar[0]: field \"date\": duplicate date \"2022-09-01\" (first at a.json: calendar[0])",
                "b.json: people[0]: field \"code\": duplicate code \"lien\" (first at a.json: people[1])",
                "b.json: units[0]: field \"code\": duplicate code \"NV1\" (first at a.json: units[0])",
            ]
        );
    }

    #[test]
    fn a_duplicate_within_one_file_is_reported_as_before_and_the_copy_is_still_checked() {
        let mut doc = agency();
        let mut copy = doc["directives"][0].clone();
        copy["status"] = json!("done");
        doc["directives"].as_array_mut().unwrap().push(copy);
        let lines: Vec<String> = problems(&[("a.json", json_file(&doc))]).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "a.json: directives[1]: field \"code\": duplicate code \"KL-01\" (first at directives[0])",
                "a.json: directives[1]: field \"status\": unknown value \"done\"; expected one of: open, in_progress, \
                 completed, closed, cancelled",
            ]
        );
    }

    #[test]
    fn an_empty_whitespace_only_or_header_only_file_is_an_error_naming_the_file() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty.csv", b"", "file: the file is empty (0 bytes)"),
            ("empty.json", b"", "file: the file is empty (0 bytes)"),
            ("blank.json", b" \n\t\r\n", "file: the file holds nothing but whitespace"),
            ("bom.csv", b"\xEF\xBB\xBF\n", "file: the file holds nothing but whitespace"),
            ("header.csv", b"code,title,unit\n", "line 1: a header row and no directives"),
            ("header-blank-lines.csv", b"code,title,unit\r\n\r\n\r\n", "line 1: a header row and no directives"),
        ];
        for (name, bytes, want) in cases {
            let good = json_file(&agency());
            let issues = problems(&[("good.json", good), (name, bytes.to_vec())]);
            assert_eq!(issues.len(), 1, "{name}: {issues:?}");
            assert!(issues[0].to_string().starts_with(&format!("{name}: {want}")), "{name}: {}", issues[0]);
        }
    }

    #[test]
    fn an_object_with_no_sections_is_a_valid_import_of_nothing() {
        assert_eq!(read(&[("a.json", b"{}".to_vec())]).unwrap(), ImportBatch::default());
    }

    #[test]
    fn a_byte_order_mark_before_json_is_ignored() {
        let mut bytes = BOM.to_vec();
        bytes.extend(json_file(&agency()));
        assert_eq!(read(&[("a.json", bytes)]).unwrap().units.len(), 1);
    }

    #[test]
    fn an_unknown_field_or_section_with_a_huge_multi_line_name_is_reported_on_one_short_line() {
        let name = format!("x\n{}", "y".repeat(10_000));
        let mut doc = agency();
        doc["units"][0][name.as_str()] = json!(1);
        doc[name.as_str()] = json!([]);
        let issues = problems(&[("a.json", json_file(&doc))]);
        let unknown: Vec<String> = issues
            .iter()
            .filter(|i| i.message.starts_with("unknown field") || i.message.starts_with("unknown section"))
            .map(ToString::to_string)
            .collect();
        assert_eq!(unknown.len(), 2, "{issues:?}");
        for line in unknown {
            assert!(!line.contains('\n') && line.chars().count() < 300, "{line}");
            assert!(line.contains("x\\ny") && line.contains("y…"), "{line}");
        }
    }

    #[test]
    fn a_csv_with_two_columns_of_one_name_is_rejected() {
        let issues = problems(&[("a.csv", "code,title,unit,title\nD1,Một,NV1,Hai\n".into())]);
        assert!(
            issues.iter().any(|i| i.to_string() == "a.csv: line 1: field \"title\": duplicate column"),
            "{issues:?}"
        );
    }

    #[test]
    fn a_calendar_day_with_an_empty_date_is_rejected_rather_than_dated_1970() {
        let issues = problems(&[("a.json", json_file(&json!({"calendar": [{"date": " ", "kind": "holiday"}]})))]);
        assert_eq!(issues[0].to_string(), "a.json: calendar[0]: field \"date\": is required");
    }

    // Property: whatever the bytes, reading never panics; it either yields a batch that obeys
    // every rule, or problems that each name a file, a place and (where one is at fault) a
    // field, each on one line of bounded length.

    /// Characters that break things more often than a uniform pick would find them.
    fn nasty_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => any::<char>(),
            2 => prop::sample::select(vec![
                '\0', '\n', '\r', '\t', '\u{7f}', '\u{85}', '\u{9b}', '\u{feff}', '\u{2028}', ' ', '"', ',', '\\',
                'ệ', 'Đ', 'a', '-', '0', '9', '@',
            ]),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "NV1", "tp", "lien", "KL-01", "2022-09-30", "2022-09", "2022-9-1", "open", "completed", "closed",
                "task", "holiday", "working_day", "email", "telegram", "webhook", "true", "có", "x@example.gov.vn",
                "", "  ",
            ])
            .prop_map(String::from),
            3 => vec(nasty_char(), 0..12).prop_map(String::from_iter),
            1 => (prop::sample::select(vec![63usize, 64, 65, 200, 201, 254, 255, 2000, 2001, 4001]), nasty_char())
                .prop_map(|(n, c)| format!("{}{c}", "ệ".repeat(n))),
        ]
    }

    fn field_name() -> impl Strategy<Value = String> {
        let known: Vec<&str> =
            UNIT_FIELDS.iter().chain(PERSON_FIELDS).chain(DIRECTIVE_FIELDS).chain(CALENDAR_FIELDS).copied().collect();
        prop_oneof![6 => prop::sample::select(known).prop_map(String::from), 1 => text()]
    }

    fn field_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => text().prop_map(Value::String),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_map(Value::from),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => Just(Value::Null),
            1 => vec(text().prop_map(Value::String), 0..3).prop_map(Value::Array),
            1 => Just(json!({"nested": [1, "x"]})),
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn record() -> impl Strategy<Value = Value> {
        btree_map(field_name(), field_value(), 0..8).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Shaped like the import format, unlike it, or the reference agency with one field changed.
    fn import_json() -> impl Strategy<Value = Value> {
        let section = prop_oneof![
            8 => prop::sample::select(vec!["units", "people", "directives", "calendar"]).prop_map(String::from),
            1 => text(),
        ];
        let sections = prop_oneof![4 => vec(record(), 0..4).prop_map(Value::Array), 1 => any_json()];
        let mutated = (
            prop::sample::select(vec![
                ("units", 0usize),
                ("people", 0),
                ("people", 1),
                ("directives", 0),
                ("calendar", 0),
            ]),
            field_name(),
            field_value(),
        )
            .prop_map(|((section, index), field, value)| {
                let mut doc = agency();
                doc[section][index][field.as_str()] = value;
                doc
            });
        prop_oneof![
            3 => btree_map(section, sections, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            3 => mutated,
            1 => Just(agency()),
            1 => any_json(),
        ]
    }

    fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
        let header = vec(
            prop_oneof![8 => prop::sample::select(DIRECTIVE_FIELDS.to_vec()).prop_map(String::from), 1 => text()],
            0..6,
        );
        let cell = prop_oneof![4 => text(), 1 => text().prop_map(|t| format!("\"{}\"", t.replace('"', "\"\"")))];
        let structured = (header, vec(vec(cell, 0..6), 0..4)).prop_map(|(header, rows)| {
            let mut out = header.join(",");
            for row in rows {
                out.push('\n');
                out.push_str(&row.join(","));
            }
            out.into_bytes()
        });
        prop_oneof![3 => structured, 1 => vec(any::<u8>(), 0..200)]
    }

    fn source() -> impl Strategy<Value = (bool, Vec<u8>)> {
        prop_oneof![
            2 => import_json().prop_map(|v| (false, serde_json::to_vec(&v).unwrap_or_default())),
            1 => csv_bytes().prop_map(|b| (true, b)),
            1 => vec(any::<u8>(), 0..100).prop_map(|b| (false, b)),
        ]
    }

    /// Every text the batch holds obeys the rules the import promises.
    fn assert_clean(batch: &ImportBatch) {
        let check = |section: &str, field: &str, text: &str| {
            assert!(text_problem(text, text_rule(section, field)).is_none(), "{section}.{field} {text:?} got through");
        };
        let mut codes = HashSet::new();
        for u in &batch.units {
            assert!(codes.insert(("u", u.code.clone())), "unit {} twice", u.code);
            check("units", "code", &u.code);
            check("units", "name", &u.name);
        }
        for p in &batch.people {
            assert!(codes.insert(("p", p.code.clone())), "person {} twice", p.code);
            for (field, text) in [("code", &p.code), ("name", &p.name), ("title", &p.title), ("email", &p.email)] {
                check("people", field, text);
            }
        }
        for d in &batch.directives {
            assert!(codes.insert(("d", d.code.clone())), "directive {} twice", d.code);
            for (field, text) in [("code", &d.code), ("title", &d.title), ("source", &d.source)] {
                check("directives", field, text);
            }
            check("directives", "result", d.result.as_deref().unwrap_or_default());
        }
        for c in &batch.calendar {
            assert!(codes.insert(("c", c.date.to_string())), "day {} twice", c.date);
            check("calendar", "note", &c.note);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_files_either_import_cleanly_or_yield_one_line_problems_naming_file_place_and_field(
            files in vec(source(), 1..4)
        ) {
            let named: Vec<(String, Vec<u8>)> = files
                .into_iter()
                .enumerate()
                .map(|(i, (csv, bytes))| (format!("f{i}.{}", if csv { "csv" } else { "json" }), bytes))
                .collect();
            let sources: Vec<(&str, &[u8])> = named.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
            match read_sources(&sources, &KnownCodes::default(), &Calendar::weekdays_only()) {
                Ok(batch) => assert_clean(&batch),
                Err(ImportErrors(issues)) => {
                    prop_assert!(!issues.is_empty());
                    for issue in &issues {
                        prop_assert!(named.iter().any(|(n, _)| *n == issue.file), "{issue}");
                        prop_assert!(!issue.location.trim().is_empty(), "{issue}");
                        let line = issue.to_string();
                        prop_assert!(!line.chars().any(char::is_control), "{line:?}");
                        prop_assert!(line.chars().count() < 600, "{line}");
                        // The problems this module finds in a value (not, say, a JSON syntax
                        // error, whose message may also mention a control character).
                        let m = &issue.message;
                        let about_a_value = m.starts_with("contains the control character")
                            || m.contains("characters long; the limit is")
                            || m.starts_with("is required")
                            || m.starts_with("duplicate");
                        prop_assert!(!about_a_value || issue.field.is_some(), "{issue}");
                    }
                }
            }
        }
    }
}
