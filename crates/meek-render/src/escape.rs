//! Escaping for every output format. Result files are submitted by people, so every string taken from one (model
//! names, CPU brands, labels, paths) goes through one of these before it reaches a page, a table or a chart.
//!
//! Characters that cannot be shown ([`is_hidden`]: controls, invisible and reordering characters) are blanked
//! in every format here; `meek_schema::shown` escapes the same set for terminals.

/// Longest text taken from a file into a report cell; longer text is cut with an ellipsis.
pub const MAX_CELL_CHARS: usize = 160;

/// Whether `c` cannot be shown as itself: a control character (which XML forbids and terminals interpret) or an
/// invisible or reordering one (bidi overrides and isolates, zero-width characters, line separators), which could
/// make text read differently from what it is.
///
/// `meek_schema::shown` escapes the same set for terminals (it re-exports this function).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'                  // Arabic letter mark
            | '\u{200b}'                // zero width space
            | '\u{200e}'..='\u{200f}'   // left-to-right and right-to-left marks
            | '\u{2028}'..='\u{2029}'   // line and paragraph separators
            | '\u{202a}'..='\u{202e}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'   // bidi isolates
            | '\u{feff}'                // zero width no-break space (BOM)
            | '\u{fff9}'..='\u{fffb}' // interlinear annotation
        )
}

/// `s` cut to at most `max` characters (an ellipsis marks a cut), with control characters (which XML forbids and
/// terminals interpret) and the invisible or reordering ones [`is_hidden`] names replaced by spaces.
pub fn clip(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (n, c) in s.chars().enumerate() {
        if n + 1 > max {
            out.pop();
            out.push('…');
            break;
        }
        out.push(if is_hidden(c) { ' ' } else { c });
    }
    out
}

/// Text for HTML element content and quoted attribute values, and for SVG (XML) text.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_hidden(c) && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell (GitHub flavour): every character Markdown or inline HTML could act on is
/// backslash-escaped or written as an entity, and line breaks become spaces, so a cell stays one literal cell.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '!' | '(' | ')' | '{' | '}' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if is_hidden(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A text field for CSV (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled; a field
/// that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) is
/// prefixed with `'` (OWASP's advice against CSV injection). Numbers written by the report do not go through this.
pub fn csv(s: &str) -> String {
    let mut v = String::with_capacity(s.len() + 2);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.push('\'');
    }
    v.push_str(s);
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<img src=x onerror=alert(1)>";

    #[test]
    fn html_leaves_no_markup() {
        let e = html(HOSTILE);
        assert_eq!(e, "&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(html("a\"b'c&d"), "a&quot;b&#39;c&amp;d");
        assert_eq!(html("x\u{1}y"), "x y");
    }

    #[test]
    fn markdown_cell_stays_one_literal_cell() {
        assert_eq!(markdown("a|b"), "a\\|b");
        assert_eq!(markdown("`x`"), "\\`x\\`");
        assert_eq!(markdown(HOSTILE), "&lt;img src=x onerror=alert\\(1\\)&gt;");
        assert_eq!(markdown("[a](javascript:x)"), "\\[a\\]\\(javascript:x\\)");
        assert_eq!(markdown("line\nbreak"), "line break");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv("+1"), "'+1");
        assert_eq!(csv("-cmd"), "'-cmd");
        assert_eq!(csv("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn clip_cuts_long_text_and_controls() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(clip("a\u{7}b", 10), "a b");
        assert_eq!(clip("a\u{202e}b\u{9b}c", 10), "a b c");
        assert_eq!(clip("ééééé", 3).chars().count(), 3);
    }

    #[test]
    fn base64_known_values() {
        // RFC 4648 section 10 test vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
