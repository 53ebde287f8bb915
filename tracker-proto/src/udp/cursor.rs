//! Bounds-checked big-endian cursors that the request and response codecs
//! read and write packets with.

use super::BufferTooSmall;

/// Big-endian reads off the front of a slice; `None` once it runs out.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(super) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(super) fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    pub(super) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Sequential writes into an output buffer. The total length is checked up
/// front so that a too-small buffer is left untouched; each write is still
/// bounds-checked, so a length miscalculation becomes an error, not a panic.
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut [u8], total: usize) -> Result<Self, BufferTooSmall> {
        if buf.len() < total {
            return Err(BufferTooSmall);
        }
        Ok(Writer { buf, pos: 0 })
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(super) fn u16(&mut self, v: u16) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn u32(&mut self, v: u32) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn i32(&mut self, v: i32) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn u64(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn finish(self) -> usize {
        self.pos
    }
}
