//! OpenID identities, spent sign-in states and detailed audit events.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::ApiError;

/// The account linked to (provider id, issuer, sub), if any.
pub fn user_for(
    conn: &Connection,
    provider: &str,
    issuer: &str,
    subject: &str,
) -> Result<Option<i64>, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT user_id FROM oidc_identities WHERE provider = ?1 AND issuer = ?2 AND subject = ?3",
        )?
        .query_row(params![provider, issuer, subject], |r| r.get(0))
        .optional()?)
}

/// Whether the account has any linked identity.
pub fn has_identity(conn: &Connection, user_id: i64) -> Result<bool, ApiError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM oidc_identities WHERE user_id = ?1)",
        [user_id],
        |r| r.get(0),
    )?)
}

/// Links an identity; false when the identity or the account's link to this provider exists.
pub fn link(
    conn: &Connection,
    user_id: i64,
    provider: &str,
    issuer: &str,
    subject: &str,
    now: i64,
) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO oidc_identities (user_id, provider, issuer, subject, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, provider, issuer, subject, now],
    )? == 1)
}

/// Removes the account's link to a provider; false when there was none.
pub fn unlink(conn: &Connection, user_id: i64, provider: &str) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "DELETE FROM oidc_identities WHERE user_id = ?1 AND provider = ?2",
        params![user_id, provider],
    )? == 1)
}

/// The provider ids each account is linked to.
pub fn providers_by_user(conn: &Connection) -> Result<HashMap<i64, Vec<String>>, ApiError> {
    let mut stmt =
        conn.prepare("SELECT user_id, provider FROM oidc_identities ORDER BY user_id, provider")?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (u, p) = row?;
        out.entry(u).or_default().push(p);
    }
    Ok(out)
}

/// The provider ids one account is linked to.
pub fn providers_of(conn: &Connection, user_id: i64) -> Result<Vec<String>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT provider FROM oidc_identities WHERE user_id = ?1 ORDER BY provider",
    )?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Marks a sign-in state spent; false when it already was (a replay).
pub fn spend_state(conn: &Connection, hash: &[u8], expires_at: i64) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO oidc_spent_states (state_hash, expires_at) VALUES (?1, ?2)",
        params![hash, expires_at],
    )? == 1)
}

/// Forgets spent states whose cookies have expired (they cannot come back).
pub fn purge_states(conn: &Connection, now: i64) -> Result<(), ApiError> {
    conn.execute("DELETE FROM oidc_spent_states WHERE expires_at < ?1", [now])?;
    Ok(())
}

/// Appends an audit event with a detail (e.g. a failure code; never a secret).
pub fn record_event(
    conn: &Connection,
    user_id: i64,
    event: &str,
    detail: Option<&str>,
    now: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO mfa_events (user_id, event, at, ip, user_agent, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![user_id, event, now, ip, user_agent, detail])?;
    Ok(())
}
