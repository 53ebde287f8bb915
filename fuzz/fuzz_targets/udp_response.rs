//! BEP 15 responses, as the load generator and the tests read them from a
//! tracker (ours or someone else's), for both peer families.
//!
//! Beyond "no panic": a parsed response emits back to exactly the bytes it
//! came from and re-parses to the same value; peer and scrape lists cover
//! the whole tail of the packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::udp::{PeerFamily, Peers, Response};

fuzz_target!(|data: &[u8]| {
    for family in [PeerFamily::V4, PeerFamily::V6] {
        let response = match Response::parse(data, family) {
            Ok(response) => response,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let len = response.encoded_len();
        assert!(len <= data.len());
        let mut out = vec![0u8; len];
        assert_eq!(response.emit(&mut out), Ok(len));
        assert_eq!(&out[..], &data[..len], "emit differs from the parsed bytes");
        assert_eq!(Response::parse(&out, family), Ok(response));
        if len > 0 {
            assert!(response.emit(&mut out[..len - 1]).is_err());
        }
        match response {
            Response::Announce(a) => {
                assert_eq!(a.peers.family(), family);
                let size = match a.peers {
                    Peers::V4(_) => 6,
                    Peers::V6(_) => 18,
                };
                assert_eq!(20 + a.peers.len() * size, data.len());
            }
            Response::Scrape(s) => assert_eq!(8 + s.stats.len() * 12, data.len()),
            Response::Error(e) => assert_eq!(8 + e.message.len(), data.len()),
            Response::Connect(_) => {}
        }
    }
});
