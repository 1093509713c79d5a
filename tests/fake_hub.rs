//! The fake hub in `tests/support/fake_hub.rs`, and what hf-hub 0.4.3 (sync, ureq) really
//! does against it: cache layout, revisions with '/', 404s, cut connections, resume.
//!
//! Findings pinned down here (hf-hub 0.4.3 with the default `max_retries = 0`):
//! * A connection cut mid-body is an error: ureq checks Content-Length and fails the read
//!   with `UnexpectedEof` "response body closed before all bytes were read", surfacing as
//!   `ApiError::IoError`. Left on disk: `blobs/<etag>.part` holding exactly the bytes
//!   received and an empty `blobs/<etag>.lock`; nothing under the final blob name, no
//!   snapshot, no ref.
//! * The next download of that file resumes: it asks `Range: bytes=<part len>-` and appends
//!   to the `.part` file, then renames it to the blob. It never checks the `.part` content
//!   (a corrupt `.part` gives a corrupt blob, reported as success) nor the final size or
//!   hash. A `.part` longer than the file is `ApiError::InvalidResume`; a `.part` exactly as
//!   long as the file asks `bytes=<len>-`, which the hub answers 416, so it fails every time
//!   until the `.part` is deleted.
//! * 404: `ApiError::RequestError(ureq::Error::Status(404, _))`, displayed as
//!   "request error: <url>: status code 404"; nothing is written to the cache.
//! * A revision such as `refs/pr/4` is sent as `/resolve/refs%2Fpr%2F4/<file>` and
//!   `/api/models/<repo>/revision/refs%2Fpr%2F4`; the ref is stored at `refs/refs/pr/4`.
//! * `.lock` files are never removed, even after success.

mod support;

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::fake_hub::{etag, git_blob_sha1, resolve_path, sha256_hex, FakeHub, Fault};
use support::precis::{pseudo_random, tree};

const REPO: &str = "org/name";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const PR_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
const WEIGHTS_LEN: usize = 3 * 1024 * 1024 + 17;

fn config() -> Vec<u8> {
    let mut text = String::from("{\n  \"model_type\": \"fake\",\n");
    for i in 0..12 {
        text.push_str(&format!("  \"param_{i}\": {},\n", i * 37));
    }
    text.push_str("  \"vocab_size\": 32000\n}\n");
    text.into_bytes()
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn weights() -> Vec<u8> {
    pseudo_random(WEIGHTS_LEN, 0)
}

/// A hub with `org/name` at `main` (config.json + 3 MB model.safetensors).
fn hub() -> FakeHub {
    let hub = FakeHub::start();
    hub.add_repo(
        REPO,
        "main",
        COMMIT,
        vec![
            ("config.json".into(), config()),
            ("model.safetensors".into(), weights()),
        ],
    );
    hub
}

fn api(hub: &FakeHub, cache: &Path) -> Api {
    ApiBuilder::new()
        .with_endpoint(hub.endpoint())
        .with_cache_dir(cache.to_path_buf())
        .with_progress(false)
        .build()
        .unwrap()
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--org--name")
}

fn ranges(hub: &FakeHub, path: &str) -> Vec<Option<String>> {
    hub.requests_to(path).into_iter().map(|r| r.range).collect()
}

fn bytes_range(spec: &str) -> Option<String> {
    Some(format!("bytes={spec}"))
}

/// A raw HTTP/1.1 GET; returns the stream positioned after the response headers and
/// the headers themselves.
fn raw_get(hub: &FakeHub, path: &str, range: Option<&str>) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(hub.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{range}\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (
        stream,
        String::from_utf8(head).unwrap().to_ascii_lowercase(),
    )
}

#[test]
fn sha1_matches_git() {
    // `git hash-object` of an empty file and of "hello\n".
    assert_eq!(
        git_blob_sha1(b""),
        "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    );
    assert_eq!(
        git_blob_sha1(b"hello\n"),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    // Multi-block input (> 64 bytes).
    assert_eq!(
        git_blob_sha1(&[b'a'; 1000]),
        "a50be72b20f0e3f078d252e8e56b11b4bec67509"
    );
}

#[test]
fn downloads_into_the_hf_cache_layout() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    let repo = api.model(REPO.to_string());

    let config_path = repo.download("config.json").unwrap();
    let weights_path = repo.download("model.safetensors").unwrap();

    let snapshot = repo_dir(cache.path()).join("snapshots").join(COMMIT);
    assert_eq!(config_path, snapshot.join("config.json"));
    assert_eq!(weights_path, snapshot.join("model.safetensors"));
    assert_eq!(std::fs::read(&config_path).unwrap(), config());
    assert_eq!(std::fs::read(&weights_path).unwrap(), weights());

    // Small file: blob named by the git blob sha1; LFS file: by the sha256.
    let config_blob = git_blob_sha1(&config());
    let weights_blob = sha256_hex(&weights());
    assert_eq!(etag(&weights()), weights_blob);
    let mut expected = vec![
        "blobs/".to_string(),
        format!("blobs/{config_blob} {}", config().len()),
        format!("blobs/{config_blob}.lock 0"),
        format!("blobs/{weights_blob} {WEIGHTS_LEN}"),
        format!("blobs/{weights_blob}.lock 0"),
        "refs/".to_string(),
        "refs/main 40".to_string(),
        "snapshots/".to_string(),
        format!("snapshots/{COMMIT}/"),
        format!("snapshots/{COMMIT}/config.json -> ../../blobs/{config_blob}"),
        format!("snapshots/{COMMIT}/model.safetensors -> ../../blobs/{weights_blob}"),
    ];
    expected.sort();
    assert_eq!(tree(&repo_dir(cache.path())), expected);
    let refs_main = repo_dir(cache.path()).join("refs/main");
    assert_eq!(std::fs::read_to_string(refs_main).unwrap(), COMMIT);

    // Per file: a one-byte metadata request, then the content from 0.
    for file in ["config.json", "model.safetensors"] {
        let path = resolve_path(REPO, "main", file);
        assert_eq!(
            ranges(&hub, &path),
            vec![bytes_range("0-0"), bytes_range("0-")]
        );
    }

    // `get` is served from the cache without a single request, even with the hub gone.
    let before = hub.total_requests();
    assert_eq!(repo.get("config.json").unwrap(), config_path);
    assert_eq!(hub.total_requests(), before);
    drop(hub);
    assert_eq!(repo.get("model.safetensors").unwrap(), weights_path);
}

#[test]
fn info_lists_sha_and_files() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let info = api(&hub, cache.path()).model(REPO.into()).info().unwrap();
    assert_eq!(info.sha, COMMIT);
    let names: Vec<_> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    assert_eq!(names, ["config.json", "model.safetensors"]);
    assert_eq!(hub.requests("/api/models/org/name/revision/main"), 1);
}

#[test]
fn revision_with_slashes() {
    let hub = hub();
    let pr_config = b"{\"from\": \"pr 4\"}\n".to_vec();
    hub.add_repo(
        REPO,
        "refs/pr/4",
        PR_COMMIT,
        vec![("config.json".into(), pr_config.clone())],
    );
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    let repo = api.repo(Repo::with_revision(
        REPO.into(),
        RepoType::Model,
        "refs/pr/4".into(),
    ));

    let path = repo.download("config.json").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), pr_config);
    let dir = repo_dir(cache.path());
    assert_eq!(
        path,
        dir.join("snapshots").join(PR_COMMIT).join("config.json")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/refs/pr/4")).unwrap(),
        PR_COMMIT
    );
    assert_eq!(repo.info().unwrap().sha, PR_COMMIT);

    // On the wire the '/' of the revision are %2F; the filename is left as is.
    let sent = "/org/name/resolve/refs%2Fpr%2F4/config.json";
    assert_eq!(resolve_path(REPO, "refs/pr/4", "config.json"), sent);
    assert_eq!(hub.requests(sent), 2);
    assert_eq!(hub.requests("/org/name/resolve/refs/pr/4/config.json"), 2);
    assert_eq!(
        hub.requests("/api/models/org/name/revision/refs%2Fpr%2F4"),
        1
    );

    // The commit sha works as a revision too, and main is untouched.
    let by_commit = api.repo(Repo::with_revision(
        REPO.into(),
        RepoType::Model,
        PR_COMMIT.into(),
    ));
    assert_eq!(
        std::fs::read(by_commit.download("config.json").unwrap()).unwrap(),
        pr_config
    );
    let main = api.model(REPO.into()).download("config.json").unwrap();
    assert_eq!(std::fs::read(main).unwrap(), config());
}

fn assert_404(result: Result<PathBuf, ApiError>) {
    match result {
        Err(ApiError::RequestError(e)) => {
            assert!(e.to_string().ends_with(": status code 404"), "{e}")
        }
        other => panic!("expected a 404 RequestError, got {other:?}"),
    }
}

#[test]
fn not_found_is_an_error_and_writes_nothing() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());

    let err = api.model(REPO.into()).download("missing.bin").unwrap_err();
    let url = format!("{}/org/name/resolve/main/missing.bin", hub.endpoint());
    assert_eq!(
        err.to_string(),
        format!("request error: {url}: status code 404")
    );
    assert_404(api.model("org/missing".into()).download("config.json"));
    assert_404(
        api.repo(Repo::with_revision(
            REPO.into(),
            RepoType::Model,
            "nope".into(),
        ))
        .download("config.json"),
    );
    hub.set_fault(REPO, "config.json", Fault::NotFound);
    assert_404(api.model(REPO.into()).download("config.json"));
    assert!(api.model("org/missing".into()).info().is_err());

    // Nothing at all in the cache.
    assert_eq!(tree(cache.path()), Vec::<String>::new());

    // The hub's error codes, seen with a raw client.
    for (path, code) in [
        ("/org/name/resolve/main/missing.bin", "EntryNotFound"),
        ("/org/name/resolve/main/config.json", "EntryNotFound"), // Fault::NotFound
        ("/org/missing/resolve/main/config.json", "RepoNotFound"),
        ("/org/name/resolve/nope/config.json", "RevisionNotFound"),
        ("/api/models/org/missing/revision/main", "RepoNotFound"),
    ] {
        let (_, head) = raw_get(&hub, path, None);
        assert!(head.starts_with("http/1.1 404 "), "{path}: {head}");
        assert!(head.contains(&format!("x-error-code: {}", code.to_lowercase())));
    }
}

#[test]
fn ranges_follow_rfc_7233() {
    let hub = hub();
    let path = resolve_path(REPO, "main", "config.json");
    let len = config().len();
    let read_body = |range: Option<&str>| {
        let (mut stream, head) = raw_get(&hub, &path, range);
        let mut body = Vec::new();
        stream.read_to_end(&mut body).unwrap();
        (head, body)
    };

    let (head, body) = read_body(Some("bytes=10-19"));
    assert!(head.starts_with("http/1.1 206 "));
    assert!(head.contains(&format!("content-range: bytes 10-19/{len}\r\n")));
    assert!(head.contains("content-length: 10\r\n"));
    assert!(head.contains(&format!("x-repo-commit: {COMMIT}\r\n")));
    assert!(head.contains(&format!("etag: \"{}\"\r\n", git_blob_sha1(&config()))));
    assert!(!head.contains("x-linked-etag"));
    assert_eq!(body, config()[10..20]);

    let (head, body) = read_body(Some("bytes=100-"));
    assert!(head.contains(&format!("content-range: bytes 100-{}/{len}\r\n", len - 1)));
    assert_eq!(body, config()[100..]);

    let (head, body) = read_body(Some(&format!("bytes={len}-")));
    assert!(head.starts_with("http/1.1 416 "));
    assert!(head.contains(&format!("content-range: bytes */{len}\r\n")));
    assert!(body.is_empty());

    let (head, body) = read_body(None);
    assert!(head.starts_with("http/1.1 200 "));
    assert_eq!(body, config());

    let weights_path = resolve_path(REPO, "main", "model.safetensors");
    let (_, head) = raw_get(&hub, &weights_path, Some("bytes=0-0"));
    let sha = sha256_hex(&weights());
    assert!(head.contains(&format!("etag: \"{sha}\"\r\n")));
    assert!(head.contains(&format!("x-linked-etag: \"{sha}\"\r\n")));
    assert!(head.contains(&format!("content-range: bytes 0-0/{WEIGHTS_LEN}\r\n")));
}

#[test]
fn cut_connection_fails_leaves_part_file_then_resumes() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    let repo = api.model(REPO.into());
    let cut = 1_000_000;
    hub.set_fault(REPO, "model.safetensors", Fault::CutAfter(cut));

    let err = repo.download("model.safetensors").unwrap_err();
    match &err {
        ApiError::IoError(e) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof),
        other => panic!("expected IoError, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "I/O error response body closed before all bytes were read"
    );
    // Only the partial download: no blob under its final name, no snapshot, no ref.
    let blob = sha256_hex(&weights());
    assert_eq!(
        tree(&repo_dir(cache.path())),
        vec![
            "blobs/".to_string(),
            format!("blobs/{blob}.lock 0"),
            format!("blobs/{blob}.part {cut}"),
        ]
    );
    let part = repo_dir(cache.path()).join(format!("blobs/{blob}.part"));
    assert_eq!(std::fs::read(&part).unwrap(), weights()[..cut]);

    // Next try resumes from the end of the .part file.
    hub.set_fault(REPO, "model.safetensors", Fault::None);
    let path = repo.download("model.safetensors").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), weights());
    assert!(!part.exists());
    assert_eq!(
        ranges(&hub, &resolve_path(REPO, "main", "model.safetensors")),
        vec![
            bytes_range("0-0"),
            bytes_range("0-"),
            bytes_range("0-0"),
            bytes_range(&format!("{cut}-")),
        ]
    );
}

#[test]
fn resume_trusts_whatever_part_file_it_finds() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    let repo = api.model(REPO.into());
    let blobs = repo_dir(cache.path()).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = sha256_hex(&weights());
    let part = blobs.join(format!("{blob}.part"));

    // A correct leftover prefix: resumed with Range from its length, right bytes.
    std::fs::write(&part, &weights()[..12_345]).unwrap();
    let path = repo.download("model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights());
    let sent = ranges(&hub, &resolve_path(REPO, "main", "model.safetensors"));
    assert_eq!(sent.last().unwrap(), &bytes_range("12345-"));

    // A corrupt prefix is kept as is: "success", with wrong bytes under the blob name.
    let fresh = tempfile::tempdir().unwrap();
    let api2 = self::api(&hub, fresh.path());
    let blobs2 = repo_dir(fresh.path()).join("blobs");
    std::fs::create_dir_all(&blobs2).unwrap();
    std::fs::write(blobs2.join(format!("{blob}.part")), vec![0u8; 1000]).unwrap();
    let path = api2
        .model(REPO.into())
        .download("model.safetensors")
        .unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), WEIGHTS_LEN);
    assert_ne!(got, weights());
    assert_ne!(sha256_hex(&got), blob);
    assert_eq!(got[1000..], weights()[1000..]);

    // A .part as long as the file: asks `bytes=LEN-`, gets 416, and fails every time.
    let fresh = tempfile::tempdir().unwrap();
    let api3 = self::api(&hub, fresh.path());
    let blobs3 = repo_dir(fresh.path()).join("blobs");
    std::fs::create_dir_all(&blobs3).unwrap();
    std::fs::write(blobs3.join(format!("{blob}.part")), weights()).unwrap();
    for _ in 0..2 {
        let err = api3.model(REPO.into()).download("model.safetensors");
        let err = err.unwrap_err().to_string();
        assert!(err.ends_with(": status code 416"), "{err}");
    }

    // A .part longer than the file.
    std::fs::write(
        blobs3.join(format!("{blob}.part")),
        vec![0u8; WEIGHTS_LEN + 1],
    )
    .unwrap();
    let err = api3.model(REPO.into()).download("model.safetensors");
    assert!(matches!(err, Err(ApiError::InvalidResume)), "{err:?}");
}

#[test]
fn lfs_redirect_like_the_real_hub() {
    let hub = hub();
    hub.set_lfs_redirect(true);
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    let repo = api.model(REPO.into());
    let sha = sha256_hex(&weights());
    let cdn = format!("/lfs/org/name/{sha}");

    let path = repo.download("model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights());
    let resolve = resolve_path(REPO, "main", "model.safetensors");
    // hf-hub: metadata 302 (not followed by the no-redirect client), then bytes=0-0 on
    // the Location; download: followed 302, with the Range header kept.
    assert_eq!(
        ranges(&hub, &resolve),
        vec![bytes_range("0-0"), bytes_range("0-")]
    );
    assert_eq!(
        ranges(&hub, &cdn),
        vec![bytes_range("0-0"), bytes_range("0-")]
    );

    // Cut and resume through the redirect.
    let fresh = tempfile::tempdir().unwrap();
    let repo = self::api(&hub, fresh.path()).model(REPO.into());
    hub.set_fault(REPO, "model.safetensors", Fault::CutAfter(500_000));
    assert!(matches!(
        repo.download("model.safetensors"),
        Err(ApiError::IoError(_))
    ));
    hub.set_fault(REPO, "model.safetensors", Fault::None);
    let path = repo.download("model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights());
    assert_eq!(ranges(&hub, &cdn).last().unwrap(), &bytes_range("500000-"));
}

#[test]
fn stall_sends_headers_then_waits() {
    let mut hub = hub();
    let path = resolve_path(REPO, "main", "config.json");
    hub.set_fault(REPO, "config.json", Fault::Stall(Duration::from_secs(1)));

    // Headers arrive at once, the body only after the stall.
    let started = Instant::now();
    let (mut stream, head) = raw_get(&hub, &path, Some("bytes=0-"));
    assert!(head.starts_with("http/1.1 206 "));
    assert!(started.elapsed() < Duration::from_millis(800));
    let mut body = Vec::new();
    stream.read_to_end(&mut body).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(body, config());

    // A client read timeout fires during a long stall; stopping the hub ends the stall
    // by closing the connection without a body.
    hub.set_fault(REPO, "config.json", Fault::Stall(Duration::from_secs(600)));
    let (mut stream, _) = raw_get(&hub, &path, None);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let err = stream.read(&mut [0u8; 16]).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    let stopping = Instant::now();
    hub.stop();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(stopping.elapsed() < Duration::from_secs(2));
}

#[test]
fn stopped_hub_refuses_connections() {
    let mut hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let api = api(&hub, cache.path());
    api.model(REPO.into()).download("config.json").unwrap();
    let addr = hub.addr();

    hub.stop();
    hub.stop(); // idempotent
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let err = api.model(REPO.into()).download("model.safetensors");
    match err {
        Err(ApiError::RequestError(e)) => {
            assert!(e.to_string().contains("Connection refused"), "{e}")
        }
        other => panic!("expected RequestError, got {other:?}"),
    }

    // Drop stops it too.
    let addr = {
        let hub = FakeHub::start();
        TcpStream::connect(hub.addr()).unwrap();
        hub.addr()
    };
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}
