//! `precis summarize` end to end: the extractive part on the real embedding model, the TF-IDF
//! fallback without it, the option checks, and the abstractive part with provenance on the
//! small Qwen model. Tests that need a model not in the cache print the fetch command and skip,
//! or fail under PRECIS_REQUIRE_MODELS=1.

mod support;

use std::process::Command;

use precis::load::{Catalog, Store, StoreConfig};
use serde_json::Value;

const ARTICLE: &str = "\
Gary Locke will be confirmed as Kilmarnock's permanent manager on Friday, eight weeks after he was asked to take charge until the end of the season.
An announcement will be made by the Rugby Park club on Friday morning, with the former Hearts boss being given a three-year deal.
The weather in Ayrshire was mild and the club shop sold scarves all afternoon.
Locke replaced Allan Johnston on a caretaker basis in February and the team went unbeaten in his first six games in charge.
Source : https://example.org/locke.html
Comment (0)
";

fn cached(id: &str) -> bool {
    let catalog = Catalog::builtin().unwrap();
    let located = Store::new(StoreConfig::from_env()).locate(catalog.get(id).unwrap());
    let missing = match &located {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    support::require::required(located.ok(), &missing, &format!("precis models fetch {id}"))
        .is_some()
}

fn precis(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("article.en.txt");
    std::fs::write(&input, ARTICLE).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_precis"));
    command
        .arg("--quiet")
        .arg("summarize")
        .arg(&input)
        .args(args)
        .env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = precis(&all, env);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn key_sentences_with_the_embedding_model() {
    if !cached("all-minilm-l6-v2") {
        return;
    }
    let report = json(&["--no-abstractive", "--sentences", "2"], &[]);
    let summary = &report["summary"];
    assert_eq!(summary["similarity"], "all-minilm-l6-v2");
    assert!(summary.get("abstractive").is_none());
    let picked = summary["extractive"].as_array().unwrap();
    assert_eq!(picked.len(), 2);
    let places: Vec<(u64, u64)> = picked
        .iter()
        .map(|s| {
            (
                s["paragraph"].as_u64().unwrap(),
                s["sentence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        places.windows(2).all(|w| w[0] < w[1]),
        "article order: {places:?}"
    );
    assert_eq!(places[0], (0, 0), "the lead is central here");
    for s in picked {
        let score = s["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(!s["text"].as_str().unwrap().contains("weather"));
    }
    assert_eq!(report["fidelity"], Value::Array(vec![]));
    assert_eq!(report["warnings"], Value::Array(vec![]));

    let (code, text, _) = precis(&["--no-abstractive", "--sentences", "2"], &[]);
    assert_eq!(code, 0);
    assert!(text.starts_with("Key sentences"), "{text}");
    assert!(text.contains("[1.1]"), "{text}");
}

#[test]
fn without_the_embedding_model_tf_idf_takes_over_and_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let home = empty.path().to_str().unwrap();
    let report = json(
        &["--no-abstractive"],
        &[("HF_HOME", home), ("HF_HUB_CACHE", &format!("{home}/hub"))],
    );
    assert_eq!(report["summary"]["similarity"], "tf-idf");
    assert_eq!(report["summary"]["extractive"].as_array().unwrap().len(), 3);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("TF-IDF") && warnings.contains("precis models fetch all-minilm-l6-v2"),
        "{warnings}"
    );
}

#[test]
fn nothing_to_summarise_is_a_usage_error() {
    let (code, _, stderr) = precis(&["--no-abstractive", "--no-extractive"], &[]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn abstractive_sentences_carry_their_support() {
    if !cached("all-minilm-l6-v2") || !cached("qwen2.5-coder-0.5b-instruct") {
        return;
    }
    let report = json(
        &[
            "--model",
            "qwen2.5-coder-0.5b-instruct",
            "--sentences",
            "2",
            "--max-tokens",
            "120",
            "--summary-sentences",
            "2-3",
            "--summary-words",
            "60",
        ],
        &[],
    );
    let abstractive = &report["summary"]["abstractive"];
    assert_eq!(abstractive["model"], "qwen2.5-coder-0.5b-instruct");
    assert_eq!(abstractive["route"], "whole");
    let text = abstractive["text"].as_str().unwrap();
    // One candidate per style, perhaps one more with its flagged sentences rewritten, and the
    // same again held to shorter runs when the best of them still copies (the 0.5B model's do
    // here); exactly one chosen, and it is the paragraph reported, its measures with it.
    let candidates = abstractive["candidates"].as_array().unwrap();
    assert!((3..=8).contains(&candidates.len()), "{candidates:#?}");
    let chosen: Vec<&Value> = candidates.iter().filter(|c| c["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{candidates:#?}");
    assert_eq!(chosen[0]["text"], abstractive["text"]);
    assert_eq!(chosen[0]["properties"], abstractive["properties"]);
    for candidate in candidates {
        let properties = &candidate["properties"];
        let sentences = properties["sentences"].as_u64().unwrap();
        let words = properties["words"].as_u64().unwrap();
        let shortcomings = candidate["shortcomings"].as_array().unwrap();
        // The asked form is what the candidates are judged by.
        let off_form = !(2..=3).contains(&sentences) || words > 60;
        assert_eq!(
            off_form,
            shortcomings
                .iter()
                .any(|s| s.as_str().unwrap().contains("asked")
                    || s.as_str().unwrap().contains("at most 60")),
            "{candidate:#?}"
        );
    }
    let sentences = abstractive["sentences"].as_array().unwrap();
    assert!(!sentences.is_empty(), "{text}");
    for s in sentences {
        assert!(text.contains(s["text"].as_str().unwrap()));
        let support = s["support"].as_array().unwrap();
        assert_eq!(s["supported"].as_bool().unwrap(), !support.is_empty());
        for link in support {
            assert!(link["similarity"].as_f64().unwrap() >= 0.49);
            assert!(link["paragraph"].as_u64().unwrap() < 4);
        }
    }
    // A summary of this article says who was confirmed: at least one sentence is supported.
    assert!(
        sentences.iter().any(|s| s["supported"] == true),
        "{sentences:#?}"
    );
    assert_eq!(report["summary"]["extractive"].as_array().unwrap().len(), 2);
    assert!(report["timings"]["summarize_ms"].as_u64().unwrap() > 0);
}

#[test]
fn a_long_article_is_summarised_by_sections_then_together() {
    if !cached("all-minilm-l6-v2") || !cached("qwen2.5-coder-0.5b-instruct") {
        return;
    }
    // Requests of at most 60 article tokens make the test article "long": each of its
    // body paragraphs is a section (the default, 2,048 tokens, would need an article that
    // takes minutes in a test build).
    let report = json(
        &[
            "--no-extractive",
            "--model",
            "qwen2.5-coder-0.5b-instruct",
            "--max-tokens",
            "120",
            "--summary-request-tokens",
            "60",
        ],
        &[],
    );
    let abstractive = &report["summary"]["abstractive"];
    assert_eq!(abstractive["route"], "sections");
    let sections = abstractive["sections"].as_array().unwrap();
    assert!(sections.len() >= 2, "{sections:#?}");
    assert!(sections
        .iter()
        .all(|s| !s["text"].as_str().unwrap().trim().is_empty()));
    // The paragraph is written from the sections' summaries and measured against the article.
    assert!(abstractive["candidates"].as_array().unwrap().len() >= 3);
    assert!(!abstractive["text"].as_str().unwrap().trim().is_empty());
    assert!(abstractive["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["supported"] == true));
}
