//! Ctrl-C: what the library checks, and what decides between stopping cleanly and at once.
//!
//! The binary's signal handler calls [`on_signal`]. Work that checks [`requested`] often (every
//! generated token, every Marian batch) runs inside a [`Deferral`]: there the first Ctrl-C only
//! raises the flag, the work stops at its next check, temporary files are removed by their
//! destructors and the command exits through its normal error path. Everywhere else (model
//! loading, downloads, which cannot be stopped from outside) the process exits at once: what a
//! download wrote stays in its staging file, which the next run resumes or removes, and no file
//! is ever left under its final name. A second Ctrl-C always exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static DEFERRALS: AtomicUsize = AtomicUsize::new(0);

/// Has the user asked to stop?
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Records a Ctrl-C. Returns true when the process should exit at once: nothing running checks
/// the flag, or this is the second Ctrl-C.
pub fn on_signal() -> bool {
    let again = REQUESTED.swap(true, Ordering::SeqCst);
    again || DEFERRALS.load(Ordering::SeqCst) == 0
}

/// While one is alive, a first Ctrl-C is left to [`requested`] checks instead of ending the
/// process.
#[must_use = "the deferral ends when the guard is dropped"]
pub struct Deferral(());

pub fn defer() -> Deferral {
    DEFERRALS.fetch_add(1, Ordering::SeqCst);
    Deferral(())
}

impl Drop for Deferral {
    fn drop(&mut self) {
        DEFERRALS.fetch_sub(1, Ordering::SeqCst);
    }
}
