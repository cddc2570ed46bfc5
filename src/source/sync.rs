//! Sources ← sync: one run of one source. Valid rows apply, a rejected row keeps the
//! directive as it was and is reported by source, sheet, row, field, value and reason; a
//! source that cannot be read changes nothing; a snapshot with no rows, or one that would
//! cancel more than `max_missing_percent` of the source's live directives, is refused. One
//! run is one transaction, and an unchanged source (same content hash) is skipped.

use super::fetch::{fetch, Part};
use super::map::{map_rows, origin, Directory};
use super::table;
use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::config::{Entity, OnMissing, Source, SyncMode};
use crate::domain::{Directive, Status};
use crate::import::{read_rows, ImportBatch, ImportIssue, KnownCodes, SourceRow};
use crate::store::{HistoryRow, SourceRun, Store};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// What one run did, or would do (`--dry-run`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub source: String,
    /// `ok`, `unchanged`, `refused` or `failed`.
    pub result: String,
    pub rows_read: usize,
    pub rows_applied: usize,
    pub rows_rejected: usize,
    /// Directives created, changed or cancelled.
    pub changed: usize,
    pub cancelled: usize,
    /// Every change, as the history records it.
    pub changes: Vec<HistoryRow>,
    /// Rejected rows and header problems, or why the run was refused or failed.
    pub problems: Vec<String>,
    pub dry_run: bool,
    /// Failed or refused runs in a row, this one included (0 after one that applied).
    pub failures_in_row: i64,
    /// The same, before this run.
    pub failures_before: i64,
}

impl SyncReport {
    /// Takes a run's end into the report: what it fetched, or why it was refused or failed
    /// (first among the problems). A database error is the caller's.
    fn settle(
        &mut self,
        outcome: Result<super::fetch::Content, Stop>,
    ) -> anyhow::Result<Option<super::fetch::Content>> {
        let (result, reason) = match outcome {
            Ok(fetched) => return Ok(Some(fetched)),
            Err(Stop::Refused(reason)) => ("refused", reason),
            Err(Stop::Failed(reason)) => ("failed", reason),
            Err(Stop::Store(e)) => return Err(e),
        };
        self.result = result.into();
        self.problems.insert(0, reason);
        Ok(None)
    }

    /// 0 when the run applied (or skipped) its valid rows; 1 when it was refused or failed.
    pub fn refused(&self) -> bool {
        matches!(self.result.as_str(), "refused" | "failed")
    }
}

/// Runs `source` once at the clock's now.
pub async fn sync_source(
    store: &Store,
    source: &Source,
    calendar: &Calendar,
    clock: &Clock,
    dry_run: bool,
) -> anyhow::Result<SyncReport> {
    let started = clock.now().timestamp();
    let previous = store.source_runs().await?.into_iter().find(|r| r.source == source.name);
    let mut report = SyncReport { source: source.name.clone(), dry_run, ..SyncReport::default() };
    let outcome = run(store, source, calendar, clock, dry_run, previous.as_ref(), &mut report).await;
    let fetched = report.settle(outcome)?;
    if !dry_run {
        let failures = if report.refused() { previous.as_ref().map_or(0, |p| p.failures_in_row) + 1 } else { 0 };
        report.failures_in_row = failures;
        report.failures_before = previous.as_ref().map_or(0, |p| p.failures_in_row);
        let finished = clock.now().timestamp();
        let last_success =
            if report.refused() { previous.as_ref().and_then(|p| p.last_success_at) } else { Some(finished) };
        let (hash, etag, last_modified) = match fetched {
            Some(f) => (Some(f.hash), f.etag, f.last_modified),
            None => (None, None, None),
        };
        // An unchanged run keeps the counts of the run that applied the content.
        let counts = match (report.result.as_str(), previous.as_ref()) {
            ("unchanged", Some(p)) => (p.rows_read, p.rows_applied, p.rows_rejected),
            _ => (count(report.rows_read), count(report.rows_applied), count(report.rows_rejected)),
        };
        store
            .record_source_run(&SourceRun {
                source: source.name.clone(),
                started_at: started,
                finished_at: finished,
                result: report.result.clone(),
                rows_read: counts.0,
                rows_applied: counts.1,
                rows_rejected: counts.2,
                changed: count(report.changed),
                content_hash: hash,
                etag,
                last_modified,
                failures_in_row: failures,
                last_success_at: last_success,
                problems: report.problems.join("\n"),
            })
            .await?;
    }
    log(&report);
    Ok(report)
}

/// A one-off file through a source's mapping (`import --source`): applied as a sync would
/// apply it, never skipped as unchanged, not recorded as the source's run.
pub async fn sync_file(
    store: &Store,
    source: &Source,
    calendar: &Calendar,
    clock: &Clock,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport { source: source.name.clone(), ..SyncReport::default() };
    let outcome = run(store, source, calendar, clock, false, None, &mut report).await;
    report.settle(outcome)?;
    log(&report);
    Ok(report)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn log(report: &SyncReport) {
    let problems = report.problems.len();
    match report.result.as_str() {
        "ok" | "unchanged" => tracing::info!(
            source = %report.source, result = %report.result, read = report.rows_read, applied = report.rows_applied,
            rejected = report.rows_rejected, changed = report.changed, problems, "source synced"
        ),
        _ => tracing::error!(
            source = %report.source, result = %report.result, reason = %report.problems.first().map_or("", String::as_str),
            "source not synced: nothing was changed"
        ),
    }
    for problem in report.problems.iter().skip(usize::from(report.refused())).take(50) {
        tracing::warn!(source = %report.source, "{problem}");
    }
}

enum Stop {
    Refused(String),
    Failed(String),
    Store(anyhow::Error),
}

impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Stop {
        Stop::Store(e.into())
    }
}

/// The run itself; what it read (its hash and HTTP validators), for the run record.
async fn run(
    store: &Store,
    source: &Source,
    calendar: &Calendar,
    clock: &Clock,
    dry_run: bool,
    previous: Option<&SourceRun>,
    report: &mut SyncReport,
) -> Result<super::fetch::Content, Stop> {
    let mut content =
        fetch(source, previous).await.map_err(|e| Stop::Failed(format!("source {:?}: {e}", source.name)))?;
    let applied_before = previous.filter(|p| p.result == "ok" || p.result == "unchanged");
    let unchanged = content.not_modified
        || applied_before.is_some_and(|p| p.content_hash.as_deref() == Some(content.hash.as_str()));
    if unchanged && !dry_run {
        report.result = "unchanged".into();
        content.parts.clear();
        return Ok(content);
    }
    let phase = crate::clock::monotonic();
    let units = store.units().await?;
    let people = store.people().await?;
    let directory = Directory::new(&units, &people);
    let mut rows: Vec<SourceRow> = Vec::new();
    let mut file_name = format!("source {:?}", source.name);
    for part in std::mem::take(&mut content.parts) {
        let table = match part {
            Part::Table(table) => table,
            Part::Bytes { name, bytes } => {
                let format = source.format.ok_or_else(|| Stop::Failed("no format".into()))?;
                table::read(format, &bytes, &source.sheet)
                    .map_err(|e| Stop::Failed(format!("source {:?}: {name}: {e}", source.name)))?
            }
        };
        file_name = origin(source, &table);
        let (mapped, issues) = map_rows(source, table, &directory).map_err(|issue| Stop::Refused(issue.to_string()))?;
        report.problems.extend(issues.iter().map(ToString::to_string));
        rows.extend(mapped);
    }
    report.rows_read = rows.len();
    if source.mode == SyncMode::Snapshot && rows.is_empty() {
        return Err(Stop::Refused(format!(
            "source {:?}: a snapshot with no rows is refused (an empty or truncated export); nothing was changed",
            source.name
        )));
    }
    // A rejected row still counts as listed: a typo never cancels a directive.
    let listed: HashSet<String> =
        rows.iter().filter_map(|r| r.fields.get("code").and_then(|v| v.as_str()).map(str::to_string)).collect();
    let mapped_rejected = rows.iter().filter(|r| r.rejected).count();
    let known = KnownCodes {
        units: units.iter().map(|u| u.code.clone()).collect(),
        people: people.iter().map(|p| p.code.clone()).collect(),
    };
    tracing::debug!(source = %source.name, elapsed = ?phase.elapsed(), "read and mapped");
    // From here on the run reads and writes inside its transaction, after any other run of
    // the same source (another replica's) has committed.
    let mut import = store.begin_import().await?;
    import.lock_named(&format!("source {}", source.name)).await?;
    let mut current = HashMap::new();
    if source.entity == Entity::Directives {
        let codes: Vec<String> = listed.iter().cloned().collect();
        current = import.directives_in(&codes).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
        keep_left_out_fields(&current, &mut rows);
        tracing::debug!(source = %source.name, elapsed = ?phase.elapsed(), "left-out fields kept");
    }
    let (batch, issues) = read_rows(&file_name, source.entity.section(), rows, &known, calendar);
    let rejected_places: HashSet<&str> = issues.iter().map(|i| i.location.as_str()).collect();
    report.rows_rejected = mapped_rejected + rejected_places.len();
    report.problems.extend(issues.iter().map(ImportIssue::to_string));
    let now = clock.now().timestamp();
    tracing::debug!(source = %source.name, elapsed = ?phase.elapsed(), "validated");
    match source.entity {
        Entity::Units => {
            report.rows_applied = batch.units.len();
            import.units(&batch.units, now).await?;
        }
        Entity::People => {
            report.rows_applied = batch.people.len();
            import.people(&batch.people, now).await?;
        }
        Entity::Directives => {
            apply_directives(&mut import, source, batch, &current, &listed, clock, now, report).await?;
        }
    }
    report.result = "ok".into();
    if !dry_run {
        import.commit().await?;
    }
    tracing::debug!(source = %source.name, elapsed = ?phase.elapsed(), "applied");
    Ok(content)
}

/// A row that leaves a field out keeps the directive's current value of it: a source may
/// carry only the columns it knows (`code`, `status`, `completed_on` is enough).
fn keep_left_out_fields(current: &HashMap<String, Directive>, rows: &mut [SourceRow]) {
    for row in rows.iter_mut() {
        let Some(existing) = row.fields.get("code").and_then(|c| c.as_str()).and_then(|c| current.get(c)) else {
            continue;
        };
        let Ok(serde_json::Value::Object(values)) = serde_json::to_value(existing) else { continue };
        for (field, value) in values {
            if Directive::FIELDS.contains(&field.as_str()) && !value.is_null() {
                row.fields.entry(field).or_insert(value);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_directives(
    import: &mut crate::store::Importer,
    source: &Source,
    batch: ImportBatch,
    before: &HashMap<String, Directive>,
    listed: &HashSet<String>,
    clock: &Clock,
    now: i64,
    report: &mut SyncReport,
) -> Result<(), Stop> {
    let mut changed = Vec::new();
    let mut history = Vec::new();
    for directive in batch.directives {
        let diff = differences(before.get(&directive.code), &directive);
        if diff.is_empty() {
            continue;
        }
        for (field, old, new) in diff {
            history.push(HistoryRow {
                id: clock.new_id().to_string(),
                code: directive.code.clone(),
                field,
                old_value: old,
                new_value: new,
                origin: source.name.clone(),
                at: now,
            });
        }
        changed.push(directive);
    }
    report.rows_applied = listed.len().saturating_sub(report.rows_rejected);
    let mut cancelled = Vec::new();
    if source.mode == SyncMode::Snapshot && source.on_missing == OnMissing::Cancel {
        let live = import.live_codes_of(&source.name).await?;
        cancelled = live.iter().filter(|c| !listed.contains(*c)).cloned().collect::<Vec<_>>();
        let share = if live.is_empty() { 0.0 } else { cancelled.len() as f64 * 100.0 / live.len() as f64 };
        if share > source.max_missing_percent {
            return Err(Stop::Refused(format!(
                "source {:?}: the snapshot would cancel {} of its {} live directives ({share:.1}% > max_missing_percent {}); \
                 refused, nothing was changed",
                source.name,
                cancelled.len(),
                live.len(),
                source.max_missing_percent
            )));
        }
        for code in &cancelled {
            history.push(HistoryRow {
                id: clock.new_id().to_string(),
                code: code.clone(),
                field: "status".into(),
                old_value: None,
                new_value: Some(format!("{} (no longer listed by the source)", Status::Cancelled)),
                origin: source.name.clone(),
                at: now,
            });
        }
        import.cancel(&cancelled, now).await?;
    }
    import.directives_from(&changed, now, &source.name).await?;
    import.record_history(&history).await?;
    report.changed = changed.len() + cancelled.len();
    report.cancelled = cancelled.len();
    report.changes = history;
    Ok(())
}

/// Each field that differs, with the old and new value as text; a new directive is one
/// `created` entry.
pub fn differences(old: Option<&Directive>, new: &Directive) -> Vec<(String, Option<String>, Option<String>)> {
    let Some(old) = old else {
        return vec![("created".into(), None, Some(new.title.clone()))];
    };
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let text = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Directive::FIELDS
        .iter()
        .filter_map(|field| {
            let (was, now) = (text(a.get(*field)), text(b.get(*field)));
            (was != now).then(|| ((*field).to_string(), was, now))
        })
        .collect()
}
