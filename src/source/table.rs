//! Sources ← table: a source's bytes (an xlsx sheet, a CSV file, a JSON document) become one
//! table of cells under a header row, each row carrying the number its file gives it (the
//! header is row 1), whatever the encoding, separator or blank rows of the export.

use crate::config::SourceFormat;
use crate::import::{decode, separator};
use chrono::NaiveDate;

/// One cell as the source holds it: native dates stay dates, numbers stay numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
    Date(NaiveDate),
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => text.trim().is_empty(),
            _ => false,
        }
    }
}

/// One row under the header, with where the file has it (`row 7`, `[3]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub place: String,
    pub cells: Vec<Cell>,
}

/// A header row and the rows under it; blank rows are left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The sheet read, for xlsx.
    pub sheet: Option<String>,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// Reads `bytes` as `format`; an error says why nothing could be read at all.
pub fn read(format: SourceFormat, bytes: &[u8], sheet: &str) -> Result<Table, String> {
    match format {
        SourceFormat::Csv => read_csv(bytes),
        SourceFormat::Json => read_json(bytes),
        SourceFormat::Xlsx => read_xlsx(bytes, sheet),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Table, String> {
    let (text, _) = decode(bytes);
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(&text))
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> =
        reader.headers().map_err(|e| format!("cannot read the header row: {e}"))?.iter().map(clean_header).collect();
    let mut rows = Vec::new();
    let mut lines = crate::import::LineCounter::new(text.as_bytes());
    for record in reader.records() {
        let record = record.map_err(|e| format!("broken CSV: {e}"))?;
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        let cells: Vec<Cell> = record.iter().map(|v| Cell::Text(v.to_string())).collect();
        if cells.iter().all(Cell::is_empty) {
            continue;
        }
        rows.push(Row { place: format!("row {line}"), cells });
    }
    Ok(Table { sheet: None, headers, rows })
}

fn clean_header(header: &str) -> String {
    header.trim_start_matches('\u{feff}').split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_json(bytes: &[u8]) -> Result<Table, String> {
    let (text, _) = decode(bytes);
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    // A list of objects, or an object holding one (`{"data": [...]}`, `{"directives": [...]}`).
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => match map.into_iter().find(|(_, v)| v.is_array()) {
            Some((_, serde_json::Value::Array(items))) => items,
            _ => return Err("expected a list of objects, or an object holding one".into()),
        },
        _ => return Err("expected a list of objects, or an object holding one".into()),
    };
    let mut headers: Vec<String> = Vec::new();
    for item in &items {
        if let serde_json::Value::Object(map) = item {
            for key in map.keys() {
                if !headers.contains(key) {
                    headers.push(key.clone());
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let serde_json::Value::Object(map) = item else {
            return Err(format!("[{i}] is not an object"));
        };
        let cells = headers
            .iter()
            .map(|h| match map.get(h) {
                None | Some(serde_json::Value::Null) => Cell::Empty,
                Some(serde_json::Value::String(s)) => Cell::Text(s.clone()),
                Some(serde_json::Value::Bool(b)) => Cell::Bool(*b),
                Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Cell::Text(n.to_string()), Cell::Number),
                Some(other) => Cell::Text(other.to_string()),
            })
            .collect::<Vec<_>>();
        if cells.iter().all(Cell::is_empty) {
            continue;
        }
        rows.push(Row { place: format!("[{i}]"), cells });
    }
    Ok(Table { sheet: None, headers, rows })
}

fn read_xlsx(bytes: &[u8], sheet: &str) -> Result<Table, String> {
    use calamine::{Data, Reader};
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not an xlsx workbook: {e}"))?;
    let names = book.sheet_names();
    let name = match sheet.trim() {
        "" => names.first().cloned().ok_or("the workbook has no sheet")?,
        wanted => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .cloned()
            .ok_or_else(|| format!("no sheet {wanted:?} (the workbook has: {})", names.join(", ")))?,
    };
    let range = book.worksheet_range(&name).map_err(|e| format!("sheet {name:?}: {e}"))?;
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    let mut lines = range.rows().enumerate().filter(|(_, cells)| cells.iter().any(|c| !matches!(c, Data::Empty)));
    let Some((_, header)) = lines.next() else {
        return Err(format!("sheet {name:?} is empty"));
    };
    let headers: Vec<String> = header.iter().map(|c| clean_header(&c.to_string())).collect();
    let mut rows = Vec::new();
    for (index, cells) in lines {
        let cells: Vec<Cell> = cells
            .iter()
            .map(|c| match c {
                Data::Empty | Data::Error(_) => Cell::Empty,
                Data::String(s) => Cell::Text(s.clone()),
                Data::Float(f) => Cell::Number(*f),
                Data::Int(i) => Cell::Number(*i as f64),
                Data::Bool(b) => Cell::Bool(*b),
                Data::DateTime(dt) => dt.as_datetime().map_or(Cell::Number(dt.as_f64()), |d| Cell::Date(d.date())),
                Data::DateTimeIso(s) => NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .map_or_else(|_| Cell::Text(s.clone()), Cell::Date),
                Data::DurationIso(s) => Cell::Text(s.clone()),
            })
            .collect();
        if cells.iter().all(Cell::is_empty) {
            continue;
        }
        rows.push(Row { place: format!("row {}", first_row + index + 1), cells });
    }
    Ok(Table { sheet: Some(name), headers, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spreadsheet_export_is_read_whatever_its_encoding_separator_and_blank_rows() {
        let text = "\u{feff}Mã nhiệm vụ;Hạn xử lý\r\nKL-01;05/09/2022\r\n;\r\nKL-02;06/09/2022\r\n";
        let table = read(SourceFormat::Csv, text.as_bytes(), "").unwrap();
        assert_eq!(table.headers, ["Mã nhiệm vụ", "Hạn xử lý"]);
        assert_eq!(table.rows.len(), 2, "the blank row is skipped");
        assert_eq!(table.rows[1].place, "row 4", "numbered as the file numbers it");
        // Windows-1258: 0xE3 is "ă", 0xEA "ê".
        let legacy = b"M\xe3;T\xean\nA;B\n";
        let table = read(SourceFormat::Csv, legacy, "").unwrap();
        assert_eq!(table.headers, ["Mă", "Tên"]);
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Mã,Tên\nA,B\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let table = read(SourceFormat::Csv, &utf16, "").unwrap();
        assert_eq!(table.headers, ["Mã", "Tên"]);
    }
}
