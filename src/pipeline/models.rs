//! The models of an article job: which engine translates (`--translator marian|llm|auto`, with
//! the one-line notice that says why when precis chooses), and the generator and embedder,
//! each resolved through the catalog and the store (fetched on first use unless offline).

use candle_core::Device;

use super::{PipelineError, Progress};
use crate::{
    engines::{self, Embedder, LlmEngine, MarianEngine},
    failure,
    infer::marian::Precision,
    load::{
        catalog::{Architecture, WeightFormat},
        Catalog, ModelSpec, Role, Store,
    },
};

/// Where models come from: the catalog names them, the store finds their files.
#[derive(Clone, Copy)]
pub struct ModelSource<'a> {
    pub catalog: &'a Catalog,
    pub store: &'a Store,
}

/// Which engine translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslatorChoice {
    /// Marian when its model is cached or can be fetched now, else the LLM.
    Auto,
    Marian,
    Llm,
}

/// The engine chosen for the translation.
pub enum Chosen {
    Marian {
        engine: Box<MarianEngine>,
        id: String,
    },
    Llm,
}

impl ModelSource<'_> {
    /// Resolves the translator choice. `Auto` takes Marian when its files are cached, or can
    /// be fetched now (one hub attempt: a failure costs one request, not a retry loop), else
    /// the LLM. `beams` is the width asked for, for the notice; `precision`, Marian's.
    pub fn choose_translator(
        &self,
        choice: TranslatorChoice,
        marian_id: &str,
        llm_id: Option<&str>,
        beams: Option<usize>,
        precision: Precision,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Chosen, PipelineError> {
        let beams_text = |engine: &MarianEngine| {
            let search = match beams.unwrap_or(engine.search_config().num_beams) {
                1 => "greedy".to_string(),
                n => format!("{n} beams"),
            };
            match precision {
                Precision::F32 => search,
                Precision::Int8 => format!("{search}, int8"),
            }
        };
        let mut notice = |message: String| progress(Progress::Notice(message));
        match choice {
            TranslatorChoice::Llm => Ok(Chosen::Llm),
            TranslatorChoice::Marian => {
                let engine = self.load_marian(marian_id, precision)?;
                notice(format!(
                    "translating with {marian_id} (Marian, {})",
                    beams_text(&engine)
                ));
                Ok(Chosen::Marian {
                    engine: Box::new(engine),
                    id: marian_id.to_string(),
                })
            }
            TranslatorChoice::Auto => {
                let spec = self.catalog.get(marian_id)?;
                let llm = self.llm_name(llm_id);
                let cached = self.store.missing(spec).is_empty();
                let mut fall_back = |why: String| {
                    notice(format!(
                        "translating with the LLM {llm}: {why} (--translator marian|llm chooses)"
                    ));
                    Ok(Chosen::Llm)
                };
                if !cached && self.store.is_offline() {
                    return fall_back(format!(
                        "{marian_id} is not cached and precis is offline (`precis models fetch \
                         {marian_id}` gets it)"
                    ));
                }
                match self.load_marian(marian_id, precision) {
                    Ok(engine) => {
                        let how = if cached { "cached" } else { "fetched" };
                        notice(format!(
                            "translating with {marian_id} (Marian, {}; {how})",
                            beams_text(&engine)
                        ));
                        Ok(Chosen::Marian {
                            engine: Box::new(engine),
                            id: marian_id.to_string(),
                        })
                    }
                    Err(error) => {
                        let message = failure::message(failure::chain(&error));
                        // The store's message repeats the model's name; the notice says it.
                        let prefix = format!("cannot fetch model {marian_id}: ");
                        let reason =
                            first_sentence(message.strip_prefix(&prefix).unwrap_or(&message));
                        if cached {
                            fall_back(format!("{marian_id} cannot be used: {reason}"))
                        } else {
                            fall_back(format!(
                                "{marian_id} is not cached and cannot be fetched: {reason}"
                            ))
                        }
                    }
                }
            }
        }
    }

    /// The LLM `llm_id` names, or the catalog's default generator.
    fn llm_name(&self, llm_id: Option<&str>) -> String {
        llm_id.map(str::to_string).unwrap_or_else(|| {
            self.catalog
                .default_for(Role::Generate)
                .map(|s| s.id.clone())
                .unwrap_or_else(|| "(none)".into())
        })
    }

    /// A Marian model of the catalog, fetched unless cached or offline.
    pub fn load_marian(
        &self,
        id: &str,
        precision: Precision,
    ) -> Result<MarianEngine, PipelineError> {
        let spec = self.catalog.get(id)?;
        if spec.architecture != Architecture::Marian {
            return Err(PipelineError::WrongModel(format!(
                "{id} is a {} model, not a Marian translation model such as opus-mt-fr-en",
                spec.role
            )));
        }
        let files = self.store.ensure(spec)?;
        MarianEngine::load(&files, &Device::Cpu, precision)
            .map_err(|source| cannot_load(spec, source))
    }

    /// The generator `id` names, else the catalog's default; fetched on first use.
    pub fn load_generator(
        &self,
        id: Option<&str>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(LlmEngine, String), PipelineError> {
        let spec = match id {
            Some(id) => self.catalog.get(id)?,
            None => self.catalog.default_for(Role::Generate).ok_or_else(|| {
                PipelineError::WrongModel(
                    "the catalog names no default generator model; pass --model".into(),
                )
            })?,
        };
        if spec.role != Role::Generate || spec.format != WeightFormat::Gguf {
            return Err(PipelineError::WrongModel(format!(
                "{} is a {} model; translation and summaries need a GGUF generator such as \
                 qwen2.5-coder-1.5b-instruct",
                spec.id, spec.role
            )));
        }
        let files = self.store.ensure(spec)?;
        progress(Progress::Notice(format!(
            "loading {} ({} threads)",
            spec.id,
            engines::cpu_threads()
        )));
        let engine =
            LlmEngine::load(&files, &Device::Cpu).map_err(|source| cannot_load(spec, source))?;
        Ok((engine, spec.id.clone()))
    }

    /// The default sentence-embedding model, or `None` (with a warning saying why and what to
    /// do) when it cannot be had: the summary then ranks and checks sentences with TF-IDF.
    pub fn load_embedder(&self, warnings: &mut Vec<String>) -> Option<(Embedder, String)> {
        let spec = self.catalog.default_for(Role::Embed)?;
        let loaded = self
            .store
            .ensure(spec)
            .map_err(PipelineError::from)
            .and_then(|files| {
                Embedder::load(&files, spec.context_length, &Device::Cpu).map_err(|source| {
                    PipelineError::CannotLoad {
                        id: spec.id.clone(),
                        kind: source.kind(),
                        source: Box::new(source),
                    }
                })
            });
        match loaded {
            Ok(embedder) => Some((embedder, spec.id.clone())),
            Err(e) => {
                warnings.push(format!(
                    "no sentence-embedding model ({}); key sentences and summary support use \
                     TF-IDF word overlap instead, which misses paraphrases. Run `precis models \
                     fetch {}`",
                    failure::message(failure::chain(&e)),
                    spec.id
                ));
                None
            }
        }
    }
}

fn cannot_load(spec: &ModelSpec, source: engines::EngineError) -> PipelineError {
    PipelineError::CannotLoad {
        id: spec.id.clone(),
        kind: source.kind(),
        source: Box::new(source),
    }
}

/// Store errors explain what to do at length; a notice needs the first sentence.
fn first_sentence(text: &str) -> &str {
    let end = text.find(". ").map(|i| i + 1).unwrap_or(text.len());
    &text[..end]
}
