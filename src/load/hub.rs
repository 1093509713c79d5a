//! Downloads from the Hugging Face hub through the hf-hub crate, which writes straight into the
//! cache (`blobs/<etag>.part`, renamed to the blob when complete, resumed when a part is left).
//!
//! Cut transfers are resumed here, by calling hf-hub again, not by hf-hub's own retries
//! (`with_retries`): in hf-hub 0.4.3 those report failure when the last retry completes the
//! file, and a retry after an attempt that wrote nothing asks for the file from byte 0 and
//! appends it to the `.part` already there. A fresh call reopens the `.part` and asks from its
//! length.

use std::{io, path::PathBuf, time::Duration};

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

    /// Downloads one file of a revision into the cache and returns its snapshot path.
    pub(super) fn download(
        &self,
        location: &HubLocation,
        file: &str,
        show_progress: bool,
    ) -> Result<PathBuf, HubFailure> {
        let repo = Repo::with_revision(
            location.repo.clone(),
            RepoType::Model,
            location.revision.clone(),
        );
        let mut progress = HubProgress {
            visible: show_progress,
            bar: None,
        };
        let repo = self.api.repo(repo);
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
