//! Reading a result file that may come from anyone: the one path every reader goes through (`bench --resume`,
//! `project`, `compare`, `leaderboard`).
//!
//! What a crafted file cannot do here: make the reader hang (only regular files are opened, and a FIFO swapped in
//! after the check cannot block the open: it is opened non-blocking on unix and checked again on the open
//! handle), make it read without end (at most [`MAX_RESULT_BYTES`] plus one byte is read), be read two ways
//! (a key repeated in any object is refused, see [`crate::check_unique_keys`]), or overflow the stack (serde_json's
//! nesting limit). Errors do not repeat the path, since callers name it (through [`crate::shown`]); text quoted
//! from the file in an error is escaped the same way.

use std::fs::Metadata;

use fs_err::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::{BenchResult, SCHEMA_VERSION};

/// Result files larger than this are refused before parsing: real ones are a few megabytes even with every
/// generated answer kept, and files come from other machines and people.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;

/// Why a result file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Not JSON, a key repeated in an object, or not a meekbench result of a known layout.
    Invalid(serde_json::Error),
    /// Written by a newer meekbench.
    NewerSchema {
        /// Version found in the file.
        found: u32,
    },
    /// The file could not be read (or is not UTF-8).
    Io(std::io::Error),
    /// Larger than [`MAX_RESULT_BYTES`]: refused unread.
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// A FIFO, socket, device or directory: refused unopened, since reading one can block for ever or never end.
    NotRegular {
        /// What it is, in words (`a FIFO`, `a directory`).
        kind: &'static str,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // serde_json quotes the file's text (unknown field names, duplicate keys): escaped for the terminal.
            Self::Invalid(e) => write!(
                f,
                "not a meekbench result file: {}",
                crate::shown(e.to_string())
            ),
            Self::NewerSchema { found } => write!(
                f,
                "written with result schema version {found}, newer than this meekbench knows ({SCHEMA_VERSION}); \
                 upgrade meekbench to read it"
            ),
            Self::Io(e) => write!(f, "cannot read it: {}", crate::shown(e.to_string())),
            Self::TooLarge { bytes } => write!(
                f,
                "{bytes} bytes, larger than any result file (limit {} MiB); not read",
                MAX_RESULT_BYTES >> 20
            ),
            Self::NotRegular { kind } => write!(
                f,
                "{kind}, not a regular file; not read (reading it could block or never end)"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// Parses a result file, refusing repeated keys, then a newer schema version before looking at the rest.
pub fn from_json(text: &str) -> Result<BenchResult, ReadError> {
    #[derive(Deserialize)]
    struct Version {
        schema_version: u32,
    }
    crate::check_unique_keys(text).map_err(ReadError::Invalid)?;
    let v: Version = serde_json::from_str(text).map_err(ReadError::Invalid)?;
    if v.schema_version > SCHEMA_VERSION {
        return Err(ReadError::NewerSchema {
            found: v.schema_version,
        });
    }
    serde_json::from_str(text).map_err(ReadError::Invalid)
}

/// Reads and parses a result file (see [`read_bytes`] for what is refused unread).
pub fn read_file(path: &Path) -> Result<BenchResult, ReadError> {
    let text = String::from_utf8(read_bytes(path)?).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })?;
    from_json(&text)
}

/// The bytes of the file at `path`, refusing anything but a regular file (or a link to one) before opening it,
/// and a file over [`MAX_RESULT_BYTES`] without reading it (the size is checked on the open file, and at most the
/// limit plus one byte is ever read, so a file that grows is caught too).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_bytes_at_most(path, MAX_RESULT_BYTES)
}

/// [`read_bytes`] with another limit, for other files strangers hand over (perplexity texts): the same refusals,
/// [`ReadError::TooLarge`] past `limit`.
pub fn read_bytes_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    regular(&fs_err::metadata(path).map_err(ReadError::Io)?)?;
    let file = open_checked(path)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > limit {
        return Err(ReadError::TooLarge { bytes: len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Opens `path` for reading without blocking (on unix), then checks on the handle that it is a regular file: if
/// something replaced the file checked by name, it is refused here rather than waited on.
fn open_checked(path: &Path) -> Result<File, ReadError> {
    let mut options = fs_err::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK only changes opening a FIFO or device; reads from a regular file never block on it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(ReadError::Io)?;
    regular(&file.metadata().map_err(ReadError::Io)?)?;
    Ok(file)
}

fn regular(meta: &Metadata) -> Result<(), ReadError> {
    if meta.is_file() {
        return Ok(());
    }
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a directory"
    } else {
        special_kind(&t)
    };
    Err(ReadError::NotRegular { kind })
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let err = from_json(r#"{"schema_version": 999, "whatever": 1}"#).unwrap_err();
        assert!(matches!(err, ReadError::NewerSchema { found: 999 }));
        assert!(err.to_string().contains("upgrade meekbench"));
        assert!(matches!(from_json("{nope"), Err(ReadError::Invalid(_))));
    }

    #[test]
    fn bad_result_files_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("meek-schema-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            fs_err::write(&p, bytes).unwrap();
            p
        };
        // 100 MB of junk: refused on its size, before parsing.
        let junk = dir.join("junk.json");
        fs_err::File::create(&junk)
            .unwrap()
            .set_len(100_000_000)
            .unwrap();
        let err = read_file(&junk).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge { bytes: 100_000_000 }),
            "{err}"
        );
        assert!(err.to_string().contains("larger than any result file"));
        // Missing fields are named.
        let p = write(
            "missing.json",
            br#"{"schema_version": 1, "status": "complete"}"#,
        );
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains("missing field `tool`"), "{err}");
        // A newer layout is refused before the rest is looked at.
        let p = write(
            "newer.json",
            br#"{"schema_version": 2, "status": "whatever"}"#,
        );
        assert!(matches!(
            read_file(&p),
            Err(ReadError::NewerSchema { found: 2 })
        ));
        // Not UTF-8, and not there.
        let p = write(
            "latin1.json",
            b"{\"schema_version\": 1, \"x\": \"caf\xe9\"}",
        );
        assert!(read_file(&p).unwrap_err().to_string().contains("UTF-8"));
        assert!(matches!(
            read_file(&dir.join("nope.json")),
            Err(ReadError::Io(_))
        ));
        // A directory is refused unopened.
        let err = read_file(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::NotRegular {
                    kind: "a directory"
                }
            ),
            "{err}"
        );
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_key_named() {
        // Refused before the layout is looked at, at any depth, whatever the values.
        let err = from_json(r#"{"schema_version": 1, "status": "complete", "status": "running"}"#)
            .unwrap_err();
        assert!(matches!(err, ReadError::Invalid(_)));
        let msg = err.to_string();
        assert!(msg.contains("duplicate key `status`"), "{msg}");
        assert!(msg.contains("line 1 column"), "{msg}");
        let err =
            from_json(r#"{"schema_version": 1, "runs": [{"speed": [{"n_gen": 1, "n_gen": 2}]}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("duplicate key `n_gen`"), "{err}");
        // A hostile key is quoted escaped, never as raw control characters.
        let err = from_json(
            "{\"schema_version\": 1, \"\\u001b]0;x\\u0007\": 1, \"\\u001b]0;x\\u0007\": 2}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("duplicate key `\\x1b]0;x\\x07`"), "{err}");
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            "{{\"schema_version\": 1, \"x\": {}{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let err = from_json(&deep).unwrap_err().to_string();
        assert!(err.contains("recursion limit"), "{err}");
    }

    /// A FIFO with no writer blocks `open` for ever: it must be refused at once, by name and on the handle.
    #[cfg(unix)]
    #[test]
    fn fifos_are_refused_without_blocking() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("meek-schema-fifo-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let fifo = dir.join("result.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let p = fifo.clone();
        std::thread::spawn(move || {
            let by_name = read_file(&p).map(|_| ());
            // The handle check alone, as when a FIFO replaces the file between the two looks.
            let on_handle = open_checked(&p).map(|_| ());
            let _ = tx.send((by_name, on_handle));
        });
        let (by_name, on_handle) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO returned promptly");
        for r in [by_name, on_handle] {
            let err = r.unwrap_err();
            assert!(
                matches!(err, ReadError::NotRegular { kind: "a FIFO" }),
                "{err}"
            );
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_unopened() {
        let err = read_bytes(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular { kind: "a device" }),
            "{err}"
        );
    }
}
