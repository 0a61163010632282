//! A small HTTP/1.1 keep-alive client over tokio's `TcpStream`: one request in flight per
//! connection, `Content-Length` and chunked bodies, no TLS, no redirects. It does only what
//! the benchmark needs, so that the load generator stays cheap next to the server.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, body and the `Set-Cookie` values (name=value parts only).
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub set_cookies: Vec<String>,
}

impl Response {
    /// The body as text, shortened, for error messages.
    pub fn excerpt(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.chars().take(200).collect()
    }

    /// A cookie set by this response, by name.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find_map(|c| c.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    }
}

/// One keep-alive connection; reconnects lazily after an error or `Connection: close`.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    req: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            host: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            req: Vec::with_capacity(1024),
        }
    }

    /// Sends one request and reads its response. `body` is sent as JSON. A `Host` in
    /// `headers` replaces the default (the address), for a proxy that routes by name.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        use std::io::Write;
        self.req.clear();
        let r = &mut self.req;
        write!(r, "{method} {path} HTTP/1.1\r\n")?;
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            write!(r, "Host: {}\r\n", self.host)?;
        }
        for (k, v) in headers {
            write!(r, "{k}: {v}\r\n")?;
        }
        match body {
            Some(b) => write!(
                r,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )?,
            None if method == "GET" => r.extend_from_slice(b"\r\n"),
            None => r.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        }
        if let Some(b) = body {
            r.extend_from_slice(b);
        }
        let res = self.round_trip().await;
        if res.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        res
    }

    async fn round_trip(&mut self) -> io::Result<Response> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(bad("no stream"));
        };
        stream.write_all(&self.req).await?;
        let (res, close) = read_response(stream, &mut self.buf).await?;
        if close {
            self.stream = None;
        }
        Ok(res)
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Decodes a complete chunked body starting at `buf[start..]`: Some((body, end)) or None when
/// more bytes are needed.
fn dechunk(buf: &[u8], start: usize) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut pos = start;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            let Some(end) = find(&buf[pos..], b"\r\n") else {
                return Ok(None);
            };
            return Ok(Some((body, pos + end + 2)));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(Response, bool)> {
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        fill(stream, buf).await?;
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut len: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut set_cookies = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(v.parse().map_err(|_| bad("content-length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if k.eq_ignore_ascii_case("set-cookie") {
            set_cookies.push(v.split(';').next().unwrap_or("").to_string());
        }
    }
    let body_start = head_end + 4;
    let (body, end) = if chunked {
        loop {
            if let Some(done) = dechunk(buf, body_start)? {
                break done;
            }
            fill(stream, buf).await?;
        }
    } else {
        let n = len.unwrap_or(0);
        while buf.len() < body_start + n {
            fill(stream, buf).await?;
        }
        (buf[body_start..body_start + n].to_vec(), body_start + n)
    };
    buf.drain(..end);
    Ok((
        Response {
            status,
            body,
            set_cookies,
        },
        close,
    ))
}
