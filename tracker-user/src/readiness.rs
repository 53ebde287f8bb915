//! Saying the tracker is ready: one `ready:` line on stderr naming every
//! address served, whatever the log level, and under systemd
//! (`NOTIFY_SOCKET` set) READY=1, STATUS=, WATCHDOG=1 while running and
//! STOPPING=1 at shutdown.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracker_http_ws::{ListenerKind, ListenerSpec};

use crate::config::LogFormat;

/// Everything the tracker serves, in the order the `ready:` line lists it.
/// Front ends added later (an admin listener, say) push their own entries
/// with [`ReadyLine::push`].
#[derive(Clone, Debug, Default)]
pub struct ReadyLine {
    served: Vec<String>,
    xdp: Option<String>,
}

impl ReadyLine {
    /// `udp://ADDR` for each UDP socket address.
    pub fn udp(&mut self, addrs: &[SocketAddr]) {
        for addr in addrs {
            self.push(format!("udp://{addr}"));
        }
    }

    /// Each TCP listener with its schemes: an `[http]` listener serves
    /// WebSocket upgrades too, so it is named with both.
    pub fn tcp(&mut self, specs: &[ListenerSpec]) {
        for spec in specs {
            let (http, ws) = if spec.tls {
                ("https", "wss")
            } else {
                ("http", "ws")
            };
            if spec.kind == ListenerKind::Http {
                self.push(format!("{http}://{}", spec.addr));
            }
            self.push(format!("{ws}://{}", spec.addr));
        }
    }

    /// One more entry, already with its scheme (`admin http://ADDR`).
    pub fn push(&mut self, entry: String) {
        self.served.push(entry);
    }

    /// The XDP attachment serving the UDP addresses on an interface.
    pub fn xdp(&mut self, iface: &str, mode: &str, queues: usize) {
        self.xdp = Some(format!(
            "xdp {iface} ({mode} mode, {queues} AF_XDP queue{})",
            if queues == 1 { "" } else { "s" }
        ));
    }

    /// XDP was asked for on `iface` but could not be set up (not
    /// required): the UDP addresses are served on plain sockets only.
    pub fn xdp_unavailable(&mut self, iface: &str) {
        self.xdp = Some(format!("xdp {iface} not attached, plain sockets only"));
    }

    /// What is served, without the `ready:` prefix (systemd's STATUS=).
    pub fn status(&self) -> String {
        let mut text = self.served.join(", ");
        if let Some(xdp) = &self.xdp {
            let _ = write!(text, "; {xdp}");
        }
        text
    }

    /// `ready: udp://…, http://…, ws://…; xdp IFACE (…)`.
    pub fn line(&self) -> String {
        format!("ready: {}", self.status())
    }

    /// Writes the line to stderr, whatever the log filter says: bare in
    /// text mode, where scripts look for a line starting `ready: `; as an
    /// info record in JSON mode, so that every line a shipper reads is JSON.
    pub fn print(&self, format: LogFormat) {
        match format {
            LogFormat::Text => eprintln!("{}", self.line()),
            LogFormat::Json => {
                let line = crate::logging::info_line(format, module_path!(), &self.line());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }
}

/// The service manager's notification socket, connected at start: a
/// connected datagram socket keeps working after a chroot hides the
/// socket's path, and after the switch to a user who could not connect.
/// (sd-notify's `notify` connects anew for every message, so only its
/// message formats are used here.)
pub struct Notifier {
    socket: Option<UnixDatagram>,
    /// Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.
    watchdog: Option<Duration>,
    last_fed: Instant,
}

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` if set (a path, or `@name` for an
    /// abstract socket). A socket that cannot be reached is a warning: the
    /// tracker serves anyway, and systemd will say the unit never got ready.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| match connect(&path) {
            Ok(socket) => Some(socket),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET {path:?}: cannot connect: {e}");
                None
            }
        });
        Notifier {
            watchdog: socket.as_ref().and(watchdog_interval()),
            socket,
            last_fed: Instant::now(),
        }
    }

    /// READY=1 with what is served as STATUS=.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_fed = Instant::now();
    }

    /// WATCHDOG=1 when half the watchdog interval passed since the last
    /// one; called from the signal loop a few times a second.
    pub fn feed_watchdog(&mut self) {
        if let Some(interval) = self.watchdog {
            if self.last_fed.elapsed() >= interval {
                self.send(&[NotifyState::Watchdog]);
                self.last_fed = Instant::now();
            }
        }
    }

    /// STOPPING=1, when shutdown begins.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(socket) = &self.socket else { return };
        let mut message = String::new();
        for state in states {
            let _ = writeln!(message, "{state}");
        }
        if let Err(e) = socket.send(message.as_bytes()) {
            log::warn!("notifying the service manager failed: {e}");
        }
    }
}

fn connect(path: &std::ffi::OsStr) -> std::io::Result<UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    match path.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            socket.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?
        }
        None => socket.connect(path)?,
    }
    Ok(socket)
}

/// The watchdog interval to keep, as sd_watchdog_enabled(3) reads it:
/// WATCHDOG_USEC, for us unless WATCHDOG_PID names another process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, kind: ListenerKind, tls: bool) -> ListenerSpec {
        ListenerSpec {
            addr: addr.parse().unwrap(),
            kind,
            tls,
        }
    }

    #[test]
    fn every_address_with_its_schemes_then_xdp() {
        let mut ready = ReadyLine::default();
        ready.udp(&[
            "0.0.0.0:6969".parse().unwrap(),
            "[::]:6969".parse().unwrap(),
        ]);
        ready.tcp(&[
            spec("0.0.0.0:6969", ListenerKind::Http, false),
            spec("[::1]:443", ListenerKind::Http, true),
            spec("127.0.0.1:8000", ListenerKind::WsOnly, false),
            spec("127.0.0.1:8443", ListenerKind::WsOnly, true),
        ]);
        ready.push("admin http://127.0.0.1:9000".into());
        ready.xdp("eth0", "Driver", 2);
        assert_eq!(
            ready.line(),
            "ready: udp://0.0.0.0:6969, udp://[::]:6969, http://0.0.0.0:6969, \
             ws://0.0.0.0:6969, https://[::1]:443, wss://[::1]:443, ws://127.0.0.1:8000, \
             wss://127.0.0.1:8443, admin http://127.0.0.1:9000; \
             xdp eth0 (Driver mode, 2 AF_XDP queues)"
        );
        ready.xdp_unavailable("eth0");
        assert!(ready
            .status()
            .ends_with("; xdp eth0 not attached, plain sockets only"));
    }
}
