//! Result files: a new, uniquely named file per bench, rewritten atomically after every measurement.

use std::io::Write;
use std::path::{Path, PathBuf};

use meek_schema::BenchResult;

use crate::BenchError;

/// Owns one result file.
#[derive(Debug)]
pub struct ResultFile {
    path: PathBuf,
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
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
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
        Ok(Self {
            path: path.to_path_buf(),
        })
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
        let mut tmp = tempfile::Builder::new()
            .prefix(".meekbench-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| err(e.to_string()))?;
        serde_json::to_writer_pretty(&mut tmp, result).map_err(|e| err(e.to_string()))?;
        tmp.write_all(b"\n").map_err(|e| err(e.to_string()))?;
        tmp.as_file().sync_all().map_err(|e| err(e.to_string()))?;
        tmp.persist(&self.path).map_err(|e| err(e.to_string()))?;
        Ok(())
    }
}
