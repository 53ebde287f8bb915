//! Caps on what the swarm store holds, so memory stays bounded whatever
//! clients announce.
//!
//! Each request worker owns its shard outright, so the totals are split
//! evenly between shards (rounded up) instead of being counted in a shared
//! atomic: the tracker as a whole may refuse a little before a total is
//! reached when torrents hash unevenly, and never holds more than
//! `workers × ceil(total / workers)`.

/// What one shard may hold. A new torrent or peer past a limit is refused;
/// known peers and existing torrents are never refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmLimits {
    /// UDP/HTTP torrents.
    pub max_torrents: usize,
    /// UDP/HTTP peers, both address families.
    pub max_peers: usize,
    /// WebTorrent torrents: a store of their own, so a flood on one
    /// protocol cannot lock the other out.
    pub max_ws_torrents: usize,
    /// WebTorrent peers.
    pub max_ws_peers: usize,
    /// Peers in one torrent (both families; WebTorrent swarms too).
    pub max_peers_per_torrent: usize,
    /// UDP/HTTP peers with one IP address in one torrent.
    pub max_peers_per_ip: usize,
}

impl SwarmLimits {
    pub const UNLIMITED: Self = Self {
        max_torrents: usize::MAX,
        max_peers: usize::MAX,
        max_ws_torrents: usize::MAX,
        max_ws_peers: usize::MAX,
        max_peers_per_torrent: usize::MAX,
        max_peers_per_ip: usize::MAX,
    };

    /// The share one of `workers` shards enforces: totals divided, rounded
    /// up; per-torrent limits unchanged, as a torrent lives in one shard.
    pub fn per_shard(self, workers: usize) -> Self {
        let share = |total: usize| total.div_ceil(workers.max(1));
        Self {
            max_torrents: share(self.max_torrents),
            max_peers: share(self.max_peers),
            max_ws_torrents: share(self.max_ws_torrents),
            max_ws_peers: share(self.max_ws_peers),
            ..self
        }
    }
}

impl Default for SwarmLimits {
    /// No limit: the tracker's config supplies the real ones.
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// Why an announce was refused: the limit a new entry would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Torrents,
    Peers,
    PeersPerTorrent,
    PeersPerIp,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Torrents,
        Refusal::Peers,
        Refusal::PeersPerTorrent,
        Refusal::PeersPerIp,
    ];

    /// What the client is told (BEP 15 error, `failure reason`).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Torrents => "tracker is full: torrent limit reached",
            Refusal::Peers => "tracker is full: peer limit reached",
            Refusal::PeersPerTorrent => "torrent is full: peer limit per torrent reached",
            Refusal::PeersPerIp => "too many peers from this IP address in this torrent",
        }
    }

    /// Position in [`Refusal::ALL`], for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_split_rounding_up_and_per_torrent_limits_kept() {
        let limits = SwarmLimits {
            max_torrents: 10,
            max_peers: 7,
            max_ws_torrents: 1,
            max_ws_peers: 0,
            max_peers_per_torrent: 5,
            max_peers_per_ip: 2,
        };
        let shard = limits.per_shard(3);
        assert_eq!(
            (
                shard.max_torrents,
                shard.max_peers,
                shard.max_ws_torrents,
                shard.max_ws_peers
            ),
            (4, 3, 1, 0)
        );
        assert_eq!(
            (shard.max_peers_per_torrent, shard.max_peers_per_ip),
            (5, 2)
        );
        assert_eq!(
            SwarmLimits::UNLIMITED.per_shard(4).max_peers,
            usize::MAX / 4 + 1
        );
    }

    #[test]
    fn every_refusal_names_its_limit() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(r.message().contains("limit") || r.message().contains("too many"));
        }
    }
}
