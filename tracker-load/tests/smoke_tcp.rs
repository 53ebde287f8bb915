//! Runs the real tracker's HTTP and WebSocket server, plain and TLS, and a
//! short, small load of each protocol against it, and checks the JSON
//! report. No timing assertions: only that everything was answered, validly,
//! by every kind.

mod common;

use std::net::TcpListener;

use common::{
    assert_unreachable_fails, one_host_config, run_load, start_tracker, temp_path, Run,
    ONE_HOST_SWARM,
};

/// A small swarm: WebSocket connections then stay under the tracker's
/// default cap of torrents per connection (ws.max_torrents_per_connection,
/// 512), since each connection announces the torrents of its clients.
const PROFILE: &str = "[profile]\ntorrents = 50\npeers = 400\n";

fn http_config(tls: bool) -> String {
    format!("{PROFILE}\n[http]\nwarmup = 0.5\nconnections = 8\ntls = {tls}\n")
}

fn ws_config(tls: bool) -> String {
    format!("{PROFILE}\n[ws]\nwarmup = 0.5\nconnections = 8\ntls = {tls}\n")
}

fn check_http(run: &Run) {
    run.assert_clean();
    assert_eq!(run.count("connections_opened"), 8, "{}", run.report);
    let peers = run.get("peers_per_announce").as_f64().expect("f64");
    assert!(peers > 0.0 && peers <= 30.0, "{}", run.report);
}

fn check_ws(run: &Run) {
    run.assert_clean();
    assert_eq!(run.count("connections_opened"), 8, "{}", run.report);
    // Offers went around and were answered, and the answers came back.
    assert!(run.count("offers_received") > 0, "{}", run.report);
    assert!(run.count("answers_sent") > 0, "{}", run.report);
    assert!(run.count("answers_received") > 0, "{}", run.report);
}

#[test]
fn http_and_ws_load_against_the_real_tracker() {
    let config = one_host_config();
    let (_tracker, addr) = start_tracker(
        &[
            "-c",
            &config,
            "--udp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ],
        "HTTP listening on",
    );
    check_http(&run_load("http", &http_config(false), &addr));
    check_ws(&run_load("ws", &ws_config(false), &addr));
}

#[test]
fn https_and_wss_load_against_the_real_tracker() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert_path = temp_path("cert.pem");
    let key_path = temp_path("key.pem");
    std::fs::write(&cert_path, key.cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");
    let config_path = temp_path("tracker.toml");
    std::fs::write(
        &config_path,
        format!(
            "{ONE_HOST_SWARM}[udp]\nlisten = []\n\n[http]\nlisten = []\ntls_listen = [\"127.0.0.1:0\"]\n\n\
             [tls]\ncertificate_path = \"{}\"\nprivate_key_path = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    )
    .expect("write tracker config");
    let config = config_path.to_str().expect("UTF-8 temp path");
    let (tracker, addr) =
        start_tracker(&["-c", config, "--log-level", "info"], "HTTPS listening on");
    let https = run_load("http", &http_config(true), &addr);
    let wss = run_load("ws", &ws_config(true), &addr);
    drop(tracker);
    for path in [&cert_path, &key_path, &config_path] {
        let _ = std::fs::remove_file(path);
    }
    check_http(&https);
    check_ws(&wss);
}

#[test]
fn unreachable_tcp_tracker_fails_clearly() {
    // Bind then drop a listener: the port is (almost surely) closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    for protocol in ["http", "ws"] {
        // The connect error says why.
        assert_unreachable_fails(protocol, port, "refused");
    }
}
