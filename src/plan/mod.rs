//! The planner: given the store's snapshot, the policy, the calendar and an instant `now`,
//! which notices are owed? Pure — no I/O, no clock — so `plan --at` and every test can ask
//! about any instant. Plans from state, not events: it asks which thresholds each directive
//! has crossed, and emits only the latest stage of each ladder (catch-up never bursts).

pub mod policy;

use crate::calendar::Calendar;
use crate::domain::{
    Bounce, Channel, Directive, Ladder, MissingField, Notice, NoticeKey, NoticeKind, Person, Role, Stage, Status, Unit,
};
use crate::plan::policy::Policy;
use chrono::{DateTime, Days, NaiveDate};
use chrono_tz::Tz;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

/// What the planner sees: every unit and person, and the directives the store selected as
/// possibly owing something (near or past their deadline, recently closed, or incomplete).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub units: HashMap<String, Unit>,
    pub people: HashMap<String, Person>,
    pub directives: Vec<Directive>,
    /// Addresses that rejected mail permanently.
    pub bounces: Vec<Bounce>,
}

impl Snapshot {
    pub fn new(units: Vec<Unit>, people: Vec<Person>, directives: Vec<Directive>) -> Snapshot {
        Snapshot {
            units: units.into_iter().map(|u| (u.code.clone(), u)).collect(),
            people: people.into_iter().map(|p| (p.code.clone(), p)).collect(),
            directives,
            bounces: Vec::new(),
        }
    }

    /// Active chiefs, in code order so plans are deterministic.
    pub fn chiefs(&self) -> Vec<&Person> {
        let mut chiefs: Vec<&Person> = self.people.values().filter(|p| p.role == Role::Chief && p.active).collect();
        chiefs.sort_by(|a, b| a.code.cmp(&b.code));
        chiefs
    }

    /// Who actually receives what is meant for `code`: the person if active; otherwise the
    /// head of their unit; otherwise that unit's block leader. `None` when nobody active is
    /// left to tell.
    pub fn stand_in(&self, code: &str) -> Option<&Person> {
        let person = self.people.get(code)?;
        if person.active {
            return Some(person);
        }
        let unit = self.units.get(&person.unit)?;
        [unit.head.as_deref(), unit.leader.as_deref()]
            .into_iter()
            .flatten()
            .filter(|c| *c != code)
            .filter_map(|c| self.people.get(c))
            .find(|p| p.active)
    }

    pub fn unit_head(&self, unit: &str) -> Option<&Person> {
        self.stand_in(self.units.get(unit)?.head.as_deref()?)
    }

    /// The directive's block leader: its own `leader`, else its unit's.
    pub fn block_leader(&self, directive: &Directive) -> Option<&Person> {
        let code = directive.leader.as_deref().or_else(|| self.units.get(&directive.unit)?.leader.as_deref())?;
        self.stand_in(code)
    }

    /// Who stands on the assignee ladder: the assignee (or their stand-in), else the unit head.
    pub fn assignee_recipient(&self, directive: &Directive) -> Option<&Person> {
        match directive.assignee.as_deref() {
            Some(code) => self.stand_in(code),
            None => self.unit_head(&directive.unit),
        }
    }
}

/// Everything owed at `now`, one notice per ladder, deduplicated by key, in a stable order.
pub fn plan(snapshot: &Snapshot, policy: &Policy, calendar: &Calendar, now: DateTime<Tz>) -> Vec<Notice> {
    let planning = Planning::new(snapshot, policy, calendar, now.date_naive());
    let mut notices = Vec::new();
    for directive in &snapshot.directives {
        let before = notices.len();
        // One directive whose data trips the planner is reported and skipped; the round
        // goes on for every other.
        let planned =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| planning.directive(directive, &mut notices)));
        if planned.is_err() {
            notices.truncate(before);
            tracing::error!(directive = %directive.code, "this directive cannot be planned; skipped in this round");
        }
    }
    notices.extend(plan_bounces(snapshot));
    // Keep the first notice of each key; borrowing the keys avoids cloning every one.
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(notices.len());
        notices.iter().map(|n| seen.insert(n.key.as_str())).collect()
    };
    let mut keep = keep.into_iter();
    notices.retain(|_| keep.next().unwrap_or(true));
    notices
}

/// For each address that bounced and is still the person's current address, their unit
/// head is told once (keyed per person and address): the address must be corrected.
pub fn plan_bounces(snapshot: &Snapshot) -> Vec<Notice> {
    let mut out = Vec::new();
    for bounce in &snapshot.bounces {
        let Some(person) = snapshot.people.get(&bounce.person).filter(|p| p.active) else { continue };
        if person.address_on(bounce.channel).as_deref() != Some(bounce.address.as_str()) {
            continue;
        }
        let Some(head) = snapshot.unit_head(&person.unit).filter(|h| h.code != person.code) else { continue };
        let kind = NoticeKind::Bounce;
        let notice = Notice {
            kind,
            key: NoticeKey::new(kind, &[&person.code, &head.code, &bounce.address], Channel::Email),
            directive: None,
            recipient: head.code.clone(),
            address: head.email.clone(),
            channel: Channel::Email,
            stage: Stage::Bounce(person.code.clone()),
            ladder: Ladder::Bounce,
            effective_due: None,
            days_overdue: 0,
        };
        on_each_channel(snapshot, notice, &mut out);
    }
    out
}

/// The notices one directive owes on `today` (used by the planner, and by delivery to
/// re-check that a queued notice is still owed).
pub fn plan_directive(
    snapshot: &Snapshot,
    policy: &Policy,
    calendar: &Calendar,
    today: NaiveDate,
    directive: &Directive,
    out: &mut Vec<Notice>,
) {
    Planning::new(snapshot, policy, calendar, today).directive(directive, out);
}

/// What every directive of one plan is planned against: the snapshot, the policy, the
/// calendar and the day, and the chiefs, sorted on first need and shared by all.
struct Planning<'s> {
    snapshot: &'s Snapshot,
    policy: &'s Policy,
    calendar: &'s Calendar,
    today: NaiveDate,
    chiefs: OnceCell<Vec<&'s Person>>,
}

impl<'s> Planning<'s> {
    fn new(snapshot: &'s Snapshot, policy: &'s Policy, calendar: &'s Calendar, today: NaiveDate) -> Planning<'s> {
        Planning { snapshot, policy, calendar, today, chiefs: OnceCell::new() }
    }

    /// The notices `directive` owes, on every channel of each recipient.
    fn directive(&self, directive: &Directive, out: &mut Vec<Notice>) {
        let start = out.len();
        self.email(directive, out);
        // Most people are reached by email alone, where the copy below would rebuild each
        // notice unchanged: skip it for them.
        if out[start..].iter().all(|n| email_only(self.snapshot, n)) {
            return;
        }
        let planned: Vec<Notice> = out.drain(start..).collect();
        for notice in planned {
            on_each_channel(self.snapshot, notice, out);
        }
    }
}

/// True when [`on_each_channel`] would give back exactly this notice: its recipient is
/// unknown (kept as is), or is reached by email alone at the address it already carries.
fn email_only(snapshot: &Snapshot, notice: &Notice) -> bool {
    let Some(person) = snapshot.people.get(&notice.recipient) else {
        return true;
    };
    matches!(person.reach.channels.as_slice(), [] | [Channel::Email])
        && !person.email.is_empty()
        && notice.channel == Channel::Email
        && notice.address == person.email
        && notice.key.as_str().ends_with(":email")
}

/// Copies a notice (planned for email) onto every channel its recipient receives on; each
/// copy has its own key, so one failing channel never blocks or duplicates another.
fn on_each_channel(snapshot: &Snapshot, notice: Notice, out: &mut Vec<Notice>) {
    let Some(person) = snapshot.people.get(&notice.recipient) else {
        out.push(notice);
        return;
    };
    for (channel, address) in person.routes() {
        out.push(notice.on_channel(channel, address));
    }
}

impl Planning<'_> {
    /// The notices `directive` owes by email (copied onto other channels by the caller).
    fn email(&self, directive: &Directive, out: &mut Vec<Notice>) {
        let Planning { snapshot, policy, calendar, today, .. } = *self;
        match directive.status {
            Status::Completed | Status::Cancelled => {}
            Status::Closed => closed_alarm(snapshot, policy, today, directive, out),
            Status::Open | Status::InProgress => {
                let due = policy.due_date(directive.kind, directive.due_on, directive.assigned_on, calendar);
                if directive.assignee.is_none() {
                    missing_field(snapshot, directive, Ladder::MissingAssignee, MissingField::Assignee, out);
                }
                match due {
                    None => missing_field(snapshot, directive, Ladder::MissingDueDate, MissingField::DueOn, out),
                    Some(due) => {
                        let effective = calendar.effective_due(due, policy.roll_forward);
                        let position = calendar.position(effective, today);
                        self.deadline_ladders(directive, effective, position, out);
                    }
                }
            }
        }
    }

    /// The assignee's stage and every escalation rung reached at `position`.
    fn deadline_ladders(&self, directive: &Directive, effective: NaiveDate, position: i32, out: &mut Vec<Notice>) {
        let Planning { snapshot, policy, .. } = *self;
        if let (Some((kind, stage)), Some(person)) =
            (assignee_stage(policy, position), snapshot.assignee_recipient(directive))
        {
            out.push(ladder_notice(kind, Ladder::Assignee, directive, person, effective, stage, position));
        }
        let rungs = [
            (Ladder::EscalateHead, policy.escalate_head_after),
            (Ladder::EscalateLeader, policy.escalate_leader_after),
            (Ladder::EscalateChief, policy.escalate_chief_after),
        ];
        for (ladder, after) in rungs {
            let Ok(after) = i32::try_from(after) else {
                continue;
            };
            if after == 0 || position < after {
                continue;
            }
            // Recipients are looked up only for rungs reached: most directives reach none.
            let recipients: Vec<&Person> = match ladder {
                Ladder::EscalateHead => snapshot.unit_head(&directive.unit).into_iter().collect(),
                Ladder::EscalateLeader => snapshot.block_leader(directive).into_iter().collect(),
                _ => self.chiefs.get_or_init(|| snapshot.chiefs()).clone(),
            };
            for person in recipients {
                out.push(ladder_notice(
                    NoticeKind::Escalation,
                    ladder,
                    directive,
                    person,
                    effective,
                    Stage::Day(after),
                    position,
                ));
            }
        }
    }
}

/// The latest stage of the assignee ladder (upcoming → due_today → overdue) reached at
/// `position`, if any.
pub fn assignee_stage(policy: &Policy, position: i32) -> Option<(NoticeKind, Stage)> {
    let first = i32::try_from(policy.overdue_first).ok()?;
    if position >= first {
        let every = i32::try_from(policy.overdue_every).unwrap_or(0);
        let stage = if every > 0 { first + (position - first) / every * every } else { first };
        return Some((NoticeKind::Overdue, Stage::Day(stage)));
    }
    if position >= 0 && policy.due_today {
        return Some((NoticeKind::DueToday, Stage::Day(0)));
    }
    policy
        .upcoming_days
        .iter()
        .filter_map(|d| i32::try_from(*d).ok())
        .map(|d| -d)
        .filter(|stage| *stage <= position)
        .max()
        .map(|stage| (NoticeKind::Upcoming, Stage::Day(stage)))
}

fn ladder_notice(
    kind: NoticeKind,
    ladder: Ladder,
    directive: &Directive,
    person: &Person,
    effective: NaiveDate,
    stage: Stage,
    position: i32,
) -> Notice {
    let due = effective.to_string();
    Notice {
        kind,
        key: NoticeKey::new(kind, &[&directive.code, &person.code, &due, &stage.to_string()], Channel::Email),
        directive: Some(directive.code.clone()),
        recipient: person.code.clone(),
        address: person.email.clone(),
        channel: Channel::Email,
        stage,
        ladder,
        effective_due: Some(effective),
        days_overdue: position.max(0),
    }
}

fn closed_alarm(snapshot: &Snapshot, policy: &Policy, today: NaiveDate, directive: &Directive, out: &mut Vec<Notice>) {
    let Some(closed_on) = directive.closed_on else {
        return;
    };
    let horizon = today.checked_sub_days(Days::new(u64::from(policy.closed_lookback_days)));
    if horizon.is_some_and(|h| closed_on < h) {
        return;
    }
    let recipients =
        [snapshot.assignee_recipient(directive), snapshot.unit_head(&directive.unit), snapshot.block_leader(directive)];
    let mut told = HashSet::new();
    let closed = closed_on.to_string();
    for person in recipients.into_iter().flatten() {
        if !told.insert(person.code.as_str()) {
            continue;
        }
        let kind = NoticeKind::ClosedIncomplete;
        out.push(Notice {
            kind,
            key: NoticeKey::new(kind, &[&directive.code, &person.code, &closed], Channel::Email),
            directive: Some(directive.code.clone()),
            recipient: person.code.clone(),
            address: person.email.clone(),
            channel: Channel::Email,
            stage: Stage::Closed,
            ladder: Ladder::Closed,
            effective_due: directive.due_on,
            days_overdue: 0,
        });
    }
}

fn missing_field(
    snapshot: &Snapshot,
    directive: &Directive,
    ladder: Ladder,
    field: MissingField,
    out: &mut Vec<Notice>,
) {
    let Some(head) = snapshot.unit_head(&directive.unit) else {
        return;
    };
    let kind = NoticeKind::Unassigned;
    out.push(Notice {
        kind,
        key: NoticeKey::new(kind, &[&directive.code, &head.code, field.as_str()], Channel::Email),
        directive: Some(directive.code.clone()),
        recipient: head.code.clone(),
        address: head.email.clone(),
        channel: Channel::Email,
        stage: Stage::Missing(field),
        ladder,
        effective_due: None,
        days_overdue: 0,
    });
}
