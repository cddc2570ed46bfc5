-- Message payloads packed with LZ4 by nhacviec before they are stored: a national round
-- renders a quarter of a gigabyte of MIME, which SQLite wrote twice (WAL, then the database)
-- as plain text; packed, it is about a quarter of that. `payload` stays for rows written
-- before (new rows leave it empty); a row's bytes are `payload_lz4` when that is set.
ALTER TABLE message_payloads ADD COLUMN payload_lz4 BLOB;
