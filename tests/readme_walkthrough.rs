//! The README's curl walk-through, run exactly as printed: the shell block under "Walk-through
//! with curl" is read from README.md at test time (a changed README runs the new text) and run
//! by bash in an empty scratch folder against the release binary, with real curl and oathtool.
//! Only two things are bound to this test's server: `URL=` (its port) and `cargo run -q
//! --release --` (the same binary, with this installation's settings).

mod ops_common;

use std::path::Path;
use std::process::Command;

use ops_common::*;

/// The first ```sh block after the walk-through heading.
fn walkthrough_block(readme: &str) -> String {
    let after = readme
        .split_once("### Walk-through with curl")
        .expect("README has a walk-through heading")
        .1;
    let body = after.split_once("```sh\n").expect("a sh block").1;
    body.split_once("\n```")
        .expect("the block ends")
        .0
        .to_string()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let missing: Vec<&str> = ["curl", "oathtool", "bash"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide {missing:?} (.ci/run installs them)"
        );
        eprintln!("SKIPPED: {missing:?} not installed (apt-get install -y curl oathtool)");
        return;
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let block = walkthrough_block(&readme);
    assert!(
        block.lines().any(|l| l == "URL=http://127.0.0.1:8000"),
        "the block sets URL=http://127.0.0.1:8000:\n{block}"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("install");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    let mut inst = Instance::new(&root, key(9));
    let _server = inst.start();
    let scratch = tmp.path().join("cwd");
    std::fs::create_dir_all(&scratch).expect("mkdir");

    let script = format!(
        "set -euo pipefail\n\
         cargo() {{\n\
           [ \"$1 $2 $3 $4\" = 'run -q --release --' ] || {{ echo \"unexpected: cargo $*\" >&2; return 2; }}\n\
           shift 4; \"$SLUGBASE_BIN\" \"$@\"\n\
         }}\n{}\n",
        block.replace(
            "URL=http://127.0.0.1:8000",
            &format!("URL=http://127.0.0.1:{}", inst.port)
        )
    );
    let mut cmd = inst.command(&[]);
    let envs: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    drop(cmd);
    cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(&scratch)
        .env("SLUGBASE_BIN", binary())
        .envs(envs);
    let out = cmd.output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "walk-through failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // Each step printed what the README says it prints, in order.
    let mut rest = stdout.as_str();
    for expect in [
        "\"otpauth_url\":\"otpauth://totp/",
        "\"backup_codes\":[\"",
        "\"enabled\":true",
        "{\"mfa_required\":true}",
        "\"email\":\"ann@example.com\"",
        "{\"ok\":true}",
        "{\"ok\":true}",
    ] {
        let at = rest
            .find(expect)
            .unwrap_or_else(|| panic!("missing {expect} in what is left of:\n{stdout}"));
        rest = &rest[at + expect.len()..];
    }
    assert!(
        !stdout.contains("\"code\":\"") || !stdout.contains("\"error\":"),
        "an error answer:\n{stdout}"
    );

    // The last step cancelled a real pending enrollment, and nothing was left behind.
    let conn = rusqlite::Connection::open(inst.db()).expect("db");
    let cancels: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM mfa_events WHERE event = 'cancel'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(cancels, 1, "the cancel ended a pending enrollment");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .expect("scratch")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
