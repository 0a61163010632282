//! Hostile storage: a database locked by another process, a full disk, a write-protected
//! database file and a write-protected data folder. The server answers 503 `UNAVAILABLE`
//! (or, at start-up, exits non-zero with a clear message), corrupts nothing, and works
//! again once the condition ends.
//!
//! The full-disk and write-protection cases need root (tmpfs mounts, `chattr +i`); without
//! it they say so and return. A data folder turning read-only *while* the server runs cannot
//! be produced here: remounting a file system read-only fails with EBUSY while SQLite holds
//! files open for writing, and there is no device-mapper to inject errors.

mod ops_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ops_common::*;
use serde_json::json;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn new_token(api: &Api, s: &Session) -> Resp {
    api.post("/api/tokens", &s.bearer(), &json!({ "name": "hostile" }))
        .expect("token request answered")
}

fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.describe());
    assert_eq!(r.json()["code"], "UNAVAILABLE", "{what}: {}", r.describe());
}

fn assert_intact(inst: &Instance) {
    let (ok, text) = inst.check();
    assert!(ok && text.contains("database: integrity ok"), "{text}");
}

#[test]
fn locked_database_answers_503_and_recovers() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(11));
    inst.create_user("lock@example.com");
    let _server = inst.start();
    let api = inst.api();
    let s = login(&api, "lock@example.com");
    let token = new_token(&api, &s).json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    authenticates_as(&api, &Auth::Bearer(token.clone()), s.user_id).expect("token works");

    // Another process's writer: BEGIN EXCLUSIVE (in WAL mode readers still get through).
    let locker = rusqlite::Connection::open(inst.db()).expect("open");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    assert_eq!(
        api.get("/api/health", &Auth::None).expect("health").status,
        200
    );
    authenticates_as(&api, &s.bearer(), s.user_id).expect("reads pass a writer's lock");
    let t = Instant::now();
    let r = new_token(&api, &s);
    let waited = t.elapsed();
    assert_unavailable(&r, "write while another process holds the write lock");
    eprintln!("locked: a write waited {waited:.2?} (busy_timeout) and got 503");
    assert!(
        waited >= Duration::from_secs(4),
        "busy_timeout should queue the writer: {waited:?}"
    );
    locker.execute_batch("ROLLBACK").expect("unlock");
    let r = new_token(&api, &s);
    assert_eq!(r.status, 201, "after the lock: {}", r.describe());

    drop(locker);
    authenticates_as(&api, &Auth::Bearer(token), s.user_id).expect("token after the lock");
    assert_intact(&inst);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full, then gives back `spare` bytes.
fn fill(path: &Path, spare: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8; 512]).is_ok() {}
    let len = f.metadata().expect("filler size").len();
    f.set_len(len.saturating_sub(spare))
        .expect("truncate filler");
    f.sync_all().expect("sync filler");
}

#[test]
fn full_disk_answers_503_and_recovers() {
    if !is_root() {
        eprintln!("SKIPPED full_disk: needs root to mount a small tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(12));
    let Some(_fs) = Tmpfs::mount(&inst.data_dir(), "2m") else {
        eprintln!("SKIPPED full_disk: mount -t tmpfs failed here");
        return;
    };
    inst.create_user("full@example.com");
    let mut server = inst.start();
    let api = inst.api();
    let s = login(&api, "full@example.com");
    let filler = inst.data_dir().join("filler");
    fill(&filler, 96 * 1024);

    // Write until the WAL needs room it cannot get.
    let mut acked = Vec::new();
    let mut full = None;
    for _ in 0..5000 {
        let r = new_token(&api, &s);
        match r.status {
            201 => acked.push(r.json()["token"].as_str().expect("token").to_string()),
            _ => {
                full = Some(r);
                break;
            }
        }
    }
    let r = full.expect("the disk never filled up");
    assert_unavailable(&r, "write on a full disk");
    eprintln!("full disk: 503 after {} acknowledged writes", acked.len());
    assert_eq!(
        api.get("/api/health", &Auth::None).expect("health").status,
        200
    );
    let r = api
        .post(
            "/api/auth/login",
            &Auth::None,
            &json!({ "email": "full@example.com", "password": PASSWORD }),
        )
        .expect("login");
    assert_unavailable(&r, "sign-in on a full disk");

    // Space again: the same server takes writes without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let r = new_token(&api, &s);
    assert_eq!(r.status, 201, "after freeing space: {}", r.describe());
    for t in &acked {
        authenticates_as(&api, &Auth::Bearer(t.clone()), s.user_id)
            .expect("acknowledged token kept");
    }
    let log = server.log_text();
    let cause = log
        .lines()
        .find(|l| l.contains("storage unavailable"))
        .unwrap_or("");
    assert!(cause.contains("full"), "the log names the cause: {log}");
    eprintln!("full disk: logged: {cause}");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success(), "{status:?}");
    assert_intact(&inst);
}

/// `chattr +i` on `path` (root on a file system that supports it), undone when dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn write_protected_storage_is_reported_and_recovers() {
    if !is_root() {
        eprintln!("SKIPPED write_protected: needs root for chattr +i (root ignores chmod)");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(13));
    inst.create_user("ro@example.com");
    let mut server = inst.start();
    let api = inst.api();
    let s = login(&api, "ro@example.com");
    let token = new_token(&api, &s).json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    server.signal(libc::SIGTERM);
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));

    // 1. The data folder is write-protected: the server refuses to start, and says why.
    {
        let Some(_ro) = Immutable::set(&inst.data_dir()) else {
            eprintln!("SKIPPED write_protected: chattr +i is not supported here");
            return;
        };
        let mut srv = inst.spawn();
        let status = srv.wait_exit(Duration::from_secs(15)).expect("exits");
        assert!(!status.success());
        let log = srv.log_text();
        assert!(log.contains("not writable"), "{log}");
    }

    // 2. Only the database file is write-protected: SQLite opens it read-only.
    {
        let _ro = Immutable::set(&inst.db()).expect("chattr +i on the database");
        let mut srv = inst.spawn();
        match srv.wait_healthy(Duration::from_secs(15)) {
            Ok(()) => {
                let api = inst.api();
                let r = api
                    .post(
                        "/api/auth/login",
                        &Auth::None,
                        &json!({ "email": "ro@example.com", "password": PASSWORD }),
                    )
                    .expect("login");
                assert_unavailable(&r, "sign-in with a read-only database file");
                drop(_ro);
                // The pool keeps its read-only connections until it recycles them.
                let r = api
                    .post(
                        "/api/auth/login",
                        &Auth::None,
                        &json!({ "email": "ro@example.com", "password": PASSWORD }),
                    )
                    .expect("login");
                eprintln!(
                    "read-only database file: served 503; once writable again, without a restart: {}",
                    r.describe()
                );
                srv.signal(libc::SIGTERM);
                assert!(srv
                    .wait_exit(Duration::from_secs(10))
                    .is_some_and(|st| st.success()));
            }
            Err(e) => {
                // A server that refuses read-only connections stops at start-up instead.
                let log = srv.log_text();
                assert!(
                    log.contains("read-only") || log.contains("readonly"),
                    "{e}: {log}"
                );
                eprintln!("read-only database file: refused to start: {}", log.trim());
            }
        }
    }

    // The condition over: a (re)start works and nothing was lost or damaged.
    assert_intact(&inst);
    let _server = inst.start();
    let api = inst.api();
    authenticates_as(&api, &Auth::Bearer(token), s.user_id).expect("token kept");
    let r = new_token(&api, &login(&api, "ro@example.com"));
    assert_eq!(r.status, 201, "{}", r.describe());
}
