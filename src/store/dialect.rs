//! Store ← dialect: what SQL differs between SQLite and PostgreSQL, in one place. Every
//! statement elsewhere in the store is portable (`$n` placeholders or [`Marks`], ISO-text
//! dates, integer epochs) and asks its backend's [`Dialect`] for the few fragments that differ:
//! how a write transaction starts, how rows are claimed, which index a query must name, and
//! how large reads come back. One module per backend implements it.

mod postgres;
mod sqlite;

use crate::config::Backend;
use sqlx::migrate::Migrator;

pub(crate) use sqlite::check_file as check_sqlite_file;
pub(crate) use sqlite::url_creating_parent as sqlite_url_creating_parent;

/// The SQL fragments and settings one backend needs.
pub(crate) trait Dialect: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;

    /// The migrations of this backend's schema.
    fn migrator(&self) -> &'static Migrator;

    /// Statements run on every new connection.
    fn on_connect(&self, busy_timeout_ms: u64) -> Vec<String>;

    /// How a write transaction starts.
    fn begin_write(&self) -> &'static str;

    /// The `n`th placeholder (from 1) of a statement built with [`Marks`].
    fn placeholder(&self, n: usize) -> String;

    /// Appended to a claiming `SELECT`, so replicas never take the same rows.
    fn claim_lock(&self) -> &'static str;

    /// The table expression pending notices are read from in claim order.
    fn pending_notices(&self) -> &'static str;

    /// `(verb, suffix)` of a multi-row insert that skips rows whose key is already there.
    fn insert_skipping_known(&self) -> (&'static str, &'static str);

    /// Run first in a transaction whose every statement finds rows by key, if this backend
    /// needs telling.
    fn lookups_by_key_only(&self) -> Option<&'static str>;

    /// Statements around a large import: before it, and before its commit.
    fn import_settings(&self) -> Option<(String, String)>;

    /// Whether large reads of directives come back faster aggregated into JSON rows.
    fn reads_rows_as_json(&self) -> bool;

    /// Run first in a transaction that must exclude others locking the same name (bound to
    /// it), if a write transaction alone does not keep them out.
    fn lock_named(&self) -> Option<&'static str>;
}

/// The dialect of `backend`.
pub(crate) fn of(backend: Backend) -> &'static dyn Dialect {
    match backend {
        Backend::Sqlite => &sqlite::Sqlite,
        Backend::Postgres => &postgres::Postgres,
    }
}

/// The placeholders of one statement, handed out in bind order by the backend's dialect:
/// `$1, $2, …` on PostgreSQL, plain `?` on SQLite. A statement takes all its placeholders
/// from one `Marks`, or none (sqlx cannot mix the two forms).
pub(crate) struct Marks {
    dialect: &'static dyn Dialect,
    next: usize,
}

impl Marks {
    pub(crate) fn new(dialect: &'static dyn Dialect) -> Marks {
        Marks { dialect, next: 1 }
    }

    /// The next placeholder.
    pub(crate) fn mark(&mut self) -> String {
        let i = self.next;
        self.next += 1;
        self.dialect.placeholder(i)
    }

    /// `(…)` holding the next `n` placeholders: an `IN` list or one row of `VALUES`.
    pub(crate) fn tuple(&mut self, n: usize) -> String {
        let list: Vec<String> = (0..n).map(|_| self.mark()).collect();
        format!("({})", list.join(", "))
    }

    /// `n` rows of `width` placeholders each, for a multi-row `VALUES`.
    pub(crate) fn rows(&mut self, n: usize, width: usize) -> String {
        let rows: Vec<String> = (0..n).map(|_| self.tuple(width)).collect();
        rows.join(", ")
    }
}
