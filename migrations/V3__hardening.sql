-- Row ids of users, sessions and API tokens are never reused (AUTOINCREMENT): SQLite otherwise
-- hands out the highest deleted id again, and anything that named the old row (a JWT, a log
-- line, an audit entry) would then name the new one. SQLite can only add AUTOINCREMENT by
-- rebuilding a table; `db::migrate` turns foreign keys off around the migrations (so that
-- dropping the old tables does not cascade) and checks them afterwards.

CREATE TABLE users_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    password_hash   TEXT,
    created_at      INTEGER NOT NULL,
    mfa_enabled     INTEGER NOT NULL DEFAULT 0,
    mfa_secret      BLOB,
    mfa_enrolled_at INTEGER,
    mfa_last_step   INTEGER
);
INSERT INTO users_v3 (id, email, name, is_admin, password_hash, created_at, mfa_enabled,
                      mfa_secret, mfa_enrolled_at, mfa_last_step)
    SELECT id, email, name, is_admin, password_hash, created_at, mfa_enabled,
           mfa_secret, mfa_enrolled_at, mfa_last_step FROM users;
DROP TABLE users;
ALTER TABLE users_v3 RENAME TO users;

-- Sessions. A JWT names its session by `handle` (128 random bits), never by the row id; the
-- sessions list names it by `public_id`, which is neither. `auth_at` is when the session last
-- proved the account's factors (for re-authentication), `mfa` whether one of them was a
-- second factor. Existing sessions keep working through their cookie; their JWTs, which named
-- row ids, no longer verify.
CREATE TABLE sessions_v3 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    id_hash      BLOB    NOT NULL UNIQUE,
    handle       TEXT    NOT NULL UNIQUE,
    public_id    TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    auth_at      INTEGER NOT NULL,
    mfa          INTEGER NOT NULL DEFAULT 0,
    ip           TEXT,
    user_agent   TEXT
);
INSERT INTO sessions_v3 (id, user_id, id_hash, handle, public_id, created_at, last_seen_at,
                         expires_at, auth_at)
    SELECT id, user_id, id_hash, lower(hex(randomblob(16))), lower(hex(randomblob(12))),
           created_at, last_seen_at, expires_at, created_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v3 RENAME TO sessions;
CREATE INDEX sessions_user ON sessions(user_id);

-- API tokens may expire.
CREATE TABLE api_tokens_v3 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER
);
INSERT INTO api_tokens_v3 (id, user_id, name, token_hash, created_at, last_used_at)
    SELECT id, user_id, name, token_hash, created_at, last_used_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_v3 RENAME TO api_tokens;
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Retention: events older than `event_retention_days` are purged by time.
CREATE INDEX mfa_events_at ON mfa_events(at);
