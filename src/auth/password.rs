//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use rocket::tokio::sync::Semaphore;

use crate::config::cores;
use crate::error::ApiError;

/// Shortest new password accepted, characters.
pub const MIN_LEN: usize = 12;
/// Longest new password accepted, characters.
pub const MAX_LEN: usize = 256;
/// Longest password ever checked, bytes (bounds the hashing work an attacker can ask for;
/// older accounts may hold passwords longer than [`MAX_LEN`] allows today).
pub const MAX_CHECKED_BYTES: usize = 1024;

/// Caps concurrent argon2 runs at the number of cores. Each run needs 19 MiB; without a cap a
/// burst of logins ran one per blocking thread (5.8 GiB RSS measured at 64 concurrent logins)
/// with no gain in throughput. While runs are queued, a finished run hands its memory to the
/// next one instead of freeing it, so a burst neither faults in 19 MiB per login nor keeps
/// more than one block per core; a lone login gives the memory back.
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

struct GateState {
    free: usize,
    waiting: usize,
    spare: Vec<Vec<Block>>,
}

static GATE: OnceLock<Gate> = OnceLock::new();

/// The async side of the gate: request handlers wait for a slot here, as tasks, so that a
/// burst of logins does not park one blocking thread per login (those threads, each with its
/// stack and malloc cache, are what the blocking pool's cap is for).
static SLOTS: OnceLock<Semaphore> = OnceLock::new();

/// Tasks waiting in [`with_argon2_slot`]; a finished run keeps its memory for them.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

struct Queued;

impl Queued {
    fn new() -> Queued {
        QUEUED.fetch_add(1, Ordering::SeqCst);
        Queued
    }
}

impl Drop for Queued {
    // Also when the waiting request is dropped (client gone).
    fn drop(&mut self) {
        QUEUED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs blocking work `f` that does one argon2 run (plus its database work) on the blocking
/// pool, once one of the per-core argon2 slots is free.
pub async fn with_argon2_slot<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let slots = SLOTS.get_or_init(|| Semaphore::new(cores()));
    let permit = {
        let _queued = Queued::new();
        slots.acquire().await.map_err(ApiError::internal)?
    };
    let out = rocket::tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?;
    drop(permit);
    out
}

fn lock(m: &Mutex<GateState>) -> std::sync::MutexGuard<'_, GateState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_gate<T>(f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    let gate = GATE.get_or_init(|| Gate {
        state: Mutex::new(GateState {
            free: cores(),
            waiting: 0,
            spare: Vec::new(),
        }),
        cv: Condvar::new(),
    });
    let mut memory = {
        let mut st = lock(&gate.state);
        st.waiting += 1;
        while st.free == 0 {
            st = gate.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.waiting -= 1;
        st.free -= 1;
        st.spare.pop().unwrap_or_default()
    };
    let out = f(&mut memory);
    let unused = {
        let mut st = lock(&gate.state);
        st.free += 1;
        // One spare per waiter at most, so that no memory is left behind after a burst.
        if st.spare.len() < st.waiting + QUEUED.load(Ordering::SeqCst) {
            st.spare.push(memory);
            None
        } else {
            Some(memory)
        }
    };
    gate.cv.notify_one();
    drop(unused);
    out
}

/// Verifies with the parameters the PHC string names, in `memory` (grown on first use).
fn verify_in(
    password: &[u8],
    phc: &PasswordHash<'_>,
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Ok(false);
    };
    let params = Params::try_from(phc)?;
    let algorithm = Algorithm::try_from(phc.algorithm)?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let blocks = params.block_count();
    memory.resize(blocks, Block::default());
    let ctx = Argon2::new(algorithm, version, params);
    let got = Output::init_with(expected.len(), |out| {
        ctx.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(Into::into)
    })?;
    // Output's equality is constant-time.
    Ok(got == expected)
}

fn argon2() -> Argon2<'static> {
    // 19 MiB, 2 passes, 1 lane: the OWASP minimum for argon2id. These values are valid
    // constants, so Params::new cannot fail; the fallback is never taken.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password: [`MIN_LEN`]–[`MAX_LEN`] characters and not easy to guess (zxcvbn
/// score 3 or more, with the account's email and name counted as known words). Anything else
/// is 400 `WEAK_PASSWORD` naming `field`. CPU work of a few milliseconds: call off the async
/// workers.
pub fn validate(password: &str, field: &str, known: &[&str]) -> Result<(), ApiError> {
    let weak = |message: String| {
        ApiError::new(rocket::http::Status::BadRequest, "WEAK_PASSWORD", message)
            .with_details(serde_json::json!({ "field": field }))
    };
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(weak(format!(
            "Password must be at least {MIN_LEN} characters"
        )));
    }
    if n > MAX_LEN {
        return Err(weak(format!(
            "Password must be at most {MAX_LEN} characters"
        )));
    }
    let estimate = zxcvbn::zxcvbn(password, known);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        return Err(weak(format!(
            "This password is too easy to guess{hint}. Add words or use a password manager"
        )));
    }
    Ok(())
}

/// Hashes a password to a PHC string. Slow by design: call off the async workers.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    with_gate(|_| {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("password hashing failed: {e}"))
    })
}

/// Verifies a password against a PHC string; false for any malformed hash or over-long input.
/// Slow by design and gated like [`hash`]: call off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_CHECKED_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => {
            with_gate(|memory| verify_in(password.as_bytes(), &parsed, memory).unwrap_or(false))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn verify_reads_the_parameters_from_the_hash() {
        // A hash made by the crate's own API with other parameters (argon2i, small memory).
        let params = Params::new(64, 1, 1, None).unwrap();
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x10, params);
        let salt = SaltString::generate(&mut OsRng);
        let h = other.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(h.starts_with("$argon2i$v=16$m=64,t=1,p=1$"), "{h}");
        assert!(verify("pw", &h));
        assert!(!verify("pW", &h));
        // Tampered output, and a hash without its output.
        let mut bad = h.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!verify("pw", &bad));
        let cut = &h[..h.rfind('$').unwrap()];
        assert!(!verify("pw", cut));
    }

    #[test]
    fn concurrent_verifications_share_the_gate() {
        let h = hash("correct horse").unwrap();
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    verify(if i % 2 == 0 { "correct horse" } else { "nope" }, &h)
                })
            })
            .collect();
        let got: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got, vec![true, false, true, false, true, false]);
    }

    #[test]
    fn new_passwords_must_be_long_and_hard_to_guess() {
        let code = |pw: &str| validate(pw, "new_password", &["ann@example.com", "Ann"]).err();
        assert_eq!(code("correct horse battery"), None);
        assert_eq!(code("tidy-marble-ocean-42"), None);
        for weak in [
            "short1!A",
            "password1234",
            "qwertyuiop123",
            "aaaaaaaaaaaaaaaa",
            "ann@example.com1",
        ] {
            let e = code(weak).unwrap_or_else(|| panic!("{weak} accepted"));
            assert_eq!(e.code, "WEAK_PASSWORD", "{weak}");
            assert_eq!(e.details.unwrap()["field"], "new_password");
        }
        assert!(
            code(&"correct horse battery ".repeat(12)).is_some(),
            "over 256"
        );
    }
}
