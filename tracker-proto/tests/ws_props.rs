//! Property tests for the WebTorrent codec: binary strings and SDP survive
//! every trip, and no text makes the parser panic.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracker_proto::ws::*;
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

fn bin(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn arb_event() -> impl Strategy<Value = AnnounceEvent> {
    prop_oneof![
        Just(AnnounceEvent::None),
        Just(AnnounceEvent::Completed),
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Stopped),
    ]
}

/// SDP-like objects: arbitrary text (any Unicode, quotes, newlines) in an
/// object, serialised by serde_json so the raw form has escapes in it.
fn arb_sdp() -> impl Strategy<Value = Box<RawValue>> {
    (any::<String>(), any::<bool>(), any::<u32>()).prop_map(|(sdp, pretty, n)| {
        let v = json!({"type": "offer", "sdp": sdp, "n": n});
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        RawValue::from_string(text).unwrap()
    })
}

/// Any JSON, leaning on the member names the parser looks at so that the
/// type checks of every field get exercised.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        vec(any::<u8>(), 18..22).prop_map(|b| Value::from(bin(&b))),
        prop_oneof![
            Just("announce"),
            Just("scrape"),
            Just("started"),
            Just("update")
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("action"),
        Just("info_hash"),
        Just("peer_id"),
        Just("uploaded"),
        Just("downloaded"),
        Just("left"),
        Just("event"),
        Just("numwant"),
        Just("offers"),
        Just("offer"),
        Just("offer_id"),
        Just("answer"),
        Just("to_peer_id"),
        Just("x"),
    ]
    .prop_map(String::from);
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key.clone(), inner), 0..10).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An announce message built as a client would, forcing the action and ids
/// to be valid sometimes so that the deeper fields get reached.
fn arb_message() -> impl Strategy<Value = String> {
    (
        arb_json(),
        any::<bool>(),
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
    )
        .prop_map(|(v, force, ih, pid)| {
            let mut v = match v {
                Value::Object(m) => m,
                other => return other.to_string(),
            };
            if force {
                v.insert("action".into(), json!("announce"));
                v.insert("info_hash".into(), json!(bin(&ih)));
                v.insert("peer_id".into(), json!(bin(&pid)));
            }
            Value::Object(v).to_string()
        })
}

fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match InMessage::parse(text) {
        Ok(InMessage::Announce(a)) => {
            // Whatever is accepted survives being written again.
            let mut out = Vec::new();
            write_announce_request(&mut out, &a);
            let again = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(InMessage::parse(&again), Ok(InMessage::Announce(a)));
        }
        Ok(InMessage::Scrape(s)) => {
            let mut out = Vec::new();
            write_scrape_request(&mut out, s.info_hashes.as_deref());
            let again = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(InMessage::parse(&again), Ok(InMessage::Scrape(s)));
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            let mut out = Vec::new();
            write_parse_failure(&mut out, &e);
            let v: Value =
                serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["failure reason"].is_string());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        check_parse(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics(text in arb_message()) {
        check_parse(&text)?;
    }

    #[test]
    fn announce_round_trip(
        ih: [u8; 20],
        pid: [u8; 20],
        counters: (u64, u64),
        left: Option<u64>,
        event in arb_event(),
        numwant: Option<u32>,
        offers in vec((any::<String>(), arb_sdp()), 0..4),
        answer in proptest::option::of((any::<[u8; 20]>(), any::<String>(), arb_sdp())),
    ) {
        let a = AnnounceRequest {
            info_hash: InfoHash(ih),
            peer_id: PeerId(pid),
            uploaded: counters.0,
            downloaded: counters.1,
            left,
            event,
            numwant,
            offers: offers.iter().map(|(id, sdp)| Offer { offer_id: OfferId::new(id), offer: sdp }).collect(),
            answer: answer.as_ref().map(|(to, id, sdp)| Answer {
                to_peer_id: PeerId(*to),
                offer_id: OfferId::new(id),
                answer: sdp,
            }),
        };
        let mut out = Vec::new();
        write_announce_request(&mut out, &a);
        let text = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(InMessage::parse(&text), Ok(InMessage::Announce(a.clone())));
        // serde_json reads our client message as the same JSON it would
        // have written itself.
        let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v["info_hash"].as_str(), Some(&*bin(&ih)));
        prop_assert_eq!(v["peer_id"].as_str(), Some(&*bin(&pid)));
    }

    #[test]
    fn relayed_offer_is_exact(
        ih: [u8; 20],
        pid: [u8; 20],
        id in prop_oneof![any::<[u8; 20]>().prop_map(|b| bin(&b)), any::<String>()],
        sdp in arb_sdp(),
    ) {
        let offer_id = OfferId::new(&id);
        let mut out = Vec::new();
        write_offer(&mut out, &RelayedOffer {
            info_hash: InfoHash(ih),
            peer_id: PeerId(pid),
            offer_id: &offer_id,
            offer: &sdp,
        });
        let text = std::str::from_utf8(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (head, tail) = text.split_once(",\"offer\":").ok_or_else(|| TestCaseError::fail("no offer"))?;
        prop_assert_eq!(tail.strip_suffix('}'), Some(sdp.get()), "SDP not byte-exact");
        let prefix = r#"{"action":"announce","info_hash":"#;
        prop_assert!(head.starts_with(prefix), "{}", head);
        let v: Value = serde_json::from_str(text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(binary_str_to_bytes(v["info_hash"].as_str().unwrap_or("")), Some(ih.to_vec()));
        prop_assert_eq!(binary_str_to_bytes(v["peer_id"].as_str().unwrap_or("")), Some(pid.to_vec()));
        prop_assert_eq!(v["offer_id"].as_str(), Some(id.as_str()));
        prop_assert_eq!(v["action"].as_str(), Some("announce"));
    }

    #[test]
    fn scrape_and_failure_decode(
        files in vec((any::<[u8; 20]>(), any::<(u32, u32, u32)>()), 0..10),
        reason in any::<String>(),
        ih: Option<[u8; 20]>,
    ) {
        let mut out = Vec::new();
        write_scrape_response(&mut out, files.iter().map(|&(h, (c, d, i))| ScrapeFile {
            info_hash: InfoHash(h), complete: c, downloaded: d, incomplete: i,
        }));
        let v: Value = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v["action"].as_str(), Some("scrape"));
        for &(h, (c, d, i)) in &files {
            let f = &v["files"][bin(&h)];
            prop_assert_eq!(f["complete"].as_u64(), Some(u64::from(c)));
            prop_assert_eq!(f["downloaded"].as_u64(), Some(u64::from(d)));
            prop_assert_eq!(f["incomplete"].as_u64(), Some(u64::from(i)));
        }

        let mut out = Vec::new();
        write_failure(&mut out, &reason, Some(Action::Scrape), ih.map(InfoHash));
        let v: Value = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v["failure reason"].as_str(), Some(reason.as_str()));
        prop_assert_eq!(v["action"].as_str(), Some("scrape"));
        prop_assert_eq!(v.get("info_hash").and_then(Value::as_str).map(str::to_owned), ih.map(|h| bin(&h)));
    }

    #[test]
    fn strings_escape_like_json_stringify(s in any::<String>(), bytes in vec(any::<u8>(), 0..64)) {
        // serde_json escapes exactly as JSON.stringify does (the control
        // characters, quote and backslash; nothing else), so equal output
        // means equal to what the reference tracker would send.
        let mut out = Vec::new();
        write_json_string(&mut out, &s);
        prop_assert_eq!(std::str::from_utf8(&out).ok(), Some(&*serde_json::to_string(&s).unwrap()));
        let mut out = Vec::new();
        write_binary_string(&mut out, &bytes);
        prop_assert_eq!(std::str::from_utf8(&out).ok(), Some(&*serde_json::to_string(&bin(&bytes)).unwrap()));
    }
}
