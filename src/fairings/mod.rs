//! Fairings: rate limiting, security headers and request logging.

pub mod headers;
pub mod rate_limit;
pub mod request_log;
