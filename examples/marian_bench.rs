//! Speed of the Marian engine with a forced output length, for scripts/marian_bench.py:
//!
//! ```sh
//! cargo run --release --example marian_bench -- MODEL_DIR SENTENCES.txt BEAMS NEW_TOKENS BATCH [f32|int8]
//! ```
//!
//! Every sentence generates exactly NEW_TOKENS tokens (the end token is banned before that, as
//! HF's `min_new_tokens` does), so the work is the same whatever the weights. Prints one JSON
//! line: sentences, generated tokens, seconds (model load excluded, best of two), tokens per
//! second.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use precis::engines::marian::{MarianEngine, MARIAN_FILES};
use precis::infer::marian::Precision;
use precis::load::ModelFiles;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, sentences, beams, new_tokens, batch, precision) = match args.as_slice() {
        [dir, sentences, beams, new_tokens, batch] => {
            (dir, sentences, beams, new_tokens, batch, Precision::F32)
        }
        [dir, sentences, beams, new_tokens, batch, precision] if precision == "int8" => {
            (dir, sentences, beams, new_tokens, batch, Precision::Int8)
        }
        [dir, sentences, beams, new_tokens, batch, precision] if precision == "f32" => {
            (dir, sentences, beams, new_tokens, batch, Precision::F32)
        }
        _ => {
            return Err(
                "usage: marian_bench MODEL_DIR SENTENCES.txt BEAMS NEW_TOKENS BATCH [f32|int8]"
                    .into(),
            )
        }
    };
    let files = ModelFiles::in_dir("marian", Path::new(dir), &MARIAN_FILES);
    let text = std::fs::read_to_string(sentences)?;
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let new_tokens: usize = new_tokens.parse()?;
    let engine = MarianEngine::load(&files, &Device::Cpu, precision)?;
    let mut search = engine.search_config().clone();
    search.num_beams = beams.parse()?;
    search.min_length = new_tokens + 1;
    search.max_length = new_tokens + 1;
    // One warm-up sentence: the first forward pass pays for allocations and thread start.
    engine.translate_sentences(&sentences[..1], &search, 1, &mut |_| {})?;
    // Best of two, as scripts/marian_bench.py does for the other engines.
    let mut seconds = f64::INFINITY;
    let mut out = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        out = engine
            .translate_sentences(&sentences, &search, batch.parse()?, &mut |_| {})?
            .0;
        seconds = seconds.min(started.elapsed().as_secs_f64());
    }
    let generated: usize = out.iter().map(|t| t.ids.len()).sum();
    println!(
        "{{\"sentences\": {}, \"generated_tokens\": {generated}, \"seconds\": {seconds:.3}, \"tokens_per_s\": {:.1}}}",
        sentences.len(),
        generated as f64 / seconds
    );
    Ok(())
}
