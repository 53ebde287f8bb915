//! The label values the metrics carry, each an enum so a worker indexes a
//! plain array and a typo cannot make a new time series.

/// Declares a label enum with its Prometheus label value for each variant,
/// `ALL` in index order and `COUNT`.
macro_rules! label {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            pub const COUNT: usize = Self::ALL.len();

            /// The label value, as `/metrics` and `/stats.json` show it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label! {
    /// How a request reached the tracker.
    Protocol {
        /// BEP 15 over a plain UDP socket.
        Udp = "udp",
        /// BEP 15 steered by the XDP program into an AF_XDP socket.
        UdpXdp = "udp_xdp",
        Http = "http",
        Https = "https",
        /// WebTorrent over a plain WebSocket.
        Ws = "ws",
        Wss = "wss",
    }
}

impl Protocol {
    /// The protocol of a TCP connection, from whether it upgraded to a
    /// WebSocket and whether it runs over TLS.
    pub const fn tcp(websocket: bool, tls: bool) -> Self {
        match (websocket, tls) {
            (false, false) => Protocol::Http,
            (false, true) => Protocol::Https,
            (true, false) => Protocol::Ws,
            (true, true) => Protocol::Wss,
        }
    }
}

label! {
    /// What a request asked for.
    Action {
        Connect = "connect",
        Announce = "announce",
        Scrape = "scrape",
        /// A WebTorrent answer to a relayed offer.
        Answer = "answer",
        /// A response that is an error (BEP 15 error, `failure reason`, WS
        /// failure): counted here as well as under its [`ErrorKind`].
        Error = "error",
    }
}

label! {
    /// Why a request got an error instead of an answer.
    ErrorKind {
        /// A BEP 15 connection id that is forged, expired or another IP's.
        BadConnectionId = "bad_connection_id",
        /// Unparseable or missing fields, port 0, a bad WS message.
        Malformed = "malformed",
        /// The access list refused the info hash.
        AccessDenied = "access_denied",
        /// A swarm limit (`[swarm] max_*`) refused a new torrent or peer.
        LimitReached = "limit_reached",
        /// Larger than the tracker accepts (datagram, scrape, request head).
        TooLarge = "too_large",
        /// A WebTorrent peer id held by another connection.
        PeerIdInUse = "peer_id_in_use",
    }
}

label! {
    /// Why a TCP connection was closed at once after accept.
    Refusal {
        /// Over `http.max_connections`.
        MaxConnections = "max_connections",
        /// Its address held its share of `http.max_connections_per_ip`.
        PerIp = "per_ip",
    }
}

label! {
    /// Why the tracker closed a TCP connection it had served.
    Timeout {
        /// Nothing (or no TLS handshake) within `http.first_byte_timeout`.
        FirstByte = "first_byte",
        /// Idle past `http.idle_timeout` / `ws.idle_timeout`.
        Idle = "idle",
    }
}

label! {
    /// What kind of WebTorrent signalling message was relayed.
    Relay {
        Offer = "offer",
        Answer = "answer",
    }
}

label! {
    /// Address family of a peer.
    Family {
        Ipv4 = "ipv4",
        Ipv6 = "ipv6",
    }
}

label! {
    /// Whether a peer has the whole torrent.
    Role {
        Seeder = "seeder",
        Leecher = "leecher",
    }
}

label! {
    /// Which swarm store refused an announce at a limit.
    Store {
        /// UDP and HTTP peers.
        Bittorrent = "bittorrent",
        Webtorrent = "webtorrent",
    }
}

label! {
    /// Which swarm limit refused an announce (`[swarm] max_*`).
    Limit {
        Torrents = "max_torrents",
        Peers = "max_peers",
        PeersPerTorrent = "max_peers_per_torrent",
        PeersPerIp = "max_peers_per_ip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_declaration_order_and_names_are_label_values() {
        assert_eq!(Protocol::COUNT, 6);
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
        assert_eq!(Protocol::tcp(true, true).name(), "wss");
        assert_eq!(ErrorKind::BadConnectionId.name(), "bad_connection_id");
        for name in Protocol::ALL.iter().map(|p| p.name()) {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
