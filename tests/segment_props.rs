//! Properties of the sentence segmenter on generated text: it never panics, its spans cover
//! the input exactly, and joining the sentences gives the input back.

use precis::text::segment::{sentence_spans, sentences};
use proptest::prelude::*;

/// Pieces of news text that exercise every rule of the segmenter.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("M. ".to_string()),
        Just("MM. ".to_string()),
        Just("Mme ".to_string()),
        Just("U.S. ".to_string()),
        Just("etc. ".to_string()),
        Just("« ".to_string()),
        Just(" »".to_string()),
        Just("“".to_string()),
        Just("”".to_string()),
        Just("\"".to_string()),
        Just("’".to_string()),
        Just(">>> ".to_string()),
        Just("[…]".to_string()),
        Just("...".to_string()),
        Just("…".to_string()),
        Just("3,5 ".to_string()),
        Just("3.5".to_string()),
        Just("15.08.2025".to_string()),
        Just("https://x.vn/a.html".to_string()),
        Just("\n".to_string()),
        Just("\u{a0}".to_string()),
        Just("\u{202f}".to_string()),
        "[.!?;:, ]{1,3}",
        "[A-ZÉ][a-zé]{0,8}",
        "[a-zéèàç]{1,8}",
        "[0-9]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

fn news_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..60).prop_map(|pieces| pieces.concat())
}

fn check(text: &str) {
    let spans = sentence_spans(text);
    assert!(!spans.is_empty());
    assert_eq!(spans[0].start, 0);
    assert_eq!(spans.last().unwrap().end, text.len());
    for pair in spans.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "spans must be contiguous");
        assert!(
            pair[0].start < pair[0].end,
            "only the last span of empty text may be empty"
        );
    }
    assert_eq!(sentences(text).concat(), text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn news_like_text_joins_back(text in news_text()) {
        check(&text);
    }

    #[test]
    fn arbitrary_unicode_joins_back(text in any::<String>()) {
        check(&text);
    }
}
