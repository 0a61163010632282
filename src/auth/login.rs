//! Password sign-in and first-run setup (blocking: argon2 and SQLite).

use rocket::http::Status;
use rusqlite::Connection;
use subtle::ConstantTimeEq;

use super::request::ClientInfo;
use super::session::{self, random_token, NewSession};
use super::{device, jwt, password};
use crate::db::users::{self, User};
use crate::db::{in_tx, mfa as repo, sessions};
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

/// Which failure buckets a password attempt counts against (OWASP device cookies).
pub(crate) enum Buckets<'a> {
    /// A client with a valid device cookie for the account: its own bucket only.
    Device(String),
    /// Any other client: the account's untrusted-client bucket and the client's address.
    Untrusted { email: &'a str, ip: &'a str },
    /// A signed-in caller re-entering its password: the account's own bucket.
    Account(String),
}

impl Buckets<'_> {
    fn scopes(&self, c: &crate::config::Config) -> Vec<(&'static str, &str, u32)> {
        match self {
            Buckets::Device(nonce) => vec![("login_device", nonce, c.login_failures_per_account)],
            Buckets::Untrusted { email, ip } => vec![
                ("login_email", email, c.login_failures_per_account),
                ("login_ip", ip, c.login_failures_per_ip),
            ],
            Buckets::Account(id) => vec![("password_check", id, c.login_failures_per_account)],
        }
    }
}

/// Checks every bucket of the attempt and, when all have room, records a failure in each
/// before the password is checked: one atomic step, so that concurrent attempts cannot all
/// pass a check that only one of them fits. A correct password takes the records back
/// ([`repo::forget_failures`]). Returns the records' ids, or 429 with the longest wait.
pub(crate) fn reserve(app: &App, buckets: &Buckets<'_>, now: i64) -> ApiResult<Vec<i64>> {
    Ok(reserve_audited(app, buckets, now, None)?.0)
}

/// [`reserve`], also writing a `password_failure` event for `account` in the same step (taken
/// back on success): a known account then costs no extra write over an unknown one, so
/// timing does not tell which emails have accounts.
pub(crate) fn reserve_audited(
    app: &App,
    buckets: &Buckets<'_>,
    now: i64,
    account: Option<(i64, &ClientInfo)>,
) -> ApiResult<(Vec<i64>, Option<i64>)> {
    let window = app.config.failure_window_secs;
    let scopes = buckets.scopes(&app.config);
    let mut conn = app.db.get()?;
    in_tx(&mut conn, |tx| {
        let mut wait = 0;
        for &(scope, subject, limit) in &scopes {
            let (n, oldest) = repo::failures_since(tx, scope, subject, now - window)?;
            if n >= limit {
                wait = wait.max(oldest.map_or(window, |o| o + window - now).max(1));
            }
        }
        if wait > 0 {
            return Err(ApiError::rate_limited(wait as u64));
        }
        let ids = scopes
            .iter()
            .map(|&(scope, subject, _)| repo::record_failure(tx, scope, subject, now))
            .collect::<ApiResult<Vec<i64>>>()?;
        let event = match account {
            Some((user_id, c)) => Some(repo::record_event_id(
                tx,
                user_id,
                "password_failure",
                now,
                c.ip_text().as_deref(),
                c.user_agent.as_deref(),
            )?),
            None => None,
        };
        Ok((ids, event))
    })
}

/// A password sign-in attempt.
pub struct LoginRequest {
    /// As typed; trimmed and lower-cased here.
    pub email: String,
    /// As typed.
    pub password: String,
    /// The caller.
    pub client: ClientInfo,
    /// The `slugbase.device` cookie, if any.
    pub device: Option<String>,
    /// The session cookie hash and JWT handle the browser still holds (see
    /// [`super::Credential::presented_session`]): ended by a new sign-in.
    pub presented: (Option<Vec<u8>>, Option<String>),
}

/// Checks a password. Unknown emails and password-less (OIDC-only) accounts are verified
/// against a dummy hash, so every failure costs the same argon2 time and says the same thing.
/// Failures are counted per device for clients with a valid device cookie, and per account
/// and address for all others (see [`super::device`]).
pub fn login(app: &App, req: LoginRequest) -> ApiResult<LoginOutcome> {
    let now = app.now();
    let email = users::canonical_email(&req.email);
    let ip = req.client.ip_key();
    let rec = users::record_by_email(&*app.db.get()?, &email)?;
    let device = match (&rec, &req.device) {
        (Some(r), Some(v)) => device::check(&app.keys.device, v, r.user.id),
        _ => None,
    };
    let buckets = match device {
        Some(nonce) => Buckets::Device(nonce),
        None => Buckets::Untrusted {
            email: &email,
            ip: &ip,
        },
    };
    // No connection is held during the slow argon2 check.
    let account = rec.as_ref().map(|r| (r.user.id, &req.client));
    let (reserved, failure_event) = reserve_audited(app, &buckets, now, account)?;
    let hash = rec.as_ref().and_then(|r| r.password_hash.clone());
    let ok = password::verify(&req.password, hash.as_deref().unwrap_or(&app.dummy_hash))
        && hash.is_some();
    let Some(rec) = rec.filter(|_| ok) else {
        return Err(invalid());
    };
    let mut conn = app.db.get()?;
    in_tx(&mut conn, |tx| {
        repo::forget_failures(tx, &reserved)?;
        if let Some(id) = failure_event {
            repo::delete_event(tx, id)?;
        }
        if let Buckets::Device(nonce) = &buckets {
            repo::clear_failures(tx, "login_device", nonce)?;
        }
        let (hash, handle) = &req.presented;
        sessions::revoke_presented(tx, hash.as_deref(), handle.as_deref())?;
        if !rec.user.mfa_enabled {
            let s = session::create(app, tx, rec.user.id, now, false, &req.client)?;
            let (ip, agent) = (req.client.ip_text(), req.client.user_agent.as_deref());
            repo::record_event(
                tx,
                rec.user.id,
                "password_sign_in",
                now,
                ip.as_deref(),
                agent,
            )?;
            return Ok(LoginOutcome::Session(rec.user, s));
        }
        Ok(LoginOutcome::MfaRequired(pending_token(
            app,
            tx,
            rec.user.id,
            now,
        )?))
    })
}

/// Starts the second sign-in step for an account with MFA on, after its first factor (a
/// password, or an OpenID provider): a single-use challenge and the `mfa_pending` JWT naming
/// it, for `POST /api/auth/mfa/verify`.
pub fn pending_token(app: &App, tx: &Connection, user_id: i64, now: i64) -> ApiResult<String> {
    let jti = random_token(16);
    repo::create_challenge(tx, &jti, user_id, now + PENDING_TTL)?;
    let claims = jwt::Claims {
        sub: user_id.to_string(),
        sid: None,
        jti: Some(jti),
        iat: now,
        exp: now + PENDING_TTL,
        typ: jwt::MFA_PENDING.into(),
    };
    jwt::sign(&app.keys.jwt, &claims).map_err(ApiError::internal)
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
pub fn setup(
    app: &App,
    conn: &mut Connection,
    req: Setup,
    client: &ClientInfo,
) -> ApiResult<(User, NewSession)> {
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
    password::validate(&req.password, "password", &[&email, &name])?;
    let hash = password::hash(&req.password).map_err(ApiError::internal)?;
    let now = app.now();
    let out = in_tx(conn, |tx| {
        if users::any_exist(tx)? {
            return Err(closed());
        }
        let user = users::create(tx, &email, &name, true, Some(&hash), now)?;
        let s = session::create(app, tx, user.id, now, false, client)?;
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
