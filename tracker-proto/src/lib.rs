//! Wire formats of the BitTorrent tracker protocols, with no I/O.
//!
//! The core (`common`, `udp`, `connection_id`, `siphash`, `net`) is `no_std` and
//! allocation-free so that the XDP program can share the BEP 15 layout and
//! the connection-id scheme with userland. Everything that needs `std` sits
//! behind the default `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod common;
pub mod connection_id;
#[cfg(feature = "std")]
pub mod http;
pub mod net;
pub mod siphash;
pub mod udp;
#[cfg(feature = "std")]
pub mod ws;
pub mod xdp;

pub use common::{AnnounceEvent, InfoHash, PeerId};
