//! Security headers on every response, and `Cache-Control: no-store` on the API.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Request, Response};

/// The page's policy: nothing from any other origin, no inline script or style.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Adds the security headers.
pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "security headers",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        res.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        res.set_header(Header::new("Referrer-Policy", "no-referrer"));
        res.set_header(Header::new("X-Frame-Options", "DENY"));
        res.set_header(Header::new("Cross-Origin-Opener-Policy", "same-origin"));
        res.set_header(Header::new("Content-Security-Policy", CSP));
        if req.uri().path().starts_with("/api") {
            res.set_header(Header::new("Cache-Control", "no-store"));
        }
        // Only when users reach slugbase over https: a browser then refuses plain http to this
        // host for two years, which would break an http-only install.
        let https = req
            .rocket()
            .state::<crate::state::App>()
            .is_some_and(|a| a.config.public_origin().is_https());
        if https {
            res.set_header(Header::new("Strict-Transport-Security", "max-age=63072000"));
        }
    }
}
