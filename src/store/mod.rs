//! Store: the one place that talks to the database. Units, people, directives and the
//! calendar flow in from `import` and sources; the planner's snapshot flows out; the outbox
//! (notices, messages and their payloads) lives here. One code path serves SQLite and
//! PostgreSQL through sqlx's `Any` driver; what SQL differs per backend sits behind the
//! [`dialect`]. Each statement is a small named function in the module of its tables.

mod answers;
mod dialect;
mod directory;
mod messages;
mod notices;
mod payloads;
mod rows;
mod sources;
mod status;
mod tx;

pub use tx::Tx;

pub(crate) use dialect::Marks;
pub use directory::{ImportCounts, Importer, PlanningWindow};
pub use messages::{ClaimedMessage, DeadCause, Message, MessageOutcome, NewMessage};
pub(crate) use notices::claim_order;
pub use notices::{NoticeClaim, NoticeRow};
pub use payloads::pack;
pub use sources::{HistoryRow, NoticeEvent, SourceRun};
pub use status::{DeadLetter, OutboxCounts, StatusReport};

use crate::config::{backend_of, Backend};
use dialect::Dialect;
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
    dialect: &'static dyn Dialect,
}

impl Store {
    /// Opens (creating a SQLite file and its folder if missing) and migrates.
    pub async fn open(url: &str, max_connections: u32, busy_timeout_ms: u64) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url).map_err(|e| StoreError::Url(e.to_string()))?;
        let dialect = dialect::of(backend);
        let url = match backend {
            Backend::Sqlite => dialect::sqlite_url_creating_parent(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        if backend == Backend::Sqlite {
            // A damaged file must fail here, at once and by name, not after the pool has
            // spent its acquire timeout retrying connections that fail the same way.
            dialect::check_sqlite_file(&url, &options).await?;
        }
        let on_connect = dialect.on_connect(busy_timeout_ms);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let on_connect = on_connect.clone();
                Box::pin(async move {
                    for statement in &on_connect {
                        conn.execute(statement.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Store { pool, dialect };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema up to date (idempotent; every command that needs the schema calls it).
    pub async fn migrate(&self) -> Result<()> {
        self.dialect.migrator().run(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.dialect.backend()
    }

    /// A write transaction, begun as the backend needs (SQLite takes the write lock up front).
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(Tx::begin(&self.pool, self.dialect.begin_write()).await?)
    }

    /// For a transaction whose every statement finds rows by key: tells the backend so, if
    /// it needs telling (see the PostgreSQL dialect).
    pub(crate) async fn index_lookups_only(&self, tx: &mut Tx) -> Result<()> {
        if let Some(sql) = self.dialect.lookups_by_key_only() {
            sqlx::query(sql).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Placeholders for one statement of this backend.
    pub(crate) fn marks(&self) -> Marks {
        Marks::new(self.dialect)
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
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
