//! HTTPS and WSS with a self-signed certificate, and certificate reload
//! without dropping connections.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tracker_http_ws::{ListenerKind, SharedTls, TlsPaths};
use tracker_metrics::{Action, Protocol};

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

struct Cert {
    der: CertificateDer<'static>,
}

/// Writes a fresh self-signed certificate for "localhost" to `paths`.
fn write_cert(paths: &TlsPaths) -> Cert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&paths.certificate, c.cert.pem()).unwrap();
    std::fs::write(&paths.private_key, c.signing_key.serialize_pem()).unwrap();
    Cert {
        der: c.cert.der().clone(),
    }
}

fn client(trusted: &Cert, tls12_only: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    Arc::new(
        builder
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream {
    let conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, connect(addr))
}

fn https_scrape(stream: &mut TlsStream, buf: &mut Vec<u8>) -> HttpResponse {
    let target = scrape_target(&[[1; 20]]);
    write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    read_response(stream, buf)
}

struct Setup {
    _dir: tempfile::TempDir,
    paths: TlsPaths,
    cert: Cert,
    tls: Arc<SharedTls>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let paths = TlsPaths {
        certificate: dir.path().join("fullchain.pem"),
        private_key: dir.path().join("privkey.pem"),
    };
    let cert = write_cert(&paths);
    let tls = Arc::new(SharedTls::load(&paths).unwrap());
    Setup {
        _dir: dir,
        paths,
        cert,
        tls,
    }
}

fn tls_tracker(s: &Setup, kinds: &[ListenerKind]) -> Tracker {
    Tracker::start(Options {
        specs: kinds.iter().map(|&k| spec(k, true)).collect(),
        tls: Some(s.tls.clone()),
        ..Options::default()
    })
}

#[test]
fn https_announce_and_scrape() {
    let s = setup();
    let tracker = tls_tracker(&s, &[ListenerKind::Http]);
    for tls12 in [false, true] {
        let mut stream = tls_connect(tracker.addr(), client(&s.cert, tls12));
        let target = announce_target(&[1; 20], b"-TL0001-abcdefghijkl", 4321, "&compact=1&left=0");
        write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        stream.flush().unwrap();
        let mut buf = Vec::new();
        let r = read_response(&mut stream, &mut buf);
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with(b"d8:completei1e"), "{}", r.body_str());
        // Keep-alive over TLS.
        let r = https_scrape(&mut stream, &mut buf);
        assert!(r.body.starts_with(b"d5:filesd20:"), "{}", r.body_str());
    }
}

#[test]
fn wss_offer_and_answer() {
    let s = setup();
    let tracker = tls_tracker(&s, &[ListenerKind::WsOnly]);
    let url = "wss://localhost/announce";
    let connect_ws = || {
        let stream = tls_connect(tracker.addr(), client(&s.cert, false));
        tungstenite::client::client(url, stream).unwrap().0
    };
    let mut a = connect_ws();
    let mut b = connect_ws();
    let hash = bin(&[0xab; 20]);
    let (pa, pb, oid) = (bin(&[1; 20]), bin(&[2; 20]), bin(&[3; 20]));
    a.send(tungstenite::Message::text(format!(
        r#"{{"action":"announce","info_hash":{hash},"peer_id":{pa},"left":0}}"#
    )))
    .unwrap();
    assert_eq!(
        ws_recv(&mut a),
        format!(
            r#"{{"action":"announce","interval":120,"info_hash":{hash},"complete":1,"incomplete":0}}"#
        )
    );
    b.send(tungstenite::Message::text(format!(
        r#"{{"action":"announce","info_hash":{hash},"peer_id":{pb},"offers":[{{"offer_id":{oid},"offer":{{"sdp":"o"}}}}]}}"#
    )))
    .unwrap();
    ws_recv(&mut b);
    assert_eq!(
        ws_recv(&mut a),
        format!(
            r#"{{"action":"announce","info_hash":{hash},"peer_id":{pb},"offer_id":{oid},"offer":{{"sdp":"o"}}}}"#
        )
    );
    a.send(tungstenite::Message::text(format!(
        r#"{{"action":"announce","info_hash":{hash},"peer_id":{pa},"to_peer_id":{pb},"offer_id":{oid},"answer":{{"sdp":"a"}}}}"#
    )))
    .unwrap();
    assert_eq!(
        ws_recv(&mut b),
        format!(
            r#"{{"action":"announce","info_hash":{hash},"peer_id":{pa},"offer_id":{oid},"answer":{{"sdp":"a"}}}}"#
        )
    );
}

#[test]
fn reload_serves_the_new_certificate_and_keeps_connections() {
    let s = setup();
    let tracker = tls_tracker(&s, &[ListenerKind::Http]);
    let addr = tracker.addr();
    let mut old = tls_connect(addr, client(&s.cert, false));
    let mut old_buf = Vec::new();
    assert_eq!(https_scrape(&mut old, &mut old_buf).status, 200);

    let new_cert = write_cert(&s.paths);
    s.tls.reload().unwrap();

    // New connections get the new certificate...
    let mut fresh = tls_connect(addr, client(&new_cert, false));
    assert_eq!(https_scrape(&mut fresh, &mut Vec::new()).status, 200);
    let mut stale = tls_connect(addr, client(&s.cert, false));
    let target = scrape_target(&[[1; 20]]);
    let failed = write!(stale, "GET {target} HTTP/1.1\r\n\r\n")
        .and_then(|()| stale.flush())
        .and_then(|()| std::io::Read::read(&mut stale, &mut [0u8; 16]));
    assert!(
        failed.is_err(),
        "a client trusting only the old certificate is refused"
    );

    // ...and the one opened before carries on.
    assert_eq!(https_scrape(&mut old, &mut old_buf).status, 200);

    // A bad file keeps the current certificate.
    std::fs::write(&s.paths.certificate, "not a certificate").unwrap();
    let e = s.tls.reload().unwrap_err().to_string();
    assert!(e.contains("fullchain.pem"), "{e}");
    let mut again = tls_connect(addr, client(&new_cert, false));
    assert_eq!(https_scrape(&mut again, &mut Vec::new()).status, 200);
}

#[test]
fn plain_text_on_a_tls_port_is_dropped() {
    let s = setup();
    let tracker = tls_tracker(&s, &[ListenerKind::Http]);
    let mut plain = connect(tracker.addr());
    plain
        .write_all(b"GET /scrape HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(5)));
    // And the worker still serves TLS.
    let mut stream = tls_connect(tracker.addr(), client(&s.cert, false));
    assert_eq!(https_scrape(&mut stream, &mut Vec::new()).status, 200);
    let m = tracker.snapshot();
    assert_eq!(m.connections.tls_handshake_failures, 1);
    let https = Protocol::Https.index();
    assert_eq!(m.requests[https][Action::Scrape.index()], 1);
    assert_eq!(m.responses[https][Action::Scrape.index()], 1);
    assert_eq!(
        m.requests[Protocol::Http.index()][Action::Scrape.index()],
        0
    );
}

#[test]
fn a_stalled_tls_handshake_is_dropped_after_the_request_timeout() {
    let s = setup();
    let mut o = Options {
        specs: vec![spec(ListenerKind::Http, true)],
        tls: Some(s.tls.clone()),
        ..Options::default()
    };
    o.settings.request_timeout = Duration::from_secs(1);
    o.settings.keep_alive_timeout = Duration::from_secs(60);
    let tracker = Tracker::start(o);
    // The first bytes of a ClientHello record, and then nothing more.
    let mut stalled = connect(tracker.addr());
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut stalled, Duration::from_secs(10)),
        "a half-sent handshake must not hold a connection for the idle timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut stream = tls_connect(tracker.addr(), client(&s.cert, false));
    assert_eq!(https_scrape(&mut stream, &mut Vec::new()).status, 200);
}
