//! Programs from Debian that some tests drive (Chromium, Prometheus,
//! promtool), and a plain HTTP/1.0 GET for talking to them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether this is a CI run, where a missing program is a failure.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `path` if it exists. Under CI a missing one fails the test (CI installs
/// it, so its absence is a broken CI, not a reason to pass); elsewhere the
/// test says what it skipped and returns `None`.
pub fn program(path: &str, debian_package: &str, test: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(PathBuf::from(path));
    }
    assert!(
        !ci(),
        "{test}: {path} is missing: install the Debian package {debian_package} \
         (.ci/run must apt-get install it)"
    );
    eprintln!("{test}: SKIPPED, {path} is missing (apt-get install {debian_package})");
    None
}

/// The workspace's target directory (where a person finds the files a
/// test leaves to be looked at).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_path_buf()
}

/// A loopback port free right now, for a program that must be told its
/// port rather than report one.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// `GET target` over HTTP/1.0, so the server closes after a body without
/// chunking (Go servers chunk larger HTTP/1.1 answers): the status and the
/// body, or `None` if nothing answers yet.
pub fn get10(addr: SocketAddr, target: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// `s` percent-encoded for a query string value.
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
