//! What a refused config reports: [`ConfigError`] says where (file or
//! command line, line, column, key) and [`ValidationError`] which limit a
//! parsed config breaks, as a value a caller can match on.

use std::fmt;
use std::path::Path;

use tracker_config::TomlFailure;

use super::AccessListMode;
#[cfg(doc)]
use super::Config;

/// Why a configuration was refused, with where to look: the file (or the
/// command line), the line and column when known, and the key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    message: String,
    kind: ConfigErrorKind,
    /// The broken limit, for [`ConfigErrorKind::Limit`]; boxed to keep
    /// `Result<Config, ConfigError>` small.
    invalid: Option<Box<ValidationError>>,
}

/// What sort of mistake a [`ConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not TOML; no key can be named.
    Syntax,
    /// Valid TOML that does not fit the config: unknown key, wrong type, bad value.
    Invalid,
    /// Every value parsed but a limit checked by [`Config::validate`] failed.
    Limit,
}

impl ConfigError {
    /// The file the error is in, or `command line` when an override was refused.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// 1-based line in the file, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// 1-based column (in characters) in the file, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// Dotted key path such as `udp.workers` or `udp.listen[1]`, when known.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The complaint without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The broken limit, when [`kind`](Self::kind) is [`ConfigErrorKind::Limit`].
    pub fn validation(&self) -> Option<&ValidationError> {
        self.invalid.as_deref()
    }

    pub(super) fn io(path: &Path, e: &std::io::Error) -> Self {
        Self {
            origin: path.display().to_string(),
            line: None,
            column: None,
            key: None,
            message: e.to_string(),
            kind: ConfigErrorKind::Io,
            invalid: None,
        }
    }

    /// A TOML text that did not parse or did not fit the config.
    pub(super) fn toml(origin: &str, failure: TomlFailure) -> Self {
        let TomlFailure {
            line,
            column,
            key,
            message,
        } = failure;
        Self {
            origin: origin.to_owned(),
            line,
            column,
            kind: if key.is_some() {
                ConfigErrorKind::Invalid
            } else {
                ConfigErrorKind::Syntax
            },
            key,
            message,
            invalid: None,
        }
    }

    pub(super) fn limit(origin: String, line: Option<usize>, invalid: ValidationError) -> Self {
        Self {
            origin,
            line,
            column: None,
            key: Some(invalid.key().to_owned()),
            message: invalid.reason(),
            kind: ConfigErrorKind::Limit,
            invalid: Some(Box::new(invalid)),
        }
    }

    /// A value for `key` from outside any file, such as an environment
    /// variable (`origin`), that does not parse.
    pub(crate) fn value(origin: &str, key: &str, message: String) -> Self {
        Self {
            origin: origin.to_owned(),
            line: None,
            column: None,
            key: Some(key.to_owned()),
            message,
            kind: ConfigErrorKind::Invalid,
            invalid: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracker_config::write_place(f, &self.origin, self.line, self.column)?;
        f.write_str(": ")?;
        match (&self.key, self.kind) {
            (_, ConfigErrorKind::Io) => write!(f, "cannot read config file: {}", self.message),
            (Some(key), _) => write!(f, "key `{key}`: {}", self.message),
            (None, ConfigErrorKind::Syntax) => {
                write!(f, "TOML syntax error (no key): {}", self.message)
            }
            (None, _) => write!(f, "(no key): {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A limit [`Config::validate`] found broken: which key, the value it has,
/// and the bound it breaks. Displays as ``key `udp.workers`: reason``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationError {
    /// A count, size or duration is 0 where at least 1 is needed;
    /// `needed_by` is the setting that makes it needed, if any (socket
    /// workers only matter with addresses to listen on).
    Zero {
        key: &'static str,
        needed_by: Option<&'static str>,
    },
    /// Outside `min..=max`. `unit` (" bytes" or "") follows the bounds, then
    /// `why` (a parenthesised reason or "").
    OutOfRange {
        key: &'static str,
        got: u64,
        min: u64,
        max: u64,
        unit: &'static str,
        why: &'static str,
    },
    /// Above `max`.
    TooLarge {
        key: &'static str,
        got: u64,
        max: u64,
    },
    /// Not a power of two in `min..=max`.
    NotPowerOfTwo {
        key: &'static str,
        got: u64,
        min: u64,
        max: u64,
    },
    /// Larger than the value of `bound_key`, which bounds it.
    Exceeds {
        key: &'static str,
        got: u64,
        bound_key: &'static str,
        bound: u64,
    },
    /// Smaller than the value of `bound_key`, which it must hold; `why` says
    /// what would not fit.
    LessThan {
        key: &'static str,
        got: u64,
        bound_key: &'static str,
        bound: u64,
        why: &'static str,
    },
    /// Not a name an HTTP header can have.
    NotAHeaderName { key: &'static str, header: String },
    /// `key` (tls.certificate_path or tls.private_key_path) is empty while a
    /// TLS listener is set.
    MissingTlsFile { key: &'static str },
    /// access_list.path is empty while access_list.mode is not off.
    MissingAccessList { mode: AccessListMode },
    /// xdp.pin_path is empty while xdp.iface is set.
    MissingPinPath,
    /// `key` rules out running the request worker inline, which
    /// swarm.inline = "on" asks for; `needs` says what it must be.
    InlineNeeds {
        key: &'static str,
        needs: &'static str,
    },
}

impl ValidationError {
    /// The dotted path of the key to fix, e.g. `udp.workers`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Zero { key, .. }
            | Self::OutOfRange { key, .. }
            | Self::TooLarge { key, .. }
            | Self::NotPowerOfTwo { key, .. }
            | Self::Exceeds { key, .. }
            | Self::LessThan { key, .. }
            | Self::NotAHeaderName { key, .. }
            | Self::MissingTlsFile { key }
            | Self::InlineNeeds { key, .. } => key,
            Self::MissingAccessList { .. } => "access_list.path",
            Self::MissingPinPath => "xdp.pin_path",
        }
    }

    /// The other key involved, if any: where to look in a file that left
    /// [`key`](Self::key) at its default.
    pub fn related_key(&self) -> Option<&'static str> {
        match self {
            Self::Zero { needed_by, .. } => *needed_by,
            Self::Exceeds { bound_key, .. } | Self::LessThan { bound_key, .. } => Some(bound_key),
            Self::MissingTlsFile { .. } => Some("http.tls_listen"),
            Self::MissingAccessList { .. } => Some("access_list.mode"),
            Self::MissingPinPath => Some("xdp.iface"),
            Self::InlineNeeds { .. } => Some("swarm.inline"),
            Self::OutOfRange { .. }
            | Self::TooLarge { .. }
            | Self::NotPowerOfTwo { .. }
            | Self::NotAHeaderName { .. } => None,
        }
    }

    /// Why the value is refused, without the key.
    pub fn reason(&self) -> String {
        Reason(self).to_string()
    }
}

/// Formats a [`ValidationError`]'s reason alone.
struct Reason<'a>(&'a ValidationError);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValidationError::Zero { .. } => f.write_str("must be at least 1, got 0"),
            ValidationError::OutOfRange {
                got,
                min,
                max,
                unit,
                why,
                ..
            } => write!(f, "must be between {min} and {max}{unit}{why}, got {got}"),
            ValidationError::TooLarge { got, max, .. } => {
                write!(f, "must be at most {max}, got {got}")
            }
            ValidationError::NotPowerOfTwo { got, min, max, .. } => {
                write!(f, "must be a power of two from {min} to {max}, got {got}")
            }
            ValidationError::Exceeds {
                got,
                bound_key,
                bound,
                ..
            } => write!(f, "{got} exceeds {bound_key} ({bound})"),
            ValidationError::LessThan {
                got,
                bound_key,
                bound,
                why,
                ..
            } => write!(f, "{got} is less than {bound_key} ({bound}): {why}"),
            ValidationError::NotAHeaderName { header, .. } => {
                write!(f, "`{header}` is not an HTTP header name")
            }
            ValidationError::MissingTlsFile { .. } => {
                f.write_str("must name a PEM file when http.tls_listen or ws.tls_listen is set")
            }
            ValidationError::MissingAccessList { mode } => {
                write!(f, "must name a file when access_list.mode is {mode}")
            }
            ValidationError::MissingPinPath => {
                f.write_str("must name a bpffs directory when xdp.iface is set")
            }
            ValidationError::InlineNeeds { needs, .. } => write!(
                f,
                "{needs} when swarm.inline is \"on\" (the request worker runs in the one UDP \
                 socket worker's thread); use \"auto\" or \"off\" otherwise"
            ),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key(), Reason(self))
    }
}

impl std::error::Error for ValidationError {}
