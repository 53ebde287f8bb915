//! Reading HTTP tracker responses: where one ends in the byte stream, and
//! whether its bencoded body is a valid answer to the request it answers.
//!
//! Everything here is total: a tracker can send any bytes, and the worst
//! they can do is be counted invalid (or close the connection, when the
//! framing itself is lost).

use std::ops::Range;

use tracker_proto::http::BValue;

/// Longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Longest body accepted; a scrape of 74 hashes is about 6 KiB.
pub const MAX_BODY: usize = 1 << 20;
/// Headers looked at; trackers send two or three.
const MAX_HEADERS: usize = 32;

/// Where the next response in a buffer stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// More bytes are needed.
    Partial,
    /// A whole response: its status, where its body lies in the buffer
    /// (its end is where the next response starts), and whether the
    /// connection closes after it.
    Complete {
        status: u16,
        body: Range<usize>,
        close: bool,
    },
    /// Not HTTP this client can follow: the connection must go.
    Broken(&'static str),
}

/// Finds the first response in `buf`. Bodies must be framed by
/// `Content-Length`, which is what trackers send (their answers are built
/// whole before sending); chunked or unframed bodies are refused.
pub fn frame(buf: &[u8]) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Framing::Broken("response head too long")
        }
        Ok(httparse::Status::Partial) => return Framing::Partial,
        Err(httparse::Error::TooManyHeaders) => return Framing::Broken("too many headers"),
        Err(_) => return Framing::Broken("malformed response head"),
    };
    let mut length = None;
    // HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 the reverse.
    let mut close = response.version != Some(1);
    for header in response.headers.iter() {
        let value = header.value.trim_ascii();
        if header.name.eq_ignore_ascii_case("content-length") {
            match parse_length(value) {
                Some(n) if length.is_none_or(|m| m == n) => length = Some(n),
                _ => return Framing::Broken("bad Content-Length"),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Framing::Broken("Transfer-Encoding is not supported");
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let Some(length) = length else {
        return Framing::Broken("no Content-Length");
    };
    if length > MAX_BODY {
        return Framing::Broken("body too long");
    }
    let end = head_len + length;
    if buf.len() < end {
        return Framing::Partial;
    }
    Framing::Complete {
        status: response.code.unwrap_or(0),
        body: head_len..end,
        close,
    }
}

/// A canonical decimal, as Content-Length must be.
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

/// What a response body says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    Announce {
        peers: usize,
    },
    Scrape,
    /// A `failure reason` (an error response, not an invalid one).
    Failure(&'a [u8]),
    Invalid(Invalid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not bencode, or a field missing or of the wrong type.
    Malformed,
    TooManyPeers,
    /// A scrape without every asked hash, or with others.
    WrongScrapeCount,
    /// A status other than 200 without a failure reason.
    BadStatus,
}

/// The body's bencoded value. aquatic_http ends its bodies with CRLF
/// (counted in Content-Length), which bencode has no room for; clients
/// ignore it, so trailing whitespace is let through here too.
fn decode(body: &[u8]) -> Option<BValue<'_>> {
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    BValue::decode(&body[..end]).ok()
}

/// An integer field that must be there and not be negative.
fn count(dict: &BValue<'_>, key: &[u8]) -> Option<u64> {
    dict.get(key)?.as_int().and_then(|v| u64::try_from(v).ok())
}

/// The body's dictionary if it is a success (a 200 without `failure
/// reason`), else what it is instead: a failure, or invalid.
fn success(status: u16, body: &[u8]) -> Result<BValue<'_>, Answer<'_>> {
    let Some(value) = decode(body).filter(|v| v.as_dict().is_some()) else {
        return Err(Answer::Invalid(Invalid::Malformed));
    };
    match value.get(b"failure reason").map(BValue::as_bytes) {
        Some(Some(reason)) => Err(Answer::Failure(reason)),
        Some(None) => Err(Answer::Invalid(Invalid::Malformed)),
        None if status != 200 => Err(Answer::Invalid(Invalid::BadStatus)),
        None => Ok(value),
    }
}

/// Checks an announce response: `interval`, `complete`, `incomplete`, and
/// compact `peers` (6 bytes each, IPv4) and optional `peers6` (18 bytes
/// each), at most `max_peers` in all when set.
pub fn check_announce(status: u16, body: &[u8], max_peers: Option<usize>) -> Answer<'_> {
    let value = match success(status, body) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    let fields_ok = [&b"interval"[..], b"complete", b"incomplete"]
        .iter()
        .all(|key| count(&value, key).is_some());
    let compact = |key: &[u8], record: usize| match value.get(key) {
        None => Some(0),
        Some(v) => v
            .as_bytes()
            .filter(|b| b.len() % record == 0)
            .map(|b| b.len() / record),
    };
    // `peers` is required (an empty string when there are none).
    let (Some(v4), Some(v6), true) = (
        value.get(b"peers").and(compact(b"peers", 6)),
        compact(b"peers6", 18),
        fields_ok,
    ) else {
        return Answer::Invalid(Invalid::Malformed);
    };
    let peers = v4 + v6;
    if max_peers.is_some_and(|max| peers > max) {
        return Answer::Invalid(Invalid::TooManyPeers);
    }
    Answer::Announce { peers }
}

/// Checks a scrape response: a `files` dictionary with an entry for every
/// hash in `asked` (sorted, no repeats) and no other, each with
/// `complete`, `downloaded` and `incomplete`.
pub fn check_scrape<'a>(status: u16, body: &'a [u8], asked: &[[u8; 20]]) -> Answer<'a> {
    let value = match success(status, body) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    let Some(files) = value.get(b"files").and_then(BValue::as_dict) else {
        return Answer::Invalid(Invalid::Malformed);
    };
    for (_, stats) in files {
        let complete = [&b"complete"[..], b"downloaded", b"incomplete"]
            .iter()
            .all(|key| count(stats, key).is_some());
        if !complete {
            return Answer::Invalid(Invalid::Malformed);
        }
    }
    // Bencode keys are sorted and unique (the decoder checks), as `asked`
    // is: the same sets have the same lengths and all of one in the other.
    let all_there = files.len() == asked.len()
        && asked
            .iter()
            .all(|hash| files.iter().any(|(key, _)| *key == hash.as_slice()));
    if !all_there {
        return Answer::Invalid(Invalid::WrongScrapeCount);
    }
    Answer::Scrape
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tracker_proto::http::{
        write_announce_response, write_failure, write_scrape_response, HttpAnnounceResponse,
        ResponsePeers, ScrapeFile,
    };
    use tracker_proto::udp::{PeerV4, PeerV6};
    use tracker_proto::InfoHash;

    fn response(head: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn announce_body(v4: usize, v6: usize) -> Vec<u8> {
        let p4: Vec<PeerV4> = (0..v4)
            .map(|i| PeerV4::new(Ipv4Addr::new(10, 0, 0, i as u8), 6881))
            .collect();
        let p6: Vec<PeerV6> = (0..v6)
            .map(|i| PeerV6::new(std::net::Ipv6Addr::LOCALHOST, i as u16 + 1))
            .collect();
        let mut out = Vec::new();
        write_announce_response(
            &mut out,
            &HttpAnnounceResponse {
                interval: 1800,
                min_interval: None,
                complete: 3,
                incomplete: 4,
                peers: ResponsePeers::Compact { v4: &p4, v6: &p6 },
                external_ip: None,
                warning_message: None,
            },
        );
        out
    }

    fn hashes(n: u8) -> Vec<[u8; 20]> {
        (0..n).map(|i| [i; 20]).collect()
    }

    fn scrape_body(hashes: &[[u8; 20]]) -> Vec<u8> {
        let mut files: Vec<ScrapeFile> = hashes
            .iter()
            .map(|h| ScrapeFile {
                info_hash: InfoHash(*h),
                complete: 1,
                downloaded: 2,
                incomplete: 3,
            })
            .collect();
        let mut out = Vec::new();
        write_scrape_response(&mut out, &mut files);
        out
    }

    #[test]
    fn framing_follows_content_length_and_keep_alive() {
        let body = announce_body(2, 0);
        let one = response("", &body);
        let mut two = one.clone();
        two.extend_from_slice(&response("Connection: close\r\n", b"de"));
        let Framing::Complete {
            status,
            body: range,
            close,
        } = frame(&two)
        else {
            panic!("{:?}", frame(&two));
        };
        assert_eq!((status, close), (200, false));
        assert_eq!(&two[range.clone()], &body[..]);
        assert_eq!(range.end, one.len());
        let Framing::Complete { close, body, .. } = frame(&two[range.end..]) else {
            panic!()
        };
        assert!(close);
        assert_eq!(body.len(), 2);
        // Every cut short of the end is partial.
        for cut in 0..one.len() {
            assert_eq!(frame(&one[..cut]), Framing::Partial, "cut at {cut}");
        }
        // aquatic_http pads the length field with spaces.
        let padded = b"HTTP/1.1 200 OK\r\nContent-Length: 2      \r\n\r\nde";
        assert!(matches!(frame(padded), Framing::Complete { .. }));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nde";
        assert!(matches!(frame(old), Framing::Complete { close: true, .. }));
    }

    #[test]
    fn framing_refuses_what_it_cannot_follow() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\nde"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nde",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(frame(bad), Framing::Broken(_)),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                frame(bad)
            );
        }
        let endless = vec![b'a'; MAX_HEAD + 1];
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.extend_from_slice(&endless);
        assert!(matches!(frame(&head), Framing::Broken(_)));
    }

    #[test]
    fn valid_announces() {
        assert_eq!(
            check_announce(200, &announce_body(3, 0), Some(30)),
            Answer::Announce { peers: 3 }
        );
        assert_eq!(
            check_announce(200, &announce_body(0, 2), Some(30)),
            Answer::Announce { peers: 2 }
        );
        // aquatic_http's exact body, trailing CRLF included.
        let aquatic = b"d8:completei0e10:incompletei0e8:intervali120e5:peers0:6:peers60:e\r\n";
        assert_eq!(
            check_announce(200, aquatic, Some(30)),
            Answer::Announce { peers: 0 }
        );
        assert_eq!(
            check_announce(200, &announce_body(40, 0), None),
            Answer::Announce { peers: 40 }
        );
    }

    #[test]
    fn invalid_announces() {
        use Invalid::*;
        assert_eq!(
            check_announce(200, &announce_body(4, 0), Some(3)),
            Answer::Invalid(TooManyPeers)
        );
        for (body, why) in [
            (&b""[..], Malformed),
            (b"not bencode", Malformed),
            (b"le", Malformed),
            // No peers.
            (b"d8:completei0e10:incompletei0e8:intervali120ee", Malformed),
            // Peers not a multiple of 6.
            (
                b"d8:completei0e10:incompletei0e8:intervali120e5:peers5:abcdee",
                Malformed,
            ),
            // Non-compact peers, which were not asked for.
            (
                b"d8:completei0e10:incompletei0e8:intervali120e5:peerslee",
                Malformed,
            ),
            // Negative and missing counts.
            (
                b"d8:completei-1e10:incompletei0e8:intervali120e5:peers0:e",
                Malformed,
            ),
            (b"d10:incompletei0e8:intervali120e5:peers0:e", Malformed),
            // Unsorted keys.
            (
                b"d10:incompletei0e8:completei0e8:intervali120e5:peers0:e",
                Malformed,
            ),
            // Trailing garbage.
            (
                b"d8:completei0e10:incompletei0e8:intervali120e5:peers0:ex",
                Malformed,
            ),
        ] {
            assert_eq!(
                check_announce(200, body, Some(30)),
                Answer::Invalid(why),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            check_announce(404, &announce_body(1, 0), Some(30)),
            Answer::Invalid(BadStatus)
        );
    }

    #[test]
    fn failures_are_errors_whatever_the_status() {
        let mut body = Vec::new();
        write_failure(&mut body, b"info hash not allowed");
        for status in [200, 400] {
            assert_eq!(
                check_announce(status, &body, Some(30)),
                Answer::Failure(b"info hash not allowed")
            );
            assert_eq!(
                check_scrape(status, &body, &hashes(2)),
                Answer::Failure(b"info hash not allowed")
            );
        }
        assert_eq!(
            check_announce(200, b"d14:failure reasoni5ee", Some(30)),
            Answer::Invalid(Invalid::Malformed)
        );
    }

    #[test]
    fn scrapes_must_answer_exactly_the_asked_hashes() {
        let asked = hashes(3);
        assert_eq!(
            check_scrape(200, &scrape_body(&asked), &asked),
            Answer::Scrape
        );
        let mut with_crlf = scrape_body(&asked);
        with_crlf.extend_from_slice(b"\r\n");
        assert_eq!(check_scrape(200, &with_crlf, &asked), Answer::Scrape);
        for body in [scrape_body(&asked[..2]), scrape_body(&hashes(4)), {
            let mut other = asked.clone();
            other[2] = [9; 20];
            scrape_body(&other)
        }] {
            assert_eq!(
                check_scrape(200, &body, &asked),
                Answer::Invalid(Invalid::WrongScrapeCount)
            );
        }
        for body in [
            &b"d5:filesleee"[..],
            b"de",
            b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1eeee",
        ] {
            assert_eq!(
                check_scrape(200, body, &asked),
                Answer::Invalid(Invalid::Malformed),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
