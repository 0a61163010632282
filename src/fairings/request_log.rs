//! One log line per request: method, path, status, latency, user id and client IP. The
//! query string is left out, since it may carry a setup token.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

use crate::auth::request::{client_info, LoggedUser};

/// Logs each request.
pub struct RequestLog;

struct Started(Instant);

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info {
            name: "request log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| Started(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let started = req.local_cache(|| Started(Instant::now())).0;
        let user = req
            .local_cache(LoggedUser::default)
            .0
            .load(Ordering::Relaxed);
        let ip = client_info(req).ip_key();
        let (method, path, status) = (req.method(), req.uri().path(), res.status().code);
        let latency_ms = format_args!("{:.2}", started.elapsed().as_secs_f64() * 1000.0);
        let user = (user != 0).then_some(user);
        // A missing asset (a stale cached page, a browser's favicon guess) is noise at
        // homelab scale, and so is the proxies' check of every request to every app: its
        // handler has logged the answer already (allowed at DEBUG, refused at INFO), so only
        // its other outcomes (a proxy that sends no original request, a server error) are
        // logged here at INFO, as is every other request, unmatched ones included.
        let answered = matches!(status, 200 | 302 | 401 | 403);
        let quiet = (status == 404 && path.as_str().starts_with("/assets/"))
            || (answered && path.as_str().starts_with("/api/authz/"));
        if quiet {
            tracing::debug!(target: "slugbase::request", %method, %path, status, latency_ms, user, ip = %ip);
        } else {
            tracing::info!(target: "slugbase::request", %method, %path, status, latency_ms, user, ip = %ip);
        }
    }
}
