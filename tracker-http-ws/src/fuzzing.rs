//! Entry points for the fuzz targets in `fuzz/`, which cannot reach the
//! crate-private request-head parser otherwise. Not an API: nothing else
//! should call these.

use std::net::IpAddr;
use std::ops::Range;

use crate::head::{self, Parsed};

/// What [`parse_head`] found, reduced to what the fuzz target can check
/// against its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadOutcome {
    Complete {
        /// Bytes of the head.
        len: usize,
        /// Where the request target sits in the input.
        target: Range<usize>,
        /// The `Sec-WebSocket-Accept` of a valid upgrade.
        accept: Option<String>,
        real_ip: Option<IpAddr>,
    },
    Partial,
    Invalid(&'static str),
}

/// The server's request-head parser, as the socket workers call it.
pub fn parse_head(buf: &[u8], real_ip_header: Option<&str>) -> HeadOutcome {
    match head::parse_head(buf, real_ip_header) {
        Parsed::Complete(h) => HeadOutcome::Complete {
            len: h.len,
            target: h.target,
            accept: match h.upgrade {
                head::Upgrade::WebSocket { accept } => Some(accept),
                _ => None,
            },
            real_ip: match h.real_ip {
                head::RealIp::Ip(ip) => Some(ip),
                _ => None,
            },
        },
        Parsed::Partial => HeadOutcome::Partial,
        Parsed::Invalid(reason) => HeadOutcome::Invalid(reason),
    }
}
