//! Personal `sb_` API tokens.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::session::random_token;
use crate::auth::{api_token_hash, AuthUser, Credential, API_TOKEN_PREFIX};
use crate::body::JsonBody;
use crate::clock::rfc3339;
use crate::db::tokens::{self, TokenInfo};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

/// A fresh token: `sb_` and 256 random bits in base64url.
pub fn new_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_token(32))
}

/// Trims a token name and checks its length (1–100 characters).
pub fn token_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if (1..=100).contains(&name.chars().count()) {
        Ok(name.to_string())
    } else {
        Err(ApiError::validation(
            "name",
            "Token name must be 1 to 100 characters",
        ))
    }
}

#[post("/tokens", data = "<body>")]
async fn create(
    app: &State<App>,
    user: AuthUser,
    body: JsonBody<NewToken>,
) -> ApiResult<(Status, Json<Value>)> {
    let name = token_name(&body.0.name)?;
    let token = new_token();
    let hash = api_token_hash(app, &token);
    let (now, uid, n) = (app.now(), user.user.id, name.clone());
    let id = app
        .db
        .write(move |c| tokens::create(c, uid, &n, &hash, now))
        .await?;
    let body = json!({ "token": token, "id": id, "name": name, "created_at": rfc3339(now) });
    Ok((Status::Created, Json(body)))
}

#[get("/tokens")]
async fn list(app: &State<App>, cred: Credential) -> ApiResult<Json<Vec<TokenInfo>>> {
    let a = app.inner().clone();
    let list = app
        .db
        .write(move |tx| {
            let me = cred.resolve(&a, tx)?;
            // The list shows last use: first write what was recorded (this request's use too),
            // best effort as everywhere for this bookkeeping.
            let _ = a.db.activity.flush(tx);
            tokens::list(tx, me.user.id)
        })
        .await?;
    Ok(Json(list))
}

#[delete("/tokens/<id>")]
async fn revoke(app: &State<App>, user: AuthUser, id: &str) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::new(Status::NotFound, "TOKEN_NOT_FOUND", "No such token");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let uid = user.user.id;
    if app.db.write(move |c| tokens::delete(c, uid, id)).await? {
        Ok(Json(json!({ "ok": true })))
    } else {
        Err(not_found())
    }
}

/// The token routes.
pub fn routes() -> Vec<Route> {
    routes![create, list, revoke]
}
