//! Fairings: security headers and request logging. They sit on top: they may use `auth`, and
//! nothing below them imports a fairing.

pub mod headers;
pub mod request_log;
