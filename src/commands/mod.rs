//! One module per command; each turns validated settings into calls on the library.

mod article;
mod batch;
mod models;

use precis::{
    failure::FailureKind,
    load::{Catalog, Store, StoreConfig},
    pipeline::Job,
};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::settings::ArticleSettings;

/// A failure found by a command itself (not by a library call), with its exit-code kind.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommandFailure {
    pub kind: FailureKind,
    pub message: String,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let context = Context::new(&cli.global)?;
    match cli.command {
        Command::Run(args) => article::run(&context, ArticleSettings::new(Job::Run, args)?),
        Command::Translate(args) => {
            article::run(&context, ArticleSettings::new(Job::Translate, args)?)
        }
        Command::Summarize(args) => {
            article::run(&context, ArticleSettings::new(Job::Summarize, args)?)
        }
        Command::Batch(args) => batch::run(&context, args),
        Command::Models(command) => models::run(&context, command),
    }
}

/// What every command needs: the catalog and the store, configured from flags and environment.
pub struct Context {
    pub catalog: Catalog,
    pub store: Store,
    pub quiet: bool,
}

impl Context {
    fn new(global: &GlobalArgs) -> anyhow::Result<Self> {
        let catalog = match &global.catalog {
            Some(dir) => Catalog::with_extra_dir(dir)?,
            None => Catalog::builtin()?,
        };
        let mut config = StoreConfig::from_env();
        config.offline |= global.offline;
        config.show_progress = !global.quiet;
        Ok(Context {
            catalog,
            store: Store::new(config),
            quiet: global.quiet,
        })
    }
}
