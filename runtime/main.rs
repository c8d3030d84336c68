//! The `zipvox` binary: parse arguments, set up logging, hand over to `zipvox::cli`.

use clap::Parser;
use std::io::Write;

fn main() {
    zipvox::service::malloc::cap_arenas();
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    // Under systemd (stderr connected to the journal), prefix lines with the syslog priority
    // (`<3>` error … `<7>` debug) and leave timestamps to journald.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logger.format(|buf, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}: {}", record.target(), record.args())
        });
    }
    logger.init();
    let cli = zipvox::cli::Cli::parse();
    std::process::exit(zipvox::cli::run(cli));
}
