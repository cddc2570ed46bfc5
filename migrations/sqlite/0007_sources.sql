-- Sources: which source supplied each directive (NULL: a plain import), every change to a
-- directive with its field, old and new value, source and time, and each source's last run.
ALTER TABLE directives ADD COLUMN origin TEXT;
CREATE INDEX directives_origin ON directives (origin) WHERE origin IS NOT NULL;

CREATE TABLE directive_history (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    origin TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX directive_history_code ON directive_history (code, at);

CREATE TABLE source_runs (
    source TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    result TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_applied INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    content_hash TEXT,
    etag TEXT,
    last_modified TEXT,
    failures_in_row INTEGER NOT NULL,
    last_success_at INTEGER,
    problems TEXT NOT NULL
);
