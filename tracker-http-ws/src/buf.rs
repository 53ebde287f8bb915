//! The outgoing byte queue of one connection: what is waiting for the
//! socket (or for rustls), bounded so that a peer that does not read cannot
//! make the tracker hold its messages without limit.

/// Spare capacity kept after a connection's queue drains; more is given
/// back, so one large answer (a full scrape) does not pin memory forever.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes waiting to be written, in order. Appends that would take it past
/// its limit are refused and mark it overflowed, for good: the connection
/// is then closed rather than sent a stream with a hole in it.
#[derive(Debug)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    limit: usize,
    overflowed: bool,
}

impl OutBuf {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            limit,
            overflowed: false,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub(crate) fn data(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Marks `n` bytes from the front as written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        }
    }

    /// Whether `extra` more bytes fit under the limit.
    fn room_for(&self, extra: usize) -> bool {
        !self.overflowed && self.len().saturating_add(extra) <= self.limit
    }

    /// Makes room at the end by moving the unwritten bytes to the front
    /// when more than half the buffer is already written.
    fn compact(&mut self) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Appends `bytes` whole, or nothing and marks the queue overflowed.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> bool {
        if !self.room_for(bytes.len()) {
            self.overflowed = true;
            return false;
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Appends `parts` back to back, all or nothing.
    pub(crate) fn push_all(&mut self, parts: &[&[u8]]) -> bool {
        let total = parts
            .iter()
            .map(|p| p.len())
            .fold(0usize, usize::saturating_add);
        if !self.room_for(total) {
            self.overflowed = true;
            return false;
        }
        self.compact();
        self.buf.reserve(total);
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        true
    }

    /// Whether a text frame of `payload_len` bytes fits the limit at all,
    /// even with nothing else queued.
    pub(crate) fn could_ever_hold_ws_text(&self, payload_len: usize) -> bool {
        payload_len.saturating_add(10) <= self.limit
    }

    /// Appends one unfragmented, unmasked WebSocket text frame (the form a
    /// server sends) carrying `payload`.
    pub(crate) fn push_ws_text(&mut self, payload: &[u8]) -> bool {
        let mut header = [0u8; 10];
        let len = ws_text_header(&mut header, payload.len());
        self.push_all(&[&header[..len], payload])
    }
}

/// Writes the header of a final, unmasked text frame of `payload_len`
/// bytes into `out` (RFC 6455 section 5.2) and returns its length.
pub(crate) fn ws_text_header(out: &mut [u8; 10], payload_len: usize) -> usize {
    // FIN and opcode 1 (text).
    out[0] = 0x81;
    if payload_len < 126 {
        out[1] = payload_len as u8;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_sticky() {
        let mut q = OutBuf::new(10);
        assert!(q.push(b"12345"));
        assert!(q.push(b"67890"));
        assert_eq!(q.len(), 10);
        assert!(!q.push(b"x"), "one byte over the limit is refused");
        assert!(q.overflowed());
        assert_eq!(
            q.data(),
            b"1234567890",
            "nothing of the refused push went in"
        );
        q.consume(10);
        assert!(q.is_empty());
        assert!(!q.push(b"x"), "an overflowed queue stays overflowed");
    }

    #[test]
    fn consume_and_compact_keep_order() {
        let mut q = OutBuf::new(8);
        assert!(q.push(b"abcdef"));
        q.consume(4);
        assert_eq!(q.data(), b"ef");
        // 2 waiting + 6 = 8: fits, because written bytes do not count.
        assert!(q.push(b"ghijkl"));
        assert_eq!(q.data(), b"efghijkl");
        q.consume(3);
        q.consume(100);
        assert!(q.is_empty());
        assert_eq!(q.data(), b"");
    }

    #[test]
    fn push_all_is_all_or_nothing() {
        let mut q = OutBuf::new(5);
        assert!(q.push_all(&[b"ab", b"cd"]));
        assert!(!q.push_all(&[b"e", b"f"]));
        assert_eq!(q.data(), b"abcd");
    }

    #[test]
    fn big_buffers_are_given_back() {
        let mut q = OutBuf::new(usize::MAX);
        assert!(q.push(&vec![0; 1 << 20]));
        q.consume(1 << 20);
        assert!(q.buf.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn ws_frame_headers() {
        let mut h = [0u8; 10];
        assert_eq!(ws_text_header(&mut h, 0), 2);
        assert_eq!(&h[..2], &[0x81, 0]);
        assert_eq!(ws_text_header(&mut h, 125), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(ws_text_header(&mut h, 126), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0, 126]);
        assert_eq!(ws_text_header(&mut h, 65535), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(ws_text_header(&mut h, 65536), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);

        let mut q = OutBuf::new(1000);
        assert!(q.push_ws_text(b"hi"));
        assert_eq!(q.data(), b"\x81\x02hi");
        let mut tight = OutBuf::new(3);
        assert!(
            !tight.push_ws_text(b"hi"),
            "the header counts against the limit"
        );
    }
}
