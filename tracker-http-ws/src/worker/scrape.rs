//! Scrapes (HTTP and WebSocket): one pending entry per request, filled by
//! every request worker's part.

use super::*;

/// A scrape whose hashes are out at the request workers.
pub(super) struct PendingScrape {
    pub(super) generation: u32,
    pub(super) token: usize,
    pub(super) conn_generation: u32,
    pub(super) ws: bool,
    /// A full scrape: `files` fills from every request worker's part.
    pub(super) full: bool,
    /// Cap of a full scrape's answer.
    pub(super) limit: usize,
    pub(super) remaining: u32,
    pub(super) files: Vec<bhttp::ScrapeFile>,
}

pub(super) fn start_scrape(
    state: &mut WorkerState,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    hashes: impl Iterator<Item = InfoHash>,
) {
    let generation = state.next_generation();
    let mut files = state.take_files();
    files.extend(hashes.map(|info_hash| bhttp::ScrapeFile {
        info_hash,
        ..Default::default()
    }));
    let count = files.len();
    let slot = state.scrapes.insert(PendingScrape {
        generation,
        token,
        conn_generation,
        ws,
        full: false,
        limit: count,
        remaining: count as u32,
        files,
    });
    for index in 0..count {
        let Some(info_hash) = state
            .scrapes
            .get(slot)
            .and_then(|p| p.files.get(index))
            .map(|f| f.info_hash)
        else {
            break;
        };
        let counts = SwarmCounts::default();
        let (slot32, index) = (slot as u32, index as u16);
        let work = if ws {
            Work::WsScrape {
                info_hash,
                slot: slot32,
                index,
                counts,
            }
        } else {
            Work::Scrape {
                info_hash,
                slot: slot32,
                index,
                counts,
            }
        };
        state.enqueue(Job {
            reply: ReplyTo {
                addr,
                handle: slot32,
                tag: generation,
            },
            work,
        });
    }
}

pub(super) fn start_full_scrape(
    state: &mut WorkerState,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    limit: usize,
) {
    let workers = state.to_swarm.len();
    let generation = state.next_generation();
    let files = state.take_files();
    let slot = state.scrapes.insert(PendingScrape {
        generation,
        token,
        conn_generation,
        ws,
        full: true,
        limit,
        remaining: workers as u32,
        files,
    });
    state.full_scrapes += 1;
    if workers == 0 {
        // Nobody to ask: the answer is empty.
        state.refused.push(Job {
            reply: ReplyTo {
                addr,
                handle: slot as u32,
                tag: generation,
            },
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
                reply: ReplyTo {
                    addr,
                    handle: slot as u32,
                    tag: generation,
                },
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
    let slot = reply.handle as usize;
    let Some(p) = state.scrapes.get_mut(slot) else {
        return;
    };
    if p.generation != reply.tag {
        return;
    }
    match index {
        Some(index) => {
            if let Some(f) = p.files.get_mut(index) {
                f.complete = counts.seeders;
                f.incomplete = counts.leechers;
                f.downloaded = counts.completed;
            }
        }
        None => {
            let room = p.limit.saturating_sub(p.files.len());
            p.files.extend(
                full.iter()
                    .take(room)
                    .map(|(info_hash, c)| bhttp::ScrapeFile {
                        info_hash: *info_hash,
                        complete: c.seeders,
                        downloaded: c.completed,
                        incomplete: c.leechers,
                    }),
            );
        }
    }
    p.remaining = p.remaining.saturating_sub(1);
    if p.remaining == 0 {
        finish_scrape(state, conns, slot, None);
    }
}

/// Answers a pending scrape: with its files, or with `failure`.
pub(super) fn finish_scrape(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    slot: usize,
    failure: Option<&str>,
) {
    let Some(mut p) = state.scrapes.try_remove(slot) else {
        return;
    };
    if p.full {
        state.full_scrapes = state.full_scrapes.saturating_sub(1);
    }
    if let Some(conn) = live(conns, p.token, p.conn_generation) {
        let token = p.token;
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
