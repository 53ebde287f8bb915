//! Interoperability: two `bittorrent-tracker` (npm) clients find each other
//! through the tracker and scrape it.
//!
//! Needs `node` and `npm`; installs `tests/npm-clients/node_modules` on
//! first use (`npm install`, from package-lock.json).

mod common;

use common::*;

#[test]
fn two_npm_clients_find_each_other_and_scrape() {
    let t = Tracker::start_v4();
    let url = format!("udp://127.0.0.1:{}", t.addr().port());
    npm::check_two_clients(&url, "127.0.0.1", None, &t);
}
