//! Runs the real tracker and a short, small load against it, and checks
//! the JSON report. No timing assertions: only that everything was
//! answered, validly, by every kind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TRACKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/tracker-user");

/// Kills the tracker however the test ends.
struct Tracker(Child);

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ensure_tracker_built() {
    if Path::new(TRACKER).exists() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "-p", "tracker-user"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo build -p tracker-user");
    assert!(status.success(), "cargo build -p tracker-user failed");
}

/// Starts the tracker on an ephemeral port and returns it with its address.
fn start_tracker() -> (Tracker, String) {
    ensure_tracker_built();
    let mut child = Command::new(TRACKER)
        .args(["--udp", "127.0.0.1:0", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker-user");
    let stderr = child.stderr.take().expect("tracker stderr");
    let tracker = Tracker(child);
    let (tx, rx) = mpsc::channel();
    // Keeps reading after the address shows up, so the tracker never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("UDP listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tracker did not report `UDP listening on ADDR`");
    (tracker, addr)
}

#[test]
fn udp_load_against_the_real_tracker() {
    let (_tracker, addr) = start_tracker();
    let config =
        std::env::temp_dir().join(format!("tracker-load-smoke-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[profile]\ntorrents = 1000\npeers = 2000\n\n[udp]\nwarmup = 0.5\nsockets_per_worker = 4\n",
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-load"))
        .args(["udp", "-c"])
        .arg(&config)
        .args(["--tracker", &addr, "--duration", "2", "--json"])
        .output()
        .expect("run tracker-load");
    let _ = std::fs::remove_file(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tracker-load failed: {:?}\n{stderr}",
        output.status
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}\n{stderr}"));
    let get = |key: &str| {
        report
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {report}"))
    };
    let count = |key: &str| {
        get(key)
            .as_u64()
            .unwrap_or_else(|| panic!("{key} not a u64"))
    };
    assert!(count("responses_received") > 0, "{report}\n{stderr}");
    assert_eq!(count("invalid_responses"), 0, "{report}\n{stderr}");
    assert_eq!(count("error_responses"), 0, "{report}\n{stderr}");
    assert!(count("announce_responses") > 0, "{report}");
    assert!(count("scrape_responses") > 0, "{report}");
    assert!(count("connect_responses") > 0, "{report}");
    let peers = get("peers_per_announce").as_f64().expect("f64");
    assert!(peers > 0.0, "{report}");
    assert!(peers <= 30.0, "{report}");
    assert_eq!(get("duration_secs").as_f64(), Some(2.0));
    for key in ["p50", "p90", "p99", "max"] {
        assert!(get("latency_us")[key].is_u64(), "{report}");
    }
}

#[test]
fn unreachable_tracker_fails_clearly() {
    // Bind then drop a socket: the port is (almost surely) closed.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("ephemeral port")
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-load"))
        .args([
            "udp",
            "--tracker",
            &format!("127.0.0.1:{port}"),
            "--duration",
            "1",
            "--json",
        ])
        .output()
        .expect("run tracker-load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("no response from the tracker"), "{stderr}");
}
