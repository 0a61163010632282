//! The caller's own sign-ins and password: list and end sessions, change the password.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::account::{self, PasswordChange};
use crate::auth::request::ClientInfo;
use crate::auth::{as_caller, password, session, AuthUser, Credential};
use crate::body::JsonBody;
use crate::db::sessions::{self, Listed};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

#[get("/auth/sessions")]
async fn list(app: &State<App>, cred: Credential) -> ApiResult<Json<Vec<Listed>>> {
    let a = app.inner().clone();
    let list = as_caller(app, cred, move |c, me| {
        let now = a.now();
        let idle_before = now - a.config.session_idle_secs;
        let activity = &a.db.activity;
        sessions::list(c, me.user.id, now, idle_before, me.session_id(), |id| {
            activity.session_seen(id)
        })
    })
    .await?;
    Ok(Json(list))
}

#[delete("/auth/sessions/<id>")]
async fn end_one(
    app: &State<App>,
    user: AuthUser,
    jar: &CookieJar<'_>,
    id: &str,
) -> ApiResult<Json<Value>> {
    let (uid, public_id) = (user.user.id, id.to_string());
    let ended = app
        .db
        .write(move |c| sessions::revoke_public(c, uid, &public_id))
        .await?;
    match ended {
        Some(row) => {
            if Some(row) == user.session_id() {
                session::clear_cookies(app, jar);
            }
            Ok(Json(json!({ "ok": true })))
        }
        None => Err(ApiError::new(
            Status::NotFound,
            "SESSION_NOT_FOUND",
            "No such session",
        )),
    }
}

#[post("/auth/sessions/revoke-others")]
async fn end_others(app: &State<App>, user: AuthUser) -> ApiResult<Json<Value>> {
    let (uid, keep) = (user.user.id, user.session_id());
    let n = app
        .db
        .write(move |c| sessions::revoke_others(c, uid, keep))
        .await?;
    Ok(Json(json!({ "ok": true, "revoked": n })))
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[post("/auth/password", data = "<body>")]
async fn change_password(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<PasswordBody>,
) -> ApiResult<Json<Value>> {
    let req = PasswordChange {
        user_id: user.user.id,
        session: user.session_id(),
        current: body.0.current_password,
        new: body.0.new_password,
        client,
    };
    let a = app.inner().clone();
    password::with_argon2_slot(move || account::change_password(&a, req)).await?;
    Ok(Json(json!({ "ok": true })))
}

/// The account routes.
pub fn routes() -> Vec<Route> {
    routes![list, end_one, end_others, change_password]
}
