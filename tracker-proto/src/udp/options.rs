//! BEP 41 announce options: the bytes trailing a UDP announce, decoded
//! lazily so that a malformed option never fails the announce itself.

use core::fmt;

use super::BufferTooSmall;

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;

/// The option bytes trailing an announce (BEP 41), kept raw and decoded
/// lazily: a malformed option list must not cost the client its announce,
/// so nothing here is validated at parse time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bep41Options<'a> {
    bytes: &'a [u8],
}

/// One decoded BEP 41 option. `EndOfOptions` is not represented: it ends
/// iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep41Option<'a> {
    Nop,
    /// A piece of the announce URL's path and query; pieces concatenate.
    UrlData(&'a [u8]),
    /// Options not defined by BEP 41 are assumed to carry a length byte, the
    /// only way to skip over them.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Why option decoding stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep41Error {
    /// The option's type byte was the last byte, so its length is missing.
    MissingLength { kind: u8 },
    /// The option claims `len` data bytes but only `available` remain.
    Truncated { kind: u8, len: u8, available: usize },
}

impl fmt::Display for Bep41Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bep41Error::MissingLength { kind } => {
                write!(f, "announce option {kind} has no length byte")
            }
            Bep41Error::Truncated {
                kind,
                len,
                available,
            } => write!(
                f,
                "announce option {kind} claims {len} bytes but {available} remain"
            ),
        }
    }
}

impl core::error::Error for Bep41Error {}

impl<'a> Bep41Options<'a> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Bep41Options { bytes }
    }

    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn iter(&self) -> Bep41Iter<'a> {
        Bep41Iter { rest: self.bytes }
    }

    /// Concatenates every `UrlData` option into `out`, returning the length.
    /// Decoding errors end the data silently, as BEP 41 asks trackers to
    /// tolerate them.
    pub fn url_data_into(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut written = 0usize;
        for option in self.iter() {
            let Ok(Bep41Option::UrlData(data)) = option else {
                continue;
            };
            let end = written.checked_add(data.len()).ok_or(BufferTooSmall)?;
            out.get_mut(written..end)
                .ok_or(BufferTooSmall)?
                .copy_from_slice(data);
            written = end;
        }
        Ok(written)
    }

    /// Concatenation of every `UrlData` option; see [`Self::url_data_into`].
    #[cfg(feature = "std")]
    pub fn url_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for option in self.iter() {
            if let Ok(Bep41Option::UrlData(data)) = option {
                out.extend_from_slice(data);
            }
        }
        out
    }
}

impl<'a> IntoIterator for Bep41Options<'a> {
    type Item = Result<Bep41Option<'a>, Bep41Error>;
    type IntoIter = Bep41Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Bep41Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`Bep41Options`]; yields at most one error, then stops.
#[derive(Clone, Debug)]
pub struct Bep41Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Bep41Iter<'a> {
    type Item = Result<Bep41Option<'a>, Bep41Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        // Every path below either consumes bytes or ends iteration, so a
        // hostile option list cannot make this loop forever.
        self.rest = &[];
        match kind {
            OPTION_END => None,
            OPTION_NOP => {
                self.rest = after_kind;
                Some(Ok(Bep41Option::Nop))
            }
            _ => {
                let Some((&len, after_len)) = after_kind.split_first() else {
                    return Some(Err(Bep41Error::MissingLength { kind }));
                };
                let Some((data, rest)) = after_len.split_at_checked(usize::from(len)) else {
                    return Some(Err(Bep41Error::Truncated {
                        kind,
                        len,
                        available: after_len.len(),
                    }));
                };
                self.rest = rest;
                Some(Ok(if kind == OPTION_URL_DATA {
                    Bep41Option::UrlData(data)
                } else {
                    Bep41Option::Unknown { kind, data }
                }))
            }
        }
    }
}

impl core::iter::FusedIterator for Bep41Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    // The crate may be `no_std`; its tests still run on a std host.
    extern crate std;

    #[cfg(feature = "std")]
    #[test]
    fn url_data_vec() {
        let o = Bep41Options::new(b"\x02\x03/an\x01\x02\x08nounce?a\x02\x09");
        assert_eq!(o.url_data(), b"/announce?a");
    }
}
