//! WebSocket protocol errors are answered with the close frame RFC 6455
//! names (1002 protocol error, 1007 invalid payload, 1009 too big) before
//! the connection closes. Frames are written as raw bytes after a real
//! handshake with the binary, and the answer is read as raw bytes too.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// A TCP stream past a successful WebSocket upgrade.
fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
    s
}

/// A client frame: FIN + `opcode`, masked unless `mask` is None.
fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

const MASK: Option<[u8; 4]> = Some([0x12, 0x34, 0x56, 0x78]);

/// Reads server frames until a close frame; returns its code and reason,
/// and checks that the connection then ends.
fn read_close(s: &mut TcpStream, what: &str) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Skip whole non-close frames (none are expected, but a pong is
        // harmless); stop at a close frame.
        let mut at = 0;
        while data.len() >= at + 2 {
            let (op, len) = (data[at] & 0x0f, usize::from(data[at + 1] & 0x7f));
            assert!(len < 126, "{what}: unexpected long server frame");
            if data.len() < at + 2 + len {
                break;
            }
            let payload = &data[at + 2..at + 2 + len];
            if op == 0x8 {
                assert!(len >= 2, "{what}: close frame without a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                let mut rest = [0u8; 16];
                match s.read(&mut rest) {
                    Ok(0) => {}
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                    other => panic!("{what}: not closed after the close frame: {other:?}"),
                }
                return (code, reason);
            }
            at += 2 + len;
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("{what}: closed without a close frame (got {data:?})"),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{what}: no close frame ({e}; got {data:?})"),
        }
    }
}

#[test]
fn protocol_errors_get_the_close_code_rfc_6455_names() {
    let t = Tracker::with_config("[ws]\nmax_message_size = 1024\n");
    let addr = t.http_addr();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 in a text frame",
            frame(0x1, b"{\"action\":\"\xff\xfe\"}", MASK),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [
                {
                    let mut f = frame(0x1, b"ok \xe2", MASK);
                    f[0] &= 0x7f; // not final
                    f
                },
                frame(0x0, b"\x28 bad", MASK),
            ]
            .concat(),
            1007,
        ),
        ("reserved data opcode", frame(0x3, b"x", MASK), 1002),
        ("reserved control opcode", frame(0xb, b"", MASK), 1002),
        ("unmasked client frame", frame(0x1, b"{}", None), 1002),
        (
            "ping longer than 125 bytes",
            frame(0x9, &[7; 126], MASK),
            1002,
        ),
        (
            "reserved bits set",
            {
                let mut f = frame(0x1, b"{}", MASK);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("continuation without a start", frame(0x0, b"x", MASK), 1002),
        (
            "message over max_message_size",
            frame(0x1, &[b' '; 2000], MASK),
            1009,
        ),
        (
            "fragments adding up over max_message_size",
            [
                {
                    let mut f = frame(0x1, &[b' '; 800], MASK);
                    f[0] &= 0x7f;
                    f
                },
                frame(0x0, &[b' '; 800], MASK),
            ]
            .concat(),
            1009,
        ),
    ];
    for (what, bytes, want) in cases {
        let mut s = upgraded(addr);
        s.write_all(&bytes).unwrap();
        let (code, reason) = read_close(&mut s, what);
        assert_eq!(code, want, "{what}: close code (reason {reason:?})");
    }

    // The tracker still serves WebSocket clients afterwards.
    let mut s = upgraded(addr);
    s.write_all(&frame(0x9, b"hi", MASK)).unwrap();
    let mut pong = [0u8; 4];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(pong, [0x8a, 2, b'h', b'i']);
}
