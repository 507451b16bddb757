//! Reading the files a report is built from: meekbench result files (validated against the published JSON
//! Schema) and llama.cpp `llama-bench` output (`-o json` or `-o jsonl`).
//!
//! Every file is untrusted: it is read through [`meek_schema::read_bytes`] (regular files only, so a FIFO cannot
//! hang the report; size bounded before reading), a key repeated in any object is refused, a directory walk is
//! bounded in depth and file count, and a file that cannot be used is returned as a [`Skipped`] with the reason,
//! never a panic. Its path and reason are escaped with [`meek_schema::shown`] when the [`Skipped`] is made, so
//! a file named with terminal escapes cannot reach the terminal that prints it.

use std::path::{Path, PathBuf};

use meek_schema::{BenchResult, SCHEMA_VERSION};
use serde::Deserialize;
use serde_json::Value;

use crate::energy_columns::Energy;

/// Files larger than this are refused unread (the result file limit, which llama-bench output is far below too).
pub const MAX_FILE_BYTES: u64 = meek_schema::MAX_RESULT_BYTES;
/// At most this many files are read from the paths given.
pub const MAX_FILES: usize = 10_000;
/// Directories are searched this many levels deep.
pub const MAX_DEPTH: usize = 8;
/// At most this many tests are taken from one llama-bench file.
pub const MAX_LLAMA_TESTS: usize = 100_000;

/// A file that was not used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The path as given or found, escaped for a terminal ([`meek_schema::shown`]).
    pub path: String,
    /// Why, in words, escaped the same way (it may quote the file's text or the path).
    pub reason: String,
}

impl Skipped {
    /// `path` skipped for `reason`, both escaped for a terminal.
    pub fn new(path: &Path, reason: impl AsRef<str>) -> Self {
        Self {
            path: meek_schema::shown(path),
            reason: meek_schema::shown(reason.as_ref()),
        }
    }
}

/// A file that was read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it holds.
    pub document: Document,
}

/// The content of a file that was read.
#[derive(Debug, Clone)]
pub enum Document {
    /// A meekbench result, valid against the schema, with the energy columns of each run that has an energy
    /// record (see [`crate::energy_columns`]).
    Meekbench {
        /// The result.
        result: Box<BenchResult>,
        /// One entry per `result.runs`, in the same order.
        energy: Vec<Option<Energy>>,
    },
    /// llama-bench tests, one per line of its table.
    LlamaBench(Vec<LlamaTest>),
}

/// One llama-bench test (a row of its output). Only the fields meekbench uses are read; the rest of llama-bench's
/// fields, which change between its versions, are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LlamaTest {
    /// Path of the GGUF file as given to llama-bench.
    pub model_filename: String,
    /// e.g. `llama 256M Q4_1`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Bytes of weights.
    #[serde(default)]
    pub model_size: Option<u64>,
    /// Parameters.
    #[serde(default)]
    pub model_n_params: Option<u64>,
    /// Prompt tokens (0 for a pure generation test).
    pub n_prompt: usize,
    /// Generated tokens (0 for a pure prompt test).
    pub n_gen: usize,
    /// Tokens already in the KV cache before the test (`-d`).
    #[serde(default)]
    pub n_depth: usize,
    /// Threads.
    pub n_threads: usize,
    /// Mean tokens per second.
    pub avg_ts: f64,
    /// Standard deviation of tokens per second.
    #[serde(default)]
    pub stddev_ts: Option<f64>,
    /// Tokens per second of each repetition.
    #[serde(default)]
    pub samples_ts: Option<Vec<f64>>,
    /// CPU name.
    #[serde(default)]
    pub cpu_info: Option<String>,
    /// GPU names.
    #[serde(default)]
    pub gpu_info: Option<String>,
    /// Compute backends, e.g. `CPU` or `CUDA`.
    #[serde(default)]
    pub backends: Option<String>,
    /// llama.cpp commit.
    #[serde(default)]
    pub build_commit: Option<String>,
    /// llama.cpp build number.
    #[serde(default)]
    pub build_number: Option<i64>,
    /// Layers offloaded to the GPU.
    #[serde(default)]
    pub n_gpu_layers: Option<i64>,
    /// Logical batch size.
    #[serde(default)]
    pub n_batch: Option<i64>,
    /// Physical batch size.
    #[serde(default)]
    pub n_ubatch: Option<i64>,
    /// KV cache types.
    #[serde(default)]
    pub type_k: Option<String>,
    /// KV cache types.
    #[serde(default)]
    pub type_v: Option<String>,
    /// Flash attention (a bool in older llama-bench versions, an integer in newer ones).
    #[serde(default)]
    pub flash_attn: Option<Value>,
    /// When the test ran.
    #[serde(default)]
    pub test_time: Option<String>,
}

impl LlamaTest {
    /// The file name of the model, without its directory.
    pub fn file_name(&self) -> &str {
        self.model_filename
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&self.model_filename)
    }

    fn check(&self) -> Result<(), String> {
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        if !finite(self.avg_ts) {
            return Err(format!("avg_ts {} is not a rate", self.avg_ts));
        }
        if let Some(s) = &self.samples_ts
            && let Some(bad) = s.iter().find(|v| !finite(**v))
        {
            return Err(format!("samples_ts holds {bad}, not a rate"));
        }
        if self.n_prompt == 0 && self.n_gen == 0 {
            return Err("a test with neither prompt nor generated tokens".into());
        }
        Ok(())
    }
}

/// The files named by `paths`: files as given, and directories searched (at most [`MAX_DEPTH`] levels) for
/// `*.json` and `*.jsonl` files, in path order. Paths that cannot be listed are returned as skipped.
pub fn expand(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Skipped>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, 0, &mut files, &mut skipped);
        } else {
            files.push(p.clone());
        }
    }
    if files.len() > MAX_FILES {
        skipped.push(Skipped {
            path: format!("{} more files", files.len() - MAX_FILES),
            reason: format!("at most {MAX_FILES} files are read at once"),
        });
        files.truncate(MAX_FILES);
    }
    (files, skipped)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push(Skipped::new(dir, e.to_string()));
            return;
        }
    };
    let mut here: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    here.sort();
    for p in here {
        if files.len() > MAX_FILES {
            return;
        }
        // Symbolic links are not followed into directories, so a link loop cannot make the walk endless.
        let is_link = p
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if p.is_dir() && !is_link {
            if depth + 1 < MAX_DEPTH {
                walk(&p, depth + 1, files, skipped);
            }
        } else if p.is_file()
            && p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("jsonl"))
        {
            files.push(p);
        }
    }
}

/// Checks meekbench result files against the published JSON Schema.
pub struct SchemaCheck {
    validator: jsonschema::Validator,
}

impl Default for SchemaCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaCheck {
    /// The checker for this build's schema ([`meek_schema::json_schema`], the same text as the committed
    /// `result.schema.json`).
    pub fn new() -> Self {
        let schema: Value = serde_json::from_str(&meek_schema::json_schema())
            .expect("the generated schema is JSON");
        Self {
            validator: jsonschema::validator_for(&schema).expect("the generated schema compiles"),
        }
    }

    /// The first few ways `v` breaks the schema, each with its JSON pointer; empty when it is valid.
    pub fn errors(&self, v: &Value) -> Vec<String> {
        self.validator
            .iter_errors(v)
            .take(3)
            .map(|e| {
                let at = e.instance_path.to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                format!(
                    "at {}: {}",
                    meek_render::escape::clip(&at, 80),
                    meek_render::escape::clip(&e.to_string(), 200)
                )
            })
            .collect()
    }
}

/// Reads one file: a meekbench result or llama-bench output.
pub fn load(path: &Path, check: &SchemaCheck) -> Result<Loaded, Skipped> {
    let skip = |reason: String| Skipped::new(path, reason);
    let bytes = meek_schema::read_bytes(path).map_err(|e| skip(e.to_string()))?;
    let document = parse(&bytes, check).map_err(skip)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        document,
    })
}

/// Reads every file named by `paths` (see [`expand`]); what cannot be used is returned as skipped.
pub fn load_all(paths: &[PathBuf]) -> (Vec<Loaded>, Vec<Skipped>) {
    let (files, mut skipped) = expand(paths);
    let check = SchemaCheck::new();
    let mut loaded = Vec::new();
    for f in files {
        match load(&f, &check) {
            Ok(l) => loaded.push(l),
            Err(s) => skipped.push(s),
        }
    }
    (loaded, skipped)
}

/// Parses file content: a meekbench result (an object with `schema_version`), llama-bench `-o json` (an array of
/// tests) or llama-bench `-o jsonl` (one test object per line). An object that repeats a key is refused in each.
pub fn parse(bytes: &[u8], check: &SchemaCheck) -> Result<Document, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    match json(text) {
        Ok(Value::Object(map)) if map.contains_key("schema_version") => {
            meekbench(Value::Object(map), check)
        }
        Ok(Value::Object(map)) => llama_bench(vec![Value::Object(map)]),
        Ok(Value::Array(tests)) => llama_bench(tests),
        Ok(_) => Err("JSON, but neither a meekbench result nor llama-bench output".into()),
        Err(e) if e.is_data() => Err(repeated(&e)),
        Err(whole) => {
            // llama-bench -o jsonl: one object per line.
            let mut tests = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match json(line) {
                    Ok(v @ Value::Object(_)) => tests.push(v),
                    Err(e) if e.is_data() => {
                        return Err(format!("line {}: {}", n + 1, repeated(&e)));
                    }
                    _ if n == 0 => return Err(format!("not JSON: {whole}")),
                    _ => return Err(format!("line {}: not a JSON object (JSON lines)", n + 1)),
                }
            }
            llama_bench(tests)
        }
    }
}

/// `text` as JSON, refusing an object that repeats a key (a data error; malformed JSON is a syntax error).
fn json(text: &str) -> Result<Value, serde_json::Error> {
    meek_schema::check_unique_keys(text)?;
    serde_json::from_str(text)
}

fn repeated(e: &serde_json::Error) -> String {
    format!("{e}; a file that repeats a key can be read two ways, so it is not used")
}

fn meekbench(v: Value, check: &SchemaCheck) -> Result<Document, String> {
    let version = v["schema_version"]
        .as_u64()
        .ok_or("`schema_version` is not a whole number")?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(format!(
            "written with result schema version {version}, newer than this meekbench knows ({SCHEMA_VERSION}); \
             upgrade meekbench to read it"
        ));
    }
    let errors = check.errors(&v);
    if !errors.is_empty() {
        return Err(format!(
            "does not match the result schema (version {version}): {}",
            errors.join("; ")
        ));
    }
    let result: BenchResult =
        serde_json::from_value(v).map_err(|e| format!("not a meekbench result: {e}"))?;
    let energy = result.runs.iter().map(Energy::from_run).collect();
    Ok(Document::Meekbench {
        result: Box::new(result),
        energy,
    })
}

fn llama_bench(tests: Vec<Value>) -> Result<Document, String> {
    if tests.is_empty() {
        return Err("no llama-bench tests in the file".into());
    }
    if tests.len() > MAX_LLAMA_TESTS {
        return Err(format!("more than {MAX_LLAMA_TESTS} llama-bench tests"));
    }
    let looks_like = tests
        .iter()
        .all(|t| t.get("model_filename").is_some() && t.get("avg_ts").is_some());
    if !looks_like {
        return Err(
            "JSON, but neither a meekbench result (no `schema_version`) nor llama-bench output \
             (no `model_filename` and `avg_ts`)"
                .into(),
        );
    }
    let mut out = Vec::with_capacity(tests.len());
    for (i, t) in tests.into_iter().enumerate() {
        let t: LlamaTest =
            serde_json::from_value(t).map_err(|e| format!("llama-bench test #{}: {e}", i + 1))?;
        t.check()
            .map_err(|e| format!("llama-bench test #{}: {e}", i + 1))?;
        out.push(t);
    }
    Ok(Document::LlamaBench(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Document, String> {
        parse(s.as_bytes(), &SchemaCheck::new())
    }

    #[test]
    fn tells_the_formats_apart() {
        let line = r#"{"model_filename": "/m/a.gguf", "n_prompt": 16, "n_gen": 0, "n_threads": 1, "avg_ts": 10.0, "samples_ts": [9.0, 11.0], "future_field": {"x": 1}}"#;
        let Ok(Document::LlamaBench(t)) = parse_str(&format!("[{line}]")) else {
            panic!("json array")
        };
        assert_eq!(t[0].file_name(), "a.gguf");
        let Ok(Document::LlamaBench(t)) = parse_str(&format!("{line}\n{line}\n")) else {
            panic!("jsonl")
        };
        assert_eq!(t.len(), 2);
        assert!(parse_str("[1, 2]").unwrap_err().contains("neither"));
        assert!(parse_str("42").unwrap_err().contains("neither"));
        assert!(parse_str("{nope").unwrap_err().contains("not JSON"));
        assert!(
            parse_str(&format!("{line}\n{{bad"))
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            parse(&[0xff, 0xfe], &SchemaCheck::new())
                .unwrap_err()
                .contains("UTF-8")
        );
    }

    #[test]
    fn refuses_bad_llama_numbers() {
        let t = r#"[{"model_filename": "a.gguf", "n_prompt": 16, "n_gen": 0, "n_threads": 1, "avg_ts": -1.0}]"#;
        assert!(parse_str(t).unwrap_err().contains("not a rate"));
        let t = r#"[{"model_filename": "a.gguf", "n_prompt": 0, "n_gen": 0, "n_threads": 1, "avg_ts": 1.0}]"#;
        assert!(parse_str(t).unwrap_err().contains("neither prompt"));
    }

    #[test]
    fn newer_and_invalid_results_are_refused_with_the_reason() {
        let e = parse_str(r#"{"schema_version": 99, "anything": true}"#).unwrap_err();
        assert!(e.contains("newer") && e.contains("upgrade"), "{e}");
        let e = parse_str(r#"{"schema_version": 1, "status": "complete"}"#).unwrap_err();
        assert!(e.contains("does not match the result schema"), "{e}");
        let e = parse_str(r#"{"schema_version": "1"}"#).unwrap_err();
        assert!(e.contains("whole number"), "{e}");
    }

    #[test]
    fn oversize_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        let f = fs_err::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 10).unwrap();
        let e = load(&big, &SchemaCheck::new()).unwrap_err();
        assert!(e.reason.contains("limit 64 MiB"), "{}", e.reason);
        let e = load(dir.path(), &SchemaCheck::new()).unwrap_err();
        assert!(e.reason.contains("not a regular file"), "{}", e.reason);
    }

    #[test]
    fn repeated_keys_are_refused_in_every_format() {
        let e = parse_str(r#"{"schema_version": 1, "runs": [{"a": 1, "a": 2}]}"#).unwrap_err();
        assert!(
            e.contains("duplicate key `a`") && e.contains("read two ways"),
            "{e}"
        );
        let line = r#"{"model_filename": "a.gguf", "n_prompt": 16, "n_gen": 0, "n_threads": 1, "avg_ts": 10.0}"#;
        let twice = line.replace("\"avg_ts\": 10.0", "\"avg_ts\": 10.0, \"avg_ts\": 99.0");
        let e = parse_str(&format!("[{twice}]")).unwrap_err();
        assert!(e.contains("duplicate key `avg_ts`"), "{e}");
        let e = parse_str(&format!("{line}\n{twice}\n")).unwrap_err();
        assert!(e.starts_with("line 2: duplicate key `avg_ts`"), "{e}");
    }

    /// A file named with terminal escapes, and one whose reason quotes hostile text, are skipped with both
    /// escaped: nothing raw reaches the terminal that prints the skipped line.
    #[test]
    fn skipped_paths_and_reasons_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("r\u{1b}]0;pwned\u{7}\u{202e}nosj.json");
        fs_err::write(
            &name,
            "{\"schema_version\": 1, \"\\u001b[2J\": 1, \"\\u001b[2J\": 2}",
        )
        .unwrap();
        let (loaded, skipped) = load_all(&[dir.path().to_path_buf()]);
        assert!(loaded.is_empty());
        let s = &skipped[0];
        assert!(
            s.path.ends_with("r\\x1b]0;pwned\\x07\\u{202e}nosj.json"),
            "{}",
            s.path
        );
        assert!(
            s.reason.contains("duplicate key `\\x1b[2J`"),
            "{}",
            s.reason
        );
        for t in [&s.path, &s.reason] {
            assert!(!t.chars().any(meek_schema::is_hidden), "{t:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_given_by_name_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("results.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(load(&fifo, &SchemaCheck::new()).map(|_| ()));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a FIFO is refused promptly")
            .unwrap_err();
        assert!(
            e.reason.contains("a FIFO, not a regular file"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn walks_directories_for_json_only() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("a/b")).unwrap();
        for f in ["x.json", "a/y.jsonl", "a/b/z.JSON", "a/notes.txt"] {
            fs_err::write(dir.path().join(f), "{}").unwrap();
        }
        let (files, skipped) = expand(&[dir.path().to_path_buf()]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a/b/z.JSON", "a/y.jsonl", "x.json"]);
        assert!(skipped.is_empty());
        let (_, skipped) = expand(&[dir.path().join("missing")]);
        assert!(
            skipped.is_empty(),
            "a missing file is reported when it is read"
        );
    }
}
