//! Why a client message was refused, kept precise enough to name the
//! action and info hash in the failure reply.

use core::fmt;

use super::Action;
use crate::common::InfoHash;

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing,
    /// The JSON type is not the one the field needs (`expected` reads like
    /// "a string").
    WrongType {
        expected: &'static str,
    },
    /// A binary string with a character above U+00FF.
    NotBinary,
    /// A binary id of this many characters, not 20.
    Length(usize),
    /// A string outside the field's vocabulary (`action`, `event`).
    UnknownValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsParseErrorKind {
    /// Not valid JSON; position as serde_json reports it.
    NotJson { line: usize, column: usize },
    /// Valid JSON, but not an object.
    NotAnObject,
    /// `field` names the offending member, e.g. `info_hash` or
    /// `offers.offer_id`.
    Field {
        field: &'static str,
        problem: Problem,
    },
}

/// A message that could not be parsed, with whatever of it could be read so
/// that the failure reply can carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsParseError {
    pub kind: WsParseErrorKind,
    /// The action, when it was valid.
    pub action: Option<Action>,
    /// The (first) info hash, when it was valid.
    pub info_hash: Option<InfoHash>,
}

impl fmt::Display for WsParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotJson { line, column } => {
                write!(f, "invalid JSON at line {line}, column {column}")
            }
            Self::NotAnObject => f.write_str("message is not a JSON object"),
            Self::Field { field, problem } => match problem {
                Problem::Missing => write!(f, "missing {field}"),
                Problem::WrongType { expected } => write!(f, "{field} must be {expected}"),
                Problem::NotBinary => write!(f, "{field} has a character above U+00FF"),
                Problem::Length(len) => {
                    write!(f, "{field} is not 20 characters long ({len})")
                }
                Problem::UnknownValue => write!(f, "unknown {field}"),
            },
        }
    }
}

impl fmt::Display for WsParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for WsParseError {}

/// A field's name and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Invalid {
    pub(super) field: &'static str,
    pub(super) problem: Problem,
}

impl Invalid {
    pub(super) fn into_error(
        self,
        action: Option<Action>,
        info_hash: Option<InfoHash>,
    ) -> WsParseError {
        WsParseError {
            kind: WsParseErrorKind::Field {
                field: self.field,
                problem: self.problem,
            },
            action,
            info_hash,
        }
    }
}
