//! The model catalog: one TOML entry per supported model in `models/`, embedded at build time.
//!
//! Extra entries can be read from a folder at run time (`--catalog DIR`), which is how users add
//! models of their own and how tests describe small fixture models.

use std::{collections::BTreeSet, fmt, path::Path};

use serde::{Deserialize, Serialize};

use super::LoadError;
use crate::files;

/// The entries compiled into the binary: `(file name, TOML text)`.
const BUILTIN_ENTRIES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalog_entries.rs"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Translate,
    Generate,
    Embed,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Translate => "translate",
            Role::Generate => "generate",
            Role::Embed => "embed",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Qwen2,
    Marian,
    Bert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    Gguf,
    Safetensors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    Chatml,
}

/// Where a model lives on the Hugging Face hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubLocation {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or `refs/pr/N`, as the hub names revisions.
    pub revision: String,
    /// The commit the revision pointed at when the entry was written, if known. A mirror import
    /// files its snapshot under this commit so that hub and mirror fill the same snapshot.
    #[serde(default)]
    pub commit: Option<String>,
}

/// One part of a file as carried by a Python package: `member` inside the wheel of
/// `package==version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPart {
    pub package: String,
    pub version: String,
    pub member: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path of the file inside the hub repository.
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Parts that, concatenated in order, give the file; empty when no mirror carries it.
    #[serde(default)]
    pub mirror: Vec<MirrorPart>,
}

/// A catalog entry: everything precis knows about a model before it has any of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub id: String,
    pub role: Role,
    pub architecture: Architecture,
    pub format: WeightFormat,
    pub licence: String,
    #[serde(default)]
    pub prompt_format: Option<PromptFormat>,
    /// Tokens the model can attend to at once.
    pub context_length: usize,
    /// Fetched by `precis models fetch` when no id is given.
    #[serde(default)]
    pub default: bool,
    pub description: String,
    pub hub: HubLocation,
    pub files: Vec<FileSpec>,
}

impl ModelSpec {
    pub fn file(&self, name: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Total size of the files whose size the catalog records.
    pub fn known_size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    pub fn has_mirror(&self) -> bool {
        self.files.iter().all(|f| !f.mirror.is_empty())
    }

    /// The first file with the given extension: the weights of a GGUF model, for instance.
    pub fn file_with_extension(&self, extension: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| {
            Path::new(&f.name)
                .extension()
                .is_some_and(|e| e == extension)
        })
    }

    fn validate(&self, source: &str) -> Result<(), String> {
        if self.id.is_empty() || self.id.contains(char::is_whitespace) {
            return Err(format!("invalid model id {:?}", self.id));
        }
        if !self.hub.repo.contains('/') {
            return Err(format!(
                "hub repo {:?} is not of the form org/name",
                self.hub.repo
            ));
        }
        if let Some(commit) = &self.hub.commit {
            if !is_hex(commit, 40) {
                return Err(format!("hub commit {commit:?} is not 40 hex digits"));
            }
        }
        if self.files.is_empty() {
            return Err("the entry lists no files".into());
        }
        let mut names = BTreeSet::new();
        for file in &self.files {
            if !names.insert(&file.name) {
                return Err(format!("file {:?} is listed twice", file.name));
            }
            if file.name.starts_with('/') || file.name.split('/').any(|c| c == ".." || c.is_empty())
            {
                return Err(format!("file name {:?} is not a relative path", file.name));
            }
            let checksums = file
                .sha256
                .iter()
                .chain(file.mirror.iter().filter_map(|p| p.sha256.as_ref()));
            for sha in checksums {
                if !is_hex(sha, 64) {
                    return Err(format!(
                        "sha256 {sha:?} of {:?} is not 64 hex digits",
                        file.name
                    ));
                }
            }
            let part_sizes: Option<u64> = file.mirror.iter().map(|p| p.size).sum();
            if let (Some(total), Some(parts), false) =
                (file.size, part_sizes, file.mirror.is_empty())
            {
                if total != parts {
                    return Err(format!(
                        "mirror parts of {:?} add up to {parts} bytes, the file has {total}",
                        file.name
                    ));
                }
            }
        }
        let expected_name = format!("{}.toml", self.id);
        if source != expected_name {
            return Err(format!(
                "entry {:?} must be in a file named {expected_name}",
                self.id
            ));
        }
        Ok(())
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelSpec>,
}

impl Catalog {
    /// The entries shipped with precis.
    pub fn builtin() -> Result<Self, LoadError> {
        let mut catalog = Catalog { models: Vec::new() };
        for (name, text) in BUILTIN_ENTRIES {
            catalog.add_entry(name, text)?;
        }
        Ok(catalog)
    }

    /// The builtin entries plus every `*.toml` in `dir`; an entry there replaces a builtin one of
    /// the same id.
    pub fn with_extra_dir(dir: &Path) -> Result<Self, LoadError> {
        let mut catalog = Self::builtin()?;
        let unusable = |problem: String| LoadError::CatalogFolder {
            path: dir.to_path_buf(),
            problem,
        };
        let because =
            |e: std::io::Error| files::unreachable_because(dir, &e).unwrap_or(e.to_string());
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                return Err(unusable(format!(
                    "it is {}, not a folder",
                    files::describe(&meta)
                )))
            }
            Err(e) => return Err(unusable(because(e))),
        }
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| unusable(because(e)))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let entry_problem =
                |problem: String| unusable(format!("its entry {name} cannot be read: {problem}"));
            // Only files: reading a FIFO would wait for a writer, a device might never end.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {}
                Ok(meta) => return Err(entry_problem(format!("it is {}", files::describe(&meta)))),
                Err(e) => {
                    let problem = files::unreachable_because(&path, &e).unwrap_or(e.to_string());
                    return Err(entry_problem(problem));
                }
            }
            let text = std::fs::read_to_string(&path).map_err(|e| entry_problem(e.to_string()))?;
            catalog.add_entry(&name, &text)?;
        }
        Ok(catalog)
    }

    fn add_entry(&mut self, source: &str, text: &str) -> Result<(), LoadError> {
        let invalid = |message: String| LoadError::Catalog {
            entry: source.to_string(),
            message,
        };
        let spec: ModelSpec = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        spec.validate(source).map_err(invalid)?;
        self.models.retain(|m| m.id != spec.id);
        self.models.push(spec);
        self.models.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Result<&ModelSpec, LoadError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| LoadError::UnknownModel {
                id: id.to_string(),
                known: self.models.iter().map(|m| m.id.clone()).collect(),
            })
    }

    /// The models the default pipeline uses.
    pub fn defaults(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(|m| m.default)
    }

    /// The default model for a role.
    pub fn default_for(&self, role: Role) -> Option<&ModelSpec> {
        self.defaults().find(|m| m.role == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_has_the_required_models() {
        let catalog = Catalog::builtin().unwrap();
        for id in [
            "opus-mt-fr-en",
            "opus-mt-tc-big-fr-en",
            "qwen2.5-coder-1.5b-instruct",
            "qwen2.5-coder-0.5b-instruct",
            "qwen2.5-1.5b-instruct",
            "all-minilm-l6-v2",
        ] {
            catalog.get(id).unwrap();
        }
        assert_eq!(
            catalog.default_for(Role::Generate).unwrap().id,
            "qwen2.5-coder-1.5b-instruct"
        );
        let mirrored = catalog.get("qwen2.5-coder-1.5b-instruct").unwrap();
        assert_eq!(mirrored.files[0].mirror.len(), 22);
        assert!(mirrored.has_mirror());
        assert!(!catalog.get("opus-mt-fr-en").unwrap().has_mirror());
    }

    #[test]
    fn unknown_id_lists_the_known_ones() {
        let catalog = Catalog::builtin().unwrap();
        match catalog.get("gpt-5") {
            Err(LoadError::UnknownModel { known, .. }) => {
                assert!(known.contains(&"opus-mt-fr-en".to_string()))
            }
            other => panic!("expected UnknownModel, got {other:?}"),
        }
    }

    #[test]
    fn mirror_parts_must_add_up_to_the_file_size() {
        let entry = r#"
            id = "bad"
            role = "embed"
            architecture = "bert"
            format = "safetensors"
            licence = "mit"
            context_length = 8
            description = "parts that do not add up"
            [hub]
            repo = "org/bad"
            revision = "main"
            [[files]]
            name = "model.safetensors"
            size = 10
            mirror = [{ package = "p", version = "1", member = "m", size = 4 }]
        "#;
        let mut catalog = Catalog { models: vec![] };
        let err = catalog.add_entry("bad.toml", entry).unwrap_err();
        assert!(err.to_string().contains("add up to 4 bytes"), "{err}");
    }
}
