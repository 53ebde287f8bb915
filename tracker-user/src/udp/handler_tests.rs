//! The shared request path driven directly, as an AF_XDP worker drives it:
//! whole datagrams, no receive slot to cut them.

use std::net::SocketAddr;
use std::sync::Arc;

use tracker_proto::connection_id::{ip_to_16, make_connection_id, ConnectionIdSecret};

use super::handler::{ReplyRoute, RequestHandler, Responder};
use super::UdpSettings;
use crate::access_list::{AccessList, SharedAccessList};
use crate::config::Config;
use tracker_metrics::{Action, ErrorKind, Protocol};
use tracker_swarm::{Batch, SwarmCounts, Work};

const TICK: u32 = 1_700_000_000;
const ROUTE: ReplyRoute = ReplyRoute(0);

/// The responses written, and the route each was written to.
#[derive(Default)]
struct Collect(Vec<Vec<u8>>, Vec<ReplyRoute>);

impl Responder for Collect {
    fn respond(
        &mut self,
        route: ReplyRoute,
        _addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let mut buf = [0u8; 2048];
        if let Some(n) = write(&mut buf) {
            self.0.push(buf[..n].to_vec());
            self.1.push(route);
        }
        true
    }
}

fn handler() -> (RequestHandler, crossbeam_channel::Receiver<Batch>) {
    let settings = Arc::new(UdpSettings::new(
        &Config::default(),
        ConnectionIdSecret { k0: 3, k1: 4 },
    ));
    let (tx, rx) = crossbeam_channel::bounded(4);
    let access = Arc::new(SharedAccessList::new(AccessList::allow_all()));
    let counters = Default::default();
    let h = RequestHandler::new(0, settings, access, vec![tx], counters, Protocol::UdpXdp);
    (h, rx)
}

fn client() -> SocketAddr {
    "192.0.2.9:40000".parse().unwrap()
}

fn id() -> u64 {
    let secret = ConnectionIdSecret { k0: 3, k1: 4 };
    make_connection_id(&secret, TICK, &ip_to_16(client().ip())).0
}

fn scrape(id: u64, txid: u32, hashes: usize) -> Vec<u8> {
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&2u32.to_be_bytes());
    pkt.extend_from_slice(&txid.to_be_bytes());
    pkt.resize(16 + 20 * hashes, 0xab);
    pkt
}

/// An error response's transaction id and message.
fn error(resp: &[u8]) -> (u32, String) {
    assert_eq!(&resp[..4], &3u32.to_be_bytes(), "not an error: {resp:02x?}");
    let txid = u32::from_be_bytes(resp[4..8].try_into().unwrap());
    (txid, String::from_utf8(resp[8..].to_vec()).unwrap())
}

#[test]
fn a_whole_scrape_of_more_than_101_hashes_is_refused_as_too_large() {
    let (mut h, to_swarm) = handler();
    let mut out = Collect::default();
    h.handle(&mut out, ROUTE, client(), &scrape(id(), 7, 150), TICK);
    h.dispatch();
    let (txid, message) = error(&out.0[0]);
    assert_eq!(txid, 7);
    assert!(message.contains("too large"), "{message}");
    assert_eq!(too_large(&h), 1);
    assert!(
        to_swarm.try_recv().is_err(),
        "nothing was sent to the swarm"
    );

    // 101 hashes are a scrape like any other: sent on, not answered yet.
    h.handle(&mut out, ROUTE, client(), &scrape(id(), 8, 101), TICK);
    h.dispatch();
    assert_eq!(out.0.len(), 1);
    assert_eq!(too_large(&h), 1);
    assert_eq!(h.counters().requests(Protocol::UdpXdp, Action::Scrape), 2);
    assert_eq!(h.counters().responses(Protocol::UdpXdp, Action::Error), 1);
    assert!(!to_swarm.try_recv().unwrap().jobs.is_empty());
}

#[test]
fn a_cut_datagram_is_answered_too_large_with_its_transaction_id() {
    let (mut h, _to_swarm) = handler();
    let mut out = Collect::default();
    let pkt = scrape(id(), 9, 150);
    h.too_large(&mut out, ROUTE, client(), &pkt[..2048]);
    let (txid, message) = error(&out.0[0]);
    assert_eq!(txid, 9);
    assert!(message.contains("too large"), "{message}");
    assert_eq!(too_large(&h), 1);
    assert_eq!(h.counters().requests(Protocol::UdpXdp, Action::Scrape), 1);
}

fn too_large(h: &RequestHandler) -> u64 {
    h.counters().errors(Protocol::UdpXdp, ErrorKind::TooLarge)
}

#[test]
fn refused_connection_ids_are_counted() {
    let (mut h, _to_swarm) = handler();
    let mut out = Collect::default();
    h.handle(&mut out, ROUTE, client(), &scrape(id() ^ 1, 10, 1), TICK);
    let other: SocketAddr = "192.0.2.10:40000".parse().unwrap();
    h.handle(&mut out, ROUTE, other, &scrape(id(), 11, 1), TICK);
    // Another port of the same IP is fine.
    let same_ip: SocketAddr = "192.0.2.9:40001".parse().unwrap();
    h.handle(&mut out, ROUTE, same_ip, &scrape(id(), 12, 1), TICK);
    let answers = &out.0;
    assert_eq!(answers.len(), 2, "two errors, the third went to the swarm");
    for (resp, txid) in answers.iter().zip([10, 11]) {
        assert_eq!(
            error(resp),
            (txid, "connection id invalid or expired".into())
        );
    }
    let c = h.counters();
    assert_eq!(c.errors(Protocol::UdpXdp, ErrorKind::BadConnectionId), 2);
    assert_eq!(c.requests(Protocol::UdpXdp, Action::Scrape), 3);
    assert_eq!(c.responses(Protocol::UdpXdp, Action::Error), 2);
    // The socket row is another front end's to write.
    assert_eq!(c.errors(Protocol::Udp, ErrorKind::BadConnectionId), 0);
}

fn announce(id: u64, txid: u32) -> Vec<u8> {
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&1u32.to_be_bytes());
    pkt.extend_from_slice(&txid.to_be_bytes());
    pkt.extend_from_slice(&[0xcd; 20]); // info hash
    pkt.extend_from_slice(&[0x2d; 20]); // peer id
    pkt.extend_from_slice(&[0; 8]); // downloaded
    pkt.extend_from_slice(&100u64.to_be_bytes()); // left: a leecher
    pkt.extend_from_slice(&[0; 8]); // uploaded
    pkt.extend_from_slice(&[0; 4]); // event: none
    pkt.extend_from_slice(&[0; 4]); // ip: ignored
    pkt.extend_from_slice(&[0; 4]); // key
    pkt.extend_from_slice(&(-1i32).to_be_bytes()); // numwant: default
    pkt.extend_from_slice(&6881u16.to_be_bytes());
    pkt
}

/// What a front end relies on to send an answer the right way (its socket
/// on UDP, its reply path on AF_XDP): answers that come back from a request
/// worker carry the route their request came in with.
#[test]
fn answers_from_request_workers_leave_by_their_requests_route() {
    let (mut h, to_swarm) = handler();
    let mut out = Collect::default();
    h.handle(
        &mut out,
        ReplyRoute(5),
        client(),
        &scrape(id(), 21, 2),
        TICK,
    );
    h.handle(&mut out, ReplyRoute(9), client(), &announce(id(), 22), TICK);
    h.dispatch();
    assert!(out.0.is_empty(), "both went to the swarm");
    let mut batch = to_swarm.try_recv().unwrap();
    assert_eq!(batch.jobs.len(), 3, "two scrape parts and an announce");
    // Stand in for the request worker: an answer for every job.
    for job in &mut batch.jobs {
        match &mut job.work {
            Work::Scrape { index, counts, .. } => {
                *counts = SwarmCounts {
                    seeders: u32::from(*index) + 1,
                    leechers: 7,
                    completed: 3,
                }
            }
            Work::AnnounceV4 { counts, .. } => {
                *counts = SwarmCounts {
                    seeders: 4,
                    leechers: 1,
                    completed: 0,
                }
            }
            other => panic!("unexpected work {other:?}"),
        }
    }
    h.answer(&mut out, batch);
    assert_eq!(out.1, [ReplyRoute(5), ReplyRoute(9)]);
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let scrape = &out.0[0];
    assert_eq!((be32(scrape, 0), be32(scrape, 4)), (2, 21));
    let stats: Vec<u32> = (8..scrape.len())
        .step_by(4)
        .map(|at| be32(scrape, at))
        .collect();
    assert_eq!(
        stats,
        [1, 3, 7, 2, 3, 7],
        "seeders, completed, leechers per hash"
    );
    let announce = &out.0[1];
    assert_eq!((be32(announce, 0), be32(announce, 4)), (1, 22));
    assert_eq!(
        (be32(announce, 12), be32(announce, 16)),
        (1, 4),
        "leechers, seeders"
    );
}

/// A request worker whose inbox is full refuses a batch the moment it
/// fills, which can be partway through sending one scrape's parts: that
/// scrape is abandoned while it is still being sent. The handler must shed
/// it (and count it), not crash, and go on answering once the worker
/// catches up.
#[test]
fn a_scrape_refused_partway_through_sending_is_shed_without_a_crash() {
    let (mut h, to_swarm) = handler();
    let mut out = Collect::default();
    // Fill the request worker's inbox (capacity 4), one batch a round.
    for txid in 0..4 {
        h.handle(&mut out, ROUTE, client(), &scrape(id(), txid, 1), TICK);
        h.dispatch();
    }
    assert_eq!(to_swarm.len(), 4, "the inbox is full");
    // 70-hash scrapes: the batch fills (512 jobs) during the 8th, which
    // is refused with some of its parts sent and some still to come.
    for txid in 100..110 {
        h.handle(&mut out, ROUTE, client(), &scrape(id(), txid, 70), TICK);
    }
    h.dispatch();
    assert!(out.0.is_empty(), "shed scrapes get no answer: {:?}", out.0);
    // Each shed scrape counted once, however many of its parts were refused.
    assert_eq!(h.counters().dropped_count(Protocol::UdpXdp), 10);

    // The worker catches up: what it held is answered, and a new scrape
    // goes through and is answered whole.
    let held: Vec<Batch> = to_swarm.try_iter().collect();
    assert_eq!(held.len(), 4);
    for batch in held {
        h.answer(&mut out, batch);
    }
    assert_eq!(out.0.len(), 4, "the four one-hash scrapes");
    h.handle(&mut out, ROUTE, client(), &scrape(id(), 200, 3), TICK);
    h.dispatch();
    let batch = to_swarm.try_recv().expect("the new scrape was sent");
    assert_eq!(batch.jobs.len(), 3);
    h.answer(&mut out, batch);
    let last = out.0.last().unwrap();
    assert_eq!(
        &last[..8],
        [&2u32.to_be_bytes()[..], &200u32.to_be_bytes()].concat()
    );
    assert_eq!(last.len(), 8 + 3 * 12);
}

/// A scrape whose first parts went out in a batch the request worker took
/// and whose last parts were refused with the next batch is shed whole:
/// when the first parts come back they answer nothing, since a partial
/// answer would report the missing torrents as empty.
#[test]
fn a_scrape_split_across_a_taken_and_a_refused_batch_gets_no_partial_answer() {
    let (mut h, to_swarm) = handler();
    let mut out = Collect::default();
    // Three of the inbox's four places taken.
    for txid in 0..3 {
        h.handle(&mut out, ROUTE, client(), &scrape(id(), txid, 1), TICK);
        h.dispatch();
    }
    // Scrapes 100..=106 fill 490 jobs; 107's first 22 parts complete the
    // batch of 512, which takes the last place. Its other 48 parts, and
    // scrape 108, go in the next batch, which finds the inbox full.
    for txid in 100..109 {
        h.handle(&mut out, ROUTE, client(), &scrape(id(), txid, 70), TICK);
    }
    h.dispatch();
    assert!(out.0.is_empty());
    let held: Vec<Batch> = to_swarm.try_iter().collect();
    assert_eq!(held.len(), 4);
    assert_eq!(held[3].jobs.len(), 512);
    for batch in held {
        h.answer(&mut out, batch);
    }
    let txids: Vec<u32> = out
        .0
        .iter()
        .map(|r| {
            assert_eq!(&r[..4], &2u32.to_be_bytes(), "a scrape answer");
            u32::from_be_bytes(r[4..8].try_into().unwrap())
        })
        .collect();
    assert_eq!(txids, [0, 1, 2, 100, 101, 102, 103, 104, 105, 106]);
    assert!(out.0[3..].iter().all(|r| r.len() == 8 + 70 * 12));
}

/// Each way a request ends is counted under its action and kind, in the
/// front end's own protocol row.
#[test]
fn requests_responses_and_errors_are_counted_by_action_and_kind() {
    let (mut h, to_swarm) = handler();
    let mut out = Collect::default();
    let mut connect = 0x41727101980u64.to_be_bytes().to_vec();
    connect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    h.handle(&mut out, ROUTE, client(), &connect, TICK);
    let mut port_zero = announce(id(), 2);
    port_zero[96..98].copy_from_slice(&[0, 0]);
    h.handle(&mut out, ROUTE, client(), &port_zero, TICK);
    // Action 9 names no request: an error, but no request of any action.
    let mut unknown = connect.clone();
    unknown[8..12].copy_from_slice(&9u32.to_be_bytes());
    h.handle(&mut out, ROUTE, client(), &unknown, TICK);
    // Two announces: one answered, one refused at a swarm limit.
    h.handle(&mut out, ROUTE, client(), &announce(id(), 4), TICK);
    h.handle(&mut out, ROUTE, client(), &announce(id(), 5), TICK);
    h.dispatch();
    let mut batch = to_swarm.try_recv().unwrap();
    match &mut batch.jobs[1].work {
        Work::AnnounceV4 { refused, .. } => {
            *refused = Some(tracker_swarm::Refusal::PeersPerTorrent)
        }
        other => panic!("unexpected work {other:?}"),
    }
    h.answer(&mut out, batch);
    assert_eq!(out.0.len(), 5, "every request answered");
    assert!(
        error(&out.0[4]).1.contains("limit"),
        "{:?}",
        error(&out.0[4])
    );

    let c = h.counters();
    let p = Protocol::UdpXdp;
    assert_eq!(c.requests(p, Action::Connect), 1);
    assert_eq!(c.requests(p, Action::Announce), 3);
    assert_eq!(c.requests(p, Action::Scrape), 0);
    assert_eq!(c.responses(p, Action::Connect), 1);
    assert_eq!(c.responses(p, Action::Announce), 1);
    assert_eq!(c.responses(p, Action::Error), 3);
    assert_eq!(c.errors(p, ErrorKind::Malformed), 2, "port 0 and action 9");
    assert_eq!(c.errors(p, ErrorKind::LimitReached), 1);
    assert_eq!(c.errors(p, ErrorKind::AccessDenied), 0);
    assert_eq!(c.dropped_count(p), 0);
    assert_eq!(c.requests(Protocol::Udp, Action::Announce), 0);
}
