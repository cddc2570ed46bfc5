//! Sources ← map: a table's rows become rows of nhacviec fields — columns renamed by the
//! source's `columns`, its words turned into nhacviec's by `values`, text dates read with its
//! `date_formats`, and people and units named in full resolved to their codes — ready to be
//! validated as `import` validates a file. Header problems are found once, before any row.

use super::table::{Cell, Table};
use crate::config::{Entity, Source};
use crate::domain::{Person, Unit};
use crate::import::{ImportIssue, SourceRow};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

/// A name as people type it, compared: NFC, runs of whitespace as one space, trimmed.
pub fn normal_name(name: &str) -> String {
    name.nfc().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// People and units by code and by normalised name, to resolve references either way.
pub struct Directory {
    people_codes: std::collections::HashSet<String>,
    people_names: HashMap<String, Vec<String>>,
    unit_codes: std::collections::HashSet<String>,
    unit_names: HashMap<String, Vec<String>>,
}

impl Directory {
    pub fn new(units: &[Unit], people: &[Person]) -> Directory {
        let mut people_names: HashMap<String, Vec<String>> = HashMap::new();
        for p in people {
            people_names.entry(normal_name(&p.name)).or_default().push(p.code.clone());
        }
        let mut unit_names: HashMap<String, Vec<String>> = HashMap::new();
        for u in units {
            unit_names.entry(normal_name(&u.name)).or_default().push(u.code.clone());
        }
        Directory {
            people_codes: people.iter().map(|p| p.code.clone()).collect(),
            people_names,
            unit_codes: units.iter().map(|u| u.code.clone()).collect(),
            unit_names,
        }
    }

    /// The code `text` refers to: a code as it is, else a name known exactly once.
    fn resolve(&self, person: bool, text: &str) -> Result<String, String> {
        let (codes, names, what) = if person {
            (&self.people_codes, &self.people_names, "person")
        } else {
            (&self.unit_codes, &self.unit_names, "unit")
        };
        if codes.contains(text) {
            return Ok(text.to_string());
        }
        match names.get(&normal_name(text)).map(Vec::as_slice) {
            Some([code]) => Ok(code.clone()),
            Some(several) => {
                Err(format!("{text:?} names {} {what}s ({}): use the code", several.len(), several.join(", ")))
            }
            None => Err(format!("no {what} has the code or the name {text:?}")),
        }
    }
}

/// Fields that refer to a person, and to a unit, by entity.
fn reference(entity: Entity, field: &str) -> Option<bool> {
    match (entity, field) {
        (Entity::Directives, "assignee" | "leader") | (Entity::Units, "head" | "leader") => Some(true),
        (Entity::Directives | Entity::People, "unit") => Some(false),
        _ => None,
    }
}

fn is_date_field(field: &str) -> bool {
    matches!(field, "assigned_on" | "due_on" | "completed_on" | "closed_on")
}

/// The mapped rows, and the problems of header and rows; `Err` when the header makes the whole
/// table unusable (the key column is missing).
pub fn map_rows(
    source: &Source,
    table: Table,
    directory: &Directory,
) -> Result<(Vec<SourceRow>, Vec<ImportIssue>), ImportIssue> {
    let file = origin(source, &table);
    let header_issue = |field: Option<String>, message: String| ImportIssue {
        file: file.clone(),
        location: "header (row 1)".into(),
        field,
        message,
    };
    // Column index → nhacviec field.
    let mut fields: Vec<(usize, String)> = Vec::new();
    let mut issues = Vec::new();
    if source.columns.is_empty() {
        for (i, header) in table.headers.iter().enumerate() {
            if source.entity.fields().contains(&header.as_str()) {
                fields.push((i, header.clone()));
            }
        }
    } else {
        for (column, field) in &source.columns {
            let wanted = normal_name(column);
            match table.headers.iter().position(|h| normal_name(h) == wanted) {
                Some(i) => fields.push((i, field.clone())),
                None => issues.push(header_issue(
                    Some(column.clone()),
                    format!("no such column (the header has: {})", table.headers.join(", ")),
                )),
            }
        }
    }
    let key = "code";
    if !fields.iter().any(|(_, f)| f == key) {
        return Err(header_issue(None, format!("no column maps to {key:?}: no row can be matched")));
    }
    let mut rows = Vec::with_capacity(table.rows.len());
    // Each table row is dropped as soon as it is mapped: the table is never held twice.
    for row in table.rows {
        let mut map = Map::new();
        let mut bad = false;
        for (index, field) in &fields {
            let cell = row.cells.get(*index).unwrap_or(&Cell::Empty);
            match value_of(source, directory, field, cell) {
                Ok(Some(value)) => {
                    map.insert(field.clone(), value);
                }
                Ok(None) => {}
                Err(message) => {
                    bad = true;
                    issues.push(ImportIssue {
                        file: file.clone(),
                        location: row.place.clone(),
                        field: Some(format!(
                            "{field} (column {:?})",
                            table.headers.get(*index).cloned().unwrap_or_default()
                        )),
                        message,
                    });
                }
            }
        }
        rows.push(SourceRow { location: row.place, fields: map, rejected: bad });
    }
    Ok((rows, issues))
}

/// How a table's rows are named in reports: `source "so-theo-doi", sheet "Nhiệm vụ"`.
pub fn origin(source: &Source, table: &Table) -> String {
    match &table.sheet {
        Some(sheet) => format!("source {:?}, sheet {sheet:?}", source.name),
        None => format!("source {:?}", source.name),
    }
}

/// One cell as the value `import` reads for `field`; `None` for an empty cell.
fn value_of(source: &Source, directory: &Directory, field: &str, cell: &Cell) -> Result<Option<Value>, String> {
    let text = match cell {
        Cell::Empty => return Ok(None),
        Cell::Text(text) if text.trim().is_empty() => return Ok(None),
        Cell::Date(date) if is_date_field(field) => return Ok(Some(Value::String(date.to_string()))),
        Cell::Date(date) => date.to_string(),
        Cell::Bool(b) => return Ok(Some(Value::Bool(*b))),
        // A code typed as a number (123) reads back as "123", not "123.0".
        Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Cell::Number(n) => n.to_string(),
        // NFC: an old code page writes tones as combining marks ("e\u{302}\u{323}" for "ệ").
        Cell::Text(text) => text.trim().nfc().collect(),
    };
    if is_date_field(field) {
        if let Cell::Number(serial) = cell {
            return Err(format!("{serial} is a number, not a date (format the column as a date)"));
        }
        // A month alone ("2022-09") is import's "by the end of the month".
        if text.len() == 7 && NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok() {
            return Ok(Some(Value::String(text)));
        }
        return source
            .date_formats
            .iter()
            .find_map(|pattern| NaiveDate::parse_from_str(&text, pattern).ok())
            .map(|d| Some(Value::String(d.to_string())))
            .ok_or_else(|| format!("{text:?} is not a date in any of the formats {}", source.date_formats.join(", ")));
    }
    let words = match field {
        "status" => Some(&source.values.status),
        "kind" => Some(&source.values.kind),
        "role" => Some(&source.values.role),
        _ => None,
    };
    let wanted = normal_name(&text);
    let mapped = words.and_then(|w| w.iter().find(|(word, _)| normal_name(word) == wanted).map(|(_, v)| v));
    if let Some(word) = mapped {
        return Ok(Some(Value::String(word.clone())));
    }
    if let Some(person) = reference(source.entity, field) {
        return directory.resolve(person, &text).map(|code| Some(Value::String(code)));
    }
    Ok(Some(Value::String(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_after_nfc_and_whitespace_normalisation() {
        // "Liên" decomposed (e + combining marks) and with doubled spaces.
        let decomposed = "Nguye\u{302}\u{303}n  Thi\u{323}   Lie\u{302}n";
        assert_eq!(normal_name(decomposed), "Nguyễn Thị Liên");
    }
}
