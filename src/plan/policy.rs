//! The reminder and escalation policy (the README's "What is sent, when, to whom"), built
//! from configuration and handed to the pure planner. Every number here is configurable; defaults are the domain's.

use crate::calendar::Calendar;
use crate::domain::DirectiveKind;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Working days before the effective due date at which the assignee is told it is coming.
    pub upcoming_days: Vec<u32>,
    /// Remind the assignee on the due date itself (T0).
    pub due_today: bool,
    /// First overdue reminder, in working days after the due date (T+1).
    pub overdue_first: u32,
    /// Repeat the overdue reminder every this many working days; 0 sends it once.
    pub overdue_every: u32,
    /// Escalate to the unit head at T+n; 0 disables that rung.
    pub escalate_head_after: u32,
    /// Escalate to the block leader at T+n; 0 disables it.
    pub escalate_leader_after: u32,
    /// Escalate to the chief at T+n; 0 disables it.
    pub escalate_chief_after: u32,
    /// Items closed without completion longer ago than this raise no alarm on first sight.
    pub closed_lookback_days: u32,
    /// A due date on a day off counts as the next working day (Civil Code art. 148).
    pub roll_forward: bool,
    /// Due dates computed from `assigned_on` where the source gives none, by kind.
    pub default_due: Vec<DefaultDueRule>,
}

/// "N (working) days after `assigned_on`" for one kind of directive, in force for
/// directives assigned on or after `effective_from` (laws change: rules are versioned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultDueRule {
    pub kind: DirectiveKind,
    pub days: u32,
    #[serde(default)]
    pub working_days: bool,
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
    #[serde(default)]
    pub note: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            upcoming_days: vec![3, 1],
            due_today: true,
            overdue_first: 1,
            overdue_every: 2,
            escalate_head_after: 1,
            escalate_leader_after: 5,
            escalate_chief_after: 10,
            closed_lookback_days: 30,
            roll_forward: true,
            default_due: Vec::new(),
        }
    }
}

impl Policy {
    /// How far ahead of today (in working days) a due date can be and still owe something:
    /// the store uses it to skip directives nobody needs to hear about yet.
    pub fn horizon_working_days(&self) -> u32 {
        self.upcoming_days.iter().copied().max().unwrap_or(0)
    }

    /// The due date to plan with: the directive's own, else the newest default rule for its
    /// kind that was in force when it was assigned.
    pub fn due_date(
        &self,
        kind: DirectiveKind,
        due_on: Option<NaiveDate>,
        assigned_on: Option<NaiveDate>,
        calendar: &Calendar,
    ) -> Option<NaiveDate> {
        if due_on.is_some() {
            return due_on;
        }
        let assigned = assigned_on?;
        let rule = self
            .default_due
            .iter()
            .filter(|r| r.kind == kind && r.effective_from.is_none_or(|f| f <= assigned))
            .max_by_key(|r| r.effective_from)?;
        Some(if rule.working_days {
            calendar.add_working_days(assigned, rule.days)
        } else {
            assigned.checked_add_days(Days::new(u64::from(rule.days)))?
        })
    }

    /// Checks the numbers make sense together; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.upcoming_days.contains(&0) {
            return Err("policy.upcoming_days: 0 is the due date itself; use policy.due_today".into());
        }
        if self.overdue_first == 0 {
            return Err("policy.overdue_first: must be at least 1 (T+1 is the first day overdue)".into());
        }
        if self.overdue_first > 10_000 || self.upcoming_days.iter().any(|d| *d > 10_000) {
            return Err("policy: stages beyond 10000 working days make no sense".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_rule_in_force_at_assignment_gives_the_default_due_date() {
        let cal = Calendar::weekdays_only();
        let mut policy = Policy::default();
        let rule = |days, from: Option<&str>| DefaultDueRule {
            kind: DirectiveKind::Petition,
            days,
            working_days: true,
            effective_from: from.map(|s| s.parse().unwrap()),
            note: String::new(),
        };
        policy.default_due = vec![rule(10, None), rule(7, Some("2026-07-01"))];
        let before = "2026-06-01".parse().unwrap(); // Monday
        let after = "2026-07-06".parse().unwrap(); // Monday
        assert_eq!(
            policy.due_date(DirectiveKind::Petition, None, Some(before), &cal),
            Some("2026-06-15".parse().unwrap())
        );
        assert_eq!(
            policy.due_date(DirectiveKind::Petition, None, Some(after), &cal),
            Some("2026-07-15".parse().unwrap())
        );
        assert_eq!(policy.due_date(DirectiveKind::Task, None, Some(after), &cal), None);
    }
}
