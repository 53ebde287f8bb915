//! `[persistence]`: a restart that clients do not notice. Peers, scrape
//! counts and connection ids survive SIGTERM and SIGKILL (after a periodic
//! snapshot); a bad snapshot file is moved aside and the tracker serves.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::http::{self, HttpAnnounce, ScrapeCounts};
use common::*;

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("swarm.snapshot")
}

/// A tracker keeping its snapshot in `dir`, with UDP, HTTP and `extra`
/// keys of its [swarm] section.
fn tracker(dir: &Path, interval: u64, extra: &str) -> Tracker {
    let config = format!(
        "{MANY_PEERS_PER_IP}{extra}\n[persistence]\npath = {:?}\ninterval = {interval}\n",
        snapshot_path(dir)
    );
    Tracker::builder().config(&config).start()
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

/// Files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

#[test]
fn peers_counts_and_connection_ids_survive_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (hash, other) = (random_hash(), random_hash());
    // Two request workers write the snapshot; three restore it, so each
    // torrent must find its new owner.
    let mut before = tracker(dir.path(), 3600, "workers = 2");
    let a = Client::new(before.addr());
    a.announce(&Announce::new(hash, 7001).leecher().event(EVENT_STARTED));
    a.announce(&Announce::new(hash, 7001).seeder().event(EVENT_COMPLETED));
    let b = Client::new(before.addr());
    b.announce(&Announce::new(hash, 7002).leecher().event(EVENT_STARTED));
    http::announce(before.http_addr(), &HttpAnnounce::new(hash, 7003));
    http::announce(
        before.http_addr(),
        &HttpAnnounce::new(other, 7004).seeder().event("completed"),
    );
    let counts_before = a.scrape(&[hash, other]).0;
    assert_eq!(counts_before, vec![(1, 1, 2), (1, 1, 0)]);
    // An id a client caches across the restart.
    let cached = Client::new(before.addr());
    let cached_id = cached.connect();

    assert!(before.terminate().success(), "{}", before.stderr_text());
    let path = snapshot_path(dir.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds the secret");
    let stderr = before.stderr_text();
    assert!(
        stderr.contains("snapshot of 2 torrents and 4 peers"),
        "{stderr}"
    );

    let after = tracker(dir.path(), 3600, "workers = 3");
    let log = after.stderr_text();
    assert!(log.contains("restored 2 torrents and 4 peers"), "{log}");
    // The id from before is accepted: no connect, no error.
    let returning = Client::new(after.addr());
    returning.set_conn_id(cached_id);
    let r = returning.announce(&Announce::new(hash, 7005).leecher().numwant(50));
    assert_eq!(
        r.peer_set(),
        [peer(7001), peer(7002), peer(7003)].into_iter().collect(),
        "a new announcer gets the peers from before the restart"
    );
    assert_eq!((r.seeders, r.leechers), (1, 3));
    returning.announce(&Announce::new(hash, 7005).event(EVENT_STOPPED));
    assert_eq!(returning.scrape(&[hash, other]).0, counts_before);
    let over_http = http::scrape_one(after.http_addr(), hash);
    assert_eq!(
        over_http,
        ScrapeCounts {
            complete: 1,
            downloaded: 1,
            incomplete: 2
        }
    );
    // The seeder that completed before the restart does not count again.
    returning.announce(&Announce::new(hash, 7001).seeder().event(EVENT_COMPLETED));
    assert_eq!(returning.scrape(&[hash]).0, vec![(1, 1, 2)]);
}

#[test]
fn without_persistence_a_restart_forgets_the_connection_id() {
    // What the test above proves would not hold by accident.
    let before = Tracker::start_v4();
    let c = Client::new(before.addr());
    let id = c.connect();
    drop(before);
    let after = Tracker::start_v4();
    let returning = Client::new(after.addr());
    returning.set_conn_id(id);
    let e = returning.announce_err(&Announce::new(random_hash(), 7001));
    assert!(e.message.contains("connection id"), "{e:?}");
}

#[test]
fn sigkill_after_a_periodic_snapshot_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let hash = random_hash();
    let mut before = tracker(dir.path(), 1, "");
    let c = Client::new(before.addr());
    c.announce(&Announce::new(hash, 7101).seeder().event(EVENT_STARTED));
    c.announce(&Announce::new(hash, 7102).leecher().event(EVENT_STARTED));
    let announced = SystemTime::now();
    let path = snapshot_path(dir.path());
    let written_after = || {
        std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > announced)
    };
    assert!(
        poll_until(Duration::from_secs(10), written_after),
        "no periodic snapshot; stderr:\n{}",
        before.stderr_text()
    );
    before.kill9();
    // As if it had died half-way through writing the next one.
    let temp = dir.path().join("swarm.snapshot.tmp");
    std::fs::write(&temp, b"BTSWARM\0half a snapsh").unwrap();
    let mut after = tracker(dir.path(), 3600, "");
    let c = Client::new(after.addr());
    let r = c.announce(&Announce::new(hash, 7103).leecher());
    assert_eq!(r.peer_set(), [peer(7101), peer(7102)].into_iter().collect());
    assert!(after.terminate().success());
    assert!(
        !temp.exists(),
        "the next snapshot replaced the half-written one"
    );
    assert!(files_starting(dir.path(), "swarm.snapshot.bad-").is_empty());
}

/// A good snapshot's bytes, of one torrent with one peer.
fn good_snapshot(dir: &Path) -> Vec<u8> {
    let mut t = tracker(dir, 3600, "");
    let c = Client::new(t.addr());
    c.announce(&Announce::new(random_hash(), 7201).seeder());
    assert!(t.terminate().success());
    std::fs::read(snapshot_path(dir)).unwrap()
}

#[test]
fn a_bad_snapshot_is_moved_aside_and_the_tracker_serves() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_snapshot(dir.path());
    let mut flipped = good.clone();
    let middle = flipped.len() / 2 + 3;
    flipped[middle] ^= 0x10;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() - 5].to_vec(), "truncated"),
        ("bit-flipped", flipped, "checksum mismatch"),
        ("empty", Vec::new(), "empty"),
        (
            "foreign",
            b"[swarm]\nworkers = 1\n".to_vec(),
            "not a tracker snapshot",
        ),
    ];
    let path = snapshot_path(dir.path());
    for (what, bytes, reason) in cases {
        for old in files_starting(dir.path(), "swarm.snapshot") {
            std::fs::remove_file(old).unwrap();
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut t = tracker(dir.path(), 3600, "");
        // It serves, empty.
        let c = Client::new(t.addr());
        let hash = random_hash();
        let r = c.announce(&Announce::new(hash, 7301).leecher());
        assert!(r.peer_set().is_empty(), "{what}");
        let log = t.stderr_text();
        let line = log
            .lines()
            .find(|l| l.contains("ERROR") && l.contains(&path.display().to_string()))
            .unwrap_or_else(|| panic!("{what}: no error naming the file:\n{log}"));
        assert!(line.contains(reason), "{what}: {line}");
        let aside = files_starting(dir.path(), "swarm.snapshot.bad-");
        assert_eq!(aside.len(), 1, "{what}: {aside:?}");
        assert!(line.contains(&aside[0].display().to_string()), "{line}");
        assert_eq!(
            std::fs::read(&aside[0]).unwrap(),
            bytes,
            "{what}: kept as it was"
        );
        // The next snapshot is good again.
        assert!(t.terminate().success());
        let next = tracker(dir.path(), 3600, "");
        assert!(
            next.stderr_text()
                .contains("restored 1 torrents and 1 peers"),
            "{what}: {}",
            next.stderr_text()
        );
    }
}

#[test]
fn a_completion_counts_once_and_outlives_the_peers_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hash = random_hash();
    let ages = "cleaning_interval = 1\nmax_peer_age = 2";
    let mut before = tracker(dir.path(), 3600, ages);
    let c = Client::new(before.addr());
    c.announce(&Announce::new(hash, 7401).leecher().event(EVENT_STARTED));
    c.announce(&Announce::new(hash, 7401).seeder().event(EVENT_COMPLETED));
    c.announce(&Announce::new(hash, 7401).seeder().event(EVENT_COMPLETED));
    assert_eq!(c.scrape(&[hash]).0, vec![(1, 1, 0)], "counted once");
    http::announce(
        before.http_addr(),
        &HttpAnnounce::new(hash, 7402).seeder().event("completed"),
    );
    assert_eq!(c.scrape(&[hash]).0, vec![(2, 2, 0)]);
    // Both peers expire; the count stays.
    assert!(
        poll_until(Duration::from_secs(10), || c.scrape(&[hash]).0
            == vec![(0, 2, 0)]),
        "{:?}",
        c.scrape(&[hash]).0
    );
    assert!(before.terminate().success());
    let after = tracker(dir.path(), 3600, ages);
    let c = Client::new(after.addr());
    assert_eq!(c.scrape(&[hash]).0, vec![(0, 2, 0)]);
    assert_eq!(http::scrape_one(after.http_addr(), hash).downloaded, 2);
}

/// Three torrents of two peers each, last announced now, in a snapshot.
fn three_torrents(dir: &Path) -> [[u8; 20]; 3] {
    let hashes = [random_hash(), random_hash(), random_hash()];
    let mut t = tracker(dir, 3600, "");
    let c = Client::new(t.addr());
    for (i, hash) in hashes.iter().enumerate() {
        for port in [7501, 7502] {
            c.announce(&Announce::new(*hash, port + 10 * i as u16).leecher());
        }
    }
    assert!(t.terminate().success());
    hashes
}

#[test]
fn the_access_list_applies_at_restore() {
    let dir = tempfile::tempdir().unwrap();
    let [kept, denied, also_kept] = three_torrents(dir.path());
    let list = dir.path().join("black.txt");
    std::fs::write(&list, format!("{}\n", hex(&denied))).unwrap();
    let t = tracker(
        dir.path(),
        3600,
        &format!("\n[access_list]\nmode = \"black\"\npath = {list:?}"),
    );
    let log = t.stderr_text();
    assert!(log.contains("restored 2 torrents and 4 peers"), "{log}");
    assert!(
        log.contains("1 torrents of the snapshot are denied by the access list"),
        "{log}"
    );
    let c = Client::new(t.addr());
    assert_eq!(
        c.scrape(&[kept, denied, also_kept]).0,
        vec![(0, 0, 2), (0, 0, 0), (0, 0, 2)]
    );
}

#[test]
fn a_snapshot_larger_than_the_limits_restores_what_fits_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let hashes = three_torrents(dir.path());
    // One request worker, so the totals are its share exactly.
    let t = tracker(
        dir.path(),
        3600,
        "workers = 1\nmax_torrents = 2\nmax_peers = 3",
    );
    let log = t.stderr_text();
    assert!(log.contains("restored 2 torrents and 3 peers"), "{log}");
    assert!(
        log.contains("the snapshot holds more than the [swarm] limits allow: 1 torrents and 3 peers were not restored"),
        "{log}"
    );
    let c = Client::new(t.addr());
    let held: u32 = c.scrape(&hashes).0.iter().map(|(_, _, l)| l).sum();
    assert_eq!(held, 3);
}

#[test]
fn peers_keep_their_age_and_expire_at_restore() {
    let dir = tempfile::tempdir().unwrap();
    let hashes = three_torrents(dir.path());
    // They were announced at least 2 s ago by the time this restores.
    std::thread::sleep(Duration::from_millis(2_100));
    let t = tracker(dir.path(), 3600, "max_peer_age = 1");
    let log = t.stderr_text();
    assert!(
        log.contains("restored 0 torrents and 0 peers") && log.contains("6 peers had expired"),
        "{log}"
    );
    let c = Client::new(t.addr());
    assert_eq!(c.scrape(&hashes).0, vec![(0, 0, 0); 3]);
}
