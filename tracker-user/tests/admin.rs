//! The admin listener: `/health` and the other answers it gives, the
//! `--admin` flag and `[admin] listen`, against the real binary.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::ready::{ready_addrs, start_until_ready};
use common::*;

/// Sends `request` raw and returns the whole answer (the server closes).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The tracker started with `args` (and no config file), once its
/// `ready:` line is out.
fn start(args: &[&str]) -> (Tracker, String) {
    let mut cmd = std::process::Command::new(bin_path());
    cmd.args(["--udp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET");
    start_until_ready(cmd)
}

#[test]
fn health_is_200_ok_once_ready_and_named_in_the_ready_line() {
    let (t, line) = start(&["--admin", "127.0.0.1:0"]);
    let admin = ready_addrs(&line, "admin http");
    assert_eq!(admin.len(), 1, "{line}");
    assert_eq!(admin[0].ip().to_string(), "127.0.0.1", "{line}");
    assert_ne!(admin[0].port(), 0, "{line}");
    let r = common::http::get(admin[0], "/health");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body, b"ok\n");
    // Admin is not a tracker port: the tracker's HTTP listener has no /health.
    assert_ne!(t.http_addr(), admin[0]);
}

#[test]
fn unknown_path_is_404_and_post_is_405() {
    let (_t, line) = start(&["--admin", "127.0.0.1:0"]);
    let admin = ready_addrs(&line, "admin http")[0];
    let r = common::http::get(admin, "/metricz");
    assert_eq!(r.status, 404);
    assert!(r.body_text().contains("/health"), "{}", r.body_text());

    let answer = raw(
        admin,
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("\r\nAllow: GET\r\n"), "{answer}");

    // Garbage and an endless header get an answer, not a hang or a crash.
    let answer = raw(admin, b"nonsense\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let mut huge = b"GET /health HTTP/1.1\r\nX: ".to_vec();
    huge.resize(8192, b'a');
    let answer = raw(admin, &huge);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    // Still serving after all that.
    assert_eq!(common::http::get(admin, "/health").status, 200);
}

#[test]
fn admin_flag_overrides_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.toml");
    // A port nobody could bind twice: if the file won, start-up would
    // show it in the ready line.
    std::fs::write(&path, "[admin]\nlisten = [\"127.0.0.1:1\"]\n").unwrap();
    let (_t, line) = start(&[
        "-c",
        path.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.2:0",
    ]);
    let admin = ready_addrs(&line, "admin http");
    let ips: Vec<String> = admin.iter().map(|a| a.ip().to_string()).collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2"], "{line}");
    assert!(admin.iter().all(|a| a.port() != 1), "{line}");
    for addr in admin {
        assert_eq!(common::http::get(addr, "/health").status, 200, "{addr}");
    }
}

#[test]
fn empty_listen_turns_the_admin_listener_off() {
    // The default, 127.0.0.1:6970, is the port to find empty: tests in
    // other binaries that use it do not run at the same time as this one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.toml");
    std::fs::write(&path, "[admin]\nlisten = []\n").unwrap();
    let (t, line) = start(&["-c", path.to_str().unwrap()]);
    assert!(!line.contains("admin"), "{line}");
    assert!(
        !t.stderr_text().contains("admin listening on"),
        "{}",
        t.stderr_text()
    );
    assert!(
        TcpStream::connect("127.0.0.1:6970").is_err(),
        "something listens on the default admin port"
    );
}

#[test]
fn the_harness_gives_each_tracker_its_own_admin_port() {
    let a = Tracker::builder().start();
    let b = Tracker::builder().start();
    assert_eq!(a.admin.len(), 1);
    assert_eq!(b.admin.len(), 1);
    assert_ne!(a.admin[0], b.admin[0]);
    for t in [&a, &b] {
        let ok = poll_until(Duration::from_secs(5), || {
            common::http::get(t.admin[0], "/health").status == 200
        });
        assert!(ok, "{}", t.stderr_text());
    }
}

#[test]
fn a_client_trickling_its_request_cannot_hold_the_port() {
    let (_t, line) = start(&["--admin", "127.0.0.1:0"]);
    let admin = ready_addrs(&line, "admin http")[0];
    let mut slow = TcpStream::connect(admin).unwrap();
    let trickle = std::thread::spawn(move || {
        // A byte every 200 ms, never finishing the head, for 3 s.
        for _ in 0..15 {
            if slow.write_all(b"G").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let r = common::http::get(admin, "/health");
    assert_eq!(r.status, 200);
    // The slow client gets 1 s in all, not 1 s per byte.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/health waited {:?} behind a slow client",
        started.elapsed()
    );
    trickle.join().unwrap();
}
