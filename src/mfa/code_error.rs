//! What a refused code answers: the machine code and details that let a client say exactly
//! what went wrong (a wrong code, a replayed one, one from a device with a wrong clock) and
//! how many attempts are left. Pure, so that the wording rules are unit-tested.

use rocket::http::Status;
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFailure {
    /// Not the code of any acceptable step (or an unknown or spent backup code).
    Wrong,
    /// A TOTP of a step this account already used (RFC 6238 §5.2): the next code works.
    Replay,
    /// A TOTP of a step a few minutes off: the device's clock is wrong.
    Drift,
}

/// Wrong codes that cancel a pending sign-in.
pub const PENDING_MAX_FAILURES: i64 = 5;

/// Wrong codes in a row after which the answer tells how many attempts are left.
pub const SHOW_ATTEMPTS_FROM: i64 = 3;

/// The error for a refused code. `wrong` is the number of wrong codes so far in the scope that
/// runs out first and `attempts_left` how many remain there; the count is shown from the
/// [`SHOW_ATTEMPTS_FROM`]th wrong code on, or once two or fewer remain.
pub fn code_error(
    status: Status,
    failure: CodeFailure,
    wrong: i64,
    attempts_left: i64,
) -> ApiError {
    let (code, message) = match failure {
        CodeFailure::Replay => (
            "CODE_ALREADY_USED",
            "This code was already used. Wait for the next code in your app",
        ),
        CodeFailure::Wrong | CodeFailure::Drift => ("INVALID_CODE", "The code is not valid"),
    };
    let mut details = Map::new();
    details.insert("field".into(), json!("code"));
    if failure == CodeFailure::Drift {
        details.insert("reason".into(), json!("clock_drift"));
    }
    if wrong >= SHOW_ATTEMPTS_FROM || attempts_left <= 2 {
        details.insert("attempts_left".into(), json!(attempts_left.max(0)));
    }
    ApiError::new(status, code, message).with_details(Value::Object(details))
}

/// 401 `MFA_PENDING_LOCKED`: the sign-in was cancelled after too many wrong codes.
pub fn pending_locked() -> ApiError {
    ApiError::new(
        Status::Unauthorized,
        "MFA_PENDING_LOCKED",
        "Too many wrong codes: this sign-in was cancelled. Sign in again with your password",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_has_its_own_code() {
        let e = code_error(Status::Unauthorized, CodeFailure::Replay, 1, 4);
        assert_eq!(
            (e.status, e.code),
            (Status::Unauthorized, "CODE_ALREADY_USED")
        );
        let e = code_error(Status::BadRequest, CodeFailure::Wrong, 1, 9);
        assert_eq!(e.code, "INVALID_CODE");
        assert_eq!(e.body()["details"], json!({"field": "code"}));
    }

    #[test]
    fn drift_is_an_invalid_code_with_a_reason() {
        let e = code_error(Status::BadRequest, CodeFailure::Drift, 1, 9);
        assert_eq!(e.code, "INVALID_CODE");
        assert_eq!(e.body()["details"]["reason"], "clock_drift");
    }

    #[test]
    fn attempts_left_from_the_third_wrong_code() {
        let left = |wrong, left| {
            code_error(Status::Unauthorized, CodeFailure::Wrong, wrong, left).body()["details"]
                ["attempts_left"]
                .clone()
        };
        assert_eq!(left(1, 4), Value::Null);
        assert_eq!(left(2, 3), Value::Null);
        assert_eq!(left(3, 2), json!(2));
        assert_eq!(left(4, 1), json!(1));
        assert_eq!(left(1, 2), json!(2));
        assert_eq!(left(9, -1), json!(0));
    }
}
