-- Message payloads packed with LZ4 by nhacviec before they are stored (as on SQLite): a
-- quarter of the bytes cross the connection and reach the WAL. `payload` stays for rows
-- written before (new rows leave it empty); a row's bytes are `payload_lz4` when that is set.
-- Already packed, the column is stored out of line without PostgreSQL compressing it again.
ALTER TABLE message_payloads ADD COLUMN payload_lz4 BYTEA;
ALTER TABLE message_payloads ALTER COLUMN payload_lz4 SET STORAGE EXTERNAL;
