//! The Marian translation engine (opus-mt): SentencePiece tokenizer, encoder-decoder model and
//! beam search, put together as a [`Translator`].
//!
//! Sentences are the unit: opus-mt was trained on sentences and its position table stops at
//! 512 tokens. A chunk handed to the translator is cut into sentences (`text::segment`),
//! sentences are sorted by length and
//! translated in batches, and the translations are put back in order. A sentence too long for
//! the model is cut at spaces, never truncated.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::tasks::{Output, TokenProgress, Translator};
use super::{EngineError, StopReason};
use crate::infer::beam::{self, EarlyStopping, Hypothesis, SearchConfig, Seq2SeqDecoder};
use crate::infer::marian::{DecoderState, MarianConfig, MarianModel, Precision};
use crate::infer::InferError;
use crate::load::ModelFiles;
use crate::tokenize::{MarianTokenizer, SpmModel, TokenizeError};

/// The files of a Marian model, as the hub repository names them.
pub const MARIAN_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "model.safetensors",
];

/// `generation_config.json`: the decoding settings the model was published with. Settings
/// that would change the output in ways this engine does not implement are refused rather
/// than ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub num_beams: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub length_penalty: Option<f32>,
    #[serde(default)]
    pub early_stopping: Option<serde_json::Value>,
    #[serde(default)]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    #[serde(default)]
    pub forced_eos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub num_beam_groups: Option<usize>,
    #[serde(default)]
    pub no_repeat_ngram_size: Option<usize>,
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub renormalize_logits: Option<bool>,
}

impl GenerationConfig {
    /// The search HF `generate` runs for this config and model config.
    pub fn search_config(&self, model: &MarianConfig) -> Result<SearchConfig, String> {
        if self.do_sample == Some(true) {
            return Err("do_sample is set; only deterministic search is supported".into());
        }
        if self.num_beam_groups.is_some_and(|g| g > 1) {
            return Err("diverse beam search (num_beam_groups) is not supported".into());
        }
        if self.no_repeat_ngram_size.is_some_and(|n| n > 0) {
            return Err("no_repeat_ngram_size is not supported".into());
        }
        if self.repetition_penalty.is_some_and(|p| p != 1.0) {
            return Err("repetition_penalty is not supported".into());
        }
        if self.renormalize_logits == Some(true) {
            return Err("renormalize_logits is not supported".into());
        }
        let mut banned = Vec::new();
        for word in self.bad_words_ids.iter().flatten() {
            match word.as_slice() {
                [token] => banned.push(*token),
                _ => return Err("bad_words_ids longer than one token are not supported".into()),
            }
        }
        let eos = match &self.eos_token_id {
            None => model.eos_token_id,
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("eos_token_id is not a token id")?,
            Some(serde_json::Value::Array(ids)) if ids.len() == 1 => ids[0]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("eos_token_id is not a token id")?,
            Some(_) => return Err("several end tokens are not supported".into()),
        };
        let early_stopping = match &self.early_stopping {
            None | Some(serde_json::Value::Bool(false)) => EarlyStopping::Heuristic,
            Some(serde_json::Value::Bool(true)) => EarlyStopping::WhenFull,
            Some(serde_json::Value::String(s)) if s == "never" => EarlyStopping::Never,
            Some(other) => return Err(format!("early_stopping {other} is not understood")),
        };
        // HF's default max_length is 20; a Marian config always sets its own.
        let max_length = match (self.max_new_tokens, self.max_length) {
            (Some(new), _) => new + 1,
            (None, Some(len)) => len,
            (None, None) => 20,
        };
        Ok(SearchConfig {
            num_beams: self.num_beams.unwrap_or(1).max(1),
            max_length,
            min_length: self.min_length.unwrap_or(0),
            length_penalty: self.length_penalty.unwrap_or(1.0),
            early_stopping,
            decoder_start_token_id: self
                .decoder_start_token_id
                .unwrap_or(model.decoder_start_token_id),
            eos_token_id: eos,
            forced_eos_token_id: self.forced_eos_token_id.or(model.forced_eos_token_id),
            banned_tokens: banned,
        })
    }
}

/// One translated sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceTranslation {
    pub text: String,
    pub source_ids: Vec<u32>,
    /// Generated ids, the end token included when the model produced it.
    pub ids: Vec<u32>,
    /// False when the length limit ended the translation.
    pub ended: bool,
}

/// Timings of one call, split as the pipeline reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchTimings {
    pub tokenize: Duration,
    pub encode: Duration,
    pub decode: Duration,
    pub decoder_steps: usize,
}

pub struct MarianEngine {
    model: MarianModel,
    tokenizer: MarianTokenizer,
    search: SearchConfig,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| EngineError::Model {
        path: path.to_path_buf(),
        source: InferError::Config(e.to_string()),
    })
}

impl MarianEngine {
    /// Loads a model from its files (`name -> path`, names as in [`MARIAN_FILES`]), its
    /// matrix products at `precision`.
    pub fn load(
        files: &ModelFiles,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, EngineError> {
        let path = |name: &str| super::required(files, name);
        let config_path = path("config.json")?;
        let config: MarianConfig = read_json(config_path)?;
        let generation_path = path("generation_config.json")?;
        let generation: GenerationConfig = read_json(generation_path)?;
        let search = generation
            .search_config(&config)
            .map_err(|message| EngineError::Model {
                path: generation_path.to_path_buf(),
                source: InferError::Config(message),
            })?;
        // Each file read apart, so that an error names the file at fault.
        let tokenizer_error = |file: &Path| {
            let path = file.to_path_buf();
            move |source| EngineError::Tokenizer { path, source }
        };
        let spm = |name: &str| {
            let file = path(name)?;
            SpmModel::from_file(file).map_err(tokenizer_error(file))
        };
        let vocab_path = path("vocab.json")?;
        let vocab = MarianTokenizer::read_vocab(vocab_path).map_err(tokenizer_error(vocab_path))?;
        let tokenizer = MarianTokenizer::new(spm("source.spm")?, spm("target.spm")?, vocab)
            .map_err(tokenizer_error(vocab_path))?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(EngineError::Tokenizer {
                path: vocab_path.to_path_buf(),
                source: TokenizeError::Unsupported(format!(
                    "vocab.json has {} tokens, the model {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                )),
            });
        }
        let weights = path("model.safetensors")?;
        // Safety: the file is mapped read-only; the cache never rewrites a finished blob in
        // place (a new download is a new blob, renamed over the link).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }
            .map_err(|source| EngineError::Model {
                path: weights.to_path_buf(),
                source: source.into(),
            })?;
        let model =
            MarianModel::load(&config, vb, precision).map_err(|source| EngineError::Model {
                path: weights.to_path_buf(),
                source,
            })?;
        Ok(MarianEngine {
            model,
            tokenizer,
            search,
        })
    }

    pub fn tokenizer(&self) -> &MarianTokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &MarianModel {
        &self.model
    }

    /// The search the generation config asks for (beams, lengths, bans).
    pub fn search_config(&self) -> &SearchConfig {
        &self.search
    }

    /// The most source tokens (the end token included) one sentence may have.
    pub fn max_source_tokens(&self) -> usize {
        self.model.max_source_tokens()
    }

    /// Generates for a batch of tokenised sources: one encoder pass, then the search.
    pub fn generate_ids(
        &self,
        sources: &[Vec<u32>],
        search: &SearchConfig,
        on_step: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Hypothesis>, BatchTimings), EngineError> {
        let started = Instant::now();
        let encoded = self.model.encode(sources).map_err(EngineError::Generate)?;
        let state = self
            .model
            .start_decoder(&encoded, search.num_beams.max(1))
            .map_err(EngineError::Generate)?;
        let encode = started.elapsed();
        let mut decoder = Decoder {
            model: &self.model,
            state,
        };
        let started = Instant::now();
        let (hypotheses, stats) = beam::generate(&mut decoder, sources.len(), search, on_step)
            .map_err(EngineError::Generate)?;
        Ok((
            hypotheses,
            BatchTimings {
                tokenize: Duration::ZERO,
                encode,
                decode: started.elapsed(),
                decoder_steps: stats.steps,
            },
        ))
    }

    /// Translates sentences, batching them by length (at most `max_batch` per batch), and
    /// returns the translations in the order of `sentences`.
    pub fn translate_sentences(
        &self,
        sentences: &[&str],
        search: &SearchConfig,
        max_batch: usize,
        on_step: &mut dyn FnMut(usize),
    ) -> Result<(Vec<SentenceTranslation>, BatchTimings), EngineError> {
        let (results, timings) =
            self.translate_batches(sentences, search, max_batch, &mut |step| {
                on_step(step);
                ControlFlow::Continue(())
            })?;
        Ok((results.into_iter().flatten().collect(), timings))
    }

    /// [`Self::translate_sentences`], stopping after the batch in which `on_step` returns
    /// `Break` (a decoder step cannot be abandoned half-way): the sentences of the batches not
    /// run are `None`.
    fn translate_batches(
        &self,
        sentences: &[&str],
        search: &SearchConfig,
        max_batch: usize,
        on_step: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> Result<(Vec<Option<SentenceTranslation>>, BatchTimings), EngineError> {
        let started = Instant::now();
        let ids: Vec<Vec<u32>> = sentences
            .iter()
            .map(|s| self.tokenizer.encode(s).map_err(EngineError::Prompt))
            .collect::<Result<_, _>>()?;
        let mut timings = BatchTimings {
            tokenize: started.elapsed(),
            ..BatchTimings::default()
        };
        let mut order: Vec<usize> = (0..sentences.len()).collect();
        // Longest first: sentences of similar length share a batch, so little is padding.
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut results: Vec<Option<SentenceTranslation>> = vec![None; sentences.len()];
        let mut generated = 0;
        let mut stop = false;
        for batch in order.chunks(max_batch.max(1)) {
            let sources: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let (hypotheses, t) = self.generate_ids(&sources, search, &mut |step| {
                stop |= on_step(generated + step).is_break();
            })?;
            generated += t.decoder_steps;
            timings.encode += t.encode;
            timings.decode += t.decode;
            timings.decoder_steps += t.decoder_steps;
            for (&i, h) in batch.iter().zip(hypotheses) {
                results[i] = Some(SentenceTranslation {
                    text: self.tokenizer.decode(&h.tokens),
                    source_ids: ids[i].clone(),
                    ids: h.tokens,
                    ended: h.ended,
                });
            }
            if stop {
                break;
            }
        }
        Ok((results, timings))
    }
}

/// The model and its decoder state, as the search sees them.
struct Decoder<'a> {
    model: &'a MarianModel,
    state: DecoderState,
}

impl Seq2SeqDecoder for Decoder<'_> {
    fn step(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<(), InferError> {
        self.model.decode_step(&mut self.state, tokens, logits)
    }

    fn select_rows(&mut self, rows: &[u32]) -> Result<(), InferError> {
        self.state.select_rows(rows)
    }

    fn vocab_size(&self) -> usize {
        self.model.config().target_vocab_size()
    }
}

/// A Marian model used as the pipeline's translator.
pub struct MarianTranslator<'a> {
    pub engine: &'a MarianEngine,
    pub model_id: String,
    pub search: SearchConfig,
    /// Sentences per batch.
    pub max_batch: usize,
}

/// Chunk size asked of the pipeline: whole paragraphs; the translator cuts them into
/// sentences itself and batches those.
const PARAGRAPH_TOKENS: usize = 4096;

impl MarianTranslator<'_> {
    /// Cuts `sentence` at spaces until every piece fits the model, never dropping text.
    fn fit(&self, sentence: &str, out: &mut Vec<String>) -> Result<(), EngineError> {
        let limit = self.engine.max_source_tokens();
        let count = self.count_tokens(sentence)?;
        if count <= limit {
            out.push(sentence.to_string());
            return Ok(());
        }
        let middle = sentence.len() / 2;
        let cut = sentence[..middle]
            .rfind(char::is_whitespace)
            .or_else(|| {
                sentence[middle..]
                    .find(char::is_whitespace)
                    .map(|i| i + middle)
            })
            .unwrap_or_else(|| {
                let mut m = middle;
                while !sentence.is_char_boundary(m) {
                    m += 1;
                }
                m
            });
        let (left, right) = sentence.split_at(cut);
        if left.trim().is_empty() || right.trim().is_empty() {
            // No way to cut this piece smaller; an error beats a silent truncation.
            return Err(EngineError::Generate(InferError::ContextOverflow {
                tokens: count,
                context: limit,
            }));
        }
        self.fit(left.trim(), out)?;
        self.fit(right.trim(), out)
    }
}

impl Translator for MarianTranslator<'_> {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        self.engine
            .tokenizer()
            .encode(text)
            .map(|ids| ids.len())
            .map_err(EngineError::Prompt)
    }

    fn translates_each_sentence(&self) -> bool {
        true
    }

    fn max_chunk_tokens(&self) -> usize {
        PARAGRAPH_TOKENS
    }

    fn translate(
        &mut self,
        french: &str,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Output, EngineError> {
        let started = Instant::now();
        let mut pieces = Vec::new();
        for sentence in crate::text::segment::sentences(french) {
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                self.fit(sentence, &mut pieces)?;
            }
        }
        let split_time = started.elapsed();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (translations, timings) =
            self.engine
                .translate_batches(&refs, &self.search, self.max_batch, &mut |step| {
                    on_token(TokenProgress {
                        generated: step,
                        text: "",
                    })
                })?;
        // A stopped run returns nothing of the chunk: the pipeline drops it anyway.
        let (text, stop, prompt_tokens, generated_tokens) =
            match translations.into_iter().collect::<Option<Vec<_>>>() {
                None => (String::new(), StopReason::Cancelled, 0, 0),
                Some(translations) => (
                    translations
                        .iter()
                        .map(|t| t.text.as_str())
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                    if translations.iter().all(|t| t.ended) {
                        StopReason::EndToken
                    } else {
                        StopReason::MaxTokens
                    },
                    translations.iter().map(|t| t.source_ids.len()).sum(),
                    translations.iter().map(|t| t.ids.len()).sum(),
                ),
            };
        Ok(Output {
            text,
            stop,
            prompt_tokens,
            cached_prompt_tokens: 0,
            generated_tokens,
            tokenize_time: split_time + timings.tokenize,
            prompt_time: timings.encode,
            generation_time: timings.decode,
            messages: Vec::new(),
            max_new_tokens: self.search.max_length.saturating_sub(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_config() -> MarianConfig {
        serde_json::from_str(
            r#"{"vocab_size": 10, "max_position_embeddings": 16, "encoder_layers": 1,
            "encoder_ffn_dim": 8, "encoder_attention_heads": 2, "decoder_layers": 1,
            "decoder_ffn_dim": 8, "decoder_attention_heads": 2, "d_model": 4,
            "activation_function": "swish", "pad_token_id": 9, "eos_token_id": 0,
            "decoder_start_token_id": 9, "forced_eos_token_id": 0}"#,
        )
        .unwrap()
    }

    #[test]
    fn opus_mt_generation_config_means_beam_4_with_the_pad_ban() {
        let generation: GenerationConfig = serde_json::from_str(
            r#"{"bad_words_ids": [[59513]], "bos_token_id": 0, "decoder_start_token_id": 59513,
            "eos_token_id": 0, "forced_eos_token_id": 0, "max_length": 512, "num_beams": 4,
            "pad_token_id": 59513, "transformers_version": "4.27.0.dev0"}"#,
        )
        .unwrap();
        let search = generation.search_config(&model_config()).unwrap();
        assert_eq!(search.num_beams, 4);
        assert_eq!(search.max_length, 512);
        assert_eq!(search.banned_tokens, [59513]);
        assert_eq!(search.decoder_start_token_id, 59513);
        assert_eq!(search.forced_eos_token_id, Some(0));
        assert_eq!(search.early_stopping, EarlyStopping::Heuristic);
        assert_eq!(search.length_penalty, 1.0);
    }

    #[test]
    fn settings_that_would_change_the_output_are_refused() {
        for json in [
            r#"{"do_sample": true}"#,
            r#"{"no_repeat_ngram_size": 3}"#,
            r#"{"bad_words_ids": [[1, 2]]}"#,
            r#"{"eos_token_id": [0, 1]}"#,
            r#"{"early_stopping": "sometimes"}"#,
        ] {
            let generation: GenerationConfig = serde_json::from_str(json).unwrap();
            assert!(generation.search_config(&model_config()).is_err(), "{json}");
        }
        let generation: GenerationConfig =
            serde_json::from_str(r#"{"early_stopping": "never", "max_new_tokens": 7}"#).unwrap();
        let search = generation.search_config(&model_config()).unwrap();
        assert_eq!(search.early_stopping, EarlyStopping::Never);
        assert_eq!(search.max_length, 8);
    }
}
