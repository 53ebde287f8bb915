//! Server messages, written as `JSON.stringify` would write them.

use serde_json::value::RawValue;

use super::{Action, OfferId, ScrapeFile, WsParseError};
use crate::common::{InfoHash, PeerId};
use crate::http::push_uint;

const ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

fn push_escape(out: &mut Vec<u8>, byte: u8, kind: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if kind == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 15)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', kind]);
    }
}

fn needs_escape(byte: u8) -> u8 {
    ESCAPE.get(usize::from(byte)).copied().unwrap_or(0)
}

/// Appends `s` as a JSON string, quotes included, escaped as
/// `JSON.stringify` escapes it.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Bytes of multi-byte UTF-8 characters are all >= 0x80 and never
        // need escaping, so byte-wise scanning is exact.
        let kind = needs_escape(b);
        if kind != 0 {
            out.extend_from_slice(&bytes[start..i]);
            push_escape(out, b, kind);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `bytes` as a JSON binary string: each byte the character of the
/// same number, quotes included.
pub fn write_binary_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for &b in bytes {
        if b >= 0x80 {
            // The UTF-8 of U+0080..=U+00FF.
            out.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
        } else {
            match needs_escape(b) {
                0 => out.push(b),
                kind => push_escape(out, b, kind),
            }
        }
    }
    out.push(b'"');
}

pub(super) fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b',');
    write_json_string(out, key);
    out.push(b':');
}

pub(super) fn key_uint(out: &mut Vec<u8>, name: &str, v: u64) {
    key(out, name);
    push_uint(out, v);
}

/// The reply to an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    pub info_hash: InfoHash,
    /// Seconds until the next announce.
    pub interval: u32,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub warning_message: Option<&'a str>,
}

/// Appends `{"action":"announce","interval":…,"info_hash":…,"complete":…,
/// "incomplete":…}`, with `"warning message"` last when set.
pub fn write_announce_response(out: &mut Vec<u8>, r: &AnnounceResponse<'_>) {
    out.reserve(128);
    out.extend_from_slice(br#"{"action":"announce""#);
    key_uint(out, "interval", u64::from(r.interval));
    key(out, "info_hash");
    write_binary_string(out, &r.info_hash.0);
    key_uint(out, "complete", u64::from(r.complete));
    key_uint(out, "incomplete", u64::from(r.incomplete));
    if let Some(w) = r.warning_message {
        key(out, "warning message");
        write_json_string(out, w);
    }
    out.push(b'}');
}

/// An offer relayed to another peer of the swarm.
#[derive(Clone, Copy, Debug)]
pub struct RelayedOffer<'a> {
    pub info_hash: InfoHash,
    /// The offering peer.
    pub peer_id: PeerId,
    pub offer_id: &'a OfferId,
    pub offer: &'a RawValue,
}

/// An answer relayed to the peer that made the offer.
#[derive(Clone, Copy, Debug)]
pub struct RelayedAnswer<'a> {
    pub info_hash: InfoHash,
    /// The answering peer.
    pub peer_id: PeerId,
    pub offer_id: &'a OfferId,
    pub answer: &'a RawValue,
}

/// Appends `{"action":"announce","info_hash":…,"peer_id":…,"offer_id":…,
/// "offer":…}` with the offer byte-exact as received.
pub fn write_offer(out: &mut Vec<u8>, r: &RelayedOffer<'_>) {
    write_relayed(out, &r.info_hash, &r.peer_id, r.offer_id, "offer", r.offer);
}

/// Appends `{"action":"announce","info_hash":…,"peer_id":…,"offer_id":…,
/// "answer":…}`. Like the reference tracker, no `to_peer_id`: the recipient
/// knows who it is.
pub fn write_answer(out: &mut Vec<u8>, r: &RelayedAnswer<'_>) {
    write_relayed(
        out,
        &r.info_hash,
        &r.peer_id,
        r.offer_id,
        "answer",
        r.answer,
    );
}

fn write_relayed(
    out: &mut Vec<u8>,
    info_hash: &InfoHash,
    peer_id: &PeerId,
    offer_id: &OfferId,
    name: &str,
    sdp: &RawValue,
) {
    out.reserve(140 + offer_id.as_str().len() + sdp.get().len());
    out.extend_from_slice(br#"{"action":"announce""#);
    key(out, "info_hash");
    write_binary_string(out, &info_hash.0);
    key(out, "peer_id");
    write_binary_string(out, &peer_id.0);
    key(out, "offer_id");
    write_json_string(out, offer_id.as_str());
    key(out, name);
    out.extend_from_slice(sdp.get().as_bytes());
    out.push(b'}');
}

/// Appends `{"action":"scrape","files":{…}}`, one member per file in the
/// order given. JSON objects need no sorted keys; a repeated hash is
/// harmless (`JSON.parse` keeps the last), but the server may dedupe.
pub fn write_scrape_response(out: &mut Vec<u8>, files: impl IntoIterator<Item = ScrapeFile>) {
    let files = files.into_iter();
    out.reserve(32 + files.size_hint().0 * 100);
    out.extend_from_slice(br#"{"action":"scrape","files":{"#);
    for (i, f) in files.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_binary_string(out, &f.info_hash.0);
        out.extend_from_slice(br#":{"complete":"#);
        push_uint(out, u64::from(f.complete));
        key_uint(out, "incomplete", u64::from(f.incomplete));
        key_uint(out, "downloaded", u64::from(f.downloaded));
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
}

/// Appends `{"failure reason":…}` with `action` and `info_hash` when given.
/// Give both whenever known: the reference client drops an announce reply
/// without its info hash, and takes a reply without `action` for a broken
/// connection.
pub fn write_failure(
    out: &mut Vec<u8>,
    reason: &str,
    action: Option<Action>,
    info_hash: Option<InfoHash>,
) {
    out.reserve(80 + reason.len());
    out.push(b'{');
    write_json_string(out, "failure reason");
    out.push(b':');
    write_json_string(out, reason);
    if let Some(a) = action {
        key(out, "action");
        write_json_string(out, a.as_str());
    }
    if let Some(h) = info_hash {
        key(out, "info_hash");
        write_binary_string(out, &h.0);
    }
    out.push(b'}');
}

/// Appends the failure for a message that did not parse, carrying whatever
/// of it was readable.
pub fn write_parse_failure(out: &mut Vec<u8>, e: &WsParseError) {
    use std::io::Write;
    // Formats into a stack buffer: failures should not allocate either.
    let mut buf = [0u8; 128];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // A message too long for the buffer is cut short rather than lost.
    let _ = write!(cursor, "{e}");
    let len = usize::try_from(cursor.position())
        .unwrap_or(0)
        .min(buf.len());
    let reason = match core::str::from_utf8(&buf[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    write_failure(out, reason, e.action, e.info_hash);
}
