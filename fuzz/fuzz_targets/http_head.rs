//! HTTP/1.x request heads as an HTTP socket worker reads them off a
//! connection, with and without a configured reverse-proxy header, then
//! the request target the way the worker passes it on.
//!
//! Beyond "no panic": a complete head lies within the input and its
//! target within the head; the head is the shortest complete prefix and
//! parses the same on its own; a WebSocket accept key is 28 base64 chars.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_http_ws::fuzzing::{parse_head, HeadOutcome};
use tracker_proto::http::HttpRequest;

fuzz_target!(|data: &[u8]| {
    for real_ip_header in [None, Some("x-forwarded-for")] {
        let outcome = parse_head(data, real_ip_header);
        let HeadOutcome::Complete {
            len,
            ref target,
            ref accept,
            real_ip,
        } = outcome
        else {
            continue;
        };
        assert!(len <= data.len(), "head of {len} bytes in {}", data.len());
        assert!(
            target.start <= target.end && target.end <= len,
            "{target:?} outside {len}"
        );
        assert_eq!(data[len - 1], b'\n', "head does not end with a line end");
        if real_ip_header.is_none() {
            assert_eq!(real_ip, None);
        }
        if let Some(accept) = accept {
            assert_eq!(accept.len(), 28, "{accept}");
        }
        assert_eq!(parse_head(&data[..len], real_ip_header), outcome);
        assert!(
            !matches!(
                parse_head(&data[..len - 1], real_ip_header),
                HeadOutcome::Complete { .. }
            ),
            "a shorter prefix is complete too"
        );
        let _ = HttpRequest::parse(&data[target.clone()]);
    }
});
