//! `GET /api/health`.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::state::App;

/// 200 `{status: "ok"}` once the database answers.
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
