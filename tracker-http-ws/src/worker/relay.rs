//! Relaying offers and answers to the connection they are for, on this
//! socket worker or another.

use slab::Slab;
use tracker_metrics::Relay as RelayKind;
use tracker_swarm::ConnRef;

use crate::{Relay, RelayedOfferId};

use super::connections::{Conn, Phase};
use super::state::{live, WorkerState};

pub(super) fn wake_relays(state: &mut WorkerState) {
    for (i, woken) in state.relay_woken.iter_mut().enumerate() {
        if std::mem::take(woken) {
            if let Some(path) = state.relays.get(i) {
                if let Err(e) = path.waker.wake() {
                    log::warn!("cannot wake socket worker {i}: {e}");
                }
            }
        }
    }
}

/// Sends a relayed offer or answer to the connection `to`, wherever it is.
pub(super) fn deliver(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    to: ConnRef,
    message: &[u8],
    offer: Option<RelayedOfferId>,
) {
    if to.front_end == state.index {
        return deliver_local(state, conns, to, message, offer);
    }
    let front_end = to.front_end as usize;
    let Some(path) = state.relays.get(front_end) else {
        state.connections.relays_dropped.inc();
        return;
    };
    let relay = Relay {
        to,
        offer,
        message: message.to_vec(),
    };
    match path.sender.try_send(relay) {
        // Counted as relayed by the worker that delivers it.
        Ok(()) => {
            if let Some(woken) = state.relay_woken.get_mut(front_end) {
                *woken = true;
            }
        }
        Err(_) => state.connections.relays_dropped.inc(),
    }
}

/// Queues a relayed message for a connection of this worker, recording an
/// offer as one it may answer.
pub(super) fn deliver_local(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    to: ConnRef,
    message: &[u8],
    offer: Option<RelayedOfferId>,
) {
    let token = to.token as usize;
    let dropped = &state.connections.relays_dropped;
    let Some(conn) = live(conns, token, to.generation) else {
        dropped.inc();
        return;
    };
    // A receiver that is closing is as good as gone.
    if conn.close_after_flush {
        dropped.inc();
        return;
    }
    let Phase::Ws(ws) = &mut conn.phase else {
        dropped.inc();
        return;
    };
    if !ws.ctx.can_write() {
        dropped.inc();
        return;
    }
    if !conn.out.could_ever_hold_ws_text(message.len()) {
        // Larger than the whole queue: the sender's problem, not a reason
        // to disconnect the receiver.
        dropped.inc();
        return;
    }
    let kind = if offer.is_some() {
        RelayKind::Offer
    } else {
        RelayKind::Answer
    };
    if let Some(o) = offer {
        ws.offers.insert(
            o.offer_id,
            o.from,
            o.info_hash,
            state.now_secs,
            state.settings.ws_max_pending_offers,
        );
    }
    state.connections.relayed[kind.index()].inc();
    conn.out.push_ws_text(message);
    state.mark_dirty(token, conn);
}
