//! The tracker as a library: `main.rs` only parses the command line and
//! calls [`server::run`].

pub mod access_list;
pub mod cli;
pub mod config;
pub mod logging;
pub mod server;
// SAFETY comments pending: see issue 10. Both are being rewritten; the
// allow goes once each `unsafe` block there says why it is sound.
#[allow(clippy::undocumented_unsafe_blocks)]
pub mod udp;
#[allow(clippy::undocumented_unsafe_blocks)]
pub mod xdp;

// The swarm store lives in its own crate (tracker_swarm) so the
// HTTP/WebSocket server can use it too; this keeps the clock's old path.
pub use tracker_swarm::clock;
