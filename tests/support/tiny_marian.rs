//! The tiny random Marian model (tests/fixtures/marian/tiny) as the fake hub serves it, and
//! catalog entries that name it: the fastest real translation engine for CLI tests.

use std::path::{Path, PathBuf};

use precis::engines::marian::MARIAN_FILES;
use serde_json::Value;
use tempfile::TempDir;

use super::fake_hub::FakeHub;
use super::precis::{Precis, Run};

pub const ID: &str = "tiny-marian";
pub const REPO: &str = "test/tiny-marian";
/// A pull-request revision, as opus-mt-fr-en's safetensors weights have.
pub const REVISION: &str = "refs/pr/4";
pub const COMMIT: &str = "4444444444444444444444444444444444444444";
/// A generator model that no hub has, so that a fallback to the LLM fails fast instead of
/// fetching gigabytes.
pub const NO_LLM: &str = "absent-llm";

/// The flags that make precis translate with the tiny Marian model, greedy (one beam).
pub const GREEDY_TINY_MARIAN: [&str; 6] = [
    "--translator",
    "marian",
    "--translation-model",
    ID,
    "--beams",
    "1",
];

/// `precis translate` of `input` with the tiny Marian model, greedy (one beam), then `extra`.
pub fn greedy_translate_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["translate"];
    args.extend(GREEDY_TINY_MARIAN);
    args.push(input);
    args.extend_from_slice(extra);
    args
}

pub fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/marian/tiny")
}

/// The repository's files, read from the fixture folder.
pub fn repo_files() -> Vec<(String, Vec<u8>)> {
    MARIAN_FILES
        .iter()
        .chain(&["tokenizer_config.json"])
        .map(|name| {
            (
                name.to_string(),
                std::fs::read(tiny_dir().join(name)).unwrap(),
            )
        })
        .collect()
}

/// Writes the catalog entries of the tiny Marian model and of [`NO_LLM`] into `dir`.
pub fn write_catalog(dir: &Path) {
    let mut marian = format!(
        "id = \"{ID}\"\nrole = \"translate\"\narchitecture = \"marian\"\nformat = \"safetensors\"\n\
         licence = \"apache-2.0\"\ncontext_length = 512\ndescription = \"tiny random Marian\"\n\n\
         [hub]\nrepo = \"{REPO}\"\nrevision = \"{REVISION}\"\n"
    );
    for (name, _) in repo_files() {
        marian.push_str(&format!("\n[[files]]\nname = \"{name}\"\n"));
    }
    std::fs::write(dir.join(format!("{ID}.toml")), marian).unwrap();
    let llm = format!(
        "id = \"{NO_LLM}\"\nrole = \"generate\"\narchitecture = \"qwen2\"\nformat = \"gguf\"\n\
         licence = \"mit\"\nprompt_format = \"chatml\"\ncontext_length = 4096\n\
         description = \"a generator no hub has\"\n\n[hub]\nrepo = \"test/absent-llm\"\n\
         revision = \"main\"\n\n[[files]]\nname = \"model.gguf\"\n"
    );
    std::fs::write(dir.join(format!("{NO_LLM}.toml")), llm).unwrap();
}

/// A two-paragraph French article, short enough for any test.
pub const ARTICLE: &str =
    "Le sommet a eu lieu en Alaska. Les deux présidents ont parlé pendant trois heures.\n\n\
Moscou a salué une réunion constructive ; Kiev n'était pas invitée.\n";

/// French words for generated articles.
pub const WORDS: [&str; 16] = [
    "sommet",
    "présidents",
    "Alaska",
    "trois",
    "heures",
    "Moscou",
    "réunion",
    "Kiev",
    "guerre",
    "sanctions",
    "accord",
    "fin",
    "Washington",
    "discussions",
    "délégation",
    "journalistes",
];

/// The fake hub serving the tiny Marian model, a catalog naming it, and a folder for inputs,
/// outputs and the cache (`$HF_HOME` is its `hf/`).
pub struct Fixture {
    pub hub: FakeHub,
    pub precis: Precis,
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::serving(true)
    }

    /// A fixture whose hub serves the model, or (`false`) has nothing.
    pub fn serving(model: bool) -> Fixture {
        let hub = FakeHub::start();
        if model {
            hub.add_repo(REPO, REVISION, COMMIT, repo_files());
        }
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog");
        std::fs::create_dir(&catalog).unwrap();
        write_catalog(&catalog);
        let precis = Precis::new(&dir.path().join("hf"), &catalog, &hub.endpoint());
        Fixture { hub, precis, dir }
    }

    /// Writes an input file in the fixture's folder.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `precis translate` with the tiny Marian model, greedy, then `extra`.
    pub fn translate(&self, input: &Path, extra: &[&str]) -> Run {
        self.precis
            .run(&greedy_translate_args(input.to_str().unwrap(), extra))
    }

    /// The translated paragraphs of a `--format json` run.
    pub fn paragraphs(&self, input: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        let run = self.translate(input, &args);
        run.expect_code(0);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        report["translation"]["paragraphs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    }
}
