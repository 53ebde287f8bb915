//! Announce and scrape requests, parsed from the request target in place.

use core::fmt;

use super::query::FixedError;
use super::{query_pairs, split_target, EncodedValue, QueryPairs, ID_LEN, MAX_KEY_LEN};
use crate::common::{AnnounceEvent, InfoHash, PeerId};

/// A parsed announce or scrape request target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRequest<'a> {
    Announce(AnnounceQuery<'a>),
    Scrape(ScrapeQuery<'a>),
}

/// An announce's query parameters. Unknown parameters are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceQuery<'a> {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Never 0: a peer at port 0 cannot be connected to.
    pub port: u16,
    /// 0 when missing.
    pub uploaded: u64,
    /// 0 when missing.
    pub downloaded: u64,
    /// `None` when missing, as clients starting from a magnet link do before
    /// they know the size; such a peer is not a seeder.
    pub left: Option<u64>,
    /// `event=paused` (BEP 21, sent by libtorrent for partial seeds) is a
    /// regular announce here, with [`Self::paused`] set.
    pub event: AnnounceEvent,
    /// The peer is a partial seed (BEP 21 `event=paused`).
    pub paused: bool,
    /// `None` when missing, empty or negative (some clients send -1, as
    /// over UDP): the tracker's default applies. Large values saturate.
    pub numwant: Option<u32>,
    /// `compact=1`. Anything else, including absence, asks for the BEP 3
    /// list of dictionaries.
    pub compact: bool,
    /// `no_peer_id=1`: omit `peer id` from a non-compact list.
    pub no_peer_id: bool,
    /// Identifies the peer across IP changes; still escaped, at most
    /// [`MAX_KEY_LEN`] bytes.
    pub key: Option<EncodedValue<'a>>,
    /// The address the client claims (BEP 3 `ip`, BEP 7 `ipv4`/`ipv6`).
    /// Trackers normally ignore it; kept raw, see [`EncodedValue::ip_addr`].
    pub ip: Option<EncodedValue<'a>>,
    pub ipv4: Option<EncodedValue<'a>>,
    pub ipv6: Option<EncodedValue<'a>>,
}

/// A scrape's info hashes, validated at parse time and decoded again on
/// iteration, so that a scrape allocates nothing however many hashes it
/// names. The server caps how many it answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScrapeQuery<'a> {
    query: &'a [u8],
    count: usize,
}

/// Why a request target was refused. [`Self::message`] is fit for a
/// `failure reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpParseError {
    /// The last path segment starts with neither `announce` nor `scrape`.
    UnknownPath,
    MissingInfoHash,
    InfoHashEncoding,
    InfoHashLength,
    /// An announce names more than one `info_hash`.
    DuplicateInfoHash,
    MissingPeerId,
    PeerIdEncoding,
    PeerIdLength,
    MissingPort,
    /// Not a number in 1..=65535.
    InvalidPort,
    InvalidUploaded,
    InvalidDownloaded,
    InvalidLeft,
    InvalidNumwant,
    UnknownEvent,
    KeyTooLong,
}

impl HttpParseError {
    pub const fn message(&self) -> &'static str {
        match self {
            Self::UnknownPath => "unknown path",
            Self::MissingInfoHash => "missing info_hash",
            Self::InfoHashEncoding => "invalid percent-encoding in info_hash",
            Self::InfoHashLength => "info_hash is not 20 bytes",
            Self::DuplicateInfoHash => "more than one info_hash in announce",
            Self::MissingPeerId => "missing peer_id",
            Self::PeerIdEncoding => "invalid percent-encoding in peer_id",
            Self::PeerIdLength => "peer_id is not 20 bytes",
            Self::MissingPort => "missing port",
            Self::InvalidPort => "invalid port",
            Self::InvalidUploaded => "invalid uploaded",
            Self::InvalidDownloaded => "invalid downloaded",
            Self::InvalidLeft => "invalid left",
            Self::InvalidNumwant => "invalid numwant",
            Self::UnknownEvent => "unknown event",
            Self::KeyTooLong => "key too long",
        }
    }
}

impl fmt::Display for HttpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpParseError {}

/// Which request the path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Announce,
    Scrape,
}

impl Endpoint {
    /// Decides by the last path segment alone, so that `/announce`,
    /// `/<passkey>/announce` and `/announce.php` all announce. BEP 48 derives
    /// a scrape URL by replacing the `announce` that starts the last segment
    /// with `scrape`, so a prefix match covers the matching scrape URLs too.
    pub fn from_path(path: &[u8]) -> Option<Self> {
        let last = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[i + 1..],
            None => path,
        };
        if last.starts_with(b"announce") {
            Some(Endpoint::Announce)
        } else if last.starts_with(b"scrape") {
            Some(Endpoint::Scrape)
        } else {
            None
        }
    }
}

impl<'a> HttpRequest<'a> {
    /// Parses the target of a GET: path and query, as on the request line.
    pub fn parse(target: &'a [u8]) -> Result<Self, HttpParseError> {
        let (path, query) = split_target(target);
        match Endpoint::from_path(path).ok_or(HttpParseError::UnknownPath)? {
            Endpoint::Announce => AnnounceQuery::parse(query).map(HttpRequest::Announce),
            Endpoint::Scrape => ScrapeQuery::parse(query).map(HttpRequest::Scrape),
        }
    }
}

/// A decimal counter. A leading `-` (sent by a few broken clients) is
/// reported separately so each field can decide what it means; overflow
/// saturates because no real count gets near 2^64.
enum Number {
    NonNegative(u64),
    Negative,
}

fn parse_number(raw: &[u8]) -> Option<Number> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if negative {
        return Some(Number::Negative);
    }
    let value = digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Number::NonNegative(value))
}

/// A counter that defaults to 0; negative values count as 0.
fn parse_counter(raw: &[u8], err: HttpParseError) -> Result<u64, HttpParseError> {
    if raw.is_empty() {
        return Ok(0);
    }
    match parse_number(raw).ok_or(err)? {
        Number::NonNegative(v) => Ok(v),
        Number::Negative => Ok(0),
    }
}

/// An optional count; empty and negative mean "not given".
fn parse_optional(raw: &[u8], err: HttpParseError) -> Result<Option<u64>, HttpParseError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match parse_number(raw).ok_or(err)? {
        Number::NonNegative(v) => Ok(Some(v)),
        Number::Negative => Ok(None),
    }
}

fn parse_event(raw: &[u8]) -> Result<(AnnounceEvent, bool), HttpParseError> {
    Ok(match raw {
        b"started" => (AnnounceEvent::Started, false),
        b"completed" => (AnnounceEvent::Completed, false),
        b"stopped" => (AnnounceEvent::Stopped, false),
        // BEP 3 says an empty event is the same as none; some clients spell
        // that out as the word "empty".
        b"" | b"empty" => (AnnounceEvent::None, false),
        b"paused" => (AnnounceEvent::None, true),
        _ => return Err(HttpParseError::UnknownEvent),
    })
}

fn decode_info_hash(value: EncodedValue<'_>) -> Result<InfoHash, HttpParseError> {
    value
        .decode_exact::<ID_LEN>()
        .map(InfoHash)
        .map_err(|e| match e {
            FixedError::Escape => HttpParseError::InfoHashEncoding,
            FixedError::Length => HttpParseError::InfoHashLength,
        })
}

impl<'a> AnnounceQuery<'a> {
    /// Parses an announce query string (what follows the `?`). A repeated
    /// parameter keeps its last value, except `info_hash`: two of those
    /// make the announce ambiguous.
    pub fn parse(query: &'a [u8]) -> Result<Self, HttpParseError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = 0;
        let mut downloaded = 0;
        let mut left = None;
        let mut event = (AnnounceEvent::None, false);
        let mut numwant = None;
        let mut compact = false;
        let mut no_peer_id = false;
        let mut key = None;
        let mut ip = None;
        let mut ipv4 = None;
        let mut ipv6 = None;

        for (name, value) in query_pairs(query) {
            let raw = value.raw();
            match name {
                b"info_hash" => {
                    if info_hash.is_some() {
                        return Err(HttpParseError::DuplicateInfoHash);
                    }
                    info_hash = Some(decode_info_hash(value)?);
                }
                b"peer_id" => {
                    let id = value.decode_exact::<ID_LEN>().map_err(|e| match e {
                        FixedError::Escape => HttpParseError::PeerIdEncoding,
                        FixedError::Length => HttpParseError::PeerIdLength,
                    })?;
                    peer_id = Some(PeerId(id));
                }
                b"port" => {
                    let p = match parse_number(raw) {
                        Some(Number::NonNegative(p)) => u16::try_from(p).ok(),
                        _ => None,
                    };
                    port = Some(p.filter(|&p| p != 0).ok_or(HttpParseError::InvalidPort)?);
                }
                b"uploaded" => uploaded = parse_counter(raw, HttpParseError::InvalidUploaded)?,
                b"downloaded" => {
                    downloaded = parse_counter(raw, HttpParseError::InvalidDownloaded)?;
                }
                b"left" => left = parse_optional(raw, HttpParseError::InvalidLeft)?,
                b"event" => event = parse_event(raw)?,
                b"numwant" => {
                    numwant = parse_optional(raw, HttpParseError::InvalidNumwant)?
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                }
                b"compact" => compact = raw == b"1",
                b"no_peer_id" => no_peer_id = raw == b"1",
                b"key" => {
                    if raw.len() > MAX_KEY_LEN {
                        return Err(HttpParseError::KeyTooLong);
                    }
                    key = Some(value);
                }
                b"ip" => ip = Some(value),
                b"ipv4" => ipv4 = Some(value),
                b"ipv6" => ipv6 = Some(value),
                _ => {}
            }
        }

        Ok(AnnounceQuery {
            info_hash: info_hash.ok_or(HttpParseError::MissingInfoHash)?,
            peer_id: peer_id.ok_or(HttpParseError::MissingPeerId)?,
            port: port.ok_or(HttpParseError::MissingPort)?,
            uploaded,
            downloaded,
            left,
            event: event.0,
            paused: event.1,
            numwant,
            compact,
            no_peer_id,
            key,
            ip,
            ipv4,
            ipv6,
        })
    }
}

impl<'a> ScrapeQuery<'a> {
    /// Parses a scrape query string; every `info_hash` must decode to 20
    /// bytes. None at all asks for a full scrape, which the server may
    /// refuse.
    pub fn parse(query: &'a [u8]) -> Result<Self, HttpParseError> {
        let mut count = 0;
        for (name, value) in query_pairs(query) {
            if name == b"info_hash" {
                decode_info_hash(value)?;
                count += 1;
            }
        }
        Ok(ScrapeQuery { query, count })
    }

    /// Number of `info_hash` parameters, repeats included.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// True for a full scrape.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The requested hashes in request order, repeats included.
    pub fn info_hashes(&self) -> ScrapeInfoHashes<'a> {
        ScrapeInfoHashes {
            pairs: query_pairs(self.query),
            remaining: self.count,
        }
    }
}

impl fmt::Debug for ScrapeQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.info_hashes()).finish()
    }
}

/// Iterator returned by [`ScrapeQuery::info_hashes`].
#[derive(Clone, Debug)]
pub struct ScrapeInfoHashes<'a> {
    pairs: QueryPairs<'a>,
    remaining: usize,
}

impl Iterator for ScrapeInfoHashes<'_> {
    type Item = InfoHash;

    fn next(&mut self) -> Option<InfoHash> {
        for (name, value) in self.pairs.by_ref() {
            // Parsing validated every hash, so the error arm is unreachable;
            // it skips rather than panics all the same.
            if let (b"info_hash", Ok(hash)) = (name, decode_info_hash(value)) {
                self.remaining = self.remaining.saturating_sub(1);
                return Some(hash);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ScrapeInfoHashes<'_> {}

impl core::iter::FusedIterator for ScrapeInfoHashes<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x12, 0x34, 0x56, 0x78, 0x9a,
    ];

    fn announce(target: &[u8]) -> AnnounceQuery<'_> {
        match HttpRequest::parse(target) {
            Ok(HttpRequest::Announce(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    fn err(target: &[u8]) -> HttpParseError {
        HttpRequest::parse(target).unwrap_err()
    }

    #[test]
    fn bep3_example_hash() {
        // The encoding BEP 3's own example gives for this hash.
        let a = announce(
            b"/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
              &peer_id=ABCDEFGHIJKLMNOPQRST&port=6881",
        );
        assert_eq!(a.info_hash, InfoHash(HASH));
        assert_eq!(a.peer_id, PeerId(*b"ABCDEFGHIJKLMNOPQRST"));
        assert_eq!(a.port, 6881);
        assert_eq!((a.uploaded, a.downloaded, a.left), (0, 0, None));
        assert_eq!(a.event, AnnounceEvent::None);
        assert!(!a.paused && !a.compact && !a.no_peer_id);
        assert_eq!((a.numwant, a.key, a.ip), (None, None, None));
    }

    #[test]
    fn all_fields() {
        let a = announce(
            b"/announce?info_hash=%124Vx%9a%bc%de%f1%23Eg%89%ab%cd%ef%124Vx%9a\
              &peer_id=-TR4060-abcdefghijkl&port=51413&uploaded=10&downloaded=20\
              &left=30&event=completed&numwant=50&compact=1&no_peer_id=1&key=a%2Fb\
              &ip=1.2.3.4&ipv6=2001%3Adb8%3A%3A1&ipv4=5.6.7.8&unknown=whatever&flag",
        );
        assert_eq!(a.info_hash, InfoHash(HASH));
        assert_eq!(a.port, 51413);
        assert_eq!((a.uploaded, a.downloaded, a.left), (10, 20, Some(30)));
        assert_eq!(a.event, AnnounceEvent::Completed);
        assert_eq!(a.numwant, Some(50));
        assert!(a.compact && a.no_peer_id);
        let key = a.key.unwrap();
        assert_eq!(key.raw(), b"a%2Fb");
        assert_eq!(key.decode_to_vec().unwrap(), b"a/b");
        assert_eq!(a.ip.unwrap().ip_addr(), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(a.ipv4.unwrap().ip_addr(), Some("5.6.7.8".parse().unwrap()));
        assert_eq!(
            a.ipv6.unwrap().ip_addr(),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn events() {
        let base = b"/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=1&event=";
        let with = |e: &[u8]| {
            let mut t = base.to_vec();
            t.extend_from_slice(e);
            t
        };
        for (e, want, paused) in [
            (&b"started"[..], AnnounceEvent::Started, false),
            (b"stopped", AnnounceEvent::Stopped, false),
            (b"completed", AnnounceEvent::Completed, false),
            (b"", AnnounceEvent::None, false),
            (b"empty", AnnounceEvent::None, false),
            (b"paused", AnnounceEvent::None, true),
        ] {
            let t = with(e);
            let a = announce(&t);
            assert_eq!((a.event, a.paused), (want, paused));
        }
        for e in [&b"Started"[..], b"update", b"1", b"started%20"] {
            assert_eq!(err(&with(e)), HttpParseError::UnknownEvent);
        }
    }

    #[test]
    fn paths() {
        let q = b"?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=1";
        let target = |path: &[u8]| [path, &q[..]].concat();
        for path in [
            &b"/announce"[..],
            b"/abcdef0123/announce",
            b"/announce.php",
            b"announce",
            b"http://tracker.example:8080/announce",
        ] {
            let t = target(path);
            assert!(matches!(
                HttpRequest::parse(&t),
                Ok(HttpRequest::Announce(_))
            ));
        }
        for path in [&b"/scrape"[..], b"/key/scrape", b"/scrape.php"] {
            let t = target(path);
            let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(&t) else {
                panic!()
            };
            assert_eq!(s.len(), 1);
        }
        for path in [
            &b"/"[..],
            b"",
            b"/announce/",
            b"/index.html",
            b"/x/Announce",
        ] {
            let t = target(path);
            assert_eq!(err(&t), HttpParseError::UnknownPath);
        }
        assert_eq!(split_target(b"/a?b=c#d"), (&b"/a"[..], &b"b=c"[..]));
        assert_eq!(split_target(b"/a"), (&b"/a"[..], &b""[..]));
    }

    #[test]
    fn errors() {
        let ih = "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
        let pid = "peer_id=ABCDEFGHIJKLMNOPQRST";
        let cases: &[(String, HttpParseError)] = &[
            (format!("{pid}&port=1"), HttpParseError::MissingInfoHash),
            (format!("{ih}&port=1"), HttpParseError::MissingPeerId),
            (format!("{ih}&{pid}"), HttpParseError::MissingPort),
            (format!("{ih}&{pid}&port=0"), HttpParseError::InvalidPort),
            (
                format!("{ih}&{pid}&port=65536"),
                HttpParseError::InvalidPort,
            ),
            (format!("{ih}&{pid}&port=-1"), HttpParseError::InvalidPort),
            (format!("{ih}&{pid}&port="), HttpParseError::InvalidPort),
            (format!("{ih}&{pid}&port=8o"), HttpParseError::InvalidPort),
            (
                format!("info_hash=abc&{pid}&port=1"),
                HttpParseError::InfoHashLength,
            ),
            (
                format!("{ih}%00&{pid}&port=1"),
                HttpParseError::InfoHashLength,
            ),
            (
                format!("info_hash=%zz345678901234567890&{pid}&port=1"),
                HttpParseError::InfoHashEncoding,
            ),
            (
                format!("info_hash=1234567890123456789%4&{pid}&port=1"),
                HttpParseError::InfoHashEncoding,
            ),
            (
                format!("{ih}&{ih}&{pid}&port=1"),
                HttpParseError::DuplicateInfoHash,
            ),
            (
                format!("{ih}&peer_id=short&port=1"),
                HttpParseError::PeerIdLength,
            ),
            (
                format!("{ih}&peer_id=%&port=1"),
                HttpParseError::PeerIdEncoding,
            ),
            (
                format!("{ih}&{pid}&port=1&uploaded=x"),
                HttpParseError::InvalidUploaded,
            ),
            (
                format!("{ih}&{pid}&port=1&downloaded=1.5"),
                HttpParseError::InvalidDownloaded,
            ),
            (
                format!("{ih}&{pid}&port=1&left=%31"),
                HttpParseError::InvalidLeft,
            ),
            (
                format!("{ih}&{pid}&port=1&numwant=all"),
                HttpParseError::InvalidNumwant,
            ),
            (
                format!("{ih}&{pid}&port=1&key={}", "k".repeat(MAX_KEY_LEN + 1)),
                HttpParseError::KeyTooLong,
            ),
        ];
        for (query, want) in cases {
            let target = format!("/announce?{query}");
            assert_eq!(err(target.as_bytes()), *want, "{query}");
            assert_eq!(want.to_string(), want.message());
        }
        assert_eq!(err(b"/scrape?info_hash=x"), HttpParseError::InfoHashLength);
        assert_eq!(
            HttpParseError::MissingInfoHash.message(),
            "missing info_hash"
        );
        assert_eq!(
            HttpParseError::InfoHashLength.message(),
            "info_hash is not 20 bytes"
        );
    }

    #[test]
    fn lenient_numbers() {
        let base = "/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=00080";
        let a = announce(base.as_bytes());
        assert_eq!(a.port, 80);
        let t = format!("{base}&uploaded=-5&downloaded=&left=-1&numwant=-1");
        let a = announce(t.as_bytes());
        assert_eq!(
            (a.uploaded, a.downloaded, a.left, a.numwant),
            (0, 0, None, None)
        );
        let t = format!(
            "{base}&uploaded=99999999999999999999999&left=18446744073709551615\
             &numwant=4294967296&left=0"
        );
        let a = announce(t.as_bytes());
        assert_eq!(a.uploaded, u64::MAX);
        assert_eq!(a.left, Some(0), "the last repeat wins");
        assert_eq!(a.numwant, Some(u32::MAX));
        let t = format!("{base}&compact=0&no_peer_id=true&numwant=");
        let a = announce(t.as_bytes());
        assert!(!a.compact && !a.no_peer_id);
        assert_eq!(a.numwant, None);
    }

    #[test]
    fn scrape_hashes() {
        let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(
            b"/scrape?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&x=1\
              &&info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A",
        ) else {
            panic!()
        };
        let hashes: Vec<_> = s.info_hashes().collect();
        assert_eq!(
            hashes,
            [InfoHash(HASH), InfoHash([b'a'; 20]), InfoHash(HASH)]
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.info_hashes().len(), 3);
        let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(b"/scrape") else {
            panic!()
        };
        assert!(s.is_empty());
        assert_eq!(s.info_hashes().next(), None);
    }
}
