//! Sources ← fetch: a source's content now — the bytes of each file (`file`: a path, or every
//! match of a glob, in name order), of an HTTP answer (`http`: with the bearer token, and
//! `If-None-Match` / `If-Modified-Since` from the last good run, so an unchanged document
//! costs one 304), or the rows of a read-only query (`sql`: PostgreSQL or MySQL/MariaDB, in a
//! read-only transaction, native `date` and `timestamp` columns kept as dates) — with a hash
//! over all of it, so an unchanged source is skipped without parsing.

use super::table::{Cell, Row, Table};
use crate::config::{Source, SourceKind};
use crate::store::SourceRun;
use sha2::{Digest, Sha256};

/// One piece of a source: bytes still to be laid out, or rows a database gave already.
pub enum Part {
    Bytes { name: String, bytes: Vec<u8> },
    Table(Table),
}

/// What a source holds now.
pub struct Content {
    pub parts: Vec<Part>,
    pub hash: String,
    /// The HTTP validators to send next time.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The server said nothing changed since the last good run (HTTP 304).
    pub not_modified: bool,
}

/// Reads the source; an error says why nothing could be read.
pub async fn fetch(source: &Source, previous: Option<&SourceRun>) -> Result<Content, String> {
    match source.kind {
        SourceKind::File => fetch_files(source),
        SourceKind::Http => fetch_http(source, previous).await,
        SourceKind::Sql => fetch_sql(source).await,
    }
}

fn hex(hasher: Sha256) -> String {
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn content(parts: Vec<Part>, hash: String) -> Content {
    Content { parts, hash, etag: None, last_modified: None, not_modified: false }
}

fn fetch_files(source: &Source) -> Result<Content, String> {
    let pattern = source.path.trim();
    let mut paths: Vec<std::path::PathBuf> = if pattern.contains(['*', '?', '[']) {
        glob::glob(pattern)
            .map_err(|e| format!("path {pattern:?} is not a valid glob: {e}"))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![pattern.into()]
    };
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no file matches {pattern:?}"));
    }
    let mut hasher = Sha256::new();
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        hasher.update(path.display().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        parts.push(Part::Bytes { name: path.display().to_string(), bytes });
    }
    Ok(content(parts, hex(hasher)))
}

async fn fetch_http(source: &Source, previous: Option<&SourceRun>) -> Result<Content, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot set up HTTP: {e}"))?;
    let mut request = client.get(&source.url);
    if !source.token_file.trim().is_empty() {
        let token =
            crate::channels::email::read_credential("token_file", &source.token_file).map_err(|e| e.to_string())?;
        request = request.bearer_auth(token);
    }
    // Validators only from a run that applied: after a refused run the same document must be
    // read again, not skipped.
    if let Some(run) = previous.filter(|r| r.result == "ok" || r.result == "unchanged") {
        if let Some(etag) = &run.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &run.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
    }
    let shown = crate::config::redact_url(&source.url);
    let response = request.send().await.map_err(|e| format!("{shown}: {e}"))?;
    let header = |name: reqwest::header::HeaderName| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        let hash = previous.and_then(|p| p.content_hash.clone()).unwrap_or_default();
        return Ok(Content { parts: Vec::new(), hash, etag, last_modified, not_modified: true });
    }
    if !response.status().is_success() {
        return Err(format!("{shown}: HTTP {}", response.status()));
    }
    let bytes = response.bytes().await.map_err(|e| format!("{shown}: {e}"))?.to_vec();
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    let mut fetched = content(vec![Part::Bytes { name: shown, bytes }], hex(hasher));
    fetched.etag = etag;
    fetched.last_modified = last_modified;
    Ok(fetched)
}

async fn fetch_sql(source: &Source) -> Result<Content, String> {
    use sqlx::Connection;
    let shown = crate::config::redact_url(&source.url);
    let fail = |e: sqlx::Error| format!("{shown}: {e}");
    let table = if source.url.starts_with("mysql://") || source.url.starts_with("mariadb://") {
        let url = source.url.replacen("mariadb://", "mysql://", 1);
        let mut conn = sqlx::MySqlConnection::connect(&url).await.map_err(fail)?;
        sqlx::query("SET SESSION TRANSACTION READ ONLY").execute(&mut conn).await.map_err(fail)?;
        let mut tx = conn.begin().await.map_err(fail)?;
        let rows = sqlx::query(&source.query).fetch_all(&mut *tx).await.map_err(fail)?;
        tx.rollback().await.map_err(fail)?;
        table_of(&rows, source.timezone)
    } else {
        let mut conn = sqlx::PgConnection::connect(&source.url).await.map_err(fail)?;
        let mut tx = conn.begin().await.map_err(fail)?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.map_err(fail)?;
        let rows = sqlx::query(&source.query).fetch_all(&mut *tx).await.map_err(fail)?;
        tx.rollback().await.map_err(fail)?;
        table_of(&rows, source.timezone)
    };
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}{:?}", table.headers, table.rows).as_bytes());
    Ok(content(vec![Part::Table(table)], hex(hasher)))
}

/// A query's rows as a table: a column's database type decides how its cells are read.
fn table_of<R: sqlx::Row>(rows: &[R], timezone: chrono_tz::Tz) -> Table
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<chrono::NaiveDate>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<chrono::NaiveDateTime>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<chrono::DateTime<chrono::Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    use sqlx::{Column, TypeInfo};
    let Some(first) = rows.first() else {
        return Table::default();
    };
    let headers: Vec<String> = first.columns().iter().map(|c| c.name().to_string()).collect();
    let types: Vec<String> = first.columns().iter().map(|c| c.type_info().name().to_uppercase()).collect();
    let out = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let cells = types
                .iter()
                .enumerate()
                .map(|(c, kind)| {
                    let cell = match kind.as_str() {
                        "DATE" => row.try_get::<Option<chrono::NaiveDate>, _>(c).ok().flatten().map(Cell::Date),
                        "DATETIME" | "TIMESTAMP" => row
                            .try_get::<Option<chrono::NaiveDateTime>, _>(c)
                            .ok()
                            .flatten()
                            .map(|t| Cell::Date(t.date())),
                        // An instant is on the agency's date: 2022-09-30 20:00 UTC is 1 October in Hà Nội.
                        "TIMESTAMPTZ" => row
                            .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(c)
                            .ok()
                            .flatten()
                            .map(|t| Cell::Date(t.with_timezone(&timezone).date_naive())),
                        "BIGINT" | "INT8" => {
                            row.try_get::<Option<i64>, _>(c).ok().flatten().map(|n| Cell::Number(n as f64))
                        }
                        "INT" | "INT4" | "INTEGER" => {
                            row.try_get::<Option<i32>, _>(c).ok().flatten().map(|n| Cell::Number(f64::from(n)))
                        }
                        "DOUBLE" | "FLOAT8" => row.try_get::<Option<f64>, _>(c).ok().flatten().map(Cell::Number),
                        "BOOL" | "BOOLEAN" => row.try_get::<Option<bool>, _>(c).ok().flatten().map(Cell::Bool),
                        _ => row.try_get::<Option<String>, _>(c).ok().flatten().map(Cell::Text),
                    };
                    cell.unwrap_or(Cell::Empty)
                })
                .collect();
            Row { place: format!("row {}", i + 1), cells }
        })
        .collect();
    Table { sheet: None, headers, rows: out }
}
