//! Qwen2 over GGUF quantised weights.

use super::{CausalLm, InferError};
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_qwen2::ModelWeights;
use std::io::{Read, Seek, SeekFrom};

/// Prompts are run in chunks of this many tokens so that the attention scores
/// (heads × chunk × context floats) stay small however long the prompt is.
const PROMPT_CHUNK: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qwen2Config {
    pub block_count: usize,
    pub embedding_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub context_length: usize,
}

impl Qwen2Config {
    pub fn from_gguf(ct: &Content) -> Result<Self, InferError> {
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| InferError::MissingMetadata("general.architecture".into()))?;
        if arch != "qwen2" {
            return Err(InferError::Architecture(arch.clone()));
        }
        let get = |key: &str| -> Result<usize, InferError> {
            let key = format!("qwen2.{key}");
            ct.metadata
                .get(&key)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or(InferError::MissingMetadata(key))
        };
        Ok(Self {
            block_count: get("block_count")?,
            embedding_length: get("embedding_length")?,
            head_count: get("attention.head_count")?,
            head_count_kv: get("attention.head_count_kv")?,
            context_length: get("context_length")?,
        })
    }
}

/// Checks that every tensor lies inside the file, so that a truncated download is reported
/// before reading hundreds of megabytes.
fn check_extents<R: Seek>(ct: &Content, reader: &mut R) -> Result<(), InferError> {
    let file_len = reader
        .seek(SeekFrom::End(0))
        .map_err(candle_core::Error::from)?;
    let needed = ct
        .tensor_infos
        .values()
        .map(|info| {
            let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
            ct.tensor_data_offset + info.offset + (blocks * info.ggml_dtype.type_size()) as u64
        })
        .max()
        .unwrap_or(0);
    if needed > file_len {
        return Err(InferError::Truncated { needed, file_len });
    }
    Ok(())
}

/// The Qwen2 decoder (candle's `quantized_qwen2`), tracking how many positions its KV cache
/// holds so that a forward pass at the wrong position is an error instead of garbage.
pub struct Qwen2 {
    weights: ModelWeights,
    config: Qwen2Config,
    device: Device,
    cached: usize,
}

impl Qwen2 {
    pub fn from_gguf<R: Read + Seek>(
        ct: Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self, InferError> {
        let config = Qwen2Config::from_gguf(&ct)?;
        for name in [
            "token_embd.weight",
            "output_norm.weight",
            "blk.0.attn_q.weight",
        ] {
            if !ct.tensor_infos.contains_key(name) {
                return Err(InferError::MissingTensor(name.into()));
            }
        }
        check_extents(&ct, reader)?;
        let weights = ModelWeights::from_gguf(ct, reader, device)?;
        Ok(Self {
            weights,
            config,
            device: device.clone(),
            cached: 0,
        })
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.config
    }

    fn run(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
        // The cache is replaced, not appended to, at position 0.
        self.cached = position;
        let mut logits = None;
        for chunk in tokens.chunks(PROMPT_CHUNK) {
            let input = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits = Some(self.weights.forward(&input, self.cached)?);
            self.cached += chunk.len();
        }
        let logits = logits.ok_or(InferError::EmptyPrompt)?;
        Ok(logits.squeeze(0)?.to_vec1::<f32>()?)
    }
}

impl CausalLm for Qwen2 {
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
        if position != 0 && position != self.cached {
            return Err(InferError::Position {
                got: position,
                cached: self.cached,
            });
        }
        let end = position + tokens.len();
        if end > self.config.context_length {
            return Err(InferError::ContextOverflow {
                tokens: end,
                context: self.config.context_length,
            });
        }
        let result = self.run(tokens, position);
        if result.is_err() {
            // The cache may hold part of the failed pass: only a fresh start is safe.
            self.cached = 0;
        }
        result
    }

    fn context_length(&self) -> usize {
        self.config.context_length
    }
}
