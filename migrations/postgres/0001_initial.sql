-- nhacviec schema, PostgreSQL. Dates are ISO 'YYYY-MM-DD' text (they sort and compare as dates);
-- instants are integer Unix seconds (BIGINT). The SQLite schema is the same shape.
-- Flags are 0/1 integers: the one boolean form both backends read back alike.

CREATE TABLE units (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    head       TEXT,
    leader     TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE people (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    title      TEXT NOT NULL,
    email      TEXT NOT NULL,
    unit       TEXT NOT NULL,
    role       TEXT NOT NULL,
    active     BIGINT NOT NULL CHECK (active IN (0, 1)),
    updated_at BIGINT NOT NULL
);

CREATE TABLE directives (
    code         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    source       TEXT NOT NULL,
    unit         TEXT NOT NULL,
    assignee     TEXT,
    leader       TEXT,
    assigned_on  TEXT,
    due_on       TEXT,
    status       TEXT NOT NULL,
    completed_on TEXT,
    closed_on    TEXT,
    result       TEXT,
    confidential BIGINT NOT NULL CHECK (confidential IN (0, 1)),
    updated_at   BIGINT NOT NULL
);
-- The planner's pre-filter: live directives by due date, recently closed ones, incomplete ones.
CREATE INDEX directives_live_by_due ON directives (due_on) WHERE status IN ('open', 'in_progress');
CREATE INDEX directives_closed_by_date ON directives (closed_on) WHERE status = 'closed';
-- Reports: recently completed directives, and everything due in a month.
CREATE INDEX directives_completed_by_date ON directives (completed_on) WHERE status = 'completed';
CREATE INDEX directives_by_due ON directives (due_on);
CREATE INDEX directives_incomplete ON directives (code)
    WHERE status IN ('open', 'in_progress') AND (assignee IS NULL OR due_on IS NULL);

CREATE TABLE calendar_days (
    date TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    note TEXT NOT NULL
);

-- One row per owed notice (directive × recipient × ladder stage × channel), keyed.
CREATE TABLE notices (
    key           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    directive     TEXT,
    recipient     TEXT NOT NULL,
    address       TEXT NOT NULL,
    channel       TEXT NOT NULL,
    ladder        TEXT NOT NULL,
    stage         TEXT NOT NULL,
    effective_due TEXT,
    days_overdue  BIGINT NOT NULL,
    -- pending | queued (in a message) | sent | superseded | dead
    status        TEXT NOT NULL,
    message       TEXT,
    reason        TEXT,
    planned_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX notices_pending_by_recipient ON notices (recipient, channel) WHERE status = 'pending';
CREATE INDEX notices_by_message ON notices (message);
CREATE INDEX notices_by_status ON notices (status);

-- One row per message: the grouped notices of one recipient on one channel, rendered once
-- and stored, so every retry sends the very same bytes under the same Message-ID.
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL,
    -- reminder | digest | report
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    address         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    notice_count    BIGINT NOT NULL,
    -- queued | sent | dead | superseded
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    lease_owner     TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX messages_queued_by_due ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_by_status ON messages (status);
