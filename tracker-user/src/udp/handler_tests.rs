//! The shared request path driven directly, as an AF_XDP worker drives it:
//! whole datagrams, no receive slot to cut them.

use std::net::SocketAddr;
use std::sync::Arc;

use tracker_proto::connection_id::{ip_to_16, make_connection_id, ConnectionIdSecret};

use super::handler::{RequestHandler, Responder};
use super::UdpSettings;
use crate::access_list::{AccessList, SharedAccessList};
use crate::config::Config;
use crate::swarm::Batch;

const TICK: u32 = 1_700_000_000;

#[derive(Default)]
struct Collect(Vec<Vec<u8>>);

impl Responder for Collect {
    fn respond(
        &mut self,
        _handle: u32,
        _addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let mut buf = [0u8; 2048];
        if let Some(n) = write(&mut buf) {
            self.0.push(buf[..n].to_vec());
        }
        true
    }
}

fn handler() -> (RequestHandler<Collect>, crossbeam_channel::Receiver<Batch>) {
    let settings = Arc::new(UdpSettings::new(
        &Config::default(),
        ConnectionIdSecret { k0: 3, k1: 4 },
    ));
    let (tx, rx) = crossbeam_channel::bounded(4);
    let access = Arc::new(SharedAccessList::new(AccessList::allow_all()));
    (
        RequestHandler::new(0, settings, access, vec![tx], Collect::default()),
        rx,
    )
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
    h.handle(0, client(), &scrape(id(), 7, 150), TICK);
    h.dispatch();
    let (txid, message) = error(&h.responder_mut().0[0]);
    assert_eq!(txid, 7);
    assert!(message.contains("too large"), "{message}");
    assert_eq!(h.counters().rejected_too_large, 1);
    assert!(
        to_swarm.try_recv().is_err(),
        "nothing was sent to the swarm"
    );

    // 101 hashes are a scrape like any other: sent on, not answered yet.
    h.handle(0, client(), &scrape(id(), 8, 101), TICK);
    h.dispatch();
    assert_eq!(h.responder_mut().0.len(), 1);
    assert_eq!(h.counters().rejected_too_large, 1);
    assert!(!to_swarm.try_recv().unwrap().jobs.is_empty());
}

#[test]
fn a_cut_datagram_is_answered_too_large_with_its_transaction_id() {
    let (mut h, _to_swarm) = handler();
    let pkt = scrape(id(), 9, 150);
    h.too_large(0, client(), &pkt[..2048]);
    let (txid, message) = error(&h.responder_mut().0[0]);
    assert_eq!(txid, 9);
    assert!(message.contains("too large"), "{message}");
    assert_eq!(h.counters().rejected_too_large, 1);
}

#[test]
fn refused_connection_ids_are_counted() {
    let (mut h, _to_swarm) = handler();
    h.handle(0, client(), &scrape(id() ^ 1, 10, 1), TICK);
    let other: SocketAddr = "192.0.2.10:40000".parse().unwrap();
    h.handle(0, other, &scrape(id(), 11, 1), TICK);
    // Another port of the same IP is fine.
    let same_ip: SocketAddr = "192.0.2.9:40001".parse().unwrap();
    h.handle(0, same_ip, &scrape(id(), 12, 1), TICK);
    let answers = &h.responder_mut().0;
    assert_eq!(answers.len(), 2, "two errors, the third went to the swarm");
    for (resp, txid) in answers.iter().zip([10, 11]) {
        assert_eq!(
            error(resp),
            (txid, "connection id invalid or expired".into())
        );
    }
    assert_eq!(h.counters().rejected_connection_id, 2);
}
