//! The XDP program's hot-torrent cache as a request worker writes it:
//! `HOT_V4` and `HOT_V6`, through this worker's own duplicated map fds, so
//! no two threads share a handle and nothing is locked.

use aya::maps::{HashMap, MapData};
use tracker_proto::xdp::{HotV4, HotV6};
use tracker_proto::InfoHash;
use tracker_swarm::kernel_hot::HotSink;

pub struct HotCache {
    v4: HashMap<MapData, [u8; 20], HotV4>,
    v6: HashMap<MapData, [u8; 20], HotV6>,
    /// Failed writes so far, logged at the first and then every 1024th:
    /// a full or vanished map must not flood the log every refresh.
    failures: u64,
}

impl HotCache {
    pub fn new(v4: MapData, v6: MapData) -> anyhow::Result<Self> {
        Ok(Self {
            v4: HashMap::try_from(aya::maps::Map::HashMap(v4))?,
            v6: HashMap::try_from(aya::maps::Map::HashMap(v6))?,
            failures: 0,
        })
    }

    fn failed(&mut self, what: &str, e: aya::maps::MapError) {
        if self.failures.is_multiple_of(1024) {
            log::warn!(
                "hot-torrent cache: {what} failed ({} failures so far; those announces \
                 are answered by userland): {e}",
                self.failures + 1
            );
        }
        self.failures += 1;
    }
}

impl HotSink for HotCache {
    fn put(&mut self, info_hash: &InfoHash, v4: &HotV4, v6: &HotV6) {
        // IPv6 first: a reader between the two writes then finds the new
        // IPv6 answer beside the old IPv4 one, both whole.
        if let Err(e) = self.v6.insert(info_hash.0, v6, 0) {
            self.failed("writing HOT_V6", e);
        }
        if let Err(e) = self.v4.insert(info_hash.0, v4, 0) {
            self.failed("writing HOT_V4", e);
        }
    }

    fn remove(&mut self, info_hash: &InfoHash) {
        // Absent is fine: a write that failed left nothing to delete.
        let _ = self.v4.remove(&info_hash.0);
        let _ = self.v6.remove(&info_hash.0);
    }
}
