//! Store ← dialect: PostgreSQL, the production and multi-replica backend.

use super::Dialect;
use crate::config::Backend;
use sqlx::migrate::Migrator;

static MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug)]
pub(crate) struct Postgres;

impl Dialect for Postgres {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn migrator(&self) -> &'static Migrator {
        &MIGRATIONS
    }

    fn on_connect(&self, _busy_timeout_ms: u64) -> Vec<String> {
        Vec::new()
    }

    fn begin_write(&self) -> &'static str {
        "BEGIN"
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn claim_lock(&self) -> &'static str {
        " FOR UPDATE SKIP LOCKED"
    }

    /// PostgreSQL's planner finds the partial index of pending notices unaided.
    fn pending_notices(&self) -> &'static str {
        "notices"
    }

    fn insert_skipping_known(&self) -> (&'static str, &'static str) {
        ("INSERT", " ON CONFLICT (key) DO NOTHING")
    }

    /// Rules out sequential scans, hash and merge joins. Without statistics — the outbox just
    /// grew by 100,000 notices and autovacuum has not analyzed it yet — PostgreSQL reckons that
    /// a thousand keys `IN (…)` match the whole table, scans it, and compares each row against
    /// the whole list: eight minutes for a tick's 174 lookups of a thousand keys, instead of
    /// half a second. Joined to a `VALUES` list of 500 keys, an `UPDATE … AND status =
    /// 'pending'` otherwise read every pending notice through the partial index to hash them
    /// (46 ms a statement at 100,000 pending, against 7.6 ms looking each key up).
    fn lookups_by_key_only(&self) -> Option<&'static str> {
        Some(
            "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true)",
        )
    }

    fn import_settings(&self) -> Option<(String, String)> {
        None
    }

    fn reads_rows_as_json(&self) -> bool {
        false
    }

    /// Held to the end of the transaction; other sources sync meanwhile.
    fn lock_named(&self) -> Option<&'static str> {
        Some("SELECT pg_advisory_xact_lock(hashtext('nhacviec ' || $1))")
    }
}
