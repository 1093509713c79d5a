//! The model's hyperparameters, read from the GGUF metadata, and the check that the file holds
//! every tensor.

use crate::infer::InferError;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use std::io::{Seek, SeekFrom};

#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2Config {
    pub block_count: usize,
    pub embedding_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub context_length: usize,
    pub rms_norm_eps: f32,
    pub rope_freq_base: f32,
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
        let value = |key: &str| {
            let key = format!("qwen2.{key}");
            ct.metadata
                .get(&key)
                .ok_or(InferError::MissingMetadata(key))
        };
        let int = |key: &str| -> Result<usize, InferError> {
            value(key)?
                .to_u32()
                .map(|v| v as usize)
                .map_err(|_| InferError::MissingMetadata(format!("qwen2.{key}")))
        };
        let float = |key: &str| -> Result<f32, InferError> {
            value(key)?
                .to_f32()
                .map_err(|_| InferError::MissingMetadata(format!("qwen2.{key}")))
        };
        let config = Self {
            block_count: int("block_count")?,
            embedding_length: int("embedding_length")?,
            head_count: int("attention.head_count")?,
            head_count_kv: int("attention.head_count_kv")?,
            context_length: int("context_length")?,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?,
            // Qwen2's default when a converter leaves it out.
            rope_freq_base: float("rope.freq_base").unwrap_or(10_000.0),
        };
        let heads_fit = config.head_count_kv > 0
            && config.head_count.is_multiple_of(config.head_count_kv)
            && config.head_count > 0
            && config.embedding_length.is_multiple_of(config.head_count)
            && config.head_dim().is_multiple_of(2);
        if !heads_fit {
            return Err(InferError::Config(format!(
                "{} heads, {} KV heads and width {} do not fit together",
                config.head_count, config.head_count_kv, config.embedding_length
            )));
        }
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.embedding_length / self.head_count
    }
}

pub(super) fn tensor_size(dtype: GgmlDType, elems: usize) -> usize {
    elems / dtype.block_size() * dtype.type_size()
}

/// Checks that every tensor lies inside the file, so that a truncated download is reported
/// before reading hundreds of megabytes.
pub(super) fn check_extents<R: Seek>(ct: &Content, reader: &mut R) -> Result<(), InferError> {
    let file_len = reader
        .seek(SeekFrom::End(0))
        .map_err(candle_core::Error::from)?;
    let needed = ct
        .tensor_infos
        .values()
        .map(|info| {
            let size = tensor_size(info.ggml_dtype, info.shape.elem_count());
            ct.tensor_data_offset + info.offset + size as u64
        })
        .max()
        .unwrap_or(0);
    if needed > file_len {
        return Err(InferError::Truncated { needed, file_len });
    }
    Ok(())
}
