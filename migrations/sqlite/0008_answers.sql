-- Answers from the message: what an officer or a head said about a directive through their
-- link (/r/{token}): progress, a completion with its result, the cause of a delay, an
-- extension request, and the head's decisions on the last two. Append-only; the state of a
-- directive's open requests is read from it in order.
CREATE TABLE answers (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    person TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('progress', 'done', 'explain', 'extend', 'confirm', 'decide')),
    note TEXT,
    percent INTEGER,
    on_date TEXT,
    cause TEXT CHECK (cause IS NULL OR cause IN ('subjective', 'objective')),
    measures TEXT,
    accept INTEGER,
    at INTEGER NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX answers_by_code ON answers (code, at, id);
CREATE INDEX answers_by_time ON answers (at);
