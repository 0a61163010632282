//! Crash safety of the release binary: under write load from several clients the server is
//! killed with SIGKILL at a random moment, restarted, and checked, at least 20 times.
//!
//! After every kill the database passes `PRAGMA integrity_check` / `foreign_key_check` and
//! `slugbase check`, and every write the server acknowledged with a 2xx before the kill is
//! still there: each session authenticates by its `slugbase.sid` cookie and its access JWT,
//! each `sb_` token authenticates, and each account's MFA state is the one last
//! acknowledged. A write whose response never arrived may or may not have happened; the
//! model accepts both outcomes and then follows the one the server reports.

mod ops_common;

use std::thread;
use std::time::{Duration, Instant};

use ops_common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const THREADS: usize = 4;
const USERS_PER_THREAD: usize = 8;
const CYCLES: usize = 24;
/// Every few cycles the server is also killed while it starts.
const STARTUP_KILL_EVERY: usize = 4;

/// An account's MFA state as the test knows it.
#[derive(Debug, Clone)]
enum Mfa {
    /// Off; whether a (possibly unknown) secret is pending.
    Off { pending: bool },
    /// Enrollment begun with this secret.
    Pending { secret: String },
    /// On; `codes` are unused backup codes the test still holds; the server counts
    /// `remaining`, or up to `maybe_spent` fewer (codes sent without an answer).
    On {
        secret: String,
        codes: Vec<String>,
        remaining: i64,
        maybe_spent: i64,
    },
}

/// A write sent without an answer: either outcome is allowed.
#[derive(Debug, Clone)]
enum Doubt {
    Begin,
    Confirm { secret: String },
    Disable { before: Mfa },
}

#[derive(Debug, Clone)]
struct User {
    id: i64,
    email: String,
    /// The session the test acts through (made before any kill, always acknowledged).
    session: Session,
    mfa: Mfa,
    doubt: Option<Doubt>,
    /// The newest TOTP step sent to the server.
    last_step: Option<i64>,
}

/// Writes the server acknowledged.
#[derive(Default)]
struct Acked {
    sessions: Vec<Session>,
    tokens: Vec<(i64, String)>,
    mfa_changes: usize,
    /// Answers that should not have happened, e.g. a 4xx or 5xx while the server was up.
    failures: Vec<String>,
    /// Accounts whose MFA was turned on or off (or may have been: no answer), which ends
    /// their other sessions: the sessions acknowledged for them so far are no longer expected
    /// to work.
    ended: Vec<i64>,
}

impl Acked {
    /// Confirm and disable end the account's other sessions.
    fn sessions_ended(&mut self, user_id: i64) {
        self.sessions.retain(|s| s.user_id != user_id);
        self.ended.push(user_id);
    }
}

enum Step {
    Done,
    /// No complete answer: the server is gone.
    Lost,
    Unexpected(String),
}

fn unexpected(what: &str, u: &User, r: &Resp) -> Step {
    Step::Unexpected(format!("{what} for {}: {}", u.email, r.describe()))
}

fn op_token(api: &Api, u: &mut User, acked: &mut Acked, rng: &mut StdRng) -> Step {
    let name = format!("crash-{}", rng.gen::<u32>());
    match api.post("/api/tokens", &u.session.bearer(), &json!({ "name": name })) {
        Err(_) => Step::Lost,
        Ok(r) if r.status == 201 => match r.json()["token"].as_str() {
            Some(t) => {
                acked.tokens.push((u.id, t.to_string()));
                Step::Done
            }
            None => unexpected("token", u, &r),
        },
        // The account holds the most tokens it may (50): a correct refusal, nothing written.
        Ok(r) if r.status == 409 && r.json()["code"] == "TOKEN_LIMIT" => Step::Done,
        Ok(r) => unexpected("token", u, &r),
    }
}

fn op_login(api: &Api, u: &mut User, acked: &mut Acked, rng: &mut StdRng) -> Step {
    if matches!(&u.mfa, Mfa::On { codes, .. } if codes.is_empty()) {
        return op_token(api, u, acked, rng);
    }
    let body = json!({ "email": u.email, "password": PASSWORD });
    let r = match api.post("/api/auth/login", &Auth::None, &body) {
        Ok(r) => r,
        Err(_) => return Step::Lost,
    };
    if r.status != 200 {
        return unexpected("login", u, &r);
    }
    let Mfa::On {
        codes,
        remaining,
        maybe_spent,
        ..
    } = &mut u.mfa
    else {
        return match Session::from_resp(&r) {
            Some(s) if s.user_id == u.id => {
                acked.sessions.push(s);
                Step::Done
            }
            _ => unexpected("login", u, &r),
        };
    };
    let pending = match (
        r.json()["mfa_required"].as_bool(),
        r.cookie("slugbase.mfa_pending"),
    ) {
        (Some(true), Some(p)) => p,
        _ => return Step::Unexpected(format!("login of MFA user {}: {}", u.email, r.describe())),
    };
    let Some(code) = codes.pop() else {
        return Step::Done;
    };
    let auth = Auth::Cookie("slugbase.mfa_pending", pending);
    match api.post("/api/auth/mfa/verify", &auth, &json!({ "code": code })) {
        Err(_) => {
            *maybe_spent += 1;
            Step::Lost
        }
        Ok(r) if r.status == 200 => {
            *remaining -= 1;
            match Session::from_resp(&r) {
                Some(s) if s.user_id == u.id => {
                    acked.sessions.push(s);
                    Step::Done
                }
                _ => Step::Unexpected(format!("verify for {}: {}", u.email, r.describe())),
            }
        }
        Ok(r) => Step::Unexpected(format!("verify for {}: {}", u.email, r.describe())),
    }
}

fn op_mfa(api: &Api, u: &mut User, acked: &mut Acked, rng: &mut StdRng) -> Step {
    let auth = u.session.bearer();
    match u.mfa.clone() {
        Mfa::Off { .. } => match api.post("/api/auth/mfa/enroll/begin", &auth, &json!({})) {
            Err(_) => {
                u.doubt = Some(Doubt::Begin);
                Step::Lost
            }
            Ok(r) if r.status == 200 => match r.json()["secret"].as_str() {
                Some(secret) => {
                    u.mfa = Mfa::Pending {
                        secret: secret.to_string(),
                    };
                    acked.mfa_changes += 1;
                    Step::Done
                }
                None => unexpected("begin", u, &r),
            },
            Ok(r) => unexpected("begin", u, &r),
        },
        Mfa::Pending { secret } => {
            let Some(step) = usable_step(u.last_step) else {
                return op_token(api, u, acked, rng);
            };
            u.last_step = Some(step);
            let body = json!({ "code": totp(&secret, step) });
            match api.post("/api/auth/mfa/enroll/confirm", &auth, &body) {
                Err(_) => {
                    u.doubt = Some(Doubt::Confirm { secret });
                    acked.sessions_ended(u.id);
                    Step::Lost
                }
                Ok(r) if r.status == 200 => {
                    acked.sessions_ended(u.id);
                    let codes: Vec<String> = r.json()["backup_codes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|c| c.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if codes.len() != 10 {
                        return unexpected("confirm", u, &r);
                    }
                    u.mfa = Mfa::On {
                        secret,
                        codes,
                        remaining: 10,
                        maybe_spent: 0,
                    };
                    acked.mfa_changes += 1;
                    Step::Done
                }
                Ok(r) => unexpected("confirm", u, &r),
            }
        }
        Mfa::On {
            secret,
            mut codes,
            remaining,
            maybe_spent,
        } => {
            // A backup code while the test holds one, else a fresh TOTP step.
            let code = match codes.pop() {
                Some(c) => c,
                None => {
                    let Some(step) = usable_step(u.last_step) else {
                        return op_token(api, u, acked, rng);
                    };
                    u.last_step = Some(step);
                    totp(&secret, step)
                }
            };
            // Disabling spends the code and deletes the rest in one transaction: if it did
            // not commit, the server still counts the code, but the test never reuses it.
            let before = Mfa::On {
                secret,
                codes,
                remaining,
                maybe_spent,
            };
            u.mfa = before.clone();
            let body = json!({ "code": code, "password": PASSWORD });
            match api.post("/api/auth/mfa/disable", &auth, &body) {
                Err(_) => {
                    u.doubt = Some(Doubt::Disable { before });
                    acked.sessions_ended(u.id);
                    Step::Lost
                }
                Ok(r) if r.status == 200 => {
                    acked.sessions_ended(u.id);
                    u.mfa = Mfa::Off { pending: false };
                    acked.mfa_changes += 1;
                    Step::Done
                }
                Ok(r) => unexpected("disable", u, &r),
            }
        }
    }
}

/// Load until the server stops answering.
fn worker(api: Api, mut users: Vec<User>, seed: u64) -> (Vec<User>, Acked) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acked = Acked::default();
    loop {
        let i = rng.gen_range(0..users.len());
        let u = &mut users[i];
        let pick = rng.gen_range(0..100);
        let step = if pick < 35 {
            op_login(&api, u, &mut acked, &mut rng)
        } else if pick < 60 {
            op_token(&api, u, &mut acked, &mut rng)
        } else {
            op_mfa(&api, u, &mut acked, &mut rng)
        };
        match step {
            Step::Done => {}
            Step::Lost => break,
            Step::Unexpected(e) => {
                acked.failures.push(e);
                break;
            }
        }
    }
    (users, acked)
}

/// Checks an account's MFA status against the model, settles any doubt, and adopts the
/// server's count of backup codes.
fn settle(api: &Api, u: &mut User) -> Result<(), String> {
    let r = api.get("/api/auth/mfa/status", &u.session.bearer())?;
    let s = r.json();
    let (Some(enabled), Some(pending), Some(left)) = (
        s["enabled"].as_bool(),
        s["pending"].as_bool(),
        s["backup_codes_remaining"].as_i64(),
    ) else {
        return Err(format!("status of {}: {}", u.email, r.describe()));
    };
    let known = format!("{}: model {:?}, doubt {:?}", u.email, u.mfa, u.doubt);
    let bad = |why: &str| Err(format!("{known}: {why}; server says {s}"));
    match u.doubt.take() {
        None => {}
        Some(Doubt::Begin) => {
            if enabled {
                return bad("MFA on after an unanswered begin");
            }
            u.mfa = Mfa::Off { pending };
            return Ok(());
        }
        Some(Doubt::Confirm { secret }) => {
            u.mfa = if enabled {
                Mfa::On {
                    secret,
                    codes: Vec::new(),
                    remaining: 10,
                    maybe_spent: 0,
                }
            } else {
                Mfa::Pending { secret }
            };
        }
        Some(Doubt::Disable { before }) => {
            u.mfa = if enabled {
                before
            } else {
                Mfa::Off { pending: false }
            };
        }
    }
    match &mut u.mfa {
        Mfa::Off { pending: p } if !enabled && pending == *p => Ok(()),
        Mfa::Pending { .. } if !enabled && pending => Ok(()),
        Mfa::On {
            remaining,
            maybe_spent,
            ..
        } if enabled && (*remaining - *maybe_spent..=*remaining).contains(&left) => {
            *remaining = left;
            *maybe_spent = 0;
            Ok(())
        }
        _ => bad("MFA state differs from the acknowledged one"),
    }
}

/// Runs `f` over `items` on a few threads; returns every error.
fn par_check<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<(), String> + Sync) -> Vec<String> {
    let chunk = items.len().div_ceil(THREADS).max(1);
    thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().filter_map(|i| f(i).err()).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec!["checker panicked".into()]))
            .collect()
    })
}

fn check_sessions(api: &Api, sessions: &[Session]) -> Vec<String> {
    par_check(sessions, |s| {
        authenticates_as(api, &s.cookie(), s.user_id)
            .map_err(|e| format!("session cookie of user {}: {e}", s.user_id))?;
        authenticates_as(api, &s.bearer(), s.user_id)
            .map_err(|e| format!("access JWT of user {}: {e}", s.user_id))
    })
}

fn check_tokens(api: &Api, tokens: &[(i64, String)]) -> Vec<String> {
    par_check(tokens, |(id, t)| {
        authenticates_as(api, &Auth::Bearer(t.clone()), *id)
            .map_err(|e| format!("API token of user {id}: {e}"))
    })
}

/// The database after a kill: read-only PRAGMA checks, then `slugbase check`.
fn check_database(inst: &Instance) {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(inst.db(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open database read-only");
    let ic: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok", "integrity_check after kill");
    let fk: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0, "foreign_key_check after kill");
    drop(conn);
    let (ok, text) = inst.check();
    assert!(
        ok && text.contains("database: integrity ok"),
        "slugbase check after kill:\n{text}"
    );
}

#[test]
fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let bin = binary();
    assert!(bin.exists(), "{} missing", bin.display());
    let started = Instant::now();
    let seed: u64 = std::env::var("OPS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("ops_crash seed {seed} (set OPS_CRASH_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(42));

    // Accounts through the CLI before the first start, a few at a time.
    let emails: Vec<String> = (0..THREADS * USERS_PER_THREAD)
        .map(|i| format!("crash{i}@example.com"))
        .collect();
    // One at a time: concurrent CLI commands race on the data folder's write probe.
    let ids: Vec<i64> = emails.iter().map(|e| inst.create_user(e)).collect();

    let mut server = inst.start();
    let api = inst.api();
    let mut users: Vec<User> = emails
        .iter()
        .zip(&ids)
        .map(|(e, &id)| {
            let session = login(&api, e);
            assert_eq!(session.user_id, id);
            User {
                id,
                email: e.clone(),
                session,
                mfa: Mfa::Off { pending: false },
                doubt: None,
                last_step: None,
            }
        })
        .collect();
    let mut all = Acked::default();
    all.sessions.extend(users.iter().map(|u| u.session.clone()));
    let (mut load_time, mut kills) = (Duration::ZERO, 0);

    for cycle in 0..CYCLES {
        // Load from THREADS clients, each with its own accounts, then SIGKILL.
        let per: Vec<Vec<User>> = users.chunks(USERS_PER_THREAD).map(|c| c.to_vec()).collect();
        let api = inst.api();
        let handles: Vec<_> = per
            .into_iter()
            .enumerate()
            .map(|(t, us)| {
                let s = seed ^ ((cycle * THREADS + t) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                thread::spawn(move || worker(api, us, s))
            })
            .collect();
        let wait = Duration::from_millis(rng.gen_range(150..1800));
        thread::sleep(wait);
        load_time += wait;
        server.sigkill();
        kills += 1;
        let mut cycle_acked = Acked::default();
        users.clear();
        for h in handles {
            let (us, a) = h.join().expect("worker");
            users.extend(us);
            cycle_acked.sessions.extend(a.sessions);
            cycle_acked.tokens.extend(a.tokens);
            cycle_acked.mfa_changes += a.mfa_changes;
            cycle_acked.failures.extend(a.failures);
            cycle_acked.ended.extend(a.ended);
        }
        all.sessions
            .retain(|s| !cycle_acked.ended.contains(&s.user_id));
        users.sort_by_key(|u| u.id);
        assert!(
            cycle_acked.failures.is_empty(),
            "cycle {cycle}: unexpected answers under load: {:#?}\nserver log:\n{}",
            cycle_acked.failures,
            server.log_text()
        );
        check_database(&inst);

        // Sometimes kill it again while it starts (migrations, key, pool), and check again.
        if cycle % STARTUP_KILL_EVERY == STARTUP_KILL_EVERY - 1 {
            let mut s = inst.spawn();
            thread::sleep(Duration::from_millis(rng.gen_range(0..120)));
            s.sigkill();
            kills += 1;
            check_database(&inst);
        }

        server = inst.start();
        let api = inst.api();
        let mut errors = check_sessions(&api, &cycle_acked.sessions);
        errors.extend(check_tokens(&api, &cycle_acked.tokens));
        for u in users.iter_mut() {
            if let Err(e) = settle(&api, u) {
                errors.push(e);
            }
        }
        // A sample of older writes, every cycle; all of them at the end.
        let older: Vec<Session> = (0..20)
            .filter_map(|_| {
                all.sessions
                    .get(rng.gen_range(0..all.sessions.len().max(1)))
                    .cloned()
            })
            .collect();
        errors.extend(check_sessions(&api, &older));
        assert!(
            errors.is_empty(),
            "cycle {cycle}: acknowledged writes missing after SIGKILL: {errors:#?}"
        );
        eprintln!(
            "cycle {cycle:2}: killed after {wait:?}; {} sessions, {} tokens, {} MFA changes acknowledged and intact",
            cycle_acked.sessions.len(),
            cycle_acked.tokens.len(),
            cycle_acked.mfa_changes
        );
        all.sessions.extend(cycle_acked.sessions);
        all.tokens.extend(cycle_acked.tokens);
        all.mfa_changes += cycle_acked.mfa_changes;
    }

    let api = inst.api();
    let mut errors = check_sessions(&api, &all.sessions);
    errors.extend(check_tokens(&api, &all.tokens));
    assert!(
        errors.is_empty(),
        "acknowledged writes missing at the end: {errors:#?}"
    );
    let on = users
        .iter()
        .filter(|u| matches!(u.mfa, Mfa::On { .. }))
        .count();
    eprintln!(
        "ops_crash: {kills} SIGKILLs in {CYCLES} cycles ({load_time:.1?} under load) in {:.1?}; {} sessions, {} tokens, {} MFA changes verified; {on} accounts end with MFA on",
        started.elapsed(),
        all.sessions.len(),
        all.tokens.len(),
        all.mfa_changes
    );
    server.sigkill();
}
