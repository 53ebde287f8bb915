//! Drives the npm `bittorrent-tracker` client (tests/npm-clients) against a
//! tracker: installs it on first use, runs two clients that must find each
//! other, and checks what they saw.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

fn ensure_installed() -> PathBuf {
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

/// Runs `udp_two_clients.mjs` against `url` (inside `netns` when given)
/// and asserts that the two clients, seen by the tracker at `client_ip`,
/// found each other and scraped one seeder and one leecher.
pub fn check_two_clients(url: &str, client_ip: &str, netns: Option<&str>, tracker: &Tracker) {
    let dir = ensure_installed();
    let start = Instant::now();
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => Command::new("node"),
    };
    let mut child = command
        .arg("udp_two_clients.mjs")
        .arg(url)
        .arg(client_ip)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    // The script has its own 15 s timeout; this is a backstop.
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "udp_two_clients.mjs failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\ntracker stderr:\n{}",
        out.status,
        tracker.stderr_text()
    );

    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in script output:\n{stdout}"));
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
