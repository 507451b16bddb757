//! An independent walk of a GGUF header (v2 and v3) before candle's reader sees the file.
//!
//! Candle's `Content::read` trusts what it reads: `general.alignment = 0` divides by zero, offsets off the
//! alignment or overlapping other tensors are taken as they are, and nothing stops a tensor of no elements. This
//! walk reads every length, count and array size with the file size as the bound (so nothing large is allocated on
//! a header's word), and refuses what llama.cpp refuses: an alignment that is not a nonzero power of two, tensors
//! of no dimension, more than four, or a dimension of 0, unknown ggml types, offsets off the alignment, tensors that
//! overlap or end past the file, duplicated keys or tensor names, nested arrays. What passes is safe to hand to
//! candle: its reader then only repeats this work.

use std::collections::HashSet;
use std::io::Read;

use candle_core::quantized::GgmlDType;

/// Most tensors in one file (the largest published models have a few thousand).
const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata entries in one file.
const MAX_KVS: u64 = 1 << 20;
/// Longest key or tensor name (llama.cpp's GGML_MAX_NAME is 64; keys are short too).
const MAX_NAME: u64 = 1 << 16;
/// Longest string value (chat templates are kilobytes; candle would allocate what the header says).
const MAX_STRING: u64 = 1 << 26;
/// Most array elements in one file, all arrays together: candle holds each as a 32-byte value, whatever its size
/// on disk (the largest vocabularies have a few hundred thousand tokens, scores and types each).
const MAX_ELEMENTS: u64 = 1 << 25;
/// Most dimensions of a tensor (GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;
/// The alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The header itself is malformed: what is wrong, naming the key or tensor.
    Bad(String),
    /// Tensor `tensor` ends at byte `needed`, past the end of the file.
    Truncated {
        /// The tensor.
        tensor: String,
        /// Where it ends (`u64::MAX` when that overflows).
        needed: u64,
    },
}

/// One tensor of the table, as stored (`dims` in ggml order: the row length first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// Element type.
    pub dtype: GgmlDType,
    /// Offset from the start of the tensor data.
    pub offset: u64,
    /// Bytes of data.
    pub bytes: u64,
}

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// Metadata keys, in file order.
    pub keys: Vec<String>,
    /// Alignment of the tensor data.
    pub alignment: u64,
    /// Where tensor data starts.
    pub data_offset: u64,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorEntry>,
}

/// The ggml types candle can read, by their number in the file.
fn ggml_type(t: u32) -> Option<GgmlDType> {
    Some(match t {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// GGUF value types (`gguf_type`).
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// Bytes of a fixed-size value type, `None` for strings and arrays (and unknown types).
fn fixed_size(t: u32) -> Option<u64> {
    Some(match t {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 => 8,
        _ => return None,
    })
}

fn type_name(t: u32) -> &'static str {
    match t {
        T_U8 => "u8",
        T_I8 => "i8",
        T_U16 => "u16",
        T_I16 => "i16",
        T_U32 => "u32",
        T_I32 => "i32",
        T_F32 => "f32",
        T_BOOL => "bool",
        T_STRING => "string",
        T_ARRAY => "array",
        T_U64 => "u64",
        T_I64 => "i64",
        T_F64 => "f64",
        _ => "unknown",
    }
}

/// A reader that knows how many bytes are left and says where it ran out.
struct Cursor<'a, R> {
    inner: &'a mut R,
    pos: u64,
    size: u64,
}

fn bad(msg: String) -> HeaderError {
    HeaderError::Bad(msg)
}

impl<R: Read> Cursor<'_, R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, HeaderError> {
        if n > self.remaining() {
            return Err(bad(format!(
                "unreadable header: {} needs {n} bytes at byte {} but the file ends at byte {}",
                what(),
                self.pos,
                self.size
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| bad(format!("unreadable header: reading {}: {e}", what())))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), HeaderError> {
        // In pieces: a skip never allocates more than a small buffer.
        let mut left = n;
        while left > 0 {
            let step = left.min(1 << 16);
            self.bytes(step, what)?;
            left -= step;
        }
        Ok(())
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, HeaderError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, HeaderError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skips a length-prefixed string of at most `max` bytes without holding it.
    fn skip_string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<(), HeaderError> {
        let len = self.string_len(max, what)?;
        self.skip(len, what)
    }

    /// The length of a string, checked against `max` and the bytes left.
    fn string_len(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<u64, HeaderError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(bad(format!(
                "unreadable header: {} has length {len}, which exceeds the limit of {max} bytes",
                what()
            )));
        }
        if len > self.remaining() {
            return Err(bad(format!(
                "unreadable header: {} has length {len}, which exceeds the {} bytes left in the file",
                what(),
                self.remaining()
            )));
        }
        Ok(len)
    }

    /// A length-prefixed string of at most `max` bytes, as candle will read it (trailing NULs dropped, invalid
    /// UTF-8 replaced), so that duplicates are found the way candle's map would merge them.
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String, HeaderError> {
        let len = self.string_len(max, what)?;
        let mut v = self.bytes(len, what)?;
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }
}

/// Walks the header of a GGUF file of `size` bytes read from its start, without trusting any of it.
pub fn parse<R: Read>(reader: &mut R, size: u64) -> Result<Header, HeaderError> {
    let mut c = Cursor {
        inner: reader,
        pos: 0,
        size,
    };
    let magic = c.bytes(4, &|| "the magic".into())?;
    if magic != b"GGUF" {
        return Err(bad(format!(
            "it starts with {:?} instead of the GGUF magic \"GGUF\"",
            String::from_utf8_lossy(&magic)
        )));
    }
    let version = c.u32(&|| "the version".into())?;
    if version != 2 && version != 3 {
        return Err(bad(format!(
            "unreadable header: GGUF version {version} is not supported (only 2 and 3)"
        )));
    }
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv = c.u64(&|| "the metadata count".into())?;
    // Each entry takes at least this many bytes: a key (8 + 1), a type (4) and a byte; a name (8 + 1), n_dims (4),
    // one dimension (8), a type (4) and an offset (8).
    let least = n_kv
        .saturating_mul(14)
        .saturating_add(n_tensors.saturating_mul(33));
    if n_tensors > MAX_TENSORS || n_kv > MAX_KVS || least > c.remaining() {
        return Err(bad(format!(
            "unreadable header: the count of {n_tensors} tensors and {n_kv} metadata entries exceeds what {size} \
             bytes can hold (limits {MAX_TENSORS} and {MAX_KVS})"
        )));
    }
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut elements = 0u64;
    for i in 0..n_kv {
        let key = c.string(MAX_NAME, &|| format!("the key of metadata entry {i}"))?;
        if !seen.insert(key.clone()) {
            return Err(bad(format!("metadata key `{key}` appears twice")));
        }
        let t = c.u32(&|| format!("the type of `{key}`"))?;
        if key == "general.alignment" {
            alignment = read_alignment(&mut c, t)?;
        } else {
            skip_value(&mut c, t, &key, &mut elements)?;
        }
        keys.push(key);
    }
    let mut tensors = Vec::new();
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let name = c.string(MAX_NAME, &|| format!("the name of tensor {i}"))?;
        if !names.insert(name.clone()) {
            return Err(bad(format!("tensor `{name}` appears twice")));
        }
        let entry = tensor_entry(&mut c, name)?;
        tensors.push(entry);
    }
    let data_offset = c.pos.div_ceil(alignment).saturating_mul(alignment);
    check_layout(&tensors, alignment, data_offset, size)?;
    Ok(Header {
        version,
        keys,
        alignment,
        data_offset,
        tensors,
    })
}

/// `general.alignment`: an unsigned 32-bit integer (llama.cpp's type; candle also reads the smaller and signed
/// ones), a nonzero power of two.
fn read_alignment<R: Read>(c: &mut Cursor<'_, R>, t: u32) -> Result<u64, HeaderError> {
    let what = || "`general.alignment`".to_string();
    let v: i64 = match t {
        T_U8 => i64::from(c.bytes(1, &what)?[0]),
        T_I8 => i64::from(c.bytes(1, &what)?[0] as i8),
        T_U16 | T_I16 => {
            let b = c.bytes(2, &what)?;
            let u = u16::from_le_bytes([b[0], b[1]]);
            if t == T_U16 {
                i64::from(u)
            } else {
                i64::from(u as i16)
            }
        }
        T_U32 => i64::from(c.u32(&what)?),
        T_I32 => i64::from(c.u32(&what)? as i32),
        _ => {
            return Err(bad(format!(
                "`general.alignment` is a {}, it must be an unsigned 32-bit integer",
                type_name(t)
            )));
        }
    };
    if v <= 0 || !(v as u64).is_power_of_two() {
        return Err(bad(format!(
            "`general.alignment` is {v}, it must be a nonzero power of two"
        )));
    }
    Ok(v as u64)
}

/// Skips the value of `key` of type `t`, every size checked against the bytes left.
fn skip_value<R: Read>(
    c: &mut Cursor<'_, R>,
    t: u32,
    key: &str,
    elements: &mut u64,
) -> Result<(), HeaderError> {
    let what = || format!("the value of `{key}`");
    match t {
        T_STRING => c.skip_string(MAX_STRING, &what)?,
        T_ARRAY => {
            let et = c.u32(&|| format!("the element type of `{key}`"))?;
            let n = c.u64(&|| format!("the length of `{key}`"))?;
            let least = match (et, fixed_size(et)) {
                (_, Some(s)) => s,
                (T_STRING, None) => 8,
                (T_ARRAY, None) => {
                    return Err(bad(format!(
                        "`{key}` is an array of arrays, which GGUF readers do not support"
                    )));
                }
                _ => {
                    return Err(bad(format!("`{key}` is an array of unknown type {et}")));
                }
            };
            *elements = elements.saturating_add(n);
            if *elements > MAX_ELEMENTS {
                return Err(bad(format!(
                    "unreadable header: `{key}` has {n} elements, which exceeds the limit of {MAX_ELEMENTS} array \
                     elements in a file"
                )));
            }
            if n.saturating_mul(least) > c.remaining() {
                return Err(bad(format!(
                    "unreadable header: `{key}` has {n} elements, which exceeds the {} bytes left in the file",
                    c.remaining()
                )));
            }
            match fixed_size(et) {
                Some(s) => {
                    if et == T_BOOL {
                        for _ in 0..n {
                            check_bool(c.bytes(1, &what)?[0], key)?;
                        }
                    } else {
                        c.skip(n * s, &what)?;
                    }
                }
                None => {
                    for _ in 0..n {
                        c.skip_string(MAX_STRING, &what)?;
                    }
                }
            }
        }
        T_BOOL => check_bool(c.bytes(1, &what)?[0], key)?,
        _ => match fixed_size(t) {
            Some(s) => c.skip(s, &what)?,
            None => return Err(bad(format!("`{key}` has unknown value type {t}"))),
        },
    }
    Ok(())
}

fn check_bool(b: u8, key: &str) -> Result<(), HeaderError> {
    if b > 1 {
        return Err(bad(format!("`{key}` holds the bool byte {b}, not 0 or 1")));
    }
    Ok(())
}

/// One entry of the tensor table after its name.
fn tensor_entry<R: Read>(c: &mut Cursor<'_, R>, name: String) -> Result<TensorEntry, HeaderError> {
    let n_dims = c.u32(&|| format!("the dimension count of tensor `{name}`"))?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(bad(format!(
            "tensor `{name}` has {n_dims} dimensions, it must have 1 to {MAX_DIMS}"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        let v = c.u64(&|| format!("dimension {d} of tensor `{name}`"))?;
        if v == 0 {
            return Err(bad(format!(
                "tensor `{name}` has a dimension of 0 (dimension {d})"
            )));
        }
        dims.push(v);
    }
    let t = c.u32(&|| format!("the type of tensor `{name}`"))?;
    let dtype =
        ggml_type(t).ok_or_else(|| bad(format!("tensor `{name}` has unknown ggml type {t}")))?;
    let offset = c.u64(&|| format!("the offset of tensor `{name}`"))?;
    let block = dtype.block_size() as u64;
    if !dims[0].is_multiple_of(block) {
        return Err(bad(format!(
            "tensor `{name}` has rows of {} elements, not a multiple of the {block}-element {dtype:?} block",
            dims[0]
        )));
    }
    // u64::MAX for a shape whose size overflows: reported as past the end of the file.
    let bytes = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| (n / block).checked_mul(dtype.type_size() as u64))
        .unwrap_or(u64::MAX);
    Ok(TensorEntry {
        name,
        dims,
        dtype,
        offset,
        bytes,
    })
}

/// Every tensor aligned, inside the file, and apart from every other.
fn check_layout(
    tensors: &[TensorEntry],
    alignment: u64,
    data_offset: u64,
    size: u64,
) -> Result<(), HeaderError> {
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(bad(format!(
                "tensor `{}` starts at offset {}, which is not a multiple of the alignment {alignment}",
                t.name, t.offset
            )));
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.bytes))
            .unwrap_or(u64::MAX);
        if end > size {
            return Err(HeaderError::Truncated {
                tensor: t.name.clone(),
                needed: end,
            });
        }
    }
    let mut order: Vec<&TensorEntry> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        // Both ends are inside the file, so this cannot overflow.
        if w[0].offset + w[0].bytes > w[1].offset {
            return Err(bad(format!(
                "tensors `{}` and `{}` overlap (bytes {}..{} and {}..{} of the tensor data)",
                w[0].name,
                w[1].name,
                w[0].offset,
                w[0].offset + w[0].bytes,
                w[1].offset,
                w[1].offset + w[1].bytes
            )));
        }
    }
    Ok(())
}
