//! The blocks of counters each kind of worker owns. A worker gets its own
//! block from [`crate::Metrics`] at start and is the only one to write it.

use crate::counter::{Counter, Gauge};
use crate::labels::{
    Action, ErrorKind, Family, Limit, Protocol, Refusal, Relay, Role, Store, Timeout,
};

/// What a front end (UDP socket worker, AF_XDP queue worker, HTTP/WS
/// socket worker) saw of requests, by protocol: a UDP worker only writes
/// the `udp` row, an HTTP/WS worker the four TCP rows.
#[derive(Debug, Default)]
pub struct RequestCounters {
    requests: [[Counter; Action::COUNT]; Protocol::COUNT],
    responses: [[Counter; Action::COUNT]; Protocol::COUNT],
    errors: [[Counter; ErrorKind::COUNT]; Protocol::COUNT],
    /// Requests shed unanswered (or answered "busy") because a request
    /// worker's inbox was full: overload drops, never queues.
    dropped: [Counter; Protocol::COUNT],
}

impl RequestCounters {
    #[inline]
    pub fn request(&self, protocol: Protocol, action: Action) {
        self.requests[protocol.index()][action.index()].inc();
    }

    #[inline]
    pub fn response(&self, protocol: Protocol, action: Action) {
        self.responses[protocol.index()][action.index()].inc();
    }

    /// An error response sent: counted by kind and as a response.
    #[inline]
    pub fn error(&self, protocol: Protocol, kind: ErrorKind) {
        self.errors[protocol.index()][kind.index()].inc();
        self.response(protocol, Action::Error);
    }

    #[inline]
    pub fn dropped(&self, protocol: Protocol, requests: u64) {
        self.dropped[protocol.index()].add(requests);
    }

    pub fn requests(&self, protocol: Protocol, action: Action) -> u64 {
        self.requests[protocol.index()][action.index()].get()
    }

    pub fn responses(&self, protocol: Protocol, action: Action) -> u64 {
        self.responses[protocol.index()][action.index()].get()
    }

    pub fn errors(&self, protocol: Protocol, kind: ErrorKind) -> u64 {
        self.errors[protocol.index()][kind.index()].get()
    }

    pub fn dropped_count(&self, protocol: Protocol) -> u64 {
        self.dropped[protocol.index()].get()
    }
}

/// What an HTTP/WS socket worker saw of its TCP connections.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections opened and closed by protocol; open = opened - closed.
    /// An upgrade to WebSocket closes an `http` one and opens a `ws` one.
    opened: [Counter; Protocol::COUNT],
    closed: [Counter; Protocol::COUNT],
    pub refused: [Counter; Refusal::COUNT],
    pub timeouts: [Counter; Timeout::COUNT],
    pub tls_handshake_failures: Counter,
    /// WebSocket connections closed for not reading what they were sent.
    pub slow_readers: Counter,
    pub relayed: [Counter; Relay::COUNT],
    /// Offers and answers that could not be delivered (full relay
    /// channel, receiver gone).
    pub relays_dropped: Counter,
}

impl ConnectionCounters {
    #[inline]
    pub fn opened(&self, protocol: Protocol) {
        self.opened[protocol.index()].inc();
    }

    #[inline]
    pub fn closed(&self, protocol: Protocol) {
        self.closed[protocol.index()].inc();
    }

    /// A connection that was `http(s)` is now `ws(s)`.
    #[inline]
    pub fn upgraded(&self, tls: bool) {
        self.closed(Protocol::tcp(false, tls));
        self.opened(Protocol::tcp(true, tls));
    }

    pub fn open(&self, protocol: Protocol) -> u64 {
        let i = protocol.index();
        // Read closed first: a connection closed between the two reads is
        // then seen opened, never as a negative count.
        let closed = self.closed[i].get();
        self.opened[i].get().saturating_sub(closed)
    }

    pub fn accepted(&self) -> u64 {
        Protocol::ALL
            .iter()
            .map(|p| self.opened[p.index()].get())
            .sum::<u64>()
            - self.opened[Protocol::Ws.index()].get()
            - self.opened[Protocol::Wss.index()].get()
    }
}

/// What a request worker holds in its shard of the swarm, published by
/// that worker after each batch and each cleaning.
#[derive(Debug, Default)]
pub struct SwarmGauges {
    pub torrents: [Gauge; Store::COUNT],
    /// UDP and HTTP peers.
    pub peers: [[Gauge; Role::COUNT]; Family::COUNT],
    pub ws_peers: [Gauge; Role::COUNT],
    /// Announces with event=completed that counted as a download: the
    /// shard's running total, copied (so a gauge here, a counter outside).
    pub completed: Gauge,
    /// Announces refused at a limit: running totals, copied likewise.
    pub refused: [[Gauge; Limit::COUNT]; Store::COUNT],
    /// Torrents whose scrape counts this worker last wrote to the XDP
    /// program's SCRAPE map.
    pub kernel_scrape_entries: Gauge,
}
