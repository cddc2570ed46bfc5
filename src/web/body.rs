//! Web ← body: an answer's fields as the client sent them, JSON or form-encoded with the same
//! names, read into typed values; a bad or missing value names its field (422). Text that is
//! empty or only whitespace counts as missing.

use chrono::NaiveDate;
use serde_json::{Map, Value};

/// A field that cannot be taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { field, reason: reason.into() }
}

/// The fields of one request body.
#[derive(Debug, Default)]
pub struct Fields {
    values: Map<String, Value>,
    /// Form values arrive as text, and an unchecked checkbox not at all.
    form: bool,
}

/// Longest text a field takes, by field (a result may be long; a note or reason, a paragraph).
fn max_chars(field: &str) -> usize {
    if field == "result" {
        4_000
    } else {
        2_000
    }
}

impl Fields {
    /// Reads `body` as JSON when the content type says so, else as a form.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Fields, Invalid> {
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media == "application/json" || (media.is_empty() && body.trim_ascii_start().starts_with(b"{")) {
            if body.trim_ascii().is_empty() {
                return Ok(Fields::default());
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(values)) => Ok(Fields { values, form: false }),
                Ok(_) => Err(invalid("body", "expected a JSON object")),
                Err(e) => Err(invalid("body", format!("not JSON: {e}"))),
            }
        } else {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|e| invalid("body", format!("not a form: {e}")))?;
            let values = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            Ok(Fields { values, form: true })
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.values.get(field).filter(|v| !v.is_null())
    }

    /// Text, trimmed; `None` when absent, empty or only whitespace.
    pub fn text(&self, field: &'static str) -> Result<Option<String>, Invalid> {
        let Some(value) = self.get(field) else { return Ok(None) };
        let Value::String(text) = value else { return Err(invalid(field, "expected text")) };
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(invalid(field, "holds a control character"));
        }
        let count = text.chars().count();
        if count > max_chars(field) {
            return Err(invalid(field, format!("{count} characters; at most {}", max_chars(field))));
        }
        Ok(Some(text.to_string()))
    }

    /// Text that must be there.
    pub fn required_text(&self, field: &'static str) -> Result<String, Invalid> {
        self.text(field)?.ok_or_else(|| invalid(field, "is required"))
    }

    /// A whole number in `range`, as a number or (from a form) as digits.
    pub fn int(&self, field: &'static str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, Invalid> {
        let n = match self.get(field) {
            None => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) if self.form => s.trim().parse().ok(),
            Some(_) => None,
        };
        let n = n.ok_or_else(|| invalid(field, "expected a whole number"))?;
        if !range.contains(&n) {
            return Err(invalid(field, format!("{n} is outside {}–{}", range.start(), range.end())));
        }
        Ok(Some(n))
    }

    /// A date `YYYY-MM-DD`.
    pub fn date(&self, field: &'static str) -> Result<Option<NaiveDate>, Invalid> {
        match self.text(field)? {
            None => Ok(None),
            Some(text) => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| invalid(field, format!("{text:?} is not a date YYYY-MM-DD"))),
        }
    }

    /// `true` or `false` (from a form also `1`/`0`, `yes`/`no`, `on`).
    pub fn bool(&self, field: &'static str) -> Result<bool, Invalid> {
        match self.get(field) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if self.form => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(invalid(field, format!("{other:?}: expected true or false"))),
            },
            None => Err(invalid(field, "is required (true or false)")),
            Some(_) => Err(invalid(field, "expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_form_bodies_read_the_same_and_blank_text_is_missing() {
        let json = Fields::parse("application/json", br#"{"note": "  ", "percent": 40, "accept": false}"#).unwrap();
        let form = Fields::parse("application/x-www-form-urlencoded", b"note=+&percent=40&accept=false").unwrap();
        for f in [&json, &form] {
            assert_eq!(f.text("note"), Ok(None));
            assert_eq!(f.required_text("note").unwrap_err().field, "note");
            assert_eq!(f.int("percent", 0..=100), Ok(Some(40)));
            assert_eq!(f.bool("accept"), Ok(false));
        }
        assert_eq!(json.int("percent", 0..=30).unwrap_err().field, "percent");
        let bad = Fields::parse("application/json", br#"{"until": "30/09/2022"}"#).unwrap();
        assert_eq!(bad.date("until").unwrap_err().field, "until");
        assert_eq!(Fields::parse("application/json", b"[1]").unwrap_err().field, "body");
    }
}
