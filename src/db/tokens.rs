//! The api_tokens table (personal `sb_` tokens; only keyed hashes are stored).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::users::{user_at, User, USER_COLS};
use crate::clock::rfc3339;
use crate::error::ApiError;

/// A token as listed: never the token or its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Row id.
    pub id: i64,
    /// The owner's label.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null when never used.
    pub last_used_at: Option<String>,
    /// RFC 3339, or null when the token does not expire.
    pub expires_at: Option<String>,
}

/// Most tokens one account may hold.
pub const MAX_PER_USER: i64 = 50;

/// Inserts a token hash and returns the row id, or None when the user already holds
/// [`MAX_PER_USER`] live tokens. Count and insert are one statement, so racing creations cannot
/// pass the limit together.
pub fn create(
    conn: &Connection,
    user_id: i64,
    name: &str,
    hash: &[u8],
    now: i64,
    expires_at: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    let n = conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) \
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = ?1 \
         AND (expires_at IS NULL OR expires_at > ?4)) < ?6",
        params![user_id, name, hash, now, expires_at, MAX_PER_USER],
    )?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

/// A user's tokens, oldest first.
pub fn list(conn: &Connection, user_id: i64) -> Result<Vec<TokenInfo>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, created_at, last_used_at, expires_at FROM api_tokens WHERE user_id = ?1 \
         ORDER BY id",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: rfc3339(r.get(2)?),
            last_used_at: r.get::<_, Option<i64>>(3)?.map(rfc3339),
            expires_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Deletes a token of this user; false when no such token belongs to them.
pub fn delete(conn: &Connection, user_id: i64, id: i64) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2",
        params![id, user_id],
    )? == 1)
}

/// A token found by its hash, with its owner.
#[derive(Debug, Clone)]
pub struct TokenUser {
    /// Token row id.
    pub token_id: i64,
    /// When it was last used (Unix seconds), if ever.
    pub last_used_at: Option<i64>,
    /// Its owner.
    pub user: User,
}

/// The unexpired token and its owner by token hash. Read only: the caller records the use
/// through [`super::activity`].
pub fn authenticate(
    conn: &Connection,
    hash: &[u8],
    now: i64,
) -> Result<Option<TokenUser>, ApiError> {
    let sql = format!(
        "SELECT t.id, t.last_used_at, {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![hash, now], |r| {
            Ok(TokenUser {
                token_id: r.get(0)?,
                last_used_at: r.get(1)?,
                user: user_at(r, 2)?,
            })
        })
        .optional()?)
}
