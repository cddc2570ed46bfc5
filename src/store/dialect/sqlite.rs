//! Store ← dialect: SQLite, the embedded default. One writer at a time (`BEGIN IMMEDIATE`
//! takes the lock up front, so writers queue on the busy timeout instead of deadlocking on a
//! lock upgrade), anonymous `?` placeholders, and a damaged file refused at once by name.

use super::Dialect;
use crate::config::Backend;
use crate::store::{Result, StoreError};
use sqlx::any::AnyConnectOptions;
use sqlx::migrate::Migrator;

static MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite page cache while importing, and SQLite's default, in KiB.
const IMPORT_CACHE_KIB: u32 = 65_536;
const DEFAULT_CACHE_KIB: u32 = 2_000;

#[derive(Debug)]
pub(crate) struct Sqlite;

impl Dialect for Sqlite {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn migrator(&self) -> &'static Migrator {
        &MIGRATIONS
    }

    /// WAL lets readers run beside the writer; the busy timeout makes a writer wait for
    /// another instead of failing; NORMAL is durable in WAL. Checkpoints every 32 MB of WAL
    /// rather than every 4 MB: each checkpoint syncs the database file, and a national round
    /// of ten thousand messages (a quarter of a gigabyte) otherwise spent seconds on them.
    fn on_connect(&self, busy_timeout_ms: u64) -> Vec<String> {
        vec![
            "PRAGMA journal_mode = WAL".into(),
            format!("PRAGMA busy_timeout = {busy_timeout_ms}"),
            "PRAGMA synchronous = NORMAL".into(),
            "PRAGMA wal_autocheckpoint = 8192".into(),
        ]
    }

    fn begin_write(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }

    /// SQLite finds a *named* parameter (`$7`) by scanning the statement's list of names, and
    /// sqlx asks for the name of every parameter it binds, so binding n named parameters
    /// costs n²: a 3,000-parameter insert spent three quarters of its time there. Anonymous
    /// `?` bind by position in O(1).
    fn placeholder(&self, _n: usize) -> String {
        "?".to_string()
    }

    /// `BEGIN IMMEDIATE` already keeps every other writer out.
    fn claim_lock(&self) -> &'static str {
        ""
    }

    /// Without statistics SQLite takes the equality on `notices_by_status` for the better
    /// index, then sorts every pending notice on each claim (and scans them all again for each
    /// batch's recipients): 50 ms a claim at 100,000 pending. The partial index is named.
    fn pending_notices(&self) -> &'static str {
        "notices INDEXED BY notices_pending_in_claim_order"
    }

    /// `INSERT OR IGNORE`: a statement inside a transaction that might abort halfway makes
    /// SQLite first copy every page it changes to a statement journal, to undo just that
    /// statement; one that cannot abort skips the copy (a national cycle: 0.2–0.3 s of ~3 s).
    /// Every value is bound from a non-optional field where the column is `NOT NULL`, so no
    /// row can break a constraint but the key's uniqueness, and a skipped row shows in the
    /// count of rows inserted, which callers compare with what they asked.
    fn insert_skipping_known(&self) -> (&'static str, &'static str) {
        ("INSERT OR IGNORE", "")
    }

    fn lookups_by_key_only(&self) -> Option<&'static str> {
        None
    }

    /// A big import rewrites index pages all over the file; with SQLite's default 2 MB page
    /// cache they spill and are re-read again and again (a quarter of the time at a million
    /// rows). The default is put back before the commit.
    fn import_settings(&self) -> Option<(String, String)> {
        Some((format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"), format!("PRAGMA cache_size = -{DEFAULT_CACHE_KIB}")))
    }

    /// sqlx hands SQLite rows over one at a time between threads, at some 7 µs a row through
    /// `Any`: 0.7–1 s for the 100,000 directives of a national window. Aggregated into JSON,
    /// about a thousand rows a chunk, the same rows cost 0.26 s.
    fn reads_rows_as_json(&self) -> bool {
        true
    }

    /// `BEGIN IMMEDIATE` already keeps every other writer out.
    fn lock_named(&self) -> Option<&'static str> {
        None
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
pub(crate) async fn check_file(url: &str, options: &AnyConnectOptions) -> Result<()> {
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
pub(crate) fn url_creating_parent(url: &str) -> Result<String> {
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
