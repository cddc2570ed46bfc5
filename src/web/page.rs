//! Web ← page: a directive's page as server-rendered HTML, Vietnamese and phone-first, with a
//! plain form per answer the visitor may give (no JavaScript, no cookies): each form posts to
//! the JSON API's path, form-encoded, and is answered 303 back to the page.

use super::view::{time, Event, View};
use crate::answer::AnswerKind;
use std::fmt::Write as _;

/// Text made safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;margin:0;\
background:#f4f5f7;color:#1b1f24;font-size:16px;line-height:1.45}main{max-width:40rem;margin:0 auto;padding:1rem}\
h1{font-size:1.25rem;margin:.2rem 0 .6rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}\
.card{background:#fff;border-radius:8px;padding:.9rem 1rem;margin:.6rem 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem .8rem;margin:0}dt{color:#57606a}dd{margin:0}\
label{display:block;margin:.5rem 0 .2rem;font-weight:600}input,textarea,select{width:100%;box-sizing:border-box;\
font:inherit;padding:.55rem;border:1px solid #c9ced6;border-radius:6px;background:#fff}textarea{min-height:5rem}\
button{font:inherit;font-weight:600;margin-top:.7rem;padding:.65rem 1rem;border:0;border-radius:6px;\
background:#0b5cad;color:#fff;width:100%}button.refuse{background:#8a1c1c}.badge{display:inline-block;\
padding:.1rem .45rem;border-radius:4px;background:#e7ecf3;font-size:.85rem}.late{background:#fde2e1;color:#8a1c1c}\
ol{padding-left:1.2rem}li{margin:.35rem 0}.when{color:#57606a;font-size:.85rem}.error{background:#fde2e1;\
color:#8a1c1c;padding:.7rem 1rem;border-radius:6px}";

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{}</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// The page of a link that does not open, or of an answer that was not taken.
pub fn failure(status: u16, message: &str, field: Option<&str>) -> String {
    let field = field.map(|f| format!(" (trường <code>{}</code>)", escape(f))).unwrap_or_default();
    shell(
        "Nhắc việc",
        &format!(
            "<h1>Không thực hiện được</h1><p class=\"error\">{} – {}{field}</p>\
<p>Mở lại đường dẫn trong thư nhắc việc mới nhất của đồng chí.</p>",
            status,
            escape(message)
        ),
    )
}

fn date(d: Option<chrono::NaiveDate>) -> String {
    d.map_or("chưa có".into(), |d| d.format("%d/%m/%Y").to_string())
}

fn status_label(status: crate::domain::Status) -> &'static str {
    use crate::domain::Status;
    match status {
        Status::Open => "Chưa thực hiện",
        Status::InProgress => "Đang thực hiện",
        Status::Completed => "Hoàn thành",
        Status::Closed => "Đã kết thúc",
        Status::Cancelled => "Đã hủy",
    }
}

/// A directive's page for the visitor whose `token` opened it.
pub fn render(view: &View, token: &str, error: Option<&str>) -> String {
    let d = &view.directive;
    let mut body = String::new();
    let _ = write!(body, "<p class=\"when\">Nhắc việc · {}</p>", escape(&view.visitor.name));
    if let Some(error) = error {
        let _ = write!(body, "<p class=\"error\">{}</p>", escape(error));
    }
    let _ = write!(body, "<h1>{} – {}</h1>", escape(&d.code), escape(&d.title));
    let unit = view.unit.as_ref().map_or(d.unit.clone(), |u| u.name.clone());
    let assignee = view.assignee.as_ref().map_or("chưa phân công".to_string(), |p| p.name.clone());
    let _ = write!(
        body,
        "<div class=\"card\"><dl><dt>Nguồn</dt><dd>{}</dd><dt>Đơn vị</dt><dd>{}</dd><dt>Người thụ lý</dt><dd>{}</dd>\
<dt>Hạn xử lý</dt><dd>{}</dd><dt>Tình trạng</dt><dd><span class=\"badge\">{}</span></dd></dl></div>",
        escape(if d.source.is_empty() { "—" } else { &d.source }),
        escape(&unit),
        escape(&assignee),
        date(d.due_on),
        status_label(d.status)
    );
    if let Some(done) = &view.open.completion {
        let _ = write!(
            body,
            "<div class=\"card\"><b>Đã báo cáo hoàn thành, chờ xác nhận</b><br>Kết quả: {}</div>",
            escape(done.note.as_deref().unwrap_or(""))
        );
    }
    if let Some(ext) = &view.open.extension {
        let _ = write!(
            body,
            "<div class=\"card\"><b>Đề nghị gia hạn đến {}, chờ quyết định</b><br>Lý do: {}</div>",
            date(ext.on_date),
            escape(ext.note.as_deref().unwrap_or(""))
        );
    }
    for kind in &view.actions {
        body.push_str(&form(*kind, token));
    }
    body.push_str("<h2>Diễn biến</h2><ol class=\"card\">");
    for event in &view.timeline {
        let _ =
            write!(body, "<li><span class=\"when\">{}</span><br>{}</li>", when(event.at(), view), event_text(event));
    }
    body.push_str("</ol>");
    shell(&format!("{} – Nhắc việc", d.code), &body)
}

fn when(at: i64, view: &View) -> String {
    let text = time(at, view.timezone);
    chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.format("%d/%m/%Y %H:%M").to_string()).unwrap_or(text)
}

fn event_text(event: &Event) -> String {
    match event {
        Event::Change(c) if c.field == "created" => format!("Tiếp nhận từ {}", escape(&c.origin)),
        Event::Change(c) => {
            let label = if c.is_extension() { "Gia hạn" } else { c.field.as_str() };
            format!(
                "{}: {} → {} <span class=\"when\">({})</span>",
                escape(label),
                escape(c.old_value.as_deref().unwrap_or("∅")),
                escape(c.new_value.as_deref().unwrap_or("∅")),
                escape(&c.origin)
            )
        }
        Event::Notice(n) => format!(
            "Thông báo {} {} gửi {} qua {}: {}",
            escape(&n.kind),
            escape(&n.stage),
            escape(&n.recipient),
            escape(&n.channel),
            escape(&n.status)
        ),
        Event::Answer(a) => {
            let mut text = format!("{} – {}", a.kind.label(), escape(&a.person));
            if let Some(accept) = a.accept {
                text.push_str(if accept { ": đồng ý" } else { ": không đồng ý" });
            }
            if let Some(cause) = a.cause {
                let _ = write!(text, " (nguyên nhân {})", cause.label());
            }
            if let Some(percent) = a.percent {
                let _ = write!(text, " ({percent}%)");
            }
            if let Some(d) = a.on_date {
                let _ = write!(text, " – {}", d.format("%d/%m/%Y"));
            }
            if let Some(note) = &a.note {
                let _ = write!(text, "<br>{}", escape(note));
            }
            if let Some(measures) = &a.measures {
                let _ = write!(text, "<br>Biện pháp: {}", escape(measures));
            }
            text
        }
    }
}

fn form(kind: AnswerKind, token: &str) -> String {
    let fields = match kind {
        AnswerKind::Progress => "<label for=\"note\">Tiến độ</label><textarea id=\"note\" name=\"note\" required></textarea>\
<label for=\"percent\">Phần trăm hoàn thành (không bắt buộc)</label>\
<input id=\"percent\" name=\"percent\" type=\"number\" min=\"0\" max=\"100\" inputmode=\"numeric\">"
            .to_string(),
        AnswerKind::Done => "<label for=\"result\">Kết quả thực hiện</label><textarea id=\"result\" name=\"result\" required></textarea>\
<label for=\"completed_on\">Ngày hoàn thành</label><input id=\"completed_on\" name=\"completed_on\" type=\"date\">"
            .to_string(),
        AnswerKind::Explain => "<label for=\"cause\">Nguyên nhân</label><select id=\"cause\" name=\"cause\">\
<option value=\"objective\">Khách quan</option><option value=\"subjective\">Chủ quan</option></select>\
<label for=\"description\">Nội dung giải trình</label><textarea id=\"description\" name=\"description\" required></textarea>\
<label for=\"measures\">Biện pháp khắc phục</label><textarea id=\"measures\" name=\"measures\" required></textarea>"
            .to_string(),
        AnswerKind::Extend => "<label for=\"until\">Đề nghị gia hạn đến ngày</label><input id=\"until\" name=\"until\" type=\"date\" required>\
<label for=\"reason\">Lý do</label><textarea id=\"reason\" name=\"reason\" required></textarea>"
            .to_string(),
        AnswerKind::Confirm | AnswerKind::Decide => {
            let id = kind.as_str();
            return format!(
                "<form class=\"card\" method=\"post\" action=\"/r/{token}/{id}\"><b>{}</b>\
<label for=\"{id}-note\">Ý kiến (bắt buộc khi không đồng ý)</label><textarea id=\"{id}-note\" name=\"note\"></textarea>\
<button name=\"accept\" value=\"true\" id=\"{id}-accept\">Đồng ý</button>\
<button name=\"accept\" value=\"false\" class=\"refuse\" id=\"{id}-refuse\">Không đồng ý</button></form>",
                kind.label(),
                token = escape(token)
            );
        }
    };
    format!(
        "<form class=\"card\" method=\"post\" action=\"/r/{}/{}\"><b>{}</b>{fields}<button id=\"{}-submit\">Gửi</button></form>",
        escape(token),
        kind.as_str(),
        kind.label(),
        kind.as_str()
    )
}
