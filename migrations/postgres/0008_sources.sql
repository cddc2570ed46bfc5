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
    at BIGINT NOT NULL
);
CREATE INDEX directive_history_code ON directive_history (code, at);

CREATE TABLE source_runs (
    source TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    result TEXT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_applied BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    changed BIGINT NOT NULL,
    content_hash TEXT,
    etag TEXT,
    last_modified TEXT,
    failures_in_row BIGINT NOT NULL,
    last_success_at BIGINT,
    problems TEXT NOT NULL
);
