//! The weekly digest (báo cáo tuần): store's directives → **here** → report::render → outbox.
//! Pure model — no I/O, no clock — of what one leader (their block's units) or the chief
//! (every unit) reads each Monday: per unit, what is overdue, due soon, closed without
//! completion and completed, with counts; plus flags only the chief sees.

use crate::calendar::Calendar;
use crate::domain::{Directive, Person, Stage, Status, Unit};
use crate::plan::policy::Policy;
use chrono::{Days, NaiveDate};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How far the digest looks back (closed, completed) and ahead (due soon), in calendar days.
pub const WINDOW_DAYS: u64 = 7;

/// Who a digest or monthly report is for, which decides the units it covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "code", rename_all = "snake_case")]
pub enum Audience {
    /// A block leader (phó chánh thanh tra phụ trách khối), by person code: the units whose
    /// `leader` they are, and no other.
    Leader(String),
    /// The chief (chánh thanh tra): every unit.
    Chief,
}

impl Audience {
    /// Whether this audience sees `unit`.
    pub fn covers(&self, unit: &Unit) -> bool {
        match self {
            Audience::Chief => true,
            Audience::Leader(code) => unit.leader.as_deref() == Some(code.as_str()),
        }
    }

    pub fn is_chief(&self) -> bool {
        matches!(self, Audience::Chief)
    }
}

impl WeeklyDigest {
    /// Lists each extension under its unit, when the digest covers that unit.
    pub fn add_extensions(&mut self, extensions: &[Extension]) {
        for extension in extensions {
            if let Some(unit) = self.units.iter_mut().find(|u| u.heading.code == extension.unit) {
                unit.extended.push(extension.clone());
            }
        }
    }
}

/// The ISO week `date` falls in, as the digest names it: `2022-W36` (see [`Stage::week_of`]).
pub fn iso_week(date: NaiveDate) -> String {
    Stage::week_of(date).to_string()
}

/// A directive as every report names it, whatever else the report says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemHeading {
    pub code: String,
    pub title: String,
    /// Assignee's person code, if any.
    pub assignee: Option<String>,
    /// Assignee's name (their code if they are not in the directory); `None` if unassigned.
    pub assignee_name: Option<String>,
    pub confidential: bool,
}

impl ItemHeading {
    pub(crate) fn of(directive: &Directive, people: &HashMap<String, Person>) -> ItemHeading {
        ItemHeading {
            code: directive.code.clone(),
            title: directive.title.clone(),
            assignee: directive.assignee.clone(),
            assignee_name: directive.assignee.as_deref().map(|a| name_of(people, a)),
            confidential: directive.confidential,
        }
    }
}

/// A unit as every report heads its section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitHeading {
    pub code: String,
    pub name: String,
    pub head_name: Option<String>,
    pub leader_name: Option<String>,
}

impl UnitHeading {
    pub(crate) fn of(unit: &Unit, people: &HashMap<String, Person>) -> UnitHeading {
        UnitHeading {
            code: unit.code.clone(),
            name: unit.name.clone(),
            head_name: unit.head.as_deref().map(|c| name_of(people, c)),
            leader_name: unit.leader.as_deref().map(|c| name_of(people, c)),
        }
    }
}

/// One directive as a digest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestItem {
    #[serde(flatten)]
    pub heading: ItemHeading,
    /// The effective due date (rolled forward off days off), if the directive has one.
    pub due: Option<NaiveDate>,
    /// Working days past the effective due date (0 unless overdue).
    pub days_overdue: i32,
    /// Working days from today to the effective due date (0 on the day itself or later).
    pub days_left: i32,
    pub closed_on: Option<NaiveDate>,
    pub completed_on: Option<NaiveDate>,
    /// For completed items: on or before the effective due date (true when it had none).
    pub on_time: Option<bool>,
}

/// The summary line of a unit (and, summed, of the whole digest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DigestCounts {
    /// Live (open or in progress) directives.
    pub open: u32,
    /// Live and not overdue.
    pub in_time: u32,
    /// Live and overdue.
    pub overdue: u32,
    /// Live with no due date at all (neither in time nor overdue).
    pub without_due: u32,
    /// Live, not overdue, due within the next 7 days.
    pub due_soon: u32,
    /// Closed without completion in the past 7 days.
    pub closed_incomplete: u32,
    /// Completed in the past 7 days.
    pub completed: u32,
    /// … of which on time.
    pub completed_on_time: u32,
    /// `completed_on_time` as a percentage of `completed`, one decimal; `None` when none.
    pub on_time_pct: Option<f64>,
}

impl DigestCounts {
    fn add(self, other: DigestCounts) -> DigestCounts {
        let completed = self.completed + other.completed;
        let completed_on_time = self.completed_on_time + other.completed_on_time;
        DigestCounts {
            open: self.open + other.open,
            in_time: self.in_time + other.in_time,
            overdue: self.overdue + other.overdue,
            without_due: self.without_due + other.without_due,
            due_soon: self.due_soon + other.due_soon,
            closed_incomplete: self.closed_incomplete + other.closed_incomplete,
            completed,
            completed_on_time,
            on_time_pct: percent(completed_on_time, completed),
        }
    }
}

/// A due date moved later in the digest's week (gia hạn), and who moved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    #[serde(flatten)]
    pub heading: ItemHeading,
    pub unit: String,
    pub old_due: NaiveDate,
    pub new_due: NaiveDate,
    /// The source that carried the change (`so-theo-doi`), or `import`.
    pub by: String,
}

/// One unit of a digest, its lists in the order the leader reads them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitSection {
    #[serde(flatten)]
    pub heading: UnitHeading,
    /// Most overdue first.
    pub overdue: Vec<DigestItem>,
    /// Soonest first.
    pub due_soon: Vec<DigestItem>,
    /// Closed without completion in the past 7 days, most recent first.
    pub closed: Vec<DigestItem>,
    /// Completed in the past 7 days, most recent first.
    pub completed: Vec<DigestItem>,
    /// Due dates moved later in the past 7 days.
    pub extended: Vec<Extension>,
    pub counts: DigestCounts,
}

/// A week's digest for one audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyDigest {
    pub audience: Audience,
    /// The leader's name; `None` for the chief's digest (the renderer is told the recipient).
    pub recipient_name: Option<String>,
    /// The key stage: `2022-W36`.
    pub week: String,
    pub today: NaiveDate,
    /// The covered units, in the order they were given.
    pub units: Vec<UnitSection>,
    /// No unit has an overdue item or one closed without completion in the past 7 days.
    pub all_well: bool,
    /// Chief's digest only: leaderless units, inactive or unknown assignees, directives of
    /// unknown units, missing calendar years. Formal Vietnamese sentences.
    pub flags: Vec<String>,
    pub totals: DigestCounts,
}

/// The digest for `audience` on `today`. `directives` may hold anything: only those of the
/// audience's units count, and each list applies its own window. For the summary counts
/// (open, in time) to be complete, pass every live directive of those units, plus those
/// closed or completed in the past 7 days.
pub fn weekly_digest(
    units: &[Unit],
    people: &HashMap<String, Person>,
    directives: &[Directive],
    calendar: &Calendar,
    policy: &Policy,
    audience: &Audience,
    today: NaiveDate,
) -> WeeklyDigest {
    let directives = distinct_directives(directives);
    let sections: Vec<UnitSection> = covered_units(units, audience)
        .into_iter()
        .map(|unit| {
            let own: Vec<&Directive> = directives.iter().copied().filter(|d| d.unit == unit.code).collect();
            unit_section(unit, people, &own, calendar, policy, today)
        })
        .collect();
    let totals = sections.iter().fold(DigestCounts::default(), |acc, s| acc.add(s.counts));
    let flags = if audience.is_chief() { chief_flags(units, people, &directives, calendar, today) } else { Vec::new() };
    WeeklyDigest {
        recipient_name: recipient_name(audience, people),
        week: iso_week(today),
        today,
        all_well: sections.iter().all(|s| s.overdue.is_empty() && s.closed.is_empty()),
        units: sections,
        flags,
        totals,
        audience: audience.clone(),
    }
}

/// `part` as a percentage of `whole`, rounded to one decimal; `None` when `whole` is 0.
pub fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

/// The units `audience` sees, in the given order, each code once.
pub(crate) fn covered_units<'a>(units: &'a [Unit], audience: &Audience) -> Vec<&'a Unit> {
    let mut seen = HashSet::new();
    units.iter().filter(|u| audience.covers(u) && seen.insert(u.code.as_str())).collect()
}

/// Each directive code once (the first occurrence wins), so a caller's overlapping queries
/// cannot count an item twice.
pub(crate) fn distinct_directives(directives: &[Directive]) -> Vec<&Directive> {
    let mut seen = HashSet::new();
    directives.iter().filter(|d| seen.insert(d.code.as_str())).collect()
}

pub(crate) fn recipient_name(audience: &Audience, people: &HashMap<String, Person>) -> Option<String> {
    match audience {
        Audience::Leader(code) => people.get(code).map(|p| p.name.clone()),
        Audience::Chief => None,
    }
}

/// A person's name, their code when they are not in the directory.
pub(crate) fn name_of(people: &HashMap<String, Person>, code: &str) -> String {
    people.get(code).map_or_else(|| code.to_string(), |p| p.name.clone())
}

/// The due date that counts (policy default rule, then rolled forward off a day off).
pub(crate) fn effective_due(directive: &Directive, calendar: &Calendar, policy: &Policy) -> Option<NaiveDate> {
    policy
        .due_date(directive.kind, directive.due_on, directive.assigned_on, calendar)
        .map(|due| calendar.effective_due(due, policy.roll_forward))
}

/// Working days overdue at `today` (0 when not overdue): the ladder position past T0.
pub(crate) fn days_overdue(calendar: &Calendar, effective: NaiveDate, today: NaiveDate) -> i32 {
    calendar.position(effective, today).max(0)
}

fn shifted(today: NaiveDate, forward: bool) -> NaiveDate {
    let days = Days::new(WINDOW_DAYS);
    let moved = if forward { today.checked_add_days(days) } else { today.checked_sub_days(days) };
    moved.unwrap_or(today)
}

fn in_past_week(date: Option<NaiveDate>, today: NaiveDate) -> bool {
    date.is_some_and(|d| d >= shifted(today, false) && d <= today)
}

fn base_item(directive: &Directive, people: &HashMap<String, Person>, due: Option<NaiveDate>) -> DigestItem {
    DigestItem {
        heading: ItemHeading::of(directive, people),
        due,
        days_overdue: 0,
        days_left: 0,
        closed_on: directive.closed_on,
        completed_on: directive.completed_on,
        on_time: None,
    }
}

/// Where one directive lands in a unit's section on `today`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    Overdue(DigestItem),
    DueSoon(DigestItem),
    /// Live, in time, due later than the window.
    InTime,
    /// Live, no due date.
    Undated,
    Closed(DigestItem),
    Completed(DigestItem),
    /// Cancelled, or closed/completed outside the window.
    Nowhere,
}

fn place(
    directive: &Directive,
    people: &HashMap<String, Person>,
    calendar: &Calendar,
    policy: &Policy,
    today: NaiveDate,
) -> Placement {
    let due = effective_due(directive, calendar, policy);
    let item = || base_item(directive, people, due);
    match directive.status {
        Status::Cancelled => Placement::Nowhere,
        Status::Closed if in_past_week(directive.closed_on, today) => Placement::Closed(item()),
        Status::Completed if in_past_week(directive.completed_on, today) => Placement::Completed(DigestItem {
            on_time: Some(match (directive.completed_on, due) {
                (Some(done), Some(due)) => done <= due,
                _ => true,
            }),
            ..item()
        }),
        Status::Closed | Status::Completed => Placement::Nowhere,
        Status::Open | Status::InProgress => match due {
            None => Placement::Undated,
            Some(due) => place_live(item(), calendar, due, today),
        },
    }
}

/// A live directive with effective due date `due`: overdue from T+1 (as the planner counts
/// it); otherwise due soon when due by today + 7. A due date that passed only over days off
/// (today still at T0) counts as due soon, not yet overdue.
fn place_live(item: DigestItem, calendar: &Calendar, due: NaiveDate, today: NaiveDate) -> Placement {
    let overdue = days_overdue(calendar, due, today);
    if overdue > 0 {
        return Placement::Overdue(DigestItem { days_overdue: overdue, ..item });
    }
    if due > shifted(today, true) {
        return Placement::InTime;
    }
    let left = calendar.working_days_between(today, due);
    Placement::DueSoon(DigestItem { days_left: i32::try_from(left).unwrap_or(i32::MAX), ..item })
}

fn unit_section(
    unit: &Unit,
    people: &HashMap<String, Person>,
    directives: &[&Directive],
    calendar: &Calendar,
    policy: &Policy,
    today: NaiveDate,
) -> UnitSection {
    let mut section = UnitSection {
        heading: UnitHeading::of(unit, people),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        closed: Vec::new(),
        completed: Vec::new(),
        extended: Vec::new(),
        counts: DigestCounts::default(),
    };
    let mut undated = 0;
    let mut in_time_later = 0;
    for directive in directives {
        match place(directive, people, calendar, policy, today) {
            Placement::Overdue(item) => section.overdue.push(item),
            Placement::DueSoon(item) => section.due_soon.push(item),
            Placement::InTime => in_time_later += 1,
            Placement::Undated => undated += 1,
            Placement::Closed(item) => section.closed.push(item),
            Placement::Completed(item) => section.completed.push(item),
            Placement::Nowhere => {}
        }
    }
    sort_section(&mut section);
    section.counts = count_section(&section, in_time_later, undated);
    section
}

fn sort_section(section: &mut UnitSection) {
    section
        .overdue
        .sort_by(|a, b| (-a.days_overdue, a.due, &a.heading.code).cmp(&(-b.days_overdue, b.due, &b.heading.code)));
    section.due_soon.sort_by(|a, b| (a.due, &a.heading.code).cmp(&(b.due, &b.heading.code)));
    section.closed.sort_by(|a, b| (b.closed_on, &a.heading.code).cmp(&(a.closed_on, &b.heading.code)));
    section.completed.sort_by(|a, b| (b.completed_on, &a.heading.code).cmp(&(a.completed_on, &b.heading.code)));
}

fn count_section(section: &UnitSection, in_time_later: u32, undated: u32) -> DigestCounts {
    let len = |v: &Vec<DigestItem>| u32::try_from(v.len()).unwrap_or(u32::MAX);
    let overdue = len(&section.overdue);
    let due_soon = len(&section.due_soon);
    let completed = len(&section.completed);
    let on_time = section.completed.iter().filter(|i| i.on_time == Some(true)).count();
    let completed_on_time = u32::try_from(on_time).unwrap_or(u32::MAX);
    DigestCounts {
        open: overdue + due_soon + in_time_later + undated,
        in_time: due_soon + in_time_later,
        overdue,
        without_due: undated,
        due_soon,
        closed_incomplete: len(&section.closed),
        completed,
        completed_on_time,
        on_time_pct: percent(completed_on_time, completed),
    }
}

/// What only the chief is told: units with no active leader, live items whose assignee is
/// inactive or unknown, directives of units not in the directory, missing calendar years.
fn chief_flags(
    units: &[Unit],
    people: &HashMap<String, Person>,
    directives: &[&Directive],
    calendar: &Calendar,
    today: NaiveDate,
) -> Vec<String> {
    let mut flags: Vec<String> = units.iter().filter_map(|u| leaderless_flag(u, people)).collect();
    let known: HashSet<&str> = units.iter().map(|u| u.code.as_str()).collect();
    for directive in directives.iter().filter(|d| d.status.is_live()) {
        if !known.contains(directive.unit.as_str()) {
            flags.push(format!(
                "Nhiệm vụ {} thuộc đơn vị “{}” không có trong danh mục đơn vị.",
                directive.code, directive.unit
            ));
        }
        flags.extend(inactive_assignee_flag(directive, people));
    }
    flags.extend(calendar.missing_years(today).into_iter().map(|year| {
        format!("Chưa có lịch ngày nghỉ, ngày làm bù năm {year}: đề nghị bổ sung tệp lịch để tính đúng thời hạn.")
    }));
    flags.dedup();
    flags
}

fn leaderless_flag(unit: &Unit, people: &HashMap<String, Person>) -> Option<String> {
    let Some(code) = unit.leader.as_deref() else {
        return Some(format!("{} ({}): chưa có lãnh đạo phụ trách khối.", unit.name, unit.code));
    };
    match people.get(code) {
        Some(p) if p.active => None,
        Some(p) => Some(format!(
            "{} ({}): lãnh đạo phụ trách khối {} không còn công tác; đề nghị phân công lãnh đạo phụ trách.",
            unit.name, unit.code, p.name
        )),
        None => Some(format!(
            "{} ({}): lãnh đạo phụ trách khối “{}” không có trong danh sách cán bộ.",
            unit.name, unit.code, code
        )),
    }
}

fn inactive_assignee_flag(directive: &Directive, people: &HashMap<String, Person>) -> Option<String> {
    let code = directive.assignee.as_deref()?;
    match people.get(code) {
        Some(p) if p.active => None,
        Some(p) => Some(format!(
            "Nhiệm vụ {} ({}): người thụ lý {} không còn công tác; đề nghị phân công lại.",
            directive.code, directive.unit, p.name
        )),
        None => Some(format!(
            "Nhiệm vụ {} ({}): người thụ lý “{}” không có trong danh sách cán bộ.",
            directive.code, directive.unit, code
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{DirectiveKind, Role};

    pub(crate) fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    pub(crate) fn unit(code: &str, leader: Option<&str>) -> Unit {
        Unit {
            code: code.into(),
            name: format!("Phòng {code}"),
            head: Some(format!("tp_{code}")),
            leader: leader.map(Into::into),
        }
    }

    pub(crate) fn person(code: &str, name: &str, unit: &str, role: Role, active: bool) -> Person {
        Person {
            code: code.into(),
            name: name.into(),
            title: String::new(),
            email: format!("{code}@thanhtra.example.gov.vn"),
            unit: unit.into(),
            role,
            active,
            reach: Default::default(),
        }
    }

    pub(crate) fn directive(code: &str, unit: &str, assignee: &str, due: &str, status: Status) -> Directive {
        Directive {
            code: code.into(),
            kind: DirectiveKind::Task,
            title: format!("Nhiệm vụ {code}"),
            source: "KL giao ban 08/2022".into(),
            unit: unit.into(),
            assignee: Some(assignee.into()),
            leader: None,
            assigned_on: Some(d("2022-08-11")),
            due_on: Some(d(due)),
            status,
            completed_on: None,
            closed_on: None,
            result: None,
            confidential: false,
        }
    }

    pub(crate) fn completed(code: &str, unit: &str, due: &str, on: &str) -> Directive {
        Directive { completed_on: Some(d(on)), ..directive(code, unit, "ttv_a", due, Status::Completed) }
    }

    pub(crate) fn closed(code: &str, unit: &str, due: &str, on: &str) -> Directive {
        Directive { closed_on: Some(d(on)), ..directive(code, unit, "ttv_a", due, Status::Closed) }
    }

    /// Two blocks: leader A has NV1 and NV2, leader B has NV3; ttv_old is inactive.
    pub(crate) fn agency() -> (Vec<Unit>, HashMap<String, Person>) {
        let units = vec![unit("NV1", Some("pct_a")), unit("NV2", Some("pct_a")), unit("NV3", Some("pct_b"))];
        let people = [
            person("chanh_tt", "Trần Minh An", "LD", Role::Chief, true),
            person("pct_a", "Nguyễn Văn Hùng", "LD", Role::Leader, true),
            person("pct_b", "Lê Thị Thu Hà", "LD", Role::Leader, true),
            person("ttv_a", "Trương Đăng Khoa", "NV1", Role::Officer, true),
            person("ttv_old", "Hồ Văn Vinh", "NV3", Role::Officer, false),
        ]
        .into_iter()
        .map(|p| (p.code.clone(), p))
        .collect();
        (units, people)
    }

    /// Monday 5 September 2022 (after the 1–2 September National Day break).
    pub(crate) fn monday() -> NaiveDate {
        d("2022-09-05")
    }

    fn digest_for(audience: Audience, directives: &[Directive]) -> WeeklyDigest {
        let (units, people) = agency();
        let calendar = Calendar::load(None).unwrap();
        weekly_digest(&units, &people, directives, &calendar, &Policy::default(), &audience, monday())
    }

    fn codes(items: &[DigestItem]) -> Vec<&str> {
        items.iter().map(|i| i.heading.code.as_str()).collect()
    }

    #[test]
    fn the_iso_week_key_uses_the_iso_year_across_a_year_boundary() {
        assert_eq!(iso_week(d("2022-09-05")), "2022-W36");
        assert_eq!(iso_week(d("2022-09-11")), "2022-W36");
        assert_eq!(iso_week(d("2021-01-03")), "2020-W53");
        assert_eq!(iso_week(d("2021-01-04")), "2021-W01");
        assert_eq!(iso_week(d("2024-12-29")), "2024-W52");
        assert_eq!(iso_week(d("2024-12-30")), "2025-W01");
    }

    #[test]
    fn a_leader_sees_only_the_units_of_their_own_block() {
        let directives = [
            directive("A1", "NV1", "ttv_a", "2022-08-25", Status::Open),
            directive("A2", "NV2", "ttv_a", "2022-08-25", Status::Open),
            directive("B1", "NV3", "ttv_a", "2022-08-25", Status::Open),
        ];
        let digest = digest_for(Audience::Leader("pct_a".into()), &directives);
        let units: Vec<&str> = digest.units.iter().map(|u| u.heading.code.as_str()).collect();
        assert_eq!(units, ["NV1", "NV2"]);
        let all: Vec<&str> = digest.units.iter().flat_map(|u| codes(&u.overdue)).collect();
        assert_eq!(all, ["A1", "A2"]);
        assert_eq!(digest.recipient_name.as_deref(), Some("Nguyễn Văn Hùng"));

        let other = digest_for(Audience::Leader("pct_b".into()), &directives);
        let all: Vec<&str> = other.units.iter().flat_map(|u| codes(&u.overdue)).collect();
        assert_eq!(all, ["B1"]);
    }

    #[test]
    fn the_chief_sees_every_unit() {
        let directives = [
            directive("A1", "NV1", "ttv_a", "2022-08-25", Status::Open),
            directive("B1", "NV3", "ttv_a", "2022-08-25", Status::Open),
        ];
        let digest = digest_for(Audience::Chief, &directives);
        let units: Vec<&str> = digest.units.iter().map(|u| u.heading.code.as_str()).collect();
        assert_eq!(units, ["NV1", "NV2", "NV3"]);
        assert_eq!(digest.totals.overdue, 2);
        assert_eq!(digest.recipient_name, None);
    }

    #[test]
    fn overdue_items_come_most_overdue_first_with_working_days_counted() {
        let directives = [
            directive("LATE3", "NV1", "ttv_a", "2022-08-29", Status::Open),
            directive("LATE9", "NV1", "ttv_a", "2022-08-19", Status::InProgress),
            directive("LATE4", "NV1", "ttv_a", "2022-08-26", Status::Open),
        ];
        let digest = digest_for(Audience::Chief, &directives);
        let overdue = &digest.units[0].overdue;
        assert_eq!(codes(overdue), ["LATE9", "LATE4", "LATE3"]);
        // 1–2 September are days off: from Mon 29/8 to Mon 5/9 is 30, 31 August and 5 September.
        let days: Vec<i32> = overdue.iter().map(|i| i.days_overdue).collect();
        assert_eq!(days, [9, 4, 3]);
        assert_eq!(overdue[0].heading.assignee_name.as_deref(), Some("Trương Đăng Khoa"));
    }

    #[test]
    fn a_due_date_on_a_holiday_rolls_forward_and_is_due_today_not_overdue() {
        let directives = [directive("HOL", "NV1", "ttv_a", "2022-09-02", Status::Open)];
        let digest = digest_for(Audience::Chief, &directives);
        let section = &digest.units[0];
        assert!(section.overdue.is_empty());
        assert_eq!(codes(&section.due_soon), ["HOL"]);
        assert_eq!(section.due_soon[0].due, Some(d("2022-09-05")));
        assert_eq!(section.due_soon[0].days_left, 0);
    }

    #[test]
    fn the_next_seven_calendar_days_are_due_soon_and_later_ones_only_counted() {
        let directives = [
            directive("WED", "NV1", "ttv_a", "2022-09-07", Status::Open),
            directive("MON", "NV1", "ttv_a", "2022-09-12", Status::Open),
            directive("TUE", "NV1", "ttv_a", "2022-09-13", Status::Open),
        ];
        let section = &digest_for(Audience::Chief, &directives).units[0];
        assert_eq!(codes(&section.due_soon), ["WED", "MON"]);
        assert_eq!(section.due_soon[0].days_left, 2);
        assert_eq!(section.counts.open, 3);
        assert_eq!(section.counts.in_time, 3);
        assert_eq!(section.counts.due_soon, 2);
    }

    #[test]
    fn closed_and_completed_items_count_only_within_the_past_seven_days() {
        let directives = [
            closed("CL_NEW", "NV1", "2022-09-15", "2022-08-31"),
            closed("CL_OLD", "NV1", "2022-09-15", "2022-08-28"),
            completed("OK", "NV1", "2022-08-31", "2022-08-30"),
            completed("LATE", "NV1", "2022-08-29", "2022-08-31"),
            completed("HOLIDAY", "NV1", "2022-09-02", "2022-09-05"),
            completed("OLD", "NV1", "2022-08-20", "2022-08-20"),
            directive("GONE", "NV1", "ttv_a", "2022-08-20", Status::Cancelled),
        ];
        let section = &digest_for(Audience::Chief, &directives).units[0];
        assert_eq!(codes(&section.closed), ["CL_NEW"]);
        assert_eq!(codes(&section.completed), ["HOLIDAY", "LATE", "OK"]);
        let on_time: Vec<Option<bool>> = section.completed.iter().map(|i| i.on_time).collect();
        assert_eq!(on_time, [Some(true), Some(false), Some(true)]);
        assert_eq!(section.counts.closed_incomplete, 1);
        assert_eq!(section.counts.completed, 3);
        assert_eq!(section.counts.completed_on_time, 2);
        assert_eq!(section.counts.on_time_pct, Some(66.7));
        assert_eq!(section.counts.open, 0);
    }

    #[test]
    fn counts_add_up_per_unit_and_for_the_whole_digest() {
        let mut undated = directive("NODUE", "NV2", "ttv_a", "2022-09-30", Status::Open);
        undated.due_on = None;
        let directives = [
            directive("O1", "NV1", "ttv_a", "2022-08-25", Status::Open),
            directive("S1", "NV1", "ttv_a", "2022-09-08", Status::Open),
            directive("L1", "NV2", "ttv_a", "2022-09-30", Status::InProgress),
            undated,
            completed("C1", "NV2", "2022-09-05", "2022-09-01"),
        ];
        let digest = digest_for(Audience::Leader("pct_a".into()), &directives);
        let t = digest.totals;
        assert_eq!((t.open, t.in_time, t.overdue, t.without_due, t.due_soon), (4, 2, 1, 1, 1));
        assert_eq!((t.completed, t.completed_on_time, t.on_time_pct), (1, 1, Some(100.0)));
        assert_eq!(digest.units[1].counts.on_time_pct, Some(100.0));
        assert_eq!(digest.units[0].counts.on_time_pct, None);
    }

    #[test]
    fn a_quiet_week_is_all_well_even_with_items_due_soon() {
        let directives = [
            directive("S1", "NV1", "ttv_a", "2022-09-08", Status::Open),
            completed("C1", "NV1", "2022-09-05", "2022-09-01"),
        ];
        let digest = digest_for(Audience::Leader("pct_a".into()), &directives);
        assert!(digest.all_well);
        let digest = digest_for(Audience::Leader("pct_a".into()), &[closed("X", "NV2", "2022-09-30", "2022-09-01")]);
        assert!(!digest.all_well);
        assert!(digest_for(Audience::Leader("pct_b".into()), &[]).all_well);
    }

    #[test]
    fn inactive_assignees_and_leaderless_units_are_flagged_only_for_the_chief() {
        let (mut units, people) = agency();
        units.push(unit("VP", None));
        let directives = [
            directive("V1", "NV3", "ttv_old", "2022-09-30", Status::Open),
            directive("V2", "NV3", "nobody", "2022-09-30", Status::Open),
            Directive {
                completed_on: Some(d("2022-09-01")),
                ..directive("V3", "NV3", "ttv_old", "2022-09-30", Status::Completed)
            },
        ];
        let calendar = Calendar::load(None).unwrap();
        let policy = Policy::default();
        let chief = weekly_digest(&units, &people, &directives, &calendar, &policy, &Audience::Chief, monday());
        assert_eq!(chief.flags.len(), 3, "{:?}", chief.flags);
        assert!(chief.flags[0].contains("Phòng VP (VP): chưa có lãnh đạo phụ trách khối"));
        assert!(chief.flags[1].contains("V1") && chief.flags[1].contains("Hồ Văn Vinh"));
        assert!(chief.flags[2].contains("V2") && chief.flags[2].contains("nobody"));
        let leader = Audience::Leader("pct_b".into());
        let leader = weekly_digest(&units, &people, &directives, &calendar, &policy, &leader, monday());
        assert!(leader.flags.is_empty());
    }

    #[test]
    fn the_chief_is_warned_from_december_when_next_years_calendar_is_missing() {
        let (units, people) = agency();
        let calendar = Calendar::load(None).unwrap();
        let policy = Policy::default();
        let digest = weekly_digest(&units, &people, &[], &calendar, &policy, &Audience::Chief, d("2027-12-06"));
        assert!(digest.flags.iter().any(|f| f.contains("năm 2028")), "{:?}", digest.flags);
    }

    #[test]
    fn a_directive_listed_twice_is_counted_once() {
        let one = directive("A1", "NV1", "ttv_a", "2022-08-25", Status::Open);
        let digest = digest_for(Audience::Chief, &[one.clone(), one]);
        assert_eq!(digest.totals.overdue, 1);
    }

    #[test]
    fn percentages_round_to_one_decimal_and_are_none_without_a_whole() {
        assert_eq!(percent(2, 3), Some(66.7));
        assert_eq!(percent(1, 3), Some(33.3));
        assert_eq!(percent(0, 0), None);
    }
}
