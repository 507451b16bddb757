//! The `hub` source: a Hugging Face repository at a pinned revision, through `hf-hub` and its standard cache.
//!
//! One file, or for a model whose `file` is [`CHECKPOINT_FILE`] every file of its safetensors checkpoint into the
//! cache's snapshot, then verified (see the crate docs for the environment it honours, interrupted downloads and
//! corrupt blobs). Also the dataset files of suites ([`Fetcher::fetch_dataset_file`]). Every request's names are
//! checked again here, at every request, against [`meek_config::paths`], since hf-hub joins them onto its cache
//! folder; and a corrupt blob is deleted only through [`remove_cached`], never outside the hub cache.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meek_config::{ModelSpec, Source};

use crate::Fetcher;
use crate::cache::remove_cached;
use crate::progress::BarHandler;
use crate::source::ModelSource;
use crate::verify::{CHECKPOINT_FILE, index_shards};

/// How the hub is reached.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    /// Another endpoint than `HF_ENDPOINT` / huggingface.co.
    pub(crate) endpoint: Option<String>,
    /// Another hub cache than `HF_HUB_CACHE` / `HF_HOME/hub`.
    pub(crate) cache: Option<PathBuf>,
    /// How long a connection may take to be established.
    pub(crate) connect_timeout: Duration,
    /// How long a response may send nothing.
    pub(crate) read_timeout: Duration,
}

impl HubSettings {
    /// The hub cache directory: set with [`Fetcher::with_hub_cache`], else `HF_HUB_CACHE`, `HF_HOME/hub`,
    /// `~/.cache/huggingface/hub` (as `hf-hub` resolves it).
    fn cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.cache {
            return c.clone();
        }
        if let Some(c) = std::env::var_os("HF_HUB_CACHE") {
            return PathBuf::from(c);
        }
        if let Some(h) = std::env::var_os("HF_HOME") {
            return PathBuf::from(h).join("hub");
        }
        let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
        home.join(".cache").join("huggingface").join("hub")
    }

    fn client(&self) -> Result<hf_hub::HFClientSync, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "meekbench/",
                env!("CARGO_PKG_VERSION"),
                " hf-hub/1"
            ))
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let mut builder = hf_hub::HFClient::builder()
            .client(http)
            .retry_max_attempts(2);
        if let Some(e) = &self.endpoint {
            builder = builder.endpoint(e.clone());
        }
        if let Some(c) = &self.cache {
            builder = builder.cache_dir(c.clone());
        }
        builder
            .build_sync()
            .map_err(|e| format!("cannot set up the hub client: {e}"))
    }
}

/// A configured `hub` source.
pub(crate) struct HubRepo<'a> {
    /// The configured source, for its name.
    pub(crate) config: &'a Source,
    /// `owner/name`.
    pub(crate) repo: &'a str,
    /// Commit, branch or tag.
    pub(crate) revision: &'a str,
    /// The file in the repository when it differs from the model's `file`.
    pub(crate) file: Option<&'a str>,
}

impl ModelSource for HubRepo<'_> {
    fn name(&self) -> String {
        self.config.to_string()
    }

    fn fetch(&self, ctx: &Fetcher, spec: &ModelSpec) -> Result<(PathBuf, u64), String> {
        if spec.file == CHECKPOINT_FILE {
            return match self.file {
                Some(f) => Err(format!(
                    "a checkpoint is fetched whole from its repository; remove `file = \"{f}\"`"
                )),
                None => self.fetch_checkpoint(ctx, &spec.sha256),
            };
        }
        self.fetch_file(ctx, self.file.unwrap_or(&spec.file), &spec.sha256)
    }

    /// A single file already in the hub cache at this revision and verified (a checkpoint is not looked up).
    fn lookup(&self, ctx: &Fetcher, spec: &ModelSpec) -> Option<(PathBuf, u64)> {
        let file = self.file.unwrap_or(&spec.file);
        if spec.file == CHECKPOINT_FILE || hub_names(self.repo, self.revision, file).is_err() {
            return None;
        }
        let client = ctx.hub.client().ok()?;
        let (owner, name) = hf_hub::split_id(self.repo);
        let path = client
            .model(owner, name)
            .download_file()
            .filename(file)
            .revision(self.revision)
            .local_files_only(true)
            .send()
            .ok()?;
        let size = ctx.verify(&path, &spec.sha256).ok()?;
        Some((path, size))
    }
}

impl HubRepo<'_> {
    /// One file of the repository, from the hub cache when it is there and verified, else downloaded.
    fn fetch_file(
        &self,
        ctx: &Fetcher,
        file: &str,
        sha256: &str,
    ) -> Result<(PathBuf, u64), String> {
        let (repo, revision) = (self.repo, self.revision);
        hub_names(repo, revision, file)?;
        let offline = hub_offline();
        let client = ctx.hub.client()?;
        let (owner, name) = hf_hub::split_id(repo);
        let hub = client.model(owner, name);
        // Already in the hub cache: used when verified; a corrupt copy is removed and downloaded again.
        if let Ok(path) = hub
            .download_file()
            .filename(file)
            .revision(revision)
            .local_files_only(true)
            .send()
        {
            match ctx.verify(&path, sha256) {
                Ok(size) => return Ok((path, size)),
                Err(why) if offline => return Err(why),
                Err(_) => remove_cached(&ctx.hub.cache_dir(), &path),
            }
        }
        if !offline {
            // The size from the hub's metadata, when it says: refuse what the disk cannot hold before writing.
            if let Ok(meta) = hub
                .get_file_metadata()
                .filepath(file)
                .revision(revision)
                .send()
            {
                ctx.check_space(&ctx.hub.cache_dir(), meta.file_size)?;
            }
        }
        let path = download_watched(ctx, repo, revision, file, offline)?;
        match ctx.verify(&path, sha256) {
            Ok(size) => Ok((path, size)),
            Err(why) => {
                // Never leave a bad blob where the next attempt would find it instead of downloading.
                remove_cached(&ctx.hub.cache_dir(), &path);
                Err(why)
            }
        }
    }

    /// Downloads one file of the repository into the hub cache (no hash check: the caller verifies).
    fn hub_file(&self, ctx: &Fetcher, file: &str) -> Result<PathBuf, String> {
        download_watched(ctx, self.repo, self.revision, file, hub_offline())
    }

    /// Downloads a safetensors checkpoint (config, tokenizer files, index and shards, or the single weights file)
    /// into the hub cache's snapshot of the revision, and verifies the snapshot against the checkpoint digest.
    fn fetch_checkpoint(&self, ctx: &Fetcher, sha256: &str) -> Result<(PathBuf, u64), String> {
        let config = self.hub_file(ctx, CHECKPOINT_FILE)?;
        let dir = config
            .parent()
            .ok_or_else(|| format!("{} has no directory", config.display()))?
            .to_path_buf();
        self.hub_file(ctx, "tokenizer.json")?;
        // Optional files: most repositories keep the chat template in tokenizer_config.json. A file that failed
        // for another reason than its absence is caught by the digest below.
        for optional in ["tokenizer_config.json", "chat_template.jinja"] {
            let _ = self.hub_file(ctx, optional);
        }
        match self.hub_file(ctx, "model.safetensors.index.json") {
            Ok(index) => {
                for shard in index_shards(&index)? {
                    self.hub_file(ctx, &shard)?;
                }
            }
            Err(index_err) => {
                self.hub_file(ctx, "model.safetensors")
                    .map_err(|e| format!("no weights: {index_err}; {e}"))?;
            }
        }
        let size = ctx.verify(&dir, sha256)?;
        Ok((dir, size))
    }
}

impl Fetcher {
    /// A file of a Hugging Face *dataset* repository (e.g. a JSONL suite), through the hub cache; no hash is
    /// pinned for suites, so the revision should be a commit.
    pub fn fetch_dataset_file(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<PathBuf, String> {
        hub_names(repo, revision, file)?;
        let client = self.hub.client()?;
        let (owner, name) = hf_hub::split_id(repo);
        client
            .dataset(owner, name)
            .download_file()
            .filename(file)
            .revision(revision)
            .local_files_only(hub_offline())
            .send()
            .map_err(|e| format!("dataset {repo}@{revision}/{file}: {e}"))
    }
}

/// Downloads one file of a model repository into the hub cache, with a progress bar. hf-hub sends its first
/// request through an HTTP client of its own, without our timeouts: the download runs on a thread of its own,
/// and is given up when nothing arrives for the connect plus read timeout. No hash check: the caller verifies.
pub(crate) fn download_watched(
    ctx: &Fetcher,
    repo: &str,
    revision: &str,
    file: &str,
    offline: bool,
) -> Result<PathBuf, String> {
    hub_names(repo, revision, file)?;
    let bar = ctx.bar(&format!("hub {repo}/{file}"));
    let activity = Arc::new(Mutex::new(Instant::now()));
    let handler = BarHandler(bar.clone(), activity.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let (settings, repo_s, revision_s, file_s) = (
        ctx.hub.clone(),
        repo.to_string(),
        revision.to_string(),
        file.to_string(),
    );
    std::thread::spawn(move || {
        let run = || -> Result<PathBuf, String> {
            let client = settings.client()?;
            let (owner, name) = hf_hub::split_id(&repo_s);
            client
                .model(owner, name)
                .download_file()
                .filename(file_s)
                .revision(revision_s)
                .local_files_only(offline)
                .progress(hf_hub::progress::Progress::new(handler))
                .send()
                .map_err(|e| e.to_string())
        };
        let _ = tx.send(run());
    });
    let stall = ctx.hub.connect_timeout + ctx.hub.read_timeout;
    let path = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => {
                break r.map_err(|mut msg| {
                    if offline {
                        msg.push_str(
                            " (HF_HUB_OFFLINE is set: only the local hub cache was searched)",
                        );
                    }
                    msg
                });
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let idle = activity.lock().map_or(Duration::ZERO, |t| t.elapsed());
                if idle > stall {
                    break Err(format!(
                        "the hub stopped answering: nothing received for {} s (a dead connection or \
                         endpoint; check the network, HF_ENDPOINT or HTTPS_PROXY)",
                        idle.as_secs()
                    ));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the download ended without an answer".to_string());
            }
        }
    };
    bar.finish_and_clear();
    path
}

/// The names of a hub request, held to the rules of [`meek_config::paths`] here too, since hf-hub joins them onto
/// its cache folder (the config checks them first; this guards every other caller).
pub(crate) fn hub_names(repo: &str, revision: &str, file: &str) -> Result<(), String> {
    use meek_config::paths;
    paths::repo_id(repo)?;
    paths::revision(revision)?;
    paths::relative(file).map_err(|e| format!("file {file:?}: {e}"))?;
    Ok(())
}

/// `HF_HUB_OFFLINE` set to a true value: use the hub cache only.
pub(crate) fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}
