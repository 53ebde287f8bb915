//! What the smoke tests share: the real tracker, started on ephemeral
//! ports, and tracker-load run against it with its JSON report parsed.
// Each test binary uses its own part of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const TRACKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/tracker-user");

/// Kills the tracker however the test ends.
pub struct Tracker(pub Child);

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds the debug tracker-user the tests start, once per test process:
/// `cargo test -p tracker-load` does not build other packages' binaries,
/// and a binary left from an older tree would be tested instead (cargo
/// makes this a no-op when it is up to date).
pub fn ensure_tracker_built() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "tracker-user"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo build -p tracker-user");
        assert!(status.success(), "cargo build -p tracker-user failed");
    });
}

/// A file in the temp dir unique to this test process and call.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "tracker-load-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Tracker config for a generator on one host: its simulated peers share
/// one or two addresses, far past the tracker's default per-IP limit.
pub const ONE_HOST_SWARM: &str = "[swarm]\nmax_peers_per_ip = 65536\n";

/// A config file holding [`ONE_HOST_SWARM`], for `-c`.
pub fn one_host_config() -> String {
    let path = temp_path("tracker.toml");
    std::fs::write(&path, ONE_HOST_SWARM).expect("write tracker config");
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// Starts the tracker with `args` and returns it with the address of its
/// log line `<ready> ADDR` (e.g. `UDP listening on`).
pub fn start_tracker(args: &[&str], ready: &str) -> (Tracker, String) {
    ensure_tracker_built();
    // Port 0 for the admin listener: the default (127.0.0.1:6970) would be
    // fought over by the smoke tests running in parallel.
    let mut child = Command::new(TRACKER)
        .args(args)
        .args(["--admin", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker-user");
    let stderr = child.stderr.take().expect("tracker stderr");
    let tracker = Tracker(child);
    let (tx, rx) = mpsc::channel();
    let ready = format!("{ready} ");
    // Keeps reading after the address shows up, so the tracker never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once(&ready) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tracker did not report its listening address");
    (tracker, addr)
}

/// Runs `tracker-load <protocol>` against closed port `port` of 127.0.0.1
/// and checks it fails with a clear message containing `why`.
pub fn assert_unreachable_fails(protocol: &str, port: u16, why: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-load"))
        .args([
            protocol,
            "--tracker",
            &format!("127.0.0.1:{port}"),
            "--duration",
            "1",
            "--json",
        ])
        .output()
        .expect("run tracker-load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{protocol}");
    assert!(output.stdout.is_empty(), "{protocol}");
    assert!(
        stderr.contains("no response from the tracker") && stderr.contains(why),
        "{protocol}: {stderr}"
    );
}

/// What `tracker-load --json` printed, with its stderr for messages.
pub struct Run {
    pub report: serde_json::Value,
    pub stderr: String,
}

impl Run {
    pub fn get(&self, key: &str) -> &serde_json::Value {
        self.report
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in {}", self.report))
    }

    pub fn count(&self, key: &str) -> u64 {
        self.get(key)
            .as_u64()
            .unwrap_or_else(|| panic!("{key} not a u64 in {}", self.report))
    }

    /// The checks every run must pass: answers came, none invalid or
    /// refused, and the report is complete.
    pub fn assert_clean(&self) {
        let context = format!("{}\n{}", self.report, self.stderr);
        assert!(self.count("responses_received") > 0, "{context}");
        assert_eq!(self.count("invalid_responses"), 0, "{context}");
        assert_eq!(self.count("error_responses"), 0, "{context}");
        assert!(self.count("announce_responses") > 0, "{context}");
        assert!(self.count("scrape_responses") > 0, "{context}");
        assert_eq!(self.get("duration_secs").as_f64(), Some(2.0));
        for key in ["p50", "p90", "p99", "max"] {
            assert!(self.get("latency_us")[key].is_u64(), "{context}");
        }
    }
}

/// Runs `tracker-load <protocol> -c <config text> --tracker ADDR
/// --duration 2 --json` and parses its report.
pub fn run_load(protocol: &str, config: &str, addr: &str) -> Run {
    let path = temp_path("load.toml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-load"))
        .args([protocol, "-c"])
        .arg(&path)
        .args(["--tracker", addr, "--duration", "2", "--json"])
        .output()
        .expect("run tracker-load");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "tracker-load {protocol} failed: {:?}\n{stderr}",
        output.status
    );
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}\n{stderr}"));
    Run { report, stderr }
}
