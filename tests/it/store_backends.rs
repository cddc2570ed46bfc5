//! The store and import on both backends: every field round-trips, imports upsert by code,
//! every import error leaves the data unchanged, and concurrent claimers never share a row.

use crate::support;

use nhacviec::calendar::Calendar;
use nhacviec::domain::{Channel, Ladder, MessageKind, Notice, NoticeKey, NoticeKind, Stage};
use nhacviec::import::{read_files, KnownCodes};
use nhacviec::store::{Message, MessageOutcome, NewMessage, NoticeRow, Store};
use serde_json::json;
use std::collections::HashSet;
use support::{directive, fresh_database, small_agency, Nhacviec, BACKENDS};

async fn open(url: &str) -> Store {
    Store::open(url, 8, 10_000).await.expect("open store")
}

async fn import_value(store: &Store, dir: &std::path::Path, value: &serde_json::Value) {
    let path = dir.join(format!("{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    let batch = read_files(&[path.as_path()], &KnownCodes::default(), &Calendar::load(None).unwrap()).unwrap();
    store.import(&batch.units, &batch.people, &batch.directives, &batch.calendar, 1).await.unwrap();
}

#[tokio::test]
async fn every_field_round_trips_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&fresh_database(backend, dir.path()).await).await;
        let mut full = directive("FULL", Some("lien"), Some("2022-09-30"));
        full["kind"] = json!("petition");
        full["leader"] = json!("chanh");
        full["status"] = json!("completed");
        full["completed_on"] = json!("2022-09-29");
        full["closed_on"] = json!("2022-09-29");
        full["result"] = json!("Báo cáo số 12/BC-TTr");
        full["confidential"] = json!(true);
        full["title"] = json!("Xác minh tài sản, thu nhập – \"mật\" 'nháy' ; DROP TABLE");
        let mut agency = small_agency(json!([full, directive("BARE", None, None)]));
        agency["people"][4]["active"] = json!(false);
        agency["calendar"] = json!([{"date": "2022-09-09", "kind": "holiday", "note": "Nghỉ thử"}]);
        import_value(&store, dir.path(), &agency).await;

        let directives = store.all_directives().await.unwrap();
        assert_eq!(directives.len(), 2, "{backend:?}");
        let got = &directives[1];
        assert_eq!(got.code, "FULL");
        assert_eq!(got.kind.as_str(), "petition");
        assert_eq!(got.title, "Xác minh tài sản, thu nhập – \"mật\" 'nháy' ; DROP TABLE");
        assert_eq!(got.leader.as_deref(), Some("chanh"));
        assert_eq!(got.assignee.as_deref(), Some("lien"));
        assert_eq!(got.due_on, Some("2022-09-30".parse().unwrap()));
        assert_eq!(got.completed_on, Some("2022-09-29".parse().unwrap()));
        assert_eq!(got.closed_on, Some("2022-09-29".parse().unwrap()));
        assert_eq!(got.result.as_deref(), Some("Báo cáo số 12/BC-TTr"));
        assert!(got.confidential);
        let bare = &directives[0];
        assert_eq!((bare.assignee.as_ref(), bare.due_on, bare.confidential), (None, None, false));
        let people = store.people().await.unwrap();
        assert_eq!(people.len(), 5);
        assert!(!people.iter().find(|p| p.code == "ly").unwrap().active);
        assert_eq!(people.iter().find(|p| p.code == "chanh").unwrap().role.as_str(), "chief");
        let units = store.units().await.unwrap();
        assert_eq!(units[1].head.as_deref(), Some("tp"));
        let days = store.calendar_days().await.unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].note, "Nghỉ thử");
    }
}

#[tokio::test]
async fn a_second_import_updates_by_code_instead_of_duplicating() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&fresh_database(backend, dir.path()).await).await;
        import_value(&store, dir.path(), &small_agency(json!([directive("A", Some("lien"), Some("2022-09-30"))])))
            .await;
        let mut moved = directive("A", Some("ly"), Some("2022-10-31"));
        moved["status"] = json!("in_progress");
        import_value(&store, dir.path(), &small_agency(json!([moved]))).await;
        let all = store.all_directives().await.unwrap();
        assert_eq!(all.len(), 1, "{backend:?}");
        assert_eq!(all[0].assignee.as_deref(), Some("ly"));
        assert_eq!(all[0].due_on, Some("2022-10-31".parse().unwrap()));
        assert_eq!(all[0].status.as_str(), "in_progress");
    }
}

/// Each bad file, and a fragment every error message must contain (file, place, field).
fn bad_imports() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = small_agency(json!([directive("NEW", Some("lien"), Some("2022-09-30"))]));
        f(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    };
    vec![
        (
            "unknown-unit.json",
            with(&|v| v["directives"][0]["unit"] = json!("NV9")),
            vec!["directives[0]", "\"unit\"", "unknown unit \"NV9\""],
        ),
        (
            "unknown-person.json",
            with(&|v| v["directives"][0]["assignee"] = json!("nobody")),
            vec!["directives[0]", "\"assignee\"", "unknown person"],
        ),
        (
            "bad-date.json",
            with(&|v| v["directives"][0]["due_on"] = json!("30/09/2022")),
            vec!["directives[0]", "\"due_on\"", "not a date"],
        ),
        (
            "bad-status.json",
            with(&|v| v["directives"][0]["status"] = json!("done")),
            vec!["directives[0]", "\"status\"", "unknown value \"done\""],
        ),
        (
            "bad-kind.json",
            with(&|v| v["directives"][0]["kind"] = json!("job")),
            vec!["directives[0]", "\"kind\"", "unknown value \"job\""],
        ),
        (
            "bad-role.json",
            with(&|v| v["people"][1]["role"] = json!("boss")),
            vec!["people[1]", "\"role\"", "unknown value \"boss\""],
        ),
        (
            "completed-without-date.json",
            with(&|v| v["directives"][0]["status"] = json!("completed")),
            vec!["directives[0]", "\"completed_on\"", "required when status is completed"],
        ),
        (
            "duplicate.json",
            with(&|v| {
                let copy = v["directives"][0].clone();
                v["directives"].as_array_mut().unwrap().push(copy);
            }),
            vec!["directives[1]", "\"code\"", "duplicate code \"NEW\" (first at directives[0])"],
        ),
        (
            "bad-email.json",
            with(&|v| v["people"][3]["email"] = json!("lien at example")),
            vec!["people[3]", "\"email\"", "not a valid email"],
        ),
        ("broken.json", "{\"units\": [ {\"code\": \"X\", }".into(), vec!["line 1 column", "broken JSON"]),
        (
            "typo.json",
            with(&|v| v["directives"][0]["asignee"] = json!("lien")),
            vec!["directives[0]", "\"asignee\"", "unknown field"],
        ),
        (
            "bad.csv",
            "code,kind,title,unit,status,due_on\nC1,task,Một,NV1,open,2022-09-30\nC2,task,Hai,NV1,open,2022-13-01\n"
                .into(),
            vec!["line 3", "\"due_on\"", "not a date"],
        ),
    ]
}

#[tokio::test]
async fn every_import_error_names_file_place_and_field_and_changes_nothing() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let nv = Nhacviec::new(&fresh_database(backend, dir.path()).await, dir.path());
        nv.import_json("base.json", &small_agency(json!([directive("OLD", Some("lien"), Some("2022-09-30"))])));
        let before = nv.ok(&["plan", "--at", "2022-09-29T08:00", "--json"]);
        for (name, content, fragments) in bad_imports() {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            // A good file next to the bad one must not land either: all or nothing.
            let good = dir.path().join("good.json");
            std::fs::write(
                &good,
                serde_json::to_vec(&small_agency(json!([directive("GOOD", Some("ly"), Some("2022-09-29"))]))).unwrap(),
            )
            .unwrap();
            let err = nv.fails(&["import", good.to_str().unwrap(), path.to_str().unwrap()]);
            assert!(err.contains(name), "{backend:?} {name}: error does not name the file: {err}");
            for fragment in fragments {
                assert!(err.contains(fragment), "{backend:?} {name}: missing {fragment:?} in: {err}");
            }
            let after = nv.ok(&["plan", "--at", "2022-09-29T08:00", "--json"]);
            assert_eq!(before, after, "{backend:?} {name}: data changed after a rejected import");
        }
    }
}

fn notice(directive: &str, recipient: &str, stage: &str) -> Notice {
    Notice {
        kind: NoticeKind::Overdue,
        directive: Some(directive.into()),
        recipient: recipient.into(),
        address: format!("{recipient}@example.gov.vn"),
        channel: Channel::Email,
        stage: Stage::parse(Ladder::Assignee, stage).unwrap(),
        key: NoticeKey::new(NoticeKind::Overdue, &[directive, recipient, "2022-08-31", stage], Channel::Email),
        ladder: Ladder::Assignee,
        effective_due: Some("2022-08-31".parse().unwrap()),
        days_overdue: 1,
    }
}

#[tokio::test]
async fn enqueue_is_idempotent_by_key() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&fresh_database(backend, dir.path()).await).await;
        let first = vec![notice("A", "lien", "T+1"), notice("B", "lien", "T+1")];
        assert_eq!(store.enqueue(&first, 100).await.unwrap(), 2, "{backend:?}");
        assert_eq!(store.enqueue(&first, 100).await.unwrap(), 0, "{backend:?}: replay must insert nothing");
        assert_eq!(store.enqueue(&[notice("A", "lien", "T+3")], 200).await.unwrap(), 1);
        let report = store.status_report(10).await.unwrap();
        assert_eq!(report.counts.notices, vec![("pending".to_string(), 3)], "{backend:?}");
    }
}

#[tokio::test]
async fn two_concurrent_claimers_never_claim_the_same_notice() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(backend, dir.path()).await;
        let store = open(&url).await;
        let notices: Vec<Notice> = (0..400).map(|i| notice(&format!("D{i}"), &format!("p{}", i % 97), "T+1")).collect();
        store.enqueue(&notices, 1).await.unwrap();
        let claimer = |store: Store, who: &'static str| async move {
            let mut mine = Vec::new();
            loop {
                let claim = store.claim_notices(25).await.unwrap();
                if claim.notices.is_empty() {
                    return mine;
                }
                let keys: Vec<NoticeKey> = claim.notices.iter().map(|n| n.key.clone()).collect();
                let message = NewMessage::new(
                    Message {
                        id: uuid::Uuid::new_v4().to_string(),
                        message_id: format!("<{}@t>", uuid::Uuid::new_v4()),
                        kind: MessageKind::Reminder,
                        recipient: claim.notices[0].recipient.clone(),
                        address: "x@example.gov.vn".into(),
                        channel: Channel::Email,
                        subject: "s".into(),
                        payload: "p".into(),
                    },
                    keys.clone(),
                    None,
                );
                claim.commit(&[message], &[], who, i64::MAX, 1).await.unwrap();
                mine.extend(keys);
            }
        };
        let other = open(&url).await;
        let (a, b) = tokio::join!(claimer(store.clone(), "a"), claimer(other, "b"));
        let a: HashSet<NoticeKey> = a.into_iter().collect();
        let b: HashSet<NoticeKey> = b.into_iter().collect();
        assert!(a.is_disjoint(&b), "{backend:?}: a notice was claimed twice");
        assert_eq!(a.len() + b.len(), 400, "{backend:?}: a notice was lost");
    }
}

#[tokio::test]
async fn a_leased_message_is_taken_by_one_claimer_and_only_its_holder_records_the_outcome() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(backend, dir.path()).await;
        let store = open(&url).await;
        store.enqueue(&[notice("A", "lien", "T+1")], 1).await.unwrap();
        let claim = store.claim_notices(10).await.unwrap();
        let keys = vec![claim.notices[0].key.clone()];
        let id = uuid::Uuid::new_v4().to_string();
        let message = NewMessage::new(
            Message {
                id: id.clone(),
                message_id: "<m@t>".into(),
                kind: MessageKind::Reminder,
                recipient: "lien".into(),
                address: "lien@example.gov.vn".into(),
                channel: Channel::Email,
                subject: "s".into(),
                payload: "p".into(),
            },
            keys,
            None,
        );
        // Leased until wall-clock second 1000: already expired "now" (wall 2000).
        claim.commit(&[message], &[], "crashed", 1000, 10).await.unwrap();
        let other = open(&url).await;
        let (x, y) = tokio::join!(
            store.claim_due_messages("x", 10, 2000, 9_999, 10),
            other.claim_due_messages("y", 10, 2000, 9_999, 10)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.len() + y.len(), 1, "{backend:?}: exactly one claimer takes the expired lease");
        let winner = if x.is_empty() { "y" } else { "x" };
        assert!(!store.finish_message(&id, "crashed", &MessageOutcome::Sent, 11).await.unwrap());
        assert!(store.finish_message(&id, winner, &MessageOutcome::Sent, 11).await.unwrap());
        let report = store.status_report(10).await.unwrap();
        assert_eq!(report.counts.messages, vec![("sent".to_string(), 1)]);
        assert_eq!(report.counts.notices, vec![("sent".to_string(), 1)]);
    }
}

/// lien's T+1 notices of directives D{range}.
fn lien_plan(range: std::ops::Range<usize>) -> Vec<Notice> {
    range.map(|i| notice(&format!("D{i:03}"), "lien", "T+1")).collect()
}

/// One message to lien holding every notice of `plan`, recorded by replica `who`.
fn lien_message(who: &str, plan: &[Notice]) -> NewMessage {
    NewMessage::new(
        Message {
            id: format!("m-{who}"),
            message_id: format!("<{who}@t>"),
            kind: MessageKind::Reminder,
            recipient: "lien".into(),
            address: "lien@example.gov.vn".into(),
            channel: Channel::Email,
            subject: "s".into(),
            payload: "p".into(),
        },
        plan.iter().map(|n| n.key.clone()).collect(),
        None,
    )
}

#[tokio::test]
async fn two_replicas_recording_the_same_plan_record_each_notice_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(backend, dir.path()).await;
        let (one, two) = (open(&url).await, open(&url).await);
        // Both planned the same round; their batches overlap in D50..D99.
        let plan_a: Vec<Notice> = lien_plan(0..100);
        let plan_b: Vec<Notice> = lien_plan(50..150);
        let record = |store: Store, plan: Vec<Notice>, who: &'static str| async move {
            let message = lien_message(who, &plan);
            let rows: Vec<NoticeRow> = plan.iter().map(|n| NoticeRow::queued(n, &message.id)).collect();
            let recorded =
                store.record_planned_messages(&rows, std::slice::from_ref(&message), who, i64::MAX, 1).await.unwrap();
            if !recorded {
                // The loser leaves its batch to be claimed: only what nobody recorded is new.
                store.enqueue_unrecorded(plan.iter().collect(), 1).await.unwrap();
            }
            recorded
        };
        let (a, b) = tokio::join!(record(one.clone(), plan_a, "a"), record(two, plan_b, "b"));
        assert!(a ^ b, "{backend:?}: exactly one replica records its batch (a {a}, b {b})");
        let counts = one.status_report(10).await.unwrap().counts;
        assert_eq!(counts.messages, vec![("queued".to_string(), 1)], "{backend:?}");
        assert_eq!(counts.notices, vec![("pending".to_string(), 50), ("queued".to_string(), 100)], "{backend:?}");
        // The pending rest is claimed once, and no notice of the recorded message comes back.
        let claim = one.claim_notices(1000).await.unwrap();
        assert_eq!(claim.notices.len(), 50, "{backend:?}");
    }
}

#[tokio::test]
async fn two_replicas_adopting_the_same_waiting_notices_move_each_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(backend, dir.path()).await;
        let (one, two) = (open(&url).await, open(&url).await);
        // D000..D099 were recorded overnight and wait; each replica's plan holds some of them.
        let waiting: Vec<Notice> = lien_plan(0..100);
        one.enqueue(&waiting, 1).await.unwrap();
        let plan_a: Vec<Notice> = lien_plan(0..100);
        let plan_b: Vec<Notice> = lien_plan(50..150);
        let record = |store: Store, plan: Vec<Notice>, who: &'static str| async move {
            let message = lien_message(who, &plan);
            let rows: Vec<NoticeRow> = plan
                .iter()
                .map(|n| NoticeRow::queued(n, &message.id).adopted(n.directive.as_deref() < Some("D100")))
                .collect();
            let recorded =
                store.record_planned_messages(&rows, std::slice::from_ref(&message), who, i64::MAX, 1).await.unwrap();
            if !recorded {
                let new: Vec<&Notice> = plan.iter().filter(|n| n.directive.as_deref() >= Some("D100")).collect();
                store.enqueue_unrecorded(new, 1).await.unwrap();
            }
            recorded
        };
        let (a, b) = tokio::join!(record(one.clone(), plan_a, "a"), record(two, plan_b, "b"));
        assert!(a ^ b, "{backend:?}: exactly one replica moves the waiting notices (a {a}, b {b})");
        let counts = one.status_report(10).await.unwrap().counts;
        assert_eq!(counts.messages, vec![("queued".to_string(), 1)], "{backend:?}");
        assert_eq!(counts.notices, vec![("pending".to_string(), 50), ("queued".to_string(), 100)], "{backend:?}");
    }
}
