//! Plain data at the heart of the flow: units, people, directives, stages and notices.
//! No I/O here; every other module speaks in these types.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Generates the string mapping of a closed vocabulary (role, kind, status …) in one place,
/// so the database, the import format and `plan --json` can never spell a value differently.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable spelling used in files, the database and JSON output.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown value {other:?}; expected one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

vocabulary!(
    /// A person's place in the chain of command.
    Role { Officer => "officer", Head => "head", Leader => "leader", Chief => "chief" }
);

vocabulary!(
    /// What sort of work a directive is.
    DirectiveKind {
        Task => "task",
        Document => "document",
        Petition => "petition",
        Enforcement => "enforcement",
        Other => "other",
    }
);

vocabulary!(
    /// The stored status of a directive (derived states such as overdue are computed, not stored).
    Status {
        Open => "open",
        InProgress => "in_progress",
        Completed => "completed",
        Closed => "closed",
        Cancelled => "cancelled",
    }
);

vocabulary!(
    /// Why a notice is owed: the `kind` field of `plan --json`.
    NoticeKind {
        Upcoming => "upcoming",
        DueToday => "due_today",
        Overdue => "overdue",
        Escalation => "escalation",
        ClosedIncomplete => "closed_incomplete",
        Unassigned => "unassigned",
        Digest => "digest",
        Bounce => "bounce",
    }
);

vocabulary!(
    /// How a notice reaches its recipient.
    Channel { Email => "email", Telegram => "telegram", Webhook => "webhook" }
);

vocabulary!(
    /// A day the calendar treats specially: an official day off, or a weekend day worked.
    CalendarDayKind { Holiday => "holiday", WorkingDay => "working_day" }
);

impl Status {
    /// Open and in-progress directives are the live ones that reminders chase.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Open | Status::InProgress)
    }
}

/// A department (phòng) or the office; `head` and `leader` are person codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub head: Option<String>,
    pub leader: Option<String>,
}

/// An officer, head, block leader or chief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub code: String,
    pub name: String,
    pub title: String,
    pub email: String,
    pub unit: String,
    pub role: Role,
    pub active: bool,
    #[serde(default)]
    pub reach: Reach,
}

/// How a person is reached: on which channels (none listed means email only), and the
/// routing each chat channel needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reach {
    pub channels: Vec<Channel>,
    /// Telegram chat id the bot writes to.
    pub telegram_chat_id: Option<String>,
    /// The id the agency's webhook receiver routes by (Zalo user, phone …); default the
    /// person's code.
    pub webhook_id: Option<String>,
}

impl Person {
    /// The channels this person receives on, each with its address; email alone by default.
    /// A chat channel without its routing is skipped.
    pub fn routes(&self) -> Vec<(Channel, String)> {
        let wanted: &[Channel] = if self.reach.channels.is_empty() { &[Channel::Email] } else { &self.reach.channels };
        wanted.iter().filter_map(|c| Some((*c, self.address_on(*c)?))).collect()
    }

    /// Where this person is reached on `channel`, if they can be.
    pub fn address_on(&self, channel: Channel) -> Option<String> {
        match channel {
            Channel::Email => (!self.email.is_empty()).then(|| self.email.clone()),
            Channel::Telegram => self.reach.telegram_chat_id.clone(),
            Channel::Webhook => Some(self.reach.webhook_id.clone().unwrap_or_else(|| self.code.clone())),
        }
    }
}

/// An assigned piece of work with a deadline (nhiệm vụ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directive {
    pub code: String,
    pub kind: DirectiveKind,
    pub title: String,
    pub source: String,
    pub unit: String,
    pub assignee: Option<String>,
    pub leader: Option<String>,
    pub assigned_on: Option<NaiveDate>,
    pub due_on: Option<NaiveDate>,
    pub status: Status,
    pub completed_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub result: Option<String>,
    pub confidential: bool,
}

/// An address that rejected a message permanently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounce {
    pub person: String,
    pub address: String,
    pub channel: Channel,
    pub reason: String,
}

/// One special day in the working-day calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub kind: CalendarDayKind,
    pub note: String,
}

/// A position on a reminder ladder, in working days relative to the effective due date:
/// `T-3` is three working days before, `T0` the day itself, `T+1` the first working day after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stage(pub i32);

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("T0"),
            n if n > 0 => write!(f, "T+{n}"),
            n => write!(f, "T{n}"),
        }
    }
}

/// Which ladder a notice climbs. Each ladder owes at most one notice at a time (its latest
/// stage reached); a later stage supersedes an earlier unsent one of the same ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ladder {
    /// upcoming → due_today → overdue, to the assignee (or whoever stands in for them).
    Assignee,
    EscalateHead,
    EscalateLeader,
    EscalateChief,
    Closed,
    MissingAssignee,
    MissingDueDate,
    /// The weekly digest to a leader or the chief.
    Digest,
    /// The monthly briefing report (báo cáo giao ban tháng).
    Report,
    /// A unit head told that one of their people's addresses rejects mail.
    Bounce,
}

impl Ladder {
    pub fn as_str(self) -> &'static str {
        match self {
            Ladder::Assignee => "assignee",
            Ladder::EscalateHead => "escalate_head",
            Ladder::EscalateLeader => "escalate_leader",
            Ladder::EscalateChief => "escalate_chief",
            Ladder::Closed => "closed",
            Ladder::MissingAssignee => "missing_assignee",
            Ladder::MissingDueDate => "missing_due_date",
            Ladder::Digest => "digest",
            Ladder::Report => "report",
            Ladder::Bounce => "bounce",
        }
    }
}

impl FromStr for Ladder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Ladder::Assignee,
            Ladder::EscalateHead,
            Ladder::EscalateLeader,
            Ladder::EscalateChief,
            Ladder::Closed,
            Ladder::MissingAssignee,
            Ladder::MissingDueDate,
            Ladder::Digest,
            Ladder::Report,
            Ladder::Bounce,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
        .ok_or_else(|| format!("unknown ladder {s:?}"))
    }
}

/// The unit of planning and of record: one directive (or digest), one recipient,
/// one ladder stage, one channel. Its `key` is deterministic, so planning is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Directive code; `None` for a digest.
    pub directive: Option<String>,
    pub recipient: String,
    pub address: String,
    pub channel: Channel,
    /// `T-3`, `T0`, `T+5` …; `closed` for the closed-without-completion alarm; the missing
    /// field (`assignee`, `due_on`) for `unassigned`; the ISO week for a digest.
    pub stage: String,
    pub key: String,
    #[serde(skip)]
    pub ladder: Ladder,
    /// The effective due date the stage counts from, when there is one.
    #[serde(skip)]
    pub effective_due: Option<NaiveDate>,
    /// Working days past the effective due date at planning time (0 when not overdue);
    /// used to order a message from most to least urgent.
    #[serde(skip)]
    pub days_overdue: i32,
}

/// Builds the deterministic key of a notice: kind, the identifying parts, channel, joined by
/// `:`. Every part that, when it changes, should make a fresh notice owed (an extension
/// changes the effective due date) is in the key; nothing else is.
pub fn notice_key(kind: NoticeKind, parts: &[&str], channel: Channel) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(kind.as_str());
    for part in parts {
        key.push(':');
        key.push_str(part);
    }
    key.push(':');
    key.push_str(channel.as_str());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_print_as_the_domain_names_them() {
        assert_eq!(Stage(-3).to_string(), "T-3");
        assert_eq!(Stage(0).to_string(), "T0");
        assert_eq!(Stage(5).to_string(), "T+5");
    }

    #[test]
    fn vocabulary_round_trips_and_rejects_unknown_words() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
        }
        let err = "done".parse::<Status>().unwrap_err();
        assert!(err.contains("open, in_progress, completed, closed, cancelled"), "{err}");
    }
}
