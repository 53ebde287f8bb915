//! The command line: which config file to load and the few settings worth
//! overriding without editing it.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::PossibleValue;

use crate::config::{Config, ConfigError, LogFilter, LogFormat};

/// The environment variable that, when set and not empty, replaces the
/// config's `log_level` (but not `--log-level`), as Rust programs' users
/// expect.
pub const RUST_LOG: &str = "RUST_LOG";

/// A BitTorrent tracker: UDP (BEP 15), HTTP and WebTorrent from one swarm store.
///
/// Settings come from the defaults, then the file given with -c, then the
/// options below. Run with -p to see every setting, its default and what it
/// does.
#[derive(clap::Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "tracker-user", version)]
pub struct Cli {
    /// Load settings from this TOML file (unknown keys are errors).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the default config, commented, to stdout and exit.
    #[arg(short, long)]
    pub print_config: bool,

    /// Serve UDP on this address instead of the configured udp.listen.
    /// Repeat to listen on several, e.g. --udp 0.0.0.0:6969 --udp [::]:6969.
    #[arg(long = "udp", value_name = "ADDR")]
    pub udp: Vec<SocketAddr>,

    /// Serve HTTP and WebSocket on this TCP address instead of the configured
    /// http.listen. Repeat to listen on several.
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Vec<SocketAddr>,

    /// Serve the admin endpoints (/health) on this address instead of the
    /// configured admin.listen. Repeat to listen on several.
    #[arg(long = "admin", value_name = "ADDR")]
    pub admin: Vec<SocketAddr>,

    /// What to log, overriding log_level and RUST_LOG: a level (off, error,
    /// warn, info, debug, trace) or directives such as
    /// "warn,tracker_swarm=debug".
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<LogFilter>,

    /// How to write log lines, overriding log_format: text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Attach the XDP fast path to this interface, overriding xdp.iface
    /// (needs the program built in: `cargo xtask build-ebpf`).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
}

impl Cli {
    /// Whether any option changes the loaded config.
    pub fn overrides_anything(&self) -> bool {
        !self.udp.is_empty()
            || !self.http.is_empty()
            || !self.admin.is_empty()
            || self.log_level.is_some()
            || self.log_format.is_some()
            || self.iface.is_some()
    }

    /// Applies the command-line overrides to a loaded config.
    pub fn apply(&self, config: &mut Config) {
        // Replace rather than extend: whoever types --udp means exactly
        // these addresses, not these plus the file's.
        if !self.udp.is_empty() {
            config.udp.listen.clone_from(&self.udp);
        }
        if !self.http.is_empty() {
            config.http.listen.clone_from(&self.http);
        }
        if !self.admin.is_empty() {
            config.admin.listen.clone_from(&self.admin);
        }
        if let Some(filter) = &self.log_level {
            config.log_level.clone_from(filter);
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(iface) = &self.iface {
            config.xdp.iface.clone_from(iface);
        }
    }
}

/// The config to run with: the defaults or the `-c` file, then the
/// command-line overrides, validated again since an override can break a
/// limit (e.g. `--udp` with `udp.workers = 0`).
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    load_config_with_env(cli, std::env::var_os(RUST_LOG).as_deref())
}

/// [`load_config`] with the value of `RUST_LOG` given rather than read, so
/// tests need not change the process environment.
pub fn load_config_with_env(cli: &Cli, rust_log: Option<&OsStr>) -> Result<Config, ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    // An empty RUST_LOG is how shells unset it for one command. A bad one
    // is refused rather than quietly logging what the file says, unless
    // --log-level makes it moot.
    if let Some(value) = rust_log.filter(|v| !v.is_empty() && cli.log_level.is_none()) {
        let origin = format!("environment variable {RUST_LOG}");
        let value = value
            .to_str()
            .ok_or_else(|| ConfigError::value(&origin, "log_level", "is not UTF-8".to_owned()))?;
        config.log_level = value.parse().map_err(|e: crate::config::LogFilterError| {
            ConfigError::value(&origin, "log_level", e.to_string())
        })?;
    }
    if cli.overrides_anything() {
        cli.apply(&mut config);
        let origin = match &cli.config {
            Some(path) => format!("command line (with {})", path.display()),
            None => "command line".to_owned(),
        };
        config.validate_as(&origin)?;
    }
    Ok(config)
}

// By hand rather than derived so config stays free of clap.
impl clap::ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigErrorKind, LogLevel};
    use clap::{CommandFactory, Parser};
    use std::io::Write;

    /// [`load_config`] as if RUST_LOG were unset, whatever the test runner's
    /// environment says.
    fn load(cli: &Cli) -> Result<Config, ConfigError> {
        load_config_with_env(cli, None)
    }

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("tracker-user").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let argv = std::iter::once("tracker-user").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect_err("should be refused")
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write temp file");
        file
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments() {
        let cli = parse(&[]);
        assert_eq!(cli.config, None);
        assert!(!cli.print_config);
        assert!(cli.udp.is_empty());
        assert_eq!(cli.log_level, None);
        assert!(!cli.overrides_anything());
        assert_eq!(load(&cli).unwrap(), Config::default());
    }

    #[test]
    fn short_and_long_options() {
        let cli = parse(&["-c", "/etc/t.toml", "-p"]);
        assert_eq!(cli.config, Some(PathBuf::from("/etc/t.toml")));
        assert!(cli.print_config);
        let cli = parse(&["--config=/x.toml", "--print-config"]);
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(cli.print_config);
    }

    #[test]
    fn udp_is_repeatable_and_replaces_listen() {
        let cli = parse(&["--udp", "127.0.0.1:7000", "--udp=[::1]:7001"]);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:7000".parse().unwrap(),
            "[::1]:7001".parse().unwrap(),
        ];
        assert_eq!(cli.udp, want);
        let mut config = Config::default();
        cli.apply(&mut config);
        assert_eq!(config.udp.listen, want);
    }

    #[test]
    fn http_is_repeatable_and_replaces_only_http_listen() {
        let cli = parse(&["--http", "127.0.0.1:8000", "--http=[::1]:8001"]);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:8000".parse().unwrap(),
            "[::1]:8001".parse().unwrap(),
        ];
        assert!(cli.overrides_anything());
        let mut config = Config::default();
        config.ws.listen = vec!["127.0.0.1:9000".parse().unwrap()];
        cli.apply(&mut config);
        assert_eq!(config.http.listen, want);
        assert_eq!(config.udp.listen, Config::default().udp.listen);
        assert_eq!(config.ws.listen, vec!["127.0.0.1:9000".parse().unwrap()]);
    }

    #[test]
    fn admin_is_repeatable_and_replaces_only_admin_listen() {
        let cli = parse(&["--admin", "127.0.0.1:9000", "--admin=[::1]:9001"]);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:9000".parse().unwrap(),
            "[::1]:9001".parse().unwrap(),
        ];
        assert!(cli.overrides_anything());
        let mut config = Config::default();
        cli.apply(&mut config);
        assert_eq!(config.admin.listen, want);
        assert_eq!(config.http.listen, Config::default().http.listen);
    }

    #[test]
    fn bad_udp_address_is_refused() {
        let err = parse_err(&["--udp", "localhost"]);
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("localhost"), "{err}");
    }

    #[test]
    fn log_levels() {
        for (arg, level) in [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
            ("off", LogLevel::Off),
        ] {
            let cli = parse(&["--log-level", arg]);
            assert_eq!(cli.log_level, Some(level.into()));
            let mut config = Config::default();
            cli.apply(&mut config);
            assert_eq!(config.log_level, level);
        }
        let err = parse_err(&["--log-level", "loud"]);
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let msg = err.to_string();
        assert!(msg.contains("`loud` is not a level (off, error"), "{msg}");
    }

    #[test]
    fn log_level_takes_directives() {
        let spec = "warn,tracker_swarm=debug,tracker_http_ws::worker=trace";
        let cli = parse(&["--log-level", spec]);
        let mut config = Config::default();
        cli.apply(&mut config);
        assert_eq!(config.log_level.as_str(), spec);
        let err = parse_err(&["--log-level", "info,tracker-swarm=debug"]);
        assert!(err.to_string().contains("`tracker_swarm`"), "{err}");
    }

    #[test]
    fn log_format() {
        assert_eq!(load(&parse(&[])).unwrap().log_format, LogFormat::Text);
        let cli = parse(&["--log-format", "json"]);
        assert!(cli.overrides_anything());
        assert_eq!(load(&cli).unwrap().log_format, LogFormat::Json);
        let err = parse_err(&["--log-format", "xml"]);
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(err.to_string().contains("text, json"), "{err}");
    }

    #[test]
    fn rust_log_replaces_the_file_but_not_the_command_line() {
        let file = config_file("log_level = \"warn\"\n");
        let path = file.path().to_str().expect("utf-8 temp path");
        let env = |v: &'static str| Some(OsStr::new(v));

        let cli = parse(&["-c", path]);
        let config = load_config_with_env(&cli, env("info,tracker_swarm=debug")).unwrap();
        assert_eq!(config.log_level.as_str(), "info,tracker_swarm=debug");
        // Empty counts as unset.
        let config = load_config_with_env(&cli, env("")).unwrap();
        assert_eq!(config.log_level, LogLevel::Warn);

        let err = load_config_with_env(&cli, env("info,loud")).unwrap_err();
        assert_eq!(err.key(), Some("log_level"));
        let msg = err.to_string();
        assert!(
            msg.starts_with("environment variable RUST_LOG: key `log_level`: `loud`"),
            "{msg}"
        );

        // --log-level wins, so a RUST_LOG it replaces is not even parsed.
        let cli = parse(&["-c", path, "--log-level", "error"]);
        let config = load_config_with_env(&cli, env("info,loud")).unwrap();
        assert_eq!(config.log_level, LogLevel::Error);
    }

    #[test]
    fn unknown_option_is_refused() {
        parse_err(&["--workers", "3"]);
    }

    #[test]
    fn help_mentions_every_option() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "--config <FILE>",
            "--print-config",
            "--udp <ADDR>",
            "--http <ADDR>",
            "--admin <ADDR>",
            "--log-level <FILTER>",
            "--log-format <FORMAT>",
        ] {
            assert!(help.contains(needle), "{needle} missing from\n{help}");
        }
    }

    #[test]
    fn load_config_reads_the_file_then_applies_overrides() {
        let file =
            config_file("log_level = \"warn\"\n[udp]\nlisten = [\"127.0.0.1:1\"]\nworkers = 2\n");
        let path = file.path().to_str().expect("utf-8 temp path");

        let config = load(&parse(&["-c", path])).unwrap();
        assert_eq!(config.log_level, LogLevel::Warn);
        assert_eq!(config.udp.listen, vec!["127.0.0.1:1".parse().unwrap()]);
        assert_eq!(config.udp.workers, 2);

        let cli = parse(&["-c", path, "--log-level", "debug", "--udp", "[::1]:2"]);
        let config = load(&cli).unwrap();
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.udp.listen, vec!["[::1]:2".parse().unwrap()]);
        assert_eq!(config.udp.workers, 2);
    }

    #[test]
    fn load_config_passes_file_errors_through() {
        let file = config_file("[udp]\nworkerz = 2\n");
        let path = file.path().to_str().expect("utf-8 temp path");
        let err = load(&parse(&["-c", path])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{path}:2:1: key `udp.workerz`")),
            "{err}"
        );
    }

    #[test]
    fn load_config_validates_after_overrides() {
        // Valid on its own: no addresses, so no socket workers needed.
        let file = config_file("[udp]\nlisten = []\nworkers = 0\n");
        let path = file.path().to_str().expect("utf-8 temp path");
        assert!(load(&parse(&["-c", path])).is_ok());

        let err = load(&parse(&["-c", path, "--udp", "127.0.0.1:1"])).unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::Limit);
        assert_eq!(err.key(), Some("udp.workers"));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("command line (with {path}): key `udp.workers`")),
            "{msg}"
        );
    }
}
