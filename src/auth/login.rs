//! Password sign-in and first-run setup (blocking: argon2 and SQLite).

use rocket::http::Status;
use rusqlite::Connection;
use subtle::ConstantTimeEq;

use super::session::{self, random_token, NewSession};
use super::{jwt, password};
use crate::db::users::{self, User};
use crate::db::{in_tx, mfa as repo};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// Lifetime of the second-step token, seconds.
pub const PENDING_TTL: i64 = 300;

/// What a correct password leads to.
pub enum LoginOutcome {
    /// Signed in.
    Session(User, NewSession),
    /// MFA is on: the `mfa_pending` JWT for the second step.
    MfaRequired(String),
}

fn invalid() -> ApiError {
    ApiError::new(
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
        "The email or password is not correct",
    )
}

fn check_limit(
    app: &App,
    conn: &Connection,
    scope: &str,
    subject: &str,
    limit: u32,
    now: i64,
) -> ApiResult<()> {
    let window = app.config.failure_window_secs;
    let (n, oldest) = repo::failures_since(conn, scope, subject, now - window)?;
    if n >= limit {
        let retry = oldest.map_or(window, |o| o + window - now);
        return Err(ApiError::rate_limited(retry.max(1) as u64));
    }
    Ok(())
}

/// Checks a password. Unknown emails and password-less (OIDC-only) accounts are verified
/// against a dummy hash, so every failure costs the same argon2 time and says the same thing.
pub fn login(app: &App, email: &str, pw: &str, ip: &str) -> ApiResult<LoginOutcome> {
    let now = app.now();
    let email = email.trim().to_lowercase();
    let c = &app.config;
    // The connection goes back to the pool before the slow argon2 check.
    let rec = {
        let conn = app.db.get()?;
        let per_account = c.login_failures_per_account;
        check_limit(app, &conn, "login_email", &email, per_account, now)?;
        check_limit(app, &conn, "login_ip", ip, c.login_failures_per_ip, now)?;
        users::record_by_email(&conn, &email)?
    };
    let hash = rec.as_ref().and_then(|r| r.password_hash.clone());
    let ok = password::verify(pw, hash.as_deref().unwrap_or(&app.dummy_hash)) && hash.is_some();
    let mut conn = app.db.get()?;
    in_tx(&mut conn, |tx| {
        let Some(rec) = rec.filter(|_| ok) else {
            repo::record_failure(tx, "login_email", &email, now)?;
            repo::record_failure(tx, "login_ip", ip, now)?;
            return Err(invalid());
        };
        repo::clear_failures(tx, "login_email", &email)?;
        if !rec.user.mfa_enabled {
            let s = session::create(app, tx, rec.user.id, now)?;
            return Ok(LoginOutcome::Session(rec.user, s));
        }
        let jti = random_token(16);
        repo::create_challenge(tx, &jti, rec.user.id, now + PENDING_TTL)?;
        let claims = jwt::Claims {
            sub: rec.user.id.to_string(),
            sid: None,
            jti: Some(jti),
            iat: now,
            exp: now + PENDING_TTL,
            typ: jwt::MFA_PENDING.into(),
        };
        let token = jwt::sign(&app.keys.jwt, &claims).map_err(ApiError::internal)?;
        Ok(LoginOutcome::MfaRequired(token))
    })
}

/// The setup request.
pub struct Setup {
    /// The one-time setup token from the log.
    pub token: Option<String>,
    /// Admin email.
    pub email: String,
    /// Admin name.
    pub name: String,
    /// Admin password.
    pub password: String,
}

/// Creates the first (admin) account with the setup token; closed for good once any
/// account exists.
pub fn setup(app: &App, conn: &mut Connection, req: Setup) -> ApiResult<(User, NewSession)> {
    let closed = || {
        ApiError::new(
            Status::Forbidden,
            "SETUP_CLOSED",
            "Setup is closed: an account already exists",
        )
    };
    if users::any_exist(conn)? {
        return Err(closed());
    }
    let expected = app.setup_token.lock().ok().and_then(|t| t.clone());
    let good = match (&req.token, &expected) {
        (Some(given), Some(exp)) => bool::from(given.as_bytes().ct_eq(exp.as_bytes())),
        _ => false,
    };
    if !good {
        return Err(ApiError::new(
            Status::Forbidden,
            "SETUP_TOKEN_INVALID",
            "The setup link is missing or not valid",
        ));
    }
    let email = users::normalize_email(&req.email)?;
    let name = users::normalize_name(&req.name)?;
    password::validate(&req.password, "password")?;
    let hash = password::hash(&req.password).map_err(ApiError::internal)?;
    let now = app.now();
    let out = in_tx(conn, |tx| {
        if users::any_exist(tx)? {
            return Err(closed());
        }
        let user = users::create(tx, &email, &name, true, Some(&hash), now)?;
        let s = session::create(app, tx, user.id, now)?;
        Ok((user, s))
    })?;
    if let Ok(mut t) = app.setup_token.lock() {
        *t = None;
    }
    tracing::info!(
        user = out.0.id,
        "first admin created through setup; setup is now closed"
    );
    Ok(out)
}
