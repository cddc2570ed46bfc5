//! Answers from the message, through the real daemon on both backends: a signed link opens
//! the directive's page (HTML, or JSON with `Accept: application/json`); the assignee reports
//! a completion and asks for an extension, the unit head confirms and decides; every answer
//! lands in the timeline; a bad, expired or stranger's token is 403, an action that no longer
//! applies 409, a bad value 422 naming its field — and nothing changes on any of them.

use crate::support::{self, fresh_database, Nhacviec, BACKENDS};
use serde_json::{json, Value};
use std::time::Duration;

/// The sample agency with pages served on a port chosen now; the daemon and its port.
async fn agency(backend: support::Backend, dir: &std::path::Path) -> (Nhacviec, std::process::Child, u16) {
    let secret = dir.join("web-secret");
    std::fs::write(&secret, "k".repeat(48)).unwrap();
    let port = support::free_port();
    let mut nv = Nhacviec::new(&fresh_database(backend, dir).await, dir)
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", dir.join("mail").to_str().unwrap());
    nv.set("NHACVIEC__WEB__LISTEN", &format!("127.0.0.1:{port}"));
    nv.set("NHACVIEC__WEB__BASE_URL", "https://nhacviec.thanhtra.example.gov.vn");
    nv.set("NHACVIEC__WEB__SECRET_FILE", secret.to_str().unwrap());
    nv.set("NHACVIEC__HTTP__LISTEN", "");
    nv.set("NHACVIEC__SCHEDULE__SCAN", "0 0 0 1 1 *");
    let examples = support::repo().join("examples");
    nv.ok(&["import", examples.join("sample-agency.json").to_str().unwrap()]);
    let daemon = nv.command(&["run", "--at", support::DAEMON_AT]).spawn().unwrap();
    support::wait_for("the web endpoint", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (nv, daemon, port)
}

/// The path of `person`'s link to `directive` (`nhacviec link`), on the test's server.
fn link(nv: &Nhacviec, person: &str, directive: &str) -> String {
    let url = nv.ok(&["link", "--person", person, "--directive", directive]);
    let path = url.trim().strip_prefix("https://nhacviec.thanhtra.example.gov.vn").unwrap().to_string();
    assert!(path.starts_with("/r/"), "{url}");
    path
}

async fn post(port: u16, path: &str, action: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}/{action}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_assignee_reports_and_asks_the_head_confirms_and_decides() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (nv, mut daemon, port) = agency(backend, dir.path()).await;
        let officer = link(&nv, "ttv_khoa", "KL08-2022-01");
        let head = link(&nv, "tp_nv1", "KL08-2022-01");

        // The page, as a phone's browser gets it, and as JSON.
        let html = reqwest::get(format!("http://127.0.0.1:{port}{officer}")).await.unwrap();
        assert_eq!(html.status().as_u16(), 200);
        assert_eq!(html.headers()["cache-control"], "no-store");
        let text = html.text().await.unwrap();
        assert!(text.contains("KL08-2022-01") && text.contains("Báo cáo hoàn thành"), "{text}");
        let (status, page) = get_json(port, &officer).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["directive"]["code"], "KL08-2022-01");
        assert_eq!(page["actions"], json!(["progress", "done", "explain", "extend"]), "{backend:?}");
        let (_, head_page) = get_json(port, &head).await;
        assert_eq!(head_page["actions"], json!([]), "nothing to decide yet");

        // Bad values name their field; nothing is recorded.
        let (status, body) = post(port, &officer, "done", json!({"result": "   "})).await;
        assert_eq!((status, body["field"].clone()), (422, json!("result")), "{body}");
        let (status, body) = post(port, &officer, "extend", json!({"until": "30/10/2022", "reason": "x"})).await;
        assert_eq!((status, body["field"].clone()), (422, json!("until")), "{body}");
        let (status, body) =
            post(port, &officer, "explain", json!({"cause": "weather", "description": "d", "measures": "m"})).await;
        assert_eq!((status, body["field"].clone()), (422, json!("cause")), "{body}");
        // The head cannot report for the officer; the officer cannot confirm.
        assert_eq!(post(port, &head, "done", json!({"result": "xong"})).await.0, 403);
        assert_eq!(post(port, &head, "confirm", json!({"accept": true})).await.0, 409, "nothing reported yet");

        // Progress, the cause of the delay, then the completion with its result.
        let (status, _) =
            post(port, &officer, "progress", json!({"note": "Đã làm việc với đơn vị", "percent": 70})).await;
        assert_eq!(status, 200);
        let (status, _) = post(
            port,
            &officer,
            "explain",
            json!({"cause": "objective", "description": "Chờ hồ sơ của Sở Tài chính", "measures": "Đã có văn bản đôn đốc"}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, page) = post(port, &officer, "done", json!({"result": "Đã ban hành kết luận số 12/KL-TTr"})).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["directive"]["completion_awaiting_confirmation"]["note"], "Đã ban hành kết luận số 12/KL-TTr");
        assert_eq!(post(port, &officer, "done", json!({"result": "again"})).await.0, 409, "already reported");

        // The head refuses without a note (422), then with one: the completion is no longer pending.
        assert_eq!(post(port, &head, "confirm", json!({"accept": false})).await.1["field"], "note");
        let (status, page) = post(port, &head, "confirm", json!({"accept": false, "note": "Thiếu biên bản"})).await;
        assert_eq!(status, 200);
        assert_eq!(page["directive"]["completion_awaiting_confirmation"], Value::Null);
        assert_eq!(page["directive"]["status"], "in_progress");

        // An extension: asked, approved by the head, recorded as an extension by that person.
        let (status, _) =
            post(port, &officer, "extend", json!({"until": "2022-09-30", "reason": "Chờ ý kiến Sở"})).await;
        assert_eq!(status, 200);
        let (status, page) = post(port, &head, "decide", json!({"accept": true})).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["directive"]["due_on"], "2022-09-30");
        assert_eq!(post(port, &head, "decide", json!({"accept": true})).await.0, 409, "decided once");
        let extension = page["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "change" && e["field"] == "due_on")
            .cloned()
            .unwrap_or_else(|| panic!("{page}"));
        assert_eq!(extension["extension"], true);
        assert_eq!(extension["origin"], "web tp_nv1");

        // A completion confirmed: the directive is completed with the officer's result.
        post(port, &officer, "done", json!({"result": "Đã bổ sung biên bản", "completed_on": "2022-09-20"})).await;
        let (status, page) = post(port, &head, "confirm", json!({"accept": true})).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["directive"]["status"], "completed");
        assert_eq!(page["directive"]["completed_on"], "2022-09-20");
        assert_eq!(page["directive"]["result"], "Đã bổ sung biên bản");
        let kinds: Vec<&str> = page["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "answer")
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["progress", "explain", "done", "confirm", "extend", "decide", "done", "confirm"]);
        assert_eq!(post(port, &officer, "progress", json!({"note": "late"})).await.0, 409, "completed");

        // Tokens: tampered, a stranger's, another secret — all 403 and say nothing.
        let tampered = format!("{}x", &officer);
        assert_eq!(get_json(port, &tampered).await.0, 403);
        let stranger = link(&nv, "ttv_nghia", "KL08-2022-01");
        let (status, body) = get_json(port, &stranger).await;
        assert_eq!(status, 403);
        assert!(!body.to_string().contains("KL08"), "{body}");
        // A link that expired (made 31 days ago).
        let old = nv.ok(&[
            "link",
            "--person",
            "ttv_khoa",
            "--directive",
            "KL08-2022-01",
            "--at",
            "2020-01-01T08:00:00+07:00",
        ]);
        let old = old.trim().strip_prefix("https://nhacviec.thanhtra.example.gov.vn").unwrap().to_string();
        assert_eq!(get_json(port, &old).await.0, 403);

        // A browser's form post is answered 303 back to the page.
        let form = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let other = link(&nv, "ttv_my", "KL08-2022-02");
        let response = form
            .post(format!("http://127.0.0.1:{port}{other}/progress"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("note=%C4%90ang+l%C3%A0m&percent=10")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(response.headers()["location"], other.as_str());

        let _ = std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
        assert!(daemon.wait().unwrap().success());
    }
}
