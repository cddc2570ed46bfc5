//! Answers ← people: what an officer or a head said about a directive through their link
//! (progress, a completion with its result, the cause of a delay, an extension request, and
//! the decisions on the last two), as typed values; and the open requests of a directive,
//! read from its answers in order. The web side records them; planning and reports read them.

use chrono::NaiveDate;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// What an answer does; its word is the API path (`POST /r/{token}/{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    Progress,
    Done,
    Explain,
    Extend,
    Confirm,
    Decide,
}

impl AnswerKind {
    pub const ALL: [AnswerKind; 6] = [
        AnswerKind::Progress,
        AnswerKind::Done,
        AnswerKind::Explain,
        AnswerKind::Extend,
        AnswerKind::Confirm,
        AnswerKind::Decide,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Progress => "progress",
            AnswerKind::Done => "done",
            AnswerKind::Explain => "explain",
            AnswerKind::Extend => "extend",
            AnswerKind::Confirm => "confirm",
            AnswerKind::Decide => "decide",
        }
    }

    /// Said by the assignee (the others by a head or leader deciding on them).
    pub fn by_assignee(self) -> bool {
        matches!(self, AnswerKind::Progress | AnswerKind::Done | AnswerKind::Explain | AnswerKind::Extend)
    }

    /// How the page names it.
    pub fn label(self) -> &'static str {
        match self {
            AnswerKind::Progress => "Báo cáo tiến độ",
            AnswerKind::Done => "Báo cáo hoàn thành",
            AnswerKind::Explain => "Giải trình chậm trễ",
            AnswerKind::Extend => "Đề nghị gia hạn",
            AnswerKind::Confirm => "Xác nhận hoàn thành",
            AnswerKind::Decide => "Quyết định gia hạn",
        }
    }
}

impl fmt::Display for AnswerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnswerKind {
    type Err = ();
    fn from_str(s: &str) -> Result<AnswerKind, ()> {
        AnswerKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// The cause of a delay (nguyên nhân chủ quan / khách quan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Subjective,
    Objective,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Subjective => "subjective",
            Cause::Objective => "objective",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cause::Subjective => "chủ quan",
            Cause::Objective => "khách quan",
        }
    }
}

impl FromStr for Cause {
    type Err = ();
    fn from_str(s: &str) -> Result<Cause, ()> {
        match s {
            "subjective" => Ok(Cause::Subjective),
            "objective" => Ok(Cause::Objective),
            _ => Err(()),
        }
    }
}

/// One answer as recorded: who said what about which directive, when and from where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub id: String,
    pub code: String,
    pub person: String,
    pub kind: AnswerKind,
    /// The note, result, description or reason, by kind.
    pub note: Option<String>,
    pub percent: Option<i64>,
    /// `completed_on` of a completion, `until` of an extension request.
    pub on_date: Option<NaiveDate>,
    pub cause: Option<Cause>,
    pub measures: Option<String>,
    /// A decision: accepted or refused.
    pub accept: Option<bool>,
    /// Wall-clock seconds.
    pub at: i64,
    /// The client's address.
    pub address: String,
}

impl Answer {
    /// `kind` from `person` on `code` at `at`, its fields still to fill.
    pub fn new(id: String, code: &str, person: &str, kind: AnswerKind, at: i64, address: &str) -> Answer {
        Answer {
            id,
            code: code.into(),
            person: person.into(),
            kind,
            note: None,
            percent: None,
            on_date: None,
            cause: None,
            measures: None,
            accept: None,
            at,
            address: address.into(),
        }
    }
}

/// A directive's requests still waiting for a decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenRequests {
    /// A reported completion not yet confirmed or refused.
    pub completion: Option<Answer>,
    /// An extension asked and not yet decided.
    pub extension: Option<Answer>,
}

/// The open requests after `answers` (oldest first): a decision closes the request before it.
pub fn open_requests(answers: &[Answer]) -> OpenRequests {
    let mut open = OpenRequests::default();
    for answer in answers {
        match answer.kind {
            AnswerKind::Done => open.completion = Some(answer.clone()),
            AnswerKind::Confirm => open.completion = None,
            AnswerKind::Extend => open.extension = Some(answer.clone()),
            AnswerKind::Decide => open.extension = None,
            AnswerKind::Progress | AnswerKind::Explain => {}
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(kind: AnswerKind, at: i64) -> Answer {
        Answer::new(at.to_string(), "NV-01", "cv", kind, at, "127.0.0.1")
    }

    #[test]
    fn a_decision_closes_the_request_before_it_and_a_new_request_opens_again() {
        let answers = [answer(AnswerKind::Done, 1), answer(AnswerKind::Extend, 2), answer(AnswerKind::Confirm, 3)];
        let open = open_requests(&answers);
        assert_eq!(open.completion, None);
        assert_eq!(open.extension.map(|a| a.at), Some(2));
        let again = [answer(AnswerKind::Done, 1), answer(AnswerKind::Confirm, 2), answer(AnswerKind::Done, 3)];
        assert_eq!(open_requests(&again).completion.map(|a| a.at), Some(3));
    }

    #[test]
    fn every_kind_reads_back_from_its_word() {
        for kind in AnswerKind::ALL {
            assert_eq!(kind.as_str().parse::<AnswerKind>(), Ok(kind));
        }
        assert!("approve".parse::<AnswerKind>().is_err());
    }
}
