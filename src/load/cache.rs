//! The Hugging Face cache layout, so that precis shares downloads with every other HF tool:
//!
//! ```text
//! <hub dir>/models--org--name/
//!     blobs/<sha256 or git sha1>          file contents, named by their hash
//!     snapshots/<commit>/<file name>      symlinks into blobs/
//!     refs/<revision>                     the commit a branch or pull-request ref points at
//! ```

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use tempfile::NamedTempFile;

use super::catalog::HubLocation;
use crate::files;

#[derive(Debug, Clone)]
pub struct HfCache {
    root: PathBuf,
    /// What chose the folder, for messages: the variable, or "the default location".
    set_by: &'static str,
}

impl HfCache {
    pub fn new(root: PathBuf) -> Self {
        HfCache {
            root,
            set_by: "the caller",
        }
    }

    /// The hub cache folder as the Python `huggingface_hub` library finds it: `HF_HUB_CACHE`,
    /// else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub`.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let (root, set_by) = var("HF_HUB_CACHE")
            .map(|hub| (hub, "HF_HUB_CACHE"))
            .or_else(|| var("HF_HOME").map(|home| (home.join("hub"), "HF_HOME")))
            .or_else(|| {
                var("XDG_CACHE_HOME").map(|c| (c.join("huggingface").join("hub"), "XDG_CACHE_HOME"))
            })
            .or_else(|| {
                var("HOME").map(|h| {
                    let root = h.join(".cache").join("huggingface").join("hub");
                    (
                        root,
                        "the default location; HF_HOME or HF_HUB_CACHE moves it",
                    )
                })
            })
            .unwrap_or_else(|| {
                let root = PathBuf::from(".cache/huggingface/hub");
                (root, "HOME being unset; HF_HOME or HF_HUB_CACHE moves it")
            });
        HfCache { root, set_by }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What chose the cache folder: a variable's name, or a phrase.
    pub fn set_by(&self) -> &'static str {
        self.set_by
    }

    /// Why the cache folder cannot be used, if it cannot: something other than a folder is
    /// there, or in the way of creating it. A folder that does not exist yet is fine.
    pub fn unusable_because(&self) -> Option<String> {
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => None,
            Ok(meta) => Some(format!("it is {}, not a folder", files::describe(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(files::unreachable_because(&self.root, &e).unwrap_or(e.to_string())),
        }
    }

    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The commit a revision resolves to locally: the revision itself when it is a commit hash,
    /// else what `refs/<revision>` records.
    pub fn resolve_commit(&self, location: &HubLocation) -> Option<String> {
        if is_commit_hash(&location.revision) {
            return Some(location.revision.clone());
        }
        let ref_path = self
            .repo_dir(&location.repo)
            .join("refs")
            .join(&location.revision);
        let commit = fs::read_to_string(ref_path).ok()?;
        let commit = commit.trim();
        (!commit.is_empty()).then(|| commit.to_string())
    }

    pub fn snapshot_dir(&self, location: &HubLocation, commit: &str) -> PathBuf {
        self.repo_dir(&location.repo).join("snapshots").join(commit)
    }

    /// The cached path of `file` for the revision, if the snapshot has it and its blob exists.
    pub fn find(&self, location: &HubLocation, file: &str) -> Option<PathBuf> {
        let commit = self.resolve_commit(location)?;
        let path = self.snapshot_dir(location, &commit).join(file);
        // `exists` follows the symlink: a dangling pointer (blob moved aside) is not a hit.
        path.exists().then_some(path)
    }

    /// A temporary file in the repo's blobs folder, on the same file system as the final blob
    /// so that installing it is an atomic rename. Its name never looks like a finished blob, and
    /// it is deleted if dropped before [`HfCache::install`].
    pub fn staging_file(&self, repo: &str) -> io::Result<NamedTempFile> {
        let blobs = self.repo_dir(repo).join("blobs");
        fs::create_dir_all(&blobs)?;
        files::staging_file(&blobs, ".incomplete")
    }

    /// Removes the staging files of [`HfCache::staging_file`] that a killed precis left in the
    /// repo's blobs folder (dropping one deletes it; a killed process cannot). Call it only with
    /// the repo's lock held: precis stages files only under that lock, so none of these is in
    /// use. Best effort: a file that cannot be removed only wastes space.
    pub fn remove_stale_staging(&self, repo: &str) {
        let Ok(entries) = fs::read_dir(self.repo_dir(repo).join("blobs")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".precis-") && name.ends_with(".incomplete") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Files a verified staged file as the blob `sha256`, points the snapshot of `commit` at it,
    /// and records `commit` as the revision's ref.
    pub fn install(
        &self,
        location: &HubLocation,
        commit: &str,
        file: &str,
        staged: NamedTempFile,
        sha256: &str,
    ) -> io::Result<PathBuf> {
        let repo_dir = self.repo_dir(&location.repo);
        let blob = repo_dir.join("blobs").join(sha256);
        staged.as_file().sync_all()?;
        files::check_replaceable(&blob)?;
        staged.persist(&blob).map_err(|e| e.error)?;

        let pointer = self.snapshot_dir(location, commit).join(file);
        if let Some(parent) = pointer.parent() {
            fs::create_dir_all(parent)?;
        }
        // Relative, like huggingface_hub's links, so the cache can be moved as a whole.
        let depth = Path::new(file).components().count() + 1;
        let target: PathBuf = std::iter::repeat_n("..", depth)
            .collect::<PathBuf>()
            .join("blobs")
            .join(sha256);
        files::check_replaceable(&pointer)?;
        match fs::remove_file(&pointer) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        link(&target, &pointer)?;
        if !is_commit_hash(&location.revision) {
            self.write_ref(location, commit)?;
        }
        Ok(pointer)
    }

    fn write_ref(&self, location: &HubLocation, commit: &str) -> io::Result<()> {
        let ref_path = self
            .repo_dir(&location.repo)
            .join("refs")
            .join(&location.revision);
        let parent = ref_path.parent().expect("a ref path has a parent");
        fs::create_dir_all(parent)?;
        let mut staged = files::staging_file(parent, ".ref")?;
        staged.write_all(commit.as_bytes())?;
        files::check_replaceable(&ref_path)?;
        staged.persist(&ref_path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Moves the blob behind a snapshot file aside (`<blob>.corrupt-<unix time>`) and removes the
    /// snapshot link, so the damaged file is kept for inspection but never used again.
    pub fn move_aside(&self, snapshot_file: &Path) -> io::Result<PathBuf> {
        let blob = fs::canonicalize(snapshot_file)?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut aside = blob.clone().into_os_string();
        aside.push(format!(".corrupt-{stamp}"));
        let aside = PathBuf::from(aside);
        fs::rename(&blob, &aside)?;
        if snapshot_file.is_symlink() {
            fs::remove_file(snapshot_file)?;
        }
        Ok(aside)
    }

    /// An exclusive lock on one repo of the cache, held until dropped, so that two precis
    /// processes never fill the same snapshot at once. It lives under `.locks/`, where
    /// huggingface_hub keeps its own, so a failed fetch leaves no folder for the model behind.
    pub fn lock_repo(&self, repo: &str) -> io::Result<File> {
        let dir = self.root.join(".locks").join(repo_folder(repo));
        fs::create_dir_all(&dir)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("precis.lock"))?;
        file.lock()?;
        Ok(file)
    }
}

/// `org/name` -> `models--org--name`, the cache's folder name for a model repo.
fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(unix)]
fn link(target: &Path, pointer: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, pointer)
}

#[cfg(not(unix))]
fn link(target: &Path, pointer: &Path) -> io::Result<()> {
    // Without symlinks, huggingface_hub stores a copy in the snapshot; do the same.
    let blob = pointer.parent().expect("pointer has a parent").join(target);
    fs::copy(blob, pointer).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(revision: &str) -> HubLocation {
        HubLocation {
            repo: "org/name".into(),
            revision: revision.into(),
            commit: None,
        }
    }

    #[test]
    fn install_builds_the_hf_layout_and_find_resolves_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HfCache::new(dir.path().to_path_buf());
        let loc = location("refs/pr/4");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let mut staged = cache.staging_file(&loc.repo).unwrap();
        staged.write_all(b"weights").unwrap();
        let sha = "a".repeat(64);
        let pointer = cache
            .install(&loc, commit, "sub/model.bin", staged, &sha)
            .unwrap();

        let repo = dir.path().join("models--org--name");
        assert_eq!(
            fs::read_to_string(repo.join("refs/refs/pr/4")).unwrap(),
            commit
        );
        assert_eq!(
            fs::read_link(&pointer).unwrap(),
            Path::new("../../../blobs").join(&sha)
        );
        assert_eq!(cache.find(&loc, "sub/model.bin").unwrap(), pointer);
        assert_eq!(fs::read(&pointer).unwrap(), b"weights");
        assert!(cache.find(&location("main"), "sub/model.bin").is_none());

        let aside = cache.move_aside(&pointer).unwrap();
        assert!(aside.to_string_lossy().contains(".corrupt-"));
        assert!(cache.find(&loc, "sub/model.bin").is_none());
    }

    #[test]
    fn dropped_staging_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HfCache::new(dir.path().to_path_buf());
        let staged = cache.staging_file("org/name").unwrap();
        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(!path.exists());
    }
}
