//! Working days: the calendar the planner counts stages in (pure; loaded from the yearly
//! files in `config/calendar/` plus rows imported into the store).
//!
//! Monday–Friday are working days, minus official days off, plus weekend days declared
//! working (ngày làm bù). Counting is O(log n) per query, so a million directives overdue
//! by years cost no more than ones due tomorrow.

use crate::domain::{CalendarDay, CalendarDayKind};
use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The yearly files shipped with the binary; administrators add or override years with
/// files of the same shape in `calendar.dir`.
const BUILT_IN_FILES: &[(&str, &str)] = &[
    ("2022.toml", include_str!("../config/calendar/2022.toml")),
    ("2023.toml", include_str!("../config/calendar/2023.toml")),
    ("2024.toml", include_str!("../config/calendar/2024.toml")),
    ("2025.toml", include_str!("../config/calendar/2025.toml")),
    ("2026.toml", include_str!("../config/calendar/2026.toml")),
    ("2027.toml", include_str!("../config/calendar/2027.toml")),
];

/// One year's official days off and working weekend days, with the notice they come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    pub year: i32,
    #[serde(default)]
    pub provisional: bool,
    pub source: String,
    #[serde(default)]
    pub days: Vec<CalendarDay>,
}

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar file {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("calendar directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

/// What the calendar knows about a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearCoverage {
    pub year: i32,
    pub provisional: bool,
    pub source: String,
}

#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Days off that fall Monday–Friday (a holiday on a weekend changes nothing).
    weekday_holidays: BTreeSet<NaiveDate>,
    /// Saturdays and Sundays declared working days.
    weekend_workdays: BTreeSet<NaiveDate>,
    notes: BTreeMap<NaiveDate, String>,
    years: BTreeMap<i32, YearCoverage>,
}

impl Calendar {
    /// The built-in files, then every `*.toml` in `dir` (a file for a year replaces that year).
    pub fn load(dir: Option<&Path>) -> Result<Calendar, CalendarError> {
        let mut files = Vec::new();
        for (name, text) in BUILT_IN_FILES {
            files.push(parse_file(&format!("(built-in) {name}"), text)?);
        }
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            let io = |source| CalendarError::Io { dir: dir.to_path_buf(), source };
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(io)?;
                let file = parse_file(&path.display().to_string(), &text)?;
                files.retain(|f| f.year != file.year);
                files.push(file);
            }
        }
        let mut calendar = Calendar::default();
        for file in files {
            calendar.years.insert(
                file.year,
                YearCoverage { year: file.year, provisional: file.provisional, source: file.source.clone() },
            );
            for day in &file.days {
                calendar.set_day(day);
            }
        }
        Ok(calendar)
    }

    /// A calendar with no special days at all (plain Monday–Friday), for tests and benchmarks.
    pub fn weekdays_only() -> Calendar {
        Calendar::default()
    }

    /// Adds or overrides one day (imported `calendar` rows land here after the files).
    pub fn set_day(&mut self, day: &CalendarDay) {
        self.weekday_holidays.remove(&day.date);
        self.weekend_workdays.remove(&day.date);
        let weekend = is_weekend(day.date);
        match day.kind {
            CalendarDayKind::Holiday if !weekend => {
                self.weekday_holidays.insert(day.date);
            }
            CalendarDayKind::WorkingDay if weekend => {
                self.weekend_workdays.insert(day.date);
            }
            _ => {}
        }
        self.notes.insert(day.date, day.note.clone());
    }

    pub fn years(&self) -> impl Iterator<Item = &YearCoverage> {
        self.years.values()
    }

    /// Years the agency needs at `today` that no file covers: this year, and from
    /// 1 December the next one (the government announces it around then).
    pub fn missing_years(&self, today: NaiveDate) -> Vec<i32> {
        let mut needed = vec![today.year()];
        if today.month() == 12 {
            needed.push(today.year() + 1);
        }
        needed.into_iter().filter(|y| !self.years.contains_key(y)).collect()
    }

    pub fn note(&self, date: NaiveDate) -> Option<&str> {
        self.notes.get(&date).map(String::as_str)
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if is_weekend(date) {
            self.weekend_workdays.contains(&date)
        } else {
            !self.weekday_holidays.contains(&date)
        }
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> NaiveDate {
        let mut d = date;
        loop {
            d = d.succ_opt().unwrap_or(d);
            if self.is_working_day(d) || d == NaiveDate::MAX {
                return d;
            }
        }
    }

    /// The last working day strictly before `date`.
    pub fn previous_working_day(&self, date: NaiveDate) -> NaiveDate {
        let mut d = date;
        loop {
            d = d.pred_opt().unwrap_or(d);
            if self.is_working_day(d) || d == NaiveDate::MIN {
                return d;
            }
        }
    }

    /// `n` working days after `date` (n = 0 gives `date` itself).
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> NaiveDate {
        (0..n).fold(date, |d, _| self.next_working_day(d))
    }

    /// The due date that counts: a due date on a day off rolls forward to the next
    /// working day (Civil Code art. 148) unless `roll_forward` is off.
    pub fn effective_due(&self, due: NaiveDate, roll_forward: bool) -> NaiveDate {
        if roll_forward && !self.is_working_day(due) {
            self.next_working_day(due)
        } else {
            due
        }
    }

    /// The last working day of the month `date` falls in ("by the end of the month").
    pub fn last_working_day_of_month(&self, year: i32, month: u32) -> Option<NaiveDate> {
        let first_next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        Some(self.previous_working_day(first_next))
    }

    /// Working days in the half-open interval (after, upto]; 0 when upto <= after.
    pub fn working_days_between(&self, after: NaiveDate, upto: NaiveDate) -> i64 {
        if upto <= after {
            return 0;
        }
        let weekdays = weekdays_through(upto) - weekdays_through(after);
        let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Included(upto));
        let off = self.weekday_holidays.range(range).count() as i64;
        let worked = self.weekend_workdays.range(range).count() as i64;
        weekdays - off + worked
    }

    /// The latest ladder position reached on `today`, counted in working days from the
    /// effective due date `due`: 0 on the due date, +1 from the first working day after it,
    /// -1 from the last working day before it. A stage is reached at 00:00 on its day, so on
    /// a day off the position is that of the last stage day before it.
    pub fn position(&self, due: NaiveDate, today: NaiveDate) -> i32 {
        let n = if today >= due {
            self.working_days_between(due, today)
        } else {
            // Working days in [today, due), plus today's own stage day if today is a day off.
            let ahead = self.working_days_between(day_before(today), day_before(due));
            let off_today = i64::from(!self.is_working_day(today));
            -(ahead + off_today)
        };
        i32::try_from(n).unwrap_or(if n > 0 { i32::MAX } else { i32::MIN })
    }
}

fn day_before(d: NaiveDate) -> NaiveDate {
    d.checked_sub_days(Days::new(1)).unwrap_or(d)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Monday–Friday days from 0001-01-01 (a Monday) through `date`, inclusive.
fn weekdays_through(date: NaiveDate) -> i64 {
    let n = i64::from(date.num_days_from_ce());
    (n / 7) * 5 + (n % 7).min(5)
}

fn parse_file(name: &str, text: &str) -> Result<CalendarFile, CalendarError> {
    let invalid = |reason: String| CalendarError::Invalid { file: name.to_string(), reason };
    let file: CalendarFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if let Some(day) = file.days.iter().find(|d| d.date.year() != file.year) {
        return Err(invalid(format!("day {} is not in the file's year {}", day.date, file.year)));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn shipped() -> Calendar {
        Calendar::load(None).unwrap()
    }

    #[test]
    fn weekday_count_matches_a_day_by_day_walk() {
        let cal = Calendar::weekdays_only();
        let start = d("2021-12-20");
        for len in 0..60 {
            let end = start + Days::new(len);
            let walked = (1..=len).map(|i| start + Days::new(i)).filter(|x| !is_weekend(*x)).count() as i64;
            assert_eq!(cal.working_days_between(start, end), walked, "{end}");
        }
    }

    #[test]
    fn national_day_2022_and_the_may_2022_compensatory_days_are_days_off() {
        let cal = shipped();
        for day in ["2022-09-01", "2022-09-02", "2022-05-02", "2022-05-03"] {
            assert!(!cal.is_working_day(d(day)), "{day} should be a day off");
        }
        assert!(cal.is_working_day(d("2022-09-05")));
        assert_eq!(cal.next_working_day(d("2022-08-31")), d("2022-09-05"));
    }

    #[test]
    fn saturday_4_may_2024_is_a_working_day() {
        let cal = shipped();
        assert!(cal.is_working_day(d("2024-05-04")));
        assert!(!cal.is_working_day(d("2024-05-11")));
    }

    #[test]
    fn a_due_date_on_a_day_off_rolls_forward_unless_configured_not_to() {
        let cal = shipped();
        assert_eq!(cal.effective_due(d("2022-09-02"), true), d("2022-09-05"));
        assert_eq!(cal.effective_due(d("2022-09-10"), true), d("2022-09-12"));
        assert_eq!(cal.effective_due(d("2022-09-10"), false), d("2022-09-10"));
    }

    #[test]
    fn positions_count_working_days_and_hold_over_days_off() {
        let cal = shipped();
        let due = d("2022-08-31"); // Wednesday before the National Day break
        assert_eq!(cal.position(due, d("2022-08-31")), 0);
        assert_eq!(cal.position(due, d("2022-09-01")), 0); // holiday: still T0
        assert_eq!(cal.position(due, d("2022-09-04")), 0); // Sunday
        assert_eq!(cal.position(due, d("2022-09-05")), 1);
        assert_eq!(cal.position(due, d("2022-08-30")), -1);
        assert_eq!(cal.position(due, d("2022-08-26")), -3); // Friday: T-3
        assert_eq!(cal.position(due, d("2022-08-28")), -3); // Sunday after it
        let due = d("2022-09-08");
        assert_eq!(cal.position(due, d("2022-09-05")), -3);
        assert_eq!(cal.position(due, d("2022-09-02")), -4); // holiday after Wed 31/8 (T-4)
    }

    #[test]
    fn end_of_month_is_its_last_working_day() {
        let cal = shipped();
        assert_eq!(cal.last_working_day_of_month(2022, 9), Some(d("2022-09-30")));
        assert_eq!(cal.last_working_day_of_month(2022, 7), Some(d("2022-07-29")));
    }

    #[test]
    fn shipped_files_cover_2022_to_2027_with_2027_provisional() {
        let cal = shipped();
        let years: Vec<_> = cal.years().map(|y| (y.year, y.provisional)).collect();
        assert_eq!(
            years,
            vec![(2022, false), (2023, false), (2024, false), (2025, false), (2026, false), (2027, true)]
        );
        assert!(cal.years().all(|y| !y.source.is_empty()));
        assert_eq!(cal.missing_years(d("2027-12-01")), vec![2028]);
        assert!(cal.missing_years(d("2026-11-30")).is_empty());
    }
}
