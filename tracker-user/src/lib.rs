//! The tracker as a library: `main.rs` only parses the command line and
//! calls [`server::run`].

pub mod access_list;
pub mod admin;
pub mod cli;
pub mod config;
mod ffi;
pub mod logging;
pub mod persistence;
pub mod privileges;
pub mod readiness;
pub mod server;
pub mod udp;
pub mod xdp;

// The swarm store lives in its own crate (tracker_swarm) so the
// HTTP/WebSocket server can use it too; this keeps the clock's old path.
pub use tracker_swarm::clock;
