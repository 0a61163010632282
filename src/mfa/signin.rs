//! The second sign-in step: a TOTP or backup code for a pending sign-in (its challenge), with
//! the answers that say how many attempts are left or that the sign-in was cancelled.

use rocket::http::Status;
use rusqlite::Connection;

use super::code_error::{code_error, pending_locked, CodeFailure, PENDING_MAX_FAILURES};
use super::service::{
    account_failures, event, failed, lockout, record, spend_code, Audit, CodeKind,
};
use crate::db::mfa as repo;
use crate::db::users::UserRecord;
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// The second login step: spends the challenge `jti` of `user_id` with a TOTP or backup code.
pub fn verify_login(
    app: &App,
    tx: &Connection,
    jti: &str,
    user_id: i64,
    code: &str,
    a: &Audit,
) -> ApiResult<UserRecord> {
    let now = app.now();
    let pending_invalid = || {
        ApiError::new(
            Status::Unauthorized,
            "MFA_PENDING_INVALID",
            "The sign-in step expired. Please sign in again",
        )
    };
    let max = PENDING_MAX_FAILURES;
    let ch = repo::challenge(tx, jti)?.ok_or_else(pending_invalid)?;
    if ch.user_id == user_id && ch.failures >= max {
        return Err(pending_locked());
    }
    if ch.used || ch.expires_at <= now || ch.user_id != user_id {
        return Err(pending_invalid());
    }
    let rec = record(tx, user_id)?;
    if !rec.user.mfa_enabled {
        return Err(pending_invalid());
    }
    lockout(app, tx, user_id, now, a)?;
    // Spend the challenge first: with the IMMEDIATE transaction this is the single winner.
    if !repo::spend_challenge(tx, jti, max)? {
        return Err(pending_invalid());
    }
    let kind = spend_code(app, tx, &rec, code, now, a);
    let kind = match kind? {
        Ok(kind) => kind,
        Err(why) => return Err(login_code_refused(app, tx, jti, &ch, why, a)?),
    };
    repo::clear_failures(tx, "mfa", &user_id.to_string())?;
    // A sign-in with a backup code is one event that says so.
    let name = match kind {
        CodeKind::Totp => "verify_success",
        CodeKind::Backup => "verify_backup_success",
    };
    event(tx, user_id, name, now, a)?;
    Ok(rec)
}

/// Counts a wrong code against the pending sign-in and the account; the error says how many
/// attempts are left, or that the fifth wrong code cancelled the sign-in.
fn login_code_refused(
    app: &App,
    tx: &Connection,
    jti: &str,
    ch: &repo::Challenge,
    why: CodeFailure,
    a: &Audit,
) -> ApiResult<ApiError> {
    let (user_id, now, max) = (ch.user_id, app.now(), PENDING_MAX_FAILURES);
    repo::reopen_challenge_after_failure(tx, jti)?;
    failed(tx, user_id, "verify_failure", now, a)?;
    // This sign-in's own count (5) usually runs out before the account's (10).
    let wrong = ch.failures + 1;
    if wrong >= max {
        return Ok(pending_locked());
    }
    let account_left =
        app.config.mfa_failures_per_account as i64 - account_failures(app, tx, user_id)?;
    let left = (max - wrong).min(account_left);
    Ok(code_error(Status::Unauthorized, why, wrong, left))
}
