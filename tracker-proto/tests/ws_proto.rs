//! The WebTorrent codec against messages as the reference client
//! (npm bittorrent-tracker 11) writes them, writer output byte for byte,
//! and the errors a tracker has to report.

use serde_json::value::RawValue;
use serde_json::Value;
use tracker_proto::ws::*;
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

fn bin(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}

fn announce(text: &str) -> AnnounceRequest<'_> {
    match InMessage::parse(text) {
        Ok(InMessage::Announce(a)) => a,
        other => panic!("{text}: {other:?}"),
    }
}

fn parse_err(text: &str) -> WsParseError {
    match InMessage::parse(text) {
        Err(e) => e,
        Ok(m) => panic!("{text}: accepted as {m:?}"),
    }
}

const INFO_HASH: &str = "d8e1b12be29e5c9a69df88c50fa0a3c93d27e0f2";
const PEER_ID: &str = "2d5757303230382d0a9f22c45c7e01ff80e3b2d1";
const OFFER_ID: &str = "00011f2022275c7f80a0c3ffe9deadbeef0d0a09";

// These are `JSON.stringify` output from Node 20 for the objects the
// reference client builds (its field order: the announce options first, then
// action, info_hash, peer_id, then offers), with the non-ASCII characters
// written as Rust escapes. The ids are binary strings of the hex above.
const CLIENT_START: &str = "{\"numwant\":2,\"uploaded\":0,\"downloaded\":0,\"left\":null,\"event\":\"started\",\"action\":\"announce\",\"info_hash\":\"\u{d8}\u{e1}\u{b1}+\u{e2}\u{9e}\\\\\u{9a}i\u{df}\u{88}\u{c5}\\u000f\u{a0}\u{a3}\u{c9}='\u{e0}\u{f2}\",\"peer_id\":\"-WW0208-\\n\u{9f}\\\"\u{c4}\\\\~\\u0001\u{ff}\u{80}\u{e3}\u{b2}\u{d1}\",\"offers\":[{\"offer\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\na=fingerprint:sha-256 AB:CD\\r\\n\"},\"offer_id\":\"\\u0000\\u0001\\u001f \\\"'\\\\\u{7f}\u{80}\u{a0}\u{c3}\u{ff}\u{e9}\u{de}\u{ad}\u{be}\u{ef}\\r\\n\\t\"}]}";
const CLIENT_ANSWER: &str = "{\"action\":\"announce\",\"info_hash\":\"\u{d8}\u{e1}\u{b1}+\u{e2}\u{9e}\\\\\u{9a}i\u{df}\u{88}\u{c5}\\u000f\u{a0}\u{a3}\u{c9}='\u{e0}\u{f2}\",\"peer_id\":\"-WW0208-\\n\u{9f}\\\"\u{c4}\\\\~\\u0001\u{ff}\u{80}\u{e3}\u{b2}\u{d1}\",\"to_peer_id\":\"-WW0208-\\u0011\\\"3DUfw\u{88}\u{99}\u{aa}\u{bb}\u{cc}\",\"answer\":{\"type\":\"answer\",\"sdp\":\"v=0\\r\\na=ice-ufrag:\\\"q\\\\\\\"\\r\\n\"},\"offer_id\":\"\\u0000\\u0001\\u001f \\\"'\\\\\u{7f}\u{80}\u{a0}\u{c3}\u{ff}\u{e9}\u{de}\u{ad}\u{be}\u{ef}\\r\\n\\t\"}";
const CLIENT_SCRAPE: &str = "{\"action\":\"scrape\",\"info_hash\":[\"\u{d8}\u{e1}\u{b1}+\u{e2}\u{9e}\\\\\u{9a}i\u{df}\u{88}\u{c5}\\u000f\u{a0}\u{a3}\u{c9}='\u{e0}\u{f2}\"]}";
const CLIENT_STOP: &str = "{\"numwant\":50,\"uploaded\":1048576,\"downloaded\":2097152,\"left\":0,\"event\":\"stopped\",\"action\":\"announce\",\"info_hash\":\"\u{d8}\u{e1}\u{b1}+\u{e2}\u{9e}\\\\\u{9a}i\u{df}\u{88}\u{c5}\\u000f\u{a0}\u{a3}\u{c9}='\u{e0}\u{f2}\",\"peer_id\":\"-WW0208-\\n\u{9f}\\\"\u{c4}\\\\~\\u0001\u{ff}\u{80}\u{e3}\u{b2}\u{d1}\"}";

#[test]
fn client_start_with_offer() {
    let a = announce(CLIENT_START);
    assert_eq!(a.info_hash, InfoHash(unhex(INFO_HASH)));
    assert_eq!(a.peer_id, PeerId(unhex(PEER_ID)));
    assert_eq!((a.uploaded, a.downloaded, a.left), (0, 0, None));
    assert_eq!(a.event, AnnounceEvent::Started);
    assert_eq!(a.numwant, Some(2));
    assert_eq!(a.offers.len(), 1);
    let offer = &a.offers[0];
    assert_eq!(offer.offer_id, OfferId::from_binary(&unhex::<20>(OFFER_ID)));
    assert_eq!(offer.offer_id.to_binary().unwrap(), unhex::<20>(OFFER_ID));
    assert_eq!(
        offer.offer.get(),
        "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\na=fingerprint:sha-256 AB:CD\\r\\n\"}"
    );
    assert!(a.answer.is_none());
}

#[test]
fn client_answer() {
    let a = announce(CLIENT_ANSWER);
    assert!(a.offers.is_empty());
    assert_eq!(a.event, AnnounceEvent::None);
    assert_eq!((a.numwant, a.left), (None, None));
    let answer = a.answer.unwrap();
    assert_eq!(
        answer.to_peer_id,
        PeerId(unhex("2d5757303230382d112233445566778899aabbcc"))
    );
    assert_eq!(
        answer.offer_id,
        OfferId::from_binary(&unhex::<20>(OFFER_ID))
    );
    assert_eq!(
        answer.answer.get(),
        r#"{"type":"answer","sdp":"v=0\r\na=ice-ufrag:\"q\\\"\r\n"}"#
    );
}

#[test]
fn client_stop_and_scrape() {
    let a = announce(CLIENT_STOP);
    assert_eq!(a.event, AnnounceEvent::Stopped);
    assert_eq!(
        (a.uploaded, a.downloaded, a.left),
        (1 << 20, 2 << 20, Some(0))
    );
    assert_eq!(a.numwant, Some(50));
    assert_eq!(
        InMessage::parse(CLIENT_SCRAPE),
        Ok(InMessage::Scrape(ScrapeRequest {
            info_hashes: Some(vec![InfoHash(unhex(INFO_HASH))])
        }))
    );
}

#[test]
fn scrape_forms() {
    let h = bin(&[7; 20]);
    let one = serde_json::json!({"action": "scrape", "info_hash": h}).to_string();
    let many = serde_json::json!({"action": "scrape", "info_hash": [h, bin(&[8; 20])]}).to_string();
    let scrape = |t: &str| match InMessage::parse(t) {
        Ok(InMessage::Scrape(s)) => s.info_hashes,
        other => panic!("{other:?}"),
    };
    assert_eq!(scrape(&one), Some(vec![InfoHash([7; 20])]));
    assert_eq!(
        scrape(&many),
        Some(vec![InfoHash([7; 20]), InfoHash([8; 20])])
    );
    assert_eq!(scrape(r#"{"action":"scrape"}"#), None);
    assert_eq!(scrape(r#"{"action":"scrape","info_hash":null}"#), None);
    assert_eq!(
        scrape(r#"{"action":"scrape","info_hash":[]}"#),
        Some(vec![])
    );
}

#[test]
fn events_and_numbers() {
    let base = |extra: &str| {
        format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}"{extra}}}"#,
            "a".repeat(20),
            "b".repeat(20)
        )
    };
    for (event, want) in [
        (r#","event":"update""#, AnnounceEvent::None),
        (r#","event":"empty""#, AnnounceEvent::None),
        (r#","event":"""#, AnnounceEvent::None),
        (r#","event":null"#, AnnounceEvent::None),
        ("", AnnounceEvent::None),
        (r#","event":"completed""#, AnnounceEvent::Completed),
    ] {
        assert_eq!(announce(&base(event)).event, want, "{event}");
    }
    let t = base(r#","uploaded":1e21,"downloaded":-5,"left":12.9,"numwant":-1"#);
    let a = announce(&t);
    assert_eq!((a.uploaded, a.downloaded, a.left), (u64::MAX, 0, Some(12)));
    assert_eq!(a.numwant, None);
    let t = base(r#","numwant":1e10,"uploaded":null,"offers":null,"answer":null"#);
    let a = announce(&t);
    assert_eq!((a.numwant, a.uploaded), (Some(u32::MAX), 0));
    assert!(a.offers.is_empty() && a.answer.is_none());
    // Unknown members, trackerid among them, are skipped whatever they hold.
    let t = base(r#","trackerid":"x","x":[{"y":[1,2,{"z":null}]}],"info_hash2":5"#);
    announce(&t);
    // The last of a repeated member wins, as with JSON.parse.
    let t = base(r#","left":1,"left":2"#);
    assert_eq!(announce(&t).left, Some(2));
    // Escaped member names are still recognised.
    let t = base(r#","\u006ceft":3"#);
    assert_eq!(announce(&t).left, Some(3));
}

#[test]
fn offer_ids_of_any_length() {
    let t = serde_json::json!({
        "action": "announce",
        "info_hash": "a".repeat(20),
        "peer_id": "b".repeat(20),
        "offers": [
            {"offer_id": "", "offer": {"type": "offer", "sdp": ""}},
            {"offer_id": "short", "offer": {"type": "offer", "sdp": ""}},
            {"offer_id": "f".repeat(40), "offer": {"type": "offer", "sdp": ""}},
            {"offer_id": "日本語 ids are strings too", "offer": {"type": "offer", "sdp": ""}},
            {"offer_id": "x".repeat(5000), "offer": {"type": "offer", "sdp": ""}},
        ],
    })
    .to_string();
    let a = announce(&t);
    let ids: Vec<&str> = a.offers.iter().map(|o| o.offer_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "",
            "short",
            &"f".repeat(40),
            "日本語 ids are strings too",
            &"x".repeat(5000)
        ]
    );
    assert_eq!(a.offers[3].offer_id.to_binary(), None);
    // Escaped and raw spellings of one id are the same id.
    assert_eq!(OfferId::new("ab"), OfferId::new("ab"));
    let escaped = announce(
        r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[{"offer_id":"\u0061b","offer":{}}]}"#,
    );
    assert_eq!(escaped.offers[0].offer_id, OfferId::new("ab"));
}

#[test]
fn sdp_forwarded_byte_exact() {
    // Quotes, backslashes, CRLF, escaped and raw non-ASCII, a surrogate
    // pair, odd spacing and an extra member: relayed exactly as received.
    let sdp = "{ \"type\" : \"offer\",\n \"sdp\":\"v=0\\r\\na=x:\\\"y\\\" \\\\ \\u00e9 é ✓ \\ud83d\\ude00 😀\\r\\n\", \"extra\":[1, 2.50, null] }";
    let text = format!(
        r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offers":[{{"offer_id":"o1","offer":{sdp}}}]}}"#,
        "a".repeat(20),
        "b".repeat(20)
    );
    let a = announce(&text);
    assert_eq!(a.offers[0].offer.get(), sdp);

    let mut out = Vec::new();
    write_offer(
        &mut out,
        &RelayedOffer {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            offer_id: &a.offers[0].offer_id,
            offer: a.offers[0].offer,
        },
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offer_id":"o1","offer":{sdp}}}"#,
            "a".repeat(20),
            "b".repeat(20)
        )
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let original: Value = serde_json::from_str(sdp).unwrap();
    assert_eq!(v["offer"], original);
}

#[test]
fn every_byte_value_round_trips() {
    // 13 ids cover all 256 byte values; each is info hash, peer id,
    // to_peer_id and binary offer id in turn.
    for i in 0..13usize {
        let id: [u8; 20] = core::array::from_fn(|j| ((i * 20 + j) % 256) as u8);
        let rev: [u8; 20] = core::array::from_fn(|j| id[19 - j]);
        // The reference client's encoding, via serde_json (which escapes
        // like JSON.stringify) and via our own client writer.
        let via_serde = serde_json::json!({
            "action": "announce",
            "info_hash": bin(&id),
            "peer_id": bin(&rev),
            "to_peer_id": bin(&id),
            "offer_id": bin(&rev),
            "answer": {"type": "answer", "sdp": bin(&id)},
        })
        .to_string();
        let a = announce(&via_serde);
        assert_eq!((a.info_hash.0, a.peer_id.0), (id, rev));
        let answer = a.answer.clone().unwrap();
        assert_eq!(answer.to_peer_id.0, id);
        assert_eq!(answer.offer_id.to_binary().unwrap(), rev);

        let mut ours = Vec::new();
        write_announce_request(&mut ours, &a);
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(announce(&ours), a);

        // Tracker replies decode back to the same bytes.
        let mut out = Vec::new();
        write_answer(
            &mut out,
            &RelayedAnswer {
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                offer_id: &answer.offer_id,
                answer: answer.answer,
            },
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        let field = |k: &str| binary_str_to_bytes(v[k].as_str().unwrap()).unwrap();
        assert_eq!(field("info_hash"), id);
        assert_eq!(field("peer_id"), rev);
        assert_eq!(field("offer_id"), rev);
        assert_eq!(v["answer"]["sdp"].as_str().unwrap(), bin(&id));
        assert_eq!(v.get("to_peer_id"), None);
    }
}

#[test]
fn binary_string_escaping_bytes() {
    let all: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    write_binary_string(&mut out, &all);
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with(
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e"
    ));
    assert!(s.contains(" !\\\"#$%&'()*+,-./0123456789"));
    assert!(s.contains("Z[\\\\]^_`a"));
    assert!(s.contains("{|}~\u{7f}\u{80}\u{81}"));
    assert!(s.ends_with("\u{fd}\u{fe}\u{ff}\""));
    // Exactly JSON.stringify's escaping, which serde_json shares.
    assert_eq!(s, serde_json::to_string(&bin(&all)).unwrap());
    let mut out = Vec::new();
    write_json_string(&mut out, "tab\there \"q\" \\ é \u{2028} \u{1f}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"tab\\there \\\"q\\\" \\\\ é \u{2028} \\u001f\""
    );
}

#[test]
fn tracker_message_bytes() {
    let h = InfoHash(*b"aaaaaaaaaaaaaaaaaaa\"");
    let mut out = Vec::new();
    write_announce_response(
        &mut out,
        &AnnounceResponse {
            info_hash: h,
            interval: 120,
            complete: 3,
            incomplete: 4,
            warning_message: None,
        },
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"action":"announce","interval":120,"info_hash":"aaaaaaaaaaaaaaaaaaa\"","complete":3,"incomplete":4}"#
    );

    let mut out = Vec::new();
    write_announce_response(
        &mut out,
        &AnnounceResponse {
            info_hash: InfoHash([0xff; 20]),
            interval: 0,
            complete: 0,
            incomplete: 0,
            warning_message: Some("slow down"),
        },
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"action":"announce","interval":0,"info_hash":"{}","complete":0,"incomplete":0,"warning message":"slow down"}}"#,
            "ÿ".repeat(20)
        )
    );

    let mut out = Vec::new();
    write_scrape_response(
        &mut out,
        [
            ScrapeFile {
                info_hash: InfoHash([b'a'; 20]),
                complete: 1,
                downloaded: 2,
                incomplete: 3,
            },
            ScrapeFile {
                info_hash: InfoHash([0; 20]),
                complete: 4,
                downloaded: 5,
                incomplete: 6,
            },
        ],
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"action":"scrape","files":{{"{}":{{"complete":1,"incomplete":3,"downloaded":2}},"{}":{{"complete":4,"incomplete":6,"downloaded":5}}}}}}"#,
            "a".repeat(20),
            "\\u0000".repeat(20)
        )
    );
    let mut out = Vec::new();
    write_scrape_response(&mut out, []);
    assert_eq!(out, br#"{"action":"scrape","files":{}}"#);

    let mut out = Vec::new();
    write_failure(&mut out, "invalid \"x\"", None, None);
    assert_eq!(out, br#"{"failure reason":"invalid \"x\""}"#);
    let mut out = Vec::new();
    write_failure(
        &mut out,
        "unknown event",
        Some(Action::Announce),
        Some(InfoHash([b'h'; 20])),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"failure reason":"unknown event","action":"announce","info_hash":"{}"}}"#,
            "h".repeat(20)
        )
    );

    let offer = RawValue::from_string(r#"{"type":"offer","sdp":"s"}"#.to_owned()).unwrap();
    let id = OfferId::new("id");
    let mut out = Vec::new();
    write_offer(
        &mut out,
        &RelayedOffer {
            info_hash: InfoHash([b'i'; 20]),
            peer_id: PeerId([b'p'; 20]),
            offer_id: &id,
            offer: &offer,
        },
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offer_id":"id","offer":{{"type":"offer","sdp":"s"}}}}"#,
            "i".repeat(20),
            "p".repeat(20)
        )
    );
    let mut out = Vec::new();
    write_answer(
        &mut out,
        &RelayedAnswer {
            info_hash: InfoHash([b'i'; 20]),
            peer_id: PeerId([b'p'; 20]),
            offer_id: &id,
            answer: &offer,
        },
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offer_id":"id","answer":{{"type":"offer","sdp":"s"}}}}"#,
            "i".repeat(20),
            "p".repeat(20)
        )
    );
}

#[test]
fn errors() {
    let ih = "a".repeat(20);
    let pid = "b".repeat(20);
    let field = |field, problem| WsParseErrorKind::Field { field, problem };
    let wrong = |f, expected| field(f, Problem::WrongType { expected });
    let announce_with = |extra: &str| {
        format!(r#"{{"action":"announce","info_hash":"{ih}","peer_id":"{pid}"{extra}}}"#)
    };
    let cases: Vec<(String, WsParseErrorKind)> = vec![
        (
            announce_with(r#","info_hash":"aaaaaaaaaaaaaaaaaaaĀ""#),
            field("info_hash", Problem::NotBinary),
        ),
        (
            announce_with(r#","peer_id":"bbbbbbbbbbbbbbbbbbb\u0100""#),
            field("peer_id", Problem::NotBinary),
        ),
        (
            announce_with(r#","peer_id":"bbbbbbbbbbbbbbbbbb\ud83d\ude00""#),
            field("peer_id", Problem::NotBinary),
        ),
        (
            announce_with(r#","info_hash":"aaaaaaaaaaaaaaaaaaa""#),
            field("info_hash", Problem::Length(19)),
        ),
        (
            announce_with(r#","peer_id":"bbbbbbbbbbbbbbbbbbbbb""#),
            field("peer_id", Problem::Length(21)),
        ),
        (
            announce_with(r#","info_hash":["aaaaaaaaaaaaaaaaaaaa"]"#),
            wrong("info_hash", "a string"),
        ),
        (
            announce_with(r#","info_hash":7"#),
            wrong("info_hash", "a string or an array of strings"),
        ),
        (
            announce_with(r#","peer_id":{"a":1}"#),
            wrong("peer_id", "a string"),
        ),
        (
            announce_with(r#","uploaded":"10""#),
            wrong("uploaded", "a number"),
        ),
        (announce_with(r#","left":true"#), wrong("left", "a number")),
        (
            announce_with(r#","numwant":[1]"#),
            wrong("numwant", "a number"),
        ),
        (
            announce_with(r#","event":"paused""#),
            field("event", Problem::UnknownValue),
        ),
        (announce_with(r#","event":1"#), wrong("event", "a string")),
        (
            announce_with(r#","offers":{}"#),
            wrong("offers", "an array of objects"),
        ),
        (
            announce_with(r#","offers":["x"]"#),
            wrong("offers", "an array of objects"),
        ),
        (
            announce_with(r#","offers":[{"offer":{}}]"#),
            field("offers.offer_id", Problem::Missing),
        ),
        (
            announce_with(r#","offers":[{"offer_id":"x"}]"#),
            field("offers.offer", Problem::Missing),
        ),
        (
            announce_with(r#","offers":[{"offer_id":"x","offer":"sdp"}]"#),
            wrong("offers.offer", "an object"),
        ),
        (
            announce_with(r#","offers":[{"offer_id":1,"offer":{}}]"#),
            wrong("offers.offer_id", "a string"),
        ),
        (
            announce_with(r#","answer":{},"offer_id":"x""#),
            field("to_peer_id", Problem::Missing),
        ),
        (
            announce_with(&format!(r#","answer":{{}},"to_peer_id":"{pid}""#)),
            field("offer_id", Problem::Missing),
        ),
        (
            announce_with(r#","answer":{},"offer_id":"x","to_peer_id":"short""#),
            field("to_peer_id", Problem::Length(5)),
        ),
        (
            announce_with(r#","answer":[],"offer_id":"x","to_peer_id":"x""#),
            wrong("answer", "an object"),
        ),
        (
            format!(r#"{{"action":"announce","peer_id":"{pid}"}}"#),
            field("info_hash", Problem::Missing),
        ),
        (
            format!(r#"{{"action":"announce","info_hash":"{ih}"}}"#),
            field("peer_id", Problem::Missing),
        ),
        (
            format!(r#"{{"action":"scrape","info_hash":["{ih}",5]}}"#),
            wrong("info_hash", "a string"),
        ),
        (
            format!(r#"{{"action":"scrape","info_hash":["{ih}","x"]}}"#),
            field("info_hash", Problem::Length(1)),
        ),
    ];
    for (text, kind) in &cases {
        let e = parse_err(text);
        assert_eq!(e.kind, *kind, "{text}");
        let action = if text.contains(r#""action":"scrape""#) {
            Action::Scrape
        } else {
            Action::Announce
        };
        assert_eq!(e.action, Some(action), "{text}");
        assert!(!e.to_string().is_empty());
    }

    // A bad field does not hide the info hash that the failure must carry,
    // wherever the members are.
    let e = parse_err(&format!(
        r#"{{"left":"x","action":"announce","info_hash":"{ih}","peer_id":"{pid}"}}"#
    ));
    assert_eq!(e.info_hash, Some(InfoHash([b'a'; 20])));
    assert_eq!(e.to_string(), "left must be a number");
    let mut out = Vec::new();
    write_parse_failure(&mut out, &e);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            r#"{{"failure reason":"left must be a number","action":"announce","info_hash":"{ih}"}}"#
        )
    );

    let e = parse_err(&format!(r#"{{"info_hash":"{ih}"}}"#));
    assert_eq!(e.kind, field("action", Problem::Missing));
    assert_eq!((e.action, e.info_hash), (None, Some(InfoHash([b'a'; 20]))));
    assert_eq!(e.to_string(), "missing action");
    let e = parse_err(r#"{"action":"connect"}"#);
    assert_eq!(e.kind, field("action", Problem::UnknownValue));
    assert_eq!(e.to_string(), "unknown action");
    let e = parse_err(r#"{"action":5}"#);
    assert_eq!(e.kind, wrong("action", "a string"));

    for text in [
        "",
        "{",
        "{\"action\":\"announce\",}",
        "nul",
        "{} x",
        "{\"action\":\"\\ud800\"}",
        "\"\\x\"",
    ] {
        let e = parse_err(text);
        assert!(
            matches!(e.kind, WsParseErrorKind::NotJson { .. }),
            "{text}: {e:?}"
        );
        assert_eq!((e.action, e.info_hash), (None, None));
    }
    for text in ["[]", "5", "\"announce\"", "null", "true"] {
        assert_eq!(
            parse_err(text).kind,
            WsParseErrorKind::NotAnObject,
            "{text}"
        );
    }
    assert_eq!(
        parse_err("{\n  \"action\": ]").to_string(),
        "invalid JSON at line 2, column 13"
    );
    assert_eq!(
        field("peer_id", Problem::Length(3)).to_string(),
        "peer_id is not 20 characters long (3)"
    );
    assert_eq!(
        field("info_hash", Problem::NotBinary).to_string(),
        "info_hash has a character above U+00FF"
    );
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    // In an ignored member, in a read member, and as the whole message:
    // serde_json's recursion limit turns each into an error, not a stack
    // overflow.
    for text in [
        format!(r#"{{"action":"announce","x":{}}}"#, deep(100_000)),
        format!(r#"{{"action":"announce","offers":{}}}"#, deep(100_000)),
        format!(r#"{{"action":"scrape","info_hash":{}}}"#, deep(100_000)),
        deep(100_000),
    ] {
        assert!(InMessage::parse(&text).is_err());
    }
    // Moderate nesting inside an SDP object is fine and kept raw.
    let sdp = format!(r#"{{"type":"offer","sdp":"s","x":{}}}"#, deep(50));
    let text = format!(
        r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offers":[{{"offer_id":"o","offer":{sdp}}}]}}"#,
        "a".repeat(20),
        "b".repeat(20)
    );
    assert_eq!(announce(&text).offers[0].offer.get(), sdp);
}

#[test]
fn offer_id_forms() {
    let short = OfferId::new("abc");
    let long = OfferId::new(&"z".repeat(100));
    assert_eq!(short.as_str(), "abc");
    assert_eq!(long.as_str().len(), 100);
    assert!(short < long);
    assert_eq!(format!("{short:?}"), "\"abc\"");
    let edge = "é".repeat(23); // 46 bytes: the longest kept inline
    assert_eq!(OfferId::new(&edge).as_str(), edge);
    let over = "é".repeat(24);
    assert_eq!(OfferId::new(&over).as_str(), over);
    let mut set = std::collections::HashSet::new();
    set.insert(OfferId::from_binary(&[0, 255, 128]));
    assert!(set.contains(&OfferId::new("\u{0}\u{ff}\u{80}")));
}
