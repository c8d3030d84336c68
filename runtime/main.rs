//! The `zipvox` binary: parse arguments, set up logging, hand over to `zipvox::cli`.

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = zipvox::cli::Cli::parse();
    std::process::exit(zipvox::cli::run(cli));
}
