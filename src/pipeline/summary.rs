//! The summary step: key sentences ranked from the article, and the abstractive paragraph:
//! several candidates, each measured (form, support, copying, coverage, fidelity with
//! attribution), the best kept, with the article sentences that support each of its sentences.

use std::ops::ControlFlow;

use serde::Serialize;

use super::{token_step, unless_interrupted, PipelineError, Progress};
use crate::{
    engines::{
        copy_guard::NearCopyRule,
        tasks::{self, Output, Prepared, Rewording, SummaryForm, SummaryStyle, TokenProgress},
        Embedder, EngineError, LlmEngine, StopReason,
    },
    fidelity::{self, Finding},
    summarize::{
        self as summary, article_sentences,
        candidate::{
            choose, coverage, is_near_copy, mend_target, paragraph_from_list, paragraph_sentences,
            repeated_sentences, word_count, Properties, NEAR_COPY,
        },
        is_headline,
        tfidf::TfIdf,
        ArticleSentence, Extracted, RankOptions, SummarySource, SupportedSentence,
    },
};

/// How sentences are turned into vectors for ranking and provenance.
pub enum SentenceVectors<'a> {
    /// A sentence-embedding model, with its catalog id.
    Embedder {
        embedder: &'a Embedder,
        model_id: String,
    },
    /// TF-IDF over the article's words: the fallback when no embedding model is available.
    TfIdf,
}

impl SentenceVectors<'_> {
    /// The name reported in the output: the model id, or `tf-idf`.
    pub fn name(&self) -> &str {
        match self {
            SentenceVectors::Embedder { model_id, .. } => model_id,
            SentenceVectors::TfIdf => "tf-idf",
        }
    }

    fn support_threshold(&self) -> f32 {
        match self {
            SentenceVectors::Embedder { .. } => summary::SUPPORT_THRESHOLD_EMBEDDING,
            SentenceVectors::TfIdf => summary::SUPPORT_THRESHOLD_TFIDF,
        }
    }
}

/// Article sentences turned into vectors, ready to compare further sentences with.
struct Space<'a> {
    vectors: &'a SentenceVectors<'a>,
    tfidf: Option<TfIdf>,
}

impl<'a> Space<'a> {
    fn fit(vectors: &'a SentenceVectors<'a>, article: &[&str]) -> Self {
        let tfidf = matches!(vectors, SentenceVectors::TfIdf).then(|| TfIdf::fit(article));
        Space { vectors, tfidf }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, PipelineError> {
        match (self.vectors, &self.tfidf) {
            (SentenceVectors::Embedder { embedder, .. }, _) => Ok(embedder.embed(texts)?),
            (_, Some(tfidf)) => Ok(texts.iter().map(|t| tfidf.vector(t)).collect()),
            (SentenceVectors::TfIdf, None) => unreachable!("fit() builds the TF-IDF table"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SummaryOptions {
    /// Sentences in the extractive summary.
    pub sentences: usize,
    pub extractive: bool,
    pub abstractive: bool,
    pub max_new_tokens: usize,
    /// The abstractive paragraph's length.
    pub form: SummaryForm,
    /// Article tokens one summary request holds at most; a longer article is summarised by
    /// sections ([`SUMMARY_SOURCE_TOKENS`] unless a test asks for less).
    pub source_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What compared sentences: the embedding model's id, or `tf-idf` (the fallback).
    pub similarity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractive: Option<Vec<Extracted>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstractive: Option<Abstractive>,
}

/// How the article reached the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The whole article in one request.
    Whole,
    /// Too long for one request: each section summarised, then their summaries (map-reduce).
    Sections,
}

#[derive(Debug, Clone, Serialize)]
pub struct Abstractive {
    pub model: String,
    pub text: String,
    /// Each sentence of `text` with the article sentences that support it.
    pub sentences: Vec<SupportedSentence>,
    pub route: Route,
    /// The summaries of the sections of a long article (the map step), each checked against
    /// its section; empty when the article went whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionSummary>,
    /// The chosen paragraph's measures.
    pub properties: Properties,
    /// What the chosen paragraph does not meet; empty when it meets every check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shortcomings: Vec<String>,
    /// Every paragraph written, the chosen one included, with what each falls short of.
    pub candidates: Vec<Candidate>,
    /// The chosen paragraph's fidelity findings against the article, attribution included.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// How the chosen paragraph's request ended, and the tokens of all summary requests.
    #[serde(flatten)]
    pub tokens: SummaryTokens,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryTokens {
    #[serde(serialize_with = "tasks::serialize_stop")]
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

impl Abstractive {
    /// Every model request of the summary: sections, then candidates.
    pub fn requests(&self) -> impl Iterator<Item = &Output> {
        let sections = self.sections.iter().map(|s| &s.request);
        sections.chain(self.candidates.iter().flat_map(|c| &c.requests))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionSummary {
    pub text: String,
    /// Fidelity findings of the summary against its section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    #[serde(skip)]
    pub request: Output,
}

/// One summary paragraph the model wrote, and how it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub style: SummaryStyle,
    /// The shortest run of the article's words it was not allowed to repeat.
    pub copy_run_words: usize,
    /// What the model was told to mend, for a paragraph whose flagged sentences were
    /// rewritten (empty for a first ask).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    pub text: String,
    pub properties: Properties,
    /// Why it falls short; empty when it meets every check.
    pub shortcomings: Vec<String>,
    pub chosen: bool,
    /// The requests that wrote it: one, or one per rewritten sentence.
    #[serde(skip)]
    pub requests: Vec<Output>,
}

impl Candidate {
    fn new(
        style: SummaryStyle,
        copy_run_words: usize,
        text: String,
        verdict: &Verdict,
        form: &SummaryForm,
        requests: Vec<Output>,
    ) -> Self {
        Self {
            style,
            copy_run_words,
            hints: Vec::new(),
            text,
            shortcomings: verdict.properties.shortcomings(form),
            properties: verdict.properties.clone(),
            chosen: false,
            requests,
        }
    }
}

/// Article tokens the language model is shown at most in one summary request. Long enough for
/// most news articles whole (CNN/DailyMail's average is about 750 tokens), short enough that
/// the prompt takes well under a minute on two CPU cores; longer articles are summarised
/// section by section first.
pub const SUMMARY_SOURCE_TOKENS: usize = 2048;

/// The article's most relevant sentences, whose coverage a summary paragraph is measured by.
const KEY_SENTENCES_COVERED: usize = 5;

/// Summarises an English article given as paragraphs: extractive key sentences, and an
/// abstractive paragraph from `generator`: several candidates, written in different ways, each
/// measured (form, support, copying, coverage, fidelity with attribution), the best kept.
pub fn summarize_article(
    generator: Option<(&mut LlmEngine, &str)>,
    vectors: &SentenceVectors<'_>,
    paragraphs: &[String],
    options: &SummaryOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Summary, PipelineError> {
    let mut sentences = article_sentences(paragraphs);
    if sentences.is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    if !sentences.iter().any(|s| s.content) {
        // A very short text is all body: better a summary of it than none.
        sentences.iter_mut().for_each(|s| s.content = true);
    }
    let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
    let space = Space::fit(vectors, &texts);
    let article_vectors = space.embed(&texts)?;
    let rank = RankOptions::default();
    let extractive = options
        .extractive
        .then(|| summary::extract(&sentences, &article_vectors, options.sentences, &rank));

    let abstractive = match generator {
        Some((engine, model_id)) if options.abstractive => {
            progress(Progress::Summary);
            let article = Judge {
                space: &space,
                sentences: &sentences,
                vectors: &article_vectors,
                key: key_sentences(&sentences, &article_vectors, &rank),
                threshold: vectors.support_threshold(),
                english: paragraphs.join("\n\n"),
                form: options.form,
            };
            Some(write_paragraph(
                engine, model_id, &article, paragraphs, options, progress, warnings,
            )?)
        }
        _ => None,
    };
    Ok(Summary {
        similarity: vectors.name().to_string(),
        extractive,
        abstractive,
    })
}

/// The article's key sentences (by relevance), as vectors.
fn key_sentences<'v>(
    sentences: &[ArticleSentence],
    vectors: &'v [Vec<f32>],
    rank: &RankOptions,
) -> Vec<&'v [f32]> {
    let relevance = summary::relevance(sentences, vectors, rank);
    let mut body: Vec<usize> = (0..sentences.len())
        .filter(|&i| sentences[i].content)
        .collect();
    body.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    body.iter()
        .take(KEY_SENTENCES_COVERED)
        .map(|&i| vectors[i].as_slice())
        .collect()
}

/// The article as a summary paragraph is measured against.
struct Judge<'a> {
    space: &'a Space<'a>,
    sentences: &'a [ArticleSentence],
    vectors: &'a [Vec<f32>],
    key: Vec<&'a [f32]>,
    threshold: f32,
    english: String,
    form: SummaryForm,
}

/// What one paragraph measured: its sentences with their support, its properties, its
/// fidelity findings.
struct Verdict {
    sentences: Vec<SupportedSentence>,
    properties: Properties,
    findings: Vec<Finding>,
    /// The sentences (0-based) that are near copies of an article sentence.
    copied: Vec<usize>,
}

impl Judge<'_> {
    /// The article's sentences of content, which a summary sentence may not nearly copy.
    fn body(&self) -> Vec<&str> {
        self.sentences
            .iter()
            .filter(|s| s.content)
            .map(|s| s.text.as_str())
            .collect()
    }

    /// `complete`: the model ended every request that wrote `text` itself.
    fn measure(&self, text: &str, complete: bool) -> Result<Verdict, PipelineError> {
        let written = paragraph_sentences(text);
        let written_vectors = self.space.embed(&written)?;
        let supported = summary::provenance(
            &written,
            &written_vectors,
            self.sentences,
            self.vectors,
            self.threshold,
        );
        let body = self.body();
        let supports: Vec<Vec<(&str, f32)>> = supported
            .iter()
            .map(|s| {
                s.support
                    .iter()
                    .filter_map(|support| {
                        self.sentences
                            .iter()
                            .find(|a| {
                                a.paragraph == support.paragraph && a.sentence == support.sentence
                            })
                            // Who said it is in the body, which the headline sums up.
                            .filter(|a| !is_headline(self.sentences, a))
                            .map(|a| (a.text.as_str(), support.similarity))
                    })
                    .collect()
            })
            .collect();
        let mut findings = fidelity::check_summary(&self.english, text);
        findings.extend(fidelity::check_attribution(&written, &supports));
        let copied: Vec<usize> = (0..written.len())
            .filter(|&i| is_near_copy(written[i], &body))
            .collect();
        let near_copies = copied.len();
        let properties = Properties {
            sentences: written.len(),
            words: word_count(text),
            unsupported: supported.iter().filter(|s| !s.supported).count(),
            near_copies,
            copy_rate: if written.is_empty() {
                0.0
            } else {
                near_copies as f32 / written.len() as f32
            },
            repeated: repeated_sentences(&written),
            coverage: coverage(&written_vectors, &self.key, self.threshold),
            findings: findings.len(),
            complete,
        };
        Ok(Verdict {
            sentences: supported,
            properties,
            findings,
            copied,
        })
    }
}

/// The abstractive paragraph: the article whole or, when too long, its sections summarised
/// first; then one candidate per style, each measured, and the best kept. A one-line warning
/// says what the kept paragraph does not meet, if anything.
fn write_paragraph(
    engine: &mut LlmEngine,
    model_id: &str,
    article: &Judge<'_>,
    paragraphs: &[String],
    options: &SummaryOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Abstractive, PipelineError> {
    let source = {
        let count = |text: &str| engine.tokenizer().encode_text(text).map(|t| t.len());
        summary::summary_source(paragraphs, article.sentences, options.source_tokens, &count)
            .map_err(|e| PipelineError::Engine(EngineError::Prompt(e)))?
    };
    // Room for a paragraph over its word limit to end by itself, so that it is measured (and
    // passed over) rather than cut.
    let budget = options.max_new_tokens.min(3 * options.form.max_words + 64);
    let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
    let (route, text, sections) = match source {
        SummarySource::Whole(text) => (Route::Whole, text, Vec::new()),
        SummarySource::Sections(parts) => {
            let requests: Vec<Prepared> = parts
                .iter()
                .map(|part| tasks::summarize_section(part, budget))
                .collect();
            let outputs = run_all(engine, &requests, &mut on_token)?;
            let sections: Vec<SectionSummary> = parts
                .iter()
                .zip(outputs)
                .map(|(part, request)| {
                    let findings = fidelity::check_summary(part, &request.text);
                    SectionSummary {
                        text: request.text.clone(),
                        findings: findings.iter().map(Finding::describe).collect(),
                        request,
                    }
                })
                .collect();
            let joined = sections
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n");
            (Route::Sections, joined, sections)
        }
    };
    let mut candidates = Vec::with_capacity(2 * SummaryStyle::ALL.len() + 2);
    let mut verdicts = Vec::with_capacity(2 * SummaryStyle::ALL.len() + 2);
    let mut round = Round {
        engine,
        article,
        text: &text,
        form: &options.form,
        budget,
        candidates: &mut candidates,
        verdicts: &mut verdicts,
    };
    round.write(tasks::SUMMARY_COPY_RUN_WORDS, &mut on_token)?;
    // Runs of 7 words let a near copy through now and then (the demo's first sentence, RT's
    // report with its words in their order): the candidates are then written again, held to
    // runs of 5, and the choice is made among all.
    if round.best().properties.near_copies > 0 {
        round.write(tasks::STRICT_COPY_RUN_WORDS, &mut on_token)?;
    }
    let (chosen, meets_all) =
        choose(&measured(&candidates), &article.form).expect("candidates were written");
    candidates[chosen].chosen = true;
    let verdict = verdicts.swap_remove(chosen);
    let kept = &candidates[chosen];
    if !meets_all {
        warnings.push(format!(
            "no summary paragraph of {} met every check; the one kept has {}",
            candidates.len(),
            kept.shortcomings.join(", ")
        ));
    }
    let stop = kept
        .requests
        .last()
        .map_or(StopReason::EndToken, |r| r.stop);
    let mut abstractive = Abstractive {
        tokens: SummaryTokens {
            stop,
            prompt_tokens: 0,
            generated_tokens: 0,
        },
        model: model_id.to_string(),
        text: kept.text.clone(),
        sentences: verdict.sentences,
        route,
        sections,
        properties: verdict.properties,
        shortcomings: kept.shortcomings.clone(),
        findings: verdict.findings,
        candidates,
    };
    let (prompt_tokens, generated_tokens) = abstractive.requests().fold((0, 0), |(p, g), r| {
        (p + r.prompt_tokens, g + r.generated_tokens)
    });
    abstractive.tokens.prompt_tokens = prompt_tokens;
    abstractive.tokens.generated_tokens = generated_tokens;
    Ok(abstractive)
}

/// Runs requests that do not depend on each other together; one cancelled stops the command.
fn run_all(
    engine: &mut LlmEngine,
    requests: &[Prepared],
    on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
) -> Result<Vec<Output>, PipelineError> {
    tasks::run_together(engine, requests, on_token)?
        .into_iter()
        .map(unless_interrupted)
        .collect()
}

fn measured(candidates: &[Candidate]) -> Vec<Properties> {
    candidates.iter().map(|c| c.properties.clone()).collect()
}

/// The candidate paragraphs of one article, written in rounds.
struct Round<'r, 'a> {
    engine: &'r mut LlmEngine,
    article: &'r Judge<'a>,
    /// What is summarised: the article, or its sections' summaries.
    text: &'r str,
    form: &'r SummaryForm,
    budget: usize,
    candidates: &'r mut Vec<Candidate>,
    verdicts: &'r mut Vec<Verdict>,
}

impl Round<'_, '_> {
    /// The best candidate so far.
    fn best(&self) -> &Candidate {
        let (best, _) =
            choose(&measured(self.candidates), self.form).expect("candidates were written");
        &self.candidates[best]
    }

    /// One candidate in each style, none repeating a run of `copy_run_words` of the article's
    /// words; then, if none of them meets every check, the best one with sentences that a
    /// rewrite can mend (a fidelity finding, a near copy), with those sentences rewritten.
    fn write(
        &mut self,
        copy_run_words: usize,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<(), PipelineError> {
        let first = self.candidates.len();
        let requests: Vec<Prepared> = SummaryStyle::ALL
            .iter()
            .map(|&style| {
                tasks::summarize(self.text, style, self.form, copy_run_words, self.budget)
            })
            .collect();
        let outputs = run_all(self.engine, &requests, on_token)?;
        for (style, request) in SummaryStyle::ALL.into_iter().zip(outputs) {
            let paragraph = paragraph_from_list(&request.text);
            let verdict = self
                .article
                .measure(&paragraph, request.stop == StopReason::EndToken)?;
            self.candidates.push(Candidate::new(
                style,
                copy_run_words,
                paragraph,
                &verdict,
                self.form,
                vec![request],
            ));
            self.verdicts.push(verdict);
        }
        let (_, meets_all) = choose(&measured(&self.candidates[first..]), self.form)
            .expect("one candidate per style");
        // The chosen paragraph, or one that its mendable sentences alone keep from being chosen.
        let mendable: Vec<usize> = (first..self.candidates.len())
            .filter(|&i| !sentence_hints(&self.verdicts[i]).is_empty())
            .collect();
        let to_mend = mend_target(
            &mendable
                .iter()
                .map(|&i| self.candidates[i].properties.clone())
                .collect::<Vec<_>>(),
            self.form,
        )
        .map(|best| mendable[best]);
        if let (false, Some(target)) = (meets_all, to_mend) {
            self.mend(target, on_token)?;
        }
        Ok(())
    }

    /// Once: each flagged sentence of candidate `target` rewritten by the model, told what to
    /// mend, and put back in its place. The result is one more candidate.
    fn mend(
        &mut self,
        target: usize,
        on_token: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
    ) -> Result<(), PipelineError> {
        let verdict = &self.verdicts[target];
        let flagged = sentence_hints(verdict);
        let mut sentences: Vec<String> = paragraph_sentences(&self.candidates[target].text)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut hints = Vec::new();
        let article_sentences = NearCopyRule::new(&self.article.body(), NEAR_COPY);
        let mut mended = Vec::new();
        let mut prepared = Vec::new();
        for (index, sentence_hints) in flagged {
            let Some(sentence) = sentences.get(index) else {
                continue;
            };
            prepared.push(tasks::mend_summary_sentence(
                self.text,
                sentence,
                &sentence_hints,
                if verdict.copied.contains(&index) {
                    Rewording::Copied(&article_sentences)
                } else {
                    Rewording::Runs(self.candidates[target].copy_run_words)
                },
                self.budget,
            ));
            mended.push(index);
            hints.extend(sentence_hints);
        }
        let requests = run_all(self.engine, &prepared, on_token)?;
        for (&index, request) in mended.iter().zip(&requests) {
            sentences[index] = paragraph_from_list(&request.text);
        }
        let paragraph = sentences.join(" ");
        let complete = requests.iter().all(|r| r.stop == StopReason::EndToken);
        let verdict = self.article.measure(&paragraph, complete)?;
        let target = &self.candidates[target];
        let mut candidate = Candidate::new(
            target.style,
            target.copy_run_words,
            paragraph,
            &verdict,
            self.form,
            requests,
        );
        candidate.hints = hints;
        self.candidates.push(candidate);
        self.verdicts.push(verdict);
        Ok(())
    }
}

/// Told about a sentence that copies the article.
const IN_OTHER_WORDS: &str =
    "it says the same in other words and another word order than the article";

/// What to tell the model about each summary sentence with a finding or that copies the
/// article, by sentence (0-based).
fn sentence_hints(verdict: &Verdict) -> Vec<(usize, Vec<String>)> {
    let mut by_sentence: Vec<(usize, Vec<String>)> = verdict
        .copied
        .iter()
        .map(|&i| (i, vec![IN_OTHER_WORDS.to_string()]))
        .collect();
    for finding in &verdict.findings {
        let Some(index) = finding.sentence else {
            continue;
        };
        let hint = match finding.kind {
            fidelity::Kind::Attribution => format!(
                "it says who said or reported it (the article has \"{}\")",
                finding.source_text
            ),
            _ if !finding.output_text.is_empty() => format!(
                "it does not write \"{}\" ({})",
                finding.output_text, finding.problem
            ),
            _ => finding.problem.clone(),
        };
        match by_sentence.iter_mut().find(|(i, _)| *i == index) {
            Some((_, hints)) => hints.push(hint),
            None => by_sentence.push((index, vec![hint])),
        }
    }
    by_sentence
}
