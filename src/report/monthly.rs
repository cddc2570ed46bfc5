//! The monthly briefing report (báo cáo giao ban tháng): store's directives due in a month →
//! **here** → report::render → outbox. Pure — no I/O, no clock — classification of each
//! directive due in the month into the five categories agencies report, with counts and
//! rates per unit and for the whole audience, plus when the report falls due.

use crate::calendar::Calendar;
use crate::domain::{Directive, Person, Status, Unit};
use crate::plan::policy::Policy;
use crate::report::weekly::{
    covered_units, days_overdue, distinct_directives, effective_due, percent, recipient_name, Audience, ItemHeading,
    UnitHeading,
};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use std::collections::HashMap;

/// By default the report is owed three working days before the end of the month.
pub const DEFAULT_WORKING_DAYS_BEFORE_END: u32 = 3;

/// The key stage of a month's report: `2022-09`.
pub fn month_stage(year: i32, month: u32) -> String {
    crate::domain::Stage::Month { year, month }.to_string()
}

/// The day the report for `month` is owed: `working_days_before_end` working days before
/// the month's last working day (the domain's "end of the month", §1). With the default 3,
/// September 2022 ends on Friday 30/9, so the report is owed on Tuesday 27/9; with 0 it is
/// owed on the last working day itself. A month outside 1–12 is clamped into it; a year the
/// calendar cannot represent gives `NaiveDate::MAX` (never owed).
pub fn report_due_date(calendar: &Calendar, year: i32, month: u32, working_days_before_end: u32) -> NaiveDate {
    let Some(last) = calendar.last_working_day_of_month(year, month.clamp(1, 12)) else {
        return NaiveDate::MAX;
    };
    (0..working_days_before_end).fold(last, |day, _| calendar.previous_working_day(day))
}

/// The month whose report is owed on `today`, if any: the current month, from its report
/// due date to its last day. A month that has passed is never reported late.
pub fn report_owed_month(calendar: &Calendar, today: NaiveDate, working_days_before_end: u32) -> Option<(i32, u32)> {
    let (year, month) = (today.year(), today.month());
    (today >= report_due_date(calendar, year, month, working_days_before_end)).then_some((year, month))
}

/// The five categories of a directive due in the month, in the order agencies report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthlyCategory {
    /// Hoàn thành đúng hạn.
    CompletedOnTime,
    /// Hoàn thành quá hạn.
    CompletedLate,
    /// Đang thực hiện trong hạn.
    InProgressInTime,
    /// Đang thực hiện quá hạn.
    InProgressOverdue,
    /// Kết thúc chưa hoàn thành (closed without completion).
    ClosedIncomplete,
}

impl MonthlyCategory {
    pub const ALL: [MonthlyCategory; 5] = [
        MonthlyCategory::CompletedOnTime,
        MonthlyCategory::CompletedLate,
        MonthlyCategory::InProgressInTime,
        MonthlyCategory::InProgressOverdue,
        MonthlyCategory::ClosedIncomplete,
    ];

    /// The words of an agency report.
    pub fn label(self) -> &'static str {
        match self {
            MonthlyCategory::CompletedOnTime => "Hoàn thành đúng hạn",
            MonthlyCategory::CompletedLate => "Hoàn thành quá hạn",
            MonthlyCategory::InProgressInTime => "Đang thực hiện trong hạn",
            MonthlyCategory::InProgressOverdue => "Đang thực hiện quá hạn",
            MonthlyCategory::ClosedIncomplete => "Kết thúc chưa hoàn thành",
        }
    }
}

/// A count and its share of the total (percent, one decimal; `None` when the total is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    pub count: u32,
    pub rate: Option<f64>,
}

/// Counts and rates of one unit (or the whole report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MonthlyCounts {
    pub total: u32,
    pub completed_on_time: Tally,
    pub completed_late: Tally,
    pub in_progress_in_time: Tally,
    pub in_progress_overdue: Tally,
    pub closed_incomplete: Tally,
}

impl MonthlyCounts {
    /// Counts from raw numbers per category, in `MonthlyCategory::ALL` order.
    fn from_counts(counts: [u32; 5]) -> MonthlyCounts {
        let total = counts.iter().sum();
        let tally = |count| Tally { count, rate: percent(count, total) };
        MonthlyCounts {
            total,
            completed_on_time: tally(counts[0]),
            completed_late: tally(counts[1]),
            in_progress_in_time: tally(counts[2]),
            in_progress_overdue: tally(counts[3]),
            closed_incomplete: tally(counts[4]),
        }
    }

    fn of_items(items: &[MonthlyItem]) -> MonthlyCounts {
        let mut counts = [0u32; 5];
        for item in items {
            counts[item.category as usize] += 1;
        }
        MonthlyCounts::from_counts(counts)
    }

    /// The tally of one category.
    pub fn get(&self, category: MonthlyCategory) -> Tally {
        match category {
            MonthlyCategory::CompletedOnTime => self.completed_on_time,
            MonthlyCategory::CompletedLate => self.completed_late,
            MonthlyCategory::InProgressInTime => self.in_progress_in_time,
            MonthlyCategory::InProgressOverdue => self.in_progress_overdue,
            MonthlyCategory::ClosedIncomplete => self.closed_incomplete,
        }
    }

    fn add(&self, other: &MonthlyCounts) -> MonthlyCounts {
        MonthlyCounts::from_counts(MonthlyCategory::ALL.map(|c| self.get(c).count + other.get(c).count))
    }
}

/// One directive due in the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthlyItem {
    #[serde(flatten)]
    pub heading: ItemHeading,
    /// The effective due date, in the reported month.
    pub due: NaiveDate,
    pub category: MonthlyCategory,
    /// Working days late: past the due date at `today` if still open, at completion if
    /// completed late; 0 otherwise.
    pub days_overdue: i32,
    pub completed_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
}

/// One unit of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyUnit {
    #[serde(flatten)]
    pub heading: UnitHeading,
    pub counts: MonthlyCounts,
    /// By category (in report order), then due date, then code.
    pub items: Vec<MonthlyItem>,
}

/// The briefing report of one month for one audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    pub audience: Audience,
    /// The leader's name; `None` for the chief's report.
    pub recipient_name: Option<String>,
    pub year: i32,
    pub month: u32,
    /// The key stage: `2022-09`.
    pub stage: String,
    /// The day the numbers are as of.
    pub today: NaiveDate,
    pub units: Vec<MonthlyUnit>,
    pub totals: MonthlyCounts,
}

/// The report of `year`-`month` for `audience`, classified as of `today`. `directives` may
/// hold anything: only those of the audience's units whose effective due date falls in the
/// month count; cancelled ones and ones without a due date are left out.
#[allow(clippy::too_many_arguments)]
pub fn monthly_report(
    units: &[Unit],
    people: &HashMap<String, Person>,
    directives: &[Directive],
    calendar: &Calendar,
    policy: &Policy,
    audience: &Audience,
    year: i32,
    month: u32,
    today: NaiveDate,
) -> MonthlyReport {
    let directives = distinct_directives(directives);
    let sections: Vec<MonthlyUnit> = covered_units(units, audience)
        .into_iter()
        .map(|unit| {
            let mut items: Vec<MonthlyItem> = directives
                .iter()
                .filter(|d| d.unit == unit.code)
                .filter_map(|d| monthly_item(d, people, calendar, policy, today))
                .filter(|i| i.due.year() == year && i.due.month() == month)
                .collect();
            items.sort_by(|a, b| (a.category, a.due, &a.heading.code).cmp(&(b.category, b.due, &b.heading.code)));
            MonthlyUnit { heading: UnitHeading::of(unit, people), counts: MonthlyCounts::of_items(&items), items }
        })
        .collect();
    let totals = sections.iter().fold(MonthlyCounts::default(), |acc, s| acc.add(&s.counts));
    MonthlyReport {
        audience: audience.clone(),
        recipient_name: recipient_name(audience, people),
        year,
        month,
        stage: month_stage(year, month),
        today,
        units: sections,
        totals,
    }
}

/// The category of `directive` at `today` and its effective due date; `None` for a
/// cancelled directive or one with no due date. A completed directive with no completion
/// date counts as late: an unproven completion is not credited as on time.
pub fn classify(
    directive: &Directive,
    calendar: &Calendar,
    policy: &Policy,
    today: NaiveDate,
) -> Option<(NaiveDate, MonthlyCategory, i32)> {
    let due = effective_due(directive, calendar, policy)?;
    let late_by = |done: NaiveDate| i32::try_from(calendar.working_days_between(due, done)).unwrap_or(i32::MAX);
    let (category, days) = match directive.status {
        Status::Cancelled => return None,
        Status::Closed => (MonthlyCategory::ClosedIncomplete, 0),
        Status::Completed => match directive.completed_on {
            Some(done) if done <= due => (MonthlyCategory::CompletedOnTime, 0),
            Some(done) => (MonthlyCategory::CompletedLate, late_by(done)),
            None => (MonthlyCategory::CompletedLate, 0),
        },
        Status::Open | Status::InProgress => match days_overdue(calendar, due, today) {
            0 => (MonthlyCategory::InProgressInTime, 0),
            n => (MonthlyCategory::InProgressOverdue, n),
        },
    };
    Some((due, category, days))
}

fn monthly_item(
    directive: &Directive,
    people: &HashMap<String, Person>,
    calendar: &Calendar,
    policy: &Policy,
    today: NaiveDate,
) -> Option<MonthlyItem> {
    let (due, category, days_overdue) = classify(directive, calendar, policy, today)?;
    Some(MonthlyItem {
        heading: ItemHeading::of(directive, people),
        due,
        category,
        days_overdue,
        completed_on: directive.completed_on,
        closed_on: directive.closed_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::weekly::tests::{agency, closed, completed, d, directive};

    fn report(audience: Audience, directives: &[Directive], today: &str) -> MonthlyReport {
        let (units, people) = agency();
        let calendar = Calendar::load(None).unwrap();
        monthly_report(&units, &people, directives, &calendar, &Policy::default(), &audience, 2022, 9, d(today))
    }

    #[test]
    fn the_report_is_due_three_working_days_before_the_last_working_day() {
        let cal = Calendar::load(None).unwrap();
        assert_eq!(report_due_date(&cal, 2022, 9, 3), d("2022-09-27"));
        assert_eq!(report_due_date(&cal, 2022, 9, 0), d("2022-09-30"));
        // July 2022 ends on a Sunday: the last working day is Friday 29/7.
        assert_eq!(report_due_date(&cal, 2022, 7, 3), d("2022-07-26"));
        // April 2024: 29 and 30 April are days off (Reunification Day, compensatory day).
        assert_eq!(report_due_date(&cal, 2024, 4, 0), d("2024-04-26"));
        assert_eq!(report_due_date(&cal, 2022, 12, DEFAULT_WORKING_DAYS_BEFORE_END), d("2022-12-27"));
    }

    #[test]
    fn the_report_is_owed_from_its_due_date_to_the_end_of_that_month_only() {
        let cal = Calendar::load(None).unwrap();
        assert_eq!(report_owed_month(&cal, d("2022-09-26"), 3), None);
        assert_eq!(report_owed_month(&cal, d("2022-09-27"), 3), Some((2022, 9)));
        assert_eq!(report_owed_month(&cal, d("2022-09-30"), 3), Some((2022, 9)));
        assert_eq!(report_owed_month(&cal, d("2022-10-03"), 3), None);
        assert_eq!(month_stage(2022, 9), "2022-09");
    }

    #[test]
    fn directives_due_in_the_month_fall_into_the_five_reported_categories() {
        let directives = [
            completed("ON_TIME", "NV1", "2022-09-09", "2022-09-08"),
            completed("LATE", "NV1", "2022-09-09", "2022-09-14"),
            directive("IN_TIME", "NV1", "ttv_a", "2022-09-30", Status::InProgress),
            directive("OVERDUE", "NV1", "ttv_a", "2022-09-20", Status::Open),
            closed("CLOSED", "NV1", "2022-09-15", "2022-08-31"),
            directive("CANCELLED", "NV1", "ttv_a", "2022-09-15", Status::Cancelled),
            directive("AUGUST", "NV1", "ttv_a", "2022-08-31", Status::Open),
            directive("OCTOBER", "NV1", "ttv_a", "2022-10-03", Status::Open),
        ];
        let report = report(Audience::Chief, &directives, "2022-09-27");
        let unit = &report.units[0];
        let got: Vec<(&str, MonthlyCategory, i32)> =
            unit.items.iter().map(|i| (i.heading.code.as_str(), i.category, i.days_overdue)).collect();
        assert_eq!(
            got,
            [
                ("ON_TIME", MonthlyCategory::CompletedOnTime, 0),
                ("LATE", MonthlyCategory::CompletedLate, 3),
                ("IN_TIME", MonthlyCategory::InProgressInTime, 0),
                ("OVERDUE", MonthlyCategory::InProgressOverdue, 5),
                ("CLOSED", MonthlyCategory::ClosedIncomplete, 0),
            ]
        );
        assert_eq!(report.stage, "2022-09");
    }

    #[test]
    fn a_due_date_on_the_saturday_after_the_month_rolls_into_the_next_month() {
        // Saturday 1/10/2022 rolls forward to Monday 3/10, so it is reported in October.
        let directives = [directive("SAT", "NV1", "ttv_a", "2022-10-01", Status::Open)];
        let september = report(Audience::Chief, &directives, "2022-09-27");
        assert_eq!(september.totals.total, 0);
    }

    #[test]
    fn counts_and_rates_are_per_unit_and_summed_for_the_audience() {
        let directives = [
            completed("A", "NV1", "2022-09-09", "2022-09-08"),
            completed("B", "NV1", "2022-09-09", "2022-09-08"),
            directive("C", "NV1", "ttv_a", "2022-09-20", Status::Open),
            closed("D", "NV2", "2022-09-15", "2022-09-10"),
            directive("E", "NV3", "ttv_a", "2022-09-20", Status::Open),
        ];
        let report = report(Audience::Leader("pct_a".into()), &directives, "2022-09-27");
        let nv1 = report.units[0].counts;
        assert_eq!(nv1.total, 3);
        assert_eq!(nv1.completed_on_time, Tally { count: 2, rate: Some(66.7) });
        assert_eq!(nv1.in_progress_overdue, Tally { count: 1, rate: Some(33.3) });
        assert_eq!(nv1.completed_late, Tally { count: 0, rate: Some(0.0) });
        let totals = report.totals;
        assert_eq!(totals.total, 4, "NV3 belongs to another block");
        assert_eq!(totals.completed_on_time.rate, Some(50.0));
        assert_eq!(totals.closed_incomplete, Tally { count: 1, rate: Some(25.0) });
        let empty = report_for_nobody();
        assert_eq!(empty.totals.completed_on_time, Tally { count: 0, rate: None });
    }

    fn report_for_nobody() -> MonthlyReport {
        report(Audience::Leader("pct_b".into()), &[], "2022-09-27")
    }

    #[test]
    fn an_open_item_is_in_time_until_the_first_working_day_after_its_due_date() {
        let directives = [directive("FRI", "NV1", "ttv_a", "2022-09-23", Status::Open)];
        let on_sunday = report(Audience::Chief, &directives, "2022-09-25");
        assert_eq!(on_sunday.units[0].items[0].category, MonthlyCategory::InProgressInTime);
        let on_monday = report(Audience::Chief, &directives, "2022-09-26");
        assert_eq!(on_monday.units[0].items[0].category, MonthlyCategory::InProgressOverdue);
    }
}
