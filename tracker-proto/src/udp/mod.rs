//! The UDP tracker protocol (BEP 15), with the announce options of BEP 41.
//!
//! Parsing borrows from the packet and never allocates; emitting writes into
//! a caller-provided buffer. Every integer on the wire is big-endian. Parsers
//! are total: any byte string yields either a value or an error, never a
//! panic, because every byte comes from an untrusted peer.

use core::fmt;

/// Magic constant a connect request starts with, so that stray traffic to the
/// port is unlikely to be taken for a connect.
pub const PROTOCOL_ID: u64 = 0x41727101980;

pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

pub const CONNECT_REQUEST_LEN: usize = 16;
/// Fixed part of an announce; BEP 41 options may follow.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Connection id, action and transaction id; info hashes follow.
pub const SCRAPE_REQUEST_HEADER_LEN: usize = 16;
pub const CONNECT_RESPONSE_LEN: usize = 16;
/// Action, transaction id, interval, leechers, seeders; peers follow.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Action and transaction id; one [`ScrapeStats`] per info hash follows.
pub const SCRAPE_RESPONSE_HEADER_LEN: usize = 8;
pub const SCRAPE_STATS_LEN: usize = 12;
/// Action and transaction id; the message follows, unterminated.
pub const ERROR_RESPONSE_HEADER_LEN: usize = 8;

const INFO_HASH_LEN: usize = 20;

/// The 64-bit token a connect response hands out and later requests echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Chosen by the client and echoed back, so it can match responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u32);

/// The output buffer cannot hold the packet; nothing useful was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

mod cursor;
mod options;
mod records;
mod request;
mod response;

pub use options::{Bep41Error, Bep41Iter, Bep41Option, Bep41Options};
pub use records::{
    peers_v4_as_bytes, peers_v4_from_bytes, peers_v6_as_bytes, peers_v6_from_bytes,
    scrape_stats_as_bytes, scrape_stats_from_bytes, InfoHashes, PeerV4, PeerV6, ScrapeStats,
};
pub use request::{
    AnnounceRequest, ConnectRequest, Request, RequestParseError, RequestParseErrorKind,
    ScrapeRequest,
};
pub use response::{
    write_announce_response, write_connect_response, write_error_response, write_scrape_response,
    AnnounceResponse, ConnectResponse, ErrorResponse, PeerFamily, Peers, Response,
    ResponseParseError, ScrapeResponse,
};

/// Info hash 00 01 .. 13, shared by the request and record tests.
#[cfg(test)]
fn info_hash_0_to_19() -> crate::common::InfoHash {
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = i as u8;
    }
    crate::common::InfoHash(h)
}
