//! Broken model files give typed errors that name the file, never a panic.

mod llm_common;

use candle_core::Device;
use precis::engines::{EngineError, LlmEngine};
use precis::infer::InferError;
use precis::load::ModelFiles;
use precis::tokenize::TokenizeError;
use std::io::Read;
use std::path::Path;

fn load_err(path: &Path) -> EngineError {
    match LlmEngine::load(&ModelFiles::single("test", path), &Device::Cpu) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => {
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "error does not name the file: {e}"
            );
            e
        }
    }
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn missing_file() {
    let e = load_err(Path::new("/nonexistent/model.gguf"));
    assert!(matches!(e, EngineError::Io { .. }), "{e:?}");
}

#[test]
fn wrong_magic() {
    let f = temp_file(b"GGML this is not a GGUF file at all, just text.");
    let e = load_err(f.path());
    assert!(matches!(e, EngineError::Gguf { .. }), "{e:?}");
}

#[test]
fn header_cut_short() {
    let bytes = llm_common::gguf_bytes(&llm_common::tiny_tokenizer_metadata());
    let f = temp_file(&bytes[..bytes.len() / 2]);
    let e = load_err(f.path());
    assert!(matches!(e, EngineError::Gguf { .. }), "{e:?}");
}

#[test]
fn missing_tokenizer_metadata() {
    let mut metadata = llm_common::tiny_tokenizer_metadata();
    metadata.retain(|(k, _)| *k != "tokenizer.ggml.merges");
    let f = temp_file(&llm_common::gguf_bytes(&metadata));
    let e = load_err(f.path());
    assert!(
        matches!(
            e,
            EngineError::Tokenizer {
                source: TokenizeError::MissingMetadata("tokenizer.ggml.merges"),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn missing_model_metadata() {
    let f = temp_file(&llm_common::gguf_bytes(
        &llm_common::tiny_tokenizer_metadata(),
    ));
    let e = load_err(f.path());
    match e {
        EngineError::Model {
            source: InferError::MissingMetadata(key),
            ..
        } => assert!(key.starts_with("qwen2."), "{key}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_weights() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let mut head = vec![0; 32 << 20];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let f = temp_file(&head);
    let e = load_err(f.path());
    assert!(
        matches!(
            e,
            EngineError::Model {
                source: InferError::Truncated { .. },
                ..
            }
        ),
        "{e:?}"
    );
    eprintln!("{e}");
}
