//! The HTTP tracker protocol (BEP 3), with IPv6 peers (BEP 7), compact peer
//! lists (BEP 23), `external ip` (BEP 24) and the scrape convention (BEP 48).
//!
//! Only the request target (path and query) is parsed here; the HTTP framing
//! is the server's business. Parsing borrows from the target and never
//! allocates; responses are bencoded straight into a caller's `Vec<u8>`.
//! Every parser is total: untrusted input yields a value or an error, never a
//! panic.
//!
//! # Percent-decoding
//!
//! `info_hash` and `peer_id` are 20 raw bytes, and clients disagree on which
//! of them to escape: libtorrent (and so qBittorrent and Deluge) escapes
//! everything outside the RFC 3986 unreserved set, Transmission does the same
//! with upper-case hex, some older clients escape every byte, others only the
//! bytes a URL cannot hold. All of these decode the same way here: `%XX`
//! (either hex case) is one byte, anything else is itself. In particular a
//! raw `+` is the byte 0x2B, not a space: `+`-for-space is HTML form
//! encoding, which no BitTorrent client uses for binary values (they all
//! escape 0x20 as `%20`), so a raw `+` can only come from a client that
//! counts it among the safe bytes. A `%` not followed by two hex digits is an
//! error rather than a literal `%`, because no client sends one unescaped
//! and guessing would hide the bug.

/// Longest `key` accepted, counted in bytes as sent (still escaped). Real
/// clients send 8 to 32 characters; the cap only bounds what a server might
/// store per peer.
pub const MAX_KEY_LEN: usize = 128;

const ID_LEN: usize = 20;

mod bdecode;
mod query;
mod request;
mod response;

pub use bdecode::{BDecodeError, BValue, DecodeOptions};
pub use query::{
    percent_encode, query_pairs, split_target, BadEscape, Decode, EncodedValue, EscapeStyle,
    QueryPairs,
};
pub use request::{
    AnnounceQuery, Endpoint, HttpParseError, HttpRequest, ScrapeInfoHashes, ScrapeQuery,
};
pub(crate) use response::push_uint;
pub use response::{
    write_announce_response, write_failure, write_scrape_response, write_scrape_response_sorted,
    DictPeer, HttpAnnounceResponse, ResponsePeers, ScrapeFile,
};
