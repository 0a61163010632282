//! The sign-in that waits for its second step, as the page's probe reports it: a reloaded
//! `/login/code` page shows the code step again while the pending cookie still lives.

use rusqlite::Connection;
use serde::Serialize;

use super::jwt;
use crate::db::{mfa as repo, users};
use crate::error::ApiResult;
use crate::mfa::code_error::PENDING_MAX_FAILURES;
use crate::state::App;

/// A live pending sign-in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingSignIn {
    /// The account that is signing in.
    pub email: String,
    /// When the step ends, RFC 3339.
    pub expires_at: String,
}

/// The pending sign-in of the `slugbase.mfa_pending` cookie's `token`, if it can still be
/// completed: signed, not expired, its challenge unspent with wrong codes to spare, and the
/// account still has MFA on.
pub fn lookup(app: &App, conn: &Connection, token: &str) -> ApiResult<Option<PendingSignIn>> {
    let now = app.now();
    let Some(claims) = jwt::verify(&app.keys.jwt, token, jwt::MFA_PENDING, now) else {
        return Ok(None);
    };
    let (Some(jti), Ok(sub)) = (claims.jti, claims.sub.parse::<i64>()) else {
        return Ok(None);
    };
    let Some(ch) = repo::challenge(conn, &jti)? else {
        return Ok(None);
    };
    if ch.used || ch.expires_at <= now || ch.failures >= PENDING_MAX_FAILURES || ch.user_id != sub {
        return Ok(None);
    }
    Ok(users::record_by_id(conn, sub)?
        .filter(|r| r.user.mfa_enabled)
        .map(|r| PendingSignIn {
            email: r.user.email,
            expires_at: crate::clock::rfc3339(ch.expires_at),
        }))
}
