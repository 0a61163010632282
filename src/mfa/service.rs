//! MFA service logic. Every function is synchronous. The writes take a connection that is
//! already inside a write transaction (the writer thread's, see [`crate::db::writer`], or
//! [`in_tx`]), and each write that two requests could race on is a conditional update in it.

use rand::RngCore;
use rocket::http::Status;
use rusqlite::Connection;
use serde::Serialize;

use super::backup::{self, CodeInput};
use super::code_error::{code_error, CodeFailure};
pub use super::signin::verify_login;
use super::{otpauth_url, seal, secret_base32, totp};
use crate::db::users::{self, User, UserRecord};
use crate::db::{in_tx, mfa as repo, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

pub use super::step_up::{check_password, disable, regenerate, spend_step_code, StepUp};

/// Who did it, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

/// Writes one audit event.
pub fn event(conn: &Connection, user_id: i64, name: &str, now: i64, a: &Audit) -> ApiResult<()> {
    repo::record_event(
        conn,
        user_id,
        name,
        now,
        a.ip.as_deref(),
        a.user_agent.as_deref(),
    )
}

/// The begin response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Begin {
    /// URI for QR codes and authenticator import.
    pub otpauth_url: String,
    /// Base32 secret for manual entry.
    pub secret: String,
}

/// The status response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    /// MFA fully on.
    pub enabled: bool,
    /// RFC 3339 or null.
    pub enrolled_at: Option<String>,
    /// A secret awaits confirmation.
    pub pending: bool,
    /// Unused backup codes.
    pub backup_codes_remaining: i64,
}

/// 409 `MFA_ALREADY_ENABLED`.
pub fn already_enabled() -> ApiError {
    ApiError::new(
        Status::Conflict,
        "MFA_ALREADY_ENABLED",
        "MFA is already enabled for this account",
    )
}

/// A code check: which kind of code was spent, or why the code was refused.
pub(super) type Spent = Result<CodeKind, CodeFailure>;

/// Which kind of code was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeKind {
    /// A TOTP.
    Totp,
    /// A backup code.
    Backup,
}

/// The error for a refused code, after [`failed`] counted it: the attempts left are the
/// account's (`mfa_failures_per_account` in the failure window).
pub(super) fn refused(
    app: &App,
    tx: &Connection,
    user_id: i64,
    status: Status,
    why: CodeFailure,
) -> ApiError {
    match account_failures(app, tx, user_id) {
        Ok(n) => code_error(
            status,
            why,
            n,
            app.config.mfa_failures_per_account as i64 - n,
        ),
        Err(e) => e,
    }
}

/// Wrong codes of the account within the failure window.
pub(super) fn account_failures(app: &App, tx: &Connection, user_id: i64) -> ApiResult<i64> {
    let since = app.now() - app.config.failure_window_secs;
    Ok(repo::failures_since(tx, "mfa", &user_id.to_string(), since)?.0 as i64)
}

/// The account with its private columns; 401 when it is gone.
pub fn record(tx: &Connection, user_id: i64) -> ApiResult<UserRecord> {
    users::record_by_id(tx, user_id)?.ok_or_else(ApiError::unauthorized)
}

/// Refuses every code attempt while the account has too many recent failures.
pub(super) fn lockout(
    app: &App,
    tx: &Connection,
    user_id: i64,
    now: i64,
    a: &Audit,
) -> ApiResult<()> {
    let window = app.config.failure_window_secs;
    let (n, oldest) = repo::failures_since(tx, "mfa", &user_id.to_string(), now - window)?;
    if n >= app.config.mfa_failures_per_account {
        event(tx, user_id, "rate_limited", now, a)?;
        let retry = oldest.map_or(window, |o| o + window - now);
        return Err(ApiError::rate_limited(retry.max(1) as u64));
    }
    Ok(())
}

/// Counts a failed code attempt against the account and audits it.
pub(super) fn failed(
    tx: &Connection,
    user_id: i64,
    name: &str,
    now: i64,
    a: &Audit,
) -> ApiResult<()> {
    repo::record_failure(tx, "mfa", &user_id.to_string(), now)?;
    event(tx, user_id, name, now, a)
}

fn unsealed(app: &App, rec: &UserRecord) -> ApiResult<Vec<u8>> {
    let sealed = rec
        .mfa_secret
        .as_deref()
        .ok_or_else(|| ApiError::internal("MFA secret missing"))?;
    seal::unseal(&app.keys.seal, rec.user.id, sealed).map_err(ApiError::internal)
}

/// Checks a TOTP against the user's secret and spends its step.
fn spend_totp(
    app: &App,
    tx: &Connection,
    rec: &UserRecord,
    code: &str,
    now: i64,
    a: &Audit,
) -> ApiResult<Spent> {
    let secret = unsealed(app, rec)?;
    match totp::verify(&secret, code, now, rec.mfa_last_step) {
        totp::Check::Accepted(step) if repo::accept_step(tx, rec.user.id, step)? => {
            Ok(Ok(CodeKind::Totp))
        }
        totp::Check::Accepted(_) | totp::Check::Replay => {
            event(tx, rec.user.id, "totp_replay_rejected", now, a)?;
            Ok(Err(CodeFailure::Replay))
        }
        totp::Check::Drift => Ok(Err(CodeFailure::Drift)),
        totp::Check::Invalid => Ok(Err(CodeFailure::Wrong)),
    }
}

/// Checks a TOTP or an unused backup code (consuming it). The caller audits a spent backup
/// code (a sign-in with one is one event, not two).
pub(super) fn spend_code(
    app: &App,
    tx: &Connection,
    rec: &UserRecord,
    code: &str,
    now: i64,
    a: &Audit,
) -> ApiResult<Spent> {
    match backup::classify(code) {
        CodeInput::Totp(c) => spend_totp(app, tx, rec, &c, now, a),
        CodeInput::Backup(c) => {
            let h = backup::hash(&app.keys.backup, rec.user.id, &c);
            if !repo::spend_backup_code(tx, rec.user.id, &h, now)? {
                return Ok(Err(CodeFailure::Wrong));
            }
            Ok(Ok(CodeKind::Backup))
        }
        CodeInput::Malformed => Ok(Err(CodeFailure::Wrong)),
    }
}

/// Starts (or restarts) enrollment with a fresh 20-byte secret. In a write transaction.
pub fn begin(app: &App, tx: &Connection, user_id: i64, a: &Audit) -> ApiResult<Begin> {
    let now = app.now();
    {
        let rec = record(tx, user_id)?;
        if rec.user.mfa_enabled {
            return Err(already_enabled());
        }
        let mut secret = [0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let sealed = seal::seal(&app.keys.seal, user_id, &secret).map_err(ApiError::internal)?;
        if !repo::set_pending(tx, user_id, &sealed)? {
            return Err(already_enabled());
        }
        event(tx, user_id, "begin", now, a)?;
        Ok(Begin {
            otpauth_url: otpauth_url(&app.config.mfa_issuer, &rec.user.email, &secret),
            secret: secret_base32(&secret),
        })
    }
}

/// Confirms enrollment with a TOTP from the pending secret; returns the backup codes. In a
/// write transaction.
///
/// The account's other sessions end (they never passed the new second factor); `session`, the
/// caller's, is kept and marked as having passed it.
pub fn confirm(
    app: &App,
    tx: &Connection,
    user_id: i64,
    session: Option<i64>,
    code: &str,
    a: &Audit,
) -> ApiResult<Vec<String>> {
    let now = app.now();
    {
        let rec = record(tx, user_id)?;
        if rec.user.mfa_enabled {
            return Err(already_enabled());
        }
        let Some(sealed) = rec.mfa_secret.clone() else {
            return Err(ApiError::new(
                Status::BadRequest,
                "MFA_NO_PENDING",
                "No MFA enrollment is pending",
            ));
        };
        lockout(app, tx, user_id, now, a)?;
        let spent = match backup::classify(code) {
            CodeInput::Totp(c) => spend_totp(app, tx, &rec, &c, now, a)?,
            _ => Err(CodeFailure::Wrong),
        };
        if let Err(why) = spent {
            failed(tx, user_id, "confirm_failure", now, a)?;
            return Err(refused(app, tx, user_id, Status::BadRequest, why));
        }
        if !repo::enable(tx, user_id, &sealed, now)? {
            return Err(already_enabled());
        }
        let (codes, hashes) = backup::generate(&app.keys.backup, user_id);
        repo::replace_backup_codes(tx, user_id, &hashes)?;
        repo::clear_failures(tx, "mfa", &user_id.to_string())?;
        sessions::revoke_others(tx, user_id, session)?;
        if let Some(id) = session {
            sessions::mark_mfa(tx, id, now)?;
        }
        event(tx, user_id, "confirm_success", now, a)?;
        Ok(codes)
    }
}

/// Drops a pending secret; idempotent. In a write transaction.
pub fn cancel(app: &App, tx: &Connection, user_id: i64, a: &Audit) -> ApiResult<()> {
    let now = app.now();
    let rec = record(tx, user_id)?;
    if rec.user.mfa_enabled {
        return Err(already_enabled());
    }
    // Nothing pending: nothing happened, so nothing is written to the audit trail (repeated
    // no-op cancels would otherwise push real events out of view).
    if repo::clear_pending(tx, user_id)? {
        event(tx, user_id, "cancel", now, a)?;
    }
    Ok(())
}

/// The pending enrollment's key again (a reloaded page shows the key already scanned); 404
/// `MFA_NO_PENDING` when none is pending. Once MFA is on, the secret is never shown again.
pub fn pending(app: &App, conn: &Connection, user_id: i64) -> ApiResult<Begin> {
    let rec = record(conn, user_id)?;
    if rec.user.mfa_enabled || rec.mfa_secret.is_none() {
        return Err(ApiError::new(
            Status::NotFound,
            "MFA_NO_PENDING",
            "No MFA enrollment is pending",
        ));
    }
    let secret = unsealed(app, &rec)?;
    Ok(Begin {
        otpauth_url: otpauth_url(&app.config.mfa_issuer, &rec.user.email, &secret),
        secret: secret_base32(&secret),
    })
}

/// The caller's MFA status: the user row comes with the credential lookup, so only an
/// enabled account costs a query (its unused backup codes).
pub fn status(conn: &Connection, user: &User) -> ApiResult<MfaStatus> {
    let backup_codes_remaining = if user.mfa_enabled {
        repo::backup_codes_remaining(conn, user.id)?
    } else {
        0
    };
    Ok(MfaStatus {
        enabled: user.mfa_enabled,
        enrolled_at: user.mfa_enrolled_at.map(crate::clock::rfc3339),
        pending: !user.mfa_enabled && user.mfa_has_secret,
        backup_codes_remaining,
    })
}

/// Clears MFA for a user who lost their device (CLI), and ends every session, pending sign-in
/// and API token of the account: a reset is what an operator does for a lost or compromised
/// device, so nothing it may have held survives.
pub fn admin_reset(app: &App, conn: &mut Connection, user_id: i64) -> ApiResult<sessions::Ended> {
    let now = app.now();
    in_tx(conn, |tx| {
        repo::disable(tx, user_id)?;
        let ended = sessions::end_credentials(tx, user_id, None, true)?;
        event(tx, user_id, "admin_reset", now, &cli_audit())?;
        Ok(ended)
    })
}

/// The audit facts of a CLI command.
pub fn cli_audit() -> Audit {
    Audit {
        ip: None,
        user_agent: Some("slugbase cli".into()),
    }
}
