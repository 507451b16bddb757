//! The lock file beside a config: for each model that names a hub repository at a branch or tag instead of a
//! `sha256`, the commit and the file's SHA-256 it resolved to, so that every bench of the config measures the same
//! bytes, as `Cargo.lock` does for crates.
//!
//! `configs/mid.toml` is locked by `configs/mid.lock` ([`lock_path`]). `meekbench lock` writes it from the hub's
//! metadata; `bench` reads it, writes it for models it had to resolve, and with `--locked` refuses any model the
//! lock does not pin. An entry pins a model only while the model is configured as it was when locked (same file,
//! repository, revision and file in the repository); an entry that no longer matches is *stale* and says which
//! field moved. A lock file is shared with the config, so it is untrusted input like the config: its size, its
//! entries and every name and hash in it are checked before use, and an error names the file and the entry.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::{ModelSpec, Source, paths};

/// The lock file format this build writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// The largest lock file read: thousands of entries, far below what would strain memory.
pub const MAX_LOCK_BYTES: u64 = 4 << 20;

/// The largest model file a lock may name (16 TiB): far above any model, low enough that sums of sizes and
/// caches cannot overflow.
pub const MAX_MODEL_BYTES: u64 = 1 << 44;

/// The lock file of the config at `config`: the same name with the extension `.lock`.
pub fn lock_path(config: &Path) -> PathBuf {
    config.with_extension("lock")
}

/// A parsed, validated lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// One entry per locked model, in the config's order.
    #[serde(default)]
    pub models: Vec<LockedModel>,
}

/// One model's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedModel {
    /// The model's `id` in the config.
    pub id: String,
    /// The model's `file`.
    pub file: String,
    /// The hub repository, `owner/name`.
    pub hub: String,
    /// The revision as configured (a branch or tag such as `main`).
    pub revision: String,
    /// The file's path in the repository when the config gives one (`file` of the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_file: Option<String>,
    /// The commit the revision resolved to (40 hex digits).
    pub commit: String,
    /// SHA-256 of the file at that commit, lower-case hex.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
}

/// What a model without `sha256` is locked by: its first hub source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `owner/name`.
    pub repo: String,
    /// Revision as configured.
    pub revision: String,
    /// File in the repository when it differs from the model's file.
    pub file: Option<String>,
}

impl HubRef {
    /// The path of the file in the repository for a model whose file is `model_file`.
    pub fn path_in_repo<'a>(&'a self, model_file: &'a str) -> &'a str {
        self.file.as_deref().unwrap_or(model_file)
    }
}

/// A configured model without `sha256`, which only a lock pins.
#[derive(Debug, Clone, PartialEq)]
pub struct Lockable {
    /// Position in the config's `[[models]]`.
    pub index: usize,
    /// The model as configured (its hub revision as written, `sha256` empty): not to be fetched as it is.
    pub spec: ModelSpec,
    /// The hub source the pin comes from.
    pub hub: HubRef,
    /// Whether the lock pins it.
    pub state: LockState,
}

/// Whether a [`Lockable`] model is pinned by the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// The lock's entry matches the model: it is in [`crate::Config::models`] with the entry's commit and SHA-256.
    Pinned,
    /// The lock has no entry for it (or there is no lock).
    Missing,
    /// The lock's entry no longer matches the config: what changed.
    Stale(String),
}

impl Lockable {
    /// `models[i] (id)`, for messages.
    pub fn name(&self) -> String {
        format!("models[{}] ({})", self.index, self.spec.id)
    }

    /// Why the model is not pinned, in words; `None` when it is.
    pub fn why(&self) -> Option<String> {
        match &self.state {
            LockState::Pinned => None,
            LockState::Missing => Some(format!(
                "{} names hub:{}@{} without sha256, and the lock has no entry for it",
                self.name(),
                self.hub.repo,
                self.hub.revision
            )),
            LockState::Stale(what) => Some(format!(
                "{}: the lock's entry no longer matches the config ({what})",
                self.name()
            )),
        }
    }
}

/// The first hub source of `spec`, which a model without `sha256` is locked by.
pub fn hub_ref(spec: &ModelSpec) -> Option<HubRef> {
    spec.sources.iter().find_map(|s| match s {
        Source::Hub {
            repo,
            revision,
            file,
        } => Some(HubRef {
            repo: repo.clone(),
            revision: revision.clone(),
            file: file.clone(),
        }),
        _ => None,
    })
}

impl Lock {
    /// Parses and validates lock text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Lock, String> {
        if text.len() as u64 > MAX_LOCK_BYTES {
            return Err(format!(
                "{origin}: {} bytes; a lock file may hold at most {MAX_LOCK_BYTES}",
                text.len()
            ));
        }
        let lock: Lock =
            toml::from_str(text).map_err(|e| format!("{origin}: {}", e.to_string().trim_end()))?;
        if lock.version != LOCK_VERSION {
            return Err(format!(
                "{origin}: `version` = {} is not a lock format this meekbench reads (it reads {LOCK_VERSION}); \
                 run `meekbench lock` again to rewrite it",
                lock.version
            ));
        }
        // No entries is a lock too: every model of its config may have come to pin its own sha256.
        if lock.models.len() > limits::MODELS.max {
            return Err(format!(
                "{origin}: `models` holds {} entries; a lock holds at most {}",
                lock.models.len(),
                limits::MODELS.max
            ));
        }
        for (i, m) in lock.models.iter().enumerate() {
            m.validate()
                .map_err(|e| format!("{origin}: `models[{i}]` ({:?}): {e}", m.id))?;
            if lock.models[..i].iter().any(|o| o.id == m.id) {
                return Err(format!(
                    "{origin}: `models[{i}]`: id {:?} is locked twice",
                    m.id
                ));
            }
        }
        Ok(lock)
    }

    /// Reads the lock file at `path`: `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<(Lock, String)>, String> {
        let meta = match fs_err::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if !meta.is_file() || meta.len() > MAX_LOCK_BYTES {
            return Err(format!(
                "{}: not a lock file (a lock file is a TOML file of at most {MAX_LOCK_BYTES} bytes)",
                path.display()
            ));
        }
        // Read at most one byte past the cap, so a file that grows after the size check is still refused.
        let mut text = String::new();
        fs_err::File::open(path)
            .map_err(|e| e.to_string())?
            .take(MAX_LOCK_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let lock = Self::parse(&text, &path.display().to_string())?;
        Ok(Some((lock, text)))
    }

    /// The lock as TOML text, with a header that says what it is.
    pub fn to_text(&self, config_name: &str) -> String {
        let body = toml::to_string(self).expect("a lock serialises");
        format!(
            "# The pins of {config_name}: the commit and SHA-256 each hub model without `sha256` resolved to.\n\
             # Written by `meekbench lock` (or the first `bench`); commit it beside the config.\n\
             # `meekbench lock --update` moves every pin to its revision's current commit.\n\n{body}"
        )
    }

    /// The entry for model `id`.
    pub fn get(&self, id: &str) -> Option<&LockedModel> {
        self.models.iter().find(|m| m.id == id)
    }
}

impl LockedModel {
    fn validate(&self) -> Result<(), String> {
        paths::model_id(&self.id).map_err(|e| format!("id: {e}"))?;
        if self.size > MAX_MODEL_BYTES {
            return Err(format!(
                "size {} is more than a model file can be here ({MAX_MODEL_BYTES} bytes)",
                self.size
            ));
        }
        paths::file_name(&self.file).map_err(|e| format!("file: {e}"))?;
        paths::repo_id(&self.hub).map_err(|e| format!("hub: {e}"))?;
        paths::revision(&self.revision)?;
        if let Some(f) = &self.hub_file {
            paths::relative(f).map_err(|e| format!("hub_file {f:?}: {e}"))?;
        }
        if !is_hex(&self.commit, 40) {
            return Err(format!(
                "commit {:?} is not a commit hash (40 hex digits)",
                self.commit
            ));
        }
        if !is_hex(&self.sha256, 64) {
            return Err(format!(
                "sha256 {:?} is not a SHA-256 (64 lower-case hex digits)",
                self.sha256
            ));
        }
        Ok(())
    }

    /// What differs between this entry and model `spec` locked by `hub`, or `None` when it pins it.
    pub fn mismatch(&self, spec: &ModelSpec, hub: &HubRef) -> Option<String> {
        let moved = |what: &str, was: &str, is: &str| {
            (was != is).then(|| format!("{what} was {was:?} when locked, is {is:?}"))
        };
        moved("file", &self.file, &spec.file)
            .or_else(|| moved("hub", &self.hub, &hub.repo))
            .or_else(|| moved("revision", &self.revision, &hub.revision))
            .or_else(|| {
                moved(
                    "the file in the repository",
                    self.hub_file.as_deref().unwrap_or(&self.file),
                    hub.path_in_repo(&spec.file),
                )
            })
    }
}

/// `s` is `n` lower-case hex digits.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Pins `spec` with `entry`: the SHA-256, and the hub source's revision replaced by the locked commit, so the file
/// is fetched (and recorded) at that commit.
pub(crate) fn apply(spec: &mut ModelSpec, entry: &LockedModel) {
    spec.sha256 = entry.sha256.clone();
    if let Some(Source::Hub { revision, .. }) = spec
        .sources
        .iter_mut()
        .find(|s| matches!(s, Source::Hub { .. }))
    {
        *revision = entry.commit.clone();
    }
}
