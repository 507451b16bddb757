//! External suites from JSONL files: GSM8K's format and a plain `{id, prompt, answer}` format.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::Item;
use crate::extract::numbers;

/// Layout of each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"question": ..., "answer": "... #### N"}`; steps are counted from the `<<a+b=c>>` annotations.
    Gsm8k,
    /// `{"id": ..., "prompt": ..., "answer": ..., "family"?: ..., "steps"?: ...}`.
    Plain,
}

/// A line that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// 1-based line number (0 for the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

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

/// Reads a suite file; every bad line is an error naming the file and line. At most `limit` items (all when None).
pub fn load(path: &Path, format: Format, limit: Option<usize>) -> Result<Vec<Item>, LoadError> {
    let name = path.display().to_string();
    let err = |line: usize, message: String| LoadError {
        path: name.clone(),
        line,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(0, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| err(0, format!("not UTF-8 text: {e}")))?;
    parse(&text, format, limit).map_err(|(line, message)| err(line, message))
}

/// Parses suite text (see [`load`]); errors carry the 1-based line number.
pub fn parse(
    text: &str,
    format: Format,
    limit: Option<usize>,
) -> Result<Vec<Item>, (usize, String)> {
    let stem = "item";
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        let item = match format {
            Format::Gsm8k => {
                let g: GsmLine = serde_json::from_str(line)
                    .map_err(|e| (n, format!("not a GSM8K line: {e}")))?;
                let (work, answer) = g
                    .answer
                    .rsplit_once("####")
                    .ok_or_else(|| (n, "the answer has no `#### N` final answer".to_string()))?;
                let answer = numbers(answer)
                    .into_iter()
                    .next()
                    .ok_or_else(|| (n, format!("`{}` after #### is not a number", answer.trim())))?
                    .text;
                let steps = work.matches("<<").count() as u32;
                let solution = format!("{}\nAnswer: {answer}", strip_annotations(work).trim());
                Item {
                    id: format!("{stem}-{n}"),
                    family: "gsm8k".into(),
                    steps,
                    question: g.question,
                    answer,
                    solution,
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
                let raw = match p.answer {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(x) => x.to_string(),
                    other => {
                        return Err((
                            n,
                            format!("answer {other} is neither a string nor a number"),
                        ));
                    }
                };
                let answer = numbers(&raw)
                    .into_iter()
                    .last()
                    .ok_or_else(|| {
                        (
                            n,
                            format!(
                                "answer `{raw}` has no number (only numeric answers are scored)"
                            ),
                        )
                    })?
                    .text;
                Item {
                    id,
                    family: p.family.unwrap_or_else(|| "plain".into()),
                    steps: p.steps.unwrap_or(0),
                    question: p.prompt,
                    solution: p.solution.unwrap_or_else(|| format!("Answer: {answer}")),
                    answer,
                }
            }
        };
        if !seen.insert(item.id.clone()) {
            return Err((n, format!("duplicate id `{}`", item.id)));
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err((0, "no items".into()));
    }
    Ok(items)
}

/// `48/2=<<48/2=24>>24` -> `48/2=24`.
fn strip_annotations(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(a) = rest.find("<<") {
        out.push_str(&rest[..a]);
        match rest[a..].find(">>") {
            Some(b) => rest = &rest[a + b + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
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
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.jsonl");
        std::fs::write(&p, "{\"id\": 1, \"prompt\": \"p\", \"answer\": 1}\nnope\n").unwrap();
        let e = load(&p, Format::Plain, None).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2:"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
