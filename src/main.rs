//! The `precis` command: parse flags, run the command, map failures to exit codes.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use precis::failure::{FailureKind, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("precis: error: {error:#}");
            ExitCode::from(failure_kind(&error).exit_code())
        }
    }
}

/// The kind of the first library error in the chain.
fn failure_kind(error: &anyhow::Error) -> FailureKind {
    error
        .chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<precis::load::LoadError>() {
                Some(e.kind())
            } else if let Some(e) = cause.downcast_ref::<precis::pipeline::PipelineError>() {
                Some(e.kind())
            } else if let Some(e) = cause.downcast_ref::<precis::engines::EngineError>() {
                Some(e.kind())
            } else if let Some(e) = cause.downcast_ref::<precis::assemble::input::InputError>() {
                Some(e.kind())
            } else {
                cause
                    .downcast_ref::<commands::CommandFailure>()
                    .map(|e| e.kind)
            }
        })
        .unwrap_or(FailureKind::Other)
}
