//! The translation step: every paragraph of an article translated, each checked at once and its
//! findings repaired (the glossary's hints, constrained decoding, one sentence a request), with
//! every request and repair kept for the report.

use serde::Serialize;

use super::{token_step, unless_interrupted, PipelineError, Progress};
use crate::{
    engines::{
        constraint::FactRules,
        tasks::{self, Exchange, Guidance, Output, TokenProgress, Translator},
        EngineError, StopReason,
    },
    fidelity::{self, Finding, Glossary},
    interrupt,
    text::{chunk::chunks_within, furniture, segment::sentences, Article},
};

#[derive(Debug, Clone, Serialize)]
pub struct TranslatedParagraph {
    pub source: String,
    pub text: String,
    /// False when no model translated it: copied unchanged (nothing to translate: a bare URL, a
    /// number), or a page label given its English form (`page_label`).
    pub translated: bool,
    /// A page label ("Commentaires (3)") rendered by `text::furniture`, not translated as prose.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub page_label: bool,
    /// Each attempt to mend what the fidelity check found, kept or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<Repair>,
    /// One entry per model request.
    pub requests: Vec<Output>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Translation {
    pub model: String,
    pub paragraphs: Vec<TranslatedParagraph>,
    /// The whole translation, in the layout of the source.
    pub text: String,
}

/// Translates every paragraph of the article. Paragraphs longer than one request are cut at
/// sentence boundaries; a request that ends in a loop or at its token limit is retried sentence
/// by sentence, so nothing is silently cut short. The glossary's terms go with every request
/// whose text holds them, and what the fidelity check finds is repaired ([`repair`]).
pub fn translate_article(
    translator: &mut dyn Translator,
    article: &Article,
    glossary: &Glossary,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Translation, PipelineError> {
    if article.is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    let count = article.paragraphs.len();
    let mut paragraphs = Vec::with_capacity(count);
    let mut context = Context::new(translator.context_tokens());
    for (index, paragraph) in article.paragraphs.iter().enumerate() {
        if interrupt::requested() {
            return Err(PipelineError::Interrupted);
        }
        progress(Progress::Paragraph { index, count });
        let label = furniture::page_label(&paragraph.text);
        if label.is_some() || !has_words_to_translate(&paragraph.text) {
            paragraphs.push(TranslatedParagraph {
                source: paragraph.text.clone(),
                text: label.clone().unwrap_or_else(|| paragraph.text.clone()),
                translated: false,
                page_label: label.is_some(),
                requests: Vec::new(),
                repairs: Vec::new(),
            });
            continue;
        }
        let limit = translator.max_chunk_tokens();
        let chunks = {
            let counter = |text: &str| translator.count_tokens(text);
            chunks_within(&paragraph.text, limit, &counter)?
        };
        let mut pieces = Vec::new();
        let mut requests = Vec::new();
        for chunk in &chunks {
            let mut request = Request {
                translator: &mut *translator,
                glossary,
                context: context.exchanges(),
                progress: &mut *progress,
                requests: &mut requests,
            };
            let output = request.chunk(chunk, &glossary.hints(chunk))?;
            if output.stop != StopReason::EndToken {
                warnings.push(format!(
                    "paragraph {}: the translation stopped early ({}); check it against the source",
                    index + 1,
                    tasks::stop_name(output.stop)
                ));
            }
            pieces.push(output.text);
        }
        let mut text = pieces.join(" ");
        let mut repairs = Vec::new();
        if chunks.len() == 1 {
            let mut request = Request {
                translator: &mut *translator,
                glossary,
                context: context.exchanges(),
                progress: &mut *progress,
                requests: &mut requests,
            };
            text = request.repair(&paragraph.text, text, index, &mut repairs)?;
            let french = chunks[0].trim();
            let exchange = Exchange {
                french: french.to_string(),
                hints: glossary.hints(french),
                english: text.clone(),
            };
            context.push(exchange, |text| translator.count_tokens(text))?;
        }
        paragraphs.push(TranslatedParagraph {
            source: paragraph.text.clone(),
            text,
            translated: true,
            page_label: false,
            requests,
            repairs,
        });
    }
    let texts: Vec<&str> = paragraphs.iter().map(|p| p.text.as_str()).collect();
    Ok(Translation {
        model: translator.model_id().to_string(),
        text: article.reassemble(&texts),
        paragraphs,
    })
}

/// An attempt to mend a translated paragraph: the findings it answered, how it was tried, the
/// text before and after, and whether the new text was kept.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub findings: Vec<String>,
    pub method: RepairMethod,
    /// What the translator was told (the hint methods).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Words the new translation had to write before it could end (a weekday or month the
    /// text before dropped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_words: Vec<String>,
    pub before: String,
    pub after: String,
    pub kept: bool,
    /// Findings of the new text.
    pub remaining: Vec<String>,
    /// Numbers the new text writes more often than the source and the text it replaces: a
    /// gap filled with another of the source's numbers ("43 lives" from "43 ans"), which
    /// the check cannot see; such a text is never kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overused_numbers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairMethod {
    /// The paragraph again, with what to keep and how.
    Hints,
    /// The same, decoding under a constraint: the new translation may write the source's
    /// numbers only, a day of the month only where the source gives one, and a month the
    /// source gives as a part ("mi-août") only with that part, and may not end before it has
    /// written a weekday or month the text before dropped (`engines::constraint`).
    HintsAndSourceFacts,
    /// One sentence per request: for a translation that dropped part of its source.
    SentenceBySentence,
}

/// Told to the translator after an attempt that mended the findings but came out short.
const LEFT_WORDS_OUT: &str = "the last translation left words out (titles, names or clauses): \
translate every word of the text";

/// Attempts at mending one paragraph: enough for a second try after a partial mend, and a
/// bound that no input can make the repair loop past.
const REPAIR_ATTEMPTS: usize = 2;

/// The findings of one translated paragraph: the fidelity check's and the glossary's.
pub fn paragraph_findings(
    source: &str,
    text: &str,
    index: usize,
    glossary: &Glossary,
) -> Vec<Finding> {
    let mut findings = fidelity::check_translation(source, text, index);
    findings.extend(glossary.check(source, text, index));
    findings
}

/// The paragraphs a request shows before its text: the latest ones translated, up to the
/// translator's budget. When the next would pass it, the window starts again from the latest
/// paragraph alone rather than sliding one paragraph at a time: a window that keeps its start
/// keeps the same prompt prefix from one request to the next, which the engine's cache then
/// does not compute again.
struct Context {
    budget: usize,
    exchanges: Vec<Exchange>,
    tokens: Vec<usize>,
}

impl Context {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            exchanges: Vec::new(),
            tokens: Vec::new(),
        }
    }

    fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    fn push(
        &mut self,
        exchange: Exchange,
        count_tokens: impl Fn(&str) -> Result<usize, EngineError>,
    ) -> Result<(), PipelineError> {
        if self.budget == 0 {
            return Ok(());
        }
        let tokens = count_tokens(&exchange.french)? + count_tokens(&exchange.english)?;
        if self.tokens.iter().sum::<usize>() + tokens > self.budget {
            self.exchanges.clear();
            self.tokens.clear();
        }
        if tokens <= self.budget {
            self.exchanges.push(exchange);
            self.tokens.push(tokens);
        }
        Ok(())
    }
}

/// The translation requests of one paragraph, with what they need around them.
struct Request<'a> {
    translator: &'a mut dyn Translator,
    glossary: &'a Glossary,
    context: &'a [Exchange],
    progress: &'a mut dyn FnMut(Progress<'_>),
    requests: &'a mut Vec<Output>,
}

impl Request<'_> {
    /// One request for `text`, with `hints` where the translator takes them.
    fn send(&mut self, text: &str, hints: &[String]) -> Result<Output, PipelineError> {
        let guidance = Guidance {
            hints: hints.to_vec(),
            ..Guidance::in_context(self.context)
        };
        let guided = if guidance.is_empty() {
            None
        } else {
            self.send_guided(text, &guidance)?
        };
        match guided {
            Some(output) => Ok(output),
            None => {
                let progress = &mut *self.progress;
                let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
                let output =
                    unless_interrupted(self.translator.translate(text.trim(), &mut on_token)?)?;
                self.requests.push(output.clone());
                Ok(output)
            }
        }
    }

    /// One request for `text` with `guidance`; `None` from a translator that takes none.
    fn send_guided(
        &mut self,
        text: &str,
        guidance: &Guidance,
    ) -> Result<Option<Output>, PipelineError> {
        let progress = &mut *self.progress;
        let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
        let Some(output) =
            self.translator
                .translate_guided(text.trim(), guidance, &mut on_token)?
        else {
            return Ok(None);
        };
        let output = unless_interrupted(output)?;
        self.requests.push(output.clone());
        Ok(Some(output))
    }

    /// Translates one chunk; if the model stopped for any reason but its end token, translates
    /// the chunk's sentences one by one instead.
    fn chunk(&mut self, chunk: &str, hints: &[String]) -> Result<Output, PipelineError> {
        let output = self.send(chunk, hints)?;
        if output.stop == StopReason::EndToken || sentences(chunk).len() < 2 {
            return Ok(output);
        }
        self.sentence_by_sentence(chunk)
    }

    /// Each sentence of `text` in a request of its own, with the glossary's terms it holds;
    /// the requests run together where the translator can. Returns the joined text and the
    /// worst stop reason.
    fn sentence_by_sentence(&mut self, text: &str) -> Result<Output, PipelineError> {
        let pieces: Vec<&str> = sentences(text)
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        let items: Vec<(&str, Guidance)> = pieces
            .iter()
            .map(|sentence| {
                let guidance = Guidance {
                    hints: self.glossary.hints(sentence),
                    ..Guidance::in_context(self.context)
                };
                (sentence.trim(), guidance)
            })
            .collect();
        let progress = &mut *self.progress;
        let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
        let outputs = match self
            .translator
            .translate_guided_together(&items, &mut on_token)?
        {
            Some(outputs) => {
                let outputs = outputs
                    .into_iter()
                    .map(unless_interrupted)
                    .collect::<Result<Vec<_>, _>>()?;
                self.requests.extend(outputs.iter().cloned());
                outputs
            }
            None => pieces
                .iter()
                .map(|sentence| self.send(sentence, &self.glossary.hints(sentence)))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let stop = outputs
            .iter()
            .map(|o| o.stop)
            .rfind(|&stop| stop != StopReason::EndToken)
            .unwrap_or(StopReason::EndToken);
        let text = outputs
            .iter()
            .map(|o| o.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let last = outputs.last().expect("a chunk has a sentence with words");
        Ok(Output {
            text,
            stop,
            ..last.clone()
        })
    }

    /// Mends what the fidelity check finds in a paragraph's translation. A translation that
    /// dropped part of its source is translated sentence by sentence; other findings are
    /// answered by translating the paragraph again, told what to keep and how (a date at the
    /// source's precision, the glossary's terms). The new text is kept only if it is strictly
    /// better: fewer findings, ended on the end token, no shorter than 90% of the text it
    /// replaces (nothing dropped to lose a finding), and no number of the source written more
    /// often than the source writes it ([`fidelity::overused_numbers`]). The check decides; it never rewrites text
    /// itself. Marian, which takes no hints and translates each sentence on its own already, is
    /// checked but not repaired.
    fn repair(
        &mut self,
        source: &str,
        text: String,
        index: usize,
        repairs: &mut Vec<Repair>,
    ) -> Result<String, PipelineError> {
        let mut best = text;
        let mut findings = paragraph_findings(source, &best, index, self.glossary);
        let mut split_tried = false;
        // Set when an attempt mended the findings but left words out.
        let mut came_out_short = false;
        for _ in 0..REPAIR_ATTEMPTS {
            if findings.is_empty() {
                break;
            }
            let mut required_words = Vec::new();
            let dropped = findings.iter().any(|f| f.kind == fidelity::Kind::Omission);
            let can_split =
                sentences(source).len() > 1 && !self.translator.translates_each_sentence();
            let (method, hints, output) = if dropped && !split_tried && can_split {
                split_tried = true;
                let output = self.sentence_by_sentence(source)?;
                (RepairMethod::SentenceBySentence, Vec::new(), output)
            } else {
                let mut hints = self.glossary.hints(source);
                hints.extend(findings.iter().filter_map(fidelity::repair_hint));
                if came_out_short {
                    hints.push(LEFT_WORDS_OUT.to_string());
                }
                // A number or a date the source does not give: the new translation keeps
                // to the source's.
                let facts_wrong = findings
                    .iter()
                    .any(|f| matches!(f.kind, fidelity::Kind::Number | fidelity::Kind::Date));
                let guidance = Guidance {
                    hints,
                    facts: facts_wrong.then(|| FactRules {
                        numbers: fidelity::digit_forms(source),
                        days: fidelity::day_forms(source),
                        qualified_months: fidelity::qualified_months(source),
                        decimals: fidelity::decimal_forms(source),
                    }),
                    // The words before the first wrong fact or glossary term are kept (a
                    // wrong date or term given its right form), so that the model takes the
                    // path it took up to there, and goes on (under the constraint).
                    reply_start: fidelity::repair_start(&best, &findings, self.glossary),
                    required_words: findings
                        .iter()
                        .filter_map(fidelity::required_word)
                        .collect(),
                    context: self.context.to_vec(),
                };
                let Some(output) = self.send_guided(source, &guidance)? else {
                    break;
                };
                let method = if facts_wrong {
                    RepairMethod::HintsAndSourceFacts
                } else {
                    RepairMethod::Hints
                };
                required_words = guidance.required_words;
                (method, guidance.hints, output)
            };
            let after = paragraph_findings(source, &output.text, index, self.glossary);
            let fewer = output.stop == StopReason::EndToken && after.len() < findings.len();
            let whole = output.text.chars().count() * 10 >= best.chars().count() * 9;
            let overused = fidelity::overused_numbers(source, &best, &output.text);
            let kept = fewer && whole && overused.is_empty();
            repairs.push(Repair {
                findings: findings.iter().map(Finding::describe).collect(),
                method,
                hints,
                required_words,
                before: best.clone(),
                after: output.text.clone(),
                kept,
                remaining: after.iter().map(Finding::describe).collect(),
                overused_numbers: overused,
            });
            if kept {
                best = output.text;
                findings = after;
            } else if fewer && !came_out_short {
                came_out_short = true;
            } else if method != RepairMethod::SentenceBySentence {
                break;
            }
        }
        Ok(best)
    }
}

/// Does the paragraph contain words (outside URLs) that a translator should see?
fn has_words_to_translate(text: &str) -> bool {
    text.split_whitespace()
        .filter(|word| !word.contains("://") && !word.starts_with("www."))
        .any(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 2)
}

#[cfg(test)]
mod tests {
    use std::{ops::ControlFlow, time::Duration};

    use super::*;

    /// A translator that answers from a script: the reply for a text, by its first words, and
    /// the hints it was given.
    struct Scripted {
        replies: Vec<(&'static str, &'static str)>,
        /// Replies to requests that carry hints, if it takes them.
        hinted: Option<&'static str>,
        seen_hints: Vec<Vec<String>>,
        calls: usize,
        /// What `context_tokens` says (0: no context, as Marian).
        context_budget: usize,
        /// The French of the earlier paragraphs each guided request was shown.
        seen_context: Vec<Vec<String>>,
    }

    impl Scripted {
        fn reply(&mut self, french: &str) -> Output {
            self.calls += 1;
            let text = self
                .replies
                .iter()
                .find(|(start, _)| french.starts_with(start))
                .map(|(_, reply)| *reply)
                .unwrap_or_else(|| panic!("no scripted reply for {french:?}"));
            output(text)
        }
    }

    fn output(text: &str) -> Output {
        Output {
            text: text.to_string(),
            stop: StopReason::EndToken,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            generated_tokens: 0,
            tokenize_time: Duration::ZERO,
            prompt_time: Duration::ZERO,
            generation_time: Duration::ZERO,
            messages: Vec::new(),
            max_new_tokens: 0,
        }
    }

    impl Translator for Scripted {
        fn model_id(&self) -> &str {
            "scripted"
        }
        fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
            Ok(text.split_whitespace().count())
        }
        fn max_chunk_tokens(&self) -> usize {
            1000
        }
        fn context_tokens(&self) -> usize {
            self.context_budget
        }
        fn translate(
            &mut self,
            french: &str,
            _: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
        ) -> Result<Output, EngineError> {
            Ok(self.reply(french))
        }
        fn translate_guided(
            &mut self,
            _: &str,
            guidance: &Guidance,
            _: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
        ) -> Result<Option<Output>, EngineError> {
            self.seen_hints.push(guidance.hints.clone());
            self.seen_context
                .push(guidance.context.iter().map(|e| e.french.clone()).collect());
            Ok(self.hinted.map(|text| {
                self.calls += 1;
                output(text)
            }))
        }
    }

    const TWO_SENTENCES: &str =
        "Le maire de Lyon a parlé hier soir devant le conseil. « Je leur ai \
         dit que je n'étais pas prêt », a-t-il affirmé lors d'une entrevue avec La Presse \
         Canadienne.";

    fn translate(translator: &mut Scripted, french: &str, glossary: &Glossary) -> Translation {
        translate_article(
            translator,
            &Article::parse(french),
            glossary,
            &mut |_| {},
            &mut Vec::new(),
        )
        .unwrap()
    }

    #[test]
    fn a_dropped_sentence_is_translated_again_one_sentence_at_a_time() {
        let mut translator = Scripted {
            replies: vec![
                (
                    "Le maire de Lyon a parlé hier soir devant le conseil. «",
                    "The mayor of Lyon spoke. He was not ready.",
                ),
                (
                    "Le maire",
                    "The mayor of Lyon spoke last night before the council.",
                ),
                (
                    "« Je",
                    "\"I told them I was not ready,\" he said in an interview with The Canadian \
                     Press.",
                ),
            ],
            hinted: None,
            seen_hints: Vec::new(),
            calls: 0,
            context_budget: 0,
            seen_context: Vec::new(),
        };
        let translation = translate(&mut translator, TWO_SENTENCES, &Glossary::default());
        let paragraph = &translation.paragraphs[0];
        assert!(
            paragraph.text.contains("Canadian Press"),
            "{}",
            paragraph.text
        );
        assert_eq!(paragraph.repairs.len(), 1, "{:#?}", paragraph.repairs);
        let repair = &paragraph.repairs[0];
        assert_eq!(repair.method, RepairMethod::SentenceBySentence);
        assert!(repair.kept && repair.findings.iter().any(|f| f.contains("omission")));
        assert_eq!(translator.calls, 3);
    }

    #[test]
    fn a_repair_that_is_no_better_is_dropped_and_the_attempts_are_bounded() {
        // Every request, hinted or not, drops the second sentence: nothing gets better, and the
        // first translation stays.
        let mut translator = Scripted {
            replies: vec![
                (
                    "Le maire de Lyon a parlé hier soir devant le conseil. «",
                    "The mayor spoke.",
                ),
                ("Le maire", "The mayor spoke."),
                ("« Je", "He said."),
            ],
            hinted: Some("The mayor."),
            seen_hints: Vec::new(),
            calls: 0,
            context_budget: 0,
            seen_context: Vec::new(),
        };
        let translation = translate(&mut translator, TWO_SENTENCES, &Glossary::default());
        let paragraph = &translation.paragraphs[0];
        assert_eq!(paragraph.text, "The mayor spoke.");
        assert!(paragraph.repairs.iter().all(|r| !r.kept));
        assert!(paragraph.repairs.len() <= REPAIR_ATTEMPTS);
        assert!(
            translator.calls <= 1 + 2 + 1,
            "{} requests",
            translator.calls
        );
    }

    #[test]
    fn glossary_terms_go_with_the_first_request_and_an_unused_one_is_repaired() {
        let glossary = Glossary::parse("rage\trabies\n").unwrap();
        let french = "Un cas de rage a été détecté chez un chiot.";
        let mut translator = Scripted {
            replies: vec![],
            hinted: Some("A case of rage was found in a puppy."),
            seen_hints: Vec::new(),
            calls: 0,
            context_budget: 0,
            seen_context: Vec::new(),
        };
        let translation = translate(&mut translator, french, &glossary);
        // Asked with the hint, then again in repair, never better: the first text stays, and
        // the finding remains for the report.
        assert_eq!(
            translator.seen_hints[0],
            ["translate « rage » as \"rabies\""]
        );
        let paragraph = &translation.paragraphs[0];
        assert!(paragraph.repairs.iter().all(|r| !r.kept));
        assert_eq!(translator.seen_hints.len(), 2);
        let findings = paragraph_findings(&paragraph.source, &paragraph.text, 0, &glossary);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, fidelity::Kind::Glossary);
    }

    #[test]
    fn each_request_shows_the_paragraphs_before_it_and_the_window_starts_again_when_full() {
        let mut translator = Scripted {
            replies: vec![
                ("Le maire", "The mayor of Lyon spoke last night."),
                ("Il a", "He announced three new schools."),
                ("Le chantier", "The work will cost 12 million."),
                ("Les travaux", "Work starts in May."),
            ],
            hinted: None,
            seen_hints: Vec::new(),
            calls: 0,
            // The first two paragraphs (15 and 10 words, French and English) fit; the third
            // does not.
            context_budget: 30,
            seen_context: Vec::new(),
        };
        let french = "Le maire de Lyon a parlé hier soir.\n\nIl a annoncé trois écoles.\n\n\
                      Le chantier coûtera 12 millions.\n\nLes travaux commencent en mai.";
        let translation = translate(&mut translator, french, &Glossary::default());
        assert_eq!(translation.paragraphs.len(), 4);
        // The first request has nothing before it and goes unguided.
        assert_eq!(
            translator.seen_context,
            [
                vec!["Le maire de Lyon a parlé hier soir."],
                vec![
                    "Le maire de Lyon a parlé hier soir.",
                    "Il a annoncé trois écoles."
                ],
                vec!["Le chantier coûtera 12 millions."],
            ]
        );
        // Marian takes no context: nothing is kept for it.
        translator.context_budget = 0;
        translator.seen_context.clear();
        translate(&mut translator, french, &Glossary::default());
        assert!(translator.seen_context.is_empty());
    }
}
