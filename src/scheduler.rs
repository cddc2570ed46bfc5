//! The daemon (`run`): the only place that reads the clock. tokio-cron-scheduler merely
//! wakes the loop (a `try_send` on a one-slot channel, so overlapping wake-ups coalesce);
//! catch-up, idempotency and replica safety live in the database. SIGTERM/SIGINT stop
//! claiming, let in-flight sends finish, give back leases, and exit 0.

use crate::app::App;
use crate::config::{Config, Log};
use anyhow::Context;
use chrono::Utc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

/// Logs go to stderr (journald captures it under systemd): human-readable, or JSON.
/// `RUST_LOG` overrides `log.level`.
pub fn init_logging(log: &Log) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if log.format == "json" {
        builder.json().try_init()
    } else {
        builder.with_target(false).try_init()
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let app = App::open(config.clone()).await?;
    let renderer = app.renderer()?;
    let email = app.email_channel()?;
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let scheduler = JobScheduler::new().await.context("cannot start the scheduler")?;
    let cron = config.raw.schedule.scan.clone();
    let job = Job::new_async_tz(cron.as_str(), config.timezone, move |_, _| {
        let wake = wake.clone();
        Box::pin(async move {
            // A full channel means a scan is already pending: nothing is lost by skipping.
            let _ = wake.try_send(());
        })
    })
    .with_context(|| format!("schedule.scan {cron:?} cannot be scheduled"))?;
    scheduler.add(job).await.context("cannot add the scan job")?;
    scheduler.start().await.context("cannot start the scheduler")?;
    tracing::info!(scan = %cron, owner = %app.owner, "nhacviec running");

    let stopping = Arc::new(AtomicBool::new(false));
    let signal = {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing in-flight sends");
            stopping.store(true, Ordering::SeqCst);
        })
    };

    // Catch up at start-up rather than waiting for the first cron wake-up.
    let mut first = true;
    while !stopping.load(Ordering::SeqCst) {
        if !first {
            tokio::select! {
                got = woken.recv() => if got.is_none() { break },
                () = wait_until(&stopping) => break,
            }
        }
        first = false;
        let now = Utc::now().with_timezone(&config.timezone);
        match app.tick(now, &renderer, &email, &stopping).await {
            Ok(report) => tracing::info!(
                owed = report.owed,
                recorded = report.recorded,
                in_window = report.in_send_window,
                sent = report.delivery.sent,
                retry = report.delivery.retry_later,
                dead = report.delivery.dead,
                "scan finished"
            ),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "scan failed; will try again at the next wake-up"),
        }
    }
    signal.abort();
    let mut scheduler = scheduler;
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not shut down cleanly");
    }
    match app.store.release_leases(&app.owner).await {
        Ok(n) if n > 0 => tracing::info!(released = n, "gave back unsent leased messages"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not release leases; they will expire"),
    }
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
