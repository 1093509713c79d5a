//! Streaming SHA-256, so multi-gigabyte weights are hashed without being held in memory.

use std::{
    fs::File,
    io::{self, Read, Write},
    path::Path,
};

use indicatif::ProgressBar;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// `(sha256 hex, bytes written)`.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The hashes a cache blob can be named by.
pub(crate) struct FileDigests {
    pub(crate) sha256: String,
    /// Git's blob id, `sha1("blob <len>\0" + content)`: the hub's name for small files.
    pub(crate) git_sha1: String,
    pub(crate) size: u64,
}

/// Hashes a file in one pass, advancing `bar` by the bytes read.
pub(crate) fn file_digests(path: &Path, bar: &ProgressBar) -> io::Result<FileDigests> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut sha256 = HashingWriter::new(io::sink());
    let mut git_sha1 = Sha1::new();
    git_sha1.update(format!("blob {len}\0").as_bytes());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.write_all(&buf[..n])?;
        git_sha1.update(&buf[..n]);
        bar.inc(n as u64);
    }
    let (sha256, size) = sha256.finish();
    Ok(FileDigests {
        sha256,
        git_sha1: hex(&git_sha1.finalize()),
        size,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_sha256_test_vector() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (sha, n) = w.finish();
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn git_blob_id_matches_git_hash_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello");
        std::fs::write(&path, "hello\n").unwrap();
        let digests = file_digests(&path, &ProgressBar::hidden()).unwrap();
        // `echo hello | git hash-object --stdin`
        assert_eq!(digests.git_sha1, "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(digests.size, 6);
    }
}
