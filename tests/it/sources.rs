//! Sources through the real binary, on both backends: an agency's own exports (an xlsx
//! tracking sheet with native dates, a `;`-separated CSV with a BOM and Vietnamese headers,
//! one in Windows-1258) synced row by row — valid rows apply, a bad row is named by source,
//! row, field, value and reason and keeps the directive as it was — with every change in
//! the directive's history; an unchanged export skipped; a truncated snapshot refused; and a
//! daemon that hears of a directive closed without result and tells its people at once.

use crate::support::{self, fresh_database, Backend, Nhacviec, BACKENDS};
use serde_json::Value;
use std::path::Path;

const MAPPING: &str = r#"
[sources.columns]
"Mã nhiệm vụ" = "code"
"Trích yếu" = "title"
"Đơn vị chủ trì" = "unit"
"Người thụ lý" = "assignee"
"Hạn xử lý" = "due_on"
"Tình trạng" = "status"
"Ngày kết thúc" = "closed_on"
[sources.values.status]
"Đang thực hiện" = "in_progress"
"Chưa thực hiện" = "open"
"Kết thúc" = "closed"
"#;

const HEADER: &str = "Mã nhiệm vụ;Trích yếu;Đơn vị chủ trì;Người thụ lý;Hạn xử lý;Tình trạng;Ngày kết thúc";

/// The sample agency, and a configuration with one source reading `path`.
async fn agency_with_source(backend: Backend, dir: &Path, path: &Path, extra: &str) -> Nhacviec {
    let location = format!("kind = \"file\"\npath = {:?}\n{extra}", path.display().to_string());
    agency_with(backend, dir, &location, MAPPING).await
}

/// The sample agency, and a configuration with one source `so-theo-doi`: `location` (kind,
/// path or URL, …) and `mapping` (its columns and values tables).
async fn agency_with(backend: Backend, dir: &Path, location: &str, mapping: &str) -> Nhacviec {
    let config = dir.join("nhacviec.toml");
    let text = format!("[[sources]]\nname = \"so-theo-doi\"\n{location}\n{mapping}");
    std::fs::write(&config, text).unwrap();
    let nv = Nhacviec::new(&fresh_database(backend, dir).await, dir)
        .with("NHACVIEC_CONFIG", config.to_str().unwrap())
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", dir.join("mail").to_str().unwrap());
    let examples = support::repo().join("examples");
    nv.ok(&["import", examples.join("sample-agency.json").to_str().unwrap()]);
    nv
}

fn csv(rows: &[&str]) -> Vec<u8> {
    let mut text = String::from("\u{feff}");
    text.push_str(HEADER);
    text.push_str("\r\n");
    for row in rows {
        text.push_str(row);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

fn history(nv: &Nhacviec, code: &str) -> Value {
    serde_json::from_str(&nv.ok(&["history", code, "--json"])).unwrap()
}

#[tokio::test]
async fn a_csv_export_syncs_row_by_row_and_a_bad_row_is_named_and_keeps_the_directive() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("so.csv");
        let nv = agency_with_source(backend, dir.path(), &export, "").await;
        std::fs::write(
            &export,
            csv(&[
                "NV-01;Kiểm tra hồ sơ;NV1;Trương Đăng Khoa;05/09/2022;Đang thực hiện;",
                ";;;;;;",
                // The officer named as people write her name: extra spaces.
                "NV-02;Báo cáo quý;Phòng Nghiệp vụ 1;Ngô Thị  Diễm My;2022-09-30;Chưa thực hiện;",
                "NV-03;Việc không rõ người;NV1;Người Lạ;31/09/2022;Đang thực hiện;",
            ]),
        )
        .unwrap();
        let out = nv.run(&["sync"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "applied its valid rows: exit 0\n{stdout}");
        assert!(stdout.contains("3 row(s) read, applied 2, rejected 1"), "{stdout}");
        // Named: source, row as the file numbers it (the blank row 3 skipped), field, value, reason.
        assert!(
            stdout.contains(r#"source "so-theo-doi": row 5: field "assignee (column "Người thụ lý")": no person has the code or the name "Người Lạ""#),
            "{stdout}"
        );
        assert!(
            stdout.contains(r#"row 5: field "due_on (column "Hạn xử lý")": "31/09/2022" is not a date"#),
            "{stdout}"
        );
        let h = history(&nv, "NV-02");
        assert_eq!(h["directive"]["assignee"], "ttv_my", "{backend:?}: resolved by name");
        assert_eq!(h["changes"][0]["field"], "created");
        assert_eq!(h["changes"][0]["origin"], "so-theo-doi");
        let missing = nv.run(&["history", "NV-03"]);
        assert!(!missing.status.success(), "the rejected row wrote nothing");

        // Unchanged: skipped by content hash.
        let again = nv.ok(&["sync"]);
        assert!(again.contains("unchanged"), "{again}");

        // The sheet moves NV-01's due date later and its next export has a typo in NV-02's date:
        // NV-01 is extended, NV-02 keeps what it had.
        std::fs::write(
            &export,
            csv(&[
                "NV-01;Kiểm tra hồ sơ;NV1;Trương Đăng Khoa;15/09/2022;Đang thực hiện;",
                "NV-02;Báo cáo quý;NV1;Ngô Thị Diễm My;30/13/2022;Chưa thực hiện;",
            ]),
        )
        .unwrap();
        let out = nv.ok(&["sync"]);
        assert!(out.contains("NV-01 due_on: 2022-09-05 → 2022-09-15"), "{out}");
        assert_eq!(history(&nv, "NV-02")["directive"]["due_on"], "2022-09-30", "{backend:?}");
        let text = nv.ok(&["history", "NV-01"]);
        assert!(text.contains("gia hạn (extension): 2022-09-05 → 2022-09-15 (so-theo-doi)"), "{text}");
        // The block leader's weekly digest lists the week's extension under its unit.
        let digest = nv.ok(&["digest", "--leader", "pct_a"]);
        let line =
            digest.lines().position(|l| l.contains("Gia hạn trong 7 ngày qua")).unwrap_or_else(|| panic!("{digest}"));
        assert!(digest.lines().skip(line).take(4).any(|l| l.contains("[GIA HẠN] NV-01")), "{digest}");
        assert!(digest.contains("Hạn cũ: 05/09/2022 – hạn mới: 15/09/2022 (nguồn: so-theo-doi)"), "{digest}");
        let sources: Value = serde_json::from_str(&nv.ok(&["sources", "--json"])).unwrap();
        assert_eq!(sources[0]["last_run"]["rows_rejected"], 1, "{sources}");
        assert_eq!(sources[0]["last_run"]["result"], "ok");
    }
}

#[tokio::test]
async fn a_truncated_snapshot_is_refused_and_an_empty_one_too() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("so.csv");
        let nv =
            agency_with_source(backend, dir.path(), &export, "on_missing = \"cancel\"\nmax_missing_percent = 10").await;
        let rows: Vec<String> =
            (1..=10).map(|i| format!("T-{i:02};Việc {i};NV1;ttv_khoa;30/09/2022;Đang thực hiện;")).collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        std::fs::write(&export, csv(&refs)).unwrap();
        nv.ok(&["sync"]);
        // Half of them gone: a truncated export. Refused, exit 1, nothing cancelled.
        std::fs::write(&export, csv(&refs[..5])).unwrap();
        let out = nv.run(&["sync"]);
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("would cancel 5 of its 10 live directives"), "{stdout}");
        assert_eq!(history(&nv, "T-10")["directive"]["status"], "in_progress", "{backend:?}");
        // A header and no rows: refused too.
        std::fs::write(&export, csv(&[])).unwrap();
        let out = nv.run(&["sync"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("a snapshot with no rows is refused"));
        // One of ten gone (10%, not more): it is cancelled, the history says why.
        std::fs::write(&export, csv(&refs[..9])).unwrap();
        let out = nv.ok(&["sync"]);
        assert!(out.contains("(1 cancelled)"), "{out}");
        let h = history(&nv, "T-10");
        assert_eq!(h["directive"]["status"], "cancelled");
        assert!(h["changes"].to_string().contains("no longer listed by the source"), "{h}");
        // A dry run says what would change and writes nothing.
        let mut renamed = refs[..9].to_vec();
        renamed[0] = "T-01;Việc 1 (sửa);NV1;ttv_khoa;30/09/2022;Đang thực hiện;";
        std::fs::write(&export, csv(&renamed)).unwrap();
        let out = nv.ok(&["sync", "--dry-run"]);
        assert!(out.contains("would apply") && out.contains("T-01 title: Việc 1 → Việc 1 (sửa)"), "{out}");
        assert_eq!(history(&nv, "T-01")["directive"]["title"], "Việc 1", "{backend:?}");
    }
}

#[tokio::test]
async fn an_xlsx_tracking_sheet_with_native_dates_and_a_windows_1258_csv_are_read() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let dir = tempfile::tempdir().unwrap();
    let sheet_path = dir.path().join("so.xlsx");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name("Nhiệm vụ").unwrap();
    for (col, header) in HEADER.split(';').enumerate() {
        sheet.write_string(0, u16::try_from(col).unwrap(), header).unwrap();
    }
    let date = Format::new().set_num_format("dd/mm/yyyy");
    sheet.write_string(1, 0, "X-01").unwrap();
    sheet.write_string(1, 1, "Rà soát đơn thư").unwrap();
    sheet.write_string(1, 2, "TCD").unwrap();
    sheet.write_string(1, 3, "Lý Minh Hiếu").unwrap();
    sheet.write_datetime_with_format(1, 4, ExcelDateTime::from_ymd(2022, 9, 12).unwrap(), &date).unwrap();
    sheet.write_string(1, 5, "Đang thực hiện").unwrap();
    book.save(&sheet_path).unwrap();
    let nv = agency_with_source(Backend::Sqlite, dir.path(), &sheet_path, "sheet = \"Nhiệm vụ\"").await;
    let out = nv.ok(&["sync"]);
    assert!(out.contains("1 row(s) read, applied 1, rejected 0"), "{out}");
    let h = history(&nv, "X-01");
    assert_eq!(h["directive"]["due_on"], "2022-09-12", "a native date cell needs no pattern");
    assert_eq!(h["directive"]["assignee"], "ttv_hieu");

    // The same kind of export saved by an old Excel in Windows-1258 (Vietnamese letters as a
    // base letter and a combining mark, as that code page writes them), through the source's
    // mapping with `import --source`: read and applied, not rejected.
    use unicode_normalization::UnicodeNormalization;
    let text = format!("{HEADER}\r\nL-01;Việc cũ;NV1;Lý Minh Hiếu;30/09/2022;Đang thực hiện;\r\n");
    // Windows-1258 has â ê ô ă ơ ư đ precomposed, and the five tones as combining marks.
    let tone = |c: char| matches!(c, '\u{300}' | '\u{301}' | '\u{303}' | '\u{309}' | '\u{323}');
    let decomposed: String = text
        .chars()
        .flat_map(|c| {
            let parts: Vec<char> = c.to_string().nfd().collect();
            let base: String = parts.iter().filter(|p| !tone(**p)).collect::<String>().nfc().collect();
            let marks: String = parts.iter().filter(|p| tone(**p)).collect();
            format!("{base}{marks}").chars().collect::<Vec<_>>()
        })
        .collect();
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1258.encode(&decomposed);
    assert!(!unmappable, "every letter has a Windows-1258 form");
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    let legacy = dir.path().join("legacy.csv");
    std::fs::write(&legacy, &bytes).unwrap();
    let out = nv.ok(&["import", "--source", "so-theo-doi", legacy.to_str().unwrap()]);
    assert!(out.contains("applied 1, rejected 0"), "{out}");
    let h = history(&nv, "L-01");
    assert_eq!(h["directive"]["title"], "Việc cũ");
    assert_eq!(h["directive"]["assignee"], "ttv_hieu");
}

#[tokio::test]
async fn the_daemon_syncs_on_schedule_and_a_directive_closed_without_result_reaches_its_people_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("so.csv");
    std::fs::write(&export, csv(&["C-01;Thực hiện Quyết định;NV1;ttv_khoa;30/09/2022;Đang thực hiện;"])).unwrap();
    // The scan runs once an hour: only the source's own schedule can bring the news in time.
    let mut nv = agency_with_source(Backend::Sqlite, dir.path(), &export, "schedule = \"*/1 * * * * *\"").await;
    nv.set("NHACVIEC__SCHEDULE__SCAN", "0 0 * * * *");
    let port = support::free_port();
    nv.set("NHACVIEC__HTTP__LISTEN", &format!("127.0.0.1:{port}"));
    for (k, v) in support::any_hour() {
        nv.set(&k, &v);
    }
    let mut daemon = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();
    let mail = dir.path().join("mail");
    let alarms = || -> usize {
        std::fs::read_dir(&mail).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("C-01")))
                .count()
        })
    };
    support::wait_for("the first sync", std::time::Duration::from_secs(30), || {
        nv.run(&["history", "C-01"]).status.success()
    });
    let before = alarms();
    // The document system ends it without a result.
    std::fs::write(&export, csv(&["C-01;Thực hiện Quyết định;NV1;ttv_khoa;30/09/2022;Kết thúc;04/10/2022"])).unwrap();
    // The assignee, the unit head and the block leader are told, without waiting for the scan.
    support::wait_for("the closed-without-result alarm", std::time::Duration::from_secs(30), || alarms() >= before + 3);
    // /metrics counts the source's runs and rows, and when it last worked.
    let (status, metrics) = support::http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let runs = metrics
        .lines()
        .find(|l| l.starts_with(r#"nhacviec_source_runs_total{source="so-theo-doi",result="ok"}"#))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(runs.rsplit(' ').next().unwrap().parse::<u64>().unwrap() >= 2, "{runs}");
    assert!(metrics.contains(r#"nhacviec_source_rows_total{source="so-theo-doi",outcome="applied"}"#), "{metrics}");
    assert!(metrics.contains(r#"nhacviec_source_last_success_timestamp_seconds{source="so-theo-doi"}"#));
    let _ = std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    assert!(daemon.wait().unwrap().success());
}

#[tokio::test]
async fn the_administrator_is_told_once_when_a_source_keeps_failing_and_once_when_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let peer = support::SmtpPeer::start(dir.path(), &[]);
    let export = dir.path().join("missing.csv");
    let mut nv = agency_with_source(Backend::Sqlite, dir.path(), &export, "alert_after = 2").await;
    for (k, v) in peer.env() {
        nv.set(&k, &v);
    }
    nv.set("NHACVIEC__ADMIN__EMAIL", "admin@thanhtra.example.gov.vn");
    for _ in 0..3 {
        let out = nv.run(&["sync"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("cannot read"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let alerts = |mails: &[support::Mail]| -> Vec<String> {
        mails
            .iter()
            .filter(|m| m.to == ["admin@thanhtra.example.gov.vn".to_string()])
            .filter_map(|m| m.subject.clone())
            .collect()
    };
    assert_eq!(
        alerts(&peer.messages()),
        [r#"[nhacviec] Nguồn dữ liệu "so-theo-doi" lỗi 2 lần liên tiếp"#],
        "once, at the second failure"
    );
    std::fs::write(&export, csv(&["R-01;Việc;NV1;ttv_khoa;30/09/2022;Đang thực hiện;"])).unwrap();
    nv.ok(&["sync"]);
    nv.ok(&["sync"]);
    let subjects = alerts(&peer.messages());
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert_eq!(subjects[1], r#"[nhacviec] Nguồn dữ liệu "so-theo-doi" đã hoạt động trở lại"#);
}

#[tokio::test]
async fn a_json_endpoint_is_read_with_its_token_and_an_unchanged_one_costs_a_304() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let rows = serde_json::json!({"data": [
        {"Mã nhiệm vụ": "H-01", "Trích yếu": "Trả lời đơn", "Đơn vị chủ trì": "TCD", "Người thụ lý": "Lý Minh Hiếu",
         "Hạn xử lý": "20/09/2022", "Tình trạng": "Đang thực hiện"}
    ]});
    std::fs::write(served.join("export.json"), rows.to_string()).unwrap();
    let peer = support::EtagPeer::start(&served, Some("s3cret"));
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let location = format!(
        "kind = \"http\"\nurl = \"http://127.0.0.1:{}/export.json\"\ntoken_file = {:?}",
        peer.port,
        dir.path().join("token").display().to_string()
    );
    let nv = agency_with(Backend::Postgres, dir.path(), &location, MAPPING).await;
    let out = nv.ok(&["sync"]);
    assert!(out.contains("1 row(s) read, applied 1, rejected 0"), "{out}");
    assert_eq!(history(&nv, "H-01")["directive"]["due_on"], "2022-09-20");
    let out = nv.ok(&["sync"]);
    assert!(out.contains("unchanged"), "{out}");
    let requests = peer.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["authorization"], "Bearer s3cret");
    assert_eq!(requests[1]["status"], 304, "the second asked If-None-Match: {requests:?}");
    // A wrong token: the run fails, naming the answer, and changes nothing.
    std::fs::write(dir.path().join("token"), "wrong\n").unwrap();
    let out = nv.run(&["sync"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("HTTP 401"), "{}", String::from_utf8_lossy(&out.stdout));
}

const SQL_MAPPING: &str = r#"
[sources.columns]
ma = "code"
trich_yeu = "title"
don_vi = "unit"
nguoi_thu_ly = "assignee"
han = "due_on"
tinh_trang = "status"
[sources.values.status]
"Đang xử lý" = "in_progress"
"#;

#[tokio::test]
async fn a_document_systems_view_on_mariadb_and_on_postgresql_is_read_with_native_dates() {
    use sqlx::Connection;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        // MariaDB: the document system's own database, read through a view.
        let url = support::fresh_mysql_database().await;
        let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
        for sql in [
            "CREATE TABLE van_ban (so_hieu VARCHAR(64) PRIMARY KEY, noi_dung TEXT, phong VARCHAR(16),
                                   can_bo VARCHAR(200), han_xu_ly DATE, trang_thai VARCHAR(64))",
            "INSERT INTO van_ban VALUES ('VB-01', 'Xử lý văn bản đến số 12', 'NV2', 'Bùi Trọng Nghĩa', '2022-09-16', 'Đang xử lý'),
                                        ('VB-02', 'Văn bản số 13', 'NV2', 'ttv_trang', NULL, 'Đang xử lý')",
            "CREATE VIEW v_nhiem_vu AS SELECT so_hieu AS ma, noi_dung AS trich_yeu, phong AS don_vi,
                                   can_bo AS nguoi_thu_ly, han_xu_ly AS han, trang_thai AS tinh_trang FROM van_ban",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        let location =
            format!("kind = \"sql\"\nurl = {url:?}\nquery = \"SELECT * FROM v_nhiem_vu\"\nmode = \"changes\"");
        let nv = agency_with(backend, dir.path(), &location, SQL_MAPPING).await;
        let out = nv.ok(&["sync"]);
        assert!(out.contains("2 row(s) read, applied 2, rejected 0"), "{backend:?}: {out}");
        let h = history(&nv, "VB-01");
        assert_eq!(h["directive"]["due_on"], "2022-09-16", "a DATE column needs no pattern");
        assert_eq!(h["directive"]["assignee"], "ttv_nghia");
        assert_eq!(h["directive"]["status"], "in_progress");
        // The query runs read-only: a statement that writes is refused by the server.
        let config = dir.path().join("nhacviec.toml");
        let text = std::fs::read_to_string(&config).unwrap().replace("SELECT * FROM v_nhiem_vu", "DELETE FROM van_ban");
        std::fs::write(&config, text).unwrap();
        assert!(!nv.run(&["sync"]).status.success());
        let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM van_ban").fetch_one(&mut conn).await.unwrap();
        assert_eq!(rows.0, 2, "nothing deleted");

        // PostgreSQL as a source too.
        let pg = support::fresh_pg_database().await;
        let mut pgc = sqlx::PgConnection::connect(&pg).await.unwrap();
        sqlx::query(
            "CREATE TABLE nv (ma TEXT, trich_yeu TEXT, don_vi TEXT, nguoi_thu_ly TEXT, han DATE, tinh_trang TEXT)",
        )
        .execute(&mut pgc)
        .await
        .unwrap();
        sqlx::query("INSERT INTO nv VALUES ('PG-01', 'Từ PostgreSQL', 'NV3', 'tp_nv3', '2022-09-21', 'Đang xử lý')")
            .execute(&mut pgc)
            .await
            .unwrap();
        // A document system that keeps deadlines as instants: 20:00 UTC on 30/09 is already
        // 1 October in Hà Nội, the agency's date.
        sqlx::query(
            "CREATE VIEW nv_tz AS SELECT 'PG-02'::text AS ma, 'Hạn là một thời điểm'::text AS trich_yeu,
                    'NV3'::text AS don_vi, 'tp_nv3'::text AS nguoi_thu_ly,
                    TIMESTAMPTZ '2022-09-30 20:00:00+00' AS han, 'Đang xử lý'::text AS tinh_trang",
        )
        .execute(&mut pgc)
        .await
        .unwrap();
        let location = format!("kind = \"sql\"\nurl = {pg:?}\nquery = \"SELECT * FROM nv\"\nmode = \"changes\"");
        let dir2 = tempfile::tempdir().unwrap();
        let nv = agency_with(backend, dir2.path(), &location, SQL_MAPPING).await;
        let out = nv.ok(&["sync"]);
        assert!(out.contains("applied 1"), "{out}");
        assert_eq!(history(&nv, "PG-01")["directive"]["due_on"], "2022-09-21");
        let config = dir2.path().join("nhacviec.toml");
        let text = std::fs::read_to_string(&config).unwrap().replace("SELECT * FROM nv\"", "SELECT * FROM nv_tz\"");
        std::fs::write(&config, text).unwrap();
        let out = nv.ok(&["sync"]);
        assert!(out.contains("applied 1"), "{out}");
        assert_eq!(history(&nv, "PG-02")["directive"]["due_on"], "2022-10-01", "{backend:?}: the agency's date");
    }
}

#[test]
fn every_shipped_source_example_is_a_valid_configuration() {
    let dir = support::repo().join("examples/sources");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let tmp = tempfile::tempdir().unwrap();
            let nv = Nhacviec::new("sqlite://unused.db", tmp.path()).with("NHACVIEC_CONFIG", path.to_str().unwrap());
            let out = nv.run(&["check-config"]);
            assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}

/// The tracking-sheet template's rows: code, title, source, unit, assignee, assigned, due, status.
const TEMPLATE_ROWS: [[&str; 8]; 2] = [
    [
        "MAU-01",
        "Rà soát hồ sơ thanh tra năm 2022",
        "KL giao ban 09/2022",
        "Phòng Nghiệp vụ 1",
        "Trương Đăng Khoa",
        "2022-09-05",
        "2022-09-30",
        "Đang thực hiện",
    ],
    [
        "MAU-02",
        "Báo cáo công tác tiếp công dân quý III",
        "KL giao ban 09/2022",
        "TCD",
        "Lý Minh Hiếu",
        "2022-09-05",
        "2022-09-28",
        "Chưa thực hiện",
    ],
];

#[tokio::test]
async fn the_shipped_tracking_sheet_template_syncs_through_the_shipped_mapping() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let template = support::repo().join("examples/sources/so-theo-doi.xlsx");
    let config = std::fs::read_to_string(support::repo().join("examples/sources/so-theo-doi.toml")).unwrap();
    if std::env::var_os("NHACVIEC_UPDATE_SNAPSHOTS").is_some() {
        // The headers are the mapping's, in the order the sheet has them.
        let headers: Vec<&str> = config
            .lines()
            .skip_while(|l| !l.starts_with("[sources.columns]"))
            .skip(1)
            .take_while(|l| l.starts_with('"'))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        let mut book = Workbook::new();
        let sheet = book.add_worksheet().set_name("Nhiệm vụ").unwrap();
        let bold = Format::new().set_bold();
        for (col, header) in headers.iter().enumerate() {
            sheet.write_string_with_format(0, u16::try_from(col).unwrap(), *header, &bold).unwrap();
        }
        let date = Format::new().set_num_format("dd/mm/yyyy");
        for (r, row) in TEMPLATE_ROWS.iter().enumerate() {
            let r = u32::try_from(r + 1).unwrap();
            for (c, value) in
                [(0, row[0]), (1, row[1]), (2, row[2]), (3, row[3]), (4, row[4]), (7, row[7]), (11, "không")]
            {
                sheet.write_string(r, c, value).unwrap();
            }
            for (c, value) in [(5, row[5]), (6, row[6])] {
                let d = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").unwrap();
                let cell = ExcelDateTime::from_ymd(
                    u16::try_from(chrono::Datelike::year(&d)).unwrap(),
                    u8::try_from(chrono::Datelike::month(&d)).unwrap(),
                    u8::try_from(chrono::Datelike::day(&d)).unwrap(),
                )
                .unwrap();
                sheet.write_datetime_with_format(r, c, cell, &date).unwrap();
            }
            sheet.set_column_width(1, 50).unwrap();
        }
        book.save(&template).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let adjusted = config.replace("/srv/export/so-theo-doi.xlsx", template.to_str().unwrap());
    let location: String = adjusted.lines().skip_while(|l| !l.starts_with("kind")).collect::<Vec<_>>().join("\n");
    let nv = agency_with(Backend::Sqlite, dir.path(), &location, "").await;
    let out = nv.ok(&["sync", "--dry-run"]);
    assert!(out.contains("2 row(s) read, would apply 2, rejected 0"), "{out}");
    nv.ok(&["sync"]);
    let h = history(&nv, "MAU-01");
    assert_eq!(h["directive"]["assignee"], "ttv_khoa");
    assert_eq!(h["directive"]["due_on"], "2022-09-30");
    assert_eq!(history(&nv, "MAU-02")["directive"]["status"], "open");
}

#[tokio::test]
async fn replicas_syncing_one_source_at_once_apply_each_change_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("so.csv");
        let nv = agency_with_source(backend, dir.path(), &export, "").await;
        let rows = |due: &str| -> Vec<String> {
            (0..300)
                .map(|i| {
                    let due = if i == 7 { due } else { "30/09/2022" };
                    format!("SO-{i:03};Nhiệm vụ {i};NV1;Trương Đăng Khoa;{due};Đang thực hiện;")
                })
                .collect()
        };
        let race = |lines: Vec<String>| {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            std::fs::write(&export, csv(&lines)).unwrap();
            let children: Vec<_> = (0..3).map(|_| nv.command(&["sync"]).spawn().unwrap()).collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        };
        race(rows("05/09/2022"));
        for code in ["SO-000", "SO-007", "SO-299"] {
            let changes = history(&nv, code)["changes"].as_array().unwrap().clone();
            let created = changes.iter().filter(|c| c["field"] == "created").count();
            assert_eq!(created, 1, "{backend:?} {code}: {changes:?}");
        }
        // The sheet extends SO-007; three replicas see the new export at once.
        race(rows("15/09/2022"));
        let changes = history(&nv, "SO-007")["changes"].as_array().unwrap().clone();
        let moved: Vec<_> = changes.iter().filter(|c| c["field"] == "due_on").collect();
        assert_eq!(moved.len(), 1, "{backend:?}: one extension, recorded once: {changes:?}");
        assert_eq!(moved[0]["new_value"], "2022-09-15");
    }
}
