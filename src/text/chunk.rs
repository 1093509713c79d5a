//! Cutting text into pieces that fit one model request, at sentence boundaries where possible
//! and never by dropping anything.

use super::segment::sentences;

/// Splits `text` into chunks of at most `max_tokens` (as `count` measures them), packing whole
/// sentences; a sentence too long on its own is cut at clause breaks, then at spaces, then
/// between characters. Joining the chunks gives `text` back.
pub fn chunks_within<E>(
    text: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<Vec<String>, E> {
    let max_tokens = max_tokens.max(1);
    let mut pieces = Vec::new();
    for sentence in sentences(text) {
        split_to_fit(sentence, max_tokens, count, 0, &mut pieces)?;
    }
    // Pack consecutive pieces while they fit.
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        let candidate = format!("{current}{piece}");
        if current.is_empty() || count(&candidate)? <= max_tokens {
            current = candidate;
        } else {
            chunks.push(std::mem::take(&mut current));
            current = piece;
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Separators tried in turn to cut a piece that is too long.
const CUTS: [&str; 3] = ["; ", ", ", " "];

fn split_to_fit<E>(
    piece: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> Result<usize, E>,
    level: usize,
    out: &mut Vec<String>,
) -> Result<(), E> {
    if count(piece)? <= max_tokens {
        out.push(piece.to_string());
        return Ok(());
    }
    let parts: Vec<&str> = match CUTS.get(level) {
        Some(separator) => piece.split_inclusive(separator).collect(),
        // No separator left: cut between characters, halving until each half fits.
        None => {
            let middle = piece
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| i >= piece.len() / 2)
                .filter(|&i| i > 0)
                .unwrap_or(piece.len());
            if middle >= piece.len() {
                out.push(piece.to_string());
                return Ok(());
            }
            vec![&piece[..middle], &piece[middle..]]
        }
    };
    if parts.len() == 1 && level < CUTS.len() {
        return split_to_fit(piece, max_tokens, count, level + 1, out);
    }
    for part in parts {
        split_to_fit(part, max_tokens, count, level + 1, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Result<usize, ()> {
        Ok(s.split_whitespace().count())
    }

    #[test]
    fn packs_sentences_and_never_loses_text() {
        let text =
            "Un deux trois. Quatre cinq. Six sept huit neuf dix onze, douze treize quatorze. Fin.";
        let chunks = chunks_within(text, 5, &words).unwrap();
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| words(c).unwrap() <= 5), "{chunks:?}");
        assert_eq!(chunks[0], "Un deux trois. Quatre cinq. ");
    }

    #[test]
    fn a_paragraph_without_punctuation_is_cut_at_spaces() {
        let text = "mot ".repeat(1000);
        let chunks = chunks_within(&text, 100, &words).unwrap();
        assert_eq!(chunks.concat(), text);
        assert_eq!(chunks.len(), 10);
    }

    #[test]
    fn one_enormous_word_is_cut_between_characters() {
        let chars = |s: &str| -> Result<usize, ()> { Ok(s.chars().count()) };
        let text = "é".repeat(1000);
        let chunks = chunks_within(&text, 300, &chars).unwrap();
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| c.chars().count() <= 300));
    }
}
