//! Chaos: three real daemons share one PostgreSQL database and a real SMTP server that
//! injects faults (451s that clear, 550s, dropped connections, random 451s). One daemon is
//! SIGKILLed and restarted every second or two; PostgreSQL is restarted once mid-run. In the
//! end every message that was owed and not permanently rejected has been delivered, every
//! permanent rejection is dead and visible in `status`, and duplicates (one Message-ID
//! received twice) number no more than the kills. The test prints its figures.

use crate::support;

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};
use support::{any_hour, Nhacviec, PgCluster, SmtpPeer};

const PEOPLE: usize = 2000;

/// One officer per directive, each due on the daemons' day, so each is owed exactly one
/// reminder: PEOPLE messages. Some addresses carry injected faults.
fn agency() -> (serde_json::Value, BTreeSet<String>, BTreeSet<String>) {
    let today = &support::DAEMON_AT[..10];
    let mut people = vec![
        json!({"code": "tp", "name": "Trưởng phòng", "title": "Trưởng phòng", "email": "tp@example.gov.vn", "unit": "NV1", "role": "head", "active": true}),
    ];
    let mut directives = Vec::new();
    let (mut deliverable, mut rejected) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..PEOPLE {
        let local = match i % 20 {
            0 => format!("fail550rcpt-{i}"),
            1 | 2 => format!("flaky2-{i}"),
            3 => format!("dropfirst1-{i}"),
            _ => format!("cv{i}"),
        };
        let address = format!("{local}@example.gov.vn");
        if local.starts_with("fail550") {
            rejected.insert(address.clone());
        } else {
            deliverable.insert(address.clone());
        }
        people.push(json!({"code": format!("cv{i}"), "name": format!("Công chức {i}"), "title": "Chuyên viên",
                           "email": address, "unit": "NV1", "role": "officer", "active": true}));
        directives.push(json!({"code": format!("D{i:05}"), "kind": "task", "title": format!("Nhiệm vụ {i}"),
                               "source": "KL giao ban", "unit": "NV1", "assignee": format!("cv{i}"),
                               "assigned_on": "2022-08-11", "due_on": today, "status": "open"}));
    }
    let value = json!({
        "units": [{"code": "NV1", "name": "Phòng Nghiệp vụ 1", "head": "tp", "leader": null}],
        "people": people,
        "directives": directives,
    });
    (value, deliverable, rejected)
}

fn kill(child: &Child, signal: &str) {
    let _ = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status();
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_survive_kills_and_a_database_restart_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgCluster::start();
    let peer = SmtpPeer::start(dir.path(), &["--fault-rate", "0.05", "--seed", "7"]);
    let mut nv = Nhacviec::new(&pg.url("postgres"), dir.path());
    for (k, v) in peer.env().into_iter().chain(any_hour()) {
        nv.set(&k, &v);
    }
    for (k, v) in [
        ("NHACVIEC__SCHEDULE__SCAN", "*/1 * * * * *"),
        ("NHACVIEC__REPORTS__WEEKLY", ""),
        ("NHACVIEC__REPORTS__MONTHLY", "false"),
        ("NHACVIEC__DELIVERY__BATCH_SIZE", "50"),
        // One send in flight per replica: a kill then cuts at most one send short.
        ("NHACVIEC__DELIVERY__CONCURRENCY", "1"),
        ("NHACVIEC__DELIVERY__LEASE_SECONDS", "10"),
        ("NHACVIEC__DELIVERY__RETRY_BASE_SECONDS", "1"),
        ("NHACVIEC__DELIVERY__RETRY_MAX_SECONDS", "3"),
        ("NHACVIEC__DELIVERY__MAX_ATTEMPTS", "100"),
        ("NHACVIEC__DATABASE__MAX_CONNECTIONS", "4"),
        ("RUST_LOG", "error"),
    ] {
        nv.set(k, v);
    }
    let (agency, deliverable, rejected) = agency();
    nv.import_json("agency.json", &agency);

    let mut replicas: Vec<Child> =
        (0..3).map(|_| nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap()).collect();
    let started = Instant::now();
    let mut kills = 0;
    let mut restarted_db = false;
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let chaos_for = Duration::from_secs(25);
    while started.elapsed() < chaos_for {
        std::thread::sleep(Duration::from_millis(1000 + next() % 1000));
        let victim = usize::try_from(next() % 3).unwrap();
        kill(&replicas[victim], "-KILL");
        let _ = replicas[victim].wait();
        kills += 1;
        replicas[victim] = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();
        if !restarted_db && started.elapsed() > Duration::from_secs(8) {
            pg.restart();
            restarted_db = true;
        }
    }

    // Let the survivors finish: everything sent or dead.
    let deadline = Instant::now() + Duration::from_secs(180);
    let counts = loop {
        let status = nv.status_json();
        let messages: BTreeMap<String, i64> = status["counts"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_i64().unwrap()))
            .collect();
        let notices: BTreeMap<String, i64> = status["counts"]["notices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_i64().unwrap()))
            .collect();
        let settled = messages.get("queued").copied().unwrap_or(0) == 0
            && notices.get("pending").copied().unwrap_or(0) == 0
            && notices.values().sum::<i64>() >= i64::try_from(PEOPLE).unwrap();
        if settled {
            break (messages, notices, status);
        }
        assert!(Instant::now() < deadline, "did not settle: {messages:?} {notices:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    for r in &replicas {
        kill(r, "-TERM");
    }
    for r in &mut replicas {
        let _ = r.wait();
    }

    let accepted: Vec<(String, String)> = peer
        .log()
        .into_iter()
        .filter(|e| e["event"] == "accepted")
        .map(|e| {
            (e["message_id"].as_str().unwrap_or("").to_string(), e["rcpt_tos"][0].as_str().unwrap_or("").to_string())
        })
        .collect();
    let unique_ids: BTreeSet<&String> = accepted.iter().map(|(id, _)| id).collect();
    let duplicates = accepted.len() - unique_ids.len();
    let delivered_to: BTreeSet<String> = accepted.iter().map(|(_, rcpt)| rcpt.clone()).collect();
    let (messages, notices, status) = counts;
    let dead: BTreeSet<String> =
        status["dead_letters"].as_array().unwrap().iter().map(|d| d["address"].as_str().unwrap().to_string()).collect();
    let faults = peer.log().iter().filter(|e| e["event"] == "fault").count();
    println!(
        "chaos: {PEOPLE} owed, {} delivered to distinct recipients, {} accepted in all, {duplicates} duplicate(s), \
         {} dead, {kills} kill(s), database restarted: {restarted_db}, {faults} injected fault(s); \
         messages {messages:?}, notices {notices:?}",
        delivered_to.len(),
        accepted.len(),
        dead.len()
    );
    let missing: Vec<&String> = deliverable.difference(&delivered_to).collect();
    assert!(
        missing.is_empty(),
        "{} deliverable recipients got nothing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(delivered_to.is_disjoint(&rejected), "a permanently rejected address was delivered");
    assert_eq!(dead, rejected, "every permanent rejection is dead and visible in status");
    assert!(duplicates <= kills, "{duplicates} duplicates > {kills} kills");
    assert!(restarted_db);
}
