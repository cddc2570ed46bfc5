//! Digest rendering: a `WeeklyDigest` (report::weekly) or `MonthlyReport` (report::monthly) → **here**
//! → subject, plain text and HTML in formal Vietnamese → outbox. Pure. The six templates are
//! built in from `config/templates/` and each can be replaced by a file of the same name in
//! `mail.templates_dir` (as the reminder templates are); HTML is auto-escaped. Everything a
//! template shows is prepared here as text (dates dd/mm/yyyy, "66,7%", labels, colours), so
//! an administrator's override never needs to compute.

use crate::domain::Person;
use crate::render::{add_templates, reply_note, vn_date, RenderError, Rendered};
use crate::report::monthly::{MonthlyCategory, MonthlyCounts, MonthlyItem, MonthlyReport};
use crate::report::weekly::{
    Audience, DigestCounts, DigestItem, Extension, ItemHeading, UnitSection, WeeklyDigest, WINDOW_DAYS,
};
use chrono::{Datelike, Days, NaiveDate, Weekday};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use std::path::Path;

const TEMPLATES: &[(&str, &str)] = &[
    ("digest.subject.j2", include_str!("../../config/templates/digest.subject.j2")),
    ("digest.txt.j2", include_str!("../../config/templates/digest.txt.j2")),
    ("digest.html.j2", include_str!("../../config/templates/digest.html.j2")),
    ("monthly.subject.j2", include_str!("../../config/templates/monthly.subject.j2")),
    ("monthly.txt.j2", include_str!("../../config/templates/monthly.txt.j2")),
    ("monthly.html.j2", include_str!("../../config/templates/monthly.html.j2")),
];

/// Severity colours. Every coloured mark also carries its meaning as text.
const RED: &str = "#b3261e";
const DARK_RED: &str = "#7b1d1d";
const AMBER: &str = "#a14f00";
const BLUE: &str = "#1a5fb4";
const GREEN: &str = "#1e7e34";
const GREY: &str = "#5f6368";

/// The digest and monthly-report templates, loaded once at start-up.
pub struct DigestRenderer {
    env: Environment<'static>,
    agency: String,
    /// The footer's sentence on replies.
    reply_note: String,
}

impl DigestRenderer {
    /// Built-in templates, each replaced by a file of the same name in `dir` if present.
    /// `agency` is the sending agency's name as it appears in the letterhead.
    pub fn new(dir: Option<&Path>, agency: &str, reply_to: Option<&str>) -> Result<DigestRenderer, RenderError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| if name.contains(".html") { AutoEscape::Html } else { AutoEscape::None });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        add_templates(&mut env, dir, TEMPLATES)?;
        Ok(DigestRenderer { env, agency: agency.to_string(), reply_note: reply_note(reply_to) })
    }

    /// The weekly digest as `recipient` receives it.
    pub fn render_weekly(&self, digest: &WeeklyDigest, recipient: &Person) -> Result<Rendered, RenderError> {
        let mut view = weekly_view(&self.agency, digest, recipient);
        view.reply_note.clone_from(&self.reply_note);
        view.subject = one_line(&self.render("digest.subject.j2", &view)?);
        Ok(Rendered {
            text: self.render("digest.txt.j2", &view)?,
            html: self.render("digest.html.j2", &view)?,
            subject: view.subject,
        })
    }

    /// The monthly briefing report as `recipient` receives it.
    pub fn render_monthly(&self, report: &MonthlyReport, recipient: &Person) -> Result<Rendered, RenderError> {
        let mut view = monthly_view(&self.agency, report, recipient);
        view.reply_note.clone_from(&self.reply_note);
        view.subject = one_line(&self.render("monthly.subject.j2", &view)?);
        Ok(Rendered {
            text: self.render("monthly.txt.j2", &view)?,
            html: self.render("monthly.html.j2", &view)?,
            subject: view.subject,
        })
    }

    fn render<S: Serialize>(&self, name: &str, view: &S) -> Result<String, RenderError> {
        let template_error = |source| RenderError::Template { name: name.to_string(), source };
        self.env.get_template(name).map_err(template_error)?.render(view).map_err(template_error)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "66,7%": Vietnamese writes a decimal comma; "–" when there is nothing to divide.
pub fn vn_percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_string(), |r| format!("{r:.1}%").replace('.', ","))
}

#[derive(Debug, Serialize)]
struct RecipientView {
    name: String,
    title: String,
}

fn recipient_view(person: &Person) -> RecipientView {
    RecipientView { name: person.name.clone(), title: person.title.clone() }
}

/// How the covered units are named: short (subject) and in a sentence.
fn scope(audience: &Audience, codes: &[&str]) -> (String, String) {
    match audience {
        Audience::Chief => ("Toàn cơ quan".into(), "toàn cơ quan".into()),
        Audience::Leader(_) if codes.is_empty() => {
            ("Khối (chưa có đơn vị)".into(), "khối do đồng chí phụ trách (chưa có đơn vị nào)".into())
        }
        Audience::Leader(_) => {
            let list = codes.join(", ");
            (format!("Khối {list}"), format!("các đơn vị thuộc khối do đồng chí phụ trách ({list})"))
        }
    }
}

/// One directive as a row: a coloured label that says what it is, then the facts.
#[derive(Debug, Serialize)]
struct Row {
    code: String,
    title: String,
    assignee: String,
    label: String,
    colour: &'static str,
    detail: String,
}

fn assignee_text(name: Option<&String>) -> String {
    name.cloned().unwrap_or_else(|| "chưa phân công".into())
}

fn due_text(due: Option<NaiveDate>) -> String {
    due.map_or_else(|| "chưa có".into(), vn_date)
}

fn overdue_label(days: i32) -> String {
    format!("QUÁ HẠN {days} NGÀY LÀM VIỆC")
}

fn row(item: &DigestItem, label: String, colour: &'static str, detail: String) -> Row {
    Row::new(&item.heading, label, colour, detail)
}

impl Row {
    fn new(item: &ItemHeading, label: String, colour: &'static str, detail: String) -> Row {
        Row {
            code: item.code.clone(),
            title: item.title.clone(),
            assignee: assignee_text(item.assignee_name.as_ref()),
            label,
            colour,
            detail,
        }
    }
}

fn overdue_row(item: &DigestItem) -> Row {
    let detail = format!("Hạn: {} – quá hạn {} ngày làm việc", due_text(item.due), item.days_overdue);
    row(item, overdue_label(item.days_overdue), RED, detail)
}

fn due_soon_row(item: &DigestItem) -> Row {
    let due = due_text(item.due);
    if item.days_left <= 0 {
        return row(item, "ĐẾN HẠN HÔM NAY".into(), AMBER, format!("Hạn: {due} (hôm nay)"));
    }
    let detail = format!("Hạn: {due} – còn {} ngày làm việc", item.days_left);
    row(item, format!("CÒN {} NGÀY LÀM VIỆC", item.days_left), BLUE, detail)
}

fn closed_row(item: &DigestItem) -> Row {
    let detail = format!("Hạn: {} – kết thúc ngày {}, chưa có kết quả", due_text(item.due), due_text(item.closed_on));
    row(item, "KẾT THÚC CHƯA HOÀN THÀNH".into(), DARK_RED, detail)
}

fn completed_row(item: &DigestItem) -> Row {
    let detail = format!("Hạn: {} – hoàn thành ngày {}", due_text(item.due), due_text(item.completed_on));
    match item.on_time {
        Some(false) => row(item, "HOÀN THÀNH QUÁ HẠN".into(), AMBER, detail),
        _ => row(item, "HOÀN THÀNH ĐÚNG HẠN".into(), GREEN, detail),
    }
}

fn extended_row(item: &Extension) -> Row {
    let detail = format!("Hạn cũ: {} – hạn mới: {} (nguồn: {})", vn_date(item.old_due), vn_date(item.new_due), item.by);
    Row::new(&item.heading, "GIA HẠN".into(), BLUE, detail)
}

/// One titled list of a unit; only non-empty lists are shown.
#[derive(Debug, Serialize)]
struct SectionView {
    kind: &'static str,
    title: String,
    rows: Vec<Row>,
}

fn section(
    kind: &'static str,
    title: String,
    items: &[DigestItem],
    to_row: fn(&DigestItem) -> Row,
) -> Option<SectionView> {
    (!items.is_empty()).then(|| SectionView { kind, title, rows: items.iter().map(to_row).collect() })
}

#[derive(Debug, Serialize)]
struct UnitView {
    code: String,
    name: String,
    head_name: Option<String>,
    summary: String,
    sections: Vec<SectionView>,
}

fn plus_days(date: NaiveDate, days: u64, forward: bool) -> NaiveDate {
    let moved = if forward { date.checked_add_days(Days::new(days)) } else { date.checked_sub_days(Days::new(days)) };
    moved.unwrap_or(date)
}

fn unit_view(unit: &UnitSection, today: NaiveDate) -> UnitView {
    let until = vn_date(plus_days(today, WINDOW_DAYS, true));
    let sections = [
        section("overdue", "Nhiệm vụ quá hạn".into(), &unit.overdue, overdue_row),
        section("due_soon", format!("Đến hạn từ nay đến {until}"), &unit.due_soon, due_soon_row),
        section("closed", "Kết thúc chưa hoàn thành trong 7 ngày qua".into(), &unit.closed, closed_row),
        section("completed", "Hoàn thành trong 7 ngày qua".into(), &unit.completed, completed_row),
        (!unit.extended.is_empty()).then(|| SectionView {
            kind: "extended",
            title: "Gia hạn trong 7 ngày qua".into(),
            rows: unit.extended.iter().map(extended_row).collect(),
        }),
    ];
    UnitView {
        code: unit.heading.code.clone(),
        name: unit.heading.name.clone(),
        head_name: unit.heading.head_name.clone(),
        summary: summary_line(&unit.counts),
        sections: sections.into_iter().flatten().collect(),
    }
}

/// The summary line: open (in time, overdue), closed without completion, completed on time.
fn summary_line(c: &DigestCounts) -> String {
    let undated = if c.without_due > 0 { format!(", chưa có hạn: {}", c.without_due) } else { String::new() };
    let on_time = match c.on_time_pct {
        Some(_) => format!(", đúng hạn {}", vn_percent(c.on_time_pct)),
        None => String::new(),
    };
    format!(
        "Đang thực hiện: {} (trong hạn: {}, quá hạn: {}{undated}); kết thúc chưa hoàn thành (7 ngày qua): {}; hoàn thành (7 ngày qua): {}{on_time}.",
        c.open, c.in_time, c.overdue, c.closed_incomplete, c.completed
    )
}

/// What the subject says after the scope: how much is wrong, or that nothing is.
fn weekly_headline(all_well: bool, c: &DigestCounts) -> String {
    if all_well {
        return "mọi nhiệm vụ trong hạn".into();
    }
    let mut parts = Vec::new();
    if c.overdue > 0 {
        parts.push(format!("{} nhiệm vụ quá hạn", c.overdue));
    }
    if c.closed_incomplete > 0 {
        let noun = if parts.is_empty() { "nhiệm vụ " } else { "" };
        parts.push(format!("{} {noun}kết thúc chưa hoàn thành", c.closed_incomplete));
    }
    parts.join(", ")
}

/// The closing request, naming only what is actually wrong.
fn weekly_closing(c: &DigestCounts) -> String {
    let asks = match (c.overdue > 0, c.closed_incomplete > 0) {
        (false, false) => {
            return "Đề nghị đồng chí tiếp tục chỉ đạo các đơn vị thực hiện nhiệm vụ đúng thời hạn.".into()
        }
        (true, false) => "khẩn trương xử lý các nhiệm vụ quá hạn",
        (false, true) => "làm rõ lý do các nhiệm vụ kết thúc chưa hoàn thành",
        (true, true) => "khẩn trương xử lý các nhiệm vụ quá hạn, làm rõ lý do các nhiệm vụ kết thúc chưa hoàn thành",
    };
    format!("Đề nghị đồng chí chỉ đạo các đơn vị {asks} và cập nhật kết quả trên hệ thống quản lý văn bản.")
}

/// A big number at the top of the digest.
#[derive(Debug, Serialize)]
struct Tile {
    value: String,
    label: &'static str,
    colour: &'static str,
}

fn tiles(c: &DigestCounts) -> Vec<Tile> {
    let alarm = |n: u32, colour| if n > 0 { colour } else { GREEN };
    vec![
        Tile { value: c.overdue.to_string(), label: "Quá hạn", colour: alarm(c.overdue, RED) },
        Tile {
            value: c.closed_incomplete.to_string(),
            label: "Kết thúc chưa hoàn thành (7 ngày qua)",
            colour: alarm(c.closed_incomplete, DARK_RED),
        },
        Tile { value: c.due_soon.to_string(), label: "Đến hạn trong 7 ngày tới", colour: BLUE },
        Tile { value: vn_percent(c.on_time_pct), label: "Hoàn thành đúng hạn (7 ngày qua)", colour: GREY },
    ]
}

#[derive(Debug, Serialize)]
struct WeeklyView {
    agency: String,
    reply_note: String,
    subject: String,
    recipient: RecipientView,
    date: String,
    week: String,
    week_no: u32,
    week_year: i32,
    week_start: String,
    week_end: String,
    since: String,
    until: String,
    scope: String,
    scope_phrase: String,
    is_chief: bool,
    headline: String,
    closing: String,
    all_well: bool,
    accent: &'static str,
    flags: Vec<String>,
    tiles: Vec<Tile>,
    totals: String,
    units: Vec<UnitView>,
}

fn weekly_view(agency: &str, digest: &WeeklyDigest, recipient: &Person) -> WeeklyView {
    let today = digest.today;
    let week = today.iso_week();
    let day = |weekday| NaiveDate::from_isoywd_opt(week.year(), week.week(), weekday).map_or_else(String::new, vn_date);
    let codes: Vec<&str> = digest.units.iter().map(|u| u.heading.code.as_str()).collect();
    let (scope, scope_phrase) = scope(&digest.audience, &codes);
    WeeklyView {
        agency: agency.to_string(),
        reply_note: String::new(),
        subject: String::new(),
        recipient: recipient_view(recipient),
        date: vn_date(today),
        week: digest.week.clone(),
        week_no: week.week(),
        week_year: week.year(),
        week_start: day(Weekday::Mon),
        week_end: day(Weekday::Sun),
        since: vn_date(plus_days(today, WINDOW_DAYS, false)),
        until: vn_date(plus_days(today, WINDOW_DAYS, true)),
        scope,
        scope_phrase,
        is_chief: digest.audience.is_chief(),
        headline: weekly_headline(digest.all_well, &digest.totals),
        closing: weekly_closing(&digest.totals),
        all_well: digest.all_well,
        accent: if digest.all_well { GREEN } else { RED },
        flags: digest.flags.clone(),
        tiles: tiles(&digest.totals),
        totals: summary_line(&digest.totals),
        units: digest.units.iter().map(|u| unit_view(u, today)).collect(),
    }
}

/// One category's cell in the monthly table.
#[derive(Debug, Serialize)]
struct Cell {
    label: &'static str,
    count: u32,
    rate: String,
    colour: &'static str,
}

#[derive(Debug, Serialize)]
struct CategoryHead {
    key: MonthlyCategory,
    label: &'static str,
    colour: &'static str,
}

/// A row of the monthly table: a unit, or the total.
#[derive(Debug, Serialize)]
struct MonthlyRow {
    code: String,
    name: String,
    total: u32,
    cells: Vec<Cell>,
}

/// The directives of one unit that need the briefing's attention.
#[derive(Debug, Serialize)]
struct Attention {
    code: String,
    name: String,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct MonthlyView {
    agency: String,
    reply_note: String,
    subject: String,
    recipient: RecipientView,
    date: String,
    stage: String,
    month: String,
    month_start: String,
    month_end: String,
    scope: String,
    scope_phrase: String,
    headline: String,
    categories: Vec<CategoryHead>,
    totals: MonthlyRow,
    units: Vec<MonthlyRow>,
    attention: Vec<Attention>,
}

fn category_colour(category: MonthlyCategory) -> &'static str {
    match category {
        MonthlyCategory::CompletedOnTime => GREEN,
        MonthlyCategory::CompletedLate => AMBER,
        MonthlyCategory::InProgressInTime => BLUE,
        MonthlyCategory::InProgressOverdue => RED,
        MonthlyCategory::ClosedIncomplete => DARK_RED,
    }
}

fn monthly_row(code: &str, name: &str, counts: &MonthlyCounts) -> MonthlyRow {
    MonthlyRow {
        code: code.to_string(),
        name: name.to_string(),
        total: counts.total,
        cells: MonthlyCategory::ALL
            .iter()
            .map(|c| {
                let tally = counts.get(*c);
                Cell { label: c.label(), count: tally.count, rate: vn_percent(tally.rate), colour: category_colour(*c) }
            })
            .collect(),
    }
}

fn monthly_item_row(item: &MonthlyItem) -> Option<Row> {
    let (label, colour, detail) = match item.category {
        MonthlyCategory::InProgressOverdue => (
            overdue_label(item.days_overdue),
            RED,
            format!("Hạn: {} – quá hạn {} ngày làm việc", vn_date(item.due), item.days_overdue),
        ),
        MonthlyCategory::ClosedIncomplete => (
            "KẾT THÚC CHƯA HOÀN THÀNH".to_string(),
            DARK_RED,
            format!("Hạn: {} – kết thúc ngày {}, chưa có kết quả", vn_date(item.due), due_text(item.closed_on)),
        ),
        _ => return None,
    };
    Some(Row::new(&item.heading, label, colour, detail))
}

fn monthly_headline(c: &MonthlyCounts) -> String {
    if c.total == 0 {
        return "không có nhiệm vụ đến hạn trong tháng".into();
    }
    let mut text = format!(
        "{} nhiệm vụ đến hạn, {} hoàn thành đúng hạn ({})",
        c.total,
        c.completed_on_time.count,
        vn_percent(c.completed_on_time.rate)
    );
    if c.in_progress_overdue.count > 0 {
        text.push_str(&format!(", {} đang quá hạn", c.in_progress_overdue.count));
    }
    if c.closed_incomplete.count > 0 {
        text.push_str(&format!(", {} kết thúc chưa hoàn thành", c.closed_incomplete.count));
    }
    text
}

fn month_bounds(year: i32, month: u32) -> (String, String) {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let last = first.and_then(|f| f.checked_add_months(chrono::Months::new(1))).and_then(|n| n.pred_opt());
    (first.map_or_else(String::new, vn_date), last.map_or_else(String::new, vn_date))
}

fn monthly_view(agency: &str, report: &MonthlyReport, recipient: &Person) -> MonthlyView {
    let codes: Vec<&str> = report.units.iter().map(|u| u.heading.code.as_str()).collect();
    let (scope, scope_phrase) = scope(&report.audience, &codes);
    let (month_start, month_end) = month_bounds(report.year, report.month);
    let attention = report
        .units
        .iter()
        .map(|u| Attention {
            code: u.heading.code.clone(),
            name: u.heading.name.clone(),
            rows: u.items.iter().filter_map(monthly_item_row).collect(),
        })
        .filter(|a| !a.rows.is_empty())
        .collect();
    MonthlyView {
        agency: agency.to_string(),
        reply_note: String::new(),
        subject: String::new(),
        recipient: recipient_view(recipient),
        date: vn_date(report.today),
        stage: report.stage.clone(),
        month: format!("{:02}/{}", report.month, report.year),
        month_start,
        month_end,
        headline: monthly_headline(&report.totals),
        categories: MonthlyCategory::ALL
            .iter()
            .map(|c| CategoryHead { key: *c, label: c.label(), colour: category_colour(*c) })
            .collect(),
        totals: monthly_row("", if report.audience.is_chief() { "Toàn cơ quan" } else { "Toàn khối" }, &report.totals),
        units: report.units.iter().map(|u| monthly_row(&u.heading.code, &u.heading.name, &u.counts)).collect(),
        attention,
        scope,
        scope_phrase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::domain::{Directive, Status};
    use crate::plan::policy::Policy;
    use crate::report::monthly::monthly_report;
    use crate::report::weekly::tests::{agency, closed, completed, d, directive, monday};
    use crate::report::weekly::weekly_digest;

    const AGENCY: &str = "Thanh tra tỉnh";

    fn leader_a() -> Person {
        agency().1["pct_a"].clone()
    }

    fn weekly(audience: Audience, directives: &[Directive]) -> WeeklyDigest {
        let (units, people) = agency();
        let calendar = Calendar::load(None).unwrap();
        weekly_digest(&units, &people, directives, &calendar, &Policy::default(), &audience, monday())
    }

    fn troubled_week() -> Vec<Directive> {
        vec![
            directive("KL08-2022-01", "NV1", "ttv_a", "2022-08-19", Status::Open),
            directive("KL08-2022-02", "NV1", "ttv_a", "2022-08-26", Status::InProgress),
            Directive {
                title: "Báo cáo <kết quả> & đề xuất".into(),
                ..directive("KL08-2022-03", "NV2", "ttv_a", "2022-08-31", Status::Open)
            },
            directive("KL08-2022-04", "NV2", "ttv_a", "2022-09-08", Status::Open),
            closed("QD193-TTCP", "NV2", "2022-09-15", "2022-08-30"),
            completed("KL08-2022-05", "NV1", "2022-08-31", "2022-09-01"),
        ]
    }

    fn renderer() -> DigestRenderer {
        DigestRenderer::new(None, AGENCY, None).unwrap()
    }

    #[test]
    fn the_weekly_subject_says_the_week_the_block_and_how_much_is_wrong() {
        let digest = weekly(Audience::Leader("pct_a".into()), &troubled_week());
        let mail = renderer().render_weekly(&digest, &leader_a()).unwrap();
        assert_eq!(
            mail.subject,
            "[Báo cáo tuần] Tuần 36/2022 (05/09/2022): Khối NV1, NV2 – 3 nhiệm vụ quá hạn, 1 kết thúc chưa hoàn thành"
        );
    }

    #[test]
    fn an_all_well_week_says_so_in_the_subject_and_in_one_line() {
        let digest =
            weekly(Audience::Leader("pct_a".into()), &[directive("S", "NV1", "ttv_a", "2022-09-08", Status::Open)]);
        let mail = renderer().render_weekly(&digest, &leader_a()).unwrap();
        assert_eq!(mail.subject, "[Báo cáo tuần] Tuần 36/2022 (05/09/2022): Khối NV1, NV2 – mọi nhiệm vụ trong hạn");
        let line = "Không có nhiệm vụ quá hạn và không có nhiệm vụ kết thúc chưa hoàn thành";
        assert!(mail.text.contains(line), "{}", mail.text);
        assert!(mail.html.contains(line));
        assert!(!mail.text.contains("Nhiệm vụ quá hạn ("));
        assert!(!mail.html.contains("Nhiệm vụ quá hạn ("));
    }

    #[test]
    fn the_weekly_text_is_formal_and_lists_each_item_with_its_label() {
        let digest = weekly(Audience::Leader("pct_a".into()), &troubled_week());
        let text = renderer().render_weekly(&digest, &leader_a()).unwrap().text;
        for expected in [
            "Kính gửi: Đồng chí Nguyễn Văn Hùng",
            "1. PHÒNG NV1 (NV1)",
            "Nhiệm vụ quá hạn (2):",
            "[QUÁ HẠN 9 NGÀY LÀM VIỆC] KL08-2022-01 – Nhiệm vụ KL08-2022-01",
            "Người thụ lý: Trương Đăng Khoa",
            "Hạn: 19/08/2022 – quá hạn 9 ngày làm việc",
            "[KẾT THÚC CHƯA HOÀN THÀNH] QD193-TTCP",
            "[HOÀN THÀNH QUÁ HẠN] KL08-2022-05",
            "[CÒN 3 NGÀY LÀM VIỆC] KL08-2022-04",
            "Báo cáo <kết quả> & đề xuất",
            "hoàn thành (7 ngày qua): 1, đúng hạn 0,0%",
            "Trân trọng./.",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("CẦN LƯU Ý"), "a leader gets no flags");
    }

    #[test]
    fn the_weekly_html_escapes_titles_and_keeps_labels_as_text() {
        let digest = weekly(Audience::Leader("pct_a".into()), &troubled_week());
        let html = renderer().render_weekly(&digest, &leader_a()).unwrap().html;
        assert!(html.contains("Báo cáo &lt;kết quả&gt; &amp; đề xuất"));
        assert!(!html.contains("<kết quả>"));
        for expected in [
            "Kính gửi: Đồng chí <strong>Nguyễn Văn Hùng</strong>",
            "QUÁ HẠN 9 NGÀY LÀM VIỆC",
            "KẾT THÚC CHƯA HOÀN THÀNH",
            "max-width:680px",
            "Trân trọng./.",
        ] {
            assert!(html.contains(expected), "missing {expected:?}");
        }
        assert!(!html.contains("<link") && !html.contains("<img") && !html.contains("<style"));
    }

    #[test]
    fn the_chiefs_digest_shows_the_flags() {
        let (mut units, people) = agency();
        units.push(crate::report::weekly::tests::unit("VP", None));
        let directives = [directive("V1", "NV3", "ttv_old", "2022-09-30", Status::Open)];
        let calendar = Calendar::load(None).unwrap();
        let digest =
            weekly_digest(&units, &people, &directives, &calendar, &Policy::default(), &Audience::Chief, monday());
        let mail = renderer().render_weekly(&digest, &people["chanh_tt"]).unwrap();
        assert!(mail.subject.contains("Toàn cơ quan – mọi nhiệm vụ trong hạn"), "{}", mail.subject);
        assert!(mail.text.contains("CẦN LƯU Ý"));
        assert!(mail.text.contains("Hồ Văn Vinh không còn công tác"));
        assert!(mail.html.contains("chưa có lãnh đạo phụ trách khối"));
    }

    #[test]
    fn the_monthly_report_renders_the_five_categories_with_rates() {
        let (units, people) = agency();
        let calendar = Calendar::load(None).unwrap();
        let directives = [
            completed("A", "NV1", "2022-09-09", "2022-09-08"),
            completed("B", "NV1", "2022-09-09", "2022-09-14"),
            directive("C", "NV1", "ttv_a", "2022-09-20", Status::Open),
            closed("D", "NV2", "2022-09-15", "2022-09-10"),
        ];
        let audience = Audience::Leader("pct_a".into());
        let report = monthly_report(
            &units,
            &people,
            &directives,
            &calendar,
            &Policy::default(),
            &audience,
            2022,
            9,
            d("2022-09-27"),
        );
        let mail = renderer().render_monthly(&report, &leader_a()).unwrap();
        assert_eq!(
            mail.subject,
            "[Báo cáo giao ban] Tháng 09/2022 (27/09/2022): Khối NV1, NV2 – 4 nhiệm vụ đến hạn, 1 hoàn thành đúng hạn (25,0%), 1 đang quá hạn, 1 kết thúc chưa hoàn thành"
        );
        for expected in [
            "Kính gửi: Đồng chí Nguyễn Văn Hùng",
            "Hoàn thành đúng hạn: 1 (33,3%)",
            "Hoàn thành quá hạn: 1 (33,3%)",
            "Đang thực hiện trong hạn: 0 (0,0%)",
            "Đang thực hiện quá hạn: 1 (33,3%)",
            "Kết thúc chưa hoàn thành: 1 (100,0%)",
            "[QUÁ HẠN 5 NGÀY LÀM VIỆC] C",
            "Trân trọng./.",
        ] {
            assert!(mail.text.contains(expected), "missing {expected:?} in:\n{}", mail.text);
        }
        for expected in ["Đang thực hiện quá hạn", "33,3%", "Toàn khối", "Kết thúc chưa hoàn thành"] {
            assert!(mail.html.contains(expected), "missing {expected:?}");
        }
    }

    #[test]
    fn a_template_file_in_the_directory_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("digest.subject.j2"), "Tuần {{ week }} – {{ headline }}").unwrap();
        let renderer = DigestRenderer::new(Some(dir.path()), AGENCY, None).unwrap();
        let digest = weekly(Audience::Leader("pct_a".into()), &[]);
        let mail = renderer.render_weekly(&digest, &leader_a()).unwrap();
        assert_eq!(mail.subject, "Tuần 2022-W36 – mọi nhiệm vụ trong hạn");
        assert!(mail.text.contains("Trân trọng./."));
    }

    #[test]
    fn percentages_are_written_with_a_decimal_comma() {
        assert_eq!(vn_percent(Some(66.7)), "66,7%");
        assert_eq!(vn_percent(Some(100.0)), "100,0%");
        assert_eq!(vn_percent(None), "–");
    }
}
