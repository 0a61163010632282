//! Sign-in, sign-out, the current user, the second login step and first-run setup.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use crate::auth::as_caller;
use crate::auth::login::{self as signin, LoginOutcome, LoginRequest, Setup, PENDING_TTL};
use crate::auth::request::ClientInfo;
use crate::auth::return_to::safe_return;
use crate::auth::{
    jwt, password, session, AuthUser, Credential, SameSite, DEVICE_COOKIE, PENDING_COOKIE,
};
use crate::body::JsonBody;
use crate::db::{groups as db_groups, sessions, users::User};
use crate::error::{ApiError, ApiResult};
use crate::mfa::service;
use crate::state::App;

#[derive(Deserialize)]
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

#[derive(Deserialize)]
struct CodeBody {
    code: String,
    #[serde(default)]
    rd: Option<String>,
}

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
            if e.code == "MFA_PENDING_INVALID" {
                session::expire(app, jar, PENDING_COOKIE);
            }
            Err(e)
        }
    }
}

#[post("/auth/logout")]
async fn logout(app: &State<App>, user: AuthUser, jar: &CookieJar<'_>) -> ApiResult<Json<Value>> {
    if let Some(sid) = user.session_id() {
        app.db.write(move |c| sessions::revoke(c, sid)).await?;
    }
    session::clear_cookies(app, jar);
    Ok(Json(json!({ "ok": true })))
}

/// The caller, with `groups` (the built-in `admins` included for an admin), in one hop.
#[get("/auth/me")]
async fn me(app: &State<App>, cred: Credential) -> ApiResult<Json<Value>> {
    as_caller(app, cred, |c, me| {
        let groups = db_groups::effective(c, me.user.id, me.user.is_admin)?;
        let mut v = json!(me.user);
        v["groups"] = json!(groups);
        Ok(Json(v))
    })
    .await
}

#[get("/auth/setup")]
fn setup_status(app: &State<App>) -> Json<Value> {
    let open = app.setup_token.lock().map(|t| t.is_some()).unwrap_or(false);
    Json(json!({ "open": open }))
}

#[derive(Deserialize)]
struct SetupBody {
    token: Option<String>,
    email: String,
    name: String,
    password: String,
}

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
