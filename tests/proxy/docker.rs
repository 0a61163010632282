//! A fake Docker Engine API for Traefik's docker provider, so that the labels in
//! deploy/proxy/traefik-docker-compose.yml are what Traefik reads, without a Docker daemon.
//!
//! What Traefik 3.6.15 asks (pkg/provider/docker, with github.com/docker/docker/client
//! v28.5.2 and API-version negotiation): `HEAD /_ping` (the `Api-Version` header picks the
//! `/v1.xx` prefix), `GET /version`, `GET /containers/json?all=1`, `GET /containers/{id}/json`
//! for each, then `GET /events` (held open) while `watch` is on, its default.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::{free_port, swap, wait_port, Proc};

/// The API version the fake daemon speaks (Docker 28.5).
const API: &str = "1.51";

/// One service of a docker-compose file.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    pub labels: Vec<String>,
}

/// The committed compose file's services, with slugbase, the upstream and the domain of this
/// test substituted as `render` does for the other files. Every container is on 127.0.0.1
/// here, so the Docker DNS name in the middleware's address becomes an address too.
pub fn compose(slug: u16, upstream: u16) -> Vec<Service> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/proxy/traefik-docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("read traefik-docker-compose.yml");
    let text = swap(
        &text,
        "http://slugbase:8000/",
        &format!("http://127.0.0.1:{slug}/"),
    );
    let text = swap(&text, "server.port=8000", &format!("server.port={slug}"));
    let text = swap(
        &text,
        "server.port=3000",
        &format!("server.port={upstream}"),
    );
    let text = swap(&text, "app.home.example", "app.home.test");
    parse(&text.replace("home.example", "home.test"))
}

/// Traefik run as the compose file's `traefik` service, reading the fake Docker API.
pub struct DockerTraefik {
    /// The `web` entrypoint (plain http, redirecting).
    pub web: u16,
    /// The `websecure` entrypoint, which the routers serve.
    pub websecure: u16,
    pub api: FakeDocker,
    _proc: Proc,
}

/// Starts the fake Docker API with the compose file's containers, then Traefik with its
/// `command:` on loopback ports, without TLS: ACME needs the internet and the tests' client
/// speaks plain HTTP, so websecure serves HTTP here.
pub fn start_traefik(traefik: &Path, dir: &Path, slug: u16, upstream: u16) -> DockerTraefik {
    let services = compose(slug, upstream);
    let command = &services
        .iter()
        .find(|s| s.name == "traefik")
        .expect("traefik service")
        .command;
    let network = command
        .iter()
        .find_map(|f| f.strip_prefix("--providers.docker.network="))
        .expect("--providers.docker.network");
    let api = FakeDocker::start(dir, &services, network);
    let (web, websecure) = (free_port(), free_port());
    let flags = command.join("\n");
    let flags = swap(
        &flags,
        "web.address=:80",
        &format!("web.address=127.0.0.1:{web}"),
    );
    let flags = swap(
        &flags,
        "websecure.address=:443",
        &format!("websecure.address=127.0.0.1:{websecure}"),
    );
    let tls = [
        "--entrypoints.websecure.http.tls.",
        "--certificatesresolvers.",
    ];
    assert!(tls.iter().all(|t| flags.contains(t)), "{flags}");
    let mut c = Command::new(traefik);
    c.args(
        flags
            .lines()
            .filter(|f| !tls.iter().any(|t| f.starts_with(t))),
    )
    .arg(format!(
        "--providers.docker.endpoint=unix://{}",
        api.socket.display()
    ))
    .args([
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ])
    .arg("--log.level=ERROR")
    // Traefik logs to stdout: its errors (a label it cannot decode) belong in the test output.
    .stdout(Stdio::inherit())
    .stderr(Stdio::inherit());
    // The Docker client reads these after the endpoint flag, and they would win.
    for var in [
        "DOCKER_HOST",
        "DOCKER_API_VERSION",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
    ] {
        c.env_remove(var);
    }
    let proc = Proc(c.spawn().expect("start traefik"));
    wait_port(websecure, "traefik");
    DockerTraefik {
        web,
        websecure,
        api,
        _proc: proc,
    }
}

/// Each service's `command:` and `labels:` block lists: the form the shipped file uses, which a
/// line-based reader handles without a YAML crate.
fn parse(text: &str) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    let (mut in_services, mut key) = (false, "");
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match line.len() - t.len() {
            0 => (in_services, key) = (t == "services:", ""),
            2 if in_services => {
                key = "";
                out.push(Service {
                    name: t.trim_end_matches(':').to_string(),
                    command: Vec::new(),
                    labels: Vec::new(),
                });
            }
            4 if in_services => key = t.strip_suffix(':').unwrap_or(""),
            _ => {
                let (Some(item), Some(s)) = (t.strip_prefix("- "), out.last_mut()) else {
                    continue;
                };
                // YAML: ` #` starts a comment; quotes are not part of the value.
                let item = item.split(" #").next().unwrap_or("").trim();
                let item = item.trim_matches(|c| c == '"' || c == '\'').to_string();
                match key {
                    "command" => s.command.push(item),
                    "labels" => s.labels.push(item),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The fake daemon on a unix socket (like /var/run/docker.sock), with every request it saw.
pub struct FakeDocker {
    pub socket: PathBuf,
    calls: Arc<Mutex<Vec<String>>>,
}

impl FakeDocker {
    /// Serves `services` as running containers, compose-named, on the `network` network with
    /// the address 127.0.0.1.
    pub fn start(dir: &Path, services: &[Service], network: &str) -> FakeDocker {
        let containers: Vec<Value> = services
            .iter()
            .enumerate()
            .map(|(i, s)| container(i, s, network))
            .collect();
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket).expect("bind docker.sock");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        std::thread::spawn(move || {
            let containers = Arc::new(containers);
            for conn in listener.incoming().flatten() {
                let (containers, seen) = (containers.clone(), seen.clone());
                std::thread::spawn(move || serve(conn, &containers, &seen));
            }
        });
        FakeDocker { socket, calls }
    }

    /// `METHOD /path` of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

/// A container as `GET /containers/{id}/json` describes it (the fields Traefik reads).
fn container(i: usize, s: &Service, network: &str) -> Value {
    let mut labels: BTreeMap<String, String> = s
        .labels
        .iter()
        .map(|l| l.split_once('=').expect("label is key=value"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // What docker compose adds; Traefik names default services after them.
    labels.insert("com.docker.compose.project".into(), "proxy".into());
    labels.insert("com.docker.compose.service".into(), s.name.clone());
    json!({
        "Id": format!("{:064x}", i + 1),
        "Name": format!("/proxy-{}-1", s.name),
        "State": {"Status": "running", "Running": true},
        "HostConfig": {"NetworkMode": network},
        "Config": {"Labels": labels},
        "NetworkSettings": {
            "Ports": {},
            "Networks": {network: {"NetworkID": format!("{:064x}", 99), "IPAddress": "127.0.0.1"}},
        },
    })
}

/// Answers one request (each answer closes the connection).
fn serve(conn: UnixStream, containers: &[Value], calls: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut header = String::new();
    while r.read_line(&mut header).unwrap_or(0) > 0 && !header.trim_end().is_empty() {
        header.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    calls
        .lock()
        .expect("calls")
        .push(format!("{method} {target}"));
    let path = target.split('?').next().unwrap_or("");
    // Versioned paths: /v1.51/containers/json and so on.
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
        None => path,
    };
    let found = |id: &str| containers.iter().find(|c| c["Id"] == id).cloned();
    let (status, body) = match (method, path) {
        ("HEAD" | "GET", "/_ping") => (200, Value::String("OK".into())),
        ("GET", "/version") => (
            200,
            json!({"Version": "28.5.2", "ApiVersion": API, "MinAPIVersion": "1.24",
                   "Os": "linux", "Arch": "amd64"}),
        ),
        ("GET", "/containers/json") => (200, list(containers)),
        ("GET", "/events") => return hold_events(conn),
        ("GET", p) => match p
            .strip_prefix("/containers/")
            .and_then(|p| p.strip_suffix("/json"))
            .and_then(found)
        {
            Some(c) => (200, c),
            None => unknown(method, target),
        },
        _ => unknown(method, target),
    };
    let text = match &body {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nApi-Version: {API}\r\nOstype: linux\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let mut w = conn;
    let _ = w.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = w.write_all(text.as_bytes());
    }
}

/// `GET /containers/json`: the summary, of which Traefik reads only `Id`.
fn list(containers: &[Value]) -> Value {
    containers
        .iter()
        .map(|c| {
            json!({"Id": c["Id"], "Names": [c["Name"]], "Labels": c["Config"]["Labels"],
                   "State": "running", "Status": "Up"})
        })
        .collect()
}

/// A request this fake does not know: said on stderr, so a Traefik upgrade that asks something
/// new shows up in the failing test's output.
fn unknown(method: &str, target: &str) -> (u16, Value) {
    eprintln!("fake Docker API: unhandled {method} {target}");
    (
        404,
        json!({"message": format!("fake Docker API: no {method} {target}")}),
    )
}

/// `GET /events`: a stream that stays open with nothing to report (no container starts or
/// stops during the test); ends when Traefik goes away.
fn hold_events(conn: UnixStream) {
    let mut w = conn;
    let head = format!(
        "HTTP/1.1 200 OK\r\nApi-Version: {API}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    if w.write_all(head.as_bytes()).is_ok() {
        let _ = w.read(&mut [0u8; 1]);
    }
}
