//! Chat channels end to end through the real binary: Telegram (a Bot API stand-in that can
//! answer 429 with retry_after) and a signed webhook (a receiver that verifies the HMAC),
//! per-person channel preferences, and the fallback to chat when an email bounces.

use crate::support;

use serde_json::json;
use support::{directive, fresh_database, small_agency, Backend, HttpPeer, Nhacviec, SmtpPeer, DEMO_AT};

const SECRET: &str = "khóa-bí-mật-webhook";

/// The small agency with reach preferences per person code.
fn agency_with(reach: &[(&str, serde_json::Value)], directives: serde_json::Value) -> serde_json::Value {
    let mut agency = small_agency(directives);
    for person in agency["people"].as_array_mut().unwrap() {
        if let Some((_, r)) = reach.iter().find(|(code, _)| person["code"] == *code) {
            for (k, v) in r.as_object().unwrap() {
                person[k] = v.clone();
            }
        }
    }
    agency
}

async fn setup(dir: &std::path::Path, smtp: &SmtpPeer, http: &HttpPeer, agency: &serde_json::Value) -> Nhacviec {
    let mut nv = Nhacviec::new(&fresh_database(Backend::Sqlite, dir).await, dir);
    for (k, v) in smtp.env() {
        nv.set(&k, &v);
    }
    let token = dir.join("bot-token");
    std::fs::write(&token, "123456:ABC-test\n").unwrap();
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, SECRET).unwrap();
    for (k, v) in [
        ("NHACVIEC__REPORTS__WEEKLY", String::new()),
        ("NHACVIEC__REPORTS__MONTHLY", "false".into()),
        ("NHACVIEC__TELEGRAM__ENABLED", "true".into()),
        ("NHACVIEC__TELEGRAM__API_URL", http.url()),
        ("NHACVIEC__TELEGRAM__TOKEN_FILE", token.display().to_string()),
        ("NHACVIEC__WEBHOOK__ENABLED", "true".into()),
        ("NHACVIEC__WEBHOOK__URL", format!("{}/hook", http.url())),
        ("NHACVIEC__WEBHOOK__SECRET_FILE", secret.display().to_string()),
    ] {
        nv.set(k, &v);
    }
    nv.import_json("agency.json", agency);
    nv
}

fn telegram_requests(http: &HttpPeer) -> Vec<serde_json::Value> {
    http.requests().into_iter().filter(|r| r["path"].as_str().unwrap().ends_with("/sendMessage")).collect()
}

fn webhook_requests(http: &HttpPeer) -> Vec<serde_json::Value> {
    http.requests().into_iter().filter(|r| r["path"] == "/hook").collect()
}

#[tokio::test]
async fn preferences_decide_the_channels_and_telegram_never_shows_a_confidential_title() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, http) = (SmtpPeer::start(dir.path(), &[]), HttpPeer::start(dir.path(), SECRET));
    let mut secret_one = directive("MAT-01", Some("lien"), Some("2022-09-05"));
    secret_one["confidential"] = json!(true);
    secret_one["title"] = json!("Xác minh tài sản, thu nhập của ông A");
    let agency = agency_with(
        &[
            ("lien", json!({"channels": ["telegram"], "telegram_chat_id": "1001"})),
            ("ly", json!({"channels": "email,telegram", "telegram_chat_id": "1002"})),
        ],
        json!([
            secret_one,
            directive("KL-02", Some("ly"), Some("2022-09-05")),
            directive("KL-03", Some("tp"), Some("2022-09-05"))
        ]),
    );
    let nv = setup(dir.path(), &smtp, &http, &agency).await;
    let plan = nv.plan_json(DEMO_AT);
    let routes: Vec<(String, String, String)> =
        plan.iter().map(|n| (n.recipient.clone(), n.channel.clone(), n.address.clone())).collect();
    assert!(routes.contains(&("lien".into(), "telegram".into(), "1001".into())), "{routes:?}");
    assert!(!routes.iter().any(|(r, c, _)| r == "lien" && c == "email"), "lien chose telegram only");
    assert!(routes.contains(&("ly".into(), "email".into(), "ly@example.gov.vn".into())));
    assert!(routes.contains(&("ly".into(), "telegram".into(), "1002".into())));
    assert!(routes.contains(&("tp".into(), "email".into(), "tp@example.gov.vn".into())));
    assert!(plan.iter().all(|n| n.key.ends_with(&format!(":{}", n.channel))), "each channel has its own key");

    nv.ok(&["tick", "--at", DEMO_AT]);
    let sent = telegram_requests(&http);
    assert_eq!(sent.len(), 2);
    let to_lien = sent.iter().find(|r| r["body"]["chat_id"] == "1001").unwrap();
    let text = to_lien["body"]["text"].as_str().unwrap();
    assert!(text.starts_with("[Nhắc việc] 05/09/2022: 1 nhiệm vụ đến hạn hôm nay"), "{text}");
    assert!(text.contains("MAT-01 (mật)") && text.contains("Hạn 05/09/2022"), "{text}");
    assert!(!text.contains("tài sản"), "a confidential title never goes to chat: {text}");
    assert!(to_lien["path"].as_str().unwrap().starts_with("/bot123456:ABC-test/"));
    let emails: Vec<String> = smtp.messages().into_iter().flat_map(|m| m.to).collect();
    assert!(emails.contains(&"ly@example.gov.vn".to_string()) && !emails.contains(&"lien@example.gov.vn".to_string()));
}

#[tokio::test]
async fn telegram_429_is_retried_after_the_wait_it_asks_for_and_403_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, http) = (SmtpPeer::start(dir.path(), &[]), HttpPeer::start(dir.path(), SECRET));
    let agency = agency_with(
        &[
            ("lien", json!({"channels": ["telegram"], "telegram_chat_id": "throttle600"})),
            ("ly", json!({"channels": ["telegram"], "telegram_chat_id": "blocked-77"})),
        ],
        json!([directive("A", Some("lien"), Some("2022-09-05")), directive("B", Some("ly"), Some("2022-09-05"))]),
    );
    let nv = setup(dir.path(), &smtp, &http, &agency).await;
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("1 to retry, 1 dead"), "{out}");
    let dead = nv.status_json()["dead_letters"].clone();
    assert!(dead[0]["last_error"].as_str().unwrap().contains("403"), "{dead}");
    // Five minutes later is still inside the 600 s the server asked for.
    nv.ok(&["tick", "--at", "2022-09-05T08:05:00+07:00"]);
    assert_eq!(telegram_requests(&http).iter().filter(|r| r["body"]["chat_id"] == "throttle600").count(), 1);
    nv.ok(&["tick", "--at", "2022-09-05T08:10:01+07:00"]);
    let tries: Vec<_> =
        telegram_requests(&http).into_iter().filter(|r| r["body"]["chat_id"] == "throttle600").collect();
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[1]["status"], 200);
    assert_eq!(tries[0]["body"], tries[1]["body"], "the retry sends the same message");
}

#[tokio::test]
async fn webhooks_are_signed_idempotent_across_retries_and_dead_on_a_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, http) = (SmtpPeer::start(dir.path(), &[]), HttpPeer::start(dir.path(), SECRET));
    let mut secret_one = directive("MAT-02", Some("lien"), Some("2022-08-31"));
    secret_one["confidential"] = json!(true);
    let agency = agency_with(
        &[
            ("lien", json!({"channels": ["webhook"], "webhook_id": "zalo-fail500"})),
            ("ly", json!({"channels": ["webhook"], "webhook_id": "zalo-reject400"})),
        ],
        json!([secret_one, directive("B", Some("ly"), Some("2022-09-05"))]),
    );
    let nv = setup(dir.path(), &smtp, &http, &agency).await;
    let out = nv.ok(&["tick", "--at", DEMO_AT]);
    assert!(out.contains("1 to retry, 1 dead"), "{out}");
    nv.ok(&["tick", "--at", "2022-09-05T09:00:00+07:00"]);
    let hooks: Vec<_> =
        webhook_requests(&http).into_iter().filter(|r| r["body"]["webhook_id"] == "zalo-fail500").collect();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(hooks[0]["status"], 500);
    assert_eq!(hooks[1]["status"], 200);
    for h in &hooks {
        assert_eq!(h["signature_ok"], true, "HMAC verifies: {h}");
        assert_eq!(h["headers"]["idempotency-key"], "overdue:MAT-02:lien:2022-08-31:T+1:webhook");
    }
    assert_eq!(hooks[0]["body"], hooks[1]["body"]);
    let body = &hooks[1]["body"];
    assert_eq!(body["kind"], "overdue");
    assert_eq!(body["directive"], "MAT-02");
    assert_eq!(body["stage"], "T+1");
    assert_eq!(body["due_on"], "2022-08-31");
    assert_eq!(body["confidential"], true);
    assert!(body["title"].is_null(), "no confidential title in a webhook either");
    let dead = nv.status_json()["dead_letters"].clone();
    assert!(dead[0]["last_error"].as_str().unwrap().contains("400"), "{dead}");
}

#[tokio::test]
async fn after_a_550_the_notice_goes_to_chat_and_the_unit_head_is_told_the_address_bounces() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, http) = (SmtpPeer::start(dir.path(), &[]), HttpPeer::start(dir.path(), SECRET));
    let agency = agency_with(
        &[("lien", json!({"email": "fail550rcpt-lien@example.gov.vn", "telegram_chat_id": "2001"}))],
        json!([directive("A", Some("lien"), Some("2022-09-05")), directive("B", Some("tp"), Some("2022-09-08"))]),
    );
    let nv = setup(dir.path(), &smtp, &http, &agency).await;
    assert!(nv.plan_json(DEMO_AT).iter().all(|n| n.channel == "email"), "email only by default");
    nv.ok(&["tick", "--at", DEMO_AT]);
    let chats = telegram_requests(&http);
    assert_eq!(chats.len(), 1, "the bounced reminder went to lien's Telegram");
    assert_eq!(chats[0]["body"]["chat_id"], "2001");
    assert!(chats[0]["body"]["text"].as_str().unwrap().contains("A – "));
    // The head's next message names the bouncing address.
    nv.ok(&["tick", "--at", "2022-09-05T08:15:00+07:00"]);
    let to_head: Vec<_> =
        smtp.messages().into_iter().filter(|m| m.to == vec!["tp@example.gov.vn".to_string()]).collect();
    assert!(
        to_head.iter().any(|m| m.text.as_deref().unwrap().contains("fail550rcpt-lien@example.gov.vn")),
        "{:?}",
        to_head.iter().map(|m| m.text.clone()).collect::<Vec<_>>()
    );
    // Told once.
    nv.ok(&["tick", "--at", "2022-09-06T08:15:00+07:00"]);
    let told = smtp
        .messages()
        .into_iter()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains("fail550rcpt-lien@example.gov.vn")))
        .count();
    assert_eq!(told, 1);
}

#[tokio::test]
async fn the_block_leaders_digest_flags_an_address_that_bounces() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, http) = (SmtpPeer::start(dir.path(), &[]), HttpPeer::start(dir.path(), SECRET));
    let agency = agency_with(
        &[("lien", json!({"email": "fail550rcpt-lien@example.gov.vn"}))],
        json!([directive("A", Some("lien"), Some("2022-08-31"))]),
    );
    let nv = setup(dir.path(), &smtp, &http, &agency).await.with("NHACVIEC__REPORTS__WEEKLY", "0 30 7 * * Mon");
    nv.ok(&["tick", "--at", "2022-08-31T08:00:00+07:00"]); // lien's reminder bounces
    nv.ok(&["tick", "--at", DEMO_AT]);
    let digest = smtp
        .messages()
        .into_iter()
        .find(|m| {
            m.to == vec!["pct@example.gov.vn".to_string()]
                && m.subject.as_deref().unwrap().starts_with("[Báo cáo tuần] Tuần 36")
        })
        .expect("pct's digest");
    assert!(digest.text.as_deref().unwrap().contains("fail550rcpt-lien@example.gov.vn"), "{:?}", digest.text);
}
