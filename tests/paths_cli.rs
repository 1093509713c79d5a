//! Every path a user gives precis, tried with what can be at a path: a regular file, a folder,
//! a character device, a FIFO, a socket, a symbolic link (and a loop of them), a file nobody
//! may read, a name that is not UTF-8. Each either works or fails with a message that says
//! what is wrong and the exit code of its kind; nothing that precis did not make is replaced.
//! Devices are made with mknod in a temporary folder (never the real /dev); without the right
//! to make one (not root), links to /dev/null and /dev/full stand in, written through.

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use support::precis::Run;
use support::tiny_marian::{greedy_translate_args, Fixture, ARTICLE, ID};

const USAGE: i32 = 2;
const INPUT: i32 = 3;
const OUTPUT: i32 = 7;
const CACHE: i32 = 1;

/// A device node made in `dir`: (major, minor) 1,3 is /dev/null, 1,5 /dev/zero, 1,7 /dev/full.
fn device(dir: &Path, name: &str, minor: u32) -> PathBuf {
    let path = dir.join(name);
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mknod only reads it.
    let made = unsafe {
        libc::mknod(
            c_path.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, minor),
        )
    };
    if made != 0 {
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.raw_os_error(),
            Some(libc::EPERM),
            "mknod {path:?}: {error}"
        );
        let real = match minor {
            3 => "/dev/null",
            5 => "/dev/zero",
            _ => "/dev/full",
        };
        std::os::unix::fs::symlink(real, &path).unwrap();
    }
    assert!(std::fs::metadata(&path)
        .unwrap()
        .file_type()
        .is_char_device());
    path
}

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(
        unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) },
        0,
        "mkfifo {path:?}"
    );
    path
}

/// Two symbolic links that point at each other; returns the first.
fn link_loop(dir: &Path, name: &str) -> PathBuf {
    let a = dir.join(name);
    let b = dir.join(format!("{name}.other"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    a
}

/// A name that is not UTF-8 (Latin-1 "é").
fn latin1_name(dir: &Path, stem: &str) -> PathBuf {
    let mut name = stem.as_bytes().to_vec();
    name.extend_from_slice(b"-\xe9.txt");
    dir.join(OsStr::from_bytes(&name))
}

/// Root reads every file whatever its mode: an unreadable file is tried as "nobody".
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `precis` with `args`, as the user "nobody" when this test runs as root (so that modes
/// apply), with the folder `dir` (the test's files) open to it.
fn run_unprivileged(precis: &support::precis::Precis, dir: &Path, args: &[&OsStr]) -> Run {
    let mut command = precis.command(args);
    if is_root() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn os_args<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// The fixture's precis, reading its catalog from `catalog` instead.
fn with_catalog(fx: &Fixture, catalog: &Path) -> support::precis::Precis {
    support::precis::Precis::new(&fx.precis.hf_home, catalog, &fx.precis.endpoint)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// What `translate` prints on standard output for the fixture's article.
fn expected_translation(fx: &Fixture, input: &Path) -> String {
    let run = fx.translate(input, &[]);
    run.expect_code(0);
    run.stdout
}

#[test]
fn output_to_a_character_device_is_written_and_the_device_kept() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let null = device(fx.dir.path(), "null", 3);
    fx.translate(&input, &["-o", null.to_str().unwrap()])
        .expect_code(0);
    assert!(std::fs::metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());

    let full = device(fx.dir.path(), "full", 7);
    fx.translate(&input, &["-o", full.to_str().unwrap()])
        .expect_code(OUTPUT)
        .expect_stderr(&format!(
            "cannot write {}: No space left on device",
            full.display()
        ));
    assert!(std::fs::metadata(&full)
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(names_starting(fx.dir.path(), ".precis-").is_empty());
}

fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    support::precis::names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn output_to_a_fifo_reaches_its_reader() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let expected = expected_translation(&fx, &input);
    let pipe = fifo(fx.dir.path(), "pipe");
    let reader = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::read_to_string(pipe).unwrap())
    };
    fx.translate(&input, &["-o", pipe.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(reader.join().unwrap(), expected);
    assert!(std::fs::metadata(&pipe).unwrap().file_type().is_fifo());
}

#[test]
fn output_to_a_socket_reaches_its_listener() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let expected = expected_translation(&fx, &input);
    let socket = fx.dir.path().join("socket");
    let listener = UnixListener::bind(&socket).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
        text
    });
    fx.translate(&input, &["-o", socket.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(reader.join().unwrap(), expected);
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
}

#[test]
fn a_replaced_file_keeps_its_mode_and_a_new_one_gets_the_umask() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let expected = expected_translation(&fx, &input);
    for old_mode in [0o644, 0o600, 0o640, 0o664] {
        let target = fx.file(&format!("out-{old_mode:o}.txt"), b"an older translation\n");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(old_mode)).unwrap();
        fx.translate(&input, &["-o", target.to_str().unwrap()])
            .expect_code(0);
        assert_eq!(mode(&target), old_mode, "{}", target.display());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);
    }
    // A new file: as the shell would make it (this test's umask, which the child inherits).
    let reference = fx.file("reference", b"");
    let new = fx.dir.path().join("new.txt");
    fx.translate(&input, &["-o", new.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(mode(&new), mode(&reference));
}

#[test]
fn a_symbolic_link_is_written_through_and_stays_a_link() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let expected = expected_translation(&fx, &input);
    let target = fx.file("target.txt", b"old\n");
    let link = fx.dir.path().join("link.txt");
    std::os::unix::fs::symlink("target.txt", &link).unwrap();
    fx.translate(&input, &["-o", link.to_str().unwrap()])
        .expect_code(0);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);

    let dangling = fx.dir.path().join("dangling.txt");
    std::os::unix::fs::symlink("made.txt", &dangling).unwrap();
    fx.translate(&input, &["-o", dangling.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(fx.dir.path().join("made.txt")).unwrap(),
        expected
    );
}

#[test]
fn dash_is_standard_output_and_a_latin1_name_is_a_name() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let expected = expected_translation(&fx, &input);
    let run = fx.translate(&input, &["-o", "-"]);
    run.expect_code(0);
    assert_eq!(run.stdout, expected);
    assert!(!fx.dir.path().join("-").exists());

    let latin1_input = latin1_name(fx.dir.path(), "article");
    std::fs::write(&latin1_input, ARTICLE).unwrap();
    let latin1_output = latin1_name(fx.dir.path(), "result");
    let mut args = os_args(&greedy_translate_args("-o", &[]));
    // The last of these is the flag "-o": the output, then the input, follow it.
    args.push(latin1_output.as_os_str());
    args.push(latin1_input.as_os_str());
    let run = fx.precis.run(&args);
    run.expect_code(0);
    assert_eq!(std::fs::read_to_string(&latin1_output).unwrap(), expected);
}

#[test]
fn unusable_outputs_say_what_is_wrong_before_any_work() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let file = fx.file("s.txt", b"a file\n");
    let dir = fx.dir.path();
    let looped = link_loop(dir, "loop.txt");
    let cases: Vec<(PathBuf, String)> = vec![
        (dir.to_path_buf(), "it is a folder; give a file name".into()),
        (
            file.join("out.txt"),
            format!("{} is a file, not a folder", file.display()),
        ),
        (
            dir.join("none/out.txt"),
            format!("the folder {} does not exist", dir.join("none").display()),
        ),
        (looped.clone(), "it is a loop of symbolic links".into()),
    ];
    for (output, message) in cases {
        let run = fx.translate(&input, &["-o", output.to_str().unwrap()]);
        run.expect_code(OUTPUT).expect_stderr(&format!(
            "cannot write the result to {}: {message}",
            output.display()
        ));
        assert_eq!(run.stderr.matches(&message).count(), 1, "{}", run.stderr);
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a file\n");
    assert_eq!(fx.hub.total_requests(), 0, "{:?}", fx.hub.log());
}

#[test]
fn inputs_of_every_kind() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let null = device(dir, "null", 3);
    let zero = device(dir, "zero", 5);
    let looped = link_loop(dir, "loop.txt");
    let file = fx.file("s.txt", b"x");
    let socket = dir.join("socket");
    let _listener = UnixListener::bind(&socket).unwrap();
    let cases: Vec<(PathBuf, String)> = vec![
        (dir.to_path_buf(), "it is a folder; give a text file".into()),
        (null, "is empty: there is nothing to translate".into()),
        (
            zero,
            "is larger than 64 MiB, far more than one article".into(),
        ),
        (socket.clone(), "it is a socket; give a text file".into()),
        (looped, "it is a loop of symbolic links".into()),
        (
            file.join("article.txt"),
            format!("{} is a file, not a folder", file.display()),
        ),
        (dir.join("absent.txt"), "No such file or directory".into()),
    ];
    for (input, message) in &cases {
        let run = fx.translate(input, &[]);
        run.expect_code(INPUT).expect_stderr(message);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    // "Is a directory (os error 21)" was printed twice, once per link of the error chain.
    let run = fx.translate(dir, &[]);
    assert_eq!(run.stderr.matches("folder").count(), 1, "{}", run.stderr);
    // Each was refused before the model was fetched.
    assert_eq!(fx.hub.total_requests(), 0, "{:?}", fx.hub.log());

    // A FIFO is read as `cat` would read it.
    let expected = expected_translation(&fx, &fx.file("article.txt", ARTICLE.as_bytes()));
    let pipe = fifo(dir, "pipe");
    let writer = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::write(pipe, ARTICLE).unwrap())
    };
    let run = fx.translate(&pipe, &[]);
    writer.join().unwrap();
    run.expect_code(0);
    assert_eq!(run.stdout, expected);

    // A file nobody may read.
    let secret = fx.file("secret.txt", ARTICLE.as_bytes());
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let args = os_args(&greedy_translate_args(secret.to_str().unwrap(), &[]));
    run_unprivileged(&fx.precis, fx.dir.path(), &args)
        .expect_code(INPUT)
        .expect_stderr(&format!(
            "cannot read {}: Permission denied",
            secret.display()
        ));
}

#[test]
fn catalog_folders_of_every_kind() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let file = fx.file("catalog.txt", b"x");
    let looped = link_loop(dir, "loop");
    let with_fifo = dir.join("with-fifo");
    std::fs::create_dir(&with_fifo).unwrap();
    fifo(&with_fifo, "entry.toml");
    let with_folder = dir.join("with-folder");
    std::fs::create_dir_all(with_folder.join("entry.toml")).unwrap();
    let cases: Vec<(PathBuf, String)> = vec![
        (file.clone(), "it is a file, not a folder".into()),
        (dir.join("absent"), "No such file or directory".into()),
        (looped, "it is a loop of symbolic links".into()),
        (
            file.join("sub"),
            format!("{} is a file, not a folder", file.display()),
        ),
        (
            with_fifo,
            "its entry entry.toml cannot be read: it is a FIFO (named pipe)".into(),
        ),
        (
            with_folder,
            "its entry entry.toml cannot be read: it is a folder".into(),
        ),
    ];
    for (catalog, message) in &cases {
        with_catalog(&fx, catalog)
            .run(&["models", "list"])
            .expect_code(USAGE)
            .expect_stderr(&format!(
                "cannot use the catalog folder {} (--catalog, PRECIS_CATALOG): {message}",
                catalog.display()
            ));
    }

    // A folder nobody may read.
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    run_unprivileged(
        &with_catalog(&fx, &closed),
        dir,
        &os_args(&["models", "list"]),
    )
    .expect_code(USAGE)
    .expect_stderr("Permission denied");

    // A name that is not UTF-8 is a name like any other.
    let latin1 = latin1_name(dir, "catalog");
    std::fs::create_dir(&latin1).unwrap();
    support::tiny_marian::write_catalog(&latin1);
    let run = with_catalog(&fx, &latin1).run(&["models", "list"]);
    run.expect_code(0);
    assert!(run.stdout.contains(ID), "{}", run.stdout);
}

#[test]
fn cache_folders_of_every_kind() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let file = fx.file("not-a-folder", b"x");
    let pipe = fifo(dir, "pipe");
    let looped = link_loop(dir, "loop");
    let translate = |variable: &str, value: &Path, offline: bool| {
        let mut args = greedy_translate_args(input.to_str().unwrap(), &[]);
        if offline {
            args.insert(0, "--offline");
        }
        fx.precis.with_env(variable, value).run(&args)
    };
    let cases: Vec<(&str, PathBuf, String, String)> = vec![
        (
            "HF_HOME",
            file.clone(),
            file.join("hub").display().to_string(),
            format!("{} is a file, not a folder", file.display()),
        ),
        (
            "HF_HUB_CACHE",
            file.clone(),
            file.display().to_string(),
            "it is a file, not a folder".into(),
        ),
        (
            "HF_HUB_CACHE",
            pipe.clone(),
            pipe.display().to_string(),
            "it is a FIFO (named pipe), not a folder".into(),
        ),
        (
            "HF_HOME",
            looped.clone(),
            looped.join("hub").display().to_string(),
            "it is a loop of symbolic links".into(),
        ),
    ];
    for (variable, value, root, problem) in &cases {
        for offline in [false, true] {
            let run = translate(variable, value, offline);
            run.expect_code(CACHE).expect_stderr(&format!(
                "cannot use the model cache {root} (set by {variable}): {problem}; point HF_HOME"
            ));
        }
    }
    // A folder this user cannot write: said when precis first writes there.
    let closed = dir.join("closed-cache");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o555)).unwrap();
    run_unprivileged(
        &fx.precis.with_env("HF_HUB_CACHE", &closed),
        dir,
        &os_args(&["--quiet", "models", "fetch", ID]),
    )
    .expect_code(CACHE)
    .expect_stderr(&format!(
        "cannot use the model cache {} (set by HF_HUB_CACHE): cannot write there: Permission denied",
        closed.display()
    ));

    // A name that is not UTF-8 works.
    let latin1 = latin1_name(dir, "cache");
    let run = fx
        .precis
        .with_env("HF_HOME", &latin1)
        .run(&greedy_translate_args(input.to_str().unwrap(), &[]));
    run.expect_code(0);
    assert!(latin1.join("hub").is_dir());
}

#[test]
fn import_sources_of_every_kind() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let vocab = support::tiny_marian::tiny_dir().join("vocab.json");
    let zero = device(dir, "zero", 5);
    let looped = link_loop(dir, "loop");
    let import = |path: &Path| {
        fx.precis.run(&[
            OsStr::new("--quiet"),
            OsStr::new("models"),
            OsStr::new("import"),
            OsStr::new(ID),
            path.as_os_str(),
            OsStr::new("--file"),
            OsStr::new("vocab.json"),
        ])
    };
    for (path, message) in [
        (dir.to_path_buf(), "it is a folder, not a file"),
        (zero, "it is a character device, not a file"),
        (looped, "it is a loop of symbolic links"),
    ] {
        import(&path)
            .expect_code(INPUT)
            .expect_stderr(&format!("cannot import {}: {message}", path.display()));
    }
    // A FIFO is a stream: `precis models import ID <(zcat file.gz)`.
    let pipe = fifo(dir, "pipe");
    let writer = {
        let (pipe, vocab) = (pipe.clone(), vocab.clone());
        std::thread::spawn(move || std::fs::write(pipe, std::fs::read(vocab).unwrap()).unwrap())
    };
    let run = import(&pipe);
    writer.join().unwrap();
    run.expect_code(0);
    assert_eq!(
        std::fs::read(run.stdout.trim()).unwrap(),
        std::fs::read(&vocab).unwrap()
    );
    // A name that is not UTF-8.
    let latin1 = latin1_name(dir, "vocab");
    std::fs::copy(&vocab, &latin1).unwrap();
    import(&latin1).expect_code(0);
    // A file nobody may read.
    let secret = dir.join("secret.json");
    std::fs::copy(&vocab, &secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let args = os_args(&[
        "models",
        "import",
        ID,
        secret.to_str().unwrap(),
        "--file",
        "vocab.json",
    ]);
    run_unprivileged(&fx.precis, dir, &args)
        .expect_code(INPUT)
        .expect_stderr(&format!(
            "cannot import {}: Permission denied",
            secret.display()
        ));
}

#[test]
fn glossaries_that_cannot_be_used_are_usage_errors_and_a_good_one_is_checked() {
    let fx = Fixture::new();
    let input = fx.file("article.txt", ARTICLE.as_bytes());
    let dir = fx.dir.path();
    let three_columns = fx.file("three.tsv", b"# terms\nsommet\tsummit\nKiev\tKyiv\textra\n");
    let contradiction = fx.file("twice.tsv", b"sommet\tsummit\nSommet\tpeak\n");
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.join("absent.tsv"), "cannot read the glossary"),
        (dir.to_path_buf(), "cannot read the glossary"),
        (
            three_columns,
            "glossary line 3: 3 tab-separated columns, at most 2 expected",
        ),
        (contradiction, "is given twice, with different English"),
    ];
    for (glossary, message) in cases {
        let run = fx.translate(&input, &["--glossary", glossary.to_str().unwrap()]);
        run.expect_code(USAGE).expect_stderr(message);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // The tiny model's words are not the glossary's: each term of the article it leaves out is
    // reported, one finding a paragraph that holds it.
    let glossary = fx.file("g.tsv", b"sommet\tsummit\nKiev\n");
    let run = fx.translate(
        &input,
        &["--glossary", glossary.to_str().unwrap(), "--format", "json"],
    );
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let glossary_findings: Vec<(&str, u64)> = report["fidelity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "glossary")
        .map(|f| {
            (
                f["source_text"].as_str().unwrap(),
                f["paragraph"].as_u64().unwrap(),
            )
        })
        .collect();
    let translations = report["translation"]["paragraphs"].as_array().unwrap();
    let expected: Vec<(&str, u64)> = [("sommet", "summit", 0), ("Kiev", "Kiev", 1)]
        .into_iter()
        .filter(|(_, english, p)| {
            !translations[*p as usize]
                .as_str()
                .unwrap()
                .contains(english)
        })
        .map(|(french, _, p)| (french, p))
        .collect();
    assert_eq!(glossary_findings, expected, "{translations:?}");
}
