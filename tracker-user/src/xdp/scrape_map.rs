//! The request workers' handle on the program's `SCRAPE` map, written in
//! batches of changed counts (see tracker-swarm's `kernel_scrape`).

use std::io;

use tracker_proto::xdp::ScrapeEntry;
use tracker_swarm::ScrapeSink;

use super::batch_map::BatchMap;

pub type ScrapeMap = BatchMap<ScrapeEntry>;

impl ScrapeSink for ScrapeMap {
    fn update(&mut self, keys: &[[u8; 20]], values: &[ScrapeEntry]) -> io::Result<()> {
        BatchMap::update(self, keys, values)
    }

    fn delete(&mut self, keys: &[[u8; 20]]) -> io::Result<()> {
        BatchMap::delete(self, keys)
    }
}
