//! WebTorrent JSON messages as a WebSocket connection receives them (text
//! frames, so UTF-8 by the time they reach the parser).
//!
//! Beyond "no panic": a parsed message written back the way the reference
//! client writes it parses to the same value (ids, numbers, offers and the
//! raw SDP objects survive); a refused message gets a failure reply that
//! is a JSON object with a `failure reason` and whatever action and info
//! hash were readable; a JSON syntax error names a line within the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::ws::{
    binary_str_to_bytes, write_announce_request, write_parse_failure, write_scrape_request,
    InMessage, WsParseErrorKind,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match InMessage::parse(text) {
        Ok(message) => {
            let mut out = Vec::new();
            match &message {
                InMessage::Announce(a) => write_announce_request(&mut out, a),
                InMessage::Scrape(s) => write_scrape_request(&mut out, s.info_hashes.as_deref()),
            }
            let written = std::str::from_utf8(&out).expect("writers emit UTF-8");
            assert_eq!(
                InMessage::parse(written).as_ref(),
                Ok(&message),
                "written back as {written}"
            );
        }
        Err(e) => {
            if let WsParseErrorKind::NotJson { line, .. } = e.kind {
                assert!(
                    line <= text.lines().count() + 1,
                    "{e} in {} lines",
                    text.lines().count()
                );
            }
            let mut out = Vec::new();
            write_parse_failure(&mut out, &e);
            let reply: serde_json::Value =
                serde_json::from_slice(&out).expect("failure reply is JSON");
            let reason = reply["failure reason"].as_str().expect("failure reason");
            assert!(!reason.is_empty());
            match e.action {
                Some(action) => assert_eq!(reply["action"].as_str(), Some(action.as_str())),
                None => assert!(reply.get("action").is_none()),
            }
            match e.info_hash {
                Some(hash) => {
                    let sent = reply["info_hash"].as_str().expect("info_hash");
                    assert_eq!(binary_str_to_bytes(sent).as_deref(), Some(&hash.0[..]));
                }
                None => assert!(reply.get("info_hash").is_none()),
            }
        }
    }
});
