//! A chat model (Qwen2 GGUF) that turns messages into a streamed, greedy reply.

use super::{
    constraint::{FactRules, KeepsToFacts, WritesWords},
    copy_guard::{AvoidsCopying, AvoidsNearCopy, NearCopyRule, SourceRuns},
    EngineError,
};
use crate::infer::{
    decode::{self, TokenConstraint},
    DecodeOptions, DecodeStats, PromptLookup, Qwen2, RepetitionGuard, StopReason,
};
use crate::load::ModelFiles;
use crate::tokenize::{ChatMessage, ChatTemplate, GgufTokenizer, Utf8Stream};
use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Control tokens that end a turn. llama.cpp stops on all of them (its "end of generation"
/// set), not only on the GGUF's `eos_token_id`.
const END_OF_TURN: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub repetition: Option<RepetitionGuard>,
    /// Drafts from the prompt, checked in one pass each; the reply is the same without them.
    pub lookup: Option<PromptLookup>,
    /// The numbers and dates the reply may write (constrained decoding, [`KeepsToFacts`]);
    /// `None` leaves them free.
    pub facts: Option<FactRules>,
    /// Runs of words the reply may not repeat (constrained decoding, [`AvoidsCopying`]): a
    /// summary's source, so that it is written in other words. `None` allows any.
    pub avoid_copying: Option<SourceRuns>,
    /// Sentences the reply may not nearly copy ([`AvoidsNearCopy`]): the article, for the
    /// rewrite of a summary sentence that copied it.
    pub avoid_near_copy: Option<NearCopyRule>,
    /// The reply's first words, given: the model writes what follows them (a repair that keeps
    /// a translation up to its first error). They are part of [`Generation::text`].
    pub reply_start: Option<String>,
    /// Words the reply must write before it may end ([`WritesWords`]), besides any in
    /// `reply_start`: what a repair brings back.
    pub required_words: Vec<String>,
    /// Sentences the reply is expected to write after `reply_start`: the last one may not
    /// end before `required_words` are written.
    pub required_sentences: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 1024,
            repetition: Some(RepetitionGuard::default()),
            lookup: Some(PromptLookup::default()),
            facts: None,
            avoid_copying: None,
            avoid_near_copy: None,
            reply_start: None,
            required_words: Vec::new(),
            required_sentences: 1,
        }
    }
}

/// One generated token, as streamed to the caller.
#[derive(Debug)]
pub struct TokenEvent<'a> {
    /// 0 for the first generated token.
    pub index: usize,
    pub token: u32,
    /// Text completed by this token: valid UTF-8, possibly empty (a control token, or the
    /// first half of a character split across tokens).
    pub text: &'a str,
    /// The logits the token was chosen from.
    pub logits: &'a [f32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The reply without control tokens: the given start of the reply, if any, then the
    /// streamed pieces. A character left incomplete when generation stopped is dropped.
    pub text: String,
    /// Generated ids, the stop token included when there was one.
    pub tokens: Vec<u32>,
    pub prompt_ids: Vec<u32>,
    pub stop: StopReason,
    pub stats: DecodeStats,
    /// Time spent turning the messages into prompt ids.
    pub tokenize_time: std::time::Duration,
}

/// One request of [`LlmEngine::generate_batch`].
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    pub messages: &'a [ChatMessage],
    pub opts: &'a GenerateOptions,
}

/// The constraints a request's options ask for, built over the tokenizer.
struct Constraints<'t> {
    facts: Option<KeepsToFacts<'t>>,
    fresh_wording: Option<AvoidsCopying<'t>>,
    own_sentences: Option<AvoidsNearCopy<'t>>,
    words: Option<WritesWords<'t>>,
}

impl<'t> Constraints<'t> {
    fn new(tokenizer: &'t GgufTokenizer, opts: &'t GenerateOptions) -> Self {
        Self {
            facts: opts
                .facts
                .as_ref()
                .map(|rules| KeepsToFacts::new(tokenizer, rules)),
            fresh_wording: opts
                .avoid_copying
                .as_ref()
                .map(|runs| AvoidsCopying::new(tokenizer, runs)),
            own_sentences: opts
                .avoid_near_copy
                .as_ref()
                .map(|rule| AvoidsNearCopy::new(tokenizer, rule)),
            words: (!opts.required_words.is_empty()).then(|| {
                WritesWords::new(tokenizer, &opts.required_words, opts.required_sentences)
            }),
        }
    }

    fn all(&self) -> Vec<&dyn TokenConstraint> {
        let facts = self.facts.iter().map(|c| c as &dyn TokenConstraint);
        let fresh = self.fresh_wording.iter().map(|c| c as &dyn TokenConstraint);
        let own = self.own_sentences.iter().map(|c| c as &dyn TokenConstraint);
        let words = self.words.iter().map(|c| c as &dyn TokenConstraint);
        facts.chain(fresh).chain(own).chain(words).collect()
    }
}

pub struct LlmEngine {
    path: PathBuf,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    model: Qwen2,
    stop_tokens: Vec<u32>,
    batch_width: usize,
}

/// Sequences decoded together unless told otherwise (`--batch`): see docs/performance.md.
pub const DEFAULT_BATCH_WIDTH: usize = 4;

impl LlmEngine {
    /// Opens the model's Qwen2 GGUF file and reads its tokenizer, chat template and weights.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, EngineError> {
        // The model's one file, or the one of its files named *.gguf.
        let path = files
            .only()
            .or_else(|| files.with_extension("gguf"))
            .ok_or_else(|| EngineError::MissingFile {
                model: files.id.clone(),
                name: ".gguf file".into(),
            })?
            .to_path_buf();
        let file = File::open(&path).map_err(|source| EngineError::Io {
            path: path.clone(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|source| EngineError::Gguf {
            path: path.clone(),
            source,
        })?;
        let tokenizer_err = |source| EngineError::Tokenizer {
            path: path.clone(),
            source,
        };
        let tokenizer = GgufTokenizer::from_gguf(&content).map_err(tokenizer_err)?;
        let template = ChatTemplate::from_gguf(&content).map_err(tokenizer_err)?;
        let mut stop_tokens: Vec<u32> = tokenizer.eos_id().into_iter().collect();
        for t in END_OF_TURN {
            if let Some(id) = tokenizer.token_id(t) {
                if !stop_tokens.contains(&id) {
                    stop_tokens.push(id);
                }
            }
        }
        let model = Qwen2::from_gguf(&content, &mut reader, device).map_err(|source| {
            EngineError::Model {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Self {
            path,
            tokenizer,
            template,
            model,
            stop_tokens,
            batch_width: DEFAULT_BATCH_WIDTH,
        })
    }

    /// Token ids of the chat prompt, ending with the assistant's generation prompt.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        self.template
            .encode(&self.tokenizer, messages, true)
            .map_err(EngineError::Prompt)
    }

    /// Generates the assistant's reply greedily, calling `on_token` for every generated token;
    /// `on_token` returning `Break` stops generation ([`StopReason::Cancelled`]).
    pub fn generate(
        &mut self,
        messages: &[ChatMessage],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(&TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Generation, EngineError> {
        let request = ChatRequest { messages, opts };
        let mut replies = self.generate_batch(&[request], 1, |_, event| on_token(event))?;
        Ok(replies.remove(0))
    }

    /// The replies to several requests, up to `width` of them decoded together (one pass over
    /// the weights per step for all); each reply is exactly the one [`generate`](Self::generate)
    /// gives, and the one it gives when the requests are made one after another.
    /// `on_token` gets each token with its request's index.
    pub fn generate_batch(
        &mut self,
        requests: &[ChatRequest<'_>],
        width: usize,
        mut on_token: impl FnMut(usize, &TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, EngineError> {
        let tokenizer = &self.tokenizer;
        let mut prompts = Vec::with_capacity(requests.len());
        for request in requests {
            let started = std::time::Instant::now();
            let mut prompt = self.encode_chat(request.messages)?;
            let reply_start = request.opts.reply_start.as_deref().unwrap_or_default();
            prompt.extend(
                tokenizer
                    .encode_text(reply_start)
                    .map_err(EngineError::Prompt)?,
            );
            prompts.push((prompt, started.elapsed()));
        }
        let decode_opts: Vec<DecodeOptions> = requests
            .iter()
            .map(|r| DecodeOptions {
                max_new_tokens: r.opts.max_new_tokens,
                stop_tokens: self.stop_tokens.clone(),
                repetition: r.opts.repetition,
                lookup: r.opts.lookup,
            })
            .collect();
        let rules: Vec<Constraints<'_>> = requests
            .iter()
            .map(|r| Constraints::new(tokenizer, r.opts))
            .collect();
        let constraints: Vec<Vec<&dyn TokenConstraint>> =
            rules.iter().map(Constraints::all).collect();
        let batch: Vec<decode::Request<'_>> = prompts
            .iter()
            .zip(&decode_opts)
            .zip(&constraints)
            .map(|(((prompt, _), opts), constraints)| decode::Request {
                prompt,
                opts,
                constraint: (!constraints.is_empty())
                    .then_some(constraints as &dyn TokenConstraint),
            })
            .collect();
        let mut streams: Vec<Utf8Stream> = requests.iter().map(|_| Utf8Stream::new()).collect();
        let mut texts: Vec<String> = requests
            .iter()
            .map(|r| r.opts.reply_start.clone().unwrap_or_default())
            .collect();
        let decoded = decode::batch(&mut self.model, &batch, width, |index, step| {
            let piece = streams[index].push(tokenizer.text_piece(step.token));
            texts[index].push_str(&piece);
            on_token(
                index,
                &TokenEvent {
                    index: step.index,
                    token: step.token,
                    text: &piece,
                    logits: step.logits,
                },
            )
        })
        .map_err(EngineError::Generate)?;
        Ok(decoded
            .into_iter()
            .zip(texts)
            .zip(prompts)
            .map(
                |((decoded, text), (prompt_ids, tokenize_time))| Generation {
                    text,
                    tokens: decoded.tokens,
                    prompt_ids,
                    stop: decoded.stop,
                    stats: decoded.stats,
                    tokenize_time,
                },
            )
            .collect())
    }

    /// How many requests [`generate_batch`](Self::generate_batch)'s callers decode together.
    pub fn batch_width(&self) -> usize {
        self.batch_width
    }

    pub fn set_batch_width(&mut self, width: std::num::NonZeroUsize) {
        self.batch_width = width.get();
    }

    /// Bytes held by the KV caches of the sequences decoded so far.
    pub fn cache_bytes(&self) -> usize {
        self.model.cache_bytes()
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Tokens that end generation: the GGUF's end-of-sequence token and ChatML's end-of-turn.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
