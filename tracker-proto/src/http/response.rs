//! Announce, scrape and failure responses, bencoded straight into the
//! caller's buffer.

use core::fmt;
use std::net::IpAddr;

use crate::common::{InfoHash, PeerId};
use crate::udp::{peers_v4_as_bytes, peers_v6_as_bytes, PeerV4, PeerV6};

pub(crate) fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn b_int(out: &mut Vec<u8>, v: u64) {
    out.push(b'i');
    push_uint(out, v);
    out.push(b'e');
}

fn b_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_uint(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Fixed keys are written with their length prefix spelled out, so the
/// strings in the source read like the wire.
fn b_key_int(out: &mut Vec<u8>, key: &[u8], v: u64) {
    out.extend_from_slice(key);
    b_int(out, v);
}

/// A small stack buffer for formatting IP addresses, which bencode must
/// length-prefix before they are written.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn b_ip_text(out: &mut Vec<u8>, ip: IpAddr) {
    use fmt::Write;
    let mut text = StackText {
        buf: [0; 48],
        len: 0,
    };
    // Cannot fail: the longest IPv6 text is 45 bytes.
    let _ = write!(text, "{ip}");
    b_bytes(out, &text.buf[..text.len]);
}

/// One BEP 3 peer dictionary; keys in byte order: `ip`, `peer id`, `port`.
fn b_dict_peer(out: &mut Vec<u8>, ip: IpAddr, port: u16, peer_id: Option<&PeerId>) {
    out.extend_from_slice(b"d2:ip");
    b_ip_text(out, ip);
    if let Some(id) = peer_id {
        out.extend_from_slice(b"7:peer id20:");
        out.extend_from_slice(&id.0);
    }
    b_key_int(out, b"4:port", u64::from(port));
    out.push(b'e');
}

/// A peer of a non-compact list that carries its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DictPeer {
    pub ip: IpAddr,
    pub port: u16,
    pub peer_id: Option<PeerId>,
}

/// The peers of an announce response, in the form the request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePeers<'a> {
    /// `peers` as 6-byte records (BEP 23), always written, and `peers6` as
    /// 18-byte records (BEP 7), written only when there are any.
    Compact { v4: &'a [PeerV4], v6: &'a [PeerV6] },
    /// `peers` as a list of `{ip, port}` dictionaries (BEP 3), IPv4 then
    /// IPv6, without `peer id`, which the tracker does not keep.
    Dicts { v4: &'a [PeerV4], v6: &'a [PeerV6] },
    /// `peers` as a list of dictionaries with `peer id` where given; for a
    /// `no_peer_id=1` request pass `None` ids or use [`Self::Dicts`].
    DictsWithIds(&'a [DictPeer]),
}

/// An announce response; `write_announce_response` sorts the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpAnnounceResponse<'a> {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds the client must wait at least, when set.
    pub min_interval: Option<u32>,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub peers: ResponsePeers<'a>,
    /// The address the request came from (BEP 24), as 4 or 16 raw bytes.
    pub external_ip: Option<IpAddr>,
    pub warning_message: Option<&'a [u8]>,
}

/// Appends the bencoded announce response to `out`.
pub fn write_announce_response(out: &mut Vec<u8>, r: &HttpAnnounceResponse<'_>) {
    let peer_bytes = match r.peers {
        ResponsePeers::Compact { v4, v6 } => 6 * v4.len() + 18 * v6.len(),
        ResponsePeers::Dicts { v4, v6 } => 40 * v4.len() + 70 * v6.len(),
        ResponsePeers::DictsWithIds(p) => 100 * p.len(),
    };
    let warning = r.warning_message.map_or(0, <[u8]>::len);
    out.reserve(160 + peer_bytes + warning);

    // Keys in raw byte order, as BEP 3 requires: complete, external ip,
    // incomplete, interval, min interval, peers, peers6, warning message.
    out.push(b'd');
    b_key_int(out, b"8:complete", u64::from(r.complete));
    if let Some(ip) = r.external_ip {
        out.extend_from_slice(b"11:external ip");
        match ip {
            IpAddr::V4(ip) => b_bytes(out, &ip.octets()),
            IpAddr::V6(ip) => b_bytes(out, &ip.octets()),
        }
    }
    b_key_int(out, b"10:incomplete", u64::from(r.incomplete));
    b_key_int(out, b"8:interval", u64::from(r.interval));
    if let Some(min) = r.min_interval {
        b_key_int(out, b"12:min interval", u64::from(min));
    }
    match r.peers {
        ResponsePeers::Compact { v4, v6 } => {
            out.extend_from_slice(b"5:peers");
            b_bytes(out, peers_v4_as_bytes(v4));
            if !v6.is_empty() {
                out.extend_from_slice(b"6:peers6");
                b_bytes(out, peers_v6_as_bytes(v6));
            }
        }
        ResponsePeers::Dicts { v4, v6 } => {
            out.extend_from_slice(b"5:peersl");
            for p in v4 {
                b_dict_peer(out, IpAddr::V4(p.ip()), p.port(), None);
            }
            for p in v6 {
                b_dict_peer(out, IpAddr::V6(p.ip()), p.port(), None);
            }
            out.push(b'e');
        }
        ResponsePeers::DictsWithIds(peers) => {
            out.extend_from_slice(b"5:peersl");
            for p in peers {
                b_dict_peer(out, p.ip, p.port, p.peer_id.as_ref());
            }
            out.push(b'e');
        }
    }
    if let Some(w) = r.warning_message {
        out.extend_from_slice(b"15:warning message");
        b_bytes(out, w);
    }
    out.push(b'e');
}

/// One torrent's counts in a scrape response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScrapeFile {
    pub info_hash: InfoHash,
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever counted.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Appends a scrape response to `out`, sorting `files` by info hash in place
/// first: bencode dictionary keys must be sorted and unique, so repeated
/// hashes (a client may ask twice) are written once.
pub fn write_scrape_response(out: &mut Vec<u8>, files: &mut [ScrapeFile]) {
    files.sort_unstable_by_key(|f| f.info_hash);
    write_scrape_response_sorted(out, files.iter().copied());
}

/// Appends a scrape response from files already sorted by info hash. An
/// entry whose hash is not greater than the one before is skipped, so even
/// unsorted input yields valid bencode (missing those entries).
pub fn write_scrape_response_sorted(
    out: &mut Vec<u8>,
    files: impl IntoIterator<Item = ScrapeFile>,
) {
    let files = files.into_iter();
    out.reserve(16 + files.size_hint().0 * 80);
    out.extend_from_slice(b"d5:filesd");
    let mut last: Option<InfoHash> = None;
    for f in files {
        if last.is_some_and(|prev| f.info_hash <= prev) {
            continue;
        }
        last = Some(f.info_hash);
        out.extend_from_slice(b"20:");
        out.extend_from_slice(&f.info_hash.0);
        out.push(b'd');
        b_key_int(out, b"8:complete", u64::from(f.complete));
        b_key_int(out, b"10:downloaded", u64::from(f.downloaded));
        b_key_int(out, b"10:incomplete", u64::from(f.incomplete));
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

/// Appends `d14:failure reason<len>:<reason>e`. Clients read the body, not
/// the status, so this goes out with 200 OK.
pub fn write_failure(out: &mut Vec<u8>, reason: &[u8]) {
    out.reserve(24 + reason.len());
    out.extend_from_slice(b"d14:failure reason");
    b_bytes(out, reason);
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bytes() {
        let mut out = Vec::new();
        write_failure(&mut out, b"unknown path");
        assert_eq!(out, b"d14:failure reason12:unknown pathe");
    }

    #[test]
    fn uint_digits() {
        for v in [0, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_uint(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
