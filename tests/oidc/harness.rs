//! The real test OpenID provider (tests/oidc/provider.js, panva's oidc-provider) on a
//! loopback port, and a small cookie-keeping HTTP client that drives its login and consent
//! pages (plain HTML forms) the way a browser would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The static client's credentials (as in provider.js).
pub const CLIENT_ID: &str = "slugbase";
pub const CLIENT_SECRET: &str = "slugbase-test-client-secret-0123456789";

/// A running provider; stopped on drop.
pub struct Idp {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Starts the provider for a slugbase whose callback is `redirect_uri`. None (after a loud
/// notice) when node or the installed package is missing outside CI; under CI=true that fails
/// the test instead.
pub fn start(redirect_uri: &str) -> Option<Idp> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    start_on(redirect_uri, port)
}

/// [`start`] on a given port.
pub fn start_on(redirect_uri: &str, port: u16) -> Option<Idp> {
    let installed = dir()
        .join("node_modules/oidc-provider/package.json")
        .exists();
    let node = Command::new("node").arg("--version").output().is_ok();
    if !(installed && node) {
        let msg = if node {
            "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (.ci/run does)"
        } else {
            "node is not installed (apt-get install nodejs npm; then `npm ci` in tests/oidc)"
        };
        if std::env::var_os("CI").is_some() {
            panic!("OIDC tests: {msg}");
        }
        eprintln!("\n************************************************************");
        eprintln!("SKIPPED: the OpenID test provider cannot run: {msg}.");
        eprintln!("This OIDC test did NOT run.");
        eprintln!("************************************************************\n");
        return None;
    }
    let mut child = Command::new("node")
        .arg("provider.js")
        .current_dir(dir())
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .env("NODE_ENV", "test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("ready ") {
                let _ = tx.send(());
            }
        }
    });
    let idp = Idp {
        child: Some(child),
        issuer: format!("http://127.0.0.1:{port}"),
    };
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the test provider did not start within 30 s");
    Some(idp)
}

impl Idp {
    /// Stops the provider (it no longer answers).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser's worth of HTTP: cookies kept per name, redirects not followed.
pub struct Browser {
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

/// A response, as the tests look at it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Browser {
            agent,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut res = res.expect("provider request");
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or("");
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                let expired = v.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
                if val.is_empty() || expired {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().into(), val.into());
                }
            }
        }
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(String::from);
        Page {
            status: res.status().as_u16(),
            location,
            body: res.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, url: &str) -> Page {
        let r = self
            .agent
            .get(url)
            .header("Cookie", &self.cookie_header())
            .call();
        self.take(r)
    }

    pub fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let r = self
            .agent
            .post(url)
            .header("Cookie", &self.cookie_header())
            .send_form(fields.iter().copied());
        self.take(r)
    }

    /// Signs in at the provider as `login`, starting from the authorization URL slugbase
    /// redirected to, through its login and consent forms, until the provider redirects to
    /// slugbase's callback; returns that callback URL (with `code` and `state`).
    pub fn sign_in(&mut self, issuer: &str, auth_url: &str, login: &str) -> String {
        self.walk(issuer, auth_url, |b, issuer, page, url| {
            let action = form_action(&page.body)
                .unwrap_or_else(|| panic!("no form at {url}: {}", page.body));
            let target = absolute(issuer, &action);
            let hidden = hidden_inputs(&page.body);
            let mut fields: Vec<(&str, &str)> = hidden
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if page.body.contains("name=\"login\"") {
                fields.extend([("login", login), ("password", "any")]);
            }
            b.post_form(&target, &fields)
        })
    }

    /// Starts at the authorization URL and cancels at the provider's login page ("abort"):
    /// the provider redirects to the callback with `error=access_denied`.
    pub fn cancel(&mut self, issuer: &str, auth_url: &str) -> String {
        self.walk(issuer, auth_url, |b, issuer, page, url| {
            let at = page
                .body
                .find("/abort")
                .unwrap_or_else(|| panic!("no abort at {url}"));
            let start = page.body[..at].rfind('"').expect("href") + 1;
            b.get(&absolute(issuer, &page.body[start..at + 6]))
        })
    }

    fn walk(
        &mut self,
        issuer: &str,
        auth_url: &str,
        mut on_page: impl FnMut(&mut Browser, &str, &Page, &str) -> Page,
    ) -> String {
        let mut url = auth_url.to_string();
        let mut page = self.get(&url);
        for _ in 0..20 {
            match (&page.location, page.status) {
                (Some(loc), 300..=399) => {
                    if loc.contains("/api/auth/oidc/") {
                        return loc.clone();
                    }
                    url = absolute(issuer, loc);
                    page = self.get(&url);
                }
                (_, 200) => page = on_page(self, issuer, &page, &url),
                _ => panic!("provider answered {} at {url}: {}", page.status, page.body),
            }
        }
        panic!("too many steps at the provider");
    }
}

fn absolute(issuer: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{issuer}{loc}")
    }
}

fn form_action(html: &str) -> Option<String> {
    let form = html.find("<form")?;
    let rest = &html[form..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

/// The form's `<input type="hidden" name=… value=…>` fields.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[at..].find('"')?;
        Some(tag[at..at + end].to_string())
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if !tag.contains("type=\"hidden\"") {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}
