//! `[privileges]`: started as root with `user = "nobody"` (and a chroot),
//! the tracker runs with nobody's uid and gid, no capabilities on any
//! thread, and still serves UDP, HTTP and WebSocket, reloads its access
//! list and TLS certificate on SIGUSR1, and with XDP keeps publishing the
//! connection-id tick to the program.
//!
//! Needs root (to switch user at all): these tests fail rather than skip
//! without it; CI runs them as root.

mod common;

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::netns::{in_ns, require_root, NetSpec, TestNet};
use common::ready::{assert_serves_udp_http_ws, ready_addrs, start_until_ready};
use common::scrape::metrics;
use common::*;

const NEEDS_ROOT: &str = "the privilege-drop tests start the tracker as root; CI runs them as root";

/// nobody's uid and primary gid, from the user database.
fn nobody() -> (u32, u32) {
    let name = CString::new("nobody").unwrap();
    // SAFETY: getpwnam returns null or a pointer to a static record, read
    // at once; no other thread of this test binary changes it meanwhile
    // (getpwnam is only called here, under the test's own name lookup).
    let pwd = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pwd.is_null(), "no user nobody on this system");
    // SAFETY: non-null, points to a valid passwd.
    unsafe { ((*pwd).pw_uid, (*pwd).pw_gid) }
}

/// A directory (and its files) nobody may read: tempdirs are 0700.
fn readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_list(path: &Path, hashes: &[[u8; 20]]) {
    let text: String = hashes.iter().map(|h| format!("{}\n", hex(h))).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The `Name:` field of /proc/PID/task/TID/status for every thread.
fn thread_fields(pid: u32, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        values.push(value.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    values
}

/// Every thread runs as `uid`/`gid` (real, effective, saved, fs), in no
/// other group, with every capability set empty and no_new_privs.
fn assert_dropped(pid: u32, (uid, gid): (u32, u32)) {
    let threads = thread_fields(pid, "Uid").len();
    assert!(threads > 1, "the workers are running");
    let want = |v: &str| vec![v.to_owned(); threads];
    assert_eq!(
        thread_fields(pid, "Uid"),
        want(&format!("{uid} {uid} {uid} {uid}"))
    );
    assert_eq!(
        thread_fields(pid, "Gid"),
        want(&format!("{gid} {gid} {gid} {gid}"))
    );
    assert_eq!(thread_fields(pid, "Groups"), want(&gid.to_string()));
    for caps in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
        assert_eq!(thread_fields(pid, caps), want("0000000000000000"), "{caps}");
    }
    assert_eq!(thread_fields(pid, "NoNewPrivs"), want("1"));
}

/// Announces `hash` over UDP: Ok if served, Err(message) if refused.
fn try_announce(t: &Tracker, hash: [u8; 20]) -> Result<(), String> {
    match Client::new(t.addr()).try_announce(&Announce::new(hash, 21000)) {
        Response::Announce(_) => Ok(()),
        Response::Error(e) => Err(e.message),
        other => panic!("unexpected response {other:?}"),
    }
}

#[test]
fn as_nobody_no_thread_keeps_a_capability_and_every_protocol_serves_and_reloads() {
    require_root(NEEDS_ROOT);
    let dir = readable_dir();
    let list = dir.path().join("black.txt");
    let banned = random_hash();
    write_list(&list, &[]);
    let cert_a = tls::TestCert::new(dir.path(), "a");
    let cert_b = tls::TestCert::new(dir.path(), "b");
    let mut t = Tracker::builder()
        .config(&format!(
            "[privileges]\nuser = \"nobody\"\n\
             [access_list]\nmode = \"black\"\npath = \"{}\"\n\
             [http]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
            list.display(),
            cert_a.config_section()
        ))
        .start();
    assert_dropped(t.pid(), nobody());
    assert!(
        t.stderr_text().contains("privileges dropped: user nobody"),
        "{}",
        t.stderr_text()
    );
    assert_serves_udp_http_ws(&t, "as nobody");
    try_announce(&t, banned).expect("not yet banned");
    let https = tls::https(t.https_addr(), tls::client_config(&[&cert_a.der]));
    assert_eq!(tls::peer_leaf(&https.stream), cert_a.der);

    // SIGUSR1 reloads, reading the files as nobody.
    write_list(&list, &[banned]);
    cert_b.copy_to(&cert_a.cert_path, &cert_a.key_path);
    t.sigusr1();
    assert!(
        poll_until(Duration::from_secs(10), || try_announce(&t, banned)
            .is_err()),
        "the reloaded access list never applied; stderr:\n{}",
        t.stderr_text()
    );
    let refusal = try_announce(&t, banned).unwrap_err();
    assert!(refusal.contains("not allowed"), "{refusal}");
    let https = tls::https(t.https_addr(), tls::client_config(&[&cert_b.der]));
    assert_eq!(
        tls::peer_leaf(&https.stream),
        cert_b.der,
        "reloaded certificate"
    );

    // A file nobody may not read: the log says so and why; the list stays.
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = t.stderr_lines().len();
    t.sigusr1();
    assert!(
        poll_until(Duration::from_secs(5), || t
            .stderr_lines()
            .iter()
            .skip(before)
            .any(|l| l.contains("access list reload failed"))),
        "no reload error; stderr:\n{}",
        t.stderr_text()
    );
    let error = t
        .stderr_lines()
        .into_iter()
        .skip(before)
        .find(|l| l.contains("access list reload failed"))
        .unwrap();
    assert!(
        error.contains("ermission denied")
            && error.contains("runs as user nobody")
            && error.contains("readable by nobody"),
        "{error}"
    );
    assert!(try_announce(&t, banned).is_err(), "the old list is kept");
    try_announce(&t, random_hash()).expect("other torrents still served");
    t.assert_alive();
}

#[test]
fn chrooted_as_nobody_serves_and_reloads_files_inside_the_chroot() {
    require_root(NEEDS_ROOT);
    let root = readable_dir();
    let list = root.path().join("black.txt");
    let banned = random_hash();
    write_list(&list, &[]);
    std::fs::write(
        root.path().join("tracker.toml"),
        "[privileges]\nuser = \"nobody\"\nchroot = \".\"\n\
         [access_list]\nmode = \"black\"\npath = \"black.txt\"\n\
         [udp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    // Started in the chroot directory with relative paths: the same
    // paths name the same files before and after the chroot.
    let mut cmd = Command::new(bin_path());
    cmd.current_dir(root.path())
        .args(["-c", "tracker.toml", "--admin", "127.0.0.1:0"]);
    let (mut t, line) = start_until_ready(cmd);
    assert_dropped(t.pid(), nobody());
    let seen_root = std::fs::read_link(format!("/proc/{}/root", t.pid())).unwrap();
    assert_eq!(seen_root, root.path().canonicalize().unwrap());
    assert_serves_udp_http_ws(&t, "chrooted");
    // No /proc inside the chroot: the process figures come through the
    // files the tracker opened before it, and still move.
    let admin = ready_addrs(&line, "admin http")[0];
    let m = metrics(admin);
    let rss = m.get("process_resident_memory_bytes", &[]);
    let fds = m.get("process_open_fds", &[]);
    assert!(rss > 1 << 20 && fds > 3, "rss {rss}, fds {fds}");
    let requests = m.get(
        "tracker_requests_total",
        &[("action", "announce"), ("protocol", "udp")],
    );
    assert!(requests >= 1, "the UDP announce above is counted");

    write_list(&list, &[banned]);
    t.sigusr1();
    assert!(
        poll_until(Duration::from_secs(10), || try_announce(&t, banned)
            .is_err()),
        "the reloaded access list never applied; stderr:\n{}",
        t.stderr_text()
    );
    // Gone from inside the chroot: the error says where it looked.
    std::fs::remove_file(&list).unwrap();
    let before = t.stderr_lines().len();
    t.sigusr1();
    assert!(
        poll_until(Duration::from_secs(5), || t
            .stderr_lines()
            .iter()
            .skip(before)
            .any(|l| l.contains("access list reload failed")
                && l.contains("chrooted to .")
                && l.contains("inside that directory"))),
        "no reload error naming the chroot; stderr:\n{}",
        t.stderr_text()
    );
    assert!(try_announce(&t, banned).is_err(), "the old list is kept");
    t.assert_alive();
}

#[test]
fn a_user_or_group_that_does_not_exist_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (section, key) in [
        ("user = \"no-such-user-l1\"", "privileges.user"),
        ("group = \"no-such-group-l1\"", "privileges.group"),
        ("chroot = \"/no/such/dir-l1\"", "privileges.chroot"),
    ] {
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            format!("[udp]\nlisten = [\"127.0.0.1:0\"]\n[privileges]\n{section}\n"),
        )
        .unwrap();
        let (status, _out, err) =
            run_to_exit(&["-c", path.to_str().unwrap(), "--http", "127.0.0.1:0"]);
        assert!(!status.success(), "{section}: started anyway");
        assert!(err.contains(key), "{section}: {err}");
        assert!(!err.contains("ready:"), "{section}: {err}");
    }
}

// ---------------------------------------------------------------------------
// XDP after the drop, in a namespace of this test's own
// ---------------------------------------------------------------------------

const SERVER_V4: &str = "10.124.0.1";
const CLIENT_V4: &str = "10.124.0.2";
const PORT: u16 = 6969;

/// A server and a client namespace joined by a veth pair, as tests/xdp.rs
/// builds them, under names of this test's own.
fn test_net() -> TestNet {
    TestNet::new(&NetSpec {
        prefix: "l1p",
        v4: (SERVER_V4, CLIENT_V4),
        v6: None,
        queues: 1,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn with_xdp_as_nobody_the_kernel_keeps_answering_connects_with_fresh_ticks() {
    require_root(NEEDS_ROOT);
    let net = test_net();
    let t = Tracker::builder()
        .netns(&net.server_ns)
        .udp(&format!("{SERVER_V4}:{PORT}"))
        .arg("--iface")
        .arg(&net.server_if)
        .config(&format!(
            "[privileges]\nuser = \"nobody\"\n[xdp]\nrequired = true\nscrape_in_kernel = true\n\
             pin_path = \"{}\"\n",
            net.pin_dir
        ))
        .start();
    let ready_at = unix_now();
    let log = t.stderr_text();
    assert!(
        log.contains("XDP program attached") && log.contains("privileges dropped: user nobody"),
        "{log}"
    );
    assert_dropped(t.pid(), nobody());
    // `start` returns at the listening lines, just before the ready line.
    let ready_line = || {
        t.stderr_lines()
            .into_iter()
            .find(|l| l.starts_with("ready: "))
    };
    poll_until(Duration::from_secs(5), || ready_line().is_some());
    let ready = ready_line().expect("a ready line");
    assert!(
        ready.starts_with(&format!(
            "ready: udp://{SERVER_V4}:{PORT}, http://{SERVER_V4}:"
        )) && ready.contains(&format!("; xdp {} (", net.server_if))
            && ready.ends_with(" mode, 1 AF_XDP queue)"),
        "{ready}"
    );

    // Past two ticks after the drop: an id the program issues now carries
    // a tick userland wrote since, through the map fd it kept.
    std::thread::sleep(Duration::from_millis(2500));
    let tracker = format!("{SERVER_V4}:{PORT}").parse().unwrap();
    let socket = in_ns(&net.client_ns, || {
        std::net::UdpSocket::bind(format!("{CLIENT_V4}:0")).unwrap()
    });
    let client = Client::from_socket(socket, tracker);
    let before = net.counters();
    let id = client.connect();
    assert_eq!(
        net.counters().answered - before.answered,
        1,
        "the connect was answered in the kernel"
    );
    let tick = id >> 32;
    assert!(
        tick >= ready_at + 2 && tick <= unix_now() + 1,
        "id tick {tick}: not written after the drop (ready at {ready_at})"
    );
    // Userland, through AF_XDP, accepts it.
    let hash = random_hash();
    let r = client.announce(&Announce::new(hash, 7000).leecher());
    assert_eq!(r.leechers, 1);
    assert_eq!(client.scrape(&[hash]).0, vec![(0, 0, 1)]);
    let now = net.counters();
    assert!(
        (now.redirected + now.scrape_answered) - (before.redirected + before.scrape_answered) >= 2,
        "announce and scrape answered: {before:?} → {now:?}"
    );
    // The request workers, which never ran privileged, publish scrape
    // counts through the SCRAPE fd taken before the drop: the kernel
    // answers the scrape.
    assert!(
        poll_until(Duration::from_secs(3), || {
            let answered = net.counters().scrape_answered;
            client.scrape(&[hash]).0 == [(0, 0, 1)] && net.counters().scrape_answered > answered
        }),
        "no scrape answered in the kernel after the drop:\n{}",
        t.stderr_text()
    );

    // The program goes with the process even though it may no longer
    // detach it by netlink: the BPF link closes with its fd.
    t.signal(libc::SIGTERM);
    assert!(
        poll_until(Duration::from_secs(5), || t
            .stderr_text()
            .contains("stopped")),
        "{}",
        t.stderr_text()
    );
    assert!(!net.xdp_attached(), "program left on the interface");
    // The pins it cannot remove are named in the log.
    assert!(
        t.stderr_text()
            .contains(&format!("XDP pins under {} are left behind", net.pin_dir)),
        "{}",
        t.stderr_text()
    );
}
