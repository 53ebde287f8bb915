//! Runs the real tracker and a short, small UDP load against it, and
//! checks the JSON report. No timing assertions: only that everything was
//! answered, validly, by every kind.

mod common;

use common::{assert_unreachable_fails, one_host_config, run_load, start_tracker};

#[test]
fn udp_load_against_the_real_tracker() {
    let config = one_host_config();
    let (_tracker, addr) = start_tracker(
        &["-c", &config, "--udp", "127.0.0.1:0", "--log-level", "info"],
        "UDP listening on",
    );
    let run = run_load(
        "udp",
        "[profile]\ntorrents = 1000\npeers = 2000\n\n[udp]\nwarmup = 0.5\nsockets_per_worker = 4\n",
        &addr,
    );
    run.assert_clean();
    assert!(run.count("connect_responses") > 0, "{}", run.report);
    let peers = run.get("peers_per_announce").as_f64().expect("f64");
    assert!(peers > 0.0, "{}", run.report);
    assert!(peers <= 30.0, "{}", run.report);
}

#[test]
fn prefill_announces_every_client_first() {
    let config = one_host_config();
    let (_tracker, addr) = start_tracker(
        &["-c", &config, "--udp", "127.0.0.1:0", "--log-level", "info"],
        "UDP listening on",
    );
    // Few torrents and two source addresses: clients of a torrent share
    // ports by chance, so distinct peers come out a little below clients.
    let run = run_load(
        "udp",
        "[profile]\ntorrents = 1000\npeers = 20000\n\n[udp]\nprefill = true\nwarmup = 0.2\n\
         sockets_per_worker = 4\nbind = [\"127.0.0.1\", \"127.0.0.2\"]\n",
        &addr,
    );
    run.assert_clean();
    assert_eq!(run.count("prefill_clients"), 20_000, "{}", run.report);
    assert_eq!(run.count("prefilled_peers"), 20_000, "{}", run.report);
    assert_eq!(run.count("prefill_failed"), 0, "{}", run.report);
    assert!(run.count("prefill_announces_sent") >= 20_000);
    let distinct = run.count("prefill_swarm_peers");
    assert!((15_000..20_000).contains(&distinct), "{}", run.report);
    let torrents = run.count("prefill_swarm_torrents");
    assert!((1..=1000).contains(&torrents), "{}", run.report);
    let seconds = run.get("prefill_seconds").as_f64().expect("f64");
    assert!(seconds > 0.0 && seconds < 30.0, "{}", run.report);
    assert!(run
        .stderr
        .contains("prefill: 20000 of 20000 clients confirmed"));
    // The tracker now holds them all: announces get full answers at once.
    let peers = run.get("peers_per_announce").as_f64().expect("f64");
    assert!(peers > 25.0, "{}", run.report);
}

#[test]
fn unreachable_tracker_fails_clearly() {
    // Bind then drop a socket: the port is (almost surely) closed.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("ephemeral port")
        .port();
    assert_unreachable_fails("udp", port, "");
}
