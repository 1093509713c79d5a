//! Verify and repair on the real 1.5B model. Paragraphs whose first translation loses or invents
//! a fact (the demo article's "le 8 octobre" dropped, "mi-août 2025" made "August 15, 2025",
//! "Fin mars" made "March 29th"; a glossary term) are translated again with hints, under
//! constrained decoding, and the new translation is kept only when the fidelity check finds
//! strictly less: at the end no finding remains, and no repair was kept that left one more.
//! Cases where the model's first translation happens to be right pass through unrepaired; they
//! still have to come out with no finding.

mod llm_common;

use candle_core::Device;
use precis::engines::tasks::LlmTranslator;
use precis::engines::LlmEngine;
use precis::fidelity::Glossary;
use precis::load::ModelFiles;
use precis::pipeline::{paragraph_findings, translate_article, Translation};
use precis::text::Article;

const DEMO: &str = include_str!("../examples/alaska-summit.fr.txt");

/// Real cases beside the demo's: a French thousands separator (a narrow no-break space, which
/// the model's first translation makes "15, 237") and decimal comma, a weekday and
/// a term the model renders wrongly by itself ("infirmiers" as "doctors"), a quotation whose
/// marks the first translation drops, glossary terms (one to translate one way, a
/// newspaper's name to keep), and a phone number with opening hours.
const CASES: &str = "\
L'opérateur compte désormais 15\u{202f}237 clients en Bretagne et a investi 1,36 milliard d'euros.

Le ministre de la Santé a sauté jeudi la réunion prévue avec les syndicats d'infirmiers.

« Je leur ai dit que je n'étais pas prêt », a-t-il affirmé mercredi lors d'une entrevue avec La Presse Canadienne.

Selon Le Canard enchaîné, un cas de rage a été détecté chez un chiot importé illégalement.

Pour tout renseignement, contacter le 08.11.00.06.95 entre 10 heures et 18 heures à partir du 1er novembre.
";

const GLOSSARY: &str = "infirmiers\tnurses\nrage\trabies\nLe Canard enchaîné\n";

fn translate(text: &str, glossary: &Glossary) -> Option<Translation> {
    let path = llm_common::qwen15()?;
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let mut translator = LlmTranslator {
        engine: &mut engine,
        model_id: "qwen2.5-coder-1.5b-instruct".into(),
        max_new_tokens: 1024,
    };
    let article = Article::parse(text);
    let mut warnings = Vec::new();
    let translation = translate_article(
        &mut translator,
        &article,
        glossary,
        &mut |_| {},
        &mut warnings,
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    Some(translation)
}

/// No finding remains in any paragraph, every kept repair left fewer findings than it found,
/// and no paragraph had more repairs than the bound.
fn assert_mended(translation: &Translation, glossary: &Glossary) {
    for (index, paragraph) in translation.paragraphs.iter().enumerate() {
        let remaining = paragraph_findings(&paragraph.source, &paragraph.text, index, glossary);
        assert!(
            remaining.is_empty(),
            "paragraph {index}: {}\n{remaining:#?}\n{:#?}",
            paragraph.text,
            paragraph.repairs
        );
        assert!(paragraph.repairs.len() <= 2, "{:#?}", paragraph.repairs);
        for repair in &paragraph.repairs {
            assert_eq!(
                repair.kept,
                repair.remaining.len() < repair.findings.len()
                    && repair.after.chars().count() * 10 >= repair.before.chars().count() * 9
                    && repair.overused_numbers.is_empty(),
                "{repair:#?}"
            );
        }
        eprintln!("{index}: {}", paragraph.text);
    }
}

fn texts(translation: &Translation) -> Vec<&str> {
    translation
        .paragraphs
        .iter()
        .map(|p| p.text.as_str())
        .collect()
}

#[test]
fn the_demo_articles_dates_are_mended() {
    let demo = Article::parse(DEMO);
    // Paragraph 1 (a date dropped), 2 ("mi-août 2025" made a day) and 5 ("Fin mars" too).
    let text = [0, 1, 4]
        .map(|i| demo.paragraphs[i].text.as_str())
        .join("\n\n");
    let glossary = Glossary::default();
    let Some(translation) = translate(&text, &glossary) else {
        return;
    };
    assert_mended(&translation, &glossary);
    let texts = texts(&translation);
    assert!(texts[0].contains("October 8"), "{}", texts[0]);
    assert!(texts[1].contains("mid-August 2025"), "{}", texts[1]);
    assert!(!texts[2].contains("29"), "{}", texts[2]);
    // Whether a first translation has the fault depends on the CPU's kernels (on AVX2 the
    // first already keeps "October 8"); "mi-août 2025" and "Fin mars" came out as days on
    // every level measured, and were mended.
    for paragraph in &translation.paragraphs[1..] {
        assert!(
            paragraph.repairs.iter().any(|r| r.kept),
            "{}: {:#?}",
            paragraph.text,
            paragraph.repairs
        );
    }
}

#[test]
fn numbers_weekdays_quotations_and_glossary_terms_come_out_whole() {
    let glossary = Glossary::parse(GLOSSARY).unwrap();
    let Some(translation) = translate(CASES, &glossary) else {
        return;
    };
    assert_mended(&translation, &glossary);
    let texts = texts(&translation);
    assert!(
        texts[0].contains("15,237") || texts[0].contains("15237"),
        "{}",
        texts[0]
    );
    assert!(texts[1].contains("Thursday"), "{}", texts[1]);
    assert!(texts[1].contains("nurses"), "{}", texts[1]);
    assert!(texts[2].contains("\"I told them"), "{}", texts[2]);
    assert!(texts[3].contains("Le Canard enchaîné"), "{}", texts[3]);
    assert!(texts[3].contains("rabies"), "{}", texts[3]);
    assert!(texts[4].contains("08.11.00.06.95"), "{}", texts[4]);
}

/// newstest2014-fr lines whose numbers came back wrong after repair before: "2,2 kilometers"
/// (the repair was started inside "420", and wrote "422 motifs"), "1,351.7 dollars" for
/// « 1,3517 dollar » (the same digits), and "50, 000 homes … just after 5 PM" for « 50 000 foyers
/// … peu après midi » (a repair wrote "5.00.00 PM", made of the digits of 50 000 used again).
const NEWS_NUMBERS: &str = "420 motifs, 2,2 kilomètres de bord de mer recouverts d'un manteau de lumière: on pourrait frôler le coup de chaud à Menton avec la facture des illuminations.

Dans ce contexte, l'euro poursuit son repli contre la monnaie américaine et a touché en séance un plus bas de deux semaines à 1,3517 dollar.

Près de 50 000 foyers sont privés d'électricité sur l'ensemble de la province, peu après midi vendredi, en raison des vents violents touchant de nombreuses régions le long du fleuve Saint-Laurent.
";

#[test]
fn decimals_thousands_and_numbers_used_up_come_out_right() {
    let glossary = Glossary::default();
    let Some(translation) = translate(NEWS_NUMBERS, &glossary) else {
        return;
    };
    assert_mended(&translation, &glossary);
    let texts = texts(&translation);
    assert!(
        texts[0].contains("420 ") && texts[0].contains("2.2 "),
        "{}",
        texts[0]
    );
    assert!(texts[1].contains("1.3517"), "{}", texts[1]);
    assert!(texts[2].contains("50,000"), "{}", texts[2]);
    // The first translations of the first and last had these faults.
    for paragraph in [&translation.paragraphs[0], &translation.paragraphs[2]] {
        assert!(
            paragraph.repairs.iter().any(|r| r.kept),
            "{}: {:#?}",
            paragraph.text,
            paragraph.repairs
        );
    }
}
