//! What a request presents, parsed without I/O, and its resolution against the database.
//!
//! Parsing (header and cookie syntax, JWT signature and expiry, keyed hashes) happens on the
//! async worker; [`Credential::resolve`] is the synchronous part that needs a connection, so
//! that a handler can run it in the same blocking hop as its own queries.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rocket::http::Status;
use rocket::Request;
use rusqlite::Connection;

use super::{
    api_token_hash, jwt, request, session_hash, AuthUser, SessionMeta, Via, API_TOKEN_PREFIX,
    SID_COOKIE, TOKEN_COOKIE,
};
use crate::db::{activity, sessions, tokens};
use crate::error::ApiError;
use crate::state::App;

/// A verified access JWT: signature and expiry checked, session not yet.
#[derive(Debug, Clone)]
struct AccessJwt {
    /// The session handle.
    sid: String,
    sub: i64,
}

#[derive(Debug, Clone)]
enum Presented {
    /// Nothing usable (no credential, a malformed header, a bad JWT in the header).
    Nothing,
    /// `Authorization: Bearer sb_…`: the token's keyed hash.
    ApiToken(Vec<u8>),
    /// `Authorization: Bearer <access JWT>`.
    BearerJwt(AccessJwt),
    /// No `Authorization`: the `token` cookie (when its JWT verified) wins, else the
    /// `slugbase.sid` cookie's keyed hash.
    Cookies {
        jwt: Option<AccessJwt>,
        sid_hash: Option<Vec<u8>>,
    },
}

/// The credential of a request, checked as far as it can be without the database. Take it
/// as a guard and resolve it with [`super::as_caller`].
#[derive(Debug, Clone)]
pub struct Credential {
    presented: Presented,
    /// Cross-site, or unsafe without a JSON type: refused for cookie credentials.
    cross_site: bool,
    /// The request log's user slot, filled on success.
    logged: Arc<AtomicI64>,
}

fn access_jwt(app: &App, token: &str) -> Option<AccessJwt> {
    let claims = jwt::verify(&app.keys.jwt, token, jwt::ACCESS, app.now())?;
    Some(AccessJwt {
        sid: claims.sid?,
        sub: claims.sub.parse().ok()?,
    })
}

/// The `token` cookie (when its JWT verifies) and the `slugbase.sid` cookie's keyed hash.
fn cookie_credential(req: &Request<'_>, app: &App) -> Presented {
    let cookies = req.cookies();
    let jwt = cookies
        .get(TOKEN_COOKIE)
        .and_then(|c| access_jwt(app, c.value()));
    let sid_hash = cookies
        .get(SID_COOKIE)
        .map(|c| c.value())
        .filter(|v| v.len() <= 128)
        .map(|v| session_hash(app, v));
    if jwt.is_none() && sid_hash.is_none() {
        Presented::Nothing
    } else {
        Presented::Cookies { jwt, sid_hash }
    }
}

/// sb_ + 43 base64url characters; anything else cannot exist, so it skips the lookup.
fn api_token_shape(token: &str) -> bool {
    token.len() == 46
        && token[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Credential {
    /// Reads the credential: `Authorization` decides alone when present; otherwise the
    /// `token` cookie, then the `slugbase.sid` cookie.
    pub fn from_request_parts(req: &Request<'_>, app: &App) -> Credential {
        let presented = if let Some(h) = req.headers().get_one("Authorization") {
            let bearer = h
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            match bearer {
                Some(t) if t.starts_with(API_TOKEN_PREFIX) && api_token_shape(t) => {
                    Presented::ApiToken(api_token_hash(app, t))
                }
                Some(t) if !t.starts_with(API_TOKEN_PREFIX) => {
                    access_jwt(app, t).map_or(Presented::Nothing, Presented::BearerJwt)
                }
                _ => Presented::Nothing,
            }
        } else {
            cookie_credential(req, app)
        };
        Credential {
            presented,
            cross_site: request::is_cross_site(req) || request::lacks_json_type(req),
            logged: request::user_slot(req),
        }
    }

    /// The credential of a request a reverse proxy asks about (forward-auth): the browser's
    /// session cookies, which the proxy passes on; `Authorization: Bearer sb_…` only when
    /// `accept_tokens`. Any other `Authorization` belongs to the application behind the
    /// proxy and is ignored. No CSRF rule: this is a read by the proxy, not a browser write.
    pub fn from_proxied(req: &Request<'_>, app: &App, accept_tokens: bool) -> Credential {
        let token = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| accept_tokens && t.starts_with(API_TOKEN_PREFIX));
        let presented = match token {
            Some(t) if api_token_shape(t) => Presented::ApiToken(api_token_hash(app, t)),
            Some(_) => Presented::Nothing,
            None => cookie_credential(req, app),
        };
        Credential {
            presented,
            cross_site: false,
            logged: request::user_slot(req),
        }
    }

    /// Like [`Credential::resolve`], with no credential at all (or a dead one) as None rather
    /// than an error.
    pub fn resolve_optional(
        &self,
        app: &App,
        conn: &Connection,
    ) -> Result<Option<AuthUser>, ApiError> {
        match self.resolve(app, conn) {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.code == "UNAUTHORIZED" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks the credential against the database (read only; activity is recorded in
    /// memory) and applies the CSRF rule for cookie credentials.
    pub fn resolve(&self, app: &App, conn: &Connection) -> Result<AuthUser, ApiError> {
        let now = app.now();
        let auth = match &self.presented {
            Presented::Nothing => None,
            Presented::ApiToken(hash) => tokens::authenticate(conn, hash, now)?.map(|t| {
                if activity::due(t.last_used_at, now) {
                    app.db.activity.token(t.token_id, now);
                }
                AuthUser {
                    user: t.user,
                    via: Via::ApiToken,
                    session: None,
                }
            }),
            Presented::BearerJwt(j) => by_jwt(app, conn, j, Via::BearerJwt, now)?,
            Presented::Cookies { jwt, sid_hash } => {
                let from_token = match jwt {
                    Some(j) => by_jwt(app, conn, j, Via::TokenCookie, now)?,
                    None => None,
                };
                match (from_token, sid_hash) {
                    (Some(a), _) => Some(a),
                    (None, Some(h)) => sessions::by_hash(conn, h, now)?
                        .and_then(|s| live(app, s, Via::SessionCookie, now)),
                    (None, None) => None,
                }
            }
        };
        let auth = auth.ok_or_else(ApiError::unauthorized)?;
        if auth.via.is_cookie() && self.cross_site {
            return Err(ApiError::new(
                Status::Forbidden,
                "CSRF_REJECTED",
                "Cross-site request rejected",
            ));
        }
        self.logged.store(auth.user.id, Ordering::Relaxed);
        Ok(auth)
    }
}

/// The caller of a session that has not reached its absolute expiry, unless it has been idle
/// for `session_idle_secs`; records its activity (at most once a minute).
fn live(app: &App, s: sessions::SessionUser, via: Via, now: i64) -> Option<AuthUser> {
    // The written time lags real use by up to a minute and a flush; the recorded one is exact.
    let last = match app.db.activity.session_seen(s.session_id) {
        Some(t) => t.max(s.last_seen_at),
        None => s.last_seen_at,
    };
    if now - last >= app.config.session_idle_secs {
        return None;
    }
    if activity::due(Some(last), now) {
        app.db.activity.session(s.session_id, now);
    }
    Some(AuthUser {
        session: Some(SessionMeta {
            id: s.session_id,
            auth_at: s.auth_at,
            mfa: s.mfa,
        }),
        user: s.user,
        via,
    })
}

fn by_jwt(
    app: &App,
    conn: &Connection,
    j: &AccessJwt,
    via: Via,
    now: i64,
) -> Result<Option<AuthUser>, ApiError> {
    Ok(sessions::by_handle(conn, &j.sid, now)?
        .filter(|s| s.user.id == j.sub)
        .and_then(|s| live(app, s, via, now)))
}

impl Credential {
    /// The session handle or cookie hash this request presents, valid or not, so that a new
    /// sign-in can end the session the browser still holds.
    pub fn presented_session(&self) -> (Option<Vec<u8>>, Option<String>) {
        match &self.presented {
            Presented::Cookies { jwt, sid_hash } => {
                (sid_hash.clone(), jwt.as_ref().map(|j| j.sid.clone()))
            }
            _ => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::api_token_shape;

    #[test]
    fn api_token_shape_is_checked_before_any_lookup() {
        assert!(api_token_shape(&format!("sb_{}", "a".repeat(43))));
        assert!(!api_token_shape(&format!("sb_{}", "a".repeat(42))));
        assert!(!api_token_shape(&format!("sb_{}=", "a".repeat(42))));
    }
}
