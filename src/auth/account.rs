//! What a signed-in person does to their own credentials: changing the password.

use rocket::http::Status;

use super::login::{reserve, Buckets};
use super::password;
use super::request::ClientInfo;
use crate::db::{in_tx, mfa as repo, sessions, users};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// A password change.
pub struct PasswordChange {
    /// The account.
    pub user_id: i64,
    /// The caller's session, which stays signed in.
    pub session: Option<i64>,
    /// As typed.
    pub current: String,
    /// As typed.
    pub new: String,
    /// The caller.
    pub client: ClientInfo,
}

fn invalid_password() -> ApiError {
    ApiError::new(
        Status::Unauthorized,
        "INVALID_PASSWORD",
        "The password is not correct",
    )
    .with_details(serde_json::json!({"field": "current_password"}))
}

/// Changes the password after checking the current one. Every other session and every pending
/// sign-in of the account end (whoever knew the old password is out); the caller's session
/// and the API tokens stay. Wrong current passwords count against the account's own bucket,
/// reserved before the argon2 check like sign-in failures. Blocking (argon2, twice).
pub fn change_password(app: &App, req: PasswordChange) -> ApiResult<()> {
    let now = app.now();
    let rec = {
        let conn = app.db.get()?;
        users::record_by_id(&conn, req.user_id)?.ok_or_else(ApiError::unauthorized)?
    };
    let Some(old_hash) = rec.password_hash.clone() else {
        return Err(ApiError::new(
            Status::BadRequest,
            "PASSWORD_NOT_SET",
            "This account signs in through an identity provider and has no password",
        ));
    };
    password::validate(
        &req.new,
        "new_password",
        &[&rec.user.email, &rec.user.name, &req.current],
    )?;
    let reserved = reserve(app, &Buckets::Account(req.user_id.to_string()), now)?;
    let (ip, agent) = (req.client.ip_text(), req.client.user_agent.clone());
    if !password::verify(&req.current, &old_hash) {
        let mut conn = app.db.get()?;
        in_tx(&mut conn, |tx| {
            let (ip, agent) = (ip.as_deref(), agent.as_deref());
            repo::record_event(tx, req.user_id, "password_change_failure", now, ip, agent)
        })?;
        return Err(invalid_password());
    }
    let new_hash = password::hash(&req.new).map_err(ApiError::internal)?;
    let mut conn = app.db.get()?;
    in_tx(&mut conn, |tx| {
        repo::forget_failures(tx, &reserved)?;
        if !users::replace_password(tx, req.user_id, &old_hash, &new_hash)? {
            // Changed meanwhile by another request or the CLI: the current password we
            // checked is no longer the account's.
            return Err(invalid_password());
        }
        sessions::end_credentials(tx, req.user_id, req.session, false)?;
        let (ip, agent) = (ip.as_deref(), agent.as_deref());
        repo::record_event(tx, req.user_id, "password_changed", now, ip, agent)
    })
}
