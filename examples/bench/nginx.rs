//! The rows through Debian's real nginx (issue 15): one static file behind the committed
//! `auth_request` server block (deploy/proxy/nginx.conf) with a signed-in browser's cookies,
//! and the same file through a plain proxying block, so that the two rows differ only by
//! the `auth_request` round trip to slugbase.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::Conn;
use super::load::{self, Op, Outcome, Workload};
use super::seed::User;
use super::server::{self, free_port};
use super::{focus, log, Ctx, Site, TURNS};

/// Row: the file behind `auth_request`, with a valid session.
pub const PROTECTED: &str = "nginx auth_request, static file";
/// Row: the same file through a proxying block without `auth_request`.
pub const PLAIN: &str = "nginx proxy only, static file";

/// The host the requests name; `server::FORWARD_AUTH_RULES` allows it with `one_factor`.
const APP_HOST: &str = "app.bench.test";
/// The file both rows fetch (from the static server behind both blocks).
const FILE_PATH: &str = "/index.html";
const FILE_BYTES: usize = 2048;

/// nginx: `$SLUGBASE_NGINX` (as tests/forward_auth_proxies.rs), then PATH, then /usr/sbin.
pub fn binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("SLUGBASE_NGINX").map(PathBuf::from);
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect())
        .unwrap_or_default();
    from_env
        .into_iter()
        .chain(on_path)
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
}

/// A running nginx (master and workers) with its temp dir; shut down on drop.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// The committed server block, in front of the static server.
    pub protected: SocketAddr,
    /// The plain proxying block, in front of the same static server.
    pub plain: SocketAddr,
    /// What `FILE_PATH` holds.
    pub file: Arc<Vec<u8>>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The committed server block with slugbase, the upstream, the listen address and the host
/// substituted, as tests/proxy/mod.rs `render` and `nginx_config` do.
fn committed_block(slug: SocketAddr, upstream: u16, port: u16) -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/proxy/nginx.conf");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for needle in [
        "127.0.0.1:8000",
        "127.0.0.1:3000",
        "app.home.example",
        "listen 80;",
    ] {
        if !text.contains(needle) {
            return Err(format!("{} no longer contains {needle:?}", path.display()));
        }
    }
    Ok(text
        .replace("127.0.0.1:8000", &slug.to_string())
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .replace("app.home.example", APP_HOST)
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};")))
}

/// A page of exactly `FILE_BYTES`: the size of a small HTML document or icon.
fn page() -> Vec<u8> {
    let mut p = b"<!doctype html>\n<title>app</title>\n".to_vec();
    let line = b"<p>static content behind slugbase forward-auth</p>\n";
    while p.len() + line.len() <= FILE_BYTES {
        p.extend_from_slice(line);
    }
    p.resize(FILE_BYTES, b'\n');
    p
}

impl Nginx {
    /// Starts `bin` with three servers on free loopback ports: the static file, the plain
    /// proxy to it and the committed block (asking `slug`) in front of it.
    pub fn start(bin: &Path, slug: SocketAddr) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("slugbase-bench-nginx-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().display().to_string();
        let file = page();
        fs::create_dir(dir.path().join("www")).map_err(|e| e.to_string())?;
        fs::write(dir.path().join("www/index.html"), &file).map_err(|e| e.to_string())?;
        let (fs_port, plain, protected) = (free_port()?, free_port()?, free_port()?);
        fs::write(
            dir.path().join("site.conf"),
            committed_block(slug, fs_port, protected)?,
        )
        .map_err(|e| e.to_string())?;
        // worker_processes auto: Debian's default, and what a deployment runs. It is also the
        // stricter choice for the ratio: with one worker, nginx alone would cap the plain row
        // at one core, while the protected row's auth work runs mostly in slugbase.
        // The plain block sets the committed block's proxy headers, less the four Remote-*
        // ones that only exist after an auth_request.
        let main = format!(
            "{user}worker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\n  \
             server {{\n    listen 127.0.0.1:{fs_port};\n    root {d}/www;\n  }}\n\n  \
             server {{\n    listen 127.0.0.1:{plain};\n    server_name {APP_HOST};\n    location / {{\n      \
             proxy_set_header Host $http_host;\n      \
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      \
             proxy_set_header X-Forwarded-Proto $scheme;\n      \
             proxy_pass http://127.0.0.1:{fs_port};\n    }}\n  }}\n\n  \
             include {d}/site.conf;\n}}\n",
            user = if is_root() { "user root;\n" } else { "" },
        );
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, main).map_err(|e| e.to_string())?;
        let stderr = fs::File::create(dir.path().join("stderr.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .args(["-p", &d, "-e", &format!("{d}/error.log"), "-c"])
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let t0 = Instant::now();
        for port in [fs_port, plain, protected] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                let tail = || {
                    ["stderr.log", "error.log"]
                        .iter()
                        .map(|f| fs::read_to_string(dir.path().join(f)).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(format!("nginx exited ({st}): {}", tail()));
                }
                if t0.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("nginx did not listen on {port}: {}", tail()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Ok(Nginx {
            child,
            dir,
            protected: addr(protected),
            plain: addr(plain),
            file: Arc::new(file),
        })
    }

    /// The worker processes' pids.
    pub fn workers(&self) -> Vec<u32> {
        let pid = self.child.id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Nginx {
    /// SIGTERM, so that the master stops its workers: killed outright, it would leave them
    /// running (and listening) as orphans.
    fn drop(&mut self) {
        let pid = self.child.id();
        let workers = self.workers();
        // SAFETY: kill(2) on the master we started, not yet reaped (we hold `child`).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for w in workers {
            // SAFETY: kill(2) on a worker of our master, which has not exited yet, so the pid
            // still names that worker.
            unsafe {
                libc::kill(w as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /index.html` as a signed-in browser sends it to the app: a random seeded user's
/// `token` and `slugbase.sid` cookies, `Host: app.bench.test:<port>`. Every answer must be
/// 200 with the file.
pub struct StaticFile {
    users: Arc<Vec<User>>,
    host: String,
    file: Arc<Vec<u8>>,
}

impl StaticFile {
    fn new(users: Arc<Vec<User>>, port: u16, file: Arc<Vec<u8>>) -> StaticFile {
        StaticFile {
            users,
            host: format!("{APP_HOST}:{port}"),
            file,
        }
    }
}

fn cookies(u: &User) -> String {
    format!("token={}; slugbase.sid={}", u.jwt, u.sid)
}

impl Workload for StaticFile {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, rng: &mut u64) -> Op {
        let u = &self.users[(load::xorshift(rng) % self.users.len() as u64) as usize];
        let cookie = cookies(u);
        let headers = [
            ("Host", self.host.as_str()),
            ("Cookie", cookie.as_str()),
            ("Accept", "text/html"),
        ];
        let r = load::expect(
            c.request("GET", FILE_PATH, &headers, None).await,
            "static file",
            200,
        );
        load::done(r.and_then(|r| {
            if r.body == *self.file {
                Ok(())
            } else {
                Err(format!("static file: another body: {}", r.excerpt()))
            }
        }))
    }
}

/// Before any row: the plain block serves the file, and the protected one refuses a request
/// without a session or with a wrong one (so the row cannot pass by skipping auth) and
/// serves the file to a signed-in browser.
fn check(ctx: &mut Ctx<'_>, ng: &Nginx, u: &User) -> Result<(), String> {
    let (protected, plain, file) = (ng.protected, ng.plain, ng.file.clone());
    let good = cookies(u);
    ctx.rt.block_on(async move {
        let cases: [(SocketAddr, &str, &str, u16); 5] = [
            (plain, "", "text/html", 200),
            (protected, "", "application/json", 401),
            (protected, "", "text/html", 302),
            (
                protected,
                "slugbase.sid=not-a-session",
                "application/json",
                401,
            ),
            (protected, &good, "text/html", 200),
        ];
        for (addr, cookie, accept, want) in cases {
            let host = format!("{APP_HOST}:{}", addr.port());
            let mut h = vec![("Host", host.as_str()), ("Accept", accept)];
            if !cookie.is_empty() {
                h.push(("Cookie", cookie));
            }
            let which = if addr == plain { PLAIN } else { PROTECTED };
            let r = Conn::new(addr)
                .request("GET", FILE_PATH, &h, None)
                .await
                .map_err(|e| format!("{which}: {e}"))?;
            if r.status != want || (want == 200 && r.body != *file) {
                return Err(format!(
                    "{which} (cookie {:?}, Accept {accept}): HTTP {} instead of {want}: {}",
                    cookie.split('=').next().unwrap_or(""),
                    r.status,
                    r.excerpt()
                ));
            }
        }
        Ok(())
    })
}

/// Both rows at every connection count, on the smallest scale's server, in turns (protected,
/// plain, plain, protected; [`TURNS`] times) like the cross-scale rows. Without nginx they
/// are skipped, loudly, and their target says so.
pub(super) fn rows(ctx: &mut Ctx<'_>, sites: &mut [Site]) -> Result<(), String> {
    let Some(bin) = binary() else {
        let why =
            "nginx not found: nginx rows skipped (apt-get install nginx, or set SLUGBASE_NGINX)";
        eprintln!("\n************************************************************");
        log(why);
        eprintln!("************************************************************\n");
        ctx.rep.notes.push(why.to_string());
        ctx.rep.nginx_skipped = Some("nginx not found".into());
        return Ok(());
    };
    let Some(i) = (0..sites.len()).min_by_key(|&i| sites[i].scale) else {
        return Ok(());
    };
    let s = focus(sites, i);
    let ng = Nginx::start(&bin, s.srv.addr)?;
    log(&format!(
        "nginx {} (pid {}): protected {}, plain {}, conf in {}",
        bin.display(),
        ng.child.id(),
        ng.protected,
        ng.plain,
        ng.dir.path().display()
    ));
    check(ctx, &ng, &s.users[0])?;
    let rows = [(PROTECTED, ng.protected), (PLAIN, ng.plain)];
    let ws: Vec<Arc<StaticFile>> = rows
        .iter()
        .map(|(_, a)| Arc::new(StaticFile::new(s.users.clone(), a.port(), ng.file.clone())))
        .collect();
    let part = ctx.opts.measure / (2 * TURNS);
    // The load client watches one process (slugbase); nginx's share of "other CPU" is
    // read here, over whole windows (warm-ups included), so a busy machine can be told apart.
    let workers = ng.workers();
    let nginx_cpu = || workers.iter().map(|&p| server::cpu_secs(p)).sum::<f64>();
    let mut shares = Vec::new();
    for c in ctx.opts.conns.clone() {
        let mut outs = vec![Outcome::default(); rows.len()];
        let mut used = [(0.0, 0.0); 2];
        for _ in 0..TURNS {
            for k in [0, 1, 1, 0] {
                let (cpu0, t0) = (nginx_cpu(), Instant::now());
                let o = ctx.window_at(rows[k].1, s.srv.pid, c, ws[k].clone(), part);
                used[k].0 += nginx_cpu() - cpu0;
                used[k].1 += t0.elapsed().as_secs_f64();
                outs[k].merge(o);
            }
        }
        for (((name, _), o), (cpu, secs)) in rows.iter().zip(outs).zip(used) {
            ctx.record(s.scale, name, c, o);
            shares.push(format!("{name} {c} conns {:.0}%", 100.0 * cpu / secs));
        }
    }
    ctx.rep.notes.push(format!(
        "nginx rows: server CPU is slugbase's alone; nginx's {} workers are in other CPU, \
         with (warm-ups included) {}",
        workers.len(),
        shares.join(", ")
    ));
    Ok(())
}
