//! Scrapes answered in the kernel from the counts userland publishes in
//! `SCRAPE`: a scrape whose every hash is there is answered in place (the
//! answer, 12 bytes per hash, is shorter than the request's 20); one with
//! any hash missing goes to userland untouched, so the kernel never makes
//! up a count it does not have.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use tracker_proto::net::checksum::sum_words;
use tracker_proto::udp::{
    ACTION_SCRAPE, SCRAPE_REQUEST_HEADER_LEN, SCRAPE_RESPONSE_HEADER_LEN, SCRAPE_STATS_LEN,
};
use tracker_proto::xdp::{
    counter, ConnectState, ScrapeEntry, MAP_SCRAPE, MAP_SCRAPE_SCRATCH,
    SCRAPE_MAX_HASHES as MAX_HASHES,
};

use crate::frame::{count, load, load_mut};
use crate::reply::{self, Request};
use crate::str_eq;

const _: () = assert!(str_eq(MAP_SCRAPE, "SCRAPE"));
const _: () = assert!(str_eq(MAP_SCRAPE_SCRATCH, "SCRAPE_SCRATCH"));
const _: () = assert!(str_eq(
    tracker_proto::xdp::GLOBAL_SCRAPE_MAX_HASHES,
    "SCRAPE_MAX_HASHES"
));

const HASH_LEN: usize = 20;

/// Sized at load from `[xdp] scrape_map_entries`; LRU, so a full map
/// evicts the least recently scraped or published torrent, whose next
/// scrape then goes to userland.
#[map]
static SCRAPE: LruHashMap<[u8; HASH_LEN], ScrapeEntry> = LruHashMap::with_max_entries(1, 0);

/// Each hash's entry, copied here while every hash is looked up, so the
/// answer is written only once all are found, from values read once.
#[map]
static SCRAPE_SCRATCH: PerCpuArray<[[u8; SCRAPE_STATS_LEN]; MAX_HASHES]> =
    PerCpuArray::with_max_entries(1, 0);

/// `udp.max_scrape_torrents`, set by the loader: userland answers only
/// that many hashes, so a longer scrape is left to it.
#[unsafe(no_mangle)]
static SCRAPE_MAX_HASHES: u32 = MAX_HASHES as u32;

/// Answers the scrape in `req` in place, or returns `None` leaving the
/// frame untouched for userland.
/// Not inlined: its frame would otherwise sit in `answer_request`'s, under
/// the calls that function makes, and the kernel allows 512 bytes of stack
/// for a whole call chain.
#[inline(never)]
pub fn answer(ctx: &mut XdpContext, state: &ConnectState, req: &Request) -> Option<()> {
    if state.scrape == 0 {
        return None;
    }
    // SAFETY: a plain read of a global the loader may have rewritten;
    // volatile so the compiler does not fold in the default.
    let cap = unsafe { core::ptr::read_volatile(&raw const SCRAPE_MAX_HASHES) } as usize;
    let hashes_len = req
        .udp_len
        .checked_sub(tracker_proto::net::udp::HEADER_LEN + SCRAPE_REQUEST_HEADER_LEN)?;
    let n = hashes_len / HASH_LEN;
    // Trailing bytes are something userland must judge; more hashes than
    // it answers would get a longer answer here than there.
    if n == 0 || hashes_len % HASH_LEN != 0 || n > cap || n > MAX_HASHES {
        return None;
    }
    let payload = req.payload();
    let head: &[u8; SCRAPE_REQUEST_HEADER_LEN] = load(ctx, payload)?;
    let transaction = [head[12], head[13], head[14], head[15]];
    let mut request_sum = sum_words(0, head);

    let scratch = SCRAPE_SCRATCH.get_ptr_mut(0)?;
    let mut answer_sum = 0u32;
    for i in 0..MAX_HASHES {
        if i >= n {
            break;
        }
        let offset = payload + SCRAPE_REQUEST_HEADER_LEN + HASH_LEN * i;
        let hash: [u8; HASH_LEN] = *load::<HASH_LEN>(ctx, offset)?;
        request_sum = sum_words(request_sum, &hash);
        // SAFETY: the value is only copied out, within this run, under the
        // RCU read lock the program runs in.
        let Some(entry) = (unsafe { SCRAPE.get(&hash) }) else {
            count(counter::SCRAPE_MISS);
            return None;
        };
        let wire = entry.wire;
        answer_sum = sum_words(answer_sum, &wire);
        // SAFETY: a valid per-CPU map value; this CPU's program run is its
        // only user, and `i` is below the array's length.
        unsafe { (*scratch)[i] = wire };
    }
    // Only what the kernel's UDP stack would have accepted is answered.
    if !req.checksum_ok(ctx, request_sum) {
        return None;
    }

    let answer_len = SCRAPE_RESPONSE_HEADER_LEN + SCRAPE_STATS_LEN * n;
    // Shrinking first: every hash is read already, and a failed resize
    // leaves the frame as it was.
    reply::resize(ctx, req, answer_len)?;
    let action = ACTION_SCRAPE.to_be_bytes();
    let header = [
        action[0],
        action[1],
        action[2],
        action[3],
        transaction[0],
        transaction[1],
        transaction[2],
        transaction[3],
    ];
    answer_sum = sum_words(answer_sum, &header);
    *load_mut::<SCRAPE_RESPONSE_HEADER_LEN>(ctx, payload)? = header;
    for i in 0..MAX_HASHES {
        if i >= n {
            break;
        }
        let offset = payload + SCRAPE_RESPONSE_HEADER_LEN + SCRAPE_STATS_LEN * i;
        // SAFETY: as above; filled for every i < n by the loop before.
        let wire = unsafe { (*scratch)[i] };
        *load_mut::<SCRAPE_STATS_LEN>(ctx, offset)? = wire;
    }
    reply::finish(ctx, req, answer_len, answer_sum)
}
