//! BEP 15 requests as a UDP socket worker (or an AF_XDP queue worker)
//! receives them, with BEP 41 options after an announce.
//!
//! Beyond "no panic": a parse error keeps the transaction id whenever the
//! packet has one (the server needs it for the BEP 15 error), a parsed
//! request emits back to exactly the bytes it came from, and re-parses to
//! the same value; option decoding consumes only the option bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::udp::{Bep41Error, Bep41Option, Request};

fuzz_target!(|data: &[u8]| {
    let request = match Request::parse(data) {
        Ok(request) => request,
        Err(e) => {
            if let Some(head) = data.get(..16) {
                let txid = u32::from_be_bytes(head[12..16].try_into().unwrap());
                assert_eq!(e.transaction_id.map(|t| t.0), Some(txid), "{e:?}");
            } else {
                assert_eq!(e.transaction_id, None);
            }
            // What the handler puts into the error response.
            assert!(!e.message().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(
        u32::from_be_bytes(data[12..16].try_into().unwrap()),
        request.transaction_id().0
    );

    let len = request.encoded_len();
    assert!(
        len <= data.len(),
        "encoded_len {len} > input {}",
        data.len()
    );
    let mut out = vec![0u8; len];
    assert_eq!(request.emit(&mut out), Ok(len));
    // Connects ignore trailing bytes; announces and scrapes use them all.
    assert_eq!(&out[..], &data[..len], "emit differs from the parsed bytes");
    assert_eq!(Request::parse(&out), Ok(request), "re-parse differs");
    if len > 0 {
        assert!(request.emit(&mut out[..len - 1]).is_err());
    }

    if let Request::Announce(a) = request {
        let options = a.options.as_bytes();
        assert_eq!(options, &data[98..]);
        let mut consumed = 0usize;
        let mut url_len = 0usize;
        let mut errors = 0;
        for option in a.options.iter() {
            match option {
                Ok(Bep41Option::Nop) => consumed += 1,
                Ok(Bep41Option::UrlData(d)) => {
                    consumed += 2 + d.len();
                    url_len += d.len();
                }
                Ok(Bep41Option::Unknown { kind, data }) => {
                    assert!(kind > 2, "known kind {kind} decoded as unknown");
                    consumed += 2 + data.len();
                }
                Err(Bep41Error::MissingLength { .. }) => errors += 1,
                Err(Bep41Error::Truncated { len, available, .. }) => {
                    assert!(usize::from(len) > available);
                    errors += 1;
                }
            }
            assert!(consumed <= options.len());
        }
        assert!(errors <= 1, "more than one option error");
        let url = a.options.url_data();
        assert_eq!(url.len(), url_len);
        let mut buf = vec![0u8; url_len];
        assert_eq!(a.options.url_data_into(&mut buf), Ok(url_len));
        assert_eq!(buf, url);
        if url_len > 0 {
            assert!(a.options.url_data_into(&mut buf[..url_len - 1]).is_err());
        }
    }
});
