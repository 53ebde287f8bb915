//! Batches to and from the request workers: dispatch, refusal when a
//! request worker is behind, and the answers that come back.

use super::*;

/// Offers every filled batch to its request worker; a batch whose worker
/// is behind is answered "tracker busy" job by job.
pub(super) fn dispatch(core: &mut Core, conns: &mut Slab<Conn>) {
    for (worker, batch) in std::mem::take(&mut core.ready) {
        send_batch(core, conns, worker, batch);
    }
    for worker in 0..core.filling.len() {
        if let Some(batch) = core.filling[worker].take() {
            send_batch(core, conns, worker, batch);
        }
    }
    for job in std::mem::take(&mut core.refused) {
        refuse_job(core, conns, job);
    }
}

pub(super) fn send_batch(core: &mut Core, conns: &mut Slab<Conn>, worker: usize, batch: Batch) {
    if batch.is_empty() {
        core.recycle_batch(batch);
        return;
    }
    let result = match core.to_swarm.get(worker) {
        Some(sender) => sender.try_send(batch),
        None => Err(TrySendError::Disconnected(batch)),
    };
    match result {
        Ok(()) => {}
        // The request worker is behind: shed this load now rather than
        // queue it without bound.
        Err(TrySendError::Full(mut batch)) | Err(TrySendError::Disconnected(mut batch)) => {
            core.counters.busy += batch.jobs.len() as u64;
            for job in batch.jobs.drain(..) {
                refuse_job(core, conns, job);
            }
            core.recycle_batch(batch);
        }
    }
}

/// Answers a job that could not be sent: "tracker busy".
pub(super) fn refuse_job(core: &mut Core, conns: &mut Slab<Conn>, job: Job) {
    let reply = job.reply;
    match job.work {
        Work::AnnounceV4 { .. } | Work::AnnounceV6 { .. } => {
            let Some(conn) = live(conns, reply.handle as usize, reply.tag) else {
                return;
            };
            let Some(inflight) = take_in_flight(conn) else {
                return;
            };
            core.bencode_failure(BUSY);
            finish_http_request(core, reply.handle as usize, conn, inflight);
        }
        Work::Scrape { .. } | Work::WsScrape { .. } => {
            if core
                .scrapes
                .get(reply.handle as usize)
                .is_some_and(|p| p.generation == reply.tag)
            {
                finish_scrape(core, conns, reply.handle as usize, Some(BUSY));
            }
        }
        Work::FullScrape { .. } => {
            let slot = reply.handle as usize;
            let Some(p) = core.scrapes.get_mut(slot) else {
                return;
            };
            if p.generation != reply.tag {
                return;
            }
            if core.to_swarm.is_empty() {
                // No request worker at all: an empty answer.
                p.remaining = 0;
                finish_scrape(core, conns, slot, None);
            } else {
                finish_scrape(core, conns, slot, Some(BUSY));
            }
        }
        Work::WsAnnounce { announce, .. } => {
            let Some(kept) = take_kept(core, &reply) else {
                return;
            };
            if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
                core.ws_failure(BUSY, Action::Announce, Some(announce.info_hash));
                ws_send(&core.scratch, conn);
                ws_request_done(core, kept.token, conn);
            }
            core.recycle_kept(kept);
        }
        // The peer expires with the next cleaning instead.
        Work::WsLeave { .. } => {}
    }
}

pub(super) fn take_kept(core: &mut Core, reply: &ReplyTo) -> Option<Kept> {
    let slot = reply.handle as usize;
    if core
        .kept
        .get(slot)
        .is_some_and(|k| k.generation == reply.tag)
    {
        core.kept.try_remove(slot)
    } else {
        None
    }
}

/// Writes the answers of a batch back from a request worker.
pub(super) fn answer_batch(core: &mut Core, conns: &mut Slab<Conn>, batch: Batch) {
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
            } => refuse_http_announce(core, conns, reply, refusal.message()),
            Work::AnnounceV4 { peers, counts, .. } => {
                let v4 = slice(&batch.peers_v4, peers);
                answer_http_announce(core, conns, reply, v4, &[], counts);
            }
            Work::AnnounceV6 { peers, counts, .. } => {
                let v6 = slice(&batch.peers_v6, peers);
                answer_http_announce(core, conns, reply, &[], v6, counts);
            }
            Work::Scrape { index, counts, .. } | Work::WsScrape { index, counts, .. } => {
                scrape_part(core, conns, reply, Some(usize::from(*index)), counts, &[]);
            }
            Work::FullScrape { files, .. } => {
                let files = slice(&batch.scrape_files, files);
                scrape_part(core, conns, reply, None, &SwarmCounts::default(), files);
            }
            Work::WsAnnounce {
                announce,
                refused: Some(refusal),
                ..
            } => refuse_ws_announce(core, conns, reply, announce, refusal.message()),
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
                    refuse_taken_peer_id(core, conns, reply, announce);
                    continue;
                }
                answer_ws_announce(
                    core,
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
    core.recycle_batch(batch);
}

/// The results a request worker wrote for one job, by their range in the
/// batch's shared vector (empty if the range is somehow out of bounds).
pub(super) fn slice<'a, T>(all: &'a [T], range: &Range<u32>) -> &'a [T] {
    all.get(range.start as usize..range.end as usize)
        .unwrap_or(&[])
}

/// A limit of the swarm store refused the announce: the client hears why.
pub(super) fn refuse_http_announce(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    reason: &str,
) {
    let token = reply.handle as usize;
    let Some(conn) = live(conns, token, reply.tag) else {
        return;
    };
    let Some(inflight) = take_in_flight(conn) else {
        return;
    };
    core.bencode_failure(reason);
    finish_http_request(core, token, conn, inflight);
}

pub(super) fn answer_http_announce(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    v4: &[PeerV4],
    v6: &[PeerV6],
    counts: &SwarmCounts,
) {
    let token = reply.handle as usize;
    let Some(conn) = live(conns, token, reply.tag) else {
        return;
    };
    let Some(inflight) = take_in_flight(conn) else {
        return;
    };
    let s = &core.settings;
    let peers = if inflight.compact {
        bhttp::ResponsePeers::Compact { v4, v6 }
    } else {
        bhttp::ResponsePeers::Dicts { v4, v6 }
    };
    let response = HttpAnnounceResponse {
        interval: s.announce_interval,
        min_interval: (s.min_announce_interval > 0).then_some(s.min_announce_interval),
        complete: counts.seeders,
        incomplete: counts.leechers,
        peers,
        // BEP 24: the address the tracker saw, so a client behind NAT
        // learns what to tell peers it meets elsewhere (DHT, PEX).
        external_ip: Some(reply.addr.ip()),
        warning_message: None,
    };
    core.scratch.clear();
    bhttp::write_announce_response(&mut core.scratch, &response);
    finish_http_request(core, token, conn, inflight);
}
