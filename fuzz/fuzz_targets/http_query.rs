//! HTTP announce and scrape targets (path and query, BEP 3/7/23/48) and the
//! percent-decoding under them, as the HTTP socket worker parses them.
//!
//! Beyond "no panic": values borrowed from the query lie inside it; a
//! scrape yields as many hashes as it counts; decoding never grows a
//! value, `decode_into` agrees with `decode_to_vec`, and percent-encoding a
//! decoded value (either style) decodes back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::http::{
    percent_encode, query_pairs, split_target, EncodedValue, EscapeStyle, HttpRequest, MAX_KEY_LEN,
};

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let start = outer.as_ptr() as usize;
    let p = inner.as_ptr() as usize;
    inner.is_empty() || (p >= start && p + inner.len() <= start + outer.len())
}

fuzz_target!(|data: &[u8]| {
    match HttpRequest::parse(data) {
        Ok(HttpRequest::Announce(a)) => {
            assert_ne!(a.port, 0);
            if let Some(key) = a.key {
                assert!(key.raw().len() <= MAX_KEY_LEN);
                assert!(within(data, key.raw()));
            }
            for v in [a.ip, a.ipv4, a.ipv6].into_iter().flatten() {
                assert!(within(data, v.raw()));
                let _ = v.ip_addr();
            }
        }
        Ok(HttpRequest::Scrape(s)) => {
            let hashes: Vec<_> = s.info_hashes().collect();
            assert_eq!(hashes.len(), s.len());
            assert_eq!(s.is_empty(), hashes.is_empty());
        }
        Err(e) => assert!(!e.message().is_empty()),
    }

    let (path, query) = split_target(data);
    assert!(within(data, path) && within(data, query));
    assert!(path.len() + query.len() <= data.len());
    for (name, value) in query_pairs(query) {
        assert!(within(query, name) && within(query, value.raw()));
        let Ok(decoded) = value.decode_to_vec() else {
            assert_eq!(value.decode_into(&mut [0u8; 4096]), None);
            continue;
        };
        assert!(decoded.len() <= value.raw().len());
        let mut buf = vec![0u8; decoded.len()];
        assert_eq!(value.decode_into(&mut buf), Some(decoded.len()));
        assert_eq!(buf, decoded);
        if !decoded.is_empty() {
            assert_eq!(value.decode_into(&mut buf[..decoded.len() - 1]), None);
        }
        for style in [EscapeStyle::All, EscapeStyle::Reserved] {
            let mut encoded = Vec::new();
            percent_encode(&mut encoded, &decoded, style);
            assert_eq!(EncodedValue(&encoded).decode_to_vec(), Ok(decoded.clone()));
        }
    }
});
