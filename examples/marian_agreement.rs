//! The agreement of Marian's int8 path with f32 on a model and a file of sentences
//! (`precis::engines::precision_check`):
//!
//! ```sh
//! cargo run --release --example marian_agreement -- MODEL_DIR SENTENCES.txt BEAMS BATCH
//! ```
//!
//! Prints one JSON line: sentences, identical translations, decoder steps compared, steps with
//! the same next token, and the logit differences with the f32 logits' spread.

use std::path::Path;

use candle_core::Device;
use precis::engines::marian::{MarianEngine, MARIAN_FILES};
use precis::engines::precision_check::compare_precisions;
use precis::infer::marian::Precision;
use precis::load::ModelFiles;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, sentences, beams, batch] = args.as_slice() else {
        return Err("usage: marian_agreement MODEL_DIR SENTENCES.txt BEAMS BATCH".into());
    };
    let files = ModelFiles::in_dir("marian", Path::new(dir), &MARIAN_FILES);
    let text = std::fs::read_to_string(sentences)?;
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let f32_engine = MarianEngine::load(&files, &Device::Cpu, Precision::F32)?;
    let int8_engine = MarianEngine::load(&files, &Device::Cpu, Precision::Int8)?;
    let mut search = f32_engine.search_config().clone();
    search.num_beams = beams.parse()?;
    let agreement = compare_precisions(
        &f32_engine,
        &int8_engine,
        &sentences,
        &search,
        batch.parse()?,
    )?;
    println!("{}", serde_json::to_string(&agreement)?);
    Ok(())
}
