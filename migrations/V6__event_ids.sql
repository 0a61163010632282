-- Security-activity events are paged by their row id (`GET /api/auth/mfa/events?before=`), so
-- an id must never come back: without AUTOINCREMENT SQLite hands out the highest deleted id
-- again (e.g. after an account and its events are deleted, or events are purged). Same
-- rebuild as V3; `db::migrate` turns foreign keys off around it.

CREATE TABLE mfa_events_v6 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT
);
INSERT INTO mfa_events_v6 (id, user_id, event, at, ip, user_agent, detail)
    SELECT id, user_id, event, at, ip, user_agent, detail FROM mfa_events;
DROP TABLE mfa_events;
ALTER TABLE mfa_events_v6 RENAME TO mfa_events;
CREATE INDEX mfa_events_user ON mfa_events(user_id, id);
CREATE INDEX mfa_events_at ON mfa_events(at);
