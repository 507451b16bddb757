//! Reading and checking a GGUF file before any weight is loaded.

use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::EngineError;

/// Architectures this build can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

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

/// Opens a GGUF file and reads its header, refusing a file that is not GGUF or is shorter than its tensors.
pub fn read(path: &Path) -> Result<(gguf_file::Content, std::fs::File), EngineError> {
    let mut file = std::fs::File::open(path).map_err(|source| EngineError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let not_gguf = |detail: String| EngineError::NotGguf {
        path: path.to_path_buf(),
        detail,
    };
    if size < 24 {
        return Err(not_gguf(format!(
            "the file is {size} bytes long, too short for a GGUF header"
        )));
    }
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut file, &mut magic).map_err(|e| not_gguf(e.to_string()))?;
    if &magic != b"GGUF" {
        return Err(not_gguf(format!(
            "it starts with {:?} instead of the GGUF magic \"GGUF\"",
            String::from_utf8_lossy(&magic)
        )));
    }
    std::io::Seek::rewind(&mut file).map_err(|e| not_gguf(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| not_gguf(format!("unreadable header: {}", crate::first_line(&e))))?;
    for (name, info) in &content.tensor_infos {
        // Checked: a lying header must not wrap around to a small end.
        let end = checked_tensor_bytes(info)
            .and_then(|b| b.checked_add(info.offset))
            .and_then(|b| b.checked_add(content.tensor_data_offset))
            .unwrap_or(u64::MAX);
        if end > size {
            return Err(EngineError::Truncated {
                path: path.to_path_buf(),
                tensor: name.clone(),
                needed: end,
                size,
            });
        }
    }
    Ok((content, file))
}

fn kv_bytes(content: &gguf_file::Content, arch: &str) -> Option<u64> {
    let get = |k: &str| {
        content
            .metadata
            .get(&format!("{arch}.{k}"))
            .and_then(|v| v.to_u32().map(u64::from).or_else(|_| v.to_u64()).ok())
    };
    let layers = get("block_count")?;
    let heads = get("attention.head_count")?.max(1);
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    let head_dim = get("attention.key_length").unwrap_or(get("embedding_length")? / heads);
    Some(layers * 2 * kv_heads * head_dim * 4)
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
        n_params += n;
        let t = format!("{:?}", info.ggml_dtype);
        match by_type.iter_mut().find(|(k, _)| *k == t) {
            Some((_, c)) => *c += n,
            None => by_type.push((t, n)),
        }
    }
    by_type.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let kv_bytes_per_position = kv_bytes(content, &architecture);
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
        .sum();
    GgufInfo {
        architecture,
        name: s("general.name"),
        quantization: by_type
            .first()
            .map_or_else(|| "none".to_string(), |(t, _)| t.clone()),
        n_params,
        context_length,
        n_tensors: content.tensor_infos.len(),
        weight_bytes_per_token,
        kv_bytes_per_position,
    }
}
