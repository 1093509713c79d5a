//! Turning the bytes a user gave into article text, or a clear reason why not.

use crate::failure::FailureKind;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{source_name} is empty: there is nothing to translate")]
    Empty { source_name: String },
    #[error("{source_name} looks like a binary file (a NUL byte at offset {offset}), not text")]
    Binary { source_name: String, offset: usize },
    #[error("{source_name} is not valid UTF-8: invalid byte 0x{byte:02x} at offset {offset}; convert it first (for example `iconv -f latin1 -t utf-8`)")]
    InvalidUtf8 {
        source_name: String,
        offset: usize,
        byte: u8,
    },
    #[error("{source_name} starts with a UTF-16 byte-order mark but is not valid UTF-16")]
    InvalidUtf16 { source_name: String },
    #[error("cannot read {source_name}: {source}")]
    Read {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
}

impl InputError {
    pub fn kind(&self) -> FailureKind {
        FailureKind::Input
    }
}

/// Decodes an article: UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order
/// mark; rejects binary data and text with nothing but whitespace. `source_name` is how the
/// user knows the input (a path, or "standard input").
pub fn decode_text(bytes: &[u8], source_name: &str) -> Result<String, InputError> {
    let source_name = source_name.to_string();
    let text = if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        decode_utf16(rest, u16::from_le_bytes, &source_name)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        decode_utf16(rest, u16::from_be_bytes, &source_name)?
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
    Ok(text)
}

fn decode_utf16(
    bytes: &[u8],
    unit: fn([u8; 2]) -> u16,
    source_name: &str,
) -> Result<String, InputError> {
    let invalid = || InputError::InvalidUtf16 {
        source_name: source_name.to_string(),
    };
    if !bytes.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16(&units).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_utf8_with_and_without_bom_and_utf16() {
        assert_eq!(decode_text("Été".as_bytes(), "a").unwrap(), "Été");
        assert_eq!(decode_text(b"\xef\xbb\xbfOui", "a").unwrap(), "Oui");
        let le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("Non é".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&le, "a").unwrap(), "Non é");
        let be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("Si".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_text(&be, "a").unwrap(), "Si");
    }

    #[test]
    fn rejects_empty_binary_and_invalid_utf8_with_the_offset() {
        assert!(matches!(
            decode_text(b"", "f"),
            Err(InputError::Empty { .. })
        ));
        assert!(matches!(
            decode_text(b" \n\t", "f"),
            Err(InputError::Empty { .. })
        ));
        assert!(matches!(
            decode_text(b"PK\x03\x04\x00\x01", "f"),
            Err(InputError::Binary { offset: 4, .. })
        ));
        let err = decode_text(b"caf\xe9 noir", "f.txt").unwrap_err();
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
}
