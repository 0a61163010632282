//! The one error type of the HTTP API and the JSON catchers.
//!
//! Every error leaves the server as `{"error", "message", "code", "details"?}`; a 429 adds
//! `retryAfter` and a `Retry-After` header.

use std::sync::Mutex;

use rocket::http::{Header, Status};
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher, Request, Response};
use serde_json::{json, Value};

/// An API error: an HTTP status, a stable machine code and a human sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: Status,
    /// The machine-readable code, e.g. `INVALID_CODE`.
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// Optional structured details, e.g. `{"field": "email"}`.
    pub details: Option<Value>,
    /// Seconds until a rate-limited caller may try again.
    pub retry_after: Option<u64>,
    /// The methods a 405 answer lists in `Allow`.
    pub allow: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: Status, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            allow: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized() -> Self {
        Self::new(
            Status::Unauthorized,
            "UNAUTHORIZED",
            "Authentication required. Please provide a valid API token",
        )
    }

    /// 400 `VALIDATION_ERROR` naming the offending field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(Status::BadRequest, "VALIDATION_ERROR", message)
            .with_details(json!({ "field": field }))
    }

    /// 429 `RATE_LIMITED` with the whole seconds until a retry is allowed.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            Status::TooManyRequests,
            "RATE_LIMITED",
            "Rate limit exceeded. Please try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500 `INTERNAL`. The cause is logged here and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            Status::InternalServerError,
            "INTERNAL",
            "The server hit an internal error",
        )
    }

    /// 503 `UNAVAILABLE`: storage is read-only, full or locked; the caller may retry.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "storage unavailable");
        Self::new(
            Status::ServiceUnavailable,
            "UNAVAILABLE",
            "The service is temporarily unavailable. Please try again shortly",
        )
    }

    /// Whether this is the client's fault (4xx): such errors may still commit what the
    /// transaction recorded about the failure (attempt counters, audit events).
    pub fn is_client_error(&self) -> bool {
        self.status.code < 500
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "error": self.status.reason().unwrap_or("Error"),
            "message": self.message,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            body["details"] = d.clone();
        }
        if let Some(r) = self.retry_after {
            body["retryAfter"] = json!(r);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.code, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            Some(
                DatabaseBusy | DatabaseLocked | ReadOnly | DiskFull | CannotOpen | SystemIoFailure,
            ) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::unavailable(e)
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build_from(Json(self.body()).respond_to(req)?);
        res.status(self.status);
        if let Some(r) = self.retry_after {
            res.header(Header::new("Retry-After", r.to_string()));
        }
        if let Some(methods) = self.allow {
            res.header(Header::new("Allow", methods));
        }
        Ok(res.finalize())
    }
}

/// Result alias for API handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Where a failing guard leaves its error for the catcher, since Rocket 0.5 catchers
/// cannot see a guard's error value.
#[derive(Default)]
pub struct GuardError(Mutex<Option<ApiError>>);

/// Records `err` for this request's catcher and returns its status.
pub fn stash(req: &Request<'_>, err: ApiError) -> Status {
    let status = err.status;
    if let Ok(mut slot) = req.local_cache(GuardError::default).0.lock() {
        *slot = Some(err);
    }
    status
}

fn fallback(status: Status) -> ApiError {
    let (code, message) = match status.code {
        400 => ("VALIDATION_ERROR", "The request is malformed"),
        401 => return ApiError::unauthorized(),
        403 => ("FORBIDDEN", "This request is not allowed"),
        404 => ("NOT_FOUND", "No such resource"),
        405 => ("METHOD_NOT_ALLOWED", "Method not allowed on this resource"),
        413 => ("PAYLOAD_TOO_LARGE", "The request body is too large"),
        415 => (
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the body as application/json",
        ),
        422 => ("VALIDATION_ERROR", "The request body is not valid"),
        429 => return ApiError::rate_limited(60),
        503 => ("UNAVAILABLE", "The service is temporarily unavailable"),
        c if c >= 500 => ("INTERNAL", "The server hit an internal error"),
        _ => ("ERROR", "The request failed"),
    };
    ApiError::new(status, code, message)
}

/// How well a route path (`/api/tokens/<id>`, `/assets/<file..>`) matches a request path,
/// segment by segment: None when it does not, else the number of literal segments (Rocket
/// prefers the most literal route). Empty segments (doubled or trailing slashes) are ignored,
/// as Rocket does.
fn path_match(route: &str, path: &str) -> Option<usize> {
    let mut want = route.split('/').filter(|s| !s.is_empty());
    let mut have = path.split('/').filter(|s| !s.is_empty());
    let mut literal = 0;
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(literal),
            (Some(w), _) if w.starts_with('<') && w.ends_with("..>") => return Some(literal),
            (Some(w), Some(_)) if w.starts_with('<') && w.ends_with('>') => {}
            (Some(w), Some(h)) if w == h => literal += 1,
            _ => return None,
        }
    }
}

/// The methods of the most literal routes for this request's path, for a 405's `Allow`
/// (empty: unknown path). `/api/auth/sessions/revoke-others` lists POST, not also the DELETE
/// of `/api/auth/sessions/<id>`, as the OpenAPI document does.
fn allowed_methods(req: &Request<'_>) -> Vec<String> {
    let path = req.uri().path();
    let matches: Vec<(usize, String)> = req
        .rocket()
        .routes()
        .filter_map(|r| {
            path_match(r.uri.path(), path.as_str()).map(|n| (n, r.method.as_str().to_string()))
        })
        .collect();
    let best = matches.iter().map(|m| m.0).max();
    let mut methods: Vec<String> = matches
        .into_iter()
        .filter(|m| Some(m.0) == best)
        .map(|m| m.1)
        .collect();
    if methods.iter().any(|m| m == "GET") {
        // Rocket answers HEAD for every GET route.
        methods.push("HEAD".into());
    }
    methods.sort();
    methods.dedup();
    methods
}

#[catch(default)]
fn catch_all(status: Status, req: &Request<'_>) -> ApiError {
    caught(status, req)
}

/// The JSON error a catcher answers for `status`: a guard's stashed error, a 405 with `Allow`
/// for a path routed only for other methods, or the generic error of the status.
pub fn caught(status: Status, req: &Request<'_>) -> ApiError {
    let stashed = req
        .local_cache(GuardError::default)
        .0
        .lock()
        .ok()
        .and_then(|mut s| s.take());
    match stashed {
        Some(e) => e,
        // Rocket hands a request whose method it does not know (QUERY, PROPFIND, …) to the
        // catchers as a 400 GET without a route; a 400 from a route or guard is stashed.
        None if matches!(status.code, 400 | 404) && req.route().is_none() => {
            let unknown_method = status.code == 400;
            let methods = allowed_methods(req);
            let routed = !unknown_method && methods.iter().any(|m| m == req.method().as_str());
            if methods.is_empty() || routed {
                fallback(status)
            } else {
                let mut e = fallback(Status::MethodNotAllowed);
                e.allow = Some(methods.join(", "));
                e
            }
        }
        None => fallback(status),
    }
}

/// The JSON catchers, for every status.
pub fn catchers() -> Vec<Catcher> {
    catchers![catch_all]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_shape_and_retry_after() {
        let e = ApiError::rate_limited(42);
        let b = e.body();
        assert_eq!(b["error"], "Too Many Requests");
        assert_eq!(b["code"], "RATE_LIMITED");
        assert_eq!(b["retryAfter"], 42);
        let v = ApiError::validation("email", "bad").body();
        assert_eq!(v["details"]["field"], "email");
        assert!(v.get("retryAfter").is_none());
    }

    #[test]
    fn route_paths_match_by_segment() {
        assert_eq!(path_match("/api/health", "/api/health"), Some(2));
        assert_eq!(path_match("/api/health", "//api//health/"), Some(2));
        assert_eq!(path_match("/api/tokens/<id>", "/api/tokens/7"), Some(2));
        assert_eq!(path_match("/api/tokens/<id>", "/api/tokens"), None);
        assert_eq!(path_match("/api/tokens/<id>", "/api/tokens/7/x"), None);
        assert_eq!(path_match("/assets/<file..>", "/assets/a/b.css"), Some(1));
        assert_eq!(path_match("/api/health", "/api/healthz"), None);
    }

    #[test]
    fn fallback_codes() {
        assert_eq!(fallback(Status::NotFound).code, "NOT_FOUND");
        assert_eq!(fallback(Status::PayloadTooLarge).code, "PAYLOAD_TOO_LARGE");
        assert_eq!(
            fallback(Status::UnprocessableEntity).code,
            "VALIDATION_ERROR"
        );
        assert_eq!(fallback(Status::InternalServerError).code, "INTERNAL");
    }
}
