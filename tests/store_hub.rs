//! The model store end to end: the real `precis` binary against the fake hub on 127.0.0.1,
//! with a temporary `HF_HOME` and a test catalog entry. No network beyond loopback.

mod support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::fake_hub::{git_blob_sha1, resolve_path, sha256_hex, FakeHub, Fault};
use support::precis::{
    closed_endpoint, finish, names_in, pseudo_random, write_entry, FileEntry, Precis,
};
use tempfile::TempDir;

const ID: &str = "test-tiny";
const REPO: &str = "org/name";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const WEIGHTS: &str = "model.safetensors";
const CONFIG: &str = "config.json";
const WEIGHTS_LEN: usize = 3 * 1024 * 1024 + 17;

const NOT_CACHED: i32 = 4;
const CORRUPT: i32 = 5;
const NETWORK: i32 = 6;

fn config() -> Vec<u8> {
    let mut text = String::from("{\n  \"model_type\": \"bert\",\n");
    for i in 0..12 {
        text.push_str(&format!("  \"param_{i}\": {},\n", i * 37));
    }
    text.push_str("  \"vocab_size\": 32000\n}\n");
    text.into_bytes()
}

fn weights() -> Vec<u8> {
    pseudo_random(WEIGHTS_LEN, 1)
}

/// The catalog's view of the weights: size and sha256 (of `content`, which is what the hub
/// serves unless a test says otherwise). config.json has no checksum in the catalog.
fn entry_files(weights_sha256: &str) -> Vec<FileEntry> {
    vec![
        FileEntry::named(CONFIG),
        FileEntry::checked(WEIGHTS, WEIGHTS_LEN as u64, weights_sha256),
    ]
}

/// A fake hub serving `org/name` at `main`, an empty cache and a catalog with `test-tiny`.
struct Fixture {
    hub: FakeHub,
    precis: Precis,
    _home: TempDir,
    _catalog: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Self::with_weights_sha256(&sha256_hex(&weights()))
    }

    fn with_weights_sha256(sha256: &str) -> Fixture {
        let hub = FakeHub::start();
        hub.add_repo(
            REPO,
            "main",
            COMMIT,
            vec![(CONFIG.into(), config()), (WEIGHTS.into(), weights())],
        );
        let home = tempfile::tempdir().unwrap();
        let catalog = tempfile::tempdir().unwrap();
        write_entry(catalog.path(), ID, REPO, "main", &entry_files(sha256));
        let precis = Precis::new(home.path(), catalog.path(), &hub.endpoint());
        Fixture {
            hub,
            precis,
            _home: home,
            _catalog: catalog,
        }
    }

    fn repo_dir(&self) -> PathBuf {
        self.precis.repo_dir(REPO)
    }

    fn blobs(&self) -> PathBuf {
        self.repo_dir().join("blobs")
    }

    fn snapshot(&self) -> PathBuf {
        self.repo_dir().join("snapshots").join(COMMIT)
    }

    /// The requests the hub has logged for the weights' resolve path since `since` (an index
    /// into the log), as their Range headers.
    fn weights_ranges_since(&self, since: usize) -> Vec<Option<String>> {
        let path = resolve_path(REPO, "main", WEIGHTS);
        self.hub.log()[since..]
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.range.clone())
            .collect()
    }

    fn fetch(&self) -> support::precis::Run {
        self.precis.run(&["--quiet", "models", "fetch", ID])
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The line of `precis models verify` (text) about `file`.
fn verify_line<'a>(stdout: &'a str, file: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(file))
        .unwrap_or_else(|| panic!("no verify line for {file}:\n{stdout}"))
}

/// Blob file names that look finished: 64 (sha256) or 40 (git sha1) hex digits, nothing
/// more.
fn complete_blobs(blobs: &Path) -> Vec<String> {
    names_in(blobs)
        .into_iter()
        .filter(|n| (n.len() == 64 || n.len() == 40) && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

fn corrupt_copies(blobs: &Path, blob: &str) -> Vec<String> {
    let prefix = format!("{blob}.corrupt-");
    names_in(blobs)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|stamp| !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

#[test]
fn fetch_downloads_into_the_hf_cache_and_verify_passes() {
    let fx = Fixture::new();
    let run = fx.fetch();
    run.expect_code(0);
    assert!(
        run.stderr.is_empty(),
        "--quiet prints nothing:\n{}",
        run.stderr
    );

    // The snapshot of the commit the hub named, with the right bytes, printed on stdout.
    let snapshot = fx.snapshot();
    let config_path = snapshot.join(CONFIG);
    let weights_path = snapshot.join(WEIGHTS);
    assert_eq!(std::fs::read(&config_path).unwrap(), config());
    assert_eq!(std::fs::read(&weights_path).unwrap(), weights());
    assert_eq!(
        lines(&run.stdout),
        [
            config_path.display().to_string(),
            weights_path.display().to_string()
        ]
    );
    // Blobs named as the hub names them: git blob id for the small file, sha256 for LFS.
    let blobs = complete_blobs(&fx.blobs());
    let mut expected = vec![git_blob_sha1(&config()), sha256_hex(&weights())];
    expected.sort();
    assert_eq!(blobs, expected);
    assert_eq!(
        std::fs::read_to_string(fx.repo_dir().join("refs/main")).unwrap(),
        COMMIT
    );

    let run = fx.precis.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(0);
    for file in [CONFIG, WEIGHTS] {
        let line = verify_line(&run.stdout, file);
        assert!(line.ends_with(" ok"), "{line}");
    }

    // config.json has no checksum in the catalog: it is checked against its blob's name,
    // the git blob id, and that counts as "ok", not "unchecked".
    let run = fx
        .precis
        .run(&["--quiet", "models", "verify", ID, "--format", "json"]);
    run.expect_code(0);
    let checks: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for check in checks {
        assert_eq!(check["model"], ID);
        assert_eq!(check["status"], "ok", "{check}");
    }
    assert_eq!(checks[0]["file"], CONFIG);
    assert_eq!(checks[0]["sha256"], sha256_hex(&config()));
    assert_eq!(checks[0]["size"], config().len());
    assert_eq!(checks[1]["file"], WEIGHTS);
    assert_eq!(checks[1]["sha256"], sha256_hex(&weights()));

    // Fetching what is cached asks the hub nothing.
    let before = fx.hub.total_requests();
    fx.fetch().expect_code(0);
    assert_eq!(fx.hub.total_requests(), before);
}

#[test]
fn cached_model_is_found_offline_without_a_request() {
    let mut fx = Fixture::new();
    fx.fetch().expect_code(0);
    let expected = [
        fx.snapshot().join(CONFIG).display().to_string(),
        fx.snapshot().join(WEIGHTS).display().to_string(),
    ];

    // Hub still up: offline commands must not touch it.
    let before = fx.hub.total_requests();
    let offline = fx.precis.with_env("HF_HUB_OFFLINE", "1");
    let run = offline.run(&["--quiet", "models", "path", ID]);
    run.expect_code(0);
    assert_eq!(lines(&run.stdout), expected);
    let run = fx
        .precis
        .run(&["--quiet", "--offline", "models", "fetch", ID]);
    run.expect_code(0);
    assert_eq!(lines(&run.stdout), expected);
    assert_eq!(fx.hub.total_requests(), before);

    // Hub gone.
    fx.hub.stop();
    let run = offline.run(&["--quiet", "models", "path", ID]);
    run.expect_code(0);
    assert_eq!(lines(&run.stdout), expected);
    let run = fx
        .precis
        .run(&["--quiet", "--offline", "models", "path", ID]);
    run.expect_code(0);
    assert_eq!(lines(&run.stdout), expected);
    let run = offline.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(0);
    assert_eq!(fx.hub.total_requests(), before);
}

#[test]
fn offline_and_not_cached_says_what_to_run() {
    let fx = Fixture::new();
    let fetch_command = format!("precis models fetch {ID}");
    let offline = fx.precis.with_env("HF_HUB_OFFLINE", "1");
    for (precis, args) in [
        (&offline, vec!["--quiet", "models", "path", ID]),
        (&offline, vec!["--quiet", "models", "fetch", ID]),
        (
            &fx.precis,
            vec!["--quiet", "--offline", "models", "fetch", ID],
        ),
        (
            &fx.precis,
            vec!["--quiet", "--offline", "models", "path", ID],
        ),
    ] {
        let run = precis.run(&args);
        run.expect_code(NOT_CACHED).expect_stderr(&fetch_command);
        assert!(run.stderr.contains("offline"), "{}", run.stderr);
    }
    // `models path` never goes online, offline or not.
    fx.precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED)
        .expect_stderr(&fetch_command);
    assert_eq!(fx.hub.total_requests(), 0);
    assert!(complete_blobs(&fx.blobs()).is_empty());
}

#[test]
fn corrupt_blob_is_moved_aside_and_fetched_again() {
    let fx = Fixture::new();
    fx.fetch().expect_code(0);
    let sha = sha256_hex(&weights());
    let blob = fx.blobs().join(&sha);
    {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&blob)
            .unwrap();
        let mut byte = [0u8; 1];
        file.seek(SeekFrom::Start(123_456)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(123_456)).unwrap();
        file.write_all(&[byte[0] ^ 0xff]).unwrap();
    }

    let run = fx.precis.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(CORRUPT);
    let line = verify_line(&run.stdout, WEIGHTS);
    assert!(line.ends_with(" CORRUPT"), "{}", run.stdout);
    assert!(verify_line(&run.stdout, CONFIG).ends_with(" ok"));
    assert!(run.stdout.contains("moved aside"), "{}", run.stdout);
    assert!(run.stderr.contains("fetch --force"), "{}", run.stderr);
    // Kept for inspection under another name; the snapshot no longer points at it.
    assert!(!blob.exists());
    let aside = corrupt_copies(&fx.blobs(), &sha);
    assert_eq!(aside.len(), 1, "{:?}", names_in(&fx.blobs()));
    assert!(run.stdout.contains(&aside[0]), "{}", run.stdout);
    assert!(std::fs::symlink_metadata(fx.snapshot().join(WEIGHTS)).is_err());

    // The damaged file is never handed out.
    fx.precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED)
        .expect_stderr(WEIGHTS);

    // A plain fetch gets it again (only the missing file).
    let before = fx.hub.log().len();
    fx.fetch().expect_code(0);
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
    let config_path = resolve_path(REPO, "main", CONFIG);
    assert!(fx.hub.log()[before..].iter().all(|r| r.path != config_path));
    let run = fx.precis.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(0);
    assert!(verify_line(&run.stdout, WEIGHTS).ends_with(" ok"));
    assert_eq!(corrupt_copies(&fx.blobs(), &sha), aside);
}

/// After a 404 for the weights: the config may be cached, the weights not in any form.
fn assert_no_trace_of_weights(fx: &Fixture) {
    let names = names_in(&fx.blobs());
    for blob in [sha256_hex(&weights()), git_blob_sha1(&weights())] {
        assert!(
            names.iter().all(|n| !n.starts_with(&blob)),
            "{blob} in {names:?}"
        );
    }
    assert_eq!(
        complete_blobs(&fx.blobs()),
        names
            .iter()
            .filter(|n| **n == git_blob_sha1(&config()))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(std::fs::symlink_metadata(fx.snapshot().join(WEIGHTS)).is_err());
}

#[test]
fn not_found_is_a_network_error_naming_the_file() {
    let fx = Fixture::new();
    fx.hub.set_fault(REPO, WEIGHTS, Fault::NotFound);
    let run = fx.fetch();
    run.expect_code(NETWORK)
        .expect_stderr(&format!(
            "the hub refused {WEIGHTS} of model {ID}: HTTP 404"
        ))
        .expect_stderr(&fx.hub.endpoint());
    assert_no_trace_of_weights(&fx);
    fx.precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED);

    // A catalog entry naming a file the repo lacks.
    let catalog = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut files = entry_files(&sha256_hex(&weights()));
    files.push(FileEntry::named("missing.bin"));
    write_entry(catalog.path(), "test-lacking", REPO, "main", &files);
    fx.hub.set_fault(REPO, WEIGHTS, Fault::None);
    let precis = Precis::new(home.path(), catalog.path(), &fx.hub.endpoint());
    let run = precis.run(&["--quiet", "models", "fetch", "test-lacking"]);
    run.expect_code(NETWORK)
        .expect_stderr("the hub refused missing.bin of model test-lacking: HTTP 404");
    let snapshot = precis.repo_dir(REPO).join("snapshots").join(COMMIT);
    assert!(std::fs::symlink_metadata(snapshot.join("missing.bin")).is_err());
    precis
        .run(&["--quiet", "models", "path", "test-lacking"])
        .expect_code(NOT_CACHED)
        .expect_stderr("missing.bin");
}

#[test]
fn cut_download_fails_then_resumes_where_it_stopped() {
    let fx = Fixture::new();
    // hf-hub resumes a cut transfer up to 3 times within one run, 500 KB each time here:
    // not enough for the 3 MB file, so the run fails.
    let cut = 500_000;
    fx.hub.set_fault(REPO, WEIGHTS, Fault::CutAfter(cut));
    let run = fx.fetch();
    run.expect_code(NETWORK)
        .expect_stderr("download was cut")
        .expect_stderr("run the same command again to resume");

    let sha = sha256_hex(&weights());
    let part = fx.blobs().join(format!("{sha}.part"));
    let received = std::fs::read(&part).unwrap();
    assert!(!received.is_empty() && received.len() < WEIGHTS_LEN);
    assert_eq!(received, weights()[..received.len()]);
    assert!(!fx.blobs().join(&sha).exists());
    assert!(std::fs::symlink_metadata(fx.snapshot().join(WEIGHTS)).is_err());
    assert_eq!(complete_blobs(&fx.blobs()), [git_blob_sha1(&config())]);
    // Every retry within the run went on from where the previous one stopped.
    let first_run = fx.weights_ranges_since(0);
    let content: Vec<String> = first_run
        .into_iter()
        .flatten()
        .filter(|r| r != "bytes=0-0")
        .collect();
    let expected: Vec<String> = (0..content.len())
        .map(|i| format!("bytes={}-", i * cut))
        .collect();
    assert_eq!(content, expected);
    assert_eq!(content.len() * cut, received.len());

    fx.hub.set_fault(REPO, WEIGHTS, Fault::None);
    let before = fx.hub.log().len();
    fx.fetch().expect_code(0);
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
    assert!(!part.exists());
    let rerun: Vec<_> = fx
        .weights_ranges_since(before)
        .into_iter()
        .filter(|r| r.as_deref() != Some("bytes=0-0"))
        .collect();
    assert_eq!(rerun, [Some(format!("bytes={}-", received.len()))]);
    fx.precis
        .run(&["--quiet", "models", "verify", ID])
        .expect_code(0);
}

#[test]
fn bytes_that_differ_from_the_catalog_are_rejected() {
    let wrong = sha256_hex(b"not the weights");
    let fx = Fixture::with_weights_sha256(&wrong);
    let run = fx.fetch();
    run.expect_code(CORRUPT)
        .expect_stderr("damaged")
        .expect_stderr(&format!("precis models fetch --force {ID}"))
        .expect_stderr(&wrong);
    let sha = sha256_hex(&weights());
    assert!(!fx.blobs().join(&sha).exists());
    assert_eq!(corrupt_copies(&fx.blobs(), &sha).len(), 1);
    assert!(std::fs::symlink_metadata(fx.snapshot().join(WEIGHTS)).is_err());
    fx.precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED);
}

#[test]
fn unknown_id_lists_the_known_ones() {
    let fx = Fixture::new();
    let run = fx.precis.run(&["--quiet", "models", "fetch", "unknown-id"]);
    run.expect_code(NOT_CACHED)
        .expect_stderr("unknown-id")
        .expect_stderr(ID)
        .expect_stderr("opus-mt-fr-en");
    assert_eq!(fx.hub.total_requests(), 0);
}

#[test]
fn import_checks_the_bytes_and_works_offline() {
    let home = tempfile::tempdir().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    write_entry(
        catalog.path(),
        ID,
        REPO,
        "main",
        &entry_files(&sha256_hex(&weights())),
    );
    let precis = Precis::new(home.path(), catalog.path(), &closed_endpoint())
        .with_env("HF_HUB_OFFLINE", "1");
    let weights_file = files.path().join("weights.bin");
    let config_file = files.path().join("config.json");
    std::fs::write(&weights_file, weights()).unwrap();
    std::fs::write(&config_file, config()).unwrap();
    let weights_arg = weights_file.to_str().unwrap();
    let config_arg = config_file.to_str().unwrap();

    // Wrong bytes first: refused, and nothing lands in the cache.
    let mut damaged = weights();
    damaged[1000] ^= 1;
    let damaged_file = files.path().join("damaged.bin");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let run = precis.run(&[
        "--quiet",
        "models",
        "import",
        ID,
        damaged_file.to_str().unwrap(),
        "--file",
        WEIGHTS,
    ]);
    run.expect_code(CORRUPT)
        .expect_stderr(&format!("is not {WEIGHTS} of model {ID}"))
        .expect_stderr("nothing was imported");
    // The user's file is neither moved nor called part of the cache.
    assert!(!run.stderr.contains("moved aside"), "{}", run.stderr);
    assert!(!run.stderr.contains("fetch --force"), "{}", run.stderr);
    assert_eq!(std::fs::read(&damaged_file).unwrap(), damaged, "left as is");
    let repo_dir = precis.repo_dir(REPO);
    assert!(names_in(&repo_dir.join("blobs")).is_empty());
    assert!(!repo_dir.join("snapshots").exists());
    assert!(!repo_dir.join("refs").exists());

    // A model with several files needs --file.
    let run = precis.run(&["--quiet", "models", "import", ID, weights_arg]);
    assert_ne!(run.code, 0);
    run.expect_stderr("--file");

    let run = precis.run(&[
        "--quiet",
        "models",
        "import",
        ID,
        weights_arg,
        "--file",
        WEIGHTS,
    ]);
    run.expect_code(0);
    let imported = PathBuf::from(run.stdout.trim());
    assert_eq!(std::fs::read(&imported).unwrap(), weights());
    // Not complete yet: the config is missing.
    precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED)
        .expect_stderr(CONFIG);
    precis
        .run(&[
            "--quiet", "models", "import", ID, config_arg, "--file", CONFIG,
        ])
        .expect_code(0);

    let run = precis.run(&["--quiet", "models", "path", ID]);
    run.expect_code(0);
    let paths = lines(&run.stdout);
    assert_eq!(paths.len(), 2);
    assert_eq!(std::fs::read(paths[0]).unwrap(), config());
    assert_eq!(paths[1], imported.display().to_string());
    let run = precis.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(0);
    for file in [CONFIG, WEIGHTS] {
        assert!(
            verify_line(&run.stdout, file).ends_with(" ok"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn concurrent_fetches_share_one_download() {
    let fx = Fixture::new();
    // Slow answers for the weights, so that the two processes overlap (if they do not, the
    // assertions hold all the same).
    fx.hub
        .set_fault(REPO, WEIGHTS, Fault::Stall(Duration::from_millis(700)));
    let first = fx.precis.spawn(&["--quiet", "models", "fetch", ID]);
    let second = fx.precis.spawn(&["--quiet", "models", "fetch", ID]);
    let (first, second) = (finish(first), finish(second));
    first.expect_code(0);
    second.expect_code(0);
    assert_eq!(lines(&first.stdout), lines(&second.stdout));
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
    fx.precis
        .run(&["--quiet", "models", "verify", ID])
        .expect_code(0);
    // One process downloaded; the other found the files in the cache once it had the lock.
    let downloads = fx
        .weights_ranges_since(0)
        .into_iter()
        .filter(|r| r.as_deref() == Some("bytes=0-"))
        .count();
    assert_eq!(downloads, 1);
}

/// The content requests (not hf-hub's `bytes=0-0` probes) for the weights since `since`.
fn content_ranges_since(fx: &Fixture, since: usize) -> Vec<String> {
    fx.weights_ranges_since(since)
        .into_iter()
        .map(|r| r.unwrap_or_default())
        .filter(|r| r != "bytes=0-0")
        .collect()
}

/// A download cut into `pieces` transfers, then a clean rerun.
fn cut_into_pieces_then_rerun(pieces: usize) {
    let fx = Fixture::new();
    let cut = WEIGHTS_LEN.div_ceil(pieces);
    fx.hub.set_fault(REPO, WEIGHTS, Fault::CutAfter(cut));
    let first = fx.fetch();
    let part = fx.blobs().join(format!("{}.part", sha256_hex(&weights())));
    let received = match first.code {
        0 => {
            assert_eq!(
                std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
                weights()
            );
            0
        }
        NETWORK => {
            // A failed run leaves a prefix of the file, never all of it.
            let received = std::fs::read(&part).unwrap();
            assert!(
                received.len() < WEIGHTS_LEN,
                "{pieces} pieces: the run failed with the whole file received:\n{}",
                first.stderr
            );
            assert_eq!(received, weights()[..received.len()]);
            received.len()
        }
        _ => panic!("{pieces} pieces: unexpected {first:?}"),
    };

    fx.hub.set_fault(REPO, WEIGHTS, Fault::None);
    let before = fx.hub.log().len();
    let rerun = fx.fetch();
    assert_eq!(rerun.code, 0, "{pieces} pieces: rerun failed: {rerun:?}");
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
    if received > 0 {
        assert_eq!(
            content_ranges_since(&fx, before),
            [format!("bytes={received}-")],
            "{pieces} pieces"
        );
    }
}

#[test]
fn a_rerun_after_cuts_never_finds_the_file_damaged() {
    // However many resumes one run allows, the run that gets the last byte succeeds, and a
    // run that fails leaves a .part that the next run completes.
    let runs: Vec<_> = (2..=6)
        .map(|pieces| std::thread::spawn(move || cut_into_pieces_then_rerun(pieces)))
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

#[test]
fn every_retry_resumes_from_the_part_file() {
    let fx = Fixture::new();
    fx.hub.set_fault(REPO, WEIGHTS, Fault::CutAfter(500_000));
    fx.fetch().expect_code(NETWORK);
    let part = fx.blobs().join(format!("{}.part", sha256_hex(&weights())));
    let received = std::fs::metadata(&part).unwrap().len();
    assert!(received > 0);

    // Answers without a byte of content: every retry must still ask for what is missing,
    // never the whole file again (which would be appended to the .part).
    fx.hub.set_fault(REPO, WEIGHTS, Fault::CutAfter(0));
    let before = fx.hub.log().len();
    fx.fetch()
        .expect_code(NETWORK)
        .expect_stderr("download was cut");
    let asked = content_ranges_since(&fx, before);
    assert!(asked.len() > 1, "{asked:?}");
    for range in &asked {
        assert_eq!(range, &format!("bytes={received}-"), "{asked:?}");
    }
    assert_eq!(std::fs::metadata(&part).unwrap().len(), received);

    fx.hub.set_fault(REPO, WEIGHTS, Fault::None);
    fx.fetch().expect_code(0);
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
}

/// Leaves `content` where hf-hub keeps a partial download of the weights.
fn plant_part_file(fx: &Fixture, content: &[u8]) -> PathBuf {
    std::fs::create_dir_all(fx.blobs()).unwrap();
    let part = fx.blobs().join(format!("{}.part", sha256_hex(&weights())));
    std::fs::write(&part, content).unwrap();
    part
}

#[test]
fn a_leftover_part_file_as_long_as_the_file_does_not_block_it() {
    // A .part holding the whole file (a crash just before the rename) or more: hf-hub asks
    // for the bytes after its end (416) or gives up (invalid resume), on every run.
    let mut longer = weights();
    longer.extend_from_slice(b"extra");
    for leftover in [weights(), longer] {
        let fx = Fixture::new();
        let part = plant_part_file(&fx, &leftover);
        fx.fetch().expect_code(0);
        assert_eq!(
            std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
            weights()
        );
        assert!(!part.exists());
    }
}

#[test]
fn a_damaged_part_file_is_caught_by_the_checksum() {
    // hf-hub appends to whatever .part it finds; the result is checked before use.
    let fx = Fixture::new();
    plant_part_file(&fx, &[0u8; 4096]);
    fx.fetch()
        .expect_code(CORRUPT)
        .expect_stderr("damaged")
        .expect_stderr(&format!("precis models fetch --force {ID}"));
    fx.precis
        .run(&["--quiet", "models", "path", ID])
        .expect_code(NOT_CACHED);
    fx.fetch().expect_code(0);
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
}

/// The weights' `.part` file once it holds at least `len` bytes, waiting up to a minute.
fn wait_for_part(fx: &Fixture, len: u64) -> PathBuf {
    let part = fx.blobs().join(format!("{}.part", sha256_hex(&weights())));
    for _ in 0..600 {
        if part.metadata().is_ok_and(|m| m.len() >= len) {
            return part;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never reached {len} bytes", part.display());
}

/// What a stopped download must leave: no blob or snapshot entry under the final name, and
/// its bytes so far, correct, in the `.part`. Returns how many there are.
fn assert_only_a_part_file(fx: &Fixture) -> usize {
    let sha = sha256_hex(&weights());
    assert!(!fx.blobs().join(&sha).exists());
    assert!(std::fs::symlink_metadata(fx.snapshot().join(WEIGHTS)).is_err());
    let received = std::fs::read(fx.blobs().join(format!("{sha}.part"))).unwrap();
    assert!(!received.is_empty() && received.len() < WEIGHTS_LEN);
    assert_eq!(received, weights()[..received.len()]);
    received.len()
}

/// A clean rerun resumes from the `.part` (`received` bytes) and installs the right file.
fn rerun_resumes(fx: &Fixture, received: usize) {
    fx.hub.set_fault(REPO, WEIGHTS, Fault::None);
    let before = fx.hub.log().len();
    fx.fetch().expect_code(0);
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
    assert_eq!(
        content_ranges_since(fx, before),
        [format!("bytes={received}-")]
    );
}

#[test]
fn a_stalled_download_times_out_and_the_rerun_resumes() {
    let fx = Fixture::new();
    // Half a megabyte, then silence far longer than the test waits.
    fx.hub.set_fault(
        REPO,
        WEIGHTS,
        Fault::StallAfter(500_000, Duration::from_secs(600)),
    );
    let run = fx
        .precis
        .with_env("PRECIS_STALL_TIMEOUT_SECS", "2")
        .run(&["--quiet", "models", "fetch", ID]);
    run.expect_code(NETWORK)
        .expect_stderr("the hub sent nothing for 2 s (PRECIS_STALL_TIMEOUT_SECS sets this limit)")
        .expect_stderr("run the same command again to resume");
    let received = assert_only_a_part_file(&fx);
    rerun_resumes(&fx, received);
}

#[test]
fn ctrl_c_during_a_download_leaves_only_the_part_file() {
    let fx = Fixture::new();
    fx.hub.set_fault(
        REPO,
        WEIGHTS,
        Fault::StallAfter(500_000, Duration::from_secs(600)),
    );
    let child = fx.precis.spawn(&["models", "fetch", ID]);
    wait_for_part(&fx, 1);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = finish(child);
    run.expect_code(130).expect_stderr("precis: interrupted");
    let received = assert_only_a_part_file(&fx);
    rerun_resumes(&fx, received);
}

#[test]
fn a_full_disk_fails_cleanly_and_a_rerun_succeeds() {
    let fx = Fixture::new();
    // A 1 MiB file-size limit: the 3 MB weights cannot be written, as on a full disk.
    let run = fx
        .precis
        .with_file_size_limit(1024)
        .run(&["--quiet", "models", "fetch", ID]);
    run.expect_code(1)
        .expect_stderr("cannot write to the cache")
        .expect_stderr("File too large")
        .expect_stderr(
            "free some space (or raise the file-size limit) and run the same command again",
        );
    let received = assert_only_a_part_file(&fx);
    rerun_resumes(&fx, received);
}

#[test]
fn staging_files_left_by_a_killed_run_are_removed() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.blobs()).unwrap();
    let stale = fx.blobs().join(".precis-Xq3k9a.incomplete");
    std::fs::write(&stale, b"half a file from a run that was killed").unwrap();
    fx.fetch().expect_code(0);
    assert!(!stale.exists());
    assert_eq!(
        std::fs::read(fx.snapshot().join(WEIGHTS)).unwrap(),
        weights()
    );
}
