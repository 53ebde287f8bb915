use std::process::ExitCode;

use clap::Parser;
use tracker_user::cli::{load_config, Cli};
use tracker_user::{logging, server};

// Swarms come and go by the million; mimalloc returns the pages of freed
// tables and peer vectors to the kernel soon after a clean, where glibc's
// malloc kept much of a flood's peak resident long after every peer had
// expired (see the flood bench in docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc.h (the same in its v2 and v3); the
/// Rust bindings predate the option's name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // mimalloc purges freed pages only from later allocator calls, once
    // the delay passed; a request worker that went quiet after a clean
    // would never get there and keep a flood's peak resident. Purging at
    // once costs an madvise per emptied span, mostly during cleaning.
    // SAFETY: sets a process-wide option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let cli = Cli::parse();
    if cli.print_config {
        print!(
            "{}",
            tracker_user::config::Config::default().to_commented_toml()
        );
        return ExitCode::SUCCESS;
    }
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tracker-user: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log_level, config.log_format);
    match server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker-user: {e:#}");
            ExitCode::FAILURE
        }
    }
}
