//! A 5 MB article through the real `precis` binary: every paragraph translated (nothing
//! truncated or skipped), progress shown along the way, and peak memory bounded. The engine is
//! the tiny random Marian model from the fake hub on 127.0.0.1, the fastest there is; this
//! file holds one test so that the peak memory of its children is that run's alone.

mod support;

use serde_json::Value;
use support::tiny_marian::{Fixture, WORDS};

/// Paragraphs of 16 ten-word sentences (one Marian batch each) up to `bytes`; the number of
/// paragraphs and of words.
fn article(bytes: usize) -> (String, usize, usize) {
    let mut text = String::with_capacity(bytes + 2_000);
    let (mut paragraphs, mut words) = (0, 0);
    let mut n = 0usize;
    while text.len() < bytes {
        for _ in 0..16 {
            for w in 0..10 {
                n = n.wrapping_mul(31).wrapping_add(7) % 1_000_003;
                let word = WORDS[n % WORDS.len()];
                if w == 0 {
                    text.push_str(&word[..1].to_uppercase());
                    text.push_str(&word[1..]);
                } else {
                    text.push(' ');
                    text.push_str(word);
                }
                words += 1;
            }
            text.push_str(". ");
        }
        text.push_str("\n\n");
        paragraphs += 1;
    }
    (text, paragraphs, words)
}

/// The largest peak resident set of the children this process has waited for, in KiB.
fn children_peak_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // Safety: getrusage fills the struct it is given and reads nothing else.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()),
            0
        );
        usage.assume_init()
    };
    usage.ru_maxrss
}

#[test]
fn a_5_mb_article_is_translated_whole_in_bounded_memory_with_progress() {
    let fx = Fixture::new();
    let (text, paragraphs, words) = article(5 * 1024 * 1024);
    let input = fx.file("big.txt", text.as_bytes());

    let run = fx.translate(&input, &["--format", "json"]);
    run.expect_code(0);
    // A line per tenth of the article (stderr is not a terminal here).
    for percent in (10..=90).step_by(10) {
        run.expect_stderr(&format!("({percent}%)"));
    }
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let details = report["translation"]["details"].as_array().unwrap();
    assert_eq!(details.len(), paragraphs);
    let mut source_tokens = 0;
    for paragraph in details {
        assert_eq!(paragraph["translated"], true);
        for request in paragraph["requests"].as_array().unwrap() {
            source_tokens += request["prompt_tokens"].as_u64().unwrap();
        }
    }
    // Every word is at least one source token: nothing was cut off.
    assert!(source_tokens >= words as u64, "{source_tokens} < {words}");
    // The text in, the translation and the JSON out are a few times 5 MB; the tiny model a
    // few. 400 MiB leaves room for allocator slack, not for a copy per paragraph or a cache
    // that grows with the article.
    let peak_kib = children_peak_rss_kib();
    eprintln!("peak RSS of precis: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 400 * 1024, "peak RSS {peak_kib} KiB");
}
