//! What a suite file's containers share ([`jsonl`](crate::jsonl) lines, [`parquet`](crate::parquet) rows): the
//! two layouts' fields, the caps, and the checks that turn one record into an [`Item`] and a file into a suite
//! (field sizes, final answers, duplicate ids, the item count). Each container only decodes its records, so a
//! GSM8K item is the same whichever file it came from.

use std::collections::HashSet;

use crate::Item;
use crate::extract::numbers;

/// Layout of each record (a JSONL line, a parquet row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"question": ..., "answer": "... #### N"}`; steps are counted from the `<<a+b=c>>` annotations.
    Gsm8k,
    /// `{"id": ..., "prompt": ..., "answer": ..., "family"?: ..., "steps"?: ...}`.
    Plain,
}

/// A record that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.show())]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// 1-based line number, or row number when [`row`](Self::row) is set (0 for the whole file).
    pub line: usize,
    /// Whether `line` counts a parquet file's rows rather than a text file's lines.
    pub row: bool,
    /// What is wrong.
    pub message: String,
}

impl LoadError {
    fn show(&self) -> String {
        match (self.row, self.line) {
            (false, n) => format!("{}:{n}: {}", self.path, self.message),
            (true, 0) => format!("{}: {}", self.path, self.message),
            (true, n) => format!("{}: row {n}: {}", self.path, self.message),
        }
    }
}

/// Largest suite file read: GSM8K's whole training set is 4 MB.
pub const MAX_FILE: u64 = 64 << 20;
/// Largest text field (`prompt`/`question`, `answer`, `solution`, `id`, `family`): the longest GSM8K question is
/// under 1 KB, and a prompt several hundred times that would not fit a small model's context anyway.
pub const MAX_FIELD: usize = 64 << 10;
/// Most items read from one file (GSM8K's training set has 7,473); use the suite's `limit` for a part of a larger
/// file.
pub const MAX_ITEMS: usize = 100_000;

/// One decoded record, before the checks that make it an item.
pub(crate) enum Record {
    /// A GSM8K record.
    Gsm8k { question: String, answer: String },
    /// A plain record; `id` and `answer` as text (numbers written as the container writes them).
    Plain {
        id: String,
        prompt: String,
        answer: String,
        family: Option<String>,
        steps: Option<u32>,
        solution: Option<String>,
    },
}

/// Items gathered record by record, with the checks that span records (duplicate ids, counts).
pub(crate) struct Suite {
    limit: Option<usize>,
    items: Vec<Item>,
    seen: HashSet<String>,
}

impl Suite {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            items: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Whether `limit` items are read: records past it are never decoded, whatever they hold.
    pub(crate) fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.items.len() >= l)
    }

    /// Refuses record `n` when [`MAX_ITEMS`] are read already.
    pub(crate) fn room(&self, n: usize) -> Result<(), (usize, String)> {
        if self.items.len() >= MAX_ITEMS {
            return Err((n, too_many()));
        }
        Ok(())
    }

    /// Takes record `n`; false once `limit` items are read.
    pub(crate) fn push(&mut self, n: usize, record: Record) -> Result<bool, (usize, String)> {
        let item = item(n, record)?;
        if !self.seen.insert(item.id.clone()) {
            return Err((n, format!("duplicate id `{}`", item.id)));
        }
        self.items.push(item);
        Ok(!self.done())
    }

    pub(crate) fn finish(self) -> Result<Vec<Item>, (usize, String)> {
        if self.items.is_empty() {
            return Err((0, "no items".into()));
        }
        Ok(self.items)
    }
}

/// The message for a file of more than [`MAX_ITEMS`] items.
pub(crate) fn too_many() -> String {
    format!(
        "more than {MAX_ITEMS} items, the cap on a suite file; set the suite's `limit` to use part of it"
    )
}

/// Refuses text field `name` of record `n` when it is over [`MAX_FIELD`].
pub(crate) fn field(n: usize, name: &str, text: &str) -> Result<(), (usize, String)> {
    field_len(n, name, text.len())
}

/// Refuses field `name` of record `n`, `len` bytes long, when it is over [`MAX_FIELD`].
pub(crate) fn field_len(n: usize, name: &str, len: usize) -> Result<(), (usize, String)> {
    if len > MAX_FIELD {
        return Err((
            n,
            format!("`{name}` is {len} bytes, over the {MAX_FIELD}-byte cap on a suite field"),
        ));
    }
    Ok(())
}

/// The item of record `n`.
fn item(n: usize, record: Record) -> Result<Item, (usize, String)> {
    let stem = "item";
    Ok(match record {
        Record::Gsm8k { question, answer } => {
            field(n, "question", &question)?;
            field(n, "answer", &answer)?;
            let (work, last) = answer
                .rsplit_once("####")
                .ok_or_else(|| (n, "the answer has no `#### N` final answer".to_string()))?;
            let last = numbers(last)
                .into_iter()
                .next()
                .ok_or_else(|| (n, format!("`{}` after #### is not a number", last.trim())))?
                .text;
            let steps = work.matches("<<").count() as u32;
            let solution = format!("{}\nAnswer: {last}", strip_annotations(work).trim());
            Item {
                id: format!("{stem}-{n}"),
                family: "gsm8k".into(),
                steps,
                question,
                answer: last,
                solution,
                target: answer,
            }
        }
        Record::Plain {
            id,
            prompt,
            answer: raw,
            family,
            steps,
            solution,
        } => {
            field(n, "id", &id)?;
            field(n, "prompt", &prompt)?;
            field(n, "answer", &raw)?;
            field(n, "family", family.as_deref().unwrap_or_default())?;
            field(n, "solution", solution.as_deref().unwrap_or_default())?;
            let answer = numbers(&raw)
                .into_iter()
                .last()
                .ok_or_else(|| {
                    (
                        n,
                        format!("answer `{raw}` has no number (only numeric answers are scored)"),
                    )
                })?
                .text;
            Item {
                id,
                family: family.unwrap_or_else(|| "plain".into()),
                steps: steps.unwrap_or(0),
                question: prompt,
                solution: solution.unwrap_or_else(|| format!("Answer: {answer}")),
                target: raw,
                answer,
            }
        }
    })
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

/// The operating system's reason in an `fs_err` error, without the path (the suite error names the file already).
pub(crate) fn os_reason(e: &std::io::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
}
