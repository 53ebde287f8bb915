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
use tracker_proto::xdp::ConnectState;

use crate::persistence::Persistence;
use tracker_swarm::clock::{unix_tick, Clock};
use tracker_swarm::{FrontEndEnds, SwarmSettings, SwarmTopology};

use crate::access_list::{self, SharedAccessList};
use crate::config::{Config, SwarmInline, XdpConfig};
use crate::udp::{self, FrontEnd, UdpSettings, UdpWorker};
use crate::xdp::scrape_map::ScrapeMap;
use crate::xdp::{loader, xsk, XdpAttachment, XdpWorker};
use crate::{admin, privileges, readiness};
use tracker_metrics::{Metrics, HISTORY_INTERVAL};

/// Runs the tracker until SIGINT or SIGTERM: binds, starts every worker,
/// then serves signals on this thread.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Signals first, so a SIGTERM during start-up is not lost.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGUSR1]).context("installing signal handlers")?;
    // Before the chroot hides its path.
    let mut notifier = readiness::Notifier::from_env();
    // Looked up before anything is bound, so a missing user fails at once.
    let privileges = privileges::Plan::resolve(&config.privileges)?;
    // Before the secret is used and before the privilege drop: the
    // snapshot holds the secret, and its directory is opened as root.
    let mut persistence = Persistence::open(&config)?;
    let shared = Shared {
        access_list: load_access_list(&config)?,
        settings: Arc::new(UdpSettings::new(&config, persistence.secret())),
        tls: load_tls(&config)?,
        clock: persistence.clock(),
        shutdown: Arc::new(AtomicBool::new(false)),
        // Before the privilege drop: it opens /proc/self while it can.
        metrics: Arc::new(Metrics::new(env!("CARGO_PKG_VERSION"))),
    };
    let mut bound = bind(&config, &shared.settings)?;
    register_datagram_metrics(&shared.metrics, &bound)?;
    // Everything that needs root is done: sockets, XDP, TLS and the access
    // list. Workers start after, so none ever ran privileged.
    let dropped = privileges.apply()?;
    let ready = ready_line(&config, &bound);
    // Up before the workers, so a health check sees "starting" rather
    // than a refused connection while they start.
    let health = admin::Health::default();
    admin::spawn(std::mem::take(&mut bound.admin), &health, &shared.metrics)?;
    let workers = start_workers(&config, &shared, &mut bound, &mut persistence)?;
    // Every request worker has its share of the snapshot before the
    // tracker says it is ready.
    let snapshots = persistence.start()?;
    // Said last, so that a line saying the tracker listens means every
    // worker, XDP included, is ready; UDP comes last of all.
    for spec in &bound.tcp.bound {
        log::info!("{} listening on {}", spec.scheme(), spec.addr);
    }
    for addr in &bound.admin_addrs {
        log::info!("admin listening on {addr}");
    }
    for addr in &bound.udp_addrs {
        log::info!("UDP listening on {addr}");
    }
    // Healthy before anyone is told: a script that reads the ready line
    // and asks /health at once must get 200.
    health.set_ready();
    // Whatever the log level: operators and scripts wait for this line.
    ready.print(config.log_format);
    notifier.ready(&ready.status());
    serve_until_stopped(
        &mut signals,
        &config,
        &shared,
        bound.xdp.as_mut(),
        &mut notifier,
        &dropped,
    );
    notifier.stopping();
    health.set_stopping();
    // While the request workers still hold the swarm.
    snapshots.stop();
    workers.stop(&shared.shutdown);
    // Detaches the program and removes its pins, now that no worker uses
    // the AF_XDP sockets.
    let had_xdp = bound.xdp.is_some();
    drop(bound.xdp);
    if had_xdp && dropped.gave_up_root() {
        // The link closed with its fd, so the program is off the
        // interface; only unlinking the pins needs root.
        log::warn!(
            "XDP pins under {} are left behind: removing them needs the root the tracker gave \
             up ([privileges]); the next start replaces them",
            config.xdp.pin_path.display()
        );
    }
    log::info!("stopped");
    Ok(())
}

/// What the workers and the signal loop share.
struct Shared {
    access_list: Arc<SharedAccessList>,
    settings: Arc<UdpSettings>,
    tls: Option<Arc<tracker_http_ws::SharedTls>>,
    clock: Clock,
    shutdown: Arc<AtomicBool>,
    /// Every worker's counters, read by the admin listener.
    metrics: Arc<Metrics>,
}

/// The worker threads, and how to wake each front end to see shutdown.
struct Workers {
    wakers: Vec<Arc<mio::Waker>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn stop(self, shutdown: &AtomicBool) {
        shutdown.store(true, Ordering::Relaxed);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Every socket and AF_XDP queue the tracker serves on, bound before any
/// worker starts so that a bad address fails start-up.
struct Bound {
    /// Per UDP socket worker, its sockets (one per listen address).
    udp_sockets: Vec<Vec<std::net::UdpSocket>>,
    udp_addrs: Vec<std::net::SocketAddr>,
    tcp: tracker_http_ws::BoundListeners,
    xdp: Option<Xdp>,
    xsk_queues: Vec<xsk::XskQueue>,
    /// The admin listeners (`[admin] listen`), served by their own thread.
    admin: Vec<std::net::TcpListener>,
    admin_addrs: Vec<std::net::SocketAddr>,
}

/// The attached XDP program, and the map the signal loop publishes the
/// connection-id tick in.
struct Xdp {
    // Dropped before the attachment, which detaches the program.
    connect_map: Option<aya::maps::Array<aya::maps::MapData, ConnectState>>,
    /// One writer of the SCRAPE map per request worker, when scrapes are
    /// answered in the kernel; taken by the workers at start.
    scrape_maps: Vec<ScrapeMap>,
    /// One writer of the hot-torrent cache per request worker, and the
    /// ring of kernel-answered announces, opened while still privileged.
    hot_caches: Vec<crate::xdp::hot_cache::HotCache>,
    announced: Option<crate::xdp::ring::AnnouncedRing>,
    attachment: XdpAttachment,
    last_tick: u32,
}

fn load_access_list(config: &Config) -> anyhow::Result<Arc<SharedAccessList>> {
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
    Ok(access_list)
}

fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<tracker_http_ws::SharedTls>>> {
    if !config.wants_tls() {
        return Ok(None);
    }
    let paths = tracker_http_ws::TlsPaths::from(&config.tls);
    let tls = tracker_http_ws::SharedTls::load(&paths).context("loading the TLS certificate")?;
    Ok(Some(Arc::new(tls)))
}

fn bind(config: &Config, settings: &UdpSettings) -> anyhow::Result<Bound> {
    let udp_workers = if config.udp.listen.is_empty() {
        0
    } else {
        config.udp.workers
    };
    let (udp_sockets, udp_addrs) =
        udp::bind_sockets(&config.udp.listen, udp_workers, config.udp.recv_buffer_size)?;
    let tcp_specs = config.tcp_listeners();
    let http_workers = if tcp_specs.is_empty() {
        0
    } else {
        config.http.workers
    };
    let tcp = tracker_http_ws::bind_listeners(&tcp_specs, http_workers)?;
    let (xdp, xsk_queues) = if config.xdp.iface.is_empty() {
        (None, Vec::new())
    } else {
        match start_xdp(&config.xdp, &udp_addrs, settings) {
            Ok((mut attachment, queues)) => {
                let connect_map = attachment.take_connect_map();
                let scrape_maps = scrape_maps(config, &attachment)?;
                let hot_caches = if config.xdp.announce_in_kernel {
                    (0..config.swarm.workers)
                        .map(|_| attachment.hot_cache())
                        .collect::<anyhow::Result<_>>()
                        .context("opening the hot-torrent cache maps")?
                } else {
                    Vec::new()
                };
                let announced = attachment
                    .take_announced()
                    .map(crate::xdp::ring::AnnouncedRing::new);
                let xdp = Xdp {
                    connect_map,
                    scrape_maps,
                    hot_caches,
                    announced,
                    attachment,
                    last_tick: 0,
                };
                (Some(xdp), queues)
            }
            Err(e) if config.xdp.required => {
                return Err(e.context("XDP is required (xdp.required = true)"));
            }
            Err(e) => {
                log::warn!("XDP unavailable, serving on plain sockets only: {e:#}");
                (None, Vec::new())
            }
        }
    };
    let admin = admin::bind(&config.admin.listen)?;
    let admin_addrs = admin
        .iter()
        .map(std::net::TcpListener::local_addr)
        .collect::<std::io::Result<_>>()
        .context("reading the admin listener's address")?;
    Ok(Bound {
        udp_sockets,
        udp_addrs,
        tcp,
        xdp,
        xsk_queues,
        admin,
        admin_addrs,
    })
}

/// The SCRAPE map's writers, one per request worker, each on a descriptor
/// of its own (taken here, while privileged); none when scrapes are not
/// answered in the kernel.
fn scrape_maps(config: &Config, attachment: &XdpAttachment) -> anyhow::Result<Vec<ScrapeMap>> {
    if !config.xdp.scrape_in_kernel {
        return Ok(Vec::new());
    }
    (0..config.swarm.workers)
        .map(|_| Ok(ScrapeMap::new(attachment.scrape_map_fd()?, "SCRAPE")))
        .collect()
}

/// Wires the swarm's channels and starts every worker thread: request
/// workers, then the front ends (UDP socket workers, AF_XDP queue workers,
/// HTTP/WS socket workers, in that order, which is also their origin
/// order).
fn start_workers(
    config: &Config,
    shared: &Shared,
    bound: &mut Bound,
    persistence: &mut Persistence,
) -> anyhow::Result<Workers> {
    let datagram_front_ends = bound.udp_sockets.len() + bound.xsk_queues.len();
    let http_workers = bound.tcp.per_worker.len();
    let tokens = std::iter::repeat_n(udp::WAKER, datagram_front_ends)
        .chain(std::iter::repeat_n(tracker_http_ws::WAKER, http_workers));
    let mut topology =
        SwarmTopology::new(config.swarm.workers, config.swarm.channel_capacity, tokens)
            .context("creating the front ends' polls")?;
    let inline = inline_host(config, bound);
    if let Some(host) = inline {
        topology
            .inline(host)
            .context("running the request worker inline")?;
        let thread = if bound.xsk_queues.is_empty() {
            "the UDP socket worker's"
        } else {
            "the AF_XDP queue worker's"
        };
        log::info!(
            "request worker inline in {thread} thread (swarm.inline = {})",
            inline_name(config)
        );
    } else {
        log::info!(
            "request workers: {} thread(s) of their own (swarm.inline = {})",
            config.swarm.workers,
            inline_name(config)
        );
    }
    let wakers = topology.wakers();
    let SwarmTopology {
        request_workers,
        front_ends,
    } = topology;

    let mut threads = Vec::new();
    let swarm = swarm_settings(config);
    let mut inline_worker = None;
    let mut scrape_maps = match &mut bound.xdp {
        Some(xdp) => std::mem::take(&mut xdp.scrape_maps),
        None => Vec::new(),
    }
    .into_iter();
    let refresh = Duration::from_millis(config.xdp.kernel_refresh_ms);
    for worker in request_workers {
        let index = worker.index();
        let mut worker = persistence
            .wire(worker, shared.access_list.clone())
            .report_to(shared.metrics.swarm_gauges());
        if let Some(map) = scrape_maps.next() {
            let filter: Arc<dyn tracker_swarm::TorrentFilter> = shared.access_list.clone();
            worker = worker.publish_scrapes(Box::new(map), refresh, Some(filter));
        }
        if let Some(hot) = kernel_hot(config, bound) {
            worker = worker.kernel_hot(hot.with_filter(shared.access_list.clone()));
        }
        if let Some(host) = inline {
            inline_worker = Some((
                host,
                udp::InlineRequestWorker {
                    ends: worker,
                    settings: swarm,
                    clock: shared.clock,
                },
            ));
            continue;
        }
        let thread = worker
            .spawn(swarm, shared.clock, shared.shutdown.clone())
            .with_context(|| format!("spawning thread swarm-{index}"))?;
        threads.push(thread);
    }
    let mut front_ends = front_ends.into_iter();
    spawn_datagram_workers(shared, bound, &mut front_ends, inline_worker, &mut threads)?;
    spawn_http_workers(config, shared, bound, front_ends.collect(), &mut threads)?;
    Ok(Workers { wakers, threads })
}

/// A request worker's writer of the program's hot-torrent cache, when
/// announces are answered in the kernel, on map handles opened before the
/// privilege drop.
fn kernel_hot(config: &Config, bound: &mut Bound) -> Option<tracker_swarm::kernel_hot::KernelHot> {
    let sink = bound.xdp.as_mut()?.hot_caches.pop()?;
    let settings = tracker_swarm::kernel_hot::HotSettings::per_shard(
        config.xdp.hot_torrents as usize,
        config.swarm.workers,
        config.xdp.hot_pool_peers as usize,
        std::time::Duration::from_millis(config.xdp.kernel_refresh_ms),
    )
    .with_min_rate(config.xdp.hot_min_rate);
    Some(tracker_swarm::kernel_hot::KernelHot::new(
        settings,
        Box::new(sink),
        fastrand::Rng::new(),
    ))
}

/// Which front end's thread runs the one request worker, if any: asked
/// for, or by default, when one datagram worker carries the load. That is
/// the one UDP socket worker without XDP (or with XDP configured but
/// unavailable), or with XDP on one RX queue that queue's worker (front
/// ends count the socket workers first), the socket worker then serving
/// only what the program passes to the kernel.
fn inline_host(config: &Config, bound: &Bound) -> Option<usize> {
    // Validation refused "on" where it cannot be.
    if config.swarm.inline == SwarmInline::Off || config.swarm.workers != 1 {
        return None;
    }
    match (bound.udp_sockets.len(), bound.xsk_queues.len()) {
        (1, 0) => Some(0),
        (sockets, 1) => Some(sockets),
        _ => None,
    }
}

fn inline_name(config: &Config) -> &'static str {
    match config.swarm.inline {
        SwarmInline::Auto => "auto",
        SwarmInline::On => "on",
        SwarmInline::Off => "off",
    }
}

/// What the admin thread reads from the kernel when scraped: every UDP
/// socket's drops, and with XDP the program's counters and each AF_XDP
/// socket's ring statistics, each through a descriptor of its own taken
/// now, while still privileged.
fn register_datagram_metrics(metrics: &Metrics, bound: &Bound) -> anyhow::Result<()> {
    for socket in bound.udp_sockets.iter().flatten() {
        let fd = socket.try_clone().context("duplicating a UDP socket")?;
        metrics.add_udp_socket(fd.into());
    }
    let Some(xdp) = &bound.xdp else {
        return Ok(());
    };
    let queues = &bound.xsk_queues;
    for (queue, xsk) in (0u32..).zip(queues) {
        let fd = xsk.dup_fd().context("duplicating an AF_XDP socket")?;
        metrics.add_xsk_socket(queue, fd);
    }
    let status = tracker_metrics::XdpStatus {
        iface: xdp.attachment.ifname.clone(),
        mode: xdp.attachment.mode_name().to_owned(),
        queues: queues.len(),
        zero_copy: !queues.is_empty() && queues.iter().all(xsk::XskQueue::is_zero_copy),
    };
    // Serving matters more than counting: without the map the program's
    // counters are left out of /metrics, the rest still shows.
    let reader = xdp.attachment.counter_reader().unwrap_or_else(|e| {
        log::warn!("the XDP program's counters will not be reported: {e:#}");
        Box::new(|| None)
    });
    metrics.set_xdp(status, reader);
    Ok(())
}

/// A UDP socket worker per set of sockets, then an AF_XDP queue worker per
/// queue, each taking the next front end's ends.
fn spawn_datagram_workers(
    shared: &Shared,
    bound: &mut Bound,
    front_ends: &mut impl Iterator<Item = FrontEndEnds>,
    mut inline: Option<(usize, udp::InlineRequestWorker)>,
    threads: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    // The host's worker takes it; front ends count socket workers first.
    let mut inline_for = |front_end: usize| {
        let hosts = inline.as_ref().is_some_and(|(host, _)| *host == front_end);
        hosts
            .then(|| inline.take())
            .flatten()
            .map(|(_, worker)| worker)
    };
    let sockets = bound.udp_sockets.len();
    let mut front_end = || {
        let FrontEndEnds { poll, swarm, .. } = front_ends.next().expect("one per front end");
        FrontEnd {
            poll,
            swarm,
            settings: shared.settings.clone(),
            access_list: shared.access_list.clone(),
            shutdown: shared.shutdown.clone(),
            counters: shared.metrics.request_counters(),
        }
    };
    for (index, sockets) in std::mem::take(&mut bound.udp_sockets)
        .into_iter()
        .enumerate()
    {
        let worker = UdpWorker {
            front: front_end(),
            sockets: sockets
                .into_iter()
                .map(mio::net::UdpSocket::from_std)
                .collect(),
            inline: inline_for(index),
        };
        threads.push(spawn(format!("udp-{index}"), move || worker.run())?);
    }
    for (queue_id, queue) in std::mem::take(&mut bound.xsk_queues)
        .into_iter()
        .enumerate()
    {
        let worker = XdpWorker {
            front: front_end(),
            queue_id: queue_id as u32,
            queue,
            // Queue 0's worker (the first) applies the announces the
            // program answered.
            announced: bound.xdp.as_mut().and_then(|xdp| xdp.announced.take()),
            inline: inline_for(sockets + queue_id),
        };
        threads.push(spawn(format!("xdp-{queue_id}"), move || worker.run())?);
    }
    Ok(())
}

/// An HTTP/WebSocket socket worker per set of listeners, on the remaining
/// front ends' ends.
fn spawn_http_workers(
    config: &Config,
    shared: &Shared,
    bound: &mut Bound,
    front_ends: Vec<FrontEndEnds>,
    threads: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let relays = relay_links(front_ends.iter().map(|f| f.waker.clone()));
    let settings = Arc::new(config.http_ws_settings());
    let filter: Arc<dyn tracker_swarm::TorrentFilter> = shared.access_list.clone();
    let listeners = std::mem::take(&mut bound.tcp.per_worker);
    for (index, ((front, relay), listeners)) in front_ends
        .into_iter()
        .zip(relays)
        .zip(listeners)
        .enumerate()
    {
        let worker = tracker_http_ws::SocketWorker::new(
            index,
            front.poll,
            front.swarm,
            relay,
            listeners,
            settings.clone(),
            shared.shutdown.clone(),
        )
        .with_tls(shared.tls.clone())
        .with_filter(filter.clone())
        .with_clock(shared.clock)
        .with_metrics(
            shared.metrics.request_counters(),
            shared.metrics.connection_counters(),
        );
        threads.push(spawn(format!("http-{index}"), move || worker.run())?);
    }
    Ok(())
}

fn swarm_settings(config: &Config) -> SwarmSettings {
    SwarmSettings {
        cleaning_interval: Duration::from_secs(config.swarm.cleaning_interval),
        max_peer_age: config.swarm.max_peer_age.min(u64::from(u32::MAX)) as u32,
        limits: config.swarm.limits(),
    }
}

/// The WebTorrent relay, one link per HTTP/WS socket worker (given their
/// wakers in worker order): offers and answers go from the worker holding
/// the sender's connection straight to the one holding the receiver's.
fn relay_links(wakers: impl Iterator<Item = Arc<mio::Waker>>) -> Vec<tracker_http_ws::RelayLink> {
    let (paths, inboxes): (Vec<_>, Vec<_>) = wakers
        .map(|waker| {
            let (sender, receiver) = bounded(tracker_http_ws::RELAY_CAPACITY);
            (tracker_http_ws::RelayPath { sender, waker }, receiver)
        })
        .unzip();
    inboxes
        .into_iter()
        .map(|inbox| tracker_http_ws::RelayLink {
            inbox,
            paths: paths.clone(),
        })
        .collect()
}

/// Every address served, for the `ready:` line and systemd's STATUS=.
fn ready_line(config: &Config, bound: &Bound) -> readiness::ReadyLine {
    let mut ready = readiness::ReadyLine::default();
    ready.udp(&bound.udp_addrs);
    ready.tcp(&bound.tcp.bound);
    for addr in &bound.admin_addrs {
        ready.push(format!("admin http://{addr}"));
    }
    if let Some(xdp) = &bound.xdp {
        let attachment = &xdp.attachment;
        let mode = format!("{:?}", attachment.mode);
        ready.xdp(&attachment.ifname, &mode, bound.xsk_queues.len());
    } else if !config.xdp.iface.is_empty() {
        ready.xdp_unavailable(&config.xdp.iface);
    }
    ready
}

/// The main thread's loop until SIGINT or SIGTERM: SIGUSR1 reloads, with
/// XDP the connection-id tick is published each second, and under systemd
/// the watchdog is fed.
fn serve_until_stopped(
    signals: &mut Signals,
    config: &Config,
    shared: &Shared,
    mut xdp: Option<&mut Xdp>,
    notifier: &mut readiness::Notifier,
    dropped: &privileges::Dropped,
) {
    let mut next_sample = std::time::Instant::now();
    loop {
        for signal in signals.pending() {
            if signal != SIGUSR1 {
                log::info!("signal {signal}: shutting down");
                return;
            }
            reload(config, shared, dropped);
        }
        if let Some(xdp) = xdp.as_deref_mut() {
            publish_tick(xdp, config, &shared.settings);
        }
        notifier.feed_watchdog();
        if std::time::Instant::now() >= next_sample {
            shared.metrics.sample_history();
            next_sample += HISTORY_INTERVAL;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGUSR1: the access list and the TLS certificate, each kept as it was
/// when its new version is bad. After a privilege drop the error says as
/// whom, and where, the file was looked for.
fn reload(config: &Config, shared: &Shared, dropped: &privileges::Dropped) {
    match shared.access_list.reload(&config.access_list) {
        Ok(count) => log::info!("access list reloaded: {count} info hashes"),
        Err(e) => log::error!(
            "access list reload failed, keeping the old list: {e}{}",
            dropped.reload_hint()
        ),
    }
    if let Some(tls) = &shared.tls {
        match tls.reload() {
            Ok(()) => log::info!("TLS certificate reloaded"),
            Err(e) => log::error!(
                "TLS certificate reload failed, keeping the old one: {e}{}",
                dropped.reload_hint()
            ),
        }
    }
}

/// The program stamps in-kernel connection ids with the tick we publish,
/// so it must follow the clock userland verifies with.
fn publish_tick(xdp: &mut Xdp, config: &Config, settings: &UdpSettings) {
    let tick = unix_tick();
    if tick != xdp.last_tick {
        if let Some(map) = &mut xdp.connect_map {
            // Written whole from what we know, never read back: a failed
            // read must not publish a zeroed secret.
            let state = loader::connect_state(&config.xdp, settings, tick);
            if let Err(e) = map.set(0, state, 0) {
                log::warn!("cannot publish the connection-id tick to XDP: {e}");
            }
        }
        xdp.last_tick = tick;
    }
    xdp.attachment.flush_log();
}

/// Attaches the XDP program and opens one AF_XDP socket per RX queue.
fn start_xdp(
    config: &XdpConfig,
    bound: &[std::net::SocketAddr],
    settings: &UdpSettings,
) -> anyhow::Result<(XdpAttachment, Vec<xsk::XskQueue>)> {
    let mut attachment = XdpAttachment::attach(
        config,
        bound,
        loader::connect_state(config, settings, unix_tick()),
        settings.max_scrape_torrents as u32,
    )?;
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
