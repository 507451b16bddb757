//! A panic inside Candle turned into an error, as a second line of defence.
//!
//! Every GGUF value that Candle's reader or candle-transformers' loaders compute with is checked first
//! ([`crate::gguf`]), so none of these should ever panic on a crafted file; if one still does, the process must not
//! die with a backtrace (in `bench`, that left the result file `running`): the caller gets an error naming the file
//! and the step instead.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// The marker every caught panic's message carries (the fuzzer treats it as a finding).
pub const PANICKED: &str = "panicked";

/// Runs `f`, turning a panic into `Err` with its message.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic with no message".into());
        format!("candle {PANICKED} while {what}: {msg}")
    })
}
