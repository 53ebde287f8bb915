//! The tracker's configuration: what `-p` prints and `-c FILE` loads.
//!
//! Every limit the tracker enforces is a field here with a safe default.
//! Each struct is `deny_unknown_fields` so a typo in an operator's file is an
//! error rather than a silently ignored setting. The doc comment of each
//! field and section struct is what `-p` prints above it
//! (`#[derive(ConfigDocs)]`), so write them for the operator reading the file.
//!
//! The root is here with loading and printing; the sections are in
//! `sections` (swarm, protocol, UDP, access list, XDP, log level) and, for
//! HTTP, WebSocket and TLS, in `tracker_http_ws::config`, next to the server
//! they configure (`http_ws` here hands them to it); the limits types cannot
//! express are in `validate`, and what a refused file or setting reports in
//! `error`.
// Those doc comments are TOML comments first: `[tls]` there names a section
// of the file, not an item to link to.
#![allow(rustdoc::broken_intra_doc_links)]

mod error;
mod http_ws;
mod logging;
mod sections;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracker_config::{find_key_line, ConfigDocs};

pub use error::{ConfigError, ConfigErrorKind, ValidationError};
pub use logging::{LogFilter, LogFilterError, LogFormat};
// Defined by the server they configure, embedded here like the others.
pub use sections::{
    AccessListConfig, AccessListMode, AdminConfig, LogLevel, PersistenceConfig, PrivilegesConfig,
    ProtocolConfig, SwarmConfig, SwarmInline, UdpConfig, XdpAttachMode, XdpConfig,
};
pub use tracker_http_ws::config::{HttpConfig, TlsConfig, WsConfig};
pub use validate::{MAX_HTTP_WORKERS, MAX_SCRAPE_TORRENTS_LIMIT, MAX_SWARM_WORKERS};

/// The whole file: top-level keys, then one section per part of the tracker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Least severe log level written to stderr: off, error, warn, info,
    /// debug or trace; or RUST_LOG-style directives giving modules their
    /// own level, e.g. "warn,tracker_swarm=debug,tracker_user::udp=trace"
    /// (the longest matching module wins). The RUST_LOG environment
    /// variable, when set, replaces this; --log-level replaces both.
    pub log_level: LogFilter,
    /// How log lines are written: "text" (time, level, module, message)
    /// or "json" (one object per line with ts, level, target and msg, for
    /// log shippers).
    pub log_format: LogFormat,
    #[config(section)]
    pub swarm: SwarmConfig,
    #[config(section)]
    pub protocol: ProtocolConfig,
    #[config(section)]
    pub udp: UdpConfig,
    #[config(section)]
    pub http: HttpConfig,
    #[config(section)]
    pub ws: WsConfig,
    #[config(section)]
    pub tls: TlsConfig,
    #[config(section)]
    pub access_list: AccessListConfig,
    #[config(section)]
    pub xdp: XdpConfig,
    #[config(section)]
    pub privileges: PrivilegesConfig,
    #[config(section)]
    pub admin: AdminConfig,
    #[config(section)]
    pub persistence: PersistenceConfig,
}

impl Config {
    /// Reads, parses and validates a config file. Keys left out keep their
    /// defaults; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        let origin = path.display().to_string();
        let config = Self::parse(&text, &origin)?;
        if let Err(invalid) = config.validate() {
            // The key to blame may have kept its default and so not be in
            // the file; then the setting that made it matter points the way.
            let line = std::iter::once(invalid.key())
                .chain(invalid.related_key())
                .find_map(|key| find_key_line(&text, key));
            return Err(ConfigError::limit(origin, line, invalid));
        }
        Ok(config)
    }

    /// Parses TOML text; `origin` names it in errors. Does not validate.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        tracker_config::from_toml(text).map_err(|e| ConfigError::toml(origin, e))
    }

    /// [`Config::validate`] for a config that came from the command line
    /// rather than (only) a file, so errors name `command line` as origin.
    pub(crate) fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
        self.validate()
            .map_err(|invalid| ConfigError::limit(origin.to_owned(), None, invalid))
    }

    /// The whole config as TOML with a `#` comment above every key and
    /// section, values taken from `self`: `-p` prints this machine's defaults
    /// as a starting point for an operator's file.
    pub fn to_commented_toml(&self) -> String {
        // Only a path that is not UTF-8 fails to print, and such a config
        // never came from a TOML file; the writer says so in a comment.
        tracker_config::commented_toml(self, HEADER)
    }
}

const HEADER: &str = "\
# tracker-user configuration.
#
# Load it with `tracker-user -c FILE`. Keys left out keep the defaults shown
# here; an unknown key is an error, so a typo cannot silently fall back to a
# default. Print a fresh copy with `tracker-user -p`.
";

#[cfg(test)]
mod tests;
