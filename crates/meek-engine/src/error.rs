//! What can go wrong in loading or running a model, each with a message that says what to do.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::{SUPPORTED_ARCHITECTURES, hf};

/// Why a model cannot be loaded or run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The file cannot be opened.
    #[error("cannot open model file: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error, from `fs_err`, so its message names the file.
        source: std::io::Error,
    },
    /// Not a GGUF file, or a damaged header.
    #[error(
        "{path} is not a usable GGUF model file: {detail}. Check that the download completed and the file is a .gguf"
    )]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A safetensors file whose header is malformed or does not match the file.
    #[error(
        "{path} is not a usable safetensors file: {detail}. Check that the download completed and the file is a \
         .safetensors"
    )]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is shorter than its own tensor table says.
    #[error(
        "{path} is truncated: tensor `{tensor}` ends at byte {needed} but the file has {size} bytes. \
         Delete it and download it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// First tensor found past the end.
        tensor: String,
        /// Bytes that tensor needs.
        needed: u64,
        /// Actual size.
        size: u64,
    },
    /// An architecture this build cannot run.
    #[error("{path}: architecture `{arch}` is not supported; supported: {}", SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// `general.architecture`.
        arch: String,
    },
    /// A Hugging Face checkpoint that is incomplete, damaged or inconsistent.
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The directory or file at fault.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint of a family this build cannot run from safetensors.
    #[error(
        "{path}: model_type `{model_type}` is not supported from safetensors; supported: {}",
        hf::SUPPORTED_MODEL_TYPES.join(", ")
    )]
    UnsupportedCheckpoint {
        /// `config.json`.
        path: PathBuf,
        /// Its `model_type`.
        model_type: String,
    },
    /// A supported architecture that the chosen device or kernels cannot run correctly.
    #[error("{path}: {detail}")]
    UnsupportedHere {
        /// The file.
        path: PathBuf,
        /// Why, and what to use instead.
        detail: String,
    },
    /// The tokenizer metadata cannot be used.
    #[error("{path}: {detail}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The device is not compiled into this build.
    #[error(
        "device `{device}` is not available in this build: rebuild with `cargo build --release --features {feature}` \
         (or use `--device cpu`)"
    )]
    DeviceNotCompiled {
        /// The device asked for.
        device: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The device is compiled in but cannot be opened.
    #[error("cannot open device `{device}`: {detail}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why.
        detail: String,
    },
    /// A prompt plus generation longer than the model can hold.
    #[error(
        "{model}: {needed} positions needed (prompt {prompt} + generation {n_gen}) but at most {max} are supported \
         ({why})"
    )]
    TooLong {
        /// Model name.
        model: String,
        /// Prompt tokens.
        prompt: usize,
        /// Tokens to generate.
        n_gen: usize,
        /// Total.
        needed: usize,
        /// Limit.
        max: usize,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// A tensor operation failed.
    #[error("{context}: {}", first_line(source))]
    Candle {
        /// What was being done.
        context: String,
        /// Candle's error.
        source: candle_core::Error,
    },
}

/// Opens a model file for reading, [`EngineError::Open`] when it cannot be. fs_err names the file in the error;
/// reads go to the plain file, as they always did.
pub(crate) fn open_model_file(path: &Path) -> Result<std::fs::File, EngineError> {
    fs_err::File::open(path)
        .map(fs_err::File::into_file)
        .map_err(|source| EngineError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// The message of an error without the backtrace Candle appends when `RUST_BACKTRACE` is set.
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Candle errors with what was being done.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, EngineError>;
}

impl<T> Ctx<T> for candle_core::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, EngineError> {
        self.map_err(|source| EngineError::Candle {
            context: what(),
            source,
        })
    }
}
