//! The browser page: files of `static/`, embedded into the binary at build time.
//!
//! The page is one HTML document for every client-side path (`/`, `/setup`,
//! `/login`, `/account`) plus its assets under `/assets/`. The security
//! headers (CSP and friends) are added to every response by a fairing
//! elsewhere; this module only sets the content type and caching.

use std::borrow::Cow;
use std::io::Cursor;
use std::path::PathBuf;

use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder, Response};
use rocket::{get, routes, Request, Route};

/// The files of `static/`, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// `Cache-Control` of the HTML page: always revalidate, so a new binary shows at once.
const HTML_CACHE: &str = "no-cache";
/// `Cache-Control` of the page's assets (scripts, styles, icons).
const ASSET_CACHE: &str = "public, max-age=3600";

/// One embedded file, ready to send.
pub struct StaticFile {
    body: Cow<'static, [u8]>,
    content_type: ContentType,
    cache_control: &'static str,
}

impl StaticFile {
    /// Looks up `path` (relative to `static/`); `None` when there is no such file.
    fn load(path: &str, cache_control: &'static str) -> Option<Self> {
        let file = Assets::get(path)?;
        let content_type = path
            .rsplit_once('.')
            .and_then(|(_, ext)| ContentType::from_extension(ext))
            .unwrap_or(ContentType::Binary);
        Some(StaticFile {
            body: file.data,
            content_type,
            cache_control,
        })
    }
}

impl<'r> Responder<'r, 'static> for StaticFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .header(self.content_type)
            .raw_header("Cache-Control", self.cache_control)
            .sized_body(self.body.len(), Cursor::new(self.body))
            .ok()
    }
}

/// The single-page app's HTML document; a missing file is a server error.
fn page() -> Result<StaticFile, Status> {
    StaticFile::load("index.html", HTML_CACHE).ok_or(Status::InternalServerError)
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

/// Assets: `/assets/app.js` is `static/app.js`. Rocket's `PathBuf` guard already
/// refuses `..` and hidden segments; the HTML page itself is not an asset.
#[get("/assets/<file..>")]
fn asset(file: PathBuf) -> Option<StaticFile> {
    let parts: Vec<&str> = file.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    let path = parts.join("/");
    if path == "index.html" {
        return None;
    }
    StaticFile::load(&path, ASSET_CACHE)
}

/// The routes of the browser page, to be mounted at `/`.
pub fn routes() -> Vec<Route> {
    routes![index, setup, login, account, asset]
}
