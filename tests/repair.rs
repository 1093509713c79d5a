//! Verify and repair on the real 1.5B model: paragraphs of the demo article whose first
//! translation loses or invents a date ("le 8 octobre" dropped, "Fin mars" made "March 29th")
//! are asked again with a hint, and the new translation is kept only when the fidelity check
//! finds strictly less; a paragraph is never left worse, and the attempts are bounded.

mod llm_common;

use candle_core::Device;
use precis::engines::tasks::LlmTranslator;
use precis::engines::LlmEngine;
use precis::fidelity::check_translation;
use precis::load::ModelFiles;
use precis::pipeline::translate_article;
use precis::text::Article;

const DEMO: &str = include_str!("../examples/alaska-summit.fr.txt");

#[test]
fn dates_lost_or_invented_are_mended_and_nothing_gets_worse() {
    let Some(path) = llm_common::qwen15() else {
        return;
    };
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let mut translator = LlmTranslator {
        engine: &mut engine,
        model_id: "qwen2.5-coder-1.5b-instruct".into(),
        max_new_tokens: 1024,
    };
    let demo = Article::parse(DEMO);
    // Paragraph 1 (a date dropped) and paragraph 5 (a date made precise).
    let text = format!("{}\n{}\n", demo.paragraphs[0].text, demo.paragraphs[4].text);
    let article = Article::parse(&text);
    let mut warnings = Vec::new();
    let translation =
        translate_article(&mut translator, &article, &mut |_| {}, &mut warnings).unwrap();
    for (index, paragraph) in translation.paragraphs.iter().enumerate() {
        let first = paragraph.requests[0].text.as_str();
        let before = check_translation(&paragraph.source, first, index).len();
        let after = check_translation(&paragraph.source, &paragraph.text, index).len();
        assert!(before > 0, "paragraph {index} had nothing to mend: {first}");
        assert_eq!(
            after, 0,
            "paragraph {index}: {}\n{:#?}",
            paragraph.text, paragraph.repairs
        );
        assert!(
            paragraph.repairs.iter().any(|r| r.kept),
            "{:#?}",
            paragraph.repairs
        );
        assert!(paragraph.repairs.len() <= 2, "{:#?}", paragraph.repairs);
        for repair in &paragraph.repairs {
            assert_eq!(
                repair.kept,
                repair.remaining < repair.findings.len(),
                "{repair:#?}"
            );
        }
    }
    assert!(translation.paragraphs[0].text.contains("October 8"));
    assert!(!translation.paragraphs[1].text.contains("29"));
}
