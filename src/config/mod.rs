//! Configuration: built-in defaults (`config/default.toml`) ← optional file ← environment
//! (`NHACVIEC__SECTION__KEY`), deserialized strictly and validated once at start-up into
//! typed settings. Everything downstream receives these values; nothing reads files or the
//! environment for settings again.

use crate::plan::policy::Policy;
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The built-in defaults, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration key {key}: {reason}")]
    Key { key: String, reason: String },
}

impl ConfigError {
    /// A problem with one key's value, named by its dotted path (`mail.smtp.password_file`).
    pub fn key(key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Key { key: key.to_string(), reason: reason.into() }
    }
}

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::key(key, reason)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub agency: Agency,
    pub database: Database,
    pub calendar: CalendarSettings,
    pub policy: Policy,
    pub schedule: Schedule,
    pub reports: Reports,
    pub send_window: SendWindow,
    pub delivery: Delivery,
    pub mail: Mail,
    pub telegram: Telegram,
    pub webhook: Webhook,
    pub http: Http,
    pub web: Web,
    pub log: Log,
    /// `[[sources]]`: where directives, units and people are synced from.
    #[serde(default)]
    pub sources: Vec<SourceSettings>,
    #[serde(default)]
    pub admin: Admin,
}

/// Who runs the service: told when a source keeps failing, and when it recovers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// The administrator's address; empty: nobody is told (the log and /metrics still say).
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    pub name: String,
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
    pub sqlite_busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSettings {
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub scan: String,
    pub max_scan_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    pub weekly: String,
    pub monthly: bool,
    pub monthly_working_days_before_end: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    pub start: String,
    pub end: String,
    pub working_days_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub group: bool,
    pub batch_size: u32,
    pub lease_seconds: u64,
    pub retry_base_seconds: u64,
    pub retry_max_seconds: u64,
    pub max_attempts: u32,
    pub concurrency: u32,
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    pub transport: MailTransport,
    pub from: String,
    /// Where replies go (`Reply-To`), e.g. the office's mailbox; empty = no replies.
    pub reply_to: String,
    pub file_dir: String,
    pub templates_dir: String,
    pub message_id_domain: String,
    pub smtp: Smtp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password_file: String,
    pub ca_file: String,
    pub pool_size: u32,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    pub enabled: bool,
    pub api_url: String,
    pub token_file: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub enabled: bool,
    pub url: String,
    pub secret_file: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub listen: String,
    pub header_timeout_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub max_connections: u32,
}

/// `[web]`: the directive pages and answer API behind each reminder's link (`/r/{token}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// Address the pages are served on; empty serves none.
    pub listen: String,
    /// The address people open (the reverse proxy's), before `/r/{token}`; empty: reminders
    /// carry no link.
    pub base_url: String,
    /// The secret links are signed with (a bare name: systemd's `$CREDENTIALS_DIRECTORY`).
    pub secret_file: String,
    /// Days a link stays valid.
    pub link_days: u32,
    /// Requests a minute per link, and per client address.
    pub rate_per_token: u32,
    pub rate_per_address: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A closed set of words for one setting, read from its text with an error that lists the
/// words (the configuration loader adds the key).
macro_rules! setting_words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                match text.as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(serde::de::Error::custom(format!(
                        "{other:?}: expected {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

pub mod sources;
pub use sources::{Entity, OnMissing, Source, SourceFormat, SourceKind, SourceSettings, SyncMode};

setting_words!(
    /// `mail.smtp.tls`: none, starttls (upgrade a plain connection) or tls (implicit, port 465).
    TlsMode { None => "none", StartTls => "starttls", Tls => "tls" }
);

setting_words!(
    /// `mail.transport`: an SMTP server, or `.eml` files in `mail.file_dir`.
    MailTransport { Smtp => "smtp", File => "file" }
);

setting_words!(
    /// `log.format`: human-readable lines (journald-friendly under systemd), or JSON lines.
    LogFormat { Text => "text", Json => "json" }
);

/// `reports.*` parsed: when digests and reports become owed; `None` disables one.
#[derive(Debug, Clone)]
pub struct ReportSchedule {
    pub weekly: Option<croner::Cron>,
    pub monthly_working_days_before_end: Option<u32>,
}

/// Settings after validation: every section of the file, typed (reached through `Deref`,
/// as `config.mail`), plus the values parsed from them once (time zone, backend, schedules,
/// the send window, the sender).
#[derive(Debug, Clone)]
pub struct Config {
    /// The sections as the file holds them.
    pub settings: Settings,
    /// Where the optional file came from, if any.
    pub source: Option<PathBuf>,
    pub timezone: Tz,
    pub backend: Backend,
    pub scan_cron: croner::Cron,
    /// `reports.*` parsed: the weekly digest's cron and the monthly report's day.
    pub report_schedule: ReportSchedule,
    pub window_start: NaiveTime,
    pub window_end: NaiveTime,
    pub from: lettre::message::Mailbox,
    /// `[[sources]]` checked, with their formats and schedules.
    pub sources: Vec<Source>,
    /// `mail.reply_to` parsed; `None` when empty.
    pub reply_to: Option<lettre::message::Mailbox>,
    pub http_listen: Option<std::net::SocketAddr>,
    /// `web.listen` parsed; `None` when empty.
    pub web_listen: Option<std::net::SocketAddr>,
}

impl std::ops::Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl Config {
    /// Loads defaults ← file ← environment and validates. `explicit` is `--config`.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_from(explicit, &env)
    }

    /// As [`Config::load`], with the environment passed in (tests give their own).
    pub fn load_from(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let source = config_path(explicit, env);
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        if let Some(path) = &source {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
            // Parse alone first so a syntax error names the file and line.
            toml::from_str::<toml::Value>(&text)
                .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let overrides: std::collections::HashMap<String, String> =
            env.iter().filter(|(k, _)| k.starts_with("NHACVIEC__")).cloned().collect();
        builder = builder.add_source(
            config::Environment::with_prefix("NHACVIEC")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        );
        let merged = builder.build().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let raw: Settings = merged.try_deserialize().map_err(|e| match &source {
            Some(path) => ConfigError::File { path: path.clone(), reason: e.to_string() },
            None => ConfigError::Invalid(e.to_string()),
        })?;
        Config::validate(raw, source)
    }

    fn validate(raw: Settings, source: Option<PathBuf>) -> Result<Config, ConfigError> {
        let timezone: Tz = raw.agency.timezone.parse().map_err(|_| {
            key_error(
                "agency.timezone",
                format!("{:?} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh)", raw.agency.timezone),
            )
        })?;
        let backend = backend_of(&raw.database.url)?;
        let scan_cron = parse_cron("schedule.scan", &raw.schedule.scan)?;
        let reports = ReportSchedule {
            weekly: match raw.reports.weekly.trim() {
                "" => None,
                expr => Some(parse_cron("reports.weekly", expr)?),
            },
            monthly_working_days_before_end: raw.reports.monthly.then_some(raw.reports.monthly_working_days_before_end),
        };
        let window_start = parse_time("send_window.start", &raw.send_window.start)?;
        let window_end = parse_time("send_window.end", &raw.send_window.end)?;
        if window_end <= window_start {
            return Err(key_error("send_window.end", "must be later than send_window.start"));
        }
        raw.policy.validate().map_err(ConfigError::Invalid)?;
        if raw.delivery.batch_size == 0 {
            return Err(key_error("delivery.batch_size", "must be at least 1"));
        }
        if raw.delivery.concurrency == 0 {
            return Err(key_error("delivery.concurrency", "must be at least 1"));
        }
        if raw.delivery.max_attempts == 0 {
            return Err(key_error("delivery.max_attempts", "must be at least 1"));
        }
        if raw.delivery.retry_base_seconds == 0 || raw.delivery.retry_max_seconds < raw.delivery.retry_base_seconds {
            return Err(key_error(
                "delivery.retry_base_seconds",
                "must be at least 1 and no more than delivery.retry_max_seconds",
            ));
        }
        if raw.schedule.max_scan_seconds == 0 {
            return Err(key_error("schedule.max_scan_seconds", "must be at least 1"));
        }
        if raw.database.max_connections < 2 {
            // Delivery reads directives while it holds a claim transaction open.
            return Err(key_error("database.max_connections", "must be at least 2"));
        }
        if raw.delivery.lease_seconds < 10 {
            return Err(key_error("delivery.lease_seconds", "must be at least 10 seconds"));
        }
        let from = raw.mail.from.parse().map_err(|e| {
            key_error(
                "mail.from",
                format!(
                    "{:?} is not a mailbox ({e}); e.g. \"Thanh tra tỉnh <nhacviec@example.gov.vn>\"",
                    raw.mail.from
                ),
            )
        })?;
        let sources = sources::validate(&raw.sources, timezone)?;
        if !raw.admin.email.trim().is_empty() && raw.admin.email.trim().parse::<lettre::Address>().is_err() {
            return Err(key_error("admin.email", format!("{:?} is not an email address", raw.admin.email)));
        }
        let reply_to = match raw.mail.reply_to.trim() {
            "" => None,
            text => Some(text.parse().map_err(|e| {
                key_error(
                    "mail.reply_to",
                    format!("{text:?} is not a mailbox ({e}); e.g. \"Văn phòng <vanphong@example.gov.vn>\""),
                )
            })?),
        };
        if raw.mail.transport == MailTransport::Smtp {
            if raw.mail.smtp.host.trim().is_empty() {
                return Err(key_error("mail.smtp.host", "is empty"));
            }
            if raw.mail.smtp.port == 0 {
                return Err(key_error("mail.smtp.port", "must be 1–65535"));
            }
            if raw.mail.smtp.pool_size == 0 {
                return Err(key_error("mail.smtp.pool_size", "must be at least 1"));
            }
            if raw.mail.smtp.timeout_seconds == 0 {
                return Err(key_error("mail.smtp.timeout_seconds", "must be at least 1"));
            }
            if !raw.mail.smtp.username.is_empty() && raw.mail.smtp.password_file.is_empty() {
                return Err(key_error("mail.smtp.password_file", "is required when mail.smtp.username is set"));
            }
        }
        if raw.telegram.enabled {
            check_http_url("telegram.api_url", &raw.telegram.api_url)?;
            if raw.telegram.token_file.trim().is_empty() {
                return Err(key_error(
                    "telegram.token_file",
                    "is required when telegram.enabled (the bot token's file)",
                ));
            }
            if raw.telegram.timeout_seconds == 0 {
                return Err(key_error("telegram.timeout_seconds", "must be at least 1"));
            }
        }
        if raw.webhook.enabled {
            check_http_url("webhook.url", &raw.webhook.url)?;
            if raw.webhook.secret_file.trim().is_empty() {
                return Err(key_error("webhook.secret_file", "is required when webhook.enabled (the HMAC key's file)"));
            }
            if raw.webhook.timeout_seconds == 0 {
                return Err(key_error("webhook.timeout_seconds", "must be at least 1"));
            }
        }
        let http_listen = match raw.http.listen.trim() {
            "" => None,
            addr => Some(addr.parse().map_err(|_| {
                key_error("http.listen", format!("{addr:?} is not an address:port such as 127.0.0.1:9187"))
            })?),
        };
        for (key, value) in [
            ("http.header_timeout_seconds", raw.http.header_timeout_seconds),
            ("http.idle_timeout_seconds", raw.http.idle_timeout_seconds),
            ("http.max_connections", u64::from(raw.http.max_connections)),
        ] {
            if value == 0 {
                return Err(key_error(key, "must be at least 1"));
            }
        }
        let web_listen = match raw.web.listen.trim() {
            "" => None,
            addr => Some(addr.parse().map_err(|_| {
                key_error("web.listen", format!("{addr:?} is not an address:port such as 127.0.0.1:8080"))
            })?),
        };
        let base = raw.web.base_url.trim();
        if !(base.is_empty() || base.starts_with("https://") || base.starts_with("http://")) {
            return Err(key_error("web.base_url", format!("{base:?}: expected an https:// address")));
        }
        if (web_listen.is_some() || !base.is_empty()) && raw.web.secret_file.trim().is_empty() {
            return Err(key_error("web.secret_file", "is required when web.listen or web.base_url is set"));
        }
        for (key, value) in [
            ("web.link_days", raw.web.link_days),
            ("web.rate_per_token", raw.web.rate_per_token),
            ("web.rate_per_address", raw.web.rate_per_address),
        ] {
            if value == 0 {
                return Err(key_error(key, "must be at least 1"));
            }
        }
        Ok(Config {
            settings: raw,
            source,
            timezone,
            backend,
            scan_cron,
            report_schedule: reports,
            window_start,
            window_end,
            from,
            sources,
            reply_to,
            http_listen,
            web_listen,
        })
    }

    /// The effective configuration as TOML, secrets redacted (passwords never live in config,
    /// but any URL may carry one in its user part or a token in its query).
    pub fn to_redacted_toml(&self) -> String {
        let mut raw = self.settings.clone();
        for url in [&mut raw.database.url, &mut raw.telegram.api_url, &mut raw.webhook.url] {
            *url = redact_url(url);
        }
        toml::to_string_pretty(&raw).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }

    /// Every cron expression the daemon runs on, with its key: each must parse (checked at
    /// load) and fire at least once more (checked by the preflight, which knows `now`).
    pub fn schedules(&self) -> Vec<(&'static str, &str, &croner::Cron)> {
        let mut all = vec![("schedule.scan", self.schedule.scan.as_str(), &self.scan_cron)];
        if let Some(weekly) = &self.report_schedule.weekly {
            all.push(("reports.weekly", self.reports.weekly.trim(), weekly));
        }
        all
    }

    /// `calendar.dir`, unless empty (then only the built-in calendar files are read).
    pub fn calendar_dir(&self) -> Option<&Path> {
        let dir = self.calendar.dir.trim();
        (!dir.is_empty()).then(|| Path::new(dir))
    }
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if ok {
        Ok(())
    } else {
        Err(key_error(key, format!("{:?} is not an http(s):// URL", redact_url(url))))
    }
}

impl Config {
    /// Which channels are switched on (email always is).
    pub fn enabled_channels(&self) -> Vec<crate::domain::Channel> {
        use crate::domain::Channel;
        let mut channels = vec![Channel::Email];
        if self.telegram.enabled {
            channels.push(Channel::Telegram);
        }
        if self.webhook.enabled {
            channels.push(Channel::Webhook);
        }
        channels
    }
}

/// `--config`, else `$NHACVIEC_CONFIG`, else /etc/nhacviec/nhacviec.toml, else
/// config/nhacviec.toml — the first that is given or exists.
fn config_path(explicit: Option<&Path>, env: &[(String, String)]) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some((_, path)) = env.iter().find(|(k, v)| k == "NHACVIEC_CONFIG" && !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    ["/etc/nhacviec/nhacviec.toml", "config/nhacviec.toml"].into_iter().map(PathBuf::from).find(|p| p.is_file())
}

pub fn backend_of(url: &str) -> Result<Backend, ConfigError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(key_error(
            "database.url",
            format!("{:?}: expected sqlite://PATH or postgres://USER@HOST/DB", redact_url(url)),
        ))
    }
}

/// Six-field cron, seconds first, day-of-month AND day-of-week — parsed exactly as
/// tokio-cron-scheduler will parse it, so what passes here runs there.
pub fn parse_cron(key: &str, expr: &str) -> Result<croner::Cron, ConfigError> {
    if expr.split_whitespace().count() < 6 {
        return Err(key_error(
            key,
            format!("{expr:?} has fewer than six fields; write seconds first, e.g. \"0 30 7 * * Mon\""),
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| key_error(key, format!("{expr:?} is not a valid cron expression: {e}")))
}

fn parse_time(key: &str, text: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| key_error(key, format!("{text:?} is not a time of day HH:MM")))
}

/// The URL as it may be shown in logs and messages: a password becomes `***` (the user name
/// before it stays, it tells which account), a user part without a password becomes `***`
/// whole (such a part is usually a token), and every query value becomes `***` (names stay;
/// a bare parameter without `=` is redacted whole, it too may be a token). Errs towards
/// hiding: an `@` anywhere before the query counts as the end of a user part.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let user = match base[scheme + 3..at].split_once(':') {
                Some((user, _)) if !user.is_empty() => format!("{user}:***"),
                _ => "***".to_string(),
            };
            format!("{}{user}{}", &base[..scheme + 3], &base[at..])
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&redacted.join("&"));
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_from(None, &env)
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&[]).unwrap();
        assert_eq!(config.timezone, chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.policy, Policy::default());
    }

    #[test]
    fn an_unknown_word_for_a_closed_setting_names_its_key() {
        for (key, env) in [
            ("mail.transport", "NHACVIEC__MAIL__TRANSPORT"),
            ("mail.smtp.tls", "NHACVIEC__MAIL__SMTP__TLS"),
            ("log.format", "NHACVIEC__LOG__FORMAT"),
        ] {
            let err = load(&[(env, "carrier-pigeon")]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("carrier-pigeon"), "{key}: {err}");
        }
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let config = load(&[
            ("NHACVIEC__MAIL__SMTP__PORT", "2525"),
            ("NHACVIEC__MAIL__SMTP__TLS", "starttls"),
            ("NHACVIEC__DATABASE__URL", "postgres://u:secret@db/x"),
        ])
        .unwrap();
        assert_eq!(config.mail.smtp.port, 2525);
        assert_eq!(config.mail.smtp.tls, TlsMode::StartTls);
        assert_eq!(config.backend, Backend::Postgres);
        assert!(!config.to_redacted_toml().contains("u:secret@"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let cases = [
            ("NHACVIEC__AGENCY__TIMEZONE", "Asia/Hanoi_Typo", "agency.timezone"),
            ("NHACVIEC__SCHEDULE__SCAN", "*/15 * * * *", "schedule.scan"),
            ("NHACVIEC__SCHEDULE__SCAN", "0 99 * * * *", "schedule.scan"),
            ("NHACVIEC__MAIL__FROM", "not an address", "mail.from"),
            ("NHACVIEC__MAIL__SMTP__TLS", "ssl", "mail.smtp.tls"),
            ("NHACVIEC__SEND_WINDOW__START", "7h30", "send_window.start"),
            ("NHACVIEC__DATABASE__URL", "mysql://x", "database.url"),
            ("NHACVIEC__HTTP__LISTEN", "localhost", "http.listen"),
            ("NHACVIEC__HTTP__HEADER_TIMEOUT_SECONDS", "0", "http.header_timeout_seconds"),
            ("NHACVIEC__HTTP__IDLE_TIMEOUT_SECONDS", "0", "http.idle_timeout_seconds"),
            ("NHACVIEC__HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{var}={value}: {err}");
        }
    }

    #[test]
    fn a_redacted_url_keeps_no_password_token_or_query_value() {
        let cases = [
            ("https://user:pass@host/hook?token=abc", "https://user:***@host/hook?token=***"),
            ("https://tok3n@host/hook", "https://***@host/hook"),
            ("https://:pass@host/", "https://***@host/"),
            ("postgres://u:p@ss@db/x?sslmode=require&password=pw", "postgres://u:***@db/x?sslmode=***&password=***"),
            ("https://host/hook?SECRET&a=1#part", "https://host/hook?***&a=***#part"),
            ("https://host/hook?a=1&&b", "https://host/hook?a=***&&***"),
            ("https://api.telegram.org", "https://api.telegram.org"),
            ("sqlite://var/nhacviec.db", "sqlite://var/nhacviec.db"),
            ("", ""),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_printed_configuration_redacts_every_url() {
        let config = load(&[
            ("NHACVIEC__WEBHOOK__URL", "https://hookuser:hookpass@hooks.example/in?token=abc123"),
            ("NHACVIEC__TELEGRAM__API_URL", "https://bot:tgpass@tg.example/?key=tgkey"),
        ])
        .unwrap();
        let text = config.to_redacted_toml();
        for secret in ["hookpass", "abc123", "tgpass", "tgkey"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert!(text.contains("https://hookuser:***@hooks.example/in?token=***"), "{text}");
    }

    #[test]
    fn every_cron_schedule_is_listed_with_its_key() {
        let config = load(&[]).unwrap();
        let keys: Vec<&str> = config.schedules().iter().map(|(key, _, _)| *key).collect();
        assert_eq!(keys, ["schedule.scan", "reports.weekly"]);
        let config = load(&[("NHACVIEC__REPORTS__WEEKLY", "")]).unwrap();
        assert_eq!(config.schedules().len(), 1);
    }
}
