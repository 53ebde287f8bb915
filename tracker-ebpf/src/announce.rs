//! Announces for hot torrents answered in the kernel from the pools
//! userland caches in `HOT_V4`/`HOT_V6`, their effect handed to userland
//! through the `ANNOUNCED` ring. (Being built: until then every announce
//! goes to userland.)

use aya_ebpf::programs::XdpContext;
use tracker_proto::xdp::ConnectState;

use crate::reply::Request;

/// Answers the announce in `req` in place, or returns `None` leaving the
/// frame untouched for userland.
#[inline(always)]
pub fn answer(_ctx: &mut XdpContext, _state: &ConnectState, _req: &Request) -> Option<()> {
    None
}
