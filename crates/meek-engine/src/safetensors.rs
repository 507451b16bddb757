//! A strict check of a safetensors file's header, for the safetensors loader to call before mapping any weight.
//!
//! Layout (<https://github.com/huggingface/safetensors>): an 8-byte little-endian header length `N`, `N` bytes of
//! UTF-8 JSON, then the data buffer. The JSON maps each tensor name to `{"dtype", "shape", "data_offsets": [begin,
//! end]}` (offsets relative to the buffer), plus an optional `"__metadata__"` map of strings. A header that lies is
//! refused with what it claims: a length beyond the file, offsets outside the buffer, a byte range that does not
//! match `dtype` x `shape`, tensors that overlap or leave holes, or a buffer with bytes no tensor owns. All
//! arithmetic is checked, so absurd shapes are refused, never wrapped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::{EngineError, open_model_file};

/// Largest header accepted, as in the reference implementation (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name.
    pub name: String,
    /// Element type, e.g. `F16`, `BF16`, `F32`.
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Byte range in the file (absolute: header length and the 8 length bytes included), end exclusive.
    pub range: std::ops::Range<u64>,
}

/// A header that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Tensors in file order.
    pub tensors: Vec<TensorEntry>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// Offset of the data buffer in the file.
    pub data_start: u64,
}

/// Bytes per element of a safetensors dtype, or `None` for a dtype the format does not define.
pub fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Opens `path` and checks its header against its size.
pub fn read_header(path: &Path) -> Result<SafetensorsHeader, EngineError> {
    let bad = |detail: String| EngineError::BadSafetensors {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = open_model_file(path)?;
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    if size < 8 {
        return Err(bad(format!(
            "the file is {size} bytes long, too short for the 8-byte header length"
        )));
    }
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > size - 8 {
        return Err(bad(format!(
            "the header claims {n} bytes but the file has {} after the length (and at most {MAX_HEADER_BYTES} are \
             accepted)",
            size - 8
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    check_header(&header, size).map_err(bad)
}

/// Checks header bytes (`N` bytes of JSON, after the length) for a file of `file_size` bytes.
pub fn check_header(header: &[u8], file_size: u64) -> Result<SafetensorsHeader, String> {
    let data_start = 8 + header.len() as u64;
    let buffer = file_size
        .checked_sub(data_start)
        .ok_or_else(|| format!("the {}-byte header does not fit in the file", header.len()))?;
    let text = std::str::from_utf8(header).map_err(|e| format!("the header is not UTF-8: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the header is not JSON: {e}"))?;
    let serde_json::Value::Object(map) = json else {
        return Err("the header is not a JSON object".into());
    };
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, v) in map {
        if name == "__metadata__" {
            let serde_json::Value::Object(m) = v else {
                return Err("`__metadata__` is not an object".into());
            };
            for (k, v) in m {
                let serde_json::Value::String(s) = v else {
                    return Err(format!("`__metadata__.{k}` is not a string"));
                };
                metadata.insert(k, s);
            }
            continue;
        }
        let field = |key: &str| {
            v.get(key)
                .ok_or_else(|| format!("tensor `{name}` has no `{key}`"))
        };
        let dtype = field("dtype")?
            .as_str()
            .ok_or_else(|| format!("tensor `{name}`: `dtype` is not a string"))?
            .to_string();
        let elem = dtype_bytes(&dtype)
            .ok_or_else(|| format!("tensor `{name}`: unknown dtype `{dtype}`"))?;
        let shape: Vec<u64> = field("shape")?
            .as_array()
            .ok_or_else(|| format!("tensor `{name}`: `shape` is not an array"))?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()
            .ok_or_else(|| format!("tensor `{name}`: `shape` holds something else than sizes"))?;
        let offsets = field("data_offsets")?
            .as_array()
            .and_then(|o| match o.as_slice() {
                [a, b] => Some((a.as_u64()?, b.as_u64()?)),
                _ => None,
            })
            .ok_or_else(|| format!("tensor `{name}`: `data_offsets` is not [begin, end]"))?;
        let (begin, end) = offsets;
        if begin > end {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] end before they begin"
            ));
        }
        if end > buffer {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] run past the {buffer}-byte data buffer (the file is \
                 truncated or the header lies)"
            ));
        }
        let bytes = shape
            .iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("tensor `{name}`: shape {shape:?} is too large to exist"))?;
        if bytes != end - begin {
            return Err(format!(
                "tensor `{name}`: {dtype} x {shape:?} is {bytes} bytes but data_offsets [{begin}, {end}] hold {}",
                end - begin
            ));
        }
        tensors.push(TensorEntry {
            name,
            dtype,
            shape,
            range: data_start + begin..data_start + end,
        });
    }
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut at = data_start;
    for (i, t) in tensors.iter().enumerate() {
        if t.range.start < at {
            let p = &tensors[i - 1];
            return Err(format!(
                "tensors `{}` (bytes {}..{}) and `{}` (bytes {}..{}) overlap",
                p.name, p.range.start, p.range.end, t.name, t.range.start, t.range.end
            ));
        }
        if t.range.start > at {
            return Err(format!(
                "bytes {at}..{} belong to no tensor (before `{}`)",
                t.range.start, t.name
            ));
        }
        at = t.range.end;
    }
    if at != file_size {
        return Err(format!(
            "bytes {at}..{file_size} at the end of the file belong to no tensor"
        ));
    }
    Ok(SafetensorsHeader {
        tensors,
        metadata,
        data_start,
    })
}

#[cfg(test)]
mod tests {
    use fs_err as fs;

    use super::*;

    /// A file image: length, header JSON, `data` bytes.
    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    fn check(bytes: &[u8]) -> Result<SafetensorsHeader, String> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        check_header(&bytes[8..8 + n], bytes.len() as u64)
    }

    const GOOD: &str = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[16,28]},
        "a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;

    #[test]
    fn an_honest_header_is_accepted_in_file_order() {
        let h = check(&file(GOOD, 28)).unwrap();
        let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let start = 8 + GOOD.len() as u64;
        assert_eq!(h.tensors[1].range, start + 16..start + 28);
        assert_eq!(h.metadata["format"], "pt");
        // An empty file of tensors is honest too.
        assert!(check(&file("{}", 0)).unwrap().tensors.is_empty());
    }

    #[test]
    fn lying_headers_are_refused_with_what_they_claim() {
        let cases = [
            (GOOD.to_string(), 20, "run past"),
            (GOOD.to_string(), 40, "belong to no tensor"),
            (GOOD.replace("[2,3]", "[2,4]"), 28, "is 16 bytes but"),
            (
                GOOD.replace("\"F16\"", "\"F12\""),
                28,
                "unknown dtype `F12`",
            ),
            (GOOD.replace("[16,28]", "[12,24]"), 28, "overlap"),
            (
                GOOD.replace("[0,16]", "[16,0]"),
                28,
                "end before they begin",
            ),
            (
                GOOD.replace("[2,3]", "[4294967296,4294967296]"),
                28,
                "too large",
            ),
            (
                GOOD.replace("[2,3]", "[2,-3]"),
                28,
                "something else than sizes",
            ),
            (
                GOOD.replace("\"data_offsets\":[16,28]", "\"offsets\":[16,28]"),
                28,
                "no `data_offsets`",
            ),
            (GOOD.replace("\"pt\"", "7"), 28, "not a string"),
            ("[1, 2]".to_string(), 0, "not a JSON object"),
            ("{\"a\": ".to_string(), 0, "not JSON"),
        ];
        for (header, data, want) in cases {
            let err = check(&file(&header, data)).unwrap_err();
            assert!(err.contains(want), "{header} + {data} bytes: {err}");
        }
        let mut not_utf8 = file("{\"\u{e9}\": 1}", 0);
        not_utf8[10] = 0xff;
        assert!(check(&not_utf8).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn files_are_checked_against_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            p
        };
        assert!(read_header(&write("good.safetensors", &file(GOOD, 28))).is_ok());
        let mut huge = file(GOOD, 28);
        huge[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        for (name, bytes, want) in [
            ("short.safetensors", &b"\x01\x02"[..], "too short"),
            (
                "huge.safetensors",
                &huge[..],
                "claims 1152921504606846976 bytes",
            ),
        ] {
            let err = read_header(&write(name, bytes)).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(name), "{err}");
            assert!(err.contains("not a usable safetensors file"), "{err}");
        }
    }
}
