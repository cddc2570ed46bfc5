//! Import hardening through the built binary: one bad row or one wrong file must be refused
//! whole, with the problem named (file, place, field), and must never reach the database,
//! where it would stop or corrupt an agency's reminders later. Each test has its own SQLite
//! database in a tempdir; files are passed by relative name (the binary runs in that
//! directory), so the errors can be matched exactly.

use crate::support;

use serde_json::{json, Value};
use support::{directive, fresh_database, small_agency, Backend, Nhacviec, DEMO_AT};

async fn nhacviec(dir: &std::path::Path) -> Nhacviec {
    Nhacviec::new(&fresh_database(Backend::Sqlite, dir).await, dir)
}

fn write(nv: &Nhacviec, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(nv.dir.join(name), bytes).expect("write import file");
}

fn write_json(nv: &Nhacviec, name: &str, value: &Value) {
    write(nv, name, serde_json::to_vec_pretty(value).expect("json"));
}

/// Rows in each imported table, read straight from the database: what a rejected import
/// must leave as it found.
async fn row_counts(db_url: &str) -> [i64; 4] {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("{db_url}?mode=rw")).await.expect("connect");
    let mut counts = [0; 4];
    for (count, table) in counts.iter_mut().zip(["units", "people", "directives", "calendar_days"]) {
        let (n,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut conn).await.expect("count");
        *count = n;
    }
    counts
}

/// The agency's units and people only, imported on their own, so that later files may refer
/// to them as codes already in the store.
fn import_people(nv: &Nhacviec) {
    nv.import_json("agency.json", &small_agency(json!([])));
}

#[tokio::test]
async fn a_code_in_three_files_of_one_import_is_refused_naming_both_places_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).await;
    import_people(&nv);
    let before_plan = nv.plan_json(DEMO_AT);
    let before_rows = row_counts(&nv.db_url).await;

    write_json(&nv, "a.json", &json!({"directives": [directive("D1", Some("lien"), Some("2022-08-31"))]}));
    write(
        &nv,
        "b.csv",
        "code,kind,title,unit,assignee,due_on\n\
         D2,task,Hai,NV1,ly,2022-08-31\n\
         D1,task,Một lần nữa,NV1,ly,2022-08-31\n",
    );
    write_json(
        &nv,
        "c.json",
        &json!({"directives": [directive("D3", Some("ly"), Some("2022-08-31")), directive("D1", None, None)]}),
    );
    let err = nv.fails(&["import", "a.json", "b.csv", "c.json"]);
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        err.contains("b.csv: line 3: field \"code\": duplicate code \"D1\" (first at a.json: directives[0])"),
        "{err}"
    );
    assert!(
        err.contains("c.json: directives[1]: field \"code\": duplicate code \"D1\" (first at a.json: directives[0])"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // All or nothing: not even D2 and D3, which were fine.
    assert_eq!(nv.plan_json(DEMO_AT), before_plan);
    assert_eq!(row_counts(&nv.db_url).await, before_rows);
    assert_eq!(before_rows[2], 0, "no directive before or after");

    // Without the repeats, the same three files import: it was the duplicate, nothing else.
    write(&nv, "b.csv", "code,kind,title,unit,assignee,due_on\nD2,task,Hai,NV1,ly,2022-08-31\n");
    write_json(&nv, "c.json", &json!({"directives": [directive("D3", Some("ly"), Some("2022-08-31"))]}));
    let out = nv.ok(&["import", "a.json", "b.csv", "c.json"]);
    assert!(out.contains("3 directive(s)"), "{out}");
    let planned: Vec<String> = nv.plan_json(DEMO_AT).into_iter().filter_map(|n| n.directive).collect();
    for code in ["D1", "D2", "D3"] {
        assert!(planned.iter().any(|d| d == code), "{code} not planned: {planned:?}");
    }
}

#[tokio::test]
async fn a_title_of_2001_characters_is_refused_naming_the_title_its_limit_and_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).await;
    // Characters, not bytes: "ệ" is three bytes in UTF-8.
    let mut long = directive("LONG", Some("lien"), Some("2022-09-30"));
    long["title"] = json!("ệ".repeat(2_001));
    write_json(&nv, "long.json", &small_agency(json!([long])));
    let err = nv.fails(&["import", "long.json"]);
    assert!(
        err.contains("long.json: directives[0]: field \"title\": is 2001 characters long; the limit is 2000"),
        "{err}"
    );
    assert_eq!(row_counts(&nv.db_url).await, [0; 4]);

    // At the limit it is a title like any other.
    let mut at_limit = directive("LONG", Some("lien"), Some("2022-09-30"));
    at_limit["title"] = json!("ệ".repeat(2_000));
    write_json(&nv, "long.json", &small_agency(json!([at_limit])));
    assert!(nv.ok(&["import", "long.json"]).contains("1 directive(s)"));
}

#[tokio::test]
async fn nul_line_feed_and_carriage_return_in_a_code_title_or_name_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).await;
    for (c, hex) in [('\0', "U+0000"), ('\n', "U+000A"), ('\r', "U+000D")] {
        // (location, field, JSON pointer to it)
        let cases = [
            ("directives[0]", "code", "/directives/0/code"),
            ("directives[0]", "title", "/directives/0/title"),
            // "A\nB" as a person's name used to crash email delivery, far from the import.
            ("people[3]", "name", "/people/3/name"),
        ];
        for (location, field, pointer) in cases {
            let mut doc = small_agency(json!([directive("KL-01", Some("lien"), Some("2022-09-30"))]));
            *doc.pointer_mut(pointer).expect("field in the agency") = json!(format!("A{c}B"));
            write_json(&nv, "bad.json", &doc);
            let err = nv.fails(&["import", "bad.json"]);
            let want =
                format!("bad.json: {location}: field \"{field}\": contains the control character {hex} at character 2");
            assert!(err.contains(&want), "{c:?} in {field}: expected {want:?} in:\n{err}");
            assert_eq!(row_counts(&nv.db_url).await, [0; 4], "{c:?} in {field}");
        }
    }
    // The same from a CSV, where a quoted cell may span lines.
    import_people(&nv);
    write(&nv, "bad.csv", "code,title,unit\nD1,\"Dòng một\nDòng hai\",NV1\n");
    let err = nv.fails(&["import", "bad.csv"]);
    assert!(err.contains("bad.csv: line 2: field \"title\": contains the control character U+000A"), "{err}");
    assert_eq!(row_counts(&nv.db_url).await[2], 0);
}

#[tokio::test]
async fn an_empty_csv_or_json_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).await;
    write_json(&nv, "good.json", &small_agency(json!([directive("KL-01", Some("lien"), Some("2022-09-30"))])));
    for (name, bytes) in [
        ("empty.csv", &b""[..]),
        ("empty.json", b""),
        ("blank.json", b"\n  \n"),
        ("header-only.csv", b"code,title,unit\n"),
    ] {
        write(&nv, name, bytes);
        // Next to a good file, so "nothing written" means the good one too.
        let err = nv.fails(&["import", "good.json", name]);
        assert!(err.contains(&format!("{name}: ")), "{name}: {err}");
        assert!(err.contains("nothing was imported from any file"), "{name}: {err}");
        assert_eq!(row_counts(&nv.db_url).await, [0; 4], "{name}");
    }
}

#[tokio::test]
async fn a_good_file_still_imports_with_its_multi_line_result_and_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    let nv = nhacviec(dir.path()).await;
    let mut done = directive("KL-02", Some("ly"), Some("2022-08-31"));
    done["status"] = json!("completed");
    done["completed_on"] = json!("2022-08-30");
    done["result"] = json!("Báo cáo số 12/BC-NV1\n\tđã gửi Chánh Thanh tra");
    let mut agency = small_agency(json!([directive("KL-01", Some("lien"), Some("2022-08-31")), done]));
    agency["calendar"] = json!([{"date": "2022-09-01", "kind": "holiday", "note": "Quốc khánh"}]);
    write_json(&nv, "agency.json", &agency);
    let out = nv.ok(&["import", "agency.json"]);
    assert_eq!(out.trim(), "imported 2 unit(s), 5 person(s), 2 directive(s), 1 calendar day(s)");
    assert_eq!(row_counts(&nv.db_url).await, [2, 5, 2, 1]);
    let plan = nv.plan_json(DEMO_AT);
    assert!(plan.iter().any(|n| n.key == "overdue:KL-01:lien:2022-08-31:T+1:email"), "{plan:?}");
    assert!(!plan.iter().any(|n| n.directive.as_deref() == Some("KL-02")), "completed: nothing owed");
}
