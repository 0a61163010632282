//! A small synchronous W3C WebDriver client, enough to drive chromedriver.
//!
//! Every failing call panics with the command and the driver's answer: this
//! is test code, and a clear panic is the most useful report.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key WebDriver uses for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long `wait_*` helpers poll before giving up.
pub const WAIT: Duration = Duration::from_secs(15);

/// A plain-HTTP agent that reports HTTP errors as responses (WebDriver errors
/// carry JSON bodies) and never uses a proxy (everything here is loopback).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

/// Performs one HTTP request; returns the status and the body text.
pub fn http(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let result = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, b) => agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(b.unwrap_or(&json!({})).to_string()),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok((status, text))
}

/// One browser session of a running chromedriver. Deleting the session (on
/// drop) closes the browser.
pub struct Session {
    agent: ureq::Agent,
    base: String,
}

impl Session {
    /// Opens a session on the chromedriver at `driver_url` with these capabilities.
    pub fn new(driver_url: &str, capabilities: Value) -> Session {
        let agent = agent();
        let body = json!({ "capabilities": { "alwaysMatch": capabilities } });
        let (status, text) = http(
            &agent,
            "POST",
            &format!("{driver_url}/session"),
            Some(&body),
        )
        .unwrap_or_else(|e| panic!("creating a WebDriver session: {e}"));
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let id = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("creating a WebDriver session failed (HTTP {status}): {text}")
            })
            .to_string();
        Session {
            agent,
            base: format!("{driver_url}/session/{id}"),
        }
    }

    /// Sends a command; returns the `value` of the answer or the error text.
    pub fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{}", self.base, path);
        let (status, text) = http(&self.agent, method, &url, body.as_ref())?;
        let mut value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: bad JSON ({e}): {text}"))?;
        if status >= 400 {
            let v = &value["value"];
            return Err(format!(
                "{method} {path}: HTTP {status}: {}: {}",
                v["error"], v["message"]
            ));
        }
        Ok(value["value"].take())
    }

    /// Sends a command and panics on an error.
    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    /// Navigates to `url` and waits for the document to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current address of the page.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; arguments in `arguments`) in the page.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
    }

    fn try_find(&self, css: &str) -> Result<String, String> {
        let v = self.try_cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element id for {css}: {v}"))
    }

    /// The element reference for `css`; panics when there is none.
    pub fn find(&self, css: &str) -> String {
        self.try_find(css)
            .unwrap_or_else(|e| panic!("finding {css}: {e}"))
    }

    /// Clicks the element like a user would (it must be visible and enabled).
    pub fn click(&self, css: &str) {
        self.wait_visible(css);
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Clears the input `css` and types `text` into it.
    pub fn fill(&self, css: &str, text: &str) {
        self.wait_visible(css);
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The rendered text of `css` ("" when it does not exist).
    pub fn text(&self, css: &str) -> String {
        let v = self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        );
        v.as_str().unwrap_or_default().trim().to_string()
    }

    /// Whether `css` exists and takes up space on the page.
    pub fn is_visible(&self, css: &str) -> bool {
        self.exec(
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';",
            json!([css]),
        )
        .as_bool()
        .unwrap_or(false)
    }

    /// Polls `check` until it returns `Some`, or panics after [`WAIT`] with `what`.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check() {
                return v;
            }
            if start.elapsed() > WAIT {
                panic!("timed out after {WAIT:?} waiting for {what}");
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `css` is visible.
    pub fn wait_visible(&self, css: &str) {
        self.wait_for(&format!("{css} to be visible"), || {
            self.is_visible(css).then_some(())
        });
    }

    /// Waits until `css` is visible and its text contains `needle`; returns the text.
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait_for(
            &format!("{css} to show {needle:?} (it shows {:?})", self.text(css)),
            || {
                let t = self.text(css);
                (self.is_visible(css) && t.contains(needle)).then_some(t)
            },
        )
    }

    /// Goes back (or forward) in the tab's history.
    pub fn history(&self, back: bool) {
        self.cmd(
            "POST",
            if back { "/back" } else { "/forward" },
            Some(json!({})),
        );
    }

    /// A PNG of the whole page (not just the viewport) at the viewport's width.
    pub fn screenshot_full(&self, width: u32, min_height: u32) -> Vec<u8> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(0.0)
            .ceil();
        self.screenshot_top(f64::from(width), height.max(f64::from(min_height)))
    }

    /// A PNG of the page from the top down to `height` CSS pixels.
    pub fn screenshot_top(&self, width: f64, height: f64) -> Vec<u8> {
        let shot = self.cdp(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 }
            }),
        );
        decode_png(&shot["data"])
    }
}

fn decode_png(data: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = data
        .as_str()
        .unwrap_or_else(|| panic!("screenshot without data"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"))
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(&self.agent, "DELETE", &self.base, None);
    }
}
