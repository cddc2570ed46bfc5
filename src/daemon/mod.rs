//! The daemon (`run`): the only place that reads the clock. tokio-cron-scheduler merely
//! wakes the loop (a `try_send` on a one-slot channel, so overlapping wake-ups coalesce);
//! catch-up, idempotency and replica safety live in the database. The loop also tells
//! systemd the truth: READY=1 after validation and migrations, STATUS= after each scan,
//! WATCHDOG=1 at half the watchdog period — withheld once a scan overruns its bound, so a
//! stuck scan gets the service restarted — and STOPPING=1. SIGTERM/SIGINT stop claiming,
//! let in-flight sends finish (within a bound), give back leases, and exit 0. Before any of
//! that, [`preflight`] checks what the configuration refers to, as `check-config` does, and
//! the daemon delivers through the very outlets it built.

pub mod http;
pub mod notify;
pub mod preflight;

use crate::app::{App, TickReport};
use crate::clock::{monotonic, wall_seconds, Clock};
use crate::config::{Backend, Config};
use crate::daemon::http::{serve, HttpLimits, HttpState};
use crate::daemon::notify::Notifier;
use crate::daemon::preflight::preflight;
use anyhow::{bail, Context};
use chrono::DateTime;
use chrono_tz::Tz;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};

type Scan<'a> = Pin<Box<dyn Future<Output = anyhow::Result<TickReport>> + 'a>>;

/// Runs until SIGTERM or SIGINT, planning at `clock`'s now (the system's, or `run --at`'s).
pub async fn run(config: Arc<Config>, clock: Arc<Clock>) -> anyhow::Result<()> {
    // Before anything else: a SIGTERM that arrives while the daemon is still starting must
    // stop it cleanly (exit 0), not kill it by the default action.
    let mut signals = Signals::install().context("cannot install the SIGTERM/SIGINT handlers")?;
    // First, so a configuration that cannot work exits 78 before it takes the lock, waits
    // for a database or tells systemd it is ready.
    let checked = preflight(&config, clock.now())?;
    for warning in &checked.warnings {
        tracing::warn!(key = warning.key, "{warning}");
    }
    let outlets = Arc::new(checked.outlets);
    let _lock = lock_sqlite_database(&config)?;
    let Some(app) = open_patiently(config.clone(), &clock, &mut signals).await? else {
        return Ok(());
    };
    let notifier = Notifier::from_env();
    let schedule = &config.schedule;
    let scan_bound = Duration::from_secs(schedule.max_scan_seconds);

    let (stop_http, http_stopped) = watch::channel(false);
    let http = match config.http_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("http.listen {addr}: cannot listen"))?;
            let state = HttpState {
                store: app.store.clone(),
                metrics: app.metrics.clone(),
                stale_after: stale_after(&config, &clock, scan_bound),
            };
            let limits = HttpLimits::from_config(&config.http);
            let mut stopped = http_stopped.clone();
            Some(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = serve(listener, state, limits, shutdown).await {
                    tracing::error!(error = %e, "health/metrics endpoint stopped");
                }
            }))
        }
        None => None,
    };

    let web = match config.web_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("web.listen {addr}: cannot listen"))?;
            let state = crate::web::WebState::new(&config, app.store.clone(), clock.clone())?;
            let limits = HttpLimits::from_config(&config.http);
            let mut stopped = http_stopped.clone();
            tracing::info!(%addr, "serving directive pages and answers (/r/{{token}})");
            Some(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) =
                    crate::daemon::http::serve_router(listener, crate::web::router(state), limits, shutdown).await
                {
                    tracing::error!(error = %e, "web endpoint stopped");
                }
            }))
        }
        None => None,
    };

    let (wake, mut woken) = mpsc::channel::<()>(1);
    let mut scheduler = JobScheduler::new().await.context("cannot start the scheduler")?;
    let job = Job::new_async_tz(schedule.scan.as_str(), config.timezone, move |_, _| {
        let wake = wake.clone();
        Box::pin(async move {
            // A full channel means a scan is already pending: nothing is lost by skipping.
            let _ = wake.try_send(());
        })
    })
    .with_context(|| format!("schedule.scan {:?} cannot be scheduled", schedule.scan))?;
    scheduler.add(job).await.context("cannot add the scan job")?;
    for source in &config.sources {
        app.metrics.declare_source(&source.name);
    }
    // Each scheduled source wakes the loop with its name; the loop syncs it between scans.
    let (sync_wake, mut sync_woken) = mpsc::channel::<String>(16);
    for source in config.sources.iter().filter(|s| s.cron.is_some()) {
        let name = source.name.clone();
        let sync_wake = sync_wake.clone();
        let job = Job::new_async_tz(source.schedule.as_str(), config.timezone, move |_, _| {
            let (name, sync_wake) = (name.clone(), sync_wake.clone());
            Box::pin(async move {
                let _ = sync_wake.try_send(name);
            })
        })
        .with_context(|| format!("source {:?}: schedule {:?} cannot be scheduled", source.name, source.schedule))?;
        scheduler.add(job).await.context("cannot add a source job")?;
    }
    drop(sync_wake);
    scheduler.start().await.context("cannot start the scheduler")?;

    let stopping = Arc::new(AtomicBool::new(false));
    notifier.ready();
    notifier.status("starting the first scan");
    tracing::info!(scan = %schedule.scan, owner = %app.owner, "nhacviec running");

    let ping_every = notifier.watchdog_interval().unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval(ping_every);
    let tick_once = |now: DateTime<Tz>| -> Scan<'_> { Box::pin(app.tick(now, &outlets, &stopping)) };
    // Catch up at start-up rather than waiting for the first cron wake-up.
    let mut scan: Option<(Scan<'_>, Instant)> = Some((tick_once(now(&config, &clock)), monotonic()));
    loop {
        tokio::select! {
            _ = ping.tick() => {
                match &scan {
                    Some((_, started)) if started.elapsed() > scan_bound => tracing::error!(
                        running_for = started.elapsed().as_secs(),
                        "scan overran schedule.max_scan_seconds: withholding the watchdog ping"
                    ),
                    _ => notifier.watchdog(),
                }
            }
            result = async { match scan.as_mut() { Some((s, _)) => s.await, None => std::future::pending().await } } => {
                let started = scan.take().map_or_else(monotonic, |(_, t)| t);
                finish_scan(&app, &notifier, result, started.elapsed()).await;
            }
            got = woken.recv(), if scan.is_none() => {
                if got.is_none() { break; }
                scan = Some((tick_once(now(&config, &clock)), monotonic()));
            }
            Some(name) = sync_woken.recv(), if scan.is_none() => {
                // A sync that changed anything is planned at once, not at the next scan.
                if sync_scheduled(&app, &config, &name).await {
                    scan = Some((tick_once(now(&config, &clock)), monotonic()));
                }
            }
            () = signals.recv() => break,
        }
    }

    tracing::info!("shutdown requested: no new claims; finishing in-flight sends");
    notifier.stopping();
    stopping.store(true, Ordering::SeqCst);
    if let Some((s, started)) = scan.take() {
        let grace = Duration::from_secs(config.delivery.shutdown_grace_seconds);
        match tokio::time::timeout(grace, s).await {
            Ok(result) => finish_scan(&app, &notifier, result, started.elapsed()).await,
            Err(_) => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight sends abandoned at the shutdown bound")
            }
        }
    }
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not shut down cleanly");
    }
    match app.store.release_leases(&app.owner).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "gave back unsent leased messages"),
        Err(e) => tracing::warn!(error = %e, "could not release leases; they will expire"),
    }
    let _ = stop_http.send(true);
    if let Some(web) = web {
        let _ = web.await;
    }
    if let Some(http) = http {
        let _ = http.await;
    }
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, waiting out a PostgreSQL server that is not there yet (a restart, a failover)
/// with backoff instead of exiting into a restart loop. `None` when a signal came first.
async fn open_patiently(config: Arc<Config>, clock: &Arc<Clock>, signals: &mut Signals) -> anyhow::Result<Option<App>> {
    let mut wait = Duration::from_secs(1);
    loop {
        match App::open_on(config.clone(), clock.clone()).await {
            Ok(app) => return Ok(Some(app)),
            // A local SQLite file that cannot be opened will not heal by waiting.
            Err(e) if config.backend == Backend::Sqlite => return Err(e),
            Err(e) => tracing::error!(error = %format!("{e:#}"), retry_in_s = wait.as_secs(), "database unavailable"),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = signals.recv() => return Ok(None),
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Runs the source `name` now; true when it changed a directive.
async fn sync_scheduled(app: &App, config: &Config, name: &str) -> bool {
    let Some(source) = config.sources.iter().find(|s| s.name == name) else { return false };
    let calendar = match app.calendar().await {
        Ok(calendar) => calendar,
        Err(e) => {
            tracing::error!(source = name, error = %format!("{e:#}"), "source not synced: cannot read the calendar");
            return false;
        }
    };
    match crate::source::sync_source(&app.store, source, &calendar, &app.clock, false).await {
        Ok(report) => {
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let finished = crate::clock::wall_seconds();
            app.metrics.record_source_run(
                name,
                &report.result,
                count(report.rows_applied),
                count(report.rows_rejected),
                finished,
            );
            crate::source::alert::tell_admin(config, &report, &app.clock).await;
            report.changed > 0
        }
        Err(e) => {
            tracing::error!(source = name, error = %format!("{e:#}"), "source not synced: the database refused the run");
            false
        }
    }
}

/// The scheduler's instant: the clock's logical now, in the agency's time zone.
fn now(config: &Config, clock: &Clock) -> DateTime<Tz> {
    clock.now_in(config.timezone)
}

async fn finish_scan(app: &App, notifier: &Notifier, result: anyhow::Result<TickReport>, took: Duration) {
    if let Err(e) = &result {
        // /healthz shows this until a scan succeeds again: a recent success says nothing
        // about a disk that has filled since.
        app.metrics.set_scan_failed(Some(format!("{e:#}").replace('\n', " ")));
    }
    app.metrics.record_scan(took, wall_seconds(), result.is_ok());
    let backlog = app.store.backlog().await.ok();
    let next = app
        .config
        .scan_cron
        .find_next_occurrence(&now(&app.config, &app.clock), false)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
        .unwrap_or_else(|_| "?".into());
    let backlog_text = backlog.map_or_else(|| "unknown".to_string(), |b| b.to_string());
    match result {
        Ok(report) => {
            tracing::info!(
                owed = report.owed,
                recorded = report.recorded,
                in_window = report.in_send_window,
                sent = report.delivery.sent,
                retry = report.delivery.retry_later,
                dead = report.delivery.dead,
                superseded = report.delivery.superseded,
                took_ms = took.as_millis() as u64,
                "scan finished"
            );
            notifier.status(&format!(
                "last scan sent {}, {} to retry, {} dead; backlog {backlog_text}; next scan {next}",
                report.delivery.sent, report.delivery.retry_later, report.delivery.dead
            ));
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "scan failed; will try again at the next wake-up");
            notifier.status(&format!("last scan FAILED: {e}; backlog {backlog_text}; next scan {next}"));
        }
    }
}

/// How old the last successful scan may be before /healthz reports trouble: two scan
/// intervals plus the time a scan may take.
fn stale_after(config: &Config, clock: &Clock, scan_bound: Duration) -> Duration {
    let now = now(config, clock);
    let interval = config
        .scan_cron
        .find_next_occurrence(&now, false)
        .and_then(|a| config.scan_cron.find_next_occurrence(&a, false).map(|b| (b - a).num_seconds()))
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(900);
    Duration::from_secs(2 * interval) + scan_bound
}

/// One daemon per SQLite file: a second `run` would only fight the first for the write lock
/// (replicas are what PostgreSQL is for). The lock is released when the process ends,
/// however it ends.
fn lock_sqlite_database(config: &Config) -> anyhow::Result<Option<File>> {
    if config.backend != Backend::Sqlite {
        return Ok(None);
    }
    let url = &config.database.url;
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or_default();
    let lock_path = PathBuf::from(format!("{path}.daemon-lock"));
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let file = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another nhacviec daemon is already running on the SQLite database {path} (lock {}); \
             run one daemon per SQLite file, or use PostgreSQL for replicas",
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", lock_path.display())),
    }
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Waits for the next one (cancel-safe: a signal is never lost between two waits).
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
