//! Models without `sha256`, pinned by the lock file: matching, stale and hostile entries.

use super::*;

const UNPINNED: &str = r#"
[[models]]
id = "pinned"
file = "p.gguf"
sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
sources = [{ path = "/tmp/p.gguf" }]

[[models]]
id = "llama"
file = "llama.gguf"
sources = [{ hub = "owner/llama-GGUF", revision = "main" }, { path = "/tmp/llama.gguf" }]
"#;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn entry(file: &str, revision: &str) -> String {
    format!(
        "version = 1\n[[models]]\nid = \"llama\"\nfile = \"{file}\"\nhub = \"owner/llama-GGUF\"\nrevision = \
         \"{revision}\"\ncommit = \"{COMMIT}\"\nsha256 = \"{SHA}\"\nsize = 1000\n"
    )
}

fn err(text: &str) -> String {
    parse(text, "test.toml").unwrap_err().to_string()
}

fn with_lock(lock: &str) -> LoadedConfig {
    let lock = LoadedLock::parse(lock, "test.lock").unwrap();
    parse_locked(UNPINNED, "test.toml", Some(lock)).unwrap()
}

#[test]
fn a_model_without_sha256_waits_for_the_lock() {
    let c = parse(UNPINNED, "test.toml").unwrap();
    assert_eq!(
        c.config.models.len(),
        1,
        "only the pinned model is measurable"
    );
    let u: Vec<_> = c.unpinned().collect();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].index, 1);
    assert_eq!(u[0].state, LockState::Missing);
    assert!(u[0].why().unwrap().contains("hub:owner/llama-GGUF@main"));
}

#[test]
fn a_matching_entry_pins_the_sha256_and_the_commit() {
    let c = with_lock(&entry("llama.gguf", "main"));
    assert_eq!(c.unpinned().count(), 0);
    let m = c.config.models.iter().find(|m| m.id == "llama").unwrap();
    assert_eq!(m.sha256, SHA);
    assert!(matches!(&m.sources[0], Source::Hub { revision, .. } if revision == COMMIT));
    assert_eq!(m.sources[1], Source::Path("/tmp/llama.gguf".into()));
}

#[test]
fn an_entry_that_no_longer_matches_is_stale_and_says_what_moved() {
    for (lock, want) in [
        (
            entry("old.gguf", "main"),
            "file was \"old.gguf\" when locked",
        ),
        (entry("llama.gguf", "v2"), "revision was \"v2\" when locked"),
    ] {
        let c = with_lock(&lock);
        let u: Vec<_> = c.unpinned().collect();
        assert_eq!(u.len(), 1, "{lock}");
        assert!(u[0].why().unwrap().contains(want), "{:?}", u[0].why());
        assert!(c.config.models.iter().all(|m| m.id != "llama"));
    }
}

#[test]
fn a_model_without_sha256_needs_a_hub_source_and_a_single_file() {
    let e =
        err("[[models]]\nid = \"m\"\nfile = \"m.gguf\"\nsources = [{ path = \"/tmp/m.gguf\" }]\n");
    assert!(
        e.contains("models[0].sha256") && e.contains("meekbench lock"),
        "{e}"
    );
    let e = err(
        "[[models]]\nid = \"m\"\nfile = \"config.json\"\nsources = [{ hub = \"o/n\", revision = \"main\" }]\n",
    );
    assert!(e.contains("meekbench digest"), "{e}");
}

#[test]
fn hostile_lock_files_are_refused_naming_the_entry() {
    let good = entry("llama.gguf", "main");
    for (edit, want) in [
        (good.replace(COMMIT, "main"), "not a commit hash"),
        (good.replace(SHA, &SHA.to_uppercase()), "not a SHA-256"),
        (good.replace("version = 1", "version = 2"), "reads 1"),
        (
            good.replace("size = 1000", "size = 1000\nextra = 1"),
            "unknown field",
        ),
        (
            good.replace("file = \"llama.gguf\"", "file = \"../llama.gguf\""),
            "file",
        ),
        (
            good.replace(
                "size = 1000",
                "size = 1000\nhub_file = \"../../etc/passwd\"",
            ),
            "hub_file",
        ),
        (
            good.replace("hub = \"owner/llama-GGUF\"", "hub = \"../x\""),
            "hub",
        ),
        (
            format!("{good}{}", &good["version = 1\n".len()..]),
            "locked twice",
        ),
        ("x".repeat(5 << 20), "at most"),
        (
            good.replace("size = 1000", "size = 18446744073709551615"),
            "more than a model file",
        ),
        (
            good.replace("id = \"llama\"", "id = \"\\u001b[2J\""),
            "not a usable id",
        ),
    ] {
        let e = LoadedLock::parse(&edit, "test.lock").unwrap_err();
        assert!(
            e.contains("test.lock") && e.contains(want),
            "want {want:?}: {e}"
        );
    }
}

#[test]
fn a_lock_without_entries_is_a_lock() {
    let c = with_lock("version = 1\nmodels = []\n");
    assert_eq!(c.lockable[0].state, LockState::Missing);
}

#[test]
fn a_lock_file_is_found_beside_its_config_and_a_broken_one_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mid.toml");
    fs_err::write(&config, UNPINNED).unwrap();
    assert_eq!(lock::lock_path(&config), dir.path().join("mid.lock"));
    assert_eq!(load_file(&config).unwrap().unpinned().count(), 1);
    fs_err::write(dir.path().join("mid.lock"), entry("llama.gguf", "main")).unwrap();
    let c = load_file(&config).unwrap();
    assert_eq!(c.unpinned().count(), 0);
    assert!(c.lock.unwrap().origin.ends_with("mid.lock"));
    fs_err::write(dir.path().join("mid.lock"), "version = \"one\"").unwrap();
    let e = load_file(&config).unwrap_err().to_string();
    assert!(
        e.contains("mid.lock") && e.contains("meekbench lock"),
        "{e}"
    );
    // The text written by `Lock::to_text` reads back as the same lock.
    let lock = Lock::parse(&entry("llama.gguf", "main"), "a").unwrap();
    assert_eq!(Lock::parse(&lock.to_text("mid.toml"), "b").unwrap(), lock);
}

#[test]
fn the_mid_sized_config_is_all_lockable_q4_k_m_hub_files() {
    let c = parse(
        include_str!("../../../configs/mid.toml"),
        "configs/mid.toml",
    )
    .unwrap();
    assert!(
        c.config.models.is_empty(),
        "nothing in mid.toml is pinned by hand"
    );
    assert_eq!(c.lockable.len(), 13);
    for l in &c.lockable {
        assert_eq!(l.state, LockState::Missing, "{}", l.spec.id);
        assert_eq!(l.hub.revision, "main", "{}", l.spec.id);
        assert!(l.spec.file.ends_with("-Q4_K_M.gguf"), "{}", l.spec.file);
        assert!(l.hub.repo.ends_with("-GGUF"), "{}", l.hub.repo);
    }
    assert_eq!(c.config.suites.len(), 1);
}
