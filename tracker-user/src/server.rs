//! Starts the workers, wires their channels, and runs the signal loop:
//! SIGUSR1 reloads the access list, SIGINT/SIGTERM stop everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::bounded;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tracker_proto::connection_id::ConnectionIdSecret;

use crate::access_list::{self, SharedAccessList};
use crate::clock::Clock;
use crate::config::Config;
use crate::swarm::{run_request_worker, RequestWorkerConfig, ReturnPath};
use crate::udp::{self, UdpSettings, UdpWorker};

/// A secret chosen at start: ids from a previous run are refused, which
/// costs clients one reconnect and spares us persisting a key.
fn fresh_secret() -> anyhow::Result<ConnectionIdSecret> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
    Ok(ConnectionIdSecret::from_bytes(bytes))
}

pub fn run(config: Config) -> anyhow::Result<()> {
    // Signals first, so a SIGTERM during start-up is not lost.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGUSR1]).context("installing signal handlers")?;
    let access_list = Arc::new(SharedAccessList::new(
        access_list::load(&config.access_list).map_err(|e| anyhow::anyhow!("{e}"))?,
    ));
    if config.access_list.mode != crate::config::AccessListMode::Off {
        log::info!(
            "access list ({:?} mode): {} info hashes from {}",
            config.access_list.mode,
            access_list.len(),
            config.access_list.path.display()
        );
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let clock = Clock::start();
    let settings = Arc::new(UdpSettings::new(&config, fresh_secret()?));

    let udp_workers = if config.udp.listen.is_empty() {
        0
    } else {
        config.udp.workers
    };
    let (udp_sockets, bound) =
        udp::bind_sockets(&config.udp.listen, udp_workers, config.udp.recv_buffer_size)?;
    for addr in &bound {
        log::info!("UDP listening on {addr}");
    }

    let swarm_workers = config.swarm.workers;
    let inboxes: Vec<_> = (0..swarm_workers)
        .map(|_| bounded(config.swarm.channel_capacity))
        .collect();
    // A front end can have at most one inbox's worth plus one batch in
    // progress at each request worker; a return channel that holds all of
    // them means a request worker never waits on a slow front end.
    let return_capacity = (config.swarm.channel_capacity + 1) * swarm_workers;

    let mut polls = Vec::new();
    let mut returns = Vec::new();
    let mut return_receivers = Vec::new();
    for _ in 0..udp_workers {
        let poll = mio::Poll::new().context("creating poll")?;
        let waker =
            Arc::new(mio::Waker::new(poll.registry(), udp::WAKER).context("creating waker")?);
        let (sender, receiver) = bounded(return_capacity);
        returns.push(ReturnPath { sender, waker });
        return_receivers.push(receiver);
        polls.push(poll);
    }
    let wakers: Vec<_> = returns.iter().map(|r| r.waker.clone()).collect();

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (index, (_, inbox)) in inboxes.iter().enumerate() {
        let config = RequestWorkerConfig {
            index,
            cleaning_interval: Duration::from_secs(config.swarm.cleaning_interval),
            max_peer_age: config.swarm.max_peer_age.min(u64::from(u32::MAX)) as u32,
        };
        let returns = returns.clone();
        let inbox = inbox.clone();
        let shutdown = shutdown.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("swarm-{index}"))
                .spawn(move || run_request_worker(config, inbox, returns, clock, shutdown))
                .context("spawning request worker")?,
        );
    }
    let to_swarm: Vec<_> = inboxes.iter().map(|(sender, _)| sender.clone()).collect();
    drop(inboxes);

    for (origin, ((sockets, poll), returns)) in udp_sockets
        .into_iter()
        .zip(polls)
        .zip(return_receivers)
        .enumerate()
    {
        let worker = UdpWorker {
            origin,
            sockets: sockets
                .into_iter()
                .map(mio::net::UdpSocket::from_std)
                .collect(),
            poll,
            to_swarm: to_swarm.clone(),
            returns,
            settings: settings.clone(),
            access_list: access_list.clone(),
            shutdown: shutdown.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("udp-{origin}"))
                .spawn(move || worker.run())
                .context("spawning UDP worker")?,
        );
    }
    drop(to_swarm);

    for signal in signals.forever() {
        match signal {
            SIGUSR1 => match access_list.reload(&config.access_list) {
                Ok(count) => log::info!("access list reloaded: {count} info hashes"),
                Err(e) => log::error!("access list reload failed, keeping the old list: {e}"),
            },
            _ => {
                log::info!("signal {signal}: shutting down");
                break;
            }
        }
    }
    shutdown.store(true, Ordering::Relaxed);
    for waker in &wakers {
        let _ = waker.wake();
    }
    for thread in threads {
        let _ = thread.join();
    }
    log::info!("stopped");
    Ok(())
}
