//! Bench ← orchestration: creates and drops the datasets, starts the SMTP sink, runs each
//! measurement in a child process of this binary, and prints the Markdown table.
use super::*;

/// What the parent runs, after --smoke has filled in its tiny sizes.
pub(crate) struct Settings {
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
pub(crate) const NATIONAL_WINDOW_PERCENT: u64 = 6;

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
pub(crate) struct Dataset {
    url: String,
    pg_name: Option<String>,
}

pub(crate) struct Parent {
    exe: PathBuf,
    work: PathBuf,
    pg_admin: String,
    smtp: Option<(String, u16)>,
    results: Vec<Measurement>,
    failures: Vec<String>,
    out: Option<std::fs::File>,
}

pub(crate) async fn parent(args: BenchArgs) -> anyhow::Result<()> {
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
        exe: std::env::current_exe().context("cannot find the nhacviec-bench executable")?,
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
                    &[
                        (Task::Enqueue, "enqueue"),
                        (Task::Render, "render"),
                        (Task::Cycle, "cycle"),
                        (Task::Sources, "sources"),
                    ],
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
                let env = match task {
                    Task::Sources => vec![("NHACVIEC_BENCH_PG_ADMIN", self.pg_admin.clone())],
                    _ => Vec::new(),
                };
                self.child(backend, &copy, &job(*task, label), &env);
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
        let mut conn = sqlx::PgConnection::connect(&self.pg_admin).await.with_context(|| {
            format!("PostgreSQL is not reachable at {}", nhacviec::config::redact_url(&self.pg_admin))
        })?;
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
        cmd.arg("--one")
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

pub(crate) fn remove_sqlite(path: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

pub(crate) fn parse_host_port(addr: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = addr.rsplit_once(':').context("--smtp: expected HOST:PORT")?;
    Ok((host.to_string(), port.parse().context("--smtp: bad port")?))
}

/// Postfix's smtp-sink on a free loopback port: accepts and discards everything, fast.
pub(crate) fn start_smtp_sink(work: &Path) -> anyhow::Result<(Child, u16)> {
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

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().next() == Some("0")))
        .unwrap_or(false)
}

/// CPU model and core count, for the table's heading.
pub(crate) fn machine() -> String {
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
pub(crate) fn judge(m: &mut Measurement) {
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

pub(crate) fn thousands(n: f64) -> String {
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

pub(crate) fn one_line(m: &Measurement) -> String {
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

pub(crate) fn table(results: &[Measurement]) -> String {
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
