//! The users table.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::ApiError;

/// An account as the API shows it (no hashes, no secrets).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Lower-cased, trimmed email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Administrator flag.
    pub is_admin: bool,
    /// Whether the account has a local password (false for OIDC-only accounts).
    pub has_password: bool,
    /// Whether TOTP is fully enabled.
    pub mfa_enabled: bool,
    /// When TOTP was turned on, Unix seconds.
    #[serde(skip)]
    #[schema(ignore)]
    pub mfa_enrolled_at: Option<i64>,
    /// Whether a sealed TOTP secret is stored (pending while `mfa_enabled` is false).
    #[serde(skip)]
    #[schema(ignore)]
    pub mfa_has_secret: bool,
}

/// [`USER_COLS`] as a literal, for `concat!`.
macro_rules! user_cols {
    () => {
        "u.id, u.email, u.name, u.is_admin, u.password_hash IS NOT NULL, u.mfa_enabled, \
         u.mfa_enrolled_at, u.mfa_secret IS NOT NULL"
    };
}

/// The columns [`user_from_row`] expects, in order.
pub const USER_COLS: &str = user_cols!();

/// Maps a row selected with [`USER_COLS`] from column `off` on.
pub fn user_at(row: &Row<'_>, off: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(off)?,
        email: row.get(off + 1)?,
        name: row.get(off + 2)?,
        is_admin: row.get(off + 3)?,
        has_password: row.get(off + 4)?,
        mfa_enabled: row.get(off + 5)?,
        mfa_enrolled_at: row.get(off + 6)?,
        mfa_has_secret: row.get(off + 7)?,
    })
}

/// Maps a row selected with [`USER_COLS`] first.
pub fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    user_at(row, 0)
}

/// The form every email is stored and looked up in: trimmed, NFKC-normalised (so that a
/// decomposed `Ü`, or full-width `ａｌｉｃｅ`, is the same address as its usual spelling) and
/// lower-cased. No validation: see [`normalize_email`].
pub fn canonical_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // Lower-casing can leave a string that is no longer NFKC (rarely); normalise again.
    raw.trim()
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect()
}

/// [`canonical_email`], and checks its rough form.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = canonical_email(raw);
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(email)
    } else {
        Err(ApiError::validation("email", "Enter a valid email address"))
    }
}

/// Trims a display name and checks its length (1–100 characters).
pub fn normalize_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let n = name.chars().count();
    if (1..=100).contains(&n) {
        Ok(name.to_string())
    } else {
        Err(ApiError::validation(
            "name",
            "Name must be 1 to 100 characters",
        ))
    }
}

/// A user with the private columns the services need.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The public part.
    pub user: User,
    /// PHC string, or None for OIDC-only accounts.
    pub password_hash: Option<String>,
    /// Sealed TOTP secret (pending or enabled).
    pub mfa_secret: Option<Vec<u8>>,
    /// Last accepted TOTP time step.
    pub mfa_last_step: Option<i64>,
}

const RECORD_COLS: &str = concat!(
    user_cols!(),
    ", u.password_hash, u.mfa_secret, u.mfa_last_step"
);

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        user: user_from_row(row)?,
        password_hash: row.get(8)?,
        mfa_secret: row.get(9)?,
        mfa_last_step: row.get(10)?,
    })
}

/// Creates an account; `password_hash` None makes it OIDC-only.
pub fn create(
    conn: &Connection,
    email: &str,
    name: &str,
    is_admin: bool,
    password_hash: Option<&str>,
    now: i64,
) -> Result<User, ApiError> {
    let res = conn.execute(
        "INSERT INTO users (email, name, is_admin, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![email, name, is_admin, password_hash, now],
    );
    match res {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(ApiError::new(
                rocket::http::Status::Conflict,
                "EMAIL_TAKEN",
                "An account with this email already exists",
            )
            .with_details(serde_json::json!({"field": "email"})))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(User {
            id: conn.last_insert_rowid(),
            email: email.to_string(),
            name: name.to_string(),
            is_admin,
            has_password: password_hash.is_some(),
            mfa_enabled: false,
            mfa_enrolled_at: None,
            mfa_has_secret: false,
        }),
    }
}

/// Rewrites stored emails into [`canonical_email`] form (once per database: `user_version`
/// 1 marks it done). Two accounts whose addresses become equal stop it with an error naming
/// both, and nothing is changed.
pub fn canonicalize_stored_emails(conn: &mut Connection) -> Result<usize, String> {
    let err = |e: rusqlite::Error| format!("cannot normalise stored emails: {e}");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version >= 1 {
        return Ok(0);
    }
    let tx = conn.transaction().map_err(err)?;
    let rows: Vec<(i64, String)> = {
        let mut st = tx
            .prepare("SELECT id, email FROM users ORDER BY id")
            .map_err(err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)?
    };
    let mut seen = std::collections::HashMap::new();
    let mut changes = Vec::new();
    for (id, email) in &rows {
        let canon = canonical_email(email);
        if let Some(other) = seen.insert(canon.clone(), email.clone()) {
            return Err(format!(
                "two accounts have the same email once normalised ({other:?} and {email:?} are \
                 both {canon:?}): delete or rename one with an older slugbase, then start again"
            ));
        }
        if &canon != email {
            changes.push((*id, canon));
        }
    }
    // Two passes, so that no intermediate state breaks the UNIQUE constraint.
    for (id, _) in &changes {
        tx.execute(
            "UPDATE users SET email = '~' || id || '~' || email WHERE id = ?1",
            [id],
        )
        .map_err(err)?;
    }
    for (id, canon) in &changes {
        tx.execute(
            "UPDATE users SET email = ?1 WHERE id = ?2",
            params![canon, id],
        )
        .map_err(err)?;
    }
    tx.execute_batch("PRAGMA user_version = 1").map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(changes.len())
}

/// Finds a user (with private columns) by normalized email.
pub fn record_by_email(conn: &Connection, email: &str) -> Result<Option<UserRecord>, ApiError> {
    let sql = format!("SELECT {RECORD_COLS} FROM users u WHERE u.email = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([email], record_from_row)
        .optional()?)
}

/// Finds a user (with private columns) by id.
pub fn record_by_id(conn: &Connection, id: i64) -> Result<Option<UserRecord>, ApiError> {
    let sql = format!("SELECT {RECORD_COLS} FROM users u WHERE u.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], record_from_row)
        .optional()?)
}

/// Every user, by id.
pub fn list(conn: &Connection) -> Result<Vec<User>, ApiError> {
    let sql = format!("SELECT {USER_COLS} FROM users u ORDER BY u.id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Whether any account exists (closes first-run setup).
pub fn any_exist(conn: &Connection) -> Result<bool, ApiError> {
    Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?)
}

/// Replaces the password hash; the caller ends whatever credentials the change should end.
pub fn set_password(conn: &Connection, id: i64, hash: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, id],
    )?;
    Ok(())
}

/// Replaces the password hash if it is still `old`; false when another change came first.
pub fn replace_password(
    conn: &Connection,
    id: i64,
    old: &str,
    new: &str,
) -> Result<bool, ApiError> {
    Ok(conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2 AND password_hash = ?3",
        params![new, id, old],
    )? == 1)
}

/// Deletes a user; sessions, tokens, codes and events go with it (ON DELETE CASCADE).
pub fn delete(conn: &Connection, id: i64) -> Result<bool, ApiError> {
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [id])? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@x", "ann@", "a b@x", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_fold_unicode_forms() {
        let nfc = normalize_email("\u{dc}n\u{ef}c\u{f6}d\u{e9}@ex\u{e4}mple.com").unwrap();
        let nfd =
            normalize_email("U\u{308}ni\u{308}co\u{308}de\u{301}@exa\u{308}mple.com").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(nfc, "\u{fc}n\u{ef}c\u{f6}d\u{e9}@ex\u{e4}mple.com");
        let wide = normalize_email("\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}@example.com").unwrap();
        assert_eq!(wide, "alice@example.com");
    }

    #[test]
    fn name_length() {
        assert_eq!(normalize_name("  Ann ").unwrap(), "Ann");
        assert!(normalize_name("   ").is_err());
        assert!(normalize_name(&"x".repeat(101)).is_err());
    }
}
