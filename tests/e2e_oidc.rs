//! End-to-end: an OIDC-only account in headless Chromium against the release binary and the
//! real test provider (tests/oidc). "Sign in with Test IdP" → the provider's login and consent
//! forms → back on the account page → TOTP set up → signed out → "Sign in with Test IdP"
//! again → the TOTP step → the account page.
//!
//! Skips loudly without Chromium, oathtool or node (and fails under CI=true), like
//! tests/e2e_browser.rs.

#[allow(dead_code)]
mod e2e;
#[path = "oidc/harness.rs"]
mod idp;

use std::process::Command;

use e2e::harness::{self, Driver, Server};
use e2e::webdriver::Session;

const EMAIL: &str = "ann@example.com";

fn wait_account(b: &Session) {
    b.wait_visible("#view-account");
    b.wait_text("#account-email", EMAIL);
    b.wait_for("the MFA status", || {
        let t = b.text("#mfa-badge");
        (t == "On" || t == "Off").then_some(())
    });
}

/// On the provider's pages: the login form (any password), then consent when it asks.
fn provider_login(b: &Session, login: &str) {
    b.wait_visible("input[name=login]");
    b.fill("input[name=login]", login);
    b.fill("input[name=password]", "any");
    b.click("button[type=submit]");
}

fn click_provider_button(b: &Session) {
    b.wait_visible("#login-provider-buttons a");
    let label = b.text("#login-provider-buttons a");
    assert_eq!(label, "Sign in with Test IdP");
    b.click("#login-provider-buttons a");
}

#[test]
fn oidc_browser_walk() {
    let Some(tools) = harness::find_tools() else {
        return;
    };
    let port = harness::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let Some(provider) = idp::start(&format!("{base}/api/auth/oidc/testidp/callback")) else {
        return;
    };
    let bin = harness::release_binary();
    let data = tempfile::tempdir().expect("data dir");
    let config = data.path().join("Rocket.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\n[[default.oidc_providers]]\nid = \"testidp\"\nname = \"Test IdP\"\n\
             issuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            provider.issuer,
            idp::CLIENT_ID,
            idp::CLIENT_SECRET
        ),
    )
    .unwrap();
    // The server (and the CLI) read it; this test binary runs nothing else.
    std::env::set_var("ROCKET_CONFIG", &config);
    let out = Command::new(&bin)
        .args(["user", "create", "--email", EMAIL, "--oidc-only"])
        .env("SLUGBASE_DATA_DIR", data.path())
        .output()
        .expect("slugbase user create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::start(&bin, data.path(), port);
    server.wait_healthy();
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start(&tools.chromedriver);
    let b = driver.browser(&tools.chromium, profile.path(), downloads.path());
    let report = || {
        let page = b
            .try_cmd(
                "POST",
                "/execute/sync",
                Some(serde_json::json!({"script": "return location.href + '\\n' + document.body.innerText;", "args": []})),
            )
            .unwrap_or_default();
        format!("page: {page}\nserver log:\n{}", server.log_text())
    };

    // 1. The sign-in page offers the provider; its login and consent forms; back signed in.
    b.goto(&format!("{base}/login"));
    click_provider_button(&b);
    provider_login(&b, "ann");
    b.wait_for("the provider's consent form, or the account page", || {
        b.url().starts_with(&base).then_some(()).or_else(|| {
            b.is_visible("button[type=submit]")
                .then(|| b.click("button[type=submit]"));
            None
        })
    });
    wait_account(&b);
    b.wait_text("#account-signin", "Test IdP");
    assert!(b.url().starts_with(&base), "{}", report());

    // 2. Turn TOTP on from the page.
    let mut totp = harness::enroll_on_page(&b);
    let secret = totp.secret().to_string();
    b.wait_text("#mfa-badge", "On");

    // 3. Sign out, and in again through the provider (still signed in there): the TOTP step.
    b.click("#logout-button");
    b.wait_text("#login-notice", "signed out");
    click_provider_button(&b);
    b.wait_visible("#view-mfa");
    // The code step has its own address (issue 16).
    assert!(b.url().ends_with("/login/code"), "{}", b.url());
    b.fill("#mfa-code", &totp.next_code());
    b.click("#mfa-submit");
    wait_account(&b);
    assert_eq!(b.text("#mfa-badge"), "On");

    // 4. An error from the provider is explained on the sign-in page.
    b.goto(&format!("{base}/login?error=OIDC_ACCOUNT_NOT_LINKED"));
    b.wait_text("#login-error", "not linked");
    // 5. Nothing of the protocol's secrets reached the log.
    let log = server.log_text();
    for needle in [
        idp::CLIENT_SECRET,
        "code=",
        "state=",
        "nonce",
        "id_token",
        &secret,
    ] {
        assert!(
            !log.contains(needle),
            "{needle:?} in the server log:\n{log}"
        );
    }
    drop(provider);
}
