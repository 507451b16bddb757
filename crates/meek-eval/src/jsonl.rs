//! External suites from JSONL files: GSM8K's format and a plain `{id, prompt, answer}` format, one JSON object a
//! line. The records' fields, the caps and the checks are [`record`](crate::record)'s, shared with parquet files.

use std::path::Path;

use serde::Deserialize;

use crate::Item;
pub use crate::record::{Format, LoadError, MAX_FIELD, MAX_FILE, MAX_ITEMS};
use crate::record::{Record, Suite, os_reason};

#[derive(Deserialize)]
struct GsmLine {
    question: String,
    answer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainLine {
    id: serde_json::Value,
    prompt: String,
    answer: serde_json::Value,
    family: Option<String>,
    steps: Option<u32>,
    solution: Option<String>,
}

/// Largest line: a GSM8K line is under 1 KB; a line holds a few fields of at most [`MAX_FIELD`].
pub const MAX_LINE: usize = 1 << 20;

const BOM: char = '\u{feff}';

/// Reads a suite file; every bad line is an error naming the file and line. At most `limit` items (all when None).
///
/// Cheap and free of side effects (it reads only `path`, line by line, stopping at the first error or at
/// `limit`), so a suite can be checked before any model loads. Memory is bounded by [`MAX_LINE`] plus the items
/// kept; the file by [`MAX_FILE`], each field by [`MAX_FIELD`], the count by [`MAX_ITEMS`]. A UTF-8 byte order
/// mark at the start is skipped, as JSON readers do.
pub fn load(path: &Path, format: Format, limit: Option<usize>) -> Result<Vec<Item>, LoadError> {
    use std::io::{BufRead, BufReader, Read};
    let name = path.display().to_string();
    let err = |line: usize, message: String| LoadError {
        path: name.clone(),
        line,
        row: false,
        message,
    };
    // A FIFO or device would block or never end: only regular files (after symlinks) are suites.
    let meta = fs_err::metadata(path).map_err(|e| err(0, os_reason(&e)))?;
    if !meta.is_file() {
        return Err(err(0, "not a regular file".into()));
    }
    let file = fs_err::File::open(path).map_err(|e| err(0, os_reason(&e)))?;
    let mut reader = BufReader::new(file.take(MAX_FILE + 1));
    let mut suite = Suite::new(limit);
    let mut buf = Vec::new();
    let mut read = 0u64;
    for n in 1.. {
        buf.clear();
        let got = (&mut reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(n, e.to_string()))?;
        if got == 0 {
            break;
        }
        read += got as u64;
        if read > MAX_FILE {
            return Err(err(
                n,
                format!("the file is over {MAX_FILE} bytes, the cap on a suite file"),
            ));
        }
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        // Cut at the cap, a line may end inside a character: the size is the error to report.
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(_) if bytes.len() > MAX_LINE => {
                return Err(err(n, too_long_line()));
            }
            Err(e) => return Err(err(n, format!("not UTF-8 text: {e}"))),
        };
        if !line_of(&mut suite, n, line, format).map_err(|(l, m)| err(l, m))? {
            break;
        }
    }
    suite.finish().map_err(|(l, m)| err(l, m))
}

/// Parses suite text (see [`load`], whose limits apply); errors carry the 1-based line number.
pub fn parse(
    text: &str,
    format: Format,
    limit: Option<usize>,
) -> Result<Vec<Item>, (usize, String)> {
    if text.len() as u64 > MAX_FILE {
        return Err((
            0,
            format!("the text is over {MAX_FILE} bytes, the cap on a suite file"),
        ));
    }
    let mut suite = Suite::new(limit);
    for (i, line) in text.lines().enumerate() {
        if !line_of(&mut suite, i + 1, line, format)? {
            break;
        }
    }
    suite.finish()
}

/// Takes line `n`; false once `limit` items are read.
fn line_of(
    suite: &mut Suite,
    n: usize,
    line: &str,
    format: Format,
) -> Result<bool, (usize, String)> {
    if suite.done() {
        return Ok(false);
    }
    let line = if n == 1 {
        line.strip_prefix(BOM).unwrap_or(line)
    } else {
        line
    };
    if line.len() > MAX_LINE {
        return Err((n, too_long_line()));
    }
    if line.trim().is_empty() {
        return Ok(true);
    }
    suite.room(n)?;
    // Stop at the limit without reading the next line: lines past it are never read, whatever they hold.
    suite.push(n, record(n, line, format)?)
}

fn too_long_line() -> String {
    format!(
        "the line is over {MAX_LINE} bytes, the cap on a suite line (each text field may hold {MAX_FIELD})"
    )
}

/// The record on line `n`.
fn record(n: usize, line: &str, format: Format) -> Result<Record, (usize, String)> {
    Ok(match format {
        Format::Gsm8k => {
            let g: GsmLine =
                serde_json::from_str(line).map_err(|e| (n, format!("not a GSM8K line: {e}")))?;
            Record::Gsm8k {
                question: g.question,
                answer: g.answer,
            }
        }
        Format::Plain => {
            let p: PlainLine = serde_json::from_str(line)
                .map_err(|e| (n, format!("not an {{id, prompt, answer}} line: {e}")))?;
            let id = match p.id {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(x) => x.to_string(),
                other => {
                    return Err((n, format!("id {other} is neither a string nor a number")));
                }
            };
            let answer = match p.answer {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(x) => x.to_string(),
                other => {
                    return Err((
                        n,
                        format!("answer {other} is neither a string nor a number"),
                    ));
                }
            };
            Record::Plain {
                id,
                prompt: p.prompt,
                answer,
                family: p.family,
                steps: p.steps,
                solution: p.solution,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_lines_give_answers_steps_and_solutions() {
        let text = r#"{"question": "Natalia sold 48 clips in April and half as many in May. How many in total?", "answer": "May: 48/2 = <<48/2=24>>24\nTotal: 48+24 = <<48+24=72>>72\n#### 72"}
{"question": "Big?", "answer": "x <<1*1000=1000>>1000\n#### 1,000"}"#;
        let items = parse(text, Format::Gsm8k, None).unwrap();
        assert_eq!(items[0].answer, "72");
        assert_eq!(items[0].steps, 2);
        assert_eq!(
            items[0].solution,
            "May: 48/2 = 24\nTotal: 48+24 = 72\nAnswer: 72"
        );
        assert_eq!(items[1].answer, "1000");
        assert_eq!(items[1].id, "item-2");
        assert_eq!(parse(text, Format::Gsm8k, Some(1)).unwrap().len(), 1);
    }

    #[test]
    fn plain_lines_accept_numbers_and_strings() {
        let text = "{\"id\": 1, \"prompt\": \"2+2?\", \"answer\": 4}\n\n{\"id\": \"b\", \"prompt\": \"x\", \"answer\": \"-1.50\", \"steps\": 3}\n";
        let items = parse(text, Format::Plain, None).unwrap();
        assert_eq!((items[0].id.as_str(), items[0].answer.as_str()), ("1", "4"));
        assert_eq!((items[1].answer.as_str(), items[1].steps), ("-1.5", 3));
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            (
                "{\"question\": \"q\", \"answer\": \"no final\"}",
                Format::Gsm8k,
                1,
                "####",
            ),
            (
                "{\"id\": 1, \"prompt\": \"p\", \"answer\": 1}\n{broken",
                Format::Plain,
                2,
                "not an",
            ),
            ("{\"id\": 1, \"prompt\": \"p\"}", Format::Plain, 1, "answer"),
            (
                "{\"id\": 1, \"prompt\": \"p\", \"answer\": 1}\n{\"id\": 1, \"prompt\": \"q\", \"answer\": 2}",
                Format::Plain,
                2,
                "duplicate id",
            ),
            (
                "{\"id\": 1, \"prompt\": \"p\", \"answer\": \"many\"}",
                Format::Plain,
                1,
                "no number",
            ),
            ("\n\n", Format::Plain, 0, "no items"),
        ];
        for (text, fmt, line, want) in cases {
            let (l, m) = parse(text, fmt, None).unwrap_err();
            assert_eq!(l, line, "{m}");
            assert!(m.contains(want), "{m}");
        }
        let dir = std::env::temp_dir().join(format!("meek-eval-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.jsonl");
        fs_err::write(&p, "{\"id\": 1, \"prompt\": \"p\", \"answer\": 1}\nnope\n").unwrap();
        let e = load(&p, Format::Plain, None).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2:"), "{e}");
        fs_err::remove_dir_all(dir).ok();
    }

    fn temp(name: &str, body: &[u8]) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("meek-eval-{name}-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{name}.jsonl"));
        fs_err::write(&p, body).unwrap();
        (dir, p)
    }

    /// Issue #18 item 10: a byte order mark before line 1 is skipped, as JSON readers do (and only there).
    #[test]
    fn a_utf8_bom_at_the_start_is_accepted() {
        let text = "\u{feff}{\"id\": 1, \"prompt\": \"2+2?\", \"answer\": 4}\n";
        assert_eq!(parse(text, Format::Plain, None).unwrap()[0].id, "1");
        let (dir, p) = temp("bom", text.as_bytes());
        assert_eq!(load(&p, Format::Plain, None).unwrap()[0].answer, "4");
        fs_err::remove_dir_all(dir).ok();
        let late = "{\"id\": 1, \"prompt\": \"p\", \"answer\": 1}\n\u{feff}{\"id\": 2, \"prompt\": \"p\", \"answer\": 1}";
        assert_eq!(parse(late, Format::Plain, None).unwrap_err().0, 2);
    }

    /// Issue #18 item 6: one valid line with a huge prompt is refused by name, without reading it whole.
    #[test]
    fn huge_lines_and_fields_are_refused_with_line_field_and_cap() {
        let line = |prompt: usize| {
            format!(
                "{{\"id\": 1, \"prompt\": \"{}\", \"answer\": 4}}\n",
                "x".repeat(prompt)
            )
        };
        let (l, m) = parse(&line(MAX_FIELD + 1), Format::Plain, None).unwrap_err();
        assert_eq!(l, 1);
        assert!(
            m.contains("`prompt`") && m.contains(&MAX_FIELD.to_string()),
            "{m}"
        );
        let gsm = format!(
            "{{\"question\": \"{}\", \"answer\": \"#### 1\"}}",
            "q".repeat(MAX_FIELD + 1)
        );
        assert!(
            parse(&gsm, Format::Gsm8k, None)
                .unwrap_err()
                .1
                .contains("`question`")
        );
        assert!(parse(&line(MAX_FIELD), Format::Plain, None).is_ok());

        let ok = "{\"id\": 0, \"prompt\": \"p\", \"answer\": 1}\n";
        // The prompt of é (two bytes) is cut by the line cap inside a character: still the size is reported.
        let body = format!("{ok}{}", line(3 * MAX_LINE).replace('x', "é"));
        let (dir, p) = temp("huge", body.as_bytes());
        let e = load(&p, Format::Plain, None).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains(&MAX_LINE.to_string()), "{e}");
        assert!(e.to_string().contains("huge.jsonl:2:"), "{e}");
        // With a limit, lines past it are never read.
        assert_eq!(load(&p, Format::Plain, Some(1)).unwrap().len(), 1);
        fs_err::remove_dir_all(dir).ok();

        let (l, m) = parse(&"\n".repeat(MAX_FILE as usize + 1), Format::Plain, None).unwrap_err();
        assert_eq!(l, 0);
        assert!(m.contains(&MAX_FILE.to_string()), "{m}");
    }

    #[test]
    fn the_item_count_is_capped_unless_a_limit_takes_part() {
        let text: String = (0..=MAX_ITEMS)
            .map(|i| format!("{{\"id\": {i}, \"prompt\": \"p\", \"answer\": 1}}\n"))
            .collect();
        let (l, m) = parse(&text, Format::Plain, None).unwrap_err();
        assert_eq!(l, MAX_ITEMS + 1);
        assert!(m.contains("limit"), "{m}");
        assert_eq!(parse(&text, Format::Plain, Some(10)).unwrap().len(), 10);
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read() {
        let e = load(Path::new("/dev/null"), Format::Plain, None).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
    }
}
