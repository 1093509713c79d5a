//! The fidelity check on the demo article: a faithful English translation (written by hand,
//! tests/fixtures/fidelity/alaska-summit.en.txt) raises no alarm; the same translation with one
//! planted error at a time is caught, at the right paragraph.

use precis::{
    fidelity::{check_summary, check_translation, Finding, Kind, Stage},
    text::Article,
};

const FRENCH: &str = include_str!("../examples/alaska-summit.fr.txt");
const ENGLISH: &str = include_str!("fixtures/fidelity/alaska-summit.en.txt");

fn paragraphs(text: &str) -> Vec<String> {
    Article::parse(text)
        .paragraphs
        .into_iter()
        .map(|p| p.text)
        .collect()
}

fn check_all(english: &str) -> Vec<Finding> {
    let fr = paragraphs(FRENCH);
    let en = paragraphs(english);
    assert_eq!(fr.len(), en.len());
    fr.iter()
        .zip(&en)
        .enumerate()
        .flat_map(|(i, (f, e))| check_translation(f, e, i))
        .collect()
}

/// The faithful translation with `from` replaced by `to` (exactly once).
fn planted(from: &str, to: &str) -> String {
    assert_eq!(ENGLISH.matches(from).count(), 1, "{from:?}");
    ENGLISH.replace(from, to)
}

#[test]
fn a_faithful_translation_raises_no_alarm() {
    let findings = check_all(ENGLISH);
    assert!(findings.is_empty(), "false alarms: {findings:#?}");
}

#[test]
fn mid_august_turned_into_august_15_is_caught() {
    let findings = check_all(&planted("In mid-August 2025", "On August 15, 2025"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(
        (f.kind, f.stage, f.paragraph),
        (Kind::Date, Stage::Translation, Some(1))
    );
    assert_eq!(f.source_text, "mi-août 2025");
    assert_eq!(f.output_text, "August 15, 2025");
    assert!(f.problem.contains("precise day"), "{}", f.problem);
}

#[test]
fn end_of_march_turned_into_march_31_is_caught() {
    let findings = check_all(&planted("At the end of March", "On March 31"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].kind, findings[0].paragraph),
        (Kind::Date, Some(4))
    );
    assert_eq!(findings[0].source_text, "Fin mars");
}

#[test]
fn a_changed_day_and_a_changed_year_are_caught() {
    let findings = check_all(&planted("on October 7", "on October 9"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].kind, findings[0].paragraph),
        (Kind::Date, Some(5))
    );
    assert!(findings[0].problem.contains("October 7 to October 9"));

    let findings = check_all(&planted("summit of August 2025", "summit of August 2024"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(findings[0].problem.contains("2025 to 2024"));
}

#[test]
fn a_changed_name_and_a_lost_quotation_are_caught() {
    let findings = check_all(&planted("Dmitry Peskov", "Sergei Lavrov"));
    let kinds: Vec<(Kind, &str, &str)> = findings
        .iter()
        .map(|f| (f.kind, f.source_text.as_str(), f.output_text.as_str()))
        .collect();
    assert!(
        kinds.contains(&(Kind::Name, "Dmitri Peskov", "")),
        "{findings:#?}"
    );
    assert!(
        kinds.contains(&(Kind::Name, "", "Sergei Lavrov")),
        "{findings:#?}"
    );

    let findings = check_all(&planted(
        "\"a light at the end of the tunnel and a chance for lasting peace\"",
        "a light at the end of the tunnel and a chance for lasting peace",
    ));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].kind, findings[0].paragraph),
        (Kind::Quote, Some(2))
    );
}

#[test]
fn a_lost_link_is_caught() {
    let findings = check_all(&planted(
        "Source : https://khoahocdoisong.vn/moscow-noi-dong-luc-tu-cuoc-gap-thuong-dinh-nga-my-khong-con-nua-post2149059291.html",
        "No notes, no explanations, no quotation marks around it.",
    ));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].kind, findings[0].paragraph),
        (Kind::Link, Some(8))
    );
}

#[test]
fn a_number_that_is_not_in_the_source_is_caught() {
    let findings = check_all(&planted("both sides", "the 3 sides"));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, Kind::Number);
    assert_eq!(findings[0].output_text, "3");
}

#[test]
fn a_faithful_summary_passes_and_an_embellished_one_does_not() {
    let article = ENGLISH;
    let faithful = "In mid-August 2025, Vladimir Putin and Donald Trump held talks in Anchorage, \
                    Alaska, to resolve the conflict in Ukraine. The White House saw \"a light at \
                    the end of the tunnel\". On October 7, Dmitry Peskov said Russia hoped Trump \
                    would keep the political will to negotiate.";
    let found = check_summary(article, faithful);
    assert!(found.is_empty(), "{found:#?}");

    let embellished = "On August 15, 2025, Putin and Trump met in Anchorage with Emmanuel Macron. \
                       The White House saw \"a new dawn for Europe\".";
    let found = check_summary(article, embellished);
    let kinds: Vec<(Kind, Option<usize>)> = found.iter().map(|f| (f.kind, f.sentence)).collect();
    assert!(kinds.contains(&(Kind::Date, Some(0))), "{found:#?}");
    assert!(kinds.contains(&(Kind::Name, Some(0))), "{found:#?}");
    assert!(kinds.contains(&(Kind::Quote, Some(1))), "{found:#?}");
}
