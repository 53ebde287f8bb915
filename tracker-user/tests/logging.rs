//! What the tracker writes to stderr: per-module levels (`log_level`,
//! `--log-level`, `RUST_LOG`) and the text and JSON line formats.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Asks the tracker to stop and returns its stderr once it said `stopped`,
/// which it logs after every worker has finished (and logged its own
/// `... stopped` at debug).
fn stop_and_collect(tracker: &Tracker) -> Vec<String> {
    tracker.signal(libc::SIGTERM);
    let stopped = |line: &String| {
        line.ends_with(" tracker_user::server: stopped")
            || (line.contains("\"target\":\"tracker_user::server\"")
                && line.contains("\"msg\":\"stopped\""))
    };
    assert!(
        poll_until(Duration::from_secs(10), || tracker
            .stderr_lines()
            .iter()
            .any(stopped)),
        "tracker did not log `stopped` after SIGTERM; stderr:\n{}",
        tracker.stderr_text()
    );
    tracker.stderr_lines()
}

/// `2026-11-23T19:55:12.123Z`: RFC 3339, UTC, milliseconds.
fn is_rfc3339_utc_millis(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn per_module_levels_pick_what_is_logged() {
    // tracker_user at info: its listening lines must show, or start()
    // would time out. Every module's debug lines stay out.
    let tracker = Tracker::builder()
        .arg("--log-level")
        .arg("warn,tracker_user=info")
        .start();
    let addr = tracker.addr();
    let lines = stop_and_collect(&tracker);
    let text = lines.join("\n");
    // Today's text format, unchanged: timestamp, level padded to five,
    // target, message.
    let listening = lines
        .iter()
        .find(|l| l.contains("UDP listening on"))
        .expect("a UDP listening line");
    assert!(is_rfc3339_utc_millis(&listening[..24]), "{listening}");
    assert_eq!(
        &listening[24..],
        format!(" INFO  tracker_user::server: UDP listening on {addr}")
    );
    assert!(
        !text.contains(" DEBUG "),
        "debug line at warn/info:\n{text}"
    );
    assert!(
        !has_line(&lines, "request worker 0 stopped"),
        "tracker_swarm at warn logged its debug line:\n{text}"
    );

    // The same with tracker_swarm turned up to debug: its worker's debug
    // line appears, while tracker_user's own (`udp worker ... stopped`)
    // and tracker_http_ws's (`http worker ... stopped`) stay out.
    let tracker = Tracker::builder()
        .arg("--log-level")
        .arg("warn,tracker_user=info,tracker_swarm=debug")
        .start();
    let lines = stop_and_collect(&tracker);
    let text = lines.join("\n");
    assert!(
        has_line(
            &lines,
            " DEBUG tracker_swarm::core: request worker 0 stopped"
        ),
        "no debug line from tracker_swarm::core:\n{text}"
    );
    assert!(
        !has_line(&lines, "udp worker"),
        "tracker_user::udp logged at debug:\n{text}"
    );
    assert!(
        !has_line(&lines, "http worker"),
        "tracker_http_ws logged at debug:\n{text}"
    );
}

#[test]
fn rust_log_overrides_the_config_file() {
    // The file silences everything; start() only returns once the
    // listening lines were logged, so RUST_LOG must have replaced it.
    let tracker = Tracker::builder()
        .config("log_level = \"off\"\n")
        .env("RUST_LOG", "warn,tracker_user::server=info")
        .start();
    assert!(!tracker.addrs.is_empty());
    let lines = stop_and_collect(&tracker);
    // tracker_swarm is at warn there, so its debug line stays out.
    assert!(
        !has_line(&lines, "request worker 0 stopped"),
        "{}",
        lines.join("\n")
    );

    // --log-level beats RUST_LOG.
    let tracker = Tracker::builder()
        .config("log_level = \"off\"\n")
        .env("RUST_LOG", "off")
        .arg("--log-level")
        .arg("info")
        .start();
    assert!(!tracker.addrs.is_empty());
}

#[test]
fn bad_rust_log_is_refused_naming_the_variable() {
    let out = Command::new(bin_path())
        .args(["--udp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("RUST_LOG", "info,tracker_swarm=loud")
        .stdin(Stdio::null())
        .output()
        .expect("run tracker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
    assert!(
        err.contains("environment variable RUST_LOG: key `log_level`:")
            && err.contains("`loud` is not a level"),
        "{err}"
    );
}

#[test]
fn json_lines_carry_ts_level_target_and_msg() {
    // Debug for tracker_swarm adds lines from the request worker threads.
    let tracker = Tracker::builder()
        .config("log_level = \"info,tracker_swarm=debug\"\nlog_format = \"json\"\n")
        .start();
    let addr = tracker.addr();
    let lines = stop_and_collect(&tracker);
    assert!(lines.len() >= 4, "{lines:#?}");
    let mut listening = false;
    let mut debug = false;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["level", "msg", "target", "ts"], "{line}");
        let ts = obj["ts"].as_str().expect("ts is a string");
        assert!(is_rfc3339_utc_millis(ts), "{line}");
        let level = obj["level"].as_str().expect("level is a string");
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG"].contains(&level),
            "{line}"
        );
        let target = obj["target"].as_str().expect("target is a string");
        let msg = obj["msg"].as_str().expect("msg is a string");
        if msg == format!("UDP listening on {addr}") {
            assert_eq!((level, target), ("INFO", "tracker_user::server"));
            listening = true;
        }
        if msg == "request worker 0 stopped" {
            assert_eq!((level, target), ("DEBUG", "tracker_swarm::core"));
            debug = true;
        }
    }
    assert!(listening && debug, "{lines:#?}");
}

#[test]
fn log_format_flag_overrides_the_file() {
    let tracker = Tracker::builder()
        .config("log_format = \"text\"\n")
        .arg("--log-format")
        .arg("json")
        .start();
    let lines = tracker.stderr_lines();
    let listening = lines
        .iter()
        .find(|l| l.contains("UDP listening on"))
        .expect("a listening line");
    let v: serde_json::Value =
        serde_json::from_str(listening).unwrap_or_else(|e| panic!("not JSON ({e}): {listening}"));
    assert_eq!(v["msg"], format!("UDP listening on {}", tracker.addr()));
}

#[test]
fn bad_directive_is_a_config_error_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logging.toml");
    std::fs::write(
        &path,
        "# tracker\n\nlog_level = \"info,tracker_swarm=loud\"\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let (status, _out, err) = run_to_exit(&["-c", path, "--udp", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "stderr:\n{err}");
    assert!(
        err.contains(&format!("{path}:3:")) && err.contains("key `log_level`"),
        "stderr does not name {path}:3 and log_level:\n{err}"
    );
    assert!(err.contains("`loud` is not a level"), "{err}");
}
