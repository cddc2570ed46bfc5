//! Reports in the flow: which weekly digests and monthly briefing reports are owed at `now`
//! (pure, beside the planner), whether a queued one is still owed when delivery claims it,
//! and turning one into a rendered message from the store's directives.
//!
//! A weekly digest is keyed per recipient and ISO week (`digest:pct_a:2022-W36:email`): it
//! becomes owed at the configured moment of the week (Monday 07:30 by default) and stays
//! owed until the week ends, so after downtime it goes out at the next send window of the
//! same week, and a week that has passed is never sent late. The monthly report is keyed per
//! recipient and month (`digest:chanh_tt:2022-09:email`) and owed from its due day to the
//! month's end.

pub mod monthly;
pub mod render;
pub mod weekly;

use crate::calendar::Calendar;
use crate::domain::{Channel, Directive, Ladder, Notice, NoticeKey, NoticeKind, Person, Role, Stage, Unit};
use crate::plan::policy::Policy;
use crate::plan::Snapshot;
use crate::render::{RenderError, Rendered};
use crate::report::monthly::{monthly_report, report_owed_month};
use crate::report::render::DigestRenderer;
use crate::report::weekly::{weekly_digest, Audience, Extension, ItemHeading, WINDOW_DAYS};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate};
use chrono_tz::Tz;

pub use crate::config::ReportSchedule;

/// Everyone who receives reports, with what they cover: each active chief the whole agency,
/// each active block leader (a unit's `leader`, not a chief) their units. Code order.
pub fn report_audiences(snapshot: &Snapshot) -> Vec<(&Person, Audience)> {
    let mut out: Vec<(&Person, Audience)> = snapshot.chiefs().into_iter().map(|p| (p, Audience::Chief)).collect();
    let mut leaders: Vec<&Person> = snapshot
        .units
        .values()
        .filter_map(|u| snapshot.people.get(u.leader.as_deref()?))
        .filter(|p| p.active && p.role != Role::Chief)
        .collect();
    leaders.sort_by(|a, b| a.code.cmp(&b.code));
    leaders.dedup_by(|a, b| a.code == b.code);
    out.extend(leaders.into_iter().map(|p| (p, Audience::Leader(p.code.clone()))));
    out
}

/// The audience a person's reports cover, if they receive any.
pub fn audience_of(snapshot: &Snapshot, code: &str) -> Option<Audience> {
    report_audiences(snapshot).into_iter().find(|(p, _)| p.code == code).map(|(_, a)| a)
}

/// The digests and reports owed at `now`.
pub fn plan_reports(
    snapshot: &Snapshot,
    schedule: &ReportSchedule,
    calendar: &Calendar,
    now: DateTime<Tz>,
) -> Vec<Notice> {
    let today = now.date_naive();
    let mut stages = Vec::new();
    if let Some(cron) = &schedule.weekly {
        let week = Stage::week_of(today);
        let reached =
            cron.find_previous_occurrence(&now, true).is_ok_and(|prev| Stage::week_of(prev.date_naive()) == week);
        if reached {
            stages.push((NoticeKind::Digest, Ladder::Digest, week));
        }
    }
    if let Some(n) = schedule.monthly_working_days_before_end {
        if let Some((year, month)) = report_owed_month(calendar, today, n) {
            stages.push((NoticeKind::Report, Ladder::Report, Stage::Month { year, month }));
        }
    }
    let mut out = Vec::new();
    for (person, _) in report_audiences(snapshot) {
        for (kind, ladder, stage) in &stages {
            out.push(Notice {
                kind: *kind,
                directive: None,
                recipient: person.code.clone(),
                address: person.email.clone(),
                channel: Channel::Email,
                stage: stage.clone(),
                key: NoticeKey::new(*kind, &[&person.code, &stage.to_string()], Channel::Email),
                ladder: *ladder,
                effective_due: None,
                days_overdue: 0,
            });
        }
    }
    out
}

/// Whether `now` falls on the day this week's digest becomes owed (Monday by default).
pub fn is_digest_day(schedule: &ReportSchedule, now: DateTime<Tz>) -> bool {
    let Some(cron) = &schedule.weekly else { return false };
    let today = now.date_naive();
    let Some(midnight) = today.and_hms_opt(0, 0, 0).and_then(|t| t.and_local_timezone(now.timezone()).earliest())
    else {
        return false;
    };
    cron.find_next_occurrence(&midnight, true).is_ok_and(|at| at.date_naive() == today)
}

/// Whether `notice` may be left to the weekly digest on the digest's day: an escalation to a
/// block leader or the chief, or a closed-without-result alarm (to whoever; only a digest's
/// recipient is then left to it). [`deferred_to_digest`] says for certain.
pub fn may_defer_to_digest(notice: &Notice, digest_day: bool) -> bool {
    digest_day
        && match notice.ladder {
            Ladder::EscalateLeader | Ladder::EscalateChief => notice.kind == NoticeKind::Escalation,
            // The digest lists what was closed without a result in its week, too.
            Ladder::Closed => notice.kind == NoticeKind::ClosedIncomplete,
            _ => false,
        }
}

/// The week of the digest that lists `notice`'s directive (of `unit`), when the notice is
/// left to it: on the day a leader's or the chief's weekly digest becomes owed, their
/// escalations and closed-without-result alarms about directives of units the digest covers
/// are not sent as well — the
/// digest lists every overdue item of those units, so Monday brings one message, not two
/// with the same items. A later stage reached on another day is sent as usual.
pub fn deferred_to_digest(
    snapshot: &Snapshot,
    schedule: &ReportSchedule,
    now: DateTime<Tz>,
    notice: &Notice,
    unit: &str,
) -> Option<Stage> {
    // The notice's own fields first: most claimed notices are no escalation, and the cron is
    // not worth asking for them.
    if !may_defer_to_digest(notice, true) || !is_digest_day(schedule, now) {
        return None;
    }
    let unit = snapshot.units.get(unit)?;
    audience_of(snapshot, &notice.recipient)
        .filter(|audience| audience.covers(unit))
        .map(|_| Stage::week_of(now.date_naive()))
}

/// Whether a queued report with `stage` may still go out on `today`; the reason when not.
/// A digest goes out only in its own week, a report only while its month's report is owed:
/// neither is ever sent late.
pub fn report_still_owed(
    stage: &Stage,
    today: NaiveDate,
    calendar: &Calendar,
    schedule: &ReportSchedule,
) -> Result<(), String> {
    match stage {
        Stage::Week { .. } if *stage == Stage::week_of(today) => Ok(()),
        Stage::Week { .. } => Err(format!("the week {stage} has passed; a digest is never sent late")),
        Stage::Month { year, month } => {
            let owed = schedule
                .monthly_working_days_before_end
                .and_then(|n| report_owed_month(calendar, today, n))
                .is_some_and(|owed| owed == (*year, *month));
            if owed {
                Ok(())
            } else {
                Err(format!("the month {stage} has passed; a report is never sent late"))
            }
        }
        other => Err(format!("{other} is not the stage of a digest or a report")),
    }
}

/// Addresses of the audience's people that reject mail, as digest flags.
fn bounce_flags(snapshot: &Snapshot, units: &[Unit], audience: &Audience) -> Vec<String> {
    snapshot
        .bounces
        .iter()
        .filter_map(|b| {
            let person = snapshot.people.get(&b.person).filter(|p| p.active)?;
            let unit = units.iter().find(|u| u.code == person.unit && audience.covers(u))?;
            (person.address_on(b.channel).as_deref() == Some(b.address.as_str())).then(|| {
                format!(
                    "Địa chỉ nhận thông báo của đồng chí {} ({}) bị trả lại: {} – đề nghị cập nhật.",
                    person.name, unit.name, b.address
                )
            })
        })
        .collect()
}

/// The extensions a weekly digest on `today` lists: due dates moved later since a week before.
pub async fn week_extensions(
    store: &crate::store::Store,
    snapshot: &Snapshot,
    today: NaiveDate,
    tz: Tz,
) -> Result<Vec<Extension>, crate::store::StoreError> {
    let since_day = today.checked_sub_days(Days::new(WINDOW_DAYS)).unwrap_or(today);
    let since =
        since_day.and_hms_opt(0, 0, 0).and_then(|t| t.and_local_timezone(tz).earliest()).map_or(0, |t| t.timestamp());
    let end_of_today = today
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(tz).earliest())
        .map_or(i64::MAX, |t| t.timestamp());
    let mut history = store.changes_since("due_on", since).await?;
    // A digest of a past week (a preview with --at) lists what was extended in that week only.
    history.retain(|h| h.at < end_of_today);
    if history.is_empty() {
        return Ok(Vec::new());
    }
    let codes: Vec<String> = history.iter().map(|h| h.code.clone()).collect();
    let directives = store.directives_by_code(&codes).await?;
    Ok(extensions_of(&history, &directives, &snapshot.people))
}

/// The extensions of the digest's week: each `due_on` moved later in `history` (the changes
/// since a week before `today`), for a directive the store still holds.
pub fn extensions_of(
    history: &[crate::store::HistoryRow],
    directives: &[Directive],
    people: &std::collections::HashMap<String, Person>,
) -> Vec<Extension> {
    history
        .iter()
        .filter(|h| h.field == "due_on")
        .filter_map(|h| {
            let old_due = NaiveDate::parse_from_str(h.old_value.as_deref()?, "%Y-%m-%d").ok()?;
            let new_due = NaiveDate::parse_from_str(h.new_value.as_deref()?, "%Y-%m-%d").ok()?;
            let directive = directives.iter().find(|d| d.code == h.code)?;
            (new_due > old_due).then(|| Extension {
                heading: ItemHeading::of(directive, people),
                unit: directive.unit.clone(),
                old_due,
                new_due,
                by: h.origin.clone(),
            })
        })
        .collect()
}

/// The store selection reports on `today` are built from: (closed or completed since,
/// due from, due until) — the digest's week back, and the whole month with the days before
/// it whose due dates roll forward into it.
pub fn report_window(today: NaiveDate) -> (NaiveDate, NaiveDate, NaiveDate) {
    let since = today.checked_sub_days(Days::new(WINDOW_DAYS)).unwrap_or(today);
    let month_start = today.with_day(1).unwrap_or(today);
    let due_from = month_start.checked_sub_days(Days::new(10)).unwrap_or(month_start);
    let due_until = month_start.checked_add_months(Months::new(1)).unwrap_or(month_start);
    (since, due_from, due_until)
}

/// Everything a report is built from.
pub struct ReportInput<'a> {
    pub snapshot: &'a Snapshot,
    pub directives: &'a [Directive],
    /// Due dates moved later in the past week, for the weekly digest.
    pub extensions: &'a [Extension],
    pub calendar: &'a Calendar,
    pub policy: &'a Policy,
    pub today: NaiveDate,
}

/// Builds and renders the report `stage` (an ISO week or a month) for `person`.
pub fn render_report(
    renderer: &DigestRenderer,
    input: &ReportInput<'_>,
    person: &Person,
    audience: &Audience,
    stage: &Stage,
) -> Result<Rendered, RenderError> {
    let mut units: Vec<Unit> = input.snapshot.units.values().cloned().collect();
    units.sort_by(|a, b| a.code.cmp(&b.code));
    let ReportInput { snapshot, directives, extensions, calendar, policy, today } = *input;
    match *stage {
        Stage::Month { year, month } => {
            let report =
                monthly_report(&units, &snapshot.people, directives, calendar, policy, audience, year, month, today);
            renderer.render_monthly(&report, person)
        }
        _ => {
            let mut digest = weekly_digest(&units, &snapshot.people, directives, calendar, policy, audience, today);
            digest.flags.extend(bounce_flags(input.snapshot, &units, audience));
            digest.add_extensions(extensions);
            renderer.render_weekly(&digest, person)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Unit};
    use chrono::TimeZone;

    fn snapshot() -> Snapshot {
        let person = |code: &str, role, active| Person {
            code: code.into(),
            name: code.into(),
            title: String::new(),
            email: format!("{code}@example.gov.vn"),
            unit: "LD".into(),
            role,
            active,
            reach: Default::default(),
        };
        let unit = |code: &str, leader: &str| Unit {
            code: code.into(),
            name: code.into(),
            head: None,
            leader: Some(leader.into()),
        };
        Snapshot::new(
            vec![unit("NV1", "pct_a"), unit("NV2", "pct_b"), unit("NV3", "pct_a"), unit("LD", "chanh")],
            vec![
                person("chanh", Role::Chief, true),
                person("pct_a", Role::Leader, true),
                person("pct_b", Role::Leader, false),
            ],
            Vec::new(),
        )
    }

    fn schedule() -> ReportSchedule {
        ReportSchedule {
            weekly: Some(crate::config::parse_cron("k", "0 30 7 * * Mon").unwrap()),
            monthly_working_days_before_end: Some(3),
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Tz> {
        chrono_tz::Asia::Ho_Chi_Minh.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn keys(now: DateTime<Tz>) -> Vec<String> {
        plan_reports(&snapshot(), &schedule(), &Calendar::load(None).unwrap(), now)
            .into_iter()
            .map(|n| n.key.to_string())
            .collect()
    }

    #[test]
    fn the_weekly_digest_is_owed_from_monday_0730_until_the_week_ends() {
        assert!(keys(at(2022, 9, 5, 7, 29)).is_empty());
        let monday = keys(at(2022, 9, 5, 7, 30));
        assert_eq!(monday, vec!["digest:chanh:2022-W36:email", "digest:pct_a:2022-W36:email"]);
        assert_eq!(keys(at(2022, 9, 11, 23, 59)), monday, "catch-up later in the same week");
    }

    #[test]
    fn the_monthly_report_is_owed_from_three_working_days_before_month_end() {
        // September 2022 ends Friday 30/9: the report is owed from Tuesday 27/9.
        assert!(!keys(at(2022, 9, 26, 9, 0)).iter().any(|k| k.contains("2022-09:")));
        let owed = keys(at(2022, 9, 27, 9, 0));
        assert!(owed.contains(&"digest:chanh:2022-09:email".to_string()), "{owed:?}");
        assert!(owed.contains(&"digest:pct_a:2022-09:email".to_string()), "{owed:?}");
        assert!(!keys(at(2022, 10, 3, 9, 0)).iter().any(|k| k.contains("2022-09:")), "never late");
    }

    #[test]
    fn a_queued_report_for_a_past_week_or_month_is_no_longer_owed() {
        let cal = Calendar::load(None).unwrap();
        let monday = NaiveDate::from_ymd_opt(2022, 9, 12).unwrap();
        let week = |week| Stage::Week { year: 2022, week };
        assert!(report_still_owed(&week(37), monday, &cal, &schedule()).is_ok());
        assert!(report_still_owed(&week(36), monday, &cal, &schedule()).is_err());
        let oct = NaiveDate::from_ymd_opt(2022, 10, 3).unwrap();
        let september = Stage::Month { year: 2022, month: 9 };
        assert!(report_still_owed(&september, oct, &cal, &schedule()).is_err());
        let late_sept = NaiveDate::from_ymd_opt(2022, 9, 28).unwrap();
        assert!(report_still_owed(&september, late_sept, &cal, &schedule()).is_ok());
    }

    #[test]
    fn inactive_leaders_get_no_report_and_chiefs_get_the_agency() {
        let snap = snapshot();
        let audiences: Vec<(String, Audience)> =
            report_audiences(&snap).into_iter().map(|(p, a)| (p.code.clone(), a)).collect();
        assert_eq!(
            audiences,
            vec![("chanh".into(), Audience::Chief), ("pct_a".into(), Audience::Leader("pct_a".into()))]
        );
    }
}
