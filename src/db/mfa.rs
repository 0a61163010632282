//! MFA state: the users' MFA columns, backup codes, challenges, failures and audit events.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::ApiError;

/// Stores a pending (sealed) secret, replacing any earlier one; only while MFA is off.
pub fn set_pending(conn: &Connection, user_id: i64, sealed: &[u8]) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE users SET mfa_secret = ?1 WHERE id = ?2 AND mfa_enabled = 0",
        params![sealed, user_id],
    )? == 1)
}

/// Clears a pending secret; only while MFA is off. False when there was none.
pub fn clear_pending(conn: &Connection, user_id: i64) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE users SET mfa_secret = NULL \
         WHERE id = ?1 AND mfa_enabled = 0 AND mfa_secret IS NOT NULL",
        [user_id],
    )? == 1)
}

/// Turns MFA on, if it is still off and the pending secret is still `sealed`.
/// Returns false when another request got there first.
pub fn enable(conn: &Connection, user_id: i64, sealed: &[u8], now: i64) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE users SET mfa_enabled = 1, mfa_enrolled_at = ?1 \
         WHERE id = ?2 AND mfa_enabled = 0 AND mfa_secret = ?3",
        params![now, user_id, sealed],
    )? == 1)
}

/// Turns MFA off and removes the secret, the backup codes and open challenges.
pub fn disable(conn: &Connection, user_id: i64) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE users SET mfa_enabled = 0, mfa_secret = NULL, mfa_enrolled_at = NULL WHERE id = ?1",
        [user_id],
    )?;
    conn.execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?;
    conn.execute("DELETE FROM mfa_challenges WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Advances the last accepted TOTP step; false if `step` is not newer (a replay or a race).
pub fn accept_step(conn: &Connection, user_id: i64, step: i64) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached(
            "UPDATE users SET mfa_last_step = ?1 \
             WHERE id = ?2 AND (mfa_last_step IS NULL OR mfa_last_step < ?1)",
        )?
        .execute(params![step, user_id])?
        == 1)
}

/// Replaces all backup codes of a user with these hashes.
pub fn replace_backup_codes(
    conn: &Connection,
    user_id: i64,
    hashes: &[Vec<u8>],
) -> Result<(), ApiError> {
    conn.execute("DELETE FROM backup_codes WHERE user_id = ?1", [user_id])?;
    let mut stmt =
        conn.prepare_cached("INSERT INTO backup_codes (user_id, code_hash) VALUES (?1, ?2)")?;
    for h in hashes {
        stmt.execute(params![user_id, h])?;
    }
    Ok(())
}

/// Spends a backup code: true for exactly one caller, however many race for it.
pub fn spend_backup_code(
    conn: &Connection,
    user_id: i64,
    hash: &[u8],
    now: i64,
) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached(
            "UPDATE backup_codes SET used_at = ?1 WHERE user_id = ?2 AND code_hash = ?3 AND used_at IS NULL",
        )?
        .execute(params![now, user_id, hash])?
        == 1)
}

/// Unused backup codes left.
pub fn backup_codes_remaining(conn: &Connection, user_id: i64) -> Result<i64, ApiError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM backup_codes WHERE user_id = ?1 AND used_at IS NULL")?
        .query_row([user_id], |r| r.get(0))?)
}

/// Failures of `scope`/`subject` within the window: how many, and the oldest's time.
pub fn failures_since(
    conn: &Connection,
    scope: &str,
    subject: &str,
    since: i64,
) -> Result<(u32, Option<i64>), ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(at) FROM auth_failures WHERE scope = ?1 AND subject = ?2 AND at > ?3",
        )?
        .query_row(params![scope, subject, since], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Records one failure; returns its id.
pub fn record_failure(
    conn: &Connection,
    scope: &str,
    subject: &str,
    now: i64,
) -> Result<i64, ApiError> {
    conn.prepare_cached("INSERT INTO auth_failures (scope, subject, at) VALUES (?1, ?2, ?3)")?
        .execute(params![scope, subject, now])?;
    Ok(conn.last_insert_rowid())
}

/// Takes back failure records by id (an attempt recorded ahead of its check that succeeded).
pub fn forget_failures(conn: &Connection, ids: &[i64]) -> Result<(), ApiError> {
    let mut st = conn.prepare_cached("DELETE FROM auth_failures WHERE id = ?1")?;
    for id in ids {
        st.execute([id])?;
    }
    Ok(())
}

/// Of `user_id`'s enrollment begins after `since`: how many, and, when there are at least
/// `limit` (> 0), the time of the `limit`-th newest (the one whose expiry frees a slot).
/// Both read only the `(user_id, at)` index, and the second stops after `limit` entries.
pub fn begin_calls_since(
    conn: &Connection,
    user_id: i64,
    since: i64,
    limit: u32,
) -> Result<(u64, Option<i64>), ApiError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM mfa_begin_calls WHERE user_id = ?1 AND at > ?2")?
        .query_row(params![user_id, since], |r| r.get(0))?;
    let n = n.unsigned_abs();
    if limit == 0 || n < u64::from(limit) {
        return Ok((n, None));
    }
    let frees = conn
        .prepare_cached(
            "SELECT at FROM mfa_begin_calls WHERE user_id = ?1 AND at > ?2 \
             ORDER BY at DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![user_id, since, limit - 1], |r| r.get(0))
        .optional()?;
    Ok((n, frees))
}

/// Records one enrollment begin of `user_id`.
pub fn record_begin_call(conn: &Connection, user_id: i64, now: i64) -> Result<(), ApiError> {
    conn.prepare_cached("INSERT INTO mfa_begin_calls (user_id, at) VALUES (?1, ?2)")?
        .execute(params![user_id, now])?;
    Ok(())
}

/// Forgets the failures of `scope`/`subject` (after a success).
pub fn clear_failures(conn: &Connection, scope: &str, subject: &str) -> Result<(), ApiError> {
    conn.prepare_cached("DELETE FROM auth_failures WHERE scope = ?1 AND subject = ?2")?
        .execute(params![scope, subject])?;
    Ok(())
}

/// A second-step login challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Its user.
    pub user_id: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Wrong codes so far.
    pub failures: i64,
    /// Already spent.
    pub used: bool,
}

/// Opens a challenge.
pub fn create_challenge(
    conn: &Connection,
    jti: &str,
    user_id: i64,
    expires_at: i64,
) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO mfa_challenges (jti, user_id, expires_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![jti, user_id, expires_at])?;
    Ok(())
}

/// Looks a challenge up.
pub fn challenge(conn: &Connection, jti: &str) -> Result<Option<Challenge>, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT user_id, expires_at, failures, used FROM mfa_challenges WHERE jti = ?1",
        )?
        .query_row([jti], |r| {
            Ok(Challenge {
                user_id: r.get(0)?,
                expires_at: r.get(1)?,
                failures: r.get(2)?,
                used: r.get(3)?,
            })
        })
        .optional()?)
}

/// Gives a spent challenge back after a wrong code, counting the failure against it.
pub fn reopen_challenge_after_failure(conn: &Connection, jti: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE mfa_challenges SET used = 0, failures = failures + 1 WHERE jti = ?1",
        [jti],
    )?;
    Ok(())
}

/// Spends a challenge: true for exactly one caller.
pub fn spend_challenge(conn: &Connection, jti: &str, max_failures: i64) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE mfa_challenges SET used = 1 WHERE jti = ?1 AND used = 0 AND failures < ?2",
        params![jti, max_failures],
    )? == 1)
}

/// Drops expired challenges, and failures and enrollment begins older than `older_than`.
pub fn purge(conn: &Connection, now: i64, older_than: i64) -> Result<(), ApiError> {
    conn.execute("DELETE FROM mfa_challenges WHERE expires_at <= ?1", [now])?;
    conn.execute("DELETE FROM auth_failures WHERE at <= ?1", [older_than])?;
    conn.execute("DELETE FROM mfa_begin_calls WHERE at <= ?1", [older_than])?;
    Ok(())
}

/// Drops audit events older than `before`; returns how many.
pub fn purge_events(conn: &Connection, before: i64) -> Result<usize, ApiError> {
    Ok(conn.execute("DELETE FROM mfa_events WHERE at < ?1", [before])?)
}

/// One audit event as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Cursor: pass it as `before` for the events older than this one.
    pub id: String,
    /// The event name, e.g. `confirm_success`.
    pub event: String,
    /// RFC 3339.
    pub at: String,
    /// Client IP, when known.
    pub ip: Option<String>,
    /// Client user agent, when known.
    pub user_agent: Option<String>,
    /// More about the event: the rule, host and path of `forward_auth_denied`, the failure
    /// code of `oidc_failure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Appends an audit event.
pub fn record_event(
    conn: &Connection,
    user_id: i64,
    event: &str,
    now: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO mfa_events (user_id, event, at, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![user_id, event, now, ip, user_agent])?;
    Ok(())
}

/// Appends an audit event with what it was about (e.g. the rule, host and path of a refusal).
pub fn record_event_detail(
    conn: &Connection,
    user_id: i64,
    event: &str,
    now: i64,
    ip: Option<&str>,
    detail: &str,
) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO mfa_events (user_id, event, at, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![user_id, event, now, ip, detail])?;
    Ok(())
}

/// The newest `limit` events of a user older than the event `before` (all when None),
/// newest first.
pub fn events(
    conn: &Connection,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, event, at, ip, user_agent, detail FROM mfa_events WHERE user_id = ?1 AND id < ?2 \
         ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![user_id, before.unwrap_or(i64::MAX), limit], |r| {
        Ok(Event {
            id: r.get::<_, i64>(0)?.to_string(),
            event: r.get(1)?,
            at: rfc3339(r.get(2)?),
            ip: r.get(3)?,
            user_agent: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Appends an audit event and returns its id (see [`delete_event`]).
pub fn record_event_id(
    conn: &Connection,
    user_id: i64,
    event: &str,
    now: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<i64, ApiError> {
    record_event(conn, user_id, event, now, ip, user_agent)?;
    Ok(conn.last_insert_rowid())
}

/// Takes back an event written ahead of its outcome (a password attempt that succeeded).
pub fn delete_event(conn: &Connection, id: i64) -> Result<(), ApiError> {
    conn.prepare_cached("DELETE FROM mfa_events WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
