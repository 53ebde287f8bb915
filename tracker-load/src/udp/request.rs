//! Writing BEP 15 requests straight into send slots.
//!
//! The announce is a 98-byte template whose constant fields are written
//! once; each request patches only the fields that vary. tracker-proto's
//! `Request::emit` would write the same bytes (the tests check it) but
//! field by field through bounds-checked writers, which shows at millions
//! of requests a second.

use tracker_proto::udp::{ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_SCRAPE, PROTOCOL_ID};
use tracker_proto::AnnounceEvent;

use super::mmsg::SEND_SLOT;
use crate::profile::{Client, Profile};

pub const CONNECT_LEN: usize = 16;
pub const ANNOUNCE_LEN: usize = 98;
const SCRAPE_HEADER_LEN: usize = 16;

/// What aquatic_udp_load_test reports for every announce.
const BYTES_DOWNLOADED: u64 = 50;
const BYTES_UPLOADED: u64 = 50;

#[inline]
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

#[inline]
pub fn write_connect(buf: &mut [u8; SEND_SLOT], txid: u32) -> usize {
    put(buf, 0, &PROTOCOL_ID.to_be_bytes());
    put(buf, 8, &ACTION_CONNECT.to_be_bytes());
    put(buf, 12, &txid.to_be_bytes());
    CONNECT_LEN
}

/// An announce with the fields that never change already in place.
pub struct AnnounceTemplate {
    bytes: [u8; ANNOUNCE_LEN],
}

impl AnnounceTemplate {
    pub fn new(numwant: i32) -> Self {
        let mut bytes = [0u8; ANNOUNCE_LEN];
        put(&mut bytes, 8, &ACTION_ANNOUNCE.to_be_bytes());
        put(&mut bytes, 56, &BYTES_DOWNLOADED.to_be_bytes());
        put(&mut bytes, 72, &BYTES_UPLOADED.to_be_bytes());
        // 84..88 (IP address) stays 0: "use the source address".
        put(&mut bytes, 92, &numwant.to_be_bytes());
        Self { bytes }
    }

    /// Writes client `index`'s announce: left from [`Client::left`], and
    /// `event`, the client's own or none (see [`Profile::announce_event`]).
    // Each argument is a field that differs per request; a struct to carry
    // them would be built and taken apart again at every call.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn write(
        &self,
        buf: &mut [u8; SEND_SLOT],
        connection_id: u64,
        txid: u32,
        profile: &Profile,
        index: u32,
        client: &Client,
        event: AnnounceEvent,
    ) -> usize {
        let out = &mut buf[..ANNOUNCE_LEN];
        out.copy_from_slice(&self.bytes);
        put(out, 0, &connection_id.to_be_bytes());
        put(out, 12, &txid.to_be_bytes());
        let mut hash = [0u8; 20];
        profile.info_hash(client.torrent, &mut hash);
        put(out, 16, &hash);
        let mut peer_id = [0u8; 20];
        profile.peer_id(index, &mut peer_id);
        put(out, 36, &peer_id);
        put(out, 64, &client.left().to_be_bytes());
        put(out, 80, &event.to_udp().to_be_bytes());
        put(out, 88, &client.key.to_be_bytes());
        put(out, 96, &client.port.to_be_bytes());
        ANNOUNCE_LEN
    }
}

/// Writes the client's scrape; its length is `16 + 20 * client.scrape_len`.
#[inline]
pub fn write_scrape(
    buf: &mut [u8; SEND_SLOT],
    connection_id: u64,
    txid: u32,
    profile: &Profile,
    client: &Client,
) -> usize {
    put(buf, 0, &connection_id.to_be_bytes());
    put(buf, 8, &ACTION_SCRAPE.to_be_bytes());
    put(buf, 12, &txid.to_be_bytes());
    let mut at = SCRAPE_HEADER_LEN;
    for torrent in profile.scrape_torrents(client) {
        // The profile caps scrape_len at 74, which SEND_SLOT fits.
        let Some(out) = buf.get_mut(at..at + 20) else {
            break;
        };
        let mut hash = [0u8; 20];
        profile.info_hash(torrent, &mut hash);
        out.copy_from_slice(&hash);
        at += 20;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProfileConfig;
    use tracker_proto::udp::{AnnounceRequest, Bep41Options, ConnectionId, Request, TransactionId};
    use tracker_proto::{InfoHash, PeerId};

    fn profile() -> Profile {
        Profile::new(&ProfileConfig {
            scrape_max_torrents: 74,
            ..ProfileConfig::default()
        })
    }

    #[test]
    fn connect_parses_back() {
        let mut buf = [0xffu8; SEND_SLOT];
        let len = write_connect(&mut buf, 0xdead_beef);
        let Ok(Request::Connect(c)) = Request::parse(&buf[..len]) else {
            panic!("{:?}", Request::parse(&buf[..len]));
        };
        assert_eq!(c.transaction_id, TransactionId(0xdead_beef));
    }

    #[test]
    fn announce_parses_back_to_the_intended_request() {
        let profile = profile();
        let template = AnnounceTemplate::new(30);
        let mut buf = [0xffu8; SEND_SLOT];
        for index in [0u32, 1, 2, 3, 12345, u32::MAX] {
            let client = profile.client(index);
            let len = template.write(
                &mut buf,
                0x0102_0304_0506_0708,
                index ^ 7,
                &profile,
                index,
                &client,
                client.event(),
            );
            let mut info_hash = [0u8; 20];
            profile.info_hash(client.torrent, &mut info_hash);
            let mut peer_id = [0u8; 20];
            profile.peer_id(index, &mut peer_id);
            let want = AnnounceRequest {
                connection_id: ConnectionId(0x0102_0304_0506_0708),
                transaction_id: TransactionId(index ^ 7),
                info_hash: InfoHash(info_hash),
                peer_id: PeerId(peer_id),
                downloaded: 50,
                left: if client.seeder { 0 } else { 50 },
                uploaded: 50,
                event: if client.seeder {
                    AnnounceEvent::Completed
                } else {
                    AnnounceEvent::Started
                },
                ip_address: None,
                key: client.key,
                num_want: 30,
                port: client.port,
                options: Bep41Options::new(&[]),
            };
            assert_eq!(Request::parse(&buf[..len]), Ok(Request::Announce(want)));
            // And tracker-proto writes the very same bytes.
            let mut emitted = [0u8; SEND_SLOT];
            let n = Request::Announce(want).emit(&mut emitted).unwrap();
            assert_eq!(&emitted[..n], &buf[..len]);
        }
        let negative = AnnounceTemplate::new(-1);
        let client = profile.client(9);
        let len = negative.write(&mut buf, 1, 2, &profile, 9, &client, client.event());
        let Ok(Request::Announce(a)) = Request::parse(&buf[..len]) else {
            panic!()
        };
        assert_eq!(a.num_want, -1);
    }

    /// The event field (bytes 80..84) of `count` announces written as the
    /// senders write them, with `event_share`, for clients 0, 1, 2, ...
    fn events_on_the_wire(event_share: f64, count: u32) -> Vec<(bool, u32)> {
        let profile = Profile::new(&ProfileConfig {
            event_share,
            ..ProfileConfig::default()
        });
        let template = AnnounceTemplate::new(30);
        let mut rng = fastrand::Rng::with_seed(11);
        let mut buf = [0u8; SEND_SLOT];
        (0..count)
            .map(|index| {
                let client = profile.client(index);
                let event = profile.announce_event(&client, &mut rng);
                let len = template.write(&mut buf, 1, index, &profile, index, &client, event);
                assert_eq!(len, ANNOUNCE_LEN);
                // A re-announce keeps what the client has left.
                let left = u64::from_be_bytes(buf[64..72].try_into().unwrap());
                assert_eq!(left, if client.seeder { 0 } else { 50 });
                let field = u32::from_be_bytes(buf[80..84].try_into().unwrap());
                (client.seeder, field)
            })
            .collect()
    }

    #[test]
    fn event_share_zero_sends_only_reannounces() {
        let events = events_on_the_wire(0.0, 10_000);
        assert!(events.iter().all(|&(_, field)| field == 0), "{events:?}");
    }

    #[test]
    fn event_share_one_sends_every_clients_event() {
        let events = events_on_the_wire(1.0, 10_000);
        // BEP 15: 1 is completed (seeders), 2 is started (leechers).
        for &(seeder, field) in &events {
            assert_eq!(field, if seeder { 1 } else { 2 });
        }
        // Both roles were exercised.
        assert!(events.iter().any(|&(s, _)| s) && events.iter().any(|&(s, _)| !s));
    }

    #[test]
    fn event_share_between_sends_that_share_of_events() {
        const N: u32 = 10_000;
        let events = events_on_the_wire(0.25, N);
        let mut with_event = 0u32;
        for &(seeder, field) in &events {
            match field {
                0 => {}
                1 if seeder => with_event += 1,
                2 if !seeder => with_event += 1,
                _ => panic!(
                    "event {field} from a {} client",
                    if seeder { "seeding" } else { "leeching" }
                ),
            }
        }
        // Binomial(10 000, 0.25): sd is 43; five of them either side.
        let want = 0.25 * f64::from(N);
        let tolerance = 5.0 * (want * 0.75).sqrt();
        assert!(
            (f64::from(with_event) - want).abs() <= tolerance,
            "{with_event} of {N} announces named an event"
        );
    }

    #[test]
    fn scrape_parses_back_with_the_clients_hashes() {
        let profile = profile();
        let mut buf = [0u8; SEND_SLOT];
        let mut max_seen = 0;
        for index in 0..2000 {
            let client = profile.client(index);
            let len = write_scrape(&mut buf, 42, index, &profile, &client);
            assert_eq!(len, 16 + 20 * client.scrape_len as usize);
            let Ok(Request::Scrape(s)) = Request::parse(&buf[..len]) else {
                panic!()
            };
            assert_eq!(s.connection_id, ConnectionId(42));
            assert_eq!(s.transaction_id, TransactionId(index));
            let want: Vec<InfoHash> = profile
                .scrape_torrents(&client)
                .map(|t| {
                    let mut h = [0u8; 20];
                    profile.info_hash(t, &mut h);
                    InfoHash(h)
                })
                .collect();
            assert_eq!(s.info_hashes.as_slice(), &want[..]);
            max_seen = max_seen.max(client.scrape_len);
        }
        assert_eq!(max_seen, 74);
    }
}
