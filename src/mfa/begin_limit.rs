//! The enrollment-begin rate limit, as a request guard of the begin route: it counts every
//! request Rocket routes there, however its path is spelled (a trailing slash, doubled
//! slashes), which a check of the raw path missed.

use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use rusqlite::Connection;

use crate::auth::authenticate;
use crate::auth::request::{client_info, limit_key, ClientInfo};
use crate::db::mfa as repo;
use crate::error::{stash, ApiError};
use crate::limits::wait_for_slot;
use crate::state::App;

/// A begin call that fits the per-user and per-address limits; its slot is taken. Only
/// authenticated calls count, so a stranger cannot spend someone else's quota: put it after
/// the [`crate::auth::AuthUser`] guard.
pub struct BeginSlot;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BeginSlot {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let fail = |e: ApiError| Outcome::Error((stash(req, e), ()));
        let Some(app) = req.rocket().state::<App>() else {
            return fail(ApiError::internal("no app state"));
        };
        let user_id = match authenticate(req).await {
            Ok(auth) => auth.user.id,
            Err(e) => return fail(e.clone()),
        };
        let (a, info) = (app.clone(), client_info(req));
        match app
            .db
            .write(move |tx| take_begin_slot(&a, tx, user_id, &info))
            .await
        {
            Ok(Ok(())) => Outcome::Success(BeginSlot),
            Ok(Err(retry)) => fail(ApiError::rate_limited(retry)),
            // Without its quota checked the call does not go ahead (e.g. the disk is full).
            Err(e) => fail(e),
        }
    }
}

/// Takes one begin slot of the user's (database) and of the client address's (memory) window,
/// or neither, auditing a refusal. A write job: the writer runs one job at a time, so no other
/// call's check and take can come between this one's.
fn take_begin_slot(
    app: &App,
    tx: &Connection,
    user_id: i64,
    info: &ClientInfo,
) -> Result<Result<(), u64>, ApiError> {
    let (c, now) = (&app.config, app.now());
    let window = c.begin_window_secs;
    let limit = c.begin_limit_per_user;
    let (held, frees) = repo::begin_calls_since(tx, user_id, now - window, limit)?;
    let user_wait = wait_for_slot(held, frees, limit, window, now);
    let key = limit_key(info.ip);
    match app
        .begin_limiter
        .hit(key, c.begin_limit_per_ip, window, now, user_wait)
    {
        Ok(()) => {
            repo::record_begin_call(tx, user_id, now)?;
            Ok(Ok(()))
        }
        Err(retry) => {
            let (ip, agent) = (info.ip_text(), info.user_agent.as_deref());
            repo::record_event(tx, user_id, "rate_limited", now, ip.as_deref(), agent)?;
            Ok(Err(retry))
        }
    }
}
