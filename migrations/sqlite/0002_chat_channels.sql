-- Chat channels beside email: which channels each person receives on (comma-separated
-- names; empty = email only) and the routing each chat channel needs.
ALTER TABLE people ADD COLUMN channels TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN telegram_chat_id TEXT;
ALTER TABLE people ADD COLUMN webhook_id TEXT;

-- Addresses that rejected a message permanently (a 5xx bounce): the unit head is told once
-- per address, and the block leader sees it in the weekly digest.
CREATE TABLE bounces (
    person  TEXT NOT NULL,
    address TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (person, address, channel)
);
