//! `precis models ...`: the model store from the command line.

use precis::{
    failure::FailureKind,
    load::{store::CheckStatus, FileCheck, ModelSpec},
};
use serde::Serialize;

use super::{CommandFailure, Context};
use crate::cli::{Format, ModelsCommand};

pub fn run(context: &Context, command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { format } => list(context, format),
        ModelsCommand::Fetch { ids, force } => fetch(context, &ids, force),
        ModelsCommand::Import { id, path, file } => {
            let spec = context.catalog.get(&id)?;
            let installed = context.store.import(spec, file.as_deref(), &path)?;
            println!("{}", installed.display());
            Ok(())
        }
        ModelsCommand::Verify { id, format } => verify(context, id.as_deref(), format),
        ModelsCommand::Path { id } => {
            let spec = context.catalog.get(&id)?;
            let files = context.store.locate(spec)?;
            for (_, path) in files.iter() {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ListedModel<'a> {
    id: &'a str,
    role: String,
    architecture: &'a precis::load::catalog::Architecture,
    licence: &'a str,
    hub_repo: &'a str,
    revision: &'a str,
    size: u64,
    cached: bool,
    pip_mirror: bool,
    default: bool,
    description: &'a str,
}

fn list(context: &Context, format: Format) -> anyhow::Result<()> {
    let models: Vec<ListedModel> = context
        .catalog
        .models()
        .iter()
        .map(|spec| ListedModel {
            id: &spec.id,
            role: spec.role.to_string(),
            architecture: &spec.architecture,
            licence: &spec.licence,
            hub_repo: &spec.hub.repo,
            revision: &spec.hub.revision,
            size: spec.known_size(),
            cached: context.store.missing(spec).is_empty(),
            pip_mirror: spec.has_mirror(),
            default: spec.default,
            description: &spec.description,
        })
        .collect();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    println!(
        "{:<30} {:<10} {:>9}  {:<7} {:<11} SOURCE",
        "MODEL", "ROLE", "SIZE", "CACHED", "LICENCE"
    );
    for m in &models {
        let size = if m.size == 0 {
            "?".to_string()
        } else {
            human_size(m.size)
        };
        let source = if m.pip_mirror {
            format!("{} (hub), pip mirror", m.hub_repo)
        } else {
            format!("{} (hub)", m.hub_repo)
        };
        let id = if m.default {
            format!("{} *", m.id)
        } else {
            m.id.to_string()
        };
        println!(
            "{:<30} {:<10} {:>9}  {:<7} {:<11} {}",
            id,
            m.role,
            size,
            if m.cached { "yes" } else { "no" },
            m.licence,
            source
        );
    }
    println!("\n* fetched by `precis models fetch` without arguments");
    println!("cache: {}", context.store.cache().root().display());
    Ok(())
}

fn fetch(context: &Context, ids: &[String], force: bool) -> anyhow::Result<()> {
    let specs: Vec<&ModelSpec> = if ids.is_empty() {
        context.catalog.defaults().collect()
    } else {
        ids.iter()
            .map(|id| context.catalog.get(id))
            .collect::<Result<_, _>>()?
    };
    let several = specs.len() > 1;
    let mut failures = Vec::new();
    for spec in &specs {
        match context.store.fetch(spec, force) {
            Ok(files) => {
                if !context.quiet {
                    eprintln!("precis: {} is ready", spec.id);
                }
                for (_, path) in files.iter() {
                    println!("{}", path.display());
                }
            }
            Err(error) if several => {
                eprintln!("precis: error: {error}");
                failures.push(error);
            }
            Err(error) => return Err(error.into()),
        }
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(CommandFailure {
            kind: first.kind(),
            message: format!(
                "{} of {} models could not be fetched (see above)",
                failures.len(),
                specs.len()
            ),
        }
        .into()),
    }
}

fn verify(context: &Context, id: Option<&str>, format: Format) -> anyhow::Result<()> {
    let specs: Vec<&ModelSpec> = match id {
        Some(id) => vec![context.catalog.get(id)?],
        // Every model with at least one file cached.
        None => context
            .catalog
            .models()
            .iter()
            .filter(|spec| context.store.missing(spec).len() < spec.files.len())
            .collect(),
    };
    let checks: Vec<FileCheck> = specs
        .iter()
        .flat_map(|spec| context.store.verify(spec))
        .collect();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for check in &checks {
            let status = match check.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Unchecked => "present (no checksum known)",
                CheckStatus::Missing => "missing",
                CheckStatus::Corrupt => "CORRUPT",
            };
            println!("{:<30} {:<45} {status}", check.model, check.file);
            if let Some(problem) = &check.problem {
                println!("    {problem}");
            }
        }
        if checks.is_empty() {
            println!(
                "no model is cached in {}",
                context.store.cache().root().display()
            );
        }
    }
    let corrupt = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Corrupt)
        .count();
    let missing = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Missing)
        .count();
    if corrupt > 0 {
        return Err(CommandFailure {
            kind: FailureKind::ModelCorrupt,
            message: format!(
                "{corrupt} damaged file(s) moved aside; run `precis models fetch --force <id>`"
            ),
        }
        .into());
    }
    if missing > 0 {
        return Err(CommandFailure {
            kind: FailureKind::ModelMissing,
            message: format!("{missing} file(s) missing; run `precis models fetch <id>`"),
        }
        .into());
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
