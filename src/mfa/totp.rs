//! RFC 6238 TOTP verification as a pure function of the secret, the code and the time.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// The time step, seconds.
pub const PERIOD: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;

/// The outcome of checking a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The code matches this time step, which is newer than the last accepted one.
    Accepted(i64),
    /// The code matches a step at or before the last accepted one (RFC 6238 §5.2).
    Replay,
    /// The code matches none of the acceptable steps.
    Invalid,
    /// The code matches a step further off than one but within [`DRIFT_STEPS`]: the
    /// device's clock is wrong. Refused like [`Check::Invalid`], but worth saying so.
    Drift,
}

/// How many steps either way a code still counts as "right code, wrong time" (5 minutes).
pub const DRIFT_STEPS: i64 = 10;

/// The time step holding Unix time `now`.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(PERIOD)
}

/// The code for a time step, with `digits` digits (6 in production; 8 for RFC vectors).
pub fn code_for_step(secret: &[u8], step: i64, digits: usize) -> String {
    let totp = TOTP::new_unchecked(Algorithm::SHA1, digits, 0, PERIOD as u64, secret.to_vec());
    totp.generate((step.max(0) * PERIOD) as u64)
}

/// Checks `code` (already stripped of separators) against the previous, current and next
/// step at `now`, in constant time, refusing any step at or before `last_step`.
pub fn verify(secret: &[u8], code: &str, now: i64, last_step: Option<i64>) -> Check {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Check::Invalid;
    }
    let current = step_of(now);
    let mut matched: Option<i64> = None;
    let mut drift = false;
    // Every candidate is computed and compared, so the time taken does not reveal which one hit.
    for step in current - DRIFT_STEPS..=current + DRIFT_STEPS {
        let expected = code_for_step(secret, step, DIGITS);
        let hit = bool::from(expected.as_bytes().ct_eq(code.as_bytes()));
        if (step - current).abs() <= 1 {
            if hit && matched.is_none() {
                matched = Some(step);
            }
        } else {
            drift |= hit;
        }
    }
    match matched {
        None if drift => Check::Drift,
        None => Check::Invalid,
        Some(step) if last_step.is_some_and(|last| step <= last) => Check::Replay,
        Some(step) => Check::Accepted(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let vectors = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(code_for_step(RFC_SECRET, step_of(t), 8), code, "T={t}");
            // The 6-digit code is the low six digits of the same truncation.
            assert_eq!(
                code_for_step(RFC_SECRET, step_of(t), 6),
                &code[2..],
                "T={t}"
            );
        }
    }

    #[test]
    fn verify_accepts_the_window_only() {
        let now = 1111111111;
        let code = |s| code_for_step(RFC_SECRET, s, 6);
        let cur = step_of(now);
        assert_eq!(
            verify(RFC_SECRET, &code(cur), now, None),
            Check::Accepted(cur)
        );
        assert_eq!(
            verify(RFC_SECRET, &code(cur - 1), now, None),
            Check::Accepted(cur - 1)
        );
        assert_eq!(
            verify(RFC_SECRET, &code(cur + 1), now, None),
            Check::Accepted(cur + 1)
        );
        assert_eq!(verify(RFC_SECRET, &code(cur - 2), now, None), Check::Drift);
        assert_eq!(verify(RFC_SECRET, &code(cur + 10), now, None), Check::Drift);
        assert_eq!(
            verify(RFC_SECRET, &code(cur + 11), now, None),
            Check::Invalid
        );
        assert_eq!(verify(RFC_SECRET, "12345", now, None), Check::Invalid);
        assert_eq!(verify(RFC_SECRET, "abcdef", now, None), Check::Invalid);
    }

    #[test]
    fn verify_refuses_replayed_and_older_steps() {
        let now = 1234567890;
        let cur = step_of(now);
        let code = |s| code_for_step(RFC_SECRET, s, 6);
        assert_eq!(
            verify(RFC_SECRET, &code(cur), now, Some(cur)),
            Check::Replay
        );
        assert_eq!(
            verify(RFC_SECRET, &code(cur - 1), now, Some(cur)),
            Check::Replay
        );
        assert_eq!(
            verify(RFC_SECRET, &code(cur + 1), now, Some(cur)),
            Check::Accepted(cur + 1)
        );
    }
}
