//! What kind of failure an error is, and the exit code that tells a script about it.
//!
//! Every library error maps to one of these kinds; `main` turns the kind into the process exit
//! code. The codes are part of the command-line interface and documented in `--help`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Something unexpected; a bug or an environment problem we did not foresee.
    Other,
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
}

impl FailureKind {
    pub const fn exit_code(self) -> u8 {
        match self {
            FailureKind::Other => 1,
            FailureKind::Input => 3,
            FailureKind::ModelMissing => 4,
            FailureKind::ModelCorrupt => 5,
            FailureKind::Network => 6,
            FailureKind::Output => 7,
            FailureKind::Interrupted => EXIT_INTERRUPTED,
        }
    }
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
  2    usage error (bad flags or arguments)
  3    input error (empty, binary, or invalid UTF-8 without --lossy)
  4    model missing (not cached while offline, unknown id)
  5    model corrupt (checksum mismatch, truncated or unreadable file:
       `precis models verify`, then `precis models fetch --force ID`)
  6    network error (hub and mirror unreachable, download refused, cut or stalled)
  7    output error (cannot write the result; -o over the input)
  130  interrupted (Ctrl-C); nothing is written";
