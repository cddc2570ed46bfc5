//! The daemon (`run --at`) through the real binary, its clock running from a fixed morning, with stand-ins for systemd
//! (a datagram socket) and a real SMTP server: it catches up at start-up, wakes on its cron
//! schedule, reports READY/STATUS/WATCHDOG/STOPPING in order, serves /healthz and /metrics,
//! refuses a second daemon on one SQLite file, and on SIGTERM exits 0 within its bound.

use crate::support;

use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::process::Child;
use std::time::{Duration, Instant};
use support::{
    any_hour, directive, free_port, fresh_database, http_get, small_agency, wait_for, Backend, Nhacviec, SmtpPeer,
};

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("daemon did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Due 41 days before the daemon's day ([`support::DAEMON_AT`]): long overdue.
fn long_overdue() -> String {
    "2022-08-25".to_string()
}

async fn daemon_env(backend: Backend, dir: &std::path::Path, peer: &SmtpPeer) -> Nhacviec {
    let mut nv = Nhacviec::new(&fresh_database(backend, dir).await, dir);
    for (k, v) in peer.env().into_iter().chain(any_hour()) {
        nv.set(&k, &v);
    }
    nv.set("NHACVIEC__SCHEDULE__SCAN", "*/1 * * * * *");
    nv
}

#[tokio::test]
async fn the_daemon_delivers_on_its_schedule_tells_systemd_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let mut nv = daemon_env(Backend::Sqlite, dir.path(), &peer).await;
    let socket_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let port = free_port();
    nv.set("NOTIFY_SOCKET", socket_path.to_str().unwrap());
    nv.set("WATCHDOG_USEC", "1000000");
    nv.set("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"));
    nv.import_json("a.json", &small_agency(json!([directive("OLD", Some("lien"), Some(&long_overdue()))])));
    let mut child = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();

    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = |received: &mut Vec<String>| {
        let n = systemd.recv(&mut buf).expect("a notification from the daemon");
        // One assignment per line, each ending in a newline (systemd reads it without).
        let text = String::from_utf8_lossy(&buf[..n]).trim_end_matches('\n').to_string();
        received.push(text.clone());
        text
    };
    assert_eq!(next(&mut received), "READY=1", "READY comes first, after migrations");
    wait_for("the first delivery", Duration::from_secs(30), || peer.messages().len() >= 4);
    // STATUS after a scan names the backlog and the next scan; WATCHDOG pings keep coming.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(received.iter().any(|m| m.starts_with("STATUS=last scan sent") && m.contains("next scan"))
        && received.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        assert!(Instant::now() < deadline, "{received:?}");
        next(&mut received);
    }

    // Health and metrics.
    wait_for("/healthz 200", Duration::from_secs(10), || http_get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    let (status, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let sent_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("nhacviec_messages_total{")
                && l.contains("outcome=\"sent\"")
                && l.contains("kind=\"reminder\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let sent: f64 = sent_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(sent >= 4.0, "{sent_line}");
    assert!(metrics.contains("nhacviec_outbox_messages{status=\"sent\"}"), "{metrics}");
    assert!(metrics.contains("nhacviec_last_successful_scan_timestamp_seconds"), "{metrics}");

    // A directive imported while it runs is picked up at the next wake-up, and nothing twice.
    nv.import_json("b.json", &json!({ "directives": [directive("NEW", Some("ly"), Some(&long_overdue()))] }));
    wait_for("the next scan", Duration::from_secs(30), || {
        peer.messages().iter().any(|m| m.to == vec!["ly@example.gov.vn".to_string()])
    });
    let delivered = peer.messages().len();

    // A second daemon on the same SQLite file is refused.
    let second = nv
        .command(&["run", "--at", support::DAEMON_AT])
        .env_remove("NOTIFY_SOCKET")
        .env("NHACVIEC__HTTP__LISTEN", "")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another nhacviec daemon is already running"), "{err}");

    let stopped = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(stopped.elapsed() < Duration::from_secs(15), "stopped in {:?}", stopped.elapsed());
    while let Ok(n) = systemd.recv(&mut buf) {
        received.push(String::from_utf8_lossy(&buf[..n]).trim_end_matches('\n').to_string());
        if received.last().is_some_and(|m| m == "STOPPING=1") {
            break;
        }
    }
    assert_eq!(received.last().map(String::as_str), Some("STOPPING=1"), "{received:?}");
    assert_eq!(peer.messages().len(), delivered, "nothing sent twice across scans");
    let status = nv.status_json();
    assert!(status["counts"]["messages"].as_array().unwrap().iter().all(|p| p[0] == "sent"), "{status}");
}

#[tokio::test]
async fn healthz_turns_503_when_the_database_goes_away_and_the_daemon_stays_up() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let mut nv = daemon_env(Backend::Postgres, dir.path(), &peer).await;
    let port = free_port();
    nv.set("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"));
    nv.import_json("a.json", &small_agency(json!([directive("OLD", Some("lien"), Some(&long_overdue()))])));
    let mut child = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();
    wait_for("/healthz 200", Duration::from_secs(30), || http_get(port, "/healthz").is_some_and(|(s, _)| s == 200));

    let db = nv.db_url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&support::pg_admin_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
    wait_for("/healthz 503", Duration::from_secs(30), || http_get(port, "/healthz").is_some_and(|(s, _)| s == 503));
    let (_, reason) = http_get(port, "/healthz").unwrap();
    assert!(reason.contains("database"), "{reason}");
    assert!(child.try_wait().unwrap().is_none(), "the daemon stays up while the database is away");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}

#[tokio::test]
async fn a_scan_past_its_time_bound_withholds_the_watchdog_ping_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let mut nv = daemon_env(Backend::Sqlite, dir.path(), &peer).await;
    let socket_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    nv.set("NOTIFY_SOCKET", socket_path.to_str().unwrap());
    nv.set("WATCHDOG_USEC", "400000"); // a ping every 200 ms
    nv.set("NHACVIEC__SCHEDULE__MAX_SCAN_SECONDS", "1");
    nv.set("NHACVIEC__MAIL__SMTP__TIMEOUT_SECONDS", "10");
    // The server takes 4 s to answer DATA: the first scan overruns its 1 s bound.
    let mut agency = small_agency(json!([directive("SLOW", Some("lien"), Some(&long_overdue()))]));
    agency["people"][3]["email"] = json!("slow4-lien@example.gov.vn");
    agency["units"][0]["head"] = json!(null);
    nv.import_json("a.json", &agency);
    let mut child = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();
    let mut buf = [0u8; 4096];
    let mut pings = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let Ok(n) = systemd.recv(&mut buf) else { break };
        if buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]) == b"WATCHDOG=1" {
            pings.push(started.elapsed());
        }
    }
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let longest_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(longest_gap > Duration::from_millis(1500), "pings were not withheld: {pings:?}");
    assert!(pings.last().is_some_and(|t| *t > Duration::from_secs(5)), "pings resume after the scan: {pings:?}");
    let slow: Vec<_> =
        peer.messages().into_iter().filter(|m| m.to == vec!["slow4-lien@example.gov.vn".to_string()]).collect();
    assert_eq!(slow.len(), 1, "the slow send completed once");
}
