//! The `precis` command: parse flags, run the command, map failures to exit codes.

mod cli;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use precis::failure::{FailureKind, EXIT_INTERRUPTED, EXIT_USAGE};

fn main() -> ExitCode {
    if let Some(level) = precis::infer::cpu::missing_build_level() {
        eprintln!(
            "precis: error: this build of precis needs a CPU with {level}, and this one lacks \
             part of it; build precis on this machine for its own CPU: RUSTFLAGS='-C \
             target-cpu=native' cargo install --path ."
        );
        return ExitCode::from(1);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // Process-wide settings first, while this is the only thread.
    precis::engines::configure_process(cli.threads());
    handle_signals();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = error
                .chain()
                .map(|e| e as &(dyn std::error::Error + 'static));
            eprintln!("precis: error: {}", precis::failure::message(chain));
            ExitCode::from(failure_kind(&error).exit_code())
        }
    }
}

/// Ctrl-C raises the library's interrupt flag, or ends the process where nothing checks it (see
/// `precis::interrupt`). SIGXFSZ (a file-size limit reached, as with `ulimit -f`) is caught so
/// that the write fails with an error precis reports, instead of the signal killing it.
fn handle_signals() {
    use signal_hook::consts::{SIGINT, SIGXFSZ};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGXFSZ]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("precis: warning: cannot handle Ctrl-C ({e}); it will end precis at once");
            return;
        }
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal != SIGINT {
                continue;
            }
            if precis::interrupt::on_signal() {
                eprintln!("\nprecis: interrupted");
                std::process::exit(EXIT_INTERRUPTED.into());
            }
            eprintln!("\nprecis: interrupted; stopping (press Ctrl-C again to quit at once)");
        }
    });
}

/// The kind of the first error in the chain whose kind is known: a library error
/// (`precis::errors::kind_of`, the one list of them) or a command's own failure.
fn failure_kind(error: &anyhow::Error) -> FailureKind {
    error
        .chain()
        .find_map(|cause| {
            precis::errors::kind_of(cause).or_else(|| {
                cause
                    .downcast_ref::<commands::CommandFailure>()
                    .map(|e| e.kind)
            })
        })
        .unwrap_or(FailureKind::Other)
}
