//! Temporary files and folders named after the process that made them, so a later run removes what a killed one
//! left behind.
//!
//! A second Ctrl-C exits at once and kill -9 runs no destructor, so a half-written download (`.part-*`), a pip
//! work folder (`.pip-*`) or a measuring child's request folder would stay forever. Each is named
//! `.{kind}-{pid}-h{host}-{random}`; [`sweep`] removes those of a kind whose process no longer runs, before new ones
//! are made in the same folder. Only names of that exact shape are touched, and only inside the folder given.
//!
//! A cache shared by several machines (a home directory over NFS on a cluster) holds other hosts' temporaries,
//! whose pids mean nothing here: `{host}` (8 hex digits of a hash of the host name) keeps a sweep to its own host's,
//! so one node never deletes another's download in progress. Names without it (written before it was added) are
//! taken as this host's.

use std::path::Path;

use fs_err as fs;

/// The name prefix for a temporary of `kind` made by this process, for `tempfile::Builder::prefix`.
pub fn prefix(kind: &str) -> String {
    format!(".{kind}-{}-h{}-", std::process::id(), host_tag())
}

/// 8 hex digits of the SHA-256 of this host's name (empty name where the OS gives none).
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let name = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_default();
        let h = Sha256::digest(name.trim().as_bytes());
        format!("{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
    })
}

/// Whether the rest of a temporary's name after its pid (`h{host}-...`, or an older name without a host) belongs
/// to this host.
fn this_host(after_pid: &str) -> bool {
    match after_pid.strip_prefix('h').and_then(|r| r.split_once('-')) {
        Some((tag, _)) if tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            tag == host_tag()
        }
        _ => true,
    }
}

/// Removes the temporaries of `kind` in `dir` left by processes that have ended. Best effort: what cannot be
/// removed stays for the next sweep.
pub fn sweep(dir: &Path, kind: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let head = format!(".{kind}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&head)) else {
            continue;
        };
        let Some((pid, after)) = rest
            .split_once('-')
            .and_then(|(pid, after)| Some((pid.parse::<u32>().ok()?, after)))
        else {
            continue;
        };
        if !this_host(after) || pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        // Never follow a link: only the entry itself goes.
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                let _ = fs::remove_dir_all(&path);
            }
            Ok(_) => {
                let _ = fs::remove_file(&path);
            }
            Err(_) => {}
        }
    }
}

/// Whether a process with this pid runs (one that exists but is not ours counts as running).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Elsewhere nothing is known: keep everything.
#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporaries_of_ended_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid far above pid_max (4194304 at most on Linux): no such process.
        let dead = ".pip-999999999-abc";
        fs::create_dir(d.join(dead)).unwrap();
        fs::write(d.join(dead).join("x.whl"), "x").unwrap();
        fs::write(d.join(".part-999999999-x"), "half").unwrap();
        let mine = format!("{}zz", prefix("pip"));
        fs::create_dir(d.join(&mine)).unwrap();
        let other_host = if host_tag() == "00000000" {
            ".part-999999999-h11111111-x"
        } else {
            ".part-999999999-h00000000-x"
        };
        let ours_dead = format!(".part-999999999-h{}-y", host_tag());
        fs::write(d.join(&ours_dead), "half").unwrap();
        for keep in [
            "model.gguf",
            ".pip-notapid-x",
            ".pipe-999999999-x",
            ".pip-1-x",
            other_host,
        ] {
            fs::write(d.join(keep), "keep").unwrap();
        }
        sweep(d, "pip");
        sweep(d, "part");
        assert!(!d.join(dead).exists());
        assert!(!d.join(".part-999999999-x").exists());
        assert!(
            !d.join(&ours_dead).exists(),
            "this host's, of an ended process"
        );
        assert!(d.join(&mine).exists(), "this process's own is kept");
        for keep in [
            "model.gguf",
            ".pip-notapid-x",
            ".pipe-999999999-x",
            ".pip-1-x",
            other_host,
        ] {
            assert!(d.join(keep).exists(), "{keep} was removed");
        }
    }
}
