//! Pinning and locking against the fake hub: a branch resolved to its commit and the file's SHA-256 from the API,
//! a branch that moves, a file replaced under the same commit, a file kept in Git, a gated and a missing repository.

use meek_config::lock::LockState;
use meek_testkit::hub::{FakeHub, sha256_hex};

use super::*;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

const CONFIG: &str = r#"
[[models]]
id = "llama"
file = "llama.gguf"
sources = [{ hub = "owner/llama-GGUF", revision = "main" }]
"#;

fn fetcher(hub: &FakeHub, dir: &Path) -> Fetcher {
    Fetcher::new(dir.join("cache"))
        .with_hub_endpoint(hub.endpoint.clone())
        .with_hub_cache(dir.join("hf"))
        .with_timeouts(Duration::from_secs(5), Duration::from_secs(5))
}

/// The config pinned by `lock`.
fn locked(lock: &meek_config::Lock) -> meek_config::LoadedConfig {
    let text = lock.to_text("mid.toml");
    let l = meek_config::LoadedLock::parse(&text, "mid.lock").unwrap();
    meek_config::parse_locked(CONFIG, "mid.toml", Some(l)).unwrap()
}

#[test]
fn a_branch_is_pinned_to_its_commit_and_the_files_sha256_without_a_download() {
    let hub = FakeHub::start();
    let v1 = b"GGUF version one".repeat(100);
    hub.commit("owner/llama-GGUF", "main", A, &[("llama.gguf", &v1)], true);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&hub, dir.path());
    let pin = f
        .pin_hub_file("owner/llama-GGUF", "main", "llama.gguf")
        .unwrap();
    assert_eq!(pin.commit, A);
    assert_eq!(pin.sha256, sha256_hex(&v1));
    assert_eq!(pin.size, v1.len() as u64);
    assert!(pin.from_metadata);
    assert!(
        hub.requests().iter().all(|r| !r.contains("/resolve/")),
        "nothing downloaded: {:?}",
        hub.requests()
    );
    // A file kept in Git itself has no LFS record: downloaded at the commit and hashed.
    hub.commit("owner/small", "main", B, &[("tiny.gguf", b"small")], false);
    let pin = f.pin_hub_file("owner/small", "main", "tiny.gguf").unwrap();
    assert_eq!((pin.commit.as_str(), pin.from_metadata), (B, false));
    assert_eq!(pin.sha256, sha256_hex(b"small"));
}

#[test]
fn the_lock_holds_while_the_branch_moves_and_update_moves_it() {
    let hub = FakeHub::start();
    let (v1, v2) = (b"weights one".repeat(50), b"weights two".repeat(50));
    hub.commit("owner/llama-GGUF", "main", A, &[("llama.gguf", &v1)], true);
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&hub, dir.path());
    let cfg = meek_config::parse(CONFIG, "mid.toml").unwrap();
    let out = f.lock(&cfg, false, &[]);
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert!(matches!(&out.changes[..], [LockChange::Added(e)] if e.commit == A));
    let cfg = locked(&out.lock);
    assert_eq!(cfg.lockable[0].state, LockState::Pinned);
    let got = f.fetch(&cfg.config.models[0]).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), v1);
    assert_eq!(got.source, format!("hub:owner/llama-GGUF@{A}"));

    // main moves to a new commit where the file was replaced under the same name.
    hub.commit("owner/llama-GGUF", "main", B, &[("llama.gguf", &v2)], true);
    let again = f.lock(&cfg, false, &[]);
    assert_eq!(again.lock, out.lock, "without --update the pin stays");
    let fresh = tempfile::tempdir().unwrap();
    let got = fetcher(&hub, fresh.path())
        .fetch(&cfg.config.models[0])
        .unwrap();
    assert_eq!(
        fs::read(&got.path).unwrap(),
        v1,
        "the locked commit's file, not main's"
    );
    let moved = f.lock(&cfg, true, &[]);
    match &moved.changes[..] {
        [LockChange::Moved(was, now)] => {
            assert_eq!((was.commit.as_str(), now.commit.as_str()), (A, B));
            assert_eq!(now.sha256, sha256_hex(&v2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_changed_under_its_locked_commit_is_refused() {
    let hub = FakeHub::start();
    hub.commit(
        "owner/llama-GGUF",
        "main",
        A,
        &[("llama.gguf", b"honest")],
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&hub, dir.path());
    let cfg = locked(
        &f.lock(&meek_config::parse(CONFIG, "mid.toml").unwrap(), false, &[])
            .lock,
    );
    hub.overwrite("owner/llama-GGUF", A, "llama.gguf", b"tampered");
    let err = f.fetch(&cfg.config.models[0]).unwrap_err().to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
}

#[test]
fn missing_gated_and_unpinned_are_clear_errors() {
    let hub = FakeHub::start();
    hub.commit("owner/llama-GGUF", "main", A, &[("llama.gguf", b"x")], true);
    hub.commit("owner/gated", "main", A, &[("llama.gguf", b"x")], true);
    hub.gate("owner/gated");
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&hub, dir.path());
    for (repo, rev, file, want) in [
        (
            "owner/absent",
            "main",
            "llama.gguf",
            "no such repository or revision",
        ),
        (
            "owner/llama-GGUF",
            "v9",
            "llama.gguf",
            "no such repository or revision",
        ),
        ("owner/llama-GGUF", "main", "other.gguf", "no such file"),
        ("owner/gated", "main", "llama.gguf", "HF_TOKEN"),
    ] {
        let err = f.pin_hub_file(repo, rev, file).unwrap_err();
        assert!(
            err.contains(want) && err.contains(repo),
            "{repo}@{rev}/{file}: {err}"
        );
    }
    // A model the lock does not pin is never fetched unverified.
    let cfg = meek_config::parse(CONFIG, "mid.toml").unwrap();
    let err = f.fetch(&cfg.lockable[0].spec).unwrap_err().to_string();
    assert!(
        err.contains("not pinned") && err.contains("meekbench lock"),
        "{err}"
    );
    // A lock failure keeps the other models' pins and names the model.
    let two = format!(
        "{CONFIG}\n[[models]]\nid = \"gone\"\nfile = \"g.gguf\"\nsources = [{{ hub = \"owner/absent\" }}]\n"
    );
    let out = f.lock(&meek_config::parse(&two, "mid.toml").unwrap(), false, &[]);
    assert_eq!(out.lock.models.len(), 1);
    assert_eq!(out.failures.len(), 1);
    assert!(
        out.failures[0].0.contains("models[1] (gone)"),
        "{:?}",
        out.failures
    );
    // Pinning only the models chosen (`bench -m llama`) leaves the others alone, failing or not.
    let chosen = f.lock(
        &meek_config::parse(&two, "mid.toml").unwrap(),
        false,
        &["llama".to_string()],
    );
    assert!(chosen.failures.is_empty(), "{:?}", chosen.failures);
    assert_eq!(chosen.lock.models.len(), 1);
}
