//! scripts/tracker-user.service and the example config it points at,
//! scripts/tracker-user.toml: systemd accepts the unit without a warning,
//! the unit keeps the settings docs/operations.md promises, and the
//! unit's own ExecStart, run as root with the example config under the
//! unit's capability bounding set and no_new_privs, starts, tells the
//! service manager it is ready, drops root, serves, reloads on the unit's
//! ExecReload and stops on SIGTERM; with XDP on a veth in a namespace, it
//! attaches, pins and opens its AF_XDP sockets with those capabilities.
//!
//! Needs root, `systemd-analyze` (Debian's `systemd` package), `setpriv`
//! and `prlimit` (util-linux; `.ci/run` installs them), iproute2 and a
//! tracker-user built after `cargo xtask build-ebpf` (which `cargo xtask
//! test` runs first): these tests fail rather than skip without them.

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
    assert_eq!(service(&unit, "RestartPreventExitStatus"), "2");
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
        "CAP_PERFMON",
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

fn require_root() {
    assert_eq!(
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        unsafe { libc::geteuid() },
        0,
        "the unit starts the tracker as root; CI runs the tests as root"
    );
}

/// The example config as shipped, but listening where the test says and,
/// for a user that exists on every test machine, dropping to nobody
/// instead of tracker; `extra` is appended, then an admin listener on the
/// HTTP address's IP, port 0 (the default 127.0.0.1:6970 is unbindable
/// in a namespace whose loopback is down, and taken by parallel tests).
fn test_config(dir: &Path, udp: &str, http: &str, extra: &str) -> PathBuf {
    let config = example_config();
    let listen = "listen = [\"0.0.0.0:6969\", \"[::]:6969\"]";
    let [udp_at, http_at] = [
        config.find("[udp]").expect("[udp] in the example"),
        config.find("[http]").expect("[http] in the example"),
    ];
    assert!(udp_at < http_at, "[udp] before [http]:\n{config}");
    let (before_http, from_http) = config.split_at(http_at);
    let before_http = replace_once(before_http, listen, &format!("listen = [\"{udp}\"]"));
    let from_http = replace_once(from_http, listen, &format!("listen = [\"{http}\"]"));
    let http_ip: std::net::SocketAddr = http.parse().expect("http is an address");
    let admin = format!(
        "\n[admin]\nlisten = [\"{}\"]\n",
        std::net::SocketAddr::new(http_ip.ip(), 0)
    );
    let config = replace_once(
        &format!("{before_http}{from_http}{extra}{admin}"),
        "user = \"tracker\"",
        "user = \"nobody\"",
    );
    // The unit's StateDirectory=, owned by the user the tracker drops to
    // as the unit's ExecStartPre= makes it.
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let nobody = c"nobody";
    // SAFETY: getpwnam takes a NUL-terminated name; the record it returns
    // is read at once, before any other call could reuse it.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(nobody.as_ptr());
        assert!(!pw.is_null(), "no user nobody");
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
    let config = replace_once(
        &config,
        "path = \"/var/lib/tracker/swarm.snapshot\"",
        &format!("path = {:?}", state.join("swarm.snapshot")),
    );
    let path = dir.join("tracker.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The unit's ExecStart, word by word, with the installed paths mapped to
/// the built binary and `config`, under the unit's capability bounding set
/// and no_new_privs as systemd would start it (setpriv), after `prefix`
/// (nsenter, say).
fn unit_command(config: &Path, prefix: &[&str]) -> Command {
    let unit = unit_text();
    let exec_start = service(&unit, "ExecStart");
    let words = exec_start.split_whitespace().map(|w| match w {
        UNIT_BINARY => bin_path().to_owned(),
        UNIT_CONFIG => config.display().to_string(),
        other => other.to_owned(),
    });
    let bounding: Vec<String> = service(&unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|cap| {
            let name = cap
                .strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{cap:?} in CapabilityBoundingSet"));
            format!("+{}", name.to_lowercase())
        })
        .collect();
    assert_eq!(service(&unit, "NoNewPrivileges"), "yes");
    let mut argv: Vec<String> = prefix.iter().map(|w| w.to_string()).collect();
    argv.push("setpriv".into());
    argv.push(format!("--bounding-set=-all,{}", bounding.join(",")));
    argv.push("--no-new-privs".into());
    argv.extend(words);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_remove("RUST_LOG")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("NOTIFY_SOCKET");
    cmd
}

/// The tracker runs as a user other than root with every capability set,
/// the bounding set included, empty and no_new_privs.
fn assert_dropped(t: &Tracker) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", t.pid())).unwrap();
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .trim()
            .to_owned()
    };
    let uid = field("Uid");
    assert!(
        uid.split_whitespace().all(|id| id != "0"),
        "still root: Uid {uid}"
    );
    for caps in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
        assert_eq!(field(caps), "0000000000000000", "{caps}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
}

#[test]
fn the_units_exec_start_with_the_example_config_starts_drops_root_serves_reloads_and_stops() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let config_path = test_config(dir.path(), "127.0.0.1:0", "127.0.0.1:0", "");
    let unit = unit_text();
    let mut cmd = unit_command(&config_path, &[]);
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
    assert_dropped(&t);
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
    // The last snapshot, written after the drop by the unprivileged user
    // into the state directory, readable by it alone.
    let snapshot = dir.path().join("state/swarm.snapshot");
    assert!(
        poll_until(Duration::from_secs(10), || snapshot.exists()),
        "no snapshot at SIGTERM; stderr:\n{}",
        t.stderr_text()
    );
    let meta = std::fs::metadata(&snapshot).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_ne!(meta.uid(), 0, "written after the privilege drop");
}

/// A network namespace holding a veth pair, removed when dropped.
struct Netns(&'static str);

impl Netns {
    fn new(name: &'static str, iface: &str, peer: &str, addr: &str) -> Netns {
        // Left over by an earlier run that was killed.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let ns = Netns(name);
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(["-n", name])
                .args(args)
                .output()
                .expect("run ip (iproute2)");
            assert!(
                out.status.success(),
                "ip -n {name} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("run ip (iproute2)");
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        ip(&["link", "add", iface, "type", "veth", "peer", "name", peer]);
        ip(&["addr", "add", addr, "dev", iface]);
        ip(&["link", "set", iface, "up"]);
        ip(&["link", "set", peer, "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", self.0]).output();
    }
}

#[test]
fn under_the_units_bounding_set_xdp_attaches_and_pins_before_the_drop() {
    require_root();
    const PIN: &str = "/sys/fs/bpf/tracker-m1-systemd-unit";
    let _ = std::fs::remove_dir_all(PIN);
    let net = Netns::new("m1sdunit", "m1sd0", "m1sd1", "10.124.0.1/24");
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path(),
        "10.124.0.1:6969",
        "10.124.0.1:0",
        &format!("\n[xdp]\niface = \"m1sd0\"\nrequired = true\npin_path = \"{PIN}\"\n"),
    );
    let netns = format!("--net=/run/netns/{}", net.0);
    // The unit sets no LimitMEMLOCK: at older systemd's default of 64 KiB
    // the UMEM (8 MiB a socket) registers only thanks to CAP_IPC_LOCK.
    let (t, ready) = start_until_ready(unit_command(
        &config,
        &["nsenter", &netns, "prlimit", "--memlock=65536:65536"],
    ));
    // Loading and attaching the program, pinning it and its maps, and the
    // AF_XDP sockets with their UMEM all needed only the unit's capabilities.
    assert!(
        ready.contains("; xdp m1sd0 (") && ready.contains("AF_XDP queue"),
        "{ready}\n{}",
        t.stderr_text()
    );
    for pin in ["tracker_xdp", "COUNTERS", "CONNECT", "LISTEN", "XSKS"] {
        assert!(
            Path::new(PIN).join(pin).exists(),
            "{PIN}/{pin} pinned; stderr:\n{}",
            t.stderr_text()
        );
    }
    assert_dropped(&t);
    drop(t);
    // The pins outlive the dropped tracker (unlinking needs root).
    let _ = std::fs::remove_dir_all(PIN);
}
