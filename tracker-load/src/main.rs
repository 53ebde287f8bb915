//! `tracker-load`: a load generator for the tracker.

mod cli;
mod config;
mod profile;
mod report;
mod udp;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, UdpArgs};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Udp(args) => run_udp(&args),
    }
}

fn run_udp(args: &UdpArgs) -> ExitCode {
    if args.print_config {
        print!("{}", config::Config::default().to_commented_toml());
        return ExitCode::SUCCESS;
    }
    let config = match args.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tracker-load: {e}");
            return ExitCode::from(2);
        }
    };
    let options = udp::RunOptions {
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let outcome = match udp::run(&config, &options) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("tracker-load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let u = &config.udp;
    let header = format!(
        "tracker-load udp: {} from {} worker(s) x {} sockets, {} s measured after {} s warmup",
        u.tracker, u.workers, u.sockets_per_worker, u.duration, u.warmup
    );
    let human = outcome.report.human(&outcome.stats, &header);
    if args.json {
        eprint!("{human}");
        println!("{}", outcome.report.to_json());
    } else {
        print!("{human}");
    }
    ExitCode::SUCCESS
}
