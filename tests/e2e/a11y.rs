//! Accessibility checks of the browser test: axe-core (npm, pinned in `tests/e2e/package.json`
//! and its lock file; `.ci/run` runs `npm ci` there) injected through WebDriver, and a
//! contrast check of field borders and placeholders from computed styles.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::harness::{repo_dir, Shots};
use super::webdriver::Session;

/// axe-core's script, or None (after a loud message) when `npm ci` has not run in
/// `tests/e2e`; under CI a missing axe fails the test.
pub fn axe_source() -> Option<String> {
    let path: PathBuf = repo_dir().join("tests/e2e/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(src) => Some(src),
        Err(e) => {
            let msg = format!(
                "{} not readable ({e}); run `npm ci` in tests/e2e",
                path.display()
            );
            if std::env::var_os("CI").is_some() {
                panic!("e2e accessibility check: {msg}");
            }
            eprintln!("\n************************************************************");
            eprintln!("SKIPPED: the axe-core check did NOT run: {msg}.");
            eprintln!("************************************************************\n");
            None
        }
    }
}

/// Runs axe-core on the page as it is now, in light and dark, and fails on any violation or
/// on an `aria-prohibited-attr` result that needs review.
pub fn check_screen(b: &Session, axe: &str, screen: &str) {
    for scheme in ["light", "dark"] {
        Shots::emulate(b, scheme, 1280, 800, false);
        let loaded = b.exec("return typeof window.axe === 'object';", json!([]));
        if loaded.as_bool() != Some(true) {
            // Run as a function body through WebDriver (not subject to the page's CSP);
            // axe's UMD wrapper then sets window.axe.
            b.exec(&format!("{axe}\n;return true;"), json!([]));
        }
        let result = b.exec(
            "return window.axe.run(document, { resultTypes: ['violations', 'incomplete'] })
               .then(r => ({
                 violations: r.violations.map(v => ({ id: v.id, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary) })),
                 incomplete: r.incomplete.map(v => ({ id: v.id,
                   nodes: v.nodes.map(n => n.target.join(' ')) })),
               }));",
            json!([]),
        );
        let violations = result["violations"].as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "axe: {screen} ({scheme}) has violations:\n{}",
            serde_json::to_string_pretty(&violations).unwrap_or_default()
        );
        let prohibited: Vec<&Value> = result["incomplete"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|v| v["id"] == "aria-prohibited-attr")
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            prohibited.is_empty(),
            "axe: {screen} ({scheme}) needs review for aria-prohibited-attr: {prohibited:?}"
        );
    }
    Shots::reset(b);
}

/// Contrast ratios, from computed styles, of the border of `field` against its background
/// and of the placeholder of `placeholder_field` against its background, in light and dark:
/// `[(scheme, border, placeholder)]`.
pub fn field_contrast(
    b: &Session,
    field: &str,
    placeholder_field: &str,
) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for scheme in ["light", "dark"] {
        Shots::emulate(b, scheme, 1280, 800, false);
        let v = b.exec(
            "const rgb = s => { const m = s.match(/[\\d.]+/g).map(Number);
                                return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
             const over = (fg, bg) => ({ r: fg.r * fg.a + bg.r * (1 - fg.a),
                                         g: fg.g * fg.a + bg.g * (1 - fg.a),
                                         b: fg.b * fg.a + bg.b * (1 - fg.a), a: 1 });
             const lum = c => { const f = x => { x /= 255; return x <= 0.04045 ? x / 12.92
                                  : Math.pow((x + 0.055) / 1.055, 2.4); };
                                return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
             const ratio = (a, b) => { const [h, l] = [lum(a), lum(b)].sort((x, y) => y - x);
                                       return (h + 0.05) / (l + 0.05); };
             const field = document.querySelector(arguments[0]);
             const ph = document.querySelector(arguments[1]);
             const cs = getComputedStyle(field);
             const bg = rgb(cs.backgroundColor);
             const border = ratio(over(rgb(cs.borderTopColor), bg), bg);
             const phs = getComputedStyle(ph, '::placeholder');
             const phbg = rgb(getComputedStyle(ph).backgroundColor);
             const fg = rgb(phs.color);
             fg.a *= Number(phs.opacity || 1);
             const placeholder = ratio(over(fg, phbg), phbg);
             return [border, placeholder];",
            json!([field, placeholder_field]),
        );
        let border = v[0].as_f64().unwrap_or(0.0);
        let placeholder = v[1].as_f64().unwrap_or(0.0);
        out.push((scheme.to_string(), border, placeholder));
    }
    Shots::reset(b);
    out
}
