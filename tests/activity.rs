//! Last-activity bookkeeping: authenticated reads do not write; the recorded activity reaches
//! the database on the next flush, at most once a minute per credential.

mod common;

use common::*;
use rocket::http::Status;

fn db_value(s: &TestServer, sql: &str, id: i64) -> Option<i64> {
    let conn = s.app().db.get().expect("conn");
    conn.query_row(sql, [id], |r| r.get(0)).expect("row")
}

fn flush(s: &TestServer) {
    let db = s.app().db.clone();
    rocket::async_test(async move { db.flush_activity().await });
}

#[test]
fn reads_record_activity_in_memory_and_flush_writes_it() {
    let s = server();
    let uid = s.user("ann@example.com");
    let (sid, jwt) = s.login("ann@example.com");
    let session: i64 = s
        .app()
        .db
        .get()
        .unwrap()
        .query_row("SELECT id FROM sessions WHERE user_id = ?1", [uid], |r| {
            r.get(0)
        })
        .unwrap();
    let seen = "SELECT last_seen_at FROM sessions WHERE id = ?1";
    assert_eq!(db_value(&s, seen, session), Some(T0));

    // Within the minute: nothing to record.
    s.clock.advance(30);
    assert_eq!(
        s.get_auth("/api/auth/mfa/status", &jwt).status(),
        Status::Ok
    );
    assert!(s.app().db.activity.is_empty());

    // A minute later the read is recorded, but not written by the read itself.
    s.clock.advance(40);
    let res = s
        .client
        .get("/api/auth/mfa/status")
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(s.app().db.activity.len(), 1);
    assert_eq!(db_value(&s, seen, session), Some(T0));

    flush(&s);
    assert!(s.app().db.activity.is_empty());
    assert_eq!(db_value(&s, seen, session), Some(T0 + 70));
}

#[test]
fn token_use_is_written_by_the_flush_and_never_goes_back_in_time() {
    let s = server();
    s.user("bob@example.com");
    let (_, jwt) = s.login("bob@example.com");
    let res = s.post_auth(
        "/api/tokens",
        &jwt,
        Some(&serde_json::json!({"name": "cron"})),
    );
    assert_eq!(res.status(), Status::Created);
    let created = json_of(res);
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    let used = "SELECT last_used_at FROM api_tokens WHERE id = ?1";

    s.clock.advance(100);
    assert_eq!(
        s.get_auth("/api/auth/mfa/status", &token).status(),
        Status::Ok
    );
    assert_eq!(
        db_value(&s, used, id),
        None,
        "the read itself did not write"
    );
    flush(&s);
    assert_eq!(db_value(&s, used, id), Some(T0 + 100));

    // A later value written first is not overwritten by an older one.
    s.app()
        .db
        .get()
        .unwrap()
        .execute(
            "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2",
            [T0 + 500, id],
        )
        .unwrap();
    s.app().db.activity.token(id, T0 + 200);
    flush(&s);
    assert_eq!(db_value(&s, used, id), Some(T0 + 500));
}
