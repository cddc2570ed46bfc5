//! Entry point: parse the command line, start logging, run the command, and turn any error
//! into a one-line reason on stderr and a non-zero exit status.

use clap::Parser;
use nhacviec::cli::{run, Cli};
use nhacviec::config::{Config, ConfigError};
use std::process::ExitCode;

mod alloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            // EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop on it.
            return ExitCode::from(78);
        }
    };
    nhacviec::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        // `plan | head`: the reader has what it wanted; nothing failed.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("error: {}", reason.trim_end());
            // A configuration problem found only once running (a credential file, a schedule
            // that never fires) is as final as one found at load: the same 78.
            if e.chain().any(|cause| cause.is::<ConfigError>()) {
                ExitCode::from(78)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `error` is stdout's reader having gone away (EPIPE).
fn closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
