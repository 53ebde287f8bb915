//! Connection abuse limits of the HTTP/WebSocket listeners, against the
//! real binary: `http.first_byte_timeout` (silent connections, TLS
//! handshakes included) and `http.max_connections_per_ip`. "One host" and
//! "another host" are different loopback source addresses (127.0.0.x).

mod common;

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::tls;
use common::*;
use socket2::{Domain, Protocol, Socket, Type};

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    s.connect_timeout(&to.into(), Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect {from} -> {to}: {e}"));
    let s: TcpStream = s.into();
    s.set_nodelay(true).unwrap();
    s
}

fn http_from(from: Ipv4Addr, to: SocketAddr) -> HttpConn {
    let s = connect_from(from, to);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    HttpConn::new(s, &to.to_string())
}

/// Waits (at most `limit` after `since`) for the server to close `s`
/// without sending a byte, and says when it did, counted from `since`.
fn closed_after(s: &mut TcpStream, since: Instant, limit: Duration, what: &str) -> Duration {
    let left = limit
        .saturating_sub(since.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => since.elapsed(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => since.elapsed(),
        Ok(n) => panic!("{what}: got {:?} instead of a close", &buf[..n]),
        Err(e) => panic!("{what}: not closed within {limit:?} ({e})"),
    }
}

const HOST_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const HOST_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

#[test]
fn silent_connections_are_closed_after_first_byte_timeout_while_clients_are_served() {
    let t = Tracker::with_config("[http]\nworkers = 1\nfirst_byte_timeout = 1\n");
    let addr = t.http_addr();
    let hash = random_hash();

    let start = Instant::now();
    let mut silent: Vec<TcpStream> = (0..8).map(|_| connect_from(HOST_A, addr)).collect();
    // A client that waits a little before its request is still in time;
    // once it has spoken, only the usual timeouts apply to it.
    let mut late = http_from(HOST_B, addr);
    thread::sleep(Duration::from_millis(400));
    parse_announce(&late.get(&HttpAnnounce::new(hash, 51001).target()));
    // Others are served while the silent ones wait.
    for port in 51002..51005 {
        let mut c = http_from(HOST_B, addr);
        parse_announce(&c.get(&HttpAnnounce::new(hash, port).target()));
    }

    for (i, s) in silent.iter_mut().enumerate() {
        let after = closed_after(s, start, Duration::from_secs(4), &format!("silent {i}"));
        assert!(
            after >= Duration::from_millis(900),
            "silent connection {i} closed after {after:?}, before the 1 s deadline"
        );
    }
    // The connection that spoke outlives the first-byte deadline (its
    // keep-alive timeout is the default 120 s).
    thread::sleep(Duration::from_millis(1600).saturating_sub(start.elapsed()));
    let r = parse_announce(&late.get(&HttpAnnounce::new(hash, 51001).target()));
    assert_eq!(r.incomplete, 4);
}

#[test]
fn one_host_beyond_max_connections_per_ip_is_refused_while_another_is_served() {
    let t = Tracker::with_config("[http]\nworkers = 1\nmax_connections_per_ip = 20\n");
    let addr = t.http_addr();
    let hash = random_hash();
    let target = |port: u16| HttpAnnounce::new(hash, port).target();

    let mut held: Vec<HttpConn> = (0..20u16)
        .map(|i| {
            let mut c = http_from(HOST_A, addr);
            parse_announce(&c.get(&target(52000 + i)));
            c
        })
        .collect();

    // Beyond the cap: closed at once (the first-byte deadline is 5 s).
    for i in 0..10 {
        let start = Instant::now();
        let mut s = connect_from(HOST_A, addr);
        let after = closed_after(&mut s, start, Duration::from_secs(2), "over the cap");
        assert!(
            after < Duration::from_secs(2),
            "connection {i} over the cap"
        );
    }

    // Another host is served meanwhile, and the held ones still are.
    for port in 52100..52105u16 {
        let mut c = http_from(HOST_B, addr);
        parse_announce(&c.get(&target(port)));
    }
    for (i, c) in held.iter_mut().enumerate() {
        parse_announce(&c.get(&target(52000 + i as u16)));
    }

    // Closing some gives their places back to the host.
    held.truncate(15);
    let served = poll_until(Duration::from_secs(5), || {
        let mut c = http_from(HOST_A, addr);
        c.send(&c.request_bytes(&target(52200), &[]));
        c.try_response().is_ok()
    });
    assert!(served, "the host was not served again after closing some");
}

#[test]
fn the_per_ip_cap_is_shared_out_over_the_socket_workers() {
    // 2 workers, cap 20: each worker allows 10 from one host.
    let t = Tracker::with_config("[http]\nworkers = 2\nmax_connections_per_ip = 20\n");
    let addr = t.http_addr();
    let hash = random_hash();
    let mut served = Vec::new();
    let mut refused = 0;
    // 60 tries: enough that each worker sees more than its 10 (the kernel
    // spreads them by a hash of the source port).
    for i in 0..60u16 {
        let mut c = http_from(HOST_A, addr);
        c.set_read_timeout(Duration::from_secs(2));
        c.send(&c.request_bytes(&HttpAnnounce::new(hash, 53000 + i).target(), &[]));
        match c.try_response() {
            Ok(r) => {
                parse_announce(&r);
                served.push(c);
            }
            Err(NoResponse::Closed(got)) if got.is_empty() => refused += 1,
            Err(e) => panic!("connection {i}: neither served nor refused: {e:?}"),
        }
    }
    assert_eq!(served.len(), 20, "{refused} refused");
    assert_eq!(refused, 40);
    parse_announce(&http_from(HOST_B, addr).get(&HttpAnnounce::new(hash, 53100).target()));
}

#[test]
fn behind_a_proxy_the_per_ip_cap_does_not_apply_to_the_proxy() {
    let t = Tracker::with_config(
        "[http]\nworkers = 1\nmax_connections_per_ip = 5\nreal_ip_header = \"X-Forwarded-For\"\n",
    );
    let addr = t.http_addr();
    let hash = random_hash();
    // The proxy (127.0.0.2) holds 15 connections for 15 clients.
    let mut held: Vec<HttpConn> = (0..15u8)
        .map(|i| {
            let mut c = http_from(HOST_A, addr);
            let xff = format!("X-Forwarded-For: 198.51.100.{}", i + 1);
            parse_announce(&c.get_with(&HttpAnnounce::new(hash, 6881).target(), &[&xff]));
            c
        })
        .collect();
    let r = parse_announce(&held[0].get_with(
        &HttpAnnounce::new(hash, 6881).numwant(50).target(),
        &["X-Forwarded-For: 198.51.100.1"],
    ));
    assert_eq!(
        r.incomplete, 15,
        "every client behind the proxy is in the swarm"
    );
    // The first-byte deadline still applies to connections from the proxy.
    let t2 = Tracker::with_config(
        "[http]\nworkers = 1\nfirst_byte_timeout = 1\nreal_ip_header = \"X-Forwarded-For\"\n",
    );
    let start = Instant::now();
    let mut s = connect_from(HOST_A, t2.http_addr());
    let after = closed_after(&mut s, start, Duration::from_secs(4), "silent via proxy");
    assert!(after >= Duration::from_millis(900));
}

#[test]
fn a_tls_client_must_handshake_and_speak_within_first_byte_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "a");
    let t = Tracker::with_config(&format!(
        "[http]\nworkers = 1\nfirst_byte_timeout = 1\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    ));
    let addr = t.https_addr();
    let config = tls::client_config(&[&cert.der]);

    // Connects and never starts a handshake.
    let start = Instant::now();
    let mut silent = connect_from(HOST_A, addr);
    // Completes the handshake, then says nothing.
    let mut mute = tls::connect(addr, config.clone());
    // Served meanwhile, and afterwards past the deadline.
    let mut c = tls::https(addr, config);
    let hash = random_hash();
    parse_announce(&c.get(&HttpAnnounce::new(hash, 54001).target()));

    let after = closed_after(&mut silent, start, Duration::from_secs(4), "no handshake");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    mute.sock
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let mut buf = [0u8; 64];
    match mute.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
            ) => {}
        other => panic!("a mute TLS connection was not closed: {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(900));
    let r = parse_announce(&c.get(&HttpAnnounce::new(hash, 54002).target()));
    assert_eq!(r.incomplete, 2);
}
