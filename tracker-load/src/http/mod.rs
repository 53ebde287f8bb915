//! `tracker-load http`: BEP 3 announces and scrapes over keep-alive HTTP/1.1
//! connections, plain or TLS.
//!
//! Each connection stands for the profile's clients bound to it and keeps
//! `pipeline` requests outstanding; answers come back in order, so the
//! oldest outstanding request is the one a response answers. A request
//! unanswered past the timeout takes its connection down with it (the
//! answers queued behind it could never be matched), and the connection is
//! opened again.

mod request;
mod response;

use std::collections::VecDeque;
use std::io::{self, Read as _};
use std::sync::Arc;

use anyhow::bail;
use fastrand::Rng;

use crate::config::Config;
use crate::profile::{mix64, ClientCycle, Profile, RequestKind};
use crate::report::{Protocol, Stats};
use crate::run::{Outcome, RunOptions, Window};
use crate::tcp::driver::{Closed, Cx, Session};
use crate::tcp::{self, Link, TcpLoad};
use request::RequestWriter;
use response::{check_announce, check_scrape, frame, Answer, Framing, Invalid, MAX_BODY};

/// Initial read buffer per connection: many responses' worth.
const READ_BUFFER: usize = 16 * 1024;
/// Largest the read buffer grows to hold one response.
const MAX_READ_BUFFER: usize = MAX_BODY + 64 * 1024;

pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<Outcome> {
    let h = &config.http;
    let profile = Arc::new(Profile::new(&config.profile));
    if !profile.has_requests_without_connect() {
        bail!(
            "profile.weight_announce and profile.weight_scrape are both 0: HTTP has no connect \
             requests, so there would be nothing to send"
        );
    }
    let load = TcpLoad {
        protocol: Protocol::Http,
        tracker: h.tracker,
        tls: h.tls,
        workers: h.workers,
        connections: h.connections,
        window: Window::new(h.warmup, h.duration, h.request_timeout),
        duration: h.duration,
    };
    let host = h.tracker.to_string();
    tcp::run(&load, options, |w| HttpSession {
        profile: Arc::clone(&profile),
        writer: RequestWriter::new(&host, config.profile.numwant),
        max_peers: usize::try_from(config.profile.numwant).ok(),
        pipeline: h.pipeline,
        total_slots: h.connections as u32,
        rng: Rng::with_seed(mix64(config.profile.seed ^ 0x6874_7470 ^ w as u64)),
        scratch: Vec::with_capacity(4096),
        asked: Vec::new(),
    })
}

/// One request on the wire.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    kind: RequestKind,
    client: u32,
    sent_ns: u64,
    /// Sent in the measured window: its fate is counted.
    measured: bool,
}

pub struct HttpConn {
    link: Link,
    clients: ClientCycle,
    /// In send order, which is answer order.
    outstanding: VecDeque<Outstanding>,
    /// Received bytes not yet taken as responses: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

pub struct HttpSession {
    profile: Arc<Profile>,
    writer: RequestWriter,
    /// Most peers an announce answer may carry; `None` when the tracker
    /// picks (numwant < 0).
    max_peers: Option<usize>,
    pipeline: usize,
    total_slots: u32,
    rng: Rng,
    /// Requests written in one go, so they leave in one write (one TLS
    /// record).
    scratch: Vec<u8>,
    /// A scrape's hashes, sorted and deduplicated, for checking its answer.
    asked: Vec<[u8; 20]>,
}

impl HttpSession {
    /// Queues requests until `pipeline` are outstanding, while sending.
    fn fill(&mut self, conn: &mut HttpConn, cx: &mut Cx) {
        if !cx.sending() {
            return;
        }
        let measured = cx.measuring();
        let p = &*self.profile;
        self.scratch.clear();
        while conn.outstanding.len() < self.pipeline {
            let kind = p.request_kind_without_connect(&mut self.rng);
            let index = conn.clients.next(p.peers, self.total_slots);
            let client = p.client(index);
            match kind {
                RequestKind::Scrape => self.writer.scrape(&mut self.scratch, p, &client),
                _ => {
                    let event = p.announce_event(&client, &mut self.rng);
                    self.writer
                        .announce(&mut self.scratch, p, index, &client, event);
                }
            }
            conn.outstanding.push_back(Outstanding {
                kind,
                client: index,
                sent_ns: cx.now,
                measured,
            });
            cx.count_sent(kind, measured);
        }
        if !self.scratch.is_empty() {
            conn.link.queue(&self.scratch);
        }
    }

    /// Takes every whole response off the buffer and accounts it.
    fn responses(&mut self, conn: &mut HttpConn, cx: &mut Cx) -> Result<(), Closed> {
        loop {
            let (status, body, close) = match frame(&conn.buf[conn.start..conn.end]) {
                Framing::Partial => return Ok(()),
                Framing::Complete {
                    status,
                    body,
                    close,
                } => (status, body, close),
                Framing::Broken(why) => {
                    // It answers the oldest request, as far as one can tell.
                    if let Some(r) = conn.outstanding.pop_front() {
                        if r.measured {
                            cx.stats.invalid.malformed += 1;
                        }
                    }
                    return Err(Closed::Protocol(format!("unreadable HTTP response: {why}")));
                }
            };
            cx.received_all += 1;
            let Some(request) = conn.outstanding.pop_front() else {
                if cx.measuring() {
                    cx.stats.invalid.unknown_transaction += 1;
                }
                return Err(Closed::Protocol(
                    "an HTTP response to no request".to_owned(),
                ));
            };
            let body = conn.start + body.start..conn.start + body.end;
            conn.start = body.end;
            self.account(&request, status, &conn.buf[body], cx);
            if close {
                return Err(Closed::ByPeer);
            }
        }
    }

    /// Checks one response to `request` and counts it if measured.
    fn account(&mut self, request: &Outstanding, status: u16, body: &[u8], cx: &mut Cx) {
        if !request.measured {
            return;
        }
        let p = &*self.profile;
        let answer = match request.kind {
            RequestKind::Scrape => {
                p.scrape_set(&p.client(request.client), &mut self.asked);
                check_scrape(status, body, &self.asked)
            }
            _ => check_announce(status, body, self.max_peers),
        };
        count(&mut cx.stats, request, answer, cx.now);
    }
}

/// Counts a checked answer to a measured request.
fn count(stats: &mut Stats, request: &Outstanding, answer: Answer<'_>, now: u64) {
    stats
        .latency
        .record(now.saturating_sub(request.sent_ns) / 1_000);
    let i = &mut stats.invalid;
    match answer {
        Answer::Announce { peers } => {
            stats.announce_responses += 1;
            stats.peers_received += peers as u64;
        }
        Answer::Scrape => stats.scrape_responses += 1,
        Answer::Failure(reason) => {
            stats.error_responses += 1;
            stats.keep_error_message(reason);
        }
        Answer::Invalid(Invalid::Malformed | Invalid::BadStatus) => i.malformed += 1,
        Answer::Invalid(Invalid::TooManyPeers) => i.too_many_peers += 1,
        Answer::Invalid(Invalid::WrongScrapeCount) => i.wrong_scrape_count += 1,
    }
}

/// What one read brought.
enum Read {
    Data,
    /// The socket has nothing more for now.
    Drained,
    /// The tracker closed the connection.
    End,
}

impl HttpConn {
    /// Reads once into the buffer, making room first.
    fn read_some(&mut self) -> Result<Read, Closed> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_READ_BUFFER {
                let len = (self.buf.len() * 2).min(MAX_READ_BUFFER);
                self.buf.resize(len, 0);
            } else {
                // frame() refuses longer responses before this.
                return Err(Closed::Protocol("HTTP response too long".to_owned()));
            }
        }
        loop {
            return match self.link.read(&mut self.buf[self.end..]) {
                Ok(0) => Ok(Read::End),
                Ok(n) => {
                    self.end += n;
                    Ok(Read::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e.into()),
            };
        }
    }
}

impl Session for HttpSession {
    type Conn = HttpConn;

    fn open(&mut self, slot: u32, link: Link, _cx: &mut Cx) -> HttpConn {
        HttpConn {
            link,
            clients: ClientCycle::new(slot),
            outstanding: VecDeque::with_capacity(self.pipeline),
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
        }
    }

    fn drive(&mut self, conn: &mut HttpConn, cx: &mut Cx) -> Result<(), Closed> {
        conn.link.rearm();
        // Send what is queued first: the TLS handshake needs it to go on.
        conn.link.flush()?;
        // Edge-triggered: read until the socket has nothing more.
        loop {
            match conn.read_some()? {
                Read::Data => self.responses(conn, cx)?,
                Read::Drained => break,
                Read::End => return Err(Closed::ByPeer),
            }
        }
        self.fill(conn, cx);
        conn.link.flush()?;
        Ok(())
    }

    fn tick(&mut self, conn: &mut HttpConn, cx: &mut Cx) -> Result<(), Closed> {
        if let Some(oldest) = conn.outstanding.front() {
            if cx.now.saturating_sub(oldest.sent_ns) > cx.window.timeout_ns {
                return Err(Closed::Timeout);
            }
        }
        self.fill(conn, cx);
        conn.link.flush()?;
        Ok(())
    }

    fn close(&mut self, conn: HttpConn, cx: &mut Cx) {
        cx.stats.lost += conn.outstanding.iter().filter(|r| r.measured).count() as u64;
    }

    fn awaiting_measured(&self, conn: &HttpConn) -> bool {
        conn.outstanding.iter().any(|r| r.measured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProfileConfig;
    use tracker_proto::http::{write_failure, write_scrape_response, ScrapeFile};
    use tracker_proto::InfoHash;

    fn session() -> HttpSession {
        HttpSession {
            profile: Arc::new(Profile::new(&ProfileConfig::default())),
            writer: RequestWriter::new("h", 30),
            max_peers: Some(30),
            pipeline: 1,
            total_slots: 1,
            rng: Rng::with_seed(1),
            scratch: Vec::new(),
            asked: Vec::new(),
        }
    }

    fn cx() -> Cx {
        Cx {
            now: 5_000_000,
            window: Window::new(0.0, 10.0, 1.0),
            stats: Stats::default(),
            sent_all: 0,
            received_all: 0,
        }
    }

    fn request(kind: RequestKind, client: u32, measured: bool) -> Outstanding {
        Outstanding {
            kind,
            client,
            sent_ns: 1_000_000,
            measured,
        }
    }

    #[test]
    fn answers_are_counted_by_what_they_say() {
        let mut s = session();
        let mut cx = cx();
        let announce = request(RequestKind::Announce, 3, true);
        let body = b"d8:completei1e10:incompletei0e8:intervali60e5:peers12:abcdefghijkle";
        s.account(&announce, 200, body, &mut cx);
        assert_eq!(
            (cx.stats.announce_responses, cx.stats.peers_received),
            (1, 2)
        );
        assert_eq!(cx.stats.latency.percentile(50.0), 4_000);
        let mut failure = Vec::new();
        write_failure(&mut failure, b"go away");
        s.account(&announce, 200, &failure, &mut cx);
        assert_eq!(cx.stats.error_messages, ["go away"]);
        s.account(&announce, 200, b"garbage", &mut cx);
        assert_eq!(cx.stats.invalid.malformed, 1);

        // A scrape is checked against the hashes its client asked for.
        let p = Profile::new(&ProfileConfig::default());
        let client = p.client(9);
        let mut files: Vec<ScrapeFile> = p
            .scrape_torrents(&client)
            .map(|t| {
                let mut h = [0u8; 20];
                p.info_hash(t, &mut h);
                ScrapeFile {
                    info_hash: InfoHash(h),
                    ..ScrapeFile::default()
                }
            })
            .collect();
        let mut body = Vec::new();
        write_scrape_response(&mut body, &mut files);
        let scrape = request(RequestKind::Scrape, 9, true);
        s.account(&scrape, 200, &body, &mut cx);
        assert_eq!(cx.stats.scrape_responses, 1);
        let other = request(RequestKind::Scrape, 10, true);
        s.account(&other, 200, &body, &mut cx);
        assert_eq!(cx.stats.invalid.wrong_scrape_count, 1);

        // Answers to warmup requests are not counted.
        let before = cx.stats.responses_received();
        s.account(
            &request(RequestKind::Announce, 1, false),
            200,
            b"x",
            &mut cx,
        );
        assert_eq!(cx.stats.responses_received(), before);
    }
}
