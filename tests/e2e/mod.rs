//! Helpers of the end-to-end browser test (`tests/e2e_browser.rs`).

pub mod a11y;
pub mod harness;
pub mod webdriver;
