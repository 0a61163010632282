//! Personal `sb_` API tokens.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::docs::{ErrorBody, Ok as OkBody};
use crate::auth::request::ClientInfo;
use crate::auth::session::random_token;
use crate::auth::{api_token_hash, password, AuthUser, Credential, Via, API_TOKEN_PREFIX};
use crate::body::JsonBody;
use crate::clock::rfc3339;
use crate::db::tokens::{self, TokenInfo, MAX_PER_USER};
use crate::error::{ApiError, ApiResult};
use crate::mfa::service;
use crate::state::App;

#[derive(Deserialize, utoipa::ToSchema)]
struct NewToken {
    name: String,
    expires_in_days: Option<i64>,
    password: Option<String>,
    code: Option<String>,
}

/// A fresh token: `sb_` and 256 random bits in base64url.
pub fn new_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_token(32))
}

/// Whether a name character would hide or reorder what is shown around it: controls, and the
/// bidirectional embeddings, overrides and isolates (the "Trojan Source" characters).
fn hides_text(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Trims a token name and checks it: 1–100 characters, none of them [`hides_text`].
pub fn token_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(ApiError::validation(
            "name",
            "Token name must be 1 to 100 characters",
        ));
    }
    if name.chars().any(hides_text) {
        return Err(ApiError::validation(
            "name",
            "Token name must not contain control or text-direction characters",
        ));
    }
    Ok(name.to_string())
}

/// A token's expiry from `expires_in_days` (1–3650; None = never).
pub fn expiry(now: i64, days: Option<i64>) -> ApiResult<Option<i64>> {
    match days {
        None => Ok(None),
        Some(d) if (1..=3650).contains(&d) => Ok(Some(now + d * 86_400)),
        Some(_) => Err(ApiError::validation(
            "expires_in_days",
            "expires_in_days must be from 1 to 3650",
        )),
    }
}

fn reauth_required(message: &str) -> ApiError {
    ApiError::new(Status::Forbidden, "REAUTH_REQUIRED", message)
}

/// Decides how the caller proves itself before a new token exists: Ok(None) when its browser
/// session signed in recently enough, Ok(Some(code)) when a code must still be spent (MFA on)
/// after the password (if any) checked out here. An `sb_` token never creates a token.
async fn reauthenticate(
    app: &App,
    user: &AuthUser,
    client: &ClientInfo,
    password_given: Option<String>,
    code: Option<String>,
) -> ApiResult<Option<String>> {
    if user.via == Via::ApiToken {
        return Err(reauth_required(
            "An API token cannot create API tokens; sign in to create one",
        ));
    }
    if user.recently_authenticated(app.now(), app.config.recent_auth_secs) {
        return Ok(None);
    }
    let u = &user.user;
    let again = "Confirm it is you: enter your password (and a code when two-step \
                 verification is on)";
    if password_given.is_none() && code.is_none() {
        return Err(reauth_required(again));
    }
    if u.has_password {
        let Some(pw) = password_given else {
            return Err(reauth_required(again));
        };
        let (a, id, au) = (app.clone(), u.id, audit(client));
        password::with_argon2_slot(move || {
            service::check_password(&a, id, Some(&pw), "reauth_failure", &au, false)
        })
        .await?;
    }
    match (u.mfa_enabled, code) {
        (true, Some(code)) => Ok(Some(code)),
        (true, None) => Err(reauth_required(again)),
        (false, _) if u.has_password => Ok(None),
        // No password and no second factor: only a fresh sign-in proves anything.
        (false, _) => Err(reauth_required("Sign in again to create an API token")),
    }
}

/// A new token, shown once.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Created {
    /// `sb_…`: shown this once.
    token: String,
    /// Its id.
    id: i64,
    /// Its name.
    name: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339, or null for no expiry.
    expires_at: Option<String>,
}

/// Creates a personal API token. Needs a recent sign-in, or `password` (and `code` when MFA
/// is on) in the body.
#[utoipa::path(request_body = NewToken, responses(
    (status = 201, description = "The token, shown once", body = Created),
    (status = 400, description = "`VALIDATION_ERROR`, `INVALID_CODE`, `CODE_ALREADY_USED`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`, `INVALID_PASSWORD`", body = ErrorBody),
    (status = 403, description = "`REAUTH_REQUIRED`, `CSRF_REJECTED`", body = ErrorBody),
    (status = 409, description = "`TOKEN_LIMIT`", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/tokens", data = "<body>")]
async fn create(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<NewToken>,
) -> ApiResult<(Status, Json<Value>)> {
    let b = body.0;
    let now = app.now();
    let name = token_name(&b.name)?;
    let expires_at = expiry(now, b.expires_in_days)?;
    let code = reauthenticate(app, &user, &client, b.password, b.code).await?;
    let token = new_token();
    let hash = api_token_hash(app, &token);
    let (a, uid, n, au) = (
        app.inner().clone(),
        user.user.id,
        name.clone(),
        audit(&client),
    );
    let id = app
        .db
        .write(move |c| {
            if let Some(code) = code {
                let rec = service::record(c, uid)?;
                service::spend_step_code(&a, c, &rec, &code, &au, "reauth_failure")?;
            }
            let id = tokens::create(c, uid, &n, &hash, now, expires_at)?;
            if id.is_some() {
                service::event(c, uid, "token_created", now, &au)?;
            }
            Ok(id)
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Status::Conflict,
                "TOKEN_LIMIT",
                format!("An account holds at most {MAX_PER_USER} API tokens; revoke one first"),
            )
        })?;
    let body = json!({
        "token": token,
        "id": id,
        "name": name,
        "created_at": rfc3339(now),
        "expires_at": expires_at.map(rfc3339),
    });
    Ok((Status::Created, Json(body)))
}

/// The caller's tokens (never their values).
#[utoipa::path(responses(
    (status = 200, description = "The tokens", body = Vec<TokenInfo>),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
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

/// Revokes one of the caller's tokens.
#[utoipa::path(params(("id" = String, Path, description = "The token's id")), responses(
    (status = 200, description = "Revoked", body = OkBody),
    (status = 404, description = "`TOKEN_NOT_FOUND`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[delete("/tokens/<id>")]
async fn revoke(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    id: &str,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::new(Status::NotFound, "TOKEN_NOT_FOUND", "No such token");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let (uid, now, au) = (user.user.id, app.now(), audit(&client));
    let deleted = app.db.write(move |c| {
        let deleted = tokens::delete(c, uid, id)?;
        if deleted {
            service::event(c, uid, "token_revoked", now, &au)?;
        }
        Ok(deleted)
    });
    if deleted.await? {
        Ok(Json(json!({ "ok": true })))
    } else {
        Err(not_found())
    }
}

/// The token routes.
pub fn routes() -> Vec<Route> {
    routes![create, list, revoke]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_hide_text() {
        assert_eq!(token_name("  ci deploy ").unwrap(), "ci deploy");
        for bad in [
            "",
            "   ",
            "a\u{202E}b",
            "a\u{2066}b",
            "tab\there",
            "nl\nx",
            "\u{7f}",
        ] {
            assert!(token_name(bad).is_err(), "{bad:?}");
        }
        assert!(token_name(&"é".repeat(100)).is_ok());
        assert!(token_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn expiry_bounds() {
        assert_eq!(expiry(0, None).unwrap(), None);
        assert_eq!(expiry(0, Some(1)).unwrap(), Some(86_400));
        assert!(expiry(0, Some(0)).is_err());
        assert!(expiry(0, Some(3651)).is_err());
    }
}
