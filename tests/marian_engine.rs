//! The Marian translator on the tiny fixture model: sentences as the unit, order kept, nothing
//! truncated, and the search's settings honoured.

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::Device;
use precis::engines::marian::{MarianEngine, MarianTranslator, MARIAN_FILES};
use precis::engines::tasks::Translator;
use precis::engines::StopReason;
use precis::infer::marian::Precision;
use precis::load::ModelFiles;

fn engine() -> MarianEngine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/marian/tiny");
    let files = ModelFiles::in_dir("tiny-marian", &dir, &MARIAN_FILES);
    MarianEngine::load(&files, &Device::Cpu, Precision::F32).unwrap()
}

#[test]
fn sentences_are_translated_alone_and_joined_in_order() {
    let engine = engine();
    let mut search = engine.search_config().clone();
    search.num_beams = 1;
    let sentences = [
        "Le sommet a eu lieu en Alaska.",
        "Les deux présidents ont parlé pendant trois heures, sans interprète.",
        "Merci.",
    ];
    let (alone, _) = engine
        .translate_sentences(&sentences, &search, 1, &mut |_| {})
        .unwrap();
    let mut translator = MarianTranslator {
        engine: &engine,
        model_id: "tiny".into(),
        search,
        max_batch: 16,
    };
    let output = translator
        .translate(&sentences.join(" "), &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let expected: Vec<&str> = alone
        .iter()
        .map(|t| t.text.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(output.text, expected.join(" "));
    assert_eq!(
        output.prompt_tokens,
        alone.iter().map(|t| t.source_ids.len()).sum::<usize>()
    );
}

#[test]
fn a_sentence_longer_than_the_position_table_is_cut_not_truncated() {
    let engine = engine();
    let mut search = engine.search_config().clone();
    search.num_beams = 1;
    search.max_length = 8;
    // About 1800 source tokens with no sentence end: far past the 512 positions.
    let long: String = (0..600)
        .map(|i| format!("mot{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut translator = MarianTranslator {
        engine: &engine,
        model_id: "tiny".into(),
        search,
        max_batch: 16,
    };
    let tokens = translator.count_tokens(&long).unwrap();
    assert!(tokens > 2 * engine.max_source_tokens(), "{tokens}");
    let output = translator
        .translate(&long, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    // Every source token went in (cutting at spaces only adds end tokens and may merge the
    // odd piece differently), and each piece got its own short translation.
    assert!(
        output.prompt_tokens >= tokens,
        "{} < {tokens}",
        output.prompt_tokens
    );
    assert!(
        output.generated_tokens >= 3 * 7,
        "{}",
        output.generated_tokens
    );
    // The length limit of 8 ended the pieces: reported, so the pipeline can warn.
    assert_eq!(output.stop, StopReason::MaxTokens);
}
