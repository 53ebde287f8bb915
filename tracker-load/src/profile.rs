//! What the simulated clients ask for: request mix, torrent popularity and
//! each client's fixed attributes.
//!
//! Nothing here is stored per client or per torrent: a client's torrent,
//! role, port and scrape set are drawn from an RNG seeded by its index, and
//! an info hash is a hash of the torrent index. Two million clients then
//! cost no memory and no cache misses, yet every client announces the same
//! torrent from the same port all run long, as a real one would.

use fastrand::Rng;
use tracker_proto::AnnounceEvent;

use crate::config::ProfileConfig;

/// What a leecher says it has left, as aquatic's load tests do.
pub const LEECHER_LEFT: u64 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Connect,
    Announce,
    Scrape,
}

/// One simulated client's fixed attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub torrent: u32,
    pub seeder: bool,
    /// The port it announces (BEP 15 carries it in the request).
    pub port: u16,
    /// BEP 15 `key`, fixed per client as real clients do.
    pub key: u32,
    pub scrape_len: u32,
    /// Seeds the client's scrape set; see [`Profile::scrape_torrents`].
    scrape_seed: u64,
}

impl Client {
    /// What the client says it has left: seeders nothing, leechers
    /// [`LEECHER_LEFT`], as aquatic's load tests do. A re-announce says the
    /// same.
    #[inline]
    pub fn left(&self) -> u64 {
        if self.seeder {
            0
        } else {
            LEECHER_LEFT
        }
    }

    /// The event the client names when it names one: seeders "completed",
    /// leechers "started", as aquatic's load tests do.
    #[inline]
    pub fn event(&self) -> AnnounceEvent {
        if self.seeder {
            AnnounceEvent::Completed
        } else {
            AnnounceEvent::Started
        }
    }
}

/// Walks the clients bound to one socket or connection, round-robin: those
/// whose index is congruent to its global index modulo the total count.
#[derive(Clone, Copy, Debug)]
pub struct ClientCycle {
    global: u32,
    round: u32,
}

impl ClientCycle {
    /// The cycle of socket or connection `global` (an index over all
    /// workers).
    pub fn new(global: u32) -> Self {
        Self { global, round: 0 }
    }

    /// The next client index, given the profile's client count and the
    /// total count of sockets or connections.
    #[inline]
    pub fn next(&mut self, peers: u32, total: u32) -> u32 {
        if self.global >= peers {
            // More sockets than clients: share.
            return self.global % peers;
        }
        let index = u64::from(self.global) + u64::from(self.round) * u64::from(total);
        if index >= u64::from(peers) {
            self.round = 1;
            return self.global;
        }
        self.round += 1;
        index as u32
    }
}

/// The profile, resolved for cheap sampling.
#[derive(Clone, Debug)]
pub struct Profile {
    pub peers: u32,
    pub numwant: i32,
    pub scrape_max_torrents: u32,
    seed: u64,
    connect_below: u32,
    announce_below: u32,
    total_weight: u32,
    seeder_probability: f64,
    event_share: f64,
    popularity: Popularity,
}

/// Torrent popularity as aquatic_udp_load_test 0.9 weighs it: torrent `i`
/// has weight `floor + exp(head - decay * i / n)` with `floor = n / peers`.
/// That is a uniform part plus a geometric one, and both invert in closed
/// form, so a draw costs one logarithm instead of aquatic's alias table.
#[derive(Clone, Debug)]
struct Popularity {
    n: u32,
    /// Chance a draw comes from the geometric (hot) part.
    hot_share: f64,
    /// ln of the ratio between neighbouring torrents' hot weights (< 0).
    ln_ratio: f64,
    /// 1 - ratio^n: the hot part's total mass over its first term's.
    hot_mass: f64,
}

impl Popularity {
    fn new(n: u32, peers: u32, head: f64, decay: f64) -> Self {
        let nf = f64::from(n);
        let ln_ratio = -decay / nf;
        if ln_ratio == 0.0 {
            // Both parts are uniform: skip the geometric one.
            return Self {
                n,
                hot_share: 0.0,
                ln_ratio,
                hot_mass: 0.0,
            };
        }
        let hot_mass = -(-decay).exp_m1();
        // Sum over i of exp(head) * ratio^i, exactly.
        let hot_total = head.exp() * hot_mass / -ln_ratio.exp_m1();
        let floor_total = nf / f64::from(peers) * nf;
        Self {
            n,
            hot_share: hot_total / (hot_total + floor_total),
            ln_ratio,
            hot_mass,
        }
    }

    fn sample(&self, rng: &mut Rng) -> u32 {
        if rng.f64() < self.hot_share {
            // Inverse CDF of the geometric distribution truncated to n.
            let u = rng.f64();
            let i = (-u * self.hot_mass).ln_1p() / self.ln_ratio;
            // Float rounding can land exactly on n; NaN casts to 0.
            (i as u32).min(self.n - 1)
        } else {
            rng.u32(..self.n)
        }
    }
}

/// SplitMix64's finaliser: cheap, and every input bit affects every output
/// bit, so consecutive indices give unrelated streams.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Profile {
    pub fn new(config: &ProfileConfig) -> Self {
        let connect_below = config.weight_connect;
        let announce_below = connect_below.saturating_add(config.weight_announce);
        Self {
            peers: config.peers.max(1),
            numwant: config.numwant,
            scrape_max_torrents: config.scrape_max_torrents.max(1),
            seed: config.seed,
            connect_below,
            announce_below,
            total_weight: announce_below.saturating_add(config.weight_scrape).max(1),
            seeder_probability: config.seeder_probability,
            event_share: config.event_share,
            popularity: Popularity::new(
                config.torrents.max(1),
                config.peers.max(1),
                config.popularity_head,
                config.popularity_decay,
            ),
        }
    }

    /// Draws the kind of the next request by the configured weights.
    #[inline]
    pub fn request_kind(&self, rng: &mut Rng) -> RequestKind {
        let x = rng.u32(..self.total_weight);
        if x < self.connect_below {
            RequestKind::Connect
        } else if x < self.announce_below {
            RequestKind::Announce
        } else {
            RequestKind::Scrape
        }
    }

    /// Draws the kind of the next request for a protocol without connects
    /// (HTTP, WebSocket): announce or scrape by their weights alone; an
    /// announce if both are 0.
    #[inline]
    pub fn request_kind_without_connect(&self, rng: &mut Rng) -> RequestKind {
        let announce = self.announce_below - self.connect_below;
        let scrape = self.total_weight - self.announce_below;
        if scrape == 0 || rng.u32(..announce + scrape) < announce {
            RequestKind::Announce
        } else {
            RequestKind::Scrape
        }
    }

    /// Whether any announce or scrape weight is set, for protocols without
    /// connects.
    pub fn has_requests_without_connect(&self) -> bool {
        self.total_weight > self.connect_below
    }

    /// Draws the event of `client`'s next announce: its own event with
    /// chance `event_share`, else none (a periodic re-announce). At 1.0 and
    /// 0.0 nothing is drawn, so aquatic's profile keeps its RNG stream.
    #[inline]
    pub fn announce_event(&self, client: &Client, rng: &mut Rng) -> AnnounceEvent {
        if self.event_share >= 1.0 || (self.event_share > 0.0 && rng.f64() < self.event_share) {
            client.event()
        } else {
            AnnounceEvent::None
        }
    }

    /// Draws a torrent index by popularity; 0 is the hottest.
    #[inline]
    pub fn torrent(&self, rng: &mut Rng) -> u32 {
        self.popularity.sample(rng)
    }

    /// Client `index`'s attributes; the same every call.
    #[inline]
    pub fn client(&self, index: u32) -> Client {
        let mut rng = Rng::with_seed(mix64(self.seed ^ u64::from(index)));
        let torrent = self.torrent(&mut rng);
        Client {
            torrent,
            seeder: rng.f64() < self.seeder_probability,
            // 0 is not a port a peer can be reached on.
            port: rng.u16(1..),
            key: rng.u32(..),
            scrape_len: rng.u32(1..=self.scrape_max_torrents),
            scrape_seed: rng.u64(..),
        }
    }

    /// The torrents `client` scrapes: the same `client.scrape_len` indices
    /// every call, drawn by popularity.
    #[inline]
    pub fn scrape_torrents(&self, client: &Client) -> impl Iterator<Item = u32> + '_ {
        let mut rng = Rng::with_seed(client.scrape_seed);
        (0..client.scrape_len).map(move |_| self.torrent(&mut rng))
    }

    /// The info hashes `client` scrapes, sorted and without repeats (the
    /// set an answer must cover), into `out`.
    pub fn scrape_set(&self, client: &Client, out: &mut Vec<[u8; 20]>) {
        out.clear();
        out.extend(self.scrape_torrents(client).map(|t| {
            let mut hash = [0u8; 20];
            self.info_hash(t, &mut hash);
            hash
        }));
        out.sort_unstable();
        out.dedup();
    }

    /// Writes torrent `index`'s info hash into `out`.
    #[inline]
    pub fn info_hash(&self, index: u32, out: &mut [u8; 20]) {
        // Distinct inputs per (index, word), so hashes cannot collide by
        // construction, only by chance.
        let base = mix64(self.seed ^ 0x6861_7368) ^ (u64::from(index) << 2);
        let a = mix64(base).to_be_bytes();
        let b = mix64(base ^ 1).to_be_bytes();
        let c = mix64(base ^ 2).to_be_bytes();
        out[..8].copy_from_slice(&a);
        out[8..16].copy_from_slice(&b);
        out[16..].copy_from_slice(&c[..4]);
    }

    /// Writes client `index`'s peer id: an Azureus-style client tag, then
    /// the index, so ids are unique and recognisable in tracker logs.
    #[inline]
    pub fn peer_id(&self, index: u32, out: &mut [u8; 20]) {
        out[..8].copy_from_slice(b"-TL0001-");
        out[8..12].copy_from_slice(&index.to_be_bytes());
        out[12..].copy_from_slice(&mix64(self.seed ^ u64::from(index)).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAWS: u32 = 100_000;

    #[test]
    fn request_kinds_follow_the_weights() {
        for (c, a, s) in [(50, 50, 1), (1, 100, 1), (0, 1, 0), (3, 0, 1)] {
            let config = ProfileConfig {
                weight_connect: c,
                weight_announce: a,
                weight_scrape: s,
                ..ProfileConfig::default()
            };
            let profile = Profile::new(&config);
            let mut rng = Rng::with_seed(1);
            let mut counts = [0u32; 3];
            for _ in 0..DRAWS {
                counts[profile.request_kind(&mut rng) as usize] += 1;
            }
            let total = f64::from(c + a + s);
            for (count, weight) in counts.iter().zip([c, a, s]) {
                let want = f64::from(DRAWS) * f64::from(weight) / total;
                let got = f64::from(*count);
                // Five standard deviations of a binomial, and zero means zero.
                let tolerance = 5.0 * want.sqrt() + 1e-9;
                assert!(
                    (got - want).abs() <= tolerance,
                    "weights {c}:{a}:{s}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn popularity_is_skewed_toward_a_hot_head() {
        let profile = Profile::new(&ProfileConfig::default());
        let mut rng = Rng::with_seed(2);
        let hot = profile.popularity.n / 100;
        let mut in_hot = 0u32;
        for _ in 0..DRAWS {
            let t = profile.torrent(&mut rng);
            assert!(t < profile.popularity.n);
            in_hot += u32::from(t < hot);
        }
        let share = f64::from(in_hot) / f64::from(DRAWS);
        // Analytically about 72 %: (1 - e^-5) of the 73 % hot mass.
        assert!(share > 0.65 && share < 0.8, "hottest 1 % got {share}");
        // The head itself is hottest: torrent 0 alone gets a visible share.
        assert!(profile.popularity.hot_share > 0.7);
    }

    #[test]
    fn zero_decay_is_uniform() {
        let config = ProfileConfig {
            torrents: 100,
            popularity_decay: 0.0,
            ..ProfileConfig::default()
        };
        let profile = Profile::new(&config);
        let mut rng = Rng::with_seed(3);
        let mut counts = [0u32; 100];
        for _ in 0..DRAWS {
            counts[profile.torrent(&mut rng) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn tiny_profiles_stay_in_range() {
        let config = ProfileConfig {
            torrents: 1,
            peers: 1,
            scrape_max_torrents: 1,
            ..ProfileConfig::default()
        };
        let profile = Profile::new(&config);
        let mut rng = Rng::with_seed(4);
        for _ in 0..1000 {
            assert_eq!(profile.torrent(&mut rng), 0);
        }
        let client = profile.client(0);
        assert_eq!(client.scrape_len, 1);
        assert_eq!(profile.scrape_torrents(&client).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn scrape_sizes_cover_one_to_max() {
        let profile = Profile::new(&ProfileConfig::default());
        let mut seen = [0u32; 11];
        for index in 0..10_000 {
            let client = profile.client(index);
            assert!((1..=10).contains(&client.scrape_len), "{client:?}");
            seen[client.scrape_len as usize] += 1;
            let torrents: Vec<u32> = profile.scrape_torrents(&client).collect();
            assert_eq!(torrents.len(), client.scrape_len as usize);
            assert!(torrents.iter().all(|&t| t < profile.popularity.n));
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1..].iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn clients_are_stable_and_mostly_seeders() {
        let profile = Profile::new(&ProfileConfig::default());
        let mut seeders = 0u32;
        for index in 0..DRAWS {
            let client = profile.client(index);
            assert_eq!(client, profile.client(index));
            assert_ne!(client.port, 0);
            let a: Vec<u32> = profile.scrape_torrents(&client).collect();
            let b: Vec<u32> = profile.scrape_torrents(&client).collect();
            assert_eq!(a, b);
            seeders += u32::from(client.seeder);
        }
        let share = f64::from(seeders) / f64::from(DRAWS);
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }

    #[test]
    fn info_hashes_and_peer_ids_are_distinct() {
        let profile = Profile::new(&ProfileConfig::default());
        let mut hashes = hashbrown::HashSet::new();
        let mut ids = hashbrown::HashSet::new();
        for i in 0..10_000 {
            let mut h = [0u8; 20];
            profile.info_hash(i, &mut h);
            assert!(hashes.insert(h));
            let mut id = [0u8; 20];
            profile.peer_id(i, &mut id);
            assert!(ids.insert(id));
        }
    }

    #[test]
    fn kinds_without_connect_follow_announce_and_scrape_weights() {
        let profile = Profile::new(&ProfileConfig::default());
        assert!(profile.has_requests_without_connect());
        let mut rng = Rng::with_seed(5);
        let mut scrapes = 0u32;
        for _ in 0..DRAWS {
            match profile.request_kind_without_connect(&mut rng) {
                RequestKind::Connect => panic!("no connects"),
                RequestKind::Announce => {}
                RequestKind::Scrape => scrapes += 1,
            }
        }
        // 1 in 51; five standard deviations.
        let want = f64::from(DRAWS) / 51.0;
        assert!(
            (f64::from(scrapes) - want).abs() < 5.0 * want.sqrt(),
            "{scrapes}"
        );
        let only_connect = Profile::new(&ProfileConfig {
            weight_connect: 1,
            weight_announce: 0,
            weight_scrape: 0,
            ..ProfileConfig::default()
        });
        assert!(!only_connect.has_requests_without_connect());
        assert_eq!(
            only_connect.request_kind_without_connect(&mut rng),
            RequestKind::Announce
        );
    }

    #[test]
    fn client_cycles_partition_the_clients() {
        // 3 connections over 10 clients: each sees its residue class, in turn.
        let mut seen = [0u32; 10];
        for global in 0..3 {
            let mut cycle = ClientCycle::new(global);
            for _ in 0..8 {
                let index = cycle.next(10, 3);
                assert_eq!(index % 3, global);
                seen[index as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n >= 2), "{seen:?}");
        // More connections than clients: they share.
        let mut cycle = ClientCycle::new(12);
        assert_eq!(cycle.next(10, 16), 2);
    }
}
