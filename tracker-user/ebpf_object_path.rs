// Where `cargo xtask build-ebpf` leaves the XDP object and where
// tracker-user's build script looks for it, relative to the workspace root.
// The one definition of it: both `include!` this file.

/// The XDP object's path relative to the workspace root.
pub const EBPF_OBJECT_PATH: &str = "target/ebpf/tracker-ebpf.o";
