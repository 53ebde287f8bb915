//! Command line and configuration file handling.

mod common;

use std::net::UdpSocket;
use std::path::Path;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// Runs the tracker with `-c <file>` (and an ephemeral UDP address so a
/// wrongly started tracker binds nothing shared) and expects it to fail.
fn expect_config_error(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad-config.toml", text);
    let (status, _out, err) = run_to_exit(&["-c", &path, "--udp", "127.0.0.1:0"]);
    assert!(
        !status.success(),
        "tracker accepted the bad config\n{text}\nstderr:\n{err}"
    );
    assert!(
        err.contains(&path) || err.contains("bad-config.toml"),
        "stderr does not name the config file {path}:\n{err}"
    );
    (path, err)
}

#[test]
fn printed_default_config_is_accepted_and_has_the_defaults() {
    let (status, out, err) = run_to_exit(&["-p"]);
    assert!(status.success(), "-p failed: {status:?}\nstderr:\n{err}");
    assert!(out.contains('#'), "-p output has no comments:\n{out}");
    for key in [
        "[swarm]",
        "[protocol]",
        "[udp]",
        "[access_list]",
        "announce_interval",
        "max_scrape_torrents",
        "connection_id_lifetime",
    ] {
        assert!(out.contains(key), "-p output lacks {key}:\n{out}");
    }

    let t = Tracker::with_config(&out);
    let c = Client::new(t.addr());
    let r = c.announce(&Announce::new(random_hash(), 22001));
    assert_eq!(r.interval, 900, "announce_interval default");
    // max_scrape_torrents default: 70.
    let hashes: Vec<[u8; 20]> = (0..74).map(|_| random_hash()).collect();
    assert_eq!(c.scrape(&hashes).0.len(), 70, "max_scrape_torrents default");
}

#[test]
fn config_values_apply() {
    let t = Tracker::with_config(
        "log_level = \"info\"\n[protocol]\nannounce_interval = 77\n[udp]\nmax_scrape_torrents = 2\n",
    );
    let c = Client::new(t.addr());
    let r = c.announce(&Announce::new(random_hash(), 22101));
    assert_eq!(r.interval, 77);
    let hashes: Vec<[u8; 20]> = (0..4).map(|_| random_hash()).collect();
    assert_eq!(c.scrape(&hashes).0.len(), 2);
}

#[test]
fn udp_flag_replaces_configured_listen_addresses() {
    // Hold a port (without SO_REUSEPORT) that the config asks for: a tracker
    // that still tried to bind it would fail to start.
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let t = Tracker::with_config(&format!("[udp]\nlisten = [\"127.0.0.1:{port}\"]\n"));
    assert_eq!(t.addrs.len(), 1);
    assert_ne!(t.addr().port(), port);
    let c = Client::new(t.addr());
    c.connect();
}

#[test]
fn unknown_key_is_an_error_naming_file_key_and_line() {
    let text = "# tracker config\nlog_level = \"info\"\n\n[swarm]\ncleaning_interval = 60\n\n[udp]\nworkerz = 1\n";
    let (_, err) = expect_config_error(text);
    assert!(
        err.contains("workerz"),
        "stderr does not name the key:\n{err}"
    );
    assert!(
        mentions_line(&err, 8),
        "stderr does not name line 8:\n{err}"
    );
}

#[test]
fn bad_value_is_an_error_naming_file_key_and_line() {
    let text = "[protocol]\nannounce_interval = 60\n\n[udp]\nmax_scrape_torrents = \"lots\"\n";
    let (_, err) = expect_config_error(text);
    assert!(
        err.contains("udp.max_scrape_torrents"),
        "stderr does not name udp.max_scrape_torrents:\n{err}"
    );
    assert!(
        mentions_line(&err, 5),
        "stderr does not name line 5:\n{err}"
    );
}

#[test]
fn bad_enum_value_is_an_error() {
    let text = "[access_list]\nmode = \"grey\"\n";
    let (_, err) = expect_config_error(text);
    assert!(
        err.contains("access_list.mode"),
        "stderr does not name access_list.mode:\n{err}"
    );
    assert!(
        mentions_line(&err, 2),
        "stderr does not name line 2:\n{err}"
    );
}

#[test]
fn toml_syntax_error_is_an_error() {
    let text = "[udp]\nmax_scrape_torrents = 3\nthis is not toml\n";
    let (_, err) = expect_config_error(text);
    assert!(
        mentions_line(&err, 3),
        "stderr does not name line 3:\n{err}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.toml");
    let (status, _out, err) = run_to_exit(&["-c", path.to_str().unwrap(), "--udp", "127.0.0.1:0"]);
    assert!(!status.success(), "tracker started without its config file");
    assert!(
        err.contains("does-not-exist.toml"),
        "stderr does not name the file:\n{err}"
    );
}

/// The README's first command: no options, no file. UDP, HTTP and
/// WebSocket must all answer on port 6969, and /health on the admin
/// listener at 127.0.0.1:6970.
#[test]
fn default_config_serves_udp_http_and_websocket_on_port_6969() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// Kills the tracker however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let mut child = Command::new(bin_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker-user");
    let stderr = child.stderr.take().unwrap();
    let _tracker = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains stderr for the tracker's whole life so the pipe never fills.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("UDP listening on"))
    {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => lines.push(line),
            Err(_) => panic!(
                "the default config did not come up; stderr:\n{}",
                lines.join("\n")
            ),
        }
    }
    let lines = lines.join("\n");
    for wanted in [
        "HTTP listening on 0.0.0.0:6969",
        "UDP listening on 0.0.0.0:6969",
        "admin listening on 127.0.0.1:6970",
    ] {
        assert!(lines.contains(wanted), "`{wanted}` missing:\n{lines}");
    }

    let addr: std::net::SocketAddr = "127.0.0.1:6969".parse().unwrap();
    assert_ne!(Client::new(addr).connect(), 0, "UDP connect");
    let hash = [0x5a; 20];
    let scrape = format!(
        "/scrape?info_hash={}",
        common::http::escape(&hash, common::http::Escape::AllUpper)
    );
    let r = common::http::get(addr, &scrape);
    assert_eq!(r.status, 200);
    assert!(
        r.failure().is_none(),
        "HTTP scrape failed: {}",
        r.body_text()
    );
    let mut ws = common::ws::connect(addr, "/");
    ws.send_json(&serde_json::json!({
        "action": "scrape",
        "info_hash": common::ws::bin(&hash),
    }));
    let reply = ws.recv();
    assert_eq!(reply["action"], "scrape", "{reply}");

    // 503 "starting" until the ready line is out, a moment after the UDP
    // line; then 200.
    let admin: std::net::SocketAddr = "127.0.0.1:6970".parse().unwrap();
    let healthy = common::poll_until(Duration::from_secs(10), || {
        common::http::get(admin, "/health").status == 200
    });
    assert!(healthy, "/health never answered 200");
    assert_eq!(common::http::get(admin, "/health").body, b"ok\n");
}
