use std::process::ExitCode;

use clap::Parser;
use tracker_user::cli::{load_config, Cli};
use tracker_user::{logging, server};

fn main() -> ExitCode {
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
    logging::init(config.log_level);
    match server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker-user: {e:#}");
            ExitCode::FAILURE
        }
    }
}
