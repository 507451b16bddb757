//! `meekbench lock` and the pinning `bench` does before it measures: models that name a hub revision without
//! `sha256` are resolved to a commit and a SHA-256 (`meek_hub::Fetcher::lock`) and written to the config's lock
//! file, atomically, beside the config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use meek_config::lock::lock_path;
use meek_config::{LoadedConfig, LoadedLock};
use meek_hub::{LockChange, LockOutcome};

use crate::cli::LockArgs;

pub fn lock(args: LockArgs) -> Result<ExitCode> {
    let cfg = meek_config::load_file(&args.config)?;
    let path = lock_path(&args.config);
    if cfg.lockable.is_empty() && cfg.lock.is_none() {
        println!(
            "every model of {} pins its sha256 in the config; no lock is needed",
            cfg.origin
        );
        return Ok(ExitCode::SUCCESS);
    }
    let out = fetcher(&cfg, None).lock(&cfg, args.update, &[]);
    for c in &out.changes {
        println!("  {}", describe(c));
    }
    report_failures(&out);
    let text = out.lock.to_text(&config_name(&args.config));
    // The pins are compared, not the text: a lock checked out with other line ends is still up to date.
    let same = cfg.lock.as_ref().is_some_and(|l| l.lock == out.lock);
    if same {
        println!("{} is up to date", path.display());
    } else if args.check {
        bail!(
            "{} is not up to date with {} (see above); run `meekbench lock {}` and commit the lock",
            path.display(),
            cfg.origin,
            args.config.display()
        );
    } else if out.lock.models.is_empty() && cfg.lock.is_none() {
        println!("nothing could be pinned; no lock written");
    } else {
        write_lock(&path, &text)?;
        println!("wrote {}", path.display());
    }
    if !out.failures.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes sure every model of `cfg` is pinned before a bench: with `locked`, refuses any that is not; otherwise
/// resolves them, writes the lock beside `config` and returns the config pinned by it. `config` is `None` for
/// a config recorded in a result file, whose lock (if any) came with it. A non-empty `only` (the ids of
/// `bench --model`) limits this to those models: a model not chosen is neither resolved nor refused.
pub fn ensure_pinned(
    cfg: LoadedConfig,
    config: Option<&Path>,
    locked: bool,
    cache: Option<&Path>,
    only: &[String],
) -> Result<LoadedConfig> {
    let chosen = |m: &&meek_config::Lockable| only.is_empty() || only.contains(&m.spec.id);
    let why: Vec<String> = cfg
        .unpinned()
        .filter(chosen)
        .filter_map(|m| m.why())
        .collect();
    if why.is_empty() {
        return Ok(cfg);
    }
    let list = why.join("\n  ");
    let Some(config) = config else {
        bail!(
            "{}: models are not pinned, and no lock pins them:\n  {list}\ngive the config file (and its lock) on \
             the command line",
            cfg.origin
        );
    };
    let path = lock_path(config);
    if locked {
        bail!(
            "--locked: {} does not pin every model of {}:\n  {list}\nrun `meekbench lock {}` and commit the lock",
            path.display(),
            cfg.origin,
            config.display()
        );
    }
    let out = fetcher(&cfg, cache).lock(&cfg, false, only);
    if !out.failures.is_empty() {
        report_failures(&out);
        bail!(
            "cannot pin every model of {}; nothing was measured",
            cfg.origin
        );
    }
    for c in &out.changes {
        if !matches!(c, LockChange::Unchanged(_)) {
            eprintln!("{}", describe(c));
        }
    }
    let text = out.lock.to_text(&config_name(config));
    match write_lock(&path, &text) {
        Ok(()) => eprintln!(
            "pinned in {}: commit it beside the config so that others measure the same files",
            path.display()
        ),
        // The pins are recorded in the result file anyway; a read-only config directory does not stop the bench.
        Err(e) => eprintln!("warning: {e:#}; the pins are recorded in the result file only"),
    }
    let lock = LoadedLock {
        origin: path.display().to_string(),
        text,
        lock: out.lock,
    };
    let pinned = meek_config::parse_locked(&cfg.text, &cfg.origin, Some(lock))?;
    if let Some(still) = pinned.unpinned().filter(chosen).find_map(|m| m.why()) {
        bail!("{still}");
    }
    Ok(pinned)
}

fn fetcher(cfg: &LoadedConfig, cache: Option<&Path>) -> meek_hub::Fetcher {
    let cache = cache
        .map(Path::to_path_buf)
        .or_else(|| cfg.config.run.cache.clone())
        .unwrap_or_else(meek_hub::default_cache_dir);
    meek_hub::Fetcher::new(cache).with_progress(true)
}

fn report_failures(out: &LockOutcome) {
    for (model, why) in &out.failures {
        eprintln!("error: {model}: cannot pin: {why}");
    }
}

/// One line per change: what the pin is now and what it was.
fn describe(c: &LockChange) -> String {
    let pin = |e: &meek_config::LockedModel| {
        format!(
            "hub:{}@{} -> commit {}, sha256 {}, {:.1} MiB",
            e.hub,
            e.revision,
            &e.commit[..12],
            &e.sha256[..12],
            e.size as f64 / (1 << 20) as f64
        )
    };
    match c {
        LockChange::Added(e) => format!("{}: pinned {}", e.id, pin(e)),
        LockChange::Unchanged(e) => format!("{}: unchanged, {}", e.id, pin(e)),
        LockChange::Moved(was, e) => {
            let file = if was.sha256 == e.sha256 {
                "the same file"
            } else {
                "another file"
            };
            format!(
                "{}: moved from commit {} to {} ({file}): {}",
                e.id,
                &was.commit[..12],
                &e.commit[..12],
                pin(e)
            )
        }
        LockChange::Removed(e) => format!(
            "{}: removed (no longer a model of the config without sha256)",
            e.id
        ),
    }
}

/// The config's file name, for the lock's header.
fn config_name(config: &Path) -> String {
    config.file_name().map_or_else(
        || config.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Writes the lock through a temporary file in the same directory, renamed over the old one: never half a lock,
/// and a link at the lock's name is replaced, not followed.
fn write_lock(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    meek_hub::temporaries::sweep(&dir, "lock");
    let mut tmp = tempfile::Builder::new()
        .prefix(&meek_hub::temporaries::prefix("lock"))
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write the lock file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A temporary file is private (0600); a lock is shared like the config beside it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
