//! The config file (tracker-user `config`): TOML text to a validated
//! `Config`, through `Config::load` as `tracker-user -c FILE` calls it,
//! with the bytes in a scratch file.
//!
//! Beyond "no panic": an error points at a line and column that exist in
//! the text and names its origin; a limit error names a key; an accepted
//! config passes `validate` and its `-p` printout loads back to the same
//! config.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tracker_user::config::{Config, ConfigErrorKind};

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tracker-fuzz-config-{}-{name}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    static PATHS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (input, printed) = PATHS.get_or_init(|| (scratch("input.toml"), scratch("printed.toml")));
    // `load` refuses non-UTF-8 as an I/O error before any parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    std::fs::write(input, data).expect("scratch file");
    match Config::load(input) {
        Ok(config) => {
            assert_eq!(config.validate(), Ok(()));
            let toml = config.to_commented_toml();
            std::fs::write(printed, &toml).expect("scratch file");
            match Config::load(printed) {
                Ok(again) => assert_eq!(again, config, "printed as:\n{toml}"),
                Err(e) => panic!("the printed config does not load: {e}\n{toml}"),
            }
        }
        Err(e) => {
            assert_ne!(e.kind(), ConfigErrorKind::Io, "{e}");
            let lines = text.matches('\n').count() + 1;
            if let Some(line) = e.line() {
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
                let in_line = text.split('\n').nth(line - 1).unwrap_or("").chars().count();
                if let Some(column) = e.column() {
                    assert!(
                        (1..=in_line + 1).contains(&column),
                        "column {column} of {in_line}: {e}"
                    );
                }
            } else {
                assert_eq!(e.column(), None);
            }
            if e.kind() == ConfigErrorKind::Limit {
                assert!(e.key().is_some(), "{e}");
            }
            let message = e.to_string();
            assert!(message.starts_with(e.origin()), "{message}");
            assert!(
                !e.message().is_empty() || e.kind() == ConfigErrorKind::Syntax,
                "{message}"
            );
        }
    }
});
