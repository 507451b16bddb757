//! Checks of every GGUF metadata value that later becomes a divisor, a length or an index.
//!
//! The forward passes (ours and candle-transformers') divide by head counts, size buffers by widths and index the
//! vocabulary by special token ids; a value of 0, one that does not divide another, or an id past the vocabulary
//! would panic deep inside them, far from the file. Checked here, once, when the header is read, each with an error
//! naming the key (or tensor) and what is wrong. Hyper-parameters are checked for the architectures this build
//! runs (others are refused at load anyway, and their keys may mean other things); the tokenizer keys always.

use candle_core::quantized::gguf_file::{Content, Value};

/// Upper bounds, far above any published model, below anything that would size an absurd allocation.
const MAX_WIDTH: u64 = 1 << 20;
const MAX_HEADS: u64 = 1 << 14;
const MAX_HEAD_DIM: u64 = 1 << 16;
const MAX_LAYERS: u64 = 1 << 12;
const MAX_FFN: u64 = 1 << 22;
const MAX_CONTEXT: u64 = 1 << 30;

/// A present integer value as u64; a negative or non-integer value is an error naming the key.
fn uint(content: &Content, key: &str) -> Result<Option<u64>, String> {
    let Some(v) = content.metadata.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::U8(x) => Some(u64::from(*x)),
        Value::U16(x) => Some(u64::from(*x)),
        Value::U32(x) => Some(u64::from(*x)),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    };
    n.map(Some)
        .ok_or_else(|| format!("`{key}` is {}, it must be a non-negative integer", show(v)))
}

/// A present integer in `1..=max`.
fn positive(content: &Content, key: &str, max: u64) -> Result<Option<u64>, String> {
    match uint(content, key)? {
        Some(0) => Err(format!("`{key}` is 0, it must be at least 1")),
        Some(n) if n > max => Err(format!("`{key}` is {n}, more than the limit of {max}")),
        other => Ok(other),
    }
}

/// A present float that is finite and not negative (`strict`: above 0).
fn float(content: &Content, key: &str, strict: bool) -> Result<(), String> {
    let Some(v) = content.metadata.get(key) else {
        return Ok(());
    };
    let x = match v {
        Value::F32(x) => f64::from(*x),
        Value::F64(x) => *x,
        _ => return Err(format!("`{key}` is {}, it must be a number", show(v))),
    };
    if !x.is_finite() || x < 0.0 || (strict && x == 0.0) {
        return Err(format!(
            "`{key}` is {x}, it must be a finite number above {}",
            if strict { "0" } else { "or at 0" }
        ));
    }
    Ok(())
}

/// A short description of a value for messages (never the whole of a long array or string).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {:?}", s.chars().take(40).collect::<String>()),
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Bool(b) => format!("the bool {b}"),
        Value::F32(x) => format!("the float {x}"),
        Value::F64(x) => format!("the float {x}"),
        other => format!("{other:?}"),
    }
}

/// Elements of the tensor `name`, when present.
fn elems(content: &Content, name: &str) -> Option<usize> {
    content.tensor_infos.get(name).map(|i| i.shape.elem_count())
}

/// Checks the whole header: hyper-parameters of a supported architecture, then the tokenizer.
pub fn check(content: &Content) -> Result<(), String> {
    let arch = match content.metadata.get("general.architecture") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(v) => {
            return Err(format!(
                "`general.architecture` is {}, it must be a string",
                show(v)
            ));
        }
    };
    let vocab = tokenizer(content)?;
    if let Some(a) = arch.filter(|a| crate::SUPPORTED_ARCHITECTURES.contains(a)) {
        hyper_parameters(content, a, vocab)?;
    }
    Ok(())
}

/// Hyper-parameters and the shapes of the tensors they describe.
fn hyper_parameters(content: &Content, a: &str, vocab: Option<usize>) -> Result<(), String> {
    let key = |k: &str| format!("{a}.{k}");
    let hidden = positive(content, &key("embedding_length"), MAX_WIDTH)?;
    let heads = positive(content, &key("attention.head_count"), MAX_HEADS)?;
    let kv_key = key("attention.head_count_kv");
    let kv = positive(content, &kv_key, MAX_HEADS)?;
    if let (Some(h), Some(k)) = (heads, kv)
        && !h.is_multiple_of(k)
    {
        return Err(format!(
            "`{kv_key}` is {k}, which does not divide `{}` = {h}",
            key("attention.head_count")
        ));
    }
    let kl_key = key("attention.key_length");
    let head_dim = match (positive(content, &kl_key, MAX_HEAD_DIM)?, hidden, heads) {
        (Some(d), _, _) => Some(d),
        (None, Some(w), Some(h)) => {
            if !w.is_multiple_of(h) {
                return Err(format!(
                    "`{}` = {w} is not a multiple of `{}` = {h} (and `{kl_key}` is absent)",
                    key("embedding_length"),
                    key("attention.head_count")
                ));
            }
            Some(w / h)
        }
        _ => None,
    };
    if let Some(d) = head_dim
        && !d.is_multiple_of(2)
    {
        return Err(format!(
            "the attention head size is {d} (`{kl_key}`, or `{}` / `{}`): rotary embeddings need an even size",
            key("embedding_length"),
            key("attention.head_count")
        ));
    }
    positive(content, &key("attention.value_length"), MAX_HEAD_DIM)?;
    let rope_key = key("rope.dimension_count");
    if let Some(r) = positive(content, &rope_key, MAX_HEAD_DIM)? {
        if !r.is_multiple_of(2) {
            return Err(format!("`{rope_key}` is {r}, it must be even"));
        }
        if let Some(d) = head_dim
            && r > d
        {
            return Err(format!(
                "`{rope_key}` is {r}, more than the attention head size {d}"
            ));
        }
    }
    positive(content, &key("context_length"), MAX_CONTEXT)?;
    positive(content, &key("feed_forward_length"), MAX_FFN)?;
    positive(content, &key("attention.sliding_window"), MAX_CONTEXT)?;
    uint(content, &key("expert_count"))?;
    float(content, &key("attention.layer_norm_rms_epsilon"), false)?;
    float(content, &key("rope.freq_base"), true)?;
    float(content, &key("rope.freq_base_swa"), true)?;
    blocks(content, &key("block_count"))?;
    let heads_kv = kv.or(heads);
    shapes(content, hidden, vocab, head_dim, heads, heads_kv)
}

/// `block_count` against the `blk.N.*` tensors present.
fn blocks(content: &Content, key: &str) -> Result<(), String> {
    let Some(n) = positive(content, key, MAX_LAYERS)? else {
        return Ok(());
    };
    if n > content.tensor_infos.len() as u64 {
        return Err(format!(
            "`{key}` is {n}, more than the {} tensors in the file",
            content.tensor_infos.len()
        ));
    }
    for name in content.tensor_infos.keys() {
        if let Some(l) = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse::<u64>().ok())
            && l >= n
        {
            return Err(format!(
                "tensor `{name}` belongs to block {l}, but `{key}` is {n}"
            ));
        }
    }
    Ok(())
}

/// Shapes of the embedding, output and the vectors, from the metadata (matrices are checked when loaded).
fn shapes(
    content: &Content,
    hidden: Option<u64>,
    vocab: Option<usize>,
    head_dim: Option<u64>,
    heads: Option<u64>,
    kv: Option<u64>,
) -> Result<(), String> {
    for name in ["token_embd.weight", "output.weight"] {
        let Some(info) = content.tensor_infos.get(name) else {
            continue;
        };
        let (rows, cols) = info.shape.dims2().map_err(|_| {
            format!(
                "tensor `{name}` has shape {:?}, it must be a matrix",
                info.shape.dims()
            )
        })?;
        if let Some(h) = hidden
            && cols as u64 != h
        {
            return Err(format!(
                "tensor `{name}` has rows of {cols}, but the embedding length is {h}"
            ));
        }
        if let Some(v) = vocab
            && rows != v
        {
            return Err(format!(
                "tensor `{name}` has {rows} rows, but `tokenizer.ggml.tokens` has {v} tokens"
            ));
        }
    }
    let width = |name: &str, want: Option<u64>, what: &str| -> Result<(), String> {
        match (elems(content, name), want) {
            (Some(n), Some(w)) if n as u64 != w => Err(format!(
                "tensor `{name}` has {n} elements, but {what} is {w}"
            )),
            _ => Ok(()),
        }
    };
    let q = heads.zip(head_dim).map(|(h, d)| h * d);
    let k = kv.zip(head_dim).map(|(h, d)| h * d);
    width("output_norm.weight", hidden, "the embedding length")?;
    for name in content.tensor_infos.keys() {
        let Some(rest) = name.strip_prefix("blk.") else {
            continue;
        };
        let part = rest.split_once('.').map_or("", |(_, p)| p);
        match part {
            "attn_norm.weight"
            | "ffn_norm.weight"
            | "post_attention_norm.weight"
            | "post_ffw_norm.weight" => width(name, hidden, "the embedding length")?,
            "attn_q_norm.weight" | "attn_k_norm.weight" => {
                width(name, head_dim, "the attention head size")?
            }
            "attn_q.bias" => width(name, q, "heads x head size")?,
            "attn_k.bias" | "attn_v.bias" => width(name, k, "key/value heads x head size")?,
            _ => {}
        }
    }
    Ok(())
}

/// The tokenizer arrays and special ids; returns the vocabulary size when the file has one.
fn tokenizer(content: &Content) -> Result<Option<usize>, String> {
    let md = &content.metadata;
    let array = |key: &str| -> Result<Option<&Vec<Value>>, String> {
        match md.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(format!("`{key}` is {}, it must be an array", show(v))),
        }
    };
    let Some(tokens) = array("tokenizer.ggml.tokens")? else {
        return Ok(None);
    };
    if tokens.is_empty() {
        return Err("`tokenizer.ggml.tokens` is empty: the vocabulary has no tokens".into());
    }
    if let Some(i) = tokens.iter().position(|t| !matches!(t, Value::String(_))) {
        return Err(format!(
            "`tokenizer.ggml.tokens` holds {} at index {i}, it must hold strings",
            show(&tokens[i])
        ));
    }
    let n = tokens.len();
    if let Some(scores) = array("tokenizer.ggml.scores")? {
        if scores.len() != n {
            return Err(format!(
                "`tokenizer.ggml.scores` has {} entries for {n} tokens",
                scores.len()
            ));
        }
        if let Some(i) = scores.iter().position(|s| !matches!(s, Value::F32(_))) {
            return Err(format!(
                "`tokenizer.ggml.scores` holds {} at index {i}, it must hold f32 numbers",
                show(&scores[i])
            ));
        }
    }
    if let Some(types) = array("tokenizer.ggml.token_type")? {
        if types.len() != n {
            return Err(format!(
                "`tokenizer.ggml.token_type` has {} entries for {n} tokens",
                types.len()
            ));
        }
        let ints: Vec<Option<i64>> = types.iter().map(crate::tokenizer::int).collect();
        if let Some(i) = ints.iter().position(Option::is_none) {
            return Err(format!(
                "`tokenizer.ggml.token_type` holds {} at index {i}, it must hold integers",
                show(&types[i])
            ));
        }
        if !ints.contains(&Some(1)) {
            return Err(
                "`tokenizer.ggml.token_type` marks no token as ordinary (type 1): the vocabulary has no text"
                    .into(),
            );
        }
    }
    if let Some(merges) = array("tokenizer.ggml.merges")? {
        for (i, m) in merges.iter().enumerate() {
            match m {
                Value::String(s) if s.contains(' ') => {}
                other => {
                    return Err(format!(
                        "`tokenizer.ggml.merges` holds {} at index {i}, it must hold two tokens separated by a space",
                        show(other)
                    ));
                }
            }
        }
    }
    let mut ids: Vec<(&String, &Value)> = md
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer.ggml.") && k.ends_with("_token_id"))
        .collect();
    ids.sort_by(|a, b| a.0.cmp(b.0));
    for (key, v) in ids {
        match crate::tokenizer::int(v) {
            Some(id) if id >= 0 && (id as u64) < n as u64 => {}
            Some(id) => {
                return Err(format!(
                    "`{key}` is {id}, outside the vocabulary of {n} tokens"
                ));
            }
            None => {
                return Err(format!("`{key}` is {}, it must be a token id", show(v)));
            }
        }
    }
    Ok(Some(n))
}
