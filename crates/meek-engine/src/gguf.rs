//! Reading and checking a GGUF file before any weight is loaded.
//!
//! A GGUF is untrusted input: [`header::parse`] walks the header first with every size bounded by the file, then
//! candle reads it (under [`crate::guard`]), then [`metadata::check`] checks every value the loaders divide by,
//! size with or index with. A crafted file gets an error naming the file and the key or tensor, never a panic.

pub mod coverage;
pub mod header;
pub mod metadata;

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::{EngineError, open_model_file};

/// Architectures this build can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = crate::cpu::decoder::ARCHITECTURES;

/// What the file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Dominant tensor type by number of weights, e.g. `Q4_1`.
    pub quantization: String,
    /// Number of weights in all tensors.
    pub n_params: u64,
    /// `{arch}.context_length`, when present.
    pub context_length: Option<usize>,
    /// Number of tensors.
    pub n_tensors: usize,
    /// Bytes of weights read to generate one token: every tensor once, except the token embedding, of which one
    /// row is read (or all of it when it doubles as the output matrix).
    pub weight_bytes_per_token: u64,
    /// Bytes of KV cache per position (f32 keys and values of every layer), when the metadata says.
    pub kv_bytes_per_position: Option<u64>,
    /// Weights outside the token embedding (a separate output matrix counts), for FLOPs per token.
    pub non_embedding_params: u64,
    /// Transformer layers (`{arch}.block_count`), when the metadata says.
    pub n_layer: Option<u64>,
    /// Attention width, `head_count x key_length` (the embedding width in most models), when the metadata says.
    pub attention_width: Option<u64>,
}

/// Bytes of a tensor, or `None` when its shape is too large to exist (an absurd header).
fn checked_tensor_bytes(info: &gguf_file::TensorInfo) -> Option<u64> {
    let elems = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
    (elems / info.ggml_dtype.block_size() as u64).checked_mul(info.ggml_dtype.type_size() as u64)
}

/// Bytes of a tensor of a header [`read`] accepted.
fn tensor_bytes(info: &gguf_file::TensorInfo) -> u64 {
    checked_tensor_bytes(info).unwrap_or(u64::MAX)
}

/// Opens a GGUF file and reads its header, refusing a file that is not GGUF, whose header is malformed or
/// inconsistent ([`header`], [`metadata`]), or that is shorter than its tensors.
pub fn read(path: &Path) -> Result<(gguf_file::Content, std::fs::File), EngineError> {
    let mut file = open_model_file(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let content = read_from(&mut file, size, path)?;
    Ok((content, file))
}

/// Reads and checks the header of a GGUF of `size` bytes from `reader` (at its start); `path` names it in errors.
/// The in-memory entry point of [`read`] (the fuzzer's).
pub fn read_from<R: Read + Seek>(
    reader: &mut R,
    size: u64,
    path: &Path,
) -> Result<gguf_file::Content, EngineError> {
    let not_gguf = |detail: String| EngineError::NotGguf {
        path: path.to_path_buf(),
        detail,
    };
    if size < 24 {
        return Err(not_gguf(format!(
            "the file is {size} bytes long, too short for a GGUF header"
        )));
    }
    header::parse(&mut BufReader::new(&mut *reader), size).map_err(|e| match e {
        header::HeaderError::Bad(detail) => not_gguf(detail),
        header::HeaderError::Truncated { tensor, needed } => EngineError::Truncated {
            path: path.to_path_buf(),
            tensor,
            needed,
            size,
        },
    })?;
    reader.rewind().map_err(|e| not_gguf(e.to_string()))?;
    let content = crate::guard::no_panic("reading the header", || gguf_file::Content::read(reader))
        .map_err(&not_gguf)?
        .map_err(|e| not_gguf(format!("unreadable header: {}", crate::first_line(&e))))?;
    metadata::check(&content).map_err(not_gguf)?;
    Ok(content)
}

/// The integer metadata value `{arch}.{key}`, stored as u32 or u64.
fn arch_u64(content: &gguf_file::Content, arch: &str, key: &str) -> Option<u64> {
    content
        .metadata
        .get(&format!("{arch}.{key}"))
        .and_then(|v| v.to_u32().map(u64::from).or_else(|_| v.to_u64()).ok())
}

fn attention_shape(content: &gguf_file::Content, arch: &str) -> (Option<u64>, Option<u64>) {
    let get = |k: &str| arch_u64(content, arch, k);
    let width = match (get("attention.head_count"), get("attention.key_length")) {
        (Some(h), Some(k)) => h.checked_mul(k),
        _ => get("embedding_length"),
    };
    (get("block_count"), width)
}

fn kv_bytes(content: &gguf_file::Content, arch: &str) -> Option<u64> {
    let get = |k: &str| arch_u64(content, arch, k);
    let layers = get("block_count")?;
    let heads = get("attention.head_count")?.max(1);
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    let head_dim = get("attention.key_length").unwrap_or(get("embedding_length")? / heads);
    [2, kv_heads, head_dim, 4]
        .into_iter()
        .try_fold(layers, u64::checked_mul)
}

/// llama.cpp's name of a `general.file_type` (`LLAMA_FTYPE_MOSTLY_*`).
fn file_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// Summarises the header.
pub fn info(content: &gguf_file::Content) -> GgufInfo {
    let s = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .cloned()
    };
    let architecture = s("general.architecture").unwrap_or_else(|| "unknown".to_string());
    let context_length = content
        .metadata
        .get(&format!("{architecture}.context_length"))
        .and_then(|v| v.to_u64().or_else(|_| v.to_u32().map(u64::from)).ok())
        .map(|v| v as usize);
    let mut by_type: Vec<(String, u64)> = Vec::new();
    let mut n_params = 0u64;
    for info in content.tensor_infos.values() {
        let n = info.shape.elem_count() as u64;
        n_params = n_params.saturating_add(n);
        let t = format!("{:?}", info.ggml_dtype);
        match by_type.iter_mut().find(|(k, _)| *k == t) {
            Some((_, c)) => *c += n,
            None => by_type.push((t, n)),
        }
    }
    by_type.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let kv_bytes_per_position = kv_bytes(content, &architecture);
    let (n_layer, attention_width) = attention_shape(content, &architecture);
    let embedding_params = content
        .tensor_infos
        .get("token_embd.weight")
        .map_or(0, |i| i.shape.elem_count() as u64);
    let tied = !content.tensor_infos.contains_key("output.weight");
    let weight_bytes_per_token = content
        .tensor_infos
        .iter()
        .map(|(name, info)| {
            let bytes = tensor_bytes(info);
            let rows = info.shape.dims().first().copied().unwrap_or(1).max(1) as u64;
            if name == "token_embd.weight" && !tied {
                bytes / rows
            } else {
                bytes
            }
        })
        .fold(0u64, u64::saturating_add);
    GgufInfo {
        architecture,
        name: s("general.name"),
        // The file's own label (`general.file_type`, e.g. Q4_K_M: a mix of types), else the type most
        // parameters have.
        quantization: content
            .metadata
            .get("general.file_type")
            .and_then(|v| v.to_u32().ok())
            .and_then(file_type_name)
            .map(str::to_string)
            .or_else(|| by_type.first().map(|(t, _)| t.clone()))
            .unwrap_or_else(|| "none".to_string()),
        n_params,
        context_length,
        n_tensors: content.tensor_infos.len(),
        weight_bytes_per_token,
        kv_bytes_per_position,
        non_embedding_params: n_params.saturating_sub(embedding_params),
        n_layer,
        attention_width,
    }
}
