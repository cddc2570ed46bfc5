//! The command-line contract (README "Using it") through the built binary: `plan --json` line by
//! line against the domain rules on both backends, the administrator's plan view,
//! `check-config`, exit statuses and one-line reasons.

use crate::support;

use serde_json::json;
use support::{directive, fresh_database, small_agency, Nhacviec, PlannedNotice, BACKENDS, DEMO_AT};

fn expected(kind: &str, directive: &str, recipient: &str, stage: &str, key: &str) -> PlannedNotice {
    PlannedNotice {
        kind: kind.into(),
        directive: Some(directive.into()),
        recipient: recipient.into(),
        address: format!("{recipient}@example.gov.vn"),
        channel: "email".into(),
        stage: stage.into(),
        key: key.into(),
    }
}

#[tokio::test]
async fn plan_json_prints_exactly_what_the_domain_rules_owe_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let nv = Nhacviec::new(&fresh_database(backend, dir.path()).await, dir.path());
        let mut closed = directive("QD193", Some("ly"), Some("2022-09-30"));
        closed["status"] = json!("closed");
        closed["closed_on"] = json!("2022-08-30");
        nv.import_json(
            "agency.json",
            &small_agency(json!([
                directive("KL-01", Some("lien"), Some("2022-08-31")),
                directive("KL-02", Some("lien"), Some("2022-09-10")),
                directive("KL-03", Some("tp"), Some("2022-08-18")),
                directive("KL-04", None, None),
                closed,
            ])),
        );
        let mut got = nv.plan_json(DEMO_AT);
        got.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want = vec![
            // Due Wed 31/8; 1–2/9 off: Monday 5/9 is T+1.
            expected("overdue", "KL-01", "lien", "T+1", "overdue:KL-01:lien:2022-08-31:T+1:email"),
            expected("escalation", "KL-01", "tp", "T+1", "escalation:KL-01:tp:2022-08-31:T+1:email"),
            // Due Sat 10/9 → effective Mon 12/9; Monday 5/9 is T-5: nothing yet.
            // Due Thu 18/8: T+10. The head is the assignee: two ladders, two lines.
            expected("overdue", "KL-03", "tp", "T+9", "overdue:KL-03:tp:2022-08-18:T+9:email"),
            expected("escalation", "KL-03", "tp", "T+1", "escalation:KL-03:tp:2022-08-18:T+1:email"),
            expected("escalation", "KL-03", "pct", "T+5", "escalation:KL-03:pct:2022-08-18:T+5:email"),
            expected("escalation", "KL-03", "chanh", "T+10", "escalation:KL-03:chanh:2022-08-18:T+10:email"),
            expected("unassigned", "KL-04", "tp", "assignee", "unassigned:KL-04:tp:assignee:email"),
            expected("unassigned", "KL-04", "tp", "due_on", "unassigned:KL-04:tp:due_on:email"),
            expected("closed_incomplete", "QD193", "ly", "closed", "closed_incomplete:QD193:ly:2022-08-30:email"),
            expected("closed_incomplete", "QD193", "tp", "closed", "closed_incomplete:QD193:tp:2022-08-30:email"),
            expected("closed_incomplete", "QD193", "pct", "closed", "closed_incomplete:QD193:pct:2022-08-30:email"),
        ];
        // Monday 07:30 has passed: this week's digests for the block leader and the chief.
        for who in ["chanh", "pct"] {
            want.push(PlannedNotice {
                kind: "digest".into(),
                directive: None,
                recipient: who.into(),
                address: format!("{who}@example.gov.vn"),
                channel: "email".into(),
                stage: "2022-W36".into(),
                key: format!("digest:{who}:2022-W36:email"),
            });
        }
        want.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got, want, "{backend:?}");

        // The human view groups by recipient with Vietnamese labels.
        let text = nv.ok(&["plan", "--at", DEMO_AT]);
        assert!(text.contains("13 thông báo chưa gửi cho 5 người"), "{text}");
        assert!(text.contains("Huỳnh Văn Phúc (tp, tp@example.gov.vn)"), "{text}");
        assert!(text.contains("báo cáo trưởng phòng"), "{text}");
        assert!(text.contains("kết thúc chưa hoàn thành"), "{text}");
    }
}

#[tokio::test]
async fn plan_at_a_time_without_offset_is_local_to_the_agency() {
    let dir = tempfile::tempdir().unwrap();
    let nv = Nhacviec::new(&fresh_database(support::Backend::Sqlite, dir.path()).await, dir.path());
    nv.import_json("a.json", &small_agency(json!([directive("A", Some("lien"), Some("2022-09-05"))])));
    assert_eq!(nv.plan_json("2022-09-05T00:30"), nv.plan_json("2022-09-04T17:30:00Z"));
    assert_eq!(nv.plan_json("2022-09-05T00:30")[0].stage, "T0");
    // 23:30 on the 4th in Hà Nội is still the 4th: T-1.
    assert_eq!(nv.plan_json("2022-09-04T16:30:00Z")[0].stage, "T-1");
    let err = nv.fails(&["plan", "--at", "next monday"]);
    assert!(err.starts_with("error: ") && err.contains("RFC 3339"), "{err}");
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let nv = Nhacviec::new("postgres://nhacviec:s3cret@db.example/nhacviec", dir.path());
    let out = nv.ok(&["check-config"]);
    assert!(out.contains("[policy]") && out.contains("escalate_chief_after = 10"), "{out}");
    assert!(out.contains("nhacviec:***@db.example"), "{out}");
    assert!(!out.contains("s3cret"));
    assert!(out.contains("# calendar 2027 (PROVISIONAL)"), "{out}");
}

#[test]
fn a_malformed_configuration_stops_start_up_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nhacviec.toml");
    let cases: &[(&str, &str)] = &[
        ("[schedule]\nscan = \"*/15 * * * *\"\n", "schedule.scan"),
        ("[agency]\ntimezone = \"Asia/Saigon_\"\n", "agency.timezone"),
        ("[mail]\nfrom = \"no address\"\n", "mail.from"),
        ("[policy]\noverdue_first = 0\n", "policy.overdue_first"),
        ("[mail.smtp]\nprot = 25\n", "prot"),
        ("[send_window]\nstart = \"25:00\"\n", "send_window.start"),
        ("[agency\nname = 1", "nhacviec.toml"),
        ("[mail.smtp]\nport = 0\n", "mail.smtp.port"),
        ("[mail.smtp]\nport = 70000\n", "port"),
        ("[reports]\nweekly = \"30 7 * * Mon\"\n", "reports.weekly"),
        ("[webhook]\nenabled = true\nurl = \"ftp://x\"\nsecret_file = \"s\"\n", "webhook.url"),
        ("[telegram]\nenabled = true\n", "telegram.token_file"),
        ("[send_window]\nend = \"07:00\"\n", "send_window.end"),
        ("[delivery]\nconcurrency = 0\n", "delivery.concurrency"),
    ];
    for (content, key) in cases {
        std::fs::write(&file, content).unwrap();
        let nv = Nhacviec::new("sqlite://x.db", dir.path());
        let err = nv.fails(&["--config", file.to_str().unwrap(), "check-config"]);
        assert!(err.starts_with("error: "), "{content}: {err}");
        assert!(err.contains(key), "{content}: expected {key:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn the_first_hour_warns_of_an_empty_database_survives_a_closed_pipe_and_reads_in_vietnamese() {
    let dir = tempfile::tempdir().unwrap();
    let nv = Nhacviec::new(&fresh_database(support::Backend::Sqlite, dir.path()).await, dir.path());
    for command in [&["plan", "--at", DEMO_AT][..], &["tick", "--at", DEMO_AT], &["status"]] {
        let out = nv.run(command);
        assert!(out.status.success(), "{command:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("holds no directives yet") && stderr.contains("nhacviec import"),
            "{command:?}: {stderr}"
        );
    }
    nv.import_json(
        "agency.json",
        &small_agency(json!([
            directive("KL-01", Some("lien"), Some("2022-08-31")),
            directive("KL-04", None, None),
            directive("KL-05", Some("lien"), Some("2022-09-07")),
        ])),
    );
    // The plan view: Vietnamese labels, no English codes, columns that line up.
    let view = nv.ok(&["plan", "--at", DEMO_AT]);
    for code in ["closed", "assignee", "due_on", "escalation", "overdue"] {
        assert!(!view.split_whitespace().any(|w| w == code), "{code} in:\n{view}");
    }
    assert!(view.contains("thiếu người thụ lý") && view.contains("Loại thông báo"), "{view}");
    let rows: Vec<&str> = view.lines().filter(|l| l.starts_with("  ") && l.contains("KL-0")).collect();
    let column =
        |l: &str| l.chars().collect::<Vec<_>>().windows(3).position(|w| w[0] == 'K' && w[1] == 'L' && w[2] == '-');
    let starts: Vec<_> = rows.iter().map(|l| column(l)).collect();
    assert!(starts.len() >= 3 && starts.windows(2).all(|w| w[0] == w[1]), "aligned codes: {starts:?}\n{view}");
    // `plan | head -c 1`: the reader goes away; the command ends quietly with 0.
    for _ in 0..3 {
        let mut child =
            nv.command(&["plan", "--json", "--at", DEMO_AT]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "closed pipe: {status}");
    }
    // No library noise at the default level.
    let out = nv.command(&["tick", "--at", DEMO_AT]).env_remove("RUST_LOG").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Uninited") && !stderr.contains("Job creator") && !stderr.contains("sqlx"), "{stderr}");
}

#[tokio::test]
async fn a_superseded_notice_names_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(support::Backend::Sqlite, dir.path()).await;
    let nv = Nhacviec::new(&db, dir.path())
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", dir.path().join("mail").to_str().unwrap());
    nv.import_json("agency.json", &small_agency(json!([directive("KL-01", Some("lien"), Some("2022-09-05"))])));
    // Monday 06:00, before the send window: T0 is recorded and waits.
    nv.ok(&["tick", "--at", "2022-09-05T06:00:00+07:00"]);
    // Tuesday: T+1 is owed instead; the waiting T0 is superseded, saying why.
    nv.ok(&["tick", "--at", "2022-09-06T08:00:00+07:00"]);
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("{db}?mode=ro")).await.unwrap();
    let reasons: Vec<(String, String)> =
        sqlx::query_as("SELECT key, reason FROM notices WHERE status = 'superseded' ORDER BY key")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        reasons,
        vec![(
            "due_today:KL-01:lien:2022-09-05:T0:email".to_string(),
            "a later stage was reached: T0 → T+1".to_string()
        )],
    );
}
