//! Result files as an attacker would hand them over (issue 18, items 7, 8 and 10): names that carry terminal
//! escapes, FIFOs in place of files, and keys repeated inside a file. Each must be refused or skipped promptly,
//! with nothing raw reaching the terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

/// Retitles the terminal (OSC 0), clears it (CSI 2J) and reverses what follows (U+202E).
const HOSTILE: &str = "r\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}nosj";
/// How [`HOSTILE`] must be shown.
const SHOWN: &str = "r\\x1b]0;pwned\\x07\\x1b[2J\\u{202e}nosj";

fn meekbench() -> Command {
    let mut c = Command::cargo_bin("meekbench").unwrap();
    c.env_remove("HF_ENDPOINT");
    // A FIFO that was opened would block for ever: fail the test instead.
    c.timeout(Duration::from_secs(60));
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../meek-report/tests/fixtures")
        .join(name)
}

/// Stderr of a run that must fail (exit 1), checked to hold no raw control or bidi character.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_clean(&err);
    err
}

fn assert_clean(text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && meek_schema::is_hidden(c))
        .collect();
    assert!(bad.is_empty(), "raw {bad:?} in:\n{text}");
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn crafted_file_names_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join(format!("{HOSTILE}.json"));
    fs_err::write(&junk, "not json").unwrap();
    let good = fixture("machine-a.json");

    // leaderboard: the "skipped PATH" line.
    let site = dir.path().join("site");
    let out = meekbench()
        .arg("leaderboard")
        .arg(&junk)
        .arg(&good)
        .arg("--out")
        .arg(&site)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("skipped {}", shown_dir(dir.path(), SHOWN))),
        "{err}"
    );
    assert_clean(&err);

    // compare: the error naming the file.
    let err = refused(meekbench().arg("compare").arg(&good).arg(&junk));
    assert!(err.contains(&format!("{SHOWN}.json")), "{err}");

    // project: the skipped line.
    let out = meekbench()
        .args(["project", "--out"])
        .arg(dir.path().join("projection"))
        .arg("--results")
        .arg(&junk)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{SHOWN}.json: not a meekbench result file")),
        "{err}"
    );
    assert_clean(&err);
}

/// `dir` joined with `name` as the escaped path appears (the temporary directory's own name is plain).
fn shown_dir(dir: &Path, name: &str) -> String {
    format!("{}/{name}.json", dir.display())
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("result.json");
    mkfifo(&fifo);
    let err = refused(
        meekbench()
            .args(["bench", "--quiet", "--resume"])
            .arg(&fifo),
    );
    assert!(err.contains("a FIFO, not a regular file"), "{err}");

    let out = meekbench()
        .args(["project", "--out"])
        .arg(dir.path().join("projection"))
        .arg("--results")
        .arg(&fifo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("result.json: a FIFO, not a regular file"),
        "{err}"
    );

    let err = refused(
        meekbench()
            .arg("compare")
            .arg(fixture("machine-a.json"))
            .arg(&fifo),
    );
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

#[test]
fn repeated_keys_in_a_result_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs_err::read_to_string(fixture("machine-a.json")).unwrap();
    // The same file with its status given twice: a reader keeping the first and one keeping the last disagree.
    let twice = text.replacen("\"status\":", "\"status\": \"running\", \"status\":", 1);
    assert_ne!(twice, text, "the fixture has a status");
    let file = dir.path().join("twice.json");
    fs_err::write(&file, twice).unwrap();

    let err = refused(
        meekbench()
            .arg("compare")
            .arg(fixture("machine-b.json"))
            .arg(&file),
    );
    assert!(
        err.contains("twice.json") && err.contains("duplicate key `status`"),
        "{err}"
    );

    let err = refused(
        meekbench()
            .args(["bench", "--quiet", "--resume"])
            .arg(&file),
    );
    assert!(
        err.contains("twice.json") && err.contains("duplicate key `status`"),
        "{err}"
    );
}
