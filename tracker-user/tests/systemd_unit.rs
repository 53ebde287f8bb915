//! scripts/tracker-user.service and the example config it points at,
//! scripts/tracker-user.toml: systemd accepts the unit without a warning,
//! the unit keeps the settings docs/operations.md promises, and the
//! unit's own ExecStart, run as root with the example config, starts,
//! tells the service manager it is ready, drops root, serves, reloads on
//! the unit's ExecReload and stops on SIGTERM.
//!
//! Needs `systemd-analyze` (Debian's `systemd` package; `.ci/run` installs
//! it) and root: these tests fail rather than skip without them.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ready::{assert_serves_udp_http_ws, start_until_ready};
use common::*;

/// Where the unit expects the binary and the config (docs/operations.md
/// installs them there).
const UNIT_BINARY: &str = "/usr/local/bin/tracker-user";
const UNIT_CONFIG: &str = "/etc/tracker/tracker.toml";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

fn unit_text() -> String {
    std::fs::read_to_string(scripts().join("tracker-user.service")).expect("read the unit")
}

fn example_config() -> String {
    std::fs::read_to_string(scripts().join("tracker-user.toml")).expect("read the example config")
}

/// Every `Key=value` of `section`, in order (comments and blank lines
/// skipped; the unit uses no line continuations).
fn settings(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a Key=value line: {line:?}"));
        assert!(
            !value.ends_with('\\'),
            "line continuations are not parsed here: {line:?}"
        );
        if current == section {
            out.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The one value of `key` in [Service]; panics if absent or repeated.
fn service(unit: &str, key: &str) -> String {
    let values: Vec<String> = settings(unit, "Service")
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "[Service] {key}= set once: {values:?}");
    values.into_iter().next().unwrap()
}

/// `text` with `from` replaced by `to`, which must occur exactly once, so
/// an edit of the shipped files breaks the test loudly instead of making
/// it check something else.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} once in:\n{text}");
    text.replacen(from, to, 1)
}

/// Runs `systemd-analyze verify` on `unit_file`: (success, stderr).
fn verify(unit_file: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit_file)
        .output()
        .expect(
            "running systemd-analyze (Debian package `systemd`; .ci/run installs it when missing)",
        );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the unit whose ExecStart names the built binary and a copy of
/// the example config, since `verify` checks that the binary exists.
fn unit_copy(dir: &Path) -> (PathBuf, String) {
    let config = dir.join("tracker.toml");
    std::fs::write(&config, example_config()).unwrap();
    let unit = replace_once(
        &unit_text(),
        &format!("ExecStart={UNIT_BINARY} -c {UNIT_CONFIG}"),
        &format!("ExecStart={} -c {}", bin_path(), config.display()),
    );
    (dir.join("tracker-user.service"), unit)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (path, unit) = unit_copy(dir.path());
    std::fs::write(&path, &unit).unwrap();
    let (ok, stderr) = verify(&path);
    assert!(ok, "systemd-analyze verify failed:\n{stderr}");
    assert_eq!(stderr, "", "systemd-analyze verify warned");

    // The check above can fail: this systemd reports a setting it does not
    // know, and one whose value it cannot parse, on stderr.
    let spoiled = replace_once(
        &unit,
        "\nProtectSystem=strict\n",
        "\nProtectSystem=stricter\nNoSuchSetting=yes\n",
    );
    std::fs::write(&path, spoiled).unwrap();
    let (_, stderr) = verify(&path);
    assert!(
        stderr.contains("Unknown key 'NoSuchSetting'") && stderr.contains("stricter"),
        "systemd-analyze verify did not report a spoiled unit:\n{stderr}"
    );
}

#[test]
fn the_unit_is_a_notify_service_with_watchdog_reload_state_and_hardening() {
    let unit = unit_text();
    assert_eq!(service(&unit, "Type"), "notify");
    assert_eq!(
        service(&unit, "ExecStart"),
        format!("{UNIT_BINARY} -c {UNIT_CONFIG}")
    );
    assert_eq!(service(&unit, "ExecReload"), "/bin/kill -USR1 $MAINPID");
    let watchdog: u64 = service(&unit, "WatchdogSec").parse().unwrap();
    assert!(watchdog >= 2, "WatchdogSec={watchdog}");
    assert_eq!(service(&unit, "Restart"), "on-failure");
    assert_eq!(service(&unit, "StateDirectory"), "tracker");
    assert_eq!(service(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(service(&unit, "ProtectSystem"), "strict");
    assert_eq!(service(&unit, "ProtectHome"), "yes");
    assert_eq!(service(&unit, "PrivateTmp"), "yes");
    assert_eq!(service(&unit, "ProtectKernelTunables"), "yes");

    // Root with only what start-up needs: no User= (the tracker's own
    // [privileges] drop switches user), and the bounding set lets it
    // attach XDP, open AF_XDP sockets and then drop everything.
    assert!(
        !settings(&unit, "Service").iter().any(|(k, _)| k == "User"),
        "the unit starts as root and lets [privileges] switch"
    );
    let caps = service(&unit, "CapabilityBoundingSet");
    for cap in [
        "CAP_BPF",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SETPCAP",
    ] {
        assert!(caps.split_whitespace().any(|c| c == cap), "{cap} in {caps}");
    }
    assert!(!caps.contains("CAP_SYS_ADMIN"), "{caps}");
    let families = service(&unit, "RestrictAddressFamilies");
    assert!(
        families.split_whitespace().any(|f| f == "AF_XDP"),
        "{families}"
    );
    let syscalls = service(&unit, "SystemCallFilter");
    assert!(
        syscalls.split_whitespace().any(|s| s == "bpf"),
        "{syscalls}"
    );

    // Every HTTP/WebSocket connection is a descriptor: the limit must cover
    // the default config's connections with room for sockets and files.
    let (status, defaults, stderr) = run_to_exit(&["-p"]);
    assert!(status.success(), "tracker-user -p: {stderr}");
    let http = defaults
        .split("\n[http]\n")
        .nth(1)
        .expect("an [http] section in -p");
    let setting = |key: &str| -> u64 {
        http.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no http.{key} in -p"))
            .parse()
            .unwrap()
    };
    let connections = setting("max_connections") * setting("workers");
    let nofile: u64 = service(&unit, "LimitNOFILE").parse().unwrap();
    assert!(
        nofile >= connections + 1024,
        "LimitNOFILE={nofile} for {connections} connections"
    );
}

/// The service manager's end of NOTIFY_SOCKET.
fn notify_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (socket, path)
}

/// Notification messages until one has the line `wanted`.
fn recv_until(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.lines().any(|l| l == wanted);
            got.push(m);
            if done {
                return got;
            }
        }
    }
    panic!("no {wanted} on NOTIFY_SOCKET within 10 s; got {got:?}");
}

/// The `msg` of every JSON line on stderr (the example config logs JSON).
fn messages(t: &Tracker) -> Vec<String> {
    t.stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_units_exec_start_with_the_example_config_starts_drops_root_serves_reloads_and_stops() {
    assert_eq!(
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        unsafe { libc::geteuid() },
        0,
        "the unit starts the tracker as root; CI runs the tests as root"
    );
    let dir = tempfile::tempdir().unwrap();
    // The example config as shipped, but on free loopback ports and, for a
    // user that exists on every test machine, nobody instead of tracker.
    let config = example_config();
    let listen = "listen = [\"0.0.0.0:6969\", \"[::]:6969\"]";
    assert_eq!(
        config.matches(listen).count(),
        2,
        "[udp] and [http]:\n{config}"
    );
    let config = config.replace(listen, "listen = [\"127.0.0.1:0\"]");
    let config = replace_once(&config, "user = \"tracker\"", "user = \"nobody\"");
    let config_path = dir.path().join("tracker.toml");
    std::fs::write(&config_path, config).unwrap();

    // The unit's ExecStart, word by word, with the installed paths mapped
    // to the built binary and the test's config.
    let unit = unit_text();
    let exec_start = service(&unit, "ExecStart");
    let mut words = exec_start.split_whitespace().map(|w| match w {
        UNIT_BINARY => bin_path().to_owned(),
        UNIT_CONFIG => config_path.display().to_string(),
        other => other.to_owned(),
    });
    let mut cmd = Command::new(words.next().unwrap());
    cmd.args(words)
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    let (notify, notify_path) = notify_socket(dir.path());
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let (t, ready) = start_until_ready(cmd);

    let first = recv_until(&notify, "READY=1");
    assert!(
        first
            .last()
            .unwrap()
            .lines()
            .any(|l| l.strip_prefix("STATUS=") == ready.strip_prefix("ready: ")),
        "STATUS= names what is served: {first:?}, {ready}"
    );
    let lines = t.stderr_lines();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "log_format = \"json\": every stderr line is JSON:\n{}",
        t.stderr_text()
    );
    assert!(
        messages(&t)
            .iter()
            .any(|m| m.starts_with("privileges dropped: user nobody")),
        "{}",
        t.stderr_text()
    );
    for field in ["Uid", "CapEff", "CapBnd", "NoNewPrivs"] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", t.pid())).unwrap();
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap()
            .trim()
            .to_owned();
        let want = match field {
            "Uid" => {
                let uid = value.split_whitespace().next().unwrap();
                assert_ne!(uid, "0", "still root: {value}");
                continue;
            }
            "NoNewPrivs" => "1",
            _ => "0000000000000000",
        };
        assert_eq!(value, want, "{field}");
    }
    assert_serves_udp_http_ws(&t, "with the example config");

    // The unit's ExecReload, with $MAINPID as systemd fills it in.
    let reload = service(&unit, "ExecReload").replace("$MAINPID", &t.pid().to_string());
    let mut words = reload.split_whitespace();
    let status = Command::new(words.next().unwrap())
        .args(words)
        .status()
        .expect("run ExecReload");
    assert!(status.success(), "{reload}: {status}");
    assert!(
        poll_until(Duration::from_secs(10), || messages(&t)
            .iter()
            .any(|m| m.starts_with("access list reloaded"))),
        "ExecReload did not reload; stderr:\n{}",
        t.stderr_text()
    );

    t.signal(libc::SIGTERM);
    recv_until(&notify, "STOPPING=1");
}
