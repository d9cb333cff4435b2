//! Test harness: real backends on 127.0.0.1:0 (plain std threads speaking HTTP/1.1), the real
//! gateway started on its own thread on 127.0.0.1:0, and a raw-socket client. No mocks.
#![allow(dead_code)]

pub mod fault;
pub mod jwt;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single test exchange may take before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// A request as a test backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a test backend answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Delay before answering (a slow backend is the behaviour under test, not synchronisation).
    pub delay: Duration,
}

impl Reply {
    pub fn json(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(mut self, s: u16) -> Reply {
        self.status = s;
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
    pub fn header(mut self, n: &str, v: &str) -> Reply {
        self.headers.push((n.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A real HTTP/1.1 backend with keep-alive, recording what it receives.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections open right now, and the most ever open at once.
    pub open: Arc<AtomicUsize>,
    pub max_open: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

impl Backend {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (open, max_open, connections) = (Arc::default(), Arc::default(), Arc::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let b = Backend {
            addr,
            seen: seen.clone(),
            open: Arc::clone(&open),
            max_open: Arc::clone(&max_open),
            connections: Arc::clone(&connections),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, handler, open, max_open) = (seen.clone(), handler.clone(), open.clone(), max_open.clone());
                connections.fetch_add(1, Ordering::SeqCst);
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                max_open.fetch_max(now, Ordering::SeqCst);
                std::thread::spawn(move || {
                    serve_backend(stream, &seen, &*handler);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        b
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_backend(mut stream: TcpStream, seen: &Mutex<Vec<Seen>>, handler: &Handler) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head(&mut stream, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (method, target) = (
            first.next().unwrap_or_default().to_string(),
            first.next().unwrap_or_default().to_string(),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end + 4);
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let req = Seen {
            method,
            target,
            headers,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        let reply = handler(&req);
        if !reply.delay.is_zero() {
            std::thread::sleep(reply.delay);
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (n, v) in &reply.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        if stream.write_all(&bytes).is_err() {
            return;
        }
    }
}

fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An address nothing listens on (bound, then closed).
pub fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Starts the real gateway on its own thread on 127.0.0.1:0 with `config` (JSON text).
pub fn gateway(config: &str) -> SocketAddr {
    gateway_with(config, gatelet::Options::default())
}

pub fn gateway_with(config: &str, options: gatelet::Options) -> SocketAddr {
    let config = match gatelet::config::parse("test.json", config) {
        Ok(c) => c,
        Err(errors) => panic!(
            "test config invalid: {}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
        ),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || gatelet::run(listener, config, options, std::future::pending()));
    addr
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// The statuses of every complete response in `raw`, in order, and how many bytes were left
/// over (an incomplete or unparsable tail).
pub fn statuses(mut raw: &[u8]) -> (Vec<u16>, usize) {
    let mut out = Vec::new();
    while let Some((r, used)) = parse_response(raw) {
        out.push(r.status);
        raw = &raw[used..];
    }
    (out, raw.len())
}

/// Parses one response off the front of `buf`; `None` while incomplete. Returns the rest.
pub fn parse_response(buf: &[u8]) -> Option<(Response, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let start = head_end + 4;
    if let Some(len) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if buf.len() < start + len {
            return None;
        }
        return Some((
            Response {
                status,
                headers,
                body: buf[start..start + len].to_vec(),
            },
            start + len,
        ));
    }
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[at..line_end]).trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                if buf.len() < at + 2 {
                    return None;
                }
                return Some((Response { status, headers, body }, at + 2));
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
    }
    Some((
        Response {
            status,
            headers,
            body: Vec::new(),
        },
        start,
    ))
}

/// Connects with test timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Reads until the peer closes (or the test timeout); returns everything read and whether the
/// connection was closed by the peer.
pub fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// One request on a fresh connection (`Connection: close`); `extra` are raw header lines.
pub fn request(addr: SocketAddr, method: &str, target: &str, extra: &[&str], body: &[u8]) -> Response {
    let mut s = connect(addr);
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n");
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
    let (raw, _) = read_to_close(&mut s);
    parse_response(&raw)
        .unwrap_or_else(|| panic!("no response in {:?}", String::from_utf8_lossy(&raw)))
        .0
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[], b"")
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Connects to `addr` from the local address `from` (e.g. 127.0.0.2), with test timeouts.
pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &addr).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Sends `requests` (raw bytes each) on one keep-alive connection, `batch` at a time
/// pipelined, and returns the responses in order.
pub fn pipeline(s: &mut TcpStream, requests: impl Iterator<Item = Vec<u8>>, batch: usize) -> Vec<Response> {
    let mut out = Vec::new();
    let mut requests = requests.peekable();
    let mut chunk = vec![0u8; 64 * 1024];
    while requests.peek().is_some() {
        let mut wire = Vec::new();
        let mut sent = 0;
        for r in requests.by_ref().take(batch) {
            wire.extend_from_slice(&r);
            sent += 1;
        }
        s.write_all(&wire).unwrap();
        let mut buf = Vec::new();
        let mut got = 0;
        while got < sent {
            while let Some((r, used)) = parse_response(&buf) {
                buf.drain(..used);
                out.push(r);
                got += 1;
            }
            if got == sent {
                break;
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed after {} responses", out.len());
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    out
}
