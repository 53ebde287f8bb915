//! The command line. Each protocol is a subcommand with the same options;
//! what differs lives in the config file's section of that protocol.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, ConfigError};
use crate::report::Protocol;

/// Load generator for BitTorrent trackers.
///
/// Settings come from the defaults, then the file given with -c, then the
/// options. Run `tracker-load udp -p` to see every setting (of every
/// protocol) and what it does.
#[derive(clap::Parser, Debug, Clone, PartialEq)]
#[command(name = "tracker-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// Load a UDP tracker (BEP 15) with connects, announces and scrapes.
    Udp(RunArgs),
    /// Load an HTTP(S) tracker (BEP 3) with announces and scrapes over
    /// keep-alive connections.
    Http(RunArgs),
    /// Load a WebTorrent tracker (WebSocket, ws:// or wss://) with
    /// announces carrying offers, answers to relayed offers, and scrapes.
    Ws(RunArgs),
}

impl Command {
    pub fn protocol(&self) -> Protocol {
        match self {
            Command::Udp(_) => Protocol::Udp,
            Command::Http(_) => Protocol::Http,
            Command::Ws(_) => Protocol::Ws,
        }
    }

    pub fn args(&self) -> &RunArgs {
        match self {
            Command::Udp(a) | Command::Http(a) | Command::Ws(a) => a,
        }
    }
}

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Load settings from this TOML file (unknown keys are errors).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the default config, commented, to stdout and exit.
    #[arg(short, long)]
    pub print_config: bool,

    /// Print one JSON object with the results on stdout (the summary goes
    /// to stderr) and no progress line.
    #[arg(long)]
    pub json: bool,

    /// Seconds to measure after the warmup, overriding the protocol
    /// section's `duration` (udp.duration, http.duration, ws.duration).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Tracker address (IP:PORT), overriding the protocol section's
    /// `tracker`.
    #[arg(long, value_name = "ADDR")]
    pub tracker: Option<SocketAddr>,

    /// Sending threads, overriding the protocol section's `workers`.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// udp only: announce every client of the profile once before the
    /// warmup (sets udp.prefill).
    #[arg(long)]
    pub prefill: bool,
}

impl RunArgs {
    fn overrides_anything(&self) -> bool {
        self.duration.is_some() || self.tracker.is_some() || self.workers.is_some() || self.prefill
    }

    fn apply(&self, protocol: Protocol, config: &mut Config) {
        let (duration, tracker, workers) = match protocol {
            Protocol::Udp => (
                &mut config.udp.duration,
                &mut config.udp.tracker,
                &mut config.udp.workers,
            ),
            Protocol::Http => (
                &mut config.http.duration,
                &mut config.http.tracker,
                &mut config.http.workers,
            ),
            Protocol::Ws => (
                &mut config.ws.duration,
                &mut config.ws.tracker,
                &mut config.ws.workers,
            ),
        };
        if let Some(d) = self.duration {
            *duration = d;
        }
        if let Some(t) = self.tracker {
            *tracker = t;
        }
        if let Some(w) = self.workers {
            *workers = w;
        }
        if self.prefill {
            config.udp.prefill = true;
        }
        if let (Protocol::Udp, Some(tracker)) = (protocol, self.tracker) {
            config.udp.tracker = tracker;
            // The default binds to 127.0.0.1; an IPv6 tracker needs ::1.
            if config
                .udp
                .bind
                .iter()
                .all(|ip| ip.is_ipv4() != tracker.is_ipv4())
                && config.udp.bind == crate::config::UdpConfig::default().bind
                && tracker.is_ipv6()
            {
                config.udp.bind = vec![std::net::Ipv6Addr::LOCALHOST.into()];
            }
        }
    }

    /// The config to run `protocol` with: defaults or the `-c` file, then
    /// overrides, validated again since an override can break a limit.
    pub fn load_config(&self, protocol: Protocol) -> Result<Config, ConfigError> {
        if self.prefill && protocol != Protocol::Udp {
            return Err(ConfigError::command_line(
                "udp.prefill",
                format!("--prefill is for udp only, not {}", protocol.name()),
            ));
        }
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(protocol, &mut config);
        let origin = match (&self.config, self.overrides_anything()) {
            (Some(path), true) => format!("command line (with {})", path.display()),
            (Some(path), false) => path.display().to_string(),
            (None, _) => "command line".to_owned(),
        };
        config.validate(&origin)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tracker-load").chain(args.iter().copied()))
    }

    fn command(name: &str, args: &[&str]) -> Command {
        let mut full = vec![name];
        full.extend_from_slice(args);
        parse(&full)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    fn udp(args: &[&str]) -> RunArgs {
        let c = command("udp", args);
        assert_eq!(c.protocol(), Protocol::Udp);
        c.args().clone()
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_the_defaults() {
        let a = udp(&[
            "--duration",
            "2.5",
            "--tracker",
            "127.0.0.1:7000",
            "--workers",
            "3",
            "--json",
        ]);
        assert!(a.json && !a.print_config);
        let c = a.load_config(Protocol::Udp).unwrap();
        assert_eq!(c.udp.duration, 2.5);
        assert_eq!(c.udp.tracker, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.udp.workers, 3);
        assert_eq!(
            udp(&[]).load_config(Protocol::Udp).unwrap(),
            Config::default()
        );
        assert!(udp(&["-p"]).print_config);
    }

    #[test]
    fn prefill_is_a_udp_flag() {
        assert!(!Config::default().udp.prefill);
        let c = udp(&["--prefill"]).load_config(Protocol::Udp).unwrap();
        assert!(c.udp.prefill);
        let err = command("http", &["--prefill"])
            .args()
            .load_config(Protocol::Http)
            .unwrap_err();
        assert_eq!(err.key(), Some("udp.prefill"));
        assert!(err.to_string().contains("udp only"), "{err}");
    }

    #[test]
    fn ipv6_tracker_switches_the_default_bind() {
        let c = udp(&["--tracker", "[::1]:6969"])
            .load_config(Protocol::Udp)
            .unwrap();
        assert_eq!(c.udp.bind, vec!["::1".parse::<std::net::IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_overrides_are_refused() {
        let err = udp(&["--workers", "0"])
            .load_config(Protocol::Udp)
            .unwrap_err();
        assert_eq!(err.key(), Some("udp.workers"));
        assert!(
            err.to_string()
                .starts_with("command line: key `udp.workers`"),
            "{err}"
        );
        assert!(parse(&["udp", "--tracker", "nowhere"]).is_err());
        assert!(parse(&["udp", "--bogus"]).is_err());
        assert!(parse(&[]).is_err(), "a subcommand is required");
    }

    #[test]
    fn config_file_then_flags() {
        let path =
            std::env::temp_dir().join(format!("tracker-load-cli-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[profile]\ntorrents = 10\n[udp]\nworkers = 2\nduration = 9\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = udp(&["-c", p, "--duration", "1"])
            .load_config(Protocol::Udp)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            (c.profile.torrents, c.udp.workers, c.udp.duration),
            (10, 2, 1.0)
        );
    }

    #[test]
    fn flags_go_to_the_subcommands_section() {
        for (name, protocol) in [("http", Protocol::Http), ("ws", Protocol::Ws)] {
            let c = command(
                name,
                &[
                    "--tracker",
                    "127.0.0.1:3000",
                    "--duration",
                    "1.5",
                    "--workers",
                    "2",
                ],
            );
            assert_eq!(c.protocol(), protocol);
            let config = c.args().load_config(protocol).unwrap();
            let (tracker, duration, workers) = match protocol {
                Protocol::Http => (
                    config.http.tracker,
                    config.http.duration,
                    config.http.workers,
                ),
                _ => (config.ws.tracker, config.ws.duration, config.ws.workers),
            };
            assert_eq!(tracker, "127.0.0.1:3000".parse().unwrap());
            assert_eq!((duration, workers), (1.5, 2));
            // The other sections keep their defaults.
            assert_eq!(config.udp, crate::config::UdpConfig::default());
        }
        let err = command("http", &["--workers", "512"])
            .args()
            .load_config(Protocol::Http)
            .unwrap_err();
        // 512 workers cannot share the default 256 connections.
        assert_eq!(err.key(), Some("http.connections"));
    }
}
