//! The XDP fast path: an XDP program (tracker-ebpf) steers tracker
//! datagrams into one AF_XDP socket per RX queue and answers connects in
//! the kernel; a worker per queue serves the rest with the same request
//! path as the plain sockets.

pub mod batch_map;
pub mod frame;
pub mod hot_cache;
pub mod loader;
pub mod ring;
pub mod scrape_map;
mod worker;

pub use loader::{object, XdpAttachment, NOT_BUILT};
/// The AF_XDP socket layer lives in its own crate so the load generator
/// can drive the same code from the client end of a veth.
pub use tracker_xsk as xsk;
pub use worker::XdpWorker;
