//! Rendering: the notices owed to one person become one message — a subject that says how
//! many items and how urgent, and plain-text and HTML bodies in formal Vietnamese listing
//! each directive once with every reason it is there, most urgent first. Pure; templates are
//! files (built in, overridable from `mail.templates_dir`).

use crate::domain::{Directive, Ladder, MissingField, Notice, NoticeKind, Person, Stage};
use crate::plan::Snapshot;
use chrono::NaiveDate;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const TEMPLATES: &[(&str, &str)] = &[
    ("reminder.subject.j2", include_str!("../config/templates/reminder.subject.j2")),
    ("reminder.txt.j2", include_str!("../config/templates/reminder.txt.j2")),
    ("reminder.html.j2", include_str!("../config/templates/reminder.html.j2")),
    ("reminder.chat.j2", include_str!("../config/templates/reminder.chat.j2")),
];

/// Items shown in full (a card each, every field on its own line); past these, one line per
/// item. A leader's escalations can list hundreds of directives: as cards they ran to megabytes
/// (the chief's, 7 MB), which phones scroll past and Gmail clips after 102 KB.
pub const DETAILED_ITEMS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template { name: String, source: minijinja::Error },
    #[error("template directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// A finished message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The templates, loaded once at start-up.
pub struct Renderer {
    env: Environment<'static>,
}

/// Adds each built-in template to `env`, or the file of the same name in `dir` instead where
/// there is one (`mail.templates_dir`: an administrator's override).
pub fn add_templates(
    env: &mut Environment<'static>,
    dir: Option<&Path>,
    templates: &[(&'static str, &'static str)],
) -> Result<(), RenderError> {
    for (name, builtin) in templates {
        let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
            Some(path) => std::fs::read_to_string(&path)
                .map_err(|source| RenderError::Io { dir: path.display().to_string(), source })?,
            None => (*builtin).to_string(),
        };
        env.add_template_owned(*name, source)
            .map_err(|source| RenderError::Template { name: (*name).to_string(), source })?;
    }
    Ok(())
}

impl Renderer {
    /// Built-in templates, each replaced by a file of the same name in `dir` if present.
    pub fn new(dir: Option<&Path>) -> Result<Renderer, RenderError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| if name.contains(".html") { AutoEscape::Html } else { AutoEscape::None });
        env.add_filter("truncate_title", |s: String| truncate(&s, 80));
        add_templates(&mut env, dir, TEMPLATES)?;
        Ok(Renderer { env })
    }

    fn render(&self, name: &str, view: &ReminderView) -> Result<String, RenderError> {
        let template_error = |source| RenderError::Template { name: name.to_string(), source };
        self.env.get_template(name).map_err(template_error)?.render(view).map_err(template_error)
    }

    /// Renders the reminder for `recipient` from their claimed notices.
    pub fn reminder(&self, input: &ReminderInput<'_>) -> Result<Rendered, RenderError> {
        let mut view = input.view();
        let subject = self.render("reminder.subject.j2", &view)?;
        view.subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered {
            text: one_blank_line(&self.render("reminder.txt.j2", &view)?),
            html: self.render("reminder.html.j2", &view)?,
            subject: view.subject,
        })
    }

    /// The short chat version of the same reminder (Telegram and the like): a summary line
    /// and one line per directive — a confidential directive by code, due date and stage
    /// only, never its title.
    pub fn chat(&self, input: &ReminderInput<'_>) -> Result<String, RenderError> {
        Ok(self.render("reminder.chat.j2", &input.view())?.trim().to_string())
    }
}

/// What one person's reminder is made from.
pub struct ReminderInput<'a> {
    pub agency: &'a str,
    /// `mail.reply_to`, if set: where the footer tells the recipient to write.
    pub reply_to: Option<&'a str>,
    pub today: NaiveDate,
    pub recipient: &'a Person,
    pub notices: &'a [&'a Notice],
    pub directives: &'a HashMap<&'a str, &'a Directive>,
    pub snapshot: &'a Snapshot,
}

impl ReminderInput<'_> {
    fn view(&self) -> ReminderView {
        let items = build_items(self.recipient, self.notices, self.directives, self.snapshot);
        let bounces = bounce_lines(self.notices, self.snapshot);
        let mix = Mix::of(&items);
        ReminderView {
            agency: self.agency.to_string(),
            date: vn_date(self.today),
            recipient: RecipientView { name: self.recipient.name.clone(), title: self.recipient.title.clone() },
            summary: summary(&items, bounces.len()),
            subject: String::new(),
            detailed: DETAILED_ITEMS,
            others: !items.is_empty() && mix.own == 0,
            scope: mix.scope(),
            closing: mix.closing(),
            reply_note: reply_note(self.reply_to),
            items,
            bounces,
        }
    }
}

#[derive(Debug, Serialize)]
struct ReminderView {
    agency: String,
    date: String,
    recipient: RecipientView,
    summary: String,
    subject: String,
    /// How many items (the most urgent) are shown in full; the rest one line each.
    detailed: usize,
    /// Every item is someone else's work: the subject says so ("Đôn đốc").
    others: bool,
    /// What the items are to the recipient: "đồng chí được giao", "đồng chí chỉ đạo, đôn đốc" …
    scope: &'static str,
    /// The closing request, fitted to the mix of items.
    closing: String,
    /// The footer's sentence on replies (see [`reply_note`]).
    reply_note: String,
    items: Vec<ItemView>,
    /// "Đồng chí X: thư gửi tới x@… bị trả lại (lý do)" — for a unit head.
    bounces: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RecipientView {
    name: String,
    title: String,
}

/// One directive in a message, with every reason it is there.
#[derive(Debug, Serialize)]
struct ItemView {
    code: String,
    title: String,
    /// What a subject may show: the title, or for a confidential directive only its code.
    subject_title: String,
    unit: String,
    assignee: Option<String>,
    /// Beside the assignee's name where they no longer receive notices.
    assignee_note: Option<&'static str>,
    /// `own`, `oversee` (escalations, a head's or leader's copy), `redirected` (from an
    /// inactive or unknown assignee) or `unassigned`.
    relation: Relation,
    /// What is asked of the recipient about someone else's item, and why it came to them;
    /// `None` for their own.
    ask: Option<String>,
    due: Option<String>,
    source: String,
    reasons: Vec<String>,
    headline: String,
    /// Closed without completion: the subject names the alarm rather than the due date.
    alarm: bool,
    /// Marked mật: chat messages show only its code, due date and stage.
    confidential: bool,
    /// Every stage this item is at (T-3, T+5 …), for the chat line.
    stages: Vec<String>,
    colour: &'static str,
    days_overdue: i64,
    #[serde(skip)]
    category: Category,
    #[serde(skip)]
    due_date: Option<NaiveDate>,
}

/// How urgent an item is, most urgent first; each item counts once, in its most urgent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    ClosedIncomplete,
    Overdue,
    DueToday,
    Upcoming,
    Incomplete,
}

impl Category {
    fn of(kind: NoticeKind) -> Category {
        match kind {
            NoticeKind::ClosedIncomplete => Category::ClosedIncomplete,
            NoticeKind::Overdue | NoticeKind::Escalation => Category::Overdue,
            NoticeKind::DueToday => Category::DueToday,
            NoticeKind::Upcoming => Category::Upcoming,
            _ => Category::Incomplete,
        }
    }

    fn counted(self) -> &'static str {
        match self {
            Category::ClosedIncomplete => "kết thúc nhưng chưa hoàn thành",
            Category::Overdue => "quá hạn",
            Category::DueToday => "đến hạn hôm nay",
            Category::Upcoming => "sắp đến hạn",
            Category::Incomplete => "chưa đủ thông tin giao việc",
        }
    }

    /// Severity colour; the headline text carries the same meaning for those who cannot see it.
    fn colour(self) -> &'static str {
        match self {
            Category::ClosedIncomplete | Category::Overdue => "#b3261e",
            Category::DueToday => "#b35900",
            Category::Upcoming => "#1a5fb4",
            Category::Incomplete => "#6b4fbb",
        }
    }
}

fn build_items(
    recipient: &Person,
    notices: &[&Notice],
    directives: &HashMap<&str, &Directive>,
    snapshot: &Snapshot,
) -> Vec<ItemView> {
    let mut by_directive: BTreeMap<&str, Vec<&Notice>> = BTreeMap::new();
    for n in notices {
        if let Some(code) = n.directive.as_deref() {
            by_directive.entry(code).or_default().push(n);
        }
    }
    let mut items: Vec<ItemView> = by_directive
        .into_iter()
        .filter_map(|(code, notices)| {
            let directive = *directives.get(code)?;
            let category = notices.iter().map(|n| Category::of(n.kind)).min()?;
            let days_overdue = notices.iter().map(|n| i64::from(n.days_overdue)).max().unwrap_or(0);
            let due_date = notices.iter().find_map(|n| n.effective_due).or(directive.due_on);
            let mut reasons: Vec<(Category, String)> =
                notices.iter().map(|n| (Category::of(n.kind), reason(n, directive))).collect();
            reasons.sort();
            reasons.dedup();
            let unit = snapshot.units.get(&directive.unit).map_or_else(|| directive.unit.clone(), |u| u.name.clone());
            let assignee = directive
                .assignee
                .as_ref()
                .map(|a| snapshot.people.get(a).map_or_else(|| a.clone(), |p| p.name.clone()));
            let relation = Relation::of(recipient, directive, &notices, snapshot);
            let gone = directive.assignee.as_deref().is_some_and(|a| snapshot.people.get(a).is_none_or(|p| !p.active));
            let ask = relation.ask(&notices, assignee.as_deref(), gone, &unit);
            Some(ItemView {
                code: directive.code.clone(),
                title: directive.title.clone(),
                subject_title: if directive.confidential {
                    format!("Nhiệm vụ {} (mật)", directive.code)
                } else {
                    truncate(&directive.title, 80)
                },
                assignee_note: gone.then_some("không còn nhận thông báo"),
                relation,
                ask,
                unit,
                assignee,
                due: due_date.map(vn_date),
                source: directive.source.clone(),
                headline: headline(category, days_overdue, notices.first().map(|n| &n.stage)),
                reasons: reasons.into_iter().map(|(_, r)| r).collect(),
                alarm: category == Category::ClosedIncomplete,
                confidential: directive.confidential,
                stages: {
                    let mut stages: Vec<String> = notices.iter().map(|n| n.stage.to_string()).collect();
                    stages.sort();
                    stages.dedup();
                    stages
                },
                colour: category.colour(),
                days_overdue,
                category,
                due_date,
            })
        })
        .collect();
    items.sort_by(|a, b| {
        (a.category, -a.days_overdue, a.due_date, &a.code).cmp(&(b.category, -b.days_overdue, b.due_date, &b.code))
    });
    items
}

/// Whose work an item is, seen from the recipient: it decides what the message asks of them.
/// A deputy chief is asked to chỉ đạo, đôn đốc others' work, never to do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Relation {
    /// The recipient is the assignee.
    Own,
    /// The recipient watches over it: an escalation, or a head's or leader's copy.
    Oversee,
    /// The assignee no longer receives notices (inactive, or not in the directory): it came
    /// to the recipient, who is asked to assign it again.
    Redirected,
    /// Nobody is assigned: it came to the unit head, who is asked to assign it.
    Unassigned,
}

impl Relation {
    fn of(recipient: &Person, directive: &Directive, notices: &[&Notice], snapshot: &Snapshot) -> Relation {
        let Some(assignee) = directive.assignee.as_deref() else {
            let assigning = notices.iter().any(|n| matches!(n.ladder, Ladder::Assignee | Ladder::MissingAssignee));
            return if assigning { Relation::Unassigned } else { Relation::Oversee };
        };
        if assignee == recipient.code {
            return Relation::Own;
        }
        let stands_in = notices.iter().any(|n| n.ladder == Ladder::Assignee || n.ladder == Ladder::Closed);
        let gone = snapshot.people.get(assignee).is_none_or(|p| !p.active);
        if gone && stands_in {
            Relation::Redirected
        } else {
            Relation::Oversee
        }
    }

    /// What is asked of the recipient about this item (and, when it was redirected, why it
    /// came to them); `None` for their own work.
    fn ask(self, notices: &[&Notice], assignee: Option<&str>, gone: bool, unit: &str) -> Option<String> {
        let closed = notices.iter().any(|n| n.kind == NoticeKind::ClosedIncomplete);
        let whom = assignee.map_or_else(|| unit.to_string(), |a| format!("đồng chí {a} ({unit})"));
        match self {
            Relation::Own => None,
            Relation::Redirected => Some(format!(
                "Thông báo này được chuyển tới đồng chí vì người thụ lý, đồng chí {}, không còn nhận thông báo \
                 của hệ thống (đã nghỉ hoặc chuyển công tác). Đề nghị đồng chí phân công lại người thụ lý \
                 và cập nhật trên hệ thống quản lý văn bản.",
                assignee.unwrap_or("?")
            )),
            Relation::Unassigned if notices.iter().any(|n| n.ladder == Ladder::MissingAssignee) => None,
            Relation::Unassigned => Some(
                "Thông báo này được gửi tới đồng chí vì nhiệm vụ chưa có người thụ lý. Đề nghị đồng chí phân công \
                 người thụ lý."
                    .into(),
            ),
            Relation::Oversee if closed => Some(format!(
                "Đề nghị đồng chí chỉ đạo làm rõ việc kết thúc khi chưa có kết quả và đôn đốc {whom} xử lý dứt điểm."
            )),
            Relation::Oversee if notices.iter().any(|n| n.ladder == Ladder::MissingDueDate) => None,
            Relation::Oversee if gone => Some(format!(
                "Người thụ lý, đồng chí {}, không còn nhận thông báo của hệ thống. Đề nghị đồng chí chỉ đạo {unit} \
                 phân công lại người thụ lý và khẩn trương hoàn thành.",
                assignee.unwrap_or("?")
            )),
            Relation::Oversee => {
                let head_only = notices.iter().all(|n| n.ladder == Ladder::EscalateHead);
                let verb = if head_only { "đôn đốc" } else { "chỉ đạo, đôn đốc" };
                Some(format!("Đề nghị đồng chí {verb} {whom} khẩn trương hoàn thành, báo cáo kết quả."))
            }
        }
    }
}

/// How many of a message's items are the recipient's own, and how many others'.
struct Mix {
    own: usize,
    oversee: usize,
    /// Unassigned and redirected items: someone must be assigned.
    assign: usize,
    redirected: usize,
}

impl Mix {
    fn of(items: &[ItemView]) -> Mix {
        let count = |f: fn(Relation) -> bool| items.iter().filter(|i| f(i.relation)).count();
        Mix {
            own: count(|r| r == Relation::Own),
            oversee: count(|r| r == Relation::Oversee),
            assign: count(|r| matches!(r, Relation::Redirected | Relation::Unassigned)),
            redirected: count(|r| r == Relation::Redirected),
        }
    }

    /// What the items are to the recipient, as the opening sentence says it.
    fn scope(&self) -> &'static str {
        match (self.own > 0, self.oversee + self.assign > 0) {
            (true, false) => "đồng chí được giao",
            (false, true) => "đồng chí chỉ đạo, đôn đốc",
            _ => "đồng chí được giao hoặc theo dõi",
        }
    }

    /// The closing request for this mix of items: what the recipient is to do with their own
    /// items, with those to assign, and with those they oversee.
    fn closing(&self) -> String {
        let others = self.oversee + self.assign > 0;
        let mut asks = Vec::new();
        if self.own > 0 {
            asks.push(if others {
                "khẩn trương thực hiện các nhiệm vụ được giao"
            } else {
                "khẩn trương thực hiện"
            });
        }
        if self.assign > self.redirected {
            asks.push("phân công người thụ lý cho các nhiệm vụ chưa có người thụ lý");
        }
        if self.redirected > 0 {
            asks.push("phân công lại người thụ lý cho các nhiệm vụ của công chức không còn nhận thông báo");
        }
        if self.oversee > 0 {
            asks.push(if self.own + self.assign > 0 {
                "chỉ đạo, đôn đốc các đơn vị, công chức liên quan hoàn thành các nhiệm vụ còn lại"
            } else {
                "chỉ đạo, đôn đốc các đơn vị, công chức liên quan khẩn trương hoàn thành các nhiệm vụ nêu trên"
            });
        }
        let update = if self.own > 0 && !others {
            "cập nhật tiến độ và kết quả"
        } else {
            "cập nhật kết quả"
        };
        match asks.as_slice() {
            [] => format!("Đề nghị đồng chí kiểm tra, {update} trên hệ thống quản lý văn bản."),
            [ask] => format!("Đề nghị đồng chí {ask}, {update} trên hệ thống quản lý văn bản."),
            _ => format!("Đề nghị đồng chí {}; {update} trên hệ thống quản lý văn bản.", asks.join("; ")),
        }
    }
}

fn headline(category: Category, days_overdue: i64, stage: Option<&Stage>) -> String {
    match category {
        Category::ClosedIncomplete => "Kết thúc nhưng chưa hoàn thành".into(),
        Category::Overdue => format!("Quá hạn {days_overdue} ngày làm việc"),
        Category::DueToday => "Đến hạn hôm nay".into(),
        Category::Upcoming => "Sắp đến hạn".into(),
        Category::Incomplete if stage == Some(&Stage::Missing(MissingField::DueOn)) => "Chưa có hạn xử lý".into(),
        Category::Incomplete => "Chưa phân công người thụ lý".into(),
    }
}

/// Why this notice is in the message, in the recipient's words.
fn reason(n: &Notice, directive: &Directive) -> String {
    let days = n.days_overdue;
    let role = match n.ladder {
        Ladder::EscalateHead => "Trưởng phòng",
        Ladder::EscalateLeader => "Lãnh đạo phụ trách khối",
        Ladder::EscalateChief => "Chánh Thanh tra",
        _ => "",
    };
    match n.kind {
        NoticeKind::Upcoming => {
            let left = n.stage.days_before().map_or_else(|| n.stage.to_string(), |d| d.to_string());
            format!("Sắp đến hạn: còn {left} ngày làm việc")
        }
        NoticeKind::DueToday => "Đến hạn xử lý hôm nay".into(),
        NoticeKind::Overdue => format!("Quá hạn {days} ngày làm việc, chưa có kết quả"),
        NoticeKind::Escalation => {
            format!("Báo cáo đồng chí ({role}): nhiệm vụ quá hạn {days} ngày làm việc (mốc {})", n.stage)
        }
        NoticeKind::ClosedIncomplete => format!(
            "Đã kết thúc trên hệ thống ngày {} nhưng chưa có kết quả hoàn thành",
            directive.closed_on.map_or_else(|| "?".into(), vn_date)
        ),
        NoticeKind::Unassigned if n.stage == Stage::Missing(MissingField::DueOn) => {
            "Chưa có hạn xử lý: đề nghị xác định thời hạn hoàn thành".into()
        }
        NoticeKind::Unassigned => "Chưa phân công công chức thụ lý: đề nghị phân công".into(),
        _ => n.kind.to_string(),
    }
}

fn summary(items: &[ItemView], bounces: usize) -> String {
    let mut counts: BTreeMap<Category, usize> = BTreeMap::new();
    for item in items {
        *counts.entry(item.category).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.into_iter().map(|(c, n)| format!("{n} nhiệm vụ {}", c.counted())).collect();
    if bounces > 0 {
        parts.push(format!("{bounces} địa chỉ nhận thông báo bị trả lại"));
    }
    parts.join(", ")
}

/// One sentence per bounce notice: whose address, which one, and the server's answer.
fn bounce_lines(notices: &[&Notice], snapshot: &Snapshot) -> Vec<String> {
    notices
        .iter()
        .filter_map(|n| {
            let Stage::Bounce(code) = &n.stage else { return None };
            let person = snapshot.people.get(code)?;
            let bounce = snapshot.bounces.iter().find(|b| b.person == person.code)?;
            Some(format!(
                "Đồng chí {} ({}): thông báo gửi tới {} bị máy chủ từ chối ({}). Đề nghị cập nhật địa chỉ trên hệ thống.",
                person.name,
                person.code,
                bounce.address,
                bounce.reason.chars().take(160).collect::<String>()
            ))
        })
        .collect()
}

/// Plain text with at most one blank line between blocks, whatever the template leaves.
pub fn one_blank_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
    }
    out
}

/// The footer's sentence on replies: where to write when `mail.reply_to` is set (it is the
/// message's `Reply-To`), else not to reply.
pub fn reply_note(reply_to: Option<&str>) -> String {
    match reply_to {
        Some(address) => format!("Thư gửi tự động; cần trao đổi, xin gửi thư tới {address}."),
        None => "Thư gửi tự động, xin không trả lời thư này.".into(),
    }
}

/// dd/mm/yyyy, as Vietnamese official documents write dates.
pub fn vn_date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DirectiveKind, Reach, Role, Status, Unit};

    fn person(code: &str, role: Role) -> Person {
        Person {
            code: code.into(),
            name: format!("Nguyễn Văn {code}"),
            title: "Phó Chánh Thanh tra".into(),
            email: format!("{code}@example.gov.vn"),
            unit: "P1".into(),
            role,
            active: true,
            reach: Reach::default(),
        }
    }

    fn directive(i: usize) -> Directive {
        Directive {
            code: format!("NV-{i:03}"),
            kind: DirectiveKind::Task,
            title: format!("Xử lý kiến nghị số {i} về đất đai"),
            source: "KL 12/KL-TTr".into(),
            unit: "P1".into(),
            assignee: Some("cb1".into()),
            leader: None,
            assigned_on: None,
            due_on: NaiveDate::from_ymd_opt(2025, 8, 1),
            status: Status::Open,
            completed_on: None,
            closed_on: None,
            result: None,
            confidential: false,
        }
    }

    fn escalation(d: &Directive, days: i32) -> Notice {
        Notice {
            key: crate::domain::NoticeKey::stored(format!("escalation:{}:pct:T+5:email", d.code)),
            kind: NoticeKind::Escalation,
            directive: Some(d.code.clone()),
            recipient: "pct".into(),
            address: "pct@example.gov.vn".into(),
            channel: crate::domain::Channel::Email,
            ladder: Ladder::EscalateLeader,
            stage: Stage::Day(5),
            effective_due: NaiveDate::from_ymd_opt(2025, 8, 1),
            days_overdue: days,
        }
    }

    #[test]
    fn a_long_list_shows_the_most_urgent_in_full_and_every_other_item_on_one_line() {
        let total = DETAILED_ITEMS + 15;
        let directives: Vec<Directive> = (1..=total).map(directive).collect();
        let notices: Vec<Notice> =
            directives.iter().enumerate().map(|(i, d)| escalation(d, 100 - i32::try_from(i).unwrap())).collect();
        let refs: Vec<&Notice> = notices.iter().collect();
        let unit = Unit { code: "P1".into(), name: "Phòng Nghiệp vụ 1".into(), head: None, leader: None };
        let snapshot =
            Snapshot::new(vec![unit], vec![person("pct", Role::Leader), person("cb1", Role::Officer)], Vec::new());
        let by_code: HashMap<&str, &Directive> = directives.iter().map(|d| (d.code.as_str(), d)).collect();
        let recipient = person("pct", Role::Leader);
        let input = ReminderInput {
            agency: "Thanh tra tỉnh",
            reply_to: None,
            today: NaiveDate::from_ymd_opt(2025, 9, 16).unwrap(),
            recipient: &recipient,
            notices: &refs,
            directives: &by_code,
            snapshot: &snapshot,
        };
        let rendered = Renderer::new(None).unwrap().reminder(&input).unwrap();
        for d in &directives {
            let reason = "Báo cáo đồng chí (Lãnh đạo phụ trách khối): nhiệm vụ quá hạn";
            assert!(rendered.text.contains(&d.code) && rendered.html.contains(&d.code), "{} listed", d.code);
            assert!(rendered.text.contains(&d.title) && rendered.html.contains(&d.title), "{} titled", d.code);
            let line = rendered.text.lines().find(|l| l.contains(&d.code)).unwrap();
            let position: usize = line.trim().split('.').next().unwrap().parse().unwrap();
            if position > DETAILED_ITEMS {
                assert!(line.contains(reason) && line.contains("hạn 01/08/2025"), "one line: {line}");
            }
        }
        // Most urgent first: the item 100 days overdue is the first card, the least overdue the last line.
        assert!(rendered.text.contains("1. [QUÁ HẠN 100 NGÀY LÀM VIỆC] NV-001"), "{}", rendered.text);
        let last = format!("{total}. [QUÁ HẠN 66 NGÀY LÀM VIỆC] NV-{total:03} – ");
        assert!(rendered.text.contains(&last), "{}", rendered.text);
        assert_eq!(rendered.text.matches("   Đơn vị chủ trì:").count(), DETAILED_ITEMS, "cards, not lines");
        assert_eq!(rendered.html.matches("Đơn vị chủ trì:").count(), DETAILED_ITEMS);
        assert!(rendered.text.contains("Các nhiệm vụ tiếp theo (15), mỗi nhiệm vụ một dòng:"));
        assert!(rendered.html.contains("Các nhiệm vụ tiếp theo (15), mỗi nhiệm vụ một dòng:"));
        assert!(rendered.text.trim_end().ends_with("Ngày giờ theo giờ Việt Nam (UTC+7)."));
    }
}
