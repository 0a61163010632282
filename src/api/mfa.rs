//! The MFA endpoints of the API pages (begin, confirm, cancel, disable) and the ones a real
//! MFA system needs around them (regenerate, status, events, a local QR renderer).

use rocket::http::ContentType;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use crate::auth::request::ClientInfo;
use crate::auth::{as_caller, password, AuthUser, Credential};
use crate::body::JsonBody;
use crate::db::mfa as repo;
use crate::error::{ApiError, ApiResult};
use crate::mfa::service::{self, Begin, MfaStatus};
use crate::state::App;

#[post("/auth/mfa/enroll/begin")]
async fn begin(app: &State<App>, user: AuthUser, client: ClientInfo) -> ApiResult<Json<Begin>> {
    let (a, id, au) = (app.inner().clone(), user.user.id, audit(&client));
    Ok(Json(
        app.db
            .write(move |tx| service::begin(&a, tx, id, &au))
            .await?,
    ))
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

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
    let codes = app
        .db
        .write(move |tx| service::confirm(&a, tx, id, &code, &au))
        .await?;
    Ok(Json(json!({ "backup_codes": codes })))
}

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

#[derive(Deserialize)]
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
        audit: audit(client),
    };
    if user.user.has_password {
        let (a, id, au, pw) = (app.clone(), step.user_id, step.audit.clone(), body.password);
        password::with_argon2_slot(move || {
            service::check_password(&a, id, pw.as_deref(), fail_event, &au)
        })
        .await?;
        step.password_checked = true;
    }
    Ok(step)
}

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

#[get("/auth/mfa/status")]
async fn status(app: &State<App>, cred: Credential) -> ApiResult<Json<MfaStatus>> {
    let status = as_caller(app, cred, |c, me| service::status(c, &me.user)).await?;
    Ok(Json(status))
}

#[get("/auth/mfa/events")]
async fn events(app: &State<App>, cred: Credential) -> ApiResult<Json<Vec<repo::Event>>> {
    let events = as_caller(app, cred, |c, me| repo::events(c, me.user.id, 50)).await?;
    Ok(Json(events))
}

#[derive(Deserialize)]
struct QrBody {
    otpauth_url: String,
}

/// Renders the page's QR code here, so the otpauth URL never reaches a third party.
#[post("/auth/mfa/qr", data = "<body>")]
fn qr(_user: AuthUser, body: JsonBody<QrBody>) -> ApiResult<(ContentType, String)> {
    let url = body.0.otpauth_url;
    if !url.starts_with("otpauth://totp/") || url.len() > 1024 {
        return Err(ApiError::validation(
            "otpauth_url",
            "Expected an otpauth://totp/ URL",
        ));
    }
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|_| ApiError::validation("otpauth_url", "Too long for a QR code"))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok((ContentType::SVG, svg))
}

/// The MFA routes.
pub fn routes() -> Vec<Route> {
    routes![begin, confirm, cancel, disable, regenerate, status, events, qr]
}
