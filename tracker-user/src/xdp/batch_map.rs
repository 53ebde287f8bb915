//! A request worker's writer into one of the program's maps keyed by info
//! hash (`SCRAPE`, `HOT_V4`, `HOT_V6`): it holds a duplicate of the map's
//! fd, taken while still privileged, and writes in batches
//! (`BPF_MAP_UPDATE_BATCH`, Linux 5.6), one element at a time on kernels
//! that refuse batches.
//!
//! aya 0.14 has no batch calls, so this speaks the `bpf(2)` syscall
//! directly; the attribute layouts are the kernel's UAPI (`union bpf_attr`).

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// The kernel's internal "operation not supported" (ENOTSUPP), which a
/// map type without batch operations answers with.
const ENOTSUPP: i32 = 524;

/// `union bpf_attr` for `BPF_MAP_*_ELEM`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_MAP_*_BATCH`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// One request worker's writer into a map of 20-byte keys and `V` values
/// (`V` the map's value type, `#[repr(C)]` as the program reads it).
pub struct BatchMap<V> {
    fd: OwnedFd,
    /// Cleared the first time the kernel refuses a batch call.
    batches: bool,
    /// Named in log lines.
    name: &'static str,
    _value: PhantomData<fn(&V)>,
}

impl<V: Copy> BatchMap<V> {
    /// Writes through `fd`, a descriptor of the map called `name`.
    pub fn new(fd: OwnedFd, name: &'static str) -> Self {
        Self {
            fd,
            batches: true,
            name,
            _value: PhantomData,
        }
    }

    fn map_fd(&self) -> u32 {
        self.fd.as_raw_fd() as u32
    }

    /// `bpf(cmd, attr)`: Ok, or the errno.
    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
        // SAFETY: `attr` is a live, exclusively borrowed `bpf_attr` variant
        // of the size passed; the kernel reads it and writes only `count`
        // of the batch variant, and reads the buffers it points to, which
        // the callers keep alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn refuses_batches(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | ENOTSUPP)
        )
    }

    fn update_one(&self, key: &[u8; 20], value: &V) -> io::Result<()> {
        let mut attr = ElemAttr {
            map_fd: self.map_fd(),
            key: key.as_ptr() as u64,
            value: value as *const V as u64,
            ..ElemAttr::default()
        };
        Self::bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
    }

    fn delete_one(&self, key: &[u8; 20]) -> io::Result<()> {
        let mut attr = ElemAttr {
            map_fd: self.map_fd(),
            key: key.as_ptr() as u64,
            ..ElemAttr::default()
        };
        match Self::bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            // Evicted by the LRU already: what we wanted.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }
    }

    /// One batch call over `keys` (and `values`, for updates); `Ok(n)` is
    /// how many the kernel did before it stopped, `n == keys.len()` on
    /// success.
    fn batch(
        &self,
        cmd: libc::c_long,
        keys: &[[u8; 20]],
        values: Option<&[V]>,
    ) -> (usize, io::Result<()>) {
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.map_or(0, |v| v.as_ptr() as u64),
            count: keys.len() as u32,
            map_fd: self.map_fd(),
            ..BatchAttr::default()
        };
        let result = Self::bpf(cmd, &mut attr);
        let done = if result.is_ok() {
            keys.len()
        } else {
            (attr.count as usize).min(keys.len())
        };
        (done, result)
    }

    /// Writes `values[i]` under `keys[i]`: one system call when the kernel
    /// takes batches; an error names the first element that failed.
    pub fn update(&mut self, keys: &[[u8; 20]], values: &[V]) -> io::Result<()> {
        let (keys, values) = {
            let n = keys.len().min(values.len());
            (&keys[..n], &values[..n])
        };
        let mut start = 0;
        if self.batches {
            let (done, result) = self.batch(BPF_MAP_UPDATE_BATCH, keys, Some(values));
            match result {
                Ok(()) => return Ok(()),
                Err(e) if done == 0 && Self::refuses_batches(&e) => {
                    log::info!(
                        "the kernel refuses BPF_MAP_UPDATE_BATCH ({e}): writes to the XDP \
                         map {} go one at a time",
                        self.name
                    );
                    self.batches = false;
                }
                // Part done: the rest one at a time, which names the
                // failing element's error.
                Err(_) => start = done,
            }
        }
        for (key, value) in keys[start..].iter().zip(&values[start..]) {
            self.update_one(key, value)?;
        }
        Ok(())
    }

    /// Deletes `keys`; one already gone (evicted, or never written) is no
    /// error.
    pub fn delete(&mut self, keys: &[[u8; 20]]) -> io::Result<()> {
        let mut start = 0;
        if self.batches {
            // A key the LRU evicted stops a batch delete with ENOENT; the
            // rest then go one at a time.
            let (done, result) = self.batch(BPF_MAP_DELETE_BATCH, keys, None);
            match result {
                Ok(()) => return Ok(()),
                Err(_) => start = done,
            }
        }
        let mut first_error = Ok(());
        for key in &keys[start..] {
            if let Err(e) = self.delete_one(key) {
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
        first_error
    }
}

#[cfg(test)]
mod tests {
    //! Against real kernel maps, created here with `bpf(2)`: needs root
    //! (CAP_BPF), as CI runs; fails rather than skips without it.
    use super::*;
    use std::os::fd::FromRawFd;
    use tracker_proto::xdp::ScrapeEntry;

    type ScrapeMap = BatchMap<ScrapeEntry>;

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    const BPF_MAP_TYPE_HASH: u32 = 1;
    const BPF_MAP_TYPE_LRU_HASH: u32 = 9;

    #[repr(C)]
    #[derive(Default)]
    struct CreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }

    fn create(map_type: u32, max_entries: u32) -> ScrapeMap {
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "creating BPF maps needs root; CI runs these as root");
        let mut attr = CreateAttr {
            map_type,
            key_size: 20,
            value_size: 12,
            max_entries,
            ..CreateAttr::default()
        };
        // SAFETY: as in `ScrapeMap::bpf`; BPF_MAP_CREATE returns a new fd.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_CREATE,
                &mut attr as *mut CreateAttr as *mut libc::c_void,
                std::mem::size_of::<CreateAttr>() as libc::c_uint,
            )
        };
        assert!(fd >= 0, "BPF_MAP_CREATE: {}", io::Error::last_os_error());
        // SAFETY: the kernel just handed us this fd; nothing else owns it.
        ScrapeMap::new(unsafe { OwnedFd::from_raw_fd(fd as i32) }, "test")
    }

    fn lookup(map: &ScrapeMap, key: &[u8; 20]) -> Option<ScrapeEntry> {
        let mut value = ScrapeEntry::default();
        let mut attr = ElemAttr {
            map_fd: map.map_fd(),
            key: key.as_ptr() as u64,
            value: &mut value as *mut ScrapeEntry as u64,
            ..ElemAttr::default()
        };
        ScrapeMap::bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).ok()?;
        Some(value)
    }

    fn keys(n: u8) -> Vec<[u8; 20]> {
        (1..=n).map(|i| [i; 20]).collect()
    }

    #[test]
    fn batches_write_and_delete_every_entry() {
        for batches in [true, false] {
            let mut map = create(BPF_MAP_TYPE_LRU_HASH, 1024);
            map.batches = batches;
            let keys = keys(100);
            let values: Vec<_> = (0..100u32)
                .map(|i| ScrapeEntry::new(i, i * 2, i * 3))
                .collect();
            map.update(&keys, &values).unwrap();
            assert!(map.batches == batches, "this kernel takes batches");
            for (k, v) in keys.iter().zip(&values) {
                assert_eq!(lookup(&map, k), Some(*v), "batches={batches}");
            }
            // Key 200 was never written: as if the LRU had evicted it.
            let mut gone = keys[..50].to_vec();
            gone.insert(10, [200; 20]);
            map.delete(&gone).unwrap();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(lookup(&map, k).is_some(), i >= 50, "batches={batches} {i}");
            }
        }
    }

    #[test]
    fn a_write_the_map_refuses_is_an_error_not_a_silent_loss() {
        // A plain hash map, unlike the LRU one, refuses past its size.
        let mut map = create(BPF_MAP_TYPE_HASH, 2);
        let keys = keys(3);
        let values = [ScrapeEntry::new(1, 1, 1); 3];
        let err = map.update(&keys, &values).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::E2BIG), "{err}");
        assert!(map.batches, "a full map is not a refusal of batches");
    }
}
