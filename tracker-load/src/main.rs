//! `tracker-load`: a load generator for the tracker.

mod cli;
mod config;
mod http;
mod profile;
mod report;
mod run;
mod tcp;
mod udp;
mod ws;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::Cli;
use report::Protocol;
use run::RunOptions;

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let protocol = command.protocol();
    let args = command.args();
    if args.print_config {
        print!("{}", config::Config::default().to_commented_toml());
        return ExitCode::SUCCESS;
    }
    let config = match args.load_config(protocol) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tracker-load: {e}");
            return ExitCode::from(2);
        }
    };
    let options = RunOptions {
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let outcome = match protocol {
        Protocol::Udp => udp::run(&config, &options),
        Protocol::Http => http::run(&config, &options),
        Protocol::Ws => ws::run(&config, &options),
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("tracker-load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let header = header(protocol, &config);
    let human = outcome.report.human(&outcome.stats, &header);
    if args.json {
        eprint!("{human}");
        println!("{}", outcome.report.to_json());
    } else {
        print!("{human}");
    }
    ExitCode::SUCCESS
}

/// The first line of the summary: what was run against what.
fn header(protocol: Protocol, config: &config::Config) -> String {
    match protocol {
        Protocol::Udp if !config.udp.xdp_iface.is_empty() => {
            let u = &config.udp;
            format!(
                "tracker-load udp: {} from an AF_XDP socket on {}, {} sources from {}, \
                 {} in flight, {} s measured after {} s warmup",
                u.tracker,
                u.xdp_iface,
                u.xdp_source_count,
                u.xdp_source_first,
                u.xdp_in_flight,
                u.duration,
                u.warmup
            )
        }
        Protocol::Udp => {
            let u = &config.udp;
            format!(
                "tracker-load udp: {} from {} worker(s) x {} sockets, {} s measured after {} s \
                 warmup",
                u.tracker, u.workers, u.sockets_per_worker, u.duration, u.warmup
            )
        }
        Protocol::Http => {
            let h = &config.http;
            format!(
                "tracker-load http: {}://{} from {} worker(s), {} connections x {} in flight, \
                 {} s measured after {} s warmup",
                if h.tls { "https" } else { "http" },
                h.tracker,
                h.workers,
                h.connections,
                h.pipeline,
                h.duration,
                h.warmup
            )
        }
        Protocol::Ws => {
            let w = &config.ws;
            format!(
                "tracker-load ws: {}://{} from {} worker(s), {} connections x {} in flight, \
                 {} offers per announce, {} s measured after {} s warmup",
                if w.tls { "wss" } else { "ws" },
                w.tracker,
                w.workers,
                w.connections,
                w.max_in_flight,
                w.offers_per_request,
                w.duration,
                w.warmup
            )
        }
    }
}
