//! Real clients against the HTTP and WebSocket server:
//!
//! - npm `bittorrent-tracker` 11.2.3 over http:// (two clients find each
//!   other and scrape) and over ws:// and wss:// (two node processes, each
//!   a WebTorrent peer whose offers and answers travel through the tracker;
//!   they open a real WebRTC data channel, from the `webrtc-polyfill` /
//!   `node-datachannel` the client depends on, and greet each other over it);
//! - libtorrent (Debian `python3-libtorrent`): a seeder and a leecher
//!   session meet only through the tracker and the leecher downloads the
//!   file; scrapes show the counts. Over http:// and over udp://, where the
//!   two sessions of one process share libtorrent's per-process BEP 15
//!   connection id from two source ports.
//!
//! Needs node and npm (tests/npm-clients is installed on first use) and a
//! python3 that can `import libtorrent`. Under CI (CI=true) a missing one
//! fails the test; locally a venv with PyPI `libtorrent` is tried first.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{self as h};
use common::npm::{self, WsPeerProcess};
use common::ws as w;
use common::*;

// ---------------------------------------------------------------------------
// npm bittorrent-tracker
// ---------------------------------------------------------------------------

#[test]
fn npm_clients_find_each_other_and_scrape_over_http() {
    let t = Tracker::start_v4();
    let url = format!("http://127.0.0.1:{}/announce", t.http_addr().port());
    npm::check_two_clients(&url, "127.0.0.1", None, &t);
}

const NODE_WAIT: Duration = Duration::from_secs(25);

/// WebRTC attempts per test. The tracker's part (announces, offers and
/// answers relayed, scrapes) is asserted strictly on every attempt; only
/// when the WebRTC connection itself then fails (libdatachannel under
/// load, about one run in 30 on a busy 2-core machine: "Got a remote
/// candidate without ICE transport") is the pair run again.
const WEBRTC_ATTEMPTS: usize = 3;

/// Two ws_peer.mjs processes (A seeds, B leeches) meet through the tracker
/// at `url` and greet each other over WebRTC. `env` is passed to both.
fn webtorrent_pair(t: &Tracker, url: &str, env: &[(&str, String)]) {
    let mut failures = Vec::new();
    for attempt in 1..=WEBRTC_ATTEMPTS {
        match webtorrent_pair_once(t, url, env) {
            Ok(()) => return,
            Err(e) => {
                eprintln!("attempt {attempt}: WebRTC did not connect: {e}");
                failures.push(e);
            }
        }
    }
    panic!(
        "WebRTC never connected in {WEBRTC_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}

/// Waits for `me` to report its WebRTC connection open; Err (with both
/// peers' events) if it fails or times out.
fn webrtc_connected(me: &mut WsPeerProcess, other: &mut WsPeerProcess) -> Result<(), String> {
    let got = me.wait_for_any(&["connect", "peer-error"], NODE_WAIT);
    if got.as_ref().is_some_and(|e| e["event"] == "connect") {
        return Ok(());
    }
    other.wait_for("(drain)", Duration::from_millis(200));
    Err(format!(
        "{} got {got:?}; events {:?}; {} events {:?}",
        me.name, me.events, other.name, other.events
    ))
}

/// One pair; Err only if the peers, having exchanged offer and answer
/// through the tracker, did not connect over WebRTC.
fn webtorrent_pair_once(t: &Tracker, url: &str, env: &[(&str, String)]) -> Result<(), String> {
    let hash = random_hash();
    let hash_hex = hex(&hash);

    let mut a = WsPeerProcess::start_with_env(url, &hash_hex, "A", "seed", env);
    let a_id = a.expect("start", NODE_WAIT, None, t)["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = a.expect("update", NODE_WAIT, None, t);
    assert_eq!(
        (&up["complete"], &up["incomplete"]),
        (&1.into(), &0.into()),
        "A's first update: {up}"
    );

    let mut b = WsPeerProcess::start_with_env(url, &hash_hex, "B", "leech", env);
    let b_id = b.expect("start", NODE_WAIT, Some(&mut a), t)["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = b.expect("update", NODE_WAIT, Some(&mut a), t);
    assert_eq!(
        (&up["complete"], &up["incomplete"]),
        (&1.into(), &1.into()),
        "B's first update: {up}"
    );

    // B's offer reached A (A's `peer` carries B's id), A's answer reached B.
    let p = a.expect("peer", NODE_WAIT, Some(&mut b), t);
    assert_eq!(p["id"], b_id.as_str(), "A's peer is B");
    let p = b.expect("peer", NODE_WAIT, Some(&mut a), t);
    assert_eq!(p["id"], a_id.as_str(), "B's peer is A");

    // And WebRTC connected them: each got the other's greeting.
    webrtc_connected(&mut a, &mut b)?;
    webrtc_connected(&mut b, &mut a)?;
    assert_eq!(
        a.expect("data", NODE_WAIT, Some(&mut b), t)["text"],
        "hello from B"
    );
    assert_eq!(
        b.expect("data", NODE_WAIT, Some(&mut a), t)["text"],
        "hello from A"
    );

    // The client's own scrape over the WebSocket.
    let s = b.expect("scrape", NODE_WAIT, Some(&mut a), t);
    assert_eq!(
        (&s["complete"], &s["incomplete"], &s["downloaded"]),
        (&1.into(), &1.into(), &0.into()),
        "B's scrape: {s}"
    );
    a.expect("ready", NODE_WAIT, Some(&mut b), t);
    b.expect("ready", NODE_WAIT, Some(&mut a), t);
    assert!(
        a.all("warning").is_empty() && b.all("warning").is_empty(),
        "warnings: {:?} {:?}",
        a.all("warning"),
        b.all("warning")
    );

    // The tracker's view, through the tests' own WebSocket client.
    let mut probe = w::connect(t.http_addr(), "/");
    assert_eq!(
        probe.scrape_one(&hash),
        w::Counts {
            complete: 1,
            incomplete: 1,
            downloaded: 0
        }
    );

    for p in [a, b] {
        let name = p.name.clone();
        let (status, events) = p.finish(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "ws_peer {name} exited {status:?}; events {events:?}"
        );
    }
    // Both processes gone: their connections closed, so they left the swarm.
    let left = poll_until(Duration::from_secs(5), || {
        probe.scrape_one(&hash) == w::Counts::default()
    });
    assert!(
        left,
        "peers of closed connections still counted: {:?}",
        probe.scrape_one(&hash)
    );
    Ok(())
}

#[test]
fn npm_webtorrent_clients_connect_over_webrtc_through_ws() {
    let t = Tracker::start_v4();
    let url = format!("ws://127.0.0.1:{}", t.http_addr().port());
    webtorrent_pair(&t, &url, &[]);
}

#[test]
fn npm_webtorrent_clients_connect_over_wss_and_a_ws_only_listener() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::tls::TestCert::new(dir.path(), "npm");
    let t = Tracker::with_config(&format!(
        "[ws]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    ));
    let url = format!("wss://127.0.0.1:{}", t.wss_only_addr().port());
    // Node trusts the test's certificate through NODE_EXTRA_CA_CERTS.
    let env = [(
        "NODE_EXTRA_CA_CERTS",
        cert.cert_path.to_string_lossy().into_owned(),
    )];
    webtorrent_pair(&t, &url, &env);
}

// ---------------------------------------------------------------------------
// libtorrent
// ---------------------------------------------------------------------------

/// A python that can `import libtorrent`: python3 on PATH, then the
/// system's (`python3-libtorrent` installs into /usr/bin/python3, which a
/// pyenv or venv python3 on PATH does not see). Locally (not under CI) a
/// venv with PyPI `libtorrent` is made as a last resort.
fn python_with_libtorrent() -> String {
    let works = |py: &str| {
        Command::new(py)
            .args(["-c", "import libtorrent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for py in ["python3", "/usr/bin/python3"] {
        if works(py) {
            return py.to_owned();
        }
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libtorrent-venv");
    let venv_py = venv.join("bin/python3");
    let venv_py_s = venv_py.to_string_lossy().into_owned();
    if works(&venv_py_s) {
        return venv_py_s;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "no python3 with libtorrent (tried python3 and /usr/bin/python3): install the Debian \
         package python3-libtorrent (.ci/run must apt-get install it)"
    );
    eprintln!(
        "clients: no python3 with libtorrent; making a venv with PyPI libtorrent in {venv:?}"
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "libtorrent==2.1.1"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok && works(&venv_py_s),
        "no python3 with libtorrent: install python3-libtorrent (apt) or `pip install libtorrent`"
    );
    venv_py_s
}

/// Runs lt_swarm.py against `url` (script timeout `timeout_secs`), checks
/// what every tracker must show (the leecher got the seeder and only it,
/// the file moved, libtorrent's own scrape), and returns the script's JSON
/// and the torrent's info hash.
fn lt_swarm(t: &Tracker, url: &str, timeout_secs: u64) -> (serde_json::Value, [u8; 20]) {
    let (work, child) = spawn_lt_swarm(url, timeout_secs, false);
    let result = finish_lt_swarm(t, child);
    drop(work);
    result
}

/// lt_swarm.py started on `url`, with its work directory; with `pause`,
/// it stops after the seeder's first tracker reply until told on stdin.
fn spawn_lt_swarm(
    url: &str,
    timeout_secs: u64,
    pause: bool,
) -> (tempfile::TempDir, std::process::Child) {
    let py = python_with_libtorrent();
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/lt_swarm.py");
    let child = Command::new(&py)
        .arg(script)
        .arg(url)
        .arg(work.path())
        .arg(timeout_secs.to_string())
        .env("LT_SWARM_PAUSE", if pause { "1" } else { "0" })
        .stdin(if pause { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 lt_swarm.py");
    (work, child)
}

/// Waits (60 s at most) for lt_swarm.py and checks its report; `t` is the
/// tracker whose log goes into a failure message.
fn finish_lt_swarm(t: &Tracker, mut child: std::process::Child) -> (serde_json::Value, [u8; 20]) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check_lt_swarm(t, out.status, &stdout, &stderr)
}

/// [`finish_lt_swarm`]'s checks of what lt_swarm.py printed.
fn check_lt_swarm(
    t: &Tracker,
    status: std::process::ExitStatus,
    stdout: &str,
    stderr: &str,
) -> (serde_json::Value, [u8; 20]) {
    assert!(
        status.success(),
        "lt_swarm.py failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}\ntracker stderr:\n{}",
        t.stderr_text()
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line from lt_swarm.py:\n{stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();

    let seeder = format!("127.0.0.1:{}", v["seeder_port"]);
    let from_tracker: Vec<&str> = v["peers_from_tracker"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        from_tracker.contains(&seeder.as_str()),
        "the leecher did not get the seeder {seeder} from the tracker: {line}"
    );
    assert_eq!(
        v["leecher_tracker_peers"], 1,
        "the leecher's announce must return the seeder only, never itself: {line}"
    );
    assert_eq!(v["downloaded_bytes"], 1024 * 1024, "{line}");
    assert_eq!(
        (&v["scrape"]["complete"], &v["scrape"]["incomplete"]),
        (&2.into(), &0.into()),
        "libtorrent's scrape: {line}"
    );

    let hash: [u8; 20] = (0..20)
        .map(|i| {
            u8::from_str_radix(&v["info_hash"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
        })
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    (v, hash)
}

#[test]
fn libtorrent_leecher_downloads_from_a_seeder_found_through_the_http_tracker() {
    let t = Tracker::start_v4();
    let url = format!("http://127.0.0.1:{}/announce", t.http_addr().port());
    let (_, hash) = lt_swarm(&t, &url, 40);
    // Our own scrape: the leecher's `completed` announce was counted.
    let counts = h::scrape_one(t.http_addr(), hash);
    assert_eq!(counts.downloaded, 1, "{counts:?}");
}

/// libtorrent caches one connection id per tracker for the whole process
/// and sends it from every session's socket. With ids bound to the source
/// port the leecher's announces were refused ("connection id invalid or
/// expired") until the cached id aged out, 85 s in practice; bound to the
/// IP only, the leecher finds the seeder at once.
#[test]
fn libtorrent_two_sessions_of_one_process_share_a_udp_connection_id() {
    let t = Tracker::start_v4();
    let url = format!("udp://127.0.0.1:{}/announce", t.addr().port());
    let (v, hash) = lt_swarm(&t, &url, 30);
    let secs = v["download_secs"].as_f64().unwrap();
    assert!(
        secs < 20.0,
        "the leecher took {secs} s to find the seeder and download: {v}"
    );
    assert_ne!(
        v["seeder_port"], v["leecher_port"],
        "two sessions, two sockets: {v}"
    );
    // Our own scrape: the leecher's `completed` announce was counted.
    let c = Client::new(t.addr());
    assert_eq!(c.scrape(&[hash]).0, vec![(2, 1, 0)]);
}

/// A restart that a real client does not notice: a libtorrent seeder
/// announces over udp://, the tracker is stopped and started again (with
/// `[persistence]`) on the same port, and a libtorrent leecher that starts
/// afterwards gets the seeder from the tracker and downloads from it,
/// with no announce of the seeder's in between. The two sessions share
/// libtorrent's cached connection id, drawn before the restart.
#[test]
fn libtorrent_leecher_finds_a_seeder_that_announced_before_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[protocol]\nannounce_interval = 1800\n[persistence]\npath = {:?}\n",
        dir.path().join("swarm.snapshot")
    );
    let mut before = Tracker::with_config(&config);
    let port = before.addr().port();
    let url = format!("udp://127.0.0.1:{port}/announce");
    let (work, mut child) = spawn_lt_swarm(&url, 40, true);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let said = lines.next().and_then(Result::ok);
    assert_eq!(
        said.as_deref(),
        Some("seeder announced"),
        "tracker stderr:\n{}",
        before.stderr_text()
    );
    assert!(before.terminate().success(), "{}", before.stderr_text());
    let after = Tracker::builder()
        .config(&config)
        .udp(&format!("127.0.0.1:{port}"))
        .start();
    assert!(
        after
            .stderr_text()
            .contains("restored 1 torrents and 1 peers"),
        "{}",
        after.stderr_text()
    );
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"go\n").unwrap();
    // Until the script exits (its own timeout bounds this).
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (v, hash) = check_lt_swarm(&after, out.status, &rest.join("\n"), &stderr);
    assert_eq!(
        v["seeder_replies_after_pause"], 0,
        "the seeder announced again, so the restart was not what found it: {v}"
    );
    let c = Client::new(after.addr());
    assert_eq!(c.scrape(&[hash]).0, vec![(2, 1, 0)]);
    drop(work);
}
