//! Forward-auth for reverse proxies: `GET /api/authz/forward-auth` (Traefik ForwardAuth,
//! Caddy `forward_auth`) and `GET /api/authz/auth-request` (nginx `auth_request`), plus
//! `GET /api/authz/return-to`, which tells the page whether an `rd` may be followed.

use percent_encoding::{utf8_percent_encode, CONTROLS, NON_ALPHANUMERIC};
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};

use super::docs::ErrorBody;
use crate::auth::request::ClientInfo;
use crate::auth::return_to::safe_return;
use crate::auth::Credential;
use crate::authz::{decide, Caller, Decision, Gate, Policy, Target};
use crate::config::Config;
use crate::db::{groups, mfa as repo};
use crate::error::{stash, ApiError};
use crate::state::App;

/// How the proxy describes the original request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`; sign-in answers are 302.
    ForwardAuth,
    /// `X-Original-URL`, `X-Original-Method`; sign-in answers are 401 with `Location`.
    AuthRequest,
}

/// The question a proxy asks: the original request, whether it is a browser navigation, the
/// rule it matches and the credential it carries (a token only where that rule allows one).
struct Asked {
    target: Target,
    navigation: bool,
    rule: Option<usize>,
    cred: Credential,
}

fn asked(req: &Request<'_>, flavor: Flavor) -> Result<Asked, ApiError> {
    let (app, gate) = match (req.rocket().state::<App>(), req.rocket().state::<Gate>()) {
        (Some(a), Some(g)) => (a, g),
        _ => return Err(ApiError::internal("no app state")),
    };
    let h = req.headers();
    let target = match flavor {
        Flavor::ForwardAuth => Target::from_parts(
            h.get_one("X-Forwarded-Proto").unwrap_or("http"),
            h.get_one("X-Forwarded-Host").unwrap_or(""),
            h.get_one("X-Forwarded-Uri").unwrap_or("/"),
            h.get_one("X-Forwarded-Method").unwrap_or("GET"),
        ),
        Flavor::AuthRequest => Target::from_url(
            h.get_one("X-Original-URL").unwrap_or(""),
            h.get_one("X-Original-Method").unwrap_or("GET"),
        ),
    }
    .map_err(|e| {
        ApiError::new(
            Status::BadRequest,
            "BAD_ORIGINAL_REQUEST",
            format!("The proxy did not describe the original request: {e}"),
        )
    })?;
    let rule = gate.rules.find(&target.host, &target.path, &target.method);
    let tokens = rule.is_some_and(|r| r.api_tokens);
    Ok(Asked {
        navigation: decide::is_navigation(&target.method, h.get_one("Accept")),
        rule: rule.map(|r| r.index),
        cred: Credential::from_proxied(req, app, tokens),
        target,
    })
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Asked {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let flavor = if req.uri().path().ends_with("auth-request") {
            Flavor::AuthRequest
        } else {
            Flavor::ForwardAuth
        };
        match asked(req, flavor) {
            Ok(a) => Outcome::Success(a),
            Err(e) => Outcome::Error((stash(req, e), ())),
        }
    }
}

/// The answer to the proxy.
enum Answer {
    /// 200, empty, with the four `Remote-*` headers (empty values for `bypass`).
    Allow(Option<Caller>),
    /// 302 to this URL.
    Redirect(String),
    /// An error, with `Location` when the browser should go there (nginx turns it into a
    /// redirect).
    Refuse(ApiError, Option<String>),
}

/// Header values are ASCII: anything else (a display name with accents) is percent-encoded.
fn header_value(v: &str) -> String {
    utf8_percent_encode(v, CONTROLS).to_string()
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Answer::Allow(caller) => {
                let (email, name, groups) = caller
                    .map(|c| (c.email, c.name, c.groups.join(",")))
                    .unwrap_or_default();
                Response::build()
                    .status(Status::Ok)
                    .header(Header::new("Remote-User", header_value(&email)))
                    .header(Header::new("Remote-Email", header_value(&email)))
                    .header(Header::new("Remote-Name", header_value(&name)))
                    .header(Header::new("Remote-Groups", header_value(&groups)))
                    .ok()
            }
            Answer::Redirect(to) => Response::build()
                .status(Status::Found)
                .header(Header::new("Location", to))
                .ok(),
            Answer::Refuse(e, location) => {
                let mut res = e.respond_to(req)?;
                if let Some(to) = location {
                    res.set_header(Header::new("Location", to));
                }
                Ok(res)
            }
        }
    }
}

/// slugbase's own base URL (no trailing slash), for sign-in redirects.
fn public_base(config: &Config) -> String {
    let o = config.public_origin();
    let default = if o.is_https() { 443 } else { 80 };
    if o.port == default {
        format!("{}://{}", o.scheme, o.host)
    } else {
        format!("{}://{}:{}", o.scheme, o.host, o.port)
    }
}

/// The signed-in caller of `cred` with their groups, in the same blocking hop.
async fn caller_of(app: &App, cred: Credential) -> Result<Option<(i64, Caller)>, ApiError> {
    let a = app.clone();
    app.db
        .run(move |c| {
            let Some(me) = cred.resolve_optional(&a, c)? else {
                return Ok(None);
            };
            let groups = groups::effective(c, me.user.id, me.user.is_admin)?;
            let session_mfa = me.session.map(|s| s.mfa);
            Ok(Some((
                me.user.id,
                Caller {
                    email: me.user.email,
                    name: me.user.name,
                    groups,
                    mfa_enabled: me.user.mfa_enabled,
                    session_mfa,
                },
            )))
        })
        .await
}

async fn check(app: &App, gate: &Gate, client: ClientInfo, q: Asked, flavor: Flavor) -> Answer {
    let rule = q.rule.and_then(|i| gate.rules.rules.get(i));
    let policy = rule.map_or(gate.rules.default_policy, |r| r.policy);
    let t = &q.target;
    let rule_name = q
        .rule
        .map_or_else(|| "default".to_string(), |i| i.to_string());
    // bypass needs no caller: no database hop.
    let found = if policy == Policy::Bypass {
        None
    } else {
        match caller_of(app, q.cred).await {
            Ok(c) => c,
            Err(e) => return Answer::Refuse(e, None),
        }
    };
    let user_id = found.as_ref().map_or(0, |f| f.0);
    let decision = decide(&gate.rules, rule, found.map(|f| f.1));
    // Only refusals need these: an allowed check (nearly every one) skips building them.
    let base = || public_base(&app.config);
    let rd = || utf8_percent_encode(&t.url(), NON_ALPHANUMERIC).to_string();
    // A browser is sent to `to`: a 302 for Traefik and Caddy; for nginx a 401 with
    // `Location` (the only error auth_request passes on), keeping the error's code.
    let send = |to: String, e: ApiError| match (q.navigation, flavor) {
        (true, Flavor::ForwardAuth) => Answer::Redirect(to),
        (true, Flavor::AuthRequest) => Answer::Refuse(
            ApiError::new(Status::Unauthorized, e.code, e.message),
            Some(to),
        ),
        (false, _) => Answer::Refuse(e, None),
    };
    match decision {
        Decision::Allow(caller) => {
            tracing::debug!(target: "slugbase::authz", rule = %rule_name, host = %t.host, path = %t.path, user = user_id, "forward-auth allowed");
            Answer::Allow(caller)
        }
        Decision::SignIn => {
            tracing::info!(target: "slugbase::authz", rule = %rule_name, host = %t.host, path = %t.path, user = user_id, "forward-auth: sign-in required");
            send(
                format!("{}/login?rd={}", base(), rd()),
                ApiError::unauthorized(),
            )
        }
        Decision::Enroll => {
            tracing::info!(target: "slugbase::authz", rule = %rule_name, host = %t.host, path = %t.path, user = user_id, "forward-auth: MFA enrollment required");
            let e = ApiError::new(
                Status::Forbidden,
                "MFA_ENROLLMENT_REQUIRED",
                "This application requires two-step verification: set it up on your account first",
            );
            send(format!("{}/?enroll=1&rd={}", base(), rd()), e)
        }
        Decision::Forbidden => {
            tracing::info!(target: "slugbase::authz", rule = %rule_name, host = %t.host, path = %t.path, user = user_id, "forward-auth denied");
            let now = app.now();
            if gate.denied.should_record(user_id, q.rule, &t.host, now) {
                let detail = format!("rule={rule_name} host={} path={}", t.host, t.path);
                let ip = client.ip_text();
                let _ = app
                    .db
                    .write(move |c| {
                        repo::record_event_detail(
                            c,
                            user_id,
                            "forward_auth_denied",
                            now,
                            ip.as_deref(),
                            &detail,
                        )
                    })
                    .await;
            }
            Answer::Refuse(
                ApiError::new(
                    Status::Forbidden,
                    "ACCESS_DENIED",
                    "Your account may not open this application",
                ),
                None,
            )
        }
    }
}

/// For Traefik ForwardAuth and Caddy `forward_auth`: may the request the `X-Forwarded-*`
/// headers describe pass? The credential is the browser's session cookies (or a Bearer `sb_`
/// token where the matching rule allows it).
#[utoipa::path(params(
    ("X-Forwarded-Method" = Option<String>, Header, description = "The original method"),
    ("X-Forwarded-Proto" = Option<String>, Header, description = "`http` or `https`"),
    ("X-Forwarded-Host" = Option<String>, Header, description = "The original host"),
    ("X-Forwarded-Uri" = Option<String>, Header, description = "The original path and query"),
), responses(
    (status = 200, description = "Allowed: an empty body, with `Remote-User` (email), `Remote-Email`, `Remote-Name` and `Remote-Groups` (comma-separated; empty for `bypass`)", headers(
        ("Remote-User" = String, description = "The account's email"),
        ("Remote-Email" = String, description = "The account's email"),
        ("Remote-Name" = String, description = "The account's name"),
        ("Remote-Groups" = String, description = "Its groups, comma-separated"),
    )),
    (status = 400, description = "`BAD_ORIGINAL_REQUEST`: the proxy did not describe the original request", body = ErrorBody),
    (status = 403, description = "`ACCESS_DENIED`, `MFA_ENROLLMENT_REQUIRED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
    (status = 302, description = "A browser that must sign in (or enroll): to the sign-in page with `rd`", headers(("Location" = String, description = "Where to sign in"))),
    (status = 401, description = "`UNAUTHORIZED`: not signed in (not a browser navigation)", body = ErrorBody),
))]
#[get("/authz/forward-auth")]
async fn forward_auth(
    app: &State<App>,
    gate: &State<Gate>,
    client: ClientInfo,
    q: Asked,
) -> Answer {
    check(app, gate, client, q, Flavor::ForwardAuth).await
}

/// For nginx `auth_request`: may the request `X-Original-URL` and `X-Original-Method`
/// describe pass? A browser that must sign in gets 401 with the sign-in address in `Location`,
/// which the shipped nginx configuration turns into a redirect.
#[utoipa::path(params(
    ("X-Original-URL" = Option<String>, Header, description = "The original URL"),
    ("X-Original-Method" = Option<String>, Header, description = "The original method"),
), responses(
    (status = 200, description = "Allowed: an empty body, with `Remote-User` (email), `Remote-Email`, `Remote-Name` and `Remote-Groups` (comma-separated; empty for `bypass`)", headers(
        ("Remote-User" = String, description = "The account's email"),
        ("Remote-Email" = String, description = "The account's email"),
        ("Remote-Name" = String, description = "The account's name"),
        ("Remote-Groups" = String, description = "Its groups, comma-separated"),
    )),
    (status = 400, description = "`BAD_ORIGINAL_REQUEST`: the proxy did not describe the original request", body = ErrorBody),
    (status = 403, description = "`ACCESS_DENIED`, `MFA_ENROLLMENT_REQUIRED`", body = ErrorBody),
    (status = 503, description = "`UNAVAILABLE`", body = ErrorBody),
    (status = 401, description = "`UNAUTHORIZED`; with `Location` for a browser navigation", body = ErrorBody, headers(("Location" = String, description = "Where to sign in (browser navigations)"))),
))]
#[get("/authz/auth-request")]
async fn auth_request(
    app: &State<App>,
    gate: &State<Gate>,
    client: ClientInfo,
    q: Asked,
) -> Answer {
    check(app, gate, client, q, Flavor::AuthRequest).await
}

/// `{"redirect_to": url}` when the page may send the person to `rd` after signing in, else
/// `{"redirect_to": null}`.
#[utoipa::path(security(()), params(("rd" = Option<String>, Query, description = "A return URL")), responses(
    (status = 200, description = "`redirect_to`: `rd` when it may be followed, else null", body = ReturnTo),
))]
#[get("/authz/return-to?<rd>")]
fn return_to(app: &State<App>, rd: Option<&str>) -> Json<ReturnTo> {
    Json(ReturnTo {
        redirect_to: rd.and_then(|rd| safe_return(&app.config, rd)),
    })
}

/// `{"redirect_to": url | null}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ReturnTo {
    /// Where the page may send the person, or null.
    redirect_to: Option<String>,
}

/// The forward-auth routes.
pub fn routes() -> Vec<Route> {
    routes![forward_auth, auth_request, return_to]
}
