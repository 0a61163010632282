//! The MFA endpoints of the API pages (begin, confirm, cancel, disable) and the ones a real
//! MFA system needs around them (regenerate, status, events, a local QR renderer).

use rocket::http::ContentType;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use crate::auth::request::ClientInfo;
use crate::auth::{as_caller, AuthUser, Credential};
use crate::body::JsonBody;
use crate::db::mfa as repo;
use crate::error::{ApiError, ApiResult};
use crate::mfa::service::{self, Begin, MfaStatus};
use crate::state::App;

#[post("/auth/mfa/enroll/begin")]
async fn begin(app: &State<App>, user: AuthUser, client: ClientInfo) -> ApiResult<Json<Begin>> {
    let (a, id, au) = (app.inner().clone(), user.user.id, audit(&client));
    Ok(Json(
        app.db.run(move |c| service::begin(&a, c, id, &au)).await?,
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
        .run(move |c| service::confirm(&a, c, id, &code, &au))
        .await?;
    Ok(Json(json!({ "backup_codes": codes })))
}

#[post("/auth/mfa/enroll/cancel")]
async fn cancel(app: &State<App>, cred: Credential, client: ClientInfo) -> ApiResult<Json<Value>> {
    let (a, au) = (app.inner().clone(), audit(&client));
    as_caller(app, cred, move |c, me| {
        service::cancel(&a, c, me.user.id, &au)
    })
    .await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct StepUpBody {
    code: String,
    password: Option<String>,
}

#[post("/auth/mfa/disable", data = "<body>")]
async fn disable(
    app: &State<App>,
    user: AuthUser,
    client: ClientInfo,
    body: JsonBody<StepUpBody>,
) -> ApiResult<Json<Value>> {
    let (a, id, au, b) = (app.inner().clone(), user.user.id, audit(&client), body.0);
    app.db
        .blocking(move || service::disable(&a, id, &b.code, b.password.as_deref(), &au))
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
    let (a, id, au, b) = (app.inner().clone(), user.user.id, audit(&client), body.0);
    let codes = app
        .db
        .blocking(move || service::regenerate(&a, id, &b.code, b.password.as_deref(), &au))
        .await?;
    Ok(Json(json!({ "backup_codes": codes })))
}

#[get("/auth/mfa/status")]
async fn status(app: &State<App>, cred: Credential) -> ApiResult<Json<MfaStatus>> {
    let status = as_caller(app, cred, |c, me| service::status(c, me.user.id)).await?;
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
