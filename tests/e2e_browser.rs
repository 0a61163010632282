//! End-to-end test of the browser page against the real release binary.
//!
//! Drives headless Chromium (Debian packages `chromium chromium-driver`)
//! through chromedriver on loopback: first-start setup from the logged link,
//! sign-in, enabling TOTP two-step verification (codes from `oathtool`, an
//! independent TOTP implementation), saving the backup codes, signing in with
//! a TOTP and with a backup code, and turning two-step verification off.
//! Issue 16: reloads and Back/Forward keep the enrollment key and the code
//! step, refused codes say why (wrong, replayed, too many), the backup-codes
//! screen asks before it is left, errors sit under their fields, sessions and
//! the password are managed on the page, activity pages with "Show more", and
//! unknown paths show a 404 page. axe-core (`tests/e2e/node_modules`, `npm ci`
//! there) checks every main screen in light and dark, and computed styles the
//! contrast of field borders and placeholders.
//! Screenshots of every screen (light and dark, desktop and phone) land in
//! `screenshots/`.
//!
//! Without Chromium the test prints "SKIPPED" and passes, except when `CI` is
//! set: then it fails. `SLUGBASE_E2E_BIN` runs a prebuilt binary instead of
//! building one; `SLUGBASE_E2E_VERBOSE` echoes the server log;
//! `SLUGBASE_E2E_UPDATE_DOCS` refreshes `docs/enrollment.png`.

#[allow(dead_code)] // helpers the other browser tests use
mod e2e;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use e2e::a11y;
use e2e::harness::{self, Driver, Server, Shots, Totp};
use e2e::webdriver::{self, Session};
use serde_json::json;

const EMAIL: &str = "ada@example.test";
const NAME: &str = "Ada Lovelace";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "tangerine lighthouse quietly orbits";

/// On a panic, saves what the browser shows and prints the server's log.
struct FailureReport<'a> {
    browser: &'a Session,
    server: &'a Server,
    shots_dir: PathBuf,
}

impl Drop for FailureReport<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some(path) = Shots::failure(self.browser, &self.shots_dir) {
            eprintln!("e2e: screenshot of the failure: {}", path.display());
        }
        if let Ok(v) = self.browser.try_cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": "return location.href + '\\n' + document.body.innerText;", "args": [] })),
        ) {
            eprintln!("e2e: the page at the failure:\n{}", v.as_str().unwrap_or_default());
        }
        let log = self.server.log_text();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!("e2e: last server log lines:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
}

#[test]
fn browser_walkthrough() {
    let Some(tools) = harness::find_tools() else {
        return;
    };
    let started = Instant::now();
    let bin = harness::release_binary();
    let built = Instant::now();

    let data_dir = tempfile::tempdir().expect("temp data dir");
    let profile = tempfile::tempdir().expect("temp profile dir");
    let downloads = tempfile::tempdir().expect("temp download dir");
    let server = Server::start(&bin, data_dir.path(), harness::free_port());
    let setup_link = server.setup_link();
    server.wait_healthy();

    let driver = Driver::start(&tools.chromedriver);
    let b = driver.browser(&tools.chromium, profile.path(), downloads.path());
    let mut shots = Shots::new(harness::repo_dir().join("screenshots"));
    let _report = FailureReport {
        browser: &b,
        server: &server,
        shots_dir: shots.dir().to_path_buf(),
    };
    Shots::reset(&b);
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "window.__cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));" }),
    );
    b.cdp(
        "Browser.grantPermissions",
        json!({ "origin": server.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
    );

    let axe = a11y::axe_source();
    let ctx = Ctx {
        b: &b,
        server: &server,
        axe: axe.as_deref(),
    };
    walk(&ctx, &setup_link, &mut shots, downloads.path());

    eprintln!(
        "e2e: passed; browser part {:.1} s (total {:.1} s); screenshots in {}",
        built.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        shots.dir().display()
    );
}

/// What the walk-through needs at hand.
struct Ctx<'a> {
    b: &'a Session,
    server: &'a Server,
    axe: Option<&'a str>,
}

impl Ctx<'_> {
    /// The axe-core check of the screen shown now (light and dark), when axe is installed.
    fn axe(&self, screen: &str) {
        if let Some(axe) = self.axe {
            a11y::check_screen(self.b, axe, screen);
        }
    }
}

/// Signs in over HTTP, as another device would; returns its cookies as a `Cookie` header.
fn other_device(server: &Server, password: &str) -> String {
    let agent = webdriver::agent();
    let res = agent
        .post(format!("{}/api/auth/login", server.base))
        .header("Content-Type", "application/json")
        .send(json!({ "email": EMAIL, "password": password }).to_string())
        .expect("signing in over HTTP");
    assert_eq!(res.status().as_u16(), 200, "the other device's sign-in");
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The status `GET /api/auth/me` answers the other device.
fn other_device_status(server: &Server, cookies: &str) -> u16 {
    let agent = webdriver::agent();
    let res = agent
        .get(format!("{}/api/auth/me", server.base))
        .header("Cookie", cookies)
        .call()
        .expect("GET /api/auth/me");
    res.status().as_u16()
}

/// The field error under `input`, with the field marked invalid and pointing to it.
fn field_error(b: &Session, input: &str, needle: &str) -> String {
    let id = input.trim_start_matches('#');
    let text = b.wait_text(&format!("#{id}-error"), needle);
    let linked = b.exec(
        "const i = document.getElementById(arguments[0]);
         return i.getAttribute('aria-invalid') === 'true'
           && (i.getAttribute('aria-describedby') || '').split(' ').includes(arguments[0] + '-error');",
        json!([id]),
    );
    assert_eq!(
        linked.as_bool(),
        Some(true),
        "{input} is not marked invalid and linked to its error"
    );
    text
}

/// The number of items in the list `css`.
fn count(b: &Session, css: &str) -> u64 {
    b.exec(
        "return document.querySelectorAll(arguments[0]).length;",
        json!([css]),
    )
    .as_u64()
    .unwrap_or(0)
}

fn sign_in_password(b: &Session, password: &str) {
    b.fill("#login-email", EMAIL);
    b.fill("#login-password", password);
    b.click("#login-submit");
}

fn sign_out(b: &Session) {
    b.click("#logout-button");
    b.wait_text("#login-notice", "signed out");
    assert!(
        b.url().ends_with("/login"),
        "after sign-out the address is {}",
        b.url()
    );
}

fn wait_account(b: &Session) {
    b.wait_visible("#view-account");
    b.wait_text("#account-email", EMAIL);
    // The MFA status has loaded once the badge says On or Off.
    b.wait_for("the MFA status", || {
        let t = b.text("#mfa-badge");
        (t == "On" || t == "Off").then_some(())
    });
}

fn walk(ctx: &Ctx<'_>, setup_link: &str, shots: &mut Shots, downloads: &Path) {
    let (b, server) = (ctx.b, ctx.server);
    // Before setup, the sign-in page points to the setup link, and /setup
    // without the token explains where to find it.
    b.goto(&format!("{}/", server.base));
    b.wait_visible("#login-setup-hint");
    assert!(
        b.url().ends_with("/login"),
        "/ without a session shows {}",
        b.url()
    );
    b.goto(&format!("{}/setup", server.base));
    b.wait_visible("#setup-notoken");

    // 1. Open the setup link from the server log.
    assert!(
        setup_link.starts_with(&server.base),
        "setup link {setup_link} is not on {}",
        server.base
    );
    b.goto(setup_link);
    b.wait_visible("#setup-form");
    ctx.axe("setup");
    shots.take(b, "setup");

    // 2. Create the administrator (the page checks that the passwords match).
    b.fill("#setup-email", EMAIL);
    b.fill("#setup-name", NAME);
    b.fill("#setup-password", PASSWORD);
    b.fill("#setup-password2", "something else");
    b.click("#setup-submit");
    field_error(b, "#setup-password2", "do not match");
    // The error stays on screen while the field has the focus.
    assert!(b.is_visible("#setup-password2-error"));
    assert_eq!(
        b.exec("return document.activeElement.id;", json!([])),
        json!("setup-password2")
    );
    shots.take(b, "setup-mismatch");
    b.fill("#setup-password2", PASSWORD);
    b.click("#setup-submit");
    wait_account(b);
    assert!(
        b.url().ends_with("/account"),
        "after setup the address is {}",
        b.url()
    );
    assert_eq!(b.text("#mfa-badge"), "Off");
    assert!(
        b.is_visible("#account-admin"),
        "the administrator badge is missing"
    );
    ctx.axe("account");
    shots.take(b, "account");

    // 3. Sign out, then sign in; a wrong password first. The used setup link
    // now says that the server is set up and leads to the sign-in page.
    sign_out(b);
    b.wait_text("#login-help", "administrator");
    // The signed-out page load asks GET /api/auth/session, which answers 200: no request of
    // the page failed (nothing for the console to report).
    b.goto(&format!("{}/login", server.base));
    b.wait_visible("#login-form");
    let failed = b.exec(
        "return performance.getEntriesByType('resource')
           .concat(performance.getEntriesByType('navigation'))
           .filter(e => e.responseStatus >= 400).map(e => e.name + ' ' + e.responseStatus);",
        json!([]),
    );
    assert_eq!(failed, json!([]), "requests of the sign-in page failed");
    ctx.axe("login");
    shots.take(b, "login");
    b.goto(setup_link);
    b.wait_visible("#setup-closed");
    shots.take(b, "setup-closed");
    b.click("#setup-closed-login");
    b.wait_visible("#login-form");
    assert!(
        !b.is_visible("#login-setup-hint"),
        "the setup hint shows after setup"
    );
    sign_in_password(b, "wrong password");
    let wrong_password = b.wait_text("#login-error", "Wrong email or password");
    shots.take(b, "login-wrong-password");
    sign_in_password(b, PASSWORD);
    wait_account(b);

    // An unfinished setup survives a reload and can be cancelled.
    b.click("#mfa-enable");
    b.wait_visible("#enroll-panel");
    b.goto(&format!("{}/account", server.base));
    wait_account(b);
    b.wait_visible("#mfa-pending");
    shots.take(b, "mfa-setup-unfinished");
    b.click("#mfa-pending-cancel");
    b.wait_visible("#mfa-actions-off");
    b.wait_text("#account-notice", "Setup cancelled");

    // 4. Enable MFA: read the secret from the page, confirm with oathtool's code.
    b.click("#mfa-enable");
    b.wait_visible("#enroll-panel");
    b.wait_for("the QR code image to load", || {
        b.exec("const i = document.getElementById('enroll-qr'); return i.complete && i.naturalWidth > 0;", json!([]))
            .as_bool()
            .filter(|ok| *ok)
    });
    let first_shown = b.text("#enroll-secret");
    // A reload mid-enrollment (phones reload tabs on their own) shows the same key again.
    b.goto(&format!("{}/account", server.base));
    wait_account(b);
    b.wait_visible("#enroll-panel");
    b.wait_text("#mfa-pending-text", "same key");
    b.wait_for("the same key after the reload", || {
        (b.text("#enroll-secret") == first_shown).then_some(())
    });
    b.wait_for("the QR code image to load after the reload", || {
        b.exec("const i = document.getElementById('enroll-qr'); return i.complete && i.naturalWidth > 0;", json!([]))
            .as_bool()
            .filter(|ok| *ok)
    });
    // Whole-pixel QR modules: drawn at its own size, a multiple of the module count.
    let qr = b.exec(
        "const i = document.getElementById('enroll-qr'); return [i.width, i.naturalWidth];",
        json!([]),
    );
    assert_eq!(qr[0], qr[1], "the QR code is scaled: {qr}");
    ctx.axe("enrollment");
    let shown = b.text("#enroll-secret");
    let secret: String = shown.split_whitespace().collect();
    assert_eq!(secret.len(), 32, "secret {shown:?} is not 32 characters");
    assert!(
        secret
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)),
        "secret {secret:?} is not Base32"
    );
    assert!(
        shown.split_whitespace().all(|g| g.len() == 4),
        "secret {shown:?} is not in groups of four"
    );
    shots.take(b, "enroll");
    // For the README: the light desktop page down to the end of the MFA card.
    let bottom = b
        .exec("const r = document.getElementById('mfa-card').getBoundingClientRect(); return r.bottom + scrollY + 24;", json!([]))
        .as_f64()
        .expect("the MFA card's position");
    // It goes to screenshots/ on every run, and to docs/ (a tracked file) only
    // when that is missing or SLUGBASE_E2E_UPDATE_DOCS is set.
    let png = b.screenshot_top(1280.0, bottom.ceil());
    std::fs::write(shots.dir().join("enrollment.png"), &png).expect("writing enrollment.png");
    let docs = harness::repo_dir().join("docs");
    if std::env::var_os("SLUGBASE_E2E_UPDATE_DOCS").is_some()
        || !docs.join("enrollment.png").exists()
    {
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::write(docs.join("enrollment.png"), &png).expect("writing docs/enrollment.png");
    }

    b.click("#enroll-secret-copy");
    b.wait_text("#enroll-secret-copy", "Copied");
    let copied = b.exec("return navigator.clipboard.readText();", json!([]));
    assert_eq!(
        copied.as_str(),
        Some(secret.as_str()),
        "Copy key did not copy the secret"
    );

    let mut totp = Totp::new(&secret);
    b.fill("#enroll-code", &totp.wrong_code());
    b.click("#enroll-submit");
    let wrong_code = field_error(b, "#enroll-code", "does not match this key");
    assert!(
        !wrong_code.contains("already used"),
        "setup wording never says already used: {wrong_code}"
    );
    assert_ne!(
        wrong_code, wrong_password,
        "wrong code and wrong password must read differently"
    );
    shots.take(b, "enroll-wrong-code");
    b.fill("#enroll-code", &totp.next_code());
    b.click("#enroll-submit");

    // 5. Save the backup codes: read them, download them, tick "saved", continue.
    b.wait_visible("#codes-panel");
    let codes: Vec<String> = serde_json::from_value(b.exec(
        "return [...document.querySelectorAll('#backup-codes code')].map(c => c.textContent);",
        json!([]),
    ))
    .expect("backup codes");
    assert_eq!(codes.len(), 10, "expected 10 backup codes, got {codes:?}");
    for code in &codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert!(
            groups.len() == 4
                && groups
                    .iter()
                    .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric())),
            "backup code {code:?} does not look like abcd-efgh-ijkl-mnop"
        );
    }
    assert!(
        !b.is_visible("#codes-continue:enabled"),
        "Continue must wait for \"I have saved them\""
    );
    ctx.axe("backup codes");
    shots.take(b, "backup-codes");
    b.click("#codes-download");
    let saved = wait_download(downloads);
    for code in &codes {
        assert!(
            saved.contains(code.as_str()),
            "the downloaded file lacks {code}:\n{saved}"
        );
    }
    b.click("#codes-saved");
    b.click("#codes-continue");
    b.wait_text("#mfa-badge", "On");
    b.wait_text("#mfa-summary", "10 unused backup codes");
    b.wait_text("#events-list", "two-step");
    shots.take(b, "account-mfa-on");

    // 6. Sign out. 7. Sign in with a TOTP, after a wrong one.
    sign_out(b);
    sign_in_password(b, PASSWORD);
    b.wait_visible("#view-mfa");
    b.wait_text("#mfa-account", EMAIL);
    assert!(
        b.url().ends_with("/login/code"),
        "the code step's address is {}",
        b.url()
    );
    ctx.axe("code step");
    shots.take(b, "mfa-code");
    // A reload keeps the code step while the pending sign-in lives.
    b.goto(&format!("{}/login/code", server.base));
    b.wait_visible("#view-mfa");
    b.wait_text("#mfa-account", EMAIL);
    // Back leads to the password form, Forward to the code step again.
    b.history(true);
    b.wait_visible("#login-form");
    assert!(b.url().ends_with("/login"), "Back led to {}", b.url());
    b.history(false);
    b.wait_visible("#view-mfa");
    b.wait_text("#mfa-account", EMAIL);
    b.fill("#mfa-code", &totp.wrong_code());
    b.click("#mfa-submit");
    let wrong_login_code = field_error(b, "#mfa-code", "code is not correct");
    assert_ne!(wrong_login_code, wrong_password);
    shots.take(b, "mfa-wrong-code");
    b.fill("#mfa-code", &totp.next_code());
    b.click("#mfa-submit");
    wait_account(b);
    assert_eq!(b.text("#mfa-badge"), "On");

    // The same code again: the replay wording. Then wrong codes: the attempts left from the
    // third on, and the fifth cancels the sign-in.
    sign_out(b);
    sign_in_password(b, PASSWORD);
    b.wait_visible("#view-mfa");
    b.fill("#mfa-code", &totp.last_code());
    b.click("#mfa-submit");
    let replay = field_error(b, "#mfa-code", "already used");
    assert!(replay.contains("next code"), "{replay}");
    shots.take(b, "mfa-replayed-code");
    let wrong = totp.wrong_code();
    for (n, needle) in [
        (2, "not correct"),
        (3, "2 attempts are left"),
        (4, "1 attempt is left"),
    ] {
        b.fill("#mfa-code", &wrong);
        b.click("#mfa-submit");
        let t = field_error(b, "#mfa-code", needle);
        if n == 2 {
            assert!(!t.contains("left"), "attempts shown too early: {t}");
        }
    }
    b.fill("#mfa-code", &wrong);
    b.click("#mfa-submit");
    b.wait_text("#login-error", "Too many wrong codes");
    b.wait_text("#login-error", "cancelled");
    assert!(
        b.url().ends_with("/login"),
        "after five wrong codes: {}",
        b.url()
    );
    shots.take(b, "mfa-cancelled");
    sign_in_password(b, PASSWORD);
    b.wait_visible("#view-mfa");
    b.fill("#mfa-code", &totp.next_code());
    b.click("#mfa-submit");
    wait_account(b);

    // 8. Sign out. 9. Sign in with a backup code.
    sign_out(b);
    sign_in_password(b, PASSWORD);
    b.wait_visible("#view-mfa");
    b.click("#mfa-toggle");
    b.wait_text("#mfa-code-label", "Backup code");
    shots.take(b, "mfa-backup-code");
    b.fill("#mfa-code", &codes[0]);
    b.click("#mfa-submit");
    wait_account(b);
    b.wait_text("#account-notice", "9 backup codes are left");
    shots.take(b, "account-after-backup-code");

    // An API token: create it, see it once, revoke it.
    b.fill("#token-name", "nightly backup");
    b.click("#token-create");
    b.wait_visible("#token-new");
    assert!(
        !b.text("#token-new-value").is_empty(),
        "the new token is not shown"
    );
    b.wait_text("#tokens-list", "nightly backup");
    shots.take(b, "token-created");
    b.click("#token-new-done");
    b.click("#tokens-list button[data-action=revoke]");
    b.click("#tokens-list button[data-action=revoke-confirm]");
    b.wait_visible("#tokens-empty");

    // New backup codes, confirmed with an old backup code and the password.
    b.click("#regen-open");
    b.wait_visible("#confirm-panel");
    b.click("#confirm-toggle");
    b.wait_text("#confirm-code-label", "Backup code");
    b.fill("#confirm-code", &codes[1]);
    b.fill("#confirm-password", PASSWORD);
    ctx.axe("confirm with a code");
    shots.take(b, "regenerate");
    b.click("#confirm-submit");
    b.wait_visible("#codes-panel");
    b.wait_text("#codes-lead", "old backup codes no longer work");
    let new_codes: Vec<String> = serde_json::from_value(b.exec(
        "return [...document.querySelectorAll('#backup-codes code')].map(c => c.textContent);",
        json!([]),
    ))
    .expect("new backup codes");
    assert_eq!(new_codes.len(), 10);
    assert!(
        new_codes.iter().all(|c| !codes.contains(c)),
        "the new codes repeat old ones"
    );
    // Leaving before "I have saved them" is ticked: the page asks the browser for its
    // leave-page prompt (WebDriver itself accepts such prompts, so the test asks the page's
    // beforeunload handler whether it would prompt, then leaves).
    let would_prompt = || {
        b.exec(
            "const e = new Event('beforeunload', { cancelable: true });
             window.dispatchEvent(e);
             return e.defaultPrevented;",
            json!([]),
        )
    };
    assert_eq!(would_prompt(), json!(true), "no leave-page prompt");
    b.goto(&format!("{}/account", server.base));
    wait_account(b);
    b.wait_text("#mfa-summary", "not confirmed as saved");
    shots.take(b, "backup-codes-unconfirmed");

    // 10. Turn MFA off with a backup code; a wrong password first (not a sign-out).
    b.click("#disable-open");
    b.wait_visible("#confirm-panel");
    b.click("#confirm-toggle");
    b.wait_text("#confirm-code-label", "Backup code");
    b.fill("#confirm-code", &new_codes[0]);
    b.fill("#confirm-password", "not my password");
    b.click("#confirm-submit");
    field_error(b, "#confirm-password", "password is not correct");
    assert!(
        b.is_visible("#view-account"),
        "a wrong password must not sign out"
    );
    shots.take(b, "disable-wrong-password");
    b.fill("#confirm-code", &new_codes[1]);
    b.fill("#confirm-password", PASSWORD);
    b.click("#confirm-submit");
    b.wait_text("#mfa-badge", "Off");
    b.wait_text("#account-notice", "Two-step verification is off");
    shots.take(b, "account-mfa-off");
    assert_no_csp_violations(b);

    // Still signed in after a reload, which serves the page at /account.
    b.goto(&format!("{}/account", server.base));
    wait_account(b);
    assert_eq!(b.text("#mfa-badge"), "Off");

    // Your sessions: another device shows up and is signed out from here.
    let other = other_device(server, PASSWORD);
    assert_eq!(other_device_status(server, &other), 200);
    b.goto(&format!("{}/account", server.base));
    wait_account(b);
    b.wait_for("two sessions in the list", || {
        (count(b, "#sessions-list li") == 2).then_some(())
    });
    b.wait_text("#sessions-list", "This device");
    shots.take(b, "sessions");
    b.click("#sessions-list button[data-action=end-session]");
    b.wait_for("one session in the list", || {
        (count(b, "#sessions-list li") == 1).then_some(())
    });
    assert!(!b.is_visible("#sessions-end-others"));
    assert_eq!(
        other_device_status(server, &other),
        401,
        "the other session still works"
    );

    // Change the password (show-password toggles on the way): another session ends.
    let other = other_device(server, PASSWORD);
    b.fill("#password-current", PASSWORD);
    b.fill("#password-new", NEW_PASSWORD);
    b.fill("#password-new2", NEW_PASSWORD);
    b.click("#password-new + .pw-toggle");
    assert_eq!(
        b.exec(
            "return document.getElementById('password-new').type;",
            json!([])
        ),
        json!("text"),
        "Show did not show the password"
    );
    b.click("#password-submit");
    b.wait_text("#password-notice", "signed out everywhere else");
    assert_eq!(
        other_device_status(server, &other),
        401,
        "the other session survived"
    );
    ctx.axe("account, password changed");

    // Security activity pages through older entries.
    b.wait_text("#events-list", "Changed the password");
    assert_eq!(
        count(b, "#events-list li"),
        10,
        "the first page of activity"
    );
    b.click("#events-more");
    b.wait_for("older activity", || {
        (count(b, "#events-list li") > 10).then_some(())
    });

    // Field borders >= 3:1 and placeholders >= 4.5:1, light and dark.
    for (scheme, border, placeholder) in a11y::field_contrast(b, "#token-name", "#token-name") {
        assert!(border >= 3.0, "{scheme}: field border contrast {border:.2}");
        assert!(
            placeholder >= 4.5,
            "{scheme}: placeholder contrast {placeholder:.2}"
        );
    }

    // An unknown path: the 404 page, with a way home.
    b.goto(&format!("{}/settings", server.base));
    b.wait_text("h1", "Page not found");
    ctx.axe("404");
    shots.take(b, "not-found");
    b.click("#notfound-home");
    wait_account(b);

    // Too many wrong passwords: the page says when to try again.
    sign_out(b);
    // The server allows 10 failed sign-ins per account in 15 minutes; one failed earlier.
    let mut limited = String::new();
    for _ in 0..15 {
        sign_in_password(b, "still the wrong password");
        let answer = b.wait_for("an answer to the sign-in", || {
            let idle = b.exec(
                "return !document.getElementById('login-submit').disabled;",
                json!([]),
            );
            let t = b.text("#login-error");
            (idle.as_bool() == Some(true) && !t.is_empty()).then_some(t)
        });
        if answer.contains("Too many attempts") {
            limited = answer;
            break;
        }
        assert!(
            answer.contains("Wrong email or password"),
            "unexpected: {answer:?}"
        );
    }
    assert!(
        limited.contains("Try again in"),
        "the rate limit message lacks a time: {limited:?}"
    );
    shots.take(b, "login-rate-limited");
    assert_no_csp_violations(b);
}

/// Fails on any Content-Security-Policy violation the page reported since it loaded.
fn assert_no_csp_violations(b: &Session) {
    let v = b.exec("return window.__cspViolations || [];", json!([]));
    assert_eq!(v, json!([]), "the page broke its Content-Security-Policy");
}

/// Waits for the downloaded backup codes file and returns its text.
fn wait_download(dir: &Path) -> String {
    let start = Instant::now();
    loop {
        let done = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "txt"))
        });
        if let Some(path) = done {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.is_empty() {
                    return text;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the backup codes download never arrived in {}",
            dir.display()
        );
        sleep(Duration::from_millis(100));
    }
}
