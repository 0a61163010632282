//! Group membership (forward-auth access rules). The built-in `admins` group is the admin
//! flag, kept on the users table.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::error::ApiError;

/// The stored groups of a user, sorted (without the built-in `admins`).
pub fn of_user(conn: &Connection, user_id: i64) -> Result<Vec<String>, ApiError> {
    let mut stmt =
        conn.prepare_cached("SELECT name FROM user_groups WHERE user_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// A user's groups as access rules see them: the stored ones plus `admins` for an admin,
/// sorted.
pub fn effective(conn: &Connection, user_id: i64, is_admin: bool) -> Result<Vec<String>, ApiError> {
    let mut groups = of_user(conn, user_id)?;
    if is_admin {
        groups.push(crate::authz::ADMINS.to_string());
        groups.sort();
    }
    Ok(groups)
}

/// Every user's stored groups, by user id (for `user list`).
pub fn all(conn: &Connection) -> Result<HashMap<i64, Vec<String>>, ApiError> {
    let mut stmt = conn.prepare("SELECT user_id, name FROM user_groups ORDER BY user_id, name")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows {
        let (id, name) = row?;
        out.entry(id).or_default().push(name);
    }
    Ok(out)
}

/// Adds a user to a group; false when already in it.
pub fn add(conn: &Connection, user_id: i64, name: &str) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO user_groups (user_id, name) VALUES (?1, ?2)",
        params![user_id, name],
    )? == 1)
}

/// Removes a user from a group; false when not in it.
pub fn remove(conn: &Connection, user_id: i64, name: &str) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "DELETE FROM user_groups WHERE user_id = ?1 AND name = ?2",
        params![user_id, name],
    )? == 1)
}

/// Sets or clears the admin flag (the built-in `admins` group); false when unchanged.
pub fn set_admin(conn: &Connection, user_id: i64, admin: bool) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE users SET is_admin = ?2 WHERE id = ?1 AND is_admin != ?2",
        params![user_id, admin],
    )? == 1)
}
