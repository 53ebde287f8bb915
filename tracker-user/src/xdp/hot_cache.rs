//! The XDP program's hot-torrent cache as a request worker writes it:
//! `HOT_V4` and `HOT_V6`, through this worker's own duplicated map fds, so
//! no two threads share a handle and nothing is locked, one batch call
//! per family for up to `kernel_hot::WRITE_BATCH` entries.

use std::io;
use std::os::fd::OwnedFd;

use tracker_proto::xdp::{HotV4, HotV6};
use tracker_swarm::kernel_hot::HotSink;

use super::batch_map::BatchMap;

pub struct HotCache {
    v4: BatchMap<HotV4>,
    v6: BatchMap<HotV6>,
    /// Failed calls so far, logged at the first and then every 1024th:
    /// a full or vanished map must not flood the log every refresh.
    failures: u64,
}

impl HotCache {
    pub fn new(v4: OwnedFd, v6: OwnedFd) -> Self {
        Self {
            v4: BatchMap::new(v4, "HOT_V4"),
            v6: BatchMap::new(v6, "HOT_V6"),
            failures: 0,
        }
    }

    fn check(&mut self, what: &str, result: io::Result<()>) {
        let Err(e) = result else {
            return;
        };
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
    fn put(&mut self, keys: &[[u8; 20]], v4: &[HotV4], v6: &[HotV6]) {
        // IPv6 first: a reader between the two writes then finds the new
        // IPv6 answer beside the old IPv4 one, both whole.
        let result = self.v6.update(keys, v6);
        self.check("writing HOT_V6", result);
        let result = self.v4.update(keys, v4);
        self.check("writing HOT_V4", result);
    }

    fn remove(&mut self, keys: &[[u8; 20]]) {
        let result = self.v4.delete(keys);
        self.check("deleting from HOT_V4", result);
        let result = self.v6.delete(keys);
        self.check("deleting from HOT_V6", result);
    }
}
