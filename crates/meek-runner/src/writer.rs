//! Result files: a new, uniquely named file per bench, rewritten atomically after every measurement, and held by
//! one bench at a time.
//!
//! Two benches writing one file (a `--resume` of a file another bench is still writing, or two resumes at once)
//! would both measure, each slowing the other, and overwrite each other's runs. Every [`ResultFile`] holds an
//! exclusive lock on `.NAME.lock` beside the file for as long as it lives (not on the file itself: each atomic
//! write replaces the file's inode). The lock file is removed when the bench ends; one left by a killed process
//! is not locked, and the next bench takes it over.

use fs_err::File;
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

use meek_schema::BenchResult;

use crate::BenchError;

/// Owns one result file.
#[derive(Debug)]
pub struct ResultFile {
    path: PathBuf,
    lock: Option<(File, PathBuf)>,
    /// Reserved by this bench (not resumed): removed again when nothing was ever written to it.
    fresh: bool,
    written: Cell<bool>,
}

impl ResultFile {
    /// Reserves a new file in `dir` (created if needed) named `meekbench-<stamp>-<stem>.json`, adding `-2`, `-3`,
    /// ... when the name is taken, so two benches writing into one directory never share a file.
    pub fn create(dir: &Path, stamp: &str, stem: &str) -> Result<Self, BenchError> {
        let io = |e: std::io::Error| BenchError::Output {
            path: dir.to_path_buf(),
            detail: format!("{e}; choose another directory with --output"),
        };
        fs_err::create_dir_all(dir).map_err(io)?;
        for n in 1..1000 {
            let name = if n == 1 {
                format!("meekbench-{stamp}-{stem}.json")
            } else {
                format!("meekbench-{stamp}-{stem}-{n}.json")
            };
            let path = dir.join(name);
            match fs_err::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    let mut file = Self {
                        path,
                        lock: None,
                        fresh: true,
                        written: Cell::new(false),
                    };
                    if let Err(e) = file.lock() {
                        file.discard();
                        return Err(e);
                    }
                    return Ok(file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(BenchError::Output {
                        path,
                        detail: format!("{e}; choose another directory with --output"),
                    });
                }
            }
        }
        Err(io(std::io::Error::other("no free file name")))
    }

    /// An existing result file, to be continued in place (`bench --resume`). Its directory must be writable, as
    /// every write goes through a temporary file beside it.
    pub fn open(path: &Path) -> Result<Self, BenchError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        tempfile::Builder::new()
            .prefix(".meekbench-")
            .tempfile_in(dir)
            .map_err(|e| BenchError::Output {
                path: dir.to_path_buf(),
                detail: format!("{e}; the directory of a resumed result file must be writable"),
            })?;
        let mut file = Self {
            path: path.to_path_buf(),
            lock: None,
            fresh: false,
            written: Cell::new(false),
        };
        file.lock()?;
        Ok(file)
    }

    /// Takes the exclusive lock of the file, or says which process holds it.
    fn lock(&mut self) -> Result<(), BenchError> {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "result".into(), |n| n.to_string_lossy().into_owned());
        let lock_path = self.path.with_file_name(format!(".{name}.lock"));
        let err = |detail: String| BenchError::Output {
            path: self.path.clone(),
            detail,
        };
        // The lock file may be removed by the holder between our open and our lock: then the lock we got is on a
        // file nobody else will see, so open again.
        for _ in 0..8 {
            let mut f = fs_err::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(|e| {
                    err(format!(
                        "cannot create the lock file {}: {e}",
                        lock_path.display()
                    ))
                })?;
            match f.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = fs_err::read_to_string(&lock_path).unwrap_or_default();
                    return Err(err(format!(
                        "another meekbench ({}) is writing this file; wait for it to end, or stop it first",
                        match holder.trim() {
                            "" => "process".to_string(),
                            pid => format!("pid {pid}"),
                        }
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(err(format!("cannot lock {}: {e}", lock_path.display())));
                }
            }
            if same_file(&f, &lock_path) {
                let _ = f.set_len(0);
                let _ = write!(f, "{}", std::process::id());
                self.lock = Some((f, lock_path));
                return Ok(());
            }
        }
        Err(err(format!(
            "cannot lock {}: it keeps being replaced",
            lock_path.display()
        )))
    }

    /// Removes a file this bench reserved and never wrote a result into (a bench refused before anything was
    /// measured leaves no empty or `running` file behind). A resumed file is never removed.
    pub fn discard(&self) {
        if self.fresh && !self.written.get() {
            let _ = fs_err::remove_file(&self.path);
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content with `result`: written to a temporary file beside it, flushed, then renamed, so
    /// the file is always either the previous complete result or the new one.
    pub fn write(&self, result: &BenchResult) -> Result<(), BenchError> {
        let err = |detail: String| BenchError::Output {
            path: self.path.clone(),
            detail,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let written = (|| {
            meek_hub::temporaries::sweep(dir, "meekbench-result");
            let mut tmp = tempfile::Builder::new()
                .prefix(&meek_hub::temporaries::prefix("meekbench-result"))
                .suffix(".tmp")
                .tempfile_in(dir)
                .map_err(|e| err(e.to_string()))?;
            serde_json::to_writer_pretty(&mut tmp, result).map_err(|e| err(e.to_string()))?;
            tmp.write_all(b"\n").map_err(|e| err(e.to_string()))?;
            tmp.as_file().sync_all().map_err(|e| err(e.to_string()))?;
            tmp.persist(&self.path).map_err(|e| err(e.to_string()))?;
            Ok(())
        })();
        match written {
            Ok(()) => self.written.set(true),
            // A full disk at the first write must not leave an empty file where a result is expected.
            Err(_) => self.discard(),
        }
        written
    }
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        if let Some((f, path)) = self.lock.take() {
            // Removed while still locked, so no other bench can hold a lock on the name we remove.
            let _ = fs_err::remove_file(&path);
            drop(f);
        }
    }
}

/// Whether the open file `f` is still the one at `path`.
#[cfg(unix)]
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs_err::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_f: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> BenchResult {
        serde_json::from_str(include_str!(
            "../../meek-report/tests/fixtures/machine-a.json"
        ))
        .expect("fixture parses")
    }

    #[test]
    fn a_file_is_held_by_one_bench_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = ResultFile::create(dir.path(), "20260101T000000Z", "x").unwrap();
        first.write(&result()).unwrap();
        let e = ResultFile::open(first.path()).unwrap_err().to_string();
        assert!(
            e.contains("another meekbench") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        let path = first.path().to_path_buf();
        drop(first);
        let again = ResultFile::open(&path).unwrap();
        drop(again);
        let names: Vec<String> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "no lock or temporary file left: {names:?}");
    }

    #[test]
    fn a_reserved_file_never_written_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = ResultFile::create(dir.path(), "20260101T000000Z", "x").unwrap();
        let path = f.path().to_path_buf();
        assert!(path.exists());
        f.discard();
        drop(f);
        assert!(!path.exists());
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 0);
    }
}
