//! The access-list file (tracker-user `access_list`): what the tracker
//! reads at start and on every SIGUSR1, from whoever can write the file.
//! Driven through the public loader with the bytes in a scratch file, as
//! the tracker does.
//!
//! Beyond "no panic": a bad file is blamed on a line that exists, and the
//! message names it and stays short however long or binary the line is;
//! every line that is just a hash (plus spaces or a comment) ends up in
//! the list, and the list holds no more hashes than the file has lines.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tracker_proto::InfoHash;
use tracker_user::access_list;
use tracker_user::config::{AccessListConfig, AccessListMode};

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("tracker-fuzz-access-list-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("scratch file");
    let config = AccessListConfig {
        mode: AccessListMode::Black,
        path: path.clone(),
    };
    let lines = data.split(|&b| b == b'\n').count();
    match access_list::load(&config) {
        Ok(list) => {
            assert!(
                list.len() <= lines,
                "{} hashes from {lines} lines",
                list.len()
            );
            for raw in data.split(|&b| b == b'\n') {
                let Ok(line) = std::str::from_utf8(raw) else {
                    continue;
                };
                let entry = line.split('#').next().unwrap_or("").trim();
                if let Some(hash) = InfoHash::from_hex(entry) {
                    assert!(!list.allows(&hash), "{entry} missing from the list");
                }
            }
        }
        Err(e) => {
            let line = e.line().expect("a bad file is blamed on a line");
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            let message = e.to_string();
            assert!(message.contains(&format!(":{line}:")), "{message}");
            // 80 quoted characters, each escaped to at most 10 bytes.
            assert!(
                message.len() < path.as_os_str().len() + 100 + 80 * 10,
                "{} bytes of message",
                message.len()
            );
        }
    }
});
