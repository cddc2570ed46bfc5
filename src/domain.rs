//! Plain data at the heart of the flow: units, people, directives, stages and notices.
//! No I/O here; every other module speaks in these types.

use chrono::{Datelike, NaiveDate};
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
        Report => "report",
        Bounce => "bounce",
    }
);

vocabulary!(
    /// What a message is: reminders (every notice kind but the two below), the weekly digest,
    /// or the monthly briefing report.
    MessageKind { Reminder => "reminder", Digest => "digest", Report => "report" }
);

vocabulary!(
    /// Where a notice is in the outbox: waiting to be claimed, in a message (whose state it
    /// then shares), or not to be sent. `sent` and `dead` are held only by rows written when
    /// each notice still carried its message's outcome.
    NoticeStatus {
        Pending => "pending",
        Queued => "queued",
        Superseded => "superseded",
        Sent => "sent",
        Dead => "dead",
    }
);

vocabulary!(
    /// Where a message is: waiting to be sent (first time or again), sent, or given up.
    MessageStatus { Queued => "queued", Sent => "sent", Dead => "dead" }
);

vocabulary!(
    /// Who caused a message's last failure: its channel's server (unreachable or misconfigured:
    /// no attempt counted), the recipient (refused for good: a bounce), its data (it could
    /// not be built), a temporary fault (tried again), or temporary faults until the
    /// attempts ran out.
    ErrorKind {
        Server => "server",
        Recipient => "recipient",
        Build => "build",
        Transient => "transient",
        Exhausted => "exhausted",
    }
);

vocabulary!(
    /// A required field a directive lacks: the stage of an `unassigned` notice.
    MissingField { Assignee => "assignee", DueOn => "due_on" }
);

vocabulary!(
    /// How a notice reaches its recipient.
    Channel { Email => "email", Telegram => "telegram", Webhook => "webhook" }
);

vocabulary!(
    /// A day the calendar treats specially: an official day off, or a weekend day worked.
    CalendarDayKind { Holiday => "holiday", WorkingDay => "working_day" }
);

impl NoticeKind {
    /// The message a notice of this kind travels in.
    pub fn message_kind(self) -> MessageKind {
        match self {
            NoticeKind::Digest => MessageKind::Digest,
            NoticeKind::Report => MessageKind::Report,
            _ => MessageKind::Reminder,
        }
    }

    /// The word a key of this kind starts with, and its `kind` in `plan --json`. A monthly
    /// report keeps `digest`, the word its keys were recorded under and scripts read before
    /// reports had a kind of their own, so a report recorded then is not owed again.
    fn key_word(self) -> &'static str {
        match self {
            NoticeKind::Report => NoticeKind::Digest.as_str(),
            other => other.as_str(),
        }
    }
}

impl Status {
    /// Open and in-progress directives are the live ones that reminders chase.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Open | Status::InProgress)
    }
}

/// A department (phòng) or the office; `head` and `leader` are person codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The unit's code, as import files and directives refer to it (`NV1`, `VP`).
    pub code: String,
    /// Its name as messages print it ("Phòng Nghiệp vụ 1").
    pub name: String,
    /// The head of the unit (trưởng phòng), who gets escalations and bounce notices.
    pub head: Option<String>,
    /// The deputy chief in charge of the unit's block (lãnh đạo phụ trách khối).
    pub leader: Option<String>,
}

/// An officer, head, block leader or chief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The person's code, as units and directives refer to them.
    pub code: String,
    /// Full name as messages address them ("Nguyễn Thị Liên").
    pub name: String,
    /// Job title ("Chuyên viên", "Phó Chánh Thanh tra").
    pub title: String,
    /// Email address; empty when the person is reached on chat only.
    pub email: String,
    /// The code of the unit they belong to.
    pub unit: String,
    pub role: Role,
    /// False for someone who left or is away: what is meant for them goes to their unit's
    /// head, or else its block leader.
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

    /// Whether the person has an address of their own on `channel` (a webhook's receiver
    /// otherwise routes by the person's code).
    pub fn has_own_address_on(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => !self.email.is_empty(),
            Channel::Telegram => self.reach.telegram_chat_id.is_some(),
            Channel::Webhook => self.reach.webhook_id.is_some(),
        }
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
    /// The directive's code, unique in the agency (the key of every import and sync).
    pub code: String,
    pub kind: DirectiveKind,
    pub title: String,
    /// Where it comes from: the conclusion, document or petition that assigned it.
    pub source: String,
    /// The code of the unit responsible for it.
    pub unit: String,
    /// The officer who carries it out (người thụ lý); `None` until assigned.
    pub assignee: Option<String>,
    /// The leader in charge of it, where that is not its unit's block leader (the leader
    /// escalations go to).
    pub leader: Option<String>,
    /// When it was assigned: the start of a default due date counted from it.
    pub assigned_on: Option<NaiveDate>,
    /// The due date as given (before rolling off a day off); `None` when it has none.
    pub due_on: Option<NaiveDate>,
    pub status: Status,
    /// When it was completed (status `completed`).
    pub completed_on: Option<NaiveDate>,
    /// When it was closed without being completed (status `closed`).
    pub closed_on: Option<NaiveDate>,
    /// What was achieved, as the officer or the document system reported it.
    pub result: Option<String>,
    /// A confidential directive's title is never shown where others may see it.
    pub confidential: bool,
}

/// An address that rejected a message permanently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounce {
    /// The person code whose address it was.
    pub person: String,
    pub address: String,
    pub channel: Channel,
    /// What the server or chat API answered.
    pub reason: String,
}

/// One special day in the working-day calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub kind: CalendarDayKind,
    pub note: String,
}

/// Where a notice stands on its ladder; with the ladder, it says which notice of the ladder
/// this is. Printed (in `plan --json`, keys and the database) as the domain names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Working days relative to the effective due date: `T-3` three before, `T0` the day
    /// itself, `T+1` the first working day after.
    Day(i32),
    /// The closed-without-completion alarm: `closed`.
    Closed,
    /// The field an `unassigned` notice asks for: `assignee`, `due_on`.
    Missing(MissingField),
    /// The ISO week of a weekly digest: `2022-W36` (ISO week-numbering year).
    Week { year: i32, week: u32 },
    /// The month of a monthly report: `2022-09`.
    Month { year: i32, month: u32 },
    /// The person (code) whose address bounced, for the unit head's bounce notice.
    Bounce(String),
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padded as a whole, so a stage lines up in a column (`{:<6}`).
        let text = match self {
            Stage::Day(0) => "T0".to_string(),
            Stage::Day(n) if *n > 0 => format!("T+{n}"),
            Stage::Day(n) => format!("T{n}"),
            Stage::Closed => "closed".to_string(),
            Stage::Missing(field) => field.as_str().to_string(),
            Stage::Week { year, week } => format!("{year:04}-W{week:02}"),
            Stage::Month { year, month } => format!("{year:04}-{month:02}"),
            Stage::Bounce(person) => person.clone(),
        };
        f.pad(&text)
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Stage {
    /// The ISO week `date` falls in: 2021-01-03 is in `2020-W53`, 2024-12-30 in `2025-W01`.
    pub fn week_of(date: NaiveDate) -> Stage {
        let week = date.iso_week();
        Stage::Week { year: week.year(), week: week.week() }
    }

    /// Reads a stage as printed, on `ladder` (which says what kind of stage it must be).
    pub fn parse(ladder: Ladder, text: &str) -> Result<Stage, String> {
        let bad = || format!("{text:?} is not a stage of the {} ladder", ladder.as_str());
        match ladder {
            Ladder::Assignee | Ladder::EscalateHead | Ladder::EscalateLeader | Ladder::EscalateChief => {
                let n = text.strip_prefix('T').ok_or_else(bad)?;
                let n = n.strip_prefix('+').unwrap_or(n);
                n.parse().map(Stage::Day).map_err(|_| bad())
            }
            Ladder::Closed if text == "closed" => Ok(Stage::Closed),
            Ladder::Closed => Err(bad()),
            Ladder::MissingAssignee | Ladder::MissingDueDate => text.parse().map(Stage::Missing).map_err(|_| bad()),
            Ladder::Digest => {
                let (year, week) = text.split_once("-W").ok_or_else(bad)?;
                Ok(Stage::Week { year: year.parse().map_err(|_| bad())?, week: week.parse().map_err(|_| bad())? })
            }
            Ladder::Report => {
                let (year, month) = text.split_once('-').ok_or_else(bad)?;
                let month: u32 = month.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&month) {
                    return Err(bad());
                }
                Ok(Stage::Month { year: year.parse().map_err(|_| bad())?, month })
            }
            Ladder::Bounce if !text.is_empty() => Ok(Stage::Bounce(text.to_string())),
            Ladder::Bounce => Err(bad()),
        }
    }

    /// Working days before the due date, for a stage before it (`T-3` → 3).
    pub fn days_before(&self) -> Option<i32> {
        match self {
            Stage::Day(n) if *n < 0 => Some(-n),
            _ => None,
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
    /// In `plan --json` a monthly report keeps the word `digest` (its stage, a month, tells
    /// it from a weekly digest): the format scripts already read.
    #[serde(serialize_with = "serialize_kind_as_published")]
    pub kind: NoticeKind,
    /// Directive code; `None` for a digest, a report or a bounce notice.
    pub directive: Option<String>,
    pub recipient: String,
    pub address: String,
    pub channel: Channel,
    pub stage: Stage,
    pub key: NoticeKey,
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

fn serialize_kind_as_published<S: serde::Serializer>(kind: &NoticeKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.key_word())
}

impl Notice {
    /// The same notice on another channel, to another address: its key names that channel.
    pub fn on_channel(&self, channel: Channel, address: String) -> Notice {
        Notice { key: self.key.on_channel(channel), channel, address, ..self.clone() }
    }
}

/// A notice that will not be sent, and why (the directive was completed, a later stage was
/// reached, the recipient left …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    pub key: NoticeKey,
    pub channel: Channel,
    pub kind: MessageKind,
    pub reason: String,
}

impl Superseded {
    pub fn of(notice: &Notice, reason: impl Into<String>) -> Superseded {
        Superseded {
            key: notice.key.clone(),
            channel: notice.channel,
            kind: notice.kind.message_kind(),
            reason: reason.into(),
        }
    }
}

/// A notice's deterministic key: kind, the identifying parts, channel, joined by `:`
/// (`overdue:KL08-2022-01:cv_lien:2022-08-31:T+1:email`). Every part that, when it changes,
/// should make a fresh notice owed (an extension changes the effective due date) is in the
/// key; nothing else is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NoticeKey(String);

impl NoticeKey {
    pub fn new(kind: NoticeKind, parts: &[&str], channel: Channel) -> NoticeKey {
        let mut key = String::with_capacity(64);
        key.push_str(kind.key_word());
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key.push(':');
        key.push_str(channel.as_str());
        NoticeKey(key)
    }

    /// A key as the outbox stored it.
    pub fn stored(key: String) -> NoticeKey {
        NoticeKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key without its last part, the channel: the same notice on every channel.
    pub fn without_channel(&self) -> &str {
        self.0.rsplit_once(':').map_or(&self.0, |(base, _)| base)
    }

    /// The key of the same notice on `channel`.
    pub fn on_channel(&self, channel: Channel) -> NoticeKey {
        NoticeKey(format!("{}:{channel}", self.without_channel()))
    }
}

/// A key compares with its text, as `plan --json` prints it.
impl PartialEq<str> for NoticeKey {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for NoticeKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A stage compares with its text, as `plan --json` prints it.
impl PartialEq<&str> for Stage {
    fn eq(&self, other: &&str) -> bool {
        *other == self.to_string().as_str()
    }
}

impl fmt::Display for NoticeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The fields of each record as import files name them, and as the store's columns are
/// named (in this order; the store adds `updated_at`).
impl Unit {
    pub const FIELDS: &'static [&'static str] = &["code", "name", "head", "leader"];
}

impl Person {
    pub const FIELDS: &'static [&'static str] =
        &["code", "name", "title", "email", "unit", "role", "active", "channels", "telegram_chat_id", "webhook_id"];
}

impl Directive {
    pub const FIELDS: &'static [&'static str] = &[
        "code",
        "kind",
        "title",
        "source",
        "unit",
        "assignee",
        "leader",
        "assigned_on",
        "due_on",
        "status",
        "completed_on",
        "closed_on",
        "result",
        "confidential",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_print_as_the_domain_names_them() {
        assert_eq!(Stage::Day(-3).to_string(), "T-3");
        assert_eq!(Stage::Day(0).to_string(), "T0");
        assert_eq!(Stage::Day(5).to_string(), "T+5");
        assert_eq!(Stage::Missing(MissingField::DueOn).to_string(), "due_on");
        assert_eq!(Stage::Week { year: 2022, week: 6 }.to_string(), "2022-W06");
        assert_eq!(Stage::Month { year: 2022, month: 9 }.to_string(), "2022-09");
        assert_eq!(Stage::week_of(NaiveDate::from_ymd_opt(2021, 1, 3).unwrap()).to_string(), "2020-W53");
    }

    #[test]
    fn stages_read_back_as_printed_on_their_ladder() {
        let cases = [
            (Ladder::Assignee, Stage::Day(-3)),
            (Ladder::EscalateHead, Stage::Day(5)),
            (Ladder::Assignee, Stage::Day(0)),
            (Ladder::Closed, Stage::Closed),
            (Ladder::MissingDueDate, Stage::Missing(MissingField::DueOn)),
            (Ladder::Digest, Stage::Week { year: 2022, week: 36 }),
            (Ladder::Report, Stage::Month { year: 2022, month: 9 }),
            (Ladder::Bounce, Stage::Bounce("T0".into())),
        ];
        for (ladder, stage) in cases {
            assert_eq!(Stage::parse(ladder, &stage.to_string()), Ok(stage));
        }
        assert!(Stage::parse(Ladder::Assignee, "closed").is_err());
        assert!(Stage::parse(Ladder::Report, "2022-13").is_err());
    }

    #[test]
    fn a_key_names_its_channel_last_and_a_report_keeps_its_old_word() {
        let key = NoticeKey::new(NoticeKind::Overdue, &["D1", "lien", "T+1"], Channel::Email);
        assert_eq!(key.as_str(), "overdue:D1:lien:T+1:email");
        assert_eq!(key.on_channel(Channel::Telegram).as_str(), "overdue:D1:lien:T+1:telegram");
        assert_eq!(key.without_channel(), "overdue:D1:lien:T+1");
        let report = NoticeKey::new(NoticeKind::Report, &["pct_a", "2022-09"], Channel::Email);
        assert_eq!(report.as_str(), "digest:pct_a:2022-09:email");
        let notice = Notice {
            kind: NoticeKind::Report,
            directive: None,
            recipient: "pct_a".into(),
            address: "a@x.vn".into(),
            channel: Channel::Email,
            stage: Stage::Month { year: 2022, month: 9 },
            key: report,
            ladder: Ladder::Report,
            effective_due: None,
            days_overdue: 0,
        };
        let json = serde_json::to_string(&notice).unwrap();
        assert!(
            json.starts_with(r#"{"kind":"digest","directive":null"#) && json.contains(r#""stage":"2022-09""#),
            "{json}"
        );
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
