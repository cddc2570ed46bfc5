//! Pre-flight: everything the configuration names outside itself, checked before anything
//! starts — between [`crate::config`] (which validates the values) and the daemon or any
//! command that sends. It reads the credential files, parses the CA file, loads the calendar
//! files and the templates by building the real renderers and channels ([`Outlets`]), and
//! checks every cron schedule still fires after `now`. `check-config` and `run` both call
//! [`preflight`], so they cannot disagree: whatever fails here fails both, as a
//! [`ConfigError`] (exit status 78), and `run` goes on with the very outlets built here.
//! It touches no database and opens no socket.

use crate::calendar::Calendar;
use crate::channels::{outlets_templates_dir as templates_dir, Outlets};
use crate::config::{Config, ConfigError, MailTransport, TlsMode};
use chrono::{DateTime, Utc};

/// Something that works but that an administrator should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The configuration key it concerns.
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// What a passed pre-flight hands on.
pub struct Checked {
    pub warnings: Vec<Warning>,
    /// The templates and channels, ready to deliver with.
    pub outlets: Outlets,
}

/// Checks what `config` refers to, as of `now`.
pub fn preflight(config: &Config, now: DateTime<Utc>) -> Result<Checked, ConfigError> {
    let now = now.with_timezone(&config.timezone);
    for (key, expr, cron) in config.schedules() {
        // tokio-cron-scheduler would accept such a schedule and simply never wake the loop.
        if cron.find_next_occurrence(&now, false).is_err() {
            return Err(ConfigError::key(key, format!("{expr:?} never fires (no date after now matches it)")));
        }
    }
    Calendar::load(config.calendar_dir()).map_err(|e| ConfigError::key("calendar.dir", e.to_string()))?;
    let outlets = Outlets::from_config(config)?;
    if config.web_listen.is_some() || !config.web.base_url.trim().is_empty() {
        crate::web::secret(config)?;
    }
    Ok(Checked { warnings: warnings(config), outlets })
}

fn warnings(config: &Config) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let smtp = &config.mail.smtp;
    if config.mail.transport == MailTransport::Smtp
        && !smtp.username.is_empty()
        && config.mail.smtp.tls == TlsMode::None
    {
        warnings.push(Warning {
            key: "mail.smtp.tls",
            message: format!(
                "is \"none\" while mail.smtp.username is set: the password for {:?} is sent to {}:{} \
                 in clear; use starttls or tls",
                smtp.username, smtp.host, smtp.port
            ),
        });
    }
    if let Some(dir) = templates_dir(config).filter(|d| !d.is_dir()) {
        warnings.push(Warning {
            key: "mail.templates_dir",
            message: format!("{} is not a directory: the built-in templates are used", dir.display()),
        });
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn config(env: &[(&str, String)]) -> Config {
        let mut all: Vec<(String, String)> = vec![
            ("NHACVIEC__CALENDAR__DIR".into(), String::new()),
            ("NHACVIEC__MAIL__TRANSPORT".into(), "smtp".into()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Config::load_from(None, &all).unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 9, 5, 1, 0, 0).unwrap()
    }

    fn error(env: &[(&str, String)]) -> String {
        match preflight(&config(env), at()) {
            Ok(_) => panic!("preflight passed for {env:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_defaults_pass_without_warnings() {
        let checked = preflight(&config(&[]), at()).unwrap();
        assert_eq!(checked.warnings, []);
    }

    #[test]
    fn a_schedule_that_never_fires_is_named_with_its_key() {
        let err = error(&[("NHACVIEC__SCHEDULE__SCAN", "0 0 0 30 2 *".into())]);
        assert_eq!(err, "configuration key schedule.scan: \"0 0 0 30 2 *\" never fires (no date after now matches it)");
        let err = error(&[("NHACVIEC__REPORTS__WEEKLY", "0 0 7 * * Mon 2021".into())]);
        assert!(err.starts_with("configuration key reports.weekly: \"0 0 7 * * Mon 2021\" never fires"), "{err}");
    }

    #[test]
    fn a_schedule_that_fires_once_more_passes() {
        let env = [("NHACVIEC__SCHEDULE__SCAN", "0 0 0 29 2 * 2024".into())];
        assert!(preflight(&config(&env), at()).is_ok());
        assert!(preflight(&config(&env), Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()).is_err());
    }

    #[test]
    fn credential_files_must_be_readable_and_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let missing = dir.path().join("missing").display().to_string();
        let cases = [
            ("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", "mail.smtp.password_file", missing.clone(), "cannot read"),
            ("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", "mail.smtp.password_file", empty.display().to_string(), "empty"),
            // A directory fails to read as a file, even for root.
            (
                "NHACVIEC__MAIL__SMTP__PASSWORD_FILE",
                "mail.smtp.password_file",
                dir.path().display().to_string(),
                "cannot read",
            ),
        ];
        for (var, key, value, reason) in cases {
            let err = error(&[("NHACVIEC__MAIL__SMTP__USERNAME", "nv".into()), (var, value.clone())]);
            assert!(err.contains(key) && err.contains(&value) && err.contains(reason), "{value}: {err}");
        }
        let err = error(&[
            ("NHACVIEC__TELEGRAM__ENABLED", "true".into()),
            ("NHACVIEC__TELEGRAM__TOKEN_FILE", missing.clone()),
        ]);
        assert!(err.starts_with("configuration key telegram.token_file: "), "{err}");
        let err = error(&[
            ("NHACVIEC__WEBHOOK__ENABLED", "true".into()),
            ("NHACVIEC__WEBHOOK__URL", "https://hooks.example/in".into()),
            ("NHACVIEC__WEBHOOK__SECRET_FILE", missing),
        ]);
        assert!(err.starts_with("configuration key webhook.secret_file: "), "{err}");
    }

    #[test]
    fn the_os_reason_is_given_once() {
        let err = error(&[
            ("NHACVIEC__MAIL__SMTP__USERNAME", "nv".into()),
            ("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", "/nonexistent/pw".into()),
        ]);
        assert_eq!(err.matches("os error").count(), 1, "{err}");
    }

    #[test]
    fn a_ca_file_that_is_not_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n").unwrap();
        let err = error(&[
            ("NHACVIEC__MAIL__SMTP__TLS", "starttls".into()),
            ("NHACVIEC__MAIL__SMTP__CA_FILE", ca.display().to_string()),
        ]);
        assert!(err.starts_with("configuration key mail.smtp.ca_file: "), "{err}");
    }

    #[test]
    fn a_template_that_does_not_parse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("digest.txt.j2"), "{% if %}").unwrap();
        let err = error(&[("NHACVIEC__MAIL__TEMPLATES_DIR", dir.path().display().to_string())]);
        assert!(err.starts_with("configuration key mail.templates_dir: template digest.txt.j2"), "{err}");
    }

    #[test]
    fn a_password_without_tls_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "secret\n").unwrap();
        let env = [
            ("NHACVIEC__MAIL__SMTP__USERNAME", "nv".to_string()),
            ("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", password.display().to_string()),
        ];
        let warnings = preflight(&config(&env), at()).unwrap().warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "mail.smtp.tls");
        assert!(warnings[0].message.contains("in clear"), "{}", warnings[0]);
        assert!(!warnings[0].message.contains("secret"));

        let mut env = env.to_vec();
        env.push(("NHACVIEC__MAIL__SMTP__TLS", "starttls".into()));
        assert_eq!(preflight(&config(&env), at()).unwrap().warnings, []);
    }
}
