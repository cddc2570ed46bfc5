//! Bench ← one measurement, run in a child process so its peak resident memory is its own:
//! scan, enqueue, render, a cycle, a morning round or an SMTP round on a prepared dataset.
use super::*;
use crate::agency::*;

pub(crate) fn bench_now(config: &Config) -> anyhow::Result<DateTime<Tz>> {
    parse_instant(BENCH_AT, config.timezone).map_err(anyhow::Error::msg)
}

/// Peak resident set of this process so far, in MB (VmHWM).
pub(crate) fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn rate(work: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        work as f64 / seconds
    } else {
        0.0
    }
}

pub(crate) async fn child(config: Arc<Config>, job: Job) -> anyhow::Result<()> {
    let app = App::open(config.clone()).await?;
    let now = bench_now(&config)?;
    let base = Measurement {
        measurement: job.label.clone(),
        directives: job.total,
        window: job.window,
        ..Measurement::default()
    };
    let results = match job.task {
        Task::Generate => vec![generate(&app, &job, now, base).await?],
        Task::Scan => vec![scan(&app, &job, now, base).await?],
        Task::Enqueue => enqueue(&app, now, base).await?,
        Task::Render => vec![render(&app, now, base).await?],
        Task::Cycle => vec![cycle(&app, now, base).await?],
        Task::Morning => vec![morning(&app, now, base).await?],
        Task::SmtpPrepare => vec![smtp_prepare(&app, now, base).await?],
        Task::Smtp => vec![smtp(&app, now, base).await?],
        Task::Sources => crate::sources::sources(&app, &job, base).await?,
    };
    app.store.close().await;
    let peak = peak_rss_mb();
    let mut out = std::io::stdout().lock();
    for mut m in results {
        // A measurement that took its own peak (from a reset) keeps it.
        if m.peak_rss_mb == 0.0 {
            m.peak_rss_mb = peak;
        }
        writeln!(out, "{}", serde_json::to_string(&m)?)?;
    }
    Ok(())
}

pub(crate) async fn generate(
    app: &App,
    job: &Job,
    now: DateTime<Tz>,
    mut m: Measurement,
) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    let calendar = app.calendar().await?;
    let agency = Agency::new(officers_for(job.profile, job.total, job.window), job.profile == Profile::Delivery);
    let mut generator = Generator::new(&agency, job.profile, job.total, job.window, &calendar, now.date_naive());
    let mut import = app.store.begin_import().await?;
    import.units(&agency.units, now.timestamp()).await?;
    import.people(&agency.people, now.timestamp()).await?;
    loop {
        let chunk = generator.next_chunk(GENERATE_CHUNK);
        if chunk.is_empty() {
            break;
        }
        import.directives(&chunk, now.timestamp()).await?;
    }
    let counts = import.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = (counts.units + counts.people + counts.directives) as u64;
    m.work = rows;
    m.unit = "rows".into();
    m.seconds = seconds;
    m.rate = rate(rows, seconds);
    m.detail = format!(
        "{} units, {} people, {} directives in one transaction",
        counts.units, counts.people, counts.directives
    );
    Ok(m)
}

/// One full scan, as `App::owed` does it, timed in two halves.
pub(crate) async fn scan(app: &App, job: &Job, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let policy = &app.config.policy;
    let started = Instant::now();
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    let loaded = Instant::now();
    let mut notices = plan(&snapshot, policy, &calendar, now);
    notices.extend(plan_reports(&snapshot, &app.config.report_schedule, &calendar, now));
    let done = Instant::now();
    m.seconds = (done - started).as_secs_f64();
    m.work = job.total;
    m.unit = "directives".into();
    m.rate = rate(job.total, m.seconds);
    m.detail = format!(
        "{} selected → {} owed; snapshot {:.3} s + plan {:.3} s",
        snapshot.directives.len(),
        notices.len(),
        (loaded - started).as_secs_f64(),
        (done - loaded).as_secs_f64()
    );
    Ok(m)
}

pub(crate) async fn enqueue(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Vec<Measurement>> {
    let owed = app.owed(now).await?;
    let started = Instant::now();
    let recorded = app.store.enqueue(&owed, now.timestamp()).await?;
    let fresh = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = app.store.enqueue(&owed, now.timestamp()).await?;
    let replay = started.elapsed().as_secs_f64();
    let first = Measurement {
        work: recorded as u64,
        unit: "outbox rows".into(),
        seconds: fresh,
        rate: rate(recorded as u64, fresh),
        detail: format!("{} owed notices recorded into an empty outbox", owed.len()),
        ..m.clone()
    };
    let second = Measurement {
        measurement: "enqueue_replay".into(),
        work: owed.len() as u64,
        unit: "owed notices".into(),
        seconds: replay,
        rate: rate(owed.len() as u64, replay),
        detail: format!("the same {} again, all already recorded ({again} new): every later tick", owed.len()),
        ..m
    };
    Ok(vec![first, second])
}

pub(crate) fn deliverer<'a>(app: &'a App, outlets: &Arc<Outlets>, stopping: &'a AtomicBool) -> Deliverer<'a> {
    app.deliverer(outlets, stopping)
}

/// Outlets as configured, but with the given transport settings.
pub(crate) fn outlets_with(_app: &App, config: &Config) -> anyhow::Result<Arc<Outlets>> {
    Ok(Arc::new(Outlets::from_config(config)?))
}

pub(crate) fn delivery_detail(stats: &DeliveryStats) -> String {
    format!(
        "{} messages created, {} sent, {} superseded, {} to retry, {} dead",
        stats.messages_created, stats.sent, stats.superseded, stats.retry_later, stats.dead
    )
}

/// Delivery alone: what is owed is recorded first (untimed), then claimed, re-checked,
/// rendered, recorded as messages and handed to the file transport.
pub(crate) async fn render(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    // Planned from the snapshot delivery re-checks against, as a tick would: a second
    // snapshot alive beside it made this setup, not the delivery timed, the run's peak.
    let owed = app.plan_all(&snapshot, &calendar, now);
    app.store.enqueue(&owed, now.timestamp()).await?;
    drop(owed);
    let pending = app.store.backlog().await?;
    let outlets = app.outlets()?;
    let stopping = AtomicBool::new(false);
    let started = Instant::now();
    let stats =
        deliverer(app, &outlets, &stopping).deliver(&Arc::new(snapshot), &calendar, now, Vec::new()).await?.stats;
    m.seconds = started.elapsed().as_secs_f64();
    m.work = u64::try_from(pending).unwrap_or(0);
    m.unit = "owed notices".into();
    m.rate = rate(m.work, m.seconds);
    m.detail = format!("claim → re-check → render → record → file transport: {}", delivery_detail(&stats));
    Ok(m)
}

/// `App::tick` on a fresh copy of the dataset, its outbox empty.
pub(crate) async fn cycle(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Measurement> {
    timed_tick(app, now, m, |report, m| {
        let detail = format!(
            "tick: plan {} directives, record {} notices, {} (file transport)",
            m.directives,
            report.recorded,
            delivery_detail(&report.delivery)
        );
        (report.recorded, detail)
    })
    .await
}

/// The daily round as a daemon lives it: what is owed was recorded overnight, outside the send
/// window (untimed here); the first tick inside the window plans again and delivers it all.
pub(crate) async fn morning(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Measurement> {
    let owed = app.owed(now).await?;
    app.store.enqueue(&owed, now.timestamp()).await?;
    drop(owed);
    timed_tick(app, now, m, |report, m| {
        let detail = format!(
            "tick after an overnight tick recorded {} notices: plan {} directives, {} (file transport)",
            report.adopted,
            m.directives,
            delivery_detail(&report.delivery)
        );
        (report.adopted, detail)
    })
    .await
}

/// One timed `App::tick` at `now`; `describe` says how many owed notices it handled, and how.
pub(crate) async fn timed_tick(
    app: &App,
    now: DateTime<Tz>,
    mut m: Measurement,
    describe: impl FnOnce(&TickReport, &Measurement) -> (usize, String),
) -> anyhow::Result<Measurement> {
    let outlets = app.outlets()?;
    let stopping = AtomicBool::new(false);
    let started = Instant::now();
    let report = app.tick(now, &outlets, &stopping).await?;
    m.seconds = started.elapsed().as_secs_f64();
    let (work, detail) = describe(&report, &m);
    m.work = work as u64;
    m.unit = "owed notices".into();
    m.rate = rate(m.work, m.seconds);
    m.detail = detail;
    Ok(m)
}

/// Records one message per officer (sent once through the file transport, then queued
/// again), so the SMTP runs time sending alone.
pub(crate) async fn smtp_prepare(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let mut config = (*app.config).clone();
    config.settings.mail.transport = MailTransport::File;
    let outlets = outlets_with(app, &config)?;
    let owed = app.owed(now).await?;
    app.store.enqueue(&owed, now.timestamp()).await?;
    let (stats, seconds) = deliver_waiting(app, &outlets, now).await?;
    m.seconds = seconds;
    m.work = stats.messages_created as u64;
    m.unit = "messages".into();
    m.rate = rate(m.work, m.seconds);
    m.detail = delivery_detail(&stats);
    Ok(m)
}

pub(crate) async fn smtp(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let queued = requeue_messages(&app.config.database.url).await?;
    let outlets = app.outlets()?;
    let (stats, seconds) = deliver_waiting(app, &outlets, now).await?;
    m.seconds = seconds;
    m.work = stats.sent as u64;
    m.unit = "emails".into();
    m.rate = rate(m.work, m.seconds);
    let smtp = &app.config.mail.smtp;
    m.measurement = format!("smtp pool {}", smtp.pool_size);
    m.detail = format!(
        "{queued} queued messages to {}:{}, pool {} × concurrency {}: {}",
        smtp.host,
        smtp.port,
        smtp.pool_size,
        app.config.delivery.concurrency,
        delivery_detail(&stats)
    );
    if stats.sent as u64 != queued {
        bail!("only {} of {queued} emails were accepted: {}", stats.sent, m.detail);
    }
    Ok(m)
}

/// One delivery round over what the outbox holds (no fresh plan), timed from after the
/// snapshot is read: its statistics and seconds.
async fn deliver_waiting(
    app: &App,
    outlets: &Arc<Outlets>,
    now: DateTime<Tz>,
) -> anyhow::Result<(nhacviec::deliver::DeliveryStats, f64)> {
    let calendar = app.calendar().await?;
    let snapshot = Arc::new(app.snapshot(&calendar, now).await?);
    let stopping = AtomicBool::new(false);
    let started = Instant::now();
    let stats = deliverer(app, outlets, &stopping).deliver(&snapshot, &calendar, now, Vec::new()).await?.stats;
    Ok((stats, started.elapsed().as_secs_f64()))
}

/// Puts every message back in the queue, due at once and unleased, as if never sent; returns
/// how many. The SMTP runs resend the same recorded messages: a benchmark's own statement on
/// its own connection, not part of the product's store.
pub(crate) async fn requeue_messages(url: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let n = sqlx::query(
        "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = 0, lease_owner = NULL,
                lease_until = NULL, last_error = NULL, sent_at = NULL",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE notices SET status = 'queued' WHERE message IS NOT NULL").execute(&mut *tx).await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(n)
}
