//! `slugbase backup` while the server is under write load, and restoring the copy.
//!
//! The copy restored into a fresh data folder with the same secret key authenticates the
//! same sessions and tokens and accepts the same accounts' TOTP and backup codes. With
//! another key, `slugbase check` refuses it and the server cannot unseal TOTP secrets; with
//! no key at all, `slugbase check` refuses it too.

mod ops_common;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ops_common::*;
use serde_json::json;

/// An MFA account: its secret, unused backup codes and the newest TOTP step spent.
struct MfaUser {
    email: String,
    secret: String,
    codes: Vec<String>,
    last_step: i64,
}

/// Turns MFA on for the session's account.
fn enable_mfa(api: &Api, s: &Session, email: &str) -> MfaUser {
    let r = api
        .post("/api/auth/mfa/enroll/begin", &s.bearer(), &json!({}))
        .expect("begin");
    assert_eq!(r.status, 200, "{}", r.describe());
    let secret = r.json()["secret"].as_str().expect("secret").to_string();
    let step = usable_step(None).expect("step");
    let r = api
        .post(
            "/api/auth/mfa/enroll/confirm",
            &s.bearer(),
            &json!({ "code": totp(&secret, step) }),
        )
        .expect("confirm");
    assert_eq!(r.status, 200, "{}", r.describe());
    let codes = r.json()["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(|c| c.as_str().map(String::from))
        .collect();
    MfaUser {
        email: email.into(),
        secret,
        codes,
        last_step: step,
    }
}

/// Password, then a code: the sign-in's answer to `mfa/verify`.
fn mfa_login(api: &Api, email: &str, code: &str) -> Resp {
    let r = api
        .post(
            "/api/auth/login",
            &Auth::None,
            &json!({ "email": email, "password": PASSWORD }),
        )
        .expect("login");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json()["mfa_required"], true, "{}", r.describe());
    let pending = r
        .cookie("slugbase.mfa_pending")
        .expect("mfa_pending cookie");
    api.post(
        "/api/auth/mfa/verify",
        &Auth::Cookie("slugbase.mfa_pending", pending),
        &json!({ "code": code }),
    )
    .expect("verify")
}

/// A write made under load, with the backup phase when it was sent and when it was answered
/// (0: before the backup started, 1: while it ran, 2: after it finished).
struct Written {
    auth: Auth,
    user_id: i64,
    sent: u8,
    acked: u8,
}

fn load(
    api: Api,
    sessions: Vec<Session>,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> Vec<Written> {
    let mut out = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let s = &sessions[n % sessions.len()];
        n += 1;
        let sent = phase.load(Ordering::SeqCst);
        // Logins once the account holds close to the most tokens it may (50).
        let written = if n.is_multiple_of(3) || n > 60 {
            let email = format!("plain{}@example.com", s.user_id);
            let r = api.post(
                "/api/auth/login",
                &Auth::None,
                &json!({ "email": email, "password": PASSWORD }),
            );
            r.ok()
                .and_then(|r| Session::from_resp(&r))
                .map(|s| s.cookie())
        } else {
            let r = api.post(
                "/api/tokens",
                &s.bearer(),
                &json!({ "name": format!("load {n}") }),
            );
            r.ok()
                .filter(|r| r.status == 201)
                .and_then(|r| r.json()["token"].as_str().map(|t| Auth::Bearer(t.into())))
        };
        let acked = phase.load(Ordering::SeqCst);
        match written {
            Some(auth) => out.push(Written {
                auth,
                user_id: s.user_id,
                sent,
                acked,
            }),
            None => panic!("a write failed under load"),
        }
    }
    out
}

#[test]
fn backup_under_load_restores_with_the_same_key_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (root_a, root_b, root_c, root_d) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
        tmp.path().join("d"),
    );
    for r in [&root_a, &root_b, &root_c, &root_d] {
        std::fs::create_dir_all(r.join("data")).expect("mkdir");
    }
    let mut a = Instance::new(&root_a, key(7));

    // Two MFA accounts and three plain ones (their ids name their emails: plain<id>@).
    let mfa_emails = ["mfa1@example.com", "mfa2@example.com"];
    for e in mfa_emails {
        a.create_user(e);
    }
    for i in 3..=5 {
        assert_eq!(a.create_user(&format!("plain{i}@example.com")), i);
    }
    let mut server = a.start();
    let api = a.api();
    let mut mfa: Vec<MfaUser> = mfa_emails
        .iter()
        .map(|e| enable_mfa(&api, &login(&api, e), e))
        .collect();
    let plain: Vec<Session> = (3..=5)
        .map(|i| login(&api, &format!("plain{i}@example.com")))
        .collect();

    // Write load from three clients; the backup runs in the middle of it.
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|i| {
            let (p, s) = (phase.clone(), stop.clone());
            let sessions = vec![plain[i].clone()];
            thread::spawn(move || load(api, sessions, p, s))
        })
        .collect();
    thread::sleep(Duration::from_millis(600));
    let copy = tmp.path().join("backups").join("slugbase-copy.db");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    phase.store(1, Ordering::SeqCst);
    let t = Instant::now();
    let out = a.cli(&["backup", copy.to_str().expect("utf-8 path")], None);
    let backup_time = t.elapsed();
    phase.store(2, Ordering::SeqCst);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup failed: {stderr}");
    assert!(
        stderr.contains("secret key"),
        "backup should remind of the key: {stderr}"
    );
    thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let written: Vec<Written> = loaders
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect();
    let count = |p: fn(&Written) -> bool| written.iter().filter(|w| p(w)).count();
    let (before, during, after) = (
        count(|w| w.acked == 0),
        count(|w| w.acked == 1),
        count(|w| w.sent == 2),
    );
    eprintln!(
        "backup took {backup_time:.1?} under load; writes acknowledged before it: {before}, while it ran: {during}, sent after it: {after}"
    );
    assert!(
        before > 0 && after > 0,
        "the load did not overlap the backup"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds secrets: owner only");
        assert!(!copy.with_extension("db.partial").exists());
    }
    server.signal(libc::SIGTERM);
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));

    // Restore into a fresh data folder with the same key.
    let mut b = Instance::new(&root_b, a.key.clone());
    std::fs::copy(&copy, b.db()).expect("restore copy");
    let (ok, text) = b.check();
    assert!(ok, "check of the restored copy: {text}");
    assert!(
        text.contains("secret key matches the database: ok"),
        "{text}"
    );
    let _restored = b.start();
    let api = b.api();
    let mut errors = Vec::new();
    for w in &written {
        let r = authenticates_as(&api, &w.auth, w.user_id);
        if w.acked == 0 && r.is_err() {
            errors.push(format!("acknowledged before the backup but missing: {r:?}"));
        }
        if w.sent == 2 && r.is_ok() {
            errors.push("written after the backup but present in it".into());
        }
    }
    for s in &plain {
        if let Err(e) = authenticates_as(&api, &s.bearer(), s.user_id) {
            errors.push(format!("session of user {}: {e}", s.user_id));
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    // MFA accounts: a fresh TOTP code, and a backup code.
    let u = &mut mfa[0];
    let step = loop {
        match usable_step(Some(u.last_step)) {
            Some(s) => break s,
            None => thread::sleep(Duration::from_millis(500)),
        }
    };
    u.last_step = step;
    let r = mfa_login(&api, &u.email, &totp(&u.secret, step));
    assert_eq!(r.status, 200, "TOTP after restore: {}", r.describe());
    assert!(Session::from_resp(&r).is_some());
    let u = &mut mfa[1];
    let code = u.codes.pop().expect("backup code");
    let r = mfa_login(&api, &u.email, &code);
    assert_eq!(r.status, 200, "backup code after restore: {}", r.describe());
    let r = api.post(
        "/api/auth/login",
        &Auth::None,
        &json!({ "email": "plain3@example.com", "password": PASSWORD }),
    );
    assert_eq!(r.expect("login").status, 200);

    // The same copy with another key: check refuses it, and TOTP secrets cannot be unsealed.
    let mut c = Instance::new(&root_c, key(8));
    std::fs::copy(&copy, c.db()).expect("restore copy");
    let (ok, text) = c.check();
    assert!(!ok, "check must fail with the wrong key: {text}");
    assert!(text.contains("does not match this database"), "{text}");
    let _wrong = c.start();
    let api = c.api();
    let u = &mfa[0];
    let step = usable_step(Some(u.last_step)).unwrap_or_else(now_step);
    let r = mfa_login(&api, &u.email, &totp(&u.secret, step));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (500, Some("INTERNAL")),
        "{}",
        r.describe()
    );
    // Sessions and API tokens are keyed hashes: they do not carry over either.
    let w = written.iter().find(|w| w.acked == 0).expect("a write");
    assert_eq!(api.get("/api/auth/me", &w.auth).expect("me").status, 401);
    // Passwords are not keyed: a plain account still signs in.
    let r = api.post(
        "/api/auth/login",
        &Auth::None,
        &json!({ "email": "plain4@example.com", "password": PASSWORD }),
    );
    assert_eq!(r.expect("login").status, 200);

    // The copy without its key file: check refuses to let a new key be made for it.
    let d = Instance::new(&root_d, String::new());
    std::fs::copy(&copy, d.db()).expect("restore copy");
    let (ok, text) = d.check();
    assert!(!ok, "check must fail without a key: {text}");
    assert!(text.contains("secret key is missing"), "{text}");
    assert!(
        !d.data_dir().join("secret.key").exists(),
        "check must not create a key"
    );
}
