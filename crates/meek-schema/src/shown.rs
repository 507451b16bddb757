//! Paths and untrusted strings made safe to print on a terminal or into a log.
//!
//! Result files, and the names they are stored under, come from other people. A file named
//! `ESC ] 0 ; title BEL` would retitle the terminal that prints it, an `ESC [ 2 J` clears it, a newline forges a
//! log line, and a right-to-left override (U+202E) makes `evil\u{202e}nosj.exe` read as `evilexe.json`. Every
//! path or name from input that meekbench shows goes through [`shown`], the one place that decides what is
//! escaped; it lives in `meek-schema` because that is the lowest crate every printing crate depends on.
//!
//! What is escaped: C0 controls and DEL (`\x1b`, with `\t`, `\n`, `\r` spelled so), C1 controls, the bidirectional
//! embeddings, overrides, isolates and marks, line and paragraph separators, and the invisible characters that
//! hide text (`\u{202e}`, `\u{feff}`); bytes that are not UTF-8 are shown as `\xNN` rather than replaced.
//! Everything else, backslashes included (Windows paths stay readable), is kept, so escaping twice changes
//! nothing.

use std::ffi::OsStr;
use std::fmt::Write;

/// `s` (a path, a `&str`, an `OsStr`) with every character a terminal or log viewer would act on, or that hides or
/// reorders text, escaped. See the module documentation for the exact set.
pub fn shown(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref();
    let mut out = String::with_capacity(s.len() + 8);
    match s.to_str() {
        Some(text) => push_text(&mut out, text),
        None => push_bytes(&mut out, s),
    }
    out
}

/// Whether `c` is escaped by [`shown`] (and blanked by the report formats, which cannot show an escape): the one
/// definition, in `meek-render`.
pub use meek_render::escape::is_hidden;

fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && is_hidden(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(unix)]
fn push_bytes(out: &mut String, s: &OsStr) {
    use std::os::unix::ffi::OsStrExt;
    for chunk in s.as_bytes().utf8_chunks() {
        push_text(out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

#[cfg(not(unix))]
fn push_bytes(out: &mut String, s: &OsStr) {
    // Unpaired surrogates on Windows: shown as U+FFFD, the rest escaped as usual.
    push_text(out, &s.to_string_lossy());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn terminal_escapes_are_shown_not_sent() {
        let name = "res\u{1b}]0;pwned\u{7}\u{1b}[2J.json";
        let s = shown(name);
        assert_eq!(s, "res\\x1b]0;pwned\\x07\\x1b[2J.json");
        assert!(!s.chars().any(|c| c.is_control()));
        assert_eq!(
            shown(Path::new("/r/a\nb\tc\rd\u{7f}")),
            "/r/a\\nb\\tc\\rd\\x7f"
        );
    }

    #[test]
    fn c1_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(shown("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(shown("evil\u{202e}nosj.exe"), "evil\\u{202e}nosj.exe");
        assert_eq!(
            shown("\u{2066}x\u{2069}\u{200f}\u{feff}\u{2028}"),
            "\\u{2066}x\\u{2069}\\u{200f}\\u{feff}\\u{2028}"
        );
    }

    #[test]
    fn ordinary_text_is_kept_and_escaping_is_idempotent() {
        for s in ["résultats/モデル 1.json", "C:\\results\\a.json", "emoji 🦀"] {
            assert_eq!(shown(s), s);
        }
        let once = shown("x\u{1b}y\u{202e}z\n");
        assert_eq!(shown(&once), once);
    }

    #[cfg(unix)]
    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        use std::os::unix::ffi::OsStrExt;
        let p = OsStr::from_bytes(b"a\xff\x1b\xe2\x80b.json");
        assert_eq!(shown(p), "a\\xff\\x1b\\xe2\\x80b.json");
    }
}
