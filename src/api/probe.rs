//! The page's probe: who is signed in, or which sign-in waits for its code. It answers 200 in
//! every state, so a signed-out page load logs no error in the browser console.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde::Serialize;

use super::docs::ErrorBody;
use crate::auth::pending::{self, PendingSignIn};
use crate::auth::{Credential, PENDING_COOKIE};
use crate::db::users::User;
use crate::error::ApiResult;
use crate::state::App;

/// `{signed_in, user?, mfa_pending?}`.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionState {
    /// Whether the request's credential is valid.
    signed_in: bool,
    /// The account, when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User>,
    /// A sign-in that waits for its code (the `slugbase.mfa_pending` cookie), when not
    /// signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_pending: Option<PendingSignIn>,
}

/// Whether the caller is signed in (and as whom), or has a sign-in waiting for its code.
/// Never 401: a missing or dead credential is `{"signed_in": false}`.
#[utoipa::path(security((), ("bearer" = []), ("sid" = []), ("token_cookie" = []), ("pending" = [])), responses(
    (status = 200, description = "The state", body = SessionState),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/session")]
async fn session(
    app: &State<App>,
    cred: Credential,
    jar: &CookieJar<'_>,
) -> ApiResult<Json<SessionState>> {
    let a = app.inner().clone();
    let pending_token = jar.get(PENDING_COOKIE).map(|c| c.value().to_string());
    let state = app
        .db
        .run(move |c| {
            match cred.resolve(&a, c) {
                Ok(me) => {
                    return Ok(SessionState {
                        signed_in: true,
                        user: Some(me.user),
                        mfa_pending: None,
                    })
                }
                Err(e) if e.status != Status::Unauthorized => return Err(e),
                Err(_) => {}
            }
            let mfa_pending = match pending_token {
                Some(t) => pending::lookup(&a, c, &t)?,
                None => None,
            };
            Ok(SessionState {
                signed_in: false,
                user: None,
                mfa_pending,
            })
        })
        .await?;
    Ok(Json(state))
}

/// The probe's route.
pub fn routes() -> Vec<Route> {
    routes![session]
}
