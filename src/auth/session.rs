//! Starting and ending browser sessions, and the cookies that carry them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;

use super::{jwt, session_hash, PENDING_COOKIE, SID_COOKIE, TOKEN_COOKIE};
use crate::db::sessions;
use crate::error::ApiError;
use crate::state::App;

/// `n` random bytes from the OS CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new session's credentials, to be put in cookies.
pub struct NewSession {
    /// The opaque `slugbase.sid` value (256 random bits).
    pub sid: String,
    /// The access JWT.
    pub access: String,
    /// Seconds until the session expires.
    pub ttl: i64,
}

/// Creates a session row for `user_id` (inside the caller's connection or transaction) and
/// signs its access JWT.
pub fn create(
    app: &App,
    conn: &rusqlite::Connection,
    user_id: i64,
    now: i64,
) -> Result<NewSession, ApiError> {
    let sid = random_token(32);
    let ttl = app.config.session_ttl_secs.max(60);
    let expires = now + ttl;
    let row = sessions::create(conn, user_id, &session_hash(app, &sid), now, expires)?;
    let claims = jwt::Claims {
        sub: user_id.to_string(),
        sid: Some(row),
        jti: None,
        iat: now,
        exp: (now + app.config.access_ttl_secs.max(60)).min(expires),
        typ: jwt::ACCESS.into(),
    };
    let access = jwt::sign(&app.keys.jwt, &claims).map_err(ApiError::internal)?;
    Ok(NewSession { sid, access, ttl })
}

fn cookie(app: &App, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(app.config.cookie_secure)
        .max_age(Duration::seconds(max_age))
        .build()
}

/// Sets `slugbase.sid` and `token`, and drops any second-step cookie.
pub fn set_cookies(app: &App, jar: &CookieJar<'_>, s: NewSession) {
    jar.add(cookie(app, SID_COOKIE, s.sid, s.ttl));
    jar.add(cookie(app, TOKEN_COOKIE, s.access, s.ttl));
    if jar.get(PENDING_COOKIE).is_some() {
        expire(app, jar, PENDING_COOKIE);
    }
}

/// Tells the browser to drop a cookie, whether or not this request carried it.
pub fn expire(app: &App, jar: &CookieJar<'_>, name: &'static str) {
    let mut c = cookie(app, name, String::new(), 0);
    c.set_expires(rocket::time::OffsetDateTime::UNIX_EPOCH);
    jar.add(c);
}

/// Sets the second-step cookie.
pub fn set_pending_cookie(app: &App, jar: &CookieJar<'_>, token: String, ttl: i64) {
    jar.add(cookie(app, PENDING_COOKIE, token, ttl));
}

/// Clears every auth cookie.
pub fn clear_cookies(app: &App, jar: &CookieJar<'_>) {
    for name in [SID_COOKIE, TOKEN_COOKIE, PENDING_COOKIE] {
        expire(app, jar, name);
    }
}
