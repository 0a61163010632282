//! The MFA endpoints of the API pages (begin, confirm, cancel, disable) and the ones a real
//! MFA system needs around them (regenerate, status, events, the pending key and its QR code).

use rocket::form;
use rocket::http::{ContentType, Header};
use rocket::response::Responder;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::docs::{BackupCodes, ErrorBody, Ok as OkBody};
use crate::auth::request::ClientInfo;
use crate::auth::{as_caller, password, AuthUser, Credential};
use crate::body::JsonBody;
use crate::db::mfa as repo;
use crate::error::{ApiError, ApiResult};
use crate::mfa::begin_limit::BeginSlot;
use crate::mfa::service::{self, Begin, MfaStatus};
use crate::state::App;

/// Start MFA enrollment
///
/// Generates a TOTP secret, persists it encrypted with mfa_enabled still false, and returns
/// otpauth_url plus Base32 secret for manual entry. The SPA should render a QR code from
/// otpauth_url locally. 409 if MFA is already fully enabled.
#[utoipa::path(responses(
    (status = 200, description = "The pending key", body = Begin),
    (status = 409, description = "`MFA_ALREADY_ENABLED`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED` (per user and per client address)", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/enroll/begin")]
async fn begin(
    app: &State<App>,
    user: AuthUser,
    _slot: BeginSlot,
    client: ClientInfo,
) -> ApiResult<Json<Begin>> {
    let (a, id, au) = (app.inner().clone(), user.user.id, audit(&client));
    Ok(Json(
        app.db
            .write(move |tx| service::begin(&a, tx, id, &au))
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeBody {
    code: String,
}

/// Confirm MFA enrollment
///
/// Verifies a 6-digit TOTP code against the pending secret, enables MFA, and returns one-time
/// backup codes. The account's other sessions end.
#[utoipa::path(request_body = CodeBody, responses(
    (status = 200, description = "MFA is on", body = BackupCodes),
    (status = 400, description = "`VALIDATION_ERROR`, `MFA_NO_PENDING`, `INVALID_CODE`, `CODE_ALREADY_USED` (a replayed TOTP: wait for the next code)", body = ErrorBody),
    (status = 409, description = "`MFA_ALREADY_ENABLED`", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/enroll/confirm", data = "<body>")]
async fn confirm(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<CodeBody>,
) -> ApiResult<Json<Value>> {
    let (a, id, au, code) = (
        app.inner().clone(),
        user.user.id,
        audit(&client),
        body.0.code,
    );
    let session = user.session_id();
    let codes = app
        .db
        .write(move |tx| service::confirm(&a, tx, id, session, &code, &au))
        .await?;
    Ok(Json(json!({ "backup_codes": codes })))
}

/// Cancel MFA enrollment
///
/// Clears a pending (not yet confirmed) TOTP secret. Idempotent 200 if there is nothing to
/// clear. 409 if MFA is already fully enabled.
#[utoipa::path(responses(
    (status = 200, description = "Nothing is pending now", body = OkBody),
    (status = 409, description = "`MFA_ALREADY_ENABLED`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/enroll/cancel")]
async fn cancel(app: &State<App>, cred: Credential, client: ClientInfo) -> ApiResult<Json<Value>> {
    let (a, au) = (app.inner().clone(), audit(&client));
    // The caller is looked up inside the write: one trip to the database, not two.
    app.db
        .write(move |tx| {
            let me = cred.resolve(&a, tx)?;
            service::cancel(&a, tx, me.user.id, &au)
        })
        .await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct StepUpBody {
    code: String,
    password: Option<String>,
}

/// The password half of disable/regenerate, on the blocking pool (argon2), for accounts that
/// have a password; the code is checked and spent in the write that follows.
async fn step_up(
    app: &App,
    user: &AuthUser,
    client: &ClientInfo,
    body: StepUpBody,
    fail_event: &'static str,
) -> ApiResult<service::StepUp> {
    let mut step = service::StepUp {
        user_id: user.user.id,
        code: body.code,
        password_checked: false,
        session: user.session_id(),
        audit: audit(client),
    };
    if user.user.has_password {
        let (a, id, au, pw) = (app.clone(), step.user_id, step.audit.clone(), body.password);
        password::with_argon2_slot(move || {
            service::check_password(&a, id, pw.as_deref(), fail_event, &au, true)
        })
        .await?;
        step.password_checked = true;
    }
    Ok(step)
}

/// Disable MFA
///
/// Requires a valid TOTP or unused backup code. Local (password) users must also send
/// password. OIDC-only users omit password. The account's other sessions end.
#[utoipa::path(request_body = StepUpBody, responses(
    (status = 200, description = "MFA is off", body = OkBody),
    (status = 400, description = "`VALIDATION_ERROR`, `MFA_NOT_ENABLED`, `PASSWORD_REQUIRED`, `INVALID_CODE`, `CODE_ALREADY_USED`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`, `INVALID_PASSWORD`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/disable", data = "<body>")]
async fn disable(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<StepUpBody>,
) -> ApiResult<Json<Value>> {
    let step = step_up(app, &user, &client, body.0, "disable_failure").await?;
    let a = app.inner().clone();
    app.db
        .write(move |tx| service::disable(&a, tx, &step))
        .await?;
    Ok(Json(json!({ "ok": true })))
}

/// Replaces the backup codes; the old ones stop working. Needs a code (and the password for
/// accounts that have one), as disable does.
#[utoipa::path(request_body = StepUpBody, responses(
    (status = 200, description = "New codes", body = BackupCodes),
    (status = 400, description = "`VALIDATION_ERROR`, `MFA_NOT_ENABLED`, `PASSWORD_REQUIRED`, `INVALID_CODE`, `CODE_ALREADY_USED`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`, `INVALID_PASSWORD`", body = ErrorBody),
    (status = 403, description = "`CSRF_REJECTED` (cookie credentials)", body = ErrorBody),
    (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorBody),
    (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorBody),
    (status = 429, description = "`RATE_LIMITED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[post("/auth/mfa/backup/regenerate", data = "<body>")]
async fn regenerate(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<StepUpBody>,
) -> ApiResult<Json<Value>> {
    let step = step_up(app, &user, &client, body.0, "regenerate_failure").await?;
    let a = app.inner().clone();
    let codes = app
        .db
        .write(move |tx| service::regenerate(&a, tx, &step))
        .await?;
    Ok(Json(json!({ "backup_codes": codes })))
}

/// The caller's MFA state.
#[utoipa::path(responses(
    (status = 200, description = "The state", body = MfaStatus),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/mfa/status")]
async fn status(app: &State<App>, cred: Credential) -> ApiResult<Json<MfaStatus>> {
    let status = as_caller(app, cred, |c, me| service::status(c, &me.user)).await?;
    Ok(Json(status))
}

/// A page of events, with a `Link` to the next (older) page when this one was full.
struct EventPage {
    body: Json<Vec<repo::Event>>,
    link: Option<String>,
}

impl<'r> Responder<'r, 'static> for EventPage {
    fn respond_to(self, req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let mut res = self.body.respond_to(req)?;
        if let Some(link) = self.link {
            res.set_header(Header::new("Link", link));
        }
        Ok(res)
    }
}

/// The caller's security events, newest first, a page at a time; a full page carries a
/// `Link` header to the next one.
#[utoipa::path(params(
    ("before" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$", description = "An event's `id`: only older events"),
    ("limit" = Option<u8>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
), responses(
    (status = 200, description = "A page of events", body = Vec<repo::Event>),
    (status = 400, description = "`VALIDATION_ERROR` (`before`, `limit`)", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/mfa/events?<before>&<limit>")]
async fn events(
    app: &State<App>,
    cred: Credential,
    before: form::Result<'_, &str>,
    limit: form::Result<'_, &str>,
) -> ApiResult<EventPage> {
    let before = optional(before, "before")?;
    let limit = optional(limit, "limit")?;
    let before = match before {
        None => None,
        Some(b) => Some(b.parse::<i64>().ok().filter(|b| *b > 0).ok_or_else(|| {
            ApiError::validation("before", "`before` must be the id of an event")
        })?),
    };
    let limit = match limit {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                ApiError::validation("limit", "`limit` must be a number from 1 to 100")
            })?,
    };
    let page = as_caller(app, cred, move |c, me| {
        repo::events(c, me.user.id, before, limit)
    })
    .await?;
    let link = match page.last() {
        Some(last) if page.len() as i64 == limit => Some(format!(
            "</api/auth/mfa/events?before={}&limit={limit}>; rel=\"next\"",
            last.id
        )),
        _ => None,
    };
    Ok(EventPage {
        body: Json(page),
        link,
    })
}

/// A query parameter that may be absent; given twice or unreadable it is an error (Rocket's
/// `Option` would quietly make it absent).
fn optional<'a>(value: form::Result<'_, &'a str>, name: &str) -> ApiResult<Option<&'a str>> {
    match value {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.iter()
                .all(|e| matches!(e.kind, form::error::ErrorKind::Missing)) =>
        {
            Ok(None)
        }
        Err(_) => Err(ApiError::validation(name, format!("Give `{name}` once"))),
    }
}

/// The pending enrollment's key again, for a page reloaded mid-enrollment.
#[utoipa::path(responses(
    (status = 200, description = "The pending key, as begin returned it", body = Begin),
    (status = 404, description = "`MFA_NO_PENDING`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/mfa/enroll/pending")]
async fn pending(app: &State<App>, cred: Credential) -> ApiResult<Json<Begin>> {
    let a = app.inner().clone();
    let key = as_caller(app, cred, move |c, me| service::pending(&a, c, me.user.id)).await?;
    Ok(Json(key))
}

/// The QR code of the caller's pending secret, drawn here (on the blocking pool) so that the
/// secret never reaches a third party. Nothing else is ever rendered.
#[utoipa::path(responses(
    (status = 200, description = "An SVG QR code of the pending key", content_type = "image/svg+xml", body = String),
    (status = 404, description = "`MFA_NO_PENDING`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/mfa/enroll/qr")]
async fn qr(app: &State<App>, cred: Credential) -> ApiResult<(ContentType, String)> {
    let a = app.inner().clone();
    let svg = as_caller(app, cred, move |c, me| {
        let key = service::pending(&a, c, me.user.id)?;
        crate::mfa::qr_svg(&key.otpauth_url).map_err(ApiError::internal)
    })
    .await?;
    Ok((ContentType::SVG, svg))
}

/// The MFA routes.
pub fn routes() -> Vec<Route> {
    routes![begin, confirm, cancel, disable, regenerate, status, events, pending, qr]
}
