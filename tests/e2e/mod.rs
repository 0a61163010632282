//! Helpers of the end-to-end browser test (`tests/e2e_browser.rs`).

pub mod harness;
pub mod webdriver;
