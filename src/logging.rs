//! Logging set-up, before anything else runs: human-readable lines on a terminal, JSON when
//! configured, and under systemd (`JOURNAL_STREAM` set) plain lines carrying the journal's
//! `<N>` priority prefix, so `journalctl -p warning` works without a journald client library.
//! Message bodies and secrets are never logged at info level (callers log keys and ids).

use crate::config::Log;
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn init(log: &Log) {
    // RUST_LOG as given; otherwise `log.level` for nhacviec, and warnings only from the
    // libraries, whose info lines ("Job creator created", "Uninited") mean nothing to an
    // operator.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(quiet_libraries(&log.level)))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if log.format == crate::config::LogFormat::Json {
        builder.json().try_init()
    } else if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.event_format(JournalFormat).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
}

/// `level` (a level or a full filter) with the libraries held to warnings unless it names them.
fn quiet_libraries(level: &str) -> String {
    let mut filter = level.to_string();
    for library in ["tokio_cron_scheduler", "sqlx", "lettre", "hyper", "reqwest", "h2", "rustls"] {
        if !level.contains(library) {
            filter.push_str(&format!(",{library}=warn"));
        }
    }
    filter
}

/// `<3>scan failed error=…`: the priority prefix journald reads from a service's stderr
/// (SyslogLevelPrefix=yes, the default); no timestamp, since the journal adds its own.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
