//! The XDP fast path: an XDP program (tracker-ebpf) steers tracker
//! datagrams into one AF_XDP socket per RX queue and answers connects in
//! the kernel; a worker per queue serves the rest with the same request
//! path as the plain sockets.

pub mod frame;
pub mod hot_cache;
pub mod loader;
pub mod ring;
mod worker;
pub mod xsk;

pub use loader::{object, XdpAttachment, NOT_BUILT};
pub use worker::XdpWorker;
