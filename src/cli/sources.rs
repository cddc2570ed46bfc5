//! The command line ← sources: `sync`, `sources`, `history` and `import --source`, each a thin
//! shell over [`crate::source`] and the store, printing for people or (`--json`) for scripts.

use crate::app::App;
use crate::config::{Config, Source};
use crate::source::{sync_source, SyncReport};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn chosen<'a>(config: &'a Config, names: &[String]) -> anyhow::Result<Vec<&'a Source>> {
    if config.sources.is_empty() {
        bail!("no [[sources]] are configured");
    }
    for name in names {
        if !config.sources.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            bail!("no source {name:?} (configured: {})", known.join(", "));
        }
    }
    Ok(config.sources.iter().filter(|s| names.is_empty() || names.contains(&s.name)).collect())
}

fn print_report(out: &mut impl Write, report: &SyncReport) -> std::io::Result<()> {
    let verb = if report.dry_run { "would apply" } else { "applied" };
    writeln!(
        out,
        "{}: {} — {} row(s) read, {verb} {}, rejected {}, {} directive(s) changed ({} cancelled)",
        report.source,
        report.result,
        report.rows_read,
        report.rows_applied,
        report.rows_rejected,
        report.changed,
        report.cancelled
    )?;
    for change in &report.changes {
        writeln!(
            out,
            "  {} {}: {} → {}",
            change.code,
            change.field,
            change.old_value.as_deref().unwrap_or("∅"),
            change.new_value.as_deref().unwrap_or("∅")
        )?;
    }
    for problem in &report.problems {
        writeln!(out, "  ! {problem}")?;
    }
    Ok(())
}

/// `nhacviec sync [NAME…] [--dry-run]`.
pub async fn sync(config: Arc<Config>, names: &[String], dry_run: bool) -> anyhow::Result<()> {
    let app = App::open(config.clone()).await?;
    let calendar = app.calendar().await?;
    let mut out = std::io::stdout().lock();
    let mut refused = Vec::new();
    for source in chosen(&config, names)? {
        let report = sync_source(&app.store, source, &calendar, &app.clock, dry_run).await?;
        print_report(&mut out, &report)?;
        crate::source::alert::tell_admin(&config, &report, &app.clock).await;
        if report.refused() {
            refused.push(source.name.clone());
        }
    }
    if !refused.is_empty() {
        bail!("refused, nothing changed: {}", refused.join(", "));
    }
    Ok(())
}

/// `nhacviec import --source NAME FILE…`: the files through that source's mapping.
pub async fn import_through(config: Arc<Config>, name: &str, files: &[PathBuf]) -> anyhow::Result<()> {
    let source = chosen(&config, &[name.to_string()])?.into_iter().next().context("no such source")?;
    let mut one_off = source.clone();
    one_off.settings.kind = crate::config::SourceKind::File;
    // One file at a time, each a one-off "changes" run: nothing is cancelled for being absent.
    one_off.settings.mode = crate::config::SyncMode::Changes;
    let app = App::open(config.clone()).await?;
    let calendar = app.calendar().await?;
    let mut out = std::io::stdout().lock();
    let mut refused = false;
    for file in files {
        one_off.settings.path = file.display().to_string();
        // The file's own format where its extension says it (a CSV through an xlsx source's mapping).
        let extension = file.extension().and_then(|e| e.to_str()).map(str::to_lowercase);
        one_off.format = match extension.as_deref() {
            Some("xlsx") => Some(crate::config::SourceFormat::Xlsx),
            Some("csv") => Some(crate::config::SourceFormat::Csv),
            Some("json") => Some(crate::config::SourceFormat::Json),
            _ => source.format,
        };
        let report = crate::source::sync::sync_file(&app.store, &one_off, &calendar, &app.clock).await?;
        print_report(&mut out, &report)?;
        refused |= report.refused();
    }
    if refused {
        bail!("refused, nothing changed");
    }
    Ok(())
}

/// `nhacviec sources [--json]`.
pub async fn sources(config: Arc<Config>, json: bool) -> anyhow::Result<()> {
    let app = App::open(config.clone()).await?;
    let runs = app.store.source_runs().await?;
    let now = app.clock.now_in(config.timezone);
    let mut out = std::io::stdout().lock();
    let rows: Vec<serde_json::Value> = config
        .sources
        .iter()
        .map(|s| {
            let run = runs.iter().find(|r| r.source == s.name);
            let next = s.cron.as_ref().and_then(|c| c.find_next_occurrence(&now, false).ok()).map(|t| t.to_rfc3339());
            serde_json::json!({
                "name": s.name, "kind": s.kind.as_str(), "entity": s.entity.as_str(), "mode": s.mode.as_str(),
                "schedule": s.schedule, "next_run": next, "last_run": run,
            })
        })
        .collect();
    if json {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
        return Ok(());
    }
    for row in &rows {
        let run = &row["last_run"];
        let last = if run.is_null() {
            "never run".to_string()
        } else {
            format!(
                "last run {}: {} — read {}, applied {}, rejected {}, changed {}",
                chrono::DateTime::from_timestamp(run["finished_at"].as_i64().unwrap_or(0), 0)
                    .map(|t| t.with_timezone(&config.timezone).format("%d/%m/%Y %H:%M").to_string())
                    .unwrap_or_default(),
                run["result"].as_str().unwrap_or(""),
                run["rows_read"],
                run["rows_applied"],
                run["rows_rejected"],
                run["changed"]
            )
        };
        let next = row["next_run"].as_str().map_or("on demand (nhacviec sync)".to_string(), |t| format!("next {t}"));
        writeln!(
            out,
            "{} ({}, {}): {last}; {next}",
            row["name"].as_str().unwrap_or(""),
            row["kind"].as_str().unwrap_or(""),
            row["mode"].as_str().unwrap_or("")
        )?;
        for problem in run["problems"].as_str().unwrap_or("").lines().filter(|l| !l.is_empty()).take(20) {
            writeln!(out, "  ! {problem}")?;
        }
    }
    Ok(())
}

/// `nhacviec history CODE [--json]`: changes and notices, in time order.
pub async fn history(config: Arc<Config>, code: &str, json: bool) -> anyhow::Result<()> {
    let app = App::open(config.clone()).await?;
    let changes = app.store.history_of(code).await?;
    let notices = app.store.notices_of(code).await?;
    let current = app.store.directives_by_code(&[code.to_string()]).await?;
    let Some(directive) = current.first() else {
        bail!("no directive {code:?}");
    };
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({"directive": directive, "changes": changes, "notices": notices});
        writeln!(out, "{}", serde_json::to_string(&value)?)?;
        return Ok(());
    }
    let tz = config.timezone;
    let when = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string())
            .unwrap_or_default()
    };
    writeln!(
        out,
        "{} – {} ({}, hạn {})",
        directive.code,
        directive.title,
        directive.status,
        directive.due_on.map_or("chưa có".into(), |d| d.to_string())
    )?;
    let mut events: Vec<(i64, String)> = Vec::new();
    for c in &changes {
        let label = if c.is_extension() { "gia hạn (extension)" } else { c.field.as_str() };
        events.push((
            c.at,
            format!(
                "{label}: {} → {} ({})",
                c.old_value.as_deref().unwrap_or("∅"),
                c.new_value.as_deref().unwrap_or("∅"),
                c.origin
            ),
        ));
    }
    for n in &notices {
        let state = match (n.status.as_str(), n.attempts) {
            ("queued", Some(a)) if a > 0 => "retried".to_string(),
            ("pending", _) | ("queued", _) => "planned".to_string(),
            (status, _) => status.to_string(),
        };
        let reason = n.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default();
        events
            .push((n.planned_at, format!("{} {} → {} ({}): {state}{reason}", n.kind, n.stage, n.recipient, n.channel)));
    }
    events.sort_by_key(|(t, _)| *t);
    for (t, line) in events {
        writeln!(out, "  {}  {line}", when(t))?;
    }
    Ok(())
}
