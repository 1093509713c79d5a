//! `--translator marian|llm|auto`: which engine translates, and the one-line notice that says
//! why when precis chooses.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use candle_core::Device;
use precis::{
    engines::{marian::MARIAN_FILES, MarianEngine},
    failure::FailureKind,
    load::{catalog::Architecture, LoadError, Role},
};

use super::{cannot_load, CommandFailure, Context};
use crate::cli::{ArticleArgs, TranslatorChoice};

/// The engine chosen for the translation.
pub enum Chosen {
    Marian {
        engine: Box<MarianEngine>,
        id: String,
    },
    Llm,
}

/// Resolves `--translator`. `auto` takes Marian when its files are cached, or can be fetched
/// now (one hub attempt: a failure costs one request, not a retry loop), else the LLM.
pub fn choose(context: &Context, args: &ArticleArgs) -> anyhow::Result<Chosen> {
    match args.translator {
        TranslatorChoice::Llm => Ok(Chosen::Llm),
        TranslatorChoice::Marian => {
            let engine = load_marian(context, &args.translation_model)?;
            notice(
                context,
                &format!(
                    "translating with {} (Marian, {})",
                    args.translation_model,
                    beams_text(&engine, args)
                ),
            );
            Ok(Chosen::Marian {
                engine: Box::new(engine),
                id: args.translation_model.clone(),
            })
        }
        TranslatorChoice::Auto => auto(context, args),
    }
}

fn beams_text(engine: &MarianEngine, args: &ArticleArgs) -> String {
    match args
        .beams
        .map(|b| b.get())
        .unwrap_or(engine.search_config().num_beams)
    {
        1 => "greedy".to_string(),
        n => format!("{n} beams"),
    }
}

fn auto(context: &Context, args: &ArticleArgs) -> anyhow::Result<Chosen> {
    let id = &args.translation_model;
    let spec = context.catalog.get(id)?;
    let llm = llm_name(context, args);
    let cached = context.store.missing(spec).is_empty();
    let fall_back = |why: String| {
        notice(
            context,
            &format!("translating with the LLM {llm}: {why} (--translator marian|llm chooses)"),
        );
        Ok(Chosen::Llm)
    };
    if !cached && context.store.is_offline() {
        return fall_back(format!(
            "{id} is not cached and precis is offline (`precis models fetch {id}` gets it)"
        ));
    }
    let how = if cached { "cached" } else { "fetched" };
    match load_marian(context, id) {
        Ok(engine) => {
            notice(
                context,
                &format!(
                    "translating with {id} (Marian, {}; {how})",
                    beams_text(&engine, args)
                ),
            );
            Ok(Chosen::Marian {
                engine: Box::new(engine),
                id: id.clone(),
            })
        }
        Err(error) => {
            let message = format!("{error:#}");
            // The store's message repeats the model's name; the notice already says it.
            let prefix = format!("cannot fetch model {id}: ");
            let reason = first_sentence(message.strip_prefix(&prefix).unwrap_or(&message));
            if cached {
                fall_back(format!("{id} cannot be used: {reason}"))
            } else {
                fall_back(format!(
                    "{id} is not cached and cannot be fetched: {reason}"
                ))
            }
        }
    }
}

/// The LLM `--model` names, or the catalog's default generator.
fn llm_name(context: &Context, args: &ArticleArgs) -> String {
    args.model.clone().unwrap_or_else(|| {
        context
            .catalog
            .default_for(Role::Generate)
            .map(|s| s.id.clone())
            .unwrap_or_else(|| "(none)".into())
    })
}

/// Store errors explain what to do at length; a notice needs the first sentence.
fn first_sentence(text: &str) -> &str {
    let end = text.find(". ").map(|i| i + 1).unwrap_or(text.len());
    &text[..end]
}

fn notice(context: &Context, message: &str) {
    if !context.quiet {
        eprintln!("precis: {message}");
    }
}

/// Fetches (unless cached or offline) and loads a Marian model of the catalog.
pub fn load_marian(context: &Context, id: &str) -> anyhow::Result<MarianEngine> {
    let spec = context.catalog.get(id)?;
    if spec.architecture != Architecture::Marian {
        return Err(CommandFailure {
            kind: FailureKind::ModelMissing,
            message: format!(
                "{id} is a {} model, not a Marian translation model such as opus-mt-fr-en",
                spec.role
            ),
        }
        .into());
    }
    let files = context.store.ensure(spec)?;
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    for name in MARIAN_FILES {
        let path = files.path(name).ok_or_else(|| LoadError::Catalog {
            entry: format!("{id}.toml"),
            message: format!("a Marian model needs {name}, which the entry does not list"),
        })?;
        paths.insert(name.to_string(), path.to_path_buf());
    }
    MarianEngine::load(&paths, &Device::Cpu).with_context(|| cannot_load(id))
}
