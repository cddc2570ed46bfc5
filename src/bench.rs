//! Benchmarks at national scale, beside the data flow rather than in it: a synthetic agency
//! goes in through the store's bulk import path, then the real store → planner → outbox →
//! render → channel path is timed at a fixed instant (`BENCH_AT`). Each measurement runs in
//! a child process (`bench --one JOB`) so its peak resident memory (VmHWM) is its own; the
//! parent creates and drops the databases, starts Postfix `smtp-sink`, and prints a Markdown
//! table (and JSON lines with `--out`). Nothing here is used by the daemon.

use crate::app::{App, Outlets, TickReport};
use crate::calendar::Calendar;
use crate::config::{Config, MailTransport};
use crate::delivery::{Deliverer, DeliveryStats};
use crate::domain::{Directive, DirectiveKind, Person, Role, Status, Unit};
use crate::planner::plan;
use crate::reports::plan_reports;
use crate::time::parse_instant;
use anyhow::{bail, Context};
use chrono::{DateTime, Days, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every benchmark plans and delivers at this instant: a Tuesday, inside the send window,
/// covered by the shipped 2025 calendar.
pub const BENCH_AT: &str = "2025-09-16T09:00:00+07:00";

/// Directives generated and imported per store call: bounds the generator's memory whatever N.
const GENERATE_CHUNK: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Total directives per dataset (planning, enqueue, rendering, whole cycle).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    sizes: Vec<u64>,
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// Tiny sizes on both backends, in seconds (CI runs it; times mean nothing there).
    #[arg(long)]
    smoke: bool,
    /// Also write one JSON object per measurement to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Totals for the growth curve: the same number of directives in the due window, more history.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 1_000_000, 3_000_000])]
    growth: Vec<u64>,
    /// Directives inside the due window for every point of the growth curve.
    #[arg(long, default_value_t = 10_000)]
    growth_window: u64,
    /// Skip the national cycle (the largest size again, with ~100,000 owed notices).
    #[arg(long)]
    no_national: bool,
    /// Emails per SMTP delivery run.
    #[arg(long, default_value_t = 10_000)]
    emails: u64,
    /// SMTP pool sizes to measure (mail.smtp.pool_size and delivery.concurrency together).
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 4, 8])]
    pools: Vec<u32>,
    /// An SMTP server already listening (HOST:PORT); default: start Postfix smtp-sink.
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// PostgreSQL server to create the per-run databases on
    /// (default $NHACVIEC_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long, value_name = "URL")]
    pg_url: Option<String>,
    /// Where SQLite files and .eml output go (default: a fresh folder under the temp dir).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Internal: run one measurement (JSON job) and print its results as JSON lines.
    #[arg(long, hide = true, value_name = "JOB")]
    one: Option<String>,
}

/// One row of the results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measurement {
    pub backend: String,
    /// generate, scan, enqueue, enqueue_replay, render, cycle, growth, smtp.
    pub measurement: String,
    /// Directives in the database.
    pub directives: u64,
    /// Directives generated inside the due window (open near or past their deadline).
    pub window: u64,
    /// Units of work done: rows, directives, notices or emails (see `unit`).
    pub work: u64,
    pub unit: String,
    pub seconds: f64,
    /// `work` per second (for scans: directives in the database per second).
    pub rate: f64,
    pub peak_rss_mb: f64,
    /// Anything else worth knowing (breakdown, counts).
    pub detail: String,
    /// The target this row is held to, if any, and whether it was met.
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Task {
    Generate,
    Scan,
    Enqueue,
    Render,
    Cycle,
    Morning,
    SmtpPrepare,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Profile {
    /// An agency: ~10% of directives open inside the window, the rest history or far future.
    Agency,
    /// One upcoming directive per officer: exactly one email each.
    Delivery,
}

/// What a child process measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    task: Task,
    profile: Profile,
    total: u64,
    window: u64,
    /// Unused by the child (the parent repeats scans in separate processes); kept so jobs
    /// printed in logs say how they were run.
    runs: u32,
    /// Label of the measurement in the results (e.g. growth instead of scan).
    label: String,
}

/// Runs `nhacviec bench`: as the parent (orchestrating child processes) or as one child.
pub async fn run(config: Arc<Config>, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(job) = &args.one {
        let job: Job = serde_json::from_str(job).context("bench --one: bad job")?;
        return child(config, job).await;
    }
    parent(args).await
}

// ---------------------------------------------------------------------------------------
// The synthetic agency.

/// Units, people and who can be assigned work.
struct Agency {
    units: Vec<Unit>,
    people: Vec<Person>,
    /// (officer code, unit code), in code order.
    officers: Vec<(String, String)>,
}

const SURNAMES: &[&str] = &["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ"];
const MIDDLE: &[&str] = &["Văn", "Thị", "Minh", "Thanh", "Hữu", "Ngọc", "Quốc", "Thu"];
const GIVEN: &[&str] = &["Liên", "Hùng", "An", "Phúc", "Ly", "Dũng", "Hạnh", "Tâm", "Khoa", "Nga", "Sơn", "Trang"];
const VERBS: &[&str] = &[
    "Kiểm tra, xác minh",
    "Thanh tra việc",
    "Giải quyết đơn khiếu nại về",
    "Báo cáo kết quả",
    "Rà soát, đề xuất xử lý",
    "Tham mưu trả lời kiến nghị về",
    "Đôn đốc thực hiện kết luận về",
    "Xây dựng kế hoạch kiểm tra",
];
const OBJECTS: &[&str] = &[
    "quản lý, sử dụng đất đai",
    "đầu tư xây dựng cơ bản",
    "thu, chi ngân sách",
    "công tác cán bộ",
    "bồi thường, hỗ trợ tái định cư",
    "mua sắm tài sản công",
    "cấp giấy chứng nhận quyền sử dụng đất",
    "phòng, chống tham nhũng",
];
const PLACES: &[&str] = &[
    "tại UBND huyện Châu Thành",
    "tại Sở Tài nguyên và Môi trường",
    "tại UBND thành phố",
    "tại Ban Quản lý dự án",
    "tại Sở Xây dựng",
    "tại UBND xã Tân Phú",
];
const SOURCES: &[&str] = &[
    "KL giao ban 08/2025",
    "Công văn 1234/UBND-NC",
    "Đơn công dân ngày 12/6/2025",
    "QĐ 76/QĐ-TTr",
    "Kế hoạch thanh tra năm 2025",
];

fn person_name(i: usize) -> String {
    format!("{} {} {}", SURNAMES[i % SURNAMES.len()], MIDDLE[(i / 7) % MIDDLE.len()], GIVEN[(i / 3) % GIVEN.len()])
}

impl Agency {
    /// Ten officers per unit (each unit with a head), a block leader per five units, and
    /// one chief; one officer in a hundred inactive (their reminders go to the unit head).
    fn new(officers: usize, all_active: bool) -> Agency {
        let unit_count = officers.div_ceil(10).max(1);
        let leader_count = unit_count.div_ceil(5);
        let mut units = vec![Unit {
            code: "LD".into(),
            name: "Lãnh đạo Thanh tra".into(),
            head: Some("chanh".into()),
            leader: Some("chanh".into()),
        }];
        let person = |code: String, i: usize, title: &str, unit: String, role: Role, active: bool| Person {
            email: format!("{code}@thanhtra.example.gov.vn"),
            code,
            name: person_name(i),
            title: title.into(),
            unit,
            role,
            active,
            reach: Default::default(),
        };
        let mut people = vec![person("chanh".into(), 0, "Chánh Thanh tra", "LD".into(), Role::Chief, true)];
        for l in 0..leader_count {
            people.push(person(format!("pct{l:04}"), l + 1, "Phó Chánh Thanh tra", "LD".into(), Role::Leader, true));
        }
        for u in 0..unit_count {
            let code = format!("P{u:04}");
            units.push(Unit {
                code: code.clone(),
                name: format!("Phòng Nghiệp vụ {}", u + 1),
                head: Some(format!("tp{u:04}")),
                leader: Some(format!("pct{:04}", u / 5)),
            });
            people.push(person(format!("tp{u:04}"), u + 3, "Trưởng phòng", code, Role::Head, true));
        }
        let mut roster = Vec::with_capacity(officers);
        for i in 0..officers {
            let code = format!("cv{i:06}");
            let unit = format!("P{:04}", i / 10);
            let active = all_active || i % 100 != 99;
            people.push(person(code.clone(), i + 11, "Thanh tra viên", unit.clone(), Role::Officer, active));
            roster.push((code, unit));
        }
        Agency { units, people, officers: roster }
    }
}

/// Deterministic directives: `window` of `total` are open inside the due window (upcoming,
/// due today, overdue, plus a few unassigned, undated or recently closed), spread evenly
/// through the codes; the rest are completed, cancelled or closed long ago, or due far
/// ahead — history the planner never needs to see.
struct Generator<'a> {
    agency: &'a Agency,
    profile: Profile,
    total: u64,
    window: u64,
    next: u64,
    rng: fastrand::Rng,
    today: NaiveDate,
    /// Due dates by ladder position: index p + 3 for p in -3..=60.
    by_position: Vec<NaiveDate>,
}

impl<'a> Generator<'a> {
    fn new(
        agency: &'a Agency,
        profile: Profile,
        total: u64,
        window: u64,
        calendar: &Calendar,
        today: NaiveDate,
    ) -> Self {
        let mut by_position = Vec::new();
        for p in -3i32..=60 {
            let mut d = today;
            for _ in 0..p.unsigned_abs() {
                d = if p < 0 { calendar.next_working_day(d) } else { calendar.previous_working_day(d) };
            }
            by_position.push(d);
        }
        Generator { agency, profile, total, window, next: 0, rng: fastrand::Rng::with_seed(7), today, by_position }
    }

    fn days(&self, d: NaiveDate, n: u64, back: bool) -> NaiveDate {
        if back {
            d.checked_sub_days(Days::new(n)).unwrap_or(d)
        } else {
            d.checked_add_days(Days::new(n)).unwrap_or(d)
        }
    }

    fn next_chunk(&mut self, n: usize) -> Vec<Directive> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n && self.next < self.total {
            let i = self.next;
            self.next += 1;
            out.push(self.directive(i));
        }
        out
    }

    fn directive(&mut self, i: u64) -> Directive {
        let officers = &self.agency.officers;
        let pick = if self.profile == Profile::Delivery {
            usize::try_from(i).unwrap_or(0) % officers.len()
        } else {
            self.rng.usize(..officers.len())
        };
        let (assignee, unit) = officers[pick].clone();
        let r = &mut self.rng;
        let title = format!(
            "{} {} {} (mã {i})",
            VERBS[r.usize(..VERBS.len())],
            OBJECTS[r.usize(..OBJECTS.len())],
            PLACES[r.usize(..PLACES.len())]
        );
        let kind = match r.u32(..100) {
            0..=49 => DirectiveKind::Task,
            50..=69 => DirectiveKind::Document,
            70..=89 => DirectiveKind::Petition,
            90..=94 => DirectiveKind::Enforcement,
            _ => DirectiveKind::Other,
        };
        let mut d = Directive {
            code: format!("NV-{i:08}"),
            kind,
            title,
            source: SOURCES[r.usize(..SOURCES.len())].to_string(),
            unit,
            assignee: Some(assignee),
            leader: None,
            assigned_on: None,
            due_on: None,
            status: if r.bool() { Status::Open } else { Status::InProgress },
            completed_on: None,
            closed_on: None,
            result: None,
            confidential: r.u32(..20) == 0,
        };
        // Bresenham: exactly `window` of `total`, evenly spread through the codes.
        let in_window = (i + 1) * self.window / self.total > i * self.window / self.total;
        if self.profile == Profile::Delivery {
            d.due_on = Some(self.by_position[2]); // T-1: one upcoming reminder each
        } else if in_window {
            self.in_window(&mut d);
        } else {
            self.history(&mut d);
        }
        if d.assigned_on.is_none() {
            let back = self.rng.u64(10..60);
            d.assigned_on = Some(self.days(d.due_on.unwrap_or(self.today), back, true));
        }
        d
    }

    fn position(&self, p: i32) -> NaiveDate {
        let index = usize::try_from(p + 3).unwrap_or(0).min(self.by_position.len() - 1);
        self.by_position[index]
    }

    fn in_window(&mut self, d: &mut Directive) {
        let roll = self.rng.u32(..1000);
        let p = match roll {
            0..=9 => {
                // Unassigned: the unit head hears about it.
                d.assignee = None;
                self.rng.i32(-3..=5)
            }
            10..=11 => {
                // No due date and no default rule: the unit head is asked to set one.
                d.assigned_on = Some({
                    let n = self.rng.u64(1..60);
                    self.days(self.today, n, true)
                });
                return;
            }
            12..=21 => {
                // Closed without completion within the lookback: the alarm.
                d.status = Status::Closed;
                d.closed_on = Some({
                    let n = self.rng.u64(0..29);
                    self.days(self.today, n, true)
                });
                d.due_on = Some({
                    let n = self.rng.u64(30..90);
                    self.days(self.today, n, true)
                });
                return;
            }
            22..=521 => self.rng.i32(-3..=-1),
            522..=621 => 0,
            622..=951 => self.rng.i32(1..=9),
            // Long overdue: every rung of the ladder, the chief's included.
            _ => self.rng.i32(10..=60),
        };
        d.due_on = Some(self.position(p));
    }

    fn history(&mut self, d: &mut Directive) {
        let roll = self.rng.u32(..100);
        let due = {
            let n = self.rng.u64(45..2000);
            self.days(self.today, n, true)
        };
        match roll {
            0..=59 => {
                d.status = Status::Completed;
                d.due_on = Some(due);
                d.completed_on = Some({
                    let n = self.rng.u64(0..15);
                    self.days(due, n, true)
                });
                d.result = Some("Đã hoàn thành, có báo cáo kết quả".into());
            }
            60..=69 => {
                d.status = Status::Cancelled;
                d.due_on = Some(due);
            }
            70..=77 => {
                d.status = Status::Closed;
                d.due_on = Some(due);
                d.closed_on = Some({
                    let n = self.rng.u64(60..2000);
                    self.days(self.today, n, true)
                });
            }
            _ => {
                d.due_on = Some({
                    let n = self.rng.u64(15..400);
                    self.days(self.today, n, false)
                });
                d.assigned_on = Some({
                    let n = self.rng.u64(0..30);
                    self.days(self.today, n, true)
                });
            }
        }
    }
}

/// Officers for a dataset: a tenth of the due window (about ten open items each in the
/// window), so the agency grows with the work in hand, not with its history.
fn officers_for(profile: Profile, total: u64, window: u64) -> usize {
    match profile {
        Profile::Delivery => usize::try_from(total).unwrap_or(usize::MAX).max(1),
        Profile::Agency => usize::try_from(window / 10).unwrap_or(usize::MAX).max(20),
    }
}

// ---------------------------------------------------------------------------------------
// Child: one measurement.

fn bench_now(config: &Config) -> anyhow::Result<DateTime<Tz>> {
    parse_instant(BENCH_AT, config.timezone).map_err(anyhow::Error::msg)
}

/// Peak resident set of this process so far, in MB (VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rate(work: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        work as f64 / seconds
    } else {
        0.0
    }
}

async fn child(config: Arc<Config>, job: Job) -> anyhow::Result<()> {
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
    };
    app.store.close().await;
    let peak = peak_rss_mb();
    let mut out = std::io::stdout().lock();
    for mut m in results {
        m.peak_rss_mb = peak;
        writeln!(out, "{}", serde_json::to_string(&m)?)?;
    }
    Ok(())
}

async fn generate(app: &App, job: &Job, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
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
async fn scan(app: &App, job: &Job, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let policy = &app.config.raw.policy;
    let started = Instant::now();
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    let loaded = Instant::now();
    let mut notices = plan(&snapshot, policy, &calendar, now);
    notices.extend(plan_reports(&snapshot, &app.config.reports, &calendar, now));
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

async fn enqueue(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Vec<Measurement>> {
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

fn deliverer<'a>(app: &'a App, outlets: &'a Outlets, stopping: &'a AtomicBool) -> Deliverer<'a> {
    app.deliverer(outlets, stopping)
}

/// Outlets as configured, but with the given transport settings.
fn outlets_with(_app: &App, config: &Config) -> anyhow::Result<Outlets> {
    Ok(Outlets::from_config(config)?)
}

fn delivery_detail(stats: &DeliveryStats) -> String {
    format!(
        "{} messages created, {} sent, {} superseded, {} to retry, {} dead",
        stats.messages_created, stats.sent, stats.superseded, stats.retry_later, stats.dead
    )
}

/// Delivery alone: what is owed is recorded first (untimed), then claimed, re-checked,
/// rendered, recorded as messages and handed to the file transport.
async fn render(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
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
    let stats = deliverer(app, &outlets, &stopping).deliver(&snapshot, &calendar, now).await?;
    m.seconds = started.elapsed().as_secs_f64();
    m.work = u64::try_from(pending).unwrap_or(0);
    m.unit = "owed notices".into();
    m.rate = rate(m.work, m.seconds);
    m.detail = format!("claim → re-check → render → record → file transport: {}", delivery_detail(&stats));
    Ok(m)
}

/// `App::tick` on a fresh copy of the dataset, its outbox empty.
async fn cycle(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Measurement> {
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
async fn morning(app: &App, now: DateTime<Tz>, m: Measurement) -> anyhow::Result<Measurement> {
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
async fn timed_tick(
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
async fn smtp_prepare(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let mut config = (*app.config).clone();
    config.transport = MailTransport::File;
    let outlets = outlets_with(app, &config)?;
    let owed = app.owed(now).await?;
    app.store.enqueue(&owed, now.timestamp()).await?;
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    let stopping = AtomicBool::new(false);
    let started = Instant::now();
    let stats = deliverer(app, &outlets, &stopping).deliver(&snapshot, &calendar, now).await?;
    m.seconds = started.elapsed().as_secs_f64();
    m.work = stats.messages_created as u64;
    m.unit = "messages".into();
    m.rate = rate(m.work, m.seconds);
    m.detail = delivery_detail(&stats);
    Ok(m)
}

async fn smtp(app: &App, now: DateTime<Tz>, mut m: Measurement) -> anyhow::Result<Measurement> {
    let queued = app.store.requeue_messages().await?;
    let outlets = app.outlets()?;
    let calendar = app.calendar().await?;
    let snapshot = app.snapshot(&calendar, now).await?;
    let stopping = AtomicBool::new(false);
    let started = Instant::now();
    let stats = deliverer(app, &outlets, &stopping).deliver(&snapshot, &calendar, now).await?;
    m.seconds = started.elapsed().as_secs_f64();
    m.work = stats.sent as u64;
    m.unit = "emails".into();
    m.rate = rate(m.work, m.seconds);
    let smtp = &app.config.raw.mail.smtp;
    m.measurement = format!("smtp pool {}", smtp.pool_size);
    m.detail = format!(
        "{queued} queued messages to {}:{}, pool {} × concurrency {}: {}",
        smtp.host,
        smtp.port,
        smtp.pool_size,
        app.config.raw.delivery.concurrency,
        delivery_detail(&stats)
    );
    if stats.sent as u64 != queued {
        bail!("only {} of {queued} emails were accepted: {}", stats.sent, m.detail);
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Parent: datasets, child processes, the SMTP sink, the table.

/// What the parent runs, after --smoke has filled in its tiny sizes.
struct Settings {
    backends: Vec<&'static str>,
    sizes: Vec<u64>,
    /// The national cycle: (directives, directives in the window) sized for ~100,000 owed notices.
    national: Option<(u64, u64)>,
    growth: Vec<u64>,
    growth_window: u64,
    emails: u64,
    pools: Vec<u32>,
    /// Scans per point, each in its own process: the median time and the highest peak count.
    scan_runs: u32,
}

/// Share of the national dataset inside the due window. Each directive there owes ~1.7
/// notices (its officer, and the head, block leader and chief as it grows overdue), so 6% of
/// a million directives owe ~100,000 notices: the whole cycle.
const NATIONAL_WINDOW_PERCENT: u64 = 6;

impl Settings {
    fn from_args(args: &BenchArgs) -> Settings {
        let backends = match args.backend {
            BackendChoice::Sqlite => vec!["sqlite"],
            BackendChoice::Postgres => vec!["postgres"],
            BackendChoice::Both => vec!["sqlite", "postgres"],
        };
        let national = |total: u64| Some((total, total * NATIONAL_WINDOW_PERCENT / 100));
        if args.smoke {
            return Settings {
                backends,
                sizes: vec![2_000],
                national: national(2_000),
                growth: vec![2_000, 6_000],
                growth_window: 200,
                emails: 200,
                pools: args.pools.clone(),
                scan_runs: 1,
            };
        }
        Settings {
            backends,
            sizes: args.sizes.clone(),
            national: if args.no_national { None } else { args.sizes.iter().copied().max().and_then(national) },
            growth: args.growth.clone(),
            growth_window: args.growth_window,
            emails: args.emails,
            pools: args.pools.clone(),
            scan_runs: 3,
        }
    }
}

/// A database made for one dataset and dropped afterwards.
struct Dataset {
    url: String,
    pg_name: Option<String>,
}

struct Parent {
    exe: PathBuf,
    work: PathBuf,
    pg_admin: String,
    smtp: Option<(String, u16)>,
    results: Vec<Measurement>,
    failures: Vec<String>,
    out: Option<std::fs::File>,
}

async fn parent(args: BenchArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(&args);
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            std::env::temp_dir().join(format!("nhacviec-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        }
    };
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let pg_admin = args
        .pg_url
        .clone()
        .or_else(|| std::env::var("NHACVIEC_TEST_PG_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut sink = None;
    let smtp = match &args.smtp {
        Some(addr) => Some(parse_host_port(addr)?),
        None => match start_smtp_sink(&work) {
            Ok((child, port)) => {
                sink = Some(child);
                Some(("127.0.0.1".to_string(), port))
            }
            Err(e) => {
                eprintln!("bench: no SMTP sink, delivery not measured: {e:#}");
                None
            }
        },
    };
    let out = match &args.out {
        Some(path) => Some(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?),
        None => None,
    };
    let mut parent = Parent {
        exe: std::env::current_exe().context("cannot find the nhacviec executable")?,
        work: work.clone(),
        pg_admin,
        smtp,
        results: Vec::new(),
        failures: Vec::new(),
        out,
    };
    eprintln!("bench: {} at {BENCH_AT}; work dir {}", machine(), work.display());
    let outcome = parent.run_all(&settings).await;
    if let Some(mut child) = sink {
        let _ = child.kill();
        let _ = child.wait();
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    outcome?;
    println!("{}", table(&parent.results));
    if parent.smtp.is_none() {
        parent.failures.push("delivery was not measured: no SMTP sink (install postfix, or pass --smtp)".into());
    }
    if !parent.failures.is_empty() {
        bail!("{} benchmark step(s) failed:\n  {}", parent.failures.len(), parent.failures.join("\n  "));
    }
    Ok(())
}

impl Parent {
    async fn run_all(&mut self, settings: &Settings) -> anyhow::Result<()> {
        for backend in settings.backends.clone() {
            for &size in &settings.sizes {
                self.dataset(
                    backend,
                    Profile::Agency,
                    size,
                    size / 10,
                    settings.scan_runs,
                    "scan",
                    &[(Task::Enqueue, "enqueue"), (Task::Render, "render"), (Task::Cycle, "cycle")],
                )
                .await?;
            }
            if let Some((total, window)) = settings.national {
                self.dataset(
                    backend,
                    Profile::Agency,
                    total,
                    window,
                    0,
                    "",
                    &[
                        (Task::Render, "national_render"),
                        (Task::Cycle, "national_cycle"),
                        (Task::Morning, "national_morning"),
                    ],
                )
                .await?;
            }
            for &total in &settings.growth {
                let window = settings.growth_window.min(total);
                self.dataset(backend, Profile::Agency, total, window, settings.scan_runs, "growth", &[]).await?;
            }
            if let Some((host, port)) = self.smtp.clone() {
                self.delivery(backend, settings, &host, port).await?;
            }
        }
        Ok(())
    }

    /// Generates one dataset, scans it `scans` times (each scan its own process), then runs
    /// each destructive step on a fresh copy of it, so every step starts from the same state.
    #[allow(clippy::too_many_arguments)]
    async fn dataset(
        &mut self,
        backend: &str,
        profile: Profile,
        total: u64,
        window: u64,
        scans: u32,
        scan_label: &str,
        steps: &[(Task, &str)],
    ) -> anyhow::Result<()> {
        let base = self.create(backend, &format!("{scan_label}{total}w{window}")).await?;
        let job = |task, label: &str| Job { task, profile, total, window, runs: 1, label: label.into() };
        if self.child(backend, &base, &job(Task::Generate, "generate"), &[]) {
            if scans > 0 {
                self.scans(backend, &base, &job(Task::Scan, scan_label), scans);
            }
            for (task, label) in steps {
                let copy = self.copy(backend, &base, label).await?;
                self.child(backend, &copy, &job(*task, label), &[]);
                self.drop_dataset(copy).await;
            }
        }
        self.drop_dataset(base).await;
        Ok(())
    }

    /// `runs` scans in as many processes: one row with the median time and the highest peak.
    fn scans(&mut self, backend: &str, dataset: &Dataset, job: &Job, runs: u32) {
        let mut all = Vec::new();
        for _ in 0..runs {
            match self.spawn(dataset, job, &[]) {
                Ok(list) => all.extend(list),
                Err(e) => {
                    let what = format!("{backend} {} n={}", job.label, job.total);
                    eprintln!("bench: {what} failed: {e:#}");
                    self.failures.push(format!("{what}: {e:#}"));
                    return;
                }
            }
        }
        all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let peak = all.iter().map(|m| m.peak_rss_mb).fold(0.0, f64::max);
        if let Some(mut m) = all.get(all.len() / 2).cloned() {
            m.peak_rss_mb = peak;
            m.detail = format!("{} (median of {runs} runs, each its own process)", m.detail);
            self.record(backend, m);
        }
    }

    async fn delivery(&mut self, backend: &str, settings: &Settings, host: &str, port: u16) -> anyhow::Result<()> {
        let n = settings.emails;
        let dataset = self.create(backend, "smtp").await?;
        let base = Job {
            task: Task::Generate,
            profile: Profile::Delivery,
            total: n,
            window: n,
            runs: 1,
            label: "generate".into(),
        };
        let prepare = Job { task: Task::SmtpPrepare, label: "smtp_prepare".into(), ..base.clone() };
        if self.child(backend, &dataset, &base, &[]) && self.child(backend, &dataset, &prepare, &[]) {
            for &pool in &settings.pools {
                let env = [
                    ("NHACVIEC__MAIL__TRANSPORT", "smtp".to_string()),
                    ("NHACVIEC__MAIL__SMTP__HOST", host.to_string()),
                    ("NHACVIEC__MAIL__SMTP__PORT", port.to_string()),
                    ("NHACVIEC__MAIL__SMTP__POOL_SIZE", pool.to_string()),
                    ("NHACVIEC__DELIVERY__CONCURRENCY", pool.to_string()),
                ];
                let job = Job { task: Task::Smtp, label: "smtp".into(), ..base.clone() };
                self.child(backend, &dataset, &job, &env);
            }
        }
        self.drop_dataset(dataset).await;
        Ok(())
    }

    async fn create(&self, backend: &str, name: &str) -> anyhow::Result<Dataset> {
        if backend == "sqlite" {
            let path = self.work.join(format!("{name}.db"));
            remove_sqlite(&path.display().to_string());
            return Ok(Dataset { url: format!("sqlite://{}", path.display()), pg_name: None });
        }
        self.create_pg("").await
    }

    /// A new PostgreSQL database, empty or a copy of `template`.
    async fn create_pg(&self, template: &str) -> anyhow::Result<Dataset> {
        use sqlx::Connection;
        let db = format!("nhacviec_bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut conn = sqlx::PgConnection::connect(&self.pg_admin)
            .await
            .with_context(|| format!("PostgreSQL is not reachable at {}", crate::config::redact_url(&self.pg_admin)))?;
        let from = if template.is_empty() { String::new() } else { format!(" TEMPLATE {template}") };
        sqlx::query(&format!("CREATE DATABASE {db}{from}")).execute(&mut conn).await?;
        let _ = conn.close().await;
        let base = self.pg_admin.rsplit_once('/').map_or(self.pg_admin.as_str(), |(b, _)| b);
        Ok(Dataset { url: format!("{base}/{db}"), pg_name: Some(db) })
    }

    /// A copy of a generated dataset (a file copy; `CREATE DATABASE … TEMPLATE`).
    async fn copy(&self, backend: &str, base: &Dataset, label: &str) -> anyhow::Result<Dataset> {
        match &base.pg_name {
            Some(template) => self.create_pg(template).await,
            None => {
                let from = base.url.trim_start_matches("sqlite://");
                let to = format!("{from}.{label}.db");
                remove_sqlite(&to);
                for suffix in ["", "-wal"] {
                    let source = format!("{from}{suffix}");
                    if Path::new(&source).exists() {
                        std::fs::copy(&source, format!("{to}{suffix}"))
                            .with_context(|| format!("cannot copy {source} for {backend} {label}"))?;
                    }
                }
                Ok(Dataset { url: format!("sqlite://{to}"), pg_name: None })
            }
        }
    }

    async fn drop_dataset(&self, dataset: Dataset) {
        match dataset.pg_name {
            Some(db) => {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&self.pg_admin).await {
                    if let Err(e) =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut conn).await
                    {
                        eprintln!("bench: cannot drop database {db}: {e}");
                    }
                    let _ = conn.close().await;
                }
            }
            None => remove_sqlite(dataset.url.trim_start_matches("sqlite://")),
        }
    }

    fn record(&mut self, backend: &str, mut m: Measurement) {
        m.backend = backend.to_string();
        judge(&mut m);
        eprintln!("bench: {}", one_line(&m));
        if let Some(out) = &mut self.out {
            let _ = serde_json::to_string(&m).map(|line| writeln!(out, "{line}"));
        }
        self.results.push(m);
    }

    /// Runs one job in a child process; records its results (or its failure). True on success.
    fn child(&mut self, backend: &str, dataset: &Dataset, job: &Job, env: &[(&str, String)]) -> bool {
        let what = format!("{backend} {} n={}", job.label, job.total);
        match self.spawn(dataset, job, env) {
            Ok(list) => {
                for m in list {
                    self.record(backend, m);
                }
                true
            }
            Err(e) => {
                eprintln!("bench: {what} failed: {e:#}");
                self.failures.push(format!("{what}: {e:#}"));
                false
            }
        }
    }

    fn spawn(&self, dataset: &Dataset, job: &Job, env: &[(&str, String)]) -> anyhow::Result<Vec<Measurement>> {
        let mail_dir = self.work.join(format!("mail-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let mut cmd = Command::new(&self.exe);
        cmd.arg("bench")
            .arg("--one")
            .arg(serde_json::to_string(job)?)
            // The built-in defaults only (no /etc or ./config file): results comparable anywhere.
            .env("NHACVIEC_CONFIG", "/dev/null")
            .env("NHACVIEC__DATABASE__URL", &dataset.url)
            .env("NHACVIEC__CALENDAR__DIR", "")
            .env("NHACVIEC__HTTP__LISTEN", "")
            .env("NHACVIEC__MAIL__TRANSPORT", "file")
            .env("NHACVIEC__MAIL__FILE_DIR", &mail_dir)
            // Reminders only: weekly digests and monthly reports are another workload.
            .env("NHACVIEC__REPORTS__WEEKLY", "")
            .env("NHACVIEC__REPORTS__MONTHLY", "false")
            // One log line per message sent would time the terminal, not nhacviec.
            .env("RUST_LOG", std::env::var("NHACVIEC_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The .eml files stay until the run ends: deleting thousands of files makes ext4 slow
        // to create the next child's (it skips recently freed inodes), which would be timed.
        let output = cmd.output().context("cannot start the child process")?;
        if !output.status.success() {
            bail!("child exited with {}", output.status);
        }
        let mut list = Vec::new();
        for line in BufReader::new(output.stdout.as_slice()).lines() {
            let line = line?;
            if line.starts_with('{') {
                list.push(serde_json::from_str(&line).with_context(|| format!("child printed {line:?}"))?);
            }
        }
        if list.is_empty() {
            bail!("child reported nothing");
        }
        Ok(list)
    }
}

fn remove_sqlite(path: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

fn parse_host_port(addr: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = addr.rsplit_once(':').context("--smtp: expected HOST:PORT")?;
    Ok((host.to_string(), port.parse().context("--smtp: bad port")?))
}

/// Postfix's smtp-sink on a free loopback port: accepts and discards everything, fast.
fn start_smtp_sink(work: &Path) -> anyhow::Result<(Child, u16)> {
    let exe = ["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("smtp-sink not found (apt-get install postfix; scripts/bench does it)")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut cmd = Command::new(exe);
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    let mut child = cmd
        .arg(format!("127.0.0.1:{port}"))
        .arg("1000")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start smtp-sink")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("smtp-sink did not start listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, port))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().next() == Some("0")))
        .unwrap_or(false)
}

/// CPU model and core count, for the table's heading.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} core(s)")
}

/// The targets: full scan of 1M ≤ 1 s, ≤ 150 MB at 1M, whole cycle at 1M with
/// ~100,000 owed notices ≤ 5 s, ≥ 1,000 emails/s.
fn judge(m: &mut Measurement) {
    let at_scale = m.directives >= 1_000_000;
    let (target, met) = match m.measurement.as_str() {
        "scan" if at_scale => ("≤ 1 s, ≤ 150 MB", m.seconds <= 1.0 && m.peak_rss_mb <= 150.0),
        "national_cycle" | "national_morning" if at_scale => {
            ("≤ 5 s, ≤ 150 MB", m.seconds <= 5.0 && m.peak_rss_mb <= 150.0)
        }
        s if s.starts_with("smtp pool") => ("≥ 1,000 emails/s", m.rate >= 1000.0),
        _ => return,
    };
    m.target = Some(target.into());
    m.met = Some(met);
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn one_line(m: &Measurement) -> String {
    format!(
        "{} {} N={} work={} {} in {:.3} s ({}/s), peak {:.0} MB; {}",
        m.backend,
        m.measurement,
        m.directives,
        m.work,
        m.unit,
        m.seconds,
        thousands(m.rate),
        m.peak_rss_mb,
        m.detail
    )
}

fn table(results: &[Measurement]) -> String {
    let mut out = format!(
        "Machine: {}. Instant: {BENCH_AT}.\n\n\
         | Backend | Measurement | Directives (in window) | Work | Time | Rate | Peak RSS | Target |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
        machine()
    );
    for m in results {
        let target = match (&m.target, m.met) {
            (Some(t), Some(true)) => format!("✅ {t}"),
            (Some(t), _) => format!("❌ {t}"),
            _ => String::new(),
        };
        let rate_unit =
            if m.measurement == "scan" || m.measurement == "growth" { "directives" } else { m.unit.as_str() };
        out.push_str(&format!(
            "| {} | {} | {} ({}) | {} {} | {:.3} s | {} {rate_unit}/s | {:.0} MB | {} |\n",
            m.backend,
            m.measurement,
            thousands(m.directives as f64),
            thousands(m.window as f64),
            thousands(m.work as f64),
            m.unit,
            m.seconds,
            thousands(m.rate),
            m.peak_rss_mb,
            target
        ));
    }
    out.push_str("\nDetails:\n\n");
    for m in results {
        out.push_str(&format!(
            "- {} {} (N={}): {}\n",
            m.backend,
            m.measurement,
            thousands(m.directives as f64),
            m.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_puts_exactly_the_window_in_the_window_and_is_deterministic() {
        let calendar = Calendar::load(None).unwrap();
        let today = NaiveDate::from_ymd_opt(2025, 9, 16).unwrap();
        let agency = Agency::new(officers_for(Profile::Agency, 5_000, 500), false);
        let all = |agency| {
            let mut g = Generator::new(agency, Profile::Agency, 5_000, 500, &calendar, today);
            let mut v = Vec::new();
            loop {
                let chunk = g.next_chunk(777);
                if chunk.is_empty() {
                    break v;
                }
                v.extend(chunk);
            }
        };
        let first = all(&agency);
        assert_eq!(first.len(), 5_000);
        assert_eq!(first, all(&agency));
        let horizon = calendar.add_working_days(today, 3);
        let near = first
            .iter()
            .filter(|d| match d.status {
                Status::Open | Status::InProgress => d.due_on.is_none_or(|due| due <= horizon),
                Status::Closed => d.closed_on.is_some_and(|c| c >= today - Days::new(30)),
                _ => false,
            })
            .count();
        assert_eq!(near, 500);
    }

    #[test]
    fn thousands_are_grouped_for_the_table() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
