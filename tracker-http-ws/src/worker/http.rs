//! HTTP requests: reading, parsing, answering at once or sending to the
//! request workers.

use super::*;

/// Why request processing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    NeedMore,
    Busy,
    HighWater,
    Closing,
    Upgraded,
}

pub(super) fn drive_http(core: &mut Core, token: usize, conn: &mut Conn) {
    let max = core.settings.max_request_size.max(MIN_REQUEST_SIZE);
    let mut reads = 0;
    let stop = loop {
        let stop = process_http(core, token, conn);
        if matches!(stop, Stop::Closing | Stop::Upgraded) || conn.dead {
            break stop;
        }
        let Phase::Http(http) = &mut conn.phase else {
            break Stop::Upgraded;
        };
        if http.eof {
            break stop;
        }
        let room = max.saturating_sub(http.in_buf.len());
        if room == 0 {
            // Resumed once requests are taken from the buffer.
            conn.read_pending = true;
            break stop;
        }
        if reads == MAX_READS {
            conn.read_pending = true;
            core.schedule(token, conn);
            break stop;
        }
        reads += 1;
        let len = room.min(core.read_buf.len());
        match conn.transport.read(&mut core.read_buf[..len]) {
            Ok(0) => {
                http.eof = true;
                conn.read_pending = false;
            }
            Ok(n) => {
                http.heard = true;
                if http.request_start.is_none() {
                    http.request_start = Some(core.now);
                }
                http.in_buf.extend_from_slice(&core.read_buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_pending = false;
                break stop;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // A TLS alert may be waiting; send it if it goes at once.
                let _ = conn.transport.flush(&mut conn.out);
                core.doom(token, conn);
                return;
            }
        }
    };
    if stop == Stop::Upgraded {
        return drive_ws(core, token, conn);
    }
    if let Phase::Http(http) = &mut conn.phase {
        // The peer is done: once nothing complete is left to answer, close.
        if http.eof && stop == Stop::NeedMore && !conn.close_after_flush {
            conn.close_after_flush = true;
        }
    }
    if needs_flush(conn) {
        core.mark_dirty(token, conn);
    }
}

/// Handles the complete requests at the front of the input buffer, one at
/// a time.
fn process_http(core: &mut Core, token: usize, conn: &mut Conn) -> Stop {
    let max = core.settings.max_request_size.max(MIN_REQUEST_SIZE);
    loop {
        if conn.dead || conn.close_after_flush {
            return Stop::Closing;
        }
        let Phase::Http(http) = &mut conn.phase else {
            return Stop::Upgraded;
        };
        if http.busy.is_some() {
            return Stop::Busy;
        }
        if conn.out.len() >= HTTP_HIGH_WATER {
            return Stop::HighWater;
        }
        if http.in_buf.is_empty() {
            return Stop::NeedMore;
        }
        match head::parse_head(&http.in_buf, core.settings.real_ip_header.as_deref()) {
            Parsed::Partial if http.in_buf.len() >= max => {
                fail_and_close(core, conn, Status::Ok, TOO_LARGE);
                return Stop::Closing;
            }
            Parsed::Partial => return Stop::NeedMore,
            Parsed::Invalid(reason) => {
                fail_and_close(core, conn, Status::BadRequest, reason);
                return Stop::Closing;
            }
            Parsed::Complete(head) => {
                core.counters.http_requests += 1;
                handle_request(core, token, conn, head);
            }
        }
    }
}

/// Answers with a bencoded failure and closes the connection.
pub(super) fn fail_and_close(core: &mut Core, conn: &mut Conn, status: Status, reason: &str) {
    core.bencode_failure(reason);
    head::write_response(&mut conn.out, status, false, false, &core.scratch);
    conn.close_after_flush = true;
    if let Phase::Http(http) = &mut conn.phase {
        http.in_buf.clear();
    }
}

/// What a request turned into.
enum Outcome {
    /// Answered at once (the answer is in `out`).
    Answered { keep_alive: bool },
    /// At the request workers.
    Waiting,
    /// Now a WebSocket.
    Upgraded(Box<WsConn>),
}

pub(super) fn handle_request(core: &mut Core, token: usize, conn: &mut Conn, head: Head) {
    let settings = core.settings.clone();
    let Conn {
        generation,
        addr,
        kind,
        out,
        phase,
        close_after_flush,
        read_pending,
        ..
    } = conn;
    let Phase::Http(http) = phase else {
        return;
    };
    let (keep_alive, http10) = (head.keep_alive, head.http10);
    // Answers `reason` at once with `status`.
    let fail = |core: &mut Core, out: &mut OutBuf, status, reason: &str, keep_alive| {
        core.bencode_failure(reason);
        head::write_response(out, status, keep_alive, http10, &core.scratch);
        Outcome::Answered { keep_alive }
    };
    let outcome = match (&head.upgrade, *kind) {
        (Upgrade::WebSocket { accept }, _) => {
            head::write_switching_protocols(out, accept);
            let leftover = http.in_buf.get(head.len..).unwrap_or(&[]).to_vec();
            let ctx =
                WebSocketContext::from_partially_read(leftover, Role::Server, Some(core.ws_config));
            out.set_limit(settings.ws_max_outgoing_bytes.max(1024));
            Outcome::Upgraded(Box::new(WsConn {
                ctx,
                torrents: WsPeers::default(),
                offers: PendingOffers::default(),
                in_flight: 0,
                last_recv: core.now,
            }))
        }
        (Upgrade::Invalid(reason), _) => fail(core, out, Status::BadRequest, reason, false),
        (Upgrade::None, ListenerKind::WsOnly) => {
            fail(core, out, Status::BadRequest, WS_ONLY, false)
        }
        _ if head.has_body => fail(core, out, Status::BadRequest, NO_BODY, false),
        // Closed after: a HEAD client would take the body for the next
        // answer.
        _ if head.method != Method::Get => {
            fail(core, out, Status::MethodNotAllowed, GET_ONLY, false)
        }
        _ => {
            let target = http.in_buf.get(head.target.clone()).unwrap_or(&[]);
            let inflight = InFlight {
                compact: false,
                keep_alive,
                http10,
            };
            match HttpRequest::parse(target) {
                Err(HttpParseError::UnknownPath) => fail(
                    core,
                    out,
                    Status::NotFound,
                    HttpParseError::UnknownPath.message(),
                    keep_alive,
                ),
                Err(e) => fail(core, out, Status::Ok, e.message(), keep_alive),
                Ok(HttpRequest::Announce(q)) => {
                    let ip = match head.real_ip {
                        RealIp::NotConfigured => Ok(addr.ip().to_canonical()),
                        RealIp::Ip(ip) => Ok(ip),
                        RealIp::Missing => Err("missing"),
                        RealIp::Invalid => Err("invalid"),
                    };
                    match ip {
                        Err(what) => {
                            let header = settings.real_ip_header.as_deref().unwrap_or_default();
                            let reason = format!("{what} {header} header");
                            fail(core, out, Status::Ok, &reason, keep_alive)
                        }
                        Ok(_) if !core.filter.allows(&q.info_hash) => {
                            fail(core, out, Status::Ok, NOT_ALLOWED, keep_alive)
                        }
                        Ok(ip) => {
                            let numwant = q
                                .numwant
                                .map_or(settings.default_numwant, |n| n as usize)
                                .min(settings.max_numwant);
                            let seeder = q.left == Some(0);
                            let work = match ip {
                                IpAddr::V4(v4) => Work::AnnounceV4 {
                                    announce: Announce {
                                        info_hash: q.info_hash,
                                        peer: PeerV4::new(v4, q.port),
                                        event: q.event,
                                        seeder,
                                        numwant,
                                    },
                                    peers: 0..0,
                                    counts: SwarmCounts::default(),
                                    refused: None,
                                },
                                IpAddr::V6(v6) => Work::AnnounceV6 {
                                    announce: Announce {
                                        info_hash: q.info_hash,
                                        peer: PeerV6::new(v6, q.port),
                                        event: q.event,
                                        seeder,
                                        numwant,
                                    },
                                    peers: 0..0,
                                    counts: SwarmCounts::default(),
                                    refused: None,
                                },
                            };
                            core.enqueue(Job {
                                reply: ReplyTo {
                                    // The client's address as announced
                                    // (proxy header included): the answer's
                                    // `external ip` (BEP 24).
                                    addr: SocketAddr::new(ip, addr.port()),
                                    handle: token as u32,
                                    tag: *generation,
                                },
                                work,
                            });
                            http.busy = Some(InFlight {
                                compact: q.compact,
                                ..inflight
                            });
                            Outcome::Waiting
                        }
                    }
                }
                Ok(HttpRequest::Scrape(s)) if s.is_empty() => {
                    if !settings.full_scrape {
                        fail(core, out, Status::Ok, FULL_SCRAPE_DISABLED, keep_alive)
                    } else if core.full_scrapes >= MAX_FULL_SCRAPES {
                        fail(core, out, Status::Ok, BUSY, keep_alive)
                    } else {
                        let limit = settings.max_full_scrape_torrents;
                        start_full_scrape(core, token, *generation, *addr, false, limit);
                        http.busy = Some(inflight);
                        Outcome::Waiting
                    }
                }
                Ok(HttpRequest::Scrape(s)) => {
                    if s.len() > max_scrape(&settings) {
                        fail(core, out, Status::Ok, TOO_MANY_HASHES, keep_alive)
                    } else if s.info_hashes().any(|h| !core.filter.allows(&h)) {
                        fail(core, out, Status::Ok, NOT_ALLOWED, keep_alive)
                    } else {
                        start_scrape(core, token, *generation, *addr, false, s.info_hashes());
                        http.busy = Some(inflight);
                        Outcome::Waiting
                    }
                }
            }
        }
    };
    match outcome {
        Outcome::Upgraded(ws) => {
            *phase = Phase::Ws(ws);
            // Frames may already sit in the leftover and in the socket.
            *read_pending = true;
        }
        Outcome::Answered { keep_alive } => {
            consume_head(http, head.len, core.now);
            http.idle_since = core.now;
            if !keep_alive {
                *close_after_flush = true;
            }
        }
        Outcome::Waiting => {
            consume_head(http, head.len, core.now);
            // The request being waited on started when its bytes came.
            if http.request_start.is_none() {
                http.request_start = Some(core.now);
            }
        }
    }
}

/// Drops a handled head from the buffer; what follows is the next
/// request, started now as far as its timeout is concerned.
pub(super) fn consume_head(http: &mut HttpConn, len: usize, now: Instant) {
    let len = len.min(http.in_buf.len());
    http.in_buf.drain(..len);
    http.request_start = if http.in_buf.is_empty() {
        None
    } else {
        Some(now)
    };
    if http.in_buf.capacity() > 64 * 1024 && http.in_buf.len() < 1024 {
        http.in_buf.shrink_to(4096);
    }
}

pub(super) fn max_scrape(settings: &Settings) -> usize {
    settings.max_scrape_torrents.min(usize::from(u16::MAX))
}

/// The request at the request workers has been answered: carry on with
/// the connection.
/// Sends the answer in `core.scratch` to the request in flight and makes
/// the connection ready for its next request (or to close).
pub(super) fn finish_http_request(
    core: &mut Core,
    token: usize,
    conn: &mut Conn,
    inflight: InFlight,
) {
    head::write_response(
        &mut conn.out,
        Status::Ok,
        inflight.keep_alive,
        inflight.http10,
        &core.scratch,
    );
    if let Phase::Http(http) = &mut conn.phase {
        http.request_start = if http.in_buf.is_empty() {
            None
        } else {
            Some(core.now)
        };
        http.idle_since = core.now;
    }
    if inflight.keep_alive {
        // Pipelined requests, and reads that stopped while it waited.
        core.schedule(token, conn);
    } else {
        conn.close_after_flush = true;
    }
    core.mark_dirty(token, conn);
}

/// Takes the in-flight request of an HTTP connection.
pub(super) fn take_in_flight(conn: &mut Conn) -> Option<InFlight> {
    match &mut conn.phase {
        Phase::Http(http) => http.busy.take(),
        _ => None,
    }
}
