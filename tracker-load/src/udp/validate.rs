//! Matching answers to requests and checking them.
//!
//! Everything here is total: a tracker (or anything else on the path) can
//! send any bytes, and the worst they can do is be counted invalid.

use tracker_proto::udp::{PeerFamily, Response};

use super::pending::{Lookup, Pending};
use crate::profile::RequestKind;
use crate::report::Stats;

/// What an answer means for its socket's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// A connect was answered with this id.
    Connected(u64),
    /// A BEP 15 error to a request sent at `sent_ns`: the id it carried
    /// may be the reason, so get a fresh one unless that already happened.
    Reconnect {
        sent_ns: u64,
    },
}

pub struct Checker {
    pub family: PeerFamily,
    /// Most peers an announce answer may carry; `None` when the tracker
    /// picks (numwant < 0).
    pub max_peers: Option<usize>,
    /// Answers arriving before this are not counted unless their request
    /// is; see [`Checker::account`].
    pub measure_from_ns: u64,
}

impl Checker {
    pub fn new(family: PeerFamily, numwant: i32, measure_from_ns: u64) -> Self {
        Self {
            family,
            max_peers: usize::try_from(numwant).ok(),
            measure_from_ns,
        }
    }

    /// Matches one datagram to its request in `pending` and counts it in
    /// `stats`. Answers to requests sent in the measured window are
    /// counted (with their latency); stray datagrams are counted when they
    /// arrive inside it. `truncated` says the receive slot cut it off.
    #[inline]
    pub fn account(
        &self,
        stats: &mut Stats,
        pending: &mut Pending,
        datagram: &[u8],
        truncated: bool,
        now_ns: u64,
    ) -> Effect {
        let measuring = now_ns >= self.measure_from_ns;
        let Some(txid) = datagram.get(4..8) else {
            // Too short to say which request it answers.
            if measuring {
                stats.invalid.malformed += 1;
            }
            return Effect::None;
        };
        let txid = u32::from_be_bytes([txid[0], txid[1], txid[2], txid[3]]);
        let entry = match pending.take(txid) {
            Lookup::Found(entry) => entry,
            Lookup::Late => {
                if measuring {
                    stats.late += 1;
                }
                return Effect::None;
            }
            Lookup::Unknown => {
                if measuring {
                    stats.invalid.unknown_transaction += 1;
                }
                return Effect::None;
            }
        };
        // Requests from the warmup still refresh connection ids; they are
        // just not counted.
        let counted = entry.measured;
        let outcome = if truncated {
            Outcome::Invalid(Invalid::Malformed)
        } else {
            self.check(datagram, entry.kind, entry.scrape_len)
        };
        let effect = match outcome {
            Outcome::Connect(id) => Effect::Connected(id),
            Outcome::Error(_) => Effect::Reconnect {
                sent_ns: entry.sent_ns,
            },
            _ => Effect::None,
        };
        if counted {
            stats
                .latency
                .record(now_ns.saturating_sub(entry.sent_ns) / 1_000);
            match outcome {
                Outcome::Connect(_) => stats.connect_responses += 1,
                Outcome::Announce { peers } => {
                    stats.announce_responses += 1;
                    stats.peers_received += peers as u64;
                }
                Outcome::Scrape => stats.scrape_responses += 1,
                Outcome::Error(message) => {
                    stats.error_responses += 1;
                    stats.keep_error_message(message);
                }
                Outcome::Invalid(why) => {
                    let i = &mut stats.invalid;
                    *match why {
                        Invalid::Malformed => &mut i.malformed,
                        Invalid::WrongAction => &mut i.wrong_action,
                        Invalid::TooManyPeers => &mut i.too_many_peers,
                        Invalid::WrongScrapeCount => &mut i.wrong_scrape_count,
                    } += 1;
                }
            }
        }
        effect
    }

    /// Parses an answer to a request of `kind` and checks its content.
    #[inline]
    fn check<'a>(&self, datagram: &'a [u8], kind: RequestKind, scrape_len: u8) -> Outcome<'a> {
        match (Response::parse(datagram, self.family), kind) {
            (Err(_), _) => Outcome::Invalid(Invalid::Malformed),
            (Ok(Response::Error(e)), _) => Outcome::Error(e.message),
            (Ok(Response::Connect(c)), RequestKind::Connect) => Outcome::Connect(c.connection_id.0),
            (Ok(Response::Announce(a)), RequestKind::Announce) => {
                let peers = a.peers.len();
                if self.max_peers.is_some_and(|max| peers > max) {
                    Outcome::Invalid(Invalid::TooManyPeers)
                } else {
                    Outcome::Announce { peers }
                }
            }
            (Ok(Response::Scrape(r)), RequestKind::Scrape) => {
                if r.stats.len() == usize::from(scrape_len) {
                    Outcome::Scrape
                } else {
                    Outcome::Invalid(Invalid::WrongScrapeCount)
                }
            }
            (Ok(_), _) => Outcome::Invalid(Invalid::WrongAction),
        }
    }
}

enum Outcome<'a> {
    Connect(u64),
    Announce { peers: usize },
    Scrape,
    Error(&'a [u8]),
    Invalid(Invalid),
}

enum Invalid {
    Malformed,
    WrongAction,
    TooManyPeers,
    WrongScrapeCount,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tracker_proto::udp::{
        write_connect_response, write_error_response, AnnounceResponse, ConnectionId, PeerV4,
        Peers, ScrapeResponse, ScrapeStats, TransactionId,
    };
    use RequestKind::*;

    fn emit(response: Response<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let n = response.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn announce(txid: u32, peers: &[PeerV4]) -> Vec<u8> {
        emit(Response::Announce(AnnounceResponse {
            transaction_id: TransactionId(txid),
            interval: 900,
            leechers: 1,
            seeders: 2,
            peers: Peers::V4(peers),
        }))
    }

    fn scrape(txid: u32, n: usize) -> Vec<u8> {
        let stats = vec![ScrapeStats::new(1, 2, 3); n];
        emit(Response::Scrape(ScrapeResponse {
            transaction_id: TransactionId(txid),
            stats: &stats,
        }))
    }

    fn connect(txid: u32, id: u64) -> Vec<u8> {
        let mut buf = [0u8; 16];
        write_connect_response(&mut buf, TransactionId(txid), ConnectionId(id)).unwrap();
        buf.to_vec()
    }

    fn error(txid: u32, msg: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = write_error_response(&mut buf, TransactionId(txid), msg).unwrap();
        buf[..n].to_vec()
    }

    struct Fixture {
        checker: Checker,
        pending: Pending,
        stats: Stats,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                checker: Checker::new(PeerFamily::V4, 3, 1_000),
                pending: Pending::new(64, 500),
                stats: Stats::default(),
            }
        }

        fn send(&mut self, kind: RequestKind, scrape_len: u8) -> u32 {
            self.pending.alloc(2_000, kind, scrape_len, true).0
        }

        fn answer(&mut self, datagram: &[u8]) -> Effect {
            self.checker
                .account(&mut self.stats, &mut self.pending, datagram, false, 52_000)
        }
    }

    fn peers(n: usize) -> Vec<PeerV4> {
        (0..n)
            .map(|i| PeerV4::new(Ipv4Addr::new(10, 0, 0, i as u8), 6881))
            .collect()
    }

    #[test]
    fn valid_answers_are_counted_by_kind() {
        let mut f = Fixture::new();
        let c = f.send(Connect, 0);
        let a = f.send(Announce, 0);
        let s = f.send(Scrape, 4);
        assert_eq!(f.answer(&connect(c, 77)), Effect::Connected(77));
        assert_eq!(f.answer(&announce(a, &peers(3))), Effect::None);
        assert_eq!(f.answer(&scrape(s, 4)), Effect::None);
        let st = &f.stats;
        assert_eq!(
            (
                st.connect_responses,
                st.announce_responses,
                st.scrape_responses
            ),
            (1, 1, 1)
        );
        assert_eq!(st.peers_received, 3);
        assert_eq!(st.invalid.total(), 0);
        assert_eq!(st.responses_received(), 3);
        assert_eq!(st.latency.count(), 3);
        assert_eq!(st.latency.percentile(50.0), 50);
    }

    #[test]
    fn transaction_id_mismatch() {
        let mut f = Fixture::new();
        let a = f.send(Announce, 0);
        f.answer(&announce(a.wrapping_add(1000), &[]));
        assert_eq!(f.stats.invalid.unknown_transaction, 1);
        // Still outstanding: the stray answer did not consume it.
        assert_eq!(f.pending.outstanding(), 1);
        f.answer(&announce(a, &[]));
        assert_eq!(f.stats.announce_responses, 1);
        // A second answer to the same request is late, not invalid.
        f.answer(&announce(a, &[]));
        assert_eq!(f.stats.late, 1);
        assert_eq!(f.stats.invalid.total(), 1);
    }

    #[test]
    fn wrong_action() {
        let mut f = Fixture::new();
        let a = f.send(Announce, 0);
        let c = f.send(Connect, 0);
        let s = f.send(Scrape, 1);
        assert_eq!(f.answer(&connect(a, 1)), Effect::None);
        f.answer(&scrape(c, 0));
        f.answer(&announce(s, &[]));
        assert_eq!(f.stats.invalid.wrong_action, 3);
        assert_eq!(f.stats.connect_responses, 0);
        assert_eq!(f.stats.responses_received(), 3);
    }

    #[test]
    fn malformed() {
        let mut f = Fixture::new();
        f.answer(&[0, 0, 0]);
        assert_eq!(f.stats.invalid.malformed, 1);
        let a = f.send(Announce, 0);
        let mut bad = announce(a, &peers(2));
        bad.pop();
        f.answer(&bad);
        let c = f.send(Connect, 0);
        f.answer(&connect(c, 5)[..12]);
        let s = f.send(Scrape, 1);
        f.answer(&[
            0,
            0,
            0,
            9,
            (s >> 24) as u8,
            (s >> 16) as u8,
            (s >> 8) as u8,
            s as u8,
        ]);
        assert_eq!(f.stats.invalid.malformed, 4);
        let a = f.send(Announce, 0);
        let full = announce(a, &peers(1));
        assert_eq!(
            f.checker
                .account(&mut f.stats, &mut f.pending, &full, true, 52_000),
            Effect::None
        );
        assert_eq!(f.stats.invalid.malformed, 5);
        assert_eq!(f.stats.announce_responses, 0);
    }

    #[test]
    fn content_checks() {
        let mut f = Fixture::new();
        let a = f.send(Announce, 0);
        f.answer(&announce(a, &peers(4)));
        assert_eq!(f.stats.invalid.too_many_peers, 1);
        let s = f.send(Scrape, 3);
        f.answer(&scrape(s, 2));
        assert_eq!(f.stats.invalid.wrong_scrape_count, 1);
        assert_eq!(f.stats.peers_received, 0);

        // numwant < 0 leaves the count to the tracker.
        f.checker = Checker::new(PeerFamily::V4, -1, 1_000);
        let a = f.send(Announce, 0);
        f.answer(&announce(a, &peers(40)));
        assert_eq!(f.stats.announce_responses, 1);
        assert_eq!(f.stats.peers_received, 40);
    }

    #[test]
    fn error_responses_are_counted_and_kept() {
        let mut f = Fixture::new();
        for i in 0..7 {
            let a = f.send(Announce, 0);
            let msg = format!("connection id invalid {i}");
            assert_eq!(
                f.answer(&error(a, msg.as_bytes())),
                Effect::Reconnect { sent_ns: 2_000 }
            );
        }
        assert_eq!(f.stats.error_responses, 7);
        assert_eq!(f.stats.invalid.total(), 0);
        assert_eq!(f.stats.error_messages.len(), 5);
        assert_eq!(f.stats.error_messages[0], "connection id invalid 0");
    }

    #[test]
    fn warmup_answers_refresh_ids_but_are_not_counted() {
        let mut f = Fixture::new();
        let c = f.pending.alloc(0, Connect, 0, false).0;
        let got = f
            .checker
            .account(&mut f.stats, &mut f.pending, &connect(c, 9), false, 500);
        assert_eq!(got, Effect::Connected(9));
        // A stray before measuring starts is not counted either.
        f.checker
            .account(&mut f.stats, &mut f.pending, &[1, 2], false, 500);
        let e = f.pending.alloc(0, Announce, 0, false).0;
        let got = f
            .checker
            .account(&mut f.stats, &mut f.pending, &error(e, b"x"), false, 5_000);
        assert_eq!(got, Effect::Reconnect { sent_ns: 0 });
        assert_eq!(f.stats.responses_received(), 0);
        assert_eq!(f.stats.latency.count(), 0);
        assert!(f.stats.error_messages.is_empty());
    }
}
