//! The one rule for tests that need something the repository does not hold: a model in the
//! Hugging Face cache, the evaluation sets in `../shared`, pip. With `PRECIS_REQUIRE_MODELS=1`
//! (exported by `scripts/test.sh`, so in CI) a missing one fails the test; without it (a
//! developer's quick run) the test is skipped, and says so on stderr with the command that gets
//! what is missing.

use std::io::Write as _;

/// The variable that turns every missing model or data set into a failure.
pub const REQUIRE_VAR: &str = "PRECIS_REQUIRE_MODELS";

/// Whether `PRECIS_REQUIRE_MODELS` is set to anything but empty or `0`.
pub fn models_required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// `what` when it is there. When it is `None`: a panic naming what is `missing` and
/// `how_to_get` it under `PRECIS_REQUIRE_MODELS=1`; otherwise a `skipped` line on stderr and
/// `None`, for the test to return early. The line is shown by a plain `cargo test` too ([`skipped`]).
#[track_caller]
pub fn required<T>(what: Option<T>, missing: &str, how_to_get: &str) -> Option<T> {
    if what.is_some() {
        return what;
    }
    if models_required() {
        let test = test_name();
        panic!(
            "{test}: {missing}\n  to get it: {how_to_get}\n  \
             ({REQUIRE_VAR}=1 makes a missing model or data set a failure; \
             unset it to skip such tests instead)"
        );
    }
    skipped(&format!(
        "{missing}; to get it: {how_to_get} ({REQUIRE_VAR}=1 makes this a failure)"
    ));
    None
}

/// The `skipped <test>: <why>` line on stderr, written to the process's stderr directly, not
/// with `eprintln!`, which the test harness captures and shows only for failing tests. For
/// what [`required`] does not cover: a check that runs only when asked for.
pub fn skipped(why: &str) {
    let test = test_name();
    let _ = writeln!(std::io::stderr().lock(), "skipped {test}: {why}");
}

/// The running test's name (the harness names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}
