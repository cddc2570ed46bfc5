//! Store ← outbox, payloads: each message's rendered bytes (MIME or chat JSON), stored
//! LZ4-packed beside the message and read back when a retry or a crashed sender's message is
//! claimed.

use super::dialect::Dialect;
use super::messages::NewMessage;
use super::{keep_prepared, rows_per_statement, Marks, Result, StoreError, Tx};
use std::collections::HashMap;

/// A payload as it is stored: LZ4-packed (a national round's quarter of a gigabyte of MIME
/// shrinks to about a quarter), its length in front.
pub fn pack(payload: &str) -> Vec<u8> {
    lz4_flex::compress_prepend_size(payload.as_bytes())
}

/// A stored payload's text from its [`pack`]ed bytes.
fn unpack(id: &str, bytes: &[u8]) -> Result<String> {
    let corrupt = |e: String| StoreError::Corrupt {
        table: "message_payloads",
        column: "payload_lz4",
        value: format!("{id}: {e}"),
    };
    let raw = lz4_flex::decompress_size_prepended(bytes).map_err(|e| corrupt(e.to_string()))?;
    String::from_utf8(raw).map_err(|e| corrupt(e.to_string()))
}

/// Inserts the packed payloads of `messages` in one statement.
pub(super) async fn insert_payloads(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    messages: &[NewMessage],
    keep: bool,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO message_payloads (id, payload, payload_lz4) VALUES {}",
        Marks::new(dialect).rows(messages.len(), 3)
    );
    let mut query = sqlx::query(&sql).persistent(keep);
    for m in messages {
        query = query.bind(m.id.as_str()).bind("").bind(m.packed.as_slice());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// The payloads of the messages `ids`, by id (a payload written before packing was plain text).
pub(super) async fn read_payloads(
    tx: &mut Tx,
    dialect: &'static dyn Dialect,
    ids: &[&str],
) -> Result<HashMap<String, String>> {
    let mut payloads = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT id, payload, payload_lz4 FROM message_payloads WHERE id IN {}",
            Marks::new(dialect).tuple(chunk.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, Option<Vec<u8>>)>(&sql)
            .persistent(keep_prepared(chunk.len(), rows_per_statement(1)));
        for id in chunk {
            query = query.bind(*id);
        }
        for (id, plain, packed) in query.fetch_all(&mut **tx).await? {
            let payload = match packed {
                Some(bytes) => unpack(&id, &bytes)?,
                None => plain,
            };
            payloads.insert(id, payload);
        }
    }
    Ok(payloads)
}
