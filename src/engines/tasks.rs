//! The jobs precis gives a model: translate a chunk of French, summarise an English article.
//! Prompts live here, next to the engines that run them.

use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    constraint::{self, FactRules},
    copy_guard::{NearCopyRule, SourceRuns},
    ChatMessage, ChatRequest, EngineError, GenerateOptions, LlmEngine, StopReason,
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
    /// Of `prompt_tokens`, those the KV cache held from an earlier request (not computed).
    #[serde(skip)]
    pub cached_prompt_tokens: usize,
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

pub fn serialize_stop<S: serde::Serializer>(stop: &StopReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(stop_name(*stop))
}

pub fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndToken => "end",
        StopReason::MaxTokens => "max_tokens",
        StopReason::Repetition => "repetition",
        StopReason::Cancelled => "cancelled",
        StopReason::DeadEnd => "dead_end",
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
    /// How many tokens of the article's earlier paragraphs (French and English) a request
    /// should show before its text; 0 for a translator that takes no context.
    fn context_tokens(&self) -> usize {
        0
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
    /// Translates several texts that do not depend on each other, each with its guidance,
    /// together where the engine decodes requests together; `None` from a translator that
    /// takes no guidance. Each translation is the one [`translate_guided`] gives alone.
    ///
    /// [`translate_guided`]: Self::translate_guided
    fn translate_guided_together(
        &mut self,
        items: &[(&str, Guidance)],
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Option<Vec<Output>>, EngineError> {
        items
            .iter()
            .map(|(french, guidance)| self.translate_guided(french, guidance, on_token))
            .collect()
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
    /// English words the translation must write (enforced while decoding): a weekday or a
    /// month that an earlier translation dropped.
    pub required_words: Vec<String>,
    /// The article's paragraphs translated just before this text, oldest first: what a human
    /// translator looks back at so that names, terms and pronouns stay the same.
    pub context: Vec<Exchange>,
}

impl Guidance {
    /// Guidance with what the article said before, and nothing else.
    pub fn in_context(context: &[Exchange]) -> Self {
        Self {
            context: context.to_vec(),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A paragraph translated earlier in the same request sequence: its French as it was asked
/// (with the hints it was asked with) and the English kept for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub french: String,
    pub hints: Vec<String>,
    pub english: String,
}

const TRANSLATE_SYSTEM: &str = "You translate French news text into English, faithfully and \
completely.";

/// The instruction goes in the user turn, before the text, so that even a two-word line is read
/// as text to translate and not as a message to answer.
const TRANSLATE_INSTRUCTION: &str = "Translate the French text below into English. Reply with \
the English translation only. Keep every name, number, link and quotation. Translate dates \
exactly as precisely as the source gives them (for example, « début mai » is \"early May\" and \
« mi-juin » is \"mid-June\"); never add a day, a year or any fact the source does not give.";

/// How long the paragraph should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryForm {
    pub min_sentences: usize,
    pub max_sentences: usize,
    pub max_words: usize,
}

impl Default for SummaryForm {
    fn default() -> Self {
        Self {
            min_sentences: 3,
            max_sentences: 5,
            max_words: 100,
        }
    }
}

impl SummaryForm {
    /// "3 to 5 sentences", "4 sentences".
    pub fn sentences_phrase(&self) -> String {
        if self.min_sentences == self.max_sentences {
            let s = if self.min_sentences == 1 { "" } else { "s" };
            format!("{} sentence{s}", self.min_sentences)
        } else {
            format!("{} to {} sentences", self.min_sentences, self.max_sentences)
        }
    }
}

const SUMMARY_SYSTEM: &str = "You summarise news articles faithfully.";

/// The ways a summary paragraph is asked for; each gives one candidate, and the pipeline keeps
/// the one that measures best. Each asks for a numbered list of sentences, which small models
/// keep to (asked for "a paragraph of 3 to 5 sentences", qwen2.5-coder-1.5b-instruct wrote 8
/// to 10 sentences copied from the demo article; asked for 4 facts one a line, 4 short
/// sentences of its own); the pipeline joins them into a paragraph. Asked after the article,
/// where a small model attends to it best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStyle {
    /// The article's most important facts, as many as the middle of the asked range.
    KeyFacts,
    /// The same, as few as the range allows: shorter, and each sentence freer.
    FewestFacts,
    /// A news brief: the main event first (who, what, where, when), then the details.
    NewsBrief,
}

impl SummaryStyle {
    pub const ALL: [SummaryStyle; 3] = [Self::KeyFacts, Self::FewestFacts, Self::NewsBrief];

    /// How many sentences this style asks for within `form`'s range.
    pub fn sentences(self, form: &SummaryForm) -> usize {
        let middle = (form.min_sentences + form.max_sentences).div_ceil(2);
        match self {
            Self::KeyFacts | Self::NewsBrief => middle,
            Self::FewestFacts => form.min_sentences,
        }
    }

    fn instruction(self, form: &SummaryForm) -> String {
        let n = self.sentences(form);
        // The word limit shared out, so that the whole stays within it.
        let words = (form.max_words / n).max(5);
        let ask = match self {
            Self::KeyFacts | Self::FewestFacts => format!(
                "List the {n} most important facts of the article above as {n} short \
                 sentences, one a line, each under {words} words, in your own words."
            ),
            Self::NewsBrief => format!(
                "Write a news brief of the article above as {n} numbered sentences, each \
                 under {words} words, in your own words: first the main event (who, what, \
                 where, when), then the most important details."
            ),
        };
        format!(
            "{ask} Keep to the facts the article gives; add nothing. When the article gives \
             something as what someone said, reported or claimed, say who. Reply with the {n} \
             sentences only."
        )
    }
}

/// The shortest run of the summarised text's words that a summary may not repeat (names and
/// quotations aside): a summary keeps the article's facts, not its sentences. Runs of 7, with
/// a second round under [`STRICT_COPY_RUN_WORDS`] when the paragraph chosen copies, left 2.2%
/// of sentences near copies on the first 100 CNN/DailyMail articles against 4.3% for runs of 5
/// alone, and fewer fidelity findings (26 against 57), at the same ROUGE-1 (36.9).
pub const SUMMARY_COPY_RUN_WORDS: usize = 7;

/// The run a paragraph is held to when the one kept under [`SUMMARY_COPY_RUN_WORDS`] still
/// nearly copies a sentence.
pub const STRICT_COPY_RUN_WORDS: usize = 5;

/// For one section of an article too long for one request: the map step of map-reduce.
const SECTION_INSTRUCTION: &str = "Summarise the part of an article above in 2 or 3 sentences \
of English, in your own words, keeping names, numbers and who said what. Reply with the \
sentences only.";

/// The translation request: the earlier exchanges of the article as turns of the same
/// conversation, then the text with its hints. Only the first user turn carries the
/// instruction; the later ones are the text alone, as a translator's next page would be, which
/// keeps the prompt short. A context turn is rendered as it was asked, so that the engine's
/// cache still holds it from the request before.
pub fn translation_messages(
    french: &str,
    hints: &[String],
    context: &[Exchange],
) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::system(TRANSLATE_SYSTEM)];
    for (n, exchange) in context.iter().enumerate() {
        messages.push(ChatMessage::user(translation_turn(
            &exchange.french,
            &exchange.hints,
            n == 0,
        )));
        messages.push(ChatMessage::assistant(exchange.english.clone()));
    }
    messages.push(ChatMessage::user(translation_turn(
        french,
        hints,
        context.is_empty(),
    )));
    messages
}

/// One user turn: the instruction (in the first turn only), what to take care of, the text.
fn translation_turn(french: &str, hints: &[String], first: bool) -> String {
    let mut user = String::new();
    if first {
        user.push_str(TRANSLATE_INSTRUCTION);
        user.push_str("\n\n");
    }
    if !hints.is_empty() {
        user.push_str("In this text, take care that:");
        for hint in hints {
            user.push_str("\n- ");
            user.push_str(hint);
        }
        user.push_str("\n\n");
    }
    user.push_str("French text:\n");
    user.push_str(french);
    user
}

/// The summary request: the article (or, for a long one, its sections' summaries), then the
/// instruction. Requests for the same article share everything up to the instruction, which
/// the engine's cache then computes once.
pub fn summary_messages(english_article: &str, instruction: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(SUMMARY_SYSTEM),
        ChatMessage::user(format!("Article:\n{english_article}\n\n{instruction}")),
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

/// Earlier paragraphs shown with each request, in French and English tokens (the chat markup
/// comes on top). Measured on 10 articles of newstest2014-fr (docs/evaluation.md): 800 tokens,
/// about six paragraphs, raised chrF by 0.7 for 11% more time.
const LLM_CONTEXT_TOKENS: usize = 800;

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

    fn context_tokens(&self) -> usize {
        LLM_CONTEXT_TOKENS
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

    fn translate_guided_together(
        &mut self,
        items: &[(&str, Guidance)],
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Option<Vec<Output>>, EngineError> {
        let requests = items
            .iter()
            .map(|(french, guidance)| self.prepare(french, guidance))
            .collect::<Result<Vec<_>, _>>()?;
        run_together(self.engine, &requests, on_token).map(Some)
    }
}

impl LlmTranslator<'_> {
    fn prepare(&self, french: &str, guidance: &Guidance) -> Result<Prepared, EngineError> {
        // English takes fewer tokens than French; twice the source leaves room for any
        // faithful translation and still ends a runaway generation.
        let budget = 2 * self.count_tokens(french)? + 32;
        Ok(Prepared {
            messages: translation_messages(french, &guidance.hints, &guidance.context),
            options: GenerateOptions {
                max_new_tokens: budget.min(self.max_new_tokens),
                facts: guidance.facts.clone(),
                reply_start: guidance.reply_start.clone(),
                required_words: guidance
                    .required_words
                    .iter()
                    .filter(|word| {
                        let start = guidance.reply_start.as_deref().unwrap_or("");
                        !constraint::writes_word(start, word)
                    })
                    .cloned()
                    .collect(),
                // The sentences left to write: those of the source less those the given
                // start of the reply has ended.
                required_sentences: crate::text::segment::sentences(french)
                    .len()
                    .saturating_sub(constraint::sentence_ends(
                        guidance.reply_start.as_deref().unwrap_or(""),
                    ))
                    .max(1),
                ..GenerateOptions::default()
            },
        })
    }

    fn request(
        &mut self,
        french: &str,
        guidance: &Guidance,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Output, EngineError> {
        let request = self.prepare(french, guidance)?;
        let mut outputs = run_together(self.engine, &[request], on_token)?;
        Ok(outputs.remove(0))
    }
}

/// A model request ready to run: its messages and how to decode the reply. Requests that do
/// not depend on each other's replies run together ([`run_together`]).
pub struct Prepared {
    pub messages: Vec<ChatMessage>,
    pub options: GenerateOptions,
}

/// A summary paragraph of an English article in `style`, repeating no run of
/// `copy_run_words` of its words.
pub fn summarize(
    english_article: &str,
    style: SummaryStyle,
    form: &SummaryForm,
    copy_run_words: usize,
    max_new_tokens: usize,
) -> Prepared {
    summary_request(
        english_article,
        &style.instruction(form),
        copy_run_words,
        None,
        max_new_tokens,
    )
}

/// Rewrites one sentence of a summary of the article so that it meets `hints` (the fidelity
/// check's findings about it); the pipeline puts it back in its place. A whole new paragraph
/// would start over: asked to mend one sentence of a paragraph, qwen2.5-coder-1.5b-instruct
/// returned that sentence alone. How far it may follow the article's words is `rewording`.
pub fn mend_summary_sentence(
    english_article: &str,
    sentence: &str,
    hints: &[String],
    rewording: Rewording<'_>,
    max_new_tokens: usize,
) -> Prepared {
    let instruction = format!(
        "Here is a sentence from a summary of the article above:\n\n{sentence}\n\nRewrite \
         this sentence, keeping its facts, so that {}. Reply with the sentence only.",
        hints.join("; and ")
    );
    let (run_words, near_copy) = match rewording {
        Rewording::Runs(words) => (words, None),
        Rewording::Copied(rule) => (STRICT_COPY_RUN_WORDS, Some(rule.clone())),
    };
    summary_request(
        english_article,
        &instruction,
        run_words,
        near_copy,
        max_new_tokens,
    )
}

/// How far the rewrite of a summary sentence may follow the article's words.
pub enum Rewording<'a> {
    /// No run of this many words, as the paragraph it goes back into.
    Runs(usize),
    /// The sentence copied the article (whose sentences, and how much of one may be
    /// repeated, the rule holds): no run of [`STRICT_COPY_RUN_WORDS`] words (names and
    /// quotations aside), nor a sentence copied with words left out. Held to runs of five
    /// alone, the rewrite of "Moscow accuses Ukraine and allies of sabotaging Trump's efforts"
    /// was another copy. Runs of 3 with the same rule are stricter than the near-copy line
    /// needs: ROUGE-1 37.29 against 37.77 for runs of 5 on 49 CNN/DailyMail articles (a
    /// direction only; per article, the standard error of the difference is 0.60).
    Copied(&'a NearCopyRule),
}

/// Summarises one section of a long article (the map step).
pub fn summarize_section(section: &str, max_new_tokens: usize) -> Prepared {
    summary_request(
        section,
        SECTION_INSTRUCTION,
        SUMMARY_COPY_RUN_WORDS,
        None,
        max_new_tokens,
    )
}

/// A summary request; its reply may not repeat the text's runs of `run_words` words
/// ([`SourceRuns`]), nor nearly copy the sentences of `near_copy`.
fn summary_request(
    text: &str,
    instruction: &str,
    run_words: usize,
    near_copy: Option<NearCopyRule>,
    max_new_tokens: usize,
) -> Prepared {
    Prepared {
        messages: summary_messages(text, instruction),
        options: GenerateOptions {
            max_new_tokens,
            avoid_copying: Some(SourceRuns::new(text, run_words)),
            avoid_near_copy: near_copy,
            ..GenerateOptions::default()
        },
    }
}

/// Runs `requests`, as many at once as the engine decodes together
/// ([`LlmEngine::batch_width`]); each reply is the one the request gets alone. The progress
/// counts the tokens of all of them. Requests decoded together share their decoding time: each
/// is given a part of it in proportion to its tokens, so that the run's generation rate counts
/// that time once.
pub fn run_together(
    engine: &mut LlmEngine,
    requests: &[Prepared],
    on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
) -> Result<Vec<Output>, EngineError> {
    let chats: Vec<ChatRequest<'_>> = requests
        .iter()
        .map(|r| ChatRequest {
            messages: &r.messages,
            opts: &r.options,
        })
        .collect();
    let started = Instant::now();
    let mut generated = 0;
    let width = engine.batch_width();
    let generations = engine.generate_batch(&chats, width, |_, event| {
        generated += 1;
        on_token(TokenProgress {
            generated,
            text: event.text,
        })
    })?;
    let prompt_time: Duration = generations.iter().map(|g| g.stats.prompt_time).sum();
    let tokenize_time: Duration = generations.iter().map(|g| g.tokenize_time).sum();
    let decoding = started
        .elapsed()
        .saturating_sub(prompt_time + tokenize_time);
    let tokens: usize = generations.iter().map(|g| g.stats.generated_tokens).sum();
    Ok(generations
        .into_iter()
        .zip(requests)
        .map(|(generation, request)| Output {
            text: generation.text.trim().to_string(),
            stop: generation.stop,
            prompt_tokens: generation.stats.prompt_tokens,
            cached_prompt_tokens: generation.stats.cached_prompt_tokens,
            generated_tokens: generation.stats.generated_tokens,
            tokenize_time: generation.tokenize_time,
            prompt_time: generation.stats.prompt_time,
            generation_time: if requests.len() == 1 {
                generation.stats.generation_time
            } else {
                decoding.mul_f64(generation.stats.generated_tokens as f64 / tokens.max(1) as f64)
            },
            messages: request.messages.clone(),
            max_new_tokens: request.options.max_new_tokens,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::Role;

    #[test]
    fn earlier_paragraphs_come_as_turns_and_only_the_first_turn_has_the_instruction() {
        let alone = translation_messages("Bonjour.", &[], &[]);
        assert_eq!(alone.len(), 2);
        assert!(alone[1].content.starts_with(TRANSLATE_INSTRUCTION));
        let context = [
            Exchange {
                french: "Le maire a parlé.".into(),
                hints: vec!["keep \"Lyon\"".into()],
                english: "The mayor spoke.".into(),
            },
            Exchange {
                french: "Il a démissionné.".into(),
                hints: Vec::new(),
                english: "He resigned.".into(),
            },
        ];
        let messages = translation_messages("Son adjoint le remplace.", &[], &context);
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        // The first turn as it was asked, instruction and hints included, so that the prompt
        // of this request starts with the prompt of the one before.
        let first = translation_messages("Le maire a parlé.", &context[0].hints, &[]);
        assert_eq!(messages[1], first[1]);
        assert_eq!(messages[2].content, "The mayor spoke.");
        assert_eq!(messages[3].content, "French text:\nIl a démissionné.");
        assert_eq!(
            messages[5].content,
            "French text:\nSon adjoint le remplace."
        );
    }
}
