//! Shared by the `llm_*` integration tests: where the real GGUF models are.

#[allow(dead_code)]
#[path = "../support/require.rs"]
pub mod require;

use std::path::PathBuf;

/// The GGUF of a catalog model: `var` when set (a file elsewhere), else the Hugging Face cache
/// through the store, as `precis` itself finds it. When it is missing, a failure under
/// `PRECIS_REQUIRE_MODELS=1` (as in CI, which fetches the models first), else `None` after
/// printing why the test is skipped ([`require::required`]).
pub fn gguf(var: &str, model: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).map(PathBuf::from) {
        let missing = format!("{var}={} does not exist", path.display());
        let how = format!("point {var} at the GGUF file of {model}, or unset it");
        return require::required(path.is_file().then_some(path), &missing, &how);
    }
    let catalog = precis::load::Catalog::builtin().expect("builtin catalog");
    let spec = catalog.get(model).expect("model in the catalog");
    let store = precis::load::Store::new(precis::load::StoreConfig::from_env());
    let name = &spec.file_with_extension("gguf").expect("a GGUF model").name;
    let (found, missing) = match store.locate(spec) {
        Ok(files) => (
            files.path(name).map(PathBuf::from),
            format!("{name} is not among the cached files of {model}"),
        ),
        Err(error) => (None, error.to_string()),
    };
    require::required(found, &missing, &format!("precis models fetch {model}"))
}

#[allow(dead_code)] // not every test binary uses the 0.5B model
pub fn qwen05() -> Option<PathBuf> {
    gguf("PRECIS_TEST_GGUF_05", "qwen2.5-coder-0.5b-instruct")
}

#[allow(dead_code)] // not every test binary uses the 1.5B model
pub fn qwen15() -> Option<PathBuf> {
    gguf("PRECIS_TEST_GGUF_15", "qwen2.5-coder-1.5b-instruct")
}

use candle_core::quantized::gguf_file::{self, Value};

/// GPT-2's byte-level alphabet: the vocabulary entry that stands for each byte.
fn byte_level_char(b: u8) -> char {
    let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable {
        char::from(b)
    } else {
        let rank = (0..b)
            .filter(|c| !matches!(c, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
            .count();
        char::from_u32(256 + rank as u32).unwrap()
    }
}

/// Control tokens of the tiny vocabulary, after its 256 byte tokens and one merge.
#[allow(dead_code)]
pub const TINY_CONTROL: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Metadata of a tiny Qwen-style vocabulary: the 256 byte tokens, the merge `Ġ t` (id 256),
/// then the control tokens (ids 257..=259), `<|im_end|>` as end of sequence.
#[allow(dead_code)]
pub fn tiny_tokenizer_metadata() -> Vec<(&'static str, Value)> {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| byte_level_char(b).to_string())
        .collect();
    tokens.push("\u{120}t".into());
    let mut types = vec![Value::I32(1); tokens.len()];
    for t in TINY_CONTROL {
        tokens.push(t.into());
        types.push(Value::I32(3));
    }
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", strings(vec!["\u{120} t".into()])),
        ("tokenizer.ggml.eos_token_id", Value::U32(259)),
        (
            "tokenizer.chat_template",
            Value::String("{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".into()),
        ),
    ]
}

/// A GGUF file image with the given metadata and no tensors.
#[allow(dead_code)]
pub fn gguf_bytes(metadata: &[(&str, Value)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut out, &refs, &[]).unwrap();
    out.into_inner()
}
