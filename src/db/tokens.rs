//! The api_tokens table (personal `sb_` tokens; only keyed hashes are stored).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::users::{user_at, User, USER_COLS};
use crate::clock::rfc3339;
use crate::error::ApiError;

/// A token as listed: never the token or its hash.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// Row id.
    pub id: i64,
    /// The owner's label.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null when never used.
    pub last_used_at: Option<String>,
}

/// Inserts a token hash and returns the row id.
pub fn create(
    conn: &Connection,
    user_id: i64,
    name: &str,
    hash: &[u8],
    now: i64,
) -> Result<i64, ApiError> {
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![user_id, name, hash, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A user's tokens, oldest first.
pub fn list(conn: &Connection, user_id: i64) -> Result<Vec<TokenInfo>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: rfc3339(r.get(2)?),
            last_used_at: r.get::<_, Option<i64>>(3)?.map(rfc3339),
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

/// The token and its owner by token hash. Read only: the caller records the use through
/// [`super::activity`].
pub fn authenticate(conn: &Connection, hash: &[u8]) -> Result<Option<TokenUser>, ApiError> {
    let sql = format!(
        "SELECT t.id, t.last_used_at, {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ?1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([hash], |r| {
            Ok(TokenUser {
                token_id: r.get(0)?,
                last_used_at: r.get(1)?,
                user: user_at(r, 2)?,
            })
        })
        .optional()?)
}
