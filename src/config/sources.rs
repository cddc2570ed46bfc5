//! Config ← sources: the `[[sources]]` tables — where directives (or units, or people) are
//! read from, how their columns and values map onto nhacviec's fields, and when — parsed and
//! checked at start-up, so a source that could never work stops the daemon with exit 78 and
//! the key at fault (`sources[1].columns."Hạn xử lý"`).

use super::{key_error, parse_cron, ConfigError};
use crate::domain::{Directive, DirectiveKind, Person, Role, Status, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `[[sources]]` table as the file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub name: String,
    pub kind: SourceKind,
    /// `file`: a path; a glob (`/srv/export/*.xlsx`) reads every match.
    #[serde(default)]
    pub path: String,
    /// `http`: an https URL.
    #[serde(default)]
    pub url: String,
    /// `http`: a file holding a bearer token (a bare name is looked up in
    /// `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub token_file: String,
    /// `sql`: a read-only query.
    #[serde(default)]
    pub query: String,
    /// `xlsx`, `csv` or `json`; inferred from the extension of `path` or `url` when absent.
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// `xlsx`: the sheet's name; the first sheet when empty.
    #[serde(default)]
    pub sheet: String,
    /// Six-field cron, as `schedule.scan`; empty: only `nhacviec sync` runs it.
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub entity: Entity,
    /// Source column → nhacviec field (`"Mã nhiệm vụ" = "code"`). Empty: the columns carry
    /// nhacviec's own field names.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub values: ValueMaps,
    /// strftime patterns tried in order for text dates (native date cells need none).
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    #[serde(default)]
    pub mode: SyncMode,
    /// `snapshot`: what becomes of a directive the source no longer lists.
    #[serde(default)]
    pub on_missing: OnMissing,
    /// `snapshot` with `on_missing = "cancel"`: a run that would cancel more than this share
    /// of the source's live directives is refused (a truncated export never wipes an agency).
    #[serde(default = "default_max_missing_percent")]
    pub max_missing_percent: f64,
    /// Failed runs in a row before the administrator is told.
    #[serde(default = "default_alert_after")]
    pub alert_after: u32,
}

/// Value maps: the source's words for nhacviec's vocabulary (`"Đang thực hiện" = "in_progress"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMaps {
    #[serde(default)]
    pub status: BTreeMap<String, String>,
    #[serde(default)]
    pub kind: BTreeMap<String, String>,
    #[serde(default)]
    pub role: BTreeMap<String, String>,
}

fn default_date_formats() -> Vec<String> {
    vec!["%Y-%m-%d".into(), "%d/%m/%Y".into()]
}

fn default_max_missing_percent() -> f64 {
    10.0
}

fn default_alert_after() -> u32 {
    3
}

setting_words!(
    /// Where a source's rows come from.
    SourceKind { File => "file", Http => "http", Sql => "sql" }
);
setting_words!(
    /// How a source's bytes are laid out.
    SourceFormat { Xlsx => "xlsx", Csv => "csv", Json => "json" }
);
setting_words!(
    /// What a source's rows are.
    Entity { Directives => "directives", Units => "units", People => "people" }
);
setting_words!(
    /// `snapshot`: every row the source knows, each run; `changes`: only what changed.
    SyncMode { Snapshot => "snapshot", Changes => "changes" }
);
setting_words!(
    /// What a snapshot does with a directive it no longer lists.
    OnMissing { Keep => "keep", Cancel => "cancel" }
);

// The enum comes from `setting_words!`, which takes no per-variant attributes.
#[allow(clippy::derivable_impls)]
impl Default for Entity {
    fn default() -> Entity {
        Entity::Directives
    }
}

// The enum comes from `setting_words!`, which takes no per-variant attributes.
#[allow(clippy::derivable_impls)]
impl Default for SyncMode {
    fn default() -> SyncMode {
        SyncMode::Snapshot
    }
}

// The enum comes from `setting_words!`, which takes no per-variant attributes.
#[allow(clippy::derivable_impls)]
impl Default for OnMissing {
    fn default() -> OnMissing {
        OnMissing::Keep
    }
}

impl Entity {
    /// The import section its rows are validated as.
    pub fn section(self) -> &'static str {
        self.as_str()
    }

    /// nhacviec's fields for this entity: what `columns` may map to.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Entity::Directives => Directive::FIELDS,
            Entity::Units => Unit::FIELDS,
            Entity::People => Person::FIELDS,
        }
    }
}

/// A source after validation: its settings, its format and its schedule.
#[derive(Debug, Clone)]
pub struct Source {
    pub settings: SourceSettings,
    pub format: Option<SourceFormat>,
    pub cron: Option<croner::Cron>,
    /// The agency's time zone: an instant a source gives (`TIMESTAMPTZ`) falls on its date there.
    pub timezone: chrono_tz::Tz,
}

impl std::ops::Deref for Source {
    type Target = SourceSettings;

    fn deref(&self) -> &SourceSettings {
        &self.settings
    }
}

fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])))
}

/// Checks every source; the first problem names its key.
pub fn validate(sources: &[SourceSettings], timezone: chrono_tz::Tz) -> Result<Vec<Source>, ConfigError> {
    let mut names = std::collections::HashSet::new();
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let key = |field: &str| format!("sources[{i}].{field}");
            let name_ok = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !name_ok {
                return Err(key_error(&key("name"), format!("{:?}: use 1–64 of a-z, 0-9, - and _", s.name)));
            }
            if !names.insert(s.name.as_str()) {
                return Err(key_error(&key("name"), format!("{:?} names two sources", s.name)));
            }
            match s.kind {
                SourceKind::File if s.path.trim().is_empty() => {
                    return Err(key_error(&key("path"), "is required for kind = \"file\""))
                }
                // Plain http only to this machine (a local proxy, a test peer): tokens and
                // data never cross a network in the clear.
                SourceKind::Http if !s.url.starts_with("https://") && !is_loopback_http(&s.url) => {
                    let shown = crate::config::redact_url(&s.url);
                    return Err(key_error(&key("url"), format!("{shown:?}: expected an https:// URL")));
                }
                SourceKind::Sql
                    if !(s.url.starts_with("postgres://")
                        || s.url.starts_with("postgresql://")
                        || s.url.starts_with("mysql://")
                        || s.url.starts_with("mariadb://")) =>
                {
                    return Err(key_error(&key("url"), "expected a postgres:// or mysql:// connection URL"))
                }
                SourceKind::Sql if s.query.trim().is_empty() => {
                    return Err(key_error(&key("query"), "is required for kind = \"sql\""))
                }
                _ => {}
            }
            let format = match (s.kind, s.format) {
                (SourceKind::Sql, _) => None,
                (_, Some(format)) => Some(format),
                (_, None) => {
                    let location = if s.kind == SourceKind::File { &s.path } else { &s.url };
                    let path = location.split(['?', '#']).next().unwrap_or(location).to_lowercase();
                    let inferred =
                        [("xlsx", SourceFormat::Xlsx), ("csv", SourceFormat::Csv), ("json", SourceFormat::Json)]
                            .into_iter()
                            .find(|(ext, _)| path.ends_with(&format!(".{ext}")));
                    match inferred {
                        Some((_, format)) => Some(format),
                        None => {
                            return Err(key_error(
                                &key("format"),
                                "cannot be inferred from the extension: set xlsx, csv or json",
                            ))
                        }
                    }
                }
            };
            let cron = match s.schedule.trim() {
                "" => None,
                expr => Some(parse_cron(&key("schedule"), expr)?),
            };
            let fields = s.entity.fields();
            for (column, field) in &s.columns {
                if !fields.contains(&field.as_str()) {
                    return Err(key_error(
                        &format!("sources[{i}].columns.{column:?}"),
                        format!("{field:?} is not a field of {} (one of: {})", s.entity.as_str(), fields.join(", ")),
                    ));
                }
            }
            for (word, status) in &s.values.status {
                status.parse::<Status>().map_err(|e| key_error(&format!("sources[{i}].values.status.{word:?}"), e))?;
            }
            for (word, kind) in &s.values.kind {
                kind.parse::<DirectiveKind>()
                    .map_err(|e| key_error(&format!("sources[{i}].values.kind.{word:?}"), e))?;
            }
            for (word, role) in &s.values.role {
                role.parse::<Role>().map_err(|e| key_error(&format!("sources[{i}].values.role.{word:?}"), e))?;
            }
            for pattern in &s.date_formats {
                let probe = chrono::NaiveDate::from_ymd_opt(2022, 9, 5).map(|d| d.format(pattern).to_string());
                if probe.is_none_or(|text| chrono::NaiveDate::parse_from_str(&text, pattern).is_err()) {
                    return Err(key_error(&key("date_formats"), format!("{pattern:?} is not a strftime date pattern")));
                }
            }
            if !(0.0..=100.0).contains(&s.max_missing_percent) {
                return Err(key_error(&key("max_missing_percent"), "must be 0–100"));
            }
            Ok(Source { settings: s.clone(), format, cron, timezone })
        })
        .collect()
}
