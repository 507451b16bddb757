//! The `path` source: a file or a Hugging Face checkpoint directory already on this machine, used in place.
//!
//! Nothing is copied into the cache: the file (or directory) is verified where it is, every time it is asked for
//! (a verification stamp spares the re-hash of an unchanged file), so a file changed since is refused. It is the
//! only source [`crate::Fetcher::lookup`] consults, as it never needs the network.

use std::path::{Path, PathBuf};

use meek_config::{ModelSpec, Source};

use crate::Fetcher;
use crate::source::ModelSource;

/// A configured `path`.
pub(crate) struct LocalPath<'a> {
    /// The configured source, for its name.
    pub(crate) config: &'a Source,
    /// The file or checkpoint directory.
    pub(crate) path: &'a Path,
}

impl ModelSource for LocalPath<'_> {
    fn name(&self) -> String {
        self.config.to_string()
    }

    fn fetch(&self, ctx: &Fetcher, spec: &ModelSpec) -> Result<(PathBuf, u64), String> {
        ctx.verify(self.path, &spec.sha256)
            .map(|size| (self.path.to_path_buf(), size))
    }

    fn lookup(&self, ctx: &Fetcher, spec: &ModelSpec) -> Option<(PathBuf, u64)> {
        self.fetch(ctx, spec).ok()
    }
}
