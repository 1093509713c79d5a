//! The byte-level BPE tokeniser stored in a GGUF file's metadata, rebuilt so that it gives
//! llama.cpp's token ids.
//!
//! candle's `TokenizerFromGguf` builds almost the same thing but does not match llama.cpp in
//! three ways that matter here: it applies NFC normalisation (llama.cpp does not normalise
//! BPE input, so decomposed accents would get different ids), it registers `UNUSED` tokens
//! such as `[PAD151665]` as matchable added tokens (llama.cpp never matches them), and it
//! marks user-defined tokens like `<tool_call>` as special, so they could not be told apart
//! from control tokens. Here control tokens are special added tokens that are never
//! extracted from text (`encode_special_tokens`), and user-defined tokens are ordinary added
//! tokens that are, exactly like llama.cpp's `parse_special = false`.

use super::{TokenKind, TokenizeError};
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::{
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::{Vocab, BPE},
    pre_tokenizers::{
        byte_level::ByteLevel,
        sequence::Sequence,
        split::{Split, SplitPattern},
    },
    tokenizer::SplitDelimiterBehavior,
    AddedToken, Tokenizer,
};

/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_QWEN2` split; the case-insensitive group of the original
/// `tokenizer.json` is spelt out because llama.cpp's regex engine has no `(?i:...)`.
const QWEN2_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A GGUF vocabulary: the `tokenizers` pipeline for encoding, plus the raw bytes of every
/// token for exact, streamable decoding.
pub struct GgufTokenizer {
    tokenizer: Tokenizer,
    kinds: Vec<TokenKind>,
    /// Bytes of token `i` are `piece_bytes[piece_ends[i - 1]..piece_ends[i]]`; one flat buffer
    /// instead of 150k small allocations.
    piece_bytes: Vec<u8>,
    piece_ends: Vec<usize>,
    eos: Option<u32>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.kinds.len())
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

fn meta<'a>(ct: &'a Content, key: &'static str) -> Result<&'a Value, TokenizeError> {
    ct.metadata
        .get(key)
        .ok_or(TokenizeError::MissingMetadata(key))
}

fn bad(key: &'static str, reason: impl std::fmt::Display) -> TokenizeError {
    TokenizeError::BadMetadata {
        key,
        reason: reason.to_string(),
    }
}

fn meta_str<'a>(ct: &'a Content, key: &'static str) -> Result<&'a str, TokenizeError> {
    meta(ct, key)?
        .to_string()
        .map(String::as_str)
        .map_err(|e| bad(key, e))
}

fn meta_u32(ct: &Content, key: &'static str) -> Result<Option<u32>, TokenizeError> {
    let Some(v) = ct.metadata.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::U8(n) => u64::from(*n),
        Value::U16(n) => u64::from(*n),
        Value::U32(n) => u64::from(*n),
        Value::U64(n) => *n,
        Value::I32(n) => u64::try_from(*n).map_err(|e| bad(key, e))?,
        Value::I64(n) => u64::try_from(*n).map_err(|e| bad(key, e))?,
        other => return Err(bad(key, format!("expected an integer, found {other:?}"))),
    };
    u32::try_from(n).map(Some).map_err(|e| bad(key, e))
}

fn meta_strings(ct: &Content, key: &'static str) -> Result<Vec<String>, TokenizeError> {
    meta(ct, key)?
        .to_vec()
        .map_err(|e| bad(key, e))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| bad(key, e)))
        .collect()
}

/// GPT-2's reversible byte <-> printable character mapping, inverted: index by `char as usize`
/// (all mapped characters are below U+0144).
fn byte_level_decode_table() -> [Option<u8>; 324] {
    let mut table = [None; 324];
    let mut next = 256;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            usize::from(b)
        } else {
            next += 1;
            next - 1
        };
        table[c] = Some(b);
    }
    table
}

impl GgufTokenizer {
    /// Builds the tokeniser from `tokenizer.ggml.*` metadata. Only the `gpt2` model with the
    /// `qwen2` pre-tokeniser is supported, because that is the only one checked against
    /// llama.cpp.
    pub fn from_gguf(ct: &Content) -> Result<Self, TokenizeError> {
        let model = meta_str(ct, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizeError::Unsupported(format!(
                "tokenizer model `{model}` (only byte-level BPE, `gpt2`, is implemented)"
            )));
        }
        let pre = meta_str(ct, "tokenizer.ggml.pre")?;
        if pre != "qwen2" {
            return Err(TokenizeError::Unsupported(format!(
                "pre-tokenizer `{pre}` (only `qwen2` is implemented)"
            )));
        }

        let tokens = meta_strings(ct, "tokenizer.ggml.tokens")?;
        let kinds = match ct.metadata.get("tokenizer.ggml.token_type") {
            None => vec![TokenKind::Normal; tokens.len()],
            Some(v) => {
                let key = "tokenizer.ggml.token_type";
                let types = v.to_vec().map_err(|e| bad(key, e))?;
                if types.len() != tokens.len() {
                    return Err(bad(
                        key,
                        format!("{} types for {} tokens", types.len(), tokens.len()),
                    ));
                }
                types
                    .iter()
                    .map(|t| {
                        let n = match t {
                            Value::I32(n) => u32::try_from(*n).ok(),
                            Value::U32(n) => Some(*n),
                            _ => None,
                        };
                        n.and_then(|n| TokenKind::from_code(u64::from(n)))
                            .ok_or_else(|| bad(key, format!("unknown token type {t:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let merges = meta_strings(ct, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_string(), b.to_string())),
                None => Err(bad("tokenizer.ggml.merges", format!("merge `{m}`"))),
            })
            .collect::<Result<Vec<_>, _>>()?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| bad("tokenizer.ggml.merges", e))?;
        let mut tokenizer = Tokenizer::new(bpe);
        let split = Split::new(
            SplitPattern::Regex(QWEN2_SPLIT.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )?;
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])));
        tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, false, false)));

        let added = |kind: TokenKind, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&kinds)
                .filter(|(_, k)| **k == kind)
                .map(|(t, _)| AddedToken::from(t.clone(), special).normalized(false))
                .collect()
        };
        tokenizer.add_special_tokens(added(TokenKind::Control, true))?;
        tokenizer.add_special_tokens(added(TokenKind::Unknown, true))?;
        tokenizer.add_tokens(added(TokenKind::UserDefined, false))?;
        tokenizer.set_encode_special_tokens(true);

        let table = byte_level_decode_table();
        let mut piece_bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
        let mut piece_ends = Vec::with_capacity(tokens.len());
        for (token, kind) in tokens.iter().zip(&kinds) {
            if *kind == TokenKind::Normal {
                for c in token.chars() {
                    match table.get(c as usize).copied().flatten() {
                        Some(b) => piece_bytes.push(b),
                        // Not a byte-level character: keep it as text rather than lose it.
                        None => {
                            piece_bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes())
                        }
                    }
                }
            } else {
                piece_bytes.extend_from_slice(token.as_bytes());
            }
            piece_ends.push(piece_bytes.len());
        }

        let eos_key = "tokenizer.ggml.eos_token_id";
        let eos = meta_u32(ct, eos_key)?;
        if let Some(id) = eos.filter(|&id| id as usize >= tokens.len()) {
            return Err(bad(
                eos_key,
                format!("id {id} outside a vocabulary of {}", tokens.len()),
            ));
        }
        Ok(Self {
            tokenizer,
            kinds,
            piece_bytes,
            piece_ends,
            eos,
        })
    }

    /// Encodes text as plain text: control tokens written in it (`<|im_start|>`,
    /// `<|endoftext|>`) are tokenised as ordinary characters, never as control ids. Like
    /// llama.cpp with `parse_special = false`, user-defined tokens such as `<tool_call>` are
    /// still recognised.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        Ok(self.tokenizer.encode_fast(text, false)?.get_ids().to_vec())
    }

    /// The id of a vocabulary entry, written as in the GGUF (control tokens by their text).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The exact bytes token `id` stands for (a control token's text for control tokens); empty
    /// for ids outside the vocabulary.
    pub fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.piece_ends.len() {
            return &[];
        }
        let start = if i == 0 { 0 } else { self.piece_ends[i - 1] };
        &self.piece_bytes[start..self.piece_ends[i]]
    }

    /// The bytes token `id` contributes to output text: nothing for control, unknown and unused
    /// tokens, as llama.cpp's `token_to_piece` with `special = false`.
    pub fn text_piece(&self, id: u32) -> &[u8] {
        match self.kind(id) {
            Some(k) if k.is_text() => self.piece(id),
            _ => &[],
        }
    }

    /// Decodes ids to text; `keep_control` writes control tokens out as their text.
    /// Invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], keep_control: bool) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| {
                if keep_control {
                    self.piece(id)
                } else {
                    self.text_piece(id)
                }
            })
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn vocab_size(&self) -> usize {
        self.kinds.len()
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The underlying `tokenizers` pipeline, configured so that control tokens are never
    /// extracted from text.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection() {
        let table = byte_level_decode_table();
        let mut seen = [false; 256];
        for b in table.iter().flatten() {
            assert!(!seen[usize::from(*b)]);
            seen[usize::from(*b)] = true;
        }
        assert!(seen.iter().all(|s| *s));
        // GPT-2's mapping: space is U+0120 'Ġ', newline U+010A 'Ċ'.
        assert_eq!(table[0x120], Some(b' '));
        assert_eq!(table[0x10A], Some(b'\n'));
        assert_eq!(table['é' as usize], Some(0xE9));
    }
}
