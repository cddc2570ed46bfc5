-- Notices are counted by status only while pending or superseded (one in a message is
-- counted by its message's state), so only those need an index on status. An index over
-- every notice's status cost each of a national round's ~100,000 inserts one more b-tree.
CREATE INDEX notices_superseded ON notices (status) WHERE status = 'superseded';
DROP INDEX notices_by_status;
