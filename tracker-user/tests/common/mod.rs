//! Test harness shared by the integration tests: a [`Tracker`] process
//! wrapper and a small, independent BEP 15 client (deliberately not using
//! `tracker-proto`, so the tests check the wire format against a second
//! encoding).
#![allow(dead_code)]

pub mod bencode;
pub mod external;
pub mod http;
pub mod netns;
pub mod npm;
pub mod ready;
pub mod scrape;
pub mod stop;
pub mod tls;
pub mod ws;

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const PROTOCOL_ID: u64 = 0x41727101980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

pub const EVENT_NONE: u32 = 0;
pub const EVENT_COMPLETED: u32 = 1;
pub const EVENT_STARTED: u32 = 2;
pub const EVENT_STOPPED: u32 = 3;

/// How long to wait for the tracker to print its listening addresses.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request waits for its response before it is sent again.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a request is sent before giving up (UDP may drop packets on a
/// busy machine; every request the helpers retry is idempotent enough).
const ATTEMPTS: usize = 3;

/// Config for tests that put many peers of one host (loopback, or one
/// namespace address) into one torrent, past the default per-IP limit.
/// Opens the [swarm] section, so more [swarm] keys may follow.
pub const MANY_PEERS_PER_IP: &str = "[swarm]\nmax_peers_per_ip = 65536\n";

pub fn bin_path() -> &'static str {
    env!("CARGO_BIN_EXE_tracker-user")
}

// ---------------------------------------------------------------------------
// Randomness (no dependency needed: splitmix64 seeded from time and a counter)
// ---------------------------------------------------------------------------

pub struct Rng(u64);

static RNG_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Rng {
    pub fn new() -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let c = RNG_COUNTER.fetch_add(1, Ordering::Relaxed);
        Rng(t ^ (u64::from(std::process::id()) << 32) ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    pub fn hash(&mut self) -> [u8; 20] {
        let mut h = [0; 20];
        self.fill(&mut h);
        h
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

pub fn random_hash() -> [u8; 20] {
    Rng::new().hash()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// The tracker process
// ---------------------------------------------------------------------------

/// Set to `on` or `off`, every tracker the tests start runs its request
/// worker in the UDP socket worker's thread (`[swarm] inline = "on"`, with
/// one request worker and one socket worker) or on a thread of its own,
/// so the same tests cover both designs whatever the machine's cores make
/// of the default ("auto"). `cargo xtask test` runs the front-end tests
/// both ways.
pub const FORCE_INLINE_ENV: &str = "TRACKER_TEST_SWARM_INLINE";

/// The config text to run with instead of the test's, when
/// [`FORCE_INLINE_ENV`] asks for a mode. A test that chose where its
/// request workers run (`swarm.inline`), or a topology inline cannot run
/// in (more workers, AF_XDP), keeps its config: it tests that topology.
fn forced_inline(config: Option<&str>, args: &[String]) -> Option<String> {
    let mode = std::env::var(FORCE_INLINE_ENV).ok()?;
    assert!(
        mode == "on" || mode == "off",
        "{FORCE_INLINE_ENV} must be on or off, not {mode:?}"
    );
    // A config the tracker must refuse is the test's point: left as is.
    let mut table: toml::Table = config.unwrap_or("").parse().ok()?;
    let get = |table: &toml::Table, section: &str, key: &str| {
        table.get(section).and_then(|s| s.get(key)).cloned()
    };
    if get(&table, "swarm", "inline").is_some() {
        return None;
    }
    if mode == "on" {
        let one = Some(toml::Value::Integer(1));
        let xdp = get(&table, "xdp", "iface").is_some_and(|i| i.as_str() != Some(""));
        let workers_chosen = [("swarm", "workers"), ("udp", "workers")]
            .iter()
            .any(|(s, k)| get(&table, s, k).is_some_and(|w| Some(w) != one));
        if xdp || workers_chosen || args.iter().any(|a| a.starts_with("--iface")) {
            return None;
        }
        for section in ["swarm", "udp"] {
            section_of(&mut table, section).insert("workers".into(), toml::Value::Integer(1));
        }
    }
    section_of(&mut table, "swarm").insert("inline".into(), toml::Value::String(mode));
    Some(toml::to_string(&table).expect("a TOML table serializes"))
}

/// Set to `on`, every tracker the tests attach to an interface answers
/// scrapes and announces in the kernel where it can (`[xdp]
/// scrape_in_kernel` and `announce_in_kernel` true), so the XDP tests
/// cover the path with the in-kernel answers too; `off` turns them off;
/// unset leaves the config's choice, the defaults being off. `cargo xtask
/// test` runs tests/xdp.rs both ways. A test that chose a switch keeps it.
pub const KERNEL_ANSWERS_ENV: &str = "TRACKER_TEST_XDP_KERNEL_ANSWERS";

/// The config text with the in-kernel answers switched off when
/// [`KERNEL_ANSWERS_ENV`] asks for it; `None` to keep `config`.
fn forced_kernel_answers(config: Option<&str>, args: &[String]) -> Option<String> {
    let mode = std::env::var(KERNEL_ANSWERS_ENV).ok()?;
    assert!(
        mode == "on" || mode == "off",
        "{KERNEL_ANSWERS_ENV} must be on or off, not {mode:?}"
    );
    let xdp = args.iter().any(|a| a.starts_with("--iface"));
    if !xdp {
        return None;
    }
    let mut table: toml::Table = config.unwrap_or("").parse().ok()?;
    let section = section_of(&mut table, "xdp");
    for key in [
        "scrape_in_kernel",
        "announce_in_kernel",
        "announce_events_in_kernel",
    ] {
        section
            .entry(key)
            .or_insert(toml::Value::Boolean(mode == "on"));
    }
    Some(toml::to_string(&table).expect("a TOML table serializes"))
}

fn section_of<'a>(table: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a config section is a table")
}

/// A running `tracker-user`, killed (SIGTERM, then SIGKILL) when dropped.
pub struct Tracker {
    child: Option<Child>,
    /// Actual bound addresses, in the order of the `--udp` arguments.
    pub addrs: Vec<SocketAddr>,
    /// TCP listeners as logged (`HTTP`, `HTTPS`, `WS`, `WSS` listening on
    /// ADDR), in the order logged. The tracker logs them all before its
    /// `UDP listening on` lines, so they are complete once `start` returns.
    pub tcp: Vec<(String, SocketAddr)>,
    /// Admin listeners as logged (`admin listening on ADDR`), also logged
    /// before the UDP lines.
    pub admin: Vec<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Holds the config file written for this tracker.
    dir: tempfile::TempDir,
    pub config_path: Option<PathBuf>,
}

#[derive(Default)]
pub struct TrackerBuilder {
    config: Option<String>,
    udp: Vec<String>,
    /// `--http` arguments; `None`: one on the first UDP address's IP, port
    /// 0, so no test binds the default 0.0.0.0:6969; `Some(empty)`: no
    /// `--http` at all (the config file's `[http] listen` counts).
    http: Option<Vec<String>>,
    /// `--admin` arguments, like `http`: by default one on port 0, so
    /// parallel tests never fight over the default 127.0.0.1:6970.
    admin: Option<Vec<String>>,
    args: Vec<String>,
    netns: Option<String>,
    bin: Option<String>,
    /// Environment variables set for the tracker.
    env: Vec<(String, String)>,
}

impl TrackerBuilder {
    /// TOML written to a temp file and passed with `-c`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// Adds a `--udp ADDR` (use port 0).
    pub fn udp(mut self, addr: &str) -> Self {
        self.udp.push(addr.to_owned());
        self
    }

    /// Adds a `--http ADDR` (use port 0); replaces the default one.
    pub fn http(mut self, addr: &str) -> Self {
        self.http.get_or_insert_with(Vec::new).push(addr.to_owned());
        self
    }

    /// Passes no `--http`, so `[http] listen` of the config file (or its
    /// default, 0.0.0.0:6969 and [::]:6969) applies.
    pub fn http_from_config(mut self) -> Self {
        self.http = Some(Vec::new());
        self
    }

    /// Adds a `--admin ADDR` (use port 0); replaces the default one.
    pub fn admin(mut self, addr: &str) -> Self {
        self.admin
            .get_or_insert_with(Vec::new)
            .push(addr.to_owned());
        self
    }

    /// Passes no `--admin`, so `[admin] listen` of the config file (or
    /// its default, 127.0.0.1:6970) applies.
    pub fn admin_from_config(mut self) -> Self {
        self.admin = Some(Vec::new());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Runs the tracker inside this network namespace. `nsenter --net`
    /// enters only the network namespace (unlike `ip netns exec`, which
    /// also remounts /sys and so hides bpffs) and execs, so the pid and
    /// signals are still the tracker's.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_owned());
        self
    }

    /// Sets an environment variable for the tracker (RUST_LOG, which the
    /// tracker reads, is otherwise removed so the runner's cannot leak in).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs another tracker-user binary than the one cargo built for tests.
    pub fn bin(mut self, path: &str) -> Self {
        self.bin = Some(path.to_owned());
        self
    }

    pub fn start(self) -> Tracker {
        let dir = tempfile::tempdir().expect("create temp dir");
        let udp = if self.udp.is_empty() {
            vec!["127.0.0.1:0".to_owned()]
        } else {
            self.udp
        };
        let bin = self.bin.clone().unwrap_or_else(|| bin_path().to_owned());
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net=/var/run/netns/{ns}")).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        let mut config_path = None;
        let forced = forced_inline(self.config.as_deref(), &self.args);
        let config = forced.as_ref().or(self.config.as_ref());
        let forced = forced_kernel_answers(config.map(String::as_str), &self.args);
        if let Some(cfg) = forced.as_ref().or(config) {
            let p = dir.path().join("tracker.toml");
            std::fs::write(&p, cfg).expect("write config");
            cmd.arg("-c").arg(&p);
            config_path = Some(p);
        }
        for u in &udp {
            cmd.arg("--udp").arg(u);
        }
        // HTTP and admin default to a free port on the first UDP address's
        // IP: inside a fresh network namespace loopback may be down.
        let on_udp_ip = || {
            let first: SocketAddr = udp[0]
                .parse()
                .expect("--udp argument must be a socket address");
            vec![SocketAddr::new(first.ip(), 0).to_string()]
        };
        let http = self.http.clone().unwrap_or_else(on_udp_ip);
        for h in &http {
            cmd.arg("--http").arg(h);
        }
        let admin = self.admin.clone().unwrap_or_else(on_udp_ip);
        for a in &admin {
            cmd.arg("--admin").arg(a);
        }
        cmd.args(&self.args);
        cmd.env_remove("RUST_LOG");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let (child, stderr, rx) = spawn_reading_stderr(cmd, &bin);

        let wanted: Vec<SocketAddr> = udp
            .iter()
            .map(|u| u.parse().expect("--udp argument must be a socket address"))
            .collect();
        let mut found: Vec<Option<SocketAddr>> = vec![None; wanted.len()];
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut tracker = Tracker {
            child: Some(child),
            addrs: Vec::new(),
            tcp: Vec::new(),
            admin: Vec::new(),
            stderr,
            dir,
            config_path,
        };
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(listener) = parse_tcp_listening(&line) {
                        tracker.tcp.push(listener);
                    }
                    if let Some(addr) = parse_admin_listening(&line) {
                        tracker.admin.push(addr);
                    }
                    if let Some(addr) = parse_listening(&line) {
                        for (w, f) in wanted.iter().zip(found.iter_mut()) {
                            if f.is_none()
                                && w.ip() == addr.ip()
                                && (w.port() == 0 || w.port() == addr.port())
                            {
                                *f = Some(addr);
                                break;
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "tracker did not report `UDP listening on` for all of {udp:?} within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                    tracker.stderr_text()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = tracker.wait_exit(Duration::from_secs(5));
                    panic!(
                        "tracker exited ({status:?}) before listening on all of {udp:?}; stderr:\n{}",
                        tracker.stderr_text()
                    )
                }
            }
        }
        tracker.addrs = found.into_iter().map(Option::unwrap).collect();
        tracker
    }
}

/// Spawns `cmd` with stderr piped, and a thread that drains it for the
/// tracker's whole life (so the pipe never fills), keeping every line and
/// forwarding each to the returned receiver for whoever still listens.
pub fn spawn_reading_stderr(
    mut cmd: Command,
    what: &str,
) -> (Child, Arc<Mutex<Vec<String>>>, mpsc::Receiver<String>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let kept = stderr.clone();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            kept.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (child, stderr, rx)
}

/// `... UDP listening on 127.0.0.1:40123 ...` → the address, from a text
/// or a JSON log line (`"msg":"UDP listening on ADDR"}`).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let idx = line.find("UDP listening on ")?;
    let rest = &line[idx + "UDP listening on ".len()..];
    let token = rest.split_whitespace().next()?;
    let token = token.trim_end_matches([',', '.', ';', ')', '"', '\'', '}']);
    token.parse().ok()
}

/// `... admin listening on 127.0.0.1:40123 ...` → the address.
pub fn parse_admin_listening(line: &str) -> Option<SocketAddr> {
    let idx = line.find("admin listening on ")?;
    let rest = &line[idx + "admin listening on ".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `... HTTPS listening on 127.0.0.1:40123 ...` → ("HTTPS", the address),
/// for the schemes HTTP, HTTPS, WS and WSS.
pub fn parse_tcp_listening(line: &str) -> Option<(String, SocketAddr)> {
    for scheme in ["HTTPS", "HTTP", "WSS", "WS"] {
        let pat = format!("{scheme} listening on ");
        let Some(idx) = line.find(&pat) else { continue };
        // "HTTP listening" must not match inside "HTTPS listening" and so on:
        // the scheme is a word of its own.
        if idx > 0 && line.as_bytes()[idx - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &line[idx + pat.len()..];
        let token = rest.split_whitespace().next()?;
        let token = token.trim_end_matches([',', '.', ';', ')', '"', '\'', '}']);
        return token.parse().ok().map(|a| (scheme.to_owned(), a));
    }
    None
}

impl Tracker {
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    /// A tracker on `127.0.0.1:0` with the default config.
    pub fn start_v4() -> Tracker {
        Tracker::builder().start()
    }

    /// A tracker on `127.0.0.1:0` with the given config.
    pub fn with_config(toml: &str) -> Tracker {
        Tracker::builder().config(toml).start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn v4(&self) -> SocketAddr {
        *self
            .addrs
            .iter()
            .find(|a| a.is_ipv4())
            .expect("tracker has no IPv4 address")
    }

    pub fn v6(&self) -> SocketAddr {
        *self
            .addrs
            .iter()
            .find(|a| a.is_ipv6())
            .expect("tracker has no IPv6 address")
    }

    /// Every TCP listener of `scheme` ("HTTP", "HTTPS", "WS", "WSS").
    pub fn listeners(&self, scheme: &str) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter(|(s, _)| s == scheme)
            .map(|(_, a)| *a)
            .collect()
    }

    fn first_listener(&self, scheme: &str) -> SocketAddr {
        *self.listeners(scheme).first().unwrap_or_else(|| {
            panic!(
                "tracker logged no `{scheme} listening on` line (listeners: {:?}); stderr:\n{}",
                self.tcp,
                self.stderr_text()
            )
        })
    }

    /// The first plain HTTP (and WebSocket) listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.first_listener("HTTP")
    }

    /// The first TLS HTTP (and WebSocket) listener.
    pub fn https_addr(&self) -> SocketAddr {
        self.first_listener("HTTPS")
    }

    /// The first plain WebSocket-only listener.
    pub fn ws_only_addr(&self) -> SocketAddr {
        self.first_listener("WS")
    }

    /// The first TLS WebSocket-only listener.
    pub fn wss_only_addr(&self) -> SocketAddr {
        self.first_listener("WSS")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr_lines().join("\n")
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    pub fn sigusr1(&self) {
        self.signal(libc::SIGUSR1);
    }

    /// Sends SIGTERM and waits (10 s at most) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(10));
        status.unwrap_or_else(|| {
            panic!(
                "tracker did not stop within 10 s of SIGTERM; stderr:\n{}",
                self.stderr_text()
            )
        })
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let child = self.child.as_mut().unwrap();
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// Panics if the process has exited or logged a panic.
    pub fn assert_alive(&mut self) {
        let status = self.child.as_mut().unwrap().try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "tracker exited unexpectedly with {status:?}; stderr:\n{}",
            self.stderr_text()
        );
        self.assert_no_panic();
    }

    pub fn assert_no_panic(&self) {
        let text = self.stderr_text();
        assert!(
            !text.contains("panicked"),
            "tracker logged a panic; stderr:\n{text}"
        );
    }

    fn wait_exit(&mut self, grace: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours; the child is not reaped yet, so its pid is still its own.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let child = self.child.as_mut().unwrap();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !thread::panicking() {
            self.assert_no_panic();
        }
    }
}

/// Runs the binary with `args`, expecting it to exit by itself within 10 s.
/// Returns (status, stdout, stderr).
pub fn run_to_exit<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
) -> (ExitStatus, String, String) {
    let mut child = Command::new(bin_path())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracker");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_t.join().unwrap();
            panic!("tracker {args:?} did not exit within 10 s; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status, out_t.join().unwrap(), err_t.join().unwrap())
}

/// True if `text` says "line N" or ":N" (not followed by another digit).
pub fn mentions_line(text: &str, n: usize) -> bool {
    let n = n.to_string();
    for pat in [format!("line {n}"), format!(":{n}")] {
        for (i, _) in text.match_indices(&pat) {
            let next = text[i + pat.len()..].chars().next();
            if !next.is_some_and(|c| c.is_ascii_digit()) {
                return true;
            }
        }
    }
    false
}

/// Polls `f` every 100 ms until it returns true or `timeout` passes.
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// BEP 15 wire format, written independently of tracker-proto
// ---------------------------------------------------------------------------

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn encode_connect(txid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    v.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    v.extend_from_slice(&txid.to_be_bytes());
    v
}

pub fn encode_scrape(conn_id: u64, txid: u32, hashes: &[[u8; 20]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + 20 * hashes.len());
    v.extend_from_slice(&conn_id.to_be_bytes());
    v.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    v.extend_from_slice(&txid.to_be_bytes());
    for h in hashes {
        v.extend_from_slice(h);
    }
    v
}

/// An announce request; every field of the 98-byte packet plus raw BEP 41
/// option bytes appended after byte 98.
#[derive(Clone, Debug)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: u32,
    pub ip: u32,
    pub key: u32,
    pub numwant: i32,
    pub port: u16,
    pub options: Vec<u8>,
}

impl Announce {
    /// A leecher (`left` = 1000) with a random peer id, event none, numwant -1.
    pub fn new(info_hash: [u8; 20], port: u16) -> Self {
        let mut rng = Rng::new();
        let mut peer_id = [0; 20];
        peer_id[..8].copy_from_slice(b"-IT0001-");
        rng.fill(&mut peer_id[8..]);
        Announce {
            info_hash,
            peer_id,
            downloaded: 0,
            left: 1000,
            uploaded: 0,
            event: EVENT_NONE,
            ip: 0,
            key: rng.u32(),
            numwant: -1,
            port,
            options: Vec::new(),
        }
    }

    pub fn left(mut self, left: u64) -> Self {
        self.left = left;
        self
    }
    pub fn seeder(self) -> Self {
        self.left(0)
    }
    pub fn leecher(self) -> Self {
        self.left(1000)
    }
    pub fn event(mut self, event: u32) -> Self {
        self.event = event;
        self
    }
    pub fn numwant(mut self, n: i32) -> Self {
        self.numwant = n;
        self
    }
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = u32::from(ip);
        self
    }
    pub fn key(mut self, key: u32) -> Self {
        self.key = key;
        self
    }
    pub fn peer_id(mut self, id: [u8; 20]) -> Self {
        self.peer_id = id;
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn downloaded(mut self, n: u64) -> Self {
        self.downloaded = n;
        self
    }
    pub fn uploaded(mut self, n: u64) -> Self {
        self.uploaded = n;
        self
    }
    pub fn options(mut self, raw: &[u8]) -> Self {
        self.options = raw.to_vec();
        self
    }

    pub fn encode(&self, conn_id: u64, txid: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(98 + self.options.len());
        v.extend_from_slice(&conn_id.to_be_bytes()); // 0
        v.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes()); // 8
        v.extend_from_slice(&txid.to_be_bytes()); // 12
        v.extend_from_slice(&self.info_hash); // 16
        v.extend_from_slice(&self.peer_id); // 36
        v.extend_from_slice(&self.downloaded.to_be_bytes()); // 56
        v.extend_from_slice(&self.left.to_be_bytes()); // 64
        v.extend_from_slice(&self.uploaded.to_be_bytes()); // 72
        v.extend_from_slice(&self.event.to_be_bytes()); // 80
        v.extend_from_slice(&self.ip.to_be_bytes()); // 84
        v.extend_from_slice(&self.key.to_be_bytes()); // 88
        v.extend_from_slice(&self.numwant.to_be_bytes()); // 92
        v.extend_from_slice(&self.port.to_be_bytes()); // 96
        assert_eq!(v.len(), 98);
        v.extend_from_slice(&self.options);
        v
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResp {
    pub txid: u32,
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    pub peers: Vec<SocketAddr>,
}

impl AnnounceResp {
    pub fn peer_set(&self) -> HashSet<SocketAddr> {
        let set: HashSet<SocketAddr> = self.peers.iter().copied().collect();
        assert_eq!(
            set.len(),
            self.peers.len(),
            "duplicate peers in announce response: {:?}",
            self.peers
        );
        set
    }
}

/// Per hash: (seeders, completed, leechers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResp(pub Vec<(u32, u32, u32)>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResp {
    pub txid: u32,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Connect { txid: u32, conn_id: u64 },
    Announce(AnnounceResp),
    Scrape(ScrapeResp),
    Error(ErrorResp),
}

/// Decodes a response. `v6` selects 18-byte (IPv6) instead of 6-byte peers.
/// Panics on anything that is not a well-formed BEP 15 response.
pub fn decode_response(buf: &[u8], v6: bool) -> Response {
    assert!(
        buf.len() >= 8,
        "response shorter than 8 bytes: {:02x?}",
        buf
    );
    let action = be_u32(buf, 0);
    let txid = be_u32(buf, 4);
    match action {
        ACTION_CONNECT => {
            assert_eq!(buf.len(), 16, "connect response must be 16 bytes");
            Response::Connect {
                txid,
                conn_id: be_u64(buf, 8),
            }
        }
        ACTION_ANNOUNCE => {
            assert!(buf.len() >= 20, "announce response shorter than 20 bytes");
            let size = if v6 { 18 } else { 6 };
            let body = &buf[20..];
            assert_eq!(
                body.len() % size,
                0,
                "announce response peer list of {} bytes is not a multiple of {size} (v6: {v6})",
                body.len()
            );
            let peers = body
                .chunks(size)
                .map(|c| {
                    let (ip, port) = c.split_at(size - 2);
                    let port = u16::from_be_bytes([port[0], port[1]]);
                    let ip: IpAddr = if v6 {
                        Ipv6Addr::from(<[u8; 16]>::try_from(ip).unwrap()).into()
                    } else {
                        Ipv4Addr::from(<[u8; 4]>::try_from(ip).unwrap()).into()
                    };
                    SocketAddr::new(ip, port)
                })
                .collect();
            Response::Announce(AnnounceResp {
                txid,
                interval: be_u32(buf, 8),
                leechers: be_u32(buf, 12),
                seeders: be_u32(buf, 16),
                peers,
            })
        }
        ACTION_SCRAPE => {
            let body = &buf[8..];
            assert_eq!(
                body.len() % 12,
                0,
                "scrape response body of {} bytes is not a multiple of 12",
                body.len()
            );
            Response::Scrape(ScrapeResp(
                body.chunks(12)
                    .map(|c| (be_u32(c, 0), be_u32(c, 4), be_u32(c, 8)))
                    .collect(),
            ))
        }
        ACTION_ERROR => Response::Error(ErrorResp {
            txid,
            message: String::from_utf8(buf[8..].to_vec())
                .unwrap_or_else(|_| panic!("error message is not UTF-8: {:02x?}", &buf[8..])),
        }),
        other => panic!("response with unknown action {other}: {buf:02x?}"),
    }
}

// ---------------------------------------------------------------------------
// The client: one UDP socket = one source (IP, port) = one simulated peer
// ---------------------------------------------------------------------------

pub struct Client {
    pub sock: UdpSocket,
    pub tracker: SocketAddr,
    conn_id: Cell<Option<u64>>,
    rng: std::cell::RefCell<Rng>,
}

impl Client {
    /// A socket on the loopback address of the tracker's family.
    pub fn new(tracker: SocketAddr) -> Self {
        let bind: SocketAddr = if tracker.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        Client::bind(bind, tracker)
    }

    /// A socket bound to `local` (e.g. `127.0.0.2:0` for a second IP).
    pub fn bind(local: SocketAddr, tracker: SocketAddr) -> Self {
        let sock = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind {local}: {e}"));
        Client::from_socket(sock, tracker)
    }

    /// A client on a socket made elsewhere, e.g. inside a network namespace.
    pub fn from_socket(sock: UdpSocket, tracker: SocketAddr) -> Self {
        Client {
            sock,
            tracker,
            conn_id: Cell::new(None),
            rng: std::cell::RefCell::new(Rng::new()),
        }
    }

    pub fn v6(&self) -> bool {
        self.tracker.is_ipv6()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// The address other peers should see for this client announcing `port`.
    pub fn peer_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.local_addr().ip(), port)
    }

    pub fn txid(&self) -> u32 {
        self.rng.borrow_mut().u32()
    }

    pub fn send(&self, pkt: &[u8]) {
        self.sock.send_to(pkt, self.tracker).expect("send_to");
    }

    /// The next datagram from the tracker, or None after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(
                        from, self.tracker,
                        "datagram from an address other than the tracker's"
                    );
                    return Some(buf[..n].to_vec());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                // ICMP errors from earlier sends (e.g. connection refused).
                Err(_) => continue,
            }
        }
    }

    /// Waits up to `timeout` for a datagram whose transaction id (bytes 4..8)
    /// is `txid`, ignoring others.
    pub fn recv_txid(&self, txid: u32, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let pkt = self.recv_timeout(left)?;
            if pkt.len() >= 8 && be_u32(&pkt, 4) == txid {
                return Some(pkt);
            }
        }
    }

    /// Sends `pkt` (whose txid is at bytes 12..16) and returns the response
    /// with the same txid; resends up to 3 times. Panics if none comes.
    pub fn request(&self, pkt: &[u8]) -> Vec<u8> {
        let txid = be_u32(pkt, 12);
        for _ in 0..ATTEMPTS {
            self.send(pkt);
            if let Some(resp) = self.recv_txid(txid, RECV_TIMEOUT) {
                return resp;
            }
        }
        panic!(
            "no response from tracker {} to {} byte request (txid {txid:#x}) after {ATTEMPTS} attempts",
            self.tracker,
            pkt.len()
        )
    }

    /// Sends and decodes.
    pub fn request_decoded(&self, pkt: &[u8]) -> Response {
        let resp = self.request(pkt);
        decode_response(&resp, self.v6())
    }

    /// Connects and remembers the connection id for later requests.
    pub fn connect(&self) -> u64 {
        let txid = self.txid();
        match self.request_decoded(&encode_connect(txid)) {
            Response::Connect { txid: t, conn_id } => {
                assert_eq!(t, txid, "connect response txid");
                self.conn_id.set(Some(conn_id));
                conn_id
            }
            other => panic!("expected a connect response, got {other:?}"),
        }
    }

    /// The remembered connection id, connecting first if there is none.
    pub fn conn_id(&self) -> u64 {
        match self.conn_id.get() {
            Some(id) => id,
            None => self.connect(),
        }
    }

    pub fn set_conn_id(&self, id: u64) {
        self.conn_id.set(Some(id));
    }

    pub fn try_announce(&self, a: &Announce) -> Response {
        let txid = self.txid();
        let resp = self.request_decoded(&a.encode(self.conn_id(), txid));
        check_txid(&resp, txid);
        resp
    }

    pub fn announce(&self, a: &Announce) -> AnnounceResp {
        match self.try_announce(a) {
            Response::Announce(r) => r,
            other => panic!("expected an announce response to {a:?}, got {other:?}"),
        }
    }

    pub fn announce_err(&self, a: &Announce) -> ErrorResp {
        match self.try_announce(a) {
            Response::Error(e) => e,
            other => panic!("expected an error response to {a:?}, got {other:?}"),
        }
    }

    pub fn try_scrape(&self, hashes: &[[u8; 20]]) -> Response {
        let txid = self.txid();
        let resp = self.request_decoded(&encode_scrape(self.conn_id(), txid, hashes));
        check_txid(&resp, txid);
        resp
    }

    pub fn scrape(&self, hashes: &[[u8; 20]]) -> ScrapeResp {
        match self.try_scrape(hashes) {
            Response::Scrape(r) => r,
            other => panic!("expected a scrape response, got {other:?}"),
        }
    }
}

fn check_txid(resp: &Response, txid: u32) {
    let got = match resp {
        Response::Connect { txid, .. } => *txid,
        Response::Announce(r) => r.txid,
        Response::Scrape(_) => return, // checked by recv_txid
        Response::Error(e) => e.txid,
    };
    assert_eq!(got, txid, "response txid");
}
