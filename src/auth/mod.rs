//! Authentication: passwords, JWTs, API tokens, sessions and the one request guard.

pub mod account;
mod credential;
pub mod device;
pub mod jwt;
pub mod login;
pub mod password;
pub mod pending;
pub mod request;
pub mod return_to;
pub mod session;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::db::users::User;
use crate::error::{stash, ApiError};
use crate::keys::hmac256;
use crate::state::App;

pub use credential::Credential;

/// Cookie holding the opaque session id.
pub const SID_COOKIE: &str = "slugbase.sid";
/// Cookie holding the access JWT.
pub const TOKEN_COOKIE: &str = "token";
/// Cookie holding the second-step JWT between password and code.
pub const PENDING_COOKIE: &str = "slugbase.mfa_pending";
/// Cookie marking a browser that once signed in to an account (see [`device`]).
pub const DEVICE_COOKIE: &str = "slugbase.device";
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

/// The session behind a JWT or sid cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMeta {
    /// Row id (internal only).
    pub id: i64,
    /// When it last proved the account's factors, Unix seconds.
    pub auth_at: i64,
    /// Whether it passed a second factor.
    pub mfa: bool,
}

/// The authenticated caller. Every protected route takes this guard.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The account.
    pub user: User,
    /// How it authenticated.
    pub via: Via,
    /// The session behind a JWT or sid cookie; None for `sb_` tokens.
    pub session: Option<SessionMeta>,
}

impl AuthUser {
    /// The session's row id, if a session authenticated the request.
    pub fn session_id(&self) -> Option<i64> {
        self.session.map(|s| s.id)
    }

    /// Whether this is a browser session that proved the account's factors (with a code when
    /// MFA is on) at most `within` seconds before `now`.
    pub fn recently_authenticated(&self, now: i64, within: i64) -> bool {
        self.session
            .is_some_and(|s| now - s.auth_at <= within && (s.mfa || !self.user.mfa_enabled))
    }
}

/// The keyed hash under which an API token is stored.
pub fn api_token_hash(app: &App, token: &str) -> Vec<u8> {
    hmac256(&app.keys.token, token.as_bytes())
}

/// The keyed hash under which a session id is stored.
pub fn session_hash(app: &App, sid: &str) -> Vec<u8> {
    hmac256(&app.keys.session, sid.as_bytes())
}

/// Resolves the caller in one blocking hop and caches the result for this request (the
/// rate-limit fairing and the guard share it).
pub async fn authenticate<'r>(req: &'r Request<'_>) -> &'r Result<AuthUser, ApiError> {
    req.local_cache_async(async {
        let app = req
            .rocket()
            .state::<App>()
            .ok_or_else(|| ApiError::internal("no app state"))?;
        let cred = Credential::from_request_parts(req, app);
        let a = app.clone();
        app.db.run(move |c| cred.resolve(&a, c)).await
    })
    .await
}

/// Runs `f` as the caller of `cred`, in one blocking hop: the credential lookup and the
/// handler's own queries share one trip to the blocking pool and one pooled connection.
/// Read-heavy routes use this instead of [`AuthUser`], which costs a hop of its own.
pub async fn as_caller<T, F>(app: &App, cred: Credential, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut crate::db::Conn, AuthUser) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let a = app.clone();
    app.db
        .run(move |c| {
            let user = cred.resolve(&a, c)?;
            f(c, user)
        })
        .await
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        match authenticate(req).await {
            Ok(user) => Outcome::Success(user.clone()),
            Err(e) => Outcome::Error((stash(req, e.clone()), ())),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Credential {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let Some(app) = req.rocket().state::<App>() else {
            return Outcome::Error((stash(req, ApiError::internal("no app state")), ()));
        };
        Outcome::Success(Credential::from_request_parts(req, app))
    }
}

/// Guard for unsafe routes that run before any credential exists (login, setup, verify):
/// refuses cross-site requests (see [`request::is_cross_site`]) and requests without a content
/// type (a cross-site `fetch` of a typeless Blob sends none and needs no preflight), which
/// closes login CSRF. Their JSON bodies refuse every other type a cross-site page could send
/// with 415.
pub struct SameSite;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SameSite {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        if request::is_cross_site(req) || req.content_type().is_none() {
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
