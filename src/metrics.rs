//! Metrics: in-process counters fed by the daemon (scan results from the scheduler, message
//! outcomes from delivery) plus a snapshot of the outbox read from the store at scrape time,
//! rendered as Prometheus text (exposition format 0.0.4, by the `prometheus-client` crate) for
//! `/metrics`. Counters only grow for the life of the process; the outbox numbers are gauges
//! read fresh on every scrape.
//! It also holds the two states `/healthz` reports besides the database: why the last scan
//! failed, and why delivery is blocked, each until it clears.

use crate::store::OutboxCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Kinds of message, for [`Metrics::declare_channel`].
pub const KINDS: [&str; 3] = ["reminder", "digest", "report"];
/// What became of a message, for [`Metrics::declare_channel`]. `server_error`: the server
/// was unreachable or misconfigured (TLS, AUTH), which is not the recipient's fault.
pub const OUTCOMES: [&str; 5] = ["sent", "retry", "dead", "superseded", "server_error"];

/// Statuses a notice can have in the store; reported as 0 when none are in that state so a
/// series does not vanish from Prometheus when its count drops to zero.
const NOTICE_STATUSES: [&str; 5] = ["pending", "queued", "sent", "dead", "superseded"];
const MESSAGE_STATUSES: [&str; 3] = ["queued", "sent", "dead"];

/// The outbox as counted by the store at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSnapshot {
    /// Notices by status.
    pub notices: Vec<(String, i64)>,
    /// Messages by status.
    pub messages: Vec<(String, i64)>,
    /// Messages given up as dead.
    pub dead_letters: i64,
}

impl OutboxSnapshot {
    /// From [`crate::store::Store::status_report`]'s counts: every known status present
    /// (zero when empty), and the dead letters taken from the messages' `dead` count, so
    /// `status_report(0)` is enough.
    pub fn from_counts(counts: &OutboxCounts) -> OutboxSnapshot {
        let messages = with_known(&counts.messages, &MESSAGE_STATUSES);
        let dead_letters = messages.iter().find(|(status, _)| status == "dead").map_or(0, |(_, n)| *n);
        OutboxSnapshot { notices: with_known(&counts.notices, &NOTICE_STATUSES), messages, dead_letters }
    }
}

fn with_known(rows: &[(String, i64)], known: &[&str]) -> Vec<(String, i64)> {
    let mut all: BTreeMap<String, i64> = known.iter().map(|s| (s.to_string(), 0)).collect();
    for (status, n) in rows {
        *all.entry(status.clone()).or_insert(0) += n;
    }
    all.into_iter().collect()
}

/// Process-wide counters; share one behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (kind, channel, outcome) → count. A map rather than atomics because the label sets
    /// are open-ended (channels come from configuration); it is touched once per message.
    messages: Mutex<BTreeMap<(String, String, String), u64>>,
    scans_ok: AtomicU64,
    scans_error: AtomicU64,
    /// f64 bits of the last scan's duration in seconds; meaningful once `scanned` is set.
    last_scan_seconds: AtomicU64,
    scanned: AtomicBool,
    /// Unix seconds of the last successful scan; meaningful once `succeeded` is set.
    last_success: AtomicI64,
    succeeded: AtomicBool,
    /// Why the last scan failed; `None` once one succeeds.
    scan_failure: Mutex<Option<String>>,
    /// Why delivery is paused as a whole (the server unreachable or misconfigured).
    delivery_blocked: Mutex<Option<String>>,
    /// Per source: its runs by result, rows applied and rejected, last successful run.
    sources: Mutex<BTreeMap<String, SourceCounts>>,
}

/// One source's counters.
#[derive(Debug, Clone, Default)]
struct SourceCounts {
    runs: BTreeMap<&'static str, u64>,
    applied: u64,
    rejected: u64,
    last_success: Option<i64>,
}

/// The results a source run can have.
const SOURCE_RESULTS: [&str; 4] = ["ok", "unchanged", "refused", "failed"];

/// The reason a failed scan shows when nothing named it.
const UNNAMED_SCAN_FAILURE: &str = "the last scan failed";

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts one message finished by delivery. `kind` is reminder | digest | report;
    /// `outcome` is sent | retry | dead | superseded | server_error.
    pub fn record_message(&self, kind: &str, channel: &str, outcome: &str) {
        let mut messages = self.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *messages.entry((kind.to_string(), channel.to_string(), outcome.to_string())).or_insert(0) += 1;
    }

    /// Makes every kind × outcome series of `channel` exist at 0, so the first message of
    /// each shows up in `rate()` / `increase()` instead of being the series' first sample.
    pub fn declare_channel(&self, channel: &str) {
        let mut messages = self.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for kind in KINDS {
            for outcome in OUTCOMES {
                messages.entry((kind.to_string(), channel.to_string(), outcome.to_string())).or_insert(0);
            }
        }
    }

    /// Records a finished scan: its duration, and when `ok`, the wall-clock time it ended
    /// (which also clears the failure). A failed scan counts as failed until one succeeds;
    /// name why with [`Metrics::set_scan_failed`] (before this call, so no reader sees the
    /// failure unnamed).
    pub fn record_scan(&self, duration: Duration, finished_unix: i64, ok: bool) {
        self.last_scan_seconds.store(duration.as_secs_f64().to_bits(), Ordering::Relaxed);
        self.scanned.store(true, Ordering::Release);
        let mut failure = lock(&self.scan_failure);
        if ok {
            self.scans_ok.fetch_add(1, Ordering::Relaxed);
            self.last_success.store(finished_unix, Ordering::Relaxed);
            self.succeeded.store(true, Ordering::Release);
            *failure = None;
        } else {
            self.scans_error.fetch_add(1, Ordering::Relaxed);
            failure.get_or_insert_with(|| UNNAMED_SCAN_FAILURE.to_string());
        }
    }

    /// Makes a source's series exist at 0 from the start.
    pub fn declare_source(&self, source: &str) {
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = sources.entry(source.to_string()).or_default();
        for result in SOURCE_RESULTS {
            counts.runs.entry(result).or_insert(0);
        }
    }

    /// Counts one finished run of `source`: its result (ok, unchanged, refused, failed), its
    /// rows applied and rejected, and, when it applied, the time it ended.
    pub fn record_source_run(&self, source: &str, result: &str, applied: u64, rejected: u64, finished_unix: i64) {
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = sources.entry(source.to_string()).or_default();
        if let Some(result) = SOURCE_RESULTS.iter().find(|r| **r == result) {
            *counts.runs.entry(result).or_insert(0) += 1;
        }
        counts.applied += applied;
        counts.rejected += rejected;
        if matches!(result, "ok" | "unchanged") {
            counts.last_success = Some(finished_unix);
        }
    }

    /// Why the last scan failed (`Some`), or that it did not (`None`).
    pub fn set_scan_failed(&self, reason: Option<String>) {
        *lock(&self.scan_failure) = reason;
    }

    /// Why the last scan failed, if it did.
    pub fn scan_failed(&self) -> Option<String> {
        lock(&self.scan_failure).clone()
    }

    /// Delivery paused as a whole, and why (the SMTP server unreachable, TLS or AUTH
    /// refused …), or resumed (`None`). /healthz answers 503 with the reason meanwhile.
    pub fn set_delivery_blocked(&self, reason: Option<String>) {
        *lock(&self.delivery_blocked) = reason;
    }

    /// Why delivery is paused, if it is.
    pub fn delivery_blocked(&self) -> Option<String> {
        lock(&self.delivery_blocked).clone()
    }

    /// Unix seconds when the last successful scan ended, if one has.
    pub fn last_successful_scan(&self) -> Option<i64> {
        self.succeeded.load(Ordering::Acquire).then(|| self.last_success.load(Ordering::Relaxed))
    }

    /// Everything, in Prometheus text format 0.0.4.
    pub fn render(&self, outbox: &OutboxSnapshot) -> String {
        self.render_with(Some(outbox))
    }

    /// The in-process counters alone, for when the database cannot be counted: the outbox
    /// families are left out rather than reported as zero, which would be a lie.
    pub fn render_without_outbox(&self) -> String {
        self.render_with(None)
    }

    fn render_with(&self, outbox: Option<&OutboxSnapshot>) -> String {
        let scrape = Scrape {
            messages: self.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            outbox: outbox.cloned(),
            scan_seconds: self
                .scanned
                .load(Ordering::Acquire)
                .then(|| f64::from_bits(self.last_scan_seconds.load(Ordering::Relaxed))),
            scans_ok: self.scans_ok.load(Ordering::Relaxed),
            scans_error: self.scans_error.load(Ordering::Relaxed),
            last_success: self.last_successful_scan(),
            delivery_blocked: self.delivery_blocked().is_some(),
            sources: self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// A poisoned lock still holds a usable value here: an `Option<String>` cannot be left
/// half-written.
fn lock(mutex: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one scrape reports, read from [`Metrics`] (and the store) when it starts. A collector
/// rather than the crate's own counter and gauge types, so families keep their order, series
/// keep their label order, and a family can be absent (the outbox without a database) or have
/// no sample yet (no scan so far).
#[derive(Debug)]
struct Scrape {
    messages: BTreeMap<(String, String, String), u64>,
    outbox: Option<OutboxSnapshot>,
    scan_seconds: Option<f64>,
    scans_ok: u64,
    scans_error: u64,
    last_success: Option<i64>,
    delivery_blocked: bool,
    sources: BTreeMap<String, SourceCounts>,
}

/// A gauge in whole numbers when it is one (`2`, as before, rather than the crate's `2.0`).
fn seconds_gauge(seconds: f64) -> Box<dyn EncodeMetric> {
    if seconds.fract() == 0.0 && seconds.abs() < 1e15 {
        Box::new(ConstGauge::new(seconds as i64))
    } else {
        Box::new(ConstGauge::new(seconds))
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Counters are named without `_total`: the encoder appends it.
        let mut family = encoder.encode_descriptor(
            "nhacviec_messages",
            "Messages finished by delivery, by kind (reminder, digest, report), channel and outcome (sent, retry, dead, superseded, server_error: the server was unreachable or misconfigured).",
            None,
            MetricType::Counter,
        )?;
        for ((kind, channel, outcome), n) in &self.messages {
            let labels = [("kind", kind.as_str()), ("channel", channel.as_str()), ("outcome", outcome.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }

        let up = encoder.encode_descriptor(
            "nhacviec_database_up",
            "1 when the database answered this scrape's outbox count, else 0 (and the outbox families are absent).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.outbox.is_some())).encode(up)?;

        if let Some(outbox) = &self.outbox {
            let mut family = encoder.encode_descriptor(
                "nhacviec_outbox_notices",
                "Notices in the outbox by status.",
                None,
                MetricType::Gauge,
            )?;
            for (status, n) in &outbox.notices {
                ConstGauge::new(*n).encode(family.encode_family(&[("status", status.as_str())])?)?;
            }
            let mut family = encoder.encode_descriptor(
                "nhacviec_outbox_messages",
                "Messages in the outbox by status.",
                None,
                MetricType::Gauge,
            )?;
            for (status, n) in &outbox.messages {
                ConstGauge::new(*n).encode(family.encode_family(&[("status", status.as_str())])?)?;
            }
            let dead = encoder.encode_descriptor(
                "nhacviec_dead_letters",
                "Messages given up after their last attempt; see `nhacviec status`.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(outbox.dead_letters).encode(dead)?;
        }

        let duration = encoder.encode_descriptor(
            "nhacviec_scan_duration_seconds",
            "How long the last scan (plan, record, deliver) took, whether or not it succeeded.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(seconds) = self.scan_seconds {
            seconds_gauge(seconds).encode(duration)?;
        }

        let mut scans = encoder.encode_descriptor(
            "nhacviec_scans",
            "Scans finished since the process started, by result.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.scans_ok).encode(scans.encode_family(&[("result", "ok")])?)?;
        ConstCounter::new(self.scans_error).encode(scans.encode_family(&[("result", "error")])?)?;

        let last = encoder.encode_descriptor(
            "nhacviec_last_successful_scan_timestamp_seconds",
            "Unix time when the last successful scan ended; absent until one has.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(at) = self.last_success {
            ConstGauge::new(at).encode(last)?;
        }

        let blocked = encoder.encode_descriptor(
            "nhacviec_delivery_blocked",
            "1 while delivery is paused because the server is unreachable or misconfigured (the reason is on /healthz), else 0.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.delivery_blocked)).encode(blocked)?;
        self.encode_sources(&mut encoder)
    }
}

impl Scrape {
    fn encode_sources(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.sources.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "nhacviec_source_runs",
            "Runs of each source, by result (ok, unchanged: skipped by content hash or HTTP 304, refused, failed).",
            None,
            MetricType::Counter,
        )?;
        for (source, counts) in &self.sources {
            for (result, n) in &counts.runs {
                ConstCounter::new(*n)
                    .encode(family.encode_family(&[("source", source.as_str()), ("result", *result)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "nhacviec_source_rows",
            "Rows of each source applied or rejected (a rejected row keeps the directive as it was).",
            None,
            MetricType::Counter,
        )?;
        for (source, counts) in &self.sources {
            for (outcome, n) in [("applied", counts.applied), ("rejected", counts.rejected)] {
                ConstCounter::new(n)
                    .encode(family.encode_family(&[("source", source.as_str()), ("outcome", outcome)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "nhacviec_source_last_success_timestamp_seconds",
            "Unix time the source's last applied (or unchanged) run ended.",
            None,
            MetricType::Gauge,
        )?;
        for (source, counts) in &self.sources {
            if let Some(at) = counts.last_success {
                ConstGauge::new(at).encode(family.encode_family(&[("source", source.as_str())])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> OutboxSnapshot {
        OutboxSnapshot {
            notices: vec![("pending".into(), 2), ("sent".into(), 5)],
            messages: vec![("dead".into(), 1), ("sent".into(), 3)],
            dead_letters: 1,
        }
    }

    #[test]
    fn a_small_case_renders_exactly_as_prometheus_text() {
        let metrics = Metrics::new();
        metrics.record_message("reminder", "email", "sent");
        metrics.record_message("reminder", "email", "sent");
        metrics.record_message("digest", "email", "retry");
        metrics.record_scan(Duration::from_millis(250), 1_662_339_600, true);
        metrics.record_scan(Duration::from_millis(1500), 1_662_340_500, false);

        let expected = "\
# HELP nhacviec_messages_total Messages finished by delivery, by kind (reminder, digest, report), channel and outcome (sent, retry, dead, superseded, server_error: the server was unreachable or misconfigured).
# TYPE nhacviec_messages_total counter
nhacviec_messages_total{kind=\"digest\",channel=\"email\",outcome=\"retry\"} 1
nhacviec_messages_total{kind=\"reminder\",channel=\"email\",outcome=\"sent\"} 2
# HELP nhacviec_database_up 1 when the database answered this scrape's outbox count, else 0 (and the outbox families are absent).
# TYPE nhacviec_database_up gauge
nhacviec_database_up 1
# HELP nhacviec_outbox_notices Notices in the outbox by status.
# TYPE nhacviec_outbox_notices gauge
nhacviec_outbox_notices{status=\"pending\"} 2
nhacviec_outbox_notices{status=\"sent\"} 5
# HELP nhacviec_outbox_messages Messages in the outbox by status.
# TYPE nhacviec_outbox_messages gauge
nhacviec_outbox_messages{status=\"dead\"} 1
nhacviec_outbox_messages{status=\"sent\"} 3
# HELP nhacviec_dead_letters Messages given up after their last attempt; see `nhacviec status`.
# TYPE nhacviec_dead_letters gauge
nhacviec_dead_letters 1
# HELP nhacviec_scan_duration_seconds How long the last scan (plan, record, deliver) took, whether or not it succeeded.
# TYPE nhacviec_scan_duration_seconds gauge
nhacviec_scan_duration_seconds 1.5
# HELP nhacviec_scans_total Scans finished since the process started, by result.
# TYPE nhacviec_scans_total counter
nhacviec_scans_total{result=\"ok\"} 1
nhacviec_scans_total{result=\"error\"} 1
# HELP nhacviec_last_successful_scan_timestamp_seconds Unix time when the last successful scan ended; absent until one has.
# TYPE nhacviec_last_successful_scan_timestamp_seconds gauge
nhacviec_last_successful_scan_timestamp_seconds 1662339600
# HELP nhacviec_delivery_blocked 1 while delivery is paused because the server is unreachable or misconfigured (the reason is on /healthz), else 0.
# TYPE nhacviec_delivery_blocked gauge
nhacviec_delivery_blocked 0
";
        assert_eq!(metrics.render(&snapshot()), expected);
    }

    #[test]
    fn counters_move_when_messages_and_scans_are_recorded() {
        let metrics = Metrics::new();
        let before = metrics.render(&OutboxSnapshot::default());
        assert!(!before.contains("nhacviec_messages_total{"));
        assert!(before.contains("nhacviec_scans_total{result=\"ok\"} 0\n"));
        assert!(!before.contains("\nnhacviec_scan_duration_seconds "));
        assert!(!before.contains("\nnhacviec_last_successful_scan_timestamp_seconds "));
        assert_eq!(metrics.last_successful_scan(), None);

        metrics.record_message("reminder", "email", "dead");
        metrics.record_scan(Duration::from_secs(2), 1_700_000_000, true);
        let after = metrics.render(&OutboxSnapshot::default());
        assert!(after.contains("nhacviec_messages_total{kind=\"reminder\",channel=\"email\",outcome=\"dead\"} 1\n"));
        assert!(after.contains("nhacviec_scans_total{result=\"ok\"} 1\n"));
        assert!(after.contains("\nnhacviec_scan_duration_seconds 2\n"));
        assert!(after.contains("\nnhacviec_last_successful_scan_timestamp_seconds 1700000000\n"));
        assert_eq!(metrics.last_successful_scan(), Some(1_700_000_000));
    }

    #[test]
    fn a_failed_scan_does_not_move_the_last_successful_scan() {
        let metrics = Metrics::new();
        metrics.record_scan(Duration::from_secs(1), 100, true);
        metrics.record_scan(Duration::from_secs(1), 200, false);
        assert_eq!(metrics.last_successful_scan(), Some(100));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.record_message("reminder", "we\"b\\ho\nok", "sent");
        let text = metrics.render_without_outbox();
        assert!(text.contains(r#"channel="we\"b\\ho\nok""#), "{text}");
    }

    #[test]
    fn without_the_database_the_outbox_families_are_left_out() {
        let metrics = Metrics::new();
        let text = metrics.render_without_outbox();
        assert!(text.contains("nhacviec_database_up 0\n"));
        assert!(!text.contains("nhacviec_outbox_"));
        assert!(!text.contains("nhacviec_dead_letters"));
        assert!(text.contains("# TYPE nhacviec_scans_total counter\n"));
    }

    #[test]
    fn a_declared_channel_has_every_series_at_zero() {
        let metrics = Metrics::new();
        metrics.declare_channel("email");
        metrics.record_message("digest", "email", "sent");
        let text = metrics.render_without_outbox();
        let series = text.lines().filter(|l| l.starts_with("nhacviec_messages_total{")).count();
        assert_eq!(series, KINDS.len() * OUTCOMES.len());
        assert!(text.contains("nhacviec_messages_total{kind=\"report\",channel=\"email\",outcome=\"superseded\"} 0\n"));
        assert!(text.contains("nhacviec_messages_total{kind=\"digest\",channel=\"email\",outcome=\"sent\"} 1\n"));
    }

    #[test]
    fn the_snapshot_from_store_counts_names_every_status_and_the_dead_letters() {
        let counts = OutboxCounts {
            notices: vec![("pending".into(), 4)],
            messages: vec![("dead".into(), 2), ("queued".into(), 1)],
        };
        let snapshot = OutboxSnapshot::from_counts(&counts);
        assert_eq!(snapshot.dead_letters, 2);
        assert_eq!(
            snapshot.notices,
            vec![
                ("dead".to_string(), 0),
                ("pending".to_string(), 4),
                ("queued".to_string(), 0),
                ("sent".to_string(), 0),
                ("superseded".to_string(), 0),
            ]
        );
        assert_eq!(
            snapshot.messages,
            vec![("dead".to_string(), 2), ("queued".to_string(), 1), ("sent".to_string(), 0)]
        );
    }

    #[test]
    fn a_failed_scan_is_remembered_until_one_succeeds() {
        let metrics = Metrics::new();
        assert_eq!(metrics.scan_failed(), None);
        metrics.record_scan(Duration::from_secs(1), 100, false);
        assert_eq!(metrics.scan_failed().as_deref(), Some("the last scan failed"));
        metrics.set_scan_failed(Some("disk full".into()));
        metrics.record_scan(Duration::from_secs(1), 200, false);
        assert_eq!(metrics.scan_failed().as_deref(), Some("disk full"));
        metrics.record_scan(Duration::from_secs(1), 300, true);
        assert_eq!(metrics.scan_failed(), None);
    }

    #[test]
    fn blocked_delivery_shows_as_a_gauge_until_it_clears() {
        let metrics = Metrics::new();
        assert!(metrics.render_without_outbox().contains("\nnhacviec_delivery_blocked 0\n"));
        metrics.set_delivery_blocked(Some("smtp.example:587: TLS handshake failed".into()));
        assert_eq!(metrics.delivery_blocked().as_deref(), Some("smtp.example:587: TLS handshake failed"));
        assert!(metrics.render_without_outbox().contains("\nnhacviec_delivery_blocked 1\n"));
        metrics.set_delivery_blocked(None);
        assert_eq!(metrics.delivery_blocked(), None);
        assert!(metrics.render_without_outbox().contains("\nnhacviec_delivery_blocked 0\n"));
    }

    #[test]
    fn a_declared_channel_exports_server_errors_at_zero() {
        let metrics = Metrics::new();
        metrics.declare_channel("email");
        let text = metrics.render_without_outbox();
        for kind in KINDS {
            let line =
                format!("nhacviec_messages_total{{kind=\"{kind}\",channel=\"email\",outcome=\"server_error\"}} 0\n");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
