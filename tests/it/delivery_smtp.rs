//! Delivery end to end: the real binary, a real SMTP server (aiosmtpd), a real MIME parser.
//! What `plan --json` promises is what arrives — one message per person, once — and SMTP
//! failures lose nothing.

use crate::support;

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use support::{directive, fresh_database, recorded_messages, small_agency, Backend, Nhacviec, SmtpPeer, DEMO_AT};

/// An agency where, at 05/09/2022 08:00, several people are owed several things.
fn busy_agency() -> serde_json::Value {
    let mut closed = directive("QD193", Some("ly"), Some("2022-09-30"));
    closed["status"] = json!("closed");
    closed["closed_on"] = json!("2022-08-30");
    let mut done = directive("DONE", Some("lien"), Some("2022-08-31"));
    done["status"] = json!("completed");
    done["completed_on"] = json!("2022-08-30");
    small_agency(json!([
        directive("KL-01", Some("lien"), Some("2022-08-31")), // T+1: lien overdue, tp escalation
        directive("KL-02", Some("lien"), Some("2022-09-08")), // T-3: lien upcoming
        directive("KL-03", Some("ly"), Some("2022-09-05")),   // T0: ly due today
        directive("KL-04", Some("tp"), Some("2022-08-18")),   // T+10: tp twice, pct and chanh
        directive("KL-05", None, Some("2022-09-30")),         // unassigned: tp
        closed,                                               // ly, tp, pct
        done,                                                 // nothing
    ]))
}

async fn setup(dir: &std::path::Path, peer: &SmtpPeer) -> Nhacviec {
    let mut nv = Nhacviec::new(&fresh_database(Backend::Sqlite, dir).await, dir);
    for (k, v) in peer.env() {
        nv.set(&k, &v);
    }
    nv.set("NHACVIEC__DELIVERY__RETRY_BASE_SECONDS", "60");
    // Reminders only here; digests and reports have their own tests.
    nv.set("NHACVIEC__REPORTS__WEEKLY", "");
    nv.set("NHACVIEC__REPORTS__MONTHLY", "false");
    nv.import_json("agency.json", &busy_agency());
    nv
}

#[tokio::test]
async fn every_person_promised_something_gets_one_message_naming_exactly_their_directives() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    let plan = nv.plan_json(DEMO_AT);
    let mut promised: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for n in &plan {
        promised.entry(n.recipient.clone()).or_default().insert(n.directive.clone().unwrap());
        addresses.insert(n.address.clone(), n.recipient.clone());
    }
    assert_eq!(promised.keys().cloned().collect::<Vec<_>>(), vec!["chanh", "lien", "ly", "pct", "tp"]);

    nv.ok(&["tick", "--at", DEMO_AT]);
    let mails = peer.messages();
    assert_eq!(mails.len(), promised.len(), "one message per person");
    let all_codes: BTreeSet<String> = promised.values().flatten().cloned().collect();
    for mail in &mails {
        assert_eq!(mail.to.len(), 1);
        let recipient = &addresses[&mail.to[0]];
        let text = mail.text.as_deref().unwrap();
        let html = mail.html.as_deref().unwrap();
        for code in &all_codes {
            let expected = promised[recipient].contains(code);
            assert_eq!(text.contains(code.as_str()), expected, "{recipient}: {code} in text");
            assert_eq!(html.contains(code.as_str()), expected, "{recipient}: {code} in html");
        }
        assert!(!text.contains("DONE"), "a completed directive is never reminded");
        assert!(text.starts_with("Kính gửi: Đồng chí "), "{text}");
        assert!(text.contains("Trân trọng./."));
        assert!(mail.message_id.as_deref().is_some_and(|m| m.ends_with("@thanhtra.example.gov.vn>")));
        assert!(mail.date.is_some());
    }
    let subject_of = |r: &str| mails.iter().find(|m| addresses[&m.to[0]] == r).and_then(|m| m.subject.clone()).unwrap();
    assert_eq!(subject_of("lien"), "[Nhắc việc] 05/09/2022: 1 nhiệm vụ quá hạn, 1 nhiệm vụ sắp đến hạn");
    assert_eq!(
        subject_of("chanh"),
        "[Nhắc việc] Đôn đốc nhiệm vụ của đồng chí Huỳnh Văn Phúc: hạn 18/08/2022 (quá hạn 10 ngày làm việc) – Nhiệm vụ KL-04 – kiểm tra, báo cáo"
    );
    assert_eq!(
        subject_of("tp"),
        "[Nhắc việc] 05/09/2022: 1 nhiệm vụ kết thúc nhưng chưa hoàn thành, 2 nhiệm vụ quá hạn, 1 nhiệm vụ chưa đủ thông tin giao việc"
    );
    // The head who is also the assignee of KL-04 sees it once, with both reasons.
    let tp = mails.iter().find(|m| addresses[&m.to[0]] == "tp").unwrap();
    let text = tp.text.as_deref().unwrap();
    assert_eq!(text.matches("] KL-04 – ").count(), 1, "{text}");
    assert!(text.contains("Quá hạn 10 ngày làm việc, chưa có kết quả"));
    assert!(text.contains("Báo cáo đồng chí (Trưởng phòng)"));
    // Most urgent first: the closed-without-completion alarm, then the most overdue.
    let order: Vec<usize> = ["QD193", "KL-04", "KL-01", "KL-05"].iter().map(|c| text.find(c).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(nv.plan_json(DEMO_AT).is_empty(), "everything owed is now recorded");
}

#[tokio::test]
async fn a_second_tick_at_the_same_instant_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    nv.ok(&["tick", "--at", DEMO_AT]);
    let first = peer.messages().len();
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("0 newly recorded"), "{out}");
    assert!(out.contains("0 sent"), "{out}");
    nv.ok(&["tick", "--at", "2022-09-05T11:00:00+07:00"]);
    assert_eq!(peer.messages().len(), first);
}

#[tokio::test]
async fn with_the_smtp_server_down_nothing_is_lost_and_all_arrives_later_under_the_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    peer.stop();
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    // A server that cannot be reached is nobody's address at fault: the round pauses and
    // the messages wait without an attempt used up.
    assert!(out.contains("email: delivery paused, 5 message(s) wait"), "{out}");
    let queued = recorded_messages(&nv.db_url).await;
    assert_eq!(queued.len(), 5);
    assert!(queued.iter().all(|(_, _, status, attempts)| status == "queued" && *attempts == 0));
    let status = nv.ok(&["status"]);
    assert!(status.contains("server unreachable or misconfigured: 5 message(s)"), "{status}");

    peer.restart();
    // Still inside the backoff at the same instant: nothing is retried yet.
    nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(peer.messages().is_empty());
    nv.ok(&["tick", "--at", "2022-09-05T09:00:00+07:00"]);
    let mails = peer.messages();
    assert_eq!(mails.len(), 5);
    let expected: BTreeSet<String> = queued.into_iter().map(|(id, ..)| id).collect();
    let got: BTreeSet<String> = mails.into_iter().filter_map(|m| m.message_id).collect();
    assert_eq!(got, expected, "the retried messages keep their Message-IDs");
}

#[tokio::test]
async fn a_451_is_retried_and_a_550_ends_dead_and_visible_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    let mut people = busy_agency()["people"].clone();
    people[3]["email"] = json!("flaky1-lien@example.gov.vn");
    people[4]["email"] = json!("fail550rcpt-ly@example.gov.vn");
    nv.import_json("people.json", &json!({ "people": people }));
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("1 to retry, 1 dead"), "{out}");
    let status = nv.status_json();
    let dead = status["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["recipient"], "ly");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("550"), "{dead:?}");
    assert!(nv.ok(&["status"]).contains("fail550rcpt-ly@example.gov.vn"));

    nv.ok(&["tick", "--at", "2022-09-05T08:30:00+07:00"]);
    let to: Vec<String> = peer.messages().into_iter().flat_map(|m| m.to).collect();
    assert!(to.contains(&"flaky1-lien@example.gov.vn".to_string()), "{to:?}");
    assert!(!to.iter().any(|a| a.starts_with("fail550rcpt")));
    let faults: Vec<String> = peer.log().iter().filter_map(|e| e["fault"].as_str().map(String::from)).collect();
    assert!(faults.contains(&"flaky-451-data".to_string()) && faults.contains(&"550-rcpt".to_string()), "{faults:?}");
    let status = nv.status_json();
    assert_eq!(status["dead_letters"].as_array().unwrap().len(), 1, "the dead letter is not retried");
}

#[tokio::test]
async fn a_directive_completed_while_its_notice_is_queued_is_not_reminded() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    // Recorded at 06:00, before the send window opens.
    let out = nv.ok(&["tick", "--at", "2022-09-05T06:00:00+07:00"]);
    assert!(out.contains("outside the send window"), "{out}");
    let mut done = directive("KL-03", Some("ly"), Some("2022-09-05"));
    done["status"] = json!("completed");
    done["completed_on"] = json!("2022-09-05");
    nv.import_json("done.json", &json!({ "directives": [done] }));
    nv.ok(&["tick", "--at", DEMO_AT]);
    let ly: Vec<_> = peer.messages().into_iter().filter(|m| m.to == vec!["ly@example.gov.vn".to_string()]).collect();
    assert_eq!(ly.len(), 1, "ly still hears about the closed QD193");
    let text = ly[0].text.as_deref().unwrap();
    assert!(!text.contains("KL-03"), "{text}");
    assert!(text.contains("QD193"));
    let status = nv.status_json();
    assert!(status["counts"]["notices"].as_array().unwrap().iter().any(|p| p[0] == "superseded" && p[1] == 1));
}

#[tokio::test]
async fn nothing_goes_out_on_a_saturday_a_holiday_or_at_night() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    for at in [
        "2022-09-03T09:00:00+07:00", // Saturday
        "2022-09-02T09:00:00+07:00", // National Day
        "2022-09-05T17:00:00+07:00", // after hours
        "2022-09-05T21:00:00+07:00",
        "2022-09-06T07:29:59+07:00",
    ] {
        let out = nv.ok(&["tick", "--at", at]);
        assert!(out.contains("outside the send window"), "{at}: {out}");
    }
    assert!(peer.messages().is_empty());
    nv.ok(&["tick", "--at", "2022-09-06T07:30:00+07:00"]);
    assert!(!peer.messages().is_empty(), "owed notices wait for the window, never dropped");
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_auth_deliver_and_a_wrong_password_pauses_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let made = std::process::Command::new("bash")
        .arg(support::repo().join("tests/peers/make_certs.sh"))
        .arg(&certs)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "mật-khẩu\n").unwrap();
    let tls_args = |mode: &str| {
        let mut args = vec![
            "--tls-cert".to_string(),
            certs.join("server.pem").display().to_string(),
            "--tls-key".to_string(),
            certs.join("server.key").display().to_string(),
            "--auth".to_string(),
            "nhacviec:mật-khẩu".to_string(),
        ];
        args.push(if mode == "tls" { "--implicit-tls" } else { "--require-starttls" }.to_string());
        args
    };
    for mode in ["starttls", "tls"] {
        let args = tls_args(mode);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let peer = SmtpPeer::start(dir.path(), &args);
        let with_password = |nv: Nhacviec, file: &std::path::Path| {
            nv.with("NHACVIEC__MAIL__SMTP__HOST", "localhost")
                .with("NHACVIEC__MAIL__SMTP__TLS", mode)
                .with("NHACVIEC__MAIL__SMTP__CA_FILE", certs.join("ca.pem").to_str().unwrap())
                .with("NHACVIEC__MAIL__SMTP__USERNAME", "nhacviec")
                .with("NHACVIEC__MAIL__SMTP__PASSWORD_FILE", file.to_str().unwrap())
        };
        let nv = with_password(setup(dir.path(), &peer).await, &password);
        let out = nv.ok(&["tick", "--at", DEMO_AT]);
        assert!(out.contains("5 sent"), "{mode}: {out}");
        assert!(peer.log().iter().all(|e| e["tls"] == true && e["auth_user"] == "nhacviec"), "{mode}");

        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, "sai").unwrap();
        let nv = with_password(setup(dir.path(), &peer).await, &wrong);
        let out = nv.ok(&["tick", "--at", DEMO_AT]);
        assert!(
            out.contains("0 sent") && out.contains("0 dead") && out.contains("delivery paused"),
            "{mode}: a rejected password is the configuration's fault: the round pauses, nothing dies: {out}"
        );
    }
}

#[tokio::test]
async fn a_later_stage_supersedes_an_earlier_unsent_one() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    nv.import_json("fri.json", &json!({ "directives": [directive("FRI", Some("lien"), Some("2022-09-09"))] }));
    // Saturday: the due-today stage of Friday's item is owed but waits for the window.
    nv.ok(&["tick", "--at", "2022-09-10T09:00:00+07:00"]);
    assert!(peer.messages().is_empty());
    // Monday: T+1 is reached; the unsent T0 is superseded, not sent late.
    nv.ok(&["tick", "--at", "2022-09-12T08:00:00+07:00"]);
    let lien: Vec<_> =
        peer.messages().into_iter().filter(|m| m.to == vec!["lien@example.gov.vn".to_string()]).collect();
    assert_eq!(lien.len(), 1);
    let text = lien[0].text.as_deref().unwrap();
    assert!(text.contains("FRI") && text.contains("Quá hạn 1 ngày làm việc"), "{text}");
    assert!(!text.contains("Đến hạn xử lý hôm nay"), "{text}");
}

#[tokio::test]
async fn with_grouping_off_each_notice_is_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await.with("NHACVIEC__DELIVERY__GROUP", "false");
    let owed = nv.plan_json(DEMO_AT).len();
    nv.ok(&["tick", "--at", DEMO_AT]);
    assert_eq!(peer.messages().len(), owed);
}

#[tokio::test]
async fn send_test_delivers_one_well_formed_email_now() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    let out = nv.ok(&["send-test", "--to", "admin@example.gov.vn"]);
    assert!(out.starts_with("test email sent to admin@example.gov.vn, Message-ID <"), "{out}");
    let mails = peer.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject.as_deref(), Some("[Nhắc việc] Thư thử nghiệm"));
    let mut down = peer;
    down.stop();
    let err = nv.fails(&["send-test", "--to", "admin@example.gov.vn"]);
    assert!(err.starts_with("error: test email to admin@example.gov.vn failed"), "{err}");
}

#[tokio::test]
async fn notices_left_waiting_and_notices_planned_now_reach_a_person_in_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer).await;
    nv.import_json("tue.json", &json!({ "directives": [directive("TUE", Some("lien"), Some("2022-09-06"))] }));
    // Saturday, outside the send window: what is owed is recorded and waits.
    let saturday = "2022-09-03T09:00:00+07:00";
    let waiting: BTreeSet<String> = nv.plan_json(saturday).into_iter().map(|n| n.recipient).collect();
    nv.ok(&["tick", "--at", saturday]);
    assert!(peer.messages().is_empty());
    // Monday: new stages are owed on top of Saturday's — to some of the same people.
    let fresh = nv.plan_json(DEMO_AT);
    let both: BTreeSet<&String> = fresh.iter().map(|n| &n.recipient).filter(|r| waiting.contains(*r)).collect();
    assert!(!both.is_empty(), "the test needs someone with waiting and fresh notices: {fresh:?}");
    nv.ok(&["tick", "--at", DEMO_AT]);
    let mails = peer.messages();
    let mut per_person: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        *per_person.entry(mail.to[0].clone()).or_default() += 1;
    }
    assert!(per_person.values().all(|n| *n == 1), "one message per person per round: {per_person:?}");
    for n in &fresh {
        let mail = mails.iter().find(|m| m.to[0] == n.address).expect("a message for each fresh notice");
        let code = n.directive.as_deref().unwrap();
        assert!(mail.text.as_deref().unwrap().contains(code), "{} hears about {code}", n.recipient);
    }
    assert!(nv.plan_json(DEMO_AT).is_empty(), "everything owed is now recorded");
    let status = nv.status_json();
    let pending = status["counts"]["notices"].as_array().unwrap().iter().any(|p| p[0] == "pending");
    assert!(!pending, "nothing left waiting: {status}");
}
