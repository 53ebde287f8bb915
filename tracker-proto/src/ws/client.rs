//! Client messages, for the load tester and tests.

use super::emit::{key, key_uint};
use super::{write_binary_string, write_json_string, AnnounceRequest};
use crate::common::{AnnounceEvent, InfoHash};
use crate::http::push_uint;

/// Appends an announce as the reference client writes it.
pub fn write_announce_request(out: &mut Vec<u8>, r: &AnnounceRequest<'_>) {
    out.extend_from_slice(br#"{"action":"announce""#);
    key(out, "info_hash");
    write_binary_string(out, &r.info_hash.0);
    key(out, "peer_id");
    write_binary_string(out, &r.peer_id.0);
    key_uint(out, "uploaded", r.uploaded);
    key_uint(out, "downloaded", r.downloaded);
    key(out, "left");
    match r.left {
        Some(left) => push_uint(out, left),
        None => out.extend_from_slice(b"null"),
    }
    let event = match r.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Stopped => Some("stopped"),
        AnnounceEvent::Completed => Some("completed"),
    };
    if let Some(event) = event {
        key(out, "event");
        write_json_string(out, event);
    }
    if let Some(n) = r.numwant {
        key_uint(out, "numwant", u64::from(n));
    }
    if !r.offers.is_empty() {
        key(out, "offers");
        out.push(b'[');
        for (i, o) in r.offers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"offer_id":"#);
            write_json_string(out, o.offer_id.as_str());
            key(out, "offer");
            out.extend_from_slice(o.offer.get().as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    if let Some(a) = &r.answer {
        key(out, "to_peer_id");
        write_binary_string(out, &a.to_peer_id.0);
        key(out, "offer_id");
        write_json_string(out, a.offer_id.as_str());
        key(out, "answer");
        out.extend_from_slice(a.answer.get().as_bytes());
    }
    out.push(b'}');
}

/// Appends a scrape request; `None` asks for every torrent.
pub fn write_scrape_request(out: &mut Vec<u8>, info_hashes: Option<&[InfoHash]>) {
    out.extend_from_slice(br#"{"action":"scrape""#);
    if let Some(hashes) = info_hashes {
        key(out, "info_hash");
        out.push(b'[');
        for (i, h) in hashes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_binary_string(out, &h.0);
        }
        out.push(b']');
    }
    out.push(b'}');
}
