//! Authentication: passwords, JWTs, API tokens, sessions and the one request guard.

pub mod jwt;
pub mod login;
pub mod password;
pub mod request;
pub mod session;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::db::users::User;
use crate::db::{sessions, tokens};
use crate::error::{stash, ApiError};
use crate::keys::hmac256;
use crate::state::App;

/// Cookie holding the opaque session id.
pub const SID_COOKIE: &str = "slugbase.sid";
/// Cookie holding the access JWT.
pub const TOKEN_COOKIE: &str = "token";
/// Cookie holding the second-step JWT between password and code.
pub const PENDING_COOKIE: &str = "slugbase.mfa_pending";
/// Prefix of personal API tokens.
pub const API_TOKEN_PREFIX: &str = "sb_";

/// Which credential authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer sb_…`
    ApiToken,
    /// `Authorization: Bearer <access JWT>`
    BearerJwt,
    /// The `token` cookie.
    TokenCookie,
    /// The `slugbase.sid` cookie.
    SessionCookie,
}

impl Via {
    /// Whether the browser sent this credential by itself (and so CSRF applies).
    pub fn is_cookie(self) -> bool {
        matches!(self, Via::TokenCookie | Via::SessionCookie)
    }
}

/// The authenticated caller. Every protected route takes this guard.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The account.
    pub user: User,
    /// How it authenticated.
    pub via: Via,
    /// The session behind a JWT or sid cookie.
    pub session_id: Option<i64>,
}

/// A rejection decided before the guard ran (e.g. by the rate-limit fairing).
#[derive(Debug, Default)]
pub struct PreRejection(pub std::sync::Mutex<Option<ApiError>>);

/// The keyed hash under which an API token is stored.
pub fn api_token_hash(app: &App, token: &str) -> Vec<u8> {
    hmac256(&app.keys.token, token.as_bytes())
}

/// The keyed hash under which a session id is stored.
pub fn session_hash(app: &App, sid: &str) -> Vec<u8> {
    hmac256(&app.keys.session, sid.as_bytes())
}

async fn by_api_token(app: &App, token: &str) -> Result<AuthUser, ApiError> {
    // sb_ + 43 base64url characters; anything else cannot exist, so skip the lookup.
    if token.len() != 46
        || !token[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::unauthorized());
    }
    let hash = api_token_hash(app, token);
    let now = app.now();
    let user = app
        .db
        .run(move |c| tokens::authenticate(c, &hash, now))
        .await?;
    user.map(|user| AuthUser {
        user,
        via: Via::ApiToken,
        session_id: None,
    })
    .ok_or_else(ApiError::unauthorized)
}

async fn by_jwt(app: &App, token: &str, via: Via) -> Result<AuthUser, ApiError> {
    let now = app.now();
    let claims =
        jwt::verify(&app.keys.jwt, token, jwt::ACCESS, now).ok_or_else(ApiError::unauthorized)?;
    let (sid, sub) = match (claims.sid, claims.sub.parse::<i64>()) {
        (Some(sid), Ok(sub)) => (sid, sub),
        _ => return Err(ApiError::unauthorized()),
    };
    let s = app
        .db
        .run(move |c| {
            let s = sessions::by_id(c, sid, now)?;
            if let Some(s) = &s {
                sessions::touch(c, s, now)?;
            }
            Ok(s)
        })
        .await?;
    match s {
        Some(s) if s.user.id == sub => Ok(AuthUser {
            user: s.user,
            via,
            session_id: Some(sid),
        }),
        _ => Err(ApiError::unauthorized()),
    }
}

async fn by_sid(app: &App, sid: &str) -> Result<AuthUser, ApiError> {
    if sid.len() > 128 {
        return Err(ApiError::unauthorized());
    }
    let hash = session_hash(app, sid);
    let now = app.now();
    let s = app
        .db
        .run(move |c| {
            let s = sessions::by_hash(c, &hash, now)?;
            if let Some(s) = &s {
                sessions::touch(c, s, now)?;
            }
            Ok(s)
        })
        .await?;
    s.map(|s| AuthUser {
        user: s.user,
        via: Via::SessionCookie,
        session_id: Some(s.session_id),
    })
    .ok_or_else(ApiError::unauthorized)
}

/// Resolves the caller: `Authorization` (sb_ token, then access JWT) decides alone when
/// present; otherwise the `token` cookie, then the `slugbase.sid` cookie.
async fn resolve(req: &Request<'_>) -> Result<AuthUser, ApiError> {
    let app = req
        .rocket()
        .state::<App>()
        .ok_or_else(|| ApiError::internal("no app state"))?;
    let auth = if let Some(h) = req.headers().get_one("Authorization") {
        let token = h
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(ApiError::unauthorized)?;
        if token.starts_with(API_TOKEN_PREFIX) {
            by_api_token(app, token).await?
        } else {
            by_jwt(app, token, Via::BearerJwt).await?
        }
    } else {
        let cookies = req.cookies();
        let from_token = match cookies.get(TOKEN_COOKIE) {
            Some(c) => by_jwt(app, c.value(), Via::TokenCookie).await.ok(),
            None => None,
        };
        match (from_token, cookies.get(SID_COOKIE)) {
            (Some(a), _) => a,
            (None, Some(c)) => by_sid(app, c.value()).await?,
            (None, None) => return Err(ApiError::unauthorized()),
        }
    };
    if auth.via.is_cookie() && request::is_cross_site(req) {
        return Err(ApiError::new(
            Status::Forbidden,
            "CSRF_REJECTED",
            "Cross-site request rejected",
        ));
    }
    Ok(auth)
}

/// The cached resolution for this request (the rate-limit fairing and the guard share it).
pub async fn authenticate<'r>(req: &'r Request<'_>) -> &'r Result<AuthUser, ApiError> {
    req.local_cache_async(resolve(req)).await
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        match authenticate(req).await {
            Ok(user) => {
                crate::fairings::request_log::note_user(req, user.user.id);
                let pre = req
                    .local_cache(PreRejection::default)
                    .0
                    .lock()
                    .ok()
                    .and_then(|mut p| p.take());
                match pre {
                    Some(e) => Outcome::Error((stash(req, e), ())),
                    None => Outcome::Success(user.clone()),
                }
            }
            Err(e) => Outcome::Error((stash(req, e.clone()), ())),
        }
    }
}

/// Guard for unsafe routes that run before any credential exists (login, setup, verify):
/// refuses cross-site requests, which closes login CSRF.
pub struct SameSite;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SameSite {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        if request::is_cross_site(req) {
            let e = ApiError::new(
                Status::Forbidden,
                "CSRF_REJECTED",
                "Cross-site request rejected",
            );
            Outcome::Error((stash(req, e), ()))
        } else {
            Outcome::Success(SameSite)
        }
    }
}
