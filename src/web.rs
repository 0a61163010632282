//! The browser page: files of `static/`, embedded into the binary at build time.
//!
//! The page is one HTML document for every client-side path (`/`, `/setup`,
//! `/login`, `/login/code`, `/account`) plus its assets under `/assets/`. The security
//! headers (CSP and friends) are added to every response by a fairing
//! elsewhere; this module only sets the content type, caching and encoding.
//!
//! The HTML names each asset with a version stamp of its content
//! (`/assets/app-core.js?v=<hash>`), so assets are cached for a year as immutable and an upgrade
//! still shows at once. Text assets are gzipped at build time (`build.rs`) and sent so to
//! clients that accept it. Unknown page paths get an HTML 404 page; `/api` stays JSON.

use std::borrow::Cow;
use std::io::Cursor;
use std::path::PathBuf;

use std::collections::HashMap;
use std::sync::OnceLock;

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::response::{self, Responder, Response};
use rocket::{catch, catchers, get, routes, Catcher, Request, Route};

use crate::error::ApiError;

/// The files of `static/`, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// `Cache-Control` of the HTML page: always revalidate, so a new binary shows at once.
const HTML_CACHE: &str = "no-cache";
/// `Cache-Control` of the page's assets (scripts, styles, icons) asked for without the
/// current version stamp.
const ASSET_CACHE: &str = "public, max-age=3600";
/// `Cache-Control` of an asset asked for with its current version stamp: it never changes.
const VERSIONED_CACHE: &str = "public, max-age=31536000, immutable";

/// The gzipped text assets, made by `build.rs`: (file name, original length, gzip bytes).
const GZIPPED: &[(&str, usize, &[u8])] = include!(concat!(env!("OUT_DIR"), "/assets_gz.rs"));

/// One embedded file, ready to send.
pub struct StaticFile {
    body: Cow<'static, [u8]>,
    content_type: ContentType,
    cache_control: &'static str,
    gzip: Option<&'static [u8]>,
    /// A gzipped copy exists, so the answer depends on `Accept-Encoding`.
    vary: bool,
    status: Status,
}

impl StaticFile {
    /// Looks up `path` (relative to `static/`); `None` when there is no such file.
    fn load(path: &str, cache_control: &'static str) -> Option<Self> {
        let file = Assets::get(path)?;
        let content_type = path
            .rsplit_once('.')
            .and_then(|(_, ext)| ContentType::from_extension(ext))
            .unwrap_or(ContentType::Binary);
        // The build-time copy is used only while it matches the embedded file (in debug builds
        // rust-embed reads `static/` live).
        let gzip = GZIPPED
            .iter()
            .find(|(name, len, _)| *name == path && *len == file.data.len())
            .map(|(_, _, gz)| *gz);
        Some(StaticFile {
            body: file.data,
            content_type,
            cache_control,
            gzip,
            vary: gzip.is_some(),
            status: Status::Ok,
        })
    }

    /// This file, gzipped when the client accepts it and a compressed copy exists.
    fn encoded(mut self, accept: AcceptsGzip) -> Self {
        if !accept.0 {
            self.gzip = None;
        }
        self
    }
}

/// The short content stamp of an embedded file, for its URL (`?v=`).
pub fn version(path: &str) -> Option<String> {
    let file = Assets::get(path)?;
    let hash = file.metadata.sha256_hash();
    Some(hash[..6].iter().map(|b| format!("{b:02x}")).collect())
}

/// An HTML file with every `"/assets/<name>"` it names stamped with that file's version.
fn stamped_html(path: &'static str) -> Option<&'static [u8]> {
    static CACHE: OnceLock<HashMap<&'static str, Option<Vec<u8>>>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        ["index.html", "404.html"]
            .into_iter()
            .map(|p| {
                (
                    p,
                    Assets::get(p).map(|f| stamp(&String::from_utf8_lossy(&f.data))),
                )
            })
            .collect()
    });
    all.get(path)?.as_deref()
}

/// Rewrites `"/assets/<name>"` to `"/assets/<name>?v=<version>"` for every embedded file.
fn stamp(html: &str) -> Vec<u8> {
    let mut out = html.to_string();
    for name in Assets::iter() {
        if let Some(v) = version(&name) {
            out = out.replace(
                &format!("\"/assets/{name}\""),
                &format!("\"/assets/{name}?v={v}\""),
            );
        }
    }
    out.into_bytes()
}

/// Whether the request's `Accept-Encoding` allows gzip.
pub struct AcceptsGzip(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AcceptsGzip {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(AcceptsGzip(
            req.headers().get("Accept-Encoding").any(accepts_gzip),
        ))
    }
}

/// Whether one `Accept-Encoding` value lists gzip (or `*`) without `q=0`.
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|part| {
        let mut bits = part.split(';').map(str::trim);
        let coding = bits.next().unwrap_or("");
        let refused = bits.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

impl<'r> Responder<'r, 'static> for StaticFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build();
        res.status(self.status)
            .header(self.content_type)
            .raw_header("Cache-Control", self.cache_control);
        if self.vary {
            res.raw_header("Vary", "Accept-Encoding");
        }
        match self.gzip {
            Some(gz) => res
                .raw_header("Content-Encoding", "gzip")
                .sized_body(gz.len(), Cursor::new(gz)),
            None => res.sized_body(self.body.len(), Cursor::new(self.body)),
        };
        res.ok()
    }
}

/// The single-page app's HTML document, its asset URLs stamped; a missing file is a server
/// error.
fn page() -> Result<StaticFile, Status> {
    html("index.html", Status::Ok).ok_or(Status::InternalServerError)
}

/// A stamped HTML file (never cached without revalidation, never gzipped: it is small and
/// its stamped form is made at run time).
fn html(path: &'static str, status: Status) -> Option<StaticFile> {
    let body = stamped_html(path)?;
    Some(StaticFile {
        body: Cow::Borrowed(body),
        content_type: ContentType::HTML,
        cache_control: HTML_CACHE,
        gzip: None,
        vary: false,
        status,
    })
}

#[get("/")]
fn index() -> Result<StaticFile, Status> {
    page()
}

#[get("/setup")]
fn setup() -> Result<StaticFile, Status> {
    page()
}

#[get("/login")]
fn login() -> Result<StaticFile, Status> {
    page()
}

#[get("/account")]
fn account() -> Result<StaticFile, Status> {
    page()
}

/// The code step of sign-in: the page asks `GET /api/auth/session` whether the pending
/// sign-in still lives.
#[get("/login/code")]
fn login_code() -> Result<StaticFile, Status> {
    page()
}

/// Assets: `/assets/app-core.js` is `static/app-core.js`. Rocket's `PathBuf` guard already
/// refuses `..` and hidden segments; the HTML pages themselves are not assets. With the
/// current version stamp (`?v=`) an asset is cached as immutable.
#[get("/assets/<file..>?<v>")]
fn asset(file: PathBuf, v: Option<&str>, gz: AcceptsGzip) -> Option<StaticFile> {
    let parts: Vec<&str> = file.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    let path = parts.join("/");
    if path.ends_with(".html") {
        return None;
    }
    let current = v.is_some() && v.map(str::to_string) == version(&path);
    let cache = if current {
        VERSIONED_CACHE
    } else {
        ASSET_CACHE
    };
    Some(StaticFile::load(&path, cache)?.encoded(gz))
}

/// The routes of the browser page, to be mounted at `/`.
pub fn routes() -> Vec<Route> {
    routes![index, setup, login, login_code, account, asset]
}

/// 404 outside `/api`: the HTML "page not found" page with a link home. Under `/api`, and
/// for a path that is routed for other methods (405), the JSON answer of [`crate::error`].
#[catch(404)]
fn not_found(req: &Request<'_>) -> Result<StaticFile, ApiError> {
    let json = crate::error::caught(Status::NotFound, req);
    let api = req
        .uri()
        .path()
        .segments()
        .next()
        .is_some_and(|s| s == "api");
    if api || json.status != Status::NotFound {
        return Err(json);
    }
    html("404.html", Status::NotFound).ok_or(json)
}

/// The page's catchers, registered at `/` next to the JSON ones (a status-specific catcher
/// wins over the default one).
pub fn catchers() -> Vec<Catcher> {
    catchers![not_found]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip("identity"));
    }

    /// The page's scripts: every `.js` file of `static/`.
    fn scripts() -> Vec<String> {
        let names: Vec<String> = Assets::iter()
            .filter(|n| n.ends_with(".js"))
            .map(|n| n.to_string())
            .collect();
        assert!(names.len() > 1, "{names:?}");
        names
    }

    #[test]
    fn html_names_stamped_assets() {
        let html = String::from_utf8_lossy(stamped_html("index.html").unwrap()).to_string();
        // Every script of static/ is loaded (a forgotten one would leave the page without
        // its part), and only in its stamped form.
        for name in scripts().iter().map(String::as_str).chain(["app.css"]) {
            let v = version(name).unwrap();
            assert_eq!(v.len(), 12);
            assert!(
                html.contains(&format!("\"/assets/{name}?v={v}\"")),
                "{name}: {html}"
            );
            assert!(!html.contains(&format!("\"/assets/{name}\"")), "{name}");
        }
    }

    #[test]
    fn text_assets_are_gzipped_at_build_time() {
        for name in scripts().iter().map(String::as_str).chain(["app.css"]) {
            assert!(GZIPPED.iter().any(|(n, _, _)| *n == name), "{name}");
        }
    }
}
