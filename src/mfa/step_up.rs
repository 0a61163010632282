//! Step-up checks: disabling MFA, replacing backup codes and re-authenticating (tokens) ask
//! for the password (accounts that have one) and a code. The password half runs outside any
//! transaction (argon2 must not hold the write lock); the code half in the caller's write.

use rocket::http::Status;
use rusqlite::Connection;

use super::backup;
use super::service::{event, failed, lockout, record, refused, spend_code, Audit, CodeKind};
use crate::auth::password;
use crate::db::users::UserRecord;
use crate::db::{in_tx, mfa as repo, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

fn require_enabled(rec: &UserRecord) -> ApiResult<()> {
    if rec.user.mfa_enabled {
        return Ok(());
    }
    Err(ApiError::new(
        Status::BadRequest,
        "MFA_NOT_ENABLED",
        "MFA is not enabled for this account",
    ))
}

/// First half of the disable/regenerate checks (and of re-authentication): MFA on (with
/// `require_mfa`), no lockout, and the password for accounts that have one. The lockout check
/// and a failure record for this attempt are one write, before argon2 (which never holds the
/// write lock), so concurrent wrong passwords cannot all pass a check that only some of them
/// fit; a correct password takes the record back. Blocking (argon2); `fail_event` names the
/// audit event of a wrong password. Callers skip it for accounts without a password; the
/// second half ([`disable`], [`regenerate`]) refuses if one appeared meanwhile.
pub fn check_password(
    app: &App,
    user_id: i64,
    pw: Option<&str>,
    fail_event: &str,
    a: &Audit,
    require_mfa: bool,
) -> ApiResult<()> {
    let now = app.now();
    // The connection goes back to the pool while argon2 runs.
    let reserved = in_tx(&mut *app.db.get()?, |tx| {
        let rec = record(tx, user_id)?;
        if require_mfa {
            require_enabled(&rec)?;
        }
        lockout(app, tx, user_id, now, a)?;
        let Some(hash) = rec.password_hash else {
            return Ok(None);
        };
        if pw.is_none() {
            return Err(password_required());
        }
        let id = repo::record_failure(tx, "mfa", &user_id.to_string(), now)?;
        Ok(Some((hash, id)))
    })?;
    let (Some((hash, id)), Some(pw)) = (reserved, pw) else {
        return Ok(());
    };
    let verified = password::verify(pw, &hash);
    let mut conn = app.db.get()?;
    if verified {
        return in_tx(&mut conn, |tx| repo::forget_failures(tx, &[id]));
    }
    in_tx(&mut conn, |tx| event(tx, user_id, fail_event, now, a))?;
    Err(ApiError::new(
        Status::Unauthorized,
        "INVALID_PASSWORD",
        "The password is not correct",
    ))
}

/// Second half, in the caller's transaction: the state is read again (it may have changed
/// during the password check) and the code is spent.
fn check_code(app: &App, tx: &Connection, step: &StepUp, fail_event: &str) -> ApiResult<()> {
    let rec = record(tx, step.user_id)?;
    require_enabled(&rec)?;
    if rec.password_hash.is_some() && !step.password_checked {
        return Err(password_required());
    }
    spend_step_code(app, tx, &rec, &step.code, &step.audit, fail_event)
}

/// Spends a TOTP or backup code of an account with MFA on, under the code lockout; a wrong
/// one is counted and audited as `fail_event` (400 `INVALID_CODE`, or `CODE_ALREADY_USED` for
/// a replayed TOTP). In a write transaction.
pub fn spend_step_code(
    app: &App,
    tx: &Connection,
    rec: &UserRecord,
    code: &str,
    a: &Audit,
    fail_event: &str,
) -> ApiResult<()> {
    let (user_id, now) = (rec.user.id, app.now());
    require_enabled(rec)?;
    lockout(app, tx, user_id, now, a)?;
    match spend_code(app, tx, rec, code, now, a)? {
        Err(why) => {
            failed(tx, user_id, fail_event, now, a)?;
            return Err(refused(app, tx, user_id, Status::BadRequest, why));
        }
        Ok(CodeKind::Backup) => event(tx, user_id, "backup_code_used", now, a)?,
        Ok(CodeKind::Totp) => {}
    }
    repo::clear_failures(tx, "mfa", &user_id.to_string())
}

fn password_required() -> ApiError {
    ApiError::new(
        Status::BadRequest,
        "PASSWORD_REQUIRED",
        "Enter your password",
    )
    .with_details(serde_json::json!({"field": "password"}))
}

/// A disable or regenerate request, after its password check.
#[derive(Debug, Clone)]
pub struct StepUp {
    /// The caller.
    pub user_id: i64,
    /// TOTP or backup code.
    pub code: String,
    /// Whether [`check_password`] passed (false for accounts without a password).
    pub password_checked: bool,
    /// The caller's session, which survives a disable.
    pub session: Option<i64>,
    /// Who asked.
    pub audit: Audit,
}

/// Turns MFA off; the secret and backup codes go in the same transaction, and the account's
/// other sessions end. In a write transaction.
pub fn disable(app: &App, tx: &Connection, step: &StepUp) -> ApiResult<()> {
    check_code(app, tx, step, "disable_failure")?;
    repo::disable(tx, step.user_id)?;
    sessions::revoke_others(tx, step.user_id, step.session)?;
    event(tx, step.user_id, "disable_success", app.now(), &step.audit)
}

/// Replaces the backup codes; the old ones die in the same transaction. In a write
/// transaction.
pub fn regenerate(app: &App, tx: &Connection, step: &StepUp) -> ApiResult<Vec<String>> {
    check_code(app, tx, step, "regenerate_failure")?;
    let (codes, hashes) = backup::generate(&app.keys.backup, step.user_id);
    repo::replace_backup_codes(tx, step.user_id, &hashes)?;
    event(tx, step.user_id, "regenerate", app.now(), &step.audit)?;
    Ok(codes)
}
