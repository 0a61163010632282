//! Sign-in, sign-out, the current user, the second login step and first-run setup.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::docs::{ErrorBody, Ok as OkBody};
use crate::auth::as_caller;
use crate::auth::login::{self as signin, LoginOutcome, LoginRequest, Setup, PENDING_TTL};
use crate::auth::request::ClientInfo;
use crate::auth::return_to::safe_return;
use crate::auth::{
    jwt, password, session, AuthUser, Credential, SameSite, DEVICE_COOKIE, PENDING_COOKIE,
};
use crate::body::JsonBody;
use crate::db::users::{self, User};
use crate::db::{groups as db_groups, sessions};
use crate::error::{ApiError, ApiResult};
use crate::mfa::service;
use crate::state::App;

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginBody {
    email: String,
    password: String,
    /// Where the page wants to go after signing in (forward-auth); answered as
    /// `redirect_to` when it may.
    #[serde(default)]
    rd: Option<String>,
}

/// `user` as JSON, with `redirect_to` when `rd` may be followed (see `auth::return_to`).
fn with_redirect(app: &App, user: &User, rd: Option<&str>) -> Value {
    let mut v = json!(user);
    if let Some(to) = rd.and_then(|rd| safe_return(&app.config, rd)) {
        v["redirect_to"] = json!(to);
    }
    v
}

/// `{"mfa_required": true}`: the password was right; the code step follows.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct MfaRequired {
    /// Always true.
    mfa_required: bool,
}

/// Password sign-in. Sets `slugbase.sid`, `token` and `slugbase.device`, or, when MFA is on,
/// `slugbase.mfa_pending` for `POST /api/auth/mfa/verify`.
#[utoipa::path(security(()), request_body = LoginBody, responses(
    (status = 200, description = "Signed in (the user), or the code step follows", body = inline(LoginAnswer)),
    (status = 400, description = "`VALIDATION_ERROR`", body = ErrorBody),
    (status = 401, description = "`INVALID_CREDENTIALS`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED`", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/login", data = "<body>")]
async fn login(
    app: &State<App>,
    _s: SameSite,
    client: ClientInfo,
    cred: Credential,
    jar: &CookieJar<'_>,
    body: JsonBody<LoginBody>,
) -> ApiResult<Json<Value>> {
    let rd = body.0.rd;
    let req = LoginRequest {
        email: body.0.email,
        password: body.0.password,
        client,
        device: jar.get(DEVICE_COOKIE).map(|c| c.value().to_string()),
        presented: cred.presented_session(),
    };
    let a = app.inner().clone();
    match password::with_argon2_slot(move || signin::login(&a, req)).await? {
        LoginOutcome::Session(user, s) => {
            session::set_cookies(app, jar, s);
            Ok(Json(with_redirect(app, &user, rd.as_deref())))
        }
        LoginOutcome::MfaRequired(token) => {
            session::set_pending_cookie(app, jar, token, PENDING_TTL);
            Ok(Json(json!({ "mfa_required": true })))
        }
    }
}

/// A finished sign-in: the account, and where to go next when the request's `rd` may be
/// followed.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct SignedIn {
    #[serde(flatten)]
    user: User,
    /// The `rd` of the request, when it passes the return-URL rule.
    #[schema(required = false)]
    redirect_to: Option<String>,
}

/// What a sign-in answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LoginAnswer {
    /// Signed in.
    User(SignedIn),
    /// The code step follows.
    Mfa(MfaRequired),
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeBody {
    code: String,
    #[serde(default)]
    rd: Option<String>,
}

/// The second sign-in step: a TOTP or backup code for the `slugbase.mfa_pending` cookie.
#[utoipa::path(security(("pending" = [])), request_body = CodeBody, responses(
    (status = 200, description = "Signed in", body = SignedIn),
    (status = 400, description = "`VALIDATION_ERROR`", body = ErrorBody),
    (status = 401, description = "`MFA_PENDING_INVALID` (no live sign-in), `MFA_PENDING_LOCKED` (cancelled after 5 wrong codes), `INVALID_CODE` (`details.reason` `clock_drift` when the code is from a few minutes off; `details.attempts_left` from the 3rd wrong code), `CODE_ALREADY_USED` (a replayed TOTP)", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED`", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/verify", data = "<body>")]
async fn verify(
    app: &State<App>,
    _s: SameSite,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    body: JsonBody<CodeBody>,
) -> ApiResult<Json<Value>> {
    let invalid = || {
        ApiError::new(
            Status::Unauthorized,
            "MFA_PENDING_INVALID",
            "The sign-in step expired. Please sign in again",
        )
    };
    let token = jar
        .get(PENDING_COOKIE)
        .map(|c| c.value().to_string())
        .ok_or_else(invalid)?;
    let claims =
        jwt::verify(&app.keys.jwt, &token, jwt::MFA_PENDING, app.now()).ok_or_else(invalid)?;
    let (jti, sub) = match (claims.jti, claims.sub.parse::<i64>()) {
        (Some(j), Ok(s)) => (j, s),
        _ => return Err(invalid()),
    };
    let rd = body.0.rd;
    let (a, code, au) = (app.inner().clone(), body.0.code, audit(&client));
    let res = app
        .db
        .write(move |tx| {
            let rec = service::verify_login(&a, tx, &jti, sub, &code, &au)?;
            let s = session::create(&a, tx, rec.user.id, a.now(), true, &client)?;
            Ok((rec.user, s))
        })
        .await;
    match res {
        Ok((user, s)) => {
            session::set_cookies(app, jar, s);
            Ok(Json(with_redirect(app, &user, rd.as_deref())))
        }
        Err(e) => {
            if e.code == "MFA_PENDING_INVALID" || e.code == "MFA_PENDING_LOCKED" {
                session::expire(app, jar, PENDING_COOKIE);
            }
            Err(e)
        }
    }
}

/// Ends the caller's session and clears the cookies.
#[utoipa::path(responses(
    (status = 200, description = "Signed out", body = OkBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/logout")]
async fn logout(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    jar: &CookieJar<'_>,
) -> ApiResult<Json<Value>> {
    if let Some(sid) = user.session_id() {
        let (uid, now, au) = (user.user.id, app.now(), audit(&client));
        app.db
            .write(move |c| {
                sessions::revoke(c, sid)?;
                service::event(c, uid, "signed_out", now, &au)
            })
            .await?;
    }
    session::clear_cookies(app, jar);
    Ok(Json(json!({ "ok": true })))
}

/// The caller's account with `groups`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Me {
    #[serde(flatten)]
    user: User,
    /// Its groups, the built-in `admins` included for an admin.
    groups: Vec<String>,
}

/// The caller, with `groups` (the built-in `admins` included for an admin), in one hop.
#[utoipa::path(responses(
    (status = 200, description = "The account", body = Me),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/me")]
async fn me(app: &State<App>, cred: Credential) -> ApiResult<Json<Me>> {
    as_caller(app, cred, |c, me| {
        let groups = db_groups::effective(c, me.user.id, me.user.is_admin)?;
        Ok(Json(Me {
            user: me.user,
            groups,
        }))
    })
    .await
}

/// Whether first-run setup is open: it follows the database, so an account created with the
/// CLI while the server runs closes it too.
#[utoipa::path(security(()), responses(
    (status = 200, description = "`{open}`: whether first-run setup is open", body = inline(SetupOpen)),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/setup")]
async fn setup_status(app: &State<App>) -> ApiResult<Json<Value>> {
    let has_token = app.setup_token.lock().map(|t| t.is_some()).unwrap_or(false);
    let open = has_token && !app.db.run(|c| users::any_exist(c)).await?;
    if !open && has_token {
        if let Ok(mut t) = app.setup_token.lock() {
            *t = None;
        }
    }
    Ok(Json(json!({ "open": open })))
}

/// `{open}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct SetupOpen {
    /// Whether first-run setup is open.
    open: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SetupBody {
    token: Option<String>,
    email: String,
    name: String,
    password: String,
}

/// First-run setup: the first (admin) account, with the one-time token from the log.
#[utoipa::path(security(()), request_body = SetupBody, responses(
    (status = 201, description = "The account, signed in", body = User),
    (status = 400, description = "`VALIDATION_ERROR`, `WEAK_PASSWORD`", body = ErrorBody),
    (status = 403, description = "`SETUP_TOKEN_INVALID`, `SETUP_CLOSED`, `CSRF_REJECTED`", body = ErrorBody),
    (status = 409, description = "`EMAIL_TAKEN`", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/setup", data = "<body>")]
async fn setup(
    app: &State<App>,
    _s: SameSite,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    body: JsonBody<SetupBody>,
) -> ApiResult<(Status, Json<User>)> {
    let (a, b) = (app.inner().clone(), body.0);
    let req = Setup {
        token: b.token,
        email: b.email,
        name: b.name,
        password: b.password,
    };
    let (user, s) =
        password::with_argon2_slot(move || signin::setup(&a, &mut *a.db.get()?, req, &client))
            .await?;
    session::set_cookies(app, jar, s);
    Ok((Status::Created, Json(user)))
}

/// The auth routes.
pub fn routes() -> Vec<Route> {
    routes![login, verify, logout, me, setup_status, setup]
}
