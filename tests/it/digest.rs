//! Weekly digests and monthly reports end to end: the real binary, a real SMTP server and a
//! real MIME parser. Who sees what, one per recipient per week (or month), catch-up within
//! the week, never late.

use crate::support;

use serde_json::json;
use support::{directive, fresh_database, small_agency, Backend, Mail, Nhacviec, SmtpPeer, DEMO_AT};

/// The small agency plus a second block (NV2, led by pct2) so leaders can be told apart.
fn two_blocks(directives: serde_json::Value) -> serde_json::Value {
    let mut agency = small_agency(directives);
    agency["units"].as_array_mut().unwrap().push(json!(
        {"code": "NV2", "name": "Phòng Nghiệp vụ 2", "head": "tp2", "leader": "pct2"}
    ));
    let people = agency["people"].as_array_mut().unwrap();
    people.push(json!({"code": "tp2", "name": "Lâm Thanh Sơn", "title": "Trưởng phòng", "email": "tp2@example.gov.vn", "unit": "NV2", "role": "head", "active": true}));
    people.push(json!({"code": "pct2", "name": "Lê Thị Thu Hà", "title": "Phó Chánh Thanh tra", "email": "pct2@example.gov.vn", "unit": "LD", "role": "leader", "active": true}));
    agency
}

fn nv2(code: &str, due: &str) -> serde_json::Value {
    let mut d = directive(code, Some("tp2"), Some(due));
    d["unit"] = json!("NV2");
    d
}

async fn setup(dir: &std::path::Path, peer: &SmtpPeer, directives: serde_json::Value) -> Nhacviec {
    let mut nv = Nhacviec::new(&fresh_database(Backend::Sqlite, dir).await, dir);
    for (k, v) in peer.env() {
        nv.set(&k, &v);
    }
    nv.import_json("agency.json", &two_blocks(directives));
    nv
}

fn digests_to(mails: &[Mail], address: &str) -> Vec<Mail> {
    mails
        .iter()
        .filter(|m| {
            m.to == vec![address.to_string()] && m.subject.as_deref().is_some_and(|s| s.starts_with("[Báo cáo tuần]"))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_leader_gets_their_block_and_the_chief_gets_every_unit() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(
        dir.path(),
        &peer,
        json!([directive("NV1-LATE", Some("lien"), Some("2022-08-22")), nv2("NV2-LATE", "2022-08-31")]),
    )
    .await;
    let plan = nv.plan_json(DEMO_AT);
    let digests: Vec<_> = plan.iter().filter(|n| n.kind == "digest").collect();
    assert_eq!(digests.len(), 3, "{digests:?}");
    for d in &digests {
        assert_eq!(d.directive, None);
        assert_eq!(d.stage, "2022-W36");
        assert_eq!(d.key, format!("digest:{}:2022-W36:email", d.recipient));
    }
    nv.ok(&["tick", "--at", DEMO_AT]);
    let mails = peer.messages();
    let pct = digests_to(&mails, "pct@example.gov.vn");
    let pct2 = digests_to(&mails, "pct2@example.gov.vn");
    let chanh = digests_to(&mails, "chanh@example.gov.vn");
    assert_eq!((pct.len(), pct2.len(), chanh.len()), (1, 1, 1));
    let text = |m: &Mail| m.text.clone().unwrap();
    assert!(text(&pct[0]).contains("NV1-LATE") && !text(&pct[0]).contains("NV2-LATE"), "{}", text(&pct[0]));
    assert!(!text(&pct[0]).contains("Phòng Nghiệp vụ 2"));
    assert!(text(&pct2[0]).contains("NV2-LATE") && !text(&pct2[0]).contains("NV1-LATE"));
    assert!(text(&chanh[0]).contains("NV1-LATE") && text(&chanh[0]).contains("NV2-LATE"));
    assert!(pct[0].subject.as_deref().unwrap().starts_with("[Báo cáo tuần] Tuần 36/2022 (05/09/2022): "));
    assert!(text(&pct[0]).starts_with("Kính gửi: Đồng chí Nguyễn Văn Hùng"));
    // Most overdue first in the chief's digest: NV1-LATE (T+8) before NV2-LATE (T+1) is
    // per unit, so check within NV1's section the working days overdue are stated.
    assert!(text(&chanh[0]).contains("quá hạn 8 ngày làm việc"), "{}", text(&chanh[0]));
    // On the digest's day, pct's escalation of NV1-LATE is left to the digest that lists it:
    // one message, and the escalation recorded as superseded with that reason.
    let pct_all: Vec<_> = mails.iter().filter(|m| m.to == vec!["pct@example.gov.vn".to_string()]).collect();
    assert_eq!(pct_all.len(), 1, "{pct_all:?}");
    let status = nv.status_json();
    assert!(status.to_string().contains("superseded"), "{status}");
    assert!(pct[0].html.as_deref().unwrap().contains("NV1-LATE"));
}

#[tokio::test]
async fn all_is_well_is_said_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer, json!([nv2("NV2-FINE", "2022-09-30")])).await;
    nv.ok(&["tick", "--at", DEMO_AT]);
    let pct2 = digests_to(&peer.messages(), "pct2@example.gov.vn");
    let text = pct2[0].text.clone().unwrap();
    assert!(
        text.contains("Không có nhiệm vụ quá hạn và không có nhiệm vụ kết thúc chưa hoàn thành trong 7 ngày qua."),
        "{text}"
    );
}

#[tokio::test]
async fn one_digest_a_week_even_across_restarts_with_catch_up_later_in_the_week() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer, json!([nv2("NV2-A", "2022-09-30")])).await;
    // Down on Monday; the first run is Wednesday: this week's digest still goes out.
    nv.ok(&["tick", "--at", "2022-09-07T10:00:00+07:00"]);
    assert_eq!(digests_to(&peer.messages(), "pct2@example.gov.vn").len(), 1);
    // Later ticks (a restart is just another tick) the same week send no second one.
    nv.ok(&["tick", "--at", "2022-09-07T10:00:00+07:00"]);
    nv.ok(&["tick", "--at", "2022-09-09T16:00:00+07:00"]);
    assert_eq!(digests_to(&peer.messages(), "pct2@example.gov.vn").len(), 1);
    // Next Monday: next week's.
    nv.ok(&["tick", "--at", "2022-09-12T08:00:00+07:00"]);
    let all = digests_to(&peer.messages(), "pct2@example.gov.vn");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|m| m.subject.as_deref().unwrap().contains("Tuần 37/2022")));
}

#[tokio::test]
async fn a_week_that_has_passed_is_never_sent_late() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let nv = setup(dir.path(), &peer, json!([nv2("NV2-A", "2022-09-30")])).await;
    // Sunday evening of week 36: owed and recorded, but outside the send window.
    nv.ok(&["tick", "--at", "2022-09-11T20:00:00+07:00"]);
    assert!(peer.messages().is_empty());
    nv.ok(&["tick", "--at", "2022-09-12T08:00:00+07:00"]);
    let all = digests_to(&peer.messages(), "pct2@example.gov.vn");
    assert_eq!(all.len(), 1);
    assert!(all[0].subject.as_deref().unwrap().contains("Tuần 37/2022"), "{:?}", all[0].subject);
    let status = nv.ok(&["status"]);
    assert!(status.contains("superseded 3"), "the three week-36 digests were dropped: {status}");
}

#[tokio::test]
async fn the_iso_week_key_follows_the_iso_year_across_new_year() {
    let dir = tempfile::tempdir().unwrap();
    let nv = Nhacviec::new(&fresh_database(Backend::Sqlite, dir.path()).await, dir.path());
    nv.import_json("agency.json", &two_blocks(json!([])));
    let stage_at = |at: &str| {
        nv.plan_json(at)
            .into_iter()
            .filter(|n| n.kind == "digest" && n.stage.contains("-W"))
            .map(|n| n.stage)
            .collect::<Vec<_>>()
    };
    assert_eq!(stage_at("2021-01-03T12:00:00+07:00"), vec!["2020-W53"; 3]);
    assert_eq!(stage_at("2024-12-30T08:00:00+07:00"), vec!["2025-W01"; 3]);
    assert!(stage_at("2024-12-30T07:00:00+07:00").iter().all(|s| s == "2024-W52"));
}

#[tokio::test]
async fn the_monthly_briefing_report_goes_out_three_working_days_before_month_end() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let mut done = nv2("NV2-DONE", "2022-09-14");
    done["status"] = json!("completed");
    done["completed_on"] = json!("2022-09-13");
    let nv =
        setup(dir.path(), &peer, json!([nv2("NV2-LATE", "2022-09-15"), done, nv2("NV2-LATER", "2022-09-30")])).await;
    nv.ok(&["tick", "--at", "2022-09-26T09:00:00+07:00"]);
    let reports = |mails: &[Mail]| {
        mails
            .iter()
            .filter(|m| m.subject.as_deref().is_some_and(|s| s.starts_with("[Báo cáo giao ban]")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(reports(&peer.messages()).is_empty(), "not before Tuesday 27/9");
    nv.ok(&["tick", "--at", "2022-09-27T09:00:00+07:00"]);
    let sent = reports(&peer.messages());
    assert_eq!(sent.len(), 3, "chief and two leaders");
    let pct2 = sent.iter().find(|m| m.to == vec!["pct2@example.gov.vn".to_string()]).unwrap();
    let text = pct2.text.clone().unwrap();
    for line in [
        "Phòng Nghiệp vụ 2 (NV2): 3 nhiệm vụ",
        "- Hoàn thành đúng hạn: 1 (33,3%)",
        "- Đang thực hiện trong hạn: 1 (33,3%)",
        "- Đang thực hiện quá hạn: 1 (33,3%)",
        "[QUÁ HẠN 8 NGÀY LÀM VIỆC] NV2-LATE",
    ] {
        assert!(text.contains(line), "{line:?} missing in {text}");
    }
    nv.ok(&["tick", "--at", "2022-09-29T09:00:00+07:00"]);
    assert_eq!(reports(&peer.messages()).len(), 3, "once per month");
}

#[tokio::test]
async fn digest_preview_renders_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    let nv = Nhacviec::new(&fresh_database(Backend::Sqlite, dir.path()).await, dir.path());
    nv.import_json("agency.json", &two_blocks(json!([nv2("NV2-LATE", "2022-08-31")])));
    let html = dir.path().join("digest.html");
    let out = nv.ok(&["digest", "--leader", "pct2", "--at", DEMO_AT, "--html", html.to_str().unwrap()]);
    assert!(out.starts_with("To: Lê Thị Thu Hà <pct2@example.gov.vn>\nSubject: [Báo cáo tuần] Tuần 36/2022"), "{out}");
    assert!(out.contains("NV2-LATE"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<html") && page.contains("NV2-LATE"));
    let out = nv.ok(&["report", "--leader", "chanh", "--at", "2022-09-27T09:00"]);
    assert!(out.contains("Subject: [Báo cáo giao ban] Tháng 09/2022"), "{out}");
    let err = nv.fails(&["digest", "--leader", "lien", "--at", DEMO_AT]);
    assert!(err.contains("not an active block leader"), "{err}");
    assert!(nv.status_json()["counts"]["messages"].as_array().unwrap().is_empty(), "a preview sends nothing");
}
