//! The sessions table. A session row is what keeps both the `slugbase.sid` cookie (by the
//! keyed hash of its value) and the access JWT (by the random handle in its `sid` claim) alive.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::users::{user_at, User, USER_COLS};
use crate::clock::rfc3339;
use crate::error::ApiError;

/// A live session with its user.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// Session row id (internal only: never in a JWT, a cookie or an API answer).
    pub session_id: i64,
    /// The random handle its JWTs name.
    pub handle: String,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Session expiry, Unix seconds.
    pub expires_at: i64,
    /// Last time the session was seen, Unix seconds (as written; recent uses may still be in
    /// [`super::activity`]).
    pub last_seen_at: i64,
    /// When the session last proved the account's factors, Unix seconds.
    pub auth_at: i64,
    /// Whether it passed a second factor.
    pub mfa: bool,
    /// Its user.
    pub user: User,
}

/// What a new session row holds.
#[derive(Debug, Clone)]
pub struct NewRow {
    /// Its account.
    pub user_id: i64,
    /// Keyed hash of the `slugbase.sid` value.
    pub id_hash: Vec<u8>,
    /// The handle its JWTs name (128 random bits or more).
    pub handle: String,
    /// The opaque id the sessions list shows.
    pub public_id: String,
    /// Absolute expiry, Unix seconds.
    pub expires_at: i64,
    /// Whether the sign-in passed a second factor.
    pub mfa: bool,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
}

#[cfg(test)]
impl NewRow {
    /// A row with made-up handles, for repository tests.
    pub fn test(user_id: i64, id_hash: &[u8]) -> NewRow {
        NewRow {
            user_id,
            id_hash: id_hash.to_vec(),
            handle: format!("h{id_hash:?}"),
            public_id: format!("p{id_hash:?}"),
            expires_at: i64::MAX,
            mfa: false,
            ip: None,
            user_agent: None,
        }
    }
}

/// Inserts a session; returns its row id and the row as given.
pub fn create(conn: &Connection, row: &NewRow, now: i64) -> Result<(i64, NewRow), ApiError> {
    conn.prepare_cached(
        "INSERT INTO sessions (user_id, id_hash, handle, public_id, created_at, last_seen_at, \
         expires_at, auth_at, mfa, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?5, ?7, ?8, ?9)",
    )?
    .execute(params![
        row.user_id,
        row.id_hash,
        row.handle,
        row.public_id,
        now,
        row.expires_at,
        row.mfa,
        row.ip,
        row.user_agent
    ])?;
    Ok((conn.last_insert_rowid(), row.clone()))
}

fn find(
    conn: &Connection,
    column: &str,
    key: &dyn rusqlite::ToSql,
    now: i64,
) -> Result<Option<SessionUser>, ApiError> {
    let sql = format!(
        "SELECT s.id, s.handle, s.created_at, s.expires_at, s.last_seen_at, s.auth_at, s.mfa, \
         {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.{column} = ?1 AND s.expires_at > ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![key, now], |r| {
            Ok(SessionUser {
                session_id: r.get(0)?,
                handle: r.get(1)?,
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
                last_seen_at: r.get(4)?,
                auth_at: r.get(5)?,
                mfa: r.get(6)?,
                user: user_at(r, 7)?,
            })
        })
        .optional()?)
}

/// A session that has not reached its absolute expiry, by the hash of its cookie value. The
/// caller checks the idle timeout.
pub fn by_hash(
    conn: &Connection,
    id_hash: &[u8],
    now: i64,
) -> Result<Option<SessionUser>, ApiError> {
    find(conn, "id_hash", &id_hash, now)
}

/// A session that has not reached its absolute expiry, by the handle a JWT names. The caller
/// checks the idle timeout.
pub fn by_handle(
    conn: &Connection,
    handle: &str,
    now: i64,
) -> Result<Option<SessionUser>, ApiError> {
    find(conn, "handle", &handle, now)
}

/// One session as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Listed {
    /// Opaque id (neither the row id nor the handle).
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_seen_at: String,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Whether this is the session of the request that lists them.
    pub current: bool,
    /// Whether the session passed a second factor.
    pub mfa: bool,
    /// Row id, to mark the current one and merge unwritten activity.
    #[serde(skip)]
    #[schema(ignore)]
    pub row: i64,
}

/// A user's sessions that have not reached their absolute expiry or `idle_before`, newest
/// first. `last_seen` gives recorded-but-unwritten activity of a row.
pub fn list(
    conn: &Connection,
    user_id: i64,
    now: i64,
    idle_before: i64,
    current: Option<i64>,
    last_seen: impl Fn(i64) -> Option<i64>,
) -> Result<Vec<Listed>, ApiError> {
    let mut st = conn.prepare_cached(
        "SELECT id, public_id, created_at, last_seen_at, ip, user_agent, mfa FROM sessions \
         WHERE user_id = ?1 AND expires_at > ?2 ORDER BY id DESC",
    )?;
    let rows = st.query_map(params![user_id, now], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, public_id, created, seen, ip, user_agent, mfa) = row?;
        let seen = last_seen(id).map_or(seen, |t| t.max(seen));
        if seen <= idle_before {
            continue;
        }
        out.push(Listed {
            id: public_id,
            created_at: rfc3339(created),
            last_seen_at: rfc3339(seen),
            ip,
            user_agent,
            current: current == Some(id),
            mfa,
            row: id,
        });
    }
    Ok(out)
}

/// Ends the session `public_id` of `user_id`; returns its row id, or None when the user has
/// no such session.
pub fn revoke_public(
    conn: &Connection,
    user_id: i64,
    public_id: &str,
) -> Result<Option<i64>, ApiError> {
    Ok(conn
        .query_row(
            "DELETE FROM sessions WHERE user_id = ?1 AND public_id = ?2 RETURNING id",
            params![user_id, public_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Ends every session of `user_id` but `keep`; returns how many ended.
pub fn revoke_others(
    conn: &Connection,
    user_id: i64,
    keep: Option<i64>,
) -> Result<usize, ApiError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id IS NOT ?2",
        params![user_id, keep],
    )?)
}

/// Revokes one session.
pub fn revoke(conn: &Connection, id: i64) -> Result<(), ApiError> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    Ok(())
}

/// Revokes the session behind a cookie hash or a JWT handle, whoever's it is (a new sign-in
/// replaces the session the browser still holds).
pub fn revoke_presented(
    conn: &Connection,
    id_hash: Option<&[u8]>,
    handle: Option<&str>,
) -> Result<usize, ApiError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE id_hash = ?1 OR handle = ?2",
        params![id_hash, handle],
    )?)
}

/// Marks a session as having just proved a second factor (MFA turned on in it).
pub fn mark_mfa(conn: &Connection, id: i64, now: i64) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE sessions SET mfa = 1, auth_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Revokes every session of a user.
pub fn revoke_all(conn: &Connection, user_id: i64) -> Result<usize, ApiError> {
    revoke_others(conn, user_id, None)
}

/// What a reset ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    /// Sessions.
    pub sessions: usize,
    /// Pending sign-ins (second-step challenges).
    pub pending: usize,
    /// API tokens.
    pub tokens: usize,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        write!(
            f,
            "ended {}, {} and {}",
            n(self.sessions, "session", "sessions"),
            n(self.pending, "pending sign-in", "pending sign-ins"),
            n(self.tokens, "API token", "API tokens")
        )
    }
}

/// Ends every session and pending sign-in of a user, and with `tokens` every API token too.
pub fn end_credentials(
    conn: &Connection,
    user_id: i64,
    keep_session: Option<i64>,
    tokens: bool,
) -> Result<Ended, ApiError> {
    Ok(Ended {
        sessions: revoke_others(conn, user_id, keep_session)?,
        pending: conn.execute("DELETE FROM mfa_challenges WHERE user_id = ?1", [user_id])?,
        tokens: if tokens {
            conn.execute("DELETE FROM api_tokens WHERE user_id = ?1", [user_id])?
        } else {
            0
        },
    })
}

/// Drops sessions past their absolute expiry or unused since `idle_before`.
pub fn purge_expired(conn: &Connection, now: i64, idle_before: i64) -> Result<usize, ApiError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![now, idle_before],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_reads_well() {
        let e = Ended {
            sessions: 1,
            pending: 0,
            tokens: 3,
        };
        assert_eq!(
            e.to_string(),
            "ended 1 session, 0 pending sign-ins and 3 API tokens"
        );
    }
}
