//! `udp.prefill` for the AF_XDP sender: every client of the profile
//! announced once, before the load, from the simulated source address the
//! load will use for it.
//!
//! The bookkeeping is the socket prefill's ([`Plan`], one per source,
//! which is the load's own assignment of clients to sources), so are the
//! requests, the resends, the give-up rules and the outcome. What differs
//! is the window: the load's is shared by all sources (`xdp_in_flight`,
//! veth's queue limit), so the prefill keeps that many requests, connects
//! included, outstanding over all plans, taking sources in turn.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tracker_proto::udp::PeerFamily;
use tracker_xsk::XskQueue;

use super::frame::{self, Received, Template, HEADERS_LEN};
use super::SOURCE_PORT;
use crate::profile::Profile;
use crate::udp::mmsg::SEND_SLOT;
use crate::udp::prefill::{
    plans, write_request, Answer, Census, Next, Outcome, Plan, Watch, DRAIN, EXPIRE_EVERY_NS,
};
use crate::udp::request::AnnounceTemplate;

/// How the prefill runs.
pub struct Settings<'a> {
    pub profile: &'a Profile,
    pub tracker: SocketAddrV4,
    pub template: &'a Template,
    pub source_first: Ipv4Addr,
    pub source_count: u32,
    /// Requests outstanding over all sources.
    pub window: usize,
    /// Requests put on the TX ring per kick.
    pub batch_size: usize,
    pub retry: Duration,
    pub connection_id_max_age: Duration,
    pub progress: bool,
    pub seed: u64,
}

/// The most any one source keeps outstanding: its even share of the
/// window, at least one.
pub fn per_source_window(window: usize, sources: u32) -> usize {
    window.div_ceil(sources.max(1) as usize).max(1)
}

/// Takes sources in turn from `cursor`, letting each ask for at most one
/// request, until `room` requests went out or every source had its turn.
/// `send` puts one on the ring and says whether it could. Returns how many
/// went out and where the next turn starts.
pub fn take_turns(
    plans: &mut [Plan],
    cursor: usize,
    room: usize,
    now: u64,
    mut send: impl FnMut(usize, Next) -> bool,
) -> (usize, usize) {
    let len = plans.len();
    let (mut sent, mut at) = (0, cursor % len.max(1));
    for _ in 0..len {
        if sent >= room {
            break;
        }
        let index = at;
        at = if at + 1 == len { 0 } else { at + 1 };
        let Some(next) = plans[index].next(now) else {
            continue;
        };
        if !send(index, next) {
            // The TX pool is empty until completions come back.
            plans[index].unsent(next);
            return (sent, index);
        }
        sent += 1;
    }
    (sent, at)
}

/// Announces every client of the profile once through `queue`, each from
/// its source, and returns what it did. Fails if the tracker never
/// answers, or stops answering.
pub fn run(queue: &mut XskQueue, s: &Settings) -> anyhow::Result<Outcome> {
    let peers = s.profile.peers;
    let mut watch = Watch::new(SocketAddr::V4(s.tracker), peers, s.progress);
    let mut plans = plans(
        s.source_count,
        peers,
        per_source_window(s.window, s.source_count),
        s.retry,
        s.connection_id_max_age,
        s.seed,
    );
    // Every source is its own address: its index is the census's.
    let mut census = Census::new(peers, s.source_count <= u32::from(u16::MAX) + 1);
    let announce = AnnounceTemplate::new(0);
    let first = u32::from(s.source_first);
    let batch = s.batch_size.max(1);
    let mut cursor = 0;
    let mut next_expire = 0u64;
    loop {
        let now = watch.now_ns();
        let received = queue.receive(batch * 2, |bytes| {
            let Received::Answer { to, payload } = frame::parse(bytes, s.tracker) else {
                return;
            };
            let index = u32::from(*to.ip()).wrapping_sub(first) as usize;
            let Some(plan) = plans.get_mut(index).filter(|_| to.port() == SOURCE_PORT) else {
                return;
            };
            watch.answered();
            if let Answer::Confirmed(client) = plan.answer(payload, PeerFamily::V4, now) {
                census.confirmed(index as u16, &s.profile.client(client));
            }
        });
        if now >= next_expire {
            next_expire = now + EXPIRE_EVERY_NS;
            for plan in &mut plans {
                plan.expire(now);
            }
        }
        let outstanding: usize = plans.iter().map(Plan::outstanding).sum();
        let room = s.window.saturating_sub(outstanding).min(batch);
        let (sent, at) = take_turns(&mut plans, cursor, room, now, |index, next| {
            let from = SocketAddrV4::new(Ipv4Addr::from(first + index as u32), SOURCE_PORT);
            queue.transmit(|frame| {
                let slot: &mut [u8; SEND_SLOT] = frame
                    .get_mut(HEADERS_LEN..HEADERS_LEN + SEND_SLOT)?
                    .try_into()
                    .ok()?;
                let len = write_request(slot, next, s.profile, &announce);
                s.template.finish(frame, from, len)
            })
        });
        cursor = at;
        queue.flush();
        if plans.iter().all(Plan::done) {
            break;
        }
        watch.check(&plans)?;
        if received == 0 && sent == 0 {
            wait_for_rx(queue);
        }
    }
    let outcome = watch.outcome(&plans, census);
    // Answers to announces sent twice may still come: taken off the ring
    // here, the load does not count them as strays.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        queue.receive(batch * 2, |_| {});
        queue.flush();
        wait_for_rx(queue);
    }
    Ok(outcome)
}

/// Sleeps until the RX ring has something, for at most a millisecond.
fn wait_for_rx(queue: &XskQueue) {
    let mut fd = libc::pollfd {
        fd: queue.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, live for the call; the socket is open.
    unsafe { libc::poll(&mut fd, 1, 1) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_proto::udp::{write_connect_response, ConnectionId, TransactionId};

    const MS: u64 = 1_000_000;

    #[test]
    fn the_window_is_shared_evenly_by_sources() {
        assert_eq!(per_source_window(256, 4096), 1);
        assert_eq!(per_source_window(256, 16), 16);
        assert_eq!(per_source_window(256, 100), 3);
        assert_eq!(per_source_window(1, 0), 1);
    }

    fn connect_answer(txid: u32) -> Vec<u8> {
        let mut buf = [0u8; 16];
        write_connect_response(&mut buf, TransactionId(txid), ConnectionId(9)).unwrap();
        buf.to_vec()
    }

    #[test]
    fn sources_take_turns_within_the_room() {
        let mut plans = plans(
            4,
            40,
            per_source_window(8, 4),
            Duration::from_millis(50),
            Duration::from_secs(60),
            1,
        );
        // First turn: connects, one per source, no more than the room.
        let mut asked = Vec::new();
        let (sent, at) = take_turns(&mut plans, 0, 3, 0, |i, next| {
            asked.push((i, next));
            true
        });
        assert_eq!((sent, at), (3, 3));
        assert!(asked
            .iter()
            .enumerate()
            .all(|(k, (i, n))| *i == k && matches!(n, Next::Connect { .. })));
        // The next turn starts where this one stopped.
        let (sent, at) = take_turns(&mut plans, at, 8, 0, |i, next| {
            asked.push((i, next));
            true
        });
        assert_eq!((sent, at), (1, 3), "only source 3 had a connect left");
        for (i, next) in asked.drain(..) {
            let Next::Connect { txid } = next else {
                panic!()
            };
            plans[i].answer(&connect_answer(txid), PeerFamily::V4, MS);
        }
        // Connected: each source announces its own clients, one a turn.
        let (sent, _) = take_turns(&mut plans, 0, 100, MS, |i, next| {
            let Next::Announce { client, .. } = next else {
                panic!("{next:?}")
            };
            assert_eq!(client as usize % 4, i);
            true
        });
        assert_eq!(sent, 4);
        assert_eq!(plans.iter().map(Plan::outstanding).sum::<usize>(), 4);
    }

    #[test]
    fn a_full_ring_hands_the_request_back() {
        let mut plans = plans(
            2,
            10,
            4,
            Duration::from_millis(50),
            Duration::from_secs(60),
            1,
        );
        let (sent, at) = take_turns(&mut plans, 1, 10, 0, |_, _| false);
        assert_eq!((sent, at), (0, 1), "the same source goes first next time");
        assert_eq!(plans[1].outstanding(), 0);
        let (sent, _) = take_turns(&mut plans, at, 10, 0, |_, _| true);
        assert_eq!(sent, 2);
    }
}
