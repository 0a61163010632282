//! The binary's command line and start-up failures.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

fn slugbase(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slugbase"));
    cmd.args(args)
        .env("SLUGBASE_DATA_DIR", dir)
        .env("SLUGBASE_PORT", "0")
        .env_remove("SLUGBASE_SECRET_KEY")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_secret_keys_stop_startup_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let short = STANDARD.encode([1u8; 16]);
    let o = slugbase(
        dir.path(),
        &["serve"],
        &[("SLUGBASE_SECRET_KEY", &short)],
        "",
    );
    assert_clean_failure(&o, "exactly 32 bytes");
    let o = slugbase(
        dir.path(),
        &["serve"],
        &[("SLUGBASE_SECRET_KEY", "***")],
        "",
    );
    assert_clean_failure(&o, "not valid base64");
    std::fs::write(dir.path().join("secret.key"), "dG9vIHNob3J0\n").unwrap();
    let o = slugbase(dir.path(), &[], &[], "");
    assert_clean_failure(&o, "secret.key");
    std::fs::write(dir.path().join("secret.key"), [0xffu8, 0xfe]).unwrap();
    let o = slugbase(dir.path(), &[], &[], "");
    assert_clean_failure(&o, "secret.key");
}

#[test]
fn unwritable_data_dir_stops_startup_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = slugbase(
        dir.path(),
        &[],
        &[("SLUGBASE_DATA_DIR", file.join("sub").to_str().unwrap())],
        "",
    );
    assert_clean_failure(&o, "data folder");
}

#[test]
fn bad_config_value_stops_startup_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let o = slugbase(dir.path(), &[], &[("SLUGBASE_PORT", "not-a-port")], "");
    assert_clean_failure(&o, "configuration");
}

#[test]
fn user_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let o = slugbase(
        p,
        &[
            "user",
            "create",
            "--email",
            " Ann@Example.com ",
            "--name",
            "Ann",
            "--admin",
        ],
        &[],
        "long enough password\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    let o = slugbase(
        p,
        &["user", "create", "--email", "ann@example.com"],
        &[],
        "long enough password\n",
    );
    assert!(!o.status.success(), "duplicate email refused");
    let o = slugbase(
        p,
        &["user", "create", "--email", "short@example.com"],
        &[],
        "short\n",
    );
    assert!(!o.status.success(), "short password refused");
    let o = slugbase(
        p,
        &[
            "user",
            "create",
            "--email",
            "sso@example.com",
            "--oidc-only",
        ],
        &[],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = slugbase(p, &["user", "list"], &[], "");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("ann@example.com\tAnn\tadmin"), "{out}");
    assert!(out.contains("sso@example.com\tsso\toidc-only"), "{out}");
    let o = slugbase(
        p,
        &[
            "token",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "ci",
        ],
        &[],
        "",
    );
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(token.starts_with("sb_") && token.len() == 46, "{token}");
    let o = slugbase(
        p,
        &["user", "set-password", "--email", "ann@example.com"],
        &[],
        "another long password\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = slugbase(
        p,
        &["user", "reset-mfa", "--email", "ann@example.com"],
        &[],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = slugbase(
        p,
        &["user", "delete", "--email", "sso@example.com"],
        &[],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = slugbase(
        p,
        &["user", "delete", "--email", "nobody@example.com"],
        &[],
        "",
    );
    assert_clean_failure(&o, "no account");
    let o = slugbase(p, &["--version"], &[], "");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("slugbase "));
}
