//! Sign-in, sign-out, the current user, the second login step and first-run setup.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use crate::auth::login::{self as signin, LoginOutcome, LoginRequest, Setup, PENDING_TTL};
use crate::auth::request::ClientInfo;
use crate::auth::{
    jwt, password, session, AuthUser, Credential, SameSite, DEVICE_COOKIE, PENDING_COOKIE,
};
use crate::body::JsonBody;
use crate::db::sessions;
use crate::db::users::{self, User};
use crate::error::{ApiError, ApiResult};
use crate::mfa::service;
use crate::state::App;

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
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
            Ok(Json(json!(user)))
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
}

#[post("/auth/mfa/verify", data = "<body>")]
async fn verify(
    app: &State<App>,
    _s: SameSite,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    body: JsonBody<CodeBody>,
) -> ApiResult<Json<User>> {
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
            Ok(Json(user))
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

#[get("/auth/me")]
fn me(user: AuthUser) -> Json<User> {
    Json(user.user)
}

/// Whether first-run setup is open: it follows the database, so an account created with the
/// CLI while the server runs closes it too.
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
