//! Where the tests find llama.cpp, the reference peer that `scripts/peer-llama-bench.sh build` builds.

use std::path::{Path, PathBuf};

/// The directory of llama.cpp's binaries when `tool` (e.g. `llama-completion`) is built there: `MEEKBENCH_PEER_BIN`,
/// else the peer script's build under `$MEEKBENCH_CACHE` (default `~/.cache/meekbench`). `None`, with a message,
/// when it is not; a failure instead where `MEEKBENCH_REQUIRE_PEER=1`.
pub fn peer_bin(tool: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("MEEKBENCH_PEER_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("MEEKBENCH_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/meekbench"))
                })?;
            Some(cache.join("peer/llama.cpp-0.3.36/build/bin"))
        })?;
    if dir.join(tool).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("MEEKBENCH_REQUIRE_PEER").as_deref() != Ok("1"),
        "MEEKBENCH_REQUIRE_PEER=1 but {tool} is not in {}",
        dir.display()
    );
    eprintln!(
        "skipped: llama.cpp's {tool} is not built (run scripts/peer-llama-bench.sh build, or set MEEKBENCH_PEER_BIN)"
    );
    None
}
