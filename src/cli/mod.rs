//! The command line: parses arguments and runs one subcommand against the application.
//! Output formats here (`plan --json`, `status --json`) are a contract for scripts.

pub mod at;
pub mod sources;

use crate::app::App;
use crate::cli::at::parse_instant;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{Notice, Stage};
use crate::import::{read_files, KnownCodes};
use crate::plan::Snapshot;
use crate::report::render::DigestRenderer;
use crate::report::{audience_of, render_report, ReportInput};
use anyhow::{bail, Context};
use chrono::{DateTime, Datelike};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "nhacviec", version, about = "Nhắc việc: reminders, escalations and alarms for assigned directives")]
pub struct Cli {
    /// Configuration file (else $NHACVIEC_CONFIG, /etc/nhacviec/nhacviec.toml, config/nhacviec.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database schema.
    Migrate,
    /// Import units, people, directives and calendar days (JSON or CSV); all or nothing.
    Import {
        /// Read the files through this source's mapping (columns, values, date formats), row
        /// by row as a sync does, instead of nhacviec's own all-or-nothing format.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run sources now (all of them, or those named): valid rows apply, rejected rows are
    /// reported; exit 1 when a run was refused.
    Sync {
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Print what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Each source's last run: result, rows read, applied and rejected, next run.
    Sources {
        #[arg(long)]
        json: bool,
    },
    /// A directive's timeline: its changes, and every notice with its state.
    History {
        #[arg(value_name = "CODE")]
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a person's signed link to a directive's page (`{web.base_url}/r/{token}`), valid
    /// `web.link_days` from TIME (default now).
    Link {
        #[arg(long, value_name = "CODE")]
        person: String,
        #[arg(long, value_name = "CODE")]
        directive: String,
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Show what is owed at TIME and not yet recorded in the outbox.
    Plan {
        /// RFC 3339 instant (a time without offset is local to the agency); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One full cycle as if the clock read TIME: plan, record, deliver what the window allows.
    Tick {
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// The daemon: wake on the configured cron schedule and tick, until SIGTERM/SIGINT.
    Run {
        /// Start the daemon's clock at TIME instead of the system's, and let it run on from
        /// there: a rehearsal of a given day (cron still wakes it on the system's clock).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Notices and messages by state, and dead letters with their reasons.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and what it refers to (credential files, CA, templates,
    /// schedules), exactly as `run` does, and print it (secrets redacted).
    CheckConfig,
    /// Preview the weekly digest a leader (or the chief) gets at TIME, without sending it.
    Digest(Preview),
    /// Preview the monthly briefing report (báo cáo giao ban) for the month of TIME.
    Report(Preview),
    /// Send one test email now, bypassing the outbox.
    SendTest {
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
}

/// Whose report to preview, as of when, and where to write its HTML part.
#[derive(Debug, clap::Args)]
pub struct Preview {
    /// Person code of a block leader or the chief.
    #[arg(long, value_name = "CODE")]
    leader: String,
    /// The instant to preview at (default: now); a local time is read in the agency's zone.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Also write the HTML part to FILE (see scripts/render-digest-png.sh).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Runs the parsed command; errors carry the one-line reason main prints.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    match cli.command {
        Command::CheckConfig => check_config(&config),
        Command::Migrate => {
            App::open(config).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Import { source: None, files } => import(config, &files).await,
        Command::Import { source: Some(name), files } => {
            crate::cli::sources::import_through(config, &name, &files).await
        }
        Command::Sync { names, dry_run } => crate::cli::sources::sync(config, &names, dry_run).await,
        Command::Sources { json } => crate::cli::sources::sources(config, json).await,
        Command::History { code, json } => crate::cli::sources::history(config, &code, json).await,
        Command::Link { person, directive, at } => link(config, &person, &directive, at.as_deref()).await,
        Command::Plan { at, json } => plan(config, at.as_deref(), json).await,
        Command::Tick { at } => tick(config, at.as_deref()).await,
        Command::Run { at } => {
            let clock = match at {
                Some(text) => {
                    Clock::starting_at(parse_instant(&text, config.timezone).map_err(anyhow::Error::msg)?.to_utc())
                }
                None => Clock::system(),
            };
            crate::daemon::run(config, Arc::new(clock)).await
        }
        Command::Status { json } => status(config, json).await,
        Command::SendTest { to } => send_test(config, &to).await,
        Command::Digest(Preview { leader, at, html }) => preview(config, &leader, at.as_deref(), html, false).await,
        Command::Report(Preview { leader, at, html }) => preview(config, &leader, at.as_deref(), html, true).await,
    }
}

fn instant(config: &Config, at: Option<&str>) -> anyhow::Result<DateTime<Tz>> {
    match at {
        Some(text) => parse_instant(text, config.timezone).map_err(anyhow::Error::msg),
        None => Ok(Clock::system().now_in(config.timezone)),
    }
}

/// On stderr, for `plan`, `tick` and `status`: a database without directives owes nothing,
/// which is seldom what the operator meant.
async fn warn_if_empty(app: &App) -> anyhow::Result<()> {
    if !app.store.has_directives().await? {
        eprintln!(
            "warning: the database {} holds no directives yet: nothing is owed. Import them first, e.g. \
             nhacviec import examples/sample-agency.json examples/sample-directives.csv",
            crate::config::redact_url(&app.config.database.url)
        );
    }
    Ok(())
}

fn check_config(config: &Config) -> anyhow::Result<()> {
    let checked = crate::daemon::preflight::preflight(config, Clock::system().now())?;
    for warning in &checked.warnings {
        eprintln!("warning: {warning}");
    }
    let calendar = crate::calendar::Calendar::load(config.calendar_dir())?;
    let mut out = std::io::stdout().lock();
    match &config.source {
        Some(path) => writeln!(out, "# configuration: built-in defaults + {} + environment", path.display())?,
        None => writeln!(out, "# configuration: built-in defaults + environment (no file)")?,
    }
    for year in calendar.years() {
        let mark = if year.provisional { " (PROVISIONAL)" } else { "" };
        writeln!(out, "# calendar {}{}: {}", year.year, mark, year.source)?;
    }
    let today = Clock::system().now_in(config.timezone).date_naive();
    for year in calendar.missing_years(today) {
        writeln!(
            out,
            "# WARNING: no calendar file for {year}: add config/calendar/{year}.toml (holidays and working Saturdays)"
        )?;
    }
    writeln!(out, "{}", config.to_redacted_toml())?;
    Ok(())
}

async fn import(config: Arc<Config>, files: &[PathBuf]) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    let known = KnownCodes {
        units: app.store.existing_codes("units").await?.into_iter().collect(),
        people: app.store.existing_codes("people").await?.into_iter().collect(),
    };
    let calendar = app.calendar().await?;
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let batch = read_files(&paths, &known, &calendar).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let counts = app
        .store
        .import(&batch.units, &batch.people, &batch.directives, &batch.calendar, app.clock.now().timestamp())
        .await?;
    println!(
        "imported {} unit(s), {} person(s), {} directive(s), {} calendar day(s)",
        counts.units, counts.people, counts.directives, counts.calendar
    );
    Ok(())
}

async fn plan(config: Arc<Config>, at: Option<&str>, json: bool) -> anyhow::Result<()> {
    let now = instant(&config, at)?;
    let app = App::open(config).await?;
    warn_if_empty(&app).await?;
    let notices = app.unrecorded(now).await?;
    let mut out = std::io::stdout().lock();
    if json {
        for notice in &notices {
            writeln!(out, "{}", serde_json::to_string(notice)?)?;
        }
        return Ok(());
    }
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    write_plan(&mut out, &snapshot, &notices, now)?;
    Ok(())
}

/// The administrator's view of a plan: grouped by recipient, Vietnamese labels.
fn write_plan(out: &mut impl Write, snapshot: &Snapshot, notices: &[Notice], now: DateTime<Tz>) -> anyhow::Result<()> {
    let mut by_recipient: BTreeMap<&str, Vec<&Notice>> = BTreeMap::new();
    for n in notices {
        by_recipient.entry(n.recipient.as_str()).or_default().push(n);
    }
    writeln!(
        out,
        "Nhắc việc tại {} ({}): {} thông báo chưa gửi cho {} người",
        now.format("%d/%m/%Y %H:%M"),
        now.timezone(),
        notices.len(),
        by_recipient.len()
    )?;
    // Columns as wide as their widest cell over the whole plan, so every block lines up.
    let rows: Vec<[String; 3]> = notices
        .iter()
        .map(|n| [kind_label(n).to_string(), stage_label(&n.stage), n.directive.clone().unwrap_or_default()])
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    let pad = |text: &str, width: usize| format!("{text}{}", " ".repeat(width.saturating_sub(text.chars().count())));
    let row_of: HashMap<&str, &[String; 3]> = notices.iter().map(|n| n.key.as_str()).zip(rows.iter()).collect();
    if !notices.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "  {}  {}  {}  Trích yếu",
            pad("Loại thông báo", widths[0]),
            pad("Mốc", widths[1]),
            pad("Mã nhiệm vụ", widths[2])
        )?;
    }
    for (recipient, list) in by_recipient {
        let person = snapshot.people.get(recipient);
        writeln!(out)?;
        writeln!(out, "{} ({}, {})", person.map_or(recipient, |p| p.name.as_str()), recipient, list[0].address)?;
        for n in list {
            let title = n
                .directive
                .as_deref()
                .and_then(|c| snapshot.directives.iter().find(|d| d.code == c))
                .map_or("", |d| if d.confidential { "(mật)" } else { d.title.as_str() });
            let Some(row) = row_of.get(n.key.as_str()) else { continue };
            let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| pad(cell, w)).collect();
            writeln!(out, "{}", format!("  {}  {}", cells.join("  "), title).trim_end())?;
        }
    }
    Ok(())
}

/// A stage as an administrator reads it: T-3, T0, T+5 (working days from the due date), or in
/// words.
fn stage_label(stage: &Stage) -> String {
    match stage {
        Stage::Day(_) => stage.to_string(),
        Stage::Closed => "đã kết thúc".into(),
        Stage::Missing(crate::domain::MissingField::Assignee) => "thiếu người thụ lý".into(),
        Stage::Missing(crate::domain::MissingField::DueOn) => "thiếu hạn xử lý".into(),
        Stage::Week { year, week } => format!("tuần {week}/{year}"),
        Stage::Month { year, month } => format!("tháng {month}/{year}"),
        Stage::Bounce(_) => "địa chỉ bị trả lại".into(),
    }
}

fn kind_label(n: &Notice) -> &'static str {
    use crate::domain::{Ladder, NoticeKind};
    match (n.kind, n.ladder) {
        (NoticeKind::Upcoming, _) => "sắp đến hạn",
        (NoticeKind::DueToday, _) => "đến hạn hôm nay",
        (NoticeKind::Overdue, _) => "quá hạn",
        (NoticeKind::Escalation, Ladder::EscalateHead) => "báo cáo trưởng phòng",
        (NoticeKind::Escalation, Ladder::EscalateLeader) => "báo cáo lãnh đạo khối",
        (NoticeKind::Escalation, _) => "báo cáo chánh thanh tra",
        (NoticeKind::ClosedIncomplete, _) => "kết thúc chưa hoàn thành",
        (NoticeKind::Unassigned, Ladder::MissingDueDate) => "chưa có hạn xử lý",
        (NoticeKind::Unassigned, _) => "chưa phân công",
        (NoticeKind::Report, _) => "báo cáo giao ban tháng",
        (NoticeKind::Digest, _) => "báo cáo tuần",
        (NoticeKind::Bounce, _) => "thư bị trả lại",
    }
}

async fn tick(config: Arc<Config>, at: Option<&str>) -> anyhow::Result<()> {
    let now = instant(&config, at)?;
    let app = App::open(config).await?;
    warn_if_empty(&app).await?;
    let outlets = app.outlets()?;
    let stopping = AtomicBool::new(false);
    let report = match app.tick(now, &outlets, &stopping).await {
        Ok(report) => report,
        Err(e) => {
            record_before_exit(&app).await;
            return Err(e);
        }
    };
    let d = &report.delivery;
    println!(
        "tick at {}: {} owed, {} newly recorded; {}; {} message(s) created, {} sent, {} to retry, {} dead, {} superseded",
        report.at,
        report.owed,
        report.recorded,
        if report.in_send_window { "inside the send window" } else { "outside the send window, nothing sent" },
        d.messages_created,
        d.sent,
        d.retry_later,
        d.dead,
        d.superseded
    );
    for (channel, reason) in &report.paused {
        println!(
            "{channel}: delivery paused, {} message(s) wait for the next round: the server is unreachable or misconfigured ({reason})",
            d.deferred
        );
    }
    Ok(())
}

/// A one-shot `tick` that sent messages the database then refused to record keeps trying
/// to record them while their leases hold (no other process sends them meanwhile); a daemon
/// does this at its next round instead.
async fn record_before_exit(app: &App) {
    let left = app.unrecorded_outcomes();
    if left == 0 {
        return;
    }
    let until = crate::clock::monotonic() + std::time::Duration::from_secs(app.config.delivery.lease_seconds / 2);
    eprintln!("{left} sent message(s) could not be recorded; retrying while their leases hold");
    let mut wait = std::time::Duration::from_secs(1);
    while crate::clock::monotonic() < until {
        if app.record_kept_outcomes().await.is_ok() {
            eprintln!("the {left} sent message(s) are now recorded as sent");
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
    }
    eprintln!("{left} sent message(s) are still not recorded; they may be sent again once their leases expire");
}

/// Renders a digest or monthly report exactly as it would be sent, and prints it.
async fn preview(
    config: Arc<Config>,
    code: &str,
    at: Option<&str>,
    html: Option<PathBuf>,
    monthly: bool,
) -> anyhow::Result<()> {
    let now = instant(&config, at)?;
    let app = App::open(config).await?;
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    let Some(audience) = audience_of(&snapshot, code) else {
        bail!("{code} is not an active block leader (the leader of a unit) or chief");
    };
    let person = snapshot.people.get(code).context("no such person")?;
    let today = now.date_naive();
    let directives = app.report_directives(today).await?;
    let stage = if monthly { Stage::Month { year: today.year(), month: today.month() } } else { Stage::week_of(today) };
    let extensions = crate::report::week_extensions(&app.store, &snapshot, today, app.config.timezone).await?;
    let input = ReportInput {
        snapshot: &snapshot,
        directives: &directives,
        extensions: &extensions,
        calendar: &calendar,
        policy: &app.config.policy,
        today,
    };
    let digests = DigestRenderer::new(
        app.templates_dir(),
        &app.config.agency.name,
        crate::channels::outlets::reply_address(&app.config).as_deref(),
    )?;
    let rendered = render_report(&digests, &input, person, &audience, &stage)?;
    if let Some(path) = html {
        std::fs::write(&path, &rendered.html).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "To: {} <{}>", person.name, person.email)?;
    writeln!(out, "Subject: {}", rendered.subject)?;
    writeln!(out)?;
    write!(out, "{}", rendered.text)?;
    Ok(())
}

async fn status(config: Arc<Config>, json: bool) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    warn_if_empty(&app).await?;
    let report = app.store.status_report(100).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    let line = |pairs: &[(String, i64)]| {
        if pairs.is_empty() {
            "none".to_string()
        } else {
            pairs.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
        }
    };
    writeln!(out, "notices:  {}", line(&report.counts.notices))?;
    writeln!(out, "messages: {}", line(&report.counts.messages))?;
    if report.retrying > 0 {
        let next = report
            .next_retry_at
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| t.with_timezone(&app.config.timezone).to_rfc3339())
            .unwrap_or_default();
        writeln!(out, "retrying: {} message(s), next attempt at {next}", report.retrying)?;
    }
    if report.waiting_on_server > 0 {
        writeln!(
            out,
            "server unreachable or misconfigured: {} message(s) wait for it (no address is at fault): {}",
            report.waiting_on_server,
            report.server_error.as_deref().unwrap_or("?")
        )?;
    }
    if report.dead_letters.is_empty() {
        writeln!(out, "dead letters: none")?;
    } else {
        writeln!(out, "dead letters ({}):", report.dead_letters.len())?;
        for d in &report.dead_letters {
            let why = match d.error_kind.as_deref() {
                Some("recipient") => "address rejected",
                Some("build") => "cannot be built",
                Some("exhausted") => "gave up",
                _ => "failed",
            };
            writeln!(
                out,
                "  {} to {} <{}> after {} attempt(s), {why}: {}",
                d.message_id,
                d.recipient,
                d.address,
                d.attempts,
                d.last_error.as_deref().unwrap_or("?")
            )?;
        }
    }
    Ok(())
}

async fn send_test(config: Arc<Config>, to: &str) -> anyhow::Result<()> {
    let email = crate::channels::EmailChannel::from_config(&config).context("cannot set up email delivery")?;
    let clock = Clock::system();
    let now = clock.now();
    let id = clock.new_id();
    let domain = config.from.email.domain().to_string();
    let message_id = format!("<{id}@{domain}>");
    let local = now.with_timezone(&config.timezone).format("%d/%m/%Y %H:%M");
    let text = format!(
        "Kính gửi: Quản trị hệ thống\n\nĐây là thư thử nghiệm của hệ thống nhắc việc {}, gửi lúc {local} (UTC+7).\n\nTrân trọng./.\n",
        config.agency.name
    );
    let html = format!(
        "<!DOCTYPE html><html lang=\"vi\"><body><p>Kính gửi: Quản trị hệ thống</p><p>Đây là thư thử nghiệm của hệ thống nhắc việc {}, gửi lúc {local} (UTC+7).</p><p>Trân trọng./.</p></body></html>",
        config.agency.name
    );
    let rendered = crate::render::Rendered { subject: "[Nhắc việc] Thư thử nghiệm".into(), text, html };
    let raw = email.compose_to("Quản trị hệ thống", to, rendered, &message_id, now.with_timezone(&config.timezone))?;
    if let Err(e) = email.send(&message_id, to, &raw).await {
        bail!("test email to {to} failed: {e}");
    }
    println!("test email sent to {to}, Message-ID {message_id}");
    Ok(())
}

/// `link`: checks that the person and the directive exist, then signs.
async fn link(config: Arc<Config>, person: &str, directive: &str, at: Option<&str>) -> anyhow::Result<()> {
    let secret = crate::web::secret(&config)?;
    if config.web.base_url.trim().is_empty() {
        anyhow::bail!("web.base_url is not set: links need the address people open");
    }
    let at = match at {
        Some(text) => parse_instant(text, config.timezone).map_err(anyhow::Error::msg)?.timestamp(),
        None => crate::clock::wall_seconds(),
    };
    let app = App::open(config.clone()).await?;
    if app.store.person(person).await?.is_none() {
        anyhow::bail!("no person {person:?}");
    }
    if app.store.directives_by_code(&[directive.to_string()]).await?.is_empty() {
        anyhow::bail!("no directive {directive:?}");
    }
    println!("{}", crate::web::link_url(&config, &secret, person, directive, at));
    Ok(())
}
