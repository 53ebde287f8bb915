//! `tracker-load udp`: BEP 15 load from many sockets over sendmmsg.

mod mmsg;
mod pending;
mod prefill;
mod request;
mod validate;
mod worker;
mod xdp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tracker_proto::udp::PeerFamily;

use crate::config::Config;
use crate::profile::{mix64, Profile};
use crate::run::{supervise, Live, Outcome, RunOptions, Shared};
use worker::{Timing, Worker, WorkerConfig};

fn open_socket(bind: IpAddr, tracker: SocketAddr, recv_buffer: usize) -> anyhow::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(tracker),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("creating a UDP socket")?;
    socket.set_nonblocking(true)?;
    if recv_buffer > 0 {
        // The kernel caps this at net.core.rmem_max; a smaller buffer only
        // risks drops, which are counted.
        let _ = socket.set_recv_buffer_size(recv_buffer);
    }
    socket
        .bind(&SocketAddr::new(bind, 0).into())
        .with_context(|| format!("binding a UDP socket to {bind}"))?;
    // Connected: the kernel then filters out anyone but the tracker, and
    // sendmmsg/recvmmsg need no addresses.
    socket
        .connect(&tracker.into())
        .with_context(|| format!("connecting a UDP socket to {tracker}"))?;
    Ok(socket)
}

/// Largest answer worth receiving whole: an announce with numwant IPv6
/// peers, a full scrape, or a generous error message.
fn recv_slot_len(numwant: i32) -> usize {
    let announce =
        usize::try_from(numwant).map_or(0, |n| 20usize.saturating_add(n.saturating_mul(18)));
    announce.clamp(2048, 65536)
}

/// Runs the configured load and returns what was counted in the measured
/// window. Fails if sockets cannot be set up or the tracker never answers.
pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<Outcome> {
    let u = &config.udp;
    if !u.xdp_iface.is_empty() {
        return xdp::run(config, options);
    }
    let profile = Arc::new(Profile::new(&config.profile));
    let family = if u.tracker.is_ipv4() {
        PeerFamily::V4
    } else {
        PeerFamily::V6
    };
    let total_sockets = u.workers * u.sockets_per_worker;
    let mut sockets = Vec::with_capacity(u.workers);
    for w in 0..u.workers {
        let mut mine = Vec::with_capacity(u.sockets_per_worker);
        for s in 0..u.sockets_per_worker {
            let global = w * u.sockets_per_worker + s;
            let bind = u.bind[global % u.bind.len()];
            mine.push(open_socket(bind, u.tracker, u.recv_buffer_size)?);
        }
        sockets.push(mine);
    }

    // Before the workers start: their clock, and the warmup, start after.
    let prefilled = match u.prefill {
        true => {
            let flat: Vec<&Socket> = sockets.iter().flatten().collect();
            let indices = prefill::address_indices(&u.bind);
            let settings = prefill::Settings {
                profile: &profile,
                family,
                tracker: u.tracker,
                addresses: (0..total_sockets)
                    .map(|g| indices[g % indices.len()])
                    .collect(),
                window: u.max_in_flight,
                batch_size: u.batch_size,
                retry: Duration::from_secs_f64(u.window_timeout),
                connection_id_max_age: Duration::from_secs_f64(u.connection_id_max_age),
                gso: u.gso,
                progress: options.progress,
                seed: mix64(config.profile.seed ^ 0x7072_6566),
            };
            Some(prefill::run(&flat, &settings)?.into_report())
        }
        false => None,
    };

    let timing = Timing::from_config(u);
    let shared = Shared::new();
    let mut handles = Vec::with_capacity(u.workers);
    let mut lives = Vec::with_capacity(u.workers);
    for (w, mine) in sockets.into_iter().enumerate() {
        let live = Arc::new(Live::default());
        let worker = Worker::new(
            WorkerConfig {
                profile: profile.clone(),
                timing,
                family,
                sockets: mine,
                first_socket: (w * u.sockets_per_worker) as u32,
                total_sockets: total_sockets as u32,
                batch_size: u.batch_size,
                max_in_flight: u.max_in_flight,
                recv_slot_len: recv_slot_len(config.profile.numwant),
                gso: u.gso,
                seed: mix64(config.profile.seed ^ 0x776f_726b ^ w as u64),
            },
            shared.clone(),
            live.clone(),
        )
        .context("setting up epoll")?;
        let handle = thread::Builder::new()
            .name(format!("udp-load-{w}"))
            .spawn(move || worker.run())
            .context("starting a worker thread")?;
        handles.push(handle);
        lives.push(live);
    }

    let mut outcome = supervise(
        &shared,
        &lives,
        handles,
        timing.window(),
        options,
        &worker::target(u),
    )?;
    outcome.report.prefill = prefilled;
    Ok(outcome)
}
