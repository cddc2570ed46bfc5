//! Web ← view: what one person's page shows of one directive — the directive, its timeline
//! (changes, notices and their outcomes, answers, in time order) and the answers they may
//! give now — read from the store; `None` when the person has no standing on it.

use super::rules::{self, Standing};
use super::WebState;
use crate::answer::{open_requests, Answer, AnswerKind, OpenRequests};
use crate::domain::{Directive, Person, Unit};
use crate::store::{HistoryRow, NoticeEvent, StoreError};
use serde_json::{json, Value};

/// One page's content.
#[derive(Debug, Clone)]
pub struct View {
    pub directive: Directive,
    pub unit: Option<Unit>,
    pub assignee: Option<Person>,
    pub visitor: Person,
    pub open: OpenRequests,
    pub actions: Vec<AnswerKind>,
    pub timeline: Vec<Event>,
    pub timezone: chrono_tz::Tz,
}

/// One entry of the timeline.
#[derive(Debug, Clone)]
pub enum Event {
    Change(HistoryRow),
    Notice(NoticeEvent),
    Answer(Answer),
}

impl Event {
    pub fn at(&self) -> i64 {
        match self {
            Event::Change(c) => c.at,
            Event::Notice(n) => n.updated_at,
            Event::Answer(a) => a.at,
        }
    }

    fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        let when = time(self.at(), tz);
        match self {
            Event::Change(c) => json!({
                "type": "change", "at": when, "field": c.field, "old": c.old_value, "new": c.new_value,
                "origin": c.origin, "extension": c.is_extension(),
            }),
            Event::Notice(n) => json!({
                "type": "notice", "at": when, "kind": n.kind, "stage": n.stage, "recipient": n.recipient,
                "channel": n.channel, "state": n.status, "reason": n.reason, "attempts": n.attempts,
            }),
            Event::Answer(a) => json!({
                "type": "answer", "at": when, "kind": a.kind, "person": a.person, "note": a.note,
                "percent": a.percent, "date": a.on_date.map(|d| d.to_string()), "cause": a.cause,
                "measures": a.measures, "accept": a.accept,
            }),
        }
    }
}

/// The agency's date at `at` (Unix seconds).
pub fn date_at(at: i64, tz: chrono_tz::Tz) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(at, 0).map(|t| t.with_timezone(&tz).date_naive()).unwrap_or_default()
}

/// RFC 3339 in the agency's zone.
pub fn time(at: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp(at, 0).map(|t| t.with_timezone(&tz).to_rfc3339()).unwrap_or_default()
}

/// The page of `link`'s person on `link`'s directive.
pub async fn load(state: &WebState, link: &super::token::Link) -> Result<Option<View>, StoreError> {
    let store = &state.store;
    let Some(visitor) = store.person(&link.person).await? else { return Ok(None) };
    let Some(directive) = store.directives_by_code(std::slice::from_ref(&link.directive)).await?.pop() else {
        return Ok(None);
    };
    let unit = store.unit(&directive.unit).await?;
    let standing = Standing::of(&visitor, &directive, unit.as_ref());
    if !standing.related() {
        return Ok(None);
    }
    let answers = store.answers_of(&directive.code).await?;
    let open = open_requests(&answers);
    let today = date_at(crate::clock::wall_seconds(), state.timezone);
    let actions = rules::available(&visitor.code, standing, &directive, &open, today);
    let mut timeline: Vec<Event> = store.history_of(&directive.code).await?.into_iter().map(Event::Change).collect();
    timeline.extend(store.notices_of(&directive.code).await?.into_iter().map(Event::Notice));
    timeline.extend(answers.into_iter().map(Event::Answer));
    timeline.sort_by_key(Event::at);
    let assignee = match &directive.assignee {
        Some(code) => store.person(code).await?,
        None => None,
    };
    Ok(Some(View { directive, unit, assignee, visitor, open, actions, timeline, timezone: state.timezone }))
}

impl View {
    /// `{"directive": {...}, "timeline": [...], "actions": [...]}`.
    pub fn to_json(&self) -> Value {
        let mut directive = serde_json::to_value(&self.directive).unwrap_or(Value::Null);
        if let Value::Object(d) = &mut directive {
            d.insert("unit_name".into(), json!(self.unit.as_ref().map(|u| u.name.clone())));
            d.insert("assignee_name".into(), json!(self.assignee.as_ref().map(|p| p.name.clone())));
            d.insert("completion_awaiting_confirmation".into(), answer_json(self.open.completion.as_ref()));
            d.insert("extension_requested".into(), answer_json(self.open.extension.as_ref()));
        }
        json!({
            "directive": directive,
            "timeline": self.timeline.iter().map(|e| e.to_json(self.timezone)).collect::<Vec<_>>(),
            "actions": self.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        })
    }
}

fn answer_json(answer: Option<&Answer>) -> Value {
    answer.map_or(
        Value::Null,
        |a| json!({"person": a.person, "note": a.note, "date": a.on_date.map(|d| d.to_string()), "at": a.at}),
    )
}
