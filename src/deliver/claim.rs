//! Deliver ← the outbox: what a tick's own plan did not take — notices planned outside the
//! send window, digests and reports, a batch a replica got to first — is claimed in one write
//! transaction, re-checked against its directive as it stands now (stale notices are
//! superseded with the reason, not sent), built into messages and recorded with them before
//! anything is sent.

use super::{Deliverer, DeliveryStats, Phases};
use crate::calendar::Calendar;
use crate::domain::{Directive, Ladder, MessageKind, Notice, NoticeKind, Status, Superseded};
use crate::plan::{plan_bounces, plan_directive, Snapshot};
use crate::report::{
    audience_of, deferred_to_digest, render_report, report_still_owed, report_window, week_extensions, ReportInput,
};
use crate::store::{ClaimedMessage, NewMessage, StoreError};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use std::collections::{HashMap, HashSet};

impl Deliverer<'_> {
    /// Claims pending notices, supersedes the stale ones, records one message per person and
    /// channel (or per notice when grouping is off) — a digest or report always its own
    /// message — leased to this process.
    pub(super) async fn claim_and_record(
        &self,
        snapshot: &Snapshot,
        calendar: &Calendar,
        now: DateTime<Tz>,
        stats: &mut DeliveryStats,
        phases: &mut Phases,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let started = crate::clock::monotonic();
        let claim = self.store.claim_notices(self.config.delivery.batch_size).await?;
        phases.claim += started.elapsed();
        if claim.notices.is_empty() {
            return Ok(Vec::new());
        }
        let (reports, reminders): (Vec<&Notice>, Vec<&Notice>) =
            claim.notices.iter().partition(|n| n.kind.message_kind() != MessageKind::Reminder);
        let started = crate::clock::monotonic();
        let round = Round { snapshot, calendar, now };
        let mut out = Rechecked::default();
        if !reminders.is_empty() {
            self.reminder_messages(&round, &reminders, &mut out).await?;
        }
        if !reports.is_empty() {
            self.report_messages(&round, &reports, &mut out).await?;
        }
        let Rechecked { messages, superseded } = out;
        phases.prepare += started.elapsed();
        let started = crate::clock::monotonic();
        let lease_until = self.lease_until();
        claim.commit(&messages, &superseded, self.owner, lease_until, now.timestamp()).await?;
        phases.commit += started.elapsed();
        stats.superseded += superseded.len();
        stats.messages_created += messages.len();
        self.count_superseded(&superseded);
        Ok(self.sendable(messages, stats))
    }

    /// Re-plans each claimed reminder's directive: still owed → grouped into a message;
    /// otherwise superseded with the reason.
    async fn reminder_messages(
        &self,
        round: &Round<'_>,
        notices: &[&Notice],
        out: &mut Rechecked,
    ) -> Result<(), StoreError> {
        let Round { snapshot, calendar, now } = *round;
        let codes: Vec<String> =
            notices.iter().filter_map(|n| n.directive.clone()).collect::<HashSet<_>>().into_iter().collect();
        let directives: HashMap<String, Directive> =
            self.store.directives_by_code(&codes).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
        let today = now.date_naive();
        let policy = &self.config.policy;
        let mut owed: HashMap<&str, (Vec<Notice>, Option<NaiveDate>)> = HashMap::new();
        for (code, directive) in &directives {
            let mut out = Vec::new();
            plan_directive(snapshot, policy, calendar, today, directive, &mut out);
            let due = policy.due_date(directive.kind, directive.due_on, directive.assigned_on, calendar);
            owed.insert(code.as_str(), (out, due.map(|due| calendar.effective_due(due, policy.roll_forward))));
        }
        let bounces: HashSet<String> =
            plan_bounces(snapshot).iter().map(|n| n.key.without_channel().to_string()).collect();
        let mut kept = Vec::with_capacity(notices.len());
        for notice in notices {
            let verdict = match notice.directive.as_deref() {
                Some(code) => still_owed(notice, directives.get(code), owed.get(code), snapshot)
                    .and_then(|()| self.not_in_todays_digest(snapshot, now, notice, directives.get(code))),
                None if bounces.contains(notice.key.without_channel()) => Ok(()),
                None => Err("the address was corrected or the person left".into()),
            };
            match verdict {
                Ok(()) => kept.push(*notice),
                Err(reason) => out.superseded.push(Superseded::of(notice, reason)),
            }
        }
        let by_code: HashMap<&str, &Directive> = directives.iter().map(|(code, d)| (code.as_str(), d)).collect();
        let (built, failed) = self.builder.reminders(snapshot, now, &kept, &by_code);
        out.messages.extend(built);
        out.superseded.extend(failed);
        Ok(())
    }

    /// Digests and monthly reports: each still owed (same week or month, recipient still a
    /// leader or chief) becomes its own message, built from the store's current directives.
    async fn report_messages(
        &self,
        round: &Round<'_>,
        notices: &[&Notice],
        out: &mut Rechecked,
    ) -> Result<(), StoreError> {
        let Round { snapshot, calendar, now } = *round;
        let today = now.date_naive();
        let (since, due_from, due_until) = report_window(today);
        let directives = self.store.report_directives(since, due_from, due_until).await?;
        let extensions = week_extensions(self.store, snapshot, today, now.timezone()).await?;
        let input = ReportInput {
            snapshot,
            directives: &directives,
            extensions: &extensions,
            calendar,
            policy: &self.config.policy,
            today,
        };
        for notice in notices {
            let verdict =
                report_still_owed(&notice.stage, today, calendar, &self.config.report_schedule).and_then(|()| {
                    let person = snapshot.people.get(&notice.recipient).filter(|p| p.active);
                    let audience = audience_of(snapshot, &notice.recipient);
                    person.zip(audience).ok_or_else(|| "recipient no longer leads a block".to_string())
                });
            let (person, audience) = match verdict {
                Ok(found) => found,
                Err(reason) => {
                    out.superseded.push(Superseded::of(notice, reason));
                    continue;
                }
            };
            let kind = notice.kind.message_kind();
            out.messages.push(self.builder.build(kind, person, notice.channel, &[notice], now, |outlet, to| {
                let rendered = render_report(&self.builder.outlets.digests, &input, person, &audience, &notice.stage)
                    .map_err(|e| format!("cannot be rendered: {e}"))?;
                outlet.report(rendered, to)
            }));
        }
        Ok(())
    }
}

impl Deliverer<'_> {
    /// `Err` with the reason when `notice` is left to today's weekly digest of its recipient.
    fn not_in_todays_digest(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Tz>,
        notice: &Notice,
        directive: Option<&Directive>,
    ) -> Result<(), String> {
        let schedule = &self.config.report_schedule;
        match directive.and_then(|d| deferred_to_digest(snapshot, schedule, now, notice, &d.unit)) {
            Some(week) => Err(format!("listed in the weekly digest {week}")),
            None => Ok(()),
        }
    }
}

/// What a claimed batch is re-checked against: the round's snapshot, calendar and instant.
#[derive(Clone, Copy)]
struct Round<'a> {
    snapshot: &'a Snapshot,
    calendar: &'a Calendar,
    now: DateTime<Tz>,
}

/// What a claimed batch becomes: messages to record, and the notices no longer owed.
#[derive(Default)]
struct Rechecked {
    messages: Vec<NewMessage>,
    superseded: Vec<Superseded>,
}

/// A queued notice is still owed when re-planning its directive now yields its very key;
/// otherwise it is stale, and the reason names what changed.
fn still_owed(
    notice: &Notice,
    directive: Option<&Directive>,
    owed: Option<&(Vec<Notice>, Option<NaiveDate>)>,
    snapshot: &Snapshot,
) -> Result<(), String> {
    let Some(directive) = directive else {
        return Err("directive no longer exists".into());
    };
    // Compared without the channel: a copy sent on chat after an email bounce is owed as
    // long as the email notice would be.
    let (owed, effective_due) = owed.map_or((&[][..], None), |(o, due)| (o.as_slice(), *due));
    if owed.iter().any(|n| n.key.without_channel() == notice.key.without_channel()) {
        return Ok(());
    }
    Err(stale_reason(notice, directive, effective_due, owed, snapshot))
}

/// What changed since `notice` was planned, as the outbox records it.
fn stale_reason(
    notice: &Notice,
    directive: &Directive,
    effective_due: Option<NaiveDate>,
    owed: &[Notice],
    snapshot: &Snapshot,
) -> String {
    match directive.status {
        Status::Completed => return "directive completed".into(),
        Status::Cancelled => return "directive cancelled".into(),
        Status::Closed if notice.kind != NoticeKind::ClosedIncomplete => return "directive closed".into(),
        _ => {}
    }
    if snapshot.people.get(&notice.recipient).is_none_or(|p| !p.active) {
        return "recipient inactive".into();
    }
    let same_ladder = |n: &&Notice| n.ladder == notice.ladder && n.recipient == notice.recipient;
    let date = |d: Option<NaiveDate>| d.map_or_else(|| "none".to_string(), |d| d.to_string());
    match owed.iter().find(same_ladder) {
        Some(later) if later.effective_due == notice.effective_due => {
            return format!("a later stage was reached: {} → {}", notice.stage, later.stage);
        }
        Some(later) => {
            return format!("re-dated: due {} → {}", date(notice.effective_due), date(later.effective_due));
        }
        None => {}
    }
    if notice.effective_due.is_some() && notice.effective_due != effective_due {
        return format!("re-dated: due {} → {}", date(notice.effective_due), date(effective_due));
    }
    if owed.iter().any(|n| n.ladder == notice.ladder) || notice.ladder == Ladder::Assignee {
        return "reassigned: someone else receives it now".into();
    }
    "no longer owed".into()
}
