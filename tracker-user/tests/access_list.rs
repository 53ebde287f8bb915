//! Access list (white/black) and its reload on SIGUSR1.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn write_list(path: &Path, hashes: &[[u8; 20]]) {
    let mut text = String::from("# test access list\n\n");
    for h in hashes {
        text.push_str(&hex(h));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn start(mode: &str, list: &Path) -> Tracker {
    Tracker::with_config(&format!(
        "[access_list]\nmode = \"{mode}\"\npath = \"{}\"\n",
        list.display()
    ))
}

/// Announces `hash` from a fresh socket; Ok(()) if served, Err(message) if
/// refused with an error response.
fn try_announce(t: &Tracker, hash: [u8; 20]) -> Result<(), String> {
    let c = Client::new(t.addr());
    match c.try_announce(&Announce::new(hash, 21000)) {
        Response::Announce(_) => Ok(()),
        Response::Error(e) => Err(e.message),
        other => panic!("unexpected response {other:?}"),
    }
}

fn assert_allowed(t: &Tracker, hash: [u8; 20], what: &str) {
    if let Err(msg) = try_announce(t, hash) {
        panic!("{what}: torrent {} refused: {msg:?}", hex(&hash));
    }
}

fn assert_refused(t: &Tracker, hash: [u8; 20], what: &str) {
    match try_announce(t, hash) {
        Ok(()) => panic!("{what}: torrent {} was served", hex(&hash)),
        Err(msg) => assert!(
            msg.to_lowercase().contains("not allowed"),
            "{what}: refusal message {msg:?} does not say \"not allowed\""
        ),
    }
}

/// Polls until `hash_ok` is served and `hash_refused` refused.
fn wait_for_list(t: &Tracker, hash_ok: [u8; 20], hash_refused: [u8; 20], what: &str) {
    let switched = poll_until(Duration::from_secs(10), || {
        try_announce(t, hash_ok).is_ok() && try_announce(t, hash_refused).is_err()
    });
    assert!(
        switched,
        "{what}: the reloaded list never took effect; stderr:\n{}",
        t.stderr_text()
    );
    assert_allowed(t, hash_ok, what);
    assert_refused(t, hash_refused, what);
}

/// After a failed reload: waits for the tracker to log something (a hint
/// that it handled the signal), then checks for a while that the old list
/// still applies.
fn check_old_list_kept(t: &mut Tracker, lines_before: usize, ok: [u8; 20], refused: [u8; 20]) {
    poll_until(Duration::from_secs(3), || {
        t.stderr_lines().len() > lines_before
    });
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_allowed(t, ok, "after a bad reload");
        assert_refused(t, refused, "after a bad reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    t.assert_alive();
}

#[test]
fn whitelist_serves_only_listed_and_reloads_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("white.txt");
    let a = random_hash();
    let b = random_hash();
    write_list(&list, &[a]);
    let mut t = start("white", &list);

    assert_allowed(&t, a, "initial whitelist [a]");
    assert_refused(&t, b, "initial whitelist [a]");

    // Refused torrents are not registered.
    let c = Client::new(t.addr());
    assert_eq!(
        c.scrape(&[b]).0,
        vec![(0, 0, 0)],
        "refused announce registered a peer"
    );

    write_list(&list, &[b]);
    t.sigusr1();
    wait_for_list(&t, b, a, "whitelist reloaded to [b]");

    // A bad file on reload keeps the old list.
    let before = t.stderr_lines().len();
    std::fs::write(&list, format!("{}\nthis is not a hash\n", hex(&a))).unwrap();
    t.sigusr1();
    check_old_list_kept(&mut t, before, b, a);

    // A good reload still works afterwards.
    write_list(&list, &[a, b]);
    t.sigusr1();
    let both = poll_until(Duration::from_secs(10), || {
        try_announce(&t, a).is_ok() && try_announce(&t, b).is_ok()
    });
    assert!(both, "whitelist [a, b] never took effect");
}

#[test]
fn blacklist_refuses_listed_and_reloads_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("black.txt");
    let a = random_hash();
    let b = random_hash();
    write_list(&list, &[a]);
    let mut t = start("black", &list);

    assert_refused(&t, a, "initial blacklist [a]");
    assert_allowed(&t, b, "initial blacklist [a]");

    write_list(&list, &[b]);
    t.sigusr1();
    wait_for_list(&t, a, b, "blacklist reloaded to [b]");

    let before = t.stderr_lines().len();
    std::fs::write(&list, "0123\n").unwrap();
    t.sigusr1();
    check_old_list_kept(&mut t, before, a, b);
}

#[test]
fn access_list_off_serves_everything_and_survives_sigusr1() {
    let mut t = Tracker::start_v4();
    let a = random_hash();
    assert_allowed(&t, a, "mode off");
    t.sigusr1();
    std::thread::sleep(Duration::from_millis(300));
    t.assert_alive();
    assert_allowed(&t, random_hash(), "mode off after SIGUSR1");
}

#[test]
fn bad_access_list_at_start_is_fatal_and_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("bad-list.txt");
    let text = format!(
        "# comment\n{}\nnot-a-hash-at-all\n{}\n",
        hex(&random_hash()),
        hex(&random_hash())
    );
    std::fs::write(&list, text).unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[access_list]\nmode = \"white\"\npath = \"{}\"\n",
            list.display()
        ),
    )
    .unwrap();
    let (status, _out, err) = run_to_exit(&["-c", cfg.to_str().unwrap(), "--udp", "127.0.0.1:0"]);
    assert!(
        !status.success(),
        "tracker started with a bad access list; stderr:\n{err}"
    );
    assert!(
        err.contains(list.to_str().unwrap()) || err.contains("bad-list.txt"),
        "stderr does not name the list file:\n{err}"
    );
    assert!(
        mentions_line(&err, 3),
        "stderr does not name line 3:\n{err}"
    );
}
