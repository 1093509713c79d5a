//! Downloads from the Hugging Face hub through the hf-hub crate, which writes straight into the
//! cache (`blobs/<etag>.part`, renamed to the blob when complete, resumed when a part is left).
//!
//! Cut transfers are resumed here, by calling hf-hub again, not by hf-hub's own retries
//! (`with_retries`): in hf-hub 0.4.3 those report failure when the last retry completes the
//! file, and a retry after an attempt that wrote nothing asks for the file from byte 0 and
//! appends it to the `.part` already there. A fresh call reopens the `.part` and asks from its
//! length.

use std::{
    io,
    path::PathBuf,
    sync::{atomic::Ordering, mpsc, Arc},
    time::{Duration, Instant},
};

use hf_hub::{
    api::sync::{ApiBuilder, ApiError},
    Repo, RepoType,
};

use super::{cache::HfCache, catalog::HubLocation, progress::HubProgress};

/// Why a hub download failed, sorted by what the store should do next.
#[derive(Debug)]
pub(super) enum HubFailure {
    /// No answer at all (DNS, refused connection, TLS): a mirror may still work.
    Unreachable(String),
    /// The hub answered with an HTTP error (404, 401...).
    Refused { status: u16, message: String },
    /// The transfer broke off; what was received stays in a `.part` file for the next try.
    Interrupted(String),
    /// Nothing arrived for the stall timeout; what was received stays in a `.part` file.
    Stalled(Duration),
    /// Writing to the cache failed (disk full, permissions).
    LocalIo(io::Error),
    /// Anything else hf-hub reports (a malformed answer from the server, for instance).
    Other(String),
}

impl std::fmt::Display for HubFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubFailure::Unreachable(m) => write!(f, "the hub is unreachable ({m})"),
            HubFailure::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
            HubFailure::Interrupted(m) => write!(f, "the download was cut ({m})"),
            HubFailure::Stalled(after) => write!(
                f,
                "the hub sent nothing for {} s (PRECIS_STALL_TIMEOUT_SECS sets this limit)",
                after.as_secs()
            ),
            HubFailure::LocalIo(e) => write!(f, "cannot write to the cache ({e})"),
            HubFailure::Other(m) => f.write_str(m),
        }
    }
}

pub(super) struct Hub {
    api: hf_hub::api::sync::Api,
    endpoint: String,
}

/// How many times a cut transfer is resumed from where it stopped before giving up.
const RESUME_RETRIES: usize = 3;

impl Hub {
    /// `endpoint` `None` is hf-hub's default, the public hub.
    pub(super) fn new(endpoint: Option<&str>, cache: &HfCache) -> Result<Self, HubFailure> {
        let mut builder = ApiBuilder::new();
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint.to_string());
        }
        let api = builder
            .with_cache_dir(cache.root().to_path_buf())
            .with_progress(false)
            .with_retries(0)
            .with_user_agent("precis", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(classify)?;
        Ok(Hub {
            api,
            endpoint: endpoint.unwrap_or("the hub").to_string(),
        })
    }

    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Downloads one file of a revision into the cache and returns its snapshot path. Gives up
    /// when nothing arrives for `stall_timeout`: hf-hub 0.4.3 sets no timeout on its requests,
    /// so a server that stops sending would otherwise hang precis for ever. The transfer runs
    /// on its own thread, which is then left blocked on its socket (precis exits soon after;
    /// the `.part` it wrote is resumed by the next run).
    pub(super) fn download(
        &self,
        location: &HubLocation,
        file: &str,
        show_progress: bool,
        stall_timeout: Duration,
    ) -> Result<PathBuf, HubFailure> {
        let repo = self.api.repo(Repo::with_revision(
            location.repo.clone(),
            RepoType::Model,
            location.revision.clone(),
        ));
        let progress = HubProgress {
            visible: show_progress,
            bar: None,
            activity: Arc::default(),
        };
        let activity = Arc::clone(&progress.activity);
        let (done, result) = mpsc::channel();
        let file = file.to_string();
        std::thread::spawn(move || {
            let _ = done.send(download_resuming(&repo, &file, progress));
        });
        let poll = Duration::from_millis(100).min(stall_timeout);
        let mut seen = activity.load(Ordering::Relaxed);
        let mut last_activity = Instant::now();
        loop {
            match result.recv_timeout(poll) {
                Ok(outcome) => return outcome,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(HubFailure::Other("the download thread died".into()))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = activity.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        last_activity = Instant::now();
                    } else if last_activity.elapsed() >= stall_timeout {
                        return Err(HubFailure::Stalled(stall_timeout));
                    }
                }
            }
        }
    }
}

/// Downloads `file`, resuming a cut transfer from its `.part` up to [`RESUME_RETRIES`] times.
fn download_resuming(
    repo: &hf_hub::api::sync::ApiRepo,
    file: &str,
    mut progress: HubProgress,
) -> Result<PathBuf, HubFailure> {
    let mut resumes = 0;
    loop {
        match repo
            .download_with_progress(file, &mut progress)
            .map_err(classify)
        {
            Err(HubFailure::Interrupted(_)) if resumes < RESUME_RETRIES => {
                resumes += 1;
                std::thread::sleep(Duration::from_millis(300 * resumes as u64));
            }
            Err(HubFailure::Interrupted(m)) if resumes > 0 => {
                return Err(HubFailure::Interrupted(format!(
                    "{m}; gave up after {resumes} resumes"
                )))
            }
            result => return result,
        }
    }
}

fn classify(error: ApiError) -> HubFailure {
    match error {
        ApiError::RequestError(request) => match *request {
            ureq::Error::Status(status, response) => {
                let message = response
                    .header("x-error-message")
                    .map(str::to_string)
                    .unwrap_or_else(|| response.status_text().to_string());
                HubFailure::Refused { status, message }
            }
            ureq::Error::Transport(transport) => match transport.kind() {
                ureq::ErrorKind::Dns
                | ureq::ErrorKind::ConnectionFailed
                | ureq::ErrorKind::InvalidUrl
                | ureq::ErrorKind::UnknownScheme
                | ureq::ErrorKind::ProxyConnect
                | ureq::ErrorKind::InvalidProxyUrl => {
                    HubFailure::Unreachable(transport.to_string())
                }
                _ => HubFailure::Interrupted(transport.to_string()),
            },
        },
        ApiError::TooManyRetries(last) => classify(*last),
        ApiError::IoError(e) if is_local_write_failure(&e) => HubFailure::LocalIo(e),
        ApiError::IoError(e) => HubFailure::Interrupted(e.to_string()),
        other => HubFailure::Other(other.to_string()),
    }
}

fn is_local_write_failure(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::FileTooLarge
            | io::ErrorKind::QuotaExceeded
    )
}
