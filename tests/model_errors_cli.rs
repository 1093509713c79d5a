//! Damaged or missing model files, through the real `precis` binary: each is an error that
//! names the file and the commands that fix it, with the exit code of its kind (4 missing,
//! 5 damaged, 6 not downloadable), never a panic; and the fix works. The fake hub on 127.0.0.1
//! serves the broken files, so they reach the cache the way real downloads do.

mod support;

use std::path::PathBuf;

use support::fake_hub::FakeHub;
use support::precis::{Precis, Run};
use support::tiny_marian::{repo_files, write_catalog, COMMIT, ID, NO_LLM, REPO, REVISION};
use tempfile::TempDir;

const MISSING: i32 = 4;
const CORRUPT: i32 = 5;
const NETWORK: i32 = 6;

const LLM_REPO: &str = "test/absent-llm";
const LLM_COMMIT: &str = "5555555555555555555555555555555555555555";

struct Fixture {
    hub: FakeHub,
    precis: Precis,
    input: PathBuf,
    _home: TempDir,
    _catalog: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let hub = FakeHub::start();
        let home = tempfile::tempdir().unwrap();
        let catalog = tempfile::tempdir().unwrap();
        write_catalog(catalog.path());
        let input = home.path().join("article.txt");
        std::fs::write(&input, "Le sommet a eu lieu en Alaska.\n").unwrap();
        let precis = Precis::new(home.path(), catalog.path(), &hub.endpoint());
        Fixture {
            hub,
            precis,
            input,
            _home: home,
            _catalog: catalog,
        }
    }

    /// Serves the tiny Marian model with `name` replaced by `bytes`.
    fn serve_marian_with(&self, name: &str, bytes: &[u8]) {
        let files = repo_files()
            .into_iter()
            .map(|(n, content)| {
                let content = if n == name { bytes.to_vec() } else { content };
                (n, content)
            })
            .collect();
        self.hub.add_repo(REPO, REVISION, COMMIT, files);
    }

    fn translate(&self, translator: &str, model: &str) -> Run {
        let model_flag = if translator == "llm" {
            "--model"
        } else {
            "--translation-model"
        };
        self.precis.run(&[
            "translate",
            "--translator",
            translator,
            model_flag,
            model,
            self.input.to_str().unwrap(),
        ])
    }
}

/// The error names the damaged file and both commands of the fix.
#[track_caller]
fn expect_damaged(run: &Run, model: &str, file: &str) {
    run.expect_code(CORRUPT)
        .expect_stderr(&format!("cannot load model {model}"))
        .expect_stderr(&format!("/{file}"))
        .expect_stderr(&format!("`precis models verify {model}`"))
        .expect_stderr(&format!("`precis models fetch --force {model}`"));
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn a_gguf_with_a_wrong_magic_or_cut_short_is_a_corrupt_model() {
    let cases: [&[u8]; 2] = [
        b"GGML this is not a GGUF file at all, just text.",
        // The magic and version, then the file ends.
        b"GGUF\x03\x00\x00\x00\x02\x00",
    ];
    for bytes in cases {
        let fx = Fixture::new();
        fx.hub.add_repo(
            LLM_REPO,
            "main",
            LLM_COMMIT,
            vec![("model.gguf".into(), bytes.to_vec())],
        );
        expect_damaged(&fx.translate("llm", NO_LLM), NO_LLM, "model.gguf");
    }
}

#[test]
fn a_safetensors_file_with_a_bad_header_is_a_corrupt_model_and_fetch_force_repairs_it() {
    let fx = Fixture::new();
    // The header says it is 2^40 bytes long.
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"not\": \"json\"");
    fx.serve_marian_with("model.safetensors", &bytes);
    expect_damaged(&fx.translate("marian", ID), ID, "model.safetensors");
    // A header that is not JSON.
    let mut bytes = 16u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"<html>oops</html>");
    fx.serve_marian_with("model.safetensors", &bytes);
    fx.precis
        .run(&["--quiet", "models", "fetch", "--force", ID])
        .expect_code(0);
    expect_damaged(&fx.translate("marian", ID), ID, "model.safetensors");
    // The hub has the right file again: the fix the message gives works.
    fx.hub.add_repo(REPO, REVISION, COMMIT, repo_files());
    fx.precis
        .run(&["--quiet", "models", "fetch", "--force", ID])
        .expect_code(0);
    fx.translate("marian", ID).expect_code(0);
}

#[test]
fn tokenizer_files_that_do_not_parse_are_a_corrupt_model() {
    for (file, bytes) in [
        ("vocab.json", &b"{\"<pad>\": 0, \"le\": "[..]),
        ("config.json", &b"[1, 2, 3]"[..]),
        ("source.spm", &b"\x0a\xff\xff\xff"[..]),
        ("target.spm", &b"\x0a\xff\xff\xff"[..]),
    ] {
        let fx = Fixture::new();
        fx.serve_marian_with(file, bytes);
        expect_damaged(&fx.translate("marian", ID), ID, file);
    }
}

#[test]
fn a_catalog_file_the_hub_does_not_have_is_named_with_the_fix() {
    let fx = Fixture::new();
    // The catalog entry of NO_LLM lists model.gguf; the repo exists without it.
    fx.hub.add_repo(
        LLM_REPO,
        "main",
        LLM_COMMIT,
        vec![("README.md".into(), b"no weights here".to_vec())],
    );
    fx.translate("llm", NO_LLM)
        .expect_code(NETWORK)
        .expect_stderr(&format!(
            "the hub refused model.gguf of model {NO_LLM}: HTTP 404"
        ));
    fx.precis
        .run(&[
            "--offline",
            "translate",
            "--translator",
            "llm",
            "--model",
            NO_LLM,
            fx.input.to_str().unwrap(),
        ])
        .expect_code(MISSING)
        .expect_stderr(&format!(
            "model {NO_LLM} is not in the cache (model.gguf) and precis is offline; on a \
             machine with network, run: precis models fetch {NO_LLM}"
        ));
}
