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
    api_token_hash, jwt, request, session_hash, AuthUser, Via, API_TOKEN_PREFIX, SID_COOKIE,
    TOKEN_COOKIE,
};
use crate::db::users::User;
use crate::db::{activity, sessions, tokens};
use crate::error::ApiError;
use crate::fairings::request_log;
use crate::state::App;

/// A verified access JWT: signature and expiry checked, session not yet.
#[derive(Debug, Clone, Copy)]
struct AccessJwt {
    sid: i64,
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
        };
        Credential {
            presented,
            cross_site: request::is_cross_site(req),
            logged: request_log::user_slot(req),
        }
    }

    /// Checks the credential against the database (read only; activity is recorded in
    /// memory) and applies the CSRF rule for cookie credentials.
    pub fn resolve(&self, app: &App, conn: &Connection) -> Result<AuthUser, ApiError> {
        let now = app.now();
        let auth = match &self.presented {
            Presented::Nothing => None,
            Presented::ApiToken(hash) => tokens::authenticate(conn, hash)?.map(|t| {
                if activity::due(t.last_used_at, now) {
                    app.db.activity.token(t.token_id, now);
                }
                AuthUser {
                    user: t.user,
                    via: Via::ApiToken,
                    session_id: None,
                }
            }),
            Presented::BearerJwt(j) => by_jwt(app, conn, *j, Via::BearerJwt, now)?,
            Presented::Cookies { jwt, sid_hash } => {
                let from_token = match jwt {
                    Some(j) => by_jwt(app, conn, *j, Via::TokenCookie, now)?,
                    None => None,
                };
                match (from_token, sid_hash) {
                    (Some(a), _) => Some(a),
                    (None, Some(h)) => sessions::by_hash(conn, h, now)?.map(|s| AuthUser {
                        session_id: Some(s.session_id),
                        user: seen(app, s, now),
                        via: Via::SessionCookie,
                    }),
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

/// Records the session's activity (at most once a minute) and hands back its user.
fn seen(app: &App, s: sessions::SessionUser, now: i64) -> User {
    if activity::due(Some(s.last_seen_at), now) {
        app.db.activity.session(s.session_id, now);
    }
    s.user
}

fn by_jwt(
    app: &App,
    conn: &Connection,
    j: AccessJwt,
    via: Via,
    now: i64,
) -> Result<Option<AuthUser>, ApiError> {
    Ok(sessions::by_id(conn, j.sid, now)?
        .filter(|s| s.user.id == j.sub)
        .map(|s| AuthUser {
            session_id: Some(s.session_id),
            user: seen(app, s, now),
            via,
        }))
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
