//! Starting and ending browser sessions, and the cookies that carry them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;

use super::request::ClientInfo;
use super::{device, jwt, session_hash, DEVICE_COOKIE, PENDING_COOKIE, SID_COOKIE, TOKEN_COOKIE};
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
    /// The account.
    pub user_id: i64,
    /// The opaque `slugbase.sid` value (256 random bits).
    pub sid: String,
    /// The access JWT.
    pub access: String,
    /// Seconds until the session expires.
    pub ttl: i64,
    /// Seconds until the access JWT expires.
    pub access_ttl: i64,
}

/// Signs an access JWT for the session `handle` of `user_id`, valid until `exp`.
pub fn access_jwt(
    app: &App,
    user_id: i64,
    handle: &str,
    now: i64,
    exp: i64,
) -> Result<String, ApiError> {
    let claims = jwt::Claims {
        sub: user_id.to_string(),
        sid: Some(handle.to_string()),
        jti: None,
        iat: now,
        exp,
        typ: jwt::ACCESS.into(),
    };
    jwt::sign(&app.keys.jwt, &claims).map_err(ApiError::internal)
}

/// Creates a session row for `user_id` (inside the caller's connection or transaction) and
/// signs its access JWT. `mfa`: whether this sign-in passed a second factor.
pub fn create(
    app: &App,
    conn: &rusqlite::Connection,
    user_id: i64,
    now: i64,
    mfa: bool,
    client: &ClientInfo,
) -> Result<NewSession, ApiError> {
    let sid = random_token(32);
    let ttl = app.config.session_ttl_secs;
    let expires = now + ttl;
    let row = sessions::NewRow {
        user_id,
        id_hash: session_hash(app, &sid),
        handle: random_token(16),
        public_id: random_token(12),
        expires_at: expires,
        mfa,
        ip: client.ip_text(),
        user_agent: client.user_agent.clone(),
    };
    let (_, row) = sessions::create(conn, &row, now)?;
    let exp = (now + app.config.access_ttl_secs).min(expires);
    let access = access_jwt(app, user_id, &row.handle, now, exp)?;
    Ok(NewSession {
        user_id,
        sid,
        access,
        ttl,
        access_ttl: exp - now,
    })
}

fn cookie(app: &App, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    let mut c = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(app.config.secure_cookies())
        .max_age(Duration::seconds(max_age))
        .build();
    // With cookie_domain every app under it sees the sign-in (forward-auth); setting and
    // clearing use the same Domain, or the browser keeps the old cookie.
    if let Some(d) = cookie_domain(app) {
        c.set_domain(d);
    }
    c
}

/// `cookie_domain` as cookies carry it: lower case, no leading dot (checked at start-up).
fn cookie_domain(app: &App) -> Option<String> {
    app.config
        .cookie_domain
        .as_deref()
        .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// Sets `slugbase.sid`, `token` (for as long as its JWT lives) and the device cookie, and
/// drops any second-step cookie.
pub fn set_cookies(app: &App, jar: &CookieJar<'_>, s: NewSession) {
    let known = jar
        .get(DEVICE_COOKIE)
        .and_then(|c| device::check(&app.keys.device, c.value(), s.user_id));
    if known.is_none() {
        let value = device::issue(&app.keys.device, s.user_id);
        jar.add(cookie(app, DEVICE_COOKIE, value, device::TTL_SECS));
    }
    jar.add(cookie(app, SID_COOKIE, s.sid, s.ttl));
    jar.add(cookie(app, TOKEN_COOKIE, s.access, s.access_ttl));
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

/// Clears every sign-in cookie. The device cookie stays: it marks a browser the owner used,
/// not a signed-in one.
pub fn clear_cookies(app: &App, jar: &CookieJar<'_>) {
    for name in [SID_COOKIE, TOKEN_COOKIE, PENDING_COOKIE] {
        expire(app, jar, name);
    }
}
