//! The benchmark harness at smoke size, so it cannot rot: `nhacviec-bench --smoke` through the
//! real binary on both backends, against a real SMTP server. No assertion on time — only that
//! every measurement ran, on real work, and reported a peak memory.

use crate::support;

use std::collections::BTreeSet;
use support::{Nhacviec, SmtpPeer};

#[test]
fn the_smoke_benchmark_reports_every_measurement_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SmtpPeer::start(dir.path(), &[]);
    let out = dir.path().join("bench.jsonl");
    let nv = Nhacviec::new("sqlite://unused.db", dir.path()).with("NHACVIEC_TEST_PG_URL", &support::pg_admin_url());
    let smtp = format!("127.0.0.1:{}", peer.port);
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_nhacviec-bench"));
    let ran = nv
        .command_of(
            bench,
            &[
                "--smoke",
                "--smtp",
                &smtp,
                "--work-dir",
                dir.path().join("work").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "nhacviec-bench failed: {}\n{table}", String::from_utf8_lossy(&ran.stderr));
    assert!(table.contains('|'), "a Markdown table: {table}");
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r["backend"].as_str().unwrap().to_string(), r["measurement"].as_str().unwrap().to_string()))
        .collect();
    for backend in ["sqlite", "postgres"] {
        for measurement in [
            "generate",
            "scan",
            "enqueue",
            "enqueue_replay",
            "render",
            "cycle",
            "national_render",
            "national_cycle",
            "national_morning",
            "growth",
            "smtp_prepare",
            "smtp pool 1",
            "smtp pool 4",
            "smtp pool 8",
        ] {
            assert!(seen.contains(&(backend.into(), measurement.into())), "{backend} {measurement} missing: {seen:?}");
        }
    }
    for row in &rows {
        assert!(row["work"].as_u64().unwrap() > 0, "{row}");
        assert!(row["peak_rss_mb"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert!(!peer.messages().is_empty(), "the SMTP runs really sent mail");
}
