//! aquatic_udp_load_test as a second generator for the loopback scenario,
//! so no UDP figure rests on our own generator alone.
//!
//! It differs from tracker-load in ways that favour different trackers
//! (docs/benchmarks.md, "Two generators"): it keeps a window of requests
//! in flight and sends more only while nine in ten are answered; it
//! draws connects, announces and scrapes 50 : 50 : 1 from the same
//! stream; it acquires one connection id per socket at start and reuses
//! it; it sends from four sockets on 127.0.0.1; and it counts a response
//! by its action without checking its contents. It has no prefill and
//! binds to loopback addresses only, so it runs in scenario (a) alone.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

/// The crate, as `cargo install` names it and its binary.
pub const NAME: &str = "aquatic_udp_load_test";

/// Its report interval: it averages whole 5-second intervals.
const INTERVAL_S: u64 = 5;

/// The warm-up and measured seconds rounded up to whole report
/// intervals, since it can only leave out whole intervals.
pub fn window(warmup: u64, seconds: u64) -> (u64, u64) {
    let round = |s: u64| s.div_ceil(INTERVAL_S).max(1) * INTERVAL_S;
    (round(warmup), round(seconds))
}

/// Writes its config: aquatic's default profile (its own defaults), one
/// worker, the measured window as `summarize_last`.
pub fn write_config(
    work: &Path,
    tag: &str,
    addr: SocketAddr,
    warmup: u64,
    seconds: u64,
) -> Result<PathBuf> {
    let mut text = String::from("# written by cargo xtask bench udp\n");
    let _ = writeln!(text, "server_address = \"{addr}\"");
    let _ = writeln!(text, "log_level = \"error\"");
    let _ = writeln!(text, "workers = 1");
    let _ = writeln!(text, "duration = {}", warmup + seconds);
    let _ = writeln!(text, "summarize_last = {seconds}");
    let _ = writeln!(text, "extra_statistics = false");
    let path = work.join(format!("{tag}.aquatic-load.toml"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Its printed report as the JSON our generator gives, for the keys the
/// bench reads: `responses_per_second`, `requests_per_second` (the mean
/// of the intervals it summarised), `loss_rate`, `error_responses` (per
/// second × window) and `duration_secs`.
pub fn report_to_json(stdout: &str, seconds: u64) -> Result<serde_json::Value> {
    let number = |line: &str, prefix: &str| -> Option<f64> {
        let rest = line.trim().strip_prefix(prefix)?;
        rest.trim().trim_end_matches("/second").trim().parse().ok()
    };
    let (_, report) = stdout
        .split_once("# aquatic load test report")
        .context("aquatic_udp_load_test printed no report")?;
    let find = |prefix: &str| report.lines().find_map(|l| number(l, prefix));
    let responses = find("Average responses per second:")
        .context("no `Average responses per second` in aquatic_udp_load_test's report")?;
    let errors = find("- Error responses:").unwrap_or(0.0);
    let connects = find("- Connect responses:").unwrap_or(f64::NAN);
    // The per-interval lines before the report; the last ones are the
    // summarised window.
    let intervals = (seconds / INTERVAL_S).max(1) as usize;
    let requests: Vec<f64> = stdout
        .lines()
        .filter_map(|l| number(l, "Requests out:"))
        .collect();
    let last = &requests[requests.len().saturating_sub(intervals)..];
    let requests_per_second = if last.is_empty() {
        f64::NAN
    } else {
        last.iter().sum::<f64>() / last.len() as f64
    };
    Ok(json!({
        "generator": NAME,
        "duration_secs": seconds as f64,
        "responses_per_second": responses,
        "requests_per_second": requests_per_second,
        "loss_rate": (1.0 - responses / requests_per_second).max(0.0),
        "error_responses": (errors * seconds as f64).round(),
        "connects_sent": connects * seconds as f64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Starting client with config: Config {}\n\n\
        Requests out: 100.00/second\nResponses in: 90.00/second\n\
        Requests out: 300000.00/second\nResponses in: 290000.00/second\n  - Connect responses:  1.00\n\
        Requests out: 310000.00/second\nResponses in: 300000.00/second\n\n\
        # aquatic load test report\n\nTest ran for 15 seconds (only last 10 included in summary)\n\
        Average responses per second: 295000.00\n  - Connect responses:  145000.00\n\
          - Announce responses: 147000.00\n  - Scrape responses:   3000.00\n\
          - Error responses:    0.50\n\nConfig: Config {}\n";

    #[test]
    fn the_report_becomes_our_generators_keys() {
        let j = report_to_json(OUT, 10).unwrap();
        assert_eq!(j["responses_per_second"], 295000.0);
        assert_eq!(j["requests_per_second"], 305000.0);
        assert_eq!(j["error_responses"], 5.0);
        assert_eq!(j["connects_sent"], 1_450_000.0);
        let loss = j["loss_rate"].as_f64().unwrap();
        assert!((loss - (1.0 - 295.0 / 305.0)).abs() < 1e-9);
        assert!(report_to_json("Requests out: 1/second\n", 10).is_err());
    }

    #[test]
    fn windows_are_whole_report_intervals() {
        assert_eq!(window(3, 12), (5, 15));
        assert_eq!(window(5, 10), (5, 10));
        assert_eq!(window(0, 1), (5, 5));
    }
}
