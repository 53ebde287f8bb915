//! Counting, the latency histogram, and the end-of-run report: the JSON
//! object the bench harness parses and the human summary, for every
//! protocol (the per-kind counts differ, the rest is shared).

use std::fmt::Write as _;

use serde::Serialize;

/// Error messages kept for the report; later ones are only counted.
const KEPT_ERROR_MESSAGES: usize = 5;

/// Latency histogram over microseconds with log-linear buckets: exact below
/// 16, then 16 buckets per power of two, so any percentile is within about
/// 6 % of the truth for fixed memory and no per-sample allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
}

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(value: u64) -> usize {
        if value < SUB {
            return value as usize;
        }
        let exp = 63 - value.leading_zeros();
        let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
        ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
    }

    /// The largest value that lands in bucket `index`.
    fn upper_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let shift = index / SUB - 1;
        let lower = (SUB + index % SUB) << shift;
        lower.saturating_add((1u64 << shift) - 1)
    }

    #[inline]
    pub fn record(&mut self, value: u64) {
        self.counts[Self::index(value)] += 1;
        self.count += 1;
        self.max = self.max.max(value);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at or below which `percent` % of samples fall, rounded up
    /// to its bucket's bound (never above the largest sample). 0 when empty.
    pub fn percentile(&self, percent: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((percent / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper_bound(index).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }
}

/// Which load was run: it decides which per-kind counts the report has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Http,
    Ws,
}

impl Protocol {
    /// How the protocol is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Http => "HTTP",
            Protocol::Ws => "WebSocket",
        }
    }
}

/// Why a response was counted invalid; only the total is in the JSON, the
/// breakdown is in the human summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidCounts {
    /// Matches no outstanding request: an unknown UDP transaction id, an
    /// HTTP response nothing asked for, a WebSocket reply for an info hash
    /// with no announce outstanding, or an answer to an offer never made.
    pub unknown_transaction: u64,
    /// A response of another kind than the request it answers (or a
    /// WebSocket message with no known action).
    pub wrong_action: u64,
    /// Does not parse (BEP 15, HTTP framing, bencode or JSON), or was cut
    /// off by the receive buffer.
    pub malformed: u64,
    /// An announce answer with more peers than numwant.
    pub too_many_peers: u64,
    /// A scrape answer with another number of entries than hashes asked
    /// (or, over HTTP and WebSocket, other hashes than asked).
    pub wrong_scrape_count: u64,
    /// Well-formed but wrong: an offer relayed back to the peer that made
    /// it, or an SDP other than the one sent.
    pub wrong_content: u64,
}

impl InvalidCounts {
    pub fn total(&self) -> u64 {
        self.unknown_transaction
            + self.wrong_action
            + self.malformed
            + self.too_many_peers
            + self.wrong_scrape_count
            + self.wrong_content
    }

    fn merge(&mut self, o: &InvalidCounts) {
        self.unknown_transaction += o.unknown_transaction;
        self.wrong_action += o.wrong_action;
        self.malformed += o.malformed;
        self.too_many_peers += o.too_many_peers;
        self.wrong_scrape_count += o.wrong_scrape_count;
        self.wrong_content += o.wrong_content;
    }
}

/// What one worker counted over the measured window: requests sent in it,
/// and the answers (or losses) of those requests. Counts a protocol has no
/// use for stay 0.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub connects_sent: u64,
    pub announces_sent: u64,
    pub scrapes_sent: u64,
    /// WebSocket announces that answer a relayed offer.
    pub answers_sent: u64,
    pub connect_responses: u64,
    pub announce_responses: u64,
    pub scrape_responses: u64,
    /// WebSocket replies to our answers (aquatic_ws sends one, the
    /// reference tracker does not).
    pub answer_responses: u64,
    /// WebSocket offers relayed to us from other peers.
    pub offers_received: u64,
    /// WebSocket answers relayed to us, to offers we made.
    pub answers_received: u64,
    pub error_responses: u64,
    pub invalid: InvalidCounts,
    /// Unanswered after the request timeout (or at the end of the run).
    pub lost: u64,
    /// Answers that came after their request was counted lost, or twice.
    pub late: u64,
    /// Peers in all valid announce answers.
    pub peers_received: u64,
    /// Requests the kernel refused to send (e.g. ECONNREFUSED from an
    /// earlier ICMP port unreachable); they are not counted as sent.
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Round trip of every matched answer, in microseconds.
    pub latency: Histogram,
    /// The first few BEP 15 error messages, lossily decoded.
    pub error_messages: Vec<String>,
    /// The first socket error, to explain a run that got no answers.
    pub first_io_error: Option<String>,
    /// Why UDP GSO was turned off, if the kernel refused it.
    pub gso_unavailable: Option<String>,
    /// TCP connections (HTTP, WebSocket) set up, those that failed to
    /// connect, and those closed before the run ended, by either side.
    pub connections_opened: u64,
    pub connect_failures: u64,
    pub connections_lost: u64,
}

impl Stats {
    /// Everything sent: requests, and WebSocket answers.
    pub fn requests_sent(&self) -> u64 {
        self.connects_sent + self.announces_sent + self.scrapes_sent + self.answers_sent
    }

    /// Requests that call for exactly one answer, so loss is counted
    /// against them: all but WebSocket answers, which some trackers reply
    /// to and some do not.
    pub fn requests_answerable(&self) -> u64 {
        self.connects_sent + self.announces_sent + self.scrapes_sent
    }

    /// Every answer matched to a measured request (invalid ones included),
    /// plus, over WebSocket, every message relayed to us in the window.
    pub fn responses_received(&self) -> u64 {
        self.connect_responses
            + self.announce_responses
            + self.scrape_responses
            + self.answer_responses
            + self.offers_received
            + self.answers_received
            + self.error_responses
            + self.invalid.total()
    }

    /// Keeps the message if it is among the first few; cold path.
    pub fn keep_error_message(&mut self, message: &[u8]) {
        if self.error_messages.len() < KEPT_ERROR_MESSAGES {
            self.error_messages
                .push(String::from_utf8_lossy(message).into_owned());
        }
    }

    pub fn note_io_error(&mut self, what: &str, err: &std::io::Error) {
        if self.first_io_error.is_none() {
            self.first_io_error = Some(format!("{what}: {err}"));
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.connects_sent += o.connects_sent;
        self.announces_sent += o.announces_sent;
        self.scrapes_sent += o.scrapes_sent;
        self.answers_sent += o.answers_sent;
        self.connect_responses += o.connect_responses;
        self.announce_responses += o.announce_responses;
        self.scrape_responses += o.scrape_responses;
        self.answer_responses += o.answer_responses;
        self.offers_received += o.offers_received;
        self.answers_received += o.answers_received;
        self.error_responses += o.error_responses;
        self.invalid.merge(&o.invalid);
        self.lost += o.lost;
        self.late += o.late;
        self.peers_received += o.peers_received;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.latency.merge(&o.latency);
        for m in &o.error_messages {
            if self.error_messages.len() < KEPT_ERROR_MESSAGES {
                self.error_messages.push(m.clone());
            }
        }
        if self.first_io_error.is_none() {
            self.first_io_error.clone_from(&o.first_io_error);
        }
        if self.gso_unavailable.is_none() {
            self.gso_unavailable.clone_from(&o.gso_unavailable);
        }
        self.connections_opened += o.connections_opened;
        self.connect_failures += o.connect_failures;
        self.connections_lost += o.connections_lost;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// The JSON contract with the bench harness: exactly these fields, counted
/// over the measured window only. Do not rename or drop any. The per-kind
/// counts in the middle depend on the protocol ([`Kinds`]); the rest is
/// the same for all.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    #[serde(skip)]
    pub protocol: Protocol,
    pub duration_secs: f64,
    /// Everything sent (over WebSocket, answers to offers included).
    pub requests_sent: u64,
    /// Every answer, plus every message relayed to us over WebSocket.
    pub responses_received: u64,
    pub requests_per_second: f64,
    pub responses_per_second: f64,
    #[serde(flatten)]
    pub kinds: Kinds,
    pub error_responses: u64,
    pub invalid_responses: u64,
    pub lost: u64,
    /// Lost over the requests that call for an answer.
    pub loss_rate: f64,
    pub peers_per_announce: f64,
    pub latency_us: Latency,
    /// What `udp.prefill` did before the warmup, when it ran.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<Prefill>,
}

/// The prefill's figures, flattened into the report when it ran.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prefill {
    pub prefill_seconds: f64,
    /// Clients whose announce was answered.
    pub prefilled_peers: u64,
    /// Clients announced: the profile's peers.
    pub prefill_clients: u64,
    /// Clients never answered, after every send.
    pub prefill_failed: u64,
    /// Announces sent, repeats included.
    pub prefill_announces_sent: u64,
    /// Distinct (source address, port, torrent) among the confirmed
    /// clients: the peers the tracker should hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_swarm_peers: Option<u64>,
    /// Distinct torrents among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_swarm_torrents: Option<u64>,
}

/// The per-kind counts of each protocol, flattened into the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Kinds {
    Udp {
        connects_sent: u64,
        announces_sent: u64,
        scrapes_sent: u64,
        connect_responses: u64,
        announce_responses: u64,
        scrape_responses: u64,
    },
    Http {
        announces_sent: u64,
        scrapes_sent: u64,
        announce_responses: u64,
        scrape_responses: u64,
        connections_opened: u64,
        connections_lost: u64,
    },
    Ws {
        announces_sent: u64,
        answers_sent: u64,
        scrapes_sent: u64,
        announce_responses: u64,
        answer_responses: u64,
        offers_received: u64,
        answers_received: u64,
        scrape_responses: u64,
        connections_opened: u64,
        connections_lost: u64,
    },
}

impl Kinds {
    fn new(protocol: Protocol, s: &Stats) -> Self {
        match protocol {
            Protocol::Udp => Kinds::Udp {
                connects_sent: s.connects_sent,
                announces_sent: s.announces_sent,
                scrapes_sent: s.scrapes_sent,
                connect_responses: s.connect_responses,
                announce_responses: s.announce_responses,
                scrape_responses: s.scrape_responses,
            },
            Protocol::Http => Kinds::Http {
                announces_sent: s.announces_sent,
                scrapes_sent: s.scrapes_sent,
                announce_responses: s.announce_responses,
                scrape_responses: s.scrape_responses,
                connections_opened: s.connections_opened,
                connections_lost: s.connections_lost,
            },
            Protocol::Ws => Kinds::Ws {
                announces_sent: s.announces_sent,
                answers_sent: s.answers_sent,
                scrapes_sent: s.scrapes_sent,
                announce_responses: s.announce_responses,
                answer_responses: s.answer_responses,
                offers_received: s.offers_received,
                answers_received: s.answers_received,
                scrape_responses: s.scrape_responses,
                connections_opened: s.connections_opened,
                connections_lost: s.connections_lost,
            },
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Report {
    pub fn new(protocol: Protocol, stats: &Stats, duration_secs: f64) -> Self {
        let requests_sent = stats.requests_sent();
        let responses_received = stats.responses_received();
        let per_second = |n: u64| {
            if duration_secs > 0.0 {
                n as f64 / duration_secs
            } else {
                0.0
            }
        };
        Self {
            protocol,
            duration_secs,
            requests_sent,
            responses_received,
            requests_per_second: per_second(requests_sent),
            responses_per_second: per_second(responses_received),
            kinds: Kinds::new(protocol, stats),
            error_responses: stats.error_responses,
            invalid_responses: stats.invalid.total(),
            lost: stats.lost,
            loss_rate: ratio(stats.lost, stats.requests_answerable()),
            peers_per_announce: ratio(stats.peers_received, stats.announce_responses),
            latency_us: Latency {
                p50: stats.latency.percentile(50.0),
                p90: stats.latency.percentile(90.0),
                p99: stats.latency.percentile(99.0),
                max: stats.latency.max(),
            },
            prefill: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Only numbers and fixed names: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The multi-line summary for people; `header` says what was run.
    pub fn human(&self, stats: &Stats, header: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{header}");
        if let Some(p) = &self.prefill {
            let _ = writeln!(
                out,
                "  prefill         {} of {} clients confirmed{} in {:.1} s ({} announces, {} \
                 failed)",
                p.prefilled_peers,
                p.prefill_clients,
                match (p.prefill_swarm_peers, p.prefill_swarm_torrents) {
                    (Some(n), Some(t)) => format!(" ({n} distinct peers in {t} torrents)"),
                    _ => String::new(),
                },
                p.prefill_seconds,
                p.prefill_announces_sent,
                p.prefill_failed
            );
        }
        let s = stats;
        let (sent, received) = match self.protocol {
            Protocol::Udp => (
                format!(
                    "connect {}, announce {}, scrape {}",
                    s.connects_sent, s.announces_sent, s.scrapes_sent
                ),
                format!(
                    "connect {}, announce {}, scrape {}",
                    s.connect_responses, s.announce_responses, s.scrape_responses
                ),
            ),
            Protocol::Http => (
                format!("announce {}, scrape {}", s.announces_sent, s.scrapes_sent),
                format!(
                    "announce {}, scrape {}",
                    s.announce_responses, s.scrape_responses
                ),
            ),
            Protocol::Ws => (
                format!(
                    "announce {}, answer {}, scrape {}",
                    s.announces_sent, s.answers_sent, s.scrapes_sent
                ),
                format!(
                    "announce {}, to answers {}, offers relayed {}, answers relayed {}, \
                     scrape {}",
                    s.announce_responses,
                    s.answer_responses,
                    s.offers_received,
                    s.answers_received,
                    s.scrape_responses
                ),
            ),
        };
        let _ = writeln!(
            out,
            "  requests sent   {:>12}  {:>12.0}/s  ({sent})",
            self.requests_sent, self.requests_per_second,
        );
        let _ = writeln!(
            out,
            "  responses       {:>12}  {:>12.0}/s  ({received})",
            self.responses_received, self.responses_per_second,
        );
        let _ = writeln!(
            out,
            "  lost            {:>12}  {:>11.3} %   late answers {}",
            self.lost,
            self.loss_rate * 100.0,
            stats.late
        );
        let _ = writeln!(out, "  error responses {:>12}", self.error_responses);
        for m in &stats.error_messages {
            let _ = writeln!(out, "    e.g. {m:?}");
        }
        let i = &stats.invalid;
        let unmatched = match self.protocol {
            Protocol::Udp => "unknown txid",
            Protocol::Http | Protocol::Ws => "unmatched",
        };
        let _ = writeln!(
            out,
            "  invalid         {:>12}  ({unmatched} {}, wrong action {}, malformed {}, \
             too many peers {}, wrong scrape count {}, wrong content {})",
            self.invalid_responses,
            i.unknown_transaction,
            i.wrong_action,
            i.malformed,
            i.too_many_peers,
            i.wrong_scrape_count,
            i.wrong_content
        );
        let _ = writeln!(out, "  peers/announce  {:>12.2}", self.peers_per_announce);
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "  latency µs      p50 {}  p90 {}  p99 {}  max {}",
            l.p50, l.p90, l.p99, l.max
        );
        if self.protocol != Protocol::Udp {
            let _ = writeln!(
                out,
                "  connections     opened {}, lost {}, failed to connect {}",
                s.connections_opened, s.connections_lost, s.connect_failures
            );
        }
        if let Some(e) = &stats.gso_unavailable {
            let _ = writeln!(
                out,
                "  note            UDP GSO refused ({e}); sent one by one"
            );
        }
        if stats.send_errors + stats.recv_errors > 0 || stats.first_io_error.is_some() {
            let _ = writeln!(
                out,
                "  socket errors   send {}, receive {}{}",
                stats.send_errors,
                stats.recv_errors,
                stats
                    .first_io_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(i >= prev || v > 100_000, "{v}");
            prev = i;
            let upper = Histogram::upper_bound(i);
            assert!(upper >= v, "{v} > bound {upper}");
            // Within 1/16 above the value.
            assert!(upper - v <= v / 16 + 1, "{v} -> {upper}");
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), 0);
        for v in 1..=1000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        let close = |got: u64, want: u64| {
            assert!(
                got >= want && got <= want + want / 16 + 1,
                "{got} vs {want}"
            )
        };
        close(h.percentile(50.0), 500);
        close(h.percentile(90.0), 900);
        close(h.percentile(99.0), 990);
        assert_eq!(h.percentile(100.0), 1000);
        assert_eq!(h.percentile(0.0), 1);

        let mut one = Histogram::default();
        one.record(7);
        assert_eq!(one.percentile(99.0), 7);

        let mut skewed = Histogram::default();
        for _ in 0..99 {
            skewed.record(10);
        }
        skewed.record(1_000_000);
        assert_eq!(skewed.percentile(50.0), 10);
        assert_eq!(skewed.percentile(99.0), 10);
        assert_eq!(skewed.max(), 1_000_000);

        let mut merged = Histogram::default();
        merged.merge(&one);
        merged.merge(&skewed);
        assert_eq!(merged.count(), 101);
        assert_eq!(merged.max(), 1_000_000);
    }

    #[test]
    fn json_has_exactly_the_contract_fields() {
        let mut stats = Stats {
            connects_sent: 10,
            announces_sent: 10,
            scrapes_sent: 1,
            connect_responses: 10,
            announce_responses: 8,
            scrape_responses: 1,
            error_responses: 1,
            lost: 1,
            peers_received: 80,
            ..Stats::default()
        };
        stats.latency.record(100);
        let report = Report::new(Protocol::Udp, &stats, 2.0);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let obj = json.as_object().unwrap();
        let want = [
            "duration_secs",
            "requests_sent",
            "responses_received",
            "requests_per_second",
            "responses_per_second",
            "connects_sent",
            "announces_sent",
            "scrapes_sent",
            "connect_responses",
            "announce_responses",
            "scrape_responses",
            "error_responses",
            "invalid_responses",
            "lost",
            "loss_rate",
            "peers_per_announce",
            "latency_us",
        ];
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut sorted = want.to_vec();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let latency = obj["latency_us"].as_object().unwrap();
        let mut lk: Vec<&str> = latency.keys().map(String::as_str).collect();
        lk.sort_unstable();
        assert_eq!(lk, ["max", "p50", "p90", "p99"]);
        for key in [
            "duration_secs",
            "requests_per_second",
            "loss_rate",
            "peers_per_announce",
        ] {
            assert!(obj[key].is_f64(), "{key} should be a float");
        }
        for key in want.iter().filter(|k| {
            !matches!(
                **k,
                "duration_secs"
                    | "requests_per_second"
                    | "responses_per_second"
                    | "loss_rate"
                    | "peers_per_announce"
                    | "latency_us"
            )
        }) {
            assert!(obj[*key].is_u64(), "{key} should be an integer");
        }
        assert_eq!(obj["requests_sent"], 21);
        assert_eq!(obj["responses_received"], 20);
        assert_eq!(obj["requests_per_second"], 10.5);
        assert_eq!(obj["peers_per_announce"], 10.0);
        assert_eq!(latency["p50"], 100);
        let human = report.human(&stats, "run");
        assert!(human.contains("requests sent") && human.contains("p99"));
        assert!(!human.contains("prefill"));
    }

    #[test]
    fn prefill_figures_join_the_report_when_it_ran() {
        let mut report = Report::new(Protocol::Udp, &Stats::default(), 2.0);
        report.prefill = Some(Prefill {
            prefill_seconds: 1.5,
            prefilled_peers: 99,
            prefill_clients: 100,
            prefill_failed: 1,
            prefill_announces_sent: 108,
            prefill_swarm_peers: Some(97),
            prefill_swarm_torrents: Some(40),
        });
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["prefill_seconds"], 1.5);
        assert_eq!(json["prefilled_peers"], 99);
        assert_eq!(json["prefill_failed"], 1);
        assert_eq!(json["prefill_swarm_peers"], 97);
        assert_eq!(json["duration_secs"], 2.0);
        let human = report.human(&Stats::default(), "run");
        assert!(
            human.contains(
                "99 of 100 clients confirmed (97 distinct peers in 40 torrents) in 1.5 s"
            ),
            "{human}"
        );
        let p = report.prefill.as_mut().unwrap();
        p.prefill_swarm_peers = None;
        p.prefill_swarm_torrents = None;
        assert!(!report.to_json().contains("swarm"));
    }

    #[test]
    fn empty_run_reports_zeros_not_nan() {
        let report = Report::new(Protocol::Udp, &Stats::default(), 0.0);
        let json = report.to_json();
        assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
    }

    #[test]
    fn stats_merge_and_keep_few_messages() {
        let mut a = Stats::default();
        for i in 0..10 {
            a.keep_error_message(format!("e{i}").as_bytes());
        }
        assert_eq!(a.error_messages.len(), KEPT_ERROR_MESSAGES);
        let mut b = Stats {
            lost: 2,
            ..Stats::default()
        };
        b.invalid.malformed = 3;
        b.merge(&a);
        assert_eq!(b.error_messages.len(), KEPT_ERROR_MESSAGES);
        assert_eq!(b.invalid.total(), 3);
        assert_eq!(b.responses_received(), 3);
    }

    fn keys(report: &Report) -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let mut keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn tcp_reports_share_the_common_fields() {
        let common = [
            "duration_secs",
            "requests_sent",
            "responses_received",
            "requests_per_second",
            "responses_per_second",
            "error_responses",
            "invalid_responses",
            "lost",
            "loss_rate",
            "peers_per_announce",
            "latency_us",
        ];
        let stats = Stats {
            announces_sent: 10,
            answers_sent: 30,
            scrapes_sent: 2,
            announce_responses: 9,
            answer_responses: 5,
            offers_received: 30,
            answers_received: 28,
            scrape_responses: 2,
            lost: 1,
            ..Stats::default()
        };
        for (protocol, kinds) in [
            (
                Protocol::Http,
                &[
                    "announces_sent",
                    "scrapes_sent",
                    "announce_responses",
                    "scrape_responses",
                    "connections_opened",
                    "connections_lost",
                ][..],
            ),
            (
                Protocol::Ws,
                &[
                    "announces_sent",
                    "answers_sent",
                    "scrapes_sent",
                    "announce_responses",
                    "answer_responses",
                    "offers_received",
                    "answers_received",
                    "scrape_responses",
                    "connections_opened",
                    "connections_lost",
                ][..],
            ),
        ] {
            let report = Report::new(protocol, &stats, 2.0);
            let mut want: Vec<String> = common.iter().chain(kinds).map(|k| k.to_string()).collect();
            want.sort_unstable();
            assert_eq!(keys(&report), want, "{protocol:?}");
            assert!(report.human(&stats, "run").contains("connections"));
        }
        // WebSocket: every message counts, answers are sent but never lost.
        let ws = Report::new(Protocol::Ws, &stats, 2.0);
        assert_eq!(ws.requests_sent, 42);
        assert_eq!(ws.responses_received, 9 + 5 + 30 + 28 + 2);
        assert_eq!(ws.responses_per_second, 37.0);
        assert_eq!(ws.loss_rate, 1.0 / 12.0);
    }
}
