//! `GET /metrics`: a [`Snapshot`] in the Prometheus text exposition
//! format (0.0.4, what `promtool check metrics` and every Prometheus
//! server read), encoded by the `prometheus` crate. Names follow
//! Prometheus conventions: base units in the name, counters end in
//! `_total`, one metric per meaning with labels for its dimensions.
//!
//! The figures are summed from the workers' blocks at scrape time, so the
//! crate's own metric types serve only as a per-scrape encoding buffer:
//! each scrape builds a fresh registry, sets it from the snapshot and
//! encodes it.

use prometheus::core::Collector;
use prometheus::{Counter, Gauge, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::labels::{
    Action, ErrorKind, Family, Limit, Protocol, Refusal, Relay, Role, Store, Timeout,
};
use crate::os::XSK_STATISTICS;
use crate::registry::Snapshot;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The exposition of `snapshot`.
pub fn encode(snapshot: &Snapshot) -> String {
    let mut out = Exposition::default();
    out.all(snapshot);
    TextEncoder::new()
        .encode_to_string(&out.registry.gather())
        .expect("the names and labels here are valid")
}

type Labels<'a> = Vec<&'a str>;

/// A registry filled family by family. Names and labels are constants of
/// this file, so a registration error is a bug here: it panics in tests.
#[derive(Default)]
struct Exposition {
    registry: Registry,
}

impl Exposition {
    fn register(&self, collector: impl Collector + 'static) {
        self.registry
            .register(Box::new(collector))
            .expect("metric names are unique and valid");
    }

    fn counters<'a>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) {
        let vec = IntCounterVec::new(Opts::new(name, help), label_names).expect("valid opts");
        for (labels, value) in samples {
            vec.with_label_values(&labels).inc_by(value);
        }
        self.register(vec);
    }

    fn gauges<'a>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) {
        let vec = IntGaugeVec::new(Opts::new(name, help), label_names).expect("valid opts");
        for (labels, value) in samples {
            vec.with_label_values(&labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.register(vec);
    }

    fn counter(&self, name: &str, help: &str, value: u64) {
        self.counters(name, help, &[], [(Labels::new(), value)]);
    }

    fn gauge(&self, name: &str, help: &str, value: u64) {
        self.gauges(name, help, &[], [(Labels::new(), value)]);
    }

    fn float_gauge(&self, name: &str, help: &str, value: f64) {
        let gauge = Gauge::with_opts(Opts::new(name, help)).expect("valid opts");
        gauge.set(value);
        self.register(gauge);
    }

    fn float_counter(&self, name: &str, help: &str, value: f64) {
        let counter = Counter::with_opts(Opts::new(name, help)).expect("valid opts");
        counter.inc_by(value.max(0.0));
        self.register(counter);
    }
}

/// (protocol, action) pairs a protocol can see: UDP has connects, TCP
/// protocols do not, only WebSockets carry answers. Leaving out pairs that
/// cannot happen keeps the series count honest.
fn actions(p: Protocol) -> impl Iterator<Item = Action> {
    Action::ALL.iter().copied().filter(move |a| match a {
        Action::Connect => matches!(p, Protocol::Udp | Protocol::UdpXdp),
        Action::Answer => matches!(p, Protocol::Ws | Protocol::Wss),
        _ => true,
    })
}

impl Exposition {
    fn all(&mut self, s: &Snapshot) {
        let by_protocol_action = |table: &[[u64; Action::COUNT]; Protocol::COUNT], errors: bool| {
            Protocol::ALL
                .iter()
                .flat_map(move |p| {
                    actions(*p)
                        .filter(move |a| errors || *a != Action::Error)
                        .map(move |a| (vec![p.name(), a.name()], table[p.index()][a.index()]))
                })
                .collect::<Vec<_>>()
        };
        self.gauges(
            "tracker_build_info",
            "The tracker's version; always 1.",
            &["version"],
            [(vec![s.version], 1)],
        );
        self.float_gauge(
            "tracker_uptime_seconds",
            "Time since the tracker started.",
            s.uptime_seconds,
        );
        self.counters(
            "tracker_requests_total",
            "Requests received, by protocol and action (udp_xdp: through AF_XDP).",
            &["protocol", "action"],
            by_protocol_action(&s.requests, false),
        );
        self.counters(
            "tracker_responses_total",
            "Responses sent, by protocol and action; action=error counts error responses.",
            &["protocol", "action"],
            by_protocol_action(&s.responses, true),
        );
        self.counters(
            "tracker_errors_total",
            "Error responses, by protocol and kind.",
            &["protocol", "kind"],
            Protocol::ALL.iter().flat_map(|p| {
                ErrorKind::ALL
                    .iter()
                    .map(move |k| (vec![p.name(), k.name()], s.errors[p.index()][k.index()]))
            }),
        );
        self.counters(
            "tracker_requests_dropped_total",
            "Requests shed because a request worker's inbox was full (overload drops, never queues).",
            &["protocol"],
            Protocol::ALL
                .iter()
                .map(|p| (vec![p.name()], s.dropped[p.index()])),
        );
        self.counter(
            "tracker_udp_receive_buffer_drops_total",
            "Datagrams the kernel dropped on the tracker's UDP sockets, almost all for a full receive buffer.",
            s.udp_receive_buffer_drops,
        );
        self.connections(s);
        self.swarm(s);
        self.xdp(s);
        self.process(s);
    }

    fn connections(&self, s: &Snapshot) {
        let c = &s.connections;
        self.gauges(
            "tracker_open_connections",
            "Open TCP connections, by protocol.",
            &["protocol"],
            [Protocol::Http, Protocol::Https, Protocol::Ws, Protocol::Wss]
                .iter()
                .map(|p| (vec![p.name()], s.open_connections[p.index()])),
        );
        self.counter(
            "tracker_connections_accepted_total",
            "TCP connections accepted.",
            c.accepted,
        );
        self.counters(
            "tracker_connections_refused_total",
            "TCP connections closed at once by a limit, by limit.",
            &["limit"],
            Refusal::ALL
                .iter()
                .map(|r| (vec![r.name()], c.refused[r.index()])),
        );
        self.counters(
            "tracker_connection_timeouts_total",
            "TCP connections closed for silence, by kind.",
            &["kind"],
            Timeout::ALL
                .iter()
                .map(|t| (vec![t.name()], c.timeouts[t.index()])),
        );
        self.counter(
            "tracker_tls_handshake_failures_total",
            "TLS handshakes that failed.",
            c.tls_handshake_failures,
        );
        self.counter(
            "tracker_ws_slow_readers_dropped_total",
            "WebSocket connections closed for not reading what they were sent.",
            c.slow_readers,
        );
        self.counters(
            "tracker_webtorrent_relayed_total",
            "WebTorrent offers and answers relayed to another peer, by kind.",
            &["kind"],
            Relay::ALL
                .iter()
                .map(|r| (vec![r.name()], c.relayed[r.index()])),
        );
        self.counter(
            "tracker_webtorrent_relays_dropped_total",
            "WebTorrent offers and answers that could not be delivered.",
            c.relays_dropped,
        );
    }

    fn swarm(&self, s: &Snapshot) {
        let w = &s.swarm;
        self.gauges(
            "tracker_torrents",
            "Torrents with at least one peer, by store.",
            &["store"],
            Store::ALL
                .iter()
                .map(|st| (vec![st.name()], w.torrents[st.index()])),
        );
        let mut peers = Vec::new();
        for f in Family::ALL {
            for r in Role::ALL {
                peers.push((
                    vec![Store::Bittorrent.name(), f.name(), r.name()],
                    w.peers[f.index()][r.index()],
                ));
            }
        }
        for r in Role::ALL {
            peers.push((
                vec![Store::Webtorrent.name(), "webrtc", r.name()],
                w.ws_peers[r.index()],
            ));
        }
        self.gauges(
            "tracker_peers",
            "Peers, by store, address family and role.",
            &["store", "family", "role"],
            peers,
        );
        self.counter(
            "tracker_completed_downloads_total",
            "Announces with event=completed that counted as a download.",
            w.completed,
        );
        self.counters(
            "tracker_announces_refused_total",
            "Announces refused at a swarm limit, by store and limit.",
            &["store", "limit"],
            Store::ALL.iter().flat_map(|st| {
                Limit::ALL
                    .iter()
                    .map(move |l| (vec![st.name(), l.name()], w.refused[st.index()][l.index()]))
            }),
        );
    }

    fn xdp(&self, s: &Snapshot) {
        let help = "1 while the XDP program is attached, labelled with how.";
        let Some(x) = &s.xdp else {
            self.gauges("tracker_xdp_attached", help, &[], [(Labels::new(), 0)]);
            return;
        };
        let afxdp = if x.status.zero_copy {
            "zero_copy"
        } else {
            "copy"
        };
        self.gauges(
            "tracker_xdp_attached",
            help,
            &["iface", "mode", "afxdp"],
            [(
                vec![x.status.iface.as_str(), x.status.mode.as_str(), afxdp],
                1,
            )],
        );
        self.gauge(
            "tracker_xdp_queues",
            "AF_XDP sockets, one per RX queue.",
            x.status.queues as u64,
        );
        self.counters(
            "tracker_xdp_packets_total",
            "Frames the XDP program handled, summed over CPUs, by outcome (answered: connects answered in the kernel; seen: all of them).",
            &["outcome"],
            x.program.iter().map(|(name, v)| (vec![*name], *v)),
        );
        self.counters(
            "tracker_xdp_kernel_events_total",
            "Why the XDP program answered or passed on what it did, summed over CPUs, by event (counted besides the frame's outcome).",
            &["event"],
            x.events.iter().map(|(name, v)| (vec![*name], *v)),
        );
        self.gauge(
            "tracker_xdp_scrape_entries",
            "Torrents whose scrape counts the request workers last wrote to the XDP program's SCRAPE map.",
            x.scrape_entries,
        );
        self.counters(
            "tracker_afxdp_ring_events_total",
            "AF_XDP socket statistics (XDP_STATISTICS) summed over queues, by event.",
            &["event"],
            XSK_STATISTICS
                .iter()
                .zip(x.rings)
                .map(|(name, v)| (vec![*name], v)),
        );
    }

    fn process(&self, s: &Snapshot) {
        let Some(p) = &s.process else {
            return;
        };
        self.float_counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        );
        self.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes,
        );
        self.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        );
        self.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds,
        );
        self.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            p.max_fds,
        );
        self.float_gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{XdpSnapshot, XdpStatus};

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            version: "0.1.0",
            uptime_seconds: 12.5,
            ..Snapshot::default()
        };
        s.requests[Protocol::Udp.index()][Action::Announce.index()] = 7;
        s.responses[Protocol::Wss.index()][Action::Error.index()] = 2;
        s.errors[Protocol::Http.index()][ErrorKind::AccessDenied.index()] = 3;
        s.dropped[Protocol::UdpXdp.index()] = 4;
        s.swarm.peers[Family::Ipv6.index()][Role::Seeder.index()] = 5;
        s.xdp = Some(XdpSnapshot {
            status: XdpStatus {
                iface: "eth0".into(),
                mode: "driver".into(),
                queues: 2,
                zero_copy: false,
            },
            program: vec![("answered", 9), ("scrape_answered", 3)],
            events: vec![("scrape_miss", 2), ("bad_connection_id", 1)],
            rings: [1, 0, 0, 0, 6, 0],
            scrape_entries: 11,
        });
        s
    }

    #[test]
    fn samples_carry_their_labels_and_counters_end_in_total() {
        let text = encode(&sample());
        for line in [
            "tracker_requests_total{action=\"announce\",protocol=\"udp\"} 7",
            "tracker_responses_total{action=\"error\",protocol=\"wss\"} 2",
            "tracker_errors_total{kind=\"access_denied\",protocol=\"http\"} 3",
            "tracker_requests_dropped_total{protocol=\"udp_xdp\"} 4",
            "tracker_peers{family=\"ipv6\",role=\"seeder\",store=\"bittorrent\"} 5",
            "tracker_xdp_packets_total{outcome=\"answered\"} 9",
            "tracker_xdp_packets_total{outcome=\"scrape_answered\"} 3",
            "tracker_xdp_kernel_events_total{event=\"scrape_miss\"} 2",
            "tracker_xdp_kernel_events_total{event=\"bad_connection_id\"} 1",
            "tracker_xdp_scrape_entries 11",
            "tracker_afxdp_ring_events_total{event=\"fill_ring_empty\"} 6",
            "tracker_xdp_attached{afxdp=\"copy\",iface=\"eth0\",mode=\"driver\"} 1",
            "# TYPE tracker_uptime_seconds gauge",
            "# TYPE tracker_requests_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // HTTP has no connects; only WebSockets carry answers.
        assert!(!text.contains("action=\"connect\",protocol=\"http\""));
        assert!(!text.contains("action=\"answer\",protocol=\"udp\""));
    }
}
