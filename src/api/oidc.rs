//! OpenID Connect sign-in routes: the providers list, the start and the callback. The start
//! and callback are browser navigations, so they answer redirects, never JSON errors: a
//! failure lands on the sign-in page with `?error=<CODE>`.

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::time::{Duration, OffsetDateTime};
use rocket::{get, routes, Route, State};

use super::docs::ErrorBody;
use crate::auth::login::PENDING_TTL;
use crate::auth::request::ClientInfo;
use crate::auth::{session, AuthUser, Credential};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::oidc::flow::{self, Callback, Done};
use crate::oidc::state::{COOKIE, TTL};
use crate::oidc::{config::ProviderConfig, Failure, ProviderInfo};
use crate::state::App;

/// The cookie's path: only the OIDC routes ever see it.
const COOKIE_PATH: &str = "/api/auth/oidc";

/// The configured identity providers, for the sign-in page's buttons.
#[utoipa::path(security(()), responses(
    (status = 200, description = "`[{id, name}]`", body = Vec<ProviderInfo>),
))]
#[get("/auth/oidc/providers")]
fn providers(app: &State<App>) -> Json<Vec<ProviderInfo>> {
    Json(app.oidc.list())
}

/// The providers the caller's account is linked to (the page shows where it signs in).
#[utoipa::path(responses(
    (status = 200, description = "`[{id, name}]`", body = Vec<ProviderInfo>),
    (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/oidc/identities")]
async fn identities(app: &State<App>, user: AuthUser) -> ApiResult<Json<Vec<ProviderInfo>>> {
    let uid = user.user.id;
    let ids = app.db.run(move |c| db::oidc::providers_of(c, uid)).await?;
    Ok(Json(
        ids.into_iter()
            .map(|id| ProviderInfo {
                name: app
                    .oidc
                    .provider(&id)
                    .map_or(id.clone(), |p| p.name.clone()),
                id,
            })
            .collect(),
    ))
}

fn provider<'a>(app: &'a App, id: &str) -> ApiResult<&'a ProviderConfig> {
    app.oidc.provider(id).ok_or_else(|| {
        ApiError::new(
            Status::NotFound,
            "OIDC_PROVIDER_NOT_FOUND",
            "No sign-in provider has this id",
        )
    })
}

fn failed(f: Failure) -> Redirect {
    Redirect::found(format!("/login?error={}", f.code()))
}

fn flow_cookie(app: &App, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(COOKIE_PATH)
        .secure(app.config.secure_cookies())
        .max_age(Duration::seconds(max_age))
        .build()
}

/// Starts an OpenID Connect sign-in: a redirect to the provider (authorization code flow with
/// PKCE, state and nonce in the sealed, single-use `slugbase.oidc` cookie).
#[utoipa::path(security(()), params(
    ("id" = String, Path, description = "The provider's id"),
    ("rd" = Option<String>, Query, description = "Where to go after signing in, when allowed"),
), responses(
    (status = 302, description = "To the provider, or to `/login?error=OIDC_PROVIDER_UNAVAILABLE`", headers(("Location" = String, description = "Where to go"))),
    (status = 404, description = "`OIDC_PROVIDER_NOT_FOUND`", body = ErrorBody),
))]
#[get("/auth/oidc/<id>/start?<rd>")]
async fn start(
    app: &State<App>,
    jar: &CookieJar<'_>,
    id: &str,
    rd: Option<&str>,
) -> ApiResult<Redirect> {
    let p = provider(app, id)?;
    Ok(match flow::start(app, p, rd).await {
        Ok(s) => {
            jar.add(flow_cookie(app, s.cookie, TTL));
            Redirect::found(s.location)
        }
        Err(f) => failed(f),
    })
}

/// The provider's redirect back: checks the state, exchanges the code, validates the ID token
/// and signs in (or starts the code step). Failures land on `/login?error=<CODE>`.
#[utoipa::path(security(()), params(
    ("id" = String, Path, description = "The provider's id"),
    ("code" = Option<String>, Query, description = "The authorization code"),
    ("state" = Option<String>, Query, description = "The state the start sent"),
    ("error" = Option<String>, Query, description = "The provider's error, e.g. `access_denied`"),
    ("iss" = Option<String>, Query, description = "The issuer (RFC 9207)"),
), responses(
    (status = 302, description = "To the page or `rd` (signed in), to `/login?mfa=1` (code step), or to `/login?error=<CODE>`", headers(("Location" = String, description = "Where to go"))),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
))]
#[get("/auth/oidc/<id>/callback?<code>&<state>&<error>&<iss>")]
#[allow(clippy::too_many_arguments)]
async fn callback(
    app: &State<App>,
    jar: &CookieJar<'_>,
    client: ClientInfo,
    cred: Credential,
    id: &str,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
) -> ApiResult<Redirect> {
    let Some(p) = app.oidc.provider(id) else {
        return Ok(failed(Failure::StateInvalid));
    };
    let req = flow::Request {
        cookie: jar.get(COOKIE).map(|c| c.value().to_string()),
        client,
        presented: cred.presented_session(),
    };
    // Used or not, the cookie is done.
    let mut gone = flow_cookie(app, String::new(), 0);
    gone.set_expires(OffsetDateTime::UNIX_EPOCH);
    jar.add(gone);
    let q = Callback {
        code,
        state,
        error,
        iss,
    };
    Ok(match flow::callback(app, p, q, req).await? {
        Ok((Done::Session(s), rd)) => {
            session::set_cookies(app, jar, s);
            Redirect::found(rd.unwrap_or_else(|| "/".into()))
        }
        Ok((Done::Mfa(token), _)) => {
            session::set_pending_cookie(app, jar, token, PENDING_TTL);
            Redirect::found("/login?mfa=1")
        }
        Err(f) => failed(f),
    })
}

/// The OIDC routes.
pub fn routes() -> Vec<Route> {
    routes![providers, identities, start, callback]
}
