//! Turning a stream of token bytes into text pieces that are always valid UTF-8.
//!
//! Byte-level BPE tokens can end in the middle of a character (an accented letter or an emoji
//! is often split across two tokens), so a streamed piece must hold back an incomplete tail until
//! the next token completes it.

/// Incremental UTF-8 decoder: feed bytes, get back the complete characters so far.
///
/// Invalid sequences become U+FFFD exactly as [`String::from_utf8_lossy`] would replace them,
/// so the concatenation of all pieces equals the lossy decoding of all bytes, minus an
/// incomplete character left at the very end.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // Checked by from_utf8 just above.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or(""));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Bytes held back because they do not yet form a complete character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: &[&[u8]]) -> String {
        let mut s = Utf8Stream::new();
        chunks.iter().map(|c| s.push(c)).collect()
    }

    #[test]
    fn holds_back_split_characters() {
        let bytes = "é😀".as_bytes();
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.pending(), &bytes[2..3]);
        assert_eq!(s.push(&bytes[3..]), "😀");
        assert!(s.pending().is_empty());
    }

    #[test]
    fn matches_lossy_decoding_at_every_split() {
        let bytes: Vec<u8> = [
            "Déjà vu ".as_bytes(),
            &[0xff, 0xe2, 0x82],
            "x€".as_bytes(),
            &[0xf0, 0x9f],
            " fin 🇫🇷".as_bytes(),
        ]
        .concat();
        let want = String::from_utf8_lossy(&bytes);
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = streamed(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, want, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn incomplete_tail_is_kept_pending() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(b"ok\xe2\x82"), "ok");
        assert_eq!(s.pending(), b"\xe2\x82");
    }
}
