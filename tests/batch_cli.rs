//! `precis batch` end to end on the tiny Marian model (fetched once from the fake hub, then
//! offline): shards that cover every article exactly once, a run killed with SIGKILL and
//! resumed, bad articles among good ones, folders of text and HTML, JSONL on standard input.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::precis::{finish, interrupt_when, Run};
use support::tiny_marian::{Fixture, GREEDY_TINY_MARIAN, ID};

const PARTIAL_FAILURE: i32 = 8;

/// A short French article, different for each `n`: French enough for the language check.
fn article(n: usize) -> String {
    format!(
        "Le sommet numéro {n} a eu lieu en Alaska, selon la Maison Blanche. Les deux présidents \
         ont parlé pendant {n} heures avec leurs délégations.\n\n\
         Moscou a salué une réunion constructive ; Kiev n'était pas invitée et les journalistes \
         sont restés dehors pendant toute la journée.\n"
    )
}

struct Batch {
    fixture: Fixture,
}

impl Batch {
    /// The fixture with the tiny model in its cache, so that every batch runs offline.
    fn new() -> Batch {
        let fixture = Fixture::new();
        fixture.precis.run(&["models", "fetch", ID]).expect_code(0);
        Batch { fixture }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.fixture.dir.path().join(name)
    }

    /// `precis batch` with the tiny model, greedy, key sentences only, then `args`.
    fn args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--offline", "batch"];
        all.extend(GREEDY_TINY_MARIAN);
        all.push("--no-abstractive");
        all.extend_from_slice(args);
        all
    }

    fn run(&self, args: &[&str]) -> Run {
        self.fixture.precis.run(&self.args(args))
    }

    /// A folder of `count` articles, `*.txt` with every fifth as `*.html`.
    fn folder(&self, name: &str, count: usize) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..count {
            if n % 5 == 4 {
                let html = format!(
                    "<html><head><script>var tracking = 1;</script></head><body><p>{}</p></body></html>",
                    article(n).replace("\n\n", "</p><p>")
                );
                std::fs::write(dir.join(format!("article-{n:02}.html")), html).unwrap();
            } else {
                std::fs::write(dir.join(format!("article-{n:02}.txt")), article(n)).unwrap();
            }
        }
        dir
    }
}

/// The result lines of a JSONL file, each checked to be a whole JSON object.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "torn last line:\n{text}"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn folder_ids(count: usize) -> BTreeSet<String> {
    (0..count)
        .map(|n| {
            let ext = if n % 5 == 4 { "html" } else { "txt" };
            format!("article-{n:02}.{ext}")
        })
        .collect()
}

/// A line with a translation of every paragraph and the key sentences.
fn assert_done(line: &Value) {
    assert!(line.get("error").is_none(), "{line}");
    let paragraphs = line["translation"]["paragraphs"].as_array().unwrap();
    assert!(!paragraphs.is_empty(), "{line}");
    assert_eq!(
        Some(paragraphs.len() as u64),
        line["input"]["paragraphs"].as_u64()
    );
    assert!(line["summary"]["extractive"].is_array(), "{line}");
    assert_eq!(line["text_sha256"].as_str().unwrap().len(), 64, "{line}");
}

#[test]
fn three_shard_processes_cover_every_article_exactly_once() {
    let batch = Batch::new();
    let folder = batch.folder("articles", 30);
    let folder = folder.to_str().unwrap();
    let outputs: Vec<PathBuf> = (0..3)
        .map(|i| batch.path(&format!("shard-{i}.jsonl")))
        .collect();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let output = outputs[i].to_str().unwrap();
            batch
                .fixture
                .precis
                .spawn(&batch.args(&[folder, "--shard", &shard, "-o", output]))
        })
        .collect();
    let mut all = Vec::new();
    for (child, output) in children.into_iter().zip(&outputs) {
        finish(child).expect_code(0);
        let shard = lines(output);
        assert!(!shard.is_empty(), "an empty shard proves little");
        shard.iter().for_each(assert_done);
        all.extend(ids(&shard));
    }
    assert_eq!(all.len(), 30, "{all:?}");
    let unique: BTreeSet<String> = all.into_iter().collect();
    assert_eq!(unique, folder_ids(30));

    // The same shard again does nothing: every article of it is done.
    let again = batch.run(&[folder, "--shard", "1/3", "-o", outputs[1].to_str().unwrap()]);
    again.expect_code(0).expect_stderr("already done");
    assert_eq!(lines(&outputs[1]).len(), ids(&lines(&outputs[1])).len());
}

#[test]
fn killed_in_the_middle_then_run_again_gives_every_article_once_and_no_torn_line() {
    let batch = Batch::new();
    let folder = batch.folder("articles", 30);
    let output = batch.path("results.jsonl");
    let args = batch.args(&[folder.to_str().unwrap(), "-o", output.to_str().unwrap()]);

    let mut child = batch.fixture.precis.spawn(&args);
    let started = Instant::now();
    let written = |path: &Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
    while written(&output) < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let killed = finish(child);
    assert_eq!(killed.code, -1, "killed by a signal");
    let before = lines(&output);
    assert!(before.len() < 30, "the kill came too late to test anything");

    // A write that SIGKILL cut short, as it can be: half a line, no newline.
    let text = std::fs::read_to_string(&output).unwrap();
    let torn_line = text.lines().next().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    file.write_all(&torn_line.as_bytes()[..torn_line.len() / 2])
        .unwrap();
    drop(file);

    let resumed = batch.fixture.precis.run(&args);
    resumed
        .expect_code(0)
        .expect_stderr("dropped the last line")
        .expect_stderr(&format!("{} already done", before.len()));
    let after = lines(&output);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "earlier lines kept as they were"
    );
    assert_eq!(after.len(), 30);
    after.iter().for_each(assert_done);
    let unique: BTreeSet<String> = ids(&after).into_iter().collect();
    assert_eq!(unique, folder_ids(30));
}

#[test]
fn bad_articles_get_error_lines_the_others_are_done_and_the_exit_code_says_so() {
    let batch = Batch::new();
    let english = "The summit took place in Alaska, according to the White House, and the two \
                   presidents talked for three hours with their delegations while the reporters \
                   waited outside for the whole day.";
    let long = article(99).repeat(40);
    let records = [
        serde_json::json!({"id": "good-1", "text": article(1), "url": "https://example.org/1"}),
        serde_json::json!({"id": "empty", "text": "  \n "}),
        serde_json::json!({"id": "english", "text": english}),
        serde_json::json!({"id": "good-2", "html": format!("<p>{}</p>", article(2))}),
        serde_json::json!({"id": "long", "text": long}),
        serde_json::json!({"text": "no id"}),
        serde_json::json!({"id": "binary", "text": "Le sommet\u{0} a eu lieu."}),
        serde_json::json!({"id": 3, "text": article(3)}),
    ];
    let feed: String = records.iter().map(|r| format!("{r}\n")).collect();
    let feed_path = batch.path("feed.jsonl");
    std::fs::write(&feed_path, &feed).unwrap();
    let output = batch.path("results.jsonl");
    let args = [
        feed_path.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--max-chars",
        "2000",
    ];

    let run = batch.run(&args);
    run.expect_code(PARTIAL_FAILURE)
        .expect_stderr("5 of 8 articles failed");
    let results = lines(&output);
    let by_id: BTreeMap<String, &Value> = results
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect();
    assert_eq!(results.len(), 8, "{results:#?}");
    for id in ["good-1", "good-2", "3"] {
        assert_done(by_id[id]);
    }
    assert_eq!(by_id["good-1"]["url"], "https://example.org/1");
    assert_eq!(
        by_id["good-1"]["source"],
        format!("{}:1", feed_path.display())
    );
    for (id, kind) in [
        ("empty", "input"),
        ("english", "language"),
        ("long", "too_long"),
        (&format!("{}:6", feed_path.display()), "invalid_record"),
        ("binary", "input"),
    ] {
        let line = by_id[id];
        assert_eq!(line["error"]["kind"], kind, "{line}");
        assert!(!line["error"]["message"].as_str().unwrap().is_empty());
        assert!(line.get("translation").is_none(), "{line}");
    }

    // Run again: nothing to do, and the exit code still says the results are not all there.
    let again = batch.run(&args);
    again
        .expect_code(PARTIAL_FAILURE)
        .expect_stderr("in an earlier run");
    assert_eq!(lines(&output), results);

    // --any-language and a larger --max-chars with --retry-failed: the two come right, the
    // others fail again, and each id still has one line (the limits admit articles, and
    // --batch decodes the same replies together; neither changes how a result is made, so the
    // file's results still belong together).
    let mut retry = args.to_vec();
    retry[4] = "100000";
    retry.extend(["--any-language", "--retry-failed", "--batch", "2"]);
    let third = batch.run(&retry);
    third
        .expect_code(PARTIAL_FAILURE)
        .expect_stderr("3 of 8 articles failed");
    let retried = lines(&output);
    assert_eq!(ids(&retried).into_iter().collect::<BTreeSet<_>>().len(), 8);
    assert_eq!(retried.len(), 8);
    for line in &retried {
        match line["id"].as_str().unwrap() {
            "english" | "long" | "good-1" | "good-2" | "3" => assert_done(line),
            _ => assert!(line["error"].is_object(), "{line}"),
        }
    }

    // Other settings than the file's lines were made with: refused, the file untouched.
    let mut other = args.to_vec();
    other.extend(["--summary-words", "50"]);
    batch
        .run(&other)
        .expect_code(2)
        .expect_stderr("other settings");
    assert_eq!(lines(&output), retried);

    // --fail-fast stops at the first failure, with its line written.
    let fast_output = batch.path("fast.jsonl");
    let fast = batch.run(&[
        feed_path.to_str().unwrap(),
        "-o",
        fast_output.to_str().unwrap(),
        "--fail-fast",
    ]);
    fast.expect_code(PARTIAL_FAILURE)
        .expect_stderr("--fail-fast");
    assert_eq!(ids(&lines(&fast_output)), ["good-1", "empty"]);
}

#[test]
fn a_folder_of_text_and_html_and_jsonl_on_standard_input() {
    let batch = Batch::new();
    let folder = batch.folder("mixed", 5);
    std::fs::create_dir_all(folder.join("deeper")).unwrap();
    std::fs::write(
        folder.join("deeper/more.htm"),
        format!("<div>{}</div>", article(7)),
    )
    .unwrap();
    std::fs::write(folder.join("notes.md"), "not an article").unwrap();
    let output = batch.path("results.jsonl");
    batch
        .run(&[folder.to_str().unwrap(), "-o", output.to_str().unwrap()])
        .expect_code(0);
    let results = lines(&output);
    assert_eq!(
        ids(&results),
        [
            "article-00.txt",
            "article-01.txt",
            "article-02.txt",
            "article-03.txt",
            "article-04.html",
            "deeper/more.htm"
        ]
    );
    for line in &results {
        assert_done(line);
        for paragraph in line["translation"]["details"].as_array().unwrap() {
            let source = paragraph["source"].as_str().unwrap();
            assert!(
                !source.contains('<') && !source.contains("tracking"),
                "{source}"
            );
        }
    }

    // JSONL on standard input, results on standard output.
    let mut child = batch
        .fixture
        .precis
        .command(&batch.args(&["-"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feed = format!(
        "{}\n{}\n",
        serde_json::json!({"id": "a", "text": article(1)}),
        serde_json::json!({"id": "b", "html": format!("<p>{}</p>", article(2))})
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(feed.as_bytes())
        .unwrap();
    let run = finish(child);
    run.expect_code(0);
    let streamed: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&streamed), ["a", "b"]);
    streamed.iter().for_each(assert_done);

    // The results never go over an input, nor into an input folder as an article.
    let over_input = batch.run(&[
        folder.to_str().unwrap(),
        "-o",
        folder.join("article-00.txt").to_str().unwrap(),
    ]);
    over_input.expect_code(7).expect_stderr("among the inputs");
    assert_eq!(
        std::fs::read_to_string(folder.join("article-00.txt")).unwrap(),
        article(0)
    );
}

#[test]
fn ctrl_c_stops_within_an_article_and_the_same_command_finishes_the_batch() {
    let batch = Batch::new();
    let folder = batch.folder("articles", 3);
    // Long enough to be under way when the signal comes.
    let long: String = (0..120).map(article).collect::<Vec<_>>().join("\n");
    std::fs::write(folder.join("article-03.txt"), long).unwrap();
    std::fs::write(folder.join("article-04.txt"), article(4)).unwrap();
    let output = batch.path("results.jsonl");
    let args = batch.args(&[folder.to_str().unwrap(), "-o", output.to_str().unwrap()]);

    let stopped = interrupt_when(
        &batch.fixture.precis,
        &args,
        |line| line.contains("article-02.txt done"),
        Duration::from_millis(300),
    );
    stopped
        .expect_code(130)
        .expect_stderr("interrupted (Ctrl-C) during article-03.txt")
        .expect_stderr("the 3 articles done are in");
    assert_eq!(
        ids(&lines(&output)),
        ["article-00.txt", "article-01.txt", "article-02.txt"]
    );

    let resumed = batch.fixture.precis.run(&args);
    resumed.expect_code(0).expect_stderr("3 already done");
    let all = lines(&output);
    all.iter().for_each(assert_done);
    assert_eq!(
        ids(&all),
        [
            "article-00.txt",
            "article-01.txt",
            "article-02.txt",
            "article-03.txt",
            "article-04.txt"
        ]
    );
}
