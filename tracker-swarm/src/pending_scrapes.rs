//! Scrapes whose parts are out at the request workers: each torrent of a
//! scrape (or each worker's share of a full scrape) comes back as its own
//! job, and the front end answers once the last part is in.

use slab::Slab;

/// Names one pending scrape in the jobs sent for it. The slot is reused
/// once the scrape is done; the generation tells a late part for the old
/// scrape (one whose batch came back after the scrape was abandoned) from
/// a part of the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeTicket {
    pub slot: u32,
    pub generation: u32,
}

struct Entry<T> {
    generation: u32,
    /// Parts still out at the request workers.
    remaining: u32,
    value: T,
}

/// A front end's scrapes in flight, each a `T` the front end fills part by
/// part (its counts, and whatever it needs to answer).
pub struct PendingScrapes<T> {
    entries: Slab<Entry<T>>,
    next_generation: u32,
    max_len: usize,
}

impl<T> PendingScrapes<T> {
    /// Holds at most `max_len` scrapes at once.
    pub fn new(max_len: usize) -> Self {
        Self {
            entries: Slab::new(),
            next_generation: 0,
            max_len,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts a scrape waiting for `parts` parts (set it later with
    /// [`set_parts`](Self::set_parts) if they are counted while sending).
    /// Gives `value` back when the table is full.
    pub fn insert(&mut self, value: T, parts: u32) -> Result<ScrapeTicket, T> {
        if self.entries.len() >= self.max_len {
            return Err(value);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.entries.insert(Entry {
            generation,
            remaining: parts,
            value,
        });
        Ok(ScrapeTicket {
            slot: slot as u32,
            generation,
        })
    }

    /// The scrape `ticket` names, if it is still pending.
    pub fn get(&self, ticket: ScrapeTicket) -> Option<&T> {
        self.entries
            .get(ticket.slot as usize)
            .filter(|e| e.generation == ticket.generation)
            .map(|e| &e.value)
    }

    pub fn get_mut(&mut self, ticket: ScrapeTicket) -> Option<&mut T> {
        self.entry(ticket).map(|e| &mut e.value)
    }

    /// Sets how many parts the scrape still waits for.
    pub fn set_parts(&mut self, ticket: ScrapeTicket, parts: u32) {
        if let Some(e) = self.entry(ticket) {
            e.remaining = parts;
        }
    }

    /// Files one part with `fill`, unless the scrape is no longer pending
    /// (then `fill` is not called). Returns the scrape, taken out of the
    /// table, when that was its last part.
    pub fn file_part(&mut self, ticket: ScrapeTicket, fill: impl FnOnce(&mut T)) -> Option<T> {
        let e = self.entry(ticket)?;
        fill(&mut e.value);
        e.remaining = e.remaining.saturating_sub(1);
        if e.remaining == 0 {
            self.remove(ticket)
        } else {
            None
        }
    }

    /// Takes the scrape out, parts still out or not: to answer it now (a
    /// refusal, say) or to abandon it. Its late parts are then ignored.
    pub fn remove(&mut self, ticket: ScrapeTicket) -> Option<T> {
        self.entry(ticket)?;
        self.entries
            .try_remove(ticket.slot as usize)
            .map(|e| e.value)
    }

    fn entry(&mut self, ticket: ScrapeTicket) -> Option<&mut Entry<T>> {
        self.entries
            .get_mut(ticket.slot as usize)
            .filter(|e| e.generation == ticket.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_part_completes_the_scrape() {
        let mut pending = PendingScrapes::new(4);
        let t = pending.insert(Vec::new(), 3).unwrap();
        assert_eq!(pending.file_part(t, |v| v.push(1)), None);
        assert_eq!(pending.file_part(t, |v| v.push(2)), None);
        assert_eq!(pending.file_part(t, |v| v.push(3)), Some(vec![1, 2, 3]));
        assert!(pending.is_empty());
        assert_eq!(pending.file_part(t, |v| v.push(4)), None, "gone");
    }

    #[test]
    fn a_late_part_does_not_land_in_a_reused_slot() {
        let mut pending = PendingScrapes::new(4);
        let old = pending.insert("old", 2).unwrap();
        assert_eq!(pending.remove(old), Some("old"));
        let new = pending.insert("new", 1).unwrap();
        assert_eq!(new.slot, old.slot, "the slot is reused");
        assert_ne!(new.generation, old.generation);
        let mut called = false;
        assert_eq!(pending.file_part(old, |_| called = true), None);
        assert!(!called, "the old scrape's part touches nothing");
        assert_eq!(pending.get(new), Some(&"new"));
        assert_eq!(pending.remove(old), None);
        assert_eq!(pending.file_part(new, |_| {}), Some("new"));
    }

    #[test]
    fn parts_can_be_counted_after_insert() {
        let mut pending = PendingScrapes::new(4);
        let t = pending.insert(0u32, 0).unwrap();
        pending.set_parts(t, 2);
        assert_eq!(pending.file_part(t, |n| *n += 1), None);
        assert_eq!(pending.file_part(t, |n| *n += 1), Some(2));
    }

    /// A front end that sends while it is still enqueueing a scrape's parts
    /// (the UDP handler sends a batch the moment it fills) may see the
    /// scrape abandoned before it has counted them.
    #[test]
    fn counting_the_parts_of_an_abandoned_scrape_does_nothing() {
        let mut pending = PendingScrapes::new(4);
        let t = pending.insert(0u32, 0).unwrap();
        assert_eq!(pending.remove(t), Some(0));
        pending.set_parts(t, 3);
        assert!(pending.is_empty());
        assert_eq!(pending.get_mut(t), None);
        assert_eq!(pending.file_part(t, |n| *n += 1), None);
    }

    #[test]
    fn a_full_table_gives_the_value_back() {
        let mut pending = PendingScrapes::new(1);
        let t = pending.insert('a', 1).unwrap();
        assert_eq!(pending.insert('b', 1), Err('b'));
        assert_eq!(pending.len(), 1);
        pending.remove(t);
        assert!(pending.insert('c', 1).is_ok());
    }
}
