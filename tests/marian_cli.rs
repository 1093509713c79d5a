//! The Marian translator end to end: the real `precis` binary downloads the tiny Marian model
//! (tests/fixtures/marian/tiny) from the fake hub on 127.0.0.1 through the real download path,
//! then translates with it; `--translator auto` falls back to the LLM, quickly and saying why.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use precis::engines::marian::{MarianEngine, MARIAN_FILES};
use precis::infer::marian::Precision;
use precis::load::ModelFiles;
use precis::text::Article;
use support::fake_hub::resolve_path;
use support::precis::{closed_endpoint, Precis};
use support::tiny_marian::{
    greedy_translate_args, repo_files, tiny_dir, ARTICLE, COMMIT, ID, NO_LLM, REPO, REVISION,
};

const NETWORK: i32 = 6;

/// The shared fixture, with the article written as its input.
struct Fixture {
    shared: support::tiny_marian::Fixture,
    input: PathBuf,
}

impl std::ops::Deref for Fixture {
    type Target = support::tiny_marian::Fixture;

    fn deref(&self) -> &Self::Target {
        &self.shared
    }
}

impl Fixture {
    fn new(serve_model: bool) -> Fixture {
        let shared = support::tiny_marian::Fixture::serving(serve_model);
        let input = shared.file("article.fr.txt", ARTICLE.as_bytes());
        Fixture { shared, input }
    }

    fn input(&self) -> &str {
        self.input.to_str().unwrap()
    }

    fn marian_requests(&self) -> usize {
        self.hub
            .log()
            .iter()
            .filter(|r| r.path.contains(REPO))
            .count()
    }
}

/// What the library gives for the article's sentences with the same model and search: the
/// CLI must print exactly that (parity with HF is tests/marian_parity.rs's business).
fn expected_paragraphs(beams: usize, precision: Precision) -> Vec<String> {
    let files = ModelFiles::in_dir(ID, &tiny_dir(), &MARIAN_FILES);
    let engine = MarianEngine::load(&files, &Device::Cpu, precision).unwrap();
    let mut search = engine.search_config().clone();
    search.num_beams = beams;
    let paragraphs: [&[&str]; 2] = [
        &[
            "Le sommet a eu lieu en Alaska.",
            "Les deux présidents ont parlé pendant trois heures.",
        ],
        &["Moscou a salué une réunion constructive ; Kiev n'était pas invitée."],
    ];
    paragraphs
        .iter()
        .map(|sentences| {
            let (out, _) = engine
                .translate_sentences(sentences, &search, 16, &mut |_| {})
                .unwrap();
            out.iter()
                .map(|t| t.text.as_str())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn translate_with_marian_downloads_from_the_hub_and_translates() {
    let fx = Fixture::new(true);
    let run = fx.precis.run(&[
        "translate",
        "--translator",
        "marian",
        "--translation-model",
        ID,
        fx.input(),
        "--format",
        "json",
    ]);
    run.expect_code(0)
        .expect_stderr(&format!("translating with {ID} (Marian, 4 beams)"));
    // Every file came through the real hub path (the pull-request revision), once.
    for (name, _) in repo_files() {
        let path = resolve_path(REPO, REVISION, &name);
        assert!(fx.hub.requests(&path) >= 1, "{name} was not requested");
    }
    let snapshot = fx
        .precis
        .repo_dir(REPO)
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    assert!(snapshot.exists(), "{}", snapshot.display());

    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let translation = &report["translation"];
    assert_eq!(translation["model"], ID);
    let paragraphs: Vec<String> = translation["paragraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(paragraphs, expected_paragraphs(4, Precision::F32));
    let details = translation["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    // One request per paragraph: its sentences went as one batch, tokens counted.
    for paragraph in details {
        let requests = paragraph["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 1, "{paragraph}");
        assert!(requests[0]["prompt_tokens"].as_u64().unwrap() > 5);
    }

    // Cached now: offline, the hub is not asked again, and greedy is `--beams 1`.
    let before = fx.hub.total_requests();
    let offline = fx.precis.with_env("HF_HUB_OFFLINE", "1");
    let run = offline.run(&greedy_translate_args(fx.input(), &[]));
    run.expect_code(0)
        .expect_stderr(&format!("translating with {ID} (Marian, greedy)"));
    assert_eq!(fx.hub.total_requests(), before);
    // The text output keeps the article's layout: paragraphs where they were.
    let expected = Article::parse(ARTICLE).reassemble(&expected_paragraphs(1, Precision::F32));
    assert_eq!(run.stdout, format!("{}\n", expected.trim_end()));

    // --precision int8 prints what the library's int8 path gives, and says so.
    let run = offline.run(&greedy_translate_args(fx.input(), &["--precision", "int8"]));
    run.expect_code(0)
        .expect_stderr(&format!("translating with {ID} (Marian, greedy, int8)"));
    let expected = Article::parse(ARTICLE).reassemble(&expected_paragraphs(1, Precision::Int8));
    assert_eq!(run.stdout, format!("{}\n", expected.trim_end()));
}

#[test]
fn auto_uses_marian_when_it_can_be_fetched_or_is_cached() {
    let fx = Fixture::new(true);
    let args = [
        "translate",
        "--translation-model",
        ID,
        "--model",
        NO_LLM,
        fx.input(),
    ];
    let run = fx.precis.run(&args);
    run.expect_code(0)
        .expect_stderr(&format!("translating with {ID} (Marian, 4 beams; fetched)"));
    let run = fx.precis.run(&args);
    run.expect_code(0)
        .expect_stderr(&format!("translating with {ID} (Marian, 4 beams; cached)"));
    assert!(!run.stderr.contains(NO_LLM), "{}", run.stderr);
    // --quiet: no notice at all; warnings (the random model's fidelity findings) still print.
    let mut quiet = vec!["--quiet"];
    quiet.extend_from_slice(&args);
    let run = fx.precis.run(&quiet);
    run.expect_code(0);
    assert!(
        run.stderr
            .lines()
            .all(|line| line.starts_with("precis: warning: ")),
        "{}",
        run.stderr
    );
}

#[test]
fn auto_falls_back_to_the_llm_after_one_failed_hub_attempt() {
    // The hub answers, but has no such model (404): one request, then the LLM.
    let fx = Fixture::new(false);
    let run = fx.precis.run(&[
        "translate",
        "--translation-model",
        ID,
        "--model",
        NO_LLM,
        fx.input(),
    ]);
    // The notice names both engines and the reason; the LLM then fails to fetch (it is a
    // catalog entry no hub has), which is this test's way of stopping there.
    run.expect_code(NETWORK).expect_stderr(&format!(
        "precis: translating with the LLM {NO_LLM}: {ID} is not cached and cannot be fetched"
    ));
    assert_eq!(fx.marian_requests(), 1, "{:?}", fx.hub.log());
    let notice: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("translating with"))
        .collect();
    assert_eq!(notice.len(), 1, "{}", run.stderr);

    // No hub at all (nothing listens): as quick, with the reason.
    let gone = Precis::new(&fx.precis.hf_home, &fx.precis.catalog, &closed_endpoint());
    let started = Instant::now();
    let run = gone.run(&[
        "translate",
        "--translation-model",
        ID,
        "--model",
        NO_LLM,
        fx.input(),
    ]);
    assert!(started.elapsed() < Duration::from_secs(20));
    run.expect_code(NETWORK)
        .expect_stderr("tiny-marian is not cached and cannot be fetched: the hub is unreachable");

    // Offline: no attempt at all.
    let before = fx.hub.total_requests();
    let run = fx.precis.run(&[
        "--offline",
        "translate",
        "--translation-model",
        ID,
        "--model",
        NO_LLM,
        fx.input(),
    ]);
    run.expect_stderr(&format!(
        "{ID} is not cached and precis is offline (`precis models fetch {ID}` gets it)"
    ));
    assert_eq!(fx.hub.total_requests(), before);
}

#[test]
fn explicit_marian_does_not_fall_back() {
    let fx = Fixture::new(false);
    let run = fx.precis.run(&[
        "translate",
        "--translator",
        "marian",
        "--translation-model",
        ID,
        fx.input(),
    ]);
    run.expect_code(NETWORK);
    assert!(!run.stderr.contains("LLM"), "{}", run.stderr);
    // A model of another kind is refused by name.
    let run = fx.precis.run(&[
        "translate",
        "--translator",
        "marian",
        "--translation-model",
        NO_LLM,
        fx.input(),
    ]);
    run.expect_code(4)
        .expect_stderr("is a generate model, not a Marian translation model");
}
