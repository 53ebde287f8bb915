//! The command line. Each protocol is a subcommand so HTTP and WebSocket
//! load can join UDP with their own options.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, ConfigError};

/// Load generator for BitTorrent trackers.
///
/// Settings come from the defaults, then the file given with -c, then the
/// options. Run `tracker-load udp -p` to see every setting and what it does.
#[derive(clap::Parser, Debug, Clone, PartialEq)]
#[command(name = "tracker-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// Load a UDP tracker (BEP 15) with connects, announces and scrapes.
    Udp(UdpArgs),
}

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct UdpArgs {
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

    /// Seconds to measure after the warmup, overriding udp.duration.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Tracker address, overriding udp.tracker.
    #[arg(long, value_name = "ADDR")]
    pub tracker: Option<SocketAddr>,

    /// Sending threads, overriding udp.workers.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

impl UdpArgs {
    fn overrides_anything(&self) -> bool {
        self.duration.is_some() || self.tracker.is_some() || self.workers.is_some()
    }

    fn apply(&self, config: &mut Config) {
        if let Some(duration) = self.duration {
            config.udp.duration = duration;
        }
        if let Some(tracker) = self.tracker {
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
        if let Some(workers) = self.workers {
            config.udp.workers = workers;
        }
    }

    /// The config to run with: defaults or the `-c` file, then overrides,
    /// validated again since an override can break a limit.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
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

    fn udp(args: &[&str]) -> UdpArgs {
        let mut full = vec!["udp"];
        full.extend_from_slice(args);
        match parse(&full)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
        {
            Command::Udp(a) => a,
        }
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
        let c = a.load_config().unwrap();
        assert_eq!(c.udp.duration, 2.5);
        assert_eq!(c.udp.tracker, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.udp.workers, 3);
        assert_eq!(udp(&[]).load_config().unwrap(), Config::default());
        assert!(udp(&["-p"]).print_config);
    }

    #[test]
    fn ipv6_tracker_switches_the_default_bind() {
        let c = udp(&["--tracker", "[::1]:6969"]).load_config().unwrap();
        assert_eq!(c.udp.bind, vec!["::1".parse::<std::net::IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_overrides_are_refused() {
        let err = udp(&["--workers", "0"]).load_config().unwrap_err();
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
        let c = udp(&["-c", p, "--duration", "1"]).load_config().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            (c.profile.torrents, c.udp.workers, c.udp.duration),
            (10, 2, 1.0)
        );
    }
}
