//! Readiness: the `ready:` line naming every address served, whatever the
//! log level, and the systemd notifications (READY=1 with STATUS=,
//! WATCHDOG=1 while running, STOPPING=1 at shutdown) on a NOTIFY_SOCKET the
//! test binds itself.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ready::{assert_serves_udp_http_ws, ready_addrs, ready_entries, start_until_ready};
use common::*;

/// The binary with `config` in `dir` and `--log-level LEVEL`.
fn command_at(dir: &std::path::Path, config: &str, level: &str) -> Command {
    let path = dir.join("tracker.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(bin_path());
    // Port 0: parallel tests must not fight over the default 6970.
    cmd.arg("-c")
        .arg(&path)
        .args(["--log-level", level, "--admin", "127.0.0.1:0"]);
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    cmd
}

fn command(dir: &std::path::Path, config: &str) -> Command {
    command_at(dir, config, "error")
}

const LISTEN: &str = "[udp]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\n\
     [http]\nlisten = [\"127.0.0.1:0\"]\n\
     [ws]\nlisten = [\"127.0.0.1:0\"]\n";

#[test]
fn ready_line_names_every_address_with_its_scheme_at_log_level_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "c");
    let config = format!(
        "[udp]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\n\
         [http]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n\
         [ws]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    );
    let (t, line) = start_until_ready(command(dir.path(), &config));
    let entries = ready_entries(&line);
    let schemes: Vec<&str> = entries
        .iter()
        .map(|e| e.split("://").next().unwrap())
        .collect();
    // UDP first; an [http] listener serves WebSocket too, so it is named
    // with both schemes; [ws] listeners with ws:// or wss:// only; the
    // admin listener last.
    assert_eq!(
        schemes,
        [
            "udp",
            "udp",
            "http",
            "ws",
            "https",
            "wss",
            "ws",
            "wss",
            "admin http"
        ],
        "{line}"
    );
    assert_eq!(t.addrs.len(), 2, "{line}");
    assert!(t.addrs.iter().all(|a| a.port() != 0), "{line}");
    // The http:// and ws:// of one [http] listener are one address.
    assert_eq!(ready_addrs(&line, "http")[0], ready_addrs(&line, "ws")[0]);
    assert_eq!(ready_addrs(&line, "https")[0], ready_addrs(&line, "wss")[0]);

    // Every address named answers at once.
    assert_serves_udp_http_ws(&t, "after the ready line");
    let ws_only = ready_addrs(&line, "ws")[1];
    let r = ws::Peer::connect(ws_only).join(&random_hash(), 0);
    assert_eq!(r["complete"], 1, "ws-only listener {ws_only}: {r}");
    let roots = tls::client_config(&[&cert.der]);
    let mut https = tls::https(ready_addrs(&line, "https")[0], roots.clone());
    let r = https.get(&http::HttpAnnounce::new(random_hash(), 7001).target());
    assert_eq!(r.bencode().int_at("incomplete"), 1);
    let wss_only = ready_addrs(&line, "wss")[1];
    let stream = tls::connect(wss_only, roots);
    let mut wss = ws::Peer {
        c: ws::connect_over(stream, &format!("wss://{wss_only}/announce")),
        peer_id: ws::random_peer_id(),
    };
    assert_eq!(wss.join(&random_hash(), 0)["complete"], 1);

    // At level error nothing else was written: the ready line is the only
    // line, not an info-level log line let through.
    let lines = t.stderr_lines();
    assert_eq!(lines, vec![line], "stderr at --log-level error");
}

/// The service manager's end: a datagram socket the tracker is told of.
struct NotifySocket {
    socket: UnixDatagram,
    env: String,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn path() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            socket,
            env: path.display().to_string(),
            _dir: dir,
        }
    }

    /// An abstract socket, as `@name` in NOTIFY_SOCKET.
    fn abstract_name() -> NotifySocket {
        let name = format!(
            "tracker-l1-notify-{}-{}",
            std::process::id(),
            Rng::new().u32()
        );
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        NotifySocket {
            socket: UnixDatagram::bind_addr(&addr).unwrap(),
            env: format!("@{name}"),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The next message, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).expect("UTF-8 message")),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// Messages until one has a line `wanted`, collecting all of them.
    fn recv_until(&self, wanted: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while let Some(m) = self.recv(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ) {
            let done = m.lines().any(|l| l == wanted);
            got.push(m);
            if done {
                return got;
            }
        }
        panic!("no {wanted} within {timeout:?}; got {got:?}");
    }
}

#[test]
fn notify_socket_gets_ready_with_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::path();
    let mut cmd = command(dir.path(), LISTEN);
    cmd.env("NOTIFY_SOCKET", &notify.env)
        // 200 ms: fed every 100 ms, at the signal loop's pace.
        .env("WATCHDOG_USEC", "200000");
    let (t, line) = start_until_ready(cmd);

    let first = notify
        .recv(Duration::from_secs(5))
        .expect("a READY=1 message");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "READY=1", "{first:?}");
    // STATUS= names what the ready line names.
    let status = lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= with READY=1: {first:?}"));
    assert_eq!(Some(status), line.strip_prefix("ready: "), "{first:?}");
    // By READY=1 everything answers.
    assert_serves_udp_http_ws(&t, "after READY=1");

    // The watchdog keeps being fed, not just once.
    let mut fed = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(m) = notify.recv(Duration::from_millis(500)) {
            assert_eq!(m, "WATCHDOG=1\n", "only watchdog messages while running");
            fed += 1;
        }
    }
    assert!(
        fed >= 4,
        "WATCHDOG=1 {fed} times in 2 s with WATCHDOG_USEC=200000"
    );

    t.signal(libc::SIGTERM);
    let got = notify.recv_until("STOPPING=1", Duration::from_secs(5));
    assert!(
        got.iter().all(|m| m
            .lines()
            .all(|l| l == "WATCHDOG=1" || l == "STOPPING=1" || l.starts_with("STATUS="))),
        "{got:?}"
    );
}

#[test]
fn abstract_notify_socket_and_a_watchdog_meant_for_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::abstract_name();
    let mut cmd = command(dir.path(), LISTEN);
    cmd.env("NOTIFY_SOCKET", &notify.env)
        .env("WATCHDOG_USEC", "200000")
        // sd_watchdog_enabled(3): a watchdog for another pid is not ours.
        .env("WATCHDOG_PID", "1");
    let (t, _line) = start_until_ready(cmd);
    let first = notify
        .recv(Duration::from_secs(5))
        .expect("a READY=1 message");
    assert!(first.starts_with("READY=1\nSTATUS=udp://"), "{first:?}");
    assert_eq!(
        notify.recv(Duration::from_secs(1)),
        None,
        "WATCHDOG=1 sent for a watchdog of pid 1"
    );
    drop(t);
    let stop = notify.recv(Duration::from_secs(5)).expect("STOPPING=1");
    assert!(stop.starts_with("STOPPING=1\n"), "{stop:?}");
}

#[test]
fn without_notify_socket_the_ready_line_still_comes_at_log_level_off() {
    let dir = tempfile::tempdir().unwrap();
    let (t, line) = start_until_ready(command_at(dir.path(), LISTEN, "off"));
    assert!(line.starts_with("ready: udp://127.0.0.1:"), "{line}");
    assert_serves_udp_http_ws(&t, "at log level off");
}

#[test]
fn ready_line_says_when_xdp_was_asked_for_but_not_attached() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path(), LISTEN);
    // No such interface: XDP fails at once, and is not required.
    cmd.args(["--iface", "l1-no-such-if"]);
    let (t, line) = start_until_ready(cmd);
    assert!(
        line.ends_with("; xdp l1-no-such-if not attached, plain sockets only"),
        "{line}"
    );
    assert_serves_udp_http_ws(&t, "without XDP");
}

#[test]
fn in_json_mode_the_ready_line_is_a_json_record_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path(), LISTEN);
    cmd.args(["--log-format", "json"]);
    let (t, ready) = start_until_ready(cmd);
    // At level error it is still written, as the only line, and it is JSON
    // like every other line a shipper reads.
    let lines = t.stderr_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["target"], "tracker_user::readiness", "{v}");
    assert_eq!(v["msg"], ready.as_str(), "{v}");
    assert!(v["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')), "{v}");
    assert!(ready.starts_with("ready: udp://127.0.0.1:"), "{ready}");
    assert_serves_udp_http_ws(&t, "in JSON mode");
}
