//! The results file of a batch: one JSON line per article, appended whole and flushed to disk,
//! so that a run stopped anywhere (Ctrl-C, `kill -9`, a lost machine) is resumed by running
//! the same command again.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::BatchError;
use crate::files::Target;

/// What every line precis writes starts with; a cut-short last line that starts otherwise
/// was not written by precis, and the file is left alone.
const LINE_START: &str = "{\"id\":";

/// A line of the results file as it was found when the batch started.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Existing {
    pub id: String,
    pub text_sha256: Option<String>,
    pub job_sha256: String,
    #[serde(default, deserialize_with = "present")]
    pub error: bool,
}

/// Whether an `error` field is there, whatever it holds.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Where result lines go.
pub struct Results {
    sink: Sink,
    /// The lines already in the file, by id.
    pub existing: HashMap<String, Existing>,
    /// A line cut short by a crash was dropped from the end of the file.
    pub dropped_torn_line: bool,
}

enum Sink {
    /// A regular file: read back to resume, appended to, locked against a second writer.
    File {
        shown: PathBuf,
        path: PathBuf,
        file: File,
    },
    /// Standard output, a device or a FIFO: written in place, nothing to resume.
    Stream {
        shown: String,
        writer: Box<dyn Write>,
    },
}

impl Results {
    /// The results file at `path` (`None` or `-`: standard output), with the lines a previous
    /// run left in it.
    pub fn open(path: Option<&Path>) -> Result<Results, BatchError> {
        let target = match path {
            None => Target::stdout(),
            Some(path) => Target::check(path)?,
        };
        let Some(file_path) = target.file() else {
            let shown = path.map_or("standard output".into(), |p| p.display().to_string());
            let writer: Box<dyn Write> = match path {
                Some(path) if path != Path::new("-") => {
                    // Never `create`: a device that went away is an error, not a new file.
                    Box::new(File::options().write(true).open(path).map_err(|source| {
                        BatchError::Write {
                            path: shown.clone(),
                            source,
                        }
                    })?)
                }
                _ => Box::new(io::stdout()),
            };
            return Ok(Results {
                sink: Sink::Stream { shown, writer },
                existing: HashMap::new(),
                dropped_torn_line: false,
            });
        };
        let shown = path.unwrap_or(file_path).to_path_buf();
        let (file, existing, dropped_torn_line) = open_file(&shown, file_path)?;
        Ok(Results {
            sink: Sink::File {
                shown,
                path: file_path.to_path_buf(),
                file,
            },
            existing,
            dropped_torn_line,
        })
    }

    /// Whether lines written by an earlier run can be read back.
    pub fn resumable(&self) -> bool {
        matches!(self.sink, Sink::File { .. })
    }

    /// Removes the lines of `ids` from the file (articles to do again: changed since, or
    /// failed and retried), replacing it whole so that no reader sees it half rewritten.
    pub fn forget(&mut self, ids: &HashSet<String>) -> Result<(), BatchError> {
        let Sink::File { shown, path, file } = &mut self.sink else {
            return Ok(());
        };
        if ids.is_empty() {
            return Ok(());
        }
        let write_error = |source| BatchError::Write {
            path: shown.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(&*path).map_err(write_error)?;
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| {
                serde_json::from_str::<Existing>(line).map_or(true, |e| !ids.contains(&e.id))
            })
            .collect();
        Target::check(path)?.write_all(kept.as_bytes())?;
        *file = lock(shown, path)?;
        self.existing.retain(|id, _| !ids.contains(id));
        Ok(())
    }

    /// Appends one result line (`line` holds no newline) whole: on a file, flushed to disk
    /// before the next article starts; a write that fails part-way is cut back off.
    pub fn append(&mut self, line: &str) -> Result<(), BatchError> {
        debug_assert!(line.starts_with(LINE_START) && !line.contains('\n'));
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match &mut self.sink {
            Sink::File { shown, file, .. } => {
                let write_error = |source| BatchError::Write {
                    path: shown.display().to_string(),
                    source,
                };
                let before = file.metadata().map_err(write_error)?.len();
                if let Err(source) = file.write_all(&bytes).and_then(|_| file.sync_data()) {
                    // A line cut short would glue itself to the next one.
                    let _ = file.set_len(before);
                    return Err(write_error(source));
                }
                Ok(())
            }
            Sink::Stream { shown, writer } => writer
                .write_all(&bytes)
                .and_then(|_| writer.flush())
                .map_err(|source| BatchError::Write {
                    path: shown.clone(),
                    source,
                }),
        }
    }
}

/// Opens (or creates) the results file, locks it, reads its lines and drops a last line that
/// a crash cut short.
fn open_file(
    shown: &Path,
    path: &Path,
) -> Result<(File, HashMap<String, Existing>, bool), BatchError> {
    let file = lock(shown, path)?;
    let read_error = |source| BatchError::Write {
        path: shown.display().to_string(),
        source,
    };
    let text = std::fs::read(path).map_err(read_error)?;
    let not_results = |line: usize, problem: String| BatchError::NotResults {
        path: shown.display().to_string(),
        line,
        problem,
    };
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let tail = &text[complete..];
    let mut existing = HashMap::new();
    let lines = std::str::from_utf8(&text[..complete])
        .map_err(|e| not_results(0, format!("it is not UTF-8 text: {e}")))?;
    for (index, line) in lines.lines().enumerate() {
        let found: Existing = serde_json::from_str(line).map_err(|e| {
            not_results(
                index + 1,
                format!("not a result line of precis batch ({e})"),
            )
        })?;
        existing.insert(found.id.clone(), found);
    }
    let dropped_torn_line = !tail.is_empty();
    if dropped_torn_line {
        if !tail.starts_with(LINE_START.as_bytes()) {
            return Err(not_results(
                lines.lines().count() + 1,
                "the last line is not one precis wrote".into(),
            ));
        }
        file.set_len(complete as u64).map_err(read_error)?;
    }
    Ok((file, existing, dropped_torn_line))
}

/// The file opened for appending (created if need be) and locked, so that two processes never
/// write one results file.
fn lock(shown: &Path, path: &Path) -> Result<File, BatchError> {
    let file = File::options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| BatchError::Write {
            path: shown.display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BatchError::Locked {
            path: shown.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(BatchError::Write {
            path: shown.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, error: bool) -> String {
        let error = if error {
            ",\"error\":{\"kind\":\"input\",\"message\":\"empty\"}"
        } else {
            ",\"translation\":{}"
        };
        format!("{{\"id\":\"{id}\",\"source\":\"{id}.txt\",\"text_sha256\":\"ab\",\"job_sha256\":\"cd\"{error}}}")
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_complete_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let whole = format!("{}\n{}\n", line("a", false), line("b", true));
        let torn = &line("c", false)[..30];
        std::fs::write(&path, format!("{whole}{torn}")).unwrap();
        let results = Results::open(Some(&path)).unwrap();
        assert!(results.dropped_torn_line && results.resumable());
        assert_eq!(results.existing.len(), 2);
        assert!(!results.existing["a"].error && results.existing["b"].error);
        assert_eq!(results.existing["a"].text_sha256.as_deref(), Some("ab"));
        drop(results);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
    }

    #[test]
    fn a_file_precis_did_not_write_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        for content in [
            "some notes\nabout the articles\n".to_string(),
            format!(
                "{}\n{{\"id\":\"x\",\"text\":\"input record\"}}\n",
                line("a", false)
            ),
            format!("{}\nno newline at the end", line("a", false)),
        ] {
            let path = dir.path().join("notes.jsonl");
            std::fs::write(&path, &content).unwrap();
            let error = Results::open(Some(&path)).err().expect("refused");
            assert!(matches!(error, BatchError::NotResults { .. }), "{error}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        }
    }

    #[test]
    fn lines_are_appended_whole_forgotten_on_demand_and_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let mut results = Results::open(Some(&path)).unwrap();
        assert!(results.existing.is_empty() && !results.dropped_torn_line);
        for id in ["a", "b", "c"] {
            results.append(&line(id, id == "b")).unwrap();
        }
        let second = Results::open(Some(&path)).err().expect("locked");
        assert!(matches!(second, BatchError::Locked { .. }), "{second}");

        results.forget(&HashSet::from(["b".to_string()])).unwrap();
        results.append(&line("b", false)).unwrap();
        drop(results);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{}\n{}\n{}\n",
                line("a", false),
                line("c", false),
                line("b", false)
            )
        );
        let again = Results::open(Some(&path)).unwrap();
        assert_eq!(again.existing.len(), 3);
        assert!(!again.existing["b"].error);
    }
}
