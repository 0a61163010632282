//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use std::sync::{Condvar, Mutex, OnceLock};

use crate::error::ApiError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_LEN: usize = 1024;

/// Caps concurrent argon2 runs at the number of cores. Each run holds 19 MiB; without a cap a
/// burst of logins ran one per blocking thread and the allocator kept gigabytes (5.8 GiB RSS
/// measured at 64 concurrent logins), with no gain in throughput on a 2-core machine.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

static GATE: OnceLock<Gate> = OnceLock::new();

fn lock(m: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_gate<T>(f: impl FnOnce() -> T) -> T {
    let gate = GATE.get_or_init(|| Gate {
        free: Mutex::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        cv: Condvar::new(),
    });
    {
        let mut free = lock(&gate.free);
        while *free == 0 {
            free = gate.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }
    let out = f();
    *lock(&gate.free) += 1;
    gate.cv.notify_one();
    out
}

fn argon2() -> Argon2<'static> {
    // 19 MiB, 2 passes, 1 lane: the OWASP minimum for argon2id. These values are valid
    // constants, so Params::new cannot fail; the fallback is never taken.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password's length.
pub fn validate(password: &str, field: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(ApiError::validation(
            field,
            format!("Password must be at least {MIN_LEN} characters"),
        ));
    }
    if password.len() > MAX_LEN {
        return Err(ApiError::validation(
            field,
            format!("Password must be at most {MAX_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Hashes a password to a PHC string. Slow by design: call off the async workers.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    with_gate(|| {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("password hashing failed: {e}"))
    })
}

/// Verifies a password against a PHC string; false for any malformed hash or over-long input.
/// Slow by design and gated like [`hash`]: call off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => with_gate(|| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
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
    fn validate_lengths() {
        assert!(validate("1234567", "password").is_err());
        assert!(validate("12345678", "password").is_ok());
        assert!(validate(&"x".repeat(1025), "password").is_err());
    }
}
