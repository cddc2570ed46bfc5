//! Benchmarks at national scale, beside the data flow rather than in it: a synthetic agency
//! goes in through the store's bulk import path, then the real store → planner → outbox →
//! render → channel path is timed at a fixed instant (`BENCH_AT`). Each measurement runs in
//! a child process (`nhacviec-bench --one JOB`) so its peak resident memory (VmHWM) is its own; the
//! parent creates and drops the databases, starts Postfix `smtp-sink`, and prints a Markdown
//! table (and JSON lines with `--out`). A binary of its own (`nhacviec-bench`, driven by
//! `scripts/bench`): nothing here is compiled into the daemon.

mod agency;
#[path = "../../alloc.rs"]
mod alloc;
mod child;
mod parent;
mod sources;

use clap::Parser;

use anyhow::{bail, Context};
use chrono::{DateTime, Days, NaiveDate};
use chrono_tz::Tz;
use nhacviec::app::{App, Outlets, TickReport};
use nhacviec::calendar::Calendar;
use nhacviec::cli::at::parse_instant;
use nhacviec::config::{Config, MailTransport};
use nhacviec::deliver::{Deliverer, DeliveryStats};
use nhacviec::domain::{Directive, DirectiveKind, Person, Role, Status, Unit};
use nhacviec::plan::plan;
use nhacviec::report::plan_reports;
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

/// Benchmark planning, enqueue, rendering, delivery and memory on a synthetic agency.
#[derive(Debug, Clone, Parser)]
#[command(name = "nhacviec-bench", version)]
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
    /// Sources: an xlsx snapshot, its unchanged re-sync, a SQL table.
    Sources,
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

/// Runs the benchmark: as the parent (orchestrating child processes) or as one child.
pub async fn run(config: Arc<Config>, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(job) = &args.one {
        let job: Job = serde_json::from_str(job).context("bench --one: bad job")?;
        return child::child(config, job).await;
    }
    parent::parent(args).await
}

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let config = match Config::load(None) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(78);
        }
    };
    nhacviec::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Arc::new(config), args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").trim_end());
            std::process::ExitCode::FAILURE
        }
    }
}
