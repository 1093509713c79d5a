//! Turning the bytes a user gave into article text, or a clear reason why not.

use std::{io::Read, path::Path};

use crate::{failure::FailureKind, files};

/// The most an article may weigh: far above any news article (the 5 MB test article takes
/// minutes), low enough that `/dev/zero` or a wrong file is refused before it fills memory.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{source_name} is empty: there is nothing to translate")]
    Empty { source_name: String },
    #[error("{source_name} looks like a binary file (a NUL byte at offset {offset}), not text")]
    Binary { source_name: String, offset: usize },
    #[error("{source_name} is not valid UTF-8: invalid byte 0x{byte:02x} at offset {offset}; convert it first (for example `iconv -f latin1 -t utf-8`), or pass --lossy to replace invalid bytes")]
    InvalidUtf8 {
        source_name: String,
        offset: usize,
        byte: u8,
    },
    #[error("{source_name} starts with a UTF-16 byte-order mark but is not valid UTF-16; pass --lossy to replace what is invalid")]
    InvalidUtf16 { source_name: String },
    #[error("cannot read {source_name}: {source}")]
    Read {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {source_name}: it is {what}; give a text file, or - for standard input")]
    NotText {
        source_name: String,
        what: &'static str,
    },
    #[error("{source_name} is larger than {} MiB, far more than one article; split it into articles", MAX_INPUT_BYTES >> 20)]
    TooLarge { source_name: String },
}

impl InputError {
    pub fn kind(&self) -> FailureKind {
        FailureKind::Input
    }
}

/// The bytes of an input: a file (or a FIFO or device, read as `cat` would), or standard input
/// for `-`; at most [`MAX_INPUT_BYTES`].
pub fn read_input(path: &Path) -> Result<Vec<u8>, InputError> {
    let source_name = source_name(path);
    let read_error = |source| InputError::Read {
        source_name: source_name.clone(),
        source,
    };
    let mut bytes = Vec::new();
    let limit = MAX_INPUT_BYTES + 1;
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    } else {
        let meta = std::fs::metadata(path).map_err(|e| not_text(path, &source_name, e))?;
        if meta.is_dir() || files::is_socket(&meta) {
            return Err(InputError::NotText {
                source_name,
                what: files::describe(&meta),
            });
        }
        std::fs::File::open(path)
            .and_then(|file| file.take(limit).read_to_end(&mut bytes))
            .map_err(|e| not_text(path, &source_name, e))?;
    }
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { source_name });
    }
    Ok(bytes)
}

/// How the user knows an input: its path, or "standard input" for `-`.
pub fn source_name(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// A read error, said in words where the system's are obscure.
fn not_text(path: &Path, source_name: &str, source: std::io::Error) -> InputError {
    let source = match files::unreachable_because(path, &source) {
        Some(what) => std::io::Error::new(source.kind(), what),
        None => source,
    };
    InputError::Read {
        source_name: source_name.to_string(),
        source,
    }
}

/// The article in decoded text: with `html`, the text without its markup (an error if none is
/// left); without, the text as it is, with a warning when it looks like HTML.
pub fn article_text(
    decoded: String,
    html: bool,
    source_name: &str,
    warnings: &mut Vec<String>,
) -> Result<String, InputError> {
    if html {
        let text = super::html::to_text(&decoded);
        if text.trim().is_empty() {
            return Err(InputError::Empty {
                source_name: format!("{source_name} without its HTML markup"),
            });
        }
        return Ok(text);
    }
    if super::html::looks_like_html(&decoded) {
        warnings.push(format!(
            "{source_name} looks like HTML; its tags will be translated as text. Pass --html \
             to keep only the text"
        ));
    }
    Ok(decoded)
}

/// Decoded article text, and what a lossy decoding replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// With `lossy`: a warning saying how many invalid sequences became U+FFFD, and where the
    /// first one was.
    pub warning: Option<String>,
}

/// Decodes an article: UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order
/// mark; rejects binary data and text with nothing but whitespace. Invalid UTF-8 or UTF-16 is
/// an error naming the byte offset, or with `lossy` is replaced by U+FFFD with a warning.
/// `source_name` is how the user knows the input (a path, or "standard input").
pub fn decode_text(bytes: &[u8], source_name: &str, lossy: bool) -> Result<Decoded, InputError> {
    let source_name = source_name.to_string();
    let mut warning = None;
    let text = if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        decode_utf16(rest, u16::from_le_bytes, &source_name, lossy, &mut warning)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        decode_utf16(rest, u16::from_be_bytes, &source_name, lossy, &mut warning)?
    } else {
        let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
        if let Some(offset) = bytes.iter().position(|&b| b == 0) {
            return Err(InputError::Binary {
                source_name,
                offset,
            });
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(e) if lossy => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                // One U+FFFD per chunk of invalid bytes, as `from_utf8_lossy` writes them.
                let replaced = bytes
                    .utf8_chunks()
                    .filter(|chunk| !chunk.invalid().is_empty())
                    .count();
                warning = Some(format!(
                    "{source_name}: {replaced} invalid UTF-8 sequence(s) replaced by U+FFFD, \
                     the first at byte offset {}",
                    e.valid_up_to()
                ));
                text
            }
            Err(e) => {
                let offset = e.valid_up_to();
                return Err(InputError::InvalidUtf8 {
                    source_name,
                    offset,
                    byte: bytes[offset],
                });
            }
        }
    };
    if text.trim().is_empty() {
        return Err(InputError::Empty { source_name });
    }
    Ok(Decoded { text, warning })
}

fn decode_utf16(
    bytes: &[u8],
    unit: fn([u8; 2]) -> u16,
    source_name: &str,
    lossy: bool,
    warning: &mut Option<String>,
) -> Result<String, InputError> {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    let odd_length = !bytes.len().is_multiple_of(2);
    match String::from_utf16(&units) {
        Ok(text) if !odd_length => Ok(text),
        _ if lossy => {
            *warning = Some(format!(
                "{source_name}: invalid UTF-16 replaced by U+FFFD{}",
                if odd_length {
                    " (and an odd last byte dropped)"
                } else {
                    ""
                }
            ));
            Ok(String::from_utf16_lossy(&units))
        }
        _ => Err(InputError::InvalidUtf16 {
            source_name: source_name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_utf8_with_and_without_bom_and_utf16() {
        assert_eq!(
            decode_text("Été".as_bytes(), "a", false).unwrap().text,
            "Été"
        );
        assert_eq!(
            decode_text(b"\xef\xbb\xbfOui", "a", false).unwrap().text,
            "Oui"
        );
        let le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("Non é".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&le, "a", false).unwrap().text, "Non é");
        let be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("Si".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_text(&be, "a", false).unwrap().text, "Si");
    }

    #[test]
    fn rejects_empty_binary_and_invalid_utf8_with_the_offset() {
        assert!(matches!(
            decode_text(b"", "f", false),
            Err(InputError::Empty { .. })
        ));
        assert!(matches!(
            decode_text(b" \n\t", "f", false),
            Err(InputError::Empty { .. })
        ));
        assert!(matches!(
            decode_text(b"PK\x03\x04\x00\x01", "f", true),
            Err(InputError::Binary { offset: 4, .. })
        ));
        let err = decode_text(b"caf\xe9 noir", "f.txt", false).unwrap_err();
        assert!(matches!(
            err,
            InputError::InvalidUtf8 {
                offset: 3,
                byte: 0xe9,
                ..
            }
        ));
        assert!(err.to_string().contains("offset 3"), "{err}");
    }

    #[test]
    fn lossy_replaces_invalid_sequences_and_says_where() {
        let decoded = decode_text(b"caf\xe9 \xef\xbf\xbd noir \xff", "f.txt", true).unwrap();
        assert_eq!(decoded.text, "caf\u{fffd} \u{fffd} noir \u{fffd}");
        // Two replaced: the U+FFFD that was in the input is not counted.
        let warning = decoded.warning.unwrap();
        assert!(warning.contains("2 invalid UTF-8 sequence(s)"), "{warning}");
        assert!(warning.contains("byte offset 3"), "{warning}");
        let odd = [0xff, 0xfe, b'O', 0, b'k', 0, 0x00, 0xd8, b'!'];
        assert!(decode_text(&odd, "f", false).is_err());
        let decoded = decode_text(&odd, "f", true).unwrap();
        assert_eq!(decoded.text, "Ok\u{fffd}");
        assert!(decoded.warning.is_some());
        assert_eq!(decode_text(b"ok", "f", true).unwrap().warning, None);
    }
}
