-- The outbox at national scale (a cycle of ~100,000 notices into ~10,000 messages).

-- Claiming walks pending notices in (recipient, channel, key) order and stops at the batch
-- size. With only (recipient, channel) indexed, every claim sorted all pending notices again:
-- a round of 100,000 notices in batches of 500 did that 200 times over.
CREATE INDEX notices_pending_in_claim_order ON notices (recipient, channel, key) WHERE status = 'pending';
DROP INDEX notices_pending_by_recipient;

-- A message's rendered bytes are written once and read at each send, while its row changes at
-- every lease and outcome. Kept apart, those small updates no longer rewrite the payload
-- (SQLite rewrites a whole row, overflow pages included, on any change of its size: a
-- national cycle wrote its ~300 MB of messages twice over).
CREATE TABLE message_payloads (
    id      TEXT PRIMARY KEY,
    payload TEXT NOT NULL
);
INSERT INTO message_payloads (id, payload) SELECT id, payload FROM messages;
ALTER TABLE messages DROP COLUMN payload;
