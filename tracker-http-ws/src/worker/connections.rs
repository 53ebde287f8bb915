//! Connections: accept, readiness, deadlines, flushing and closing.

use super::*;

impl Worker {
    pub(super) fn event(&mut self, poll: &Poll, event: &mio::event::Event) {
        let token = event.token();
        if token == WAKER {
            return;
        }
        if token.0 > LISTENER_TOKEN_TOP - self.listeners.len() {
            let i = LISTENER_TOKEN_TOP - token.0;
            self.accept(poll, i);
            return;
        }
        let t = token.0;
        let Some(conn) = self.conns.get_mut(t) else {
            return;
        };
        if conn.dead {
            return;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.write_blocked = false;
            if needs_flush(conn) {
                self.core.mark_dirty(t, conn);
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            drive(&mut self.core, t, conn);
        }
    }

    pub(super) fn run_retries(&mut self) {
        let mut retry = std::mem::take(&mut self.core.retry);
        for &token in &retry {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.in_retry = false;
                if !conn.dead {
                    drive(&mut self.core, token, conn);
                }
            }
        }
        retry.clear();
        // Keep the longer of the two vectors' allocations.
        if self.core.retry.is_empty() {
            self.core.retry = retry;
        }
    }

    pub(super) fn accept(&mut self, poll: &Poll, i: usize) {
        let Some((listener, spec)) = self.listeners.get(i) else {
            return;
        };
        let spec = *spec;
        for _ in 0..ACCEPTS_PER_ROUND {
            let (mut stream, addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending[i] = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    if !self.accept_retry_at_sweep {
                        log::warn!(
                            "http worker {}: accept on {}: {e}",
                            self.core.index,
                            spec.addr
                        );
                    }
                    self.accept_pending[i] = false;
                    self.accept_retry_at_sweep = true;
                    return;
                }
            };
            if self.conns.len() >= self.core.settings.max_connections {
                // Closed at once, so the backlog does not fill with clients
                // that would wait for nothing.
                self.core.counters.refused += 1;
                continue;
            }
            if !self.core.per_ip.admit(addr) {
                self.core.counters.refused_per_ip += 1;
                continue;
            }
            // From here on, a connection that is not inserted gives its
            // place back.
            let Some(tls) =
                tls::new_session(self.tls.as_deref(), &mut self.tls_missing_logged, spec)
            else {
                self.core.per_ip.release(addr);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let token = entry.key();
            if let Err(e) = poll.registry().register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!(
                    "http worker {}: cannot register a connection: {e}",
                    self.core.index
                );
                self.core.per_ip.release(addr);
                continue;
            }
            let generation = self.core.next_generation();
            let now = self.core.now;
            entry.insert(Conn {
                generation,
                transport: Transport::new(stream, tls),
                addr,
                kind: spec.kind,
                out: OutBuf::new(usize::MAX),
                phase: Phase::Http(HttpConn {
                    in_buf: Vec::new(),
                    busy: None,
                    request_start: None,
                    idle_since: now,
                    eof: false,
                    heard: false,
                }),
                write_blocked: false,
                read_pending: false,
                close_after_flush: false,
                in_retry: false,
                in_dirty: false,
                dead: false,
            });
            self.core.counters.accepted += 1;
        }
        // More may be waiting: come back after the others had their turn.
        self.accept_pending[i] = true;
    }

    /// Closes every connection past its deadline.
    pub(super) fn sweep(&mut self) {
        let s = self.core.settings.clone();
        let now = self.core.now;
        for (token, conn) in self.conns.iter_mut() {
            if conn.dead {
                continue;
            }
            let first_byte = matches!(&conn.phase, Phase::Http(h) if !h.heard);
            let deadline = match &conn.phase {
                // Includes a TLS handshake: a client that connects and
                // says nothing is not waited for.
                Phase::Http(h) if !h.heard => h.idle_since + s.first_byte_timeout,
                Phase::Http(h) => match h.request_start {
                    Some(start) => start + s.request_timeout,
                    // A TLS handshake is the start of the first request:
                    // one left hanging is a slow client, not an idle one.
                    None if conn.transport.is_handshaking() => h.idle_since + s.request_timeout,
                    None => h.idle_since + s.keep_alive_timeout,
                },
                Phase::Ws(ws) => ws.last_recv + s.ws_idle_timeout,
                Phase::Linger { until } => *until,
            };
            if now >= deadline {
                if first_byte {
                    self.core.counters.first_byte_timeouts += 1;
                } else {
                    self.core.counters.timeouts += 1;
                }
                self.core.doom(token, conn);
            }
        }
        if std::mem::take(&mut self.accept_retry_at_sweep) {
            self.accept_pending.fill(true);
        }
    }
}

/// Closes the connections marked for it; a WebSocket leaves its swarms.
pub(super) fn reap(core: &mut Core, conns: &mut Slab<Conn>) {
    while let Some(token) = core.doomed.pop() {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        if !conn.dead {
            continue;
        }
        leave_all(core, token, conn);
        core.per_ip.release(conn.addr);
        // Dropping the socket closes it and takes it out of the poll.
        conns.remove(token);
    }
}

/// Writes what every dirty connection has queued.
pub(super) fn flush_dirty(core: &mut Core, conns: &mut Slab<Conn>) {
    let mut dirty = std::mem::take(&mut core.dirty);
    for &token in &dirty {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        conn.in_dirty = false;
        if conn.dead {
            continue;
        }
        if conn.out.overflowed() {
            core.counters.slow_readers += 1;
            core.doom(token, conn);
            continue;
        }
        if conn.write_blocked {
            continue;
        }
        match conn.transport.flush(&mut conn.out) {
            Ok(Flushed::All) => {
                if conn.close_after_flush {
                    start_linger(core, token, conn);
                } else if let Phase::Http(http) = &conn.phase {
                    // Pipelined requests may have waited for the queue to
                    // drain.
                    if http.busy.is_none() && (!http.in_buf.is_empty() || conn.read_pending) {
                        core.schedule(token, conn);
                    }
                }
            }
            Ok(Flushed::SocketFull) => conn.write_blocked = true,
            Ok(Flushed::TlsPending) => {}
            Err(_) => core.doom(token, conn),
        }
    }
    dirty.clear();
    if core.dirty.is_empty() {
        core.dirty = dirty;
    }
}

/// Everything is written: end our side and drain the peer's for a moment.
pub(super) fn start_linger(core: &mut Core, token: usize, conn: &mut Conn) {
    leave_all(core, token, conn);
    conn.close_after_flush = false;
    conn.transport.shutdown_write();
    conn.phase = Phase::Linger {
        until: core.now + LINGER,
    };
    if conn.transport.discard(&mut core.read_buf) {
        core.doom(token, conn);
    }
}

/// A WebSocket connection that closes leaves every swarm it announced in.
pub(super) fn leave_all(core: &mut Core, token: usize, conn: &mut Conn) {
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    let conn_ref = core.conn_ref(token, conn.generation);
    let addr = conn.addr;
    for (info_hash, peer_id) in ws.torrents.drain() {
        core.enqueue(Job {
            reply: ReplyTo {
                addr,
                handle: token as u32,
                tag: 0,
            },
            work: Work::WsLeave {
                info_hash,
                peer_id,
                conn: conn_ref,
            },
        });
    }
}

/// Whether the flush stage has something to do for the connection: bytes
/// or TLS records to write, a close to finish, an overflow to act on.
pub(super) fn needs_flush(conn: &Conn) -> bool {
    conn.transport.wants_write(&conn.out) || conn.close_after_flush || conn.out.overflowed()
}

pub(super) fn drive(core: &mut Core, token: usize, conn: &mut Conn) {
    match conn.phase {
        Phase::Http(_) => drive_http(core, token, conn),
        Phase::Ws(_) => drive_ws(core, token, conn),
        Phase::Linger { .. } => {
            if conn.transport.discard(&mut core.read_buf) {
                core.doom(token, conn);
            }
        }
    }
}
