//! One socket's outstanding requests, keyed by transaction id.
//!
//! Transaction ids are a per-socket sequence (from a random start) and an
//! entry lives at `txid % capacity`, so the table is a ring in send order:
//! finding a request is one index, and expiring old requests walks from
//! the oldest end. Two cursors walk it: `young` marks requests that still
//! count against the send window, `tail` those not yet given up as lost.

use crate::profile::RequestKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub txid: u32,
    pub sent_ns: u64,
    pub kind: RequestKind,
    /// Info hashes in a scrape; 0 otherwise.
    pub scrape_len: u8,
    pub live: bool,
    /// Sent inside the measured window, so its fate is counted.
    pub measured: bool,
}

const EMPTY: Entry = Entry {
    txid: 0,
    sent_ns: 0,
    kind: RequestKind::Connect,
    scrape_len: 0,
    live: false,
    measured: false,
};

/// How far behind the newest id an answer may be and still be taken for a
/// late answer to an expired request rather than garbage.
const LATE_HORIZON: u32 = 1 << 22;

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Entry),
    /// An id this socket used that is no longer outstanding: the request
    /// was already answered or counted lost.
    Late,
    /// An id this socket never used.
    Unknown,
}

pub struct Pending {
    entries: Box<[Entry]>,
    mask: u32,
    /// Next id to hand out.
    next: u32,
    /// Oldest id that may still be live.
    tail: u32,
    /// Oldest id that may still count against the window.
    young: u32,
    outstanding: u32,
    young_outstanding: u32,
}

/// Whether `x` lies in `[from, to)` of the wrapping id sequence.
#[inline]
fn in_range(x: u32, from: u32, to: u32) -> bool {
    x.wrapping_sub(from) < to.wrapping_sub(from)
}

impl Pending {
    /// `capacity` is rounded up to a power of two; `first_txid` should be
    /// random so answers to an earlier run cannot match.
    pub fn new(capacity: usize, first_txid: u32) -> Self {
        let capacity = capacity.clamp(2, 1 << 24).next_power_of_two();
        Self {
            entries: vec![EMPTY; capacity].into_boxed_slice(),
            mask: capacity as u32 - 1,
            next: first_txid,
            tail: first_txid,
            young: first_txid,
            outstanding: 0,
            young_outstanding: 0,
        }
    }

    /// Unanswered requests that still count against the window.
    #[inline]
    pub fn young_outstanding(&self) -> usize {
        self.young_outstanding as usize
    }

    /// Unanswered requests not yet given up.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.outstanding as usize
    }

    #[inline]
    fn slot(&self, txid: u32) -> usize {
        (txid & self.mask) as usize
    }

    /// Records a request about to be sent and returns its transaction id.
    /// When every slot is taken the oldest request gives way and is
    /// returned, to be counted lost: with a table far larger than the send
    /// window that only happens to requests long unanswered.
    #[inline]
    pub fn alloc(
        &mut self,
        sent_ns: u64,
        kind: RequestKind,
        scrape_len: u8,
        measured: bool,
    ) -> (u32, Option<Entry>) {
        while self.tail != self.next && !self.entries[self.slot(self.tail)].live {
            self.tail = self.tail.wrapping_add(1);
        }
        let mut evicted = None;
        if self.next.wrapping_sub(self.tail) > self.mask {
            let tail = self.tail;
            let slot = self.slot(tail);
            let e = &mut self.entries[slot];
            e.live = false;
            evicted = Some(*e);
            self.outstanding -= 1;
            if in_range(tail, self.young, self.next) {
                self.young_outstanding -= 1;
            }
            self.tail = tail.wrapping_add(1);
        }
        // The tail may have moved past `young` over answered requests.
        if !in_range(self.young, self.tail, self.next.wrapping_add(1)) {
            self.young = self.tail;
        }
        let txid = self.next;
        let slot = self.slot(txid);
        self.entries[slot] = Entry {
            txid,
            sent_ns,
            kind,
            scrape_len,
            live: true,
            measured,
        };
        self.next = txid.wrapping_add(1);
        self.outstanding += 1;
        self.young_outstanding += 1;
        (txid, evicted)
    }

    /// Forgets a request the kernel did not send after all.
    pub fn cancel(&mut self, txid: u32) {
        let slot = self.slot(txid);
        let e = &mut self.entries[slot];
        if e.live && e.txid == txid {
            e.live = false;
            self.outstanding -= 1;
            if in_range(txid, self.young, self.next) {
                self.young_outstanding -= 1;
            }
        }
    }

    /// Takes the request an answer with `txid` belongs to.
    #[inline]
    pub fn take(&mut self, txid: u32) -> Lookup {
        let slot = self.slot(txid);
        let e = &mut self.entries[slot];
        if e.live && e.txid == txid {
            e.live = false;
            self.outstanding -= 1;
            if in_range(txid, self.young, self.next) {
                self.young_outstanding -= 1;
            }
            return Lookup::Found(*e);
        }
        let behind = self.next.wrapping_sub(txid);
        if behind != 0 && behind <= LATE_HORIZON {
            Lookup::Late
        } else {
            Lookup::Unknown
        }
    }

    /// Ages requests out of the window after `window_ns` and gives them up
    /// after `timeout_ns`, passing each given-up request to `lost`.
    pub fn expire(
        &mut self,
        now_ns: u64,
        window_ns: u64,
        timeout_ns: u64,
        mut lost: impl FnMut(&Entry),
    ) {
        while self.young != self.next {
            let e = &self.entries[self.slot(self.young)];
            if e.live {
                if e.sent_ns.saturating_add(window_ns) > now_ns {
                    break;
                }
                self.young_outstanding -= 1;
            }
            self.young = self.young.wrapping_add(1);
        }
        while self.tail != self.young {
            let slot = self.slot(self.tail);
            let e = &mut self.entries[slot];
            if e.live {
                if e.sent_ns.saturating_add(timeout_ns) > now_ns {
                    break;
                }
                e.live = false;
                self.outstanding -= 1;
                lost(e);
            }
            self.tail = self.tail.wrapping_add(1);
        }
    }

    /// Gives up every request still outstanding, e.g. at the end of a run.
    pub fn drain(&mut self, mut lost: impl FnMut(&Entry)) {
        while self.tail != self.next {
            let slot = self.slot(self.tail);
            let e = &mut self.entries[slot];
            if e.live {
                e.live = false;
                lost(e);
            }
            self.tail = self.tail.wrapping_add(1);
        }
        self.young = self.next;
        self.outstanding = 0;
        self.young_outstanding = 0;
    }

    /// Whether any request sent in the measured window is outstanding.
    pub fn any_measured_outstanding(&self) -> bool {
        let mut id = self.tail;
        while id != self.next {
            let e = &self.entries[self.slot(id)];
            if e.live && e.measured {
                return true;
            }
            id = id.wrapping_add(1);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestKind::*;

    #[test]
    fn match_late_unknown() {
        let mut p = Pending::new(8, u32::MAX - 2);
        let a = p.alloc(0, Connect, 0, true).0;
        let b = p.alloc(0, Scrape, 3, false).0;
        assert_eq!(p.outstanding(), 2);
        let Lookup::Found(e) = p.take(b) else {
            panic!()
        };
        assert_eq!((e.kind, e.scrape_len, e.measured), (Scrape, 3, false));
        assert_eq!(p.take(b), Lookup::Late, "answered twice");
        assert_eq!(p.take(b.wrapping_add(1)), Lookup::Unknown, "never sent");
        assert_eq!(p.take(0x1234_5678), Lookup::Unknown);
        assert!(matches!(p.take(a), Lookup::Found(_)));
        assert_eq!((p.outstanding(), p.young_outstanding()), (0, 0));
    }

    #[test]
    fn window_ages_before_timeout() {
        let mut p = Pending::new(16, 7);
        for t in 0..4 {
            p.alloc(t * 10, Announce, 0, true);
        }
        let mut lost = Vec::new();
        p.expire(25, 10, 100, |e| lost.push(e.txid));
        // Sent at 0, 10 are out of the window; none is lost yet.
        assert_eq!((p.young_outstanding(), p.outstanding()), (2, 4));
        assert!(lost.is_empty());
        // An answer to an aged request does not touch the window count.
        assert!(matches!(p.take(7), Lookup::Found(_)));
        assert_eq!((p.young_outstanding(), p.outstanding()), (2, 3));
        p.expire(115, 10, 100, |e| lost.push(e.txid));
        assert_eq!(lost, [8]);
        assert_eq!((p.young_outstanding(), p.outstanding()), (0, 2));
        assert_eq!(p.take(8), Lookup::Late);
        p.drain(|e| lost.push(e.txid));
        assert_eq!(lost, [8, 9, 10]);
        assert!(!p.any_measured_outstanding());
    }

    #[test]
    fn full_table_evicts_the_oldest() {
        let mut p = Pending::new(4, 0);
        for t in 0..4 {
            assert_eq!(p.alloc(t, Announce, 0, true), (t as u32, None));
        }
        let (id, evicted) = p.alloc(9, Scrape, 2, true);
        assert_eq!(id, 4);
        let evicted = evicted.expect("oldest gives way");
        assert_eq!((evicted.txid, evicted.sent_ns, evicted.live), (0, 0, false));
        assert_eq!((p.outstanding(), p.young_outstanding()), (4, 4));
        // Slot 0 now holds id 4; id 0 is late, not a match.
        assert_eq!(p.take(0), Lookup::Late);
        assert!(matches!(p.take(1), Lookup::Found(_)));
        // Answered slots are reused without evicting.
        assert_eq!(p.alloc(10, Announce, 0, true), (5, None));
        assert!(p.any_measured_outstanding());
    }

    #[test]
    fn cancel_forgets_unsent_requests() {
        let mut p = Pending::new(8, 100);
        for _ in 0..3 {
            p.alloc(0, Announce, 0, true);
        }
        p.cancel(101);
        p.cancel(101);
        p.cancel(999);
        assert_eq!((p.outstanding(), p.young_outstanding()), (2, 2));
        assert_eq!(p.take(101), Lookup::Late);
        assert!(matches!(p.take(102), Lookup::Found(_)));
        p.expire(100, 1, 1, |_| {});
        p.cancel(100);
        assert_eq!((p.outstanding(), p.young_outstanding()), (0, 0));
        assert_eq!(p.alloc(0, Connect, 0, true), (103, None));
    }

    #[test]
    fn long_runs_wrap_cleanly() {
        let mut p = Pending::new(64, u32::MAX - 1000);
        let mut lost = 0;
        for t in 0..100_000u64 {
            let (id, evicted) = p.alloc(t, Announce, 0, true);
            assert_eq!(evicted, None);
            if t % 3 != 0 {
                assert!(matches!(p.take(id), Lookup::Found(_)));
            }
            p.expire(t, 5, 20, |_| lost += 1);
            assert!(p.young_outstanding() <= p.outstanding());
            assert!(p.outstanding() <= 64);
        }
        p.drain(|_| lost += 1);
        assert_eq!(lost, 33_334);
    }
}
