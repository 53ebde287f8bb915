//! `GET /stats.json`: the same figures as `/metrics`, as one document
//! keyed by label values, plus the rate history the stats page charts.

use serde_json::{json, Map, Value};

use crate::history::RateSample;
use crate::labels::{
    Action, ErrorKind, Family, Limit, Protocol, Refusal, Relay, Role, Store, Timeout,
};
use crate::os::XSK_STATISTICS;
use crate::registry::Snapshot;

/// `{label: value}` for a row of figures indexed by a label enum.
fn by<L: Copy>(labels: &[L], name: impl Fn(L) -> &'static str, values: &[u64]) -> Value {
    let map: Map<String, Value> = labels
        .iter()
        .zip(values)
        .map(|(l, v)| (name(*l).to_owned(), json!(v)))
        .collect();
    Value::Object(map)
}

fn by_protocol<const N: usize, L: Copy>(
    table: &[[u64; N]; Protocol::COUNT],
    labels: &[L],
    name: impl Fn(L) -> &'static str + Copy,
) -> Value {
    let map: Map<String, Value> = Protocol::ALL
        .iter()
        .map(|p| (p.name().to_owned(), by(labels, name, &table[p.index()])))
        .collect();
    Value::Object(map)
}

pub fn encode(s: &Snapshot, history: &[RateSample]) -> Value {
    let c = &s.connections;
    let w = &s.swarm;
    let peers: Map<String, Value> = Family::ALL
        .iter()
        .map(|f| {
            (
                f.name().to_owned(),
                by(Role::ALL, Role::name, &w.peers[f.index()]),
            )
        })
        .collect();
    let refused: Map<String, Value> = Store::ALL
        .iter()
        .map(|st| {
            (
                st.name().to_owned(),
                by(Limit::ALL, Limit::name, &w.refused[st.index()]),
            )
        })
        .collect();
    let xdp = s.xdp.as_ref().map(|x| {
        json!({
            "iface": x.status.iface,
            "mode": x.status.mode,
            "queues": x.status.queues,
            "zero_copy": x.status.zero_copy,
            "program": x.program.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect::<Map<_, _>>(),
            "kernel_events": x.events.iter().map(|(n, v)| ((*n).to_owned(), json!(v))).collect::<Map<_, _>>(),
            "scrape_entries": x.scrape_entries,
            "rings": by(&XSK_STATISTICS, |n| n, &x.rings),
        })
    });
    let process = s.process.map(|p| {
        json!({
            "cpu_seconds": p.cpu_seconds,
            "resident_memory_bytes": p.resident_bytes,
            "virtual_memory_bytes": p.virtual_bytes,
            "open_fds": p.open_fds,
            "max_fds": p.max_fds,
            "start_time_seconds": p.start_time_seconds,
        })
    });
    let history: Vec<Value> = history
        .iter()
        .map(|h| {
            json!({
                "unix_time_seconds": h.unix_time_seconds,
                "requests_per_second": by_f64(&h.requests_per_second),
                "connects_in_kernel_per_second": h.connects_in_kernel_per_second,
                "dropped_per_second": h.dropped_per_second,
                "errors_per_second": h.errors_per_second,
            })
        })
        .collect();
    json!({
        "version": s.version,
        "uptime_seconds": s.uptime_seconds,
        "unix_time_seconds": s.unix_time_seconds,
        "requests": by_protocol(&s.requests, Action::ALL, Action::name),
        "responses": by_protocol(&s.responses, Action::ALL, Action::name),
        "errors": by_protocol(&s.errors, ErrorKind::ALL, ErrorKind::name),
        "dropped": by(Protocol::ALL, Protocol::name, &s.dropped),
        "udp_receive_buffer_drops": s.udp_receive_buffer_drops,
        "connects_in_kernel": s.connects_in_kernel(),
        "connections": {
            "open": by(Protocol::ALL, Protocol::name, &s.open_connections),
            "accepted": c.accepted,
            "refused": by(Refusal::ALL, Refusal::name, &c.refused),
            "timeouts": by(Timeout::ALL, Timeout::name, &c.timeouts),
            "tls_handshake_failures": c.tls_handshake_failures,
            "ws_slow_readers_dropped": c.slow_readers,
            "webtorrent_relayed": by(Relay::ALL, Relay::name, &c.relayed),
            "webtorrent_relays_dropped": c.relays_dropped,
        },
        "swarm": {
            "torrents": by(Store::ALL, Store::name, &w.torrents),
            "peers": peers,
            "webtorrent_peers": by(Role::ALL, Role::name, &w.ws_peers),
            "completed_downloads": w.completed,
            "announces_refused": refused,
        },
        "xdp": xdp,
        "process": process,
        "history": history,
    })
}

fn by_f64(values: &[f64; Protocol::COUNT]) -> Value {
    let map: Map<String, Value> = Protocol::ALL
        .iter()
        .map(|p| (p.name().to_owned(), json!(values[p.index()])))
        .collect();
    Value::Object(map)
}
