//! The file system under `/sys`, behind a trait so tests use a temporary tree and inject errors.
//!
//! CI and development machines often run as root, where `chmod 000` proves nothing: permission errors are
//! injected through [`FaultyFs`] instead.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::SourceError;

/// Read access to sysfs-like files by absolute path (`/sys/class/powercap/...`).
pub trait SysFs: Send + Sync {
    /// The file's content.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Entry names of a directory, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether the path exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system seen from `root` (`/` normally, a temporary directory in tests).
#[derive(Debug, Clone)]
pub struct RootFs {
    root: PathBuf,
}

impl RootFs {
    /// Paths are resolved under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn at(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }
}

impl SysFs for RootFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        fs_err::read_to_string(self.at(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs_err::read_dir(self.at(dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        self.at(path).exists()
    }
}

/// A [`RootFs`] whose reads of chosen files fail with a chosen error (permission denied, a vanished device).
#[derive(Debug)]
pub struct FaultyFs {
    inner: RootFs,
    faults: Mutex<HashMap<PathBuf, io::ErrorKind>>,
}

impl FaultyFs {
    /// No faults yet.
    pub fn new(inner: RootFs) -> Self {
        Self {
            inner,
            faults: Mutex::new(HashMap::new()),
        }
    }

    /// Reads of `path` fail with `kind` from now on.
    pub fn fail(&self, path: impl Into<PathBuf>, kind: io::ErrorKind) {
        self.faults
            .lock()
            .expect("fault table")
            .insert(path.into(), kind);
    }

    /// Reads of `path` succeed again.
    pub fn heal(&self, path: &Path) {
        self.faults.lock().expect("fault table").remove(path);
    }
}

impl SysFs for FaultyFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if let Some(kind) = self.faults.lock().expect("fault table").get(path) {
            return Err(io::Error::from(*kind));
        }
        self.inner.read_to_string(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

/// Reads a file holding one unsigned integer.
pub(crate) fn read_u64(fs: &dyn SysFs, path: &Path) -> Result<u64, SourceError> {
    let text = fs.read_to_string(path).map_err(|source| SourceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    text.trim().parse().map_err(|_| SourceError::Parse {
        path: path.display().to_string(),
        content: text.trim().chars().take(40).collect(),
    })
}

/// Reads a one-line text file, trimmed.
pub(crate) fn read_line(fs: &dyn SysFs, path: &Path) -> Option<String> {
    fs.read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Whether an I/O error inside a [`SourceError`] is a permission problem.
pub(crate) fn is_permission(e: &SourceError) -> bool {
    matches!(e, SourceError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
}
