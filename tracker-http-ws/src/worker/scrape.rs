//! Scrapes (HTTP and WebSocket): one pending entry per request, filled by
//! every request worker's part.

use std::net::SocketAddr;

use slab::Slab;
use tracker_metrics::Action as MetricAction;
use tracker_proto::http::{self as bhttp};
use tracker_proto::ws::{self as jws, Action};
use tracker_proto::InfoHash;
use tracker_swarm::{Job, ReplyTo, ScrapeTicket, SwarmCounts, Work};

use super::connections::Conn;
use super::http::{finish_http_request, take_in_flight};
use super::state::{live, WorkerState};
use super::ws::{ws_request_done, ws_send};

/// A scrape whose hashes are out at the request workers; its slot and
/// generation ride in each job's reply as `handle` and `tag`.
pub(super) struct PendingScrape {
    pub(super) token: usize,
    pub(super) conn_generation: u32,
    pub(super) ws: bool,
    /// A full scrape: `files` fills from every request worker's part.
    pub(super) full: bool,
    /// Cap of a full scrape's answer.
    pub(super) limit: usize,
    pub(super) files: Vec<bhttp::ScrapeFile>,
}

/// The pending scrape a job's reply names.
pub(super) fn scrape_ticket(reply: &ReplyTo) -> ScrapeTicket {
    ScrapeTicket {
        slot: reply.route,
        generation: reply.tag,
    }
}

fn scrape_reply(addr: SocketAddr, ticket: ScrapeTicket) -> ReplyTo {
    ReplyTo {
        addr,
        route: ticket.slot,
        tag: ticket.generation,
    }
}

/// Starts a scrape of `hashes`, one job per torrent.
pub(super) fn start_scrape(
    state: &mut WorkerState,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    hashes: impl Iterator<Item = InfoHash>,
) {
    let mut files = state.take_files();
    files.extend(hashes.map(|info_hash| bhttp::ScrapeFile {
        info_hash,
        ..Default::default()
    }));
    let count = files.len();
    let pending = PendingScrape {
        token,
        conn_generation,
        ws,
        full: false,
        limit: count,
        files,
    };
    // The table has no cap of its own (each connection has a bounded
    // number of requests out), so an insert always succeeds.
    let Ok(ticket) = state.scrapes.insert(pending, count as u32) else {
        return;
    };
    for index in 0..count {
        let Some(info_hash) = state
            .scrapes
            .get(ticket)
            .and_then(|p| p.files.get(index))
            .map(|f| f.info_hash)
        else {
            break;
        };
        let (slot, counts, index) = (ticket.slot, SwarmCounts::default(), index as u16);
        let work = if ws {
            Work::WsScrape {
                info_hash,
                slot,
                index,
                counts,
            }
        } else {
            Work::Scrape {
                info_hash,
                slot,
                index,
                counts,
            }
        };
        state.enqueue(Job {
            reply: scrape_reply(addr, ticket),
            work,
        });
    }
}

/// Starts a full scrape: one job for every request worker, each
/// answering with its share of the torrents.
pub(super) fn start_full_scrape(
    state: &mut WorkerState,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    limit: usize,
) {
    let workers = state.outbox.workers();
    let files = state.take_files();
    let pending = PendingScrape {
        token,
        conn_generation,
        ws,
        full: true,
        limit,
        files,
    };
    let Ok(ticket) = state.scrapes.insert(pending, workers as u32) else {
        return;
    };
    state.full_scrapes += 1;
    if workers == 0 {
        // Nobody to ask: the answer is empty.
        state.refused.push(Job {
            reply: scrape_reply(addr, ticket),
            work: Work::FullScrape {
                webtorrent: ws,
                limit: 0,
                files: 0..0,
                left_out: 0,
            },
        });
        return;
    }
    for worker in 0..workers {
        state.enqueue_to(
            worker,
            Job {
                reply: scrape_reply(addr, ticket),
                work: Work::FullScrape {
                    webtorrent: ws,
                    limit: limit.min(u32::MAX as usize) as u32,
                    files: 0..0,
                    left_out: 0,
                },
            },
        );
    }
}

/// Files one request worker's part of a scrape; answers when it is whole.
pub(super) fn scrape_part(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    index: Option<usize>,
    counts: &SwarmCounts,
    full: &[(InfoHash, SwarmCounts)],
) {
    let done =
        state
            .scrapes
            .file_part(scrape_ticket(reply), |p| match index {
                Some(index) => {
                    if let Some(f) = p.files.get_mut(index) {
                        f.complete = counts.seeders;
                        f.incomplete = counts.leechers;
                        f.downloaded = counts.completed;
                    }
                }
                None => {
                    let room = p.limit.saturating_sub(p.files.len());
                    p.files.extend(full.iter().take(room).map(|(info_hash, c)| {
                        bhttp::ScrapeFile {
                            info_hash: *info_hash,
                            complete: c.seeders,
                            downloaded: c.completed,
                            incomplete: c.leechers,
                        }
                    }));
                }
            });
    if let Some(p) = done {
        answer_scrape(state, conns, p, None);
    }
}

/// Answers a scrape taken out of the pending table: with its files, or
/// with `failure` (only ever "busy": a request worker was behind).
pub(super) fn answer_scrape(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    mut p: PendingScrape,
    failure: Option<&str>,
) {
    if p.full {
        state.full_scrapes = state.full_scrapes.saturating_sub(1);
    }
    if let Some(conn) = live(conns, p.token, p.conn_generation) {
        let token = p.token;
        match failure {
            Some(_) => state.count_failure(conn.protocol, None),
            None => state.requests.response(conn.protocol, MetricAction::Scrape),
        }
        if p.ws {
            state.scratch.clear();
            match failure {
                Some(reason) => {
                    let first = p.files.first().map(|f| f.info_hash);
                    jws::write_failure(&mut state.scratch, reason, Some(Action::Scrape), first);
                }
                None => jws::write_scrape_response(&mut state.scratch, p.files.iter().copied()),
            }
            ws_send(&state.scratch, conn);
            ws_request_done(state, token, conn);
        } else if let Some(inflight) = take_in_flight(conn) {
            match failure {
                Some(reason) => state.bencode_failure(reason),
                None => {
                    p.files.sort_unstable_by_key(|f| f.info_hash);
                    p.files.truncate(p.limit);
                    state.scratch.clear();
                    bhttp::write_scrape_response(&mut state.scratch, &mut p.files);
                }
            }
            finish_http_request(state, token, conn, inflight);
        }
    }
    state.recycle_files(p.files);
}
