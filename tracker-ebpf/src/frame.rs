//! Bounds-checked access to the frame and the per-CPU counters, shared by
//! every answer the program gives.

use core::ptr;

use aya_ebpf::programs::XdpContext;

use crate::COUNTERS;

/// The `N` bytes at `offset` into the frame, if the frame holds all of
/// them. Every packet read goes through here: the verifier rejects any
/// load it has not seen bounded by `data_end`.
#[inline(always)]
pub fn load<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<&[u8; N]> {
    let start = in_frame::<N>(ctx, offset)?;
    // SAFETY: `in_frame` put all N bytes between `data` and `data_end`,
    // which the kernel keeps valid for the program's run; a byte array has
    // alignment 1. Writes need `&mut XdpContext` (`load_mut`), so none
    // happens while this shared borrow of `ctx` lives.
    Some(unsafe { &*(start as *const [u8; N]) })
}

/// [`load`] for writing. Borrowing `ctx` mutably keeps any other view of
/// the frame from being alive at the same time.
#[inline(always)]
pub fn load_mut<const N: usize>(ctx: &mut XdpContext, offset: usize) -> Option<&mut [u8; N]> {
    let start = in_frame::<N>(ctx, offset)?;
    // SAFETY: as in `load`; XDP frames are writable, and the unique borrow
    // of `ctx` makes this the only reference into the frame.
    Some(unsafe { &mut *(start as *mut [u8; N]) })
}

/// The address of the `N` bytes at `offset`, if the frame holds them.
#[inline(always)]
pub fn in_frame<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<usize> {
    let (start, end) = frame(ctx);
    if start + offset + N > end {
        return None;
    }
    Some(start + offset)
}

/// The frame's start and end addresses. Read volatile so that each bounds
/// check starts from fresh loads: otherwise LLVM proves a later check
/// redundant from an earlier one and drops it, then rebuilds the pointer
/// from a reload of `data` that the verifier has never seen checked.
#[inline(always)]
pub fn frame(ctx: &XdpContext) -> (usize, usize) {
    // SAFETY: `ctx.ctx` is the kernel's `xdp_md` for this run, valid and
    // readable throughout; volatile only keeps LLVM from merging loads.
    unsafe {
        (
            ptr::read_volatile(&raw const (*ctx.ctx).data) as usize,
            ptr::read_volatile(&raw const (*ctx.ctx).data_end) as usize,
        )
    }
}

#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    let (start, end) = frame(ctx);
    end - start
}

#[inline(always)]
pub fn count(index: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a valid map value pointer; per-CPU, so nothing else
        // writes this slot concurrently.
        unsafe { *value += 1 };
    }
}
