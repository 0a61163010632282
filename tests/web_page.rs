//! The embedded page as HTTP serves it: the HTML 404 page (with `/api` kept JSON), version
//! stamped assets with immutable caching, gzip for clients that accept it, the `/login/code`
//! path, and the session probe `GET /api/auth/session` in each state.

mod common;

use common::*;
use rocket::http::{Accept, ContentType, Header, Status};
use serde_json::json;

fn body_text(res: rocket::local::blocking::LocalResponse<'_>) -> String {
    res.into_string().unwrap_or_default()
}

/// The `src` of every `<script>` of a page, in document order.
fn script_urls(html: &str) -> Vec<String> {
    html.split("<script src=\"")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| *c != '"').collect())
        .collect()
}

/// The page's scripts, by the unstamped URL (`/assets/app-core.js`), in the order they run.
fn scripts(s: &TestServer) -> Vec<String> {
    let html = body_text(s.client.get("/").dispatch());
    script_urls(&html)
        .into_iter()
        .map(|u| u.split('?').next().unwrap().to_string())
        .collect()
}

#[test]
fn unknown_page_paths_get_an_html_404_and_api_stays_json() {
    let s = server();
    let res = s.client.get("/settings").dispatch();
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    let html = body_text(res);
    assert!(html.contains("Page not found"), "{html}");
    assert!(html.contains("href=\"/\""), "a link home: {html}");
    let res = s.client.get("/assets/nope.js").dispatch();
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    assert_error(
        s.client.get("/api/settings").dispatch(),
        Status::NotFound,
        "NOT_FOUND",
    );
    // A page path routed for GET only still answers 405 (JSON, with Allow).
    let res = s.client.delete("/login").dispatch();
    assert_eq!(res.status(), Status::MethodNotAllowed);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
}

#[test]
fn page_paths_serve_the_page_uncached_with_stamped_assets() {
    let s = server();
    for path in ["/", "/login", "/login/code", "/account", "/setup"] {
        let res = s.client.get(path).dispatch();
        assert_eq!(res.status(), Status::Ok, "{path}");
        assert_eq!(res.headers().get_one("Cache-Control"), Some("no-cache"));
        let html = body_text(res);
        let urls = script_urls(&html);
        assert!(urls.len() > 1, "{path}: {html}");
        for url in &urls {
            assert!(url.starts_with("/assets/app-"), "{path}: {url}");
            assert!(url.contains(".js?v="), "{path}: {url}");
        }
        // They share one namespace: the core makes it, the start script uses every part.
        assert!(urls[0].starts_with("/assets/app-core.js?v="), "{urls:?}");
        assert!(
            urls.last().unwrap().starts_with("/assets/app-start.js?v="),
            "{urls:?}"
        );
    }
    let html = body_text(s.client.get("/").dispatch());
    for url in script_urls(&html) {
        let res = s.client.get(url.clone()).dispatch();
        assert_eq!(res.status(), Status::Ok, "{url}");
        assert_eq!(res.content_type(), Some(ContentType::JavaScript), "{url}");
        assert_eq!(
            res.headers().get_one("Cache-Control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        // An old or missing stamp is not cached for long.
        let bare = url.split('?').next().unwrap();
        for stale in [format!("{bare}?v=000000000000"), bare.to_string()] {
            let res = s.client.get(stale.clone()).dispatch();
            assert_eq!(res.status(), Status::Ok, "{stale}");
            assert_eq!(
                res.headers().get_one("Cache-Control"),
                Some("public, max-age=3600"),
                "{stale}"
            );
        }
    }
}

#[test]
fn assets_are_gzipped_for_clients_that_accept_it() {
    let s = server();
    for url in scripts(&s) {
        let plain = s.client.get(url.clone()).dispatch();
        assert_eq!(plain.headers().get_one("Content-Encoding"), None, "{url}");
        assert_eq!(
            plain.headers().get_one("Vary"),
            Some("Accept-Encoding"),
            "{url}"
        );
        let plain = plain.into_bytes().unwrap();
        let res = s
            .client
            .get(url.clone())
            .header(Header::new("Accept-Encoding", "gzip, deflate, br"))
            .dispatch();
        assert_eq!(
            res.headers().get_one("Content-Encoding"),
            Some("gzip"),
            "{url}"
        );
        assert_eq!(res.content_type(), Some(ContentType::JavaScript), "{url}");
        let gz = res.into_bytes().unwrap();
        assert!(
            gz.len() * 2 < plain.len(),
            "{url}: {} vs {}",
            gz.len(),
            plain.len()
        );
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "{url}: a gzip stream");
    }
    let res = s
        .client
        .get("/assets/app.css")
        .header(Header::new("Accept-Encoding", "gzip;q=0, br"))
        .dispatch();
    assert_eq!(res.headers().get_one("Content-Encoding"), None);
}

#[test]
fn session_probe_answers_200_in_every_state() {
    let s = server();
    let probe = |cookies: &[(&str, &str)]| {
        let mut req = s.client.get("/api/auth/session").header(Accept::JSON);
        for (n, v) in cookies {
            req = req.cookie(cookie(n, v));
        }
        let res = req.dispatch();
        assert_eq!(res.status(), Status::Ok);
        json_of(res)
    };
    assert_eq!(probe(&[]), json!({"signed_in": false}));
    assert_eq!(probe(&[("token", "garbage")]), json!({"signed_in": false}));
    let (_, jwt) = s.bearer_for("ann@example.com");
    let me = probe(&[("token", &jwt)]);
    assert_eq!(me["signed_in"], true);
    assert_eq!(me["user"]["email"], "ann@example.com");
    // With MFA on, the password step leaves a pending sign-in the probe names.
    s.enroll(&jwt);
    let pending = s.password_step("ann@example.com");
    let st = probe(&[("slugbase.mfa_pending", &pending)]);
    assert_eq!(st["signed_in"], false);
    assert_eq!(st["mfa_pending"]["email"], "ann@example.com");
    // Five wrong codes cancel it; the probe then says nothing is pending.
    for _ in 0..5 {
        verify(&s, &pending, "000000");
    }
    assert_eq!(
        probe(&[("slugbase.mfa_pending", &pending)]),
        json!({"signed_in": false})
    );
    // Expired after five minutes.
    s.next_step();
    let pending = s.password_step("ann@example.com");
    s.clock.advance(301);
    assert_eq!(
        probe(&[("slugbase.mfa_pending", &pending)]),
        json!({"signed_in": false})
    );
}
