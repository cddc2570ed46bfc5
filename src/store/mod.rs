//! The store: the one place that talks to the database. Units, people, directives and the
//! calendar flow in from `import`; the planner's snapshot flows out; the outbox lives here.
//! One code path serves SQLite and PostgreSQL through sqlx's `Any` driver with portable SQL
//! (`$n` placeholders, ISO-text dates, integer epochs); SQL differs per backend only where it
//! must (write-transaction start, claiming with `SKIP LOCKED`) or where one backend is slow at
//! scale: `?` in SQLite's bulk statements, SQLite's large reads aggregated into JSON rows, an
//! index named to SQLite's planner, sequential scans ruled out for PostgreSQL's key lookups.

mod directory;
mod outbox;
mod rows;
mod tx;

pub use tx::Tx;

pub use directory::{ImportCounts, Importer, PlanningWindow};
pub(crate) use outbox::claim_order;
pub use outbox::{
    pack, ClaimedMessage, DeadCause, DeadLetter, MessageOutcome, NewMessage, NoticeClaim, NoticeRow, OutboxCounts,
    QueuedNotice, StatusReport,
};

use crate::config::{backend_of, Backend};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// SQLite could not grow the file (SQLITE_FULL): the transaction was rolled back whole.
    #[error(
        "database: the disk is full (nothing of this step was recorded; it is tried again once space returns): {0}"
    )]
    DiskFull(sqlx::Error),
    /// The file or its folder cannot be written (SQLITE_READONLY).
    #[error("database: the database is read-only (check the file's and its folder's permissions and mount): {0}")]
    ReadOnly(sqlx::Error),
    /// The file is damaged or is not a database (SQLITE_CORRUPT, SQLITE_NOTADB).
    #[error("database: not a nhacviec database, or malformed: {0}")]
    Malformed(String),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database holds an invalid value in {table}.{column}: {value:?}")]
    Corrupt { table: &'static str, column: &'static str, value: String },
    #[error("database url: {0}")]
    Url(String),
    #[error("outbox: {0}")]
    Outbox(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SQLite's primary result codes that deserve their own message (the low byte of the
/// extended code sqlx reports).
const SQLITE_READONLY: i64 = 8;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_NOTADB: i64 = 26;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        let primary = match &e {
            sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff),
            _ => None,
        };
        match primary {
            Some(SQLITE_FULL) => StoreError::DiskFull(e),
            Some(SQLITE_READONLY) => StoreError::ReadOnly(e),
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Malformed(e.to_string()),
            _ => StoreError::Db(e),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating a SQLite file and its folder if missing) and migrates.
    pub async fn open(url: &str, max_connections: u32, busy_timeout_ms: u64) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url).map_err(|e| StoreError::Url(e.to_string()))?;
        let url = match backend {
            Backend::Sqlite => sqlite_url_creating_parent(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        if backend == Backend::Sqlite {
            // A damaged file must fail here, at once and by name, not after the pool has
            // spent its acquire timeout retrying connections that fail the same way.
            check_sqlite_file(&url, &options).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout makes a
                        // writer wait for another instead of failing; NORMAL is durable in WAL.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute(format!("PRAGMA busy_timeout = {busy_timeout_ms}").as_str()).await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // Checkpoint every 32 MB of WAL rather than every 4 MB: each checkpoint
                        // syncs the database file, and a national round of ten thousand
                        // messages (a quarter of a gigabyte) otherwise spent seconds on them.
                        conn.execute("PRAGMA wal_autocheckpoint = 8192").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema up to date (idempotent; every command that needs the schema calls it).
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`),
    /// so two writers queue on the busy timeout instead of deadlocking on a lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        Ok(Tx::begin(&self.pool, begin).await?)
    }

    /// For a transaction whose every statement finds rows by key: on PostgreSQL, rules out
    /// sequential scans. Without statistics — the outbox just grew by 100,000 notices and
    /// autovacuum has not analyzed it yet — PostgreSQL reckons that a thousand keys `IN (…)`
    /// match the whole table, scans it, and compares each row against the whole list: eight
    /// minutes for a tick's 174 lookups of a thousand keys, instead of half a second.
    /// Hash and merge joins are ruled out too: joined to a `VALUES` list of 500 keys, an
    /// `UPDATE … AND status = 'pending'` otherwise read every pending notice through the
    /// partial index to hash them (46 ms a statement at 100,000 pending, against 7.6 ms
    /// looking each key up in the primary key): most of a morning round on PostgreSQL.
    pub(crate) async fn index_lookups_only(&self, tx: &mut Tx) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
                        set_config('enable_mergejoin', 'off', true)",
            )
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file part of a `sqlite://PATH?…` URL.
fn sqlite_path(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    rest.split_once('?').map_or(rest, |(path, _)| path)
}

/// What SQLite writes at the start of every database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a file that exists but is not a nhacviec database: empty (SQLite would take a
/// 0-byte file for a new database and silently start afresh), of another format, damaged,
/// or another application's database. A missing file is fine: it is created.
async fn check_sqlite_file(url: &str, options: &AnyConnectOptions) -> Result<()> {
    use sqlx::ConnectOptions;
    let path = sqlite_path(url);
    let not_ours = |why: String| StoreError::Malformed(format!("{path}: {why}"));
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(not_ours("is a folder, not a database file".into()));
    }
    if meta.len() == 0 {
        return Err(not_ours(
            "the file is empty (0 bytes), not a nhacviec database; remove it to start a new one".into(),
        ));
    }
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    let read = std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut header));
    if let Err(e) = read {
        return Err(not_ours(format!("cannot read it: {e}")));
    }
    if header.as_slice() != SQLITE_HEADER {
        return Err(not_ours("is not a SQLite database file".into()));
    }
    // Only a damaged file is "not ours"; a full disk or a read-only folder says so itself.
    let ours_or = |e: sqlx::Error| match StoreError::from(e) {
        StoreError::Malformed(why) => not_ours(format!("malformed: {why}")),
        other => other,
    };
    let mut conn = options.connect().await.map_err(ours_or)?;
    let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .map_err(ours_or)?;
    let _ = sqlx::Connection::close(conn).await;
    let ours = tables.iter().any(|(name,)| name == "_sqlx_migrations" || name == "notices");
    if !tables.is_empty() && !ours {
        return Err(not_ours("holds another application's tables, not a nhacviec database".into()));
    }
    Ok(())
}

/// `sqlite://var/x.db` → `sqlite://var/x.db?mode=rwc`, creating `var/` if needed.
fn sqlite_url_creating_parent(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Url(format!("{url}: expected sqlite://PATH")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Url(
            "an in-memory SQLite database would vanish between commands; give a file path".into(),
        ));
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Url(format!("cannot create {}: {e}", parent.display())))?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The placeholders of one statement, handed out in bind order: `$1, $2, …` on PostgreSQL,
/// plain `?` on SQLite. SQLite finds a *named* parameter (`$7`) by scanning the statement's
/// list of names, and sqlx asks for the name of every parameter it binds, so binding n named
/// parameters costs n²: a 3,000-parameter insert spent three quarters of its time there.
/// Anonymous `?` bind by position in O(1). A statement takes all its placeholders from one
/// `Marks`, or none (sqlx cannot mix the two forms).
pub(crate) struct Marks {
    backend: Backend,
    next: usize,
}

impl Marks {
    pub(crate) fn new(backend: Backend) -> Marks {
        Marks { backend, next: 1 }
    }

    /// The next placeholder.
    pub(crate) fn mark(&mut self) -> String {
        let i = self.next;
        self.next += 1;
        match self.backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${i}"),
        }
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

/// Whether a multi-row statement cut in chunks of `full` rows should stay prepared on its
/// connection. sqlx keeps every distinct statement it prepares (up to 100 per connection);
/// the last chunk of each call has a row count of its own, and with up to 10,000 parameters
/// each such statement weighs in the megabytes — a national round filled every connection's
/// cache with them (tens of MB) and paid a fresh prepare each time anyway. Only the full
/// chunk, the same text every time, is worth keeping.
pub(crate) fn keep_prepared(rows: usize, full: usize) -> bool {
    rows == full
}

/// Rows per multi-row statement: `width` parameters each, under 10,000 parameters in all —
/// far below SQLite's (32,766) and PostgreSQL's (65,535) limits, and large enough that the
/// per-statement round trip no longer shows.
pub(crate) fn rows_per_statement(width: usize) -> usize {
    (10_000 / width.max(1)).clamp(1, 1_000)
}
