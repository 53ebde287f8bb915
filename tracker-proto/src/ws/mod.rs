//! The WebTorrent tracker protocol: JSON text messages over a WebSocket.
//!
//! # Binary strings
//!
//! Info hashes and peer ids travel as 20-character "binary" strings, one
//! character per byte (U+0000–U+00FF), which is what JavaScript's
//! `Buffer.toString('binary')` makes. A character above U+00FF cannot be a
//! byte and is an error. Writers escape exactly as `JSON.stringify` does:
//! `"` and `\` backslashed, control characters as `\b \t \n \f \r` or
//! `\u00xx`, everything else raw, so bytes 0x80–0xFF go out as the UTF-8 of
//! U+0080–U+00FF (two bytes each rather than six for `\u00xx`). Every string
//! we write is therefore byte-identical to what the reference tracker (npm
//! `bittorrent-tracker`, which uses `JSON.stringify`) would write for it.
//!
//! # Parsing
//!
//! [`InMessage::parse`] reads a client message with `serde_json`, decoding
//! ids straight into fixed arrays and borrowing the SDP `offer`/`answer`
//! objects as raw JSON, so they are forwarded byte-exact and never
//! re-serialised. Every field is read whatever its type, so a bad field
//! still leaves the action and info hash known, and the failure can name
//! them (the reference client ignores a reply without its `info_hash`, and
//! treats one without `action` as a broken connection). Unknown fields are
//! ignored. Parsing never panics.
//!
//! `offer_id` is kept as the string it is, at any length: the reference
//! tracker passes it through untouched and clients that send ids of other
//! lengths broke against trackers that insisted on 20 characters.

pub use crate::http::ScrapeFile;

/// Characters in a binary info hash or peer id.
pub const BINARY_ID_LEN: usize = 20;

mod client;
mod emit;
mod error;
mod message;
mod parse;

pub use client::{write_announce_request, write_scrape_request};
pub use emit::{
    write_announce_response, write_answer, write_binary_string, write_failure, write_json_string,
    write_offer, write_parse_failure, write_scrape_response, AnnounceResponse, RelayedAnswer,
    RelayedOffer,
};
pub use error::{Problem, WsParseError, WsParseErrorKind};
pub use message::{Action, AnnounceRequest, Answer, InMessage, Offer, OfferId, ScrapeRequest};
pub use parse::binary_str_to_bytes;
