//! Drives the npm `bittorrent-tracker` client (tests/npm-clients) against a
//! tracker: installs it on first use, runs two clients that must find each
//! other (over UDP or HTTP: `two_clients.mjs`; over WebSocket with real
//! WebRTC: two `ws_peer.mjs` processes), and checks what they saw.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Tracker;

const NPM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/npm-clients");

/// Serialises installs if several tests in this binary need node_modules.
static INSTALL: Mutex<()> = Mutex::new(());

fn npm_dir() -> PathBuf {
    Path::new(NPM_DIR)
        .canonicalize()
        .unwrap_or_else(|e| panic!("{NPM_DIR}: {e}"))
}

fn require_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`{tool} --version` failed ({}): {}; node and npm are needed for this test",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("`{tool}` not found ({e}); node and npm are needed for this test"),
    }
}

/// node_modules of tests/npm-clients, installed (`npm install`, from
/// package-lock.json) on first use.
pub fn ensure_installed() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    require_tool("node");
    require_tool("npm");
    let dir = npm_dir();
    if !dir
        .join("node_modules/bittorrent-tracker/package.json")
        .exists()
    {
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run npm install");
        assert!(
            out.status.success(),
            "npm install in {} failed ({}):\n{}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dir.join("node_modules/bittorrent-tracker/package.json")
                .exists(),
            "npm install did not install bittorrent-tracker"
        );
    }
    dir
}

/// Finds `"key":<number>` in a flat part of a JSON text.
fn json_number(obj: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let i = obj.find(&pat)? + pat.len();
    let digits: String = obj[i..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The JSON array value of `"key":[...]` (array of strings, no nesting).
fn json_str_array(obj: &str, key: &str) -> Option<Vec<String>> {
    let pat = format!("\"{key}\":[");
    let i = obj.find(&pat)? + pat.len();
    let end = obj[i..].find(']')? + i;
    Some(
        obj[i..end]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Runs a script from the npm dir to its end: its output and the output
/// as text. The scripts give up by themselves (15-20 s); the 40 s here is a
/// backstop against a node that hangs anyway.
fn run_to_end(mut command: Command, script: &str) -> (Output, String, String) {
    let child = command
        .current_dir(ensure_installed())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| panic!("spawn node {script}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Runs `two_clients.mjs` against `url` (`udp://` or `http://…/announce`;
/// inside `netns` when given)
/// and asserts that the two clients, seen by the tracker at `client_ip`,
/// found each other and scraped one seeder and one leecher.
pub fn check_two_clients(url: &str, client_ip: &str, netns: Option<&str>, tracker: &Tracker) {
    let line = &json_line_of(netns, "two_clients.mjs", &[url, client_ip], tracker);
    let port_a = json_number(line, "portA").expect("portA");
    let port_b = json_number(line, "portB").expect("portB");
    let seen_by_a = json_str_array(line, "peersSeenByA").expect("peersSeenByA");
    let seen_by_b = json_str_array(line, "peersSeenByB").expect("peersSeenByB");
    let addr_a = format!("{client_ip}:{port_a}");
    let addr_b = format!("{client_ip}:{port_b}");
    assert!(
        seen_by_b.contains(&addr_a),
        "B did not get A ({addr_a}): {line}"
    );
    assert!(
        seen_by_a.contains(&addr_b),
        "A did not get B ({addr_b}): {line}"
    );
    assert!(
        !seen_by_a.contains(&addr_a) && !seen_by_b.contains(&addr_b),
        "a client was given itself: {line}"
    );

    // B's own announce response: A seeding, B leeching.
    let updates_b_at = line
        .find("\"updatesB\":")
        .unwrap_or_else(|| panic!("no updatesB in {line}"));
    let first_update_b = &line[updates_b_at..];
    assert_eq!(
        json_number(first_update_b, "complete"),
        Some(1),
        "B's announce: complete: {line}"
    );
    assert_eq!(
        json_number(first_update_b, "incomplete"),
        Some(1),
        "B's announce: incomplete: {line}"
    );

    let scrape_at = line
        .find("\"scrape\":")
        .unwrap_or_else(|| panic!("no scrape in {line}"));
    let scrape = &line[scrape_at..];
    // A seeds (left 0), B leeches: one of each.
    assert_eq!(
        json_number(scrape, "complete"),
        Some(1),
        "scrape complete: {line}"
    );
    assert_eq!(
        json_number(scrape, "incomplete"),
        Some(1),
        "scrape incomplete: {line}"
    );
    assert_eq!(
        json_number(scrape, "downloaded"),
        Some(0),
        "scrape downloaded: {line}"
    );
}

// ---------------------------------------------------------------------------
// WebTorrent: two ws_peer.mjs processes
// ---------------------------------------------------------------------------

/// A running `ws_peer.mjs`: its JSON event lines as they come.
pub struct WsPeerProcess {
    pub name: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every event line read so far.
    pub events: Vec<serde_json::Value>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl WsPeerProcess {
    /// Starts `node ws_peer.mjs URL INFO_HASH NAME ROLE` (role: seed/leech).
    pub fn start(url: &str, info_hash_hex: &str, name: &str, role: &str) -> Self {
        Self::start_with_env(url, info_hash_hex, name, role, &[])
    }

    /// [`Self::start`] with more environment variables.
    pub fn start_with_env(
        url: &str,
        info_hash_hex: &str,
        name: &str,
        role: &str,
        env: &[(&str, String)],
    ) -> Self {
        let dir = ensure_installed();
        let mut child = Command::new("node")
            .args(["ws_peer.mjs", url, info_hash_hex, name, role])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node ws_peer.mjs");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let mut pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        WsPeerProcess {
            name: name.to_owned(),
            child,
            lines: rx,
            events: Vec::new(),
            stderr,
        }
    }

    /// Reads events until one with `"event": event` (returned) or `timeout`.
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> Option<serde_json::Value> {
        if let Some(e) = self.events.iter().find(|e| e["event"] == event) {
            return Some(e.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue, // debug output
            };
            self.events.push(v.clone());
            if v["event"] == event {
                return Some(v);
            }
        }
    }

    /// Reads events until one named in `events` (returned) or `timeout`.
    pub fn wait_for_any(
        &mut self,
        events: &[&str],
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(e) = self.events[seen..]
                .iter()
                .find(|e| events.iter().any(|n| e["event"] == *n))
            {
                return Some(e.clone());
            }
            seen = self.events.len();
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if let Ok(v) = serde_json::from_str(&line) {
                self.events.push(v);
            }
        }
    }

    /// [`Self::wait_for`], panicking with everything seen (by this peer
    /// and by `other`) on timeout.
    pub fn expect(
        &mut self,
        event: &str,
        timeout: Duration,
        other: Option<&mut WsPeerProcess>,
        tracker: &Tracker,
    ) -> serde_json::Value {
        if let Some(v) = self.wait_for(event, timeout) {
            return v;
        }
        let other = other.map(|o| {
            o.wait_for("(drain)", Duration::from_millis(200));
            format!(
                "\nws_peer {} events: {:?}\nstderr:\n{}",
                o.name,
                o.events,
                o.stderr.lock().unwrap()
            )
        });
        panic!(
            "ws_peer {} printed no `{event}` within {timeout:?}; events: {:?}\nstderr:\n{}{}\ntracker stderr:\n{}",
            self.name,
            self.events,
            self.stderr.lock().unwrap(),
            other.unwrap_or_default(),
            tracker.stderr_text()
        )
    }

    /// Every event named `event` seen so far.
    pub fn all(&self, event: &str) -> Vec<&serde_json::Value> {
        self.events.iter().filter(|e| e["event"] == event).collect()
    }

    /// Closes stdin (the script then leaves) and waits for the exit status.
    pub fn finish(
        mut self,
        timeout: Duration,
    ) -> (Option<std::process::ExitStatus>, Vec<serde_json::Value>) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.try_recv() {
            if let Ok(v) = serde_json::from_str(&line) {
                self.events.push(v);
            }
        }
        (status, std::mem::take(&mut self.events))
    }
}

impl Drop for WsPeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// WebTorrent: two clients in one process, one shared WebSocket
// ---------------------------------------------------------------------------

/// What one run of `shared_socket.mjs` printed.
pub struct SharedSocketRun {
    /// Exit 0: both clients connected over WebRTC, greeted and scraped.
    pub success: bool,
    /// The script's JSON line (see the script's header).
    pub seen: serde_json::Value,
    pub stderr: String,
}

/// Runs `node shared_socket.mjs URL INFO_HASH_HEX` to its end.
pub fn run_shared_socket(url: &str, info_hash_hex: &str) -> SharedSocketRun {
    let mut command = Command::new("node");
    command.args(["shared_socket.mjs", url, info_hash_hex]);
    let (out, stdout, stderr) = run_to_end(command, "shared_socket.mjs");
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "shared_socket.mjs printed no JSON line ({}):\n{stdout}\n{stderr}",
                out.status
            )
        });
    SharedSocketRun {
        success: out.status.success(),
        seen: serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")),
        stderr,
    }
}

/// What `hot_torrent.mjs` saw: the peers it was told about (`ip:port`)
/// and each answer's (complete, incomplete).
pub struct HotTorrentRun {
    pub port: u16,
    pub peers: Vec<String>,
    pub updates: Vec<(u64, u64)>,
}

/// Runs `hot_torrent.mjs` (in `netns`): one client announces `started`,
/// then `update`, for `info_hash` at `url`.
pub fn hot_torrent(
    url: &str,
    info_hash: &[u8; 20],
    netns: &str,
    tracker: &Tracker,
) -> HotTorrentRun {
    let hash = super::hex(info_hash);
    let line = json_line_of(Some(netns), "hot_torrent.mjs", &[url, &hash], tracker);
    let seen: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {line}"));
    HotTorrentRun {
        port: number(&seen["port"]) as u16,
        peers: seen["peers"]
            .as_array()
            .unwrap_or_else(|| panic!("peers in {line}"))
            .iter()
            .map(|p| {
                p.as_str()
                    .unwrap_or_else(|| panic!("{p} in {line}"))
                    .to_owned()
            })
            .collect(),
        updates: seen["updates"]
            .as_array()
            .unwrap_or_else(|| panic!("updates in {line}"))
            .iter()
            .map(|u| (number(&u["complete"]), number(&u["incomplete"])))
            .collect(),
    }
}

/// Runs `node SCRIPT ARGS…` (inside `netns` when given) to its end,
/// asserts it succeeded, and returns the last JSON line it printed.
fn json_line_of(netns: Option<&str>, script: &str, args: &[&str], tracker: &Tracker) -> String {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => Command::new("node"),
    };
    command.arg(script).args(args);
    let (out, stdout, stderr) = run_to_end(command, script);
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\ntracker stderr:\n{}",
        out.status,
        tracker.stderr_text()
    );
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {script}'s output:\n{stdout}"))
        .to_owned()
}
