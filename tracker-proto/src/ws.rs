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

use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::common::{AnnounceEvent, InfoHash, PeerId};
use crate::http::push_uint;
pub use crate::http::ScrapeFile;

/// Characters in a binary info hash or peer id.
pub const BINARY_ID_LEN: usize = 20;

// ---------------------------------------------------------------------------
// Message types

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

// ---------------------------------------------------------------------------
// Offer ids

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

// ---------------------------------------------------------------------------
// Errors

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing,
    /// The JSON type is not the one the field needs (`expected` reads like
    /// "a string").
    WrongType {
        expected: &'static str,
    },
    /// A binary string with a character above U+00FF.
    NotBinary,
    /// A binary id of this many characters, not 20.
    Length(usize),
    /// A string outside the field's vocabulary (`action`, `event`).
    UnknownValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsParseErrorKind {
    /// Not valid JSON; position as serde_json reports it.
    NotJson { line: usize, column: usize },
    /// Valid JSON, but not an object.
    NotAnObject,
    /// `field` names the offending member, e.g. `info_hash` or
    /// `offers.offer_id`.
    Field {
        field: &'static str,
        problem: Problem,
    },
}

/// A message that could not be parsed, with whatever of it could be read so
/// that the failure reply can carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsParseError {
    pub kind: WsParseErrorKind,
    /// The action, when it was valid.
    pub action: Option<Action>,
    /// The (first) info hash, when it was valid.
    pub info_hash: Option<InfoHash>,
}

impl fmt::Display for WsParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotJson { line, column } => {
                write!(f, "invalid JSON at line {line}, column {column}")
            }
            Self::NotAnObject => f.write_str("message is not a JSON object"),
            Self::Field { field, problem } => match problem {
                Problem::Missing => write!(f, "missing {field}"),
                Problem::WrongType { expected } => write!(f, "{field} must be {expected}"),
                Problem::NotBinary => write!(f, "{field} has a character above U+00FF"),
                Problem::Length(len) => {
                    write!(f, "{field} is not 20 characters long ({len})")
                }
                Problem::UnknownValue => write!(f, "unknown {field}"),
            },
        }
    }
}

impl fmt::Display for WsParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for WsParseError {}

/// A field's name and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Invalid {
    field: &'static str,
    problem: Problem,
}

impl Invalid {
    fn into_error(self, action: Option<Action>, info_hash: Option<InfoHash>) -> WsParseError {
        WsParseError {
            kind: WsParseErrorKind::Field {
                field: self.field,
                problem: self.problem,
            },
            action,
            info_hash,
        }
    }
}

// ---------------------------------------------------------------------------
// Field readers
//
// Each field is read by a visitor that accepts every JSON type and turns the
// ones it does not want into an `Invalid` value instead of a serde error, so
// that one bad field does not stop the rest of the message being read.

type FieldResult<T> = Result<T, Invalid>;

trait Field<'de>: Sized {
    type Out;
    const NAME: &'static str;
    const EXPECTED: &'static str;

    fn wrong(&self) -> Invalid {
        Invalid {
            field: Self::NAME,
            problem: Problem::WrongType {
                expected: Self::EXPECTED,
            },
        }
    }

    fn invalid(&self, problem: Problem) -> Invalid {
        Invalid {
            field: Self::NAME,
            problem,
        }
    }

    fn string(self, _s: &str) -> FieldResult<Self::Out> {
        Err(self.wrong())
    }

    fn borrowed_string(self, s: &'de str) -> FieldResult<Self::Out> {
        self.string(s)
    }

    /// Any JSON number, widened; floats truncate and saturate.
    fn number(self, _n: i128) -> FieldResult<Self::Out> {
        Err(self.wrong())
    }

    fn null(self) -> FieldResult<Self::Out> {
        Err(self.wrong())
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldResult<Self::Out>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(self.wrong()))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldResult<Self::Out>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err(self.wrong()))
    }
}

/// Adapts a [`Field`] to serde, reading any JSON value.
struct Total<F>(F);

impl<'de, F: Field<'de>> Visitor<'de> for Total<F> {
    type Value = FieldResult<F::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(Err(self.0.wrong()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.number(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.number(i128::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates and truncates toward zero, which is what a counter
        // sent as 1e21 or 12.5 should become.
        Ok(self.0.number(v as i128))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.string(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.borrowed_string(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.map(map)
    }
}

impl<'de, F: Field<'de>> DeserializeSeed<'de> for Total<F> {
    type Value = FieldResult<F::Out>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Decodes a 20-character binary string without allocating.
fn binary_id(s: &str) -> Result<[u8; BINARY_ID_LEN], Problem> {
    let mut out = [0u8; BINARY_ID_LEN];
    let mut len = 0usize;
    for c in s.chars() {
        let byte = u8::try_from(c).map_err(|_| Problem::NotBinary)?;
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
        }
        len += 1;
    }
    if len == BINARY_ID_LEN {
        Ok(out)
    } else {
        Err(Problem::Length(len))
    }
}

/// The bytes of a binary string, or `None` if a character is above U+00FF.
pub fn binary_str_to_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c).ok()).collect()
}

macro_rules! binary_id_field {
    ($ty:ident, $name:literal) => {
        struct $ty;

        impl<'de> Field<'de> for $ty {
            type Out = [u8; BINARY_ID_LEN];
            const NAME: &'static str = $name;
            const EXPECTED: &'static str = "a string";

            fn string(self, s: &str) -> FieldResult<Self::Out> {
                binary_id(s).map_err(|p| self.invalid(p))
            }
        }
    };
}

binary_id_field!(PeerIdField, "peer_id");
binary_id_field!(ToPeerIdField, "to_peer_id");
binary_id_field!(InfoHashItem, "info_hash");

/// `info_hash`: a string in an announce; a string or an array of them in a
/// scrape. Which is allowed is decided once the action is known.
enum InfoHashValue {
    One(InfoHash),
    Many(Vec<InfoHash>),
    Null,
}

struct InfoHashField;

impl<'de> Field<'de> for InfoHashField {
    type Out = InfoHashValue;
    const NAME: &'static str = "info_hash";
    const EXPECTED: &'static str = "a string or an array of strings";

    fn string(self, s: &str) -> FieldResult<InfoHashValue> {
        InfoHashItem
            .string(s)
            .map(|h| InfoHashValue::One(InfoHash(h)))
    }

    fn null(self) -> FieldResult<InfoHashValue> {
        Ok(InfoHashValue::Null)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldResult<InfoHashValue>, A::Error> {
        let mut hashes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        let mut first_error = None;
        while let Some(item) = seq.next_element_seed(Total(InfoHashItem))? {
            match item {
                Ok(h) => hashes.push(InfoHash(h)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(match first_error {
            Some(e) => Err(e),
            None => Ok(InfoHashValue::Many(hashes)),
        })
    }
}

macro_rules! number_field {
    ($ty:ident, $name:literal) => {
        struct $ty;

        impl<'de> Field<'de> for $ty {
            type Out = Option<i128>;
            const NAME: &'static str = $name;
            const EXPECTED: &'static str = "a number";

            fn number(self, n: i128) -> FieldResult<Self::Out> {
                Ok(Some(n))
            }

            fn null(self) -> FieldResult<Self::Out> {
                Ok(None)
            }
        }
    };
}

number_field!(UploadedField, "uploaded");
number_field!(DownloadedField, "downloaded");
number_field!(LeftField, "left");
number_field!(NumwantField, "numwant");

fn saturate_u64(n: i128) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(u64::MAX)
}

struct EventField;

impl<'de> Field<'de> for EventField {
    type Out = AnnounceEvent;
    const NAME: &'static str = "event";
    const EXPECTED: &'static str = "a string";

    fn string(self, s: &str) -> FieldResult<AnnounceEvent> {
        Ok(match s {
            "started" => AnnounceEvent::Started,
            "stopped" => AnnounceEvent::Stopped,
            "completed" => AnnounceEvent::Completed,
            // The reference tracker takes an empty event, and "empty" as in
            // BEP 3, for an update too.
            "update" | "empty" | "" => AnnounceEvent::None,
            _ => return Err(self.invalid(Problem::UnknownValue)),
        })
    }

    fn null(self) -> FieldResult<AnnounceEvent> {
        Ok(AnnounceEvent::None)
    }
}

struct ActionField;

impl<'de> Field<'de> for ActionField {
    type Out = Action;
    const NAME: &'static str = "action";
    const EXPECTED: &'static str = "a string";

    fn string(self, s: &str) -> FieldResult<Action> {
        match s {
            "announce" => Ok(Action::Announce),
            "scrape" => Ok(Action::Scrape),
            _ => Err(self.invalid(Problem::UnknownValue)),
        }
    }
}

macro_rules! offer_id_field {
    ($ty:ident, $name:literal) => {
        struct $ty;

        impl<'de> Field<'de> for $ty {
            type Out = OfferId;
            const NAME: &'static str = $name;
            const EXPECTED: &'static str = "a string";

            fn string(self, s: &str) -> FieldResult<OfferId> {
                Ok(OfferId::new(s))
            }
        }
    };
}

offer_id_field!(OfferIdField, "offer_id");
offer_id_field!(OffersOfferIdField, "offers.offer_id");

/// `offer` or `answer`: an SDP object, kept as raw JSON.
fn raw_object<'de>(raw: &'de RawValue, field: &'static str) -> FieldResult<Option<&'de RawValue>> {
    match raw.get().as_bytes().first() {
        Some(b'{') => Ok(Some(raw)),
        // The reference client tests the member for truthiness.
        Some(b'n') => Ok(None),
        _ => Err(Invalid {
            field,
            problem: Problem::WrongType {
                expected: "an object",
            },
        }),
    }
}

struct OfferField;

impl<'de> Field<'de> for OfferField {
    type Out = Offer<'de>;
    const NAME: &'static str = "offers";
    const EXPECTED: &'static str = "an array of objects";

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldResult<Offer<'de>>, A::Error> {
        let mut offer_id = None;
        let mut offer = None;
        let mut error = None;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0 {
                Key::OfferId => match map.next_value_seed(Total(OffersOfferIdField))? {
                    Ok(id) => offer_id = Some(id),
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                },
                Key::Offer => {
                    let raw: &'de RawValue = map.next_value()?;
                    match raw_object(raw, "offers.offer") {
                        Ok(raw) => offer = raw,
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(e) = error {
            return Ok(Err(e));
        }
        let missing = |field| Invalid {
            field,
            problem: Problem::Missing,
        };
        Ok(match (offer_id, offer) {
            (Some(offer_id), Some(offer)) => Ok(Offer { offer_id, offer }),
            (None, _) => Err(missing("offers.offer_id")),
            (_, None) => Err(missing("offers.offer")),
        })
    }
}

struct OffersField;

impl<'de> Field<'de> for OffersField {
    type Out = Vec<Offer<'de>>;
    const NAME: &'static str = "offers";
    const EXPECTED: &'static str = "an array of objects";

    fn null(self) -> FieldResult<Self::Out> {
        Ok(Vec::new())
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldResult<Self::Out>, A::Error> {
        // The reference client sends at most 10 offers; a hint from a
        // hostile message must not size the allocation.
        let mut offers = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        let mut first_error = None;
        while let Some(item) = seq.next_element_seed(Total(OfferField))? {
            match item {
                Ok(o) => offers.push(o),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(match first_error {
            Some(e) => Err(e),
            None => Ok(offers),
        })
    }
}

/// Member names the parser looks at; everything else is skipped unread.
#[derive(Clone, Copy)]
enum Key {
    Action,
    InfoHash,
    PeerId,
    Uploaded,
    Downloaded,
    Left,
    Event,
    Numwant,
    Offers,
    Answer,
    OfferId,
    ToPeerId,
    Offer,
    Other,
}

struct KeyName(Key);

impl<'de> de::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(match v {
                    "action" => Key::Action,
                    "info_hash" => Key::InfoHash,
                    "peer_id" => Key::PeerId,
                    "uploaded" => Key::Uploaded,
                    "downloaded" => Key::Downloaded,
                    "left" => Key::Left,
                    "event" => Key::Event,
                    "numwant" => Key::Numwant,
                    "offers" => Key::Offers,
                    "answer" => Key::Answer,
                    "offer_id" => Key::OfferId,
                    "to_peer_id" => Key::ToPeerId,
                    "offer" => Key::Offer,
                    _ => Key::Other,
                }))
            }
        }
        d.deserialize_str(V)
    }
}

/// Every member of interest, read but not yet checked against the action.
/// A repeated member keeps its last value, as `JSON.parse` does.
#[derive(Default)]
struct Members<'de> {
    action: Option<FieldResult<Action>>,
    info_hash: Option<FieldResult<InfoHashValue>>,
    peer_id: Option<FieldResult<[u8; BINARY_ID_LEN]>>,
    uploaded: Option<FieldResult<Option<i128>>>,
    downloaded: Option<FieldResult<Option<i128>>>,
    left: Option<FieldResult<Option<i128>>>,
    event: Option<FieldResult<AnnounceEvent>>,
    numwant: Option<FieldResult<Option<i128>>>,
    offers: Option<FieldResult<Vec<Offer<'de>>>>,
    answer: Option<FieldResult<Option<&'de RawValue>>>,
    offer_id: Option<FieldResult<OfferId>>,
    to_peer_id: Option<FieldResult<[u8; BINARY_ID_LEN]>>,
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut m = Members::default();
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0 {
                Key::Action => m.action = Some(map.next_value_seed(Total(ActionField))?),
                Key::InfoHash => m.info_hash = Some(map.next_value_seed(Total(InfoHashField))?),
                Key::PeerId => m.peer_id = Some(map.next_value_seed(Total(PeerIdField))?),
                Key::Uploaded => m.uploaded = Some(map.next_value_seed(Total(UploadedField))?),
                Key::Downloaded => {
                    m.downloaded = Some(map.next_value_seed(Total(DownloadedField))?);
                }
                Key::Left => m.left = Some(map.next_value_seed(Total(LeftField))?),
                Key::Event => m.event = Some(map.next_value_seed(Total(EventField))?),
                Key::Numwant => m.numwant = Some(map.next_value_seed(Total(NumwantField))?),
                Key::Offers => m.offers = Some(map.next_value_seed(Total(OffersField))?),
                Key::Answer => {
                    let raw: &'de RawValue = map.next_value()?;
                    m.answer = Some(raw_object(raw, "answer"));
                }
                Key::OfferId => m.offer_id = Some(map.next_value_seed(Total(OfferIdField))?),
                Key::ToPeerId => m.to_peer_id = Some(map.next_value_seed(Total(ToPeerIdField))?),
                Key::Offer | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(m)
    }
}

impl<'a> InMessage<'a> {
    /// Parses one text message; the SDP objects borrow from it.
    pub fn parse(text: &'a str) -> Result<Self, WsParseError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let members = de
            .deserialize_map(MessageVisitor)
            .and_then(|m| de.end().map(|()| m))
            .map_err(|e| WsParseError {
                kind: match e.classify() {
                    serde_json::error::Category::Data => WsParseErrorKind::NotAnObject,
                    _ => WsParseErrorKind::NotJson {
                        line: e.line(),
                        column: e.column(),
                    },
                },
                action: None,
                info_hash: None,
            })?;
        from_members(members)
    }
}

fn from_members(m: Members<'_>) -> Result<InMessage<'_>, WsParseError> {
    let info_hash = match &m.info_hash {
        Some(Ok(InfoHashValue::One(h))) => Some(*h),
        Some(Ok(InfoHashValue::Many(v))) => v.first().copied(),
        _ => None,
    };
    let action = match m.action {
        Some(Ok(a)) => a,
        Some(Err(e)) => return Err(e.into_error(None, info_hash)),
        None => {
            let missing = Invalid {
                field: "action",
                problem: Problem::Missing,
            };
            return Err(missing.into_error(None, info_hash));
        }
    };
    let fail = |e: Invalid| e.into_error(Some(action), info_hash);
    let required = |field| {
        fail(Invalid {
            field,
            problem: Problem::Missing,
        })
    };

    if action == Action::Scrape {
        let info_hashes = match m.info_hash {
            None | Some(Ok(InfoHashValue::Null)) => None,
            Some(Ok(InfoHashValue::One(h))) => Some(vec![h]),
            Some(Ok(InfoHashValue::Many(v))) => Some(v),
            Some(Err(e)) => return Err(fail(e)),
        };
        return Ok(InMessage::Scrape(ScrapeRequest { info_hashes }));
    }

    let info_hash = match m.info_hash {
        Some(Ok(InfoHashValue::One(h))) => h,
        None | Some(Ok(InfoHashValue::Null)) => return Err(required("info_hash")),
        Some(Ok(InfoHashValue::Many(_))) => {
            return Err(fail(Invalid {
                field: "info_hash",
                problem: Problem::WrongType {
                    expected: "a string",
                },
            }))
        }
        Some(Err(e)) => return Err(fail(e)),
    };
    let peer_id = PeerId(
        m.peer_id
            .ok_or_else(|| required("peer_id"))?
            .map_err(fail)?,
    );
    let number = |n: Option<FieldResult<Option<i128>>>| n.transpose().map(Option::flatten);
    let uploaded = number(m.uploaded).map_err(fail)?.map_or(0, saturate_u64);
    let downloaded = number(m.downloaded).map_err(fail)?.map_or(0, saturate_u64);
    let left = number(m.left).map_err(fail)?.map(saturate_u64);
    let numwant = number(m.numwant)
        .map_err(fail)?
        .filter(|&n| n >= 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let event = m.event.transpose().map_err(fail)?.unwrap_or_default();
    let offers = m.offers.transpose().map_err(fail)?.unwrap_or_default();
    let answer = match m.answer.transpose().map_err(fail)?.flatten() {
        None => None,
        Some(answer) => {
            let to_peer_id = m.to_peer_id.ok_or_else(|| required("to_peer_id"))?;
            let offer_id = m.offer_id.ok_or_else(|| required("offer_id"))?;
            Some(Answer {
                to_peer_id: PeerId(to_peer_id.map_err(fail)?),
                offer_id: offer_id.map_err(fail)?,
                answer,
            })
        }
    };
    Ok(InMessage::Announce(AnnounceRequest {
        info_hash,
        peer_id,
        uploaded,
        downloaded,
        left,
        event,
        numwant,
        offers,
        answer,
    }))
}

// ---------------------------------------------------------------------------
// JSON writing

/// How `JSON.stringify` writes each ASCII byte inside a string: 0 raw, or
/// the character after the backslash, with `u` for `\u00xx`.
const ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

fn push_escape(out: &mut Vec<u8>, byte: u8, kind: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if kind == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 15)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', kind]);
    }
}

fn needs_escape(byte: u8) -> u8 {
    ESCAPE.get(usize::from(byte)).copied().unwrap_or(0)
}

/// Appends `s` as a JSON string, quotes included, escaped as
/// `JSON.stringify` escapes it.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Bytes of multi-byte UTF-8 characters are all >= 0x80 and never
        // need escaping, so byte-wise scanning is exact.
        let kind = needs_escape(b);
        if kind != 0 {
            out.extend_from_slice(&bytes[start..i]);
            push_escape(out, b, kind);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `bytes` as a JSON binary string: each byte the character of the
/// same number, quotes included.
pub fn write_binary_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for &b in bytes {
        if b >= 0x80 {
            // The UTF-8 of U+0080..=U+00FF.
            out.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
        } else {
            match needs_escape(b) {
                0 => out.push(b),
                kind => push_escape(out, b, kind),
            }
        }
    }
    out.push(b'"');
}

fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b',');
    write_json_string(out, key);
    out.push(b':');
}

fn key_uint(out: &mut Vec<u8>, name: &str, v: u64) {
    key(out, name);
    push_uint(out, v);
}

/// The reply to an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    pub info_hash: InfoHash,
    /// Seconds until the next announce.
    pub interval: u32,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub warning_message: Option<&'a str>,
}

/// Appends `{"action":"announce","interval":…,"info_hash":…,"complete":…,
/// "incomplete":…}`, with `"warning message"` last when set.
pub fn write_announce_response(out: &mut Vec<u8>, r: &AnnounceResponse<'_>) {
    out.reserve(128);
    out.extend_from_slice(br#"{"action":"announce""#);
    key_uint(out, "interval", u64::from(r.interval));
    key(out, "info_hash");
    write_binary_string(out, &r.info_hash.0);
    key_uint(out, "complete", u64::from(r.complete));
    key_uint(out, "incomplete", u64::from(r.incomplete));
    if let Some(w) = r.warning_message {
        key(out, "warning message");
        write_json_string(out, w);
    }
    out.push(b'}');
}

/// An offer relayed to another peer of the swarm.
#[derive(Clone, Copy, Debug)]
pub struct RelayedOffer<'a> {
    pub info_hash: InfoHash,
    /// The offering peer.
    pub peer_id: PeerId,
    pub offer_id: &'a OfferId,
    pub offer: &'a RawValue,
}

/// An answer relayed to the peer that made the offer.
#[derive(Clone, Copy, Debug)]
pub struct RelayedAnswer<'a> {
    pub info_hash: InfoHash,
    /// The answering peer.
    pub peer_id: PeerId,
    pub offer_id: &'a OfferId,
    pub answer: &'a RawValue,
}

/// Appends `{"action":"announce","info_hash":…,"peer_id":…,"offer_id":…,
/// "offer":…}` with the offer byte-exact as received.
pub fn write_offer(out: &mut Vec<u8>, r: &RelayedOffer<'_>) {
    write_relayed(out, &r.info_hash, &r.peer_id, r.offer_id, "offer", r.offer);
}

/// Appends `{"action":"announce","info_hash":…,"peer_id":…,"offer_id":…,
/// "answer":…}`. Like the reference tracker, no `to_peer_id`: the recipient
/// knows who it is.
pub fn write_answer(out: &mut Vec<u8>, r: &RelayedAnswer<'_>) {
    write_relayed(
        out,
        &r.info_hash,
        &r.peer_id,
        r.offer_id,
        "answer",
        r.answer,
    );
}

fn write_relayed(
    out: &mut Vec<u8>,
    info_hash: &InfoHash,
    peer_id: &PeerId,
    offer_id: &OfferId,
    name: &str,
    sdp: &RawValue,
) {
    out.reserve(140 + offer_id.as_str().len() + sdp.get().len());
    out.extend_from_slice(br#"{"action":"announce""#);
    key(out, "info_hash");
    write_binary_string(out, &info_hash.0);
    key(out, "peer_id");
    write_binary_string(out, &peer_id.0);
    key(out, "offer_id");
    write_json_string(out, offer_id.as_str());
    key(out, name);
    out.extend_from_slice(sdp.get().as_bytes());
    out.push(b'}');
}

/// Appends `{"action":"scrape","files":{…}}`, one member per file in the
/// order given. JSON objects need no sorted keys; a repeated hash is
/// harmless (`JSON.parse` keeps the last), but the server may dedupe.
pub fn write_scrape_response(out: &mut Vec<u8>, files: impl IntoIterator<Item = ScrapeFile>) {
    let files = files.into_iter();
    out.reserve(32 + files.size_hint().0 * 100);
    out.extend_from_slice(br#"{"action":"scrape","files":{"#);
    for (i, f) in files.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_binary_string(out, &f.info_hash.0);
        out.extend_from_slice(br#":{"complete":"#);
        push_uint(out, u64::from(f.complete));
        key_uint(out, "incomplete", u64::from(f.incomplete));
        key_uint(out, "downloaded", u64::from(f.downloaded));
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
}

/// Appends `{"failure reason":…}` with `action` and `info_hash` when given.
/// Give both whenever known: the reference client drops an announce reply
/// without its info hash, and takes a reply without `action` for a broken
/// connection.
pub fn write_failure(
    out: &mut Vec<u8>,
    reason: &str,
    action: Option<Action>,
    info_hash: Option<InfoHash>,
) {
    out.reserve(80 + reason.len());
    out.push(b'{');
    write_json_string(out, "failure reason");
    out.push(b':');
    write_json_string(out, reason);
    if let Some(a) = action {
        key(out, "action");
        write_json_string(out, a.as_str());
    }
    if let Some(h) = info_hash {
        key(out, "info_hash");
        write_binary_string(out, &h.0);
    }
    out.push(b'}');
}

/// Appends the failure for a message that did not parse, carrying whatever
/// of it was readable.
pub fn write_parse_failure(out: &mut Vec<u8>, e: &WsParseError) {
    use std::io::Write;
    // Formats into a stack buffer: failures should not allocate either.
    let mut buf = [0u8; 128];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // A message too long for the buffer is cut short rather than lost.
    let _ = write!(cursor, "{e}");
    let len = usize::try_from(cursor.position())
        .unwrap_or(0)
        .min(buf.len());
    let reason = match core::str::from_utf8(&buf[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    write_failure(out, reason, e.action, e.info_hash);
}

// ---------------------------------------------------------------------------
// Client messages, for the load tester and tests

/// Appends an announce as the reference client writes it.
pub fn write_announce_request(out: &mut Vec<u8>, r: &AnnounceRequest<'_>) {
    out.extend_from_slice(br#"{"action":"announce""#);
    key(out, "info_hash");
    write_binary_string(out, &r.info_hash.0);
    key(out, "peer_id");
    write_binary_string(out, &r.peer_id.0);
    key_uint(out, "uploaded", r.uploaded);
    key_uint(out, "downloaded", r.downloaded);
    key(out, "left");
    match r.left {
        Some(left) => push_uint(out, left),
        None => out.extend_from_slice(b"null"),
    }
    let event = match r.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Stopped => Some("stopped"),
        AnnounceEvent::Completed => Some("completed"),
    };
    if let Some(event) = event {
        key(out, "event");
        write_json_string(out, event);
    }
    if let Some(n) = r.numwant {
        key_uint(out, "numwant", u64::from(n));
    }
    if !r.offers.is_empty() {
        key(out, "offers");
        out.push(b'[');
        for (i, o) in r.offers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"offer_id":"#);
            write_json_string(out, o.offer_id.as_str());
            key(out, "offer");
            out.extend_from_slice(o.offer.get().as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    if let Some(a) = &r.answer {
        key(out, "to_peer_id");
        write_binary_string(out, &a.to_peer_id.0);
        key(out, "offer_id");
        write_json_string(out, a.offer_id.as_str());
        key(out, "answer");
        out.extend_from_slice(a.answer.get().as_bytes());
    }
    out.push(b'}');
}

/// Appends a scrape request; `None` asks for every torrent.
pub fn write_scrape_request(out: &mut Vec<u8>, info_hashes: Option<&[InfoHash]>) {
    out.extend_from_slice(br#"{"action":"scrape""#);
    if let Some(hashes) = info_hashes {
        key(out, "info_hash");
        out.push(b'[');
        for (i, h) in hashes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_binary_string(out, &h.0);
        }
        out.push(b']');
    }
    out.push(b'}');
}
