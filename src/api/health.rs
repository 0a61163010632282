//! `GET /api/health`.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde_json::{json, Value};

use super::docs::ErrorBody;
use crate::error::ApiResult;

/// `{"status": "ok"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: String,
}
use crate::state::App;

/// 200 `{status: "ok"}` once the database answers.
#[utoipa::path(security(()), responses(
    (status = 200, description = "The database answers", body = Health),
    (status = 503, description = "`UNAVAILABLE`: storage is locked, full or read-only", body = ErrorBody),
))]
#[get("/health")]
async fn health(app: &State<App>) -> ApiResult<Json<Value>> {
    app.db
        .run(|c| {
            Ok(c.prepare_cached("SELECT 1")?
                .query_row([], |r| r.get::<_, i64>(0))?)
        })
        .await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// The health routes.
pub fn routes() -> Vec<Route> {
    routes![health]
}
