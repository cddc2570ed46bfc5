//! The application: wires config, store, calendar, planner, outbox and channels together.
//! `tick(now)` is one full cycle — snapshot → plan → record → deliver what the send window
//! allows at `now`. The scheduler calls it with the wall clock; `tick --at` with any instant.

use crate::calendar::Calendar;
pub use crate::channels::outlets_templates_dir as templates_dir;
pub use crate::channels::Outlets;
use crate::clock::Clock;
use crate::config::{redact_url, Config};
use crate::deliver::window::in_send_window;
use crate::deliver::{Builder, Deliverer, DeliveryStats, RoundDelivery, UnrecordedOutcome};
use crate::domain::{Directive, Notice};
use crate::metrics::Metrics;
use crate::plan::{plan, Snapshot};
use crate::report::{plan_reports, report_window};
use crate::store::{PlanningWindow, Store};
use anyhow::Context;
use chrono::{DateTime, Days, NaiveDate};
use chrono_tz::Tz;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What one tick did, for logs, `tick`'s summary and the daemon's status line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TickReport {
    pub at: String,
    pub owed: usize,
    pub recorded: usize,
    /// Notices recorded by an earlier tick (outside the send window) that this one delivered.
    pub adopted: usize,
    pub in_send_window: bool,
    pub delivery: DeliveryStats,
    /// Channels whose server was unreachable or misconfigured in this round, with the reason:
    /// their messages wait for the next round.
    pub paused: std::collections::BTreeMap<String, String>,
}

pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    /// The yearly calendar files, read once; imported days are laid over them per tick.
    base_calendar: Calendar,
    /// Identifies this process's leases in the outbox.
    pub owner: String,
    /// Counters served on /metrics.
    pub metrics: Arc<Metrics>,
    /// The logical now, message ids and jitter.
    pub clock: Arc<Clock>,
    /// Sends whose outcome the database did not take (see [`UnrecordedOutcome`]).
    unrecorded: std::sync::Mutex<Vec<UnrecordedOutcome>>,
}

impl App {
    /// Opens the store (migrating it) and reads the calendar files, on the system's clock.
    pub async fn open(config: Arc<Config>) -> anyhow::Result<App> {
        App::open_on(config, Arc::new(Clock::system())).await
    }

    /// [`App::open`] on the given clock (`run --at`).
    pub async fn open_on(config: Arc<Config>, clock: Arc<Clock>) -> anyhow::Result<App> {
        let db = &config.database;
        let store = Store::open(&db.url, db.max_connections, db.sqlite_busy_timeout_ms)
            .await
            .with_context(|| format!("cannot open the database {}", redact_url(&db.url)))?;
        let base_calendar = Calendar::load(config.calendar_dir()).context("cannot load the calendar")?;
        let today = clock.now_in(config.timezone).date_naive();
        for year in base_calendar.missing_years(today) {
            tracing::warn!(
                year,
                "no calendar file for {year}: holidays and working Saturdays are unknown; add config/calendar/{year}.toml"
            );
        }
        let id = clock.new_id().simple().to_string();
        let owner = format!("{}:{}:{}", hostname(), std::process::id(), &id[id.len() - 8..]);
        let metrics = Arc::new(Metrics::new());
        metrics.declare_channel("email");
        Ok(App { config, store, base_calendar, owner, metrics, clock, unrecorded: Default::default() })
    }

    /// The calendar files with the imported days laid over them.
    pub async fn calendar(&self) -> anyhow::Result<Calendar> {
        let mut calendar = self.base_calendar.clone();
        for day in self.store.calendar_days().await? {
            calendar.set_day(&day);
        }
        Ok(calendar)
    }

    /// Everyone, plus the directives that can owe anything at `now`.
    pub async fn snapshot(&self, calendar: &Calendar, now: DateTime<Tz>) -> anyhow::Result<Snapshot> {
        let today = now.date_naive();
        let policy = &self.config.policy;
        let window = PlanningWindow {
            due_until: calendar.add_working_days(today, policy.horizon_working_days()),
            closed_since: today.checked_sub_days(Days::new(u64::from(policy.closed_lookback_days))).unwrap_or(today),
        };
        let enabled = self.config.enabled_channels();
        let mut people = self.store.people().await?;
        for person in &mut people {
            // A channel switched off in config is not planned for (email is the default).
            person.reach.channels.retain(|c| enabled.contains(c));
        }
        let mut snapshot =
            Snapshot::new(self.store.units().await?, people, self.store.planning_directives(window).await?);
        snapshot.bounces = self.store.bounces().await?;
        Ok(snapshot)
    }

    /// Every notice owed at `now` (recorded or not): reminders, then digests and reports.
    pub async fn owed(&self, now: DateTime<Tz>) -> anyhow::Result<Vec<Notice>> {
        let calendar = self.calendar().await?;
        let snapshot = self.snapshot(&calendar, now).await?;
        Ok(self.plan_all(&snapshot, &calendar, now))
    }

    /// Everything owed at `now` according to `snapshot` (reminders, escalations, digests and
    /// reports), whether recorded already or not.
    pub fn plan_all(&self, snapshot: &Snapshot, calendar: &Calendar, now: DateTime<Tz>) -> Vec<Notice> {
        let mut owed = plan(snapshot, &self.config.policy, calendar, now);
        owed.extend(plan_reports(snapshot, &self.config.report_schedule, calendar, now));
        owed
    }

    /// The directives reports on `today` are built from.
    pub async fn report_directives(&self, today: NaiveDate) -> anyhow::Result<Vec<Directive>> {
        let (since, due_from, due_until) = report_window(today);
        Ok(self.store.report_directives(since, due_from, due_until).await?)
    }

    /// Notices owed at `now` that the outbox does not hold yet.
    pub async fn unrecorded(&self, now: DateTime<Tz>) -> anyhow::Result<Vec<Notice>> {
        let owed = self.owed(now).await?;
        let keys: Vec<&str> = owed.iter().map(|n| n.key.as_str()).collect();
        let known = self.store.known_keys(&keys).await?;
        Ok(owed.iter().zip(known).filter(|(_, known)| !known).map(|(n, _)| n.clone()).collect())
    }

    /// One full cycle at `now`.
    pub async fn tick(
        &self,
        now: DateTime<Tz>,
        outlets: &Arc<Outlets>,
        stopping: &AtomicBool,
    ) -> anyhow::Result<TickReport> {
        let started = crate::clock::monotonic();
        self.record_kept_outcomes().await?;
        let calendar = self.calendar().await?;
        let snapshot = self.snapshot(&calendar, now).await?;
        let owed = self.plan_all(&snapshot, &calendar, now);
        let planned = started.elapsed();
        let in_window = in_send_window(&self.config, &calendar, now);
        if !in_window {
            let recorded = self.store.enqueue(&owed, now.timestamp()).await?;
            tracing::debug!(?planned, enqueued = ?(started.elapsed() - planned), owed = owed.len(), recorded, "tick planned outside the send window");
            return Ok(TickReport {
                at: now.to_rfc3339(),
                owed: owed.len(),
                recorded,
                adopted: 0,
                in_send_window: false,
                delivery: DeliveryStats::default(),
                paused: Default::default(),
            });
        }
        let deliverer = self.deliverer(outlets, stopping);
        // What this tick planned goes out first, straight from the plan; then whatever waits
        // in the outbox: notices left pending, digests, retries, sends a crashed process left.
        let owed_count = owed.len();
        let snapshot = Arc::new(snapshot);
        let RoundDelivery { recorded, adopted, stats: delivery } =
            deliverer.deliver(&snapshot, &calendar, now, owed).await?;
        tracing::debug!(?planned, delivered = ?(started.elapsed() - planned), owed = owed_count, recorded, "tick planned and delivered");
        let paused = deliverer.paused_channels();
        // /healthz answers 503 while a channel's server keeps a round from going out.
        self.metrics.set_delivery_blocked((!paused.is_empty()).then(|| {
            paused.iter().map(|(channel, reason)| format!("{channel}: {reason}")).collect::<Vec<_>>().join("; ")
        }));
        Ok(TickReport {
            at: now.to_rfc3339(),
            owed: owed_count,
            recorded,
            adopted,
            in_send_window: true,
            delivery,
            paused,
        })
    }

    /// A delivery pass's context for one round.
    pub fn deliverer<'a>(&'a self, outlets: &Arc<Outlets>, stopping: &'a AtomicBool) -> Deliverer<'a> {
        Deliverer {
            config: &self.config,
            store: &self.store,
            builder: Builder {
                config: Arc::clone(&self.config),
                outlets: Arc::clone(outlets),
                clock: Arc::clone(&self.clock),
            },
            owner: &self.owner,
            metrics: &self.metrics,
            stopping,
            paused: Default::default(),
            unrecorded: &self.unrecorded,
        }
    }

    /// Records the outcomes of earlier sends the database refused at the time. Until this
    /// succeeds nothing else happens: those messages must not be claimed and sent again.
    pub async fn record_kept_outcomes(&self) -> anyhow::Result<usize> {
        let kept: Vec<UnrecordedOutcome> = match self.unrecorded.lock() {
            Ok(kept) => kept.clone(),
            Err(_) => return Ok(0),
        };
        if kept.is_empty() {
            return Ok(0);
        }
        for o in &kept {
            let outcomes = [(o.message.as_str(), &o.outcome)];
            self.store
                .finish_messages(&self.owner, &outcomes, o.at)
                .await
                .with_context(|| format!("{} sent message(s) still cannot be recorded", kept.len()))?;
        }
        if let Ok(mut left) = self.unrecorded.lock() {
            let n = kept.len().min(left.len());
            left.drain(..n);
        }
        tracing::info!(messages = kept.len(), "recorded the outcomes of earlier sends the database had refused");
        Ok(kept.len())
    }

    /// How many sends wait to be recorded.
    pub fn unrecorded_outcomes(&self) -> usize {
        self.unrecorded.lock().map_or(0, |k| k.len())
    }

    /// Where administrators' template overrides live, if configured.
    pub fn templates_dir(&self) -> Option<&Path> {
        templates_dir(&self.config)
    }

    /// Loads the templates (built in, or overridden from `mail.templates_dir`) and sets up
    /// the channels.
    pub fn outlets(&self) -> anyhow::Result<Arc<Outlets>> {
        Ok(Arc::new(Outlets::from_config(&self.config)?))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "host".into())
}
