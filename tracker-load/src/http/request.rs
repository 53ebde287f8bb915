//! Writing HTTP tracker requests.
//!
//! What never changes (the request line's tail, `Host`, numwant, the
//! compact flag) is built once per worker; a request is the client's
//! percent-encoded ids, port and left spliced in between. info_hash and
//! peer_id are escaped as libtorrent escapes them (all but RFC 3986
//! unreserved bytes), the most common form on the wire.

use std::io::Write as _;

use tracker_proto::http::{percent_encode, EscapeStyle};
use tracker_proto::AnnounceEvent;

use crate::profile::{Client, Profile};

pub struct RequestWriter {
    /// `&numwant=N&compact=1` (no numwant when negative: the tracker's
    /// default).
    announce_tail: Vec<u8>,
    /// ` HTTP/1.1`, `Host` and the empty line.
    request_tail: Vec<u8>,
}

impl RequestWriter {
    /// `host` is the `Host` header's value (the tracker's address).
    pub fn new(host: &str, numwant: i32) -> Self {
        let mut announce_tail = Vec::new();
        if numwant >= 0 {
            let _ = write!(announce_tail, "&numwant={numwant}");
        }
        announce_tail.extend_from_slice(b"&compact=1");
        // HTTP/1.1 keeps the connection alive unless told otherwise.
        let request_tail = format!(" HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        Self {
            announce_tail,
            request_tail,
        }
    }

    /// Appends client `index`'s announce to `out`, naming `event` (the
    /// client's own or none, see [`Profile::announce_event`]).
    pub fn announce(
        &self,
        out: &mut Vec<u8>,
        profile: &Profile,
        index: u32,
        client: &Client,
        event: AnnounceEvent,
    ) {
        let mut info_hash = [0u8; 20];
        profile.info_hash(client.torrent, &mut info_hash);
        let mut peer_id = [0u8; 20];
        profile.peer_id(index, &mut peer_id);
        let left = client.left();
        out.extend_from_slice(b"GET /announce?info_hash=");
        percent_encode(out, &info_hash, EscapeStyle::Reserved);
        out.extend_from_slice(b"&peer_id=");
        percent_encode(out, &peer_id, EscapeStyle::Reserved);
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "&port={}&uploaded=0&downloaded=0&left={left}",
            client.port
        );
        out.extend_from_slice(match event {
            AnnounceEvent::Completed => b"&event=completed",
            AnnounceEvent::Started => b"&event=started",
            AnnounceEvent::Stopped => b"&event=stopped",
            AnnounceEvent::None => b"",
        });
        out.extend_from_slice(&self.announce_tail);
        out.extend_from_slice(&self.request_tail);
    }

    /// Appends the client's scrape to `out`: one `info_hash` per torrent
    /// it scrapes, repeats included (the tracker answers each once).
    pub fn scrape(&self, out: &mut Vec<u8>, profile: &Profile, client: &Client) {
        out.extend_from_slice(b"GET /scrape");
        let mut separator = b'?';
        for torrent in profile.scrape_torrents(client) {
            let mut info_hash = [0u8; 20];
            profile.info_hash(torrent, &mut info_hash);
            out.push(separator);
            separator = b'&';
            out.extend_from_slice(b"info_hash=");
            percent_encode(out, &info_hash, EscapeStyle::Reserved);
        }
        out.extend_from_slice(&self.request_tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProfileConfig;
    use tracker_proto::http::{split_target, HttpRequest};

    /// The request line's target and the headers, split.
    fn split(request: &[u8]) -> (&[u8], &[u8]) {
        let line_end = request.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = &request[..line_end];
        let target = line
            .strip_prefix(b"GET ")
            .and_then(|l| l.strip_suffix(b" HTTP/1.1"))
            .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(line)));
        (target, &request[line_end..])
    }

    #[test]
    fn announce_parses_back_to_the_clients_values() {
        let profile = Profile::new(&ProfileConfig::default());
        let writer = RequestWriter::new("127.0.0.1:6969", 30);
        for index in [0u32, 1, 7, 99_999, 1_999_999] {
            let client = profile.client(index);
            let mut out = Vec::new();
            writer.announce(&mut out, &profile, index, &client, client.event());
            let (target, rest) = split(&out);
            assert_eq!(rest, b"\r\nHost: 127.0.0.1:6969\r\n\r\n");
            // Every byte of the target is printable ASCII: nothing raw.
            assert!(target.iter().all(|b| b.is_ascii_graphic()), "{target:?}");
            let Ok(HttpRequest::Announce(a)) = HttpRequest::parse(target) else {
                panic!("{:?}", HttpRequest::parse(target));
            };
            let mut hash = [0u8; 20];
            profile.info_hash(client.torrent, &mut hash);
            let mut peer_id = [0u8; 20];
            profile.peer_id(index, &mut peer_id);
            let (left, event) = (client.left(), client.event());
            assert_eq!(a.info_hash.0, hash);
            assert_eq!(a.peer_id.0, peer_id);
            assert_eq!(a.port, client.port);
            assert_eq!((a.uploaded, a.downloaded), (0, 0));
            assert_eq!(a.left, Some(left));
            assert_eq!(a.event, event);
            assert_eq!(a.numwant, Some(30));
            assert!(a.compact);
            let (path, _) = split_target(target);
            assert_eq!(path, b"/announce");
        }
    }

    #[test]
    fn a_reannounce_names_no_event_and_keeps_left() {
        let profile = Profile::new(&ProfileConfig::default());
        let writer = RequestWriter::new("h", 30);
        for index in 0..20 {
            let client = profile.client(index);
            let mut out = Vec::new();
            writer.announce(&mut out, &profile, index, &client, AnnounceEvent::None);
            let (target, _) = split(&out);
            assert!(!target.windows(7).any(|w| w == b"&event="), "{target:?}");
            let Ok(HttpRequest::Announce(a)) = HttpRequest::parse(target) else {
                panic!("{:?}", HttpRequest::parse(target));
            };
            assert_eq!(a.event, AnnounceEvent::None);
            assert_eq!(a.left, Some(if client.seeder { 0 } else { 50 }));
        }
    }

    #[test]
    fn negative_numwant_is_left_out() {
        let profile = Profile::new(&ProfileConfig::default());
        let writer = RequestWriter::new("[::1]:80", -1);
        let mut out = Vec::new();
        let client = profile.client(3);
        writer.announce(&mut out, &profile, 3, &client, client.event());
        let (target, rest) = split(&out);
        assert!(rest.starts_with(b"\r\nHost: [::1]:80\r\n"));
        let Ok(HttpRequest::Announce(a)) = HttpRequest::parse(target) else {
            panic!()
        };
        assert_eq!(a.numwant, None);
    }

    #[test]
    fn scrape_asks_for_the_clients_hashes_in_order() {
        let profile = Profile::new(&ProfileConfig {
            scrape_max_torrents: 74,
            ..ProfileConfig::default()
        });
        let writer = RequestWriter::new("h", 30);
        for index in 0..500 {
            let client = profile.client(index);
            let mut out = Vec::new();
            writer.scrape(&mut out, &profile, &client);
            let (target, _) = split(&out);
            let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(target) else {
                panic!("{:?}", String::from_utf8_lossy(target));
            };
            let want: Vec<[u8; 20]> = profile
                .scrape_torrents(&client)
                .map(|t| {
                    let mut h = [0u8; 20];
                    profile.info_hash(t, &mut h);
                    h
                })
                .collect();
            let got: Vec<[u8; 20]> = s.info_hashes().map(|h| h.0).collect();
            assert_eq!(got, want);
        }
    }
}
