//! Starts the workers, wires their channels, and runs the signal loop:
//! SIGUSR1 reloads the access list and the TLS certificate, SIGINT/SIGTERM
//! stop everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::bounded;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tracker_proto::connection_id::ConnectionIdSecret;
use tracker_proto::xdp::ConnectState;

use crate::access_list::{self, SharedAccessList};
use crate::clock::{unix_tick, Clock};
use crate::config::{Config, XdpConfig};
use crate::udp::{self, FrontEnd, UdpSettings, UdpWorker};
use crate::xdp::{xsk, XdpAttachment, XdpWorker};
use tracker_swarm::{run_request_worker, RequestWorkerConfig, ReturnPath};

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
    let tls = if config.wants_tls() {
        let paths = tracker_http_ws::TlsPaths {
            certificate: config.tls.certificate_path.clone(),
            private_key: config.tls.private_key_path.clone(),
        };
        let tls =
            tracker_http_ws::SharedTls::load(&paths).context("loading the TLS certificate")?;
        Some(Arc::new(tls))
    } else {
        None
    };
    let tcp_specs = config.tcp_listeners();
    let http_workers = if tcp_specs.is_empty() {
        0
    } else {
        config.http.workers
    };
    let tcp = tracker_http_ws::bind_listeners(&tcp_specs, http_workers)?;
    let http_settings = Arc::new(config.http_ws_settings());
    let (mut xdp, xsk_queues) = if config.xdp.iface.is_empty() {
        (None, Vec::new())
    } else {
        match start_xdp(&config.xdp, &bound, &settings) {
            Ok((attachment, queues)) => (Some(attachment), queues),
            Err(e) if config.xdp.required => {
                return Err(e.context("XDP is required (xdp.required = true)"));
            }
            Err(e) => {
                log::warn!("XDP unavailable, serving on plain sockets only: {e:#}");
                (None, Vec::new())
            }
        }
    };

    let swarm_workers = config.swarm.workers;
    let inboxes: Vec<_> = (0..swarm_workers)
        .map(|_| bounded(config.swarm.channel_capacity))
        .collect();
    // A front end can have at most one inbox's worth plus one batch in
    // progress at each request worker; a return channel that holds all of
    // them means a request worker never waits on a slow front end.
    let return_capacity = (config.swarm.channel_capacity + 1) * swarm_workers;

    // Every front end (UDP socket worker, AF_XDP queue worker, HTTP/WS
    // socket worker, in that order) gets a return channel; its index is the
    // origin its batches carry.
    let datagram_front_ends = udp_workers + xsk_queues.len();
    let mut polls = Vec::new();
    let mut returns = Vec::new();
    let mut return_receivers = Vec::new();
    for front_end in 0..datagram_front_ends + http_workers {
        // mio allows one waker per poll, so each worker's one waker serves
        // every channel into it.
        let token = if front_end < datagram_front_ends {
            udp::WAKER
        } else {
            tracker_http_ws::WAKER
        };
        let poll = mio::Poll::new().context("creating poll")?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), token).context("creating waker")?);
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
            limits: config.swarm.limits().per_shard(config.swarm.workers),
        };
        let returns = returns.clone();
        let inbox = inbox.clone();
        let shutdown = shutdown.clone();
        threads.push(spawn(format!("swarm-{index}"), move || {
            run_request_worker(config, inbox, returns, clock, shutdown)
        })?);
    }
    let to_swarm: Vec<_> = inboxes.iter().map(|(sender, _)| sender.clone()).collect();
    drop(inboxes);

    let mut links = polls.into_iter().zip(return_receivers).enumerate();
    let mut datagram_links = links.by_ref().take(datagram_front_ends);
    let mut front_end = || {
        let (origin, (poll, returns)) = datagram_links.next().expect("one link per front end");
        FrontEnd {
            origin,
            poll,
            to_swarm: to_swarm.clone(),
            returns,
            settings: settings.clone(),
            access_list: access_list.clone(),
            shutdown: shutdown.clone(),
        }
    };
    for (index, sockets) in udp_sockets.into_iter().enumerate() {
        let worker = UdpWorker {
            front: front_end(),
            sockets: sockets
                .into_iter()
                .map(mio::net::UdpSocket::from_std)
                .collect(),
        };
        threads.push(spawn(format!("udp-{index}"), move || worker.run())?);
    }
    for (queue_id, queue) in xsk_queues.into_iter().enumerate() {
        let worker = XdpWorker {
            front: front_end(),
            queue_id: queue_id as u32,
            queue,
        };
        threads.push(spawn(format!("xdp-{queue_id}"), move || worker.run())?);
    }
    // Offers and answers go from the worker holding the sender's connection
    // straight to the one holding the receiver's.
    let mut relay_receivers = Vec::new();
    let relays: Vec<_> = wakers[datagram_front_ends..]
        .iter()
        .map(|waker| {
            let (sender, receiver) = bounded(tracker_http_ws::RELAY_CAPACITY);
            relay_receivers.push(receiver);
            tracker_http_ws::RelayPath {
                sender,
                waker: waker.clone(),
            }
        })
        .collect();
    let filter: Arc<dyn tracker_swarm::TorrentFilter> = access_list.clone();
    for (index, ((origin, (poll, returns)), (listeners, relay_in))) in links
        .zip(tcp.per_worker.into_iter().zip(relay_receivers))
        .enumerate()
    {
        let swarm = tracker_http_ws::SwarmLink {
            origin,
            to_swarm: to_swarm.clone(),
            returns,
        };
        let relay = tracker_http_ws::RelayLink {
            inbox: relay_in,
            paths: relays.clone(),
        };
        let worker = tracker_http_ws::SocketWorker::new(
            index,
            poll,
            swarm,
            relay,
            listeners,
            http_settings.clone(),
            shutdown.clone(),
        )
        .with_tls(tls.clone())
        .with_filter(filter.clone())
        .with_clock(clock);
        threads.push(spawn(format!("http-{index}"), move || worker.run())?);
    }
    drop(relays);
    drop(to_swarm);
    // Said last, so that a line saying the tracker listens means every
    // worker, XDP included, is ready; UDP comes last of all.
    for spec in &tcp.bound {
        log::info!("{} listening on {}", spec.scheme(), spec.addr);
    }
    for addr in &bound {
        log::info!("UDP listening on {addr}");
    }

    let mut connect_map = xdp.as_mut().and_then(XdpAttachment::take_connect_map);
    let mut last_tick = 0;
    'serve: loop {
        for signal in signals.pending() {
            match signal {
                SIGUSR1 => {
                    match access_list.reload(&config.access_list) {
                        Ok(count) => log::info!("access list reloaded: {count} info hashes"),
                        Err(e) => {
                            log::error!("access list reload failed, keeping the old list: {e}")
                        }
                    }
                    if let Some(tls) = &tls {
                        match tls.reload() {
                            Ok(()) => log::info!("TLS certificate reloaded"),
                            Err(e) => log::error!(
                                "TLS certificate reload failed, keeping the old one: {e}"
                            ),
                        }
                    }
                }
                _ => {
                    log::info!("signal {signal}: shutting down");
                    break 'serve;
                }
            }
        }
        if let Some(xdp) = &mut xdp {
            // The program stamps in-kernel connection ids with the tick we
            // publish, so it must follow the clock userland verifies with.
            let tick = unix_tick();
            if tick != last_tick {
                if let Some(map) = &mut connect_map {
                    // Written whole from what we know, never read back: a
                    // failed read must not publish a zeroed secret.
                    let state = ConnectState {
                        k0: settings.secret.k0,
                        k1: settings.secret.k1,
                        tick,
                        enabled: u32::from(config.xdp.connect_in_kernel),
                    };
                    if let Err(e) = map.set(0, state, 0) {
                        log::warn!("cannot publish the connection-id tick to XDP: {e}");
                    }
                }
                last_tick = tick;
            }
            xdp.flush_log();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    shutdown.store(true, Ordering::Relaxed);
    for waker in &wakers {
        let _ = waker.wake();
    }
    for thread in threads {
        let _ = thread.join();
    }
    // Detaches the program and removes its pins, now that no worker uses
    // the AF_XDP sockets.
    drop(connect_map);
    drop(xdp);
    log::info!("stopped");
    Ok(())
}

/// Attaches the XDP program and opens one AF_XDP socket per RX queue.
fn start_xdp(
    config: &XdpConfig,
    bound: &[std::net::SocketAddr],
    settings: &UdpSettings,
) -> anyhow::Result<(XdpAttachment, Vec<xsk::XskQueue>)> {
    let mut attachment = XdpAttachment::attach(config, bound, settings.secret, unix_tick())?;
    let xsk_config = xsk::XskConfig {
        frame_count: config.frame_count,
        frame_size: 2048,
        zero_copy: config.zero_copy,
        need_wakeup: true,
    };
    let mut queues = Vec::new();
    for queue_id in 0..attachment.queues {
        let queue = match xsk::XskQueue::open(&config.iface, queue_id, &xsk_config) {
            Ok(queue) => queue,
            // iproute2 reports how many queues the device could have; the
            // kernel refuses a bind to one it does not have in use (veth
            // reports one per CPU but uses one unless told otherwise).
            Err(e) if queue_id > 0 && e.kind() == std::io::ErrorKind::InvalidInput => {
                log::info!(
                    "{} has {queue_id} RX queues in use (of {} possible)",
                    config.iface,
                    attachment.queues
                );
                break;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "opening an AF_XDP socket on {} queue {queue_id}",
                    config.iface
                )))
            }
        };
        attachment.register_socket(queue_id, queue.fd())?;
        log::info!(
            "AF_XDP socket on {} queue {queue_id} ({})",
            config.iface,
            queue.mode()
        );
        queues.push(queue);
    }
    Ok((attachment, queues))
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .with_context(|| format!("spawning thread {name}"))
}
