//! Reading what a WebTorrent tracker sends a client.
//!
//! tracker-proto parses the server's side (client messages); this is the
//! other direction: announce replies, relayed offers and answers, scrape
//! replies and failures. Ids are "binary" strings (one character per byte,
//! U+0000 to U+00FF) decoded straight into arrays, without allocating
//! even when the tracker escaped them. Every field must have the right
//! type; a message that does not is malformed. Unknown fields are ignored
//! (`warning message`, for one).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A 20-byte id sent as a binary string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id(pub [u8; 20]);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of 20 characters U+0000 to U+00FF")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Id, E> {
                let mut out = [0u8; 20];
                let mut chars = s.chars();
                for byte in &mut out {
                    let c = chars.next().ok_or_else(|| E::invalid_length(0, &self))?;
                    *byte = u8::try_from(c)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))?;
                }
                if chars.next().is_some() {
                    return Err(E::invalid_length(21, &self));
                }
                Ok(Id(out))
            }
        }
        d.deserialize_str(IdVisitor)
    }
}

/// The `action` field; anything but the two actions is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Announce,
    Scrape,
    Other,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ActionVisitor;
        impl Visitor<'_> for ActionVisitor {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Action, E> {
                Ok(match s {
                    "announce" => Action::Announce,
                    "scrape" => Action::Scrape,
                    _ => Action::Other,
                })
            }
        }
        d.deserialize_str(ActionVisitor)
    }
}

/// An SDP object as WebRTC hands it over: `{"type": …, "sdp": …}`.
#[derive(Debug, Deserialize)]
struct Sdp<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    sdp: Cow<'a, str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct FileCounts {
    pub complete: u64,
    pub incomplete: u64,
    pub downloaded: u64,
}

/// Every field any reply has; which are there decides what it is.
#[derive(Debug, Deserialize)]
struct Raw<'a> {
    action: Option<Action>,
    #[serde(rename = "failure reason", borrow)]
    failure_reason: Option<Cow<'a, str>>,
    info_hash: Option<Id>,
    peer_id: Option<Id>,
    offer_id: Option<Id>,
    #[serde(borrow)]
    offer: Option<Sdp<'a>>,
    #[serde(borrow)]
    answer: Option<Sdp<'a>>,
    interval: Option<u64>,
    complete: Option<u64>,
    incomplete: Option<u64>,
    files: Option<HashMap<Id, FileCounts>>,
}

/// A relayed offer or answer: the torrent, the peer that sent it, the
/// offer it belongs to, and whether its SDP object is what the sender
/// sent (`{"type":"offer"|"answer","sdp":…}` with our text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub offer_id: [u8; 20],
    pub sdp_intact: bool,
}

/// A tracker message, checked for the fields its kind needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The reply to an announce (or, from some trackers, to an answer).
    Announce {
        info_hash: [u8; 20],
        complete: u64,
        incomplete: u64,
    },
    Offer(Relayed),
    Answer(Relayed),
    Scrape {
        files: HashMap<Id, FileCounts>,
    },
    /// A `failure reason`, with what it concerns when the tracker says.
    Failure {
        reason: String,
        action: Option<Action>,
        info_hash: Option<[u8; 20]>,
    },
}

/// Why a message is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not JSON, a field of the wrong type, or one its kind needs missing.
    Malformed,
    /// No action, or one that is neither announce nor scrape.
    WrongAction,
}

/// Parses one text message from the tracker. `offer_sdp` and
/// `answer_sdp` are the SDP texts our clients send, which relayed ones
/// must carry unchanged.
pub fn parse(text: &str, offer_sdp: &str, answer_sdp: &str) -> Result<Reply, Bad> {
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|_| Bad::Malformed)?;
    if let Some(reason) = raw.failure_reason {
        return Ok(Reply::Failure {
            reason: reason.into_owned(),
            action: raw.action,
            info_hash: raw.info_hash.map(|h| h.0),
        });
    }
    match raw.action {
        Some(Action::Announce) => {}
        Some(Action::Scrape) => {
            return raw
                .files
                .map(|files| Reply::Scrape { files })
                .ok_or(Bad::Malformed)
        }
        Some(Action::Other) | None => return Err(Bad::WrongAction),
    }
    let info_hash = raw.info_hash.ok_or(Bad::Malformed)?.0;
    let relayed = |sdp: &Sdp<'_>, kind: &str, text: &str| -> Result<Relayed, Bad> {
        Ok(Relayed {
            info_hash,
            peer_id: raw.peer_id.ok_or(Bad::Malformed)?.0,
            offer_id: raw.offer_id.ok_or(Bad::Malformed)?.0,
            sdp_intact: sdp.kind == kind && sdp.sdp == text,
        })
    };
    if let Some(offer) = &raw.offer {
        return relayed(offer, "offer", offer_sdp).map(Reply::Offer);
    }
    if let Some(answer) = &raw.answer {
        return relayed(answer, "answer", answer_sdp).map(Reply::Answer);
    }
    match (raw.interval, raw.complete, raw.incomplete) {
        (Some(_), Some(complete), Some(incomplete)) => Ok(Reply::Announce {
            info_hash,
            complete,
            incomplete,
        }),
        _ => Err(Bad::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use tracker_proto::ws::{
        write_announce_response, write_answer, write_failure, write_offer, write_scrape_response,
        AnnounceResponse, OfferId, RelayedAnswer, RelayedOffer, ScrapeFile,
    };
    use tracker_proto::{InfoHash, PeerId};

    const OFFER: &str = "offer text";
    const ANSWER: &str = "answer text";

    /// Bytes that need escaping, that are two bytes of UTF-8, and plain.
    fn id(seed: u8) -> [u8; 20] {
        let mut id = [0u8; 20];
        for (i, b) in id.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 13);
        }
        id[0] = b'"';
        id[1] = 0;
        id[2] = 0xff;
        id[3] = b'\\';
        id
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn parse_ok(message: &str) -> Reply {
        parse(message, OFFER, ANSWER).unwrap_or_else(|e| panic!("{e:?}: {message}"))
    }

    #[test]
    fn announce_replies() {
        let mut out = Vec::new();
        write_announce_response(
            &mut out,
            &AnnounceResponse {
                info_hash: InfoHash(id(1)),
                interval: 120,
                complete: 3,
                incomplete: 4,
                warning_message: Some("be nice"),
            },
        );
        assert_eq!(
            parse_ok(&text(out)),
            Reply::Announce {
                info_hash: id(1),
                complete: 3,
                incomplete: 4
            }
        );
    }

    #[test]
    fn relayed_offers_and_answers() {
        let offer =
            RawValue::from_string(format!(r#"{{"type":"offer","sdp":"{OFFER}"}}"#)).unwrap();
        let answer =
            RawValue::from_string(format!(r#"{{"type":"answer","sdp":"{ANSWER}"}}"#)).unwrap();
        let offer_id = OfferId::from_binary(&id(3));
        let mut out = Vec::new();
        write_offer(
            &mut out,
            &RelayedOffer {
                info_hash: InfoHash(id(1)),
                peer_id: PeerId(id(2)),
                offer_id: &offer_id,
                offer: &offer,
            },
        );
        let want = Relayed {
            info_hash: id(1),
            peer_id: id(2),
            offer_id: id(3),
            sdp_intact: true,
        };
        assert_eq!(parse_ok(&text(out)), Reply::Offer(want));
        let mut out = Vec::new();
        write_answer(
            &mut out,
            &RelayedAnswer {
                info_hash: InfoHash(id(1)),
                peer_id: PeerId(id(2)),
                offer_id: &offer_id,
                answer: &answer,
            },
        );
        assert_eq!(parse_ok(&text(out)), Reply::Answer(want));
        // An SDP that changed on the way, or an offer's SDP in an answer.
        let changed = format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offer_id":"{}","offer":{{"type":"offer","sdp":"other"}}}}"#,
            "a".repeat(20),
            "b".repeat(20),
            "c".repeat(20)
        );
        let Reply::Offer(r) = parse_ok(&changed) else {
            panic!()
        };
        assert!(!r.sdp_intact);
        let swapped = changed.replace(r#""offer":{"type":"offer""#, r#""answer":{"type":"offer""#);
        let Reply::Answer(r) = parse_ok(&swapped) else {
            panic!()
        };
        assert!(!r.sdp_intact);
    }

    #[test]
    fn scrape_replies() {
        let mut out = Vec::new();
        write_scrape_response(
            &mut out,
            [1, 2].map(|i| ScrapeFile {
                info_hash: InfoHash(id(i)),
                complete: 1,
                downloaded: 2,
                incomplete: 3,
            }),
        );
        let Reply::Scrape { files } = parse_ok(&text(out)) else {
            panic!()
        };
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[&Id(id(2))],
            FileCounts {
                complete: 1,
                incomplete: 3,
                downloaded: 2
            }
        );
    }

    #[test]
    fn failures() {
        let mut out = Vec::new();
        write_failure(
            &mut out,
            "Only one peer id can be used per torrent",
            Some(tracker_proto::ws::Action::Announce),
            Some(InfoHash(id(5))),
        );
        assert_eq!(
            parse_ok(&text(out)),
            Reply::Failure {
                reason: "Only one peer id can be used per torrent".into(),
                action: Some(Action::Announce),
                info_hash: Some(id(5)),
            }
        );
        assert_eq!(
            parse_ok(r#"{"failure reason":"Invalid request"}"#),
            Reply::Failure {
                reason: "Invalid request".into(),
                action: None,
                info_hash: None,
            }
        );
    }

    #[test]
    fn malformed_and_unknown_messages() {
        let hash = "h".repeat(20);
        for (message, why) in [
            ("", Bad::Malformed),
            ("not json", Bad::Malformed),
            ("[]", Bad::Malformed),
            ("{}", Bad::WrongAction),
            (r#"{"action":"unknown"}"#, Bad::WrongAction),
            (r#"{"action":5}"#, Bad::Malformed),
            // Missing counts, interval, hash; negative and fractional numbers.
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{hash}","interval":1,"complete":1}}"#
                ),
                Bad::Malformed,
            ),
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{hash}","complete":1,"incomplete":1}}"#
                ),
                Bad::Malformed,
            ),
            (
                r#"{"action":"announce","interval":1,"complete":1,"incomplete":1}"#,
                Bad::Malformed,
            ),
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{hash}","interval":1,"complete":-1,"incomplete":1}}"#
                ),
                Bad::Malformed,
            ),
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{hash}","interval":1.5,"complete":1,"incomplete":1}}"#
                ),
                Bad::Malformed,
            ),
            // Ids of the wrong length, or with a character above U+00FF.
            (
                r#"{"action":"announce","info_hash":"short","interval":1,"complete":1,"incomplete":1}"#,
                Bad::Malformed,
            ),
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{}\u0100","interval":1,"complete":1,"incomplete":1}}"#,
                    "h".repeat(19)
                ),
                Bad::Malformed,
            ),
            // An offer without its offer_id.
            (
                &format!(
                    r#"{{"action":"announce","info_hash":"{hash}","peer_id":"{hash}","offer":{{"type":"offer","sdp":"x"}}}}"#
                ),
                Bad::Malformed,
            ),
            // A scrape without files, or with bad counts.
            (r#"{"action":"scrape"}"#, Bad::Malformed),
            (
                &format!(r#"{{"action":"scrape","files":{{"{hash}":{{"complete":1}}}}}}"#),
                Bad::Malformed,
            ),
        ] {
            assert_eq!(parse(message, OFFER, ANSWER), Err(why), "{message}");
        }
    }
}
