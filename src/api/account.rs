//! The caller's own sign-ins and password: list and end sessions, change the password.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::docs::{ErrorBody, Ok as OkBody};
use crate::auth::account::{self, PasswordChange};
use crate::auth::request::ClientInfo;
use crate::auth::{as_caller, password, session, AuthUser, Credential};
use crate::body::JsonBody;
use crate::db::sessions::{self, Listed};
use crate::error::{ApiError, ApiResult};
use crate::mfa::service;
use crate::state::App;

/// The caller's sessions, newest first.
#[utoipa::path(responses(
    (status = 200, description = "The sessions", body = Vec<Listed>),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
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

/// Ends one of the caller's sessions.
#[utoipa::path(params(("id" = String, Path, description = "A session's opaque id")), responses(
    (status = 200, description = "Ended", body = OkBody),
    (status = 404, description = "`SESSION_NOT_FOUND`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[delete("/auth/sessions/<id>")]
async fn end_one(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    id: &str,
) -> ApiResult<Json<Value>> {
    let (uid, public_id) = (user.user.id, id.to_string());
    let (now, au) = (app.now(), audit(&client));
    let ended = app
        .db
        .write(move |c| {
            let ended = sessions::revoke_public(c, uid, &public_id)?;
            if ended.is_some() {
                service::event(c, uid, "session_ended", now, &au)?;
            }
            Ok(ended)
        })
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

/// `{ok, revoked}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Revoked {
    /// Always true.
    ok: bool,
    /// Sessions ended.
    revoked: usize,
}

/// Ends every session of the caller but the current one.
#[utoipa::path(responses(
    (status = 200, description = "Ended", body = Revoked),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/sessions/revoke-others")]
async fn end_others(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
) -> ApiResult<Json<Value>> {
    let (uid, keep) = (user.user.id, user.session_id());
    let (now, au) = (app.now(), audit(&client));
    let n = app
        .db
        .write(move |c| {
            let n = sessions::revoke_others(c, uid, keep)?;
            if n > 0 {
                service::event(c, uid, "other_sessions_ended", now, &au)?;
            }
            Ok(n)
        })
        .await?;
    Ok(Json(json!({ "ok": true, "revoked": n })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every other session and pending sign-in ends.
#[utoipa::path(request_body = PasswordBody, responses(
    (status = 200, description = "Changed", body = OkBody),
    (status = 400, description = "`VALIDATION_ERROR`, `WEAK_PASSWORD`, `PASSWORD_NOT_SET`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`, `INVALID_PASSWORD`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
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
