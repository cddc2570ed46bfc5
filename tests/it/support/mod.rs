//! Test harness: a fresh database per test (SQLite file or a new PostgreSQL database), the
//! real binary, a real SMTP server (aiosmtpd) on a port chosen at run time, and a real MIME
//! parser. Nothing here sleeps for readiness: it waits for the peer's ready file.
#![allow(dead_code)]

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const DEMO_AT: &str = "2022-09-05T08:00:00+07:00";
/// The instant daemons under test start their clock at (`run --at`): a Wednesday morning, so
/// no test depends on the real date, and no weekly digest is due.
pub const DAEMON_AT: &str = "2022-10-05T09:00:00+07:00";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nhacviec"))
}

/// Where the test PostgreSQL server is: `NHACVIEC_TEST_PG_URL` (scripts/test sets it when it
/// starts a throwaway cluster), else the machine's server on 127.0.0.1:5432.
pub fn pg_admin_url() -> String {
    std::env::var("NHACVIEC_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The MariaDB (MySQL) server the SQL-source tests read from.
pub fn mysql_admin_url() -> String {
    std::env::var("NHACVIEC_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A fresh MariaDB database for one test, its URL. Panics (never skips) when no server answers.
pub async fn fresh_mysql_database() -> String {
    use sqlx::Connection;
    let admin = mysql_admin_url();
    let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("MariaDB is not reachable at {admin} ({e}). Run the suite with scripts/test, which starts one.")
    });
    let name = format!("nhacviec_src_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_string();
    format!("{base}/{name}")
}

/// A static HTTP server with ETags (tests/peers/etag_server.py) serving `dir`.
pub struct EtagPeer {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl EtagPeer {
    // The child is handed to EtagPeer, whose Drop kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn start(dir: &Path, token: Option<&str>) -> EtagPeer {
        let port_file = dir.join(format!("etag-port-{}", uuid::Uuid::new_v4().simple()));
        let log = dir.join("etag-requests.jsonl");
        let mut command = Command::new(python());
        command.arg(repo().join("tests/peers/etag_server.py")).arg("--dir").arg(dir).arg("--port-file").arg(&port_file);
        command.arg("--log").arg(&log);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("start etag_server.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse().ok()) {
                return EtagPeer { child, port, log };
            }
            assert!(Instant::now() < deadline, "the ETag server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every request so far: path, status, If-None-Match, Authorization.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for EtagPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a fresh PostgreSQL database for one test and returns its URL. Panics (never
/// skips) when no server answers: CI must exercise PostgreSQL.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin} ({e}). Run the suite with scripts/test, which \
             starts a throwaway server when none runs, or set NHACVIEC_TEST_PG_URL."
        )
    });
    let name = format!("nhacviec_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
    format!("{base}/{name}")
}

/// The two backends every store test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A fresh, empty database URL of the given backend; the directory keeps a SQLite file alive.
pub async fn fresh_database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display()),
        Backend::Postgres => fresh_pg_database().await,
    }
}

/// Runs the real binary with `env` (plus the database URL) and returns its output.
pub struct Nhacviec {
    pub db_url: String,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl Nhacviec {
    pub fn new(db_url: &str, dir: &Path) -> Nhacviec {
        Nhacviec { db_url: db_url.to_string(), env: Vec::new(), dir: dir.to_path_buf() }
    }

    pub fn with(mut self, key: &str, value: &str) -> Nhacviec {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(&bin(), args)
    }

    /// [`Nhacviec::command`] for another binary of the package (`nhacviec-bench`).
    pub fn command_of(&self, exe: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .current_dir(&self.dir)
            .env_remove("NHACVIEC_CONFIG")
            .env("NHACVIEC__DATABASE__URL", &self.db_url)
            .env("NHACVIEC__CALENDAR__DIR", "")
            .env("NHACVIEC__HTTP__LISTEN", "")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run nhacviec")
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "nhacviec {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and asserts failure, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "nhacviec {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    pub fn import_json(&self, name: &str, json: &serde_json::Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(json).expect("json")).expect("write import file");
        self.ok(&["import", path.to_str().expect("path")])
    }

    pub fn plan_json(&self, at: &str) -> Vec<PlannedNotice> {
        self.ok(&["plan", "--at", at, "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("plan --json line {l:?}: {e}")))
            .collect()
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }
}

/// One line of `plan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedNotice {
    pub kind: String,
    pub directive: Option<String>,
    pub recipient: String,
    pub address: String,
    pub channel: String,
    pub stage: String,
    pub key: String,
}

fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/setup-test-peers.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/setup-test-peers.sh");
        assert!(out.status.success(), "scripts/setup-test-peers.sh failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout
            .lines()
            .find_map(|l| l.strip_prefix("test peers ready: "))
            .expect("setup-test-peers prints the python path");
        PathBuf::from(path.trim())
    })
}

/// A real SMTP server (aiosmtpd) writing a Maildir; killed when dropped.
pub struct SmtpPeer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    args: Vec<String>,
}

impl SmtpPeer {
    pub fn start(dir: &Path, extra: &[&str]) -> SmtpPeer {
        let maildir = dir.join(format!("maildir-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&maildir).expect("maildir");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_peer(&maildir, 0, &args);
        SmtpPeer { port, maildir, child, args }
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and Maildir.
    pub fn restart(&mut self) {
        self.stop();
        let (child, _) = spawn_peer(&self.maildir, self.port, &self.args);
        self.child = child;
    }

    /// Every accepted message, parsed and checked by tests/peers/mime_check.py.
    pub fn messages(&self) -> Vec<Mail> {
        let new = self.maildir.join("new");
        if !new.is_dir() || std::fs::read_dir(&new).map_or(0, |d| d.count()) == 0 {
            return Vec::new();
        }
        mime_check(&self.maildir)
    }

    /// Events the peer logged (accepted messages and injected faults).
    pub fn log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.maildir.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("NHACVIEC__MAIL__TRANSPORT".into(), "smtp".into()),
            ("NHACVIEC__MAIL__SMTP__HOST".into(), "127.0.0.1".into()),
            ("NHACVIEC__MAIL__SMTP__PORT".into(), self.port.to_string()),
            ("NHACVIEC__MAIL__SMTP__TIMEOUT_SECONDS".into(), "5".into()),
        ]
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

// The child is handed to SmtpPeer, whose Drop kills and waits for it.
#[allow(clippy::zombie_processes)]
fn spawn_peer(maildir: &Path, port: u16, extra: &[String]) -> (Child, u16) {
    let ready = maildir.join(format!("ready-{}", uuid::Uuid::new_v4().simple()));
    let child = Command::new(python())
        .arg(repo().join("tests/peers/smtp_peer.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--maildir")
        .arg(maildir)
        .arg("--ready-file")
        .arg(&ready)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start smtp_peer.py");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if let Ok(port) = text.trim().parse() {
                return (child, port);
            }
        }
        if Instant::now() > deadline {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("SMTP peer did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A message as a strict MIME parser (Python's email package) sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub file: String,
    pub ok: bool,
    pub errors: Vec<String>,
    pub message_id: Option<String>,
    pub to: Vec<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub date_iso: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Every top-level header, decoded, as the parser read it.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
}

pub fn mime_check(path: &Path) -> Vec<Mail> {
    let out = Command::new(python())
        .arg(repo().join("tests/peers/mime_check.py"))
        .arg(path)
        .output()
        .expect("run mime_check.py");
    let mails: Vec<Mail> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("mime_check line {l:?}: {e}")))
        .collect();
    for m in &mails {
        assert!(m.ok, "MIME check failed for {}: {:?}", m.file, m.errors);
    }
    mails
}

/// A small agency for tests: one unit NV1 (head tp, leader pct), a chief, two officers.
pub fn small_agency(directives: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "units": [
            {"code": "NV1", "name": "Phòng Nghiệp vụ 1", "head": "tp", "leader": "pct"},
            {"code": "LD", "name": "Lãnh đạo", "head": "chanh", "leader": "chanh"}
        ],
        "people": [
            {"code": "tp", "name": "Huỳnh Văn Phúc", "title": "Trưởng phòng", "email": "tp@example.gov.vn", "unit": "NV1", "role": "head", "active": true},
            {"code": "pct", "name": "Nguyễn Văn Hùng", "title": "Phó Chánh Thanh tra", "email": "pct@example.gov.vn", "unit": "LD", "role": "leader", "active": true},
            {"code": "chanh", "name": "Trần Minh An", "title": "Chánh Thanh tra", "email": "chanh@example.gov.vn", "unit": "LD", "role": "chief", "active": true},
            {"code": "lien", "name": "Nguyễn Thị Liên", "title": "Thanh tra viên", "email": "lien@example.gov.vn", "unit": "NV1", "role": "officer", "active": true},
            {"code": "ly", "name": "Trần Thị Ly", "title": "Chuyên viên", "email": "ly@example.gov.vn", "unit": "NV1", "role": "officer", "active": true}
        ],
        "directives": directives
    })
}

/// A directive in the import format with sensible defaults.
pub fn directive(code: &str, assignee: Option<&str>, due_on: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "code": code, "kind": "task", "title": format!("Nhiệm vụ {code} – kiểm tra, báo cáo"),
        "source": "KL giao ban 08/2022", "unit": "NV1", "assignee": assignee, "leader": null,
        "assigned_on": "2022-08-11", "due_on": due_on, "status": "open",
        "completed_on": null, "closed_on": null, "result": null, "confidential": false
    })
}

/// (message_id, recipient, status, attempts) of every recorded message, read straight from
/// the database.
pub async fn recorded_messages(db_url: &str) -> Vec<(String, String, String, i64)> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = if db_url.starts_with("sqlite:") { format!("{db_url}?mode=rw") } else { db_url.to_string() };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query_as("SELECT message_id, recipient, status, attempts FROM messages ORDER BY recipient, created_at")
        .fetch_all(&mut conn)
        .await
        .expect("query messages")
}

/// Environment for delivering at any hour on any day (tests of the daemon on the wall clock).
pub fn any_hour() -> Vec<(String, String)> {
    vec![
        ("NHACVIEC__SEND_WINDOW__START".into(), "00:00".into()),
        ("NHACVIEC__SEND_WINDOW__END".into(), "23:59".into()),
        ("NHACVIEC__SEND_WINDOW__WORKING_DAYS_ONLY".into(), "false".into()),
    ]
}

/// A free TCP port on 127.0.0.1, chosen now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A plain HTTP/1.1 GET: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A throwaway PostgreSQL cluster owned by one test (so the test may stop and restart it):
/// initdb with trust auth and fsync off, on a port chosen now. Stopped and removed on drop.
pub struct PgCluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bindir: PathBuf,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|p| p.join("initdb").exists()).max()
            })
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)");
        let dir = tempfile::Builder::new().prefix("nhacviec-pg").tempdir().expect("tempdir");
        let cluster = PgCluster { port: free_port(), dir, bindir };
        let _ = Command::new("chown").arg("-R").arg("postgres").arg(cluster.dir.path()).status();
        let data = cluster.dir.path().join("data");
        let out = cluster
            .as_postgres(&cluster.bindir.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        cluster.pg_ctl("start");
        cluster
    }

    fn as_postgres(&self, program: &Path) -> Command {
        // PostgreSQL refuses to run as root.
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        if is_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.dir.path().display());
        let mut cmd = self.as_postgres(&self.bindir.join("pg_ctl"));
        cmd.arg("-D").arg(&data).arg("-l").arg(self.dir.path().join("log")).args(["-w", "-m", "fast", "-o", &options]);
        let out = cmd.arg(action).output().expect("pg_ctl");
        assert!(out.status.success(), "pg_ctl {action}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A real HTTP server (tests/peers/http_peer.py) standing in for the Telegram Bot API and a
/// webhook receiver; it logs every request and verifies webhook signatures.
pub struct HttpPeer {
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl HttpPeer {
    // The child is killed and waited for in Drop.
    #[allow(clippy::zombie_processes)]
    pub fn start(dir: &Path, secret: &str) -> HttpPeer {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let log = dir.join(format!("http-{id}.jsonl"));
        let ready = dir.join(format!("http-{id}.ready"));
        let mut child = Command::new(python())
            .arg(repo().join("tests/peers/http_peer.py"))
            .arg("--log")
            .arg(&log)
            .arg("--ready-file")
            .arg(&ready)
            .args(["--secret", secret])
            .stdout(Stdio::null())
            .spawn()
            .expect("start http_peer.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&ready).ok().and_then(|t| t.trim().parse().ok()) {
                break port;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("HTTP peer did not become ready");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        HttpPeer { port, log, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("request log line"))
            .collect()
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
