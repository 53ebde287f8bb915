//! Announces for hot torrents answered in the kernel from the pools
//! userland caches in `HOT_V4`/`HOT_V6`, their effect handed to userland
//! through the `ANNOUNCED` ring.
//!
//! By default only a plain announce with event "none" is answered here:
//! the periodic re-announce that makes up almost all of a real popular
//! torrent's traffic. Started and completed change a torrent's counts (and
//! completed its download tally); answering them from a cache up to
//! `kernel_refresh_ms` old reports counts that leave out the very event
//! answered, so they go to userland unless `announce_events` says
//! otherwise. Their effect is exact either way: the ring record carries
//! the event, and the request worker owning the torrent applies it once.
//! Stopped always goes to userland, which drops the peer at once. A port
//! of 0 goes there too: userland refuses it with its BEP 15 error.
//!
//! The ring record is reserved before the frame is touched: if the ring is
//! full the announce goes to AF_XDP as it would without this cache, so no
//! announce is ever lost, only answered the slower way.

use aya_ebpf::{
    bindings::{xdp_md, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_prandom_u32,
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use tracker_proto::net::checksum;
use tracker_proto::AnnounceEvent;
use tracker_proto::udp::{ACTION_ANNOUNCE, ANNOUNCE_REQUEST_LEN, ANNOUNCE_RESPONSE_HEADER_LEN};
use tracker_proto::xdp::{
    counter, ConnectState, HotCounts, HotV4, HotV6, KernelAnnounce, HOT_POOL_MAX, MAP_ANNOUNCED,
    MAP_HOT_V4, MAP_HOT_V6, RING_RECORD_BYTES, RING_WAKE_RECORDS,
};

use crate::frame::{count, load, load_mut};
use crate::reply::{self, Request};
use crate::{str_eq, Ip, Located};

const _: () = assert!(str_eq(MAP_HOT_V4, "HOT_V4"));
const _: () = assert!(str_eq(MAP_HOT_V6, "HOT_V6"));
const _: () = assert!(str_eq(MAP_ANNOUNCED, "ANNOUNCED"));

const EVENT_NONE: u32 = AnnounceEvent::None.to_udp();
const EVENT_COMPLETED: u32 = AnnounceEvent::Completed.to_udp();
const EVENT_STARTED: u32 = AnnounceEvent::Started.to_udp();

// Sizes are placeholders: the loader sets them from `[xdp] hot_torrents`
// and `ring_bytes` before the maps are created.
#[map]
static HOT_V4: HashMap<[u8; 20], HotV4> = HashMap::with_max_entries(1, 0);

#[map]
static HOT_V6: HashMap<[u8; 20], HotV6> = HashMap::with_max_entries(1, 0);

/// One `u64` per CPU that the peer loop passes values through, so the
/// verifier takes them as any value (see there).
#[map]
static SCRATCH: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static ANNOUNCED: RingBuf = RingBuf::with_byte_size(4096, 0);

/// The announce request's fields by offset (BEP 15).
mod at {
    pub const INFO_HASH: usize = 16;
    pub const PEER_ID: usize = 36;
    pub const LEFT: usize = 64;
    pub const EVENT: usize = 80;
    pub const KEY: usize = 88;
    pub const NUM_WANT: usize = 92;
    pub const PORT: usize = 96;
}

/// Answers the announce at `at` (its connection id already checked) in
/// place, or returns false leaving the frame untouched for userland.
#[inline(always)]
pub fn answer(ctx: &mut XdpContext, at: &Located) -> bool {
    let ip = match at.ip {
        Ip::V4 { simple: true } => IP_V4,
        Ip::V4 { simple: false } => return false,
        Ip::V6 => IP_V6,
    };
    tracker_announce(ctx.ctx, ip, at.l3 as u64, at.l4 as u64, at.udp_len as u64) != 0
}

const IP_V4: u32 = 4;
const IP_V6: u32 = 6;

/// The announce answer as a global BPF function: the verifier checks a
/// global function once, on its own, where it walks a static one again
/// for every distinct state it is called in (each VLAN depth, IP version
/// and header length reaching it), which took the peer loop past the
/// verifier's million-instruction budget. The price: a global function
/// knows nothing of its caller, so it takes plain numbers and bounds the
/// offsets itself.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracker_announce(
    ctx: *mut xdp_md,
    ip: u32,
    l3: u64,
    l4: u64,
    udp_len: u64,
) -> u32 {
    let ip = match ip {
        IP_V4 => Ip::V4 { simple: true },
        IP_V6 => Ip::V6,
        _ => return 0,
    };
    let Some(state) = crate::CONNECT.get(0) else {
        return 0;
    };
    let mut ctx = XdpContext::new(ctx);
    // Headers end within the first 256 bytes (two VLAN tags and a 60-byte
    // IPv4 header at most); the masks change nothing but give the verifier
    // the bounds the caller had.
    let at = Located {
        ip,
        l3: (l3 & 0xff) as usize,
        l4: (l4 & 0xff) as usize,
        udp_len: (udp_len & 0xffff) as usize,
    };
    let mut req = core::mem::MaybeUninit::uninit();
    if !crate::request_at(&ctx, &at, &mut req) {
        return 0;
    }
    // SAFETY: `request_at` returned true, so it wrote `req`.
    let req = unsafe { req.assume_init() };
    let mut fields = Fields::default();
    if !parse(&ctx, state, &req, &mut fields) {
        return 0;
    }
    let answered = match req.ip {
        Ip::V4 { .. } => answer_from::<6, HotV4>(&mut ctx, state, &req, &fields),
        Ip::V6 => answer_from::<18, HotV6>(&mut ctx, state, &req, &fields),
    };
    u32::from(answered.is_some())
}

/// What the answer takes from the request, if it is one to answer here.
/// A frame of its own, like `answer_from`'s: the kernel allows 512
/// bytes of stack per call chain, and these do not nest.
#[inline(never)]
fn parse(ctx: &XdpContext, state: &ConnectState, req: &Request, out: &mut Fields) -> bool {
    // BEP 41 options would have to reach userland; and a shorter datagram
    // is not an announce at all.
    if req.udp_len != tracker_proto::net::udp::HEADER_LEN + ANNOUNCE_REQUEST_LEN {
        return false;
    }
    let base = req.payload();
    // The checksum first, with nothing else live: values read before it
    // would be spilled across its 49 additions.
    let Some(request) = load::<ANNOUNCE_REQUEST_LEN>(ctx, base) else {
        return false;
    };
    if !req.checksum_ok(ctx, checksum::sum_words(0, request)) {
        return false;
    }
    let Some(request) = load::<ANNOUNCE_REQUEST_LEN>(ctx, base) else {
        return false;
    };
    let word = |at: usize| {
        u32::from_be_bytes([
            request[at],
            request[at + 1],
            request[at + 2],
            request[at + 3],
        ])
    };
    let port = u16::from_be_bytes([request[at::PORT], request[at::PORT + 1]]);
    let event = word(at::EVENT);
    let event_ok = event == EVENT_NONE
        || (state.announce_events != 0 && (event == EVENT_COMPLETED || event == EVENT_STARTED));
    if !event_ok || port == 0 {
        return false;
    }
    out.event = event as u8;
    let num_want = word(at::NUM_WANT) as i32;
    out.wanted = if num_want <= 0 {
        state.default_numwant
    } else {
        num_want as u32
    }
    .min(state.max_numwant);
    out.port = port;
    out.left = (u64::from(word(at::LEFT)) << 32) | u64::from(word(at::LEFT + 4));
    out.key = word(at::KEY);
    out.txid = [request[12], request[13], request[14], request[15]];
    true
}

/// A hot-cache entry of either family, with peers of `N` bytes.
trait HotEntry<const N: usize>: 'static {
    /// The entry for `info_hash` in this family's map.
    fn lookup(info_hash: &[u8; 20]) -> Option<&'static Self>;
    fn counts(&self) -> &HotCounts;
    fn peers(&self) -> &[[u8; N]; HOT_POOL_MAX];
}

impl HotEntry<6> for HotV4 {
    #[inline(always)]
    fn lookup(info_hash: &[u8; 20]) -> Option<&'static Self> {
        // SAFETY: the value stays valid while the program runs (RCU);
        // userland replacing it meanwhile yields an older or newer copy,
        // either of which is a whole answer.
        unsafe { HOT_V4.get(info_hash) }
    }
    fn counts(&self) -> &HotCounts {
        &self.counts
    }
    fn peers(&self) -> &[[u8; 6]; HOT_POOL_MAX] {
        &self.peers
    }
}

impl HotEntry<18> for HotV6 {
    #[inline(always)]
    fn lookup(info_hash: &[u8; 20]) -> Option<&'static Self> {
        // SAFETY: as for `HotV4`.
        unsafe { HOT_V6.get(info_hash) }
    }
    fn counts(&self) -> &HotCounts {
        &self.counts
    }
    fn peers(&self) -> &[[u8; 18]; HOT_POOL_MAX] {
        &self.peers
    }
}

// One frame per family (one instance each), each called on its own:
// inlined together, their register spills did not share stack slots and
// passed the kernel's 512 bytes per call chain.
#[inline(never)]
fn answer_from<const N: usize, E: HotEntry<N>>(
    ctx: &mut XdpContext,
    state: &ConnectState,
    req: &Request,
    fields: &Fields,
) -> Option<()> {
    let info_hash = load::<20>(ctx, req.payload() + at::INFO_HASH)?;
    let Some(hot) = E::lookup(info_hash) else {
        count(counter::HOT_MISS);
        return None;
    };
    count(counter::HOT_HIT);
    with_record(ctx, req, fields, |ctx, txid| {
        write_answer(
            ctx,
            state,
            req,
            txid,
            hot.counts(),
            hot.peers(),
            fields.port,
            fields.wanted,
        )
    })
}

/// Reserves the ring record, runs `answer` and submits the record only if
/// the answer was written; every path releases the reservation, as the
/// verifier demands.
#[inline(always)]
fn with_record(
    ctx: &mut XdpContext,
    req: &Request,
    fields: &Fields,
    answer: impl FnOnce(&mut XdpContext, [u8; 4]) -> Option<()>,
) -> Option<()> {
    // The frame is still the request's: its hashes are copied from there.
    let base = req.payload();
    let info_hash = load::<20>(ctx, base + at::INFO_HASH)?.as_ptr();
    let peer_id = load::<20>(ctx, base + at::PEER_ID)?.as_ptr();
    let Some(mut entry) = ANNOUNCED.reserve::<KernelAnnounce>(0) else {
        count(counter::RING_FULL);
        return None;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved ring slot, sized and aligned
    // for a `KernelAnnounce`; every field is written (there is no padding),
    // field by field so no 72-byte copy lands on the BPF stack, and the
    // address straight from `req` (a byte array assembled first would
    // spill a register per byte).
    unsafe {
        (&raw mut (*record).left).write(fields.left);
        copy_bytes::<20>(info_hash, (&raw mut (*record).info_hash).cast());
        copy_bytes::<20>(peer_id, (&raw mut (*record).peer_id).cast());
        let ip = (&raw mut (*record).ip).cast::<u8>();
        match req.ip {
            Ip::V4 { .. } => {
                ip.write_bytes(0, 16);
                core::ptr::copy_nonoverlapping(req.client.as_ptr().add(12), ip, 4);
                (&raw mut (*record).family).write(4);
            }
            Ip::V6 => {
                core::ptr::copy_nonoverlapping(req.client.as_ptr(), ip, 16);
                (&raw mut (*record).family).write(6);
            }
        }
        (&raw mut (*record).key).write(fields.key);
        (&raw mut (*record).port).write(fields.port);
        (&raw mut (*record).event).write(fields.event);
    }
    if answer(ctx, fields.txid).is_some() {
        // Its own record included: what the reader has yet to take. The
        // reader is woken once, by the record that crosses the mark: one
        // that finds more waiting has been preceded by that one, and a
        // wakeup per record costs an interrupt each (an APIC write, a VM
        // exit under a hypervisor).
        let waiting = ANNOUNCED.query(u64::from(BPF_RB_AVAIL_DATA));
        let mark = RING_WAKE_RECORDS * RING_RECORD_BYTES;
        let wake = if waiting >= mark && waiting < mark + RING_RECORD_BYTES {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        entry.submit(u64::from(wake));
        Some(())
    } else {
        entry.discard(u64::from(BPF_RB_NO_WAKEUP));
        None
    }
}

/// Copies `N` bytes one at a time, volatile so the compiler neither calls
/// `memcpy` (a subprogram with a loop the verifier walks) nor gathers the
/// bytes in registers it must spill.
///
/// # Safety
/// `src` and `dst` must be valid for `N` bytes.
#[inline(always)]
unsafe fn copy_bytes<const N: usize>(src: *const u8, dst: *mut u8) {
    let mut i = 0;
    while i < N {
        // SAFETY: `i < N`, as the caller promised.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
}

/// What the ring record and the response take from the request, apart
/// from the info hash and peer id, which stay in the frame until the ring
/// record is filled (the BPF stack is 512 bytes for the whole call chain).
#[derive(Default)]
struct Fields {
    left: u64,
    key: u32,
    txid: [u8; 4],
    /// The announced port, host order (never 0 here).
    port: u16,
    /// Peers to send, before the pool's size caps it.
    wanted: u32,
    /// BEP 15 event: none, or (with `announce_events`) completed or started.
    event: u8,
}

/// Writes the announce response over the request: header, then up to
/// `wanted` peers of `pool` from a random offset, skipping the requester
/// (its address at `port`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn write_answer<const N: usize>(
    ctx: &mut XdpContext,
    state: &ConnectState,
    req: &Request,
    txid: [u8; 4],
    counts: &HotCounts,
    pool: &[[u8; N]; HOT_POOL_MAX],
    port: u16,
    wanted: u32,
) -> Option<()> {
    let len = (counts.len as usize).min(HOT_POOL_MAX);
    let k = (wanted as usize).min(len);
    let me = client_key::<N>(&req.client, port);
    let mut payload_len = ANNOUNCE_RESPONSE_HEADER_LEN + k * N;
    reply::resize(ctx, req, payload_len)?;

    // Written a field at a time and summed arithmetically: a 20-byte
    // array assembled byte by byte would spill each byte to the stack.
    let base = req.payload();
    let leechers = u32::from_be_bytes(counts.leechers_be);
    let seeders = u32::from_be_bytes(counts.seeders_be);
    let txid = u32::from_be_bytes(txid);
    let mut sum = 0u32;
    for (at, value) in [
        (0, ACTION_ANNOUNCE),
        (4, txid),
        (8, state.interval),
        (12, leechers),
        (16, seeders),
    ] {
        *load_mut::<4>(ctx, base + at)? = value.to_be_bytes();
        sum += (value >> 16) + (value & 0xffff);
    }

    let mut written = 0usize;
    if k > 0 && len > 0 {
        // SAFETY: a helper without arguments or side effects on our state.
        let random = unsafe { bpf_get_prandom_u32() } as usize;
        let cell = SCRATCH.get_ptr_mut(0)?;
        // In 0..len, by multiplication: the verifier cannot bound `%`.
        let start = ((random & 0xffff) * len) >> 16;
        // Each pool entry at most once, so no peer is handed out twice.
        // The body does not branch on what it reads: the verifier walks
        // every iteration, and a branch per peer (skip the requester or
        // not, wrap or not) doubles the paths it walks at each one, past
        // its million-instruction budget. So every entry is written at
        // `written`, which then advances only past one that is not the
        // requester (and the requester, if written last, is cut off below).
        for step in 0..HOT_POOL_MAX {
            if step >= len || written >= k {
                break;
            }
            let entry = pool.get(pool_index(start + step, len, cell))?;
            let out = load_mut::<N>(ctx, base + ANNOUNCE_RESPONSE_HEADER_LEN + written * N)?;
            let (key, words) = copy_peer(out, entry);
            let keep = differ(cell, key, me);
            let mask = (keep as u32).wrapping_neg();
            // Both through map memory, whose loads the verifier takes as
            // any value: it then bounds the count by the checks above
            // instead of tracking it exactly, and the two ways through
            // this iteration (requester or not) reach the next with equal
            // states, which it prunes, instead of doubling at every peer.
            // SAFETY: `cell` is this CPU's slot of SCRATCH, valid for the
            // program's run and touched by nothing else meanwhile.
            unsafe {
                core::ptr::write_volatile(cell, u64::from(sum + (words & mask)));
                sum = core::ptr::read_volatile(cell) as u32;
                core::ptr::write_volatile(cell, (written + keep) as u64);
                written = core::ptr::read_volatile(cell) as usize;
            }
        }
    }
    // The requester was in the pool and every other peer fit: one short.
    if written < k {
        payload_len = ANNOUNCE_RESPONSE_HEADER_LEN + written * N;
        reply::resize(ctx, req, payload_len)?;
    }
    reply::finish(ctx, req, payload_len, sum)
}

/// Copies a compact peer into the frame, returning a key for finding
/// the requester (address and port folded into integers) and
/// the sum of its 16-bit words. One pass, byte by byte, volatile: the
/// compiler would otherwise hoist all the loads ahead of the stores (and
/// spill them), or call `memcpy`, whose loop the verifier walks anew for
/// every peer.
#[inline(always)]
fn copy_peer<const N: usize>(out: &mut [u8; N], entry: &[u8; N]) -> ((u64, u64, u64), u32) {
    // Word by word, each word's bytes read, written and folded before the
    // next, so few values are live; the conditions depend only on the
    // constant word index, so the verifier walks one path.
    let words = N / 2;
    let addr_words = words - 1;
    let (mut high, mut low, mut port) = (0u64, 0u64, 0u64);
    let mut sum = 0u32;
    let mut w = 0;
    while w < words {
        let i = 2 * w;
        // SAFETY: `i + 1 < N`, within both arrays.
        let word = unsafe {
            let a = core::ptr::read_volatile(entry.as_ptr().add(i));
            let b = core::ptr::read_volatile(entry.as_ptr().add(i + 1));
            core::ptr::write_volatile(out.as_mut_ptr().add(i), a);
            core::ptr::write_volatile(out.as_mut_ptr().add(i + 1), b);
            (u32::from(a) << 8) | u32::from(b)
        };
        sum += word;
        let v = u64::from(word);
        if w + 4 < addr_words {
            high = (high << 16) | v;
        } else if w < addr_words {
            low = (low << 16) | v;
        } else {
            port = v;
        }
        w += 1;
    }
    ((high, low, port), sum)
}

/// `pos` (below `2 * len`) wrapped into the pool without a branch (see
/// the peer loop), then masked into the array. The value passes through
/// map memory first, like the loop's count: the compiler would otherwise
/// drop the mask as changing nothing, and the verifier would track each
/// iteration's exact index and walk every iteration as a new state.
#[inline(always)]
fn pool_index(pos: usize, len: usize, cell: *mut u64) -> usize {
    let pos = through(cell, pos as u64);
    let len = through(cell, len as u64);
    // The top bit of `pos - len` is set when `pos < len` (both are small).
    let inside = pos.wrapping_sub(len) >> 63;
    let wrapped = pos.wrapping_sub((inside ^ 1).wrapping_mul(len));
    through(cell, wrapped) as usize & (HOT_POOL_MAX - 1)
}

/// `value` after a round trip through map memory, which hides it from
/// both the compiler (which would otherwise turn the arithmetic on it back
/// into comparisons, that is branches) and the verifier (which then takes
/// it as any value, bounded by the checks that follow).
#[inline(always)]
fn through(cell: *mut u64, value: u64) -> u64 {
    // SAFETY: `cell` is this CPU's SCRATCH slot, valid for the program's
    // run and used by nothing else between this write and read.
    unsafe {
        core::ptr::write_volatile(cell, value);
        core::ptr::read_volatile(cell)
    }
}

const _: () = assert!(HOT_POOL_MAX.is_power_of_two());

/// 1 when two peer keys differ, 0 when equal, as arithmetic: a branch here
/// would double the verifier's paths at every peer (see the peer loop).
#[inline(always)]
fn differ(cell: *mut u64, a: (u64, u64, u64), b: (u64, u64, u64)) -> usize {
    let diff = through(cell, (a.0 ^ b.0) | (a.1 ^ b.1) | (a.2 ^ b.2));
    // Set bits, 0..=64; 63 more carries any of them into bit 6.
    ((u64::from(diff.count_ones()) + 63) >> 6) as usize
}

/// The key [`copy_peer`] returns, of the requester: `client` (IPv4 mapped, as
/// `Request::client`) at `port`.
#[inline(always)]
fn client_key<const N: usize>(client: &[u8; 16], port: u16) -> (u64, u64, u64) {
    let addr_words = N / 2 - 1;
    let (mut high, mut low) = (0u64, 0u64);
    let mut w = 0;
    while w < addr_words {
        let i = 16 - 2 * addr_words + 2 * w;
        let v = (u64::from(client[i]) << 8) | u64::from(client[i + 1]);
        if w + 4 < addr_words {
            high = (high << 16) | v;
        } else {
            low = (low << 16) | v;
        }
        w += 1;
    }
    (high, low, u64::from(port))
}
