//! Store transactions: every write (and the few multi-statement reads) runs inside one of
//! these. A connection whose COMMIT or ROLLBACK failed, or whose transaction was dropped
//! unfinished, is closed rather than handed back to the pool: its state is unknown. (sqlx's
//! own `Transaction` returns such a connection with its transaction depth still counted — after
//! a full disk, the next `BEGIN` on it failed with "attempted to call begin_with at non-zero
//! transaction depth", scan after scan.)

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use std::ops::{Deref, DerefMut};

/// An open transaction on a pooled connection. `commit` or `rollback` it; dropping it
/// unfinished closes the connection, which rolls the transaction back.
pub struct Tx {
    conn: PoolConnection<Any>,
    open: bool,
}

impl Tx {
    /// Takes a connection from `pool` and starts a transaction with `begin` (`BEGIN`, or
    /// SQLite's `BEGIN IMMEDIATE`).
    pub(crate) async fn begin(pool: &AnyPool, begin: &'static str) -> Result<Tx, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = conn.execute(begin).await {
            conn.close_on_drop();
            return Err(e);
        }
        Ok(Tx { conn, open: true })
    }

    /// Commits. On failure the transaction is rolled back (if the server has not already done
    /// so) and the connection is closed.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let result = self.conn.execute("COMMIT").await;
        if result.is_err() {
            let _ = self.conn.execute("ROLLBACK").await;
            self.conn.close_on_drop();
        }
        self.open = false;
        result.map(|_| ())
    }

    /// Rolls back; a connection whose rollback failed is closed.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let result = self.conn.execute("ROLLBACK").await;
        if result.is_err() {
            self.conn.close_on_drop();
        }
        self.open = false;
        result.map(|_| ())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // An error part-way through (`?`) left the transaction open: closing the
            // connection ends it, and no one else inherits it.
            self.conn.close_on_drop();
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}
