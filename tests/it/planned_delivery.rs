//! A tick's own plan delivered in process, on both backends and on both kinds of runtime: the
//! pipeline (render beside record and send) with batches of one person each, and the
//! one-after-another path a single-threaded runtime takes. Whatever the path, each person
//! gets one message holding every notice owed to them, once; and messages stored before
//! payloads were packed are still sent as they were.

use crate::support;

use nhacviec::app::App;
use nhacviec::config::Config;
use nhacviec::store::Store;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use support::{directive, fresh_database, mime_check, small_agency, Backend, Nhacviec, BACKENDS, DEMO_AT};

fn agency() -> serde_json::Value {
    small_agency(json!([
        directive("KL-01", Some("lien"), Some("2022-08-31")),
        directive("KL-02", Some("lien"), Some("2022-09-08")),
        directive("KL-03", Some("ly"), Some("2022-09-05")),
        directive("KL-04", Some("tp"), Some("2022-08-18")),
        directive("KL-05", None, Some("2022-09-30")),
    ]))
}

/// An app on `url` writing mail into `mail`, with the agency imported; what `plan --json`
/// owes at DEMO_AT, per person.
async fn setup(
    url: &str,
    dir: &std::path::Path,
    mail: &std::path::Path,
) -> (App, BTreeMap<String, BTreeSet<String>>, usize) {
    let nv = Nhacviec::new(url, dir).with("NHACVIEC__REPORTS__WEEKLY", "").with("NHACVIEC__REPORTS__MONTHLY", "false");
    nv.import_json("agency.json", &agency());
    let mut owed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let plan = nv.plan_json(DEMO_AT);
    let notices = plan.len();
    for n in plan {
        owed.entry(n.address).or_default().insert(n.directive.unwrap_or_default());
    }
    let env: Vec<(String, String)> = [
        ("NHACVIEC_CONFIG", "/dev/null"),
        ("NHACVIEC__DATABASE__URL", url),
        ("NHACVIEC__MAIL__TRANSPORT", "file"),
        ("NHACVIEC__MAIL__FILE_DIR", mail.to_str().unwrap()),
        ("NHACVIEC__HTTP__LISTEN", ""),
        ("NHACVIEC__REPORTS__WEEKLY", ""),
        ("NHACVIEC__REPORTS__MONTHLY", "false"),
        // One person per batch: the pipeline runs through many batches.
        ("NHACVIEC__DELIVERY__BATCH_SIZE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::load_from(None, &env).expect("config");
    (App::open(Arc::new(config)).await.expect("open"), owed, notices)
}

async fn tick_and_check(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let url = fresh_database(backend, dir.path()).await;
    let (app, owed, notices) = setup(&url, dir.path(), &mail).await;
    assert!(owed.len() >= 4, "{owed:?}");
    let now = nhacviec::cli::at::parse_instant(DEMO_AT, app.config.timezone).unwrap();
    let outlets = app.outlets().unwrap();
    let report = app.tick(now, &outlets, &AtomicBool::new(false)).await.unwrap();
    assert_eq!(report.delivery.sent, owed.len(), "{backend:?}: {report:?}");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&mail).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mails: Vec<_> = files.iter().flat_map(|f| mime_check(f)).collect();
    assert_eq!(mails.len(), owed.len(), "{backend:?}: one message per person");
    for m in &mails {
        let text = m.text.as_deref().unwrap();
        for code in ["KL-01", "KL-02", "KL-03", "KL-04", "KL-05"] {
            assert_eq!(text.contains(code), owed[&m.to[0]].contains(code), "{backend:?} {}: {code}", m.to[0]);
        }
    }
    let again = app.tick(now, &outlets, &AtomicBool::new(false)).await.unwrap();
    assert_eq!((again.recorded, again.delivery.sent), (0, 0), "{backend:?}: nothing twice");
    let counts = app.store.status_report(10).await.unwrap().counts;
    assert_eq!(
        counts.notices,
        vec![("sent".to_string(), notices as i64)],
        "{backend:?}: every notice in a sent message"
    );
    assert_eq!(counts.messages, vec![("sent".to_string(), owed.len() as i64)], "{backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_delivers_each_person_one_message_once_on_both_backends() {
    for backend in BACKENDS {
        tick_and_check(backend).await;
    }
}

#[tokio::test]
async fn a_single_threaded_runtime_delivers_the_same_one_batch_after_another() {
    for backend in BACKENDS {
        tick_and_check(backend).await;
    }
}

#[tokio::test]
async fn a_payload_stored_before_packing_is_sent_as_it_was() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(backend, dir.path()).await;
        let store = Store::open(&url, 4, 10_000).await.unwrap();
        let notice = nhacviec::domain::Notice {
            kind: nhacviec::domain::NoticeKind::Overdue,
            directive: Some("KL-01".into()),
            recipient: "lien".into(),
            address: "lien@example.gov.vn".into(),
            channel: nhacviec::domain::Channel::Email,
            stage: nhacviec::domain::Stage::Day(1),
            key: nhacviec::domain::NoticeKey::stored("overdue:KL-01:lien:2022-08-31:T+1:email".into()),
            ladder: nhacviec::domain::Ladder::Assignee,
            effective_due: None,
            days_overdue: 1,
        };
        store.enqueue(std::slice::from_ref(&notice), 1).await.unwrap();
        let claim = store.claim_notices(10).await.unwrap();
        let message = nhacviec::store::NewMessage::new(
            nhacviec::store::Message {
                id: "m1".into(),
                message_id: "<m1@t>".into(),
                kind: nhacviec::domain::MessageKind::Reminder,
                recipient: "lien".into(),
                address: "lien@example.gov.vn".into(),
                channel: nhacviec::domain::Channel::Email,
                subject: "s".into(),
                payload: "packed".into(),
            },
            vec![notice.key.clone()],
            None,
        );
        claim.commit(&[message], &[], "crashed", 1000, 10).await.unwrap();
        // As an older nhacviec stored it: the text itself, nothing packed.
        {
            use sqlx::Connection;
            let raw = if url.starts_with("sqlite:") { format!("{url}?mode=rw") } else { url.clone() };
            let mut conn = sqlx::AnyConnection::connect(&raw).await.unwrap();
            sqlx::query("UPDATE message_payloads SET payload = 'plain, from before', payload_lz4 = NULL")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let due = store.claim_due_messages("me", 10, 2000, 9_999, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{backend:?}");
        assert_eq!(due[0].payload, "plain, from before", "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_recorded_overnight_are_delivered_by_the_first_tick_in_the_window() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        let url = fresh_database(backend, dir.path()).await;
        let (app, owed, notices) = setup(&url, dir.path(), &mail).await;
        let outlets = app.outlets().unwrap();
        let at = |t: &str| nhacviec::cli::at::parse_instant(t, app.config.timezone).unwrap();
        // 06:00, before the window: everything owed today is recorded and waits.
        let night = app.tick(at("2022-09-05T06:00:00+07:00"), &outlets, &AtomicBool::new(false)).await.unwrap();
        assert!(!night.in_send_window);
        assert_eq!((night.recorded, night.delivery.sent), (notices, 0), "{backend:?}");
        // 08:00: the plan owes the same, so the tick delivers the waiting notices itself.
        let morning = app.tick(at(DEMO_AT), &outlets, &AtomicBool::new(false)).await.unwrap();
        assert_eq!((morning.recorded, morning.adopted), (0, notices), "{backend:?}: {morning:?}");
        assert_eq!(morning.delivery.sent, owed.len(), "{backend:?}: one message per person");
        let counts = app.store.status_report(10).await.unwrap().counts;
        assert_eq!(counts.notices, vec![("sent".to_string(), notices as i64)], "{backend:?}");
    }
}
