//! The tracker's metrics: counters each worker owns and writes without a
//! lock or a contended atomic ([`counter`]), the blocks they come in
//! ([`blocks`]), the registry a scrape sums them from ([`Metrics`]), and
//! the three views of a scrape: Prometheus text ([`prometheus`]), JSON
//! ([`json`]) and the rate history the stats page draws ([`history`]).
//! Kernel-kept figures (socket drops, AF_XDP ring statistics, the
//! process's CPU and memory) are read at scrape time ([`os`]).

pub mod blocks;
pub mod counter;
pub mod history;
pub mod json;
pub mod labels;
pub mod os;
pub mod prometheus;
mod registry;

pub use blocks::{ConnectionCounters, RequestCounters, SwarmGauges};
pub use counter::{CacheAligned, Counter, Gauge};
pub use history::{HISTORY_INTERVAL, HISTORY_LEN};
pub use labels::{
    Action, ErrorKind, Family, Limit, Protocol, Refusal, Relay, Role, Store, Timeout,
};
pub use registry::{
    ConnectionSnapshot, Metrics, Snapshot, SwarmSnapshot, XdpCounterReader, XdpProgramCounters,
    XdpSnapshot, XdpStatus,
};

/// A front end's block, as workers hold it.
pub type RequestBlock = std::sync::Arc<CacheAligned<RequestCounters>>;
/// An HTTP/WS socket worker's connection block.
pub type ConnectionBlock = std::sync::Arc<CacheAligned<ConnectionCounters>>;
/// A request worker's swarm block.
pub type SwarmBlock = std::sync::Arc<CacheAligned<SwarmGauges>>;
