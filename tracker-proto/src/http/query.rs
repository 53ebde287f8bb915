//! Query strings: splitting a request target into `key=value` pairs and
//! percent-decoding the values (the rules are in the module docs of
//! [`crate::http`]).

use core::fmt;
use std::net::IpAddr;

/// Splits a request target into path and query (without the `?`). A
/// fragment, which clients should not send, is dropped.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    };
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &[]),
    }
}

/// The `name=value` pairs of a query string, both still percent-encoded.
/// Empty pairs (`&&`) are skipped; a pair without `=` has an empty value.
pub fn query_pairs(query: &[u8]) -> QueryPairs<'_> {
    QueryPairs { rest: query }
}

/// Iterator returned by [`query_pairs`].
#[derive(Clone, Debug)]
pub struct QueryPairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (&'a [u8], EncodedValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (pair, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if pair.is_empty() {
                continue;
            }
            return Some(match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], EncodedValue(&pair[i + 1..])),
                None => (pair, EncodedValue(&[])),
            });
        }
    }
}

impl core::iter::FusedIterator for QueryPairs<'_> {}

/// A query value exactly as sent, still percent-encoded. Kept undecoded so
/// that parameters the server may never look at cost nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncodedValue<'a>(pub &'a [u8]);

/// A `%` not followed by two hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEscape;

impl fmt::Display for BadEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid percent-encoding")
    }
}

impl std::error::Error for BadEscape {}

impl<'a> EncodedValue<'a> {
    pub const fn raw(&self) -> &'a [u8] {
        self.0
    }

    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decoded bytes, one at a time.
    pub fn decode(&self) -> Decode<'a> {
        Decode { rest: self.0 }
    }

    /// Decodes into `out`, returning the decoded length, or `None` when the
    /// value does not fit or is badly escaped.
    pub fn decode_into(&self, out: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        for b in self.decode() {
            *out.get_mut(n)? = b.ok()?;
            n += 1;
        }
        Some(n)
    }

    pub fn decode_to_vec(&self) -> Result<Vec<u8>, BadEscape> {
        self.decode().collect()
    }

    /// Decodes a value that must be exactly `N` bytes.
    pub(super) fn decode_exact<const N: usize>(&self) -> Result<[u8; N], FixedError> {
        let mut out = [0u8; N];
        let mut n = 0;
        for b in self.decode() {
            let b = b.map_err(|BadEscape| FixedError::Escape)?;
            *out.get_mut(n).ok_or(FixedError::Length)? = b;
            n += 1;
        }
        if n == N {
            Ok(out)
        } else {
            Err(FixedError::Length)
        }
    }

    /// Parses the value as an IP address (IPv6 colons may be escaped).
    /// `None` for host names and garbage, which a tracker ignores anyway.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        // 45 bytes hold the longest textual IPv6 address.
        let mut buf = [0u8; 48];
        let n = self.decode_into(&mut buf)?;
        core::str::from_utf8(buf.get(..n)?).ok()?.parse().ok()
    }
}

impl fmt::Debug for EncodedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Iterator returned by [`EncodedValue::decode`]. After a bad escape it
/// yields the error and stops.
#[derive(Clone, Debug)]
pub struct Decode<'a> {
    rest: &'a [u8],
}

impl Iterator for Decode<'_> {
    type Item = Result<u8, BadEscape>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&b, rest) = self.rest.split_first()?;
        if b != b'%' {
            self.rest = rest;
            return Some(Ok(b));
        }
        match rest {
            [hi, lo, tail @ ..] => match (hex_value(*hi), hex_value(*lo)) {
                (Some(hi), Some(lo)) => {
                    self.rest = tail;
                    Some(Ok((hi << 4) | lo))
                }
                _ => {
                    self.rest = &[];
                    Some(Err(BadEscape))
                }
            },
            _ => {
                self.rest = &[];
                Some(Err(BadEscape))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A bad escape ends decoding early, so there is no useful lower bound.
        (0, Some(self.rest.len()))
    }
}

impl core::iter::FusedIterator for Decode<'_> {}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(super) enum FixedError {
    Escape,
    Length,
}

/// Which bytes [`percent_encode`] leaves raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscapeStyle {
    /// Every byte as `%XX`, as some older clients send.
    All,
    /// All but the RFC 3986 unreserved bytes (`A-Z a-z 0-9 - . _ ~`), as
    /// libtorrent and Transmission send.
    Reserved,
}

/// Appends `bytes` percent-encoded (upper-case hex) to `out`; for clients,
/// the load tester and tests.
pub fn percent_encode(out: &mut Vec<u8>, bytes: &[u8], style: EscapeStyle) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 3);
    for &b in bytes {
        let raw = style == EscapeStyle::Reserved
            && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if raw {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_value_helpers() {
        let v = EncodedValue(b"a%20b%2");
        let decoded: Vec<_> = v.decode().collect();
        assert_eq!(decoded, [Ok(b'a'), Ok(b' '), Ok(b'b'), Err(BadEscape)]);
        assert_eq!(v.decode_to_vec(), Err(BadEscape));
        let mut buf = [0u8; 2];
        assert_eq!(EncodedValue(b"%41%42").decode_into(&mut buf), Some(2));
        assert_eq!(&buf, b"AB");
        assert_eq!(EncodedValue(b"abc").decode_into(&mut buf), None);
        assert_eq!(EncodedValue(b"example.org").ip_addr(), None);
        assert_eq!(format!("{:?}", EncodedValue(b"a\x01")), "\"a\\x01\"");
        let pairs: Vec<_> = query_pairs(b"&a=1&&b&=c&d==").collect();
        assert_eq!(
            pairs,
            [
                (&b"a"[..], EncodedValue(b"1")),
                (b"b", EncodedValue(b"")),
                (b"", EncodedValue(b"c")),
                (b"d", EncodedValue(b"=")),
            ]
        );
    }
}
