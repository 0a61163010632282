-- Accounts. password_hash is NULL for OIDC-only accounts, which never pass a password check.
-- mfa_secret is the AES-GCM sealed TOTP secret: pending while mfa_enabled = 0.
-- mfa_last_step is the last TOTP time step accepted; it is never reset, so no step repeats.
CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
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

-- Browser sessions: only a keyed hash of the cookie value is stored.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    id_hash      BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Personal sb_ API tokens: only a keyed hash is stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- One-time MFA backup codes, stored as keyed hashes.
CREATE TABLE backup_codes (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB    NOT NULL,
    used_at   INTEGER,
    UNIQUE (user_id, code_hash)
);

-- Second-step login challenges; the mfa_pending JWT names one by jti.
CREATE TABLE mfa_challenges (
    jti        TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    used       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_user ON mfa_challenges(user_id);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges(expires_at);

-- MFA audit trail. Never holds a secret, code, password or token.
CREATE TABLE mfa_events (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX mfa_events_user ON mfa_events(user_id, id);

-- Failed attempts for brute-force limits (logins per account and IP, MFA codes per account).
-- Kept in the database so that a restart does not reset a lockout.
CREATE TABLE auth_failures (
    id      INTEGER PRIMARY KEY,
    scope   TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX auth_failures_lookup ON auth_failures(scope, subject, at);
