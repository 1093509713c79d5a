//! all-MiniLM-L6-v2 through candle against sentence-transformers (fixture from
//! scripts/embed_fixtures.py). Skipped, with the fetch command printed, when the model is not
//! in the cache; a failure then under PRECIS_REQUIRE_MODELS=1, as in CI, which fetches it first.

mod support;

use candle_core::Device;
use precis::{
    engines::embedder::Embedder,
    load::{Catalog, Store, StoreConfig},
    summarize::cosine,
};

/// Largest difference allowed per component. The fixture is rounded to 1e-5 and f32 sums run in
/// a different order in candle and PyTorch; 1e-4 is still a hundred times below anything that
/// changes a ranking.
const TOLERANCE: f32 = 1e-4;

fn embedder() -> Option<Embedder> {
    let catalog = Catalog::builtin().unwrap();
    let spec = catalog.get("all-minilm-l6-v2").unwrap();
    let files = match Store::new(StoreConfig::from_env()).locate(spec) {
        Ok(files) => files,
        Err(e) => {
            let how = "precis models fetch all-minilm-l6-v2";
            return support::require::required(None, &e.to_string(), how);
        }
    };
    Some(Embedder::load(&files, 256, &Device::Cpu).unwrap())
}

#[derive(serde::Deserialize)]
struct Fixture {
    sentences: Vec<Expected>,
}

#[derive(serde::Deserialize)]
struct Expected {
    text: String,
    vector: Vec<f32>,
}

#[test]
fn vectors_match_sentence_transformers() {
    let Some(embedder) = embedder() else { return };
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/embed/minilm.json")).unwrap();
    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let vectors = embedder.embed(&texts).unwrap();
    for (expected, got) in fixture.sentences.iter().zip(&vectors) {
        assert_eq!(got.len(), 384);
        let worst = expected
            .vector
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= TOLERANCE,
            "{:?}: largest difference {worst}",
            expected.text
        );
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn a_sentence_embeds_the_same_alone_and_in_a_padded_batch() {
    let Some(embedder) = embedder() else { return };
    let short = "Short.";
    let long = "A much longer sentence that forces every other sentence of the batch to be padded with many tokens.";
    let alone = embedder.embed(&[short]).unwrap();
    let batched = embedder.embed(&[short, long]).unwrap();
    assert!(cosine(&alone[0], &batched[0]) > 0.99999);
    assert!(embedder.embed::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn related_sentences_are_closer_than_unrelated_ones() {
    let Some(embedder) = embedder() else { return };
    let v = embedder
        .embed(&[
            "Putin and Trump met in Alaska.",
            "The Russian and American presidents held a summit in Anchorage.",
            "The recipe needs two eggs and some flour.",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
}
