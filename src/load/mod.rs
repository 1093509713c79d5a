//! Stage 1, load: which models exist (the catalog), where their files live (the Hugging Face
//! cache), how they get there (the hub, or a pip mirror where the hub is blocked), and whether
//! they are intact.

pub mod cache;
pub mod catalog;
mod digest;
mod hub;
mod mirror;
mod progress;
pub mod store;

use std::path::PathBuf;

pub use catalog::{Catalog, ModelSpec, Role};
pub use store::{FileCheck, ModelFiles, Store, StoreConfig};

use crate::failure::FailureKind;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("unknown model {id:?}; known models: {}", known.join(", "))]
    UnknownModel { id: String, known: Vec<String> },

    #[error("cannot use the catalog folder {} (--catalog, PRECIS_CATALOG): {problem}", path.display())]
    CatalogFolder { path: PathBuf, problem: String },

    #[error("catalog entry {entry}: {message}")]
    Catalog { entry: String, message: String },

    #[error("model {id} is not in the cache ({}) and precis is offline; on a machine with network, run: {fetch_command}", missing.join(", "))]
    NotCached {
        id: String,
        missing: Vec<String>,
        fetch_command: String,
    },

    #[error("{file} of model {id} is damaged: {problem}; it was moved aside to {moved_to}. Run `precis models fetch --force {id}` to get it again")]
    Corrupt {
        id: String,
        file: String,
        problem: String,
        moved_to: PathBuf,
    },

    #[error("{} is not {file} of model {id}: {problem}; nothing was imported", path.display())]
    ImportMismatch {
        id: String,
        file: String,
        path: PathBuf,
        problem: String,
    },

    #[error("cannot fetch model {id}: {reason}")]
    Unreachable { id: String, reason: String },

    #[error("the hub refused {file} of model {id}: {message}")]
    HubRefused {
        id: String,
        file: String,
        message: String,
    },

    #[error("the pip mirror failed for model {id}: {message}")]
    Mirror { id: String, message: String },

    #[error("cannot use the model cache {} (set by {set_by}): {problem}; point HF_HOME (or HF_HUB_CACHE) at a folder precis can write", path.display())]
    CacheUnusable {
        path: PathBuf,
        set_by: &'static str,
        problem: String,
    },

    #[error("cannot import {}: {problem}", path.display())]
    ImportSource { path: PathBuf, problem: String },

    #[error("cannot write to the cache {}: {source}; free some space (or raise the file-size limit) and run the same command again", path.display())]
    CacheFull {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LoadError {
    pub fn kind(&self) -> FailureKind {
        match self {
            LoadError::UnknownModel { .. } | LoadError::NotCached { .. } => {
                FailureKind::ModelMissing
            }
            LoadError::Corrupt { .. } | LoadError::ImportMismatch { .. } => {
                FailureKind::ModelCorrupt
            }
            LoadError::Unreachable { .. }
            | LoadError::HubRefused { .. }
            | LoadError::Mirror { .. } => FailureKind::Network,
            LoadError::CatalogFolder { .. } => FailureKind::Usage,
            LoadError::ImportSource { .. } => FailureKind::Input,
            LoadError::Catalog { .. }
            | LoadError::CacheUnusable { .. }
            | LoadError::CacheFull { .. }
            | LoadError::Io { .. } => FailureKind::Other,
        }
    }
}
