//! The limits that types alone cannot express, checked after parsing and
//! again after command-line overrides.

use super::{AccessListMode, Config, SwarmInline, ValidationError};

/// Most info hashes one scrape may be answered for. BEP 15 puts the limit
/// at "about 74": a request of 16 + 20 * 74 = 1496 bytes is about what an
/// Ethernet frame carries, and the answer (8 + 12 * 74 = 896 bytes) fits any
/// common MTU, so a larger setting would only serve requests no client sends.
pub const MAX_SCRAPE_TORRENTS_LIMIT: usize = 74;

/// Most HTTP/WebSocket socket workers.
pub const MAX_HTTP_WORKERS: usize = 1024;

/// Most request workers: each is a thread with its own shard, and far more
/// than the machine has cores only adds contention and memory.
pub const MAX_SWARM_WORKERS: usize = 1024;

/// Most torrents the XDP program's SCRAPE map may hold: 16 Mi, already
/// 1.7 GB of kernel memory.
pub const MAX_SCRAPE_MAP_ENTRIES: usize = 1 << 24;
/// How often the request workers may refresh what the kernel answers
/// from: more often than every 10 ms costs map writes for little gain, and
/// less often than once a minute leaves answers staler than an announce
/// interval.
pub const MIN_KERNEL_REFRESH_MS: usize = 10;
pub const MAX_KERNEL_REFRESH_MS: usize = 60_000;

/// `key` must not be 0 (every value checked so is unsigned).
fn at_least_1<T: Default + PartialEq>(key: &'static str, value: T) -> Result<(), ValidationError> {
    at_least_1_for(key, None, value)
}

/// [`at_least_1`] for a value only needed because `needed_by` is set.
fn at_least_1_for<T: Default + PartialEq>(
    key: &'static str,
    needed_by: Option<&'static str>,
    value: T,
) -> Result<(), ValidationError> {
    if value == T::default() {
        return Err(ValidationError::Zero { key, needed_by });
    }
    Ok(())
}

/// `got` must lie in `min..=max`; `unit` and `why` go into the message.
fn in_range(
    key: &'static str,
    got: usize,
    (min, max): (usize, usize),
    unit: &'static str,
    why: &'static str,
) -> Result<(), ValidationError> {
    if !(min..=max).contains(&got) {
        return Err(ValidationError::OutOfRange {
            key,
            got: got as u64,
            min: min as u64,
            max: max as u64,
            unit,
            why,
        });
    }
    Ok(())
}

impl Config {
    /// Checks the limits that types alone cannot express, returning the
    /// first one broken. Its Display names the key, e.g.
    /// ``key `swarm.workers`: must be between 1 and 1024, got 0``.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let s = &self.swarm;
        in_range("swarm.workers", s.workers, (1, MAX_SWARM_WORKERS), "", "")?;
        at_least_1("swarm.channel_capacity", s.channel_capacity)?;
        at_least_1("swarm.cleaning_interval", s.cleaning_interval)?;
        at_least_1("swarm.max_peer_age", s.max_peer_age)?;
        at_least_1("swarm.max_torrents", s.max_torrents)?;
        at_least_1("swarm.max_peers", s.max_peers)?;
        at_least_1("swarm.max_peers_per_torrent", s.max_peers_per_torrent)?;
        at_least_1("swarm.max_peers_per_ip", s.max_peers_per_ip)?;
        at_least_1("swarm.max_ws_torrents", s.max_ws_torrents)?;
        at_least_1("swarm.max_ws_peers", s.max_ws_peers)?;

        let persistence = &self.persistence;
        if !persistence.path.as_os_str().is_empty() {
            at_least_1_for(
                "persistence.interval",
                Some("persistence.path"),
                persistence.interval,
            )?;
        }

        let p = &self.protocol;
        at_least_1("protocol.max_numwant", p.max_numwant)?;
        if p.default_numwant > p.max_numwant {
            return Err(ValidationError::Exceeds {
                key: "protocol.default_numwant",
                got: p.default_numwant as u64,
                bound_key: "protocol.max_numwant",
                bound: p.max_numwant as u64,
            });
        }

        let u = &self.udp;
        if !u.listen.is_empty() {
            // With no address there are no sockets to work, so 0 is harmless.
            at_least_1_for("udp.workers", Some("udp.listen"), u.workers)?;
        }
        in_range(
            "udp.max_scrape_torrents",
            u.max_scrape_torrents,
            (1, MAX_SCRAPE_TORRENTS_LIMIT),
            "",
            " (about 74 fit one datagram)",
        )?;
        at_least_1("udp.connection_id_lifetime", u.connection_id_lifetime)?;
        at_least_1("udp.outgoing_queue_len", u.outgoing_queue_len)?;
        at_least_1("udp.max_pending_scrapes", u.max_pending_scrapes)?;

        let h = &self.http;
        if !self.tcp_listeners().is_empty() {
            at_least_1_for("http.workers", Some("http.listen"), h.workers)?;
        }
        // 0 is fine without TCP listeners, checked above.
        if h.workers > MAX_HTTP_WORKERS {
            return Err(ValidationError::TooLarge {
                key: "http.workers",
                got: h.workers as u64,
                max: MAX_HTTP_WORKERS as u64,
            });
        }
        at_least_1("http.max_connections", h.max_connections)?;
        in_range(
            "http.max_request_size",
            h.max_request_size,
            (256, 1 << 20),
            " bytes",
            "",
        )?;
        at_least_1("http.request_timeout", h.request_timeout)?;
        at_least_1("http.keep_alive_timeout", h.keep_alive_timeout)?;
        at_least_1("http.first_byte_timeout", h.first_byte_timeout)?;
        at_least_1("http.max_connections_per_ip", h.max_connections_per_ip)?;
        at_least_1("http.max_scrape_torrents", h.max_scrape_torrents)?;
        at_least_1("http.max_full_scrape_torrents", h.max_full_scrape_torrents)?;
        if h.min_announce_interval > p.announce_interval {
            return Err(ValidationError::Exceeds {
                key: "http.min_announce_interval",
                got: h.min_announce_interval.into(),
                bound_key: "protocol.announce_interval",
                bound: p.announce_interval.into(),
            });
        }
        let header = h.real_ip_header.trim();
        if !header.is_empty()
            && !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValidationError::NotAHeaderName {
                key: "http.real_ip_header",
                header: header.to_owned(),
            });
        }

        let w = &self.ws;
        at_least_1("ws.announce_interval", w.announce_interval)?;
        in_range(
            "ws.max_message_size",
            w.max_message_size,
            (1024, 16 << 20),
            " bytes",
            "",
        )?;
        at_least_1("ws.max_pending_offers", w.max_pending_offers)?;
        at_least_1("ws.offer_timeout", w.offer_timeout)?;
        if w.max_outgoing_bytes < w.max_message_size {
            return Err(ValidationError::LessThan {
                key: "ws.max_outgoing_bytes",
                got: w.max_outgoing_bytes as u64,
                bound_key: "ws.max_message_size",
                bound: w.max_message_size as u64,
                why: "one relayed message would not fit",
            });
        }
        at_least_1(
            "ws.max_torrents_per_connection",
            w.max_torrents_per_connection,
        )?;
        at_least_1(
            "ws.max_peer_ids_per_connection",
            w.max_peer_ids_per_connection,
        )?;
        at_least_1("ws.idle_timeout", w.idle_timeout)?;

        let t = &self.tls;
        if self.wants_tls() {
            for (key, path) in [
                ("tls.certificate_path", &t.certificate_path),
                ("tls.private_key_path", &t.private_key_path),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(ValidationError::MissingTlsFile { key });
                }
            }
        }

        let a = &self.access_list;
        if a.mode != AccessListMode::Off && a.path.as_os_str().is_empty() {
            return Err(ValidationError::MissingAccessList { mode: a.mode });
        }

        let x = &self.xdp;
        if !(64..=1 << 20).contains(&x.frame_count) || !x.frame_count.is_power_of_two() {
            return Err(ValidationError::NotPowerOfTwo {
                key: "xdp.frame_count",
                got: x.frame_count.into(),
                min: 64,
                max: 1 << 20,
            });
        }
        if !x.iface.is_empty() && x.pin_path.as_os_str().is_empty() {
            return Err(ValidationError::MissingPinPath);
        }
        in_range(
            "xdp.scrape_map_entries",
            x.scrape_map_entries as usize,
            (1, MAX_SCRAPE_MAP_ENTRIES),
            " torrents",
            " (the kernel allocates the whole map at start, about 104 bytes a torrent)",
        )?;
        in_range(
            "xdp.kernel_refresh_ms",
            usize::try_from(x.kernel_refresh_ms).unwrap_or(usize::MAX),
            (MIN_KERNEL_REFRESH_MS, MAX_KERNEL_REFRESH_MS),
            " ms",
            " (the most the kernel's answers lag the swarm)",
        )?;
        // Checked whether or not the answers are on: a value that cannot
        // work should not wait for the switch to be turned on to be named.
        self.validate_kernel_announces()?;
        self.validate_inline()
    }

    /// The hot-torrent cache and the ring of kernel-answered announces.
    fn validate_kernel_announces(&self) -> Result<(), ValidationError> {
        let x = &self.xdp;
        in_range(
            "xdp.hot_torrents",
            x.hot_torrents as usize,
            (1, 1 << 20),
            "",
            " (about 1.6 KB of kernel memory each)",
        )?;
        in_range(
            "xdp.hot_pool_peers",
            x.hot_pool_peers as usize,
            (1, tracker_proto::xdp::HOT_POOL_MAX),
            "",
            " (what a cache entry holds)",
        )?;
        in_range(
            "xdp.hot_min_rate",
            x.hot_min_rate as usize,
            (1, 1_000_000),
            " announces per second",
            "",
        )?;
        // The kernel wants a power-of-two number of pages.
        if !(4096..=1 << 30).contains(&x.ring_bytes) || !x.ring_bytes.is_power_of_two() {
            return Err(ValidationError::NotPowerOfTwo {
                key: "xdp.ring_bytes",
                got: x.ring_bytes.into(),
                min: 4096,
                max: 1 << 30,
            });
        }
        Ok(())
    }

    /// swarm.inline = "on" needs the one topology it can run in: a single
    /// request worker in the thread of a single UDP socket worker, and no
    /// AF_XDP queue workers to feed it from other threads.
    fn validate_inline(&self) -> Result<(), ValidationError> {
        if self.swarm.inline != SwarmInline::On {
            return Ok(());
        }
        let needs = |key, needs| Err(ValidationError::InlineNeeds { key, needs });
        if self.swarm.workers != 1 {
            return needs("swarm.workers", "must be 1");
        }
        if self.udp.listen.is_empty() {
            return needs("udp.listen", "must name an address");
        }
        if self.udp.workers != 1 {
            return needs("udp.workers", "must be 1");
        }
        if !self.xdp.iface.is_empty() {
            return needs("xdp.iface", "must be empty");
        }
        Ok(())
    }
}
