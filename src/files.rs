//! The files a user names: what a path is, said in words, and where precis writes what it
//! makes for a user without ever destroying what is not its own.
//!
//! - A regular file, or a name not taken yet, is written whole or not at all: the bytes go to a
//!   staging file beside the target, which is then renamed over it. The new file keeps the
//!   permission bits and, where the system allows, the owner of the file it replaces; a new
//!   file gets the umask's permissions, as a shell redirection would. (A rename gives the name
//!   a new inode: other hard links to the old file keep the old contents.)
//! - Anything else that exists at the path (a character or block device, a FIFO, a socket) is
//!   not precis's to replace: it is opened and written in place, as `cat > PATH` would, and
//!   never created, so `-o /dev/null` as root cannot turn the device into a file.
//! - A symbolic link is followed: its final target is what gets written (or created), and the
//!   link stays a link.
//!
//! The model cache uses the same staging files ([`staging_file`]) and the same rule for what
//! may be replaced ([`check_replaceable`]).

use std::{
    fs::{self, File, Metadata},
    io::{self, Write},
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;

use crate::failure::FailureKind;

/// As many links as the kernel follows in one path (Linux `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Found before any work: the result could not be written there.
    #[error("cannot write the result to {}: {problem}", path.display())]
    Unusable { path: PathBuf, problem: String },
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] io::Error),
}

impl OutputError {
    pub fn kind(&self) -> FailureKind {
        FailureKind::Output
    }
}

/// A checked place to write a result to.
#[derive(Debug)]
pub struct Target {
    /// The path as the user gave it, for messages.
    shown: PathBuf,
    destination: Destination,
}

#[derive(Debug)]
enum Destination {
    Stdout,
    /// A regular file, existing or not, at its final path (links followed).
    Staged {
        path: PathBuf,
        replaces: bool,
    },
    /// Something that exists and is not a regular file.
    InPlace {
        path: PathBuf,
        socket: bool,
    },
}

impl Target {
    pub fn stdout() -> Self {
        Target {
            shown: PathBuf::from("-"),
            destination: Destination::Stdout,
        }
    }

    /// Checks, before any work, that a result can be written at `path` (`-` is standard
    /// output): what is there, and for a file, that its folder takes a new file.
    pub fn check(path: &Path) -> Result<Self, OutputError> {
        if path == Path::new("-") {
            return Ok(Self::stdout());
        }
        let unusable = |problem: String| OutputError::Unusable {
            path: path.to_path_buf(),
            problem,
        };
        let target = follow_links(path).map_err(unusable)?;
        let destination = match fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                return Err(unusable("it is a folder; give a file name".into()))
            }
            Ok(meta) if meta.is_file() => Destination::Staged {
                path: target,
                replaces: true,
            },
            Ok(meta) => Destination::InPlace {
                socket: is_socket(&meta),
                path: target,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                check_folder(&target).map_err(unusable)?;
                Destination::Staged {
                    path: target,
                    replaces: false,
                }
            }
            Err(e) => return Err(unusable(path_problem(&target, &e))),
        };
        if let Destination::Staged { path: target, .. } = &destination {
            let dir = parent_dir(target);
            staging_file(dir, ".partial")
                .map_err(|e| unusable(format!("cannot create a file in {}: {e}", dir.display())))?;
        }
        Ok(Target {
            shown: path.to_path_buf(),
            destination,
        })
    }

    /// The regular file this output replaces or creates, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match &self.destination {
            Destination::Staged { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Writes all of `bytes`: to a regular file whole or not at all, elsewhere in place.
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), OutputError> {
        let write_error = |source| OutputError::Write {
            path: self.shown.clone(),
            source,
        };
        match &self.destination {
            Destination::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(bytes)
                    .and_then(|_| stdout.flush())
                    .map_err(OutputError::Stdout)
            }
            Destination::Staged { path, replaces } => {
                write_staged(path, *replaces, bytes).map_err(write_error)
            }
            Destination::InPlace { path, socket } => {
                write_in_place(path, *socket, bytes).map_err(write_error)
            }
        }
    }
}

/// A staging file in `dir` (`.precis-XXXX<suffix>`), deleted unless persisted. It is created
/// with the permissions a new file gets from the umask (not tempfile's 0600), so a result or
/// a cache file is as readable as any other file its user makes.
pub fn staging_file(dir: &Path, suffix: &str) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".precis-").suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The kernel applies the umask to these on creation.
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Ok if precis may put a file of its own at `path` by a rename: nothing is there, or a
/// regular file or a symbolic link is. Anything else (a folder, a device, a FIFO, a socket)
/// was put there by someone else and is left alone.
pub fn check_replaceable(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => Ok(()),
        Ok(meta) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} is {}, not a file precis may replace; move it away",
                path.display(),
                describe(&meta)
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a non-regular file is, for messages: "a character device", "a FIFO", ...
pub fn describe(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a folder";
    }
    if kind.is_file() {
        return "a file";
    }
    if kind.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The path a chain of symbolic links ends at (which may not exist yet).
fn follow_links(path: &Path) -> Result<PathBuf, String> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current)
                    .map_err(|e| format!("cannot read the link {}: {e}", current.display()))?;
                // A relative target is relative to the link's folder; `join` keeps an
                // absolute one as it is.
                current = parent_dir(&current).join(target);
            }
            _ => return Ok(current),
        }
    }
    Err(format!(
        "it is a loop of symbolic links (more than {MAX_LINKS} in a row)"
    ))
}

/// Why `path` cannot be reached, in words, where the system's are obscure ("Not a
/// directory", "Too many levels of symbolic links"); `None` where they are clear.
pub fn unreachable_because(path: &Path, error: &io::Error) -> Option<String> {
    if let Some(in_the_way) = not_a_folder(path) {
        return Some(in_the_way);
    }
    (error.raw_os_error() == Some(ELOOP)).then(|| "it is a loop of symbolic links".to_string())
}

fn path_problem(path: &Path, error: &io::Error) -> String {
    unreachable_because(path, error).unwrap_or_else(|| error.to_string())
}

/// For a path that does not exist: its folder must.
fn check_folder(path: &Path) -> Result<(), String> {
    if let Some(in_the_way) = not_a_folder(path) {
        return Err(in_the_way);
    }
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => Err(format!(
            "{} is {}, not a folder",
            dir.display(),
            describe(&meta)
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("the folder {} does not exist", dir.display()))
        }
        Err(e) => Err(path_problem(dir, &e)),
    }
}

/// "X is a file, not a folder" for the first folder on the way to `path` that exists but is
/// not a folder (so nothing below it can exist).
fn not_a_folder(path: &Path) -> Option<String> {
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors
        .into_iter()
        .filter(|a| !a.as_os_str().is_empty())
        .find_map(|a| match fs::metadata(a) {
            Ok(meta) if !meta.is_dir() => Some(format!(
                "{} is {}, not a folder",
                a.display(),
                describe(&meta)
            )),
            _ => None,
        })
}

/// The folder a file goes in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn write_staged(path: &Path, replaces: bool, bytes: &[u8]) -> io::Result<()> {
    let mut staged = staging_file(parent_dir(path), ".partial")?;
    if replaces {
        if let Ok(old) = fs::metadata(path) {
            keep_owner_and_mode(staged.as_file(), &old)?;
        }
    }
    staged.write_all(bytes)?;
    staged.as_file().sync_all()?;
    // What is at the path may have changed since the check, minutes ago.
    check_replaceable(path)?;
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn write_in_place(path: &Path, socket: bool, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    if socket {
        let mut stream = std::os::unix::net::UnixStream::connect(path)?;
        stream.write_all(bytes)?;
        return stream.shutdown(std::net::Shutdown::Write);
    }
    let _ = socket;
    // Never `create`: if the device went away, this fails rather than making a file.
    let mut file = File::options().write(true).open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

#[cfg(unix)]
const ELOOP: i32 = 40;
#[cfg(not(unix))]
const ELOOP: i32 = -1;

#[cfg(unix)]
pub fn is_socket(meta: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

#[cfg(not(unix))]
pub fn is_socket(_: &Metadata) -> bool {
    false
}

#[cfg(unix)]
pub fn is_fifo(meta: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

#[cfg(not(unix))]
pub fn is_fifo(_: &Metadata) -> bool {
    false
}

/// Gives the staged file the owner (where allowed: root, or a group the user is in) and the
/// permission bits of the file it replaces. The owner first: a change of owner clears the
/// set-user-ID bits.
#[cfg(unix)]
fn keep_owner_and_mode(staged: &File, old: &Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _ = std::os::unix::fs::fchown(staged, Some(old.uid()), None);
    let _ = std::os::unix::fs::fchown(staged, None, Some(old.gid()));
    staged.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(staged: &File, old: &Metadata) -> io::Result<()> {
    staged.set_permissions(old.permissions())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    #[test]
    fn a_new_file_takes_the_umask_permissions_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.txt");
        Target::check(&new).unwrap().write_all(b"one").unwrap();
        let reference = dir.path().join("reference");
        File::create(&reference).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&new), mode(&reference));

        fs::set_permissions(&new, fs::Permissions::from_mode(0o640)).unwrap();
        Target::check(&new).unwrap().write_all(b"two").unwrap();
        assert_eq!(mode(&new), 0o640);
        assert_eq!(fs::read(&new).unwrap(), b"two");
    }

    #[test]
    fn a_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("target.txt", &link).unwrap();
        Target::check(&link).unwrap().write_all(b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");

        // A dangling link: its target is created.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("made.txt", &dangling).unwrap();
        Target::check(&dangling)
            .unwrap()
            .write_all(b"made")
            .unwrap();
        assert_eq!(fs::read(dir.path().join("made.txt")).unwrap(), b"made");
    }

    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let output = Target::check(&fifo).unwrap();
        assert_eq!(output.file(), None);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        output.write_all(b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn unusable_paths_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.txt");
        fs::write(&file, "x").unwrap();
        let problem = |path: &Path| match Target::check(path) {
            Err(OutputError::Unusable { problem, .. }) => problem,
            other => panic!("{path:?}: {other:?}"),
        };
        assert_eq!(
            problem(&file.join("out.txt")),
            format!("{} is a file, not a folder", file.display())
        );
        assert_eq!(
            problem(&file.join("deeper/out.txt")),
            format!("{} is a file, not a folder", file.display())
        );
        assert_eq!(
            problem(&dir.path().join("none/out.txt")),
            format!(
                "the folder {} does not exist",
                dir.path().join("none").display()
            )
        );
        assert_eq!(problem(dir.path()), "it is a folder; give a file name");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(
            problem(&a).contains("loop of symbolic links"),
            "{}",
            problem(&a)
        );
    }

    #[test]
    fn only_files_and_links_are_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_replaceable(&dir.path().join("absent")).is_ok());
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(check_replaceable(&file).is_ok());
        let error = check_replaceable(dir.path()).unwrap_err();
        assert!(error
            .to_string()
            .contains("is a folder, not a file precis may replace"));
    }
}
