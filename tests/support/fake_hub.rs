//! A fake Hugging Face hub on 127.0.0.1, for testing the real `hf-hub` download path
//! without network access.
//!
//! It answers what `hf_hub::api::sync` 0.4.3 asks for:
//!
//! * `GET /{repo_id}/resolve/{revision}/{filename}`: hf-hub sends the revision with
//!   every `/` written as `%2F` (`refs/pr/4` -> `refs%2Fpr%2F4`) and the filename as is.
//!   hf-hub first asks `Range: bytes=0-0` (headers `x-repo-commit`, `etag` and
//!   `Content-Range: bytes 0-0/TOTAL` give it the commit, the blob name and the size),
//!   then `Range: bytes=START-` for the content (START > 0 when resuming a `.part` file).
//! * `GET /api/models/{repo_id}/revision/{revision}`: `{"id", "sha", "siblings": [{"rfilename"}]}`.
//!
//! Like the real hub, small files get the git blob sha1 as `etag`; files over
//! [`LFS_THRESHOLD`] bytes are "LFS" files whose `etag` and `x-linked-etag` are the
//! sha256 of the content. With [`FakeHub::set_lfs_redirect`] LFS files are answered with
//! a 302 to `{endpoint}/lfs/{repo_id}/{sha256}` (as the real hub redirects to its CDN).
//! Unknown repo, revision or file: 404 with `x-error-code` `RepoNotFound`,
//! `RevisionNotFound` or `EntryNotFound`. Unsatisfiable ranges: 416 with
//! `Content-Range: bytes */TOTAL`. Every response says `Connection: close`.
//!
//! Only model repos (no `datasets/` or `spaces/` prefix) are served.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Files strictly larger than this many bytes are served as LFS files.
pub const LFS_THRESHOLD: usize = 1_000_000;

/// A fault injected into the answers for one file (see [`FakeHub::set_fault`]).
///
/// A fault applies to every request for the file's content, the `bytes=0-0` metadata
/// request included (with the LFS redirect on: to the CDN requests, not the 302).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// 404 with `x-error-code: EntryNotFound`, as if the file did not exist.
    NotFound,
    /// Send the full headers (the Content-Length of the whole answer), then only the
    /// first `n` bytes of the body, then close the connection.
    CutAfter(usize),
    /// Send the headers, wait this long (or until the hub is stopped, then close),
    /// then send the body.
    Stall(Duration),
    /// Send the headers and the first `n` bytes of the body, then wait as [`Fault::Stall`]
    /// does, then send the rest.
    StallAfter(usize, Duration),
}

/// One request the hub received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request path as sent (still percent-encoded), without the query string.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// A fake hub serving on a background thread until [`FakeHub::stop`] or drop.
pub struct FakeHub {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    addr: SocketAddr,
    stopped: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// repo_id -> revisions
    repos: HashMap<String, Vec<Revision>>,
    /// (repo_id, filename) -> fault
    faults: HashMap<(String, String), Fault>,
    lfs_redirect: bool,
    log: Vec<Request>,
}

struct Revision {
    name: String,
    commit: String,
    files: Vec<File>,
}

struct File {
    name: String,
    content: Arc<Vec<u8>>,
    etag: String,
    lfs: bool,
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    fault: Fault,
}

impl FakeHub {
    /// Binds 127.0.0.1 on a free port and starts serving (no repos yet).
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let shared = Arc::new(Shared {
            addr: listener.local_addr().expect("local_addr"),
            stopped: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stopped.load(Ordering::SeqCst) {
                        break; // dropping `listener` closes the port
                    }
                    if let Ok(stream) = stream {
                        let shared = shared.clone();
                        thread::spawn(move || {
                            let _ = serve(&shared, stream);
                        });
                    }
                }
            })
        };
        FakeHub {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `ApiBuilder::with_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Adds (or replaces) `revision` of `repo_id`, pointing at `commit` and holding
    /// `files` as (path in repo, content). The commit sha also works as a revision.
    pub fn add_repo(
        &self,
        repo_id: &str,
        revision: &str,
        commit: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> &Self {
        let files = files
            .into_iter()
            .map(|(name, content)| File {
                name,
                etag: etag(&content),
                lfs: content.len() > LFS_THRESHOLD,
                content: Arc::new(content),
            })
            .collect();
        let mut state = self.state();
        let revisions = state.repos.entry(repo_id.to_string()).or_default();
        revisions.retain(|r| r.name != revision);
        revisions.push(Revision {
            name: revision.to_string(),
            commit: commit.to_string(),
            files,
        });
        self
    }

    /// Sets the fault for `filename` in `repo_id` (all revisions); `Fault::None` clears it.
    pub fn set_fault(&self, repo_id: &str, filename: &str, fault: Fault) {
        let key = (repo_id.to_string(), filename.to_string());
        self.state().faults.insert(key, fault);
    }

    /// Answers LFS files with a 302 to `{endpoint}/lfs/{repo_id}/{sha256}`, like the
    /// real hub's redirect to its CDN. Off by default.
    pub fn set_lfs_redirect(&self, on: bool) {
        self.state().lfs_redirect = on;
    }

    /// How many requests had this path, given either as sent
    /// (`/org/name/resolve/refs%2Fpr%2F4/f`) or decoded (`/org/name/resolve/refs/pr/4/f`).
    pub fn requests(&self, path: &str) -> usize {
        self.requests_to(path).len()
    }

    /// The requests (in order) with this path, matched as in [`FakeHub::requests`].
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        let state = self.state();
        let matches = |r: &&Request| r.path == path || percent_decode(&r.path) == path;
        state.log.iter().filter(matches).cloned().collect()
    }

    /// Every request received so far, in order.
    pub fn log(&self) -> Vec<Request> {
        self.state().log.clone()
    }

    pub fn total_requests(&self) -> usize {
        self.state().log.len()
    }

    /// Stops serving: returns once the port is closed, so that later connections are
    /// refused. Stalled answers are cut. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            self.shared.stopped.store(true, Ordering::SeqCst);
            // Wake the acceptor blocked in accept(); it sees `stopped` and exits.
            let _ = TcpStream::connect(self.shared.addr);
            let _ = acceptor.join();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every later assertion down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The path hf-hub 0.4.3 requests for a file: `/{repo_id}/resolve/{revision}/{filename}`
/// with `/` in the revision written `%2F`.
pub fn resolve_path(repo_id: &str, revision: &str, filename: &str) -> String {
    let revision = revision.replace('/', "%2F");
    format!("/{repo_id}/resolve/{revision}/{filename}")
}

/// The etag the hub sends for `content`, which hf-hub uses as the blob's file name in
/// its cache: sha256 hex for LFS files, git blob sha1 hex for the others.
pub fn etag(content: &[u8]) -> String {
    if content.len() > LFS_THRESHOLD {
        sha256_hex(content)
    } else {
        git_blob_sha1(content)
    }
}

pub fn sha256_hex(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

/// What `git hash-object` prints: sha1 of `"blob {len}\0"` followed by the content.
pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut data = format!("blob {}\0", content.len()).into_bytes();
    data.extend_from_slice(content);
    hex(&sha1(&data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-1 (FIPS 180-4), std only; only used for small files' etags.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, x) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Decodes `%XX` escapes; anything malformed is kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_byte = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_byte) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection, one request (`Connection: close`).
fn serve(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    if method.is_empty() {
        return Ok(()); // e.g. the wake-up connection from stop()
    }

    let response = {
        let mut state = shared.state();
        state.log.push(Request {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
        });
        if method != "GET" {
            error(405, "MethodNotAllowed", "only GET is served")
        } else {
            route(&state, shared.addr, &path, range.as_deref())
        }
    };
    write_response(shared, &mut stream, response)
}

fn route(state: &State, addr: SocketAddr, path: &str, range: Option<&str>) -> Response {
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let (repo_id, revision) = rest.split_once("/revision/").unwrap_or((rest, "main"));
        return info(state, &percent_decode(repo_id), &percent_decode(revision));
    }
    if let Some(rest) = path.strip_prefix("/lfs/") {
        return lfs(state, rest, range);
    }
    let Some((repo_id, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return error(404, "NotFound", "no such route");
    };
    let (repo_id, rest) = (percent_decode(repo_id), percent_decode(rest));
    let Some(revisions) = state.repos.get(&repo_id) else {
        return error(404, "RepoNotFound", "Repository not found");
    };
    // `rest` is "{revision}/{filename}", and the revision may contain '/' itself:
    // take the longest known revision name (or commit) followed by '/'.
    let found = revisions
        .iter()
        .flat_map(|r| [(&r.name, r), (&r.commit, r)])
        .filter(|(name, _)| rest.starts_with(name.as_str()) && rest[name.len()..].starts_with('/'))
        .max_by_key(|(name, _)| name.len());
    let Some((revision_name, revision)) = found else {
        return error(404, "RevisionNotFound", "Revision not found");
    };
    let filename = &rest[revision_name.len() + 1..];
    let Some(file) = revision.files.iter().find(|f| f.name == filename) else {
        return error(404, "EntryNotFound", "Entry not found");
    };
    let mut headers = vec![
        ("x-repo-commit", revision.commit.clone()),
        ("etag", format!("\"{}\"", file.etag)),
    ];
    if file.lfs {
        headers.push(("x-linked-etag", format!("\"{}\"", file.etag)));
        headers.push(("x-linked-size", file.content.len().to_string()));
        if state.lfs_redirect {
            let location = format!("http://{addr}/lfs/{repo_id}/{}", file.etag);
            headers.push(("location", location));
            return Response {
                status: 302,
                headers,
                body: Vec::new(),
                fault: Fault::None,
            };
        }
    }
    let fault = fault_for(state, &repo_id, filename);
    content(headers, &file.content, range, fault)
}

/// The "CDN" answering the LFS redirects: `/lfs/{repo_id}/{sha256}`.
fn lfs(state: &State, rest: &str, range: Option<&str>) -> Response {
    let rest = percent_decode(rest);
    let Some((repo_id, sha)) = rest.rsplit_once('/') else {
        return error(404, "NotFound", "no such object");
    };
    let file = state
        .repos
        .get(repo_id)
        .into_iter()
        .flatten()
        .flat_map(|r| &r.files)
        .find(|f| f.lfs && f.etag == sha);
    match file {
        Some(file) => {
            let headers = vec![("etag", format!("\"{}\"", file.etag))];
            let fault = fault_for(state, repo_id, &file.name);
            content(headers, &file.content, range, fault)
        }
        None => error(404, "NotFound", "no such object"),
    }
}

fn fault_for(state: &State, repo_id: &str, filename: &str) -> Fault {
    let key = (repo_id.to_string(), filename.to_string());
    state.faults.get(&key).cloned().unwrap_or_default()
}

/// 200, 206 or 416 for `data` as asked by the `Range` header.
fn content(
    mut headers: Vec<(&'static str, String)>,
    data: &[u8],
    range: Option<&str>,
    fault: Fault,
) -> Response {
    if fault == Fault::NotFound {
        return error(404, "EntryNotFound", "Entry not found");
    }
    let total = data.len();
    headers.push(("accept-ranges", "bytes".to_string()));
    headers.push(("content-type", "application/octet-stream".to_string()));
    let (status, body) = match range.and_then(|r| parse_range(r, total)) {
        None => (200, data.to_vec()),
        Some(Some((first, last))) => {
            headers.push(("content-range", format!("bytes {first}-{last}/{total}")));
            (206, data[first..=last].to_vec())
        }
        Some(None) => {
            headers.push(("content-range", format!("bytes */{total}")));
            (416, Vec::new())
        }
    };
    Response {
        status,
        headers,
        body,
        fault,
    }
}

/// Parses a single `bytes=` range against a body of `total` bytes: `None` to ignore the
/// header (malformed or several ranges: send everything), `Some(None)` when
/// unsatisfiable, else `Some(Some((first, last)))`, inclusive.
fn parse_range(header: &str, total: usize) -> Option<Option<(usize, usize)>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range "-N": the last N bytes.
        let n: usize = last.parse().ok()?;
        return Some((n > 0 && total > 0).then(|| (total - n.min(total), total - 1)));
    }
    let first: usize = first.parse().ok()?;
    let last = if last.is_empty() {
        usize::MAX
    } else {
        last.parse().ok()?
    };
    if last < first {
        return None;
    }
    Some((first < total).then(|| (first, last.min(total - 1))))
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message })
        .to_string()
        .into_bytes();
    Response {
        status,
        headers: vec![
            ("x-error-code", code.to_string()),
            ("x-error-message", message.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        body,
        fault: Fault::None,
    }
}

fn info(state: &State, repo_id: &str, revision: &str) -> Response {
    let Some(revisions) = state.repos.get(repo_id) else {
        return error(404, "RepoNotFound", "Repository not found");
    };
    let Some(rev) = revisions
        .iter()
        .find(|r| r.name == revision || r.commit == revision)
    else {
        return error(404, "RevisionNotFound", "Revision not found");
    };
    let siblings: Vec<_> = rev
        .files
        .iter()
        .map(|f| serde_json::json!({ "rfilename": f.name }))
        .collect();
    let body = serde_json::json!({
        "id": repo_id,
        "modelId": repo_id,
        "sha": rev.commit,
        "siblings": siblings,
    });
    Response {
        status: 200,
        headers: vec![("content-type", "application/json".to_string())],
        body: body.to_string().into_bytes(),
        fault: Fault::None,
    }
}

fn write_response(shared: &Shared, stream: &mut TcpStream, response: Response) -> io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    let body = &response.body[..];
    match response.fault {
        Fault::CutAfter(n) => stream.write_all(&body[..n.min(body.len())])?,
        Fault::Stall(duration) => stall_then_send(shared, stream, body, 0, duration)?,
        Fault::StallAfter(n, duration) => stall_then_send(shared, stream, body, n, duration)?,
        Fault::None | Fault::NotFound => stream.write_all(body)?,
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

/// Sends `body[..sent_first]`, waits `duration` (or until the hub is stopped, then sends
/// nothing more), then sends the rest.
fn stall_then_send(
    shared: &Shared,
    stream: &mut TcpStream,
    body: &[u8],
    sent_first: usize,
    duration: Duration,
) -> io::Result<()> {
    let (first, rest) = body.split_at(sent_first.min(body.len()));
    stream.write_all(first)?;
    stream.flush()?;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline && !shared.stopped.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
    if !shared.stopped.load(Ordering::SeqCst) {
        stream.write_all(rest)?;
    }
    Ok(())
}
