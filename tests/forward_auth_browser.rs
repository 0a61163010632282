//! Forward-auth end to end in headless Chromium through the real nginx, run from the committed
//! deploy/proxy/nginx.conf (issue 15): open `http://app.home.test:<port>/` → sent to
//! slugbase's sign-in → password and a TOTP code → back on the app, which shows the
//! `Remote-User` nginx passed it. Chromium resolves `*.home.test` to 127.0.0.1 through
//! `--host-resolver-rules`, so the cookies really live on `Domain=home.test` across two hosts.
//!
//! Skips loudly without Chromium, oathtool or nginx, and fails under CI=true.

#[allow(dead_code)]
mod e2e;
mod proxy;

use e2e::harness::{self, Driver, Totp};
use e2e::webdriver::Session;
use proxy::*;

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// Everything on the app needs both factors.
const RULES: &str = r#"[{hosts=["app.home.test"], policy="two_factor"}]"#;

/// nginx (the committed config) in front of an echo app on `port`, and Chromium with
/// `*.home.test` mapped to 127.0.0.1.
struct Browser {
    session: Session,
    port: u16,
    _driver: Driver,
    _nginx: Nginx,
    _dirs: [tempfile::TempDir; 3],
}

impl Browser {
    fn start(tools: &harness::Tools, nginx: &std::path::Path, slug: u16) -> Browser {
        let dirs = [
            tempfile::tempdir().expect("nginx"),
            tempfile::tempdir().expect("profile"),
            tempfile::tempdir().expect("downloads"),
        ];
        let port = free_port();
        let nginx = start_nginx(nginx, dirs[0].path(), port, slug, echo_upstream());
        let driver = Driver::start(&tools.chromedriver);
        let session = driver.browser_with(
            &tools.chromium,
            dirs[1].path(),
            dirs[2].path(),
            // Plain http on a made-up name: no HTTPS upgrade attempts either.
            &[
                "--host-resolver-rules=MAP *.home.test 127.0.0.1".to_string(),
                "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable".to_string(),
            ],
        );
        Browser {
            session,
            port,
            _driver: driver,
            _nginx: nginx,
            _dirs: dirs,
        }
    }
}

/// The app's page text, once it shows what the upstream received.
fn app_page(b: &Session) -> String {
    b.wait_visible("#seen");
    b.text("#seen")
}

#[test]
fn browser_signs_in_through_nginx() {
    let Some(tools) = harness::find_tools() else {
        return;
    };
    let Some(nginx) = tool("nginx", "SLUGBASE_NGINX", &[], "apt-get install -y nginx") else {
        return;
    };
    let mut token = String::new();
    let slug = Slugbase::start(RULES, |dir, env| {
        cli(
            dir,
            env,
            &["user", "create", "--email", EMAIL, "--name", "Ann"],
            &format!("{PASSWORD}\n"),
        );
        token = cli(
            dir,
            env,
            &["token", "create", "--email", EMAIL, "--name", "enroll"],
            "",
        );
    });

    // Ann has turned TOTP on (through the API, as a script would).
    let begin = slug.post("/api/auth/mfa/enroll/begin", "", "", Some(&token));
    assert_eq!(begin.status, 200, "{begin:?}");
    let v: serde_json::Value = serde_json::from_str(&begin.body).expect("json");
    let secret = v["secret"].as_str().expect("secret").to_string();
    let mut totp = Totp::new(&secret);
    let confirm = slug.post(
        "/api/auth/mfa/enroll/confirm",
        &format!("{{\"code\":\"{}\"}}", totp.next_code()),
        "",
        Some(&token),
    );
    assert_eq!(confirm.status, 200, "{confirm:?}");

    let browser = Browser::start(&tools, &nginx, slug.port);
    let (b, port) = (&browser.session, browser.port);

    // 1–2. The app sends an anonymous browser to slugbase's sign-in, with where it was going.
    let app = format!("http://app.home.test:{port}/wiki/page?x=1");
    let auth = format!("http://auth.home.test:{}", slug.port);
    b.goto(&app);
    b.wait_visible("#login-email");
    let url = b.url();
    assert!(url.starts_with(&format!("{auth}/login?rd=")), "{url}");

    // 3. Password, then the code step (TOTP is on and the rule wants both factors).
    b.fill("#login-email", EMAIL);
    b.fill("#login-password", PASSWORD);
    b.click("#login-submit");
    b.wait_visible("#mfa-code");
    // A reload on the code step keeps both the step and where the person was going.
    let code_step = b.url();
    assert!(
        code_step.starts_with(&format!("{auth}/login/code?rd=")),
        "{code_step}"
    );
    b.cmd("POST", "/refresh", Some(serde_json::json!({})));
    b.wait_visible("#mfa-code");
    assert_eq!(b.url(), code_step);
    b.fill("#mfa-code", &totp.next_code());
    b.click("#mfa-submit");

    // 4. Back on the app page it asked for, which shows who nginx says is signed in.
    b.wait_for("the app page", || (b.url() == app).then_some(()));
    let seen = app_page(b);
    assert!(seen.contains(&format!("remote-user: {EMAIL}")), "{seen}");
    assert!(seen.contains("remote-name: Ann"), "{seen}");

    // The one sign-in covers any other address on the app, with no new prompt.
    b.goto(&format!("http://app.home.test:{port}/other"));
    assert!(app_page(b).contains(&format!("remote-user: {EMAIL}")));

    // Signing out on slugbase ends it for the app too (the Domain cookies are cleared).
    b.goto(&format!("{auth}/"));
    b.wait_visible("#logout-button");
    b.click("#logout-button");
    b.wait_text("#login-notice", "signed out");
    b.goto(&app);
    b.wait_visible("#login-email");
    assert!(
        b.url().starts_with(&format!("{auth}/login?rd=")),
        "{}",
        b.url()
    );
}

/// An account without TOTP opens a `two_factor` app: it is sent to set TOTP up (a reload on
/// the way keeps the errand), and after saving its backup codes it lands back on the app.
#[test]
fn the_app_asks_for_totp_setup_and_gets_the_person_back() {
    let Some(tools) = harness::find_tools() else {
        return;
    };
    let Some(nginx) = tool("nginx", "SLUGBASE_NGINX", &[], "apt-get install -y nginx") else {
        return;
    };
    let slug = Slugbase::start(RULES, |dir, env| {
        cli(
            dir,
            env,
            &["user", "create", "--email", EMAIL, "--name", "Ann"],
            &format!("{PASSWORD}\n"),
        );
    });
    let browser = Browser::start(&tools, &nginx, slug.port);
    let (b, port) = (&browser.session, browser.port);

    let app = format!("http://app.home.test:{port}/dashboards");
    let auth = format!("http://auth.home.test:{}", slug.port);
    b.goto(&app);
    b.wait_visible("#login-email");
    b.fill("#login-email", EMAIL);
    b.fill("#login-password", PASSWORD);
    b.click("#login-submit");
    // Signed in with one factor; the app wants two, and the account has none yet.
    b.wait_visible("#mfa-enable");
    b.wait_text("#account-notice", "two-step verification");
    let account = b.url();
    assert!(
        account.starts_with(&format!("{auth}/account?enroll=1&rd=")),
        "{account}"
    );
    b.cmd("POST", "/refresh", Some(serde_json::json!({})));
    b.wait_visible("#mfa-enable");
    assert_eq!(b.url(), account, "a reload keeps the errand");

    harness::enroll_on_page(b);

    b.wait_for("the app page", || (b.url() == app).then_some(()));
    let seen = app_page(b);
    assert!(seen.contains(&format!("remote-user: {EMAIL}")), "{seen}");
}
