//! Connections: accept, readiness, deadlines, flushing and closing.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Token};
use slab::Slab;
use tracker_metrics::{Protocol, Refusal, Timeout};
use tracker_swarm::{Job, ReplyTo, Work};

use crate::buf::OutBuf;
use crate::settings::ListenerKind;
use crate::transport::{Flushed, Transport};
use crate::{tls, WAKER};

use super::http::{drive_http, HttpConn};
use super::state::WorkerState;
use super::ws::{drive_ws, WsConn};
use super::{EventLoop, LISTENER_TOKEN_TOP};

/// Connections accepted per listener per round.
const ACCEPTS_PER_ROUND: usize = 256;
/// How long a closing connection's remaining input is read and dropped,
/// so that closing does not reset the connection under its last answer.
const LINGER: Duration = Duration::from_secs(2);

pub(super) struct Conn {
    pub(super) generation: u32,
    pub(super) transport: Transport,
    pub(super) addr: SocketAddr,
    pub(super) kind: ListenerKind,
    /// What it counts as in the metrics: `http(s)`, then `ws(s)` once
    /// upgraded (kept while it lingers, so its close is counted there).
    pub(super) protocol: Protocol,
    pub(super) out: OutBuf,
    pub(super) phase: Phase,
    /// The socket refused bytes; a writable event resumes.
    pub(super) write_blocked: bool,
    /// Reading stopped before the socket said it was empty (edge-triggered
    /// readiness will not say it again): read again when unblocked.
    pub(super) read_pending: bool,
    /// Close once everything queued is written.
    pub(super) close_after_flush: bool,
    pub(super) in_retry: bool,
    pub(super) in_dirty: bool,
    /// Closed; removed at the next reap.
    pub(super) dead: bool,
}

pub(super) enum Phase {
    Http(HttpConn),
    Ws(Box<WsConn>),
    /// Our side is shut; the peer's last bytes are read and dropped.
    Linger {
        until: Instant,
    },
}

impl EventLoop {
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
                self.state.mark_dirty(t, conn);
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            drive(&mut self.state, t, conn);
        }
    }

    pub(super) fn run_retries(&mut self) {
        let mut retry = std::mem::take(&mut self.state.retry);
        for &token in &retry {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.in_retry = false;
                if !conn.dead {
                    drive(&mut self.state, token, conn);
                }
            }
        }
        retry.clear();
        // Keep the longer of the two vectors' allocations.
        if self.state.retry.is_empty() {
            self.state.retry = retry;
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
                            self.state.index,
                            spec.addr
                        );
                    }
                    self.accept_pending[i] = false;
                    self.accept_retry_at_sweep = true;
                    return;
                }
            };
            if self.conns.len() >= self.state.settings.max_connections {
                // Closed at once, so the backlog does not fill with clients
                // that would wait for nothing.
                self.state.connections.refused[Refusal::MaxConnections.index()].inc();
                continue;
            }
            if !self.state.per_ip.admit(addr) {
                self.state.connections.refused[Refusal::PerIp.index()].inc();
                continue;
            }
            // From here on, a connection that is not inserted gives its
            // place back.
            let Some(tls) =
                tls::new_session(self.tls.as_deref(), &mut self.tls_missing_logged, spec)
            else {
                self.state.per_ip.release(addr);
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
                    self.state.index
                );
                self.state.per_ip.release(addr);
                continue;
            }
            let generation = self.state.next_generation();
            let now = self.state.now;
            let protocol = Protocol::tcp(false, tls.is_some());
            entry.insert(Conn {
                generation,
                transport: Transport::new(stream, tls),
                addr,
                kind: spec.kind,
                protocol,
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
            self.state.connections.opened(protocol);
        }
        // More may be waiting: come back after the others had their turn.
        self.accept_pending[i] = true;
    }

    /// Closes every connection past its deadline.
    pub(super) fn sweep(&mut self) {
        let s = self.state.settings.clone();
        let now = self.state.now;
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
                // A lingering connection was closed by us already; its
                // end is no timeout. A request left unfinished past
                // `request_timeout` counts as idle: the client spoke, then
                // went quiet.
                let timeout = match &conn.phase {
                    Phase::Linger { .. } => None,
                    _ if first_byte => Some(Timeout::FirstByte),
                    _ => Some(Timeout::Idle),
                };
                if let Some(t) = timeout {
                    self.state.connections.timeouts[t.index()].inc();
                }
                self.state.doom(token, conn);
            }
        }
        if std::mem::take(&mut self.accept_retry_at_sweep) {
            self.accept_pending.fill(true);
        }
    }
}

/// Closes the connections marked for it; a WebSocket leaves its swarms.
pub(super) fn reap(state: &mut WorkerState, conns: &mut Slab<Conn>) {
    while let Some(token) = state.doomed.pop() {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        if !conn.dead {
            continue;
        }
        leave_all(state, token, conn);
        state.per_ip.release(conn.addr);
        state.connections.closed(conn.protocol);
        // Dropping the socket closes it and takes it out of the poll.
        conns.remove(token);
    }
}

/// Writes what every dirty connection has queued.
pub(super) fn flush_dirty(state: &mut WorkerState, conns: &mut Slab<Conn>) {
    let mut dirty = std::mem::take(&mut state.dirty);
    for &token in &dirty {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        conn.in_dirty = false;
        if conn.dead {
            continue;
        }
        if conn.out.overflowed() {
            state.connections.slow_readers.inc();
            state.doom(token, conn);
            continue;
        }
        if conn.write_blocked {
            continue;
        }
        match conn.transport.flush(&mut conn.out) {
            Ok(Flushed::All) => {
                if conn.close_after_flush {
                    start_linger(state, token, conn);
                } else if let Phase::Http(http) = &conn.phase {
                    // Pipelined requests may have waited for the queue to
                    // drain.
                    if http.busy.is_none() && (!http.in_buf.is_empty() || conn.read_pending) {
                        state.schedule(token, conn);
                    }
                }
            }
            Ok(Flushed::SocketFull) => conn.write_blocked = true,
            Ok(Flushed::TlsPending) => {}
            Err(_) => state.doom(token, conn),
        }
    }
    dirty.clear();
    if state.dirty.is_empty() {
        state.dirty = dirty;
    }
}

/// Everything is written: end our side and drain the peer's for a moment.
fn start_linger(state: &mut WorkerState, token: usize, conn: &mut Conn) {
    leave_all(state, token, conn);
    conn.close_after_flush = false;
    conn.transport.shutdown_write();
    conn.phase = Phase::Linger {
        until: state.now + LINGER,
    };
    if conn.transport.discard(&mut state.read_buf) {
        state.doom(token, conn);
    }
}

/// A WebSocket connection that closes leaves every swarm it announced in.
pub(super) fn leave_all(state: &mut WorkerState, token: usize, conn: &mut Conn) {
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    let conn_ref = state.conn_ref(token, conn.generation);
    let addr = conn.addr;
    for (info_hash, peer_id) in ws.torrents.drain() {
        state.enqueue(Job {
            reply: ReplyTo {
                addr,
                route: token as u32,
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

pub(super) fn drive(state: &mut WorkerState, token: usize, conn: &mut Conn) {
    match conn.phase {
        Phase::Http(_) => drive_http(state, token, conn),
        Phase::Ws(_) => drive_ws(state, token, conn),
        Phase::Linger { .. } => {
            if conn.transport.discard(&mut state.read_buf) {
                state.doom(token, conn);
            }
        }
    }
}
