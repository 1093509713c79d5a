//! False alarms of the fidelity check on professional translations: every French/English
//! sentence pair of FLORES-200 dev and NTREX-128 (../shared/eval, beside the repository). A
//! human reference is faithful by construction, so each finding there is a false alarm, or a
//! liberty the translator took (a reference may render "trois" as "a few", drop a
//! redundant month...). Skipped when the data is not there, a failure then under
//! PRECIS_REQUIRE_MODELS=1.

mod support;

use std::path::Path;

use precis::fidelity::{check_translation, Finding, Kind};

fn pairs(fr: &str, en: &str) -> Option<Vec<(String, String)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let both = read(fr).zip(read(en));
    let missing = format!("{} or {} not found in {}", fr, en, root.display());
    let how = "put the evaluation sets at ../shared/eval beside the repository \
               (docs/evaluation.md; its SOURCES.tsv names where each file comes from)";
    let (fr, en) = support::require::required(both, &missing, how)?;
    Some(
        fr.lines()
            .zip(en.lines())
            .map(|(f, e)| (f.to_string(), e.to_string()))
            .collect(),
    )
}

fn rate(name: &str, pairs: &[(String, String)], kind: Kind) -> f64 {
    let findings: Vec<(usize, Finding)> = pairs
        .iter()
        .enumerate()
        .flat_map(|(i, (f, e))| check_translation(f, e, i).into_iter().map(move |x| (i, x)))
        .filter(|(_, f)| f.kind == kind)
        .collect();
    let lines = findings
        .iter()
        .map(|(i, _)| i)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let share = lines as f64 / pairs.len() as f64;
    eprintln!(
        "{name}: {kind:?}: {} findings on {lines} of {} pairs ({:.1}%)",
        findings.len(),
        pairs.len(),
        100.0 * share
    );
    for (i, f) in findings.iter().take(5) {
        eprintln!("  line {}: {}", i + 1, f.describe());
    }
    share
}

/// Shares of reference pairs with at least one finding of each kind, as measured when the
/// check was written, with some room; a change to the check that raises them fails here.
#[test]
fn professional_translations_raise_few_alarms() {
    for (name, fr, en) in [
        (
            "flores200 dev",
            "flores200/dev.fra_Latn",
            "flores200/dev.eng_Latn",
        ),
        ("ntrex128", "ntrex128/ntrex128.fra", "ntrex128/ntrex128.eng"),
    ] {
        let Some(pairs) = pairs(fr, en) else { return };
        assert!(rate(name, &pairs, Kind::Number) < 0.05);
        assert!(rate(name, &pairs, Kind::Date) < 0.03);
        assert!(rate(name, &pairs, Kind::Quote) < 0.05);
        assert!(rate(name, &pairs, Kind::Name) < 0.06);
        // The coverage threshold sits under the 0.5th percentile of the references' length
        // ratios (src/fidelity/coverage.rs).
        assert!(rate(name, &pairs, Kind::Omission) < 0.005);
    }
}
