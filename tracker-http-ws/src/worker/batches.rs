//! Batches to and from the request workers: dispatch, refusal when a
//! request worker is behind, and the answers that come back.

use std::ops::Range;

use slab::Slab;
use tracker_metrics::ErrorKind;
use tracker_proto::ws::Action;
use tracker_swarm::{Batch, Job, SwarmCounts, Work};

use super::connections::Conn;
use super::http::{answer_http_announce, refuse_http_announce};
use super::scrape::{answer_scrape, scrape_part, scrape_ticket};
use super::state::{live, WorkerState};
use super::ws::{
    answer_ws_announce, refuse_taken_peer_id, refuse_ws_announce, take_kept, ws_request_done,
    ws_send,
};
use super::BUSY;

/// Offers every filled batch to its request worker; a batch whose worker
/// is behind is answered "tracker busy" job by job.
pub(super) fn dispatch(state: &mut WorkerState, conns: &mut Slab<Conn>) {
    // Taken out so the outbox can hand jobs back while `state` is borrowed;
    // answering them needs all of `state`.
    let mut refused = std::mem::take(&mut state.refused);
    // Counted as dropped when answered, once per request rather than per
    // job (a scrape may be many).
    state.outbox.send_all(|job| refused.push(job));
    for job in refused.drain(..) {
        refuse_job(state, conns, job);
    }
    // Keep the allocation for the next round.
    if state.refused.is_empty() {
        state.refused = refused;
    }
}

/// Answers a job that could not be sent: "tracker busy".
fn refuse_job(state: &mut WorkerState, conns: &mut Slab<Conn>, job: Job) {
    let reply = job.reply;
    match job.work {
        Work::AnnounceV4 { .. } | Work::AnnounceV6 { .. } => {
            refuse_http_announce(state, conns, &reply, BUSY, None);
        }
        Work::Scrape { .. } | Work::WsScrape { .. } => {
            // The first refused part answers; the others find it gone.
            if let Some(p) = state.scrapes.remove(scrape_ticket(&reply)) {
                answer_scrape(state, conns, p, Some(BUSY));
            }
        }
        Work::FullScrape { .. } => {
            let Some(p) = state.scrapes.remove(scrape_ticket(&reply)) else {
                return;
            };
            if state.outbox.workers() == 0 {
                // No request worker at all: an empty answer.
                answer_scrape(state, conns, p, None);
            } else {
                answer_scrape(state, conns, p, Some(BUSY));
            }
        }
        Work::WsAnnounce { announce, .. } => {
            let Some(kept) = take_kept(state, &reply) else {
                return;
            };
            if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
                state.count_failure(conn.protocol, None);
                state.ws_failure(BUSY, Action::Announce, Some(announce.info_hash));
                ws_send(&state.scratch, conn);
                ws_request_done(state, kept.token, conn);
            }
            state.recycle_kept(kept);
        }
        // The peer expires with the next cleaning instead.
        Work::WsLeave { .. } => {}
    }
}

/// How a refusal by a limit of the swarm store counts.
const LIMIT: Option<ErrorKind> = Some(ErrorKind::LimitReached);

/// Writes the answers of a batch back from a request worker.
pub(super) fn answer_batch(state: &mut WorkerState, conns: &mut Slab<Conn>, batch: Batch) {
    for job in &batch.jobs {
        let reply = &job.reply;
        match &job.work {
            Work::AnnounceV4 {
                refused: Some(refusal),
                ..
            }
            | Work::AnnounceV6 {
                refused: Some(refusal),
                ..
            } => refuse_http_announce(state, conns, reply, refusal.message(), LIMIT),
            Work::AnnounceV4 { peers, counts, .. } => {
                let v4 = slice(&batch.peers_v4, peers);
                answer_http_announce(state, conns, reply, v4, &[], counts);
            }
            Work::AnnounceV6 { peers, counts, .. } => {
                let v6 = slice(&batch.peers_v6, peers);
                answer_http_announce(state, conns, reply, &[], v6, counts);
            }
            Work::Scrape { index, counts, .. } | Work::WsScrape { index, counts, .. } => {
                scrape_part(state, conns, reply, Some(usize::from(*index)), counts, &[]);
            }
            Work::FullScrape { files, .. } => {
                let files = slice(&batch.scrape_files, files);
                scrape_part(state, conns, reply, None, &SwarmCounts::default(), files);
            }
            Work::WsAnnounce {
                announce,
                refused: Some(refusal),
                ..
            } => refuse_ws_announce(state, conns, reply, announce, refusal.message(), LIMIT),
            Work::WsAnnounce {
                announce,
                targets,
                counts,
                answer_target,
                peer_id_taken,
                ..
            } => {
                let targets = slice(&batch.ws_targets, targets);
                if *peer_id_taken {
                    refuse_taken_peer_id(state, conns, reply, announce);
                    continue;
                }
                answer_ws_announce(
                    state,
                    conns,
                    reply,
                    announce,
                    targets,
                    counts,
                    *answer_target,
                );
            }
            Work::WsLeave { .. } => {}
        }
    }
    state.outbox.recycle(batch);
}

/// The results a request worker wrote for one job, by their range in the
/// batch's shared vector (empty if the range is somehow out of bounds).
fn slice<'a, T>(all: &'a [T], range: &Range<u32>) -> &'a [T] {
    all.get(range.start as usize..range.end as usize)
        .unwrap_or(&[])
}
