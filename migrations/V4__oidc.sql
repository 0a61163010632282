-- OpenID Connect sign-in (issue 14).

-- Identities at configured providers, keyed by (provider id, issuer, sub). One per provider
-- per account. The provider's tokens are never stored.
CREATE TABLE oidc_identities (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider   TEXT    NOT NULL,
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (provider, issuer, subject),
    UNIQUE (user_id, provider)
);

-- Spent sign-in states (a keyed hash), so that a `slugbase.oidc` cookie and its callback work
-- once; kept until the cookie would have expired anyway.
CREATE TABLE oidc_spent_states (
    state_hash BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- Audit detail, e.g. the failure code of an `oidc_failure` event.
ALTER TABLE mfa_events ADD COLUMN detail TEXT;
