//! Clean shutdown: on SIGTERM (systemd's stop) or SIGINT (Ctrl-C) requests already in flight
//! complete, idle keep-alive connections do not hold the process, the connection pool
//! closes (SQLite checkpoints and removes its WAL file) and the process exits 0 in seconds.

mod ops_common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ops_common::*;

fn login_request(port: u16, email: &str) -> (String, String) {
    let body = format!(r#"{{"email":"{email}","password":"{PASSWORD}"}}"#);
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_0() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(3));
    inst.create_user("ann@example.com");
    let mut server = inst.start();
    let port = inst.port;

    // 1. A request whose body is still arriving when SIGTERM comes.
    let (head, body) = login_request(port, "ann@example.com");
    let mut slow = connect(port);
    slow.write_all(head.as_bytes()).expect("head");
    slow.write_all(&body.as_bytes()[..10])
        .expect("part of the body");

    // 2. Several sign-ins (argon2 work on the blocking pool) sent in full just before it.
    let n = 6;
    let barrier = Arc::new(Barrier::new(n + 1));
    let busy: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let (head, body) = login_request(port, "ann@example.com");
            thread::spawn(move || {
                let mut s = connect(port);
                s.write_all(format!("{head}{body}").as_bytes())
                    .expect("request");
                barrier.wait();
                read_response(&mut s)
            })
        })
        .collect();

    // 3. An idle keep-alive connection.
    let mut idle = connect(port);
    idle.write_all(
        format!("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
    .expect("keep-alive request");
    let mut buf = [0u8; 4096];
    let got = std::io::Read::read(&mut idle, &mut buf).expect("keep-alive response");
    assert!(buf[..got].starts_with(b"HTTP/1.1 200"));

    barrier.wait();
    // Let the server accept them all: a connection still in the kernel's backlog when the
    // listener closes is refused, not in flight.
    thread::sleep(Duration::from_millis(50));
    server.signal(libc::SIGTERM);
    let t = Instant::now();

    thread::sleep(Duration::from_millis(500));
    slow.write_all(&body.as_bytes()[10..])
        .expect("rest of the body");
    let r = read_response(&mut slow).expect("slow request answered");
    assert_eq!(r.status, 200, "slow request: {}", r.describe());
    assert!(
        Session::from_resp(&r).is_some(),
        "slow sign-in completed with a session"
    );
    for h in busy {
        let r = h
            .join()
            .expect("thread")
            .expect("in-flight sign-in answered");
        assert_eq!(r.status, 200, "in-flight sign-in: {}", r.describe());
    }

    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    let took = t.elapsed();
    eprintln!("SIGTERM to exit: {took:.2?} (including the 0.5 s slow body)");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let log = server.log_text();
    assert!(log.contains("slugbase stopped"), "{log}");
    // The pool closed every connection: SQLite checkpointed and removed the WAL.
    assert!(
        !inst.data_dir().join("slugbase.db-wal").exists(),
        "WAL left behind: pool not closed"
    );
    let (ok, text) = inst.check();
    assert!(ok, "{text}");
    // And the sessions made during shutdown were committed.
    let mut again = inst.start();
    let s = Session::from_resp(&r).expect("session");
    authenticates_as(&inst.api(), &s.cookie(), s.user_id).expect("session made during shutdown");
    again.signal(libc::SIGINT);
    let status = again
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGINT");
    assert!(status.success(), "SIGINT exit status {status:?}");
    drop(idle);
}

#[test]
fn sigterm_when_idle_exits_0_within_the_grace_period() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut inst = Instance::new(tmp.path(), key(4));
    let mut server = inst.start();
    server.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    eprintln!("idle SIGTERM to exit: {:.2?}", t.elapsed());
    assert!(status.success(), "{status:?}");
    // Rocket 0.5 looks once whether a connection task is still winding down, and if so
    // waits out the whole grace period (2 s by default) before it exits.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
