//! The tracker as a library: `main.rs` only parses the command line and
//! calls [`server::run`].

pub mod access_list;
pub mod cli;
pub mod clock;
pub mod config;
pub mod logging;
pub mod server;
pub mod swarm;
pub mod udp;
pub mod xdp;
