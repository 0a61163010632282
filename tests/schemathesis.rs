//! The outside fuzzer: schemathesis (PyPI, pinned in tests/fuzz/requirements.txt, installed by
//! `.ci/run` into target/st-venv) runs every check against the release binary and the
//! document it serves, for three accounts: MFA off, MFA on, and an enrollment pending. Each
//! phase gets fresh credentials, since the fuzzer may end the ones it holds (logout, token
//! revocation). Bounded: a few seconds of start-up and 25 s per run, six runs.

mod ops_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ops_common::*;
use serde_json::json;

/// Seconds each schemathesis run may take.
const RUN_SECS: &str = "25";

fn schemathesis() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/st-venv/bin/st");
    if let Some(p) = std::env::var_os("SLUGBASE_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    venv.is_file().then_some(venv)
}

/// An sb_ token made with the CLI.
fn token(inst: &Instance, email: &str, name: &str) -> String {
    let out = inst.cli(&["token", "create", "--email", email, "--name", name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An access JWT from a password sign-in (and the code step when MFA is on).
fn jwt(api: &Api, email: &str, secret: Option<(&str, i64)>) -> String {
    let r = api
        .post(
            "/api/auth/login",
            &Auth::None,
            &json!({"email": email, "password": PASSWORD}),
        )
        .expect("login");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = match secret {
        None => r,
        Some((secret, last)) => {
            let pending = r.cookie("slugbase.mfa_pending").expect("pending cookie");
            let step = usable_step(Some(last)).expect("a TOTP step after the last one");
            api.post(
                "/api/auth/mfa/verify",
                &Auth::Cookie("slugbase.mfa_pending", pending),
                &json!({"code": totp(secret, step)}),
            )
            .expect("verify")
        }
    };
    assert_eq!(r.status, 200, "{}", r.describe());
    r.cookie("token").expect("token cookie")
}

/// Begins enrollment with `auth`; returns the secret.
fn begin(api: &Api, auth: &Auth) -> String {
    let r = api
        .post("/api/auth/mfa/enroll/begin", auth, &json!({}))
        .expect("begin");
    assert_eq!(r.status, 200, "{}", r.describe());
    r.json()["secret"].as_str().expect("secret").to_string()
}

struct Outcome {
    ok: bool,
    generated: u64,
    summary: String,
}

fn run(st: &PathBuf, cwd: &Path, port: u16, credential: &str, exclude: &[&str]) -> Outcome {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/schemathesis.toml");
    let mut cmd = Command::new(st);
    // schemathesis keeps a cache folder in its working directory: not in the repository.
    cmd.current_dir(cwd)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-time",
            RUN_SECS,
            "--seed",
            "20261205",
        ])
        .args(["-H", &format!("Authorization: Bearer {credential}")]);
    for e in exclude {
        cmd.args(["--exclude-path-regex", e]);
    }
    let out = cmd.output().expect("run schemathesis");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "Test cases:" is followed by "  N generated, N passed, …".
    let generated = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse().ok())
        .unwrap_or(0);
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && l.starts_with('='))
        .unwrap_or("")
        .to_string();
    // A run that tested nothing (no schema, no connection) is a failure too.
    let ok = out.status.success() && generated > 0;
    Outcome {
        ok,
        generated,
        summary: if ok { summary } else { text },
    }
}

#[test]
fn schemathesis_finds_nothing() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install schemathesis (.ci/run: target/st-venv)"
        );
        eprintln!(
            "SKIPPED: schemathesis not installed: python3 -m venv target/st-venv && \
             target/st-venv/bin/pip install -r tests/fuzz/requirements.txt"
        );
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("install");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    let mut inst = Instance::new(&root, key(5));
    inst.env
        .push(("SLUGBASE_MFA_FAILURES_PER_ACCOUNT".into(), "1000000".into()));
    let _server = inst.start();
    let api = inst.api();

    // Three accounts: MFA off, MFA on, enrollment pending.
    inst.create_user("plain@example.com");
    inst.create_user("mfa@example.com");
    inst.create_user("pending@example.com");
    let mfa_secret = begin(
        &api,
        &Auth::Bearer(token(&inst, "mfa@example.com", "setup")),
    );
    let step = usable_step(None).expect("step");
    let r = api
        .post(
            "/api/auth/mfa/enroll/confirm",
            &Auth::Bearer(token(&inst, "mfa@example.com", "setup2")),
            &json!({"code": totp(&mfa_secret, step)}),
        )
        .expect("confirm");
    assert_eq!(r.status, 200, "{}", r.describe());

    // Sessions the fuzzer must not end for itself while it runs with them.
    let ends_session = ["^/api/auth/logout$", "^/api/auth/sessions/"];
    let mut results = Vec::new();
    for (who, secret) in [
        ("plain@example.com", None),
        ("mfa@example.com", Some((mfa_secret.as_str(), step))),
        ("pending@example.com", None),
    ] {
        let sb = token(&inst, who, "fuzz");
        if who.starts_with("pending") {
            begin(&api, &Auth::Bearer(sb.clone()));
        }
        results.push((who, "sb_ token", run(&st, tmp.path(), inst.port, &sb, &[])));
        if who.starts_with("pending") {
            begin(&api, &Auth::Bearer(sb.clone()));
        }
        let access = jwt(&api, who, secret);
        results.push((
            who,
            "access JWT",
            run(&st, tmp.path(), inst.port, &access, &ends_session),
        ));
    }
    let total: u64 = results.iter().map(|r| r.2.generated).sum();
    for (who, cred, o) in &results {
        eprintln!(
            "schemathesis {who} with an {cred}: {} test cases; {}",
            o.generated,
            if o.ok { "0 failures" } else { "FAILURES" }
        );
    }
    eprintln!(
        "schemathesis: {total} test cases in {:.0?}",
        started.elapsed()
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.2.ok)
        .map(|(who, cred, o)| format!("== {who} with an {cred}:\n{}", o.summary))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
