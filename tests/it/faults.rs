//! One bad thing never stops the rest: a message that cannot be built is dead-lettered alone,
//! a mail server that is unreachable or misconfigured pauses the round without blaming any
//! recipient, a full disk records nothing by halves and loses no send, and a file that is not
//! a nhacviec database is refused at once. All through the real binary, a real SMTP server
//! and real SQLite files (one on a real, deliberately tiny tmpfs).

use crate::support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{directive, fresh_database, recorded_messages, small_agency, Backend, Nhacviec, SmtpPeer, DEMO_AT};

/// At DEMO_AT: lien, ly, tp, pct and chanh are each owed one message.
fn agency() -> serde_json::Value {
    small_agency(json!([
        directive("KL-01", Some("lien"), Some("2022-08-31")),
        directive("KL-03", Some("ly"), Some("2022-09-05")),
        directive("KL-04", Some("tp"), Some("2022-08-18")),
    ]))
}

fn setup(db_url: &str, dir: &Path, peer: &SmtpPeer) -> Nhacviec {
    let mut nv = Nhacviec::new(db_url, dir);
    for (k, v) in peer.env() {
        nv.set(&k, &v);
    }
    nv.set("NHACVIEC__REPORTS__WEEKLY", "");
    nv.set("NHACVIEC__REPORTS__MONTHLY", "false");
    nv.set("NHACVIEC__DELIVERY__RETRY_BASE_SECONDS", "60");
    nv
}

/// Runs SQL straight on a test's SQLite file, as an older release or a hand edit would have
/// left it (import now refuses such values).
async fn sql(db_url: &str, statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("{db_url}?mode=rwc")).await.expect("connect");
    sqlx::query(statement).execute(&mut conn).await.expect(statement);
}

async fn dead_letters(db_url: &str) -> Vec<(String, Option<String>, Option<String>)> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("{db_url}?mode=rw")).await.expect("connect");
    sqlx::query_as("SELECT recipient, last_error, error_kind FROM messages WHERE status = 'dead' ORDER BY recipient")
        .fetch_all(&mut conn)
        .await
        .expect("dead letters")
}

#[tokio::test]
async fn a_line_break_in_a_name_and_an_unusable_address_fail_only_their_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let db = fresh_database(Backend::Sqlite, dir.path()).await;
    let nv = setup(&db, dir.path(), &peer);
    nv.import_json("agency.json", &agency());
    sql(&db, "UPDATE people SET name = 'Nguyễn Thị' || char(10) || 'Liên' || char(13) WHERE code = 'lien'").await;
    sql(&db, "UPDATE people SET email = 'ly at example' WHERE code = 'ly'").await;

    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("4 sent") && out.contains("1 dead"), "{out}");
    let mails = peer.messages();
    let to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    assert!(to.contains(&"lien@example.gov.vn"), "the name is cleaned for the header, not fatal: {to:?}");
    assert!(!to.iter().any(|a| a.contains("ly")), "{to:?}");
    let dead = dead_letters(&db).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "ly");
    assert_eq!(dead[0].2.as_deref(), Some("build"));
    assert!(dead[0].1.as_deref().is_some_and(|e| e.contains("ly at example")), "{dead:?}");
    let status = nv.ok(&["status"]);
    assert!(status.contains("cannot be built"), "{status}");

    // The dead letter is not retried, and nothing else goes out twice.
    nv.ok(&["tick", "--at", "2022-09-05T10:00:00+07:00"]);
    assert_eq!(peer.messages().len(), 4);
}

#[tokio::test]
async fn a_starttls_mismatch_pauses_the_round_blames_no_address_and_everything_goes_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let db = fresh_database(Backend::Sqlite, dir.path()).await;
    let nv = setup(&db, dir.path(), &peer).with("NHACVIEC__MAIL__SMTP__TLS", "starttls");
    nv.import_json("agency.json", &agency());

    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("0 sent") && out.contains("0 dead"), "{out}");
    assert!(out.contains("email: delivery paused, 5 message(s) wait for the next round"), "{out}");
    assert!(peer.messages().is_empty());
    let status = nv.status_json();
    assert_eq!(status["waiting_on_server"], 5, "{status}");
    assert!(status["server_error"].as_str().is_some_and(|e| e.contains("STARTTLS")), "{status}");
    assert_eq!(status["dead_letters"].as_array().map(Vec::len), Some(0), "{status}");
    assert!(nv.ok(&["status"]).contains("server unreachable or misconfigured: 5 message(s)"));
    // Nobody's address is reported as bouncing.
    let plan = nv.plan_json("2022-09-05T10:00:00+07:00");
    assert!(plan.iter().all(|n| n.kind != "bounce"), "{plan:?}");

    // Fixed: every held message goes out, once, and nothing said an address was refused.
    let fixed = nv.with("NHACVIEC__MAIL__SMTP__TLS", "none");
    let out = fixed.ok(&["tick", "--at", "2022-09-05T10:00:00+07:00"]);
    assert!(out.contains("5 sent"), "{out}");
    let mails = peer.messages();
    assert_eq!(mails.len(), 5);
    for mail in &mails {
        assert!(!mail.text.as_deref().unwrap_or_default().contains("từ chối"), "{:?}", mail.text);
    }
    let recorded = recorded_messages(&db).await;
    assert!(recorded.iter().all(|(_, _, status, attempts)| status == "sent" && *attempts == 1), "{recorded:?}");
}

#[tokio::test]
async fn a_refused_password_pauses_the_round_instead_of_killing_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &["--auth", "nhacviec:dung"]);
    let db = fresh_database(Backend::Sqlite, dir.path()).await;
    let wrong = dir.path().join("password");
    std::fs::write(&wrong, "sai\n").unwrap();
    let nv = setup(&db, dir.path(), &peer)
        .with("NHACVIEC__MAIL__SMTP__USERNAME", "nhacviec")
        .with("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", wrong.to_str().unwrap());
    nv.import_json("agency.json", &agency());
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("0 dead") && out.contains("delivery paused"), "{out}");
    std::fs::write(&wrong, "dung\n").unwrap();
    let out = nv.ok(&["tick", "--at", "2022-09-05T10:00:00+07:00"]);
    assert!(out.contains("5 sent"), "{out}");
    assert_eq!(peer.messages().len(), 5);
}

#[tokio::test]
async fn a_refused_recipient_is_the_only_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let db = fresh_database(Backend::Sqlite, dir.path()).await;
    let nv = setup(&db, dir.path(), &peer);
    let mut agency = agency();
    agency["people"][3]["email"] = json!("fail550rcpt@example.gov.vn");
    nv.import_json("agency.json", &agency);
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("4 sent") && out.contains("1 dead"), "{out}");
    let dead = dead_letters(&db).await;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].0.as_str(), dead[0].2.as_deref()), ("lien", Some("recipient")));
    assert!(nv.ok(&["status"]).contains("address rejected"));
    let plan = nv.plan_json("2022-09-05T10:00:00+07:00");
    let bounces: Vec<_> = plan.iter().filter(|n| n.kind == "bounce").collect();
    assert_eq!(bounces.len(), 1, "the unit head is told of lien's address: {plan:?}");
    assert_eq!(bounces[0].recipient, "tp");
}

/// A tmpfs of `size`, mounted for one test and unmounted when dropped: a real disk that fills.
struct TinyDisk {
    path: PathBuf,
}

impl TinyDisk {
    fn mount(dir: &Path, size: &str) -> TinyDisk {
        let path = dir.join("tiny");
        std::fs::create_dir_all(&path).unwrap();
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&path).output();
        let out = out.expect("mount(8)");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (run as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyDisk { path }
    }

    /// Fills every byte left; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn a_full_disk_records_nothing_by_halves_and_sends_everything_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = TinyDisk::mount(dir.path(), "4m");
    let peer = SmtpPeer::start(dir.path(), &[]);
    let db = format!("sqlite://{}", disk.path.join("nhacviec.db").display());
    let nv = setup(&db, dir.path(), &peer);
    nv.import_json("agency.json", &agency());
    // Planned before the window opens: five notices wait in the outbox.
    nv.ok(&["tick", "--at", "2022-09-05T06:00:00+07:00"]);

    let filler = disk.fill();
    for _ in 0..3 {
        let err = nv.fails(&["tick", "--at", DEMO_AT]);
        assert!(err.contains("disk is full") || err.contains("disk I/O"), "one clear error: {err}");
        assert!(!err.contains("transaction depth"), "{err}");
    }
    assert!(peer.messages().is_empty(), "nothing is sent that cannot be recorded");

    std::fs::remove_file(filler).unwrap();
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("5 sent"), "{out}");
    nv.ok(&["tick", "--at", "2022-09-05T10:00:00+07:00"]);
    assert_eq!(peer.messages().len(), 5, "each once");
    let recorded = recorded_messages(&db).await;
    assert_eq!(recorded.len(), 5);
    assert!(recorded.iter().all(|(_, _, status, _)| status == "sent"), "{recorded:?}");
}

#[tokio::test]
async fn a_send_whose_outcome_meets_a_full_disk_is_recorded_once_space_returns_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let disk = TinyDisk::mount(dir.path(), "4m");
    let peer = SmtpPeer::start(dir.path(), &[]);
    let db = format!("sqlite://{}", disk.path.join("nhacviec.db").display());
    let nv = setup(&db, dir.path(), &peer);
    let mut agency = agency();
    // lien's server takes the message at once but answers three seconds later: the disk
    // fills in between.
    agency["people"][3]["email"] = json!("slow3@example.gov.vn");
    nv.import_json("agency.json", &agency);

    let mut tick = nv.command(&["tick", "--at", DEMO_AT]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    support::wait_for("the slow message to be taken", Duration::from_secs(20), || {
        peer.log().iter().any(|e| e["event"] == "accepted" && e["rcpt_tos"][0] == "slow3@example.gov.vn")
    });
    let filler = disk.fill();
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(filler).unwrap();
    let status = tick.wait().unwrap();
    assert!(status.success(), "the outcome waited for the disk and was recorded");

    nv.ok(&["tick", "--at", "2022-09-05T10:00:00+07:00"]);
    let to_lien =
        peer.log().iter().filter(|e| e["event"] == "accepted" && e["rcpt_tos"][0] == "slow3@example.gov.vn").count();
    assert_eq!(to_lien, 1, "sent once");
    let recorded = recorded_messages(&db).await;
    assert!(recorded.iter().all(|(_, _, status, _)| status == "sent"), "{recorded:?}");
}

#[tokio::test]
async fn a_file_that_is_not_a_nhacviec_database_is_refused_at_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("text.db");
    std::fs::write(&text, b"ma_nhiem_vu;han_xu_ly\n").unwrap();
    let foreign = dir.path().join("foreign.db");
    let ok = dir.path().join("damaged.db");
    Nhacviec::new(&format!("sqlite://{}", ok.display()), dir.path()).ok(&["migrate"]);
    sql(&format!("sqlite://{}", foreign.display()), "CREATE TABLE IF NOT EXISTS accounts (id INTEGER)").await;
    sql(&format!("sqlite://{}", foreign.display()), "DROP TABLE IF EXISTS _sqlx_migrations").await;
    // Damage the schema page of a checkpointed database.
    sql(&format!("sqlite://{}", ok.display()), "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let mut bytes = std::fs::read(&ok).unwrap();
    for b in bytes.iter_mut().skip(100).take(3000) {
        *b = 0xA5;
    }
    std::fs::write(&ok, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("damaged.db-wal"));

    for (file, why) in [
        (&empty, "the file is empty"),
        (&text, "is not a SQLite database file"),
        (&foreign, "another application's tables"),
        (&ok, "malformed"),
    ] {
        let nv = Nhacviec::new(&format!("sqlite://{}", file.display()), dir.path());
        let err = nv.fails(&["plan", "--at", DEMO_AT]);
        assert!(err.contains("not a nhacviec database") && err.contains(why), "{}: {err}", file.display());
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "the empty file is left as it was");
}

#[tokio::test]
async fn a_daemon_whose_disk_fills_answers_503_while_scans_fail_and_recovers_without_sending_twice() {
    let dir = tempfile::tempdir().unwrap();
    let disk = TinyDisk::mount(dir.path(), "4m");
    let db = format!("sqlite://{}", disk.path.join("nhacviec.db").display());
    let mail = dir.path().join("mail");
    let port = support::free_port();
    let mut nv = Nhacviec::new(&db, dir.path())
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", mail.to_str().unwrap())
        .with("NHACVIEC__SCHEDULE__SCAN", "*/1 * * * * *")
        .with("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"))
        .with("NHACVIEC__REPORTS__WEEKLY", "")
        .with("NHACVIEC__REPORTS__MONTHLY", "false");
    for (k, v) in support::any_hour() {
        nv.set(&k, &v);
    }
    // Held open, as a running service's own connections would be: SQLite's shared-memory
    // file stays, so the daemon can open the database on the full disk (a process starting
    // afresh there cannot create it, and exits saying so).
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    nv.ok(&["migrate"]);
    let mut keeper = sqlx::AnyConnection::connect(&format!("{db}?mode=rw")).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM sqlite_master").execute(&mut keeper).await.unwrap();
    nv.import_json("agency.json", &agency());
    let filler = disk.fill();

    let log = dir.path().join("daemon.log");
    let mut daemon = nv
        .command(&["run"])
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthz = |code: u16| support::http_get(port, "/healthz").is_some_and(|(status, _)| status == code);
    support::wait_for("/healthz 503 naming the failed scan", Duration::from_secs(30), || {
        support::http_get(port, "/healthz").is_some_and(|(status, reason)| {
            status == 503 && reason.contains("last scan failed") && reason.contains("disk is full")
        })
    });
    // Several scans fail on the full disk before space returns.
    support::wait_for("three failed scans", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().matches("scan failed").count() >= 3
    });
    std::fs::remove_file(filler).unwrap();
    support::wait_for("/healthz 200 after space returns", Duration::from_secs(30), || healthz(200));
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    assert!(daemon.wait().unwrap().success());
    keeper.close().await.unwrap();

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("transaction depth"), "a connection whose commit failed was reused:\n{logged}");
    assert!(logged.contains("disk is full") || logged.contains("disk I/O"), "{logged}");
    let sent = std::fs::read_dir(&mail)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
        .count();
    let recorded = recorded_messages(&db).await;
    assert!(!recorded.is_empty());
    assert_eq!(sent, recorded.len(), "every message written once: {recorded:?}");
    assert!(recorded.iter().all(|(_, _, status, _)| status == "sent"), "{recorded:?}");
}
