//! One wrong setting must never leave the service silently dead or loudly looping: through
//! the real binary, `check-config` and `run` refuse the same broken credential files and
//! never-firing schedules with exit status 78 (which the unit does not restart) and one line
//! on stderr; a password about to travel in clear is warned about; URLs are printed without
//! their credentials or tokens; the health endpoint survives a crowd of idle connections and
//! closes silent ones; and /healthz tells the truth while scans fail.

use crate::support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{any_hour, free_port, http_get, wait_for, Nhacviec};

/// EX_CONFIG: the unit's RestartPreventExitStatus=.
const EX_CONFIG: i32 = 78;

/// A fresh SQLite database in `dir`, the file transport (no SMTP peer needed), and a clock
/// that lets the daemon deliver at any hour.
fn nhacviec(dir: &Path) -> Nhacviec {
    let db = format!("sqlite://{}", dir.join("nhacviec.db").display());
    let mut nv = Nhacviec::new(&db, dir)
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", dir.join("mail").to_str().unwrap())
        .with("NHACVIEC__SCHEDULE__SCAN", "*/1 * * * * *");
    for (k, v) in any_hour() {
        nv.set(&k, &v);
    }
    nv
}

/// SMTP with AUTH, the password read from `password_file`.
fn with_smtp_auth(nv: Nhacviec, password_file: &Path) -> Nhacviec {
    nv.with("NHACVIEC__MAIL__TRANSPORT", "smtp")
        .with("NHACVIEC__MAIL__SMTP__HOST", "127.0.0.1")
        .with("NHACVIEC__MAIL__SMTP__PORT", &free_port().to_string())
        .with("NHACVIEC__MAIL__SMTP__USERNAME", "nhacviec")
        .with("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", password_file.to_str().unwrap())
}

/// Runs `args` to its end, which must come within `within` (a `run` that does not refuse
/// would run forever).
fn run_to_exit(nv: &Nhacviec, args: &[&str], within: Duration) -> Output {
    let mut child = nv.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nhacviec {args:?} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts exit status 78 with exactly one line on stderr naming every one of `needles`.
fn refused_with(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(EX_CONFIG), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(stderr.matches("os error").count() <= 1, "the OS error is given once: {stderr}");
    stderr
}

/// A running daemon, killed if the test ends early.
struct Daemon {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(nv: &Nhacviec) -> Daemon {
        Daemon::spawn(nv.command(&["run", "--at", support::DAEMON_AT]))
    }

    fn spawn(mut command: Command) -> Daemon {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Daemon { child, stderr }
    }

    fn logged(&self, needle: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit status must be 0.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn healthz_is(port: u16, code: u16) -> bool {
    http_get(port, "/healthz").is_some_and(|(status, _)| status == code)
}

/// Open sockets of process `pid` (the listener, accepted connections, any client ones).
fn sockets(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(Result::ok)
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:")))
        .count()
}

/// Descriptors of any kind open in process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |fds| fds.count())
}

#[test]
fn check_config_exits_78_naming_the_password_file_when_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("smtp-password");
    let nv = with_smtp_auth(nhacviec(dir.path()), &missing);
    let output = run_to_exit(&nv, &["check-config"], Duration::from_secs(30));
    refused_with(&output, &["mail.smtp.password_file", missing.to_str().unwrap(), "cannot read"]);
    assert!(output.stdout.is_empty(), "nothing printed as if it were fine");
}

#[test]
fn check_config_exits_78_naming_the_password_file_when_it_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be read as a file, whoever runs the test (chmod 000 does not stop root).
    let unreadable = dir.path().join("smtp-password");
    std::fs::create_dir(&unreadable).unwrap();
    let nv = with_smtp_auth(nhacviec(dir.path()), &unreadable);
    let output = run_to_exit(&nv, &["check-config"], Duration::from_secs(30));
    refused_with(&output, &["mail.smtp.password_file", unreadable.to_str().unwrap(), "cannot read"]);
}

#[test]
fn run_exits_78_with_one_line_before_touching_the_database_when_the_password_file_is_missing_or_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let unreadable = dir.path().join("a-directory");
    std::fs::create_dir(&unreadable).unwrap();
    for password_file in [dir.path().join("smtp-password"), unreadable] {
        let nv = with_smtp_auth(nhacviec(dir.path()), &password_file);
        let output = run_to_exit(&nv, &["run"], Duration::from_secs(30));
        refused_with(&output, &["mail.smtp.password_file", password_file.to_str().unwrap()]);
        assert!(!dir.path().join("nhacviec.db").exists(), "the database was opened before the check");
    }
}

#[test]
fn a_schedule_that_never_fires_makes_check_config_and_run_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).with("NHACVIEC__SCHEDULE__SCAN", "0 0 0 30 2 *");
    for command in ["check-config", "run"] {
        let output = run_to_exit(&nv, &[command], Duration::from_secs(30));
        refused_with(&output, &["schedule.scan", "\"0 0 0 30 2 *\" never fires"]);
    }
    let nv = nhacviec(dir.path()).with("NHACVIEC__REPORTS__WEEKLY", "0 30 7 * * Mon 2020");
    let output = run_to_exit(&nv, &["run"], Duration::from_secs(30));
    refused_with(&output, &["reports.weekly", "never fires"]);
}

#[test]
fn check_config_passes_but_warns_when_the_password_would_be_sent_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "hunter2-secret\n").unwrap();
    let nv = with_smtp_auth(nhacviec(dir.path()), &password);
    let output = run_to_exit(&nv, &["check-config"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.starts_with("warning: mail.smtp.tls: ") && stderr.contains("in clear"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "the password itself is never shown");

    let nv = nv.with("NHACVIEC__MAIL__SMTP__TLS", "starttls");
    let output = run_to_exit(&nv, &["check-config"], Duration::from_secs(30));
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn run_logs_a_warning_at_start_when_the_password_would_be_sent_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "hunter2-secret\n").unwrap();
    let nv = with_smtp_auth(nhacviec(dir.path()), &password);
    let daemon = Daemon::start(&nv);
    wait_for("the cleartext warning", Duration::from_secs(30), || daemon.logged("in clear"));
    assert!(!daemon.logged("hunter2"));
    daemon.stop();
}

#[test]
fn check_config_prints_no_credentials_or_token_of_a_webhook_url() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("webhook-secret");
    std::fs::write(&secret, "hmac-key\n").unwrap();
    let nv = nhacviec(dir.path())
        .with("NHACVIEC__WEBHOOK__ENABLED", "true")
        .with("NHACVIEC__WEBHOOK__URL", "https://hookuser:hookpass@hooks.example/in?token=abc123&v=2")
        .with("NHACVIEC__WEBHOOK__SECRET_FILE", secret.to_str().unwrap())
        .with("NHACVIEC__TELEGRAM__API_URL", "https://tguser:tgpass@tg.example/?key=tgkey");
    let stdout = nv.ok(&["check-config"]);
    for leaked in ["hookpass", "abc123", "tgpass", "tgkey"] {
        assert!(!stdout.contains(leaked), "{leaked} printed:\n{stdout}");
    }
    assert!(stdout.contains("url = \"https://hookuser:***@hooks.example/in?token=***&v=***\""), "{stdout}");

    // Nor when the URL is what is wrong.
    let nv = nv.with("NHACVIEC__WEBHOOK__URL", "ftp://hookuser:hookpass@hooks.example/in?token=abc123");
    let output = run_to_exit(&nv, &["check-config"], Duration::from_secs(30));
    let stderr = refused_with(&output, &["webhook.url"]);
    assert!(!stderr.contains("hookpass") && !stderr.contains("abc123"), "{stderr}");
}

#[test]
fn a_crowd_of_idle_connections_neither_exhausts_the_daemon_nor_silences_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nv = nhacviec(dir.path())
        .with("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"))
        .with("NHACVIEC__HTTP__MAX_CONNECTIONS", "20")
        .with("NHACVIEC__HTTP__HEADER_TIMEOUT_SECONDS", "1");
    // The daemon under a file limit a crowd of 150 could exhaust, were it not capped.
    let command = nv.command(&["run", "--at", support::DAEMON_AT]);
    let mut limited = Command::new("sh");
    limited
        .args(["-c", "ulimit -n 128 && exec \"$0\" run --at \"$1\""])
        .arg(command.get_program())
        .arg(support::DAEMON_AT)
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    if let Some(cwd) = command.get_current_dir() {
        limited.current_dir(cwd);
    }
    let daemon = Daemon::spawn(limited);
    wait_for("/healthz 200", Duration::from_secs(30), || healthz_is(port, 200));
    let baseline = sockets(daemon.pid());
    assert!(descriptors(daemon.pid()) + 20 < 128, "the cap must fit under the limit for this test to mean anything");

    let crowd: Vec<TcpStream> = (0..150).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    wait_for("the daemon to take up to its cap", Duration::from_secs(10), || sockets(daemon.pid()) >= baseline + 19);
    let mut most = 0;
    wait_for("/healthz to answer past the crowd", Duration::from_secs(60), || {
        most = most.max(sockets(daemon.pid()));
        healthz_is(port, 200)
    });
    assert!(most <= baseline + 20, "held {most} sockets, {baseline} before the crowd: the cap is 20");
    assert!(!daemon.logged("accept failed"), "the daemon ran out of descriptors");
    drop(crowd);
    daemon.stop();
}

#[test]
fn a_connection_that_sends_nothing_is_closed_by_the_daemon_within_its_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nv = nhacviec(dir.path())
        .with("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"))
        .with("NHACVIEC__HTTP__HEADER_TIMEOUT_SECONDS", "1");
    let daemon = Daemon::start(&nv);
    wait_for("/healthz 200", Duration::from_secs(30), || healthz_is(port, 200));

    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let opened = Instant::now();
    let mut rest = Vec::new();
    let closed = silent.read_to_end(&mut rest);
    let took = opened.elapsed();
    assert!(closed.is_ok(), "still open after {took:?}: {closed:?}");
    assert!(took < Duration::from_secs(10), "closed after {took:?}, the header timeout is 1 s");
    daemon.stop();
}

#[tokio::test]
async fn healthz_is_503_while_scans_fail_and_200_again_after_a_successful_scan() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nv = nhacviec(dir.path()).with("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"));
    let daemon = Daemon::start(&nv);
    wait_for("/healthz 200", Duration::from_secs(30), || healthz_is(port, 200));

    // Scans read the directives; with their table gone every scan fails while the database
    // itself still answers (which is all /healthz looked at before).
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&format!("{}?mode=rw", nv.db_url)).await.unwrap();
    sqlx::query("ALTER TABLE directives RENAME TO directives_away").execute(&mut db).await.unwrap();
    wait_for("/healthz 503", Duration::from_secs(30), || healthz_is(port, 503));
    let (_, reason) = http_get(port, "/healthz").unwrap();
    assert!(reason.starts_with("last scan failed: ") && reason.contains("directives"), "{reason}");

    sqlx::query("ALTER TABLE directives_away RENAME TO directives").execute(&mut db).await.unwrap();
    wait_for("/healthz 200 after a good scan", Duration::from_secs(30), || healthz_is(port, 200));
    db.close().await.unwrap();
    daemon.stop();
}

#[test]
fn the_unit_file_limit_leaves_room_above_the_http_connection_cap() {
    let unit = std::fs::read_to_string(support::repo().join("systemd/nhacviec.service")).unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in the unit")
        .parse()
        .expect("LimitNOFILE= as one number");
    let defaults: toml::Value =
        toml::from_str(&std::fs::read_to_string(support::repo().join("config/default.toml")).unwrap()).unwrap();
    let cap = defaults["http"]["max_connections"].as_integer().unwrap() as u64;
    // The rest of the process (database pool, SMTP and chat connections, files) needs room too.
    assert!(limit >= 4 * cap, "LimitNOFILE={limit} leaves too little above http.max_connections = {cap}");
}
