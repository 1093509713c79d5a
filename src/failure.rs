//! What kind of failure an error is, and the exit code that tells a script about it.
//!
//! Every library error maps to one of these kinds; `main` turns the kind into the process exit
//! code. The codes are part of the command-line interface and documented in `--help`.
//! `errors::kind_of` is the one place that knows every error type of the library (a test
//! checks that none is missing), so a new error type cannot silently become exit code 1.

use std::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Something unexpected; a bug or an environment problem we did not foresee.
    Other,
    /// A flag, argument or setting that cannot be used as given.
    Usage,
    /// The input article cannot be used (empty, binary, unreadable).
    Input,
    /// A model is not in the cache and cannot be fetched now (offline, or unknown id).
    ModelMissing,
    /// A model file is in the cache but damaged (checksum, truncation, bad header).
    ModelCorrupt,
    /// The hub or the mirror could not be reached or refused the download.
    Network,
    /// The result could not be written where asked.
    Output,
    /// The user pressed Ctrl-C; the work stopped and nothing was written.
    Interrupted,
    /// Some articles of a batch failed; their error lines say why, the others are done.
    SomeArticlesFailed,
}

impl FailureKind {
    pub const fn exit_code(self) -> u8 {
        match self {
            FailureKind::Other => 1,
            FailureKind::Usage => EXIT_USAGE,
            FailureKind::Input => 3,
            FailureKind::ModelMissing => 4,
            FailureKind::ModelCorrupt => 5,
            FailureKind::Network => 6,
            FailureKind::Output => 7,
            FailureKind::SomeArticlesFailed => 8,
            FailureKind::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// An error and its causes, outermost first.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn Error + 'static)| (*e).source())
}

/// The error and its causes, each said once: a message that already quotes its cause (as
/// "cannot read X: {source}" does) is not followed by the cause again.
pub fn message<'a>(chain: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut text = String::new();
    for cause in chain {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Exit code of a command-line usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code after an interrupt (128 + SIGINT), as shells expect.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit-code table printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    unexpected error, or the cache cannot be written (disk full)
  2    usage error (bad flags or arguments, a count out of its range, a --catalog
       folder that cannot be read)
  3    input error (empty, binary, or invalid UTF-8 without --lossy)
  4    model missing (not cached while offline, unknown id)
  5    model corrupt (checksum mismatch, truncated or unreadable file:
       `precis models verify`, then `precis models fetch --force ID`)
  6    network error (hub and mirror unreachable, download refused, cut or stalled)
  7    output error (cannot write the result; -o over the input)
  8    batch: some articles failed (their error lines say why); the others are done
  130  interrupted (Ctrl-C); nothing is written";
