//! Where the request worker runs (`[swarm] inline`): in the UDP socket
//! worker's thread on a 1 + 1 topology, seen from outside as the threads
//! the process has and the line it logs, and HTTP/WebSocket still served
//! while UDP keeps that thread busy.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::http::{self as h, HttpAnnounce};
use common::ws::{self as w, announce_msg, random_peer_id};
use common::*;

const INLINE_LINE: &str = "request worker inline in the UDP socket worker's thread";

/// The names of the tracker's threads, from /proc.
fn thread_names(t: &Tracker) -> Vec<String> {
    let tasks = format!("/proc/{}/task", t.pid());
    let mut names: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap_or_else(|e| panic!("{tasks}: {e}"))
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    names
}

/// The thread names once every one of `wanted` shows: a new thread names
/// itself when it first runs, which on a loaded machine can come after
/// the ready line. Gives up after 10 s and returns what it saw.
fn thread_names_once_running(t: &Tracker, wanted: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let names = thread_names(t);
        let all = wanted.iter().all(|w| names.iter().any(|n| n == w));
        if all || std::time::Instant::now() > deadline {
            return names;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Two peers announcing one torrent over UDP see each other: the swarm
/// answers, wherever it runs.
fn udp_swarm_answers(t: &Tracker) {
    let hash = random_hash();
    let first = Client::new(t.addr());
    first.announce(&Announce::new(hash, 4001));
    let second = Client::new(t.addr());
    let r = second.announce(&Announce::new(hash, 4002));
    assert_eq!((r.leechers, r.peers.len()), (2, 1), "{r:?}");
}

#[test]
fn auto_runs_the_request_worker_in_the_udp_thread_with_one_worker_each() {
    let t = Tracker::with_config("[swarm]\nworkers = 1\ninline = \"auto\"\n[udp]\nworkers = 1\n");
    let logged = t.stderr_text();
    assert!(
        logged.contains(&format!("{INLINE_LINE} (swarm.inline = auto)")),
        "{logged}"
    );
    let names = thread_names_once_running(&t, &["udp-0"]);
    assert!(names.iter().any(|n| n == "udp-0"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("swarm-")), "{names:?}");
    udp_swarm_answers(&t);
}

#[test]
fn auto_with_more_workers_and_off_keep_request_worker_threads() {
    let cases = [
        (
            "[swarm]\nworkers = 2\ninline = \"auto\"\n[udp]\nworkers = 1\n",
            "request workers: 2 thread(s) of their own (swarm.inline = auto)",
            &["swarm-0", "swarm-1"][..],
        ),
        (
            "[swarm]\nworkers = 1\ninline = \"off\"\n[udp]\nworkers = 1\n",
            "request workers: 1 thread(s) of their own (swarm.inline = off)",
            &["swarm-0"][..],
        ),
    ];
    for (config, line, threads) in cases {
        let t = Tracker::with_config(config);
        let logged = t.stderr_text();
        assert!(logged.contains(line), "{config}: {logged}");
        assert!(!logged.contains(INLINE_LINE), "{config}: {logged}");
        let names = thread_names_once_running(&t, threads);
        for thread in threads {
            assert!(names.iter().any(|n| n == thread), "{config}: {names:?}");
        }
        udp_swarm_answers(&t);
    }
}

#[test]
fn inline_on_is_refused_with_two_request_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inline.toml");
    std::fs::write(&path, "[swarm]\nworkers = 2\ninline = \"on\"\n").unwrap();
    let path = path.to_str().unwrap();
    let (status, _out, err) = run_to_exit(&["-c", path, "--udp", "127.0.0.1:0"]);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("key `swarm.workers`: must be 1 when swarm.inline is \"on\""),
        "{err}"
    );
}

/// Sends announces over many torrents as fast as the tracker answers
/// them, counting answers, until `stop`.
fn udp_load(tracker: std::net::SocketAddr, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let client = Client::new(tracker);
    let conn_id = client.connect();
    client
        .sock
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let hashes: Vec<[u8; 20]> = (0..256).map(|_| random_hash()).collect();
    let mut buf = [0u8; 2048];
    let mut txid = 0u32;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..32 {
            txid = txid.wrapping_add(1);
            let hash = hashes[txid as usize % hashes.len()];
            let port = 1000 + (txid % 5000) as u16;
            let datagram = Announce::new(hash, port).encode(conn_id, txid);
            client.send(&datagram);
        }
        while let Ok(n) = client.sock.recv(&mut buf) {
            if n >= 8 && buf[..4] == ACTION_ANNOUNCE.to_be_bytes() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn http_wakes_the_idle_udp_thread_that_runs_the_request_worker() {
    let t = Tracker::with_config("[swarm]\nworkers = 1\ninline = \"on\"\n[udp]\nworkers = 1\n");
    assert!(t.stderr_text().contains(INLINE_LINE), "{}", t.stderr_text());
    let hash = random_hash();
    let mut slowest = Duration::ZERO;
    for port in 3000..3010 {
        // The socket thread is asleep in its poll, for up to 100 ms.
        thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        let r = h::announce(t.http_addr(), &HttpAnnounce::new(hash, port));
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.incomplete, i64::from(port - 3000 + 1), "announce {port}");
    }
    assert!(
        slowest < Duration::from_millis(40),
        "an HTTP announce waited {slowest:?} for the idle socket thread"
    );
}

#[test]
fn http_and_ws_are_served_while_udp_load_runs_inline() {
    // One host announces every peer of the load.
    let t = Tracker::with_config(&format!(
        "{MANY_PEERS_PER_IP}workers = 1\ninline = \"on\"\n[udp]\nworkers = 1\n"
    ));
    assert!(t.stderr_text().contains(INLINE_LINE), "{}", t.stderr_text());
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, answered, addr) = (stop.clone(), answered.clone(), t.addr());
        thread::spawn(move || udp_load(addr, stop, answered))
    };
    // The load is under way before the first HTTP request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered.load(Ordering::Relaxed) < 1000 {
        assert!(Instant::now() < deadline, "the UDP load got no answers");
        thread::sleep(Duration::from_millis(10));
    }

    let hash = random_hash();
    let mut slowest = Duration::ZERO;
    let before = answered.load(Ordering::Relaxed);
    // Long enough for many rounds of the load.
    let phase = Instant::now();
    for port in 2000.. {
        if phase.elapsed() > Duration::from_millis(300) {
            break;
        }
        let started = Instant::now();
        let r = h::announce(t.http_addr(), &HttpAnnounce::new(hash, port));
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.incomplete, i64::from(port - 2000 + 1), "announce {port}");
    }
    let mut ws = w::connect(t.http_addr(), "/announce");
    let ws_hash = random_hash();
    let started = Instant::now();
    ws.send_json(&announce_msg(
        &ws_hash,
        &random_peer_id(),
        0,
        Some("started"),
        None,
        &[],
    ));
    let reply = ws.announce_reply(&ws_hash);
    slowest = slowest.max(started.elapsed());
    assert_eq!(w::int_at(&reply, "complete"), 1, "{reply}");

    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    eprintln!("UDP answers while HTTP/WS were served: {during}; slowest HTTP/WS: {slowest:?}");
    assert!(during > 100, "UDP went on with {during} answers only");
    // Well under the 100 ms the socket thread sleeps when idle: HTTP and
    // WS batches wake it rather than wait for its next round.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest HTTP/WS answer under UDP load: {slowest:?}"
    );
}
