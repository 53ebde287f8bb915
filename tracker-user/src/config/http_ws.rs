//! What the binary asks of the HTTP/WebSocket server's sections. `[http]`,
//! `[ws]` and `[tls]` are defined, with their defaults, in
//! [`tracker_http_ws::config`]; the server's runtime settings are built
//! from them there.

use tracker_http_ws::config::{self as http_ws, ProtocolValues};

use super::Config;

impl Config {
    /// Every TCP listener, in the order they are logged.
    pub fn tcp_listeners(&self) -> Vec<tracker_http_ws::ListenerSpec> {
        http_ws::listeners(&self.http, &self.ws)
    }

    /// Whether any listener speaks TLS.
    pub fn wants_tls(&self) -> bool {
        http_ws::wants_tls(&self.http, &self.ws)
    }

    /// What the HTTP/WebSocket socket workers need, resolved once.
    pub fn http_ws_settings(&self) -> tracker_http_ws::Settings {
        let p = &self.protocol;
        let protocol = ProtocolValues {
            announce_interval: p.announce_interval,
            default_numwant: p.default_numwant,
            max_numwant: p.max_numwant,
        };
        tracker_http_ws::Settings::from_config(&self.http, &self.ws, protocol)
    }
}
