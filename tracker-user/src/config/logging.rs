//! The root `log_level` and `log_format` keys: which records reach stderr
//! and in what shape. The filter syntax is `RUST_LOG`'s (the `env_filter`
//! crate parses it), a little stricter so a typo is an error rather than a
//! silent change of what is logged.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::LogLevel;

/// A checked `log_level`: one level for everything (`info`), or
/// comma-separated directives that give modules their own level
/// (`warn,tracker_swarm=debug,tracker_http_ws::worker=trace`), the most
/// specific module winning. Kept as written, so `-p` and error messages
/// show the operator's own text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogFilter(String);

impl LogFilter {
    /// The directives as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter the logger applies to each record.
    pub fn build(&self) -> env_filter::Filter {
        let mut builder = env_filter::Builder::new();
        // Checked when this value was made; a failure here would be a bug
        // in `check`, and logging everything at the default beats aborting.
        if builder.try_parse(&self.0).is_err() {
            builder.filter_level(log::LevelFilter::Info);
        }
        builder.build()
    }
}

/// Why a `log_level` value is refused: the directive and what is wrong with
/// it, without the key (the caller knows where the value came from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilterError(String);

impl fmt::Display for LogFilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogFilterError {}

const LEVELS: &str = "off, error, warn, info, debug or trace";

fn is_level(s: &str) -> bool {
    s.parse::<log::LevelFilter>().is_ok()
}

/// `env_filter` reads a bare word that is not a level as "this module, at
/// trace", and `tracker-swarm=debug` as a module no record ever comes from.
/// Either is far likelier a typo than meant, and would silently change what
/// the tracker logs, so both are refused here before `env_filter` checks
/// the rest.
fn check(spec: &str) -> Result<(), LogFilterError> {
    let directives = spec.split('/').next().unwrap_or_default();
    if directives.split(',').all(|d| d.trim().is_empty()) {
        return Err(LogFilterError(format!(
            "names no level: give one of {LEVELS}, or directives like `info,tracker_swarm=debug`"
        )));
    }
    for directive in directives.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        match directive.split_once('=') {
            None if !is_level(directive) => {
                return Err(LogFilterError(format!(
                    "`{directive}` is not a level ({LEVELS}); give a module its level as `{directive}=LEVEL`"
                )));
            }
            None => {}
            Some((module, level)) => {
                let (module, level) = (module.trim(), level.trim());
                if module.is_empty() {
                    return Err(LogFilterError(format!(
                        "`{directive}` names no module before `=`"
                    )));
                }
                if module.contains('-') {
                    return Err(LogFilterError(format!(
                        "`{module}` is not a module path: they use `_` where crate names have `-` (`{}`)",
                        module.replace('-', "_")
                    )));
                }
                if !is_level(level) {
                    return Err(LogFilterError(format!(
                        "`{directive}`: `{level}` is not a level ({LEVELS})"
                    )));
                }
            }
        }
    }
    env_filter::Builder::new()
        .try_parse(spec)
        .map(drop)
        .map_err(|e| LogFilterError(e.to_string()))
}

impl FromStr for LogFilter {
    type Err = LogFilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for LogFilter {
    type Error = LogFilterError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        check(&s)?;
        Ok(Self(s))
    }
}

impl From<LogFilter> for String {
    fn from(filter: LogFilter) -> Self {
        filter.0
    }
}

impl From<LogLevel> for LogFilter {
    fn from(level: LogLevel) -> Self {
        Self(level.as_str().to_owned())
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        LogLevel::default().into()
    }
}

/// A filter that is just that level, as it was written before directives
/// existed (`log_level = "debug"`).
impl PartialEq<LogLevel> for LogFilter {
    fn eq(&self, level: &LogLevel) -> bool {
        self.0 == level.as_str()
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How each log line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-11-23T19:55:12.123Z INFO  target: message`, for people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The name used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(spec: &str) -> String {
        match spec.parse::<LogFilter>() {
            Ok(f) => panic!("{spec:?} accepted as {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_levels_and_directives_are_accepted() {
        for spec in [
            "off",
            "error",
            "warn",
            "info",
            "debug",
            "trace",
            "INFO",
            "info,tracker_swarm=debug,tracker_http_ws::worker=trace",
            " warn , tracker_user = info ",
            "tracker_user=info",
            "info,",
            "info/listening",
        ] {
            let filter: LogFilter = spec.parse().unwrap_or_else(|e| panic!("{spec:?}: {e}"));
            assert_eq!(filter.as_str(), spec);
        }
    }

    #[test]
    fn typos_are_refused_with_the_culprit_named() {
        let e = refused("loud");
        assert!(e.contains("`loud` is not a level"), "{e}");
        let e = refused("info,tracker_swarm");
        assert!(e.contains("`tracker_swarm=LEVEL`"), "{e}");
        let e = refused("info,tracker_swarm=loud");
        assert!(e.contains("`loud` is not a level"), "{e}");
        let e = refused("tracker-swarm=debug");
        assert!(e.contains("`tracker_swarm`"), "{e}");
        let e = refused("=debug");
        assert!(e.contains("names no module"), "{e}");
        let e = refused("a=info=debug");
        assert!(e.contains("`info=debug` is not a level"), "{e}");
        let e = refused("");
        assert!(e.contains("names no level"), "{e}");
        let e = refused(" , ");
        assert!(e.contains("names no level"), "{e}");
        let e = refused("info/a/b");
        assert!(e.contains("too many '/'s"), "{e}");
    }

    fn enabled(filter: &env_filter::Filter, level: log::Level, target: &str) -> bool {
        filter.enabled(&log::Metadata::builder().level(level).target(target).build())
    }

    #[test]
    fn the_most_specific_module_wins() {
        let filter: LogFilter = "warn,tracker_swarm=debug,tracker_swarm::worker=error"
            .parse()
            .unwrap();
        let filter = filter.build();
        assert_eq!(filter.filter(), log::LevelFilter::Debug);
        use log::Level::*;
        assert!(enabled(&filter, Warn, "tracker_user::server"));
        assert!(!enabled(&filter, Info, "tracker_user::server"));
        assert!(enabled(&filter, Debug, "tracker_swarm::store"));
        assert!(!enabled(&filter, Trace, "tracker_swarm::store"));
        assert!(enabled(&filter, Error, "tracker_swarm::worker"));
        assert!(!enabled(&filter, Warn, "tracker_swarm::worker"));
    }

    #[test]
    fn off_disables_everything() {
        let filter = LogFilter::from(LogLevel::Off).build();
        assert_eq!(filter.filter(), log::LevelFilter::Off);
        assert!(!enabled(&filter, log::Level::Error, "tracker_user"));
    }

    #[test]
    fn plain_levels_compare_equal_to_log_level() {
        assert_eq!(LogFilter::default(), LogLevel::Info);
        assert_eq!(LogFilter::from(LogLevel::Trace).as_str(), "trace");
        assert_ne!("info,a=debug".parse::<LogFilter>().unwrap(), LogLevel::Info);
    }
}
