//! `GET /stats` on the admin listener, opened in headless Chromium (Debian
//! `chromium`) after known UDP, HTTP and WebTorrent traffic: the figures
//! the page shows once its script ran are `/stats.json`'s, and a
//! screenshot is left in `target/stats-page.png` for a person to look at.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::external::{program, target_dir};
use common::http::HttpAnnounce;
use common::netns::{in_ns, require_root, NetSpec, TestNet};
use common::ws::Peer;
use common::*;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

fn stats_json(admin: SocketAddr) -> Value {
    let r = common::http::get(admin, "/stats.json");
    assert_eq!(r.status, 200, "{}", r.body_text());
    serde_json::from_slice(&r.body).expect("/stats.json is JSON")
}

/// The value at a dotted path of the page's `data-figure` attributes;
/// `last` is an array's newest element.
fn at<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(json, |v, part| match v {
        Value::Array(items) if part == "last" => items.last(),
        _ => v.get(part),
    })
}

/// A JSON value as the page writes it into `data-value` (JavaScript's
/// `String(v)`).
fn as_page_writes_it(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs Chromium headless on `url` with `args`, a fresh profile and
/// nothing that talks to the internet, in network namespace `netns` if
/// given; its stdout. Killed after 60 s.
fn chromium(chromium: &Path, url: &str, args: &[&str], netns: Option<&str>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/var/run/netns/{ns}")).arg(chromium);
            c
        }
        None => Command::new(chromium),
    };
    let mut child = command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--hide-scrollbars",
            // Long enough for the first fetch of /stats.json and the
            // drawing after it; virtual time waits for the network.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Its crash database and caches go with the profile, not into the
        // home directory of whoever runs the tests.
        .env("HOME", profile.path())
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over 60 s on {url}: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "chromium {args:?} {url}: {status}\n{stderr}"
    );
    out.join().unwrap().expect("chromium's stdout is UTF-8")
}

/// One element that shows a figure.
#[derive(Debug)]
struct Figure {
    value: String,
    format: Option<String>,
    text: String,
}

/// Every `data-figure` element of a serialised DOM, by path. Chromium
/// writes attributes as `name="value"` with `&`, `"`, `<`, `>` escaped.
fn figures(dom: &str) -> BTreeMap<String, Figure> {
    // The script's own text has `data-figure=` in its templates.
    let dom = &dom[..dom.find("<script").unwrap_or(dom.len())];
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&")
    };
    let mut found = BTreeMap::new();
    let mut rest = dom;
    while let Some(i) = rest.find(" data-figure=\"") {
        let start = rest[..i].rfind('<').expect("attribute inside a tag");
        let end = i + rest[i..].find('>').expect("tag ends");
        let tag = &rest[start..end];
        let text_end = rest[end..].find('<').map_or(rest.len(), |j| end + j);
        let text = unescape(&rest[end + 1..text_end]);
        let attr = |name: &str| {
            let key = format!(" {name}=\"");
            tag.find(&key).map(|k| {
                let v = &tag[k + key.len()..];
                unescape(&v[..v.find('"').expect("attribute value ends")])
            })
        };
        let path = attr("data-figure").unwrap();
        let value = attr("data-value").unwrap_or_else(|| {
            panic!("figure {path} has no data-value: the script did not fill it: {tag}")
        });
        let figure = Figure {
            value,
            format: attr("data-format"),
            text,
        };
        assert!(
            found.insert(path.clone(), figure).is_none(),
            "{path} is shown twice"
        );
        rest = &rest[text_end..];
    }
    found
}

/// The lines drawn in the page's chart.
fn chart_lines(dom: &str) -> usize {
    let start = dom
        .find("<svg id=\"chart\"")
        .expect("the page has its chart");
    let end = start + dom[start..].find("</svg>").expect("the chart ends");
    dom[start..end].matches("<polyline").count()
}

/// The series the page draws: those with a rate above zero in the history.
fn series_with_traffic(json: &Value) -> usize {
    let history = json["history"].as_array().unwrap();
    if history.len() < 2 {
        return 0;
    }
    let nonzero = |f: &dyn Fn(&Value) -> f64| history.iter().any(|h| f(h) > 0.0);
    let protocols = json["requests"].as_object().unwrap().keys();
    protocols
        .filter(|p| nonzero(&|h| h["requests_per_second"][p.as_str()].as_f64().unwrap()))
        .count()
        + usize::from(nonzero(&|h| {
            h["connects_in_kernel_per_second"].as_f64().unwrap()
        }))
        + usize::from(nonzero(&|h| h["dropped_per_second"].as_f64().unwrap()))
        + usize::from(nonzero(&|h| h["errors_per_second"].as_f64().unwrap()))
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_page_is_self_contained_html() {
    let t = Tracker::builder().start();
    let r = common::http::get(t.admin[0], "/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = String::from_utf8(r.body).expect("the page is UTF-8");
    assert!(page.starts_with("<!doctype html>"));
    // Nothing loaded from elsewhere: an admin network may have no
    // internet, and the page must not tell a third party it was opened.
    for outside in [
        "http://", "https://", "src=", "href=", "url(", "@import", "<link",
    ] {
        assert!(!page.contains(outside), "the page refers to {outside}");
    }
    // …and the browser enforces it: the Chromium tests below show the
    // page still works under this policy.
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; connect-src 'self';"
    ));
    assert_eq!(page.matches("fetch(").count(), 1);
    assert!(page.contains("fetch(\"/stats.json\", "));
}

#[test]
fn chromium_shows_the_figures_of_stats_json() {
    let Some(chromium_bin) = program(CHROMIUM, "chromium", "stats_page") else {
        return;
    };
    let t = Tracker::builder().start();
    let admin = t.admin[0];

    // Known traffic: a UDP swarm of two leechers and a seeder, an HTTP one
    // of a seeder and a leecher, a WebTorrent one of a seeder and a leecher.
    let udp = Client::new(t.addr());
    udp.connect();
    let udp_hash = random_hash();
    udp.announce(&Announce::new(udp_hash, 6881));
    udp.announce(&Announce::new(udp_hash, 6882));
    udp.announce(&Announce::new(udp_hash, 6883).seeder());
    let http_hash = random_hash();
    for a in [
        HttpAnnounce::new(http_hash, 6884).seeder(),
        HttpAnnounce::new(http_hash, 6885),
    ] {
        let r = common::http::get(t.http_addr(), &a.target());
        assert_eq!(r.status, 200, "{}", r.body_text());
    }
    let ws_hash = random_hash();
    let mut ws_seeder = Peer::connect(t.http_addr());
    ws_seeder.join(&ws_hash, 0);
    let mut ws_leecher = Peer::connect(t.http_addr());
    ws_leecher.join(&ws_hash, 100);
    let traffic_end = stats_json(admin)["unix_time_seconds"].as_f64().unwrap();

    // Swarm figures are published after each batch, and the chart needs a
    // rate sample taken after the traffic (every 5 s) and one before it.
    // Requests are counted by the front ends as they arrive.
    let expected = [
        ("swarm.torrents.bittorrent", 2),
        ("swarm.torrents.webtorrent", 1),
        ("swarm.peers.ipv4.seeder", 2),
        ("swarm.peers.ipv4.leecher", 3),
        ("swarm.peers.ipv6.seeder", 0),
        ("swarm.peers.ipv6.leecher", 0),
        ("swarm.webtorrent_peers.seeder", 1),
        ("swarm.webtorrent_peers.leecher", 1),
        ("requests.udp.connect", 1),
        ("requests.udp.announce", 3),
        ("requests.http.announce", 2),
        ("requests.ws.announce", 2),
    ];
    let settled = |json: &Value| {
        let history = json["history"].as_array().unwrap();
        expected
            .iter()
            .all(|(path, n)| at(json, path).and_then(Value::as_u64) == Some(*n))
            && history.len() >= 2
            && history.last().unwrap()["unix_time_seconds"]
                .as_f64()
                .unwrap()
                > traffic_end
    };
    let mut before = stats_json(admin);
    let ok = poll_until(Duration::from_secs(20), || {
        before = stats_json(admin);
        settled(&before)
    });
    assert!(ok, "/stats.json never showed the traffic: {before:#}");

    let url = format!("http://{admin}/stats");
    let dom = chromium(&chromium_bin, &url, &["--dump-dom"], None);
    let after = stats_json(admin);
    assert!(
        dom.contains("<body data-state=\"ok\">"),
        "the page did not read /stats.json:\n{dom}"
    );
    let shown = figures(&dom);

    // What the page must show, from what /stats.json has.
    let mut wanted: Vec<String> = expected.iter().map(|(p, _)| (*p).to_owned()).collect();
    for (section, skip) in [
        ("requests", &["connect", "answer", "error"][..]),
        ("errors", &[]),
        ("dropped", &[]),
        ("connections", &["udp", "udp_xdp"]),
        ("swarm", &[]),
    ] {
        leaves(&after[section], section, &mut |path| {
            let last = path.rsplit('.').next().unwrap();
            if !skip.contains(&last) {
                wanted.push(path.to_owned());
            }
        });
    }
    wanted.extend(
        [
            "version",
            "uptime_seconds",
            "udp_receive_buffer_drops",
            "requests.udp.connect",
            "requests.ws.answer",
            "responses.udp.error",
            "responses.http.error",
            "process.resident_memory_bytes",
            "process.open_fds",
            "history.last.requests_per_second.udp",
            "history.last.dropped_per_second",
        ]
        .map(str::to_owned),
    );
    for path in &wanted {
        assert!(shown.contains_key(path), "the page does not show {path}");
    }

    assert_shows_json(&shown, &after, &[]);
    assert!(after["xdp"].is_null(), "{after:#}");
    assert_eq!(shown["xdp"].text, "not attached");
    for (path, n) in expected {
        assert_eq!(shown[path].value, n.to_string(), "{path}");
    }
    // The live figures are there and human-sized.
    assert!(shown["uptime_seconds"].text.ends_with('s'), "{shown:?}");
    assert!(
        shown["process.resident_memory_bytes"].text.ends_with("MiB"),
        "{shown:?}"
    );
    assert_eq!(shown["version"].text, env!("CARGO_PKG_VERSION"));
    // The chart draws one line per series with traffic in the history:
    // udp, http and ws at least.
    assert!(series_with_traffic(&after) >= 3, "{after:#}");
    assert_eq!(chart_lines(&dom), series_with_traffic(&after), "{dom}");
    assert_eq!(series_with_traffic(&before), series_with_traffic(&after));

    screenshot(&chromium_bin, &url, "stats-page.png", None);
    drop((ws_seeder, ws_leecher));
}

/// With the XDP program attached (root: a veth pair between two network
/// namespaces, as in tests/xdp.rs), the XDP card shows how it is attached
/// and what it did, and the page counts the requests that came through
/// AF_XDP and the connects the kernel answered.
#[test]
fn chromium_shows_the_xdp_fast_path() {
    let Some(chromium_bin) = program(CHROMIUM, "chromium", "stats_page") else {
        return;
    };
    require_root(
        "the XDP stats page test attaches XDP (CAP_BPF, CAP_NET_ADMIN); CI runs it as root",
    );
    const SERVER: &str = "10.125.0.1";
    const CLIENT: &str = "10.125.0.2";
    let net = TestNet::new(&NetSpec {
        prefix: "stp",
        v4: (SERVER, CLIENT),
        v6: None,
        queues: 1,
    });
    let t = Tracker::builder()
        .netns(&net.server_ns)
        .udp(&format!("{SERVER}:6969"))
        .arg("--iface")
        .arg(&net.server_if)
        .config(&format!("[xdp]\npin_path = \"{}\"\n", net.pin_dir))
        .start();
    let log = t.stderr_text();
    assert!(log.contains("XDP program attached"), "{log}");
    // The admin listener is on the server namespace's address.
    let admin = t.admin[0];
    let server_ns = net.server_ns.clone();
    let json = move || {
        let ns = server_ns.clone();
        in_ns(&ns, move || stats_json(admin))
    };

    const PEERS: u64 = 3;
    let hash = random_hash();
    for port in 0..PEERS as u16 {
        let socket = in_ns(&net.client_ns, || {
            UdpSocket::bind(format!("{CLIENT}:0")).unwrap()
        });
        let client = Client::from_socket(socket, format!("{SERVER}:6969").parse().unwrap());
        client.announce(&Announce::new(hash, 7000 + port));
    }
    let mut before = json();
    let ok = poll_until(Duration::from_secs(10), || {
        before = json();
        at(&before, "requests.udp_xdp.announce").and_then(Value::as_u64) == Some(PEERS)
            && at(&before, "swarm.peers.ipv4.leecher").and_then(Value::as_u64) == Some(PEERS)
    });
    assert!(ok, "/stats.json never showed the traffic: {before:#}");
    assert!(
        before["connects_in_kernel"].as_u64().unwrap() >= PEERS,
        "{before:#}"
    );

    let url = format!("http://{admin}/stats");
    let dom = chromium(&chromium_bin, &url, &["--dump-dom"], Some(&net.server_ns));
    let after = json();
    assert!(
        dom.contains("<body data-state=\"ok\">"),
        "the page did not read /stats.json:\n{dom}"
    );
    let shown = figures(&dom);
    for path in [
        "xdp",
        "xdp.iface",
        "xdp.mode",
        "xdp.queues",
        "xdp.zero_copy",
        "connects_in_kernel",
        "xdp.program.answered",
        "xdp.program.redirected",
        "xdp.program.scrape_answered",
        "xdp.kernel_events.scrape_miss",
        "xdp.kernel_events.bad_connection_id",
        "xdp.scrape_entries",
        "xdp.rings.rx_dropped",
        "xdp.rings.fill_ring_empty",
        "requests.udp_xdp.announce",
    ] {
        assert!(shown.contains_key(path), "the page does not show {path}");
    }
    // Frames the program merely looked at or passed include whatever the
    // kernel sends on the link by itself, and the ring statistics move
    // while idle (tx_ring_empty counts the idle TX ring).
    assert_shows_json(
        &shown,
        &after,
        &["xdp.program.seen", "xdp.program.passed", "xdp.rings."],
    );
    assert_eq!(shown["xdp"].text, "attached");
    assert_eq!(shown["xdp.iface"].text, net.server_if);
    assert_eq!(shown["xdp.queues"].value, "1");
    assert_eq!(shown["requests.udp_xdp.announce"].value, PEERS.to_string());

    screenshot(
        &chromium_bin,
        &url,
        "stats-page-xdp.png",
        Some(&net.server_ns),
    );
}

/// Saves the page as `target/NAME` for a person to look at, and checks
/// Chromium wrote a whole picture.
fn screenshot(chromium_bin: &Path, url: &str, name: &str, netns: Option<&str>) {
    let png_path: PathBuf = target_dir().join(name);
    let _ = std::fs::remove_file(&png_path);
    chromium(
        chromium_bin,
        url,
        &[
            &format!("--screenshot={}", png_path.display()),
            "--window-size=1280,1600",
        ],
        netns,
    );
    let png = std::fs::read(&png_path).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1280, 1600));
    eprintln!("stats page screenshot: {}", png_path.display());
}

/// Every figure on the page that cannot change between the two reads
/// (`moving` and the live ones aside) is the same as in `json`, in
/// data-value and in the text a person reads.
fn assert_shows_json(shown: &BTreeMap<String, Figure>, json: &Value, moving: &[&str]) {
    let live = ["uptime_seconds", "process.", "history."];
    for (path, figure) in shown {
        if live.iter().chain(moving).any(|m| path.starts_with(m)) {
            continue;
        }
        if path == "xdp" {
            let attached = !json["xdp"].is_null();
            assert_eq!(figure.value, attached.to_string());
            let text = if attached { "attached" } else { "not attached" };
            assert_eq!(figure.text, text);
            continue;
        }
        let value = at(json, path).unwrap_or_else(|| panic!("{path} is not in /stats.json"));
        assert_eq!(figure.value, as_page_writes_it(value), "{path}");
        match figure.format.as_deref() {
            None | Some("bad") => assert_eq!(figure.text.replace(',', ""), figure.value, "{path}"),
            Some("text") => assert_eq!(figure.text, figure.value, "{path}"),
            Some("copy") => {
                let text = if value == true { "zero-copy" } else { "copy" };
                assert_eq!(figure.text, text, "{path}");
            }
            Some(other) => panic!("{path}: no check for format {other}"),
        }
    }
}

/// Calls `f` with the dotted path of every number under `v`.
fn leaves(v: &Value, path: &str, f: &mut dyn FnMut(&str)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                leaves(child, &format!("{path}.{k}"), f);
            }
        }
        Value::Number(_) => f(path),
        _ => {}
    }
}
