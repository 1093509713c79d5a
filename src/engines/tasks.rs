//! The jobs precis gives a model: translate a chunk of French, summarise an English article.
//! Prompts live here, next to the engines that run them.

use std::{ops::ControlFlow, time::Duration};

use serde::Serialize;

use super::{
    constraint::FactRules, ChatMessage, EngineError, GenerateOptions, LlmEngine, StopReason,
};

/// Progress of one model request, for progress bars.
pub struct TokenProgress<'a> {
    pub generated: usize,
    pub text: &'a str,
}

/// What one request produced.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub text: String,
    #[serde(serialize_with = "serialize_stop")]
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    #[serde(skip)]
    pub tokenize_time: Duration,
    #[serde(skip)]
    pub prompt_time: Duration,
    #[serde(skip)]
    pub generation_time: Duration,
    /// The request itself, kept so a run can be replayed on another engine (benchmarks).
    #[serde(skip)]
    pub messages: Vec<ChatMessage>,
    #[serde(skip)]
    pub max_new_tokens: usize,
}

fn serialize_stop<S: serde::Serializer>(stop: &StopReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(stop_name(*stop))
}

pub fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndToken => "end",
        StopReason::MaxTokens => "max_tokens",
        StopReason::Repetition => "repetition",
        StopReason::Cancelled => "cancelled",
    }
}

/// Translates French text into English, one chunk at a time. The pipeline decides the
/// chunks; a translator says how much fits in one request.
pub trait Translator {
    /// The catalog id of the model.
    fn model_id(&self) -> &str;
    /// Source tokens of `text`, as this translator counts them.
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError>;
    /// The most source tokens one request should carry.
    fn max_chunk_tokens(&self) -> usize;
    fn translate(
        &mut self,
        french: &str,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Output, EngineError>;
    /// Whether each sentence is translated on its own already (Marian): translating a text
    /// again one sentence a request then gives the same translation.
    fn translates_each_sentence(&self) -> bool {
        false
    }
    /// Translates with guidance (what to take care of, which numbers it may write); `None`
    /// from a translator that takes none (Marian).
    fn translate_guided(
        &mut self,
        _french: &str,
        _guidance: &Guidance,
        _on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Option<Output>, EngineError> {
        Ok(None)
    }
}

/// What a translator is told beyond the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guidance {
    /// What to take care of, one a line in the request ("« mi-août » is \"mid-August\"").
    pub hints: Vec<String>,
    /// The numbers and dates the translation may write, enforced while decoding; `None`
    /// leaves them free.
    pub facts: Option<FactRules>,
    /// The translation's first words, kept from an earlier translation: the model goes on
    /// from them.
    pub reply_start: Option<String>,
}

const TRANSLATE_SYSTEM: &str = "You translate French news text into English, faithfully and \
completely.";

/// The instruction goes in the user turn, before the text, so that even a two-word line is read
/// as text to translate and not as a message to answer.
const TRANSLATE_INSTRUCTION: &str = "Translate the French text below into English. Reply with \
the English translation only. Keep every name, number, link and quotation. Translate dates \
exactly as precisely as the source gives them (for example, « début mai » is \"early May\" and \
« mi-juin » is \"mid-June\"); never add a day, a year or any fact the source does not give.";

const SUMMARY_SYSTEM: &str = "You summarise news articles faithfully.";

/// After the article, where a small model attends to it best.
const SUMMARY_INSTRUCTION: &str = "Summarise the article above in one short paragraph of 3 to \
5 sentences (at most 100 words) in English. Use your own words: do not copy the article's \
sentences. Keep to the facts the article gives; add no dates, numbers, names, causes or \
opinions. Reply with the paragraph only.";

pub fn translation_messages(french: &str) -> Vec<ChatMessage> {
    hinted_translation_messages(french, &[])
}

/// The translation request, with what an earlier translation of the same text got wrong.
pub fn hinted_translation_messages(french: &str, hints: &[String]) -> Vec<ChatMessage> {
    let mut user = TRANSLATE_INSTRUCTION.to_string();
    if !hints.is_empty() {
        user.push_str("\n\nIn this text, take care that:");
        for hint in hints {
            user.push_str("\n- ");
            user.push_str(hint);
        }
    }
    user.push_str("\n\nFrench text:\n");
    user.push_str(french);
    vec![
        ChatMessage::system(TRANSLATE_SYSTEM),
        ChatMessage::user(user),
    ]
}

pub fn summary_messages(english_article: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(SUMMARY_SYSTEM),
        ChatMessage::user(format!(
            "Article:\n{english_article}\n\n{SUMMARY_INSTRUCTION}"
        )),
    ]
}

/// An instruct LLM used as a translator.
pub struct LlmTranslator<'a> {
    pub engine: &'a mut LlmEngine,
    pub model_id: String,
    /// Upper bound on generated tokens per request, whatever the chunk's length.
    pub max_new_tokens: usize,
}

/// Source tokens per request: long enough for any ordinary paragraph, short enough that the
/// prompt stays fast and the model keeps to the text.
const LLM_CHUNK_TOKENS: usize = 600;

impl Translator for LlmTranslator<'_> {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        self.engine
            .tokenizer()
            .encode_text(text)
            .map(|ids| ids.len())
            .map_err(EngineError::Prompt)
    }

    fn max_chunk_tokens(&self) -> usize {
        LLM_CHUNK_TOKENS
    }

    fn translate(
        &mut self,
        french: &str,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Output, EngineError> {
        self.request(french, &Guidance::default(), on_token)
    }

    fn translate_guided(
        &mut self,
        french: &str,
        guidance: &Guidance,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Option<Output>, EngineError> {
        self.request(french, guidance, on_token).map(Some)
    }
}

impl LlmTranslator<'_> {
    fn request(
        &mut self,
        french: &str,
        guidance: &Guidance,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Output, EngineError> {
        // English takes fewer tokens than French; twice the source leaves room for any
        // faithful translation and still ends a runaway generation.
        let budget = 2 * self.count_tokens(french)? + 32;
        let options = GenerateOptions {
            max_new_tokens: budget.min(self.max_new_tokens),
            facts: guidance.facts.clone(),
            reply_start: guidance.reply_start.clone(),
            ..GenerateOptions::default()
        };
        let messages = hinted_translation_messages(french, &guidance.hints);
        run(self.engine, &messages, &options, on_token)
    }
}

/// Writes the abstractive summary paragraph of an English article.
pub fn summarize(
    engine: &mut LlmEngine,
    english_article: &str,
    max_new_tokens: usize,
    on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
) -> Result<Output, EngineError> {
    let options = GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    };
    run(
        engine,
        &summary_messages(english_article),
        &options,
        on_token,
    )
}

fn run(
    engine: &mut LlmEngine,
    messages: &[ChatMessage],
    options: &GenerateOptions,
    on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
) -> Result<Output, EngineError> {
    let generation = engine.generate(messages, options, |event| {
        on_token(TokenProgress {
            generated: event.index + 1,
            text: event.text,
        })
    })?;
    Ok(Output {
        text: generation.text.trim().to_string(),
        stop: generation.stop,
        prompt_tokens: generation.stats.prompt_tokens,
        generated_tokens: generation.stats.generated_tokens,
        tokenize_time: generation.tokenize_time,
        prompt_time: generation.stats.prompt_time,
        generation_time: generation.stats.generation_time,
        messages: messages.to_vec(),
        max_new_tokens: options.max_new_tokens,
    })
}
