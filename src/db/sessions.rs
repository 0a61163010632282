//! The sessions table. A session row is what keeps both the `slugbase.sid` cookie and the
//! access JWT (through its `sid` claim) alive.

use rusqlite::{params, Connection, OptionalExtension};

use super::users::{user_at, User, USER_COLS};
use crate::error::ApiError;

/// A live session with its user.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// Session row id (the JWT's `sid`).
    pub session_id: i64,
    /// Session expiry, Unix seconds.
    pub expires_at: i64,
    /// Last time the session was seen, Unix seconds.
    pub last_seen_at: i64,
    /// Its user.
    pub user: User,
}

/// Inserts a session and returns its row id.
pub fn create(
    conn: &Connection,
    user_id: i64,
    id_hash: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<i64, ApiError> {
    conn.prepare_cached(
        "INSERT INTO sessions (user_id, id_hash, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)",
    )?
    .execute(params![user_id, id_hash, now, expires_at])?;
    Ok(conn.last_insert_rowid())
}

fn find(
    conn: &Connection,
    column: &str,
    key: &dyn rusqlite::ToSql,
    now: i64,
) -> Result<Option<SessionUser>, ApiError> {
    let sql = format!(
        "SELECT s.id, s.expires_at, s.last_seen_at, {USER_COLS} FROM sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.{column} = ?1 AND s.expires_at > ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![key, now], |r| {
            Ok(SessionUser {
                session_id: r.get(0)?,
                expires_at: r.get(1)?,
                last_seen_at: r.get(2)?,
                user: user_at(r, 3)?,
            })
        })
        .optional()?)
}

/// A live session by the hash of its cookie value.
pub fn by_hash(
    conn: &Connection,
    id_hash: &[u8],
    now: i64,
) -> Result<Option<SessionUser>, ApiError> {
    find(conn, "id_hash", &id_hash, now)
}

/// A live session by row id (from a JWT's `sid`).
pub fn by_id(conn: &Connection, id: i64, now: i64) -> Result<Option<SessionUser>, ApiError> {
    find(conn, "id", &id, now)
}

/// Revokes one session.
pub fn revoke(conn: &Connection, id: i64) -> Result<(), ApiError> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    Ok(())
}

/// Revokes every session of a user.
pub fn revoke_all(conn: &Connection, user_id: i64) -> Result<usize, ApiError> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
}

/// Drops expired sessions.
pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize, ApiError> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
}
