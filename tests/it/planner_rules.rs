//! The planner against every row of the README's "What is sent, when, to whom", on the
//! shipped calendar (pure: no I/O).

use chrono::{NaiveDate, TimeZone};
use nhacviec::calendar::Calendar;
use nhacviec::domain::{Directive, DirectiveKind, Notice, NoticeKind, Person, Role, Status, Unit};
use nhacviec::plan::policy::{DefaultDueRule, Policy};
use nhacviec::plan::{plan, Snapshot};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn at(date: &str, hour: u32) -> chrono::DateTime<chrono_tz::Tz> {
    let day = d(date);
    chrono_tz::Asia::Ho_Chi_Minh.from_local_datetime(&day.and_hms_opt(hour, 0, 0).unwrap()).unwrap()
}

fn person(code: &str, unit: &str, role: Role) -> Person {
    Person {
        code: code.into(),
        name: format!("Đồng chí {code}"),
        title: String::new(),
        email: format!("{code}@example.gov.vn"),
        unit: unit.into(),
        role,
        active: true,
        reach: Default::default(),
    }
}

fn agency() -> (Vec<Unit>, Vec<Person>) {
    let units = vec![
        Unit {
            code: "NV1".into(),
            name: "Phòng Nghiệp vụ 1".into(),
            head: Some("tp".into()),
            leader: Some("pct".into()),
        },
        Unit {
            code: "LD".into(), name: "Lãnh đạo".into(), head: Some("chanh".into()), leader: Some("chanh".into())
        },
    ];
    let people = vec![
        person("tp", "NV1", Role::Head),
        person("pct", "LD", Role::Leader),
        person("pct2", "LD", Role::Leader),
        person("chanh", "LD", Role::Chief),
        person("lien", "NV1", Role::Officer),
    ];
    (units, people)
}

fn directive(code: &str, due: Option<&str>) -> Directive {
    Directive {
        code: code.into(),
        kind: DirectiveKind::Task,
        title: format!("Nhiệm vụ {code}"),
        source: "KL giao ban 08/2022".into(),
        unit: "NV1".into(),
        assignee: Some("lien".into()),
        leader: None,
        assigned_on: Some(d("2022-08-11")),
        due_on: due.map(d),
        status: Status::Open,
        completed_on: None,
        closed_on: None,
        result: None,
        confidential: false,
    }
}

fn plan_one(directive: Directive, now: chrono::DateTime<chrono_tz::Tz>) -> Vec<Notice> {
    plan_with(vec![directive], &Policy::default(), now, |_| {})
}

fn plan_with(
    directives: Vec<Directive>,
    policy: &Policy,
    now: chrono::DateTime<chrono_tz::Tz>,
    tweak: impl FnOnce(&mut Vec<Person>),
) -> Vec<Notice> {
    let (units, mut people) = agency();
    tweak(&mut people);
    let calendar = Calendar::load(None).unwrap();
    plan(&Snapshot::new(units, people, directives), policy, &calendar, now)
}

/// (kind, recipient, stage) of each notice, for compact assertions.
fn summary(notices: &[Notice]) -> Vec<(String, String, String)> {
    let mut s: Vec<_> =
        notices.iter().map(|n| (n.kind.to_string(), n.recipient.clone(), n.stage.to_string())).collect();
    s.sort();
    s
}

fn row(kind: &str, recipient: &str, stage: &str) -> (String, String, String) {
    (kind.into(), recipient.into(), stage.into())
}

#[test]
fn upcoming_reminders_go_to_the_assignee_three_and_one_working_days_before() {
    // Due Thursday 8/9/2022: T-3 is Monday 5/9 (1–2/9 are National Day days off).
    let n = plan_one(directive("A", Some("2022-09-08")), at("2022-09-05", 0));
    assert_eq!(summary(&n), vec![row("upcoming", "lien", "T-3")]);
    assert_eq!(n[0].key, "upcoming:A:lien:2022-09-08:T-3:email");
    let n = plan_one(directive("A", Some("2022-09-08")), at("2022-09-07", 9));
    assert_eq!(summary(&n), vec![row("upcoming", "lien", "T-1")]);
    // T-4 (Wednesday 31/8, and the holidays after it): nothing yet.
    assert!(plan_one(directive("A", Some("2022-09-08")), at("2022-09-02", 9)).is_empty());
}

#[test]
fn due_today_is_owed_on_the_effective_due_date() {
    let n = plan_one(directive("A", Some("2022-09-05")), at("2022-09-05", 8));
    assert_eq!(summary(&n), vec![row("due_today", "lien", "T0")]);
}

#[test]
fn overdue_starts_the_first_working_day_after_and_repeats_every_two_working_days() {
    let due = "2022-08-31"; // Wednesday; T+1 is Monday 5/9 after the National Day break
    let stages = [
        ("2022-09-01", vec![row("due_today", "lien", "T0")]),
        ("2022-09-05", vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+1")]),
        ("2022-09-06", vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+1")]),
        ("2022-09-07", vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+3")]),
        (
            "2022-09-09",
            vec![row("escalation", "pct", "T+5"), row("escalation", "tp", "T+1"), row("overdue", "lien", "T+5")],
        ),
    ];
    for (day, expected) in stages {
        assert_eq!(summary(&plan_one(directive("A", Some(due)), at(day, 8))), expected, "{day}");
    }
}

#[test]
fn escalation_reaches_the_chief_at_ten_working_days_overdue() {
    // Due Thursday 18/8/2022: T+10 is Monday 5/9 (1–2/9 are days off).
    let n = plan_one(directive("A", Some("2022-08-18")), at("2022-09-05", 8));
    assert_eq!(
        summary(&n),
        vec![
            row("escalation", "chanh", "T+10"),
            row("escalation", "pct", "T+5"),
            row("escalation", "tp", "T+1"),
            row("overdue", "lien", "T+9"),
        ]
    );
    assert!(n.iter().any(|x| x.key == "escalation:A:chanh:2022-08-18:T+10:email"));
}

#[test]
fn the_block_leader_is_the_directives_own_leader_when_it_names_one() {
    let mut dir = directive("A", Some("2022-08-19"));
    dir.leader = Some("pct2".into());
    let n = plan_one(dir, at("2022-09-05", 8));
    assert!(n.iter().any(|x| x.recipient == "pct2" && x.stage == "T+5"));
    assert!(!n.iter().any(|x| x.recipient == "pct"));
}

#[test]
fn compensatory_days_off_in_may_2022_are_not_counted() {
    // Due Friday 29/4/2022; 30/4–1/5 weekend, 2–3/5 compensatory days off: T+1 is Wednesday 4/5.
    assert_eq!(
        summary(&plan_one(directive("A", Some("2022-04-29")), at("2022-05-03", 9))),
        vec![row("due_today", "lien", "T0")]
    );
    assert_eq!(
        summary(&plan_one(directive("A", Some("2022-04-29")), at("2022-05-04", 9))),
        vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+1")]
    );
}

#[test]
fn a_working_saturday_counts_as_a_working_day() {
    // Due Friday 3/5/2024; Saturday 4/5/2024 was a working day, so it is T+1.
    let n = plan_one(directive("A", Some("2024-05-03")), at("2024-05-04", 9));
    assert_eq!(summary(&n), vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+1")]);
    // An ordinary Saturday is not: due Friday 10/5/2024, on Saturday 11/5 still T0.
    let n = plan_one(directive("A", Some("2024-05-10")), at("2024-05-11", 9));
    assert_eq!(summary(&n), vec![row("due_today", "lien", "T0")]);
}

#[test]
fn a_due_date_on_a_day_off_rolls_forward_to_the_next_working_day() {
    // Due Saturday 10/9/2022 → effective Monday 12/9; the key carries the effective date.
    let n = plan_one(directive("A", Some("2022-09-10")), at("2022-09-12", 8));
    assert_eq!(summary(&n), vec![row("due_today", "lien", "T0")]);
    assert_eq!(n[0].key, "due_today:A:lien:2022-09-12:T0:email");
    // Due on the National Day holiday Friday 2/9 → Monday 5/9 is T0, not overdue.
    let n = plan_one(directive("B", Some("2022-09-02")), at("2022-09-05", 8));
    assert_eq!(summary(&n), vec![row("due_today", "lien", "T0")]);
    // With rolling forward off, 10/9 itself is T0 and Monday 12/9 is T+1.
    let policy = Policy { roll_forward: false, ..Policy::default() };
    let n = plan_with(vec![directive("A", Some("2022-09-10"))], &policy, at("2022-09-12", 8), |_| {});
    assert_eq!(summary(&n), vec![row("escalation", "tp", "T+1"), row("overdue", "lien", "T+1")]);
}

#[test]
fn catch_up_after_a_gap_owes_only_the_latest_stage_of_each_ladder() {
    // Nobody ran between the due date and T+8: one overdue (T+7) and one notice per rung.
    let n = plan_one(directive("A", Some("2022-08-22")), at("2022-09-05", 8));
    assert_eq!(
        summary(&n),
        vec![row("escalation", "pct", "T+5"), row("escalation", "tp", "T+1"), row("overdue", "lien", "T+7")]
    );
}

#[test]
fn an_inactive_assignee_gets_nothing_and_the_unit_head_gets_their_reminders() {
    let n = plan_with(vec![directive("A", Some("2022-09-05"))], &Policy::default(), at("2022-09-05", 8), |people| {
        people.iter_mut().filter(|p| p.code == "lien").for_each(|p| p.active = false);
    });
    assert_eq!(summary(&n), vec![row("due_today", "tp", "T0")]);
}

#[test]
fn a_head_who_is_also_the_assignee_gets_both_ladders() {
    let mut dir = directive("A", Some("2022-08-31"));
    dir.assignee = Some("tp".into());
    let n = plan_one(dir, at("2022-09-05", 8));
    assert_eq!(summary(&n), vec![row("escalation", "tp", "T+1"), row("overdue", "tp", "T+1")]);
    assert_ne!(n[0].key, n[1].key);
}

#[test]
fn a_directive_without_an_assignee_reminds_the_head_and_reports_it_unassigned() {
    let mut dir = directive("A", Some("2022-09-05"));
    dir.assignee = None;
    let n = plan_one(dir, at("2022-09-05", 8));
    assert_eq!(summary(&n), vec![row("due_today", "tp", "T0"), row("unassigned", "tp", "assignee")]);
    assert!(n.iter().any(|x| x.key == "unassigned:A:tp:assignee:email"));
}

#[test]
fn a_directive_without_a_due_date_is_reported_once_per_missing_field() {
    let mut dir = directive("A", None);
    dir.assignee = None;
    let n = plan_one(dir, at("2022-09-05", 8));
    assert_eq!(summary(&n), vec![row("unassigned", "tp", "assignee"), row("unassigned", "tp", "due_on")]);
}

#[test]
fn a_default_rule_gives_a_due_date_where_the_source_gives_none() {
    let mut dir = directive("P", None);
    dir.kind = DirectiveKind::Petition;
    dir.assigned_on = Some(d("2022-08-22"));
    let policy = Policy {
        default_due: vec![DefaultDueRule {
            kind: DirectiveKind::Petition,
            days: 10,
            working_days: true,
            effective_from: None,
            note: "Xử lý đơn: 10 ngày làm việc".into(),
        }],
        ..Policy::default()
    };
    // 10 working days after Monday 22/8/2022, skipping 1–2/9: Wednesday 7/9.
    let n = plan_with(vec![dir], &policy, at("2022-09-07", 8), |_| {});
    assert_eq!(summary(&n), vec![row("due_today", "lien", "T0")]);
    assert_eq!(n[0].key, "due_today:P:lien:2022-09-07:T0:email");
}

#[test]
fn closed_without_completion_alarms_the_assignee_the_head_and_the_block_leader() {
    let mut dir = directive("QD193", Some("2022-09-30"));
    dir.status = Status::Closed;
    dir.closed_on = Some(d("2022-08-30"));
    let n = plan_one(dir, at("2022-09-05", 8));
    assert_eq!(
        summary(&n),
        vec![
            row("closed_incomplete", "lien", "closed"),
            row("closed_incomplete", "pct", "closed"),
            row("closed_incomplete", "tp", "closed"),
        ]
    );
    assert!(n.iter().any(|x| x.key == "closed_incomplete:QD193:lien:2022-08-30:email"));
}

#[test]
fn items_closed_before_the_look_back_limit_raise_no_alarm_on_first_sight() {
    let mut dir = directive("OLD", Some("2022-06-30"));
    dir.status = Status::Closed;
    dir.closed_on = Some(d("2022-08-01"));
    assert!(plan_one(dir.clone(), at("2022-09-05", 8)).is_empty());
    let policy = Policy { closed_lookback_days: 60, ..Policy::default() };
    assert_eq!(plan_with(vec![dir], &policy, at("2022-09-05", 8), |_| {}).len(), 3);
}

#[test]
fn closed_items_get_no_reminders_and_completed_or_cancelled_items_get_nothing() {
    for status in [Status::Completed, Status::Cancelled] {
        let mut dir = directive("A", Some("2022-08-01"));
        dir.status = status;
        dir.completed_on = Some(d("2022-08-20"));
        assert!(plan_one(dir, at("2022-09-05", 8)).is_empty(), "{status}");
    }
    let mut dir = directive("A", Some("2022-08-01"));
    dir.status = Status::Closed;
    dir.closed_on = Some(d("2022-09-01"));
    assert!(plan_one(dir, at("2022-09-05", 8)).iter().all(|n| n.kind == NoticeKind::ClosedIncomplete));
}

#[test]
fn an_extension_starts_every_ladder_afresh() {
    let before = plan_one(directive("A", Some("2022-08-22")), at("2022-09-05", 8));
    let after = plan_one(directive("A", Some("2022-09-08")), at("2022-09-05", 8));
    assert_eq!(summary(&after), vec![row("upcoming", "lien", "T-3")]);
    assert!(before.iter().all(|b| after.iter().all(|a| a.key != b.key)));
}

#[test]
fn every_policy_number_is_honoured() {
    let policy = Policy {
        upcoming_days: vec![5],
        due_today: false,
        overdue_first: 2,
        overdue_every: 0,
        escalate_head_after: 0,
        escalate_leader_after: 3,
        escalate_chief_after: 0,
        ..Policy::default()
    };
    let plan_at = |day| summary(&plan_with(vec![directive("A", Some("2022-09-14"))], &policy, at(day, 8), |_| {}));
    assert_eq!(plan_at("2022-09-07"), vec![row("upcoming", "lien", "T-5")]);
    assert_eq!(plan_at("2022-09-14"), vec![row("upcoming", "lien", "T-5")]); // no T0 reminder
    assert_eq!(plan_at("2022-09-15"), vec![row("upcoming", "lien", "T-5")]); // T+1: not yet
    assert_eq!(plan_at("2022-09-16"), vec![row("overdue", "lien", "T+2")]);
    assert_eq!(
        plan_at("2022-09-23"),
        vec![row("escalation", "pct", "T+3"), row("overdue", "lien", "T+2")] // no repeat, no head/chief
    );
}
