//! What the swarm store reports: counts a client sees, what a cleaning
//! did, and announces refused at a limit. Plain values, shared by the
//! UDP/HTTP store, the WebTorrent store and the request worker.

use crate::limits::Refusal;

/// Swarm totals as a client sees them, over both address families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmCounts {
    pub seeders: u32,
    pub leechers: u32,
    pub completed: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub peers_removed: usize,
    pub torrents_removed: usize,
    pub torrents_left: usize,
    pub peers_left: usize,
}

impl std::ops::AddAssign for CleanReport {
    /// The shard's report is the sum of its stores' reports.
    fn add_assign(&mut self, other: Self) {
        self.peers_removed += other.peers_removed;
        self.torrents_removed += other.torrents_removed;
        self.torrents_left += other.torrents_left;
        self.peers_left += other.peers_left;
    }
}

/// Announces one store refused, by kind, indexed by [`Refusal::index`].
pub type RefusalTally = [u64; Refusal::ALL.len()];

/// Announces refused, by kind, since the shard started: plain counters in
/// the shard its request worker owns, reported at each cleaning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    /// UDP and HTTP announces, indexed by [`Refusal::index`].
    pub udp_http: RefusalTally,
    /// WebTorrent announces.
    pub ws: RefusalTally,
}

impl RefusalCounts {
    pub fn total(&self) -> u64 {
        self.udp_http.iter().chain(&self.ws).sum()
    }
}

impl std::fmt::Display for RefusalCounts {
    /// `torrents 1/0, peers 0/0, per torrent 3/1, per ip 2`: UDP+HTTP/WS.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (u, w) = (&self.udp_http, &self.ws);
        write!(
            f,
            "torrents {}/{}, peers {}/{}, per torrent {}/{}, per ip {}",
            u[0], w[0], u[1], w[1], u[2], w[2], u[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_counts_print_per_kind_and_protocol() {
        let counts = RefusalCounts {
            udp_http: [1, 0, 3, 2],
            ws: [0, 0, 1, 0],
        };
        assert_eq!(
            counts.to_string(),
            "torrents 1/0, peers 0/0, per torrent 3/1, per ip 2"
        );
        assert_eq!(counts.total(), 7);
    }

    #[test]
    fn clean_reports_add_up() {
        let mut report = CleanReport {
            peers_removed: 1,
            torrents_removed: 2,
            torrents_left: 3,
            peers_left: 4,
        };
        report += CleanReport {
            peers_removed: 10,
            torrents_removed: 20,
            torrents_left: 30,
            peers_left: 40,
        };
        assert_eq!(
            report,
            CleanReport {
                peers_removed: 11,
                torrents_removed: 22,
                torrents_left: 33,
                peers_left: 44,
            }
        );
    }
}
