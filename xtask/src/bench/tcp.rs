//! `cargo xtask bench http` and `cargo xtask bench ws`: our tracker's HTTP
//! and WebTorrent (WebSocket) service against aquatic_http and aquatic_ws,
//! plain and over TLS, under `tracker-load http` and `tracker-load ws`.
//!
//! Everything runs over loopback: the tracker pinned to core 0 with two
//! threads (one socket worker, one swarm worker, for both systems), the
//! generator to core 1. TLS uses a self-signed certificate made here.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::Tracker;
use super::report::{
    alternate, command_line, cpu_notes, every_run, find, how_to_read, now_utc, preamble, table,
    thousands, vs_anchor, write_sections, Column, Progress, Series, LEFT_IN_TARGET, LOOPBACK_NOTE,
};
use super::sample::{measure, measure_background, Generator, Load, NoHooks, RunResult};
use super::{
    build_ours, check_stop, generator_keys, has_key, install_anchor, parse_opts, prepare,
    write_load_config, Binaries, Opts, AQUATIC_VERSION, ONE_HOST_PEERS_PER_IP,
};

/// HTTP connections of the generator, one request in flight each.
/// aquatic_http answers each request some 8 ms after it came, whatever its
/// load (its glommio executors), so it is kept busy only by many requests
/// at once: with 128 connections it serves half what it serves with 1024.
/// Both trackers get the same.
const HTTP_CONNECTIONS: usize = 1024;
/// WebSocket connections and announces in flight on each: enough to keep
/// either tracker's core busy (each announce is relayed to up to ten peers,
/// which answer, so a connection receives some twenty messages per
/// announce).
const WS_CONNECTIONS: usize = 32;
const WS_IN_FLIGHT: usize = 2;
/// tracker-user's cap on torrents per WebSocket connection, raised for the
/// bench: the generator's connections announce the torrents of all their
/// simulated clients (as aquatic_ws_load_test's do), far more than a
/// browser's, and aquatic_ws has no such cap.
const WS_TORRENTS_PER_CONNECTION: usize = 1 << 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Ws,
}

impl Protocol {
    /// The bench target and generator subcommand.
    fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Ws => "ws",
        }
    }

    fn anchor(self) -> &'static str {
        match self {
            Protocol::Http => "aquatic_http",
            Protocol::Ws => "aquatic_ws",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Ours,
    Aquatic,
}

/// A scenario: the protocol, plain or over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scenario {
    protocol: Protocol,
    tls: bool,
}

impl Scenario {
    /// Its section of docs/benchmarks.md (which also tags its files), and
    /// the section's title.
    fn names(self) -> (&'static str, &'static str) {
        match (self.protocol, self.tls) {
            (Protocol::Http, false) => ("http", "HTTP (BEP 3)"),
            (Protocol::Http, true) => ("https", "HTTPS (BEP 3 over TLS)"),
            (Protocol::Ws, false) => ("ws", "WebTorrent over WebSocket (ws://)"),
            (Protocol::Ws, true) => ("wss", "WebTorrent over WebSocket with TLS (wss://)"),
        }
    }

    fn section(self) -> &'static str {
        self.names().0
    }

    /// The line tracker-user logs once it serves the scenario.
    fn ready_line(self) -> &'static str {
        if self.tls {
            "HTTPS listening on"
        } else {
            "HTTP listening on"
        }
    }
}

struct Bench {
    protocol: Protocol,
    bins: Binaries,
    opts: Opts,
    work: PathBuf,
    /// What `tracker-load <protocol> -p` prints.
    gen_keys: String,
    /// The certificate and key the TLS scenario's trackers use.
    tls: Option<(PathBuf, PathBuf)>,
    ours: String,
    aquatic: String,
}

/// `cargo xtask bench http|ws`: `args` is the whole command after `bench`,
/// `rest` its options.
pub fn run(protocol: Protocol, args: &[String], rest: &[String]) -> Result<()> {
    let name = protocol.name();
    let (mut tls_only, mut plain_only) = (false, false);
    let opts = parse_opts(name, rest, |flag| match flag {
        "--tls" => {
            tls_only = true;
            true
        }
        "--plain" => {
            plain_only = true;
            true
        }
        _ => false,
    })?;
    if tls_only && plain_only {
        bail!("bench {name}: --tls and --plain exclude each other (neither runs both)");
    }
    let work = prepare(
        name,
        "it runs the trackers with root's limits, as the UDP bench does (aquatic's io_uring \
         rings count against the locked-memory limit)",
    )?;
    let bins = Binaries::locate(protocol.anchor());
    if opts.build {
        build_ours()?;
        install_anchor(protocol.anchor())?;
    }
    bins.check(name)?;
    let scenarios: Vec<Scenario> = [false, true]
        .into_iter()
        .filter(|&tls| (tls || !tls_only) && (!tls || !plain_only))
        .map(|tls| Scenario { protocol, tls })
        .collect();
    let tls = match scenarios.iter().any(|s| s.tls) {
        true => Some(self_signed_certificate(&work)?),
        false => None,
    };
    let bench = Bench {
        protocol,
        gen_keys: generator_keys(&bins.load, name)?,
        bins,
        opts: opts.clone(),
        work,
        tls,
        ours: "tracker-user".to_owned(),
        aquatic: format!("{} {AQUATIC_VERSION}", protocol.anchor()),
    };
    let started = now_utc();
    let idle_background = measure_background(Duration::from_secs(2))?;
    eprintln!(
        "xtask: machine busy {:.0} % of a core with nothing of ours running",
        idle_background * 100.0
    );
    let mut progress = Progress::new(opts.runs * 2 * scenarios.len());
    let mut results = Vec::new();
    for &scenario in &scenarios {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let series = alternate(
            scenario.section(),
            &[
                (System::Ours, bench.ours.as_str()),
                (System::Aquatic, bench.aquatic.as_str()),
            ],
            opts.runs,
            &mut progress,
            tcp_log,
            |system, round| bench.one_run(scenario, system, addr, round),
        )?;
        results.push((scenario, series));
    }
    let command = command_line(args);
    let mut sections = Vec::new();
    for (scenario, series) in &results {
        print!("\n{}\n", bench.tables(series));
        let text = bench.report(*scenario, series, &command, &started, idle_background);
        sections.push((scenario.section(), text));
    }
    let path = write_sections(name, &bench.work, opts.quick, &sections)?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

/// The figures of a run the common log line lacks.
fn tcp_log(r: &RunResult) -> String {
    let mut extra = format!(
        ", connections opened {}, lost {}",
        r.num("/connections_opened"),
        r.num("/connections_lost")
    );
    if r.json.get("offers_received").is_some() {
        let _ = write!(
            extra,
            ", per s: announce replies {:.0}, offers relayed {:.0}, answers relayed {:.0}",
            r.per_s("announce_responses"),
            r.per_s("offers_received"),
            r.per_s("answers_received")
        );
    }
    extra
}

/// A free TCP port on loopback (taken again by the trackers, one at a time).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Makes a self-signed certificate (ECDSA P-256, for localhost and
/// 127.0.0.1) and its PKCS#8 key as PEM files in `work`; both trackers read
/// these.
fn self_signed_certificate(work: &Path) -> Result<(PathBuf, PathBuf)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
    let cert = work.join("bench-cert.pem");
    let key = work.join("bench-key.pem");
    fs::write(&cert, made.cert.pem())?;
    fs::write(&key, made.signing_key.serialize_pem())?;
    Ok((cert, key))
}

/// Connects to `addr` until it accepts: aquatic logs nothing when ready.
fn wait_listening(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_stop()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing accepted connections on {addr} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Bench {
    fn one_run(
        &self,
        scenario: Scenario,
        system: System,
        addr: SocketAddr,
        round: usize,
    ) -> Result<RunResult> {
        check_stop()?;
        let who = match system {
            System::Ours => "ours",
            System::Aquatic => "aquatic",
        };
        let tag = format!("{}-{who}-{}", scenario.section(), round + 1);
        let mut tracker = self.start_tracker(scenario, system, addr, &tag)?;
        wait_listening(addr, Duration::from_secs(20)).map_err(|e| tracker.explain(e))?;
        let gen_config = self.write_generator_config(scenario, addr, &tag)?;
        let load = Load {
            opts: &self.opts,
            work: &self.work,
            program: &self.bins.load,
            protocol: self.protocol.name(),
            config: gen_config,
            tag: &tag,
            client_ns: None,
            prefill_peers: None,
            generator: Generator::TrackerLoad,
        };
        measure(&load, &mut tracker, &mut NoHooks)
    }

    fn start_tracker(
        &self,
        scenario: Scenario,
        system: System,
        addr: SocketAddr,
        tag: &str,
    ) -> Result<Tracker> {
        let log_path = self.work.join(format!("{tag}.tracker.log"));
        let config = self.work.join(format!("{tag}.tracker.toml"));
        let tls = match (scenario.tls, &self.tls) {
            (true, Some(paths)) => Some(paths),
            (true, None) => bail!("the TLS scenario needs the certificate"),
            (false, _) => None,
        };
        let mut text = format!("# written by cargo xtask bench {}\n", self.protocol.name());
        let (program, ready, label) = match system {
            System::Ours => {
                let listen = format!("[\"{addr}\"]");
                let (plain, secure) = match tls {
                    Some(_) => ("[]", listen.as_str()),
                    None => (listen.as_str(), "[]"),
                };
                // Every generator connection comes from 127.0.0.1, so the
                // per-IP connection cap (meant for real hosts) is raised to
                // the generator's connection count.
                let _ = write!(
                    text,
                    "log_level = \"info\"\n\n[swarm]\nworkers = 1\n\
                     max_peers_per_ip = {ONE_HOST_PEERS_PER_IP}\n\n[udp]\nlisten = []\n\n\
                     [http]\nworkers = 1\nlisten = {plain}\ntls_listen = {secure}\n\
                     max_connections_per_ip = {PER_IP}\n\n[admin]\nlisten = []\n",
                    PER_IP = HTTP_CONNECTIONS.max(WS_CONNECTIONS)
                );
                if self.protocol == Protocol::Ws {
                    let _ = write!(
                        text,
                        "\n[ws]\nmax_torrents_per_connection = {WS_TORRENTS_PER_CONNECTION}\n"
                    );
                }
                if let Some((cert, key)) = tls {
                    let _ = write!(
                        text,
                        "\n[tls]\ncertificate_path = \"{}\"\nprivate_key_path = \"{}\"\n",
                        cert.display(),
                        key.display()
                    );
                }
                (&self.bins.tracker, Some(scenario.ready_line()), &self.ours)
            }
            System::Aquatic => {
                let _ = write!(
                    text,
                    "socket_workers = 1\nswarm_workers = 1\nlog_level = \"warn\"\n\n\
                     [network]\naddress = \"{addr}\"\nonly_ipv6 = false\nenable_tls = {}\n",
                    tls.is_some()
                );
                if let Some((cert, key)) = tls {
                    let _ = write!(
                        text,
                        "tls_certificate_path = \"{}\"\ntls_private_key_path = \"{}\"\n",
                        cert.display(),
                        key.display()
                    );
                }
                text.push_str("\n[privileges]\ndrop_privileges = false\n");
                (&self.bins.anchor, None, &self.aquatic)
            }
        };
        fs::write(&config, text)?;
        let args = vec!["-c".to_owned(), config.display().to_string()];
        Tracker::start(program, &args, None, &log_path, ready, label)
    }

    fn write_generator_config(
        &self,
        scenario: Scenario,
        addr: SocketAddr,
        tag: &str,
    ) -> Result<PathBuf> {
        let section = self.protocol.name();
        let mut text = format!("# written by cargo xtask bench {section}\n[{section}]\n");
        // Everything else, the [profile] included, keeps the generator's
        // defaults, which are aquatic's load profile.
        let _ = writeln!(text, "tracker = \"{addr}\"");
        let _ = writeln!(text, "workers = 1");
        let _ = writeln!(text, "tls = {}", scenario.tls);
        let knobs: &[(&str, usize)] = match self.protocol {
            Protocol::Http => &[("connections", HTTP_CONNECTIONS), ("pipeline", 1)],
            Protocol::Ws => &[
                ("connections", WS_CONNECTIONS),
                ("max_in_flight", WS_IN_FLIGHT),
            ],
        };
        for (key, value) in knobs {
            if has_key(&self.gen_keys, section, key) {
                let _ = writeln!(text, "{key} = {value}");
            }
        }
        write_load_config(&self.work, tag, &self.opts, text)
    }

    /// The summary table and the ratios of one scenario.
    fn tables(&self, series: &[Series]) -> String {
        let single = self.opts.runs == 1;
        let ours = find(series, &self.ours);
        let aquatic = find(series, &self.aquatic);
        let mut t = table(&[ours, aquatic], single, &[], false);
        t.push('\n');
        t.push_str(&vs_anchor(ours, aquatic, self.protocol.anchor()));
        t
    }

    /// The whole section of one scenario.
    fn report(
        &self,
        scenario: Scenario,
        series: &[Series],
        command: &str,
        started: &str,
        idle_background: f64,
    ) -> String {
        let anchor = self.protocol.anchor();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "## {}: tracker-user against {anchor}\n",
            scenario.names().1
        );
        let runs: Vec<&RunResult> = series.iter().flat_map(|s| s.runs.iter()).collect();
        t.push_str(&preamble(
            &self.opts,
            command,
            started,
            idle_background,
            &runs,
        ));
        t.push_str("### What is measured\n\n");
        t.push_str(&self.load_notes(scenario));
        let _ = writeln!(
            t,
            "- **Trackers**, each started fresh for every run, both pinned to core 0 with the \
             same two threads: `tracker-user` with `[swarm] workers = 1`, `[http] workers = 1`, \
             UDP off{}; `{anchor}` {AQUATIC_VERSION} from crates.io (glommio, io_uring) with \
             `socket_workers = 1`, `swarm_workers = 1`, built with `--no-default-features \
             --features mimalloc`: its default Prometheus feature pulls metrics 0.22.3, which \
             Rust 1.95 refuses to compile. Each keeps its other defaults.{}",
            match self.protocol {
                Protocol::Http => "",
                Protocol::Ws => {
                    " and `[ws] max_torrents_per_connection` raised from 512 (see the load \
                     above; aquatic_ws has no such cap)"
                }
            },
            match scenario.tls {
                true => {
                    " Both serve TLS with rustls and the same self-signed ECDSA P-256 \
                     certificate, made by the bench (rcgen)."
                }
                false => "",
            }
        );
        t.push_str(&cpu_notes(""));
        t.push_str(LOOPBACK_NOTE);
        t.push_str(&how_to_read(match self.protocol {
            Protocol::Http => {
                "Loss is requests unanswered within 2 s; the generator then closes and \
                 reopens the connection."
            }
            Protocol::Ws => {
                "Loss is announces and scrapes unanswered within 2 s. aquatic_ws drops any \
                 message for a connection whose queue (16 messages) is full, announce replies \
                 included."
            }
        }));
        t.push_str("### Results\n\n");
        t.push_str(&self.tables(series));
        t.push_str("\n### Every run\n\n");
        let refs: Vec<&Series> = series.iter().collect();
        let columns = match self.protocol {
            Protocol::Http => HTTP_COLUMNS,
            Protocol::Ws => WS_COLUMNS,
        };
        t.push_str(&every_run(&refs, columns));
        t.push_str(LEFT_IN_TARGET);
        t
    }

    /// What the generator sent, for the section's notes.
    fn load_notes(&self, scenario: Scenario) -> String {
        let tls = if scenario.tls {
            " over TLS (rustls with ring; it accepts the self-signed certificate)"
        } else {
            ""
        };
        let profile = "its default profile, aquatic_udp_load_test's: 1,000,000 torrents, \
                       2,000,000 peers, 75 % seeders, popularity skewed toward a hot head, up \
                       to 10 hashes per scrape";
        match self.protocol {
            Protocol::Http => format!(
                "- **Load**: `tracker-load http` (this repository) with {profile}; announces \
                 and scrapes 50 : 1 (the connect weight has no HTTP counterpart), 30 peers \
                 wanted, compact answers. {HTTP_CONNECTIONS} keep-alive connections{tls}, \
                 one request in flight on each (aquatic_http answers only the first of \
                 pipelined requests); every answer is checked (bencode, counts, peers, the \
                 scrape's hashes). One generator worker, pinned to core 1.\n\
                 - **responses/s**: valid answers over the generator's measured window.\n"
            ),
            Protocol::Ws => format!(
                "- **Load**: `tracker-load ws` (this repository) with {profile}; announces and \
                 scrapes 50 : 1. {WS_CONNECTIONS} WebSocket connections{tls}, each one client \
                 with its own peer id announcing its simulated clients' torrents in turn, \
                 {WS_IN_FLIGHT} announces or scrapes in flight on each, 10 offers (fake SDP) \
                 per announce, and an answer to every offer the tracker relays, as \
                 aquatic_ws_load_test does; the tracker relays the answers back. The \
                 generator acknowledges TCP data at once (TCP_QUICKACK): aquatic_ws leaves \
                 Nagle's algorithm on, and its next message would otherwise wait 40 ms for a \
                 delayed ACK. One generator worker, pinned to core 1.\n\
                 - **responses/s**: every message the generator received in its window: \
                 announce replies, relayed offers, relayed answers, scrape replies (and \
                 aquatic_ws's replies to answers, which tracker-user, like the reference \
                 tracker, does not send), each checked.\n"
            ),
        }
    }
}

/// Connections the generator opened, and lost before the end, in the
/// table of every run.
const CONNECTIONS: Column = Column {
    header: "connections opened / lost",
    cell: |r| {
        format!(
            "{} / {}",
            r.num("/connections_opened"),
            r.num("/connections_lost")
        )
    },
};

const HTTP_COLUMNS: &[Column] = &[CONNECTIONS];

/// WebSocket columns of the table of every run: what the messages were.
const WS_COLUMNS: &[Column] = &[
    Column {
        header: "announce replies/s",
        cell: |r| thousands(r.per_s("announce_responses")),
    },
    Column {
        header: "replies to answers/s",
        cell: |r| thousands(r.per_s("answer_responses")),
    },
    Column {
        header: "offers relayed/s",
        cell: |r| thousands(r.per_s("offers_received")),
    },
    Column {
        header: "answers relayed/s",
        cell: |r| thousands(r.per_s("answers_received")),
    },
    CONNECTIONS,
];
