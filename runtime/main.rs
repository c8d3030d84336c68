//! The `zipvox` binary: parse arguments, set up logging, hand over to `zipvox::cli`.

use clap::Parser;
use std::io::Write;

fn main() {
    zipvox::service::malloc::cap_arenas();
    // tract's optimizer uses errors for control flow (hundreds while a model loads). With
    // RUST_BACKTRACE=1 in the environment, anyhow would walk the stack for each of them: load
    // time, and ~1 MiB of unwind tables mapped in for nothing. Panics keep their backtraces;
    // RUST_LIB_BACKTRACE=1 brings the errors' back.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
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
