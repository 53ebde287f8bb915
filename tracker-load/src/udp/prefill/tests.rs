//! The prefill plan's bookkeeping, one request and answer at a time.

use super::*;
use crate::config::ProfileConfig;
use tracker_proto::udp::{
    write_connect_response, write_error_response, AnnounceResponse, ConnectionId, Peers,
    TransactionId,
};

const MS: u64 = 1_000_000;

fn connect_answer(txid: u32, id: u64) -> Vec<u8> {
    let mut buf = [0u8; 16];
    write_connect_response(&mut buf, TransactionId(txid), ConnectionId(id)).unwrap();
    buf.to_vec()
}

fn announce_answer(txid: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = Response::Announce(AnnounceResponse {
        transaction_id: TransactionId(txid),
        interval: 900,
        leechers: 0,
        seeders: 1,
        peers: Peers::V4(&[]),
    })
    .emit(&mut buf)
    .unwrap();
    buf.truncate(n);
    buf
}

fn error_answer(txid: u32) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = write_error_response(&mut buf, TransactionId(txid), b"bad id").unwrap();
    buf[..n].to_vec()
}

/// Sends everything the plan wants at `now`.
fn drain(plan: &mut Plan, now: u64) -> Vec<Next> {
    std::iter::from_fn(|| plan.next(now)).collect()
}

fn connected(plan: &mut Plan) {
    let Some(Next::Connect { txid }) = plan.next(0) else {
        panic!("a plan connects first")
    };
    assert_eq!(plan.next(0), None, "no announce before the id");
    assert_eq!(
        plan.answer(&connect_answer(txid, 77), PeerFamily::V4, 0),
        Answer::Connected
    );
}

#[test]
fn clients_split_as_the_load_assigns_them() {
    let total = 3;
    let mut seen = vec![0u32; 10];
    for g in 0..total {
        let mut plan = Plan::new(g, total, 10, 100, MS, 60_000 * MS, 0);
        connected(&mut plan);
        for next in drain(&mut plan, 0) {
            let Next::Announce { client, .. } = next else {
                panic!("{next:?}")
            };
            assert_eq!(client % total, g, "socket {g} sends client {client}");
            seen[client as usize] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    // More sockets than clients: the extra ones have none.
    assert_eq!(Plan::new(5, 8, 5, 4, MS, MS, 0).clients(), 0);
    assert_eq!(Plan::new(4, 8, 5, 4, MS, MS, 0).clients(), 1);
    assert!(Plan::new(6, 8, 5, 4, MS, MS, 0).done());
}

#[test]
fn the_window_bounds_what_is_outstanding() {
    let mut plan = Plan::new(0, 1, 100, 4, 10 * MS, 60_000 * MS, 7);
    connected(&mut plan);
    let sent = drain(&mut plan, MS);
    assert_eq!(sent.len(), 4);
    assert_eq!(plan.in_flight(), 4);
    let Next::Announce {
        txid,
        connection_id,
        ..
    } = sent[1]
    else {
        panic!()
    };
    assert_eq!(connection_id, 77);
    assert_eq!(
        plan.answer(&announce_answer(txid), PeerFamily::V4, 2 * MS),
        Answer::Confirmed(1)
    );
    // One answer makes room for exactly one more.
    assert_eq!(drain(&mut plan, 2 * MS).len(), 1);
    // The same answer again, or one nobody asked for, changes nothing.
    for stray in [announce_answer(txid), announce_answer(0xdead), vec![1, 2]] {
        assert_eq!(plan.answer(&stray, PeerFamily::V4, 3 * MS), Answer::Ignored);
    }
    assert_eq!((plan.confirmed, plan.in_flight()), (1, 4));
}

#[test]
fn unanswered_announces_are_sent_again_then_given_up() {
    let retry = 10 * MS;
    let mut plan = Plan::new(0, 1, 2, 8, retry, 60_000 * MS, 0);
    connected(&mut plan);
    let mut now = 0;
    let mut sends = 0;
    loop {
        // Client 1 is always answered; client 0 never.
        for next in drain(&mut plan, now) {
            let Next::Announce { txid, client, .. } = next else {
                // Ids are renewed only when they age; not here.
                panic!("{next:?}")
            };
            if client == 0 {
                sends += 1;
            } else {
                assert_eq!(
                    plan.answer(&announce_answer(txid), PeerFamily::V4, now),
                    Answer::Confirmed(1)
                );
            }
        }
        if plan.done() {
            break;
        }
        now += retry;
        plan.expire(now);
        assert!(now < 100 * retry, "never done");
    }
    assert_eq!(sends, u32::from(MAX_ATTEMPTS));
    assert_eq!((plan.confirmed, plan.failed), (1, 1));
    assert_eq!(plan.sent, u64::from(MAX_ATTEMPTS) + 1);
    // The answer to a request sent again is late: ignored.
    assert_eq!(plan.in_flight(), 0);
}

#[test]
fn an_error_renews_the_connection_and_resends() {
    let mut plan = Plan::new(0, 1, 1, 4, 10 * MS, 60_000 * MS, 0);
    connected(&mut plan);
    let [Next::Announce { txid, client, .. }] = drain(&mut plan, MS)[..] else {
        panic!()
    };
    assert_eq!(
        plan.answer(&error_answer(txid), PeerFamily::V4, 2 * MS),
        Answer::Error
    );
    // A fresh connect comes first, then the same client again.
    let Some(Next::Connect { txid: c }) = plan.next(2 * MS) else {
        panic!()
    };
    assert_eq!(plan.next(2 * MS), None);
    plan.answer(&connect_answer(c, 99), PeerFamily::V4, 3 * MS);
    let [Next::Announce {
        txid: again,
        client: same,
        connection_id,
    }] = drain(&mut plan, 3 * MS)[..]
    else {
        panic!()
    };
    assert_eq!((same, connection_id), (client, 99));
    plan.answer(&announce_answer(again), PeerFamily::V4, 4 * MS);
    assert!(plan.done());
    assert_eq!((plan.confirmed, plan.failed, plan.sent), (1, 0, 2));
}

#[test]
fn unsent_requests_go_first_and_do_not_count() {
    let mut plan = Plan::new(0, 1, 3, 2, 10 * MS, 60_000 * MS, 0);
    let connect = plan.next(0).unwrap();
    plan.unsent(connect);
    let Some(Next::Connect { txid }) = plan.next(0) else {
        panic!("the connect is sent again at once")
    };
    plan.answer(&connect_answer(txid, 5), PeerFamily::V4, 0);
    let sent = drain(&mut plan, 0);
    assert_eq!(plan.sent, 2);
    plan.unsent(sent[1]);
    assert_eq!((plan.sent, plan.in_flight()), (1, 1));
    let Some(Next::Announce { client, .. }) = plan.next(0) else {
        panic!()
    };
    assert_eq!(client, 1, "the unsent client goes before client 2");
}

#[test]
fn aged_ids_are_renewed_without_stopping() {
    let max_age = 50 * MS;
    let mut plan = Plan::new(0, 1, 1000, 2, 10 * MS, max_age, 0);
    connected(&mut plan);
    assert_eq!(drain(&mut plan, MS).len(), 2);
    plan.expire(40 * MS);
    // Past the age: a connect goes out, the old id stays in use.
    let next = drain(&mut plan, max_age);
    assert!(matches!(next[0], Next::Connect { .. }), "{next:?}");
    assert!(next[1..].iter().all(|n| matches!(
        n,
        Next::Announce {
            connection_id: 77,
            ..
        }
    )));
}

#[test]
fn distinct_peers_count_shared_ports_once() {
    let profile = Profile::new(&ProfileConfig {
        torrents: 1,
        peers: 70_000,
        ..ProfileConfig::default()
    });
    // One torrent, one address: at most 65,535 ports.
    let mut keys: Vec<u64> = (0..70_000)
        .map(|i| swarm_key(0, &profile.client(i)))
        .collect();
    let (one, torrents) = distinct(&mut keys);
    assert_eq!(torrents, 1);
    assert!(one < 65_535 && one > 40_000, "{one}");
    // Two addresses, clients alternating: roughly twice the room.
    let mut keys: Vec<u64> = (0..70_000)
        .map(|i| swarm_key((i % 2) as u16, &profile.client(i)))
        .collect();
    let (two, _) = distinct(&mut keys);
    assert!(two > one + 8_000, "{one} {two}");
    assert_eq!(distinct(&mut [3, 1, 3, 2, 1]), (3, 1));
    assert_eq!(
        distinct(&mut [1 << 32, 5 << 32 | 7, 1 << 32, 5 << 32]),
        (3, 2)
    );
    assert_eq!(distinct(&mut []), (0, 0));
    let ips: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(address_indices(&ips), [0, 1, 0]);
}
