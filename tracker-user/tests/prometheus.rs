//! The admin listener as a real Prometheus server (Debian `prometheus`)
//! sees it: it scrapes the running tracker, the request counters it
//! stores grow by the UDP, HTTP and WebTorrent requests sent, and the alert
//! rules of scripts/ evaluate on those series as meant. `promtool` passes
//! the exposition and the rules, and the rules' unit tests.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::external::{free_port, get10, program, query_escape};
use common::http::HttpAnnounce;
use common::ws::Peer;
use common::*;
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// A Prometheus server scraping one target every second and evaluating
/// scripts/tracker-alerts.yml, stopped (and its storage removed) when
/// dropped. The target is labelled as one meant to run XDP.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rules = workspace_file("scripts/tracker-alerts.yml");
        let yaml = [
            "global:",
            "  scrape_interval: 1s",
            "  evaluation_interval: 1s",
            &format!("rule_files: ['{}']", rules.display()),
            "scrape_configs:",
            "  - job_name: tracker",
            "    static_configs:",
            &format!("      - targets: ['{target}']"),
            "        labels:",
            "          xdp: expected",
        ];
        std::fs::write(&config, yaml.join("\n") + "\n").unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Self { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET target` of the HTTP API, as JSON; `None` until it answers.
    fn api(&self, target: &str) -> Option<Value> {
        let (status, body) = get10(self.addr, target)?;
        assert!(status == 200 || status == 503, "{target}: {status} {body}");
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then_some(v)
    }

    /// The single value of an instant `query`, or `None` while it has none.
    fn value(&self, query: &str) -> Option<f64> {
        let v = self.api(&format!("/api/v1/query?query={}", query_escape(query)))?;
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query} has many series: {v}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `query` until `done` holds for its value, for up to 30 s;
    /// the last value seen.
    fn wait_for(&self, query: &str, done: impl Fn(f64) -> bool) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.value(query);
            if v.is_some_and(&done) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `promtool ARGS`, asserting it exits 0; its stdout and stderr.
fn promtool(promtool: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{text}",
        out.status
    );
    text
}

#[test]
fn prometheus_stores_the_requests_sent_and_evaluates_the_alert_rules() {
    let Some(prometheus) = program(PROMETHEUS, "prometheus", "prometheus") else {
        return;
    };
    let t = Tracker::builder().start();
    let admin = t.admin[0];
    let server = Prometheus::start(&prometheus, admin);

    // The target is up once a scrape succeeded.
    let up = server.wait_for(r#"up{job="tracker"}"#, |v| v == 1.0);
    assert_eq!(
        up,
        Some(1.0),
        "target never up; prometheus log:\n{}",
        server.log()
    );
    let targets = server.api("/api/v1/targets").expect("targets API answers");
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{targets}");
    assert_eq!(active[0]["health"], "up", "{targets}");
    assert_eq!(active[0]["scrapeUrl"], format!("http://{admin}/metrics"));

    let query = |protocol: &str, action: &str| {
        format!(
            r#"sum(tracker_requests_total{{job="tracker",protocol="{protocol}",action="{action}"}})"#
        )
    };
    let sent = [
        ("udp", "connect", 1.0),
        ("udp", "announce", 5.0),
        ("udp", "scrape", 2.0),
        ("http", "announce", 4.0),
        ("http", "scrape", 1.0),
        ("ws", "announce", 3.0),
    ];
    // What Prometheus holds before the traffic (the tracker may count its
    // own start-up, though it does not today).
    let before: Vec<f64> = sent
        .iter()
        .map(|(p, a, _)| {
            server
                .wait_for(&query(p, a), |_| true)
                .unwrap_or_else(|| panic!("no {p} {a} series stored:\n{}", server.log()))
        })
        .collect();

    let udp = Client::new(t.addr());
    udp.connect();
    let hash = random_hash();
    for port in 6881..6886 {
        udp.announce(&Announce::new(hash, port));
    }
    udp.scrape(&[hash]);
    udp.scrape(&[hash, random_hash()]);
    for port in 6886..6890 {
        let r = common::http::get(t.http_addr(), &HttpAnnounce::new(hash, port).target());
        assert_eq!(r.status, 200, "{}", r.body_text());
    }
    let r = common::http::get(
        t.http_addr(),
        &format!(
            "/scrape?info_hash={}",
            common::http::escape(&hash, common::http::Escape::Unreserved)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let mut ws = Peer::connect(t.http_addr());
    let ws_hash = random_hash();
    ws.join(&ws_hash, 100);
    ws.join(&ws_hash, 50);
    ws.join(&ws_hash, 0);

    // One deadline for all: scrapes are every second, so the stored values
    // catch up within a few seconds of the traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    let wrong = loop {
        let wrong: Vec<String> = sent
            .iter()
            .zip(&before)
            .filter_map(|((protocol, action, n), before)| {
                let want = before + n;
                let got = server.value(&query(protocol, action));
                (got != Some(want)).then(|| format!("{protocol} {action}: {got:?}, want {want}"))
            })
            .collect();
        if wrong.is_empty() || Instant::now() > deadline {
            break wrong;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let exposition = common::http::get(admin, "/metrics").body;
    let requests: Vec<&str> = std::str::from_utf8(&exposition)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("tracker_requests_total"))
        .collect();
    assert!(
        wrong.is_empty(),
        "Prometheus did not store the requests sent: {wrong:?}\nthe tracker's /metrics now:\n{}",
        requests.join("\n")
    );

    // The rules run against the real series: this tracker has no XDP, its
    // target says it should, so exactly that alert is pending (its `for:`
    // is minutes), and nothing else is.
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let alerts = server.api("/api/v1/alerts").expect("alerts API answers");
        let list = alerts["data"]["alerts"].as_array().unwrap();
        if !list.is_empty() || Instant::now() > deadline {
            break list.clone();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["labels"]["alertname"], "TrackerXdpMissing");
    assert_eq!(alerts[0]["labels"]["instance"], admin.to_string());
    assert_eq!(alerts[0]["state"], "pending");
    drop(ws);
}

#[test]
fn promtool_passes_the_exposition_after_traffic() {
    let Some(promtool_bin) = program(PROMTOOL, "prometheus", "prometheus") else {
        return;
    };
    let t = Tracker::builder().start();
    let udp = Client::new(t.addr());
    udp.connect();
    let hash = random_hash();
    udp.announce(&Announce::new(hash, 6881).seeder());
    let r = common::http::get(t.http_addr(), &HttpAnnounce::new(hash, 6882).target());
    assert_eq!(r.status, 200);
    let mut ws = Peer::connect(t.http_addr());
    ws.join(&random_hash(), 10);

    let metrics = common::http::get(t.admin[0], "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    // promtool prints one line per problem (names, types, help, units)
    // and nothing when there is none.
    let out = promtool(&promtool_bin, &["check", "metrics"], Some(&metrics.body));
    assert_eq!(out, "", "promtool check metrics found problems");
}

#[test]
fn promtool_passes_the_alert_rules_and_their_unit_tests() {
    let Some(promtool_bin) = program(PROMTOOL, "prometheus", "prometheus") else {
        return;
    };
    let rules = workspace_file("scripts/tracker-alerts.yml");
    let out = promtool(
        &promtool_bin,
        &["check", "rules", rules.to_str().unwrap()],
        None,
    );
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    // Each alert fires on the series meant to trip it and on no other.
    let tests = workspace_file("scripts/tracker-alerts.test.yml");
    let out = promtool(
        &promtool_bin,
        &["test", "rules", tests.to_str().unwrap()],
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");

    // The operator doc shows the very rules that are checked here.
    let doc = std::fs::read_to_string(workspace_file("docs/operations.md")).unwrap();
    let file = std::fs::read_to_string(&rules).unwrap();
    assert!(
        doc.contains(&file),
        "docs/operations.md must quote scripts/tracker-alerts.yml verbatim"
    );
}
