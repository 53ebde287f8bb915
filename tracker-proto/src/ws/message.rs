//! The messages a client sends, as parsed, and the offer ids that tie an
//! answer to its offer.

use core::fmt;

use serde_json::value::RawValue;

use super::binary_str_to_bytes;
use crate::common::{AnnounceEvent, InfoHash, PeerId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Announce,
    Scrape,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Announce => "announce",
            Action::Scrape => "scrape",
        }
    }
}

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InMessage<'a> {
    Announce(AnnounceRequest<'a>),
    Scrape(ScrapeRequest),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest<'a> {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// 0 when missing or null. Numbers are saturated into range: fractions
    /// truncate, negatives become 0.
    pub uploaded: u64,
    pub downloaded: u64,
    /// `None` when missing or null: the reference client sends `null` when
    /// it does not know the size yet (JSON has no `Infinity`). Such a peer is
    /// not a seeder.
    pub left: Option<u64>,
    /// `"update"`, `"empty"`, `""`, `null` and absence are all
    /// [`AnnounceEvent::None`].
    pub event: AnnounceEvent,
    /// `None` when missing, null or negative.
    pub numwant: Option<u32>,
    /// Empty when missing or null. The server caps how many it relays.
    pub offers: Vec<Offer<'a>>,
    pub answer: Option<Answer<'a>>,
}

/// A WebRTC offer to relay to some other peer of the swarm.
#[derive(Clone, Debug)]
pub struct Offer<'a> {
    pub offer_id: OfferId,
    /// The SDP object exactly as the client sent it.
    pub offer: &'a RawValue,
}

/// An answer to relay to the peer whose offer it answers.
#[derive(Clone, Debug)]
pub struct Answer<'a> {
    pub to_peer_id: PeerId,
    pub offer_id: OfferId,
    /// The SDP object exactly as the client sent it.
    pub answer: &'a RawValue,
}

impl PartialEq for Offer<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.offer_id == other.offer_id && self.offer.get() == other.offer.get()
    }
}

impl Eq for Offer<'_> {}

impl PartialEq for Answer<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.to_peer_id == other.to_peer_id
            && self.offer_id == other.offer_id
            && self.answer.get() == other.answer.get()
    }
}

impl Eq for Answer<'_> {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// `None` when `info_hash` is missing or null: a full scrape, which the
    /// server may refuse. A single string is a list of one.
    pub info_hashes: Option<Vec<InfoHash>>,
}

/// Longest offer id kept inline. A binary id of 20 bytes is at most 40
/// bytes of UTF-8, so the reference client's ids never reach the heap.
const OFFER_ID_INLINE: usize = 46;

/// An `offer_id`: the text of the JSON string, at any length.
///
/// Ids compare as strings, which is how JavaScript matches an answer to its
/// offer; an escaped and an unescaped spelling of one id are equal.
#[derive(Clone)]
pub struct OfferId(OfferIdRepr);

#[derive(Clone)]
enum OfferIdRepr {
    Inline { len: u8, buf: [u8; OFFER_ID_INLINE] },
    Heap(Box<str>),
}

impl OfferId {
    pub fn new(s: &str) -> Self {
        let mut buf = [0u8; OFFER_ID_INLINE];
        match (buf.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(s.as_bytes());
                OfferId(OfferIdRepr::Inline { len, buf })
            }
            _ => OfferId(OfferIdRepr::Heap(s.into())),
        }
    }

    /// The id whose binary string holds `bytes`.
    pub fn from_binary(bytes: &[u8]) -> Self {
        let s: String = bytes.iter().map(|&b| char::from(b)).collect();
        Self::new(&s)
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            OfferIdRepr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(&[]),
            OfferIdRepr::Heap(s) => s.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        // Always valid: both forms are only ever built from a `&str`.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The bytes of a binary-string id, when every character is at most
    /// U+00FF, as the reference client's ids are.
    pub fn to_binary(&self) -> Option<Vec<u8>> {
        binary_str_to_bytes(self.as_str())
    }
}

impl PartialEq for OfferId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for OfferId {}

impl core::hash::Hash for OfferId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for OfferId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OfferId {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
