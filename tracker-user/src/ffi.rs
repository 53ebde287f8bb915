//! Small safe wrappers for the C structs the UDP and AF_XDP front ends
//! hand to the kernel, so the `unsafe` that builds them lives in one place.

/// C structs for which every field being zero is a valid value: integers,
/// byte arrays and raw pointers only (a null raw pointer is a valid value;
/// it is never dereferenced by Rust, and the kernel is only handed one
/// after we point it somewhere). No references, `NonNull`, enums or
/// function pointers, for which all-zero would be undefined behaviour.
///
/// # Safety
/// Implement only for types whose all-zero bit pattern is a valid value.
pub(crate) unsafe trait Zeroable: Sized {}

// SAFETY: `sockaddr_storage` is a family number, padding and byte/integer
// fields; AF_UNSPEC (0) with zeroed bytes is valid.
unsafe impl Zeroable for libc::sockaddr_storage {}
// SAFETY: `mmsghdr` is a `msghdr` (raw pointers, lengths, flags) plus a
// length: all integers and raw pointers.
unsafe impl Zeroable for libc::mmsghdr {}
// SAFETY: `statfs` holds integers and an `fsid_t` of integers only.
unsafe impl Zeroable for libc::statfs {}

/// An all-zero `T`, the usual starting value before the kernel or our code
/// fills a C struct in.
pub(crate) fn zeroed<T: Zeroable>() -> T {
    // SAFETY: `T: Zeroable` promises the all-zero bit pattern is a valid `T`.
    unsafe { std::mem::zeroed() }
}
