//! The `path` source: files and checkpoint directories used in place, and the checkpoint digest.

use super::*;

#[test]
fn local_path_is_verified_and_used_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.gguf");
    fs::write(&file, b"GGUF tiny").unwrap();
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&sha(b"GGUF tiny"), vec![Source::Path(file.clone())]))
        .unwrap();
    assert_eq!(got.path, file);
    assert_eq!(got.size_bytes, 9);
    assert!(got.source.starts_with("local:"));
    // A changed file is hashed again and refused, the stamp notwithstanding.
    fs::write(&file, b"GGUF tiNy").unwrap();
    let err = f
        .fetch(&spec(&sha(b"GGUF tiny"), vec![Source::Path(file)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
}

#[test]
fn a_checkpoint_directory_is_verified_by_the_digest_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    fs::create_dir(&ck).unwrap();
    let files = checkpoint();
    for (n, b) in &files {
        fs::write(ck.join(n), b).unwrap();
    }
    // Files meekbench does not read are not covered.
    fs::write(ck.join("README.md"), "x").unwrap();
    fs::write(ck.join("generation_config.json"), "{}").unwrap();
    let digest = listing_digest(&files);
    assert_eq!(checkpoint_digest(&ck).unwrap(), digest);
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&digest, vec![Source::Path(ck.clone())]))
        .unwrap();
    assert_eq!(got.path, ck);
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(got.size_bytes, total as u64);
    assert!(
        f.lookup(&spec(&digest, vec![Source::Path(ck.clone())]))
            .is_some()
    );
    // A changed shard (same size, later mtime) is caught, and the message gives the new digest.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(ck.join("model-00001-of-00002.safetensors"), b"uno").unwrap();
    let err = f
        .fetch(&spec(&digest, vec![Source::Path(ck.clone())]))
        .unwrap_err()
        .to_string();
    let now = checkpoint_digest(&ck).unwrap();
    assert_ne!(now, digest);
    assert!(err.contains("checkpoint") && err.contains(&now), "{err}");
    // A missing shard is named.
    fs::remove_file(ck.join("model-00002-of-00002.safetensors")).unwrap();
    let err = f.verify(&ck, &now).unwrap_err();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

/// A snapshot in the Hugging Face cache layout (`models--org--name/snapshots/REV/` of links into `blobs/`) is a
/// checkpoint directory like any other: its digest is that of the files the links point to.
#[cfg(unix)]
#[test]
fn a_hub_cache_snapshot_is_a_checkpoint_directory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub").join("models--org--tiny");
    let (blobs, snap) = (repo.join("blobs"), repo.join("snapshots").join(COMMIT));
    fs::create_dir_all(&blobs).unwrap();
    fs::create_dir_all(&snap).unwrap();
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    for (name, body) in [
        ("config.json", &b"{\"model_type\":\"llama\"}"[..]),
        ("tokenizer.json", b"{}"),
        ("model.safetensors", b"weights"),
    ] {
        let blob = blobs.join(sha(body));
        fs::write(&blob, body).unwrap();
        fs::os::unix::fs::symlink(format!("../../blobs/{}", sha(body)), snap.join(name)).unwrap();
        fs::write(plain.join(name), body).unwrap();
    }
    let digest = checkpoint_digest(&plain).unwrap();
    assert_eq!(checkpoint_digest(&snap).unwrap(), digest);
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&digest, vec![Source::Path(snap.clone())]))
        .unwrap();
    assert_eq!(got.path, snap);
    assert_eq!(got.size_bytes, 22 + 2 + 7);
}

/// Shard names in a checkpoint index come from the repository: one that names a path is refused.
#[test]
fn an_index_naming_a_path_outside_the_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in checkpoint() {
        fs::write(dir.path().join(name), body).unwrap();
    }
    let _ = fs::remove_file(dir.path().join("model.safetensors"));
    for shard in [
        "../../notes.txt",
        "/etc/passwd",
        "sub/x.safetensors",
        "a\u{1b}b",
    ] {
        let index = serde_json::json!({ "weight_map": { "w": shard } });
        fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let err = checkpoint_files(dir.path()).unwrap_err();
        assert!(err.contains("not a plain file name"), "{shard}: {err}");
    }
}
