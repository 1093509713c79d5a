//! SentencePiece models (`source.spm`, `target.spm`) read in Rust, and the Marian tokenizer
//! built from them and `vocab.json`, reproducing Hugging Face's `MarianTokenizer`.
//!
//! A `.spm` file is a `sentencepiece.ModelProto` protobuf. Neither the tokenizers crate nor a
//! small maintained crate reads it (the tokenizers crate's Python side converts it with the
//! protobuf package), so this module decodes the few fields a unigram model needs with a
//! minimal protobuf reader, and builds a `tokenizers::Tokenizer` from them:
//! precompiled character map (the model's own NFKC rules), whitespace handling, `▁` prefix,
//! unigram Viterbi segmentation.
//!
//! `MarianTokenizer` then works as the Python one does: pieces from the source model, each
//! looked up in `vocab.json` (a piece that vocab.json lacks becomes `<unk>`), `</s>` appended;
//! special tokens written literally in the text are taken as those tokens; decoding skips
//! special tokens and turns pieces back into text as SentencePiece does.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::Tokenizer;

use super::{TokenKind, TokenizeError};

/// The word-boundary marker of SentencePiece (U+2581).
pub const SPIECE_UNDERLINE: char = '\u{2581}';

/// Prefix that hides control pieces from the unigram matcher: a NUL then a private-use
/// character, a pair no real text contains.
const HIDDEN_PIECE: &str = "\u{0}\u{F8FF}";

/// What SentencePiece writes for a piece it does not know (`unk_surface`, " ⁇ ").
const DEFAULT_UNK_SURFACE: &str = " \u{2047} ";

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: TokenKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    Unigram,
    Bpe,
    Word,
    Char,
}

/// The parts of a SentencePiece `ModelProto` that tokenisation depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    pub model_type: ModelType,
    pub byte_fallback: bool,
    pub unk_surface: String,
    /// Normalisation rules compiled into a trie (empty for the `identity` normaliser).
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

fn spm_error(message: String) -> TokenizeError {
    TokenizeError::Unsupported(format!("SentencePiece model: {message}"))
}

/// A protobuf wire-format reader: just enough for `ModelProto`.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// One field of a message: its number and value.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, TokenizeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or_else(|| spm_error("truncated varint".into()))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(spm_error("varint longer than 10 bytes".into()))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], TokenizeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| spm_error("field runs past the end of the data".into()))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, TokenizeError> {
        if self.pos == self.data.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| spm_error("length does not fit in memory".into()))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => {
                return Err(spm_error(format!(
                    "field {number} has wire type {wire}, which this reader does not handle"
                )))
            }
        };
        Ok(Some((number, value)))
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, TokenizeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| spm_error(format!("{what} is not UTF-8")))
}

fn expect_bytes<'a>(value: Value<'a>, what: &str) -> Result<&'a [u8], TokenizeError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(spm_error(format!("{what} has the wrong wire type"))),
    }
}

fn expect_varint(value: Value<'_>, what: &str) -> Result<u64, TokenizeError> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(spm_error(format!("{what} has the wrong wire type"))),
    }
}

impl SpmModel {
    pub fn from_file(path: &Path) -> Result<Self, TokenizeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| spm_error(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// Decodes a serialised `ModelProto`. Field numbers are those of sentencepiece_model.proto:
    /// `ModelProto { pieces = 1; trainer_spec = 2; normalizer_spec = 3; }`,
    /// `SentencePiece { piece = 1; score = 2; type = 3; }`,
    /// `TrainerSpec { model_type = 3; byte_fallback = 35; unk_surface = 44; }`,
    /// `NormalizerSpec { precompiled_charsmap = 2; add_dummy_prefix = 3;
    /// remove_extra_whitespaces = 4; escape_whitespaces = 5; }`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenizeError> {
        let mut model = SpmModel {
            pieces: Vec::new(),
            model_type: ModelType::Unigram,
            byte_fallback: false,
            unk_surface: DEFAULT_UNK_SURFACE.to_string(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut reader = Reader::new(bytes);
        while let Some((number, value)) = reader.field()? {
            match number {
                1 => model
                    .pieces
                    .push(parse_piece(expect_bytes(value, "a piece")?)?),
                2 => model.parse_trainer_spec(expect_bytes(value, "trainer_spec")?)?,
                3 => model.parse_normalizer_spec(expect_bytes(value, "normalizer_spec")?)?,
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err(spm_error(
                "no pieces (is this a SentencePiece model?)".into(),
            ));
        }
        Ok(model)
    }

    fn parse_trainer_spec(&mut self, bytes: &[u8]) -> Result<(), TokenizeError> {
        let mut reader = Reader::new(bytes);
        while let Some((number, value)) = reader.field()? {
            match number {
                3 => {
                    self.model_type = match expect_varint(value, "model_type")? {
                        1 => ModelType::Unigram,
                        2 => ModelType::Bpe,
                        3 => ModelType::Word,
                        4 => ModelType::Char,
                        other => return Err(spm_error(format!("unknown model type {other}"))),
                    }
                }
                35 => self.byte_fallback = expect_varint(value, "byte_fallback")? != 0,
                44 => self.unk_surface = utf8(expect_bytes(value, "unk_surface")?, "unk_surface")?,
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_normalizer_spec(&mut self, bytes: &[u8]) -> Result<(), TokenizeError> {
        let mut reader = Reader::new(bytes);
        while let Some((number, value)) = reader.field()? {
            match number {
                2 => self.precompiled_charsmap = expect_bytes(value, "charsmap")?.to_vec(),
                3 => self.add_dummy_prefix = expect_varint(value, "add_dummy_prefix")? != 0,
                4 => {
                    self.remove_extra_whitespaces =
                        expect_varint(value, "remove_extra_whitespaces")? != 0
                }
                5 => self.escape_whitespaces = expect_varint(value, "escape_whitespaces")? != 0,
                _ => {}
            }
        }
        Ok(())
    }

    /// The id of the `Unknown` piece.
    pub fn unk_id(&self) -> Option<usize> {
        self.pieces
            .iter()
            .position(|p| p.kind == TokenKind::Unknown)
    }

    /// A `tokenizers::Tokenizer` that splits text into this model's pieces (ids are this
    /// model's piece ids). Only unigram models without byte fallback or user-defined pieces are
    /// supported: that is what opus-mt ships, and the other kinds segment differently.
    pub fn to_tokenizer(&self) -> Result<Tokenizer, TokenizeError> {
        if self.model_type != ModelType::Unigram {
            return Err(spm_error(format!(
                "{:?} models are not supported, only unigram ones",
                self.model_type
            )));
        }
        if self.byte_fallback {
            return Err(spm_error("byte fallback is not supported".into()));
        }
        if self.pieces.iter().any(|p| p.kind == TokenKind::UserDefined) {
            return Err(spm_error("user-defined pieces are not supported".into()));
        }
        if !self.escape_whitespaces || !self.add_dummy_prefix {
            return Err(spm_error(
                "models that keep spaces unescaped or add no '▁' prefix are not supported".into(),
            ));
        }
        let unk_id = self
            .unk_id()
            .ok_or_else(|| spm_error("the model has no unknown piece".into()))?;
        // SentencePiece never matches control and unknown pieces against text, but the
        // unigram model of the tokenizers crate matches every vocabulary entry: give those
        // pieces a name that text does not contain (the Marian tokenizer makes sure of it).
        let vocab: Vec<(String, f64)> = self
            .pieces
            .iter()
            .map(|p| {
                let name = match p.kind {
                    TokenKind::Control | TokenKind::Unknown | TokenKind::Unused => {
                        format!("{HIDDEN_PIECE}{}", p.piece)
                    }
                    _ => p.piece.clone(),
                };
                (name, f64::from(p.score))
            })
            .collect();
        let model = Unigram::from(vocab, Some(unk_id), false)
            .map_err(|e| spm_error(format!("cannot build the unigram model: {e}")))?;
        let mut tokenizer = Tokenizer::new(model);
        let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
        if !self.precompiled_charsmap.is_empty() {
            let precompiled = Precompiled::from(&self.precompiled_charsmap)
                .map_err(|e| spm_error(format!("bad precompiled_charsmap: {e}")))?;
            normalizers.push(precompiled.into());
        }
        if self.remove_extra_whitespaces {
            // SentencePiece drops leading and trailing spaces and folds runs of spaces into one.
            normalizers.push(Strip::new(true, true).into());
            normalizers.push(
                Replace::new(
                    tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()),
                    " ",
                )
                .map_err(|e| spm_error(format!("cannot build the whitespace rule: {e}")))?
                .into(),
            );
        }
        tokenizer
            .with_normalizer(Some(Sequence::new(normalizers)))
            .map_err(|e| spm_error(format!("cannot set the normaliser: {e}")))?;
        tokenizer.with_pre_tokenizer(Some(Metaspace::new(
            SPIECE_UNDERLINE,
            PrependScheme::Always,
            true,
        )));
        Ok(tokenizer)
    }
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, TokenizeError> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: TokenKind::Normal,
    };
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (1, Value::Bytes(b)) => piece.piece = utf8(b, "a piece")?,
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(kind)) => {
                piece.kind = TokenKind::from_code(kind)
                    .ok_or_else(|| spm_error(format!("unknown piece type {}", kind)))?
            }
            (1..=3, _) => return Err(spm_error("a piece field has the wrong wire type".into())),
            _ => {}
        }
    }
    Ok(piece)
}

/// Hugging Face's `MarianTokenizer` (transformers 5), in Rust.
pub struct MarianTokenizer {
    source: Tokenizer,
    vocab: HashMap<String, u32>,
    id_to_token: HashMap<u32, String>,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
}

/// The special tokens of a Marian vocabulary.
const EOS: &str = "</s>";
const UNK: &str = "<unk>";
const PAD: &str = "<pad>";

impl MarianTokenizer {
    /// Reads `source.spm`, `target.spm` and `vocab.json` from a model folder.
    pub fn from_files(
        source_spm: &Path,
        target_spm: &Path,
        vocab_json: &Path,
    ) -> Result<Self, TokenizeError> {
        Self::new(
            SpmModel::from_file(source_spm)?,
            SpmModel::from_file(target_spm)?,
            Self::read_vocab(vocab_json)?,
        )
    }

    /// A `vocab.json`: piece to id.
    pub fn read_vocab(vocab_json: &Path) -> Result<HashMap<String, u32>, TokenizeError> {
        let vocab_text = std::fs::read_to_string(vocab_json)
            .map_err(|e| spm_error(format!("cannot read {}: {e}", vocab_json.display())))?;
        serde_json::from_str(&vocab_text).map_err(|e| {
            TokenizeError::Unsupported(format!("{} is not a vocabulary: {e}", vocab_json.display()))
        })
    }

    /// The target model is read (and must be valid) but does not change any result:
    /// SentencePiece's `decode_pieces` writes every piece as it is, known to the model or not,
    /// so decoding depends on vocab.json alone.
    pub fn new(
        source: SpmModel,
        _target: SpmModel,
        vocab: HashMap<String, u32>,
    ) -> Result<Self, TokenizeError> {
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| TokenizeError::MissingControlToken(token.to_string()))
        };
        let (eos_id, unk_id, pad_id) = (id(EOS)?, id(UNK)?, id(PAD)?);
        let id_to_token = vocab.iter().map(|(t, &i)| (i, t.clone())).collect();
        Ok(MarianTokenizer {
            source: source.to_tokenizer()?,
            vocab,
            id_to_token,
            eos_id,
            unk_id,
            pad_id,
        })
    }

    /// The `tokenizers::Tokenizer` that segments source text into SentencePiece pieces.
    pub fn source_tokenizer(&self) -> &Tokenizer {
        &self.source
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Model input ids for `text`: its pieces mapped through vocab.json, then `</s>`.
    ///
    /// The one deliberate difference from MarianTokenizer: `</s>`, `<unk>` and `<pad>` written
    /// in the text stay text (SentencePiece pieces), where HF turns them into control tokens. An
    /// article that quotes markup would otherwise end the source sentence at its `</s>`, and the
    /// model would translate only what comes before it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        let mut ids = Vec::new();
        let (code, rest) = split_language_code(text);
        if let Some(code) = code {
            ids.push(self.vocab.get(code).copied().unwrap_or(self.unk_id));
        }
        self.encode_plain(rest, &mut ids)?;
        ids.push(self.eos_id);
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), TokenizeError> {
        if text.is_empty() {
            return Ok(());
        }
        // Text that spells the hidden-piece prefix would reach a control piece; SentencePiece
        // reads it as two unknown characters, and so does this, once the pair is broken up.
        let cleaned;
        let text = if text.contains(HIDDEN_PIECE) {
            cleaned = text.replace(HIDDEN_PIECE, "\u{0} \u{F8FF}");
            &cleaned
        } else {
            text
        };
        let encoding = self.source.encode(text, false)?;
        for token in encoding.get_tokens() {
            let id = if token.starts_with(HIDDEN_PIECE) {
                self.unk_id
            } else {
                self.vocab.get(token).copied().unwrap_or(self.unk_id)
            };
            ids.push(id);
        }
        Ok(())
    }

    /// The text of generated ids, special tokens (`</s>`, `<unk>`, `<pad>`) skipped: the
    /// pieces joined, `▁` read as a space, surrounding spaces removed, as MarianTokenizer's
    /// `decode(ids, skip_special_tokens=True)` gives it.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for id in ids {
            if [self.eos_id, self.unk_id, self.pad_id].contains(id) {
                continue;
            }
            if let Some(token) = self.id_to_token.get(id) {
                out.push_str(token);
            }
        }
        out.replace(SPIECE_UNDERLINE, " ").trim().to_string()
    }
}

/// `>>fra<<` at the very start of the text: a target-language code, which MarianTokenizer
/// takes as one token.
fn split_language_code(text: &str) -> (Option<&str>, &str) {
    if text.starts_with(">>") {
        if let Some(end) = text.find("<<") {
            return (Some(&text[..end + 2]), &text[end + 2..]);
        }
    }
    (None, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protobuf encoding helpers, to write test models by hand.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, text.as_bytes(), &mut out);
        varint(2 << 3 | 5, &mut out);
        out.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut out);
        varint(kind, &mut out);
        out
    }

    fn model(pieces: &[(&str, f32, u64)], trainer: &[u8], normalizer: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (text, score, kind) in pieces {
            bytes_field(1, &piece(text, *score, *kind), &mut out);
        }
        bytes_field(2, trainer, &mut out);
        bytes_field(3, normalizer, &mut out);
        // An unknown field (self_test_data) is skipped.
        bytes_field(4, b"\x0a\x00", &mut out);
        out
    }

    fn identity_normalizer() -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, b"identity", &mut out);
        out
    }

    fn toy() -> Vec<u8> {
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(1, &mut trainer); // unigram
        varint(40 << 3, &mut trainer);
        varint(0, &mut trainer); // unk_id, a field this reader skips
        model(
            &[
                ("<unk>", 0.0, 2),
                ("<s>", 0.0, 3),
                ("</s>", 0.0, 3),
                ("▁le", -1.0, 1),
                ("▁l", -3.0, 1),
                ("e", -3.0, 1),
                ("▁chat", -2.0, 1),
                ("▁ch", -4.0, 1),
                ("at", -4.0, 1),
                ("s", -2.5, 1),
            ],
            &trainer,
            &identity_normalizer(),
        )
    }

    #[test]
    fn reads_pieces_types_and_specs() {
        let m = SpmModel::from_bytes(&toy()).unwrap();
        assert_eq!(m.pieces.len(), 10);
        assert_eq!(m.pieces[3].piece, "▁le");
        assert_eq!(m.pieces[3].score, -1.0);
        assert_eq!(m.pieces[0].kind, TokenKind::Unknown);
        assert_eq!(m.pieces[2].kind, TokenKind::Control);
        assert_eq!(m.model_type, ModelType::Unigram);
        assert!(m.precompiled_charsmap.is_empty());
        assert!(m.add_dummy_prefix && m.remove_extra_whitespaces && m.escape_whitespaces);
        assert_eq!(m.unk_id(), Some(0));
    }

    #[test]
    fn segments_with_the_best_scoring_pieces() {
        let tokenizer = SpmModel::from_bytes(&toy())
            .unwrap()
            .to_tokenizer()
            .unwrap();
        let enc = tokenizer.encode("  le   chats ", false).unwrap();
        assert_eq!(enc.get_tokens(), ["▁le", "▁chat", "s"]);
        // Unknown characters become the unknown piece; control pieces never match text.
        let enc = tokenizer.encode("le </s>", false).unwrap();
        assert!(enc.get_ids().contains(&0), "{:?}", enc.get_tokens());
        assert!(!enc.get_ids().contains(&2));
    }

    #[test]
    fn rejects_truncated_and_foreign_data() {
        let data = toy();
        for cut in [1, 7, data.len() / 2, data.len() - 1] {
            assert!(SpmModel::from_bytes(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(SpmModel::from_bytes(b"").is_err());
        assert!(SpmModel::from_bytes(b"{\"not\": \"protobuf\"}").is_err());
        // A group (wire type 3) is not part of ModelProto.
        assert!(SpmModel::from_bytes(&[0x0b]).is_err());
    }

    #[test]
    fn refuses_model_kinds_it_would_segment_wrongly() {
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer); // BPE
        let bpe = model(
            &[("<unk>", 0.0, 2), ("a", 0.0, 1)],
            &trainer,
            &identity_normalizer(),
        );
        let err = SpmModel::from_bytes(&bpe)
            .unwrap()
            .to_tokenizer()
            .unwrap_err();
        assert!(err.to_string().contains("Bpe"), "{err}");
    }

    #[test]
    fn language_code_prefix() {
        assert_eq!(
            split_language_code(">>fra<< Bonjour"),
            (Some(">>fra<<"), " Bonjour")
        );
        assert_eq!(split_language_code("a >>fra<<"), (None, "a >>fra<<"));
        assert_eq!(
            split_language_code(">> pas de fin"),
            (None, ">> pas de fin")
        );
    }
}
