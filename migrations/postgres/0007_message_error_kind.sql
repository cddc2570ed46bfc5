-- Why a message failed, by who caused it, so an operator can tell a mail server that is down
-- or misconfigured ('server') from an address the server rejected ('recipient'), a message
-- that could not be built ('build'), and temporary failures ('transient', 'exhausted' once
-- given up).
ALTER TABLE messages ADD COLUMN error_kind TEXT;
