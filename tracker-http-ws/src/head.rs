//! HTTP/1.x request heads as the tracker needs them: what httparse finds,
//! boiled down to the few facts that decide the answer (the target, keep-
//! alive, a WebSocket upgrade, the client address behind a proxy), and the
//! status lines and headers of the answers. No I/O, no allocation except
//! the accept key of an upgrade.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use crate::buf::OutBuf;

/// Headers one request may carry; browsers send about 15 with an upgrade.
pub(crate) const MAX_HEADERS: usize = 64;

/// A complete request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Bytes of the head, up to and including the blank line.
    pub len: usize,
    pub method: Method,
    /// Where the request target sits in the buffer that was parsed.
    pub target: Range<usize>,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// The request announces a body (`Content-Length` above 0 or any
    /// `Transfer-Encoding`), which no tracker request has.
    pub has_body: bool,
    pub upgrade: Upgrade,
    pub real_ip: RealIp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// A plain request.
    None,
    /// A valid WebSocket upgrade; the `Sec-WebSocket-Accept` to answer with.
    WebSocket { accept: String },
    /// `Upgrade: websocket` with something missing or wrong.
    Invalid(&'static str),
}

/// The client address named by the configured proxy header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RealIp {
    /// No header is configured: the socket's peer is the client.
    NotConfigured,
    Missing,
    Invalid,
    Ip(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Complete(Head),
    /// More bytes are needed.
    Partial,
    /// Not HTTP/1.x; the reason is fit for a failure reason.
    Invalid(&'static str),
}

/// Parses the request head at the start of `buf`. `real_ip_header` is the
/// lower-case name of the proxy's client-address header, if any.
pub(crate) fn parse_head(buf: &[u8], real_ip_header: Option<&str>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid("too many headers"),
        Err(httparse::Error::Version) => return Parsed::Invalid("unsupported HTTP version"),
        Err(_) => return Parsed::Invalid("malformed HTTP request"),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid("malformed HTTP request");
    };
    let target = offset_in(buf, path.as_bytes());
    let http10 = version == 0;

    let mut close = false;
    let mut keep_alive_token = false;
    let mut upgrade_websocket = false;
    let mut ws_key: Option<&[u8]> = None;
    let mut ws_version: Option<&[u8]> = None;
    let mut has_body = false;
    let mut real_ip_value: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            ws_key = Some(trim(h.value));
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            ws_version = Some(trim(h.value));
        } else if name.eq_ignore_ascii_case("content-length") {
            // Anything but a plain 0 (garbage included) means a body we
            // cannot skip safely.
            has_body |= trim(h.value).iter().any(|&b| b != b'0');
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
        if let Some(wanted) = real_ip_header {
            // The last header of that name wins: a proxy appends its own.
            if name.eq_ignore_ascii_case(wanted) {
                real_ip_value = Some(h.value);
            }
        }
    }
    let method = if method == "GET" {
        Method::Get
    } else {
        Method::Other
    };
    let upgrade = if !upgrade_websocket {
        Upgrade::None
    } else if method != Method::Get || http10 {
        Upgrade::Invalid("a WebSocket upgrade must be an HTTP/1.1 GET")
    } else if ws_version != Some(&b"13"[..]) {
        Upgrade::Invalid("unsupported WebSocket version (13 is supported)")
    } else {
        match ws_key.filter(|k| !k.is_empty()) {
            None => Upgrade::Invalid("missing Sec-WebSocket-Key"),
            // `Connection: Upgrade` is required by RFC 6455, but nothing is
            // gained by refusing a client that forgets it.
            Some(key) => Upgrade::WebSocket {
                accept: tungstenite::handshake::derive_accept_key(key),
            },
        }
    };
    let keep_alive = if http10 {
        keep_alive_token && !close
    } else {
        !close
    };
    let real_ip = match real_ip_header {
        None => RealIp::NotConfigured,
        Some(_) => match real_ip_value {
            None => RealIp::Missing,
            Some(value) => last_address(value).map_or(RealIp::Invalid, RealIp::Ip),
        },
    };
    Parsed::Complete(Head {
        len,
        method,
        target,
        http10,
        keep_alive,
        has_body,
        upgrade,
        real_ip,
    })
}

/// Where `part` (a sub-slice of `whole`) sits in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    if start <= whole.len() && part.len() <= whole.len() - start {
        start..start + part.len()
    } else {
        0..0
    }
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim)
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// The last address of a comma-separated list such as `X-Forwarded-For`
/// (`client, proxy1, proxy2`): the one the trusted proxy appended itself.
/// Accepts a bare address, `[v6]`, `[v6]:port` and `v4:port`. IPv4-mapped
/// IPv6 addresses count as IPv4.
pub(crate) fn last_address(value: &[u8]) -> Option<IpAddr> {
    let last = value.rsplit(|&b| b == b',').next().map(trim)?;
    let text = std::str::from_utf8(last).ok()?;
    let ip = if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else if let Ok(addr) = text.parse::<SocketAddr>() {
        addr.ip()
    } else {
        text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?
    };
    Some(ip.to_canonical())
}

/// Status lines the server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
}

impl Status {
    fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
        }
    }
}

/// Appends a whole response: status, `Content-Type: text/plain`,
/// `Content-Length`, the `Connection` header the client needs to know
/// whether the connection stays, and `body`. False if `out` overflowed.
pub(crate) fn write_response(
    out: &mut OutBuf,
    status: Status,
    keep_alive: bool,
    http10: bool,
    body: &[u8],
) -> bool {
    let mut head = [0u8; 160];
    let mut cursor = std::io::Cursor::new(&mut head[..]);
    let connection: &[u8] = match (keep_alive, http10) {
        (false, _) => b"Connection: close\r\n",
        // 1.0 closes by default, so say that it does not.
        (true, true) => b"Connection: keep-alive\r\n",
        (true, false) => b"",
    };
    // Cannot fail: the longest head is well under the buffer.
    let _ = cursor.write_all(status.line());
    let _ = cursor.write_all(b"Content-Type: text/plain\r\n");
    let _ = write!(cursor, "Content-Length: {}\r\n", body.len());
    let _ = cursor.write_all(connection);
    let _ = cursor.write_all(b"\r\n");
    let len = (cursor.position() as usize).min(head.len());
    out.push_all(&[&head[..len], body])
}

/// Appends the `101 Switching Protocols` answer to a WebSocket upgrade.
pub(crate) fn write_switching_protocols(out: &mut OutBuf, accept: &str) -> bool {
    out.push_all(&[
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
        accept.as_bytes(),
        b"\r\n\r\n",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Head {
        complete_with(raw, None)
    }

    fn complete_with(raw: &[u8], real_ip: Option<&str>) -> Head {
        match parse_head(raw, real_ip) {
            Parsed::Complete(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_get() {
        let raw = b"GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        let h = complete(raw);
        assert_eq!(h.len, raw.len() - b"GET /next".len());
        assert_eq!(&raw[h.target.clone()], b"/announce?a=1");
        assert_eq!(h.method, Method::Get);
        assert!(!h.http10 && h.keep_alive && !h.has_body);
        assert_eq!(h.upgrade, Upgrade::None);
        assert_eq!(h.real_ip, RealIp::NotConfigured);
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse_head(b"", None), Parsed::Partial);
        assert_eq!(parse_head(b"GET /announce HT", None), Parsed::Partial);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", None),
            Parsed::Partial
        );
        assert!(matches!(
            parse_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", None),
            Parsed::Invalid(_)
        ));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many, None), Parsed::Invalid("too many headers"));
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n",
                true,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(complete(raw).keep_alive, *want, "{}", raw.escape_ascii());
        }
        assert!(complete(b"GET / HTTP/1.0\r\n\r\n").http10);
    }

    #[test]
    fn bodies_and_methods() {
        assert!(!complete(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
        assert!(complete(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
        assert!(complete(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").has_body);
        assert!(complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
        assert_eq!(complete(b"HEAD / HTTP/1.1\r\n\r\n").method, Method::Other);
    }

    #[test]
    fn websocket_upgrade() {
        // The example of RFC 6455 section 1.3.
        let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(
            complete(raw).upgrade,
            Upgrade::WebSocket {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
            }
        );
        let no_key = b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(matches!(complete(no_key).upgrade, Upgrade::Invalid(_)));
        let old = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: abc\r\n\
            Sec-WebSocket-Version: 8\r\n\r\n";
        assert!(matches!(complete(old).upgrade, Upgrade::Invalid(_)));
        let post = b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: abc\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        assert!(matches!(complete(post).upgrade, Upgrade::Invalid(_)));
        let h2c = b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(complete(h2c).upgrade, Upgrade::None);
    }

    #[test]
    fn real_ip_header() {
        let h = |raw: &[u8]| complete_with(raw, Some("x-forwarded-for")).real_ip;
        let ip = |s: &str| RealIp::Ip(s.parse().unwrap());
        assert_eq!(h(b"GET / HTTP/1.1\r\n\r\n"), RealIp::Missing);
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"),
            ip("1.2.3.4")
        );
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nx-forwarded-for: 6.6.6.6, 10.0.0.1 , 203.0.113.9\r\n\r\n"),
            ip("203.0.113.9"),
            "the last address is the proxy's own"
        );
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 2001:db8::1\r\n\r\n"),
            ip("2001:db8::1"),
            "the last header wins"
        );
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nX-Forwarded-For: ::ffff:192.0.2.1\r\n\r\n"),
            ip("192.0.2.1"),
            "mapped IPv6 is IPv4"
        );
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, unknown\r\n\r\n"),
            RealIp::Invalid
        );
        assert_eq!(
            h(b"GET / HTTP/1.1\r\nX-Forwarded-For: \r\n\r\n"),
            RealIp::Invalid
        );
        assert_eq!(
            last_address(b"[2001:db8::2]:443"),
            "2001:db8::2".parse().ok()
        );
        assert_eq!(last_address(b"[2001:db8::2]"), "2001:db8::2".parse().ok());
        assert_eq!(last_address(b"192.0.2.7:1234"), "192.0.2.7".parse().ok());
        assert_eq!(last_address(b"\xff\xfe"), None);
    }

    #[test]
    fn responses() {
        let mut out = OutBuf::new(usize::MAX);
        assert!(write_response(&mut out, Status::Ok, true, false, b"de"));
        assert_eq!(
            out.data(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nde"
        );
        out.consume(out.len());
        write_response(&mut out, Status::NotFound, false, false, b"");
        assert_eq!(
            out.data(),
            &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..]
        );
        out.consume(out.len());
        write_response(&mut out, Status::Ok, true, true, b"");
        assert!(out
            .data()
            .windows(24)
            .any(|w| w == b"Connection: keep-alive\r\n"));
        out.consume(out.len());
        write_switching_protocols(&mut out, "abc=");
        assert_eq!(
            out.data(),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\n"
        );
    }
}
