//! Free space: a download the disk cannot hold is refused before anything is written.
//!
//! The hub source asks before each download whose size the hub's metadata gives; [`free_bytes`] reads the figure
//! with `statvfs` (Unix; elsewhere it is unknown and the download goes ahead), and tests pretend a figure with
//! [`Fetcher::with_free_space`].

use std::path::Path;

use crate::Fetcher;

/// Space left free beyond a download, for everything else on the disk.
pub const FREE_SPACE_MARGIN: u64 = 64 << 20;

impl Fetcher {
    /// Refuses a download of `bytes` into `dir` when the disk cannot hold it (plus [`FREE_SPACE_MARGIN`]). Unknown
    /// sizes (0) and file systems that cannot say how much is free are let through.
    pub fn check_space(&self, dir: &Path, bytes: u64) -> Result<(), String> {
        if bytes == 0 {
            return Ok(());
        }
        let Some(free) = self.free_space.or_else(|| free_bytes(dir)) else {
            return Ok(());
        };
        let needed = bytes.saturating_add(FREE_SPACE_MARGIN);
        if needed > free {
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            return Err(format!(
                "the download needs {bytes} bytes ({:.1} MiB) and {} MiB to spare, but only {free} bytes ({:.1} MiB) \
                 are free under {}; free some space, or point HF_HUB_CACHE (hub) or --cache (meekbench's cache) at a \
                 larger disk",
                mib(bytes),
                FREE_SPACE_MARGIN >> 20,
                mib(free),
                dir.display()
            ));
        }
        Ok(())
    }
}

/// Bytes free for an unprivileged user on the file system holding `dir` (or its nearest existing ancestor).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = dir.ancestors().find(|p| p.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the buffer is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Bytes free under `dir`: unknown on this platform.
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}
