//! How far Marian's `--precision int8` strays from f32: the agreement check that goes with it.
//!
//! Two figures, as the issue that brought int8 asked: the share of sentences translated the
//! same, token for token, and the size of the logit differences. The logits are compared along
//! the f32 translation (both models fed the same tokens, one decoder step per token), so that a
//! step where the two translations part does not make every later step differ.

use serde::Serialize;

use super::{EngineError, MarianEngine};
use crate::infer::beam::SearchConfig;
use crate::infer::kernels::math::argmax;

#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub sentences: usize,
    /// Sentences whose two translations are the same tokens.
    pub identical: usize,
    /// Decoder steps compared.
    pub steps: usize,
    /// Steps where both would pick the same next token.
    pub same_argmax: usize,
    /// The largest absolute difference of a logit, over every step and token.
    pub max_logit_difference: f32,
    /// The mean absolute difference of the logits.
    pub mean_logit_difference: f64,
    /// The f32 logits' standard deviation across the vocabulary, averaged over the steps: the
    /// scale the differences are to be read against.
    pub logit_spread: f64,
}

/// Translates `sentences` with both engines (the same model at f32 and at int8) under
/// `search`, `batch` sentences at a time, and compares them.
pub fn compare_precisions(
    f32_engine: &MarianEngine,
    int8_engine: &MarianEngine,
    sentences: &[&str],
    search: &SearchConfig,
    batch: usize,
) -> Result<Agreement, EngineError> {
    let (reference, _) = f32_engine.translate_sentences(sentences, search, batch, &mut |_| {})?;
    let (int8, _) = int8_engine.translate_sentences(sentences, search, batch, &mut |_| {})?;
    let mut agreement = Agreement {
        sentences: sentences.len(),
        identical: reference
            .iter()
            .zip(&int8)
            .filter(|(a, b)| a.ids == b.ids)
            .count(),
        steps: 0,
        same_argmax: 0,
        max_logit_difference: 0.0,
        mean_logit_difference: 0.0,
        logit_spread: 0.0,
    };
    let mut differences = 0f64;
    let mut logits_compared = 0usize;
    for translation in &reference {
        let fed: Vec<u32> = std::iter::once(search.decoder_start_token_id)
            .chain(translation.ids.iter().copied())
            .take(translation.ids.len().max(1))
            .collect();
        let a = forced_logits(f32_engine, &translation.source_ids, &fed)?;
        let b = forced_logits(int8_engine, &translation.source_ids, &fed)?;
        for (a, b) in a.iter().zip(&b) {
            agreement.steps += 1;
            agreement.same_argmax += usize::from(argmax(a) == argmax(b));
            for (x, y) in a.iter().zip(b) {
                let difference = (x - y).abs();
                agreement.max_logit_difference = agreement.max_logit_difference.max(difference);
                differences += f64::from(difference);
            }
            logits_compared += a.len();
            agreement.logit_spread += standard_deviation(a);
        }
    }
    agreement.mean_logit_difference = differences / logits_compared.max(1) as f64;
    agreement.logit_spread /= agreement.steps.max(1) as f64;
    Ok(agreement)
}

/// The logits of each decoder step, the decoder fed `tokens` (the start token first).
fn forced_logits(
    engine: &MarianEngine,
    source: &[u32],
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let model = engine.model();
    let encoded = model
        .encode(&[source.to_vec()])
        .map_err(EngineError::Generate)?;
    let mut state = model
        .start_decoder(&encoded, 1)
        .map_err(EngineError::Generate)?;
    tokens
        .iter()
        .map(|&token| {
            let mut logits = Vec::new();
            model
                .decode_step(&mut state, &[token], &mut logits)
                .map_err(EngineError::Generate)?;
            Ok(logits)
        })
        .collect()
}

fn standard_deviation(values: &[f32]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    variance.sqrt()
}
