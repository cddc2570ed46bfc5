//! Web ← rules: who may give which answer on a directive, and when one no longer applies —
//! pure functions of the person, the directive, its unit, its open requests and the date.
//! The assignee reports; the unit head, the block leader or the chief decides, never on
//! their own request.

use crate::answer::{AnswerKind, OpenRequests};
use crate::domain::{Directive, Person, Role, Status, Unit};
use chrono::NaiveDate;

/// How the visitor stands to the directive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    pub assignee: bool,
    /// Head of the directive's unit, its block leader, or the chief.
    pub oversees: bool,
}

impl Standing {
    pub fn of(person: &Person, directive: &Directive, unit: Option<&Unit>) -> Standing {
        // Someone who no longer works here keeps no link.
        if !person.active {
            return Standing::default();
        }
        let code = Some(person.code.as_str());
        let head = unit.and_then(|u| u.head.as_deref()) == code;
        let leader = directive.leader.as_deref() == code || unit.and_then(|u| u.leader.as_deref()) == code;
        Standing {
            assignee: directive.assignee.as_deref() == code,
            oversees: head || leader || person.role == Role::Chief,
        }
    }

    /// Whether the page is theirs to see at all.
    pub fn related(self) -> bool {
        self.assignee || self.oversees
    }
}

/// Why an answer is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 403: the visitor's standing does not allow it.
    Forbidden(String),
    /// 409: it no longer applies.
    Conflict(String),
}

/// Whether `person` may give `kind` now (`today`: the agency's date on the wall clock).
pub fn check(
    kind: AnswerKind,
    person: &str,
    standing: Standing,
    directive: &Directive,
    open: &OpenRequests,
    today: NaiveDate,
) -> Result<(), Denied> {
    if kind.by_assignee() && !standing.assignee {
        return Err(Denied::Forbidden(format!("only the assignee may {}", verb(kind))));
    }
    if !kind.by_assignee() {
        if !standing.oversees {
            return Err(Denied::Forbidden(format!(
                "only the unit head, the block leader or the chief may {}",
                verb(kind)
            )));
        }
        let request = if kind == AnswerKind::Confirm { &open.completion } else { &open.extension };
        if request.as_ref().is_some_and(|r| r.person == person) {
            return Err(Denied::Forbidden("nobody decides on their own request".into()));
        }
    }
    if !matches!(directive.status, Status::Open | Status::InProgress) {
        return Err(Denied::Conflict(format!("the directive is {}: nothing more can be answered", directive.status)));
    }
    match kind {
        AnswerKind::Done if open.completion.is_some() => {
            Err(Denied::Conflict("a completion is already reported and awaits confirmation".into()))
        }
        AnswerKind::Extend if open.extension.is_some() => {
            Err(Denied::Conflict("an extension is already asked and awaits a decision".into()))
        }
        AnswerKind::Explain if directive.due_on.is_none_or(|due| today <= due) => {
            Err(Denied::Conflict("the directive is not overdue: there is no delay to explain".into()))
        }
        AnswerKind::Confirm if open.completion.is_none() => {
            Err(Denied::Conflict("nobody has reported a completion to confirm".into()))
        }
        AnswerKind::Decide if open.extension.is_none() => {
            Err(Denied::Conflict("no extension request is waiting for a decision".into()))
        }
        _ => Ok(()),
    }
}

/// The answers `person` may give now, for the page and the JSON `actions`.
pub fn available(
    person: &str,
    standing: Standing,
    directive: &Directive,
    open: &OpenRequests,
    today: NaiveDate,
) -> Vec<AnswerKind> {
    AnswerKind::ALL.into_iter().filter(|k| check(*k, person, standing, directive, open, today).is_ok()).collect()
}

fn verb(kind: AnswerKind) -> &'static str {
    match kind {
        AnswerKind::Progress => "report progress",
        AnswerKind::Done => "report a completion",
        AnswerKind::Explain => "explain a delay",
        AnswerKind::Extend => "ask for an extension",
        AnswerKind::Confirm => "confirm a completion",
        AnswerKind::Decide => "decide on an extension",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Answer;
    use crate::domain::{DirectiveKind, Reach};

    fn directive(due: &str) -> Directive {
        Directive {
            code: "NV-01".into(),
            kind: DirectiveKind::Task,
            title: "Kiểm tra".into(),
            source: String::new(),
            unit: "NV1".into(),
            assignee: Some("cv".into()),
            leader: None,
            assigned_on: None,
            due_on: Some(due.parse().unwrap()),
            status: Status::InProgress,
            completed_on: None,
            closed_on: None,
            result: None,
            confidential: false,
        }
    }

    fn request(kind: AnswerKind, person: &str) -> Answer {
        Answer::new("1".into(), "NV-01", person, kind, 0, "")
    }

    fn person(code: &str, role: Role) -> Person {
        Person {
            code: code.into(),
            name: code.into(),
            title: String::new(),
            email: format!("{code}@x.vn"),
            unit: "NV1".into(),
            role,
            active: true,
            reach: Reach::default(),
        }
    }

    #[test]
    fn the_assignee_reports_and_the_head_decides_never_the_other_way() {
        let unit = Unit { code: "NV1".into(), name: "NV1".into(), head: Some("tp".into()), leader: Some("pct".into()) };
        let d = directive("2022-09-05");
        let today: NaiveDate = "2022-09-07".parse().unwrap();
        let officer = Standing::of(&person("cv", Role::Officer), &d, Some(&unit));
        let head = Standing::of(&person("tp", Role::Head), &d, Some(&unit));
        let stranger = Standing::of(&person("other", Role::Officer), &d, Some(&unit));
        assert!(!stranger.related());
        let mut gone = person("cv", Role::Officer);
        gone.active = false;
        assert!(!Standing::of(&gone, &d, Some(&unit)).related(), "an inactive person's link opens nothing");
        let none = OpenRequests::default();
        assert_eq!(
            available("cv", officer, &d, &none, today),
            [AnswerKind::Progress, AnswerKind::Done, AnswerKind::Explain, AnswerKind::Extend]
        );
        assert!(available("tp", head, &d, &none, today).is_empty(), "nothing to decide yet");
        let asked = OpenRequests { completion: Some(request(AnswerKind::Done, "cv")), extension: None };
        assert_eq!(available("tp", head, &d, &asked, today), [AnswerKind::Confirm]);
        assert!(matches!(check(AnswerKind::Confirm, "cv", officer, &d, &asked, today), Err(Denied::Forbidden(_))));
        assert!(matches!(check(AnswerKind::Decide, "tp", head, &d, &asked, today), Err(Denied::Conflict(_))));
        // Not overdue yet: no delay to explain.
        let early: NaiveDate = "2022-09-05".parse().unwrap();
        assert!(matches!(check(AnswerKind::Explain, "cv", officer, &d, &none, early), Err(Denied::Conflict(_))));
    }

    #[test]
    fn a_head_who_is_the_assignee_cannot_approve_their_own_extension() {
        let unit = Unit { code: "NV1".into(), name: "NV1".into(), head: Some("cv".into()), leader: Some("pct".into()) };
        let d = directive("2022-09-05");
        let today: NaiveDate = "2022-09-01".parse().unwrap();
        let both = Standing::of(&person("cv", Role::Head), &d, Some(&unit));
        let leader = Standing::of(&person("pct", Role::Leader), &d, Some(&unit));
        let asked = OpenRequests { completion: None, extension: Some(request(AnswerKind::Extend, "cv")) };
        assert!(matches!(check(AnswerKind::Decide, "cv", both, &d, &asked, today), Err(Denied::Forbidden(_))));
        assert_eq!(check(AnswerKind::Decide, "pct", leader, &d, &asked, today), Ok(()));
    }
}
