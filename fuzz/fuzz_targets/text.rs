//! Paragraphs, sentences, input decoding, HTML stripping and the language check on arbitrary
//! bytes: no panic, and the segmentation invariants hold (nothing lost, nothing added).
#![no_main]

use libfuzzer_sys::fuzz_target;
use precis::text::{html, input, language, segment, Article};

fuzz_target!(|data: &[u8]| {
    let _ = input::decode_text(data, "fuzz", false);
    let Ok(decoded) = input::decode_text(data, "fuzz", true) else {
        return;
    };
    let text = decoded.text.as_str();

    let spans = segment::sentence_spans(text);
    assert_eq!(spans.first().map(|s| s.start), Some(0));
    assert_eq!(spans.last().map(|s| s.end), Some(text.len()));
    for pair in spans.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
    }
    assert_eq!(segment::sentences(text).concat(), text);

    let article = Article::parse(text);
    let texts: Vec<&str> = article.paragraphs.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(article.reassemble(&texts), article.text());
    for paragraph in &article.paragraphs {
        assert!(!paragraph.text.trim().is_empty());
        assert!(!paragraph.text.contains('\n'));
    }

    let stripped = html::to_text(text);
    assert!(stripped.ends_with('\n'));
    let _ = html::looks_like_html(text);
    let _ = language::detect(text);
});
