//! The WebSocket client's messages and its handling of tracker messages,
//! without a network: messages are written with tracker-proto's server-side
//! writers and read back with its server-side parser.

use super::*;
use crate::config::ProfileConfig;
use tracker_proto::ws::{
    write_announce_response, write_answer, write_failure, write_offer, write_scrape_response,
    AnnounceResponse, InMessage, RelayedAnswer, RelayedOffer, ScrapeFile,
};

fn session(weight_scrape: u32) -> WsSession {
    WsSession {
        profile: Arc::new(Profile::new(&ProfileConfig {
            torrents: 50,
            peers: 400,
            weight_scrape,
            ..ProfileConfig::default()
        })),
        url: "ws://127.0.0.1:1/".to_owned(),
        offers_per_request: 3,
        answer_probability: 1.0,
        max_in_flight: 2,
        total_slots: 4,
        seed: 7,
        rng: Rng::with_seed(7),
        generation: 0,
        offers: Vec::new(),
        asked: Vec::new(),
    }
}

/// Measuring from the start, sending for 10 s, 1 s timeout.
fn context(now: u64) -> Cx {
    Cx {
        now,
        window: Window::new(0.0, 10.0, 1.0),
        stats: Stats::default(),
        sent_all: 0,
        received_all: 0,
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8")
}

fn announce_reply(info_hash: [u8; 20]) -> String {
    let mut out = Vec::new();
    write_announce_response(
        &mut out,
        &AnnounceResponse {
            info_hash: InfoHash(info_hash),
            interval: 120,
            complete: 1,
            incomplete: 2,
            warning_message: None,
        },
    );
    text(out)
}

fn relayed_offer(
    info_hash: [u8; 20],
    from: [u8; 20],
    offer_id: &[u8; 20],
    sdp: &RawValue,
) -> String {
    let id = OfferId::from_binary(offer_id);
    let mut out = Vec::new();
    write_offer(
        &mut out,
        &RelayedOffer {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(from),
            offer_id: &id,
            offer: sdp,
        },
    );
    text(out)
}

fn relayed_answer(info_hash: [u8; 20], from: [u8; 20], offer_id: &[u8; 20]) -> String {
    let id = OfferId::from_binary(offer_id);
    let mut out = Vec::new();
    write_answer(
        &mut out,
        &RelayedAnswer {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(from),
            offer_id: &id,
            answer: &ANSWER,
        },
    );
    text(out)
}

#[test]
fn offer_ids_name_their_connection() {
    let id = offer_id(5, 2, 0xdead_beef);
    assert_eq!(&id, b"TL0000050002deadbeef");
    assert!(is_ours(&id, 5, 2));
    assert!(!is_ours(&id, 5, 3));
    assert!(!is_ours(&id, 6, 2));
    assert!(!is_ours(&[b'x'; 20], 5, 2));
}

#[test]
fn announces_parse_back_with_offers_from_this_peer() {
    let mut s = session(0);
    let mut peer = s.new_peer(1, 0);
    let mut cx = context(5);
    let message = s.next_request(&mut peer, &mut cx);
    let message = text(message);
    let Ok(InMessage::Announce(a)) = InMessage::parse(&message) else {
        panic!("{message}");
    };
    let r = peer.outstanding[0];
    assert_eq!(r.kind, RequestKind::Announce);
    assert_eq!(a.info_hash.0, r.info_hash);
    assert_eq!(a.peer_id.0, peer.peer_id);
    assert_eq!(&a.peer_id.0[..8], b"-TL0001-");
    assert_eq!(a.numwant, Some(3));
    assert_eq!(a.offers.len(), 3);
    for o in &a.offers {
        let id: [u8; 20] = o.offer_id.to_binary().unwrap().try_into().unwrap();
        assert!(is_ours(&id, 1, peer.generation));
        assert_eq!(o.offer.get(), OFFER.get());
    }
    assert!(a.answer.is_none());
    // The profile's first client of slot 1 is client 1.
    let client = s.profile.client(1);
    let (left, event) = (client.left(), client.event());
    assert_eq!((a.left, a.event), (Some(left), event));
    assert_eq!((cx.sent_all, cx.stats.announces_sent), (1, 1));
    // Offer ids do not repeat.
    let next = text(s.next_request(&mut peer, &mut cx));
    let Ok(InMessage::Announce(b)) = InMessage::parse(&next) else {
        panic!()
    };
    assert!(b
        .offers
        .iter()
        .all(|o| a.offers.iter().all(|p| p.offer_id != o.offer_id)));
    // Each connection has its own peer id.
    let other = s.new_peer(1, 0);
    assert_ne!(other.peer_id, peer.peer_id);
}

#[test]
fn scrapes_parse_back_with_the_clients_hashes() {
    let mut s = session(1);
    s.profile = Arc::new(Profile::new(&ProfileConfig {
        weight_announce: 0,
        weight_scrape: 1,
        ..ProfileConfig::default()
    }));
    let mut peer = s.new_peer(2, 0);
    let mut cx = context(5);
    let message = text(s.next_request(&mut peer, &mut cx));
    let Ok(InMessage::Scrape(scrape)) = InMessage::parse(&message) else {
        panic!("{message}");
    };
    let client = s.profile.client(peer.outstanding[0].client);
    let want: Vec<InfoHash> = s
        .profile
        .scrape_torrents(&client)
        .map(|t| {
            let mut h = [0u8; 20];
            s.profile.info_hash(t, &mut h);
            InfoHash(h)
        })
        .collect();
    assert_eq!(scrape.info_hashes, Some(want));
    assert_eq!(cx.stats.scrapes_sent, 1);
}

#[test]
fn announce_replies_are_matched_by_info_hash() {
    let mut s = session(0);
    let mut peer = s.new_peer(0, 0);
    let mut cx = context(1_000_000);
    s.next_request(&mut peer, &mut cx);
    s.next_request(&mut peer, &mut cx);
    let second = peer.outstanding[1].info_hash;
    cx.now = 3_000_000;
    assert!(s
        .handle(&mut peer, &announce_reply(second), &mut cx)
        .is_none());
    assert_eq!(cx.stats.announce_responses, 1);
    assert_eq!(cx.stats.latency.percentile(50.0), 2_000);
    assert_eq!(peer.outstanding.len(), 1);
    // A hash nothing was asked for.
    s.handle(&mut peer, &announce_reply([0xee; 20]), &mut cx);
    assert_eq!(cx.stats.invalid.unknown_transaction, 1);
    assert_eq!(cx.stats.responses_received(), 2);
}

#[test]
fn offers_are_answered_and_answers_checked() {
    let mut s = session(0);
    let mut peer = s.new_peer(0, 0);
    let mut cx = context(1_000_000);
    let other = *b"-TL0001-other-peer!!";
    let their_id = offer_id(3, 1, 9);
    let offer = relayed_offer([4; 20], other, &their_id, &OFFER);
    let answer = s.handle(&mut peer, &offer, &mut cx).expect("answered");
    assert_eq!(cx.stats.offers_received, 1);
    assert_eq!((cx.stats.answers_sent, cx.sent_all), (1, 1));
    let answer = text(answer);
    let Ok(InMessage::Announce(a)) = InMessage::parse(&answer) else {
        panic!("{answer}");
    };
    let a_answer = a.answer.expect("an answer");
    assert_eq!(a.info_hash.0, [4; 20]);
    assert_eq!(a.peer_id.0, peer.peer_id);
    assert_eq!(a_answer.to_peer_id.0, other);
    assert_eq!(a_answer.offer_id.to_binary().unwrap(), their_id);
    assert_eq!(a_answer.answer.get(), ANSWER.get());
    assert!(a.offers.is_empty());
    assert_eq!(a.left, None);

    // aquatic_ws replies to answers: matched to the answer sent.
    s.handle(&mut peer, &announce_reply([4; 20]), &mut cx);
    assert_eq!(cx.stats.answer_responses, 1);
    assert_eq!(cx.stats.invalid.total(), 0);

    // An offer from ourselves, or with an SDP other than ours, is wrong
    // and not answered.
    let own = relayed_offer([4; 20], peer.peer_id, &their_id, &OFFER);
    assert!(s.handle(&mut peer, &own, &mut cx).is_none());
    let changed = relayed_offer([4; 20], other, &their_id, &ANSWER);
    assert!(s.handle(&mut peer, &changed, &mut cx).is_none());
    assert_eq!(cx.stats.invalid.wrong_content, 2);

    // Answers relayed to us must answer our own offers.
    let ours = offer_id(0, peer.generation, 1);
    s.handle(&mut peer, &relayed_answer([4; 20], other, &ours), &mut cx);
    assert_eq!(cx.stats.answers_received, 1);
    s.handle(
        &mut peer,
        &relayed_answer([4; 20], other, &their_id),
        &mut cx,
    );
    assert_eq!(cx.stats.invalid.unknown_transaction, 1);

    // With answers off, offers are counted but not answered.
    s.answer_probability = 0.0;
    assert!(s.handle(&mut peer, &offer, &mut cx).is_none());
    assert_eq!((cx.stats.offers_received, cx.stats.answers_sent), (2, 1));
}

#[test]
fn scrape_replies_hold_only_asked_hashes() {
    let mut s = session(1);
    s.profile = Arc::new(Profile::new(&ProfileConfig {
        weight_announce: 0,
        scrape_max_torrents: 10,
        ..ProfileConfig::default()
    }));
    let mut peer = s.new_peer(0, 0);
    let mut cx = context(1_000);
    let reply = |hashes: &[[u8; 20]]| {
        let mut out = Vec::new();
        write_scrape_response(
            &mut out,
            hashes.iter().map(|h| ScrapeFile {
                info_hash: InfoHash(*h),
                complete: 1,
                downloaded: 0,
                incomplete: 2,
            }),
        );
        text(out)
    };
    let asked = |s: &WsSession, peer: &Peer| -> Vec<[u8; 20]> {
        let mut hashes = Vec::new();
        s.profile
            .scrape_set(&s.profile.client(peer.outstanding[0].client), &mut hashes);
        hashes
    };
    // All asked, then some left out (aquatic_ws's unknown torrents).
    for n in [usize::MAX, 0] {
        s.next_request(&mut peer, &mut cx);
        let hashes = asked(&s, &peer);
        let n = n.min(hashes.len());
        s.handle(&mut peer, &reply(&hashes[..n]), &mut cx);
    }
    assert_eq!(cx.stats.scrape_responses, 2);
    // Two scrapes out, the first's reply lost: the second's still fits.
    s.next_request(&mut peer, &mut cx);
    s.next_request(&mut peer, &mut cx);
    let (first, second) = (peer.outstanding[0].client, peer.outstanding[1].client);
    let hashes_of = |client: u32| {
        let mut hashes = Vec::new();
        s.profile.scrape_set(&s.profile.client(client), &mut hashes);
        hashes
    };
    let (first_hashes, second) = (hashes_of(first), hashes_of(second));
    assert_ne!(first_hashes, second, "two clients' scrapes, so they differ");
    s.handle(&mut peer, &reply(&second), &mut cx);
    assert_eq!(cx.stats.scrape_responses, 3);
    assert_eq!(cx.stats.invalid.wrong_scrape_count, 0);
    assert_eq!(peer.outstanding.len(), 1);
    assert_eq!(peer.outstanding[0].client, first);
    peer.outstanding.clear();
    // A hash never asked for.
    s.next_request(&mut peer, &mut cx);
    let mut hashes = asked(&s, &peer);
    hashes.push([0xab; 20]);
    s.handle(&mut peer, &reply(&hashes), &mut cx);
    assert_eq!(cx.stats.invalid.wrong_scrape_count, 1);
    // A scrape reply with no scrape outstanding.
    s.handle(&mut peer, &reply(&[]), &mut cx);
    assert_eq!(cx.stats.invalid.unknown_transaction, 1);
}

#[test]
fn failures_are_errors_and_settle_their_request() {
    let mut s = session(0);
    let mut peer = s.new_peer(0, 0);
    let mut cx = context(1_000);
    s.next_request(&mut peer, &mut cx);
    let hash = peer.outstanding[0].info_hash;
    let mut out = Vec::new();
    write_failure(
        &mut out,
        "Info hash not allowed",
        Some(tracker_proto::ws::Action::Announce),
        Some(InfoHash(hash)),
    );
    s.handle(&mut peer, &text(out), &mut cx);
    assert_eq!(cx.stats.error_responses, 1);
    assert_eq!(cx.stats.error_messages, ["Info hash not allowed"]);
    assert!(peer.outstanding.is_empty());
    assert_eq!(cx.stats.latency.count(), 1);
}

#[test]
fn malformed_messages_and_the_window() {
    let mut s = session(0);
    let mut peer = s.new_peer(0, 0);
    let mut cx = context(1_000);
    for message in ["", "{", "[1]", r#"{"action":"announce"}"#] {
        s.handle(&mut peer, message, &mut cx);
    }
    assert_eq!(cx.stats.invalid.malformed, 4);
    s.handle(&mut peer, r#"{"action":"dance"}"#, &mut cx);
    assert_eq!(cx.stats.invalid.wrong_action, 1);

    // Before measuring starts, and after sending stops, strays and relayed
    // messages are not counted, and offers are not answered after.
    let mut warmup = Cx {
        window: Window::new(1.0, 1.0, 1.0),
        ..context(0)
    };
    s.handle(&mut peer, "junk", &mut warmup);
    s.handle(&mut peer, &announce_reply([1; 20]), &mut warmup);
    let offer = relayed_offer([4; 20], [9; 20], &offer_id(3, 1, 1), &OFFER);
    assert!(s.handle(&mut peer, &offer, &mut warmup).is_some());
    assert_eq!(warmup.stats.responses_received(), 0);
    assert_eq!(warmup.stats.answers_sent, 0);
    warmup.now = 2_500_000_000;
    assert!(s.handle(&mut peer, &offer, &mut warmup).is_none());
    assert_eq!(warmup.stats.responses_received(), 0);
}

#[test]
fn event_share_sets_how_many_announces_name_their_event() {
    for (share, low, high) in [(0.0, 0, 0), (1.0, 400, 400), (0.5, 150, 250)] {
        let mut s = session(0);
        s.profile = Arc::new(Profile::new(&ProfileConfig {
            torrents: 50,
            peers: 400,
            weight_scrape: 0,
            event_share: share,
            ..ProfileConfig::default()
        }));
        let mut peer = s.new_peer(1, 0);
        let mut named = 0;
        for _ in 0..400 {
            let (message, _) = s.announce(&mut peer);
            let message = text(message);
            let Ok(InMessage::Announce(a)) = InMessage::parse(&message) else {
                panic!("{message}");
            };
            if a.event != AnnounceEvent::None {
                named += 1;
            }
        }
        assert!(
            (low..=high).contains(&named),
            "share {share}: {named} of 400"
        );
    }
}
