//! [`InMessage::parse`](super::InMessage::parse): client messages read with
//! `serde_json`, field by field, so one bad field still leaves the rest known.

use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::Invalid;
use super::{
    Action, AnnounceRequest, Answer, InMessage, Offer, OfferId, Problem, ScrapeRequest,
    WsParseError, WsParseErrorKind, BINARY_ID_LEN,
};
use crate::common::{AnnounceEvent, InfoHash, PeerId};

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
