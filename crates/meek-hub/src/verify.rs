//! SHA-256 verification: of a file, and of a checkpoint directory by the digest of the files meekbench reads.
//!
//! Nothing is returned from any source before [`Fetcher::verify`] said yes. A success is stamped in the cache
//! (see `cache.rs`) under a key of path, hash, size and modification time, so an unchanged file is hashed once;
//! any change to the key hashes it again. A checkpoint directory is pinned by one value, [`checkpoint_digest`],
//! over the files [`checkpoint_files`] lists; shard names from its index are held to plain file names, since they
//! come from the repository.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs_err as fs;
use sha2::{Digest, Sha256};

use crate::Fetcher;

/// The largest `model.safetensors.index.json` read (a real one of a 400B model is ~2 MB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

pub use meek_config::CHECKPOINT_FILE;

impl Fetcher {
    /// Verifies `path` against `sha256` and returns its size. A success is remembered in a stamp under the cache
    /// (keyed by path, hash, size and modification time) so an unchanged file is hashed once, not on every run.
    pub fn verify(&self, path: &Path, sha256: &str) -> Result<u64, String> {
        let meta = fs::metadata(path).map_err(|e| e.to_string())?;
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
        if self.cache.stamped(path, &key) {
            return Ok(meta.len());
        }
        let got = sha256_file(path).map_err(|e| e.to_string())?;
        if got != sha256 {
            return Err(mismatch(&path.display().to_string(), sha256, &got));
        }
        self.cache.stamp(path, &key);
        Ok(meta.len())
    }

    /// Verifies a checkpoint directory against its [`checkpoint_digest`]; returns the size of its files.
    fn verify_checkpoint(&self, dir: &Path, sha256: &str) -> Result<u64, String> {
        let files = checkpoint_files(dir)?;
        let mut key = format!("{} {sha256}\n", dir.display());
        let mut size = 0;
        for f in &files {
            let meta = fs::metadata(f).map_err(|e| e.to_string())?;
            size += meta.len();
            key.push_str(&format!(
                "{} {} {}\n",
                f.display(),
                meta.len(),
                mtime(&meta)
            ));
        }
        if self.cache.stamped(dir, &key) {
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
        self.cache.stamp(dir, &key);
        Ok(size)
    }
}

/// The message for a file whose hash is not the pinned one.
pub(crate) fn mismatch(what: &str, want: &str, got: &str) -> String {
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

/// The shards a `model.safetensors.index.json` names, sorted, each once.
pub(crate) fn index_shards(index: &Path) -> Result<Vec<String>, String> {
    let size = fs::metadata(index).map_err(|e| e.to_string())?.len();
    if size > MAX_INDEX_BYTES {
        return Err(format!(
            "{}: {size} bytes; a safetensors index of at most {MAX_INDEX_BYTES} bytes is accepted",
            index.display()
        ));
    }
    let text = fs::read_to_string(index).map_err(|e| e.to_string())?;
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
        let h = sha256_file(&f).map_err(|e| e.to_string())?;
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
    let mut f = fs::File::open(path)?;
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
